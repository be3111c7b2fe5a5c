"""Suspensions (暂停) and capacity reductions (减容) of two-part customers, with their restorations.

A monthly hazard (low operating level, industry downturn, stress, the customer's own propensity; seasonal
industries once a year) decides applications; the rules of DOMAIN §2 shape each one. The offline capacity
share then lowers consumption and the basic charge.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from features.schema import SuspensionKind
from features.synthetic import domain as d
from features.synthetic.config import Calendar

# [I] Hazard: logit = BASE + own propensity + OUTPUT_WEIGHT × (1 − operating level) + STRESS_WEIGHT × stress
#     + BASIC_SHARE_WEIGHT × (share of the basic charge in a normal bill − BASIC_SHARE_TYPICAL): DOMAIN §2, an
#     idle plant's capacity charge weighs more, which is what suspension and reduction relieve.
HAZARD_BASE = -4.75
PROPENSITY_SD = 0.45
OUTPUT_WEIGHT = 5.0
STRESS_WEIGHT = 0.3
BASIC_SHARE_WEIGHT = 5.0
BASIC_SHARE_TYPICAL = 0.2
SLUMP_MONTHS = 3
SEASONAL_APPLY = 0.9  # a seasonal customer applies in its pre-season month with this probability
REDUCTION_SHARE = 0.25  # of applications, before the downturn raises it
REDUCTION_SHARE_IN_DOWNTURN = 0.35  # extra share at full downturn depth
SUSPENSION_MEAN_EXTRA_DAYS = 50.0  # durations are 15 days + exponential
EARLY_RESTORE = 0.2
FILE_RESTORE_AT_EXPIRY = 0.5  # the basic charge restarts at expiry anyway; half the customers still file
PERMANENT_REDUCTION = 0.15
OFFLINE_RESIDUAL = 0.03  # station service and lighting keep drawing a little on a sealed transformer

SUSPENSION, REDUCTION, SUSPENSION_RESTORE, REDUCTION_RESTORE = range(4)
KIND_VALUES = (
    SuspensionKind.SUSPENSION.value,
    SuspensionKind.REDUCTION.value,
    SuspensionKind.SUSPENSION_RESTORE.value,
    SuspensionKind.REDUCTION_RESTORE.value,
)  # indexed by the codes above
NEVER = np.datetime64("2200-01-01", "D")


@dataclass
class ServiceChanges:
    # Spells (suspensions and reductions), one row each.
    customer: np.ndarray
    kind: np.ndarray
    applied_at: np.ndarray  # datetime64[s]
    start: np.ndarray  # datetime64[D]
    planned_end: np.ndarray  # datetime64[D], NaT for permanent reductions
    actual_end: np.ndarray  # datetime64[D], last offline day (NEVER for permanent)
    capacity_kva: np.ndarray
    share: np.ndarray  # capacity_kva ÷ the customer's contract capacity
    # Restoration applications.
    restore_customer: np.ndarray
    restore_kind: np.ndarray
    restore_applied_at: np.ndarray
    restore_start: np.ndarray
    restore_capacity_kva: np.ndarray
    # Per customer × month.
    offline_share: np.ndarray  # capacity-days offline ÷ capacity-days in the month
    hazard: np.ndarray  # probability of applying in the month if eligible (truth)

    @property
    def spells(self) -> int:
        return self.customer.shape[0]


def _times(days: np.ndarray, rng: np.random.Generator, first_hour: int, hours: int) -> np.ndarray:
    seconds = rng.integers(first_hour * 3600, (first_hour + hours) * 3600, size=days.shape[0])
    return days.astype("datetime64[s]") + seconds.astype("timedelta64[s]")


def simulate_service_changes(
    two_part: np.ndarray,
    capacity_kva: np.ndarray,
    transformers: np.ndarray,
    industry: np.ndarray,
    active: np.ndarray,
    operating_level: np.ndarray,
    stress: np.ndarray,
    downturn: np.ndarray,
    basic_share: np.ndarray,
    calendar: Calendar,
    rng: np.random.Generator,
) -> ServiceChanges:
    n, months = active.shape
    propensity = rng.normal(0.0, PROPENSITY_SD, size=n) + BASIC_SHARE_WEIGHT * (
        basic_share - BASIC_SHARE_TYPICAL
    )
    seasonal_start = np.zeros(n, dtype=np.int64)  # month of year the seasonal suspension starts, 0 = none
    seasonal_len = np.zeros(n, dtype=np.int64)
    for code, (first_month, length) in d.SEASONAL_SUSPENSION.items():
        mask = industry == d.INDUSTRIES.index(code)
        seasonal_start[mask] = first_month
        seasonal_len[mask] = length
    years = calendar.year
    y0 = int(years[0])
    n_years = int(years[-1]) - y0 + 3
    count = np.zeros((n, n_years), dtype=np.int64)
    used_days = np.zeros((n, n_years), dtype=np.int64)
    free_from = np.full(n, np.datetime64("1900-01-01", "D"))
    hazard = np.zeros((n, months))
    rows: list[tuple[np.ndarray, ...]] = []

    for m in range(months):
        first = calendar.month_start[m]
        dim = int(calendar.days_in_month[m])
        moy = int(calendar.month_of_year[m])
        # Firms decide after a sustained slump: the last three months' output, not this month's.
        slump = 1.0 - operating_level[:, max(0, m - SLUMP_MONTHS) : max(1, m)].mean(axis=1)
        logit = HAZARD_BASE + propensity + OUTPUT_WEIGHT * slump + STRESS_WEIGHT * stress[:, m]
        h = 1.0 / (1.0 + np.exp(-logit))
        pre_season = (seasonal_start > 0) & (((seasonal_start - 2) % 12) + 1 == moy)
        h = np.where(pre_season, SEASONAL_APPLY, h)
        h = np.where(two_part & (active[:, m] > 0), h, 0.0)
        hazard[:, m] = h
        eligible = two_part & (active[:, m] >= 1.0) & (free_from <= first)
        event = eligible & (rng.random(n) < h)
        idx = np.flatnonzero(event)
        if idx.size == 0:
            continue
        day = first + np.floor(rng.random(idx.size) * dim).astype("timedelta64[D]")
        lead = d.APPLICATION_WORKING_DAYS + rng.integers(0, 11, size=idx.size)
        start = np.busday_offset(day, lead, roll="forward").astype("datetime64[D]")
        seasonal = pre_season[idx]
        season_first = calendar.month_start[min(m + 1, months)]
        start = np.where(seasonal, np.maximum(start, season_first), start)
        year = start.astype("datetime64[Y]").astype(np.int64) + 1970
        yi = np.clip(year - y0, 0, n_years - 1)
        year_end = (start.astype("datetime64[Y]") + 1).astype("datetime64[D]") - np.timedelta64(1, "D")
        room = np.minimum(
            d.SUSPENSION_DAYS_PER_YEAR - used_days[idx, yi], (year_end - start).astype(np.int64) + 1
        )
        can_suspend = (count[idx, yi] < d.SUSPENSIONS_PER_YEAR) & (room >= d.SUSPENSION_MIN_DAYS)
        reduction_share = REDUCTION_SHARE + REDUCTION_SHARE_IN_DOWNTURN * np.minimum(
            downturn[idx, m] * 2.5, 1.0
        )
        wants_reduction = ~seasonal & (rng.random(idx.size) < reduction_share)
        is_reduction = wants_reduction | ~can_suspend
        # A seasonal customer with no suspension allowance left this year waits for next season.
        keep = ~(seasonal & ~can_suspend)
        idx, day, start, yi, room, is_reduction, seasonal = (
            a[keep] for a in (idx, day, start, yi, room, is_reduction, seasonal)
        )
        k = idx.size
        applied = _times(day, rng, 8, 9)

        # Suspension length: the season, or 15 days plus an exponential tail; never beyond the year's room.
        season_days = (
            (start.astype("datetime64[M]") + seasonal_len[idx]).astype("datetime64[D]") - start
        ).astype(np.int64)
        wanted = np.where(
            seasonal,
            season_days,
            d.SUSPENSION_MIN_DAYS
            + np.floor(rng.exponential(SUSPENSION_MEAN_EXTRA_DAYS, size=k)).astype(np.int64),
        )
        sus_days = np.clip(wanted, d.SUSPENSION_MIN_DAYS, np.maximum(room, d.SUSPENSION_MIN_DAYS))
        red_days = rng.integers(d.REDUCTION_MIN_DAYS, d.REDUCTION_MAX_DAYS + 1, size=k)
        length = np.where(is_reduction, red_days, sus_days)
        planned_end = start + (length - 1).astype("timedelta64[D]")
        permanent = is_reduction & (rng.random(k) < PERMANENT_REDUCTION)
        early = (
            ~is_reduction & ~seasonal & (rng.random(k) < EARLY_RESTORE) & (sus_days > d.SUSPENSION_MIN_DAYS)
        )
        early_days = d.SUSPENSION_MIN_DAYS + np.floor(
            rng.random(k) * np.maximum(sus_days - d.SUSPENSION_MIN_DAYS, 1)
        ).astype(np.int64)
        actual_end = np.where(early, start + (early_days - 1).astype("timedelta64[D]"), planned_end)
        actual_end = np.where(permanent, NEVER, actual_end)
        planned_end = np.where(permanent, np.datetime64("NaT"), planned_end)

        # Whole transformers: some of several, else all of them (a reduction swaps in a smaller one).
        tx = transformers[idx]
        per_tx = capacity_kva[idx] / tx
        part = 1 + np.floor(rng.random(k) * np.maximum(tx - 1, 1)).astype(np.int64)
        all_of_them = (tx == 1) | (rng.random(k) < 0.3)
        sus_cap = np.where(all_of_them, capacity_kva[idx], part * per_tx)
        red_cap = np.where(
            tx > 1, part * per_tx, np.round(capacity_kva[idx] * rng.uniform(0.3, 0.6, size=k), 0)
        )
        cap = np.where(is_reduction, red_cap, sus_cap)

        suspended = ~is_reduction
        np.add.at(count, (idx[suspended], yi[suspended]), 1)
        np.add.at(used_days, (idx[suspended], yi[suspended]), length[suspended])
        free_from[idx] = np.where(
            permanent, start + np.timedelta64(d.REDUCTION_MIN_DAYS, "D"), actual_end + 1
        )

        restore = np.where(is_reduction, ~permanent, early | (rng.random(k) < FILE_RESTORE_AT_EXPIRY))
        rows.append(
            (
                idx,
                np.where(is_reduction, REDUCTION, SUSPENSION),
                applied,
                start,
                planned_end,
                actual_end,
                cap,
                restore,
            )
        )

    if rows:
        customer, kind, applied_at, start, planned_end, actual_end, cap, restore = (
            np.concatenate(parts) for parts in zip(*rows, strict=True)
        )
    else:
        customer = kind = np.zeros(0, dtype=np.int64)
        applied_at = np.zeros(0, dtype="datetime64[s]")
        start = planned_end = actual_end = np.zeros(0, dtype="datetime64[D]")
        cap = np.zeros(0)
        restore = np.zeros(0, dtype=bool)

    r = np.flatnonzero(restore)
    restore_day = actual_end[r] + np.timedelta64(1, "D")
    notice = d.APPLICATION_WORKING_DAYS + rng.integers(0, 6, size=r.size)
    restore_applied_day = np.busday_offset(restore_day, -notice, roll="backward").astype("datetime64[D]")
    restore_applied = _times(restore_applied_day, rng, 8, 9)
    # Applications made after the export are not in it yet.
    seen = restore_applied < calendar.export_at.astype("datetime64[s]")
    r = r[seen]

    share = np.minimum(cap / np.maximum(capacity_kva[customer], 1e-9), 1.0)
    offline = _offline_share(customer, start, actual_end, share, n, calendar)
    return ServiceChanges(
        customer=customer,
        kind=kind,
        applied_at=applied_at,
        start=start,
        planned_end=planned_end,
        actual_end=actual_end,
        capacity_kva=cap,
        share=share,
        restore_customer=customer[r],
        restore_kind=np.where(kind[r] == REDUCTION, REDUCTION_RESTORE, SUSPENSION_RESTORE),
        restore_applied_at=restore_applied[seen],
        restore_start=restore_day[seen],
        restore_capacity_kva=cap[r],
        offline_share=offline,
        hazard=hazard,
    )


def _offline_share(
    customer: np.ndarray,
    start: np.ndarray,
    end: np.ndarray,
    share: np.ndarray,
    n: int,
    calendar: Calendar,
) -> np.ndarray:
    out = np.zeros((n, calendar.months))
    if customer.size == 0:
        return out
    lo = np.maximum(start[:, None], calendar.month_start[None, :-1])
    hi = np.minimum(end[:, None] + np.timedelta64(1, "D"), calendar.month_start[None, 1:])
    days = np.maximum((hi - lo).astype(np.int64), 0)
    np.add.at(out, customer, share[:, None] * days / calendar.days_in_month[None, :])
    return np.minimum(out, 1.0)


def offline_share_by_day(changes: ServiceChanges, n: int, days: np.ndarray) -> np.ndarray:
    """Share of capacity offline on each day (customers × days), for spreading kWh over days."""
    out = np.zeros((n, days.shape[0]))
    if changes.spells == 0:
        return out
    covered = (days[None, :] >= changes.start[:, None]) & (days[None, :] <= changes.actual_end[:, None])
    hit = np.flatnonzero(covered.any(axis=1))
    np.add.at(out, changes.customer[hit], covered[hit] * changes.share[hit, None])
    return np.minimum(out, 1.0)
