"""Optional Optuna search over LightGBM parameters; each trial is a nested MLflow run under the training run.

Trials are judged by validation ROC-AUC measured as the training run's own `validation_roc_auc` is: each trial
validates as the run does (`TaskModel.validate_split`), so on purged folds it is the pooled out-of-fold AUC,
one-class blocks are skipped as in training, and the best trial's number is the one the run then logs (the
test window stays untouched until the chosen model is evaluated). A trial skips the refit on every
development date, which only the served model needs.
Depth is capped at 8 so a searched model still explains a row quickly (see bench_explain_depth.py). The keys
searched and their ranges are `SEARCH_SPACE`; they override the config's values for those keys.
"""

from __future__ import annotations

import logging
from collections.abc import Callable

import numpy as np
import pandas as pd

from training.config import LightGBMConfig, SearchConfig
from training.fit import TaskModel
from training.split import TimeSplit
from training.tasks import TrainingError

logger = logging.getLogger(__name__)


# What the search overrides in [lightgbm], whatever the config says for these keys (the README and every
# shipped config's [search] comment list them); the other [lightgbm] keys are kept as written.
SEARCH_SPACE = {
    "learning_rate": "0.02 to 0.2 (log scale)",
    "max_depth": "3, 4, 5, 6 or 8",
    "num_leaves": "7 to 63, and at most 2 ** max_depth (the leaves a tree of that depth can have)",
    "min_child_samples": "10 to 300 (log scale)",
    "feature_fraction": "0.5 to 1.0",
    "lambda_l2": "0.001 to 30 (log scale)",
}
DEPTHS = (3, 4, 5, 6, 8)  # capped at 8 so a searched model still explains a row quickly


def suggest(trial) -> dict[str, float | int]:
    """One trial's [lightgbm] overrides (SEARCH_SPACE). The depth is drawn first and bounds the leaves: a
    tree of depth 3 has at most 8, so 61 leaves under it (as a tester's trial 0 drew) spent a trial on a
    setting LightGBM cuts back anyway."""
    depth = trial.suggest_categorical("max_depth", list(DEPTHS))
    return {
        "learning_rate": trial.suggest_float("learning_rate", 0.02, 0.2, log=True),
        "max_depth": depth,
        "num_leaves": trial.suggest_int("num_leaves", 7, min(63, 2**depth)),
        "min_child_samples": trial.suggest_int("min_child_samples", 10, 300, log=True),
        "feature_fraction": trial.suggest_float("feature_fraction", 0.5, 1.0),
        "lambda_l2": trial.suggest_float("lambda_l2", 1e-3, 30.0, log=True),
    }


def search_params(
    task: str,
    features: list[str],
    split: TimeSplit,
    train: pd.DataFrame,
    validation: pd.DataFrame,
    base: LightGBMConfig,
    search: SearchConfig,
    *,
    log_trials: bool = True,
    on_trial: Callable[[int, float], None] | None = None,
) -> tuple[LightGBMConfig, float]:
    """Best parameters found and their validation ROC-AUC. With `log_trials`, an MLflow run must be active.

    A split that cannot train (every purged fold with one class) fails the first trial with the fit's own
    TrainingError, raised here rather than through Optuna, which would log it as a failed trial's
    traceback."""
    import optuna

    optuna.logging.set_verbosity(optuna.logging.WARNING)
    failed: list[TrainingError] = []

    def objective(trial: optuna.Trial) -> float:
        candidate = base.model_copy(update=suggest(trial))
        try:
            model = TaskModel(task, features, candidate, calibration="none")
            model.validate_split(split, train, validation)
        except TrainingError as exc:  # the data's, not the parameters': every trial would fail alike
            failed.append(exc)
            trial.study.stop()
            raise optuna.TrialPruned() from exc
        auc, best_iteration = float(model.validation_roc_auc_), model.best_iteration_
        del model
        trial.set_user_attr("best_iteration", best_iteration)
        if log_trials:
            import mlflow

            parent = mlflow.active_run()
            experiment_id = parent.info.experiment_id if parent else None
            with mlflow.start_run(
                run_name=f"trial-{trial.number:03d}", nested=True, experiment_id=experiment_id
            ):
                mlflow.log_params({**trial.params, "best_iteration": best_iteration})
                mlflow.log_metric("validation_roc_auc", auc)
        if on_trial is not None:
            on_trial(trial.number, auc)
        return auc if np.isfinite(auc) else 0.0

    study = optuna.create_study(direction="maximize", sampler=optuna.samplers.TPESampler(seed=base.seed))
    study.optimize(objective, n_trials=search.n_trials, timeout=search.timeout_seconds)
    if failed:
        raise failed[0]
    best = base.model_copy(update=study.best_params)
    logger.info("search: %d trials, best validation roc_auc %.4f", len(study.trials), study.best_value)
    return best, float(study.best_value)
