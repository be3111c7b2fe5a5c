"""One experiment end to end: training set -> time split -> (search) -> fit + calibrate -> evaluate against
the baselines and the oracle -> MLflow run with plots and the packaged model -> registered version -> gate.

`gridrisk train` and `gridrisk evaluate` call `train_task` / `evaluate_model`; the London benchmark and tests
call the lower steps (`split_frame`, `score_test`) directly.
"""

from __future__ import annotations

import hashlib
import json
import logging
import subprocess
import tempfile
import time
import warnings
from collections.abc import Callable, Collection
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

from features.memory import release_memory
from features.sample import read_sampled, sample_for, whole_from
from serving.model import PackagedModel, ReasonText
from training.config import EvaluationConfig, ExperimentConfig, LightGBMConfig, gap_message
from training.evaluate import Scored, lift_by_decile, score_metrics, segment_metrics
from training.fit import Bands, LogisticBaseline, TaskModel
from training.registry import (
    CHAMPION,
    GateDecision,
    GateScores,
    apply_decision,
    client_for,
    decide,
    ensure_experiment,
    experiment_name,
    model_name,
    register_challenger,
    version_by_alias,
)
from training.split import TimeSplit, fewest_monthly_dates, month_ends, rows_where, split_for
from training.tasks import Task, TaskSpec, TrainingError, task_spec

logger = logging.getLogger(__name__)

# (step name, fraction done within the step or None)
Progress = Callable[[str, float | None], None]
STEPS = ("training set", "fit", "baselines", "evaluate", "plots", "log model", "gate")
SEGMENT_COLUMNS = ("usage_category", "supply_unit")
SHAP_ROWS = 2000
PIP_REQUIREMENTS = ("lightgbm", "numpy", "pandas", "scikit-learn", "pyarrow")


@dataclass
class TrainingReport:
    task: str
    run_id: str
    experiment_id: str
    primary_metric: str
    split: TimeSplit
    metrics: dict[str, dict[str, float]]  # scorer ("model", "logistic", "rule", "oracle") -> metrics
    version: str | None = None
    gate: GateDecision | None = None
    seconds: float = 0.0  # the whole command: `build_seconds` + the run's `training_seconds` + the rest
    build_seconds: float = 0.0  # building or reading the training set, and freeing what the build used
    training_seconds: float = 0.0  # fit, evaluation and logging: the run's metric of that name
    extra: dict[str, float] = field(default_factory=dict)
    rows_train: int = 0
    sample_customers: float = 1.0  # [sample] customers: the share kept before the test dates
    unlearned: list[str] = field(default_factory=list)  # features with no value on any training row


def unlearned_features(train: pd.DataFrame, test: pd.DataFrame, features: list[str]) -> list[str]:
    """Features the model cannot learn from although the test rows carry them: no value on any training row
    (daily readings that begin inside the last label window, say). They are said, not dropped: the next
    retrain, with more history, learns them."""
    return [f for f in features if train[f].isna().all() and test[f].notna().any()]


def _noop(step: str, fraction: float | None) -> None:
    return None


# -- data ----------------------------------------------------------------------------------------------------
def resolve_as_of_dates(config: ExperimentConfig, warehouse: Path) -> list[pd.Timestamp]:
    """The config's monthly as-of dates (month ends, or `as_of.day`), never later than the last date whose
    label window is observed."""
    from features.labels import latest_labelable_as_of

    latest = pd.Timestamp(latest_labelable_as_of(Path(warehouse), config.task.value)).normalize()
    latest_month = latest.to_period("M")
    day = config.as_of.day_of_month
    if (month_ends(str(latest_month), str(latest_month), day=day) or [latest])[0] > latest:
        latest_month = latest_month - 1  # that month's date after `latest` would not be fully observed
    end = (
        latest_month if config.as_of.end == "latest" else min(pd.Period(config.as_of.end, "M"), latest_month)
    )
    if config.as_of.end != "latest" and pd.Period(config.as_of.end, "M") > latest_month:
        logger.warning("as_of.end %s is not fully observed in %s; using %s", config.as_of.end, warehouse, end)
    start = config.as_of.start
    if start == "auto":
        start = str(first_billing_month(Path(warehouse)) + config.as_of.history_months)
    dates = month_ends(start, str(end), config.as_of.step_months, day)
    if config.as_of.max_dates is not None:
        dates = dates[-config.as_of.max_dates :]
    if not dates:
        auto = config.as_of.start == "auto"
        fix = "move as_of.start earlier or lower as_of.history_months"
        if config.as_of.end != "latest" and pd.Period(config.as_of.end, "M") < pd.Period(start, "M"):
            origin = " (the first billing month + as_of.history_months)" if auto else ""
            fix = f"as_of.end {config.as_of.end} is before the first as-of month {start}{origin}; move it"
        raise TrainingError(
            f"no as-of month from {start} to {end} is fully observed in warehouse {warehouse} "
            f"(latest labelable as-of {latest.date()}); {fix}"
        )
    return dates


def first_billing_month(warehouse: Path) -> pd.Period:
    """The earliest billing period in the warehouse's bills."""
    from features.labels import column_extreme
    from features.sources import has_table, table_path

    path = table_path(warehouse, "bills")
    if not has_table(warehouse, "bills"):
        raise TrainingError(f"warehouse {warehouse} has no bills table ({path}); run `gridrisk ingest` first")
    first = column_extreme(path, "period", "min")
    if first is None:
        raise TrainingError(f"the bills table of {warehouse} is empty; nothing to train on")
    return pd.Period(first, "M")


def load_training_frame(
    config: ExperimentConfig, warehouse: Path, progress: Progress = _noop, *, whole_dates: int | None = None
) -> pd.DataFrame:
    """The stacked training set: a prebuilt Parquet if the config names one, else built from the warehouse.

    With `[sample] customers` below 1 the latest `whole_dates` as-of dates (default: the test dates) keep
    every customer and the earlier ones only the sampled share (`features.sample`).
    """
    whole = config.split.test_dates if whole_dates is None else whole_dates
    share, seed = config.sample.customers, config.sample.seed
    if config.training_set is not None:
        path = Path(config.training_set)
        if not path.exists():
            raise TrainingError(
                f"training_set {path} does not exist; build it with `gridrisk features --out`"
            )
        check_training_set_file(path, config.task.value)
        keep = set_dates_in_range(config, path)
        # Arrow's buffers are freed column by column as pandas takes them, one block per column: the peak is
        # the frame once, not the file twice (4.0 rather than 6.2 GiB for a 2.8 GiB set).
        convert = {"self_destruct": True, "split_blocks": True}
        if share < 1:
            missing = sorted({"customer_id", "as_of"} - set(pq.read_schema(path).names))
            if missing:
                raise TrainingError(
                    f"training set {path} lacks columns {missing}, which [sample] needs to pick customers "
                    "and dates; rebuild it with `gridrisk features --out`"
                )
            # The range's own latest dates keep every customer (the test dates), not the file's.
            table, sample = read_sampled(path, share, seed, whole, keep)
            frame = table.to_pandas(**convert)
            del table
            frame.attrs["sample"] = sample.describe()
        elif keep is not None:
            wanted = pc.field("as_of").isin(_as_arrow(keep, pq.read_schema(path)))
            frame = pq.read_table(path, filters=wanted).to_pandas(**convert)
        else:
            frame = pd.read_parquet(path, to_pandas_kwargs=convert)
        pa.default_memory_pool().release_unused()
        check_learnable(frame, config.task.value, path)
        _warn_sampled_set(path, frame, whole, config)
        return frame
    from features.training_set import build_training_set

    dates = resolve_as_of_dates(config, warehouse)
    sample = sample_for(dates, share, seed, whole)

    def report(done: int, total: int) -> None:
        progress("training set", done / total if total else None)

    frame = build_training_set(
        Path(warehouse), config.task.value, dates, engine="local", progress=report, sample=sample
    )
    check_learnable(frame, config.task.value, Path(warehouse))
    return frame


def set_dates_in_range(config: ExperimentConfig, path: Path) -> list[pd.Timestamp] | None:
    """The as-of dates of a prebuilt set that the config's [as_of] range picks, as building from the warehouse
    would pick them: month ends from `start` to `end` every `step_months`, the latest `max_dates` of them.
    `start = "auto"` is the warehouse's rule applied to the warehouse the set was built from (`auto_start`),
    `end = "latest"` the set's last date (it was built on labelled dates). None when every date of the set is
    kept."""
    column = pq.read_table(path, columns=["as_of"]).column("as_of")
    dates = sorted(pd.DatetimeIndex(pc.unique(column).to_pandas()).normalize())
    del column
    if not dates:
        return None
    first, last = pd.Period(dates[0], "M"), pd.Period(dates[-1], "M")
    start = (
        auto_start(config, path, first)
        if config.as_of.start == "auto"
        else pd.Period(config.as_of.start, "M")
    )
    end = last if config.as_of.end == "latest" else pd.Period(config.as_of.end, "M")
    months = {pd.Period(d, "M") for d in month_ends(str(start), str(end), config.as_of.step_months)}
    day = config.as_of.day_of_month  # month ends take any date of their months, as before the option
    keep = [d for d in dates if pd.Period(d, "M") in months and day in (None, d.day)]
    if config.as_of.max_dates is not None:
        keep = keep[-config.as_of.max_dates :]
    span = f"{dates[0].date()}..{dates[-1].date()}"
    if not keep:
        on_day = f" on day {day}" if day is not None else ""
        rebuild = build_command(config.task.value)
        if day is not None:  # --as-of-range builds month ends only: name the dates of the config's day
            wanted = month_ends(str(start), str(end), config.as_of.step_months, day)[-3:]
            rebuild = (
                f"`gridrisk features --task {config.task.value} "
                + " ".join(f"--as-of {d.date()}" for d in wanted)
                + " … --out FILE` (one --as-of per date)"
            )
        raise TrainingError(
            f"training_set {path} holds as-of dates {span}, and the config's [as_of] range ({start} to {end} "
            f"every {config.as_of.step_months} month(s){on_day}) picks none of them; move the range, or "
            f"rebuild the set with {rebuild}"
        )
    if start < first or end > last:
        logger.warning(
            "training_set %s holds as-of dates %s only, less than the [as_of] range %s..%s; rebuild it to "
            "train on the whole range",
            path,
            span,
            start,
            end,
        )
    if len(keep) == len(dates):
        return None
    logger.info(
        "training_set %s: the [as_of] range keeps %d of its %d as-of dates (%s..%s)",
        path,
        len(keep),
        len(dates),
        keep[0].date(),
        keep[-1].date(),
    )
    return keep


def set_meta(path: Path) -> dict[str, Any]:
    """A prebuilt set's `<file>.meta.json` (`gridrisk features --out` writes it), or {} without one."""
    meta = Path(path).with_name(Path(path).name + ".meta.json")
    try:
        return json.loads(meta.read_text(encoding="utf-8")) if meta.exists() else {}
    except (OSError, ValueError):
        return {}


def auto_start(config: ExperimentConfig, path: Path, first: pd.Period) -> pd.Period:
    """`as_of.start = "auto"` for a prebuilt set, by the warehouse's rule: `history_months` after the first
    billing month of the warehouse its `.meta.json` names, so the same config on the same data trains on the
    same dates from the set as from the warehouse (the set's first date had been used, with one month of
    bills behind it, and `history_months` did nothing). A set whose warehouse is not at hand starts at its
    first date, with a warning."""
    from features.sources import has_table

    built = set_meta(path).get("warehouse")
    if built and Path(built).is_dir() and has_table(Path(built), "bills"):
        try:
            return max(first, first_billing_month(Path(built)) + config.as_of.history_months)
        except TrainingError:
            pass  # an empty bills table: no rule to apply
    logger.warning(
        'training_set %s: as_of.history_months = %d is not applied: as_of.start = "auto" counts it from the '
        "first billing month of the warehouse the set was built from, and its .meta.json names none that can "
        "be read (%s); starting at the set's first date %s, whose customers may have little bill history. "
        "Set as_of.start, or rebuild the set with `gridrisk features --out` from a warehouse at hand",
        path,
        config.as_of.history_months,
        built or "no warehouse recorded",
        first,
    )
    return first


def truth_dir_for(config: ExperimentConfig, warehouse: Path) -> Path | None:
    """The generator's `truth/` for the oracle: for a prebuilt set, that of the warehouse its `.meta.json`
    names (the config's warehouse is then often none at all), else the warehouse's; None on real data."""
    places = [Path(warehouse) / "truth"]
    if config.training_set is not None:
        built = set_meta(Path(config.training_set)).get("warehouse")
        if built:
            places.insert(0, Path(built) / "truth")
    return next((p for p in places if p.exists()), None)


def _as_arrow(dates: list[pd.Timestamp], schema: pa.Schema) -> pa.Array:
    """`dates` as an Arrow array of the set's own as-of type (a timestamp of some unit, or a date)."""
    return pa.array([d.to_pydatetime() for d in dates]).cast(schema.field("as_of").type)


def build_command(task: str) -> str:
    """The command that builds a training set for `task`, as refusals name it."""
    return f"`gridrisk features --task {task} --as-of-range YYYY-MM:YYYY-MM --out FILE`"


def check_training_set_file(path: Path, task: str) -> None:
    """Refuse, from its schema alone, a file that cannot train `task`: a folder, not Parquet, or a warehouse
    table or scoring frame (no as-of or label). Missing features are `require_columns`'s: a caller of
    `train_on_frame` may train on other features than the task's."""
    build = build_command(task)
    if not path.is_file():
        raise TrainingError(f"training_set {path} is a folder; name the Parquet file {build} wrote")
    try:
        names = set(pq.read_schema(path).names)
    except (OSError, pa.ArrowException) as exc:
        raise TrainingError(
            f"training_set {path} is not a Parquet file ({exc}); build one with {build}"
        ) from exc
    if "as_of" not in names:
        raise TrainingError(
            f"training_set {path} is not a training set (no as_of column: a warehouse table?); build one "
            f"with {build}"
        )
    if "label" not in names:
        raise TrainingError(
            f"training_set {path} has no label column (a `gridrisk features --scoring` frame?); a model "
            f"learns only from labelled rows: build one with {build}"
        )


def _warn_sampled_set(path: Path, frame: pd.DataFrame, whole: int, config: ExperimentConfig) -> None:
    """A set built with `gridrisk features --sample` keeps every customer only from its `whole_from`, and a
    second sample with another seed keeps about share x share of the customers, not the share."""
    meta = path.with_name(path.name + ".meta.json")
    built = json.loads(meta.read_text(encoding="utf-8")).get("sample") if meta.exists() else None
    if not built:
        return
    first = whole_from(frame["as_of"].unique(), whole)
    if built.get("whole_from") and first is not None and first < pd.Timestamp(built["whole_from"]):
        logger.warning(
            "%s keeps every customer only from %s (built with --sample %s); the test dates from %s are "
            "a sample, so the evaluation and the gate read %s of the customers there: rebuild it with "
            "--whole-dates covering the test dates",
            path,
            built["whole_from"],
            built["customers"],
            first.date(),
            built["customers"],
        )
    if config.sample.customers < 1 and built.get("seed") != config.sample.seed:
        logger.warning(
            "%s is a sample of the customers with seed %s, and [sample] draws with seed %s: the two cuts "
            "keep about %.1f %% of the customers, not %.1f %%; use the set's seed or [sample] customers = 1",
            path,
            built.get("seed"),
            config.sample.seed,
            100 * float(built["customers"]) * config.sample.customers,
            100 * config.sample.customers,
        )


def check_learnable(frame: pd.DataFrame, task: str, source: Path) -> None:
    """Refuse a training set with no rows or no positives, naming the cause rather than the split that would
    fail on it: an empty population, or a label table the warehouse lacks or that holds no label event."""
    from features.labels import (
        LABEL_DOCS,
        LABEL_TABLES,
        POPULATION_DOCS,
        bills_due_in_windows,
        label_event_rows,
    )
    from features.sources import has_table

    dates = sorted(pd.to_datetime(frame["as_of"]).unique()) if "as_of" in frame else []
    span = f"{dates[0].date()}..{dates[-1].date()}" if dates else ""
    if frame.empty:
        raise TrainingError(
            f"no customer of {source} is in the {task} population ({POPULATION_DOCS[task]}) on any as-of "
            f"date of the config; {source} cannot train {task}"
        )
    if "label" not in frame or frame["label"].sum() > 0:
        return
    table = LABEL_TABLES[task]
    if source.is_file():
        cause = f"rebuild {source} from a warehouse whose {table} table holds {task} label events"
    elif not has_table(source, table):
        cause = (
            f"the warehouse has no {table} table, which the {task} label reads; ingest it with the export "
            "(an export of it without rows stores none)"
        )
    else:
        # No such event at all is not fixed by the export's coverage or the [as_of] range: say which it is.
        absent = f"no as-of date {span} has {LABEL_DOCS[task]}"
        counted = label_event_rows(source, task)
        if counted is None:  # arrears: its label joins bills and payments, no one row to count
            due = bills_due_in_windows(source, dates)
            cause = (
                f"{absent}: {due} stored bill rows fell due in those windows and none was left unpaid, so "
                "there is no late payer to learn from"
                if due
                else f"{absent}: no stored bill falls due in those windows; check that the export's bills "
                "cover those months, or move the config's [as_of] range"
            )
        elif counted[1] == 0:
            cause = (
                f"{absent}, and none of the {counted[0]} rows of its {table} table has {counted[2]}; "
                f"{source} cannot train {task} until its {table} record some"
            )
        else:
            cause = (
                f"{absent}: its {counted[1]} {table} rows with {counted[2]} fall outside those windows; "
                f"check that the export's {table} cover those months, or widen the config's [as_of] range"
            )
    raise TrainingError(f"the {task} training set has {len(frame)} rows and no positive label: {cause}")


def require_columns(names: Collection[str], spec: TaskSpec, features: list[str]) -> None:
    """Refuse a training set without every column a fit of `spec` on `features` needs."""
    needed = ["customer_id", "as_of", "label", "amount_at_stake", "station", *features]
    present = set(names)
    missing = [c for c in needed if c not in present]
    if missing:
        listed = ", ".join(missing[:5]) + (", …" if len(missing) > 5 else "")
        raise TrainingError(
            f"training set for {spec.task} lacks {len(missing)} of the columns it needs ({listed}): built "
            f"for another task or an older feature set; rebuild it with {build_command(spec.task)}"
        )


def checked_frame(frame: pd.DataFrame, spec: TaskSpec, features: list[str]) -> pd.DataFrame:
    """The training set with every column a fit needs, as-of dates as datetime64[ns]."""
    require_columns(frame.columns, spec, features)
    return frame.assign(as_of=pd.to_datetime(frame["as_of"]).astype("datetime64[ns]"))


def split_frame(
    frame: pd.DataFrame, spec: TaskSpec, config: ExperimentConfig, *, hint: bool = True
) -> tuple[TimeSplit, pd.DataFrame, pd.DataFrame, pd.DataFrame]:
    """The time split of `frame` and its three parts. A refusal says how many dates the split needs and so
    about how long a warehouse must be (`hint`); a backtest window cut short by the windows after it says
    its own thing instead."""
    gap = config.split.gap_days if config.split.gap_days is not None else spec.label_window_days
    if gap < spec.label_window_days:
        raise TrainingError(gap_message(gap, spec.task.value, spec.label_window_days))
    settings = {
        "folds": config.split.folds,
        "validation_dates": config.split.validation_dates,
        "test_dates": config.split.test_dates,
        "gap_days": gap,
    }
    dates = frame["as_of"].unique()
    try:
        split = split_for(config.split.scheme, dates, **settings)
    except TrainingError as exc:
        if not hint:
            raise
        raise TrainingError(f"{exc}. {_span_hint(config, len(dates), settings)}") from None
    part = split.part(frame["as_of"])
    parts = [rows_where(frame, part == name) for name in ("train", "validation", "test")]
    return split, parts[0], parts[1], parts[2]


def _span_hint(config: ExperimentConfig, have: int, settings: dict[str, int]) -> str:
    """How many monthly as-of dates the split needs, and so about how many months of export."""
    need = fewest_monthly_dates(config.split.scheme, **settings)
    if need is None:
        return (
            "No span of monthly as-of dates under 20 years satisfies this split; check the [split] settings"
        )
    window_months = -(-settings["gap_days"] // 30)
    history = config.as_of.history_months
    if config.as_of.max_dates is not None and have >= config.as_of.max_dates:
        kept = config.as_of.max_dates
        return (
            f"With one as-of date a month this split ({config.split.scheme}) needs at least {need} dates; "
            f"as_of.max_dates = {kept} keeps only the latest {have}: raise it to {need} or more"
        )
    if have >= need:  # enough dates, but not a month apart (step_months > 1, or months without a population)
        return (
            f"The split has {have} as-of dates; {need} consecutive monthly ones would do: lower "
            "as_of.step_months, or check which months have no population"
        )
    return (
        f"With one as-of date a month this split ({config.split.scheme}) needs at least {need} dates and has "
        f"{have}. Each date also needs as_of.history_months = {history} months of bills before it and a "
        f"{settings['gap_days']}-day gap after it, so the warehouse needs about "
        f"{need + history + window_months} months of bills; on a shorter one lower as_of.history_months or "
        f"split.test_dates"
    )


# -- scoring the test window ---------------------------------------------------------------------------------
def model_scored(name: str, p: np.ndarray, frame: pd.DataFrame, spec: TaskSpec) -> Scored:
    amount = pd.to_numeric(frame["amount_at_stake"], errors="coerce").fillna(0.0).to_numpy(dtype=np.float64)
    return Scored(name, p, p, p * amount if spec.rank_by_expected_value else None)


def oracle_scored(truth_dir: Path | None, test: pd.DataFrame, spec: TaskSpec) -> Scored | None:
    """The generator's true probabilities on the test rows (a ceiling), when the warehouse has a truth/."""
    if truth_dir is None or not Path(truth_dir).exists():
        return None
    from features.synthetic import oracle_probabilities

    oracle = oracle_probabilities(Path(truth_dir), spec.task.value, sorted(test["as_of"].unique()))
    oracle = oracle.assign(as_of=pd.to_datetime(oracle["as_of"]).astype("datetime64[ns]"))
    keys = test[["customer_id", "as_of"]].assign(as_of=lambda f: f["as_of"].astype("datetime64[ns]"))
    merged = keys.merge(oracle, on=["customer_id", "as_of"], how="left")
    p = merged["oracle_probability"].to_numpy(dtype=np.float64, na_value=np.nan)
    if np.isnan(p).any():
        logger.warning(
            "oracle has no probability for %d of %d test rows; skipping oracle", np.isnan(p).sum(), len(p)
        )
        return None
    return model_scored("oracle", p, test, spec)


def score_test(
    test: pd.DataFrame, scorers: list[Scored], spec: TaskSpec, evaluation: EvaluationConfig
) -> dict[str, dict[str, float]]:
    return {
        s.name: score_metrics(
            test, s, station_capacity=evaluation.station_capacity, top_fractions=evaluation.top_fractions
        )
        for s in scorers
    }


def evaluate_on_test(
    test: pd.DataFrame,
    p_model: np.ndarray,
    p_logistic: np.ndarray | None,
    spec: TaskSpec,
    evaluation: EvaluationConfig,
    truth_dir: Path | None,
) -> tuple[list[Scored], dict[str, dict[str, float]], dict[str, float]]:
    """Score the model, the logistic baseline, the task's rule and (on generated data) the oracle on the test
    window; returns the scorers, their metrics and the model's per-segment metrics."""
    scorers = [model_scored("model", p_model, test, spec)]
    if p_logistic is not None:
        scorers.append(model_scored("logistic", p_logistic, test, spec))
    scorers.append(Scored("rule", spec.rule_scores(test), None))
    oracle = oracle_scored(truth_dir, test, spec)
    if oracle is not None:
        scorers.append(oracle)
    metrics = score_test(test, scorers, spec, evaluation)
    if spec.task == Task.THEFT and truth_dir is not None:
        _add_true_theft_metrics(metrics, test, scorers, spec, evaluation, Path(truth_dir))
    segments = segment_metrics(
        test,
        scorers[0],
        SEGMENT_COLUMNS,
        primary_metric=spec.primary_metric,
        station_capacity=evaluation.station_capacity,
        min_rows=evaluation.min_segment_rows,
    )
    return scorers, metrics, segments


TRUE_THEFT_METRICS = ("roc_auc", "pr_auc", "precision_at_5pct", "recall_at_5pct")


def true_thieves(truth_dir: Path, frame: pd.DataFrame, horizon_days: int) -> np.ndarray:
    """1 where the generator's truth says the customer steals in a month of the label's window (T, T+H],
    inspected or not: the labels' own window, so the gap to the labels is what inspections miss. (Stealing in
    the as-of month alone counted a third of the found thieves, those who began after T, as honest.)"""
    from features.synthetic.truth import read_truth

    monthly = read_truth(truth_dir, "monthly", ["customer_id", "period", "is_stealing"])
    ids = pd.Index(monthly["customer_id"].astype(str).unique())
    month = _month_numbers(monthly["period"])
    first, n_months = int(month.min()), int(month.max() - month.min()) + 1
    stealing = np.zeros((len(ids), n_months + 1), dtype=np.int32)  # column 0: before the first month
    rows = ids.get_indexer(monthly["customer_id"].astype(str))
    stealing[rows, month - first + 1] = monthly["is_stealing"].fillna(False).to_numpy(dtype=bool)
    months_stealing = stealing.cumsum(axis=1)  # months stealing up to and including each column

    as_of = pd.to_datetime(frame["as_of"])
    start = _month_numbers(as_of + pd.Timedelta(days=1)) - first + 1  # the window's first month's column
    end = _month_numbers(as_of + pd.Timedelta(days=horizon_days)) - first + 1
    lo, hi = np.clip(start, 1, n_months + 1) - 1, np.clip(end, 0, n_months)
    row = ids.get_indexer(frame["customer_id"].astype(str).to_numpy())
    known = row >= 0
    found = np.zeros(len(frame), dtype=bool)
    found[known] = months_stealing[row[known], hi[known]] > months_stealing[row[known], lo[known]]
    return found.astype(np.int8)


def _month_numbers(dates: pd.Series) -> np.ndarray:
    return pd.to_datetime(dates).to_numpy().astype("datetime64[M]").astype(np.int64)


def _add_true_theft_metrics(
    metrics: dict[str, dict[str, float]],
    test: pd.DataFrame,
    scorers: list[Scored],
    spec: TaskSpec,
    evaluation: EvaluationConfig,
    truth_dir: Path,
) -> None:
    """Theft labels exist only where an inspection happened; judging the same lists against every true
    thief shows how much the inspection policy hides (a model can rank a thief no one inspected)."""
    truth = true_thieves(truth_dir, test, spec.horizon_days)
    if truth.min() == truth.max():
        return
    relabelled = test.assign(label=truth)
    labelled = test["label"].to_numpy().astype(bool)
    for s in scorers:
        values = score_metrics(
            relabelled, s, station_capacity=evaluation.station_capacity, top_fractions=(0.05,)
        )
        metrics[s.name].update({f"true_{k}": values[k] for k in TRUE_THEFT_METRICS})
        metrics[s.name]["true_label_rate"] = float(truth.mean())
        metrics[s.name]["true_thieves_labelled_share"] = float(labelled[truth == 1].mean())


def gate_scores(
    package: PackagedModel, version: str, test: pd.DataFrame, spec: TaskSpec, evaluation: EvaluationConfig
) -> GateScores:
    missing = [n for n in package.spec.names if n not in test.columns]
    if missing:
        raise TrainingError(
            f"{model_name(spec.task)} version {version} needs features {missing[:5]} the current training "
            f"set lacks, so it cannot be compared on the same test window; use `gridrisk promote` by hand"
        )
    p = package.predict_proba(package.spec.matrix(test))
    metrics = score_metrics(
        test,
        model_scored("champion", p, test, spec),
        station_capacity=evaluation.station_capacity,
        top_fractions=evaluation.top_fractions,
    )
    return GateScores(version=str(version), primary=metrics[spec.primary_metric], roc_auc=metrics["roc_auc"])


# -- provenance ----------------------------------------------------------------------------------------------
def git_commit() -> str:
    root = Path(__file__).resolve().parents[1]
    try:
        commit = subprocess.run(
            ["git", "rev-parse", "HEAD"], cwd=root, capture_output=True, text=True, timeout=5, check=True
        ).stdout.strip()
        dirty = subprocess.run(
            ["git", "status", "--porcelain", "--untracked-files=no"],
            cwd=root,
            capture_output=True,
            text=True,
            timeout=5,
            check=True,
        ).stdout.strip()
    except (OSError, subprocess.SubprocessError):
        return "unknown"
    return commit + ("-dirty" if dirty else "")


def data_fingerprint(frame: pd.DataFrame) -> str:
    """sha256 over the row hashes of the training set (column order and values); stable across runs."""
    digest = hashlib.sha256("|".join(map(str, frame.columns)).encode())
    digest.update(pd.util.hash_pandas_object(frame, index=False).to_numpy().tobytes())
    return digest.hexdigest()[:16]


def input_example(train: pd.DataFrame, package: PackagedModel) -> pd.DataFrame:
    """One made-up row (medians, most frequent levels): no real customer's data is stored with the model."""
    row: dict[str, Any] = {}
    for name in package.spec.names:
        if name in package.spec.categorical:
            mode = train[name].dropna().astype(str).mode()
            levels = package.spec.categorical[name]
            # A column the export left empty throughout (industry_code may be null) has no level at all;
            # "" is not a level, so it reads as unknown, as a null does.
            row[name] = [mode.iloc[0] if len(mode) else (levels[0] if levels else "")]
        else:
            values = pd.to_numeric(train[name], errors="coerce")
            row[name] = [float(values.median()) if values.notna().any() else 0.0]
    return pd.DataFrame(row)


def explain_cost_ms(
    package: PackagedModel, X: np.ndarray, rows: int = 1000, repeats: int = 3
) -> dict[str, float]:
    """Per-row pred_contrib time: in a batch, and one row per call (what a live request pays)."""
    batch = X[:rows]
    best_batch = min(_timed(lambda: package.contributions(batch)) for _ in range(repeats)) / max(
        len(batch), 1
    )
    single = X[:1]
    package.contributions(single)
    n = 50
    best_single = (
        min(_timed(lambda: [package.contributions(single) for _ in range(n)]) for _ in range(repeats)) / n
    )
    return {"explain_ms_per_row_batch": best_batch * 1000, "explain_ms_single_row": best_single * 1000}


def _timed(fn: Callable[[], Any]) -> float:
    start = time.perf_counter()
    fn()
    return time.perf_counter() - start


def reason_texts(features: list[str]) -> dict[str, ReasonText]:
    from features.feature_sets import FEATURE_DOCS

    return {n: ReasonText.from_doc(FEATURE_DOCS[n]) for n in features if n in FEATURE_DOCS}


# -- the experiment ------------------------------------------------------------------------------------------
def train_task(
    config: ExperimentConfig,
    *,
    warehouse: Path,
    tracking_uri: str,
    artifact_root: Path | None,
    progress: Progress = _noop,
    config_text: str | None = None,
    keep_dir: Path | None = None,
) -> TrainingReport:
    """Build the training set from the warehouse and run `train_on_frame`.

    When the tracking store fails during the run (a server lost, credentials refused), a set built here is
    written to `keep_dir` (with its `.meta.json`) and the error names the server, the cause and the file, so
    a retry with `training_set = "<file>"` does not build it again."""
    started = time.perf_counter()
    progress("training set", 0.0)
    frame = load_training_frame(config, Path(warehouse), progress)
    release_memory()  # what building the set freed, before the fit allocates its own
    built = time.perf_counter() - started  # the freeing too: it is the build's cost, seconds on a province
    try:
        report = train_on_frame(
            frame,
            config,
            tracking_uri=tracking_uri,
            artifact_root=artifact_root,
            truth_dir=truth_dir_for(config, Path(warehouse)),
            source=str(Path(config.training_set or warehouse).resolve()),
            progress=progress,
            config_text=config_text,
            warehouse=Path(warehouse),
        )
    except Exception as exc:
        cause = tracking_failure(exc)
        if cause is None:
            raise
        kept = ""
        if config.training_set is None and keep_dir is not None:
            kept = keep_training_set(frame, config, Path(warehouse), Path(keep_dir))
        raise TrainingError(f"{tracking_store(tracking_uri)} failed during the run ({cause}){kept}") from exc
    del frame
    release_memory()  # so the next task of `train --task all` starts from what is alive
    # The run logged `training_seconds` (fit, evaluation, logging); the set's build is logged beside it. What
    # the command took besides the two (closing the run, freeing the task's memory for the next) is said
    # apart: the two had been said to add up to the total, and were a second short of it.
    report.build_seconds = built
    client_for(tracking_uri).log_metric(report.run_id, "build_seconds", built)
    report.seconds = time.perf_counter() - started
    return report


def tracking_store(tracking_uri: str) -> str:
    """The tracking store as an error names it, without a user and password."""
    from serving.settings import uri_without_credentials

    if tracking_uri.startswith(("http://", "https://")):
        return f"the MLflow tracking server {uri_without_credentials(tracking_uri)} (MLFLOW_TRACKING_URI)"
    return f"the MLflow store {tracking_uri}"


def tracking_failure(exc: BaseException) -> str | None:
    """The cause, in a few words, when `exc` (or what it was raised from) is the tracking store failing a
    request: a server refused, lost or timed out (MLflow's `API request to … failed`), or an HTTP error
    status. None for anything else (a defect, bad data), which keeps its traceback."""
    import re

    import requests

    seen: list[BaseException] = []
    while exc is not None and exc not in seen:
        seen.append(exc)
        exc = exc.__cause__ or exc.__context__
    for error in seen:
        text = str(getattr(error, "message", None) or error)
        rest = text.startswith("API request to") or "Max retries exceeded" in text
        if not rest and not isinstance(error, requests.RequestException | ConnectionError | TimeoutError):
            continue
        errno = re.search(r"\[Errno -?\d+\] ([^'\")\]]+)", text)
        if errno:
            return errno.group(1).strip()
        status = re.search(r"error code (\d{3})", text) or re.search(r"too many (\d{3}) error", text)
        if status:
            return f"HTTP {status.group(1)}"
        if "Read timed out" in text or isinstance(error, TimeoutError | requests.Timeout):
            return "no answer within MLFLOW_HTTP_REQUEST_TIMEOUT"
        return f"{type(error).__name__}"
    return None


def keep_training_set(frame: pd.DataFrame, config: ExperimentConfig, warehouse: Path, keep_dir: Path) -> str:
    """Write a built training set to `keep_dir` for a retry; what to tell the user about it (or why not)."""
    from features.training_set import write_training_set

    path = keep_dir / f"{config.task.value}-{datetime.now(UTC):%Y%m%d-%H%M%S}.parquet"
    try:
        write_training_set(frame, path, task=config.task.value, warehouse=warehouse)
    except OSError as exc:
        return f"; the training set could not be kept ({exc.strerror or exc}), a retry builds it again"
    return (
        f'; the training set built for it is kept in {path}: put training_set = "{path}" at the top of '
        f"the config (experiments/configs/{config.task.value}.toml for the defaults) to train again without "
        "building it"
    )


@dataclass
class FittedWindow:
    """A model fitted on one split and scored on its test window beside the baselines."""

    model: TaskModel
    X_test: np.ndarray
    p_test: np.ndarray
    scorers: list[Scored]
    metrics: dict[str, dict[str, float]]
    segments: dict[str, float]


def fit_and_evaluate(
    split: TimeSplit,
    train: pd.DataFrame,
    validation: pd.DataFrame,
    test: pd.DataFrame,
    config: ExperimentConfig,
    params: LightGBMConfig,
    features: list[str],
    *,
    truth_dir: Path | None = None,
    progress: Progress = _noop,
) -> FittedWindow:
    """Fit and calibrate the booster on the split, fit the logistic baseline on the same training dates, and
    score both, the rule and (on generated data) the oracle on the test window."""
    spec = task_spec(config.task)
    progress("fit", None)
    model = TaskModel(spec.task.value, features, params, config.calibration.method).fit_split(
        split, train, validation
    )
    release_memory()  # the fit's matrices, before the baseline makes its own
    progress("baselines", None)
    logistic = LogisticBaseline(features, seed=params.seed).fit(train)
    progress("evaluate", None)
    X_test = model.spec_.matrix(test)
    p_test = model.package().predict_proba(X_test)
    scorers, metrics, segments = evaluate_on_test(
        test, p_test, logistic.predict_proba(test), spec, config.evaluation, truth_dir
    )
    return FittedWindow(model, X_test, p_test, scorers, metrics, segments)


def train_on_frame(
    frame: pd.DataFrame,
    config: ExperimentConfig,
    *,
    tracking_uri: str,
    artifact_root: Path | None,
    features: list[str] | None = None,
    truth_dir: Path | None = None,
    source: str = "",
    progress: Progress = _noop,
    config_text: str | None = None,
    feature_version: str | None = None,
    reasons: dict[str, ReasonText] | None = None,
    warehouse: Path | None = None,
) -> TrainingReport:
    """Fit, evaluate, log, register and gate one task on a stacked training set (customer x as-of rows).

    `warehouse` is the one the command read (the config's, --warehouse or GRIDRISK_WAREHOUSE), for the
    resolved config the run logs."""
    import mlflow

    started = time.perf_counter()
    spec = task_spec(config.task)
    features = list(features) if features is not None else spec.features
    frame = checked_frame(frame, spec, features)
    split, train, validation, test = split_frame(frame, spec, config)
    fingerprint = data_fingerprint(frame)
    from features.feature_sets import feature_set_version

    version_hash = feature_version if feature_version is not None else feature_set_version(spec.task.value)
    reasons = reasons if reasons is not None else reason_texts(features)

    mlflow.set_tracking_uri(tracking_uri)
    experiment_id = ensure_experiment(tracking_uri, experiment_name(spec.task.value), artifact_root)
    run_name = f"{spec.task.value}-{datetime.now(UTC):%Y%m%d-%H%M%S}"
    with mlflow.start_run(experiment_id=experiment_id, run_name=run_name) as run:
        run_id = run.info.run_id
        mlflow.set_tags(
            {
                "task": spec.task.value,
                "label": spec.label,
                "primary_metric": spec.primary_metric,
                "git_commit": git_commit(),
                "data_fingerprint": fingerprint,
                "feature_set_version": version_hash,
                "data_source": source,
                "gridrisk.kind": "training",
                **split.summary(),
            }
        )
        resolved = resolved_config(config, split, warehouse)
        mlflow.log_dict(resolved, "config/resolved.json")
        log_written(config)
        if config_text is not None:
            mlflow.log_text(config_text, "config/experiment.toml")
        _log_dataset(frame, features, source, spec, fingerprint)
        unlearned = unlearned_features(train, test, features)
        if unlearned:
            logger.warning("%s: no training row has a value of %s", spec.task.value, ", ".join(unlearned))
            mlflow.set_tag("features_without_training_values", ",".join(unlearned)[:5000])

        params = config.lightgbm
        if config.search.enabled:
            from training.search import search_params

            progress("fit", 0.0)
            params, best_auc = search_params(
                spec.task.value,
                features,
                split,
                train,
                validation,
                params,
                config.search,
                on_trial=lambda i, auc: progress("fit", (i + 1) / (config.search.n_trials + 1)),
            )
            mlflow.log_metric("search_best_validation_roc_auc", best_auc)
        fitted = fit_and_evaluate(
            split, train, validation, test, config, params, features, truth_dir=truth_dir, progress=progress
        )
        model, X_test, p_test = fitted.model, fitted.X_test, fitted.p_test
        scorers, metrics, segments = fitted.scorers, fitted.metrics, fitted.segments
        mlflow.log_params(
            _flat_params(config, resolved, params, model, train, validation, test, len(features))
        )
        mlflow.log_metric("validation_roc_auc", model.validation_roc_auc_)
        check = model.calibration_check_
        if check is not None:
            mlflow.log_metrics(
                {
                    "calibration_transfer_brier_raw": check.brier_raw,
                    "calibration_transfer_brier_calibrated": check.brier_calibrated,
                }
            )
        oracle = metrics.get("oracle")
        extra = explain_cost_ms(model.package(), X_test)
        if oracle is not None and oracle["roc_auc"] > 0:
            extra["oracle_auc_ratio"] = metrics["model"]["roc_auc"] / oracle["roc_auc"]
        _log_metrics(metrics, segments, extra)
        _log_tables(test, scorers, metrics)

        progress("plots", None)
        # TreeSHAP for the summary plot on a sample: every test row would cost minutes at a million rows.
        sample = np.sort(np.random.default_rng(0).permutation(len(X_test))[:SHAP_ROWS])
        with tempfile.TemporaryDirectory() as tmp:
            from training.plots import write_plots

            write_plots(
                Path(tmp),
                test,
                scorers,
                contributions=model.package().contributions(X_test[sample]),
                X=X_test[sample],
                feature_names=features,
                importance_gain=model.booster_.feature_importance("gain"),
                title=spec.task.value,
            )
            mlflow.log_artifacts(tmp, "plots")

        progress("log model", None)
        bands = Bands.from_scores(p_test)
        package = model.package(
            reasons=reasons,
            bands=bands.as_dict(),
            score_quantiles=[float(q) for q in np.quantile(p_test, np.linspace(0, 1, 101))],
            metrics={k: float(v) for k, v in metrics["model"].items() if np.isfinite(v)},
            info={
                "task": spec.task.value,
                "feature_set_version": version_hash,
                "trained_at": datetime.now(UTC).isoformat(timespec="seconds"),
                "as_of_train": [str(split.train[0].date()), str(split.train[-1].date())],
                "as_of_validation": (
                    [str(split.validation[0].date()), str(split.validation[-1].date())]
                    if split.validation
                    else f"purged {len(split.folds)}-fold over as_of_train"
                ),
                "as_of_test": [str(split.test[0].date()), str(split.test[-1].date())],
                "primary_metric": spec.primary_metric,
                "label": spec.label,
                "run_id": run_id,
                "best_iteration": model.best_iteration_,
                "calibration": model.calibrator_.method,
                "data_fingerprint": fingerprint,
                **{k: round(v, 4) for k, v in extra.items()},
            },
        )
        model_uri = _log_package(package, train)

        report = TrainingReport(
            task=spec.task.value,
            run_id=run_id,
            experiment_id=experiment_id,
            primary_metric=spec.primary_metric,
            split=split,
            metrics=metrics,
            extra=extra,
            rows_train=len(train),
            sample_customers=config.sample.customers,
            unlearned=unlearned,
        )
        if config.register_model:
            progress("gate", None)
            report.version, report.gate = _register_and_gate(
                tracking_uri, spec, config, model_uri, run_id, metrics, test, (source, fingerprint)
            )
        report.seconds = report.training_seconds = time.perf_counter() - started
        mlflow.log_metric("training_seconds", report.training_seconds)
    return report


def _register_and_gate(
    tracking_uri: str,
    spec: TaskSpec,
    config: ExperimentConfig,
    model_uri: str,
    run_id: str,
    metrics: dict[str, dict[str, float]],
    test: pd.DataFrame,
    data: tuple[str, str] = ("", ""),
) -> tuple[str, GateDecision]:
    """Register the run's model and gate it against the champion; `data` is the challenger's (data_source,
    data_fingerprint), to tell whether the two were trained on the same data."""
    from serving.model import load_packaged_model

    client = client_for(tracking_uri)
    task = spec.task.value
    model_metrics, rule_metrics = metrics["model"], metrics["rule"]
    champion = version_by_alias(client, task, CHAMPION)
    version = register_challenger(
        client,
        task,
        model_uri,
        run_id,
        tags={
            "task": task,
            spec.primary_metric: f"{model_metrics[spec.primary_metric]:.6f}",
            "roc_auc": f"{model_metrics['roc_auc']:.6f}",
        },
    )
    challenger = GateScores(
        str(version.version), model_metrics[spec.primary_metric], model_metrics["roc_auc"]
    )
    rule = GateScores("rule", rule_metrics[spec.primary_metric], rule_metrics["roc_auc"])

    def gate_against(champion: Any) -> GateDecision:
        """The gate's decision against `champion` (a model version, or None); called again by
        `apply_decision` when another training moved the champion while this one was gated."""
        if champion is None:
            return decide(challenger, None, config.gate, spec.primary_metric, rule, task=task)
        try:
            with tempfile.TemporaryDirectory() as tmp:
                try:
                    package = load_packaged_model(
                        f"models:/{model_name(task)}/{champion.version}", Path(tmp), tracking_uri
                    )
                except Exception as exc:  # moved or deleted artifacts, a package of another gridrisk
                    why = f"{type(exc).__name__}: {str(exc)[:300]}"
                    raise TrainingError(
                        f"champion v{champion.version}'s model cannot be loaded, so the challenger cannot be "
                        f"compared with it ({why}); `gridrisk promote --task {task} --version "
                        f'{version.version} --reason "…"` serves the challenger'
                    ) from exc
            champion_scores = gate_scores(package, champion.version, test, spec, config.evaluation)
        except TrainingError as exc:
            return GateDecision(
                False,
                str(exc),
                spec.primary_metric,
                challenger,
                GateScores(str(champion.version), float("nan"), float("nan")),
            )
        decision = decide(challenger, champion_scores, config.gate, spec.primary_metric, rule, task=task)
        seen = data_note(
            package.info,
            trained_on(client, champion.run_id),
            data,
            test,
            spec.label_window_days,
            who=f"the champion v{champion.version}",
            against="the challenger",
        )
        if seen is not None:
            logger.warning("%s gate: %s", task, seen)
            decision = replace(decision, reason=f"{decision.reason}; note: {seen}")
        return decision

    decision = gate_against(champion)
    return _record_decision(
        client, task, decision, {"registered_version": str(version.version)}, regate=gate_against
    )


def fitted_into(
    info: dict[str, Any],
    test: pd.DataFrame,
    window_days: int,
    *,
    who: str = "the champion",
    so: str = "so the comparison favours it",
) -> str | None:
    """Whether a model learned from outcomes this test window reads (a champion, against a challenger trained
    on an earlier as_of.end; or a version evaluated on another window than its own): its last fitted as-of
    date's label window, `window_days` long, reaches past the window's first as-of date, as the split's own
    gap forbids. Its numbers on the window are then flattered. Only meaningful on the data it was fitted on
    (`data_note`)."""
    fitted = [info.get("as_of_train"), info.get("as_of_validation")]
    ends = [pd.Timestamp(span[-1]) for span in fitted if isinstance(span, list) and span]
    start = pd.Timestamp(test["as_of"].min())
    if not ends or max(ends) + pd.Timedelta(days=window_days) <= start:
        return None
    return (
        f"{who} was fitted on as-of dates up to {max(ends).date()}, whose {window_days}-day label "
        f"windows reach past this test window's start {start.date()}: it has seen these outcomes, {so}"
    )


def trained_on(client, run_id: str | None) -> tuple[str, str]:
    """(data_source, data_fingerprint) a training run was tagged with; empty strings where it says nothing."""
    if not run_id:
        return "", ""
    try:
        tags = client.get_run(run_id).data.tags
    except Exception:  # a run deleted from the store: its model version outlives it
        return "", ""
    return tags.get("data_source", ""), tags.get("data_fingerprint", "")


def data_note(
    info: dict[str, Any],
    theirs: tuple[str, str],
    ours: tuple[str, str],
    test: pd.DataFrame,
    window_days: int,
    *,
    who: str,
    against: str,
    so: str = "so the comparison favours it",
) -> str | None:
    """What to say about the data a model (`who`: a champion, or an evaluated version) was trained on, against
    the data of this window (`against`): trained on another data source, the two were trained on different
    data and its fitted dates say nothing of these outcomes (a champion trained on another utility had been
    said to "have seen these outcomes"); on the same source, whether its fitted dates reach into the window
    (`fitted_into`). `theirs` and `ours` are (data_source, data_fingerprint)."""
    (source, fingerprint), (our_source, our_fingerprint) = theirs, ours
    same_rows = bool(fingerprint) and fingerprint == our_fingerprint
    if source and our_source and not same_rows and _origin(source) != _origin(our_source):
        return (
            f"{who} was trained on other data ({source}, data_fingerprint {fingerprint or 'unknown'}) than "
            f"{against} ({our_source}, data_fingerprint {our_fingerprint or 'unknown'}): the two were "
            "trained on different data, and its numbers here are on data it never saw"
        )
    return fitted_into(info, test, window_days, who=who, so=so)


def _origin(source: str) -> str:
    """The warehouse a data source came from: a prebuilt training set's `.meta.json` names it (a set built
    from a warehouse was "other data" than that warehouse, identical fingerprints and all), else itself."""
    try:
        named = json.loads(Path(f"{source}.meta.json").read_text()).get("warehouse")
    except (OSError, ValueError, AttributeError):
        return str(Path(source).resolve()) if source else source
    return str(Path(named).resolve()) if isinstance(named, str) and named else source


def day_note(info: dict[str, Any], test: pd.DataFrame, who: str) -> str | None:
    """When this window's as-of dates fall on another day of the month than the model's own test dates: at a
    month end every bill of the month is past due, on the 10th most are not, so the customers are unlike
    those it learned from (as `gridrisk score` says of a scoring date)."""
    from serving.batch import learned_day

    learned_on = learned_day(info)
    dates = [pd.Timestamp(d) for d in sorted(test["as_of"].unique())]
    if learned_on is None or not dates:
        return None
    here: int | str = "end" if all(d.is_month_end for d in dates) else dates[-1].day
    if here == learned_on:
        return None

    def words(day: int | str) -> str:
        return "month ends" if day == "end" else f"day {day} of each month"

    fix = '[as_of] day = "end"' if learned_on == "end" else f"[as_of] day = {learned_on}"
    return (
        f"{who} was trained on {words(learned_on)}, and this window's as-of dates are {words(here)}: the "
        f"customers' latest bills are at another stage (due or not yet), so its numbers here are not those "
        f"of its own day; evaluate it with its own config (no --config), or a config with {fix}"
    )


def _record_decision(
    client,
    task: str,
    decision: GateDecision,
    tags: dict[str, str],
    regate: Callable[[Any], GateDecision] | None = None,
) -> tuple[str, GateDecision]:
    """Apply the gate's decision to the registry (gated again by `regate` when the champion moved meanwhile)
    and log the final one on the training run (finite numbers only)."""
    import mlflow

    decision = apply_decision(client, task, decision, regate)
    mlflow.set_tags({**decision.tags(), **tags})
    mlflow.log_metrics({k: v for k, v in decision.metrics().items() if np.isfinite(v)})
    return decision.challenger.version, decision


# -- MLflow logging helpers ----------------------------------------------------------------------------------
def resolved_config(config: ExperimentConfig, split: TimeSplit, warehouse: Path | None) -> dict[str, Any]:
    """The config as the run used it: the first and last as-of months of the split (not "auto" / "latest"),
    the gap in days, and absolute paths (the warehouse from GRIDRISK_WAREHOUSE too). `as_written.json` keeps
    the config as given."""
    out = config.resolved()
    dates = [*split.train, *split.validation, *split.test, *split.dropped]
    out["as_of"].update(start=f"{min(dates):%Y-%m}", end=f"{max(dates):%Y-%m}")
    out["split"]["gap_days"] = split.gap_days
    if warehouse is not None:
        out["warehouse"] = str(Path(warehouse).resolve())
    elif config.warehouse is not None:
        out["warehouse"] = str(Path(config.warehouse).resolve())
    if config.training_set is not None:
        out["training_set"] = str(Path(config.training_set).resolve())
    return out


def log_written(config: ExperimentConfig) -> None:
    """The config as written (`config/as_written.json`) and, apart from it, what the command line changed
    (`config/overrides.json` and the tag `config_overrides`); `--warehouse` had been folded into the first."""
    import mlflow

    mlflow.log_dict(config.as_written(), "config/as_written.json")
    overrides = config.overrides()
    if overrides:
        mlflow.log_dict(overrides, "config/overrides.json")
        mlflow.set_tag("config_overrides", json.dumps(overrides, sort_keys=True)[:5000])


def _flat_params(
    config, resolved: dict[str, Any], params, model: TaskModel, train, validation, test, n_features: int
) -> dict[str, Any]:
    """Every config key the run used, as params to compare runs by in the MLflow table: the resolved values
    (`as_of.start` the first month used, not "auto"; `split.gap_days` in days, not None) and the config's
    `search.n_trials` whether or not the search ran (`search.enabled` says whether it did)."""
    out: dict[str, Any] = {f"lightgbm.{k}": v for k, v in params.model_dump().items()}
    for section in ("as_of", "split", "gate", "evaluation", "search", "sample", "calibration"):
        out.update({f"{section}.{k}": _param(v) for k, v in resolved[section].items()})
    out.update(
        {
            "best_iteration": model.best_iteration_,
            "n_features": n_features,
            "rows_train": len(train),
            "rows_validation": len(validation),
            "rows_test": len(test),
        }
    )
    if hasattr(model, "fold_trees_"):
        out["fold_trees"] = ",".join(str(t) for t in model.fold_trees_)
    out["calibration.served"] = model.calibrator_.method
    return out


def _param(value: Any) -> Any:
    """A list as MLflow shows it best: "0.01,0.05"."""
    return ",".join(str(v) for v in value) if isinstance(value, list | tuple) else value


def _log_metrics(
    metrics: dict[str, dict[str, float]], segments: dict[str, float], extra: dict[str, float]
) -> None:
    import mlflow

    out: dict[str, float] = {}
    for scorer, values in metrics.items():
        prefix = {"model": "test_", "oracle": "oracle_"}.get(scorer, f"baseline_{scorer}_")
        out.update({f"{prefix}{k}": v for k, v in values.items()})
    out.update({f"test_{k}": v for k, v in segments.items()})
    out.update(extra)
    mlflow.log_metrics({k: float(v) for k, v in out.items() if v is not None and np.isfinite(v)})


def _log_tables(test: pd.DataFrame, scorers: list[Scored], metrics: dict[str, dict[str, float]]) -> None:
    import mlflow

    y = test["label"].to_numpy()
    as_of = test["as_of"].to_numpy()
    lifts = []
    for s in scorers:
        table = lift_by_decile(y, s.list_score if s.list_score is not None else s.score, as_of)
        lifts.append(table.assign(scorer=s.name))
    mlflow.log_text(pd.concat(lifts).to_csv(index=False), "tables/lift_by_decile.csv")
    mlflow.log_text(json.dumps(metrics, indent=1, default=float), "tables/test_metrics.json")


def _log_dataset(
    frame: pd.DataFrame,
    features: list[str],
    source: str,
    spec: TaskSpec,
    digest: str,
    context: str = "training",
) -> None:
    """Log the training set as an MLflow dataset input: name, source, schema and our content digest.

    A metadata dataset, because `mlflow.data.from_pandas` re-hashes and profiles the whole frame (seconds at
    a million rows) while `data_fingerprint` already hashes every row.
    """
    import mlflow
    from mlflow.data.meta_dataset import MetaDataset
    from mlflow.data.sources import LocalArtifactDatasetSource
    from mlflow.models import infer_signature

    columns = ["customer_id", "as_of", *features, "label", "amount_at_stake"]
    with warnings.catch_warnings():
        # MLflow hints that integer columns cannot hold missing values; the schema is only documentation here.
        warnings.simplefilter("ignore", UserWarning)
        schema = infer_signature(frame[columns].head(1000)).inputs
    location = Path(source).resolve().as_uri() if source else "unknown"
    dataset = MetaDataset(
        LocalArtifactDatasetSource(location),
        name=f"{spec.task.value}-training-set",
        digest=digest,
        schema=schema,
    )
    mlflow.log_input(dataset, context=context)


def _log_package(package: PackagedModel, train: pd.DataFrame) -> str:
    """Save the package and log it as a pyfunc; returns the logged model's URI."""
    import mlflow
    from mlflow.models import infer_signature

    from serving.model import pyfunc_class

    example = input_example(train, package)
    X = package.spec.matrix(example)
    margin = package.raw_margin(X)
    output = pd.DataFrame({"probability": package.predict_proba(X), "raw_margin": margin})
    with tempfile.TemporaryDirectory() as tmp:
        path = package.save(Path(tmp) / "package")
        info = mlflow.pyfunc.log_model(
            name="model",
            python_model=pyfunc_class()(),
            artifacts={"package": str(path)},
            pip_requirements=_pinned_requirements(),
            signature=infer_signature(example, output),
            input_example=example,
        )
    return info.model_uri


def _pinned_requirements() -> list[str]:
    from importlib.metadata import PackageNotFoundError, version

    out = []
    for name in PIP_REQUIREMENTS:
        try:
            out.append(f"{name}=={version(name)}")
        except PackageNotFoundError:
            out.append(name)
    return out


# -- evaluating a registered model ---------------------------------------------------------------------------
@dataclass
class EvaluationReport:
    task: str
    model_uri: str
    run_id: str
    primary_metric: str
    split: TimeSplit
    metrics: dict[str, dict[str, float]]
    segments: dict[str, float]
    version: str = ""  # the version evaluated (the one an alias held)
    notes: list[str] = field(default_factory=list)  # what flatters or skews its numbers on this window


def version_config(tracking_uri: str, model_uri: str, **overrides: Any) -> ExperimentConfig | None:
    """The config a registered version was trained with (its run's `config/resolved.json`: the as-of months,
    day and gap it used, its warehouse or training set), with `overrides` (e.g. warehouse=…) in its place;
    None when its run logged none (a version from before these records, or a deleted run)."""
    from mlflow.exceptions import MlflowException

    from serving.model import model_reference
    from training.config import with_overrides

    client = client_for(tracking_uri)
    name, version = model_reference(model_uri, client)
    run_id = client.get_model_version(name, version).run_id
    if not run_id:
        return None
    with tempfile.TemporaryDirectory() as tmp:
        try:
            path = client.download_artifacts(run_id, "config/resolved.json", tmp)
        except (MlflowException, OSError):
            return None
        raw = json.loads(Path(path).read_text(encoding="utf-8"))
    from training.config import config_from_dict

    if overrides.get("warehouse") is not None:
        # Another warehouse asked for: the version's prebuilt set (read before the warehouse) would have been
        # evaluated instead, without a word.
        raw["training_set"] = None
    config = config_from_dict(raw, f"config/resolved.json of {name} version {version} (run {run_id})")
    return with_overrides(config, **overrides)


def evaluate_model(
    config: ExperimentConfig,
    *,
    model_uri: str,
    warehouse: Path,
    tracking_uri: str,
    artifact_root: Path | None,
    progress: Progress = _noop,
) -> EvaluationReport:
    """Score a registered model on the config's test window next to the baselines (and the oracle), and log
    the numbers as an evaluation run in the task's experiment."""
    import mlflow

    from serving.model import load_packaged_model, model_reference

    spec = task_spec(config.task)
    # The version behind an alias now: the run names it, and an alias moved meanwhile changes nothing.
    name, version = model_reference(model_uri, client_for(tracking_uri))
    progress("training set", 0.0)
    frame = load_training_frame(config, Path(warehouse), progress)
    frame = frame.assign(as_of=pd.to_datetime(frame["as_of"]).astype("datetime64[ns]"))
    split, train, _, test = split_frame(frame, spec, config)
    progress("fit", None)
    mlflow.set_tracking_uri(tracking_uri)
    with tempfile.TemporaryDirectory() as tmp:
        package = load_packaged_model(f"models:/{name}/{version}", Path(tmp), tracking_uri)
    missing = [n for n in package.spec.names if n not in test.columns]
    if missing:
        raise TrainingError(
            f"{model_uri} needs features {missing[:5]} that this training set lacks; "
            f"evaluate it on a training set built with its feature set"
        )
    progress("baselines", None)
    logistic = LogisticBaseline(package.spec.names, seed=config.lightgbm.seed).fit(train)
    progress("evaluate", None)
    _, metrics, segments = evaluate_on_test(
        test,
        package.predict_proba(package.spec.matrix(test)),
        logistic.predict_proba(test),
        spec,
        config.evaluation,
        truth_dir_for(config, Path(warehouse)),
    )
    fingerprint = data_fingerprint(frame)
    source = str(Path(config.training_set or warehouse).resolve())
    client = client_for(tracking_uri)
    who = f"{name} version {version}"
    notes = [
        note
        for note in (
            data_note(
                package.info,
                trained_on(client, client.get_model_version(name, version).run_id),
                (source, fingerprint),
                test,
                spec.label_window_days,
                who=who,
                against="this evaluation",
                so="so its numbers here are flattered",
            ),
            day_note(package.info, test, who),
        )
        if note is not None
    ]
    for note in notes:
        logger.warning("%s evaluation: %s", spec.task.value, note)
    experiment_id = ensure_experiment(tracking_uri, experiment_name(spec.task.value), artifact_root)
    with mlflow.start_run(experiment_id=experiment_id, run_name=f"evaluate-{spec.task.value}") as run:
        mlflow.set_tags(
            {
                "gridrisk.kind": "evaluation",
                "task": spec.task.value,
                "model_uri": model_uri,
                "model_version": version,
                "data_source": source,
                "data_fingerprint": fingerprint,
                **split.summary(),
                **({"evaluation_notes": " | ".join(notes)[:5000]} if notes else {}),
            }
        )
        mlflow.log_dict(config.resolved(), "config/evaluated_with.json")
        _log_dataset(frame, package.spec.names, str(warehouse), spec, fingerprint, context="evaluation")
        _log_metrics(metrics, segments, {})
    return EvaluationReport(
        spec.task.value,
        model_uri,
        run.info.run_id,
        spec.primary_metric,
        split,
        metrics,
        segments,
        version=str(version),
        notes=notes,
    )
