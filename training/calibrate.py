"""Fit the probability calibrator on the validation window; the served probability is the calibrated one.

Produces serving's JSON-serialisable `Calibrator` (isotonic thresholds or Platt coefficients), never a pickle.
"""

from __future__ import annotations

import numpy as np

from serving.model import Calibrator
from training.tasks import TrainingError

EPS = 1e-12
TIE_BREAK = 1e-6


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
        y_knots = np.asarray(iso.y_thresholds_, dtype=np.float64)
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
