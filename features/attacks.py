"""Jokar et al. (2016) false-data attacks h1–h6 (DOMAIN.md §3), vectorised over many series at once.

Used by the synthetic generator (thieves' daily and monthly readings) and by the London benchmark, which
injects attacks into real smart-meter curves (customers × days, with NaNs for missing days).
"""

from __future__ import annotations

import numpy as np

ATTACK_KINDS = ("h1", "h2", "h3", "h4", "h5", "h6")

ATTACK_DOCS = {
    "h1": "α·x_t, one α ~ U(low, high) per series",
    "h2": "x_t set to 0 inside one random window [start, end) of at least min_window steps",
    "h3": "γ_t·x_t, a fresh γ_t ~ U(low, high) at every step",
    "h4": "γ_t·mean(x), the block mean scaled by a fresh γ_t ~ U(low, high)",
    "h5": "mean(x), the block mean reported at every step (flattens the profile)",
    "h6": "x reversed inside each block (moves usage into other tariff periods)",
}


class AttackError(ValueError):
    """An attack was asked for with an unknown kind or impossible parameters."""


def apply_attack(
    kind: str,
    x: np.ndarray,
    rng: np.random.Generator,
    *,
    onset: int | np.ndarray = 0,
    low: float = 0.1,
    high: float = 0.8,
    alpha: np.ndarray | None = None,
    min_window: int = 1,
    window: tuple[np.ndarray, np.ndarray] | None = None,
    period: int | None = None,
) -> np.ndarray:
    """Return a copy of ``x`` with attack ``kind`` applied from each series' onset to its end.

    ``x`` is one series (1-D) or many (2-D, series × time steps); NaNs are missing readings and stay
    missing. ``onset`` is the first attacked step, one for all series or one per series (an onset at or
    past the end leaves that series untouched). Steps before the onset are never changed.

    Parameters by kind: ``low``/``high`` bound α and γ (Jokar: 0.1–0.8); ``alpha`` fixes h1's factor per
    series; h2's zero window lies inside the attacked span with length ≥ ``min_window`` (the whole span if
    shorter), or is given as ``window=(start, end)`` step indices per series; h4, h5 and h6 work on blocks of
    ``period`` steps counted from the onset (24 for hourly curves of a day, None for the whole attacked span).
    """
    if kind not in ATTACK_KINDS:
        raise AttackError(f"attack kind {kind!r} is unknown; use one of {ATTACK_KINDS}")
    if not 0.0 <= low <= high:
        raise AttackError(f"attack factor bounds low={low}, high={high} must satisfy 0 <= low <= high")
    if period is not None and period < 1:
        raise AttackError(f"attack period={period} must be a positive step count, or None for the whole span")
    arr = np.asarray(x, dtype=np.float64)
    if arr.ndim not in (1, 2):
        raise AttackError(f"attack input has {arr.ndim} dimensions; pass one series or series × steps")
    one = arr.ndim == 1
    data = arr.reshape(1, -1) if one else arr
    n, steps = data.shape
    starts = np.broadcast_to(np.asarray(onset, dtype=np.int64), (n,)).copy()
    if (starts < 0).any():
        raise AttackError("attack onset must be a step index >= 0 for every series")
    np.minimum(starts, steps, out=starts)
    t = np.arange(steps)[None, :]
    attacked = t >= starts[:, None]
    out = data.copy()

    if kind == "h1":
        if alpha is None:
            factor = rng.uniform(low, high, size=n)
        else:
            factor = np.broadcast_to(np.asarray(alpha, dtype=np.float64), (n,))
        out = np.where(attacked, data * factor[:, None], data)
    elif kind == "h2":
        w_start, w_end = _zero_window(starts, steps, rng, min_window, window)
        zero = (t >= w_start[:, None]) & (t < w_end[:, None]) & attacked
        out = np.where(zero & ~np.isnan(data), 0.0, data)
    elif kind == "h3":
        gamma = rng.uniform(low, high, size=data.shape)
        out = np.where(attacked, data * gamma, data)
    elif kind in ("h4", "h5"):
        means = _block_means(data, starts, attacked, period)
        gamma = rng.uniform(low, high, size=data.shape) if kind == "h4" else 1.0
        out = np.where(attacked & ~np.isnan(data), gamma * means, data)
    else:  # h6
        out = _reverse_blocks(data, starts, attacked, period)
    return out.reshape(-1) if one else out


def _zero_window(
    starts: np.ndarray,
    steps: int,
    rng: np.random.Generator,
    min_window: int,
    window: tuple[np.ndarray, np.ndarray] | None,
) -> tuple[np.ndarray, np.ndarray]:
    n = starts.shape[0]
    if window is not None:
        w_start = np.broadcast_to(np.asarray(window[0], dtype=np.int64), (n,))
        w_end = np.broadcast_to(np.asarray(window[1], dtype=np.int64), (n,))
        if (w_end < w_start).any():
            raise AttackError("h2 window end must not precede its start for any series")
        return w_start, w_end
    span = steps - starts
    length_min = np.minimum(max(min_window, 1), span)
    # Uniform length in [min, span], then a uniform start that keeps the window inside the span.
    length = length_min + np.floor(rng.random(n) * (span - length_min + 1)).astype(np.int64)
    offset = np.floor(rng.random(n) * (span - length + 1)).astype(np.int64)
    w_start = starts + offset
    return w_start, w_start + length


def _block_ids(starts: np.ndarray, steps: int, period: int | None) -> np.ndarray:
    t = np.arange(steps)[None, :]
    rel = np.maximum(t - starts[:, None], 0)
    return np.zeros_like(rel) if period is None else rel // period


def _block_means(
    data: np.ndarray, starts: np.ndarray, attacked: np.ndarray, period: int | None
) -> np.ndarray:
    """Mean of the observed values in each series' block, broadcast back to every step of the block."""
    n, steps = data.shape
    block = _block_ids(starts, steps, period)
    n_blocks = int(block.max()) + 1 if block.size else 1
    gid = (np.arange(n)[:, None] * n_blocks + block).ravel()
    valid = (attacked & ~np.isnan(data)).ravel()
    values = np.where(valid, data.ravel(), 0.0)
    sums = np.bincount(gid, weights=values, minlength=n * n_blocks)
    counts = np.bincount(gid, weights=valid.astype(np.float64), minlength=n * n_blocks)
    with np.errstate(invalid="ignore", divide="ignore"):
        means = sums / counts
    return means[gid].reshape(n, steps)


def _reverse_blocks(
    data: np.ndarray, starts: np.ndarray, attacked: np.ndarray, period: int | None
) -> np.ndarray:
    n, steps = data.shape
    t = np.broadcast_to(np.arange(steps)[None, :], (n, steps))
    block = _block_ids(starts, steps, period)
    size = steps if period is None else period
    b_start = starts[:, None] + block * size
    b_end = np.minimum(b_start + size, steps)
    source = np.where(attacked, b_start + b_end - 1 - t, t)
    out = np.take_along_axis(data, np.clip(source, 0, steps - 1), axis=1)
    # A reading the meter never sent stays missing; a step whose mirror was missing gets its block mean.
    means = _block_means(data, starts, attacked, period)
    out = np.where(np.isnan(out) & ~np.isnan(data), means, out)
    return np.where(np.isnan(data), np.nan, out)
