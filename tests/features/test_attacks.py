"""The Jokar attacks h1–h6 on hand-built series: formulas, onsets, NaNs and many series at once."""

from __future__ import annotations

import numpy as np
import pytest

from features.attacks import ATTACK_KINDS, AttackError, apply_attack


def _rng(seed: int = 0) -> np.random.Generator:
    return np.random.default_rng(seed)


# Two series of 60 steps: row 0 is flat (easy to read means), row 1 is a ramp (so h6 reversal is visible).
X = np.vstack([np.full(60, 10.0), np.arange(1.0, 61.0)])


@pytest.mark.parametrize("kind", ATTACK_KINDS)
def test_steps_before_onset_are_untouched_and_shape_is_kept(kind: str) -> None:
    onset = np.array([20, 45])
    out = apply_attack(kind, X, _rng(), onset=onset, min_window=5)
    assert out.shape == X.shape
    np.testing.assert_array_equal(out[0, :20], X[0, :20])
    np.testing.assert_array_equal(out[1, :45], X[1, :45])
    assert not np.shares_memory(out, X)


@pytest.mark.parametrize("kind", ["h1", "h2", "h3", "h4"])
def test_energy_stealing_attacks_lower_the_attacked_total(kind: str) -> None:
    out = apply_attack(kind, X, _rng(1), onset=10, min_window=30)
    assert (out[:, 10:].sum(axis=1) < X[:, 10:].sum(axis=1)).all()


def test_h1_scales_each_series_by_one_factor_in_bounds() -> None:
    out = apply_attack("h1", X, _rng(2), onset=0)
    ratio = out / X
    for row in ratio:
        assert np.allclose(row, row[0])
        assert 0.1 <= row[0] <= 0.8
    fixed = apply_attack("h1", X, _rng(2), alpha=np.array([0.5, 0.25]))
    np.testing.assert_allclose(fixed[1], X[1] * 0.25)


def test_h2_zeroes_one_window_of_at_least_min_window_inside_the_span() -> None:
    many = np.ones((500, 120))
    onset = np.random.default_rng(3).integers(0, 90, size=500)
    out = apply_attack("h2", many, _rng(4), onset=onset, min_window=30)
    zero = out == 0
    assert zero.any(axis=1).all()
    first = zero.argmax(axis=1)
    length = zero.sum(axis=1)
    assert (first >= onset).all()
    assert (length >= 30).all()
    # one contiguous window: zeros run from first to first + length - 1
    last = 119 - zero[:, ::-1].argmax(axis=1)
    np.testing.assert_array_equal(last - first + 1, length)


def test_h2_span_shorter_than_min_window_is_zeroed_entirely() -> None:
    # onset 50 of 60 steps leaves 10 steps, fewer than the 30-step minimum window.
    out = apply_attack("h2", X[:1], _rng(), onset=50, min_window=30)
    assert (out[0, 50:] == 0).all() and (out[0, :50] == 10).all()


def test_h2_explicit_window() -> None:
    out = apply_attack("h2", X, _rng(), window=(np.array([5, 0]), np.array([8, 2])))
    assert (out[0] == 0).sum() == 3 and (out[0, 5:8] == 0).all()
    assert (out[1, :2] == 0).all() and out[1, 2] == 3.0


def test_h3_draws_a_fresh_factor_at_each_step() -> None:
    out = apply_attack("h3", X, _rng(5))
    ratio = out[0] / X[0]
    assert ((ratio >= 0.1) & (ratio <= 0.8)).all()
    assert np.unique(ratio).size == ratio.size


def test_h4_and_h5_use_the_block_mean() -> None:
    # row 1 is a ramp 1..60; per block of 10 steps from onset 0, means are 5.5, 15.5, ...
    h5 = apply_attack("h5", X, _rng(), period=10)
    np.testing.assert_allclose(h5[1, :10], 5.5)
    np.testing.assert_allclose(h5[1, 50:], 55.5)
    whole = apply_attack("h5", X, _rng(), onset=30)
    np.testing.assert_allclose(whole[1, 30:], np.arange(31.0, 61.0).mean())
    h4 = apply_attack("h4", X, _rng(6), period=10)
    gamma = h4[1, :10] / 5.5
    assert ((gamma >= 0.1) & (gamma <= 0.8)).all() and np.unique(gamma).size == 10


def test_h6_reverses_each_block_and_keeps_the_total() -> None:
    out = apply_attack("h6", X, _rng(), onset=10, period=24)
    np.testing.assert_array_equal(out[1, 10:34], X[1, 10:34][::-1])
    # the last block is cut short by the end of the series: steps 34..59 (26 steps) -> 34..57, 58..59
    np.testing.assert_array_equal(out[1, 58:], X[1, 58:][::-1])
    assert out[1].sum() == X[1].sum()


def test_missing_readings_stay_missing() -> None:
    # NaNs at steps 3 (before onset) and 12, 40 (after) are days the meter never reported.
    x = np.arange(1.0, 61.0)
    x[[3, 12, 40]] = np.nan
    for kind in ATTACK_KINDS:
        out = apply_attack(kind, x, _rng(7), onset=10, min_window=30)
        assert out.ndim == 1
        np.testing.assert_array_equal(np.isnan(out), np.isnan(x))
    means = apply_attack("h5", x, _rng(), onset=10)
    np.testing.assert_allclose(means[11], np.nanmean(x[10:]))


def test_onset_past_the_end_leaves_series_untouched() -> None:
    for kind in ATTACK_KINDS:
        out = apply_attack(kind, X, _rng(), onset=np.array([60, 1000]))
        np.testing.assert_array_equal(out, X)


def test_same_rng_seed_gives_same_attack() -> None:
    for kind in ATTACK_KINDS:
        a = apply_attack(kind, X, _rng(9), onset=7, min_window=30)
        b = apply_attack(kind, X, _rng(9), onset=7, min_window=30)
        np.testing.assert_array_equal(a, b)


@pytest.mark.parametrize(
    "kwargs",
    [
        {"kind": "h9"},
        {"kind": "h1", "low": 0.9, "high": 0.1},
        {"kind": "h5", "period": 0},
        {"kind": "h1", "onset": -1},
    ],
)
def test_bad_parameters_raise_attack_error(kwargs: dict) -> None:
    kind = kwargs.pop("kind")
    with pytest.raises(AttackError):
        apply_attack(kind, X, _rng(), **kwargs)
