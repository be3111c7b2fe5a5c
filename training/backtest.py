"""Rolling-origin backtest: the same experiment refitted as of earlier test windows.

One test window of three months is one draw: on a small utility its precision at 5 % rests on a few dozen
hits, and a seasonal label (suspension) moves with the months it happens to cover. The backtest moves the
origin back one test window at a time — window 1 is `gridrisk train`'s own test window, window 2 ends where
window 1 begins, and so on — and in each it splits the as-of dates before that window exactly as training does
(same gap, same folds), fits the booster and the logistic baseline on them and scores the model, both
baselines and (on generated data) the oracle on the window. The model is never shown a label from its test
window or after it. The answer to "does the model beat the logistic baseline?" is then the paired difference
over windows with its standard error, not one window's sign.
"""

from __future__ import annotations

import logging
import math
import re
import tempfile
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd

from features.sample import members
from training.config import ExperimentConfig
from training.experiment import (
    Progress,
    _noop,
    checked_frame,
    fit_and_evaluate,
    load_training_frame,
    log_written,
    resolved_config,
    split_frame,
    truth_dir_for,
)
from training.registry import ensure_experiment, experiment_name
from training.split import TimeSplit, sorted_dates
from training.tasks import TrainingError, task_spec

logger = logging.getLogger(__name__)

SCORERS = ("model", "logistic", "rule", "oracle")
BASELINES = ("logistic", "rule")
WINDOW_METRICS = ("roc_auc", "pr_auc", "ece", "brier", "true_roc_auc")  # true_: theft on generated data


@dataclass
class BacktestWindow:
    number: int  # 1 = the latest (training's own test window)
    split: TimeSplit  # the dates this window trained, validated and tested on
    metrics: dict[str, dict[str, float]]  # scorer -> metrics, as in TrainingReport

    @property
    def test_start(self) -> pd.Timestamp:
        return self.split.test[0]

    @property
    def test_end(self) -> pd.Timestamp:
        return self.split.test[-1]


@dataclass
class Comparison:
    """The model's primary metric minus a baseline's, paired by window."""

    baseline: str
    windows: int
    wins: int
    mean_difference: float
    standard_error: float  # of the mean difference; NaN with one window


@dataclass
class BacktestReport:
    task: str
    primary_metric: str
    windows: list[BacktestWindow]
    requested: int
    stopped: str | None = None  # why fewer windows than asked for were run
    run_id: str | None = None
    comparisons: list[Comparison] = field(default_factory=list)

    def table(self) -> pd.DataFrame:
        """One row per window: test dates, rows, positives, then <scorer>_<metric> for the primary metric,
        ROC-AUC, PR-AUC, (for scorers with probabilities) ECE and Brier, and for theft on generated data the
        ROC-AUC against every true thief."""
        rows = []
        for w in self.windows:
            model = w.metrics["model"]
            row: dict[str, object] = {
                "window": w.number,
                "test_start": w.test_start.date(),
                "test_end": w.test_end.date(),
                "rows": int(model["rows"]),
                "positives": int(model["positives"]),
            }
            for scorer in SCORERS:
                if scorer not in w.metrics:
                    continue
                for metric in (self.primary_metric, *WINDOW_METRICS):
                    if metric in w.metrics[scorer]:
                        row[f"{scorer}_{metric}"] = w.metrics[scorer][metric]
            rows.append(row)
        return pd.DataFrame(rows)

    def means(self) -> dict[str, float]:
        """Mean over the windows of every <scorer>_<metric> column of `table`."""
        table = self.table()
        skip = {"window", "test_start", "test_end"}
        return {c: float(table[c].mean()) for c in table.columns if c not in skip}


def compare(windows: list[BacktestWindow], primary: str, baseline: str) -> Comparison:
    diff = np.array([w.metrics["model"][primary] - w.metrics[baseline][primary] for w in windows])
    se = float(diff.std(ddof=1) / math.sqrt(diff.size)) if diff.size > 1 else float("nan")
    return Comparison(baseline, int(diff.size), int((diff > 0).sum()), float(diff.mean()), se)


def window_rows(
    frame: pd.DataFrame, end: pd.Timestamp, test_from: pd.Timestamp, kept: np.ndarray | None
) -> pd.DataFrame:
    """The rows a window sees: as-of dates up to `end`; before `test_from`, only the `kept` customers."""
    inside = frame["as_of"] <= end
    if kept is not None:
        inside &= kept | (frame["as_of"] >= test_from)
    return frame[inside]


def backtest_frame(
    frame: pd.DataFrame,
    config: ExperimentConfig,
    *,
    windows: int,
    truth_dir: Path | None = None,
    features: list[str] | None = None,
    progress: Progress = _noop,
    on_window: Callable[[BacktestWindow], None] | None = None,
) -> BacktestReport:
    """Fit and score the config's model and baselines on `windows` successive test windows, latest first.

    Stops early (and says why in `stopped`) when a window leaves too few earlier dates for the config's split;
    raises TrainingError when not even the latest window can be split.
    """
    if windows < 1:
        raise TrainingError(f"a backtest needs at least one window, not {windows}")
    spec = task_spec(config.task)
    features = list(features) if features is not None else spec.features
    frame = checked_frame(frame, spec, features)
    if config.search.enabled:
        logger.warning("the backtest fits the [lightgbm] parameters; the search is not rerun per window")
    dates = sorted_dates(frame["as_of"].unique())
    step = config.split.test_dates
    done: list[BacktestWindow] = []
    stopped = None
    # [sample]: the frame keeps every window's test dates whole; each window learns from the sampled customers
    # only, as `gridrisk train` would on the data up to its test window.
    share, seed = config.sample.customers, config.sample.seed
    kept = members(frame["customer_id"].to_numpy(), share, seed) if share < 1 else None
    for k in range(windows):
        # A window that split has more than `step` dates, so the next cut is never before the first date.
        last = len(dates) - 1 - k * step
        window = window_rows(frame, dates[last], dates[max(last - step + 1, 0)], kept)
        progress("fit", k / windows)
        try:
            # Window 1 is training's own: a split it cannot make is the warehouse's length, and the refusal
            # says how long it must be. A later window is short because the windows after it took its dates.
            split, train, validation, test = split_frame(window, spec, config, hint=k == 0)
            fitted = fit_and_evaluate(
                split, train, validation, test, config, config.lightgbm, features, truth_dir=truth_dir
            )
        except TrainingError as exc:
            stopped = f"window {k + 1} (test dates ending {dates[last].date()}): {exc}"
            if k > 0:
                stopped = f"window {k + 1} (test dates ending {dates[last].date()}): {_facts(str(exc))}"
                stopped += (
                    f". At most {k} window{'s' if k > 1 else ''} fit{'' if k > 1 else 's'} this warehouse "
                    f"and split ({config.split.scheme}, {step} test dates a window): each window moves the "
                    f"test back {step} as-of dates, and window {k + 1} leaves too few before it; ask for "
                    f"--windows {k}, or start the [as_of] range earlier if the bills go back further"
                )
            break
        result = BacktestWindow(k + 1, split, fitted.metrics)
        done.append(result)
        if on_window is not None:
            on_window(result)
    if not done:
        raise TrainingError(f"no backtest window could be fitted: {stopped}")
    report = BacktestReport(spec.task.value, spec.primary_metric, done, windows, stopped)
    report.comparisons = [compare(done, spec.primary_metric, b) for b in BASELINES if b in done[0].metrics]
    return report


# Where a split's refusal turns from what it found to what to change in the config: advice for `train`.
SPLIT_ADVICE = re.compile(r"(?:\. |; )(?=[Ss]tart the \[as_of\] range|widen the config)")


def _facts(message: str) -> str:
    """A split's refusal without its advice to widen the [as_of] range, which is `train`'s: a later backtest
    window lacks dates because the windows after it took them."""
    return SPLIT_ADVICE.split(message, maxsplit=1)[0]


def backtest_task(
    config: ExperimentConfig,
    *,
    warehouse: Path,
    windows: int,
    tracking_uri: str,
    artifact_root: Path | None,
    progress: Progress = _noop,
) -> BacktestReport:
    """Build the training set, run `backtest_frame` and log it as a backtest run in the task's experiment."""
    progress("training set", 0.0)
    # Every window's test dates keep all customers when [sample] cuts the earlier ones.
    whole = windows * config.split.test_dates
    frame = load_training_frame(config, Path(warehouse), progress, whole_dates=whole)
    report = backtest_frame(
        frame, config, windows=windows, truth_dir=truth_dir_for(config, Path(warehouse)), progress=progress
    )
    source = Path(config.training_set or warehouse).resolve()
    report.run_id = log_backtest(
        report, config, tracking_uri, artifact_root, source=str(source), warehouse=Path(warehouse)
    )
    return report


def log_backtest(
    report: BacktestReport,
    config: ExperimentConfig,
    tracking_uri: str,
    artifact_root: Path | None,
    *,
    source: str = "",
    warehouse: Path | None = None,
) -> str:
    """One MLflow run (tag gridrisk.kind = backtest): per-window metrics as steps (step 1 = the latest
    window), their means, the paired comparisons, the window table and a plot. The config is logged as the
    windows used it (`resolved.json`: window 1's split holds every date of the others) and as written."""
    import mlflow

    mlflow.set_tracking_uri(tracking_uri)
    experiment_id = ensure_experiment(tracking_uri, experiment_name(report.task), artifact_root)
    table = report.table()
    with mlflow.start_run(experiment_id=experiment_id, run_name=f"backtest-{report.task}") as run:
        mlflow.set_tags(
            {
                "gridrisk.kind": "backtest",
                "task": report.task,
                "primary_metric": report.primary_metric,
                "data_source": source,
                "backtest_stopped": report.stopped or "",
            }
        )
        mlflow.log_dict(resolved_config(config, report.windows[0].split, warehouse), "config/resolved.json")
        log_written(config)
        mlflow.log_params({"windows_requested": report.requested, "windows": len(report.windows)})
        for _, row in table.iterrows():
            step = int(row["window"])
            mlflow.log_metrics(
                {f"backtest_{k}": float(v) for k, v in row.items() if k.startswith(SCORERS) and pd.notna(v)},
                step=step,
            )
        mlflow.log_metrics({f"backtest_mean_{k}": v for k, v in report.means().items() if np.isfinite(v)})
        for c in report.comparisons:
            mlflow.log_metrics(
                {
                    f"backtest_wins_vs_{c.baseline}": c.wins,
                    f"backtest_diff_vs_{c.baseline}": c.mean_difference,
                    **({f"backtest_diff_se_vs_{c.baseline}": c.standard_error} if c.windows > 1 else {}),
                }
            )
        with tempfile.TemporaryDirectory() as tmp:
            table.to_csv(Path(tmp) / "windows.csv", index=False)
            plot_backtest(report, Path(tmp) / "backtest.png")
            mlflow.log_artifacts(tmp, "backtest")
    return run.info.run_id


def plot_backtest(report: BacktestReport, path: Path) -> Path:
    """The primary metric and ROC-AUC of every scorer by test window, oldest on the left."""
    from training.plots import _pyplot

    plt = _pyplot()
    fig = backtest_figure(report, plt)
    fig.savefig(path, dpi=110, bbox_inches="tight")  # the legend sits outside the panels
    plt.close(fig)
    return path


def backtest_figure(report: BacktestReport, plt):
    """The two panels with one legend below them: inside the first panel it covered the oracle's line,
    which runs along the top."""
    table = report.table().sort_values("test_end")
    labels = [f"{s:%Y-%m}..{e:%Y-%m}" for s, e in zip(table["test_start"], table["test_end"], strict=True)]
    fig, axes = plt.subplots(1, 2, figsize=(10, 3.6))
    for ax, metric in zip(axes, (report.primary_metric, "roc_auc"), strict=True):
        for scorer in SCORERS:
            column = f"{scorer}_{metric}"
            if column in table:
                ax.plot(labels, table[column], marker="o", label=scorer)
        ax.set_title(metric)
        ax.set_xlabel("test window")
        ax.tick_params(axis="x", rotation=30)
        ax.grid(alpha=0.3)
    fig.suptitle(f"{report.task}: backtest over {len(table)} test windows")
    fig.tight_layout(rect=(0, 0.08, 1, 1))  # room below the panels for the legend
    handles, names = axes[0].get_legend_handles_labels()
    fig.legend(handles, names, loc="lower center", ncol=len(names), frameon=False)
    return fig
