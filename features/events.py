"""Event features as of T: past suspensions/capacity reductions (暂停/减容) and their timing, and past
inspections (用电检查) and their findings.

Only applications with applied_at ≤ T and inspections with inspected_at ≤ T are read. An application made
before T may name a start or planned end after T: that was declared at application time, so it is known at
T.
"""

from __future__ import annotations

import numpy as np

from features import windows as w
from features.schema import InspectionResult, SuspensionKind
from features.snapshot import AsOf, evaluate

SUSPENSION = SuspensionKind.SUSPENSION.value
REDUCTION = SuspensionKind.REDUCTION.value
LABEL_HORIZON_DAYS = 180  # the suspension task's horizon: last year's same-season window has this length
RESTORES = (SuspensionKind.SUSPENSION_RESTORE.value, SuspensionKind.REDUCTION_RESTORE.value)


def events_suspension_count_365d(applications: dict) -> np.ndarray:
    return applications["suspension_365d"]


def events_suspension_count_730d(applications: dict) -> np.ndarray:
    return applications["suspension_730d"]


def events_reduction_count_730d(applications: dict) -> np.ndarray:
    return applications["reduction_730d"]


def events_changes_same_season_last_year(applications: dict) -> np.ndarray:
    """Suspension or reduction applications made 185-365 days before T, i.e. in the half-year that a year
    ago lay ahead of the same calendar date (seasonal plants apply every year before their off-season)."""
    return applications["change_same_season_last_year"]


def events_restore_count_365d(applications: dict) -> np.ndarray:
    return applications["restore_365d"]


def events_days_since_last_change(applications: dict) -> np.ndarray:
    """Days since the last suspension or reduction application (NaN: never applied)."""
    return applications["days_since_change"]


def events_suspended_days_365d(applications: dict) -> np.ndarray:
    """Days of the last 365 covered by a suspension (seasonal industries suspend every year)."""
    return applications["suspended_days_365d"]


def events_suspended_days_same_season_last_year(applications: dict) -> np.ndarray:
    """Days suspended 185-364 days before T: last year's copy of the coming half-year. Unlike the trailing
    365 days, it says whether the season a seasonal plant suspends for lies ahead of T or behind it."""
    return applications["suspended_days_same_season_last_year"]


def is_suspended_at_as_of(applications: dict) -> np.ndarray:
    """A suspension started at or before T and its planned end is after T, with no restoration since."""
    return applications["suspended_now"]


def events_reduced_capacity_pct(applications: dict, capacity_kva: np.ndarray) -> np.ndarray:
    """Capacity under a reduction in force at T, as % of contract capacity."""
    return np.minimum(w.ratio(applications["reduced_kva"], capacity_kva) * 100.0, 100.0)


def has_scheduled_change(applications: dict) -> np.ndarray:
    """An application made by T whose start date is after T."""
    return applications["scheduled"]


def events_inspection_count_730d(inspections: dict) -> np.ndarray:
    return inspections["count_730d"]


def events_days_since_last_inspection(inspections: dict) -> np.ndarray:
    return inspections["days_since"]


def events_violation_count_730d(inspections: dict) -> np.ndarray:
    return inspections["violation_730d"]


def has_theft_finding(inspections: dict) -> np.ndarray:
    """Theft found at an inspection at or before T (such customers leave the theft population)."""
    return inspections["theft_ever"]


def events_recovered_kwh_730d(inspections: dict) -> np.ndarray:
    return inspections["recovered_kwh_730d"]


FEATURES = [
    events_suspension_count_365d,
    events_suspension_count_730d,
    events_reduction_count_730d,
    events_changes_same_season_last_year,
    events_restore_count_365d,
    events_days_since_last_change,
    events_suspended_days_365d,
    events_suspended_days_same_season_last_year,
    is_suspended_at_as_of,
    events_reduced_capacity_pct,
    has_scheduled_change,
    events_inspection_count_730d,
    events_days_since_last_inspection,
    events_violation_count_730d,
    has_theft_finding,
    events_recovered_kwh_730d,
]


def _latest_per_customer(ci: np.ndarray, order_key: np.ndarray, n: int) -> np.ndarray:
    """Index (into the given rows) of each customer's row with the largest order_key; -1 where none."""
    out = np.full(n, -1, dtype=np.int64)
    if len(ci) == 0:
        return out
    order = np.lexsort((order_key, ci))
    last = np.r_[ci[order][1:] != ci[order][:-1], True]
    out[ci[order][last]] = order[last]
    return out


def application_state(at: AsOf) -> dict[str, np.ndarray]:
    n, today = at.part.n, at.day_num
    pos, t = at.rows("suspensions")
    pos = pos[t.customer[pos] >= 0]
    ci, applied = t.customer[pos], t["applied_day"][pos]
    start, end = t["start_day"][pos], t["end_day"][pos]
    kind, capacity = t["kind"][pos], np.nan_to_num(t["capacity_kva"][pos])
    is_susp, is_red = kind == SUSPENSION, kind == REDUCTION
    is_restore = np.isin(kind, RESTORES)
    age = today - applied

    def per_customer(mask: np.ndarray, weights: np.ndarray | None = None) -> np.ndarray:
        return np.bincount(ci[mask], weights=None if weights is None else weights[mask], minlength=n).astype(
            float
        )

    change = is_susp | is_red
    last_change = np.full(n, -np.inf)
    np.maximum.at(last_change, ci[change], applied[change])

    # In force at T: the latest suspension-or-restore (resp. reduction-or-restore) that started by T decides.
    started = start <= today
    susp_family = (is_susp | (kind == RESTORES[0])) & started

    # Days suspended: each suspension runs from its start to its planned end, T, or the next suspension or
    # restoration of the customer, whichever comes first, so an amended application (a second one inside the
    # first's spell) and an early restoration (暂停恢复) count each day once. Overlap with the last 365 days,
    # and with last year's copy of the label window, [T − 364, T − 365 + horizon].
    fam = np.flatnonzero(susp_family)
    fam = fam[np.lexsort((applied[fam], start[fam], ci[fam]))]
    next_start = np.full(len(fam), np.inf)
    next_start[:-1] = np.where(ci[fam][1:] == ci[fam][:-1], start[fam][1:], np.inf)
    lo = np.maximum(start[fam], today - 364)
    planned = end[fam]
    hi = np.minimum(np.minimum(np.where(np.isnan(planned), today, planned), today), next_start - 1)
    spell = is_susp[fam]
    overlap = np.where(spell, np.clip(hi - lo + 1, 0, None), 0.0)
    season_hi = np.minimum(hi, today - 365 + LABEL_HORIZON_DAYS)
    overlap_season = np.where(spell, np.clip(season_hi - lo + 1, 0, None), 0.0)
    red_family = (is_red | (kind == RESTORES[1])) & started
    idx = fam  # the suspension family's rows, found above for the suspended days
    latest = _latest_per_customer(ci[idx], start[idx] * 1e6 + applied[idx], n)
    has = latest >= 0
    row = idx[latest[has]]
    suspended = np.zeros(n)
    suspended[np.flatnonzero(has)] = (is_susp[row] & ~(end[row] <= today)).astype(float)
    idx = np.flatnonzero(red_family)
    latest = _latest_per_customer(ci[idx], start[idx] * 1e6 + applied[idx], n)
    has = latest >= 0
    row = idx[latest[has]]
    reduced = np.zeros(n)
    reduced[np.flatnonzero(has)] = np.where(is_red[row] & ~(end[row] <= today), capacity[row], 0.0)

    return {
        "suspension_365d": per_customer(is_susp & (age < 365)),
        "suspension_730d": per_customer(is_susp & (age < 730)),
        "reduction_730d": per_customer(is_red & (age < 730)),
        "restore_365d": per_customer(is_restore & (age < 365)),
        "change_same_season_last_year": per_customer(
            change & (age >= 365 - LABEL_HORIZON_DAYS) & (age < 365)
        ),
        "days_since_change": np.where(np.isinf(last_change), np.nan, today - last_change),
        "suspended_days_365d": np.bincount(ci[fam], weights=overlap, minlength=n).astype(float),
        "suspended_days_same_season_last_year": np.bincount(
            ci[fam], weights=overlap_season, minlength=n
        ).astype(float),
        "suspended_now": suspended,
        "reduced_kva": reduced,
        "scheduled": per_customer(change & (start > today)) > 0,
    }


def inspection_state(at: AsOf) -> dict[str, np.ndarray]:
    n, today = at.part.n, at.day_num
    pos, t = at.rows("inspections")
    pos = pos[t.customer[pos] >= 0]
    ci, day, result = t.customer[pos], t["day"][pos], t["result"][pos]
    recent = (today - day) < 730
    last = np.full(n, -np.inf)
    np.maximum.at(last, ci, day)
    theft = result == InspectionResult.THEFT.value
    violation = result == InspectionResult.VIOLATION.value
    recovered = np.nan_to_num(t["recovered_kwh"][pos])
    return {
        "count_730d": np.bincount(ci[recent], minlength=n).astype(float),
        "days_since": np.where(np.isinf(last), np.nan, today - last),
        "violation_730d": np.bincount(ci[recent & violation], minlength=n).astype(float),
        "theft_ever": np.bincount(ci[theft], minlength=n) > 0,
        "recovered_kwh_730d": np.bincount(ci[recent], weights=recovered[recent], minlength=n),
    }


def compute(at: AsOf) -> dict[str, np.ndarray]:
    capacity = at.part.customers.get("contract_capacity_kva")
    inputs: dict[str, object] = {
        "applications": application_state(at),
        "inspections": inspection_state(at),
        "capacity_kva": np.full(at.part.n, np.nan)
        if capacity is None
        else capacity.to_numpy(dtype=np.float64, na_value=np.nan),
    }
    return evaluate(FEATURES, inputs)
