"""Payments (缴费记录) from latent stress: on time, late by days, late by months, partial, or unpaid;
late fees at the DOMAIN rates; top-ups after a re-issued bill. The per-bill probability of still owing
30 days after the due date is the arrears oracle (truth)."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from features.synthetic import domain as d
from features.synthetic.billing import Bills
from features.synthetic.config import Calendar

# [I] P(bill still unpaid 30 days after due)
#     = sigmoid(OWING_BASE[category] + OWING_SLOPE × stress) × channel factor.
OWING_BASE = np.array([-5.3, -4.9, -5.5, -4.7])
OWING_SLOPE = 1.7
# P(late by 1–30 days | not owing) = sigmoid(LATE_BASE + LATE_SLOPE × stress) × channel factor.
LATE_BASE = -2.3
LATE_SLOPE = 0.9
# 费控 (prepaid) and bank withholding rarely fall into arrears (DOMAIN §1, §4).
OWING_CHANNEL = np.array([1.0, 0.25, 0.9, 0.05])
LATE_CHANNEL = np.array([1.0, 0.3, 0.9, 0.1])
# How an owing bill resolves: paid after 1–n months, part paid now and the rest later or never, or unpaid.
OWING_SPLIT = np.array([0.5, 0.25, 0.25])  # late by months, partial, unpaid
PARTIAL_REST_PAID = 0.6
UNPAID_EVENTUALLY_PAID = 0.25
ON_TIME, LATE_DAYS, LATE_MONTHS, PARTIAL, UNPAID = range(5)


def bill_risk(stress: np.ndarray, category: np.ndarray, method: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Per customer × month: P(still owing at due + 30 days) and P(late by days | not owing)."""
    owing = 1.0 / (1.0 + np.exp(-(OWING_BASE[category][:, None] + OWING_SLOPE * stress)))
    late = 1.0 / (1.0 + np.exp(-(LATE_BASE + LATE_SLOPE * stress)))
    return owing * OWING_CHANNEL[method][:, None], late * LATE_CHANNEL[method][:, None]


@dataclass
class Payments:
    customer: np.ndarray
    month: np.ndarray
    seq: np.ndarray
    paid_at: np.ndarray  # datetime64[s]
    amount: np.ndarray
    late_fee: np.ndarray
    channel: np.ndarray

    def __len__(self) -> int:
        return self.customer.shape[0]


def _days(values: np.ndarray) -> np.ndarray:
    return np.floor(values).astype(np.int64).astype("timedelta64[D]")


def simulate_payments(
    bills: Bills,
    owing_p: np.ndarray,
    late_p: np.ndarray,
    category: np.ndarray,
    method: np.ndarray,
    calendar: Calendar,
    rng: np.random.Generator,
) -> Payments:
    months = owing_p.shape[1]
    first = bills.version == 0
    orig = bills.take(np.flatnonzero(first))
    re = bills.take(np.flatnonzero(~first))
    # Latest correction per bill (re-issues are rare; a bill has at most one here).
    key = orig.customer.astype(np.int64) * months + orig.month
    order = np.argsort(key)
    pos = order[np.searchsorted(key, re.customer.astype(np.int64) * months + re.month, sorter=order)]
    final = orig.amount_due.copy()
    final[pos] = re.amount_due
    reissued_on = np.full(len(orig), np.datetime64("2200-01-01"), dtype="datetime64[D]")
    reissued_on[pos] = re.known_at.astype("datetime64[D]")

    c, m = orig.customer, orig.month
    nb = len(orig)
    q = owing_p[c, m]
    r = late_p[c, m]
    u = rng.random(nb)
    owing = u < q
    split = np.cumsum(OWING_SPLIT)
    v = rng.random(nb)
    state = np.where(
        owing,
        np.where(v < split[0], LATE_MONTHS, np.where(v < split[1], PARTIAL, UNPAID)),
        np.where(rng.random(nb) < r, LATE_DAYS, ON_TIME),
    )
    issue, due = orig.issue_date, orig.due_date
    meth = method[c]
    window = (due - issue).astype(np.int64)
    on_time = np.select(
        [meth == d.PREPAID, meth == d.BANK],
        [issue, issue + _days(1 + rng.random(nb) * 3)],
        issue + _days(1 + rng.random(nb) * np.maximum(window, 1)),
    )
    on_time = np.minimum(on_time, due)
    late_days = due + _days(1 + rng.random(nb) * 30)
    late_months = due + _days(np.minimum(31 + rng.exponential(45.0, nb), 540))
    rest = due + _days(np.minimum(31 + rng.exponential(60.0, nb), 540))
    rest_paid = rng.random(nb) < PARTIAL_REST_PAID
    very_late = due + _days(np.minimum(181 + rng.exponential(120.0, nb), 720))
    eventually = rng.random(nb) < UNPAID_EVENTUALLY_PAID
    first_date = np.select(
        [state == ON_TIME, state == LATE_DAYS, state == LATE_MONTHS, state == PARTIAL],
        [on_time, late_days, late_months, on_time],
        very_late,
    )
    first_paid = (state != UNPAID) | eventually

    def amount_on(day: np.ndarray) -> np.ndarray:
        return np.where(day >= reissued_on, final, orig.amount_due)

    frac = np.where(state == PARTIAL, rng.uniform(0.3, 0.9, nb), 1.0)
    first_principal = np.round(frac * amount_on(first_date), 2)
    second = (state == PARTIAL) & rest_paid
    second_principal = np.round(amount_on(rest) - first_principal, 2)
    # A correction that raises the bill after it was paid in full is topped up within days, without a fee.
    delta = np.round(final - orig.amount_due, 2)
    topup = (state != PARTIAL) & first_paid & (first_date < reissued_on) & (delta > 0)
    topup_date = reissued_on + _days(1 + rng.random(nb) * 10)

    residential = category[c] == d.RES
    payable = orig.amount_due > 0
    parts = []
    for mask, day, principal, seq, with_fee in (
        (first_paid & payable, first_date, first_principal, 1, True),
        (second & payable & (second_principal > 0), rest, second_principal, 2, True),
        (topup & payable, topup_date, delta, 3, False),
    ):
        idx = np.flatnonzero(mask)
        fee = (
            d.late_fee(principal[idx], due[idx], day[idx], residential[idx])
            if with_fee
            else np.zeros(idx.size)
        )
        parts.append((idx, np.full(idx.size, seq, dtype=np.int8), day[idx], principal[idx], fee))
    idx, seq, day, principal, fee = (np.concatenate(p) for p in zip(*parts, strict=True))
    paid_at = day.astype("datetime64[s]") + rng.integers(8 * 3600, 22 * 3600, size=idx.size).astype(
        "timedelta64[s]"
    )
    late = day > due[idx]
    meth_i = meth[idx]
    channel = np.select(
        [meth_i == d.PREPAID, (meth_i == d.BANK) & ~late, meth_i == d.ONLINE, meth_i == d.COUNTER],
        [d.PREPAID, d.BANK, d.ONLINE, np.where(rng.random(idx.size) < 0.75, d.COUNTER, d.ONLINE)],
        np.where(rng.random(idx.size) < 0.5, d.COUNTER, d.ONLINE),
    ).astype(np.int8)
    seen = paid_at < calendar.export_at.astype("datetime64[s]")
    order = np.lexsort((seq[seen], m[idx][seen], c[idx][seen]))
    sel = np.flatnonzero(seen)[order]
    return Payments(
        customer=c[idx][sel],
        month=m[idx][sel],
        seq=seq[sel],
        paid_at=paid_at[sel],
        amount=np.round(principal[sel] + fee[sel], 2),
        late_fee=fee[sel],
        channel=channel[sel],
    )
