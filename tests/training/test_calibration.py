"""Calibration on the validation window: monotone, strictly increasing (no ties), and actually calibrating."""

from __future__ import annotations

import numpy as np
import pytest

from training.calibrate import fit_calibrator, transfer_check
from training.evaluate import expected_calibration_error, roc_auc
from training.tasks import TrainingError


def overconfident(n: int = 20000, seed: int = 1) -> tuple[np.ndarray, np.ndarray]:
    """Raw scores that are the true probability pushed towards 0 and 1 (a typical boosted-tree distortion)."""
    rng = np.random.default_rng(seed)
    true_p = rng.beta(1, 12, size=n)
    y = (rng.random(n) < true_p).astype(int)
    logit = np.log(true_p / (1 - true_p))
    raw = 1 / (1 + np.exp(-2.5 * (logit + 1.0)))
    return raw, y


@pytest.mark.parametrize("method", ["isotonic", "platt"])
def test_calibration_reduces_ece_and_keeps_order(method: str) -> None:
    raw, y = overconfident()
    fit_raw, fit_y = raw[:10000], y[:10000]
    test_raw, test_y = raw[10000:], y[10000:]
    calibrator = fit_calibrator(fit_raw, fit_y, method)
    calibrated = calibrator.apply(test_raw)
    assert expected_calibration_error(test_y, calibrated) < 0.5 * expected_calibration_error(test_y, test_raw)
    assert expected_calibration_error(test_y, calibrated) < 0.02
    assert roc_auc(test_y, calibrated) == pytest.approx(roc_auc(test_y, test_raw), abs=2e-3)


def test_isotonic_is_strictly_increasing_and_json_ready() -> None:
    raw, y = overconfident(4000)
    calibrator = fit_calibrator(raw, y, "isotonic")
    grid = np.linspace(min(calibrator.x), max(calibrator.x), 5000)
    out = calibrator.apply(grid)
    assert np.all(np.diff(out) > 0)  # flat isotonic steps would tie customers
    assert all(isinstance(v, float) for v in calibrator.x + calibrator.y)
    assert min(calibrator.y) >= 0.0 and max(calibrator.y) <= 1.0


def test_isotonic_never_serves_certainty() -> None:
    # Two positives above every negative made the top step 1.0, and the service showed a probability of
    # exactly 1; the 3,000 negatives at the bottom made the lowest step 0.
    rng = np.random.default_rng(3)
    raw = np.concatenate([rng.uniform(0.0, 0.1, 3000), rng.uniform(0.1, 0.9, 2000), [0.95, 0.97]])
    y = np.concatenate([np.zeros(3000), rng.random(2000) < 0.2, [1.0, 1.0]]).astype(float)
    out = fit_calibrator(raw, y, "isotonic").apply(np.array([0.0, 0.05, 0.96, 0.99]))
    rate = y.mean()
    assert 0 < out[0] <= rate / 3001 + 1e-6  # one pseudo-row at the label rate among 3,000 negatives
    assert out[-1] == pytest.approx((2 + rate) / 3, abs=1e-6)  # two positives and the pseudo-row
    assert out[-1] < 1


def test_shrinking_moves_large_steps_by_little_and_keeps_order() -> None:
    from sklearn.isotonic import IsotonicRegression

    raw, y = overconfident()
    raw = np.round(raw, 3)  # ties in the raw score share one step
    plain = IsotonicRegression(out_of_bounds="clip").fit(raw, y).predict(raw)
    shrunk = fit_calibrator(raw, y, "isotonic").apply(raw)
    steps = np.unique(plain, return_counts=True)[1]
    assert np.abs(shrunk - plain).max() <= 1 / (steps.min() + 1) + 1e-6
    assert np.abs(shrunk - plain)[plain == plain.min()].max() < 1e-3  # the lowest step holds thousands
    order = np.argsort(raw, kind="stable")
    assert np.all(np.diff(shrunk[order]) >= 0)


def test_single_class_validation_is_refused() -> None:
    with pytest.raises(TrainingError, match="one class"):
        fit_calibrator(np.array([0.1, 0.2, 0.3]), np.array([0, 0, 0]), "isotonic")


def test_none_passes_through() -> None:
    calibrator = fit_calibrator(np.array([0.1, 0.7]), np.array([0, 1]), "none")
    assert list(calibrator.apply(np.array([0.1, 0.7]))) == [0.1, 0.7]


def blocks_of(make, seeds=(1, 2, 3), n: int = 4000) -> list[tuple[np.ndarray, np.ndarray]]:
    return [make(n, seed) for seed in seeds]


def calibrated(n: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """Scores that already are the probability of their label."""
    rng = np.random.default_rng(seed)
    p = rng.beta(1, 12, size=n)
    return p, (rng.random(n) < p).astype(int)


def test_transfer_check_keeps_a_calibrator_that_carries_over_from_block_to_block() -> None:
    check = transfer_check(blocks_of(overconfident), "isotonic")
    assert check.helps and check.brier_calibrated < 0.95 * check.brier_raw


@pytest.mark.parametrize("method", ["isotonic", "platt"])
def test_transfer_check_drops_a_calibrator_with_nothing_to_correct(method: str) -> None:
    check = transfer_check(blocks_of(calibrated), method)
    assert not check.helps and check.brier_calibrated >= check.brier_raw


def test_transfer_check_drops_a_correction_that_belongs_to_one_period() -> None:
    """One block over-predicts, the next under-predicts: what the map learns from one hurts the other."""
    p, y = calibrated(4000, 7)
    high = (np.clip(p * 2.0, 0, 1), y)
    low = (p * 0.5, y)
    check = transfer_check([high, low], "isotonic")
    assert not check.helps


def test_transfer_check_needs_two_blocks() -> None:
    with pytest.raises(TrainingError, match="at least two validation blocks"):
        transfer_check(blocks_of(calibrated, seeds=(1,)), "isotonic")


def test_one_isotonic_step_is_one_band_and_one_percentile() -> None:
    # An isotonic step holds many customers at one shown probability; the tie-break tilts the step by under
    # 1e-6, and the band threshold, a quantile of the test window, can land inside it. Three customers shown
    # at 6.6 % came out two 高 and one 中, at percentiles 95.05 and 94.06.
    from serving.model import PackagedModel
    from training.fit import Bands

    raw, y = overconfident()
    calibrator = fit_calibrator(raw[:10000], y[:10000], "isotonic")
    test = calibrator.apply(raw[10000:])
    bands = Bands.from_scores(test)
    package = PackagedModel(
        task="arrears",
        booster=None,
        spec=None,  # type: ignore[arg-type]
        calibrator=calibrator,
        bands=bands.as_dict(),
        score_quantiles=[float(q) for q in np.quantile(test, np.linspace(0, 1, 101))],
    )
    straddled = 0
    for shown in np.unique(np.round(test, 8)):  # one isotonic step: the same probability to 8 places
        step = test[np.round(test, 8) == shown]
        if len(step) < 2:
            continue
        # A threshold is a step's lowest probability (`level_threshold`), never inside it.
        assert not (step.min() < bands.high <= step.max() or step.min() < bands.medium <= step.max())
        straddled += bool(bands.high == step.min() or bands.medium == step.min())
        assert len(set(package.band(step))) == 1, shown
        assert len(set(package.percentile(step))) == 1, shown
    assert straddled  # a threshold is a step of several customers, or this test would prove nothing
