"""Window statistics over customer × time matrices (rows: customers, columns: months or days; NaN = no data).

The feature families slice their matrices into named windows and reduce them here, so every family treats
missing months and short histories the same way: a statistic with too few observed values is NaN, never an
error.
"""

from __future__ import annotations

import numpy as np

PCT_CAP = 1000.0  # growth above +1000 % carries no more information and makes unreadable reason texts
LOSS_RISE_CAP = 300.0  # an area's loss rise as a share of one customer's kWh fall (area_loss)


def count(m: np.ndarray) -> np.ndarray:
    return np.count_nonzero(~np.isnan(m), axis=1).astype(np.float64)


def _sum_count(m: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Row sums ignoring NaN and the number of observed cells, from one pass over the NaN mask."""
    observed = ~np.isnan(m)
    return np.where(observed, m, 0.0).sum(axis=1), np.count_nonzero(observed, axis=1).astype(np.float64)


def total(m: np.ndarray, min_count: int = 1) -> np.ndarray:
    out, n = _sum_count(m)
    return np.where(n >= min_count, out, np.nan)


def mean(m: np.ndarray, min_count: int = 1) -> np.ndarray:
    out, n = _sum_count(m)
    with np.errstate(invalid="ignore", divide="ignore"):
        out = out / n
    return np.where(n >= min_count, out, np.nan)


def std(m: np.ndarray, min_count: int = 2) -> np.ndarray:
    n = count(m)
    mu = mean(m)
    with np.errstate(invalid="ignore", divide="ignore"):
        var = np.nansum((m - mu[:, None]) ** 2, axis=1) / (n - 1)
    return np.where(n >= min_count, np.sqrt(var), np.nan)


def minimum(m: np.ndarray) -> np.ndarray:
    filled = np.where(np.isnan(m), np.inf, m)
    out = filled.min(axis=1) if m.shape[1] else np.full(m.shape[0], np.inf)
    return np.where(np.isinf(out), np.nan, out)


def maximum(m: np.ndarray) -> np.ndarray:
    filled = np.where(np.isnan(m), -np.inf, m)
    out = filled.max(axis=1) if m.shape[1] else np.full(m.shape[0], -np.inf)
    return np.where(np.isinf(out), np.nan, out)


def count_where(condition: np.ndarray, m: np.ndarray, min_count: int = 1) -> np.ndarray:
    """How many observed cells satisfy `condition` (NaN when fewer than `min_count` cells are observed)."""
    hits = np.sum(condition & ~np.isnan(m), axis=1).astype(np.float64)
    return np.where(count(m) >= min_count, hits, np.nan)


def corr(a: np.ndarray, b: np.ndarray, min_count: int = 6) -> np.ndarray:
    """Row-wise Pearson correlation over the cells observed in both; NaN with fewer cells or no variation."""
    both = ~(np.isnan(a) | np.isnan(b))
    n = both.sum(axis=1).astype(np.float64)
    x, y = np.where(both, a, 0.0), np.where(both, b, 0.0)
    with np.errstate(invalid="ignore", divide="ignore"):
        mx, my = x.sum(axis=1) / n, y.sum(axis=1) / n
        dx, dy = np.where(both, x - mx[:, None], 0.0), np.where(both, y - my[:, None], 0.0)
        r = (dx * dy).sum(axis=1) / np.sqrt((dx * dx).sum(axis=1) * (dy * dy).sum(axis=1))
    return np.where((n >= min_count) & np.isfinite(r), r, np.nan)


def ratio(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(b > 0, a / b, np.nan)


def pct_change(new: np.ndarray, old: np.ndarray) -> np.ndarray:
    """Percent change from `old` to `new`; NaN when `old` is not positive, capped at +PCT_CAP."""
    return np.minimum((ratio(new, old) - 1.0) * 100.0, PCT_CAP)


def slope_pct(lagged: np.ndarray, min_count: int = 3) -> np.ndarray:
    """OLS slope per month of a lag-ordered window (column 0 = latest), as % of the window's mean level.

    Normalising by the level makes a 1,000 kVA plant and a household comparable; a window whose mean is not
    positive has no defined trend (NaN).
    """
    with np.errstate(invalid="ignore", divide="ignore"):
        level = mean(lagged)
        out = slope(lagged, min_count) / level * 100.0
    return np.where(level > 0, np.clip(out, -PCT_CAP, PCT_CAP), np.nan)


def slope(lagged: np.ndarray, min_count: int = 3) -> np.ndarray:
    """OLS slope per step of a lag-ordered window (column 0 = latest), in the values' own unit."""
    k = lagged.shape[1]
    x = -np.arange(k, dtype=np.float64)[None, :]  # time runs forward as the lag falls
    observed = ~np.isnan(lagged)
    y = np.where(observed, lagged, 0.0)
    xs = np.where(observed, x, 0.0)
    n = observed.sum(axis=1).astype(np.float64)
    sx, sy = xs.sum(axis=1), y.sum(axis=1)
    sxx, sxy = (xs * xs).sum(axis=1), (xs * y).sum(axis=1)
    with np.errstate(invalid="ignore", divide="ignore"):
        out = (n * sxy - sx * sy) / (n * sxx - sx * sx)
    return np.where(n >= min_count, out, np.nan)


def longest_run(flags: np.ndarray) -> np.ndarray:
    """Longest run of consecutive True cells per row."""
    if flags.shape[1] == 0:
        return np.zeros(flags.shape[0])
    c = np.cumsum(flags, axis=1)
    at_false = np.where(~flags, c, 0)
    return (c - np.maximum.accumulate(at_false, axis=1)).max(axis=1).astype(np.float64)


def trailing_run(flags: np.ndarray) -> np.ndarray:
    """Run of consecutive True cells ending at the LAST column (e.g. zero months up to the latest bill)."""
    if flags.shape[1] == 0:
        return np.zeros(flags.shape[0])
    breaks = ~flags[:, ::-1]
    first_break = np.where(breaks.any(axis=1), breaks.argmax(axis=1), flags.shape[1])
    return first_break.astype(np.float64)


class LagIndex:
    """Where each row's lag k lives in a (rows × width) matrix: built once, applied to many matrices."""

    def __init__(self, last: np.ndarray, width: int, lags: int) -> None:
        n = len(last)
        idx = last[:, None] - np.arange(lags)[None, :]
        self.valid = (idx >= 0) & (last[:, None] >= 0) & (idx < width)
        self.flat = (np.arange(n)[:, None] * width + np.clip(idx, 0, max(width - 1, 0))).ravel()
        self.shape = (n, lags)
        self.width = width

    def take(self, matrix: np.ndarray) -> np.ndarray:
        if self.width == 0:
            return np.full(self.shape, np.nan)
        return np.where(self.valid, matrix.ravel().take(self.flat).reshape(self.shape), np.nan)


def align_lags(matrix: np.ndarray, last: np.ndarray, lags: int) -> np.ndarray:
    """Re-index rows so column k holds the value `k` steps before the row's `last` column (NaN before start).

    Rows with `last < 0` (nothing observed) come out all NaN.
    """
    return LagIndex(last, matrix.shape[1], lags).take(matrix)


def group_sum(values: np.ndarray, group: np.ndarray, n_groups: int) -> np.ndarray:
    """Sum the rows of `values` (1-D or 2-D) by `group` (0..n_groups-1); NaN counts as 0.

    Added one row after another (np.bincount), so rows of zeros change no bit: an area's billed kWh counts
    accounts not yet open at T as zeros, and np.add.reduceat's blocked sums rounded differently with the
    number of rows, so accounts opened after T moved area features in their last bits (an auditor)."""
    values = np.nan_to_num(np.asarray(values, dtype=np.float64))
    if values.ndim == 1:
        return np.bincount(group, weights=values, minlength=n_groups)
    out = np.zeros((n_groups, values.shape[1]))
    for j in range(values.shape[1]):
        out[:, j] = np.bincount(group, weights=values[:, j], minlength=n_groups)
    return out
