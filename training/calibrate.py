"""Fit the probability calibrator on the validation window; the served probability is the calibrated one.

Produces serving's JSON-serialisable `Calibrator` (isotonic thresholds or Platt coefficients), never a pickle.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from serving.model import TIE_BREAK, Calibrator
from training.tasks import TrainingError

EPS = 1e-12
PRIOR_ROWS = 1.0  # pseudo-rows at the label rate added to each isotonic step (`shrunk_steps`)


def fit_calibrator(p_raw: np.ndarray, y: np.ndarray, method: str) -> Calibrator:
    """Learn a monotone map from the booster's raw probability to the observed rate on held-out rows."""
    p_raw = np.asarray(p_raw, dtype=np.float64)
    y = np.asarray(y, dtype=np.float64)
    if method == "none":
        return Calibrator(method="none")
    if len(np.unique(y)) < 2:
        raise TrainingError(
            f"cannot calibrate ({method}) on a validation window with one class ({int(y.sum())} positives "
            f"in {len(y)} rows); widen split.validation_dates or the [as_of] range"
        )
    if method == "isotonic":
        from sklearn.isotonic import IsotonicRegression

        iso = IsotonicRegression(y_min=0.0, y_max=1.0, out_of_bounds="clip").fit(p_raw, y)
        x_knots = np.asarray(iso.X_thresholds_, dtype=np.float64)
        y_knots = shrunk_steps(np.asarray(iso.y_thresholds_, dtype=np.float64), iso.predict(p_raw), y)
        # Isotonic steps are flat, so many customers would tie and ties would decide who is visited first.
        # Blending in a ramp of weight 1e-6 makes the map strictly increasing (keeps the booster's order)
        # while moving no probability by more than 1e-6.
        ramp = np.linspace(0.0, 1.0, len(y_knots)) if len(y_knots) > 1 else np.zeros(1)
        y_knots = (1 - TIE_BREAK) * y_knots + TIE_BREAK * ramp
        return Calibrator(method="isotonic", x=[float(v) for v in x_knots], y=[float(v) for v in y_knots])
    if method == "platt":
        from sklearn.linear_model import LogisticRegression

        logit = np.log(np.clip(p_raw, EPS, 1 - EPS) / np.clip(1 - p_raw, EPS, 1)).reshape(-1, 1)
        lr = LogisticRegression(C=1e6, max_iter=1000).fit(logit, y)
        return Calibrator(method="platt", a=float(lr.coef_[0, 0]), b=float(lr.intercept_[0]))
    raise TrainingError(f"unknown calibration method {method!r}; use isotonic, platt or none")


def shrunk_steps(knots: np.ndarray, fitted: np.ndarray, y: np.ndarray) -> np.ndarray:
    """Each isotonic step's rate as if it held PRIOR_ROWS more rows at the window's label rate, kept monotone.

    A step is the rows' observed rate, so the end steps are often 0 or 1: two positives above every negative
    made the service show a probability of exactly 1.0, and the lowest step told thousands of customers they
    could not be positive at all. Shrinking a step of n rows with k positives to (k + PRIOR_ROWS x rate) /
    (n + PRIOR_ROWS) moves a step of thousands by a hair and a step of two to about 2/3, and never reaches
    0 or 1. Shrinking can reorder a tiny step against a large one, so the rates are made monotone again,
    weighted by the rows each stands for.
    """
    from sklearn.isotonic import IsotonicRegression

    levels, step = np.unique(fitted, return_inverse=True)
    rows = np.bincount(step).astype(np.float64) + PRIOR_ROWS
    rate = (np.bincount(step, weights=y) + PRIOR_ROWS * float(np.mean(y))) / rows
    rate = IsotonicRegression().fit(levels, rate, sample_weight=rows).predict(levels)
    at = np.clip(np.searchsorted(levels, knots), 0, len(levels) - 1)
    if not np.array_equal(levels[at], knots):  # every knot is some rows' fitted value (sklearn's PAV)
        raise AssertionError("an isotonic knot is no step of the fitted rows")
    return rate[at]


@dataclass(frozen=True)
class TransferCheck:
    """Leave-one-block-out Brier scores of the raw and the calibrated out-of-fold probabilities."""

    brier_raw: float
    brier_calibrated: float

    @property
    def helps(self) -> bool:
        return self.brier_calibrated < self.brier_raw


def transfer_check(blocks: list[tuple[np.ndarray, np.ndarray]], method: str) -> TransferCheck:
    """Does a calibrator fitted on some validation blocks improve the held-out block's probabilities?

    `blocks` are (raw probability, label) of the purged folds' validation blocks, each predicted by a booster
    that never saw it. Each block in turn is calibrated by a map fitted on the others; the Brier scores,
    pooled over every row, say whether the calibrator carries over from one period to another. With purged
    folds that is the question that matters: the served booster learns from every development date, so a map
    fitted on the fold boosters' outputs is only worth applying if it is not specific to the periods it saw.
    """
    if len(blocks) < 2:
        raise TrainingError("a transfer check needs at least two validation blocks")
    raw = calibrated = 0.0
    rows = 0
    for i, (p_held, y_held) in enumerate(blocks):
        p_rest = np.concatenate([p for j, (p, _) in enumerate(blocks) if j != i])
        y_rest = np.concatenate([y for j, (_, y) in enumerate(blocks) if j != i])
        calibrator = fit_calibrator(p_rest, y_rest, method)
        raw += float(np.sum((p_held - y_held) ** 2))
        calibrated += float(np.sum((calibrator.apply(p_held) - y_held) ** 2))
        rows += len(y_held)
    return TransferCheck(brier_raw=raw / rows, brier_calibrated=calibrated / rows)
