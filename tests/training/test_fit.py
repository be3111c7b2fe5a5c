"""The fit: deterministic, honest under shuffled labels, trimmed at early stopping; baselines that work."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from training.config import LightGBMConfig, default_config
from training.evaluate import expected_calibration_error, roc_auc
from training.experiment import evaluate_on_test, split_frame
from training.fit import Bands, LogisticBaseline, TaskModel
from training.tasks import TrainingError, task_spec

# One thread: these frames are small, and OpenMP threads spinning on a busy 2-core box cost more than that.
FAST = LightGBMConfig(num_boost_round=200, early_stopping_rounds=20, num_threads=1)


def test_same_config_and_data_give_identical_metrics(frame: pd.DataFrame, features: list[str]) -> None:
    spec = task_spec("arrears")
    config = default_config("arrears")
    _, train, validation, test = split_frame(frame, spec, config)
    results = []
    for _ in range(2):
        model = TaskModel("arrears", features, FAST).fit(train, validation)
        p = model.predict_proba(test)
        _, metrics, _ = evaluate_on_test(test, p, None, spec, config.evaluation, None)
        results.append((model.booster_.model_to_string(), metrics))
    assert results[0][0] == results[1][0]  # the same trees, bit for bit
    assert results[0][1] == results[1][1]


def test_model_beats_linear_and_rule_baselines_on_nonlinear_signal(
    frame: pd.DataFrame, features: list[str]
) -> None:
    spec = task_spec("arrears")
    config = default_config("arrears")
    _, train, validation, test = split_frame(frame, spec, config)
    model = TaskModel("arrears", features, FAST).fit(train, validation)
    logistic = LogisticBaseline(features).fit(train)
    _, metrics, _ = evaluate_on_test(
        test, model.predict_proba(test), logistic.predict_proba(test), spec, config.evaluation, None
    )
    assert metrics["model"]["roc_auc"] > metrics["logistic"]["roc_auc"] > metrics["rule"]["roc_auc"] > 0.5
    oracle_auc = roc_auc(test["label"].to_numpy(), test["oracle_p"].to_numpy())
    assert metrics["model"]["roc_auc"] > 0.95 * oracle_auc
    assert metrics["model"]["ece"] < 0.03


def test_shuffled_labels_score_near_chance_on_a_later_as_of(frame: pd.DataFrame, features: list[str]) -> None:
    spec = task_spec("arrears")
    shuffled = frame.assign(label=np.random.default_rng(5).permutation(frame["label"].to_numpy()))
    _, train, validation, test = split_frame(shuffled, spec, default_config("arrears"))
    model = TaskModel("arrears", features, FAST).fit(train, validation)
    assert abs(roc_auc(test["label"].to_numpy(), model.predict_proba(test)) - 0.5) < 0.05


def test_early_stopping_keeps_only_the_best_trees(frame: pd.DataFrame, features: list[str]) -> None:
    _, train, validation, _ = split_frame(frame, task_spec("arrears"), default_config("arrears"))
    params = LightGBMConfig(num_boost_round=300, early_stopping_rounds=10, learning_rate=0.3, num_threads=1)
    model = TaskModel("arrears", features, params).fit(train, validation)
    assert model.best_iteration_ < 300
    assert model.booster_.num_trees() == model.best_iteration_
    assert not model.round_cap_reached_


def test_a_tree_cap_that_stops_training_before_early_stopping_does_is_said(
    frame: pd.DataFrame, features: list[str], caplog: pytest.LogCaptureFixture
) -> None:
    _, train, validation, _ = split_frame(frame, task_spec("arrears"), default_config("arrears"))
    params = LightGBMConfig(num_boost_round=3, early_stopping_rounds=10, learning_rate=0.01, num_threads=1)
    model = TaskModel("arrears", features, params).fit(train, validation)
    assert model.round_cap_reached_ and model.best_iteration_ == 3
    assert "the tree cap ended the fit, not early stopping" in caplog.text
    # The best tree need not be the last: any best tree within early_stopping_rounds of the cap means the cap
    # ended the fit (here the best is ~19 and patience 50 outlasts the caps).
    for cap in (40, 60):
        fast = LightGBMConfig(num_boost_round=cap, early_stopping_rounds=50, learning_rate=0.3, num_threads=1)
        capped = TaskModel("arrears", features, fast).fit(train, validation)
        assert capped.best_iteration_ < cap and capped.round_cap_reached_, (cap, capped.best_iteration_)
    # Patience at least the cap: early stopping never could act, and raising the cap is not the fix.
    assert (
        "early_stopping_rounds = 50 is not below num_boost_round = 40, so early stopping never" in caplog.text
    )
    config = default_config("arrears", split={"scheme": "purged_kfold", "folds": 3})
    split, train, validation, _ = split_frame(frame, task_spec("arrears"), config)
    tight = LightGBMConfig(num_boost_round=3, early_stopping_rounds=10, learning_rate=0.01, num_threads=1)
    assert TaskModel("arrears", features, tight).fit_split(split, train, validation).round_cap_reached_
    roomy = LightGBMConfig(num_boost_round=300, early_stopping_rounds=10, learning_rate=0.3, num_threads=1)
    assert not TaskModel("arrears", features, roomy).fit_split(split, train, validation).round_cap_reached_


def test_package_scores_like_the_model_and_carries_categoricals(
    frame: pd.DataFrame, features: list[str]
) -> None:
    _, train, validation, test = split_frame(frame, task_spec("arrears"), default_config("arrears"))
    model = TaskModel("arrears", features, FAST).fit(train, validation)
    package = model.package()
    assert package.spec.categorical["usage_category"] == sorted(train["usage_category"].unique())
    X = package.spec.matrix(test)
    contrib = package.contributions(X)
    np.testing.assert_allclose(contrib.sum(axis=1), package.raw_margin(X), atol=1e-9)


def test_logistic_baseline_handles_unseen_levels_and_missing_values(
    frame: pd.DataFrame, features: list[str]
) -> None:
    train = frame.iloc[:3000]
    later = frame.iloc[3000:3010].copy()
    later["usage_category"] = "agricultural"  # a level the baseline never saw
    later["signal_a"] = np.nan
    p = LogisticBaseline(features).fit(train).predict_proba(later)
    assert np.all((p > 0) & (p < 1))


def test_logistic_baseline_reads_numbers_only_inside_their_training_range(
    frame: pd.DataFrame, features: list[str]
) -> None:
    # A feature growing with the calendar (months of bills on record) lay past every training value in a
    # backtest window, and the extrapolated baseline put 91 % of the test rows above 0.5 (label rate 5.6 %).
    train = frame.iloc[:3000]
    logistic = LogisticBaseline(features).fit(train)
    later = frame.iloc[3000:3010]
    top = train["signal_a"].max()
    beyond = logistic.predict_proba(later.assign(signal_a=top * 1000))
    np.testing.assert_array_equal(beyond, logistic.predict_proba(later.assign(signal_a=top)))
    assert not np.array_equal(beyond, logistic.predict_proba(later))  # the feature is read, not dropped


def test_bands_follow_the_score_distribution() -> None:
    p = np.linspace(0, 1, 1001)
    bands = Bands.from_scores(p)
    assert (p >= bands.high).sum() == 50 and (p >= bands.medium).sum() == 200


def test_a_band_threshold_never_splits_a_level_or_makes_the_lowest_one_medium() -> None:
    # A theft model's lowest isotonic step (tilted by under 1e-6) held 95 % of the test window: the 80th
    # percentile fell inside it and every customer was medium, none low.
    rng = np.random.default_rng(0)
    p = np.concatenate(
        [
            0.0021 + rng.uniform(0, 5e-7, 8_500),  # the lowest step
            np.full(1_000, 0.03),
            np.full(350, 0.08),
            np.full(150, 0.20),
        ]
    )
    bands = Bands.from_scores(p)
    assert bands.high == pytest.approx(0.08) and bands.medium == pytest.approx(0.03)
    assert (p + 1e-6 >= bands.medium).mean() == pytest.approx(0.15)  # the lowest step is low
    # With the lowest level at 97 %, "everyone" was nearer 20 % than 3 % on a log scale: all medium again.
    for lowest in (0.9, 0.96, 0.97, 0.99):
        steps = np.concatenate(
            [np.full(int(10_000 * lowest), 0.002), np.full(10_000 - int(10_000 * lowest), 0.1)]
        )
        assert (steps + 1e-6 >= Bands.from_scores(steps).medium).mean() == pytest.approx(1 - lowest), lowest
    one_level = Bands.from_scores(np.full(100, 0.1) + rng.uniform(0, 5e-7, 100))
    assert one_level.high > 0.1 + 1e-6 and one_level.medium > 0.1 + 1e-6  # nobody stands out


def test_purged_folds_fit_is_deterministic_calibrated_and_refits_on_every_development_date(
    frame: pd.DataFrame, features: list[str]
) -> None:
    spec = task_spec("arrears")
    config = default_config("arrears", split={"scheme": "purged_kfold", "folds": 3})
    split, train, validation, test = split_frame(frame, spec, config)
    models = [TaskModel("arrears", features, FAST).fit_split(split, train, validation) for _ in range(2)]
    model = models[0]
    assert model.booster_.model_to_string() == models[1].booster_.model_to_string()
    # The served booster saw every development row, with the folds' trees scaled up by the extra rows.
    rows = [len(learn) for learn, _ in split.validation_pairs(train, validation)]
    expected = round(np.mean(model.fold_trees_) * len(train) / np.mean(rows))
    assert len(model.fold_trees_) == 3 and model.best_iteration_ == max(1, expected)
    assert model.booster_.num_trees() == model.best_iteration_
    assert 0.5 < model.validation_roc_auc_ < 1.0  # pooled out-of-fold
    p = model.predict_proba(test)
    _, metrics, _ = evaluate_on_test(test, p, None, spec, config.evaluation, None)
    assert metrics["model"]["roc_auc"] > 0.95 * roc_auc(test["label"].to_numpy(), test["oracle_p"].to_numpy())
    assert metrics["model"]["ece"] < 0.03


def test_purged_folds_score_near_chance_on_shuffled_labels(frame: pd.DataFrame, features: list[str]) -> None:
    spec = task_spec("arrears")
    shuffled = frame.assign(label=np.random.default_rng(5).permutation(frame["label"].to_numpy()))
    config = default_config("arrears", split={"scheme": "purged_kfold", "folds": 3})
    split, train, validation, test = split_frame(shuffled, spec, config)
    model = TaskModel("arrears", features, FAST).fit_split(split, train, validation)
    assert abs(roc_auc(test["label"].to_numpy(), model.predict_proba(test)) - 0.5) < 0.05
    assert abs(model.validation_roc_auc_ - 0.5) < 0.05


def test_purged_folds_skip_a_block_without_positives(frame: pd.DataFrame, features: list[str]) -> None:
    spec = task_spec("arrears")
    config = default_config("arrears", split={"scheme": "purged_kfold", "folds": 3})
    split, train, validation, _ = split_frame(frame, spec, config)
    first = train["as_of"].isin(split.folds[0])
    quiet = train.assign(label=np.where(first, 0, train["label"]))  # the first block has no positives
    model = TaskModel("arrears", features, FAST).fit_split(split, quiet, validation)
    assert len(model.fold_trees_) == 2
    with pytest.raises(TrainingError, match="every one of the 3 purged folds"):
        only_first = train.assign(label=first.astype(int))
        TaskModel("arrears", features, FAST).fit_split(split, only_first, validation)


def test_validating_a_split_gives_the_fits_numbers_without_its_refit(
    frame: pd.DataFrame, features: list[str]
) -> None:
    # A search trial paid the refit on every development date for numbers the folds alone give (a review).
    spec = task_spec("arrears")
    config = default_config("arrears", split={"scheme": "purged_kfold", "folds": 3})
    split, train, validation, _ = split_frame(frame, spec, config)
    fitted = TaskModel("arrears", features, FAST).fit_split(split, train, validation)
    checked = TaskModel("arrears", features, FAST, calibration="none").validate_split(
        split, train, validation
    )
    assert checked.validation_roc_auc_ == fitted.validation_roc_auc_
    assert checked.best_iteration_ == fitted.best_iteration_ and checked.fold_trees_ == fitted.fold_trees_
    assert not hasattr(checked, "booster_")  # no refit


def test_purged_folds_with_one_usable_block_serve_no_calibrator(
    frame: pd.DataFrame, features: list[str], caplog: pytest.LogCaptureFixture
) -> None:
    # A tester's suspension run validated one block: the map fitted on that fold's 2-tree booster, applied to
    # the 17-tree refit, clipped all 455 test customers to one probability (ROC-AUC 0.5, ECE 0.169).
    spec = task_spec("arrears")
    config = default_config("arrears", split={"scheme": "purged_kfold", "folds": 3})
    split, train, validation, _ = split_frame(frame, spec, config)
    pairs = list(split.validation_pairs(train, validation))[-1:]  # the others one class, say
    params = FAST.model_copy(update={"scale_pos_weight": 8.0})  # a calibrator that would otherwise be served
    with caplog.at_level("WARNING", logger="training.fit"):
        model = TaskModel("arrears", features, params).fit_folds(train, pairs)
    assert len(model.fold_trees_) == 1
    assert model.calibrator_.method == "none" and model.calibration_check_ is None
    assert "one purged fold could be validated" in caplog.text


@pytest.mark.parametrize("weight, served", [(1.0, None), (8.0, "isotonic")])
def test_purged_folds_serve_the_calibrator_only_where_it_carries_over(
    frame: pd.DataFrame, features: list[str], weight: float, served: str | None
) -> None:
    """Upweighted positives make every fold over-predict the same way, so the calibrator carries over and is
    served; whatever is decided, the held-out Brier scores behind it are kept."""
    spec = task_spec("arrears")
    config = default_config("arrears", split={"scheme": "purged_kfold", "folds": 3})
    split, train, validation, test = split_frame(frame, spec, config)
    params = FAST.model_copy(update={"scale_pos_weight": weight})
    model = TaskModel("arrears", features, params).fit_split(split, train, validation)
    check = model.calibration_check_
    assert check is not None and check.brier_calibrated > 0 and check.brier_raw > 0
    assert model.calibrator_.method == ("isotonic" if check.helps else "none")
    y = test["label"].to_numpy()
    ece_served = expected_calibration_error(y, model.predict_proba(test))
    if served is not None:
        assert model.calibrator_.method == served
        ece_raw = expected_calibration_error(y, model.raw_probability(test))  # the booster over-predicts
        assert ece_raw > 0.1 and ece_served < 0.4 * ece_raw
    else:
        assert ece_served < 0.03


def test_logistic_baseline_fits_a_stratified_sample_of_a_large_set(
    frame: pd.DataFrame, features: list[str], caplog: pytest.LogCaptureFixture
) -> None:
    import logging

    _, train, _, test = split_frame(frame, task_spec("arrears"), default_config("arrears"))
    caplog.set_level(logging.INFO, logger="training.fit")
    small = LogisticBaseline(features, max_rows=len(train) // 4).fit(train)
    assert "logistic baseline: fitted on a 25 % sample" in caplog.text
    assert small.train_rows_ == pytest.approx(len(train) / 4, abs=2)  # what the regression saw
    assert small.train_label_rate_ == pytest.approx(train["label"].mean(), abs=1e-3)  # stratified
    assert LogisticBaseline(features).fit(train).train_rows_ == len(train)  # below the cap: every row
    assert roc_auc(test["label"].to_numpy(), small.predict_proba(test)) > 0.6  # still a working baseline
    again = LogisticBaseline(features, max_rows=len(train) // 4).fit(train)
    assert np.array_equal(again.predict_proba(test), small.predict_proba(test))  # seeded
