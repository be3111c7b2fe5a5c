"""The Optuna search fits each trial as the training run fits its model: same folds, same skips, same AUC."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from training.config import LightGBMConfig, SearchConfig, default_config
from training.experiment import split_frame
from training.fit import TaskModel
from training.search import search_params
from training.tasks import TrainingError, task_spec

FAST = LightGBMConfig(num_boost_round=60, early_stopping_rounds=10, num_threads=1)
TWO = SearchConfig(enabled=True, n_trials=2)


def purged(frame: pd.DataFrame):
    config = default_config("arrears", split={"scheme": "purged_kfold", "folds": 3})
    return split_frame(frame, task_spec("arrears"), config)


def test_trials_skip_a_block_without_positives_as_training_does(
    frame: pd.DataFrame, features: list[str]
) -> None:
    # A rare label on a small utility: plain training skipped the block, the search stopped on a traceback.
    split, train, validation, _ = purged(frame)
    quiet = train.assign(label=np.where(train["as_of"].isin(split.folds[0]), 0, train["label"]))
    best, auc = search_params("arrears", features, split, quiet, validation, FAST, TWO, log_trials=False)
    assert 0.5 < auc < 1 and best.num_leaves != FAST.num_leaves


def test_a_split_with_no_fold_to_judge_fails_with_the_fits_error_not_optunas(
    frame: pd.DataFrame, features: list[str], capfd: pytest.CaptureFixture[str]
) -> None:
    split, train, validation, _ = purged(frame)
    only_first = train.assign(label=train["as_of"].isin(split.folds[0]).astype(int))
    with pytest.raises(TrainingError, match="every one of the 3 purged folds has a single class"):
        search_params("arrears", features, split, only_first, validation, FAST, TWO, log_trials=False)
    assert "Trial 0 failed" not in capfd.readouterr().err


def test_the_best_trial_scores_what_the_run_logs_as_validation_roc_auc(
    frame: pd.DataFrame, features: list[str]
) -> None:
    # Trials were judged by the folds' mean AUC (0.7912) while the run logged the pooled out-of-fold AUC
    # (0.7825) under the same name.
    split, train, validation, _ = purged(frame)
    best, auc = search_params("arrears", features, split, train, validation, FAST, TWO, log_trials=False)
    fitted = TaskModel("arrears", features, best).fit_split(split, train, validation)
    assert auc == fitted.validation_roc_auc_


def test_no_trial_draws_more_leaves_than_its_depth_allows(
    frame: pd.DataFrame, features: list[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    # A tester's trial 0 drew num_leaves = 61 under max_depth = 3, which allows 8: a trial spent on nothing.
    import training.search as search

    drawn: list[LightGBMConfig] = []

    class Recorded:  # stands for the fit: records what each trial asked for
        def __init__(self, task, features, params, calibration) -> None:
            drawn.append(params)
            self.validation_roc_auc_ = 0.5 + params.num_leaves / 1000
            self.best_iteration_ = 1

        def validate_split(self, *args) -> None:
            return None

    monkeypatch.setattr(search, "TaskModel", Recorded)
    split, train, validation, _ = purged(frame)
    trials = SearchConfig(enabled=True, n_trials=40)
    best, _ = search_params("arrears", features, split, train, validation, FAST, trials, log_trials=False)
    assert len(drawn) == 40
    assert all(p.num_leaves <= 2**p.max_depth for p in drawn), [(p.num_leaves, p.max_depth) for p in drawn]
    assert {p.max_depth for p in drawn} <= {3, 4, 5, 6, 8} and best.num_leaves <= 2**best.max_depth
    # The keys the search overrides, as the README and the configs' [search] comment list them.
    searched = {"learning_rate", "num_leaves", "max_depth", "min_child_samples", "feature_fraction"}
    assert set(search.SEARCH_SPACE) == searched | {"lambda_l2"}
