"""Theft (窃电) and inspections (用电检查): hidden thieves under-report with the Jokar attacks h1–h5 from an
onset date, their 台区 keeps receiving the stolen energy, and a biased inspection policy finds some of them.

The policy is what a utility actually runs (DOMAIN §3): high-loss areas, high-tariff customers, sudden drops
and zero readings get inspected more, plus a few random visits. A found thief stops; the back-pay is settled.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from features.attacks import apply_attack
from features.synthetic import domain as d
from features.synthetic.config import Calendar

KINDS = ("h1", "h2", "h3", "h4", "h5")
H1, H2, H3, H4, H5 = range(5)
# [I] Share of customers who steal at some time (≈ 3 % are stealing in any month; DOMAIN §3 sources give
# 0.3–5.6 %); 30 % were already stealing before the span.
PREVALENCE = np.array([0.065, 0.10, 0.08, 0.08])
ALREADY_STEALING = 0.3
H2_MIN_MONTHS = 2  # Jokar's zero window, at least two billing months (≥ 30 days on daily readings)
ATTACK_BLOCK_MONTHS = 12  # h4/h5 report the mean over blocks of a year of bills …
ATTACK_BLOCK_DAYS = 30  # … or of a month of daily readings
# [I] Inspection policy, per customer and month.
INSPECT_BASE = np.array([0.0045, 0.018, 0.035, 0.012])  # by category
INSPECT_TARIFF = np.array([1.0, 1.3, 1.6])  # single, tou, two-part: high-tariff customers more often
INSPECT_RANDOM = 0.001
LOSS_NORMAL = np.array([0.06, 0.03])  # public / dedicated areas: loss above this counts as excess
LOSS_WEIGHT = 20.0  # p × (1 + LOSS_WEIGHT × excess loss)
DROP_RATIO = 0.6  # last bill below 60 % of the same month last year (or the recent median) is a drop
DROP_INSPECT = 0.15
# [S] Zero readings trigger site checks: all ≥ 10 kV, 80 % of other non-residential, 20 % of residential.
ZERO_KWH = 1.0
DETECT = 0.85  # an inspection of an active thief finds the theft
VIOLATION = np.array([0.004, 0.02, 0.03, 0.01])  # 违约用电 found on an inspection, by category
PF_SHIFT = (0.03, 0.10)  # 移相法 thieves ≥ 100 kVA show a lower power factor


@dataclass
class Theft:
    thief: np.ndarray
    kind: np.ndarray  # -1 honest, else index into KINDS
    onset: np.ndarray  # datetime64[D], NaT for honest customers
    onset_month: np.ndarray
    window_end: np.ndarray  # datetime64[D]: end of h2's zero window (exclusive)
    window_end_month: np.ndarray
    alpha: np.ndarray  # h1 factor
    pf_shift: np.ndarray
    stealing_unfound: np.ndarray  # (n, M) would be stealing if never found
    stealing: np.ndarray  # (n, M) realised
    found_month: np.ndarray  # -1 when never found
    found_at: np.ndarray  # datetime64[s]
    billed: np.ndarray  # (n, M) reported kWh
    p_inspect: np.ndarray  # (n, M)
    # (n, M) probability that an inspection in the month finds theft if not found before: after a find, that
    # of the thief still unfound (bills attacked), not the p_inspect of the customer found and billing in full
    p_found: np.ndarray
    insp_customer: np.ndarray
    insp_month: np.ndarray
    insp_at: np.ndarray  # datetime64[s]
    insp_result: np.ndarray  # 0 normal, 1 theft, 2 violation


def choose_thieves(
    category: np.ndarray,
    open_date: np.ndarray,
    close_date: np.ndarray,
    active: np.ndarray,
    calendar: Calendar,
    rng: np.random.Generator,
) -> dict[str, np.ndarray]:
    n, months = active.shape
    thief = (rng.random(n) < PREVALENCE[category]) & ((active > 0).sum(axis=1) >= 4)
    start = calendar.month_start[0]
    lo = np.maximum(open_date, start)
    closed = np.where(np.isnat(close_date), calendar.span_end, close_date - np.timedelta64(1, "D"))
    hi = np.maximum(np.minimum(closed, calendar.span_end - np.timedelta64(30, "D")), lo)
    spread = (hi - lo).astype(np.int64)
    onset = lo + np.floor(rng.random(n) * (spread + 1)).astype("timedelta64[D]")
    before = rng.random(n) < ALREADY_STEALING
    earlier = np.maximum(lo - np.floor(rng.random(n) * 365).astype("timedelta64[D]"), open_date)
    onset = np.where(before, earlier, onset)
    onset = np.where(thief, onset, np.datetime64("NaT"))
    kind = np.where(thief, rng.integers(0, len(KINDS), size=n), -1)
    day = (onset - onset.astype("datetime64[M]").astype("datetime64[D]")).astype(np.int64)
    onset_month = np.where(thief, np.maximum(calendar.month_index(onset) + (day >= 15), 0), months)
    # h2's zero window lasts from two billing months to the end of the span.
    length = H2_MIN_MONTHS + np.floor(rng.random(n) * np.maximum(months - onset_month - H2_MIN_MONTHS + 1, 1))
    window_end_month = np.where(kind == H2, onset_month + length.astype(np.int64), months + 1)
    window_end = calendar.month_start[np.minimum(window_end_month, months)]
    window_end = np.where(window_end_month > months, np.datetime64("2200-01-01"), window_end)
    m = np.arange(months)[None, :]
    unfound = thief[:, None] & (m >= onset_month[:, None]) & (m < window_end_month[:, None])
    return {
        "thief": thief,
        "kind": kind,
        "onset": onset,
        "onset_month": onset_month,
        "window_end": window_end,
        "window_end_month": window_end_month,
        "alpha": rng.uniform(0.1, 0.8, size=n),
        "pf_shift": rng.uniform(*PF_SHIFT, size=n),
        "stealing_unfound": unfound,
    }


def attack_series(
    true_kwh: np.ndarray,
    plan: dict[str, np.ndarray],
    onset: np.ndarray,
    end: np.ndarray,
    block: int,
    rng: np.random.Generator,
) -> np.ndarray:
    """Reported series for every row (honest rows unchanged): each thief's attack from ``onset`` (step index),
    h2 zeroing [onset, end). Used for monthly bills (block = a year) and daily readings (block = a month)."""
    out = true_kwh.copy()
    for k, name in enumerate(KINDS):
        rows = np.flatnonzero(plan["kind"] == k)
        if rows.size == 0:
            continue
        x = true_kwh[rows]
        params: dict = {"onset": onset[rows]}
        if k == H1:
            params["alpha"] = plan["alpha"][rows]
        elif k == H2:
            params["window"] = (onset[rows], np.maximum(end[rows], onset[rows]))
        elif k in (H4, H5):
            params["period"] = block
        out[rows] = apply_attack(name, x, rng, **params)
    return out


@dataclass
class InspectionPolicy:
    """What the inspection policy reads besides the bills: per customer, and per area for the line loss."""

    base: np.ndarray
    zero_check: np.ndarray
    area: np.ndarray
    loss_normal: np.ndarray  # per area
    supply: np.ndarray  # areas × M
    active: np.ndarray
    offline: np.ndarray

    def probability(
        self, m: int, billed: np.ndarray, billed_area: np.ndarray, who: np.ndarray | slice = slice(None)
    ) -> np.ndarray:
        """P(inspected in month m) for the customers ``who``, from their bills (``billed``, who × M) and their
        areas' billed totals (``billed_area``, who) of the month before."""
        n = billed.shape[0]
        base, active, offline = self.base[who], self.active[who], self.offline[who]
        p = base.copy()
        if m >= 1:
            area = self.area[who]
            supplied = self.supply[area, m - 1]
            with np.errstate(invalid="ignore", divide="ignore"):
                loss = np.where(supplied > 0, 1.0 - billed_area / supplied, 0.0)
            excess = np.clip(loss - self.loss_normal[area], 0.0, 0.5)
            p = base * (1.0 + LOSS_WEIGHT * excess)
            prev = billed[:, m - 1]
            if m >= 13:
                ref = billed[:, m - 13]
                ref_online = offline[:, m - 13] < 0.2
            elif m >= 3:
                ref = np.median(billed[:, max(0, m - 7) : m - 1], axis=1)
                ref_online = offline[:, max(0, m - 7) : m - 1].max(axis=1) < 0.2
            else:
                ref = np.zeros(n)
                ref_online = np.zeros(n, dtype=bool)
            steady = (active[:, m - 1] >= 1.0) & (offline[:, m - 1] < 0.2) & ref_online & (ref > 0)
            drop = steady & (prev < DROP_RATIO * ref)
            zero = steady & (prev <= ZERO_KWH)
            p = 1.0 - (1.0 - np.minimum(p + INSPECT_RANDOM, 0.9)) * (1.0 - DROP_INSPECT * drop) * (
                1.0 - self.zero_check[who] * zero
            )
        return np.where(active[:, m] > 0, p, 0.0)


def inspect(
    plan: dict[str, np.ndarray],
    true_kwh: np.ndarray,
    attacked: np.ndarray,
    supply: np.ndarray,
    area: np.ndarray,
    area_dedicated: np.ndarray,
    category: np.ndarray,
    tariff: np.ndarray,
    voltage_kv: np.ndarray,
    active: np.ndarray,
    offline: np.ndarray,
    open_date: np.ndarray,
    close_date: np.ndarray,
    calendar: Calendar,
    rng: np.random.Generator,
) -> Theft:
    """Run the inspection policy month by month; bills follow the attacked series until a thief is found."""
    n, months = true_kwh.shape
    n_areas = supply.shape[0]
    billed = true_kwh.copy()
    # The bills each customer would have sent had it never been found: what the oracle needs, since a found
    # thief's bills (and so its drop, zero-reading and area-loss triggers) go back to normal after the find.
    unfound_billed = np.where(plan["stealing_unfound"], attacked, true_kwh)
    found = np.zeros(n, dtype=bool)
    found_month = np.full(n, -1)
    stealing = np.zeros((n, months), dtype=bool)
    p_inspect = np.zeros((n, months))
    p_unfound = np.zeros((n, months))
    policy = InspectionPolicy(
        base=INSPECT_BASE[category] * INSPECT_TARIFF[tariff],
        zero_check=np.where(voltage_kv >= 10.0, 1.0, np.where(category == d.RES, 0.2, 0.8)),
        area=area,
        loss_normal=LOSS_NORMAL[area_dedicated.astype(np.int64)],
        supply=supply,
        active=active,
        offline=offline,
    )
    rows: list[tuple[np.ndarray, ...]] = []
    for m in range(months):
        if m >= 1:
            billed_area = np.bincount(area, weights=billed[:, m - 1], minlength=n_areas)[area]
        else:
            billed_area = np.zeros(n)
        p = policy.probability(m, billed, billed_area)
        p_inspect[:, m] = p
        p_unfound[:, m] = p
        # A found customer's month had it not been found: its own bills unfound, everyone else's as they were.
        was_found = np.flatnonzero(found)
        if m >= 1 and was_found.size:
            own_change = unfound_billed[was_found, m - 1] - billed[was_found, m - 1]
            p_unfound[was_found, m] = policy.probability(
                m, unfound_billed[was_found], billed_area[was_found] + own_change, was_found
            )
        now = plan["stealing_unfound"][:, m] & ~found
        stealing[:, m] = now
        billed[:, m] = np.where(now, attacked[:, m], true_kwh[:, m])
        inspected = rng.random(n) < p
        hit = inspected & now & (rng.random(n) < DETECT)
        violation = inspected & ~hit & (rng.random(n) < VIOLATION[category])
        found |= hit
        found_month[hit] = m
        idx = np.flatnonzero(inspected)
        result = np.where(hit[idx], 1, np.where(violation[idx], 2, 0))
        rows.append((idx, np.full(idx.size, m), result))

    if rows:
        customer, month, result = (np.concatenate(parts) for parts in zip(*rows, strict=True))
    else:
        customer = month = result = np.zeros(0, dtype=np.int64)
    first = calendar.month_start[month]
    dim = calendar.days_in_month[month]
    day = first + np.floor(rng.random(customer.size) * dim).astype("timedelta64[D]")
    closed = np.where(np.isnat(close_date), np.datetime64("2200-01-01"), close_date - np.timedelta64(1, "D"))
    day = np.clip(day, np.maximum(open_date[customer], first), np.maximum(closed[customer], first))
    # A theft is found after it began.
    day = np.where(result == 1, np.maximum(day, plan["onset"][customer] + np.timedelta64(1, "D")), day)
    seconds = rng.integers(9 * 3600, 17 * 3600, size=customer.size).astype("timedelta64[s]")
    at = day.astype("datetime64[s]") + seconds
    found_at = np.full(n, np.datetime64("NaT"), dtype="datetime64[s]")
    found_at[customer[result == 1]] = at[result == 1]
    return Theft(
        thief=plan["thief"],
        kind=plan["kind"],
        onset=plan["onset"],
        onset_month=plan["onset_month"],
        window_end=plan["window_end"],
        window_end_month=plan["window_end_month"],
        alpha=plan["alpha"],
        pf_shift=plan["pf_shift"],
        stealing_unfound=plan["stealing_unfound"],
        stealing=stealing,
        found_month=found_month,
        found_at=found_at,
        billed=billed,
        p_inspect=p_inspect,
        p_found=p_unfound * DETECT * plan["stealing_unfound"],
        insp_customer=customer,
        insp_month=month,
        insp_at=at,
        insp_result=result,
    )


def settle(
    theft: Theft,
    true_kwh: np.ndarray,
    billed: np.ndarray,
    price: np.ndarray,
    capacity_kva: np.ndarray,
    two_part: np.ndarray,
    rng: np.random.Generator,
) -> tuple[np.ndarray, np.ndarray]:
    """Recovered kWh and amount per inspection: theft back-pays ≤ 180 days + 3× penalty; violations pay the
    unauthorised-capacity charge (DOMAIN §2–§3)."""
    c, m, result = theft.insp_customer, theft.insp_month, theft.insp_result
    months = true_kwh.shape[1]
    stolen = np.maximum(true_kwh - billed, 0.0)
    window = THEFT_WINDOW_MONTHS
    offsets = m[:, None] - np.arange(window)[None, :]
    valid = offsets >= 0
    taken = stolen[c[:, None], np.clip(offsets, 0, months - 1)] * valid
    kwh = np.where(result == 1, np.round(taken.sum(axis=1), 1), 0.0)
    theft_amount = kwh * price[c] * (1.0 + d.THEFT_PENALTY_MULTIPLE)
    excess = np.maximum(np.round(capacity_kva[c] * rng.uniform(0.1, 0.4, size=c.size)), 1.0)
    violation_amount = np.where(
        two_part[c],
        d.VIOLATION_BASIC_MULTIPLE * d.BASIC_CHARGE_PER_KVA * excess,
        d.VIOLATION_PER_KW * excess,
    )
    amount = np.select([result == 1, result == 2], [theft_amount, violation_amount], 0.0)
    return kwh, np.round(amount, 2)


THEFT_WINDOW_MONTHS = d.THEFT_BACKPAY_MAX_DAYS // 30  # the month found and the five before it
