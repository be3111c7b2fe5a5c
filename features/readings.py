"""Daily-reading features (日冻结电量) as of T, where the optional `readings` table exists: zero-day runs,
sudden level drops (change points), weekday/weekend ratio, flat-line days and variance before/after.

Readings with date ≤ T are placed in a customer × day matrix of the 120 days ending on T (column 119 = T). A
warehouse without daily readings, or a customer without any in the window, gets NaN for every feature here.
"""

from __future__ import annotations

import numpy as np

from features import windows as w
from features.snapshot import AsOf, evaluate

WINDOW_DAYS = 120  # 30 recent days + the 90 before them
DROP_SIDE_DAYS = 14  # a level change must hold for two weeks on both sides to count as a change point
ZERO_KWH = 0.01
FLAT_TOLERANCE_KWH = 1e-6


# A day above this many times what the contract capacity draws in 24 hours is no reading of use. Overloads
# (超容) are real, and a transformer carries 1.3-1.5 times its rating for a while, so the bar sits well above.
OVERLOAD = 3.0


def readings_days_observed_90d(daily: np.ndarray) -> np.ndarray:
    return w.count(daily[:, -90:])


def readings_kwh_mean_30d(daily: np.ndarray) -> np.ndarray:
    return w.mean(daily[:, -30:], min_count=10)


def readings_kwh_change_pct_30d_vs_prev_90d(daily: np.ndarray) -> np.ndarray:
    return w.pct_change(w.mean(daily[:, -30:], 10), w.mean(daily[:, :-30], 30))


def readings_zero_days_30d(daily: np.ndarray) -> np.ndarray:
    recent = daily[:, -30:]
    return w.count_where(recent < ZERO_KWH, recent, min_count=10)


def readings_zero_days_90d(daily: np.ndarray) -> np.ndarray:
    recent = daily[:, -90:]
    return w.count_where(recent < ZERO_KWH, recent, min_count=30)


def readings_zero_run_max_days_90d(daily: np.ndarray) -> np.ndarray:
    recent = daily[:, -90:]
    runs = w.longest_run(~np.isnan(recent) & (recent < ZERO_KWH))
    return np.where(w.count(recent) >= 30, runs, np.nan)


def readings_flat_days_90d(daily: np.ndarray) -> np.ndarray:
    """Non-zero days equal to the day before: a constant curve (stuck register, attack h5)."""
    recent = daily[:, -91:]
    same = (np.abs(np.diff(recent, axis=1)) < FLAT_TOLERANCE_KWH) & (recent[:, 1:] >= ZERO_KWH)
    return np.where(w.count(recent[:, 1:]) >= 30, same.sum(axis=1).astype(np.float64), np.nan)


def readings_weekend_weekday_ratio_90d(daily: np.ndarray, weekend: np.ndarray) -> np.ndarray:
    recent, end = daily[:, -90:], weekend[-90:]
    return w.ratio(w.mean(recent[:, end], 6), w.mean(recent[:, ~end], 20))


def readings_level_drop_max_pct_90d(drop_pct: np.ndarray) -> np.ndarray:
    """Largest fall of the 14-day mean level across any day of the last 90 (a change point)."""
    return w.maximum(drop_pct)


def readings_days_since_level_drop(drop_pct: np.ndarray) -> np.ndarray:
    """Days from the largest level drop of the last 90 days to T."""
    filled = np.where(np.isnan(drop_pct), -np.inf, drop_pct)
    if filled.shape[1] == 0:
        return np.full(filled.shape[0], np.nan)
    at = filled.argmax(axis=1)
    return np.where(np.isinf(filled.max(axis=1)), np.nan, (filled.shape[1] - 1 - at) + DROP_SIDE_DAYS)


def readings_variance_ratio_30d_vs_prev_90d(daily: np.ndarray) -> np.ndarray:
    """Std of the last 30 days / std of the 90 before: attacks flatten (h4/h5) or scramble (h3) a curve."""
    return w.ratio(w.std(daily[:, -30:], 10), w.std(daily[:, :-30], 30))


def readings_cv_90d(daily: np.ndarray) -> np.ndarray:
    recent = daily[:, -90:]
    return w.ratio(w.std(recent, 30), w.mean(recent, 30))


def readings_negative_days_90d(negative: np.ndarray, daily: np.ndarray) -> np.ndarray:
    """Days that cannot be consumption in the last 90 days: a negative value (meter resets or reversed wiring,
    移相法; ingest quarantines them, a warehouse another pipeline writes may keep them) or more than the
    contract capacity could draw in 24 hours at `OVERLOAD` times its rating (a register rolling over:
    99,987 kWh in a day on 8 kVA)."""
    return np.where(
        w.count(daily[:, -90:]) + negative[:, -90:].sum(axis=1) > 0, negative[:, -90:].sum(axis=1), np.nan
    )


FEATURES = [
    readings_days_observed_90d,
    readings_kwh_mean_30d,
    readings_kwh_change_pct_30d_vs_prev_90d,
    readings_zero_days_30d,
    readings_zero_days_90d,
    readings_zero_run_max_days_90d,
    readings_flat_days_90d,
    readings_weekend_weekday_ratio_90d,
    readings_level_drop_max_pct_90d,
    readings_days_since_level_drop,
    readings_variance_ratio_30d_vs_prev_90d,
    readings_cv_90d,
    readings_negative_days_90d,
]


def _absent(name: str, n: int) -> np.ndarray:
    return np.zeros(n) if name == "readings_days_observed_90d" else np.full(n, np.nan)


def level_drops(daily: np.ndarray) -> np.ndarray:
    """For each split day s of the last 90 (14 days after it), % fall of the 14-day mean across s."""
    observed = ~np.isnan(daily)
    csum = np.concatenate(
        [np.zeros((len(daily), 1)), np.cumsum(np.where(observed, daily, 0.0), axis=1)], axis=1
    )
    ccnt = np.concatenate([np.zeros((len(daily), 1)), np.cumsum(observed, axis=1)], axis=1)
    width = daily.shape[1]
    splits = np.arange(width - 90, width - DROP_SIDE_DAYS + 1)
    k = DROP_SIDE_DAYS
    before_n = ccnt[:, splits] - ccnt[:, splits - k]
    after_n = ccnt[:, splits + k] - ccnt[:, splits]
    with np.errstate(invalid="ignore", divide="ignore"):
        before = (csum[:, splits] - csum[:, splits - k]) / before_n
        after = (csum[:, splits + k] - csum[:, splits]) / after_n
        drop = (before - after) / before * 100.0
    enough = (before_n >= k // 2) & (after_n >= k // 2) & (before > 0)
    return np.where(enough, drop, np.nan)


def _level_drops_where_read(daily: np.ndarray) -> np.ndarray:
    out = np.full((len(daily), 90 - DROP_SIDE_DAYS + 1), np.nan)
    read = np.flatnonzero((~np.isnan(daily[:, -90:])).any(axis=1))
    if len(read):
        out[read] = level_drops(daily[read])
    return out


def compute(at: AsOf) -> dict[str, np.ndarray]:
    n = at.part.n
    if not at.part.has_readings:  # no readings table (or none in this partition): every feature is NaN
        return {fn.__name__: _absent(fn.__name__, n) for fn in FEATURES}
    daily = np.full((n, WINDOW_DAYS), np.nan)
    negative = np.zeros((n, WINDOW_DAYS), dtype=bool)
    pos, t = at.rows("readings")
    first = at.day_num - (WINDOW_DAYS - 1)
    day = t["day"][pos]
    inside = (day >= first) & (t.customer[pos] >= 0)
    ci = t.customer[pos][inside]
    col = (day[inside] - first).astype(np.int64)
    kwh = t["kwh"][pos][inside]
    capacity = at.part.customers.get("contract_capacity_kva")
    kva = np.full(n, np.nan) if capacity is None else capacity.to_numpy(dtype=np.float64, na_value=np.nan)
    most = np.where(kva > 0, kva * 24.0 * OVERLOAD, np.inf)  # no capacity on file (or 0): no bar
    impossible = (kwh < 0) | (kwh > most[ci])  # a reset or reversal, not consumption
    daily[ci, col] = np.where(impossible, np.nan, kwh)
    negative[ci, col] = impossible
    # 1970-01-01 was a Thursday: weekday index (Mon=0) is (day + 3) % 7.
    weekday = (np.arange(first, first + WINDOW_DAYS).astype(np.int64) + 3) % 7
    inputs: dict[str, object] = {
        "daily": daily,
        "negative": negative,
        "weekend": weekday >= 5,
        "drop_pct": _level_drops_where_read(daily),
    }
    return evaluate(FEATURES, inputs)
