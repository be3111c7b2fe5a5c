"""One fit for every task: LightGBM with early stopping on the validation window, then calibration on it.

Also the logistic-regression baseline. Both follow scikit-learn's contract (`fit` returns self, learned state
ends in `_`). Frames become matrices only through serving's `FeatureSpec`, exactly as in the service.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd

from serving.model import TIE_BREAK, Calibrator, FeatureSpec, PackagedModel, ReasonText
from training.calibrate import TransferCheck, fit_calibrator, transfer_check
from training.config import LightGBMConfig
from training.evaluate import roc_auc
from training.split import TimeSplit
from training.tasks import TrainingError

logger = logging.getLogger(__name__)

# Keys of LightGBMConfig that are training-loop settings rather than booster parameters.
LOOP_KEYS = ("num_boost_round", "early_stopping_rounds")


def booster_params(config: LightGBMConfig) -> dict[str, Any]:
    """LightGBM parameters with the settings that make a fit reproducible bit for bit on any machine."""
    params = {k: v for k, v in config.model_dump().items() if k not in LOOP_KEYS}
    params.update(
        objective="binary",
        metric=["auc", "binary_logloss"],
        first_metric_only=True,  # early stopping follows ranking quality; calibration fixes the scale
        deterministic=True,
        force_col_wise=True,
        bagging_seed=config.seed,
        feature_fraction_seed=config.seed,
        data_random_seed=config.seed,
        verbosity=-1,
    )
    return params


class TaskModel:
    """LightGBM booster + calibrator for one task; `fit(train, validation)` learns both."""

    def __init__(self, task: str, features: list[str], params: LightGBMConfig, calibration: str = "isotonic"):
        self.task = task
        self.features = features
        self.params = params
        self.calibration = calibration

    def fit(self, train: pd.DataFrame, validation: pd.DataFrame) -> TaskModel:
        import lightgbm

        check_labels(train, "training")
        check_labels(validation, "validation")
        self.spec_ = FeatureSpec.from_frame(train, self.features)
        X_train, y_train = self.spec_.matrix(train), train["label"].to_numpy(dtype=np.float64)
        X_val, y_val = self.spec_.matrix(validation), validation["label"].to_numpy(dtype=np.float64)
        params = booster_params(self.params)
        cats = self.spec_.categorical_indices
        d_train = self._dataset(X_train, y_train)
        d_val = lightgbm.Dataset(X_val, y_val, reference=d_train, categorical_feature=cats)
        self.evals_: dict[str, Any] = {}
        self.booster_ = lightgbm.train(
            params,
            d_train,
            num_boost_round=self.params.num_boost_round,
            valid_sets=[d_val],
            valid_names=["validation"],
            callbacks=[
                lightgbm.early_stopping(
                    self.params.early_stopping_rounds, first_metric_only=True, verbose=False
                ),
                lightgbm.record_evaluation(self.evals_),
            ],
        )
        self.best_iteration_ = int(self.booster_.best_iteration or self.booster_.current_iteration())
        # The cap, not early stopping, ended the fit: it ran every round, and the best one is too near the end
        # for early_stopping_rounds without improvement to have followed it.
        # (The returned booster is already cut at its best tree; the evaluation record counts the rounds run.)
        cap, patience = self.params.num_boost_round, self.params.early_stopping_rounds
        rounds = max((len(v) for v in self.evals_.get("validation", {}).values()), default=0)
        self.round_cap_reached_ = rounds >= cap and self.best_iteration_ > cap - patience
        if self.round_cap_reached_:
            advice = "raise num_boost_round (or learning_rate) in the config"
            if patience >= cap:  # the best tree may have come early: a higher cap alone is not the fix
                advice = (
                    f"early_stopping_rounds = {patience} is not below num_boost_round = {cap}, so early "
                    "stopping never could end the fit: lower early_stopping_rounds (e.g. 40), and raise "
                    "num_boost_round only if the best tree is near its end"
                )
            logger.warning(
                "%s: the tree cap ended the fit, not early stopping: the best of lightgbm.num_boost_round = "
                "%d trees was tree %d, fewer than early_stopping_rounds = %d before the end; %s",
                self.task,
                cap,
                self.best_iteration_,
                patience,
                advice,
            )
        # Keep only the trees up to the best iteration so serving (and pred_contrib) never sees the rest.
        self.booster_ = lightgbm.Booster(
            model_str=self.booster_.model_to_string(num_iteration=self.best_iteration_)
        )
        del d_train, d_val, X_train, X_val  # the matrices, before calibration makes its own
        p_val = self.raw_probability(validation)
        self.calibrator_: Calibrator = fit_calibrator(p_val, y_val, self.calibration)
        self.calibration_check_: TransferCheck | None = None  # only purged folds check the calibrator
        self.validation_roc_auc_ = roc_auc(y_val, p_val)
        logger.info(
            "fitted %s: %d train rows, %d validation rows, %d trees",
            self.task,
            len(train),
            len(validation),
            self.best_iteration_,
        )
        return self

    def fit_split(self, split: TimeSplit, train: pd.DataFrame, validation: pd.DataFrame) -> TaskModel:
        """Fit as the split's scheme says: early stopping and calibration on the holdout, or purged folds."""
        if split.folds:
            return self.fit_folds(train, split.validation_pairs(train, validation))
        return self.fit(train, validation)

    def validate_split(self, split: TimeSplit, train: pd.DataFrame, validation: pd.DataFrame) -> TaskModel:
        """What the split says of these parameters, without the fit only a served model needs: on a holdout
        the early-stopped fit itself; on purged folds the folds alone (`validation_roc_auc_`, the pooled
        out-of-fold AUC, and `best_iteration_`, the refit's number of trees), not the refit on every
        development date. A search trial needs no more."""
        if split.folds:
            self._fit_out_of_fold(train, split.validation_pairs(train, validation))
            return self
        return self.fit(train, validation)

    def fit_folds(
        self, development: pd.DataFrame, pairs: Iterable[tuple[pd.DataFrame, pd.DataFrame]]
    ) -> TaskModel:
        """Purged K-fold (training/split.py): one early-stopped booster per (learn-from, validate-on) pair
        gives out-of-fold probabilities and a number of trees; the served booster learns from all of
        `development` with the folds' mean number of trees, scaled by how many more rows it sees (same
        learning rate, more data, more trees); the calibrator is fitted on every block's out-of-fold
        probabilities, and served only if it carries over from block to block (`transfer_check`)."""
        import lightgbm

        p_out, y_out, n_pairs = self._fit_out_of_fold(development, pairs)
        self.spec_ = FeatureSpec.from_frame(development, self.features)
        data = self._dataset(self.spec_.matrix(development), development["label"].to_numpy(dtype=np.float64))
        self.evals_ = {}
        params = booster_params(self.params)
        self.booster_ = lightgbm.train(params, data, num_boost_round=self.best_iteration_)
        del data  # its raw matrix (free_raw_data=False), before calibration
        p, y = np.concatenate(p_out), np.concatenate(y_out)
        method = self.calibration
        self.calibration_check_ = None
        if method != "none" and len(p_out) < 2:
            # One block's map cannot be checked against another, and it is fitted on a fold booster of a
            # few trees: applied to the refit's wider range of probabilities it clipped every customer to one
            # value.
            logger.warning(
                "%s: %s calibration left out: one purged fold could be validated, so the map cannot be "
                "checked from one period to another; the booster's own probabilities are served (more "
                "development dates give more blocks with both classes)",
                self.task,
                method,
            )
            method = "none"
        if method != "none":
            # Served only if a map fitted on some blocks improves the held-out block (training/calibrate.py);
            # otherwise the booster's own probabilities, learned from every development date, are served.
            self.calibration_check_ = transfer_check(list(zip(p_out, y_out, strict=True)), method)
            if not self.calibration_check_.helps:
                logger.info(
                    "%s: %s calibration left out: fitted on the other blocks it raises the held-out Brier "
                    "score from %.5f to %.5f",
                    self.task,
                    method,
                    self.calibration_check_.brier_raw,
                    self.calibration_check_.brier_calibrated,
                )
                method = "none"
        self.calibrator_ = fit_calibrator(p, y, method)
        logger.info(
            "fitted %s on %d development rows, %d folds (trees %s) -> %d trees",
            self.task,
            len(development),
            n_pairs,
            self.fold_trees_,
            self.best_iteration_,
        )
        return self

    def _fit_out_of_fold(
        self, development: pd.DataFrame, pairs: Iterable[tuple[pd.DataFrame, pd.DataFrame]]
    ) -> tuple[list[np.ndarray], list[np.ndarray], int]:
        """The purged folds' boosters: each block's out-of-fold probabilities and labels (the folds with one
        class skipped) and the number of pairs; sets `fold_trees_`, `best_iteration_` (the refit's trees)
        and `validation_roc_auc_` (pooled out-of-fold)."""
        check_labels(development, "development")
        p_out, y_out, trees, rows = [], [], [], []
        fold_capped: list[bool] = []
        n_pairs = 0
        for learn, judge in pairs:  # one fold's frames at a time (`split.ValidationPairs`)
            n_pairs += 1
            if learn["label"].nunique() < 2 or judge["label"].nunique() < 2:
                # A rare label on a small utility can leave a block without positives: nothing to judge.
                logger.warning(
                    "%s: skipping a fold with one class (%d rows to learn from, %d to validate on)",
                    self.task,
                    len(learn),
                    len(judge),
                )
                del learn, judge
                continue
            fold = TaskModel(self.task, self.features, self.params, calibration="none").fit(learn, judge)
            p_out.append(fold.raw_probability(judge))
            y_out.append(judge["label"].to_numpy(dtype=np.float64))
            trees.append(fold.best_iteration_)
            fold_capped.append(fold.round_cap_reached_)
            rows.append(len(learn))
            del learn, judge, fold  # before the next fold's frames are made
        if not trees:
            raise TrainingError(
                f"every one of the {n_pairs} purged folds has a single class to learn from or validate "
                f"on; widen the config's [as_of] range, lower split.folds or use split.scheme = 'holdout'"
            )
        self.fold_trees_ = trees
        self.round_cap_reached_ = any(fold_capped)  # each such fold has warned
        self.best_iteration_ = max(1, round(float(np.mean(trees)) * len(development) / float(np.mean(rows))))
        self.validation_roc_auc_ = roc_auc(np.concatenate(y_out), np.concatenate(p_out))  # pooled out-of-fold
        return p_out, y_out, n_pairs

    def _dataset(self, X: np.ndarray, y: np.ndarray):  # type: ignore[no-untyped-def]
        import lightgbm

        return lightgbm.Dataset(
            X,
            y,
            feature_name=self.features,
            categorical_feature=self.spec_.categorical_indices,
            free_raw_data=False,
        )

    def raw_probability(self, frame: pd.DataFrame) -> np.ndarray:
        return np.asarray(self.booster_.predict(self.spec_.matrix(frame)), dtype=np.float64)

    def predict_proba(self, frame: pd.DataFrame) -> np.ndarray:
        """Calibrated probability, computed the way the service computes it."""
        return self.package().predict_proba(self.spec_.matrix(frame))

    def package(
        self,
        reasons: dict[str, ReasonText] | None = None,
        bands: dict[str, float] | None = None,
        score_quantiles: list[float] | None = None,
        metrics: dict[str, float] | None = None,
        info: dict[str, Any] | None = None,
    ) -> PackagedModel:
        package = PackagedModel(
            task=self.task,
            booster=self.booster_,
            spec=self.spec_,
            calibrator=self.calibrator_,
            reasons=reasons or {},
            score_quantiles=score_quantiles or [],
            metrics=metrics or {},
            info=info or {},
        )
        if bands:
            package.bands = bands
        return package


class LogisticBaseline:
    """Logistic regression on the same features: imputed, standardised numbers and one-hot categoricals.

    Numbers are clipped to the range they had in training, as the booster's splits hold them: a feature that
    grows with the calendar (months of bills on record, in a warehouse whose bills start on one day) was
    extrapolated past every training value, and a backtest window's baseline put 91 % of the test rows above
    0.5 at a 5.6 % label rate (ECE 0.72).

    Fitted on at most `max_rows` training rows (above that, a seeded sample of the same share of each class;
    `train_rows_` and `train_label_rate_` say what it saw): a linear model of ~70
    features gains nothing from more, while its fit holds several float64 copies of the matrix (+2.2 GiB on a
    0.46 GiB set) and was training's peak memory on a 2.9 M-row theft set (200,000 customers)."""

    MAX_ROWS = 1_500_000

    def __init__(self, features: list[str], seed: int = 0, max_rows: int = MAX_ROWS):
        self.features = features
        self.seed = seed
        self.max_rows = max_rows
        self.bounds_: dict[str, tuple[float, float]] = {}  # each number's training range, set by `fit`

    def fit(self, train: pd.DataFrame) -> LogisticBaseline:
        from sklearn.compose import ColumnTransformer
        from sklearn.impute import SimpleImputer
        from sklearn.linear_model import LogisticRegression
        from sklearn.pipeline import make_pipeline
        from sklearn.preprocessing import OneHotEncoder, StandardScaler
        from threadpoolctl import threadpool_limits

        check_labels(train, "training")
        if len(train) > self.max_rows:  # the same share of each class, so rare positives are all kept in kind
            share = self.max_rows / len(train)
            train = train.groupby("label", group_keys=False).sample(frac=share, random_state=self.seed)
            logger.info(
                "logistic baseline: fitted on a %.0f %% sample (%d rows) of the training rows",
                100 * share,
                len(train),
            )
        self.train_rows_, self.train_label_rate_ = len(train), float(train["label"].mean())
        self.spec_ = FeatureSpec.from_frame(train, self.features)
        numeric = [n for n in self.features if n not in self.spec_.categorical]
        self.bounds_ = {}
        seen = self._inputs(train)
        for name in numeric:
            values = seen[name].to_numpy()
            if np.isfinite(values).any():
                self.bounds_[name] = (float(np.nanmin(values)), float(np.nanmax(values)))
        categorical = list(self.spec_.categorical)
        transformer = ColumnTransformer(
            [
                (
                    "numeric",
                    make_pipeline(
                        SimpleImputer(strategy="median", keep_empty_features=True), StandardScaler()
                    ),
                    numeric,
                ),
                ("categorical", OneHotEncoder(handle_unknown="ignore"), categorical),
            ]
        )
        self.pipeline_ = make_pipeline(
            transformer, LogisticRegression(max_iter=2000, C=1.0, random_state=self.seed)
        )
        # One BLAS thread: on ~100 columns threads only add spin-wait (10x slower on a busy 2-core box).
        with threadpool_limits(1):
            self.pipeline_.fit(seen, train["label"].to_numpy(dtype=int))  # inside its own bounds already
        return self

    def _inputs(self, frame: pd.DataFrame) -> pd.DataFrame:
        out = pd.DataFrame(index=frame.index)
        for name in self.features:
            if name in self.spec_.categorical:
                out[name] = frame[name].astype("string").fillna("(missing)").astype(object)
            else:
                values = pd.to_numeric(frame[name], errors="coerce").astype(np.float64)
                values = values.replace([np.inf, -np.inf], np.nan)
                out[name] = values.clip(*self.bounds_[name]) if name in self.bounds_ else values
        return out

    def predict_proba(self, frame: pd.DataFrame) -> np.ndarray:
        return self.pipeline_.predict_proba(self._inputs(frame))[:, 1]


@dataclass(frozen=True)
class Bands:
    """Probability thresholds for the service's risk bands, from the test window's score distribution."""

    high: float
    medium: float

    @classmethod
    def from_scores(cls, p: np.ndarray, high_share: float = 0.05, medium_share: float = 0.20) -> Bands:
        """Thresholds on the boundaries between the score's levels, where the share at or above comes closest
        to `high_share` and `medium_share`. A quantile landed inside a level: a theft model's lowest isotonic
        step held 95 % of the test window, its 80th percentile was that step, and everyone was medium (an
        outside tester: 2,653 of 2,799 customers, none low, a 0.2 % risk read 中)."""
        high = level_threshold(p, high_share)
        return cls(high=high, medium=min(level_threshold(p, medium_share), high))

    def as_dict(self) -> dict[str, float]:
        return {"high": self.high, "medium": self.medium}


def level_threshold(p: np.ndarray, share: float) -> float:
    """The lowest probability of the levels that hold about `share` of `p` from the top (closest on a log
    scale), so a level is never split and the lowest is never in. Probabilities within TIE_BREAK are one
    level, as the service reads a band (`PackagedModel.band`). One level for everyone: nobody is above."""
    q = np.sort(np.asarray(p, dtype=np.float64))[::-1]
    if len(q) == 0:
        return 1.0
    # customers at or above each boundary: where the next probability is more than TIE_BREAK lower
    counts = np.flatnonzero(q[:-1] - q[1:] > TIE_BREAK) + 1
    if len(counts) == 0:
        return float(q[0] + 2 * TIE_BREAK)  # one level: nobody stands out
    # Never the whole window: with its lowest level at 97 %, "everyone" was closer to 20 % than the 3 % above
    # it on a log scale, and every customer was medium again (a reviewer).
    best = int(counts[np.argmin(np.abs(np.log(counts / len(q) / share)))])
    return float(q[best - 1])


def check_labels(frame: pd.DataFrame, part: str) -> None:
    if "label" not in frame.columns:
        raise TrainingError(f"the {part} frame has no 'label' column; build it with features.training_set")
    labels = frame["label"].to_numpy()
    if len(labels) == 0 or labels.min() == labels.max():
        raise TrainingError(
            f"the {part} window has {len(labels)} rows and "
            f"{int(labels.sum()) if len(labels) else 0} positives: "
            f"one class only, nothing to learn or judge; widen the config's [as_of] range or the split"
        )
