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
OWING_BASE = np.array([-5.0, -4.6, -5.2, -4.4])
OWING_SLOPE = 1.5
# P(late by 1–30 days | not owing) = sigmoid(LATE_BASE + LATE_SLOPE × stress) × channel factor.
LATE_BASE = -2.4
LATE_SLOPE = 1.2
# [I] Within the due window, stressed customers pay nearer the due date: the paid day sits at U^a of the
# window with a = exp(−TIMING_SLOPE × stress) (a uniform day at stress 0).
TIMING_SLOPE = 0.6
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
    orig: Bills,
    re: Bills,
    owing_p: np.ndarray,
    late_p: np.ndarray,
    stress: np.ndarray,
    category: np.ndarray,
    method: np.ndarray,
    calendar: Calendar,
    rng: np.random.Generator,
) -> Payments:
    months = owing_p.shape[1]
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
    u = rng.random(nb)
    owing = u < owing_p[c, m]
    # Reuse u (uniform given not owing) to choose late-by-days, so only one draw per bill is needed here.
    late = ~owing & ((u - owing_p[c, m]) / np.maximum(1.0 - owing_p[c, m], 1e-12) < late_p[c, m])
    state = np.where(late, LATE_DAYS, ON_TIME).astype(np.int8)
    ow = np.flatnonzero(owing)
    v = rng.random(ow.size)
    split = np.cumsum(OWING_SPLIT)
    state[ow] = np.where(v < split[0], LATE_MONTHS, np.where(v < split[1], PARTIAL, UNPAID))
    issue, due = orig.issue_date, orig.due_date
    meth = method[c]
    window = np.maximum((due - issue).astype(np.int64), 1)
    # Most bills are paid on time: within the due window, the bank a few days after issue, 费控 at once.
    position = rng.random(nb) ** np.exp(-TIMING_SLOPE * stress[c, m])
    first_date = issue + _days(1 + position * window)
    bank = np.flatnonzero(meth == d.BANK)
    first_date[bank] = issue[bank] + _days(1 + rng.random(bank.size) * 3)
    first_date[meth == d.PREPAID] = issue[meth == d.PREPAID]
    first_date = np.minimum(first_date, due)
    for code, low, mean, cap in (
        (LATE_DAYS, 1, None, 30),
        (LATE_MONTHS, 31, 45.0, 540),
        (UNPAID, 181, 120.0, 720),
    ):
        k = np.flatnonzero(state == code)
        extra = rng.random(k.size) * 30 if mean is None else rng.exponential(mean, k.size)
        first_date[k] = due[k] + _days(np.minimum(low + extra, cap))
    first_paid = np.ones(nb, dtype=bool)
    unpaid = np.flatnonzero(state == UNPAID)
    first_paid[unpaid] = rng.random(unpaid.size) < UNPAID_EVENTUALLY_PAID
    partial = np.flatnonzero(state == PARTIAL)
    rest_paid = partial[rng.random(partial.size) < PARTIAL_REST_PAID]
    rest_date = due[rest_paid] + _days(np.minimum(31 + rng.exponential(60.0, rest_paid.size), 540))

    def amount_on(idx: np.ndarray, day: np.ndarray) -> np.ndarray:
        return np.where(day >= reissued_on[idx], final[idx], orig.amount_due[idx])

    first_principal = orig.amount_due.copy()
    hit = np.flatnonzero(first_date >= reissued_on)
    first_principal[hit] = final[hit]
    first_principal[partial] = np.round(rng.uniform(0.3, 0.9, partial.size) * first_principal[partial], 2)
    second_principal = np.round(amount_on(rest_paid, rest_date) - first_principal[rest_paid], 2)
    # A correction that raises the bill after it was paid in full is topped up within days, without a fee.
    delta = np.round(final - orig.amount_due, 2)
    topup = np.flatnonzero((state != PARTIAL) & first_paid & (first_date < reissued_on) & (delta > 0))
    topup_date = reissued_on[topup] + _days(1 + rng.random(topup.size) * 10)

    residential = category[c] == d.RES
    payable = orig.amount_due > 0
    first = np.flatnonzero(first_paid & payable)
    second_ok = payable[rest_paid] & (second_principal > 0)
    parts = [
        (first, 1, first_date[first], first_principal[first]),
        (rest_paid[second_ok], 2, rest_date[second_ok], second_principal[second_ok]),
        (topup[payable[topup]], 3, topup_date[payable[topup]], delta[topup][payable[topup]]),
    ]
    idx = np.concatenate([p[0] for p in parts])
    seq = np.concatenate([np.full(p[0].size, p[1], dtype=np.int8) for p in parts])
    day = np.concatenate([p[2] for p in parts])
    principal = np.concatenate([p[3] for p in parts])
    fee = np.zeros(idx.size)
    charged = np.flatnonzero((day > due[idx]) & (seq < 3))
    fee[charged] = d.late_fee(principal[charged], due[idx][charged], day[charged], residential[idx][charged])
    paid_at = day.astype("datetime64[s]") + rng.integers(8 * 3600, 22 * 3600, size=idx.size).astype(
        "timedelta64[s]"
    )
    is_late = day > due[idx]
    meth_i = meth[idx]
    coin = rng.random(idx.size)
    channel = meth_i.astype(np.int8).copy()
    # Counter customers sometimes pay online; a failed bank withholding is paid at the counter or online.
    channel[(meth_i == d.COUNTER) & (coin >= 0.75)] = d.ONLINE
    failed = (meth_i == d.BANK) & is_late
    channel[failed] = np.where(coin[failed] < 0.5, d.COUNTER, d.ONLINE)
    # Payments made after the export are not in it; rows stay in bill order, then second and top-up payments.
    order = np.flatnonzero(paid_at < calendar.export_at.astype("datetime64[s]"))
    return Payments(
        customer=c[idx][order],
        month=m[idx][order],
        seq=seq[order],
        paid_at=paid_at[order],
        amount=np.round(principal[order] + fee[order], 2),
        late_fee=fee[order],
        channel=channel[order],
    )
