"""Training sets and scoring frames: a task's population at many as-of dates with features, label, amount.

`build_training_set` is what `gridrisk features` and training call; `build_scoring_frame` is what serving
calls with today's as-of. Both run the same partition function through an engine (`local` or `spark`), so a
feature has exactly one definition. `write_training_set` stores the Parquet with a `.meta.json` beside it.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Callable, Sequence
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pandas as pd

from features import labels
from features.engines.partition import SEGMENT_COLUMNS, PartitionJob
from features.feature_sets import CATEGORICAL_FEATURES, TASK_FEATURES, feature_set_version
from features.point_in_time import as_of_days
from features.sample import CustomerSample

logger = logging.getLogger(__name__)

ENGINES = ("local", "spark")
__all__ = ["SEGMENT_COLUMNS", "build_scoring_frame", "build_training_set", "write_training_set"]


class TrainingSetError(Exception):
    """A training set cannot be built as asked (unknown engine, as-of dates whose labels are not observed)."""


def _engine(engine: str | None, spark: Any) -> str:
    """The engine asked: a session given means Spark (the caller's own: its master, its settings)."""
    if spark is not None and engine not in (None, "spark"):
        raise TrainingSetError(
            f"a Spark session was passed with engine={engine!r}; leave out engine, or pass spark"
        )
    return engine or ("spark" if spark is not None else "local")


def _run(
    warehouse: Path, job: PartitionJob, engine: str, progress: Callable | None, spark: Any = None
) -> pd.DataFrame:
    if engine == "local":
        from features.engines import local

        return local.run(Path(warehouse), job, progress=progress)
    if engine == "spark":
        from features.engines import spark as spark_engine

        return spark_engine.run(Path(warehouse), job, progress=progress, spark=spark)
    raise TrainingSetError(f"engine {engine!r} is unknown; use one of {', '.join(ENGINES)}")


def _finish(frame: pd.DataFrame, task: str, with_labels: bool) -> pd.DataFrame:
    """Column order and dtypes of the contract with training and serving."""
    features = TASK_FEATURES[task]
    cols = ["customer_id", "as_of", *SEGMENT_COLUMNS, *features]
    cols += ["label", "amount_at_stake"] if with_labels else ["amount_at_stake"]
    out = frame[cols].sort_values(["as_of", "customer_id"], kind="stable").reset_index(drop=True)
    out["customer_id"] = out["customer_id"].astype(str)
    out["as_of"] = pd.to_datetime(out["as_of"]).astype("datetime64[ns]")
    for c in (*SEGMENT_COLUMNS, *(f for f in features if f in CATEGORICAL_FEATURES)):
        out[c] = out[c].astype("str").where(out[c].notna(), None) if len(out) else out[c].astype("str")
    for f in features:
        if f not in CATEGORICAL_FEATURES:
            out[f] = out[f].astype("float64")
    out["amount_at_stake"] = out["amount_at_stake"].astype("float64")
    if with_labels:
        out["label"] = out["label"].astype("int8")
    return out


def build_training_set(
    warehouse: Path,
    task: str,
    as_of_dates: Sequence,
    *,
    engine: str | None = None,
    progress: Callable[[int, int], None] | None = None,
    sample: CustomerSample | None = None,
    spark: Any = None,
) -> pd.DataFrame:
    """The task's population at each as-of date with features, `label` (int8), `amount_at_stake` (yuan).

    Every as-of date must have a fully observed label window (see `labels.latest_labelable_as_of`). With a
    `sample`, the dates before its `whole_from` keep only the sampled customers (`features.sample`). `engine`
    is `local` (default) or `spark`; `spark=session` runs the Spark engine in that SparkSession (a cluster's,
    with its own master and settings), which is left running.
    """
    engine = _engine(engine, spark)
    labels.check_task(task)
    days = as_of_days(as_of_dates)
    end = labels.check_inside_data(Path(warehouse), days, scoring=False)
    late = labels.unlabelable(days, end, task)
    if late:
        latest = end - labels.label_observable_until(task)
        raise TrainingSetError(
            f"as-of dates {', '.join(d.date().isoformat() for d in late)} have {task} label windows past the "
            f"warehouse's data end {end.date()}; the latest labelable as-of for {task} is {latest.date()}: "
            "drop the later dates or load newer data"
        )
    job = PartitionJob.make(task, days, with_labels=True, sample=sample)
    frame = _finish(_run(Path(warehouse), job, engine, progress, spark), task, with_labels=True)
    frame.attrs.update({"task": task, "warehouse": str(Path(warehouse).resolve()), "engine": engine})
    if sample is not None:
        frame.attrs["sample"] = sample.describe()
    logger.info(
        "training set %s: %d rows over %d as-of dates, label rate %.4f",
        task,
        len(frame),
        len(days),
        float(frame["label"].mean()) if len(frame) else float("nan"),
    )
    return frame


def build_scoring_frame(
    warehouse: Path, task: str, as_of, *, engine: str | None = None, spark: Any = None
) -> pd.DataFrame:
    """The task's population at `as_of` with the training columns minus `label` (what a model scores).
    `engine` and `spark=session` as for `build_training_set`."""
    engine = _engine(engine, spark)
    labels.check_task(task)
    labels.check_inside_data(Path(warehouse), as_of_days([as_of]), scoring=True)
    job = PartitionJob.make(task, [as_of], with_labels=False)
    return _finish(_run(Path(warehouse), job, engine, None, spark), task, with_labels=False)


def write_training_set(
    frame: pd.DataFrame, path: Path, *, task: str | None = None, warehouse: Path | None = None
):
    """Write the frame as Parquet and `<path>.meta.json` (feature-set version, rows, label rate per as-of)."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    frame.to_parquet(path, index=False)
    task = task or frame.attrs.get("task") or _guess_task(frame)
    warehouse = warehouse or frame.attrs.get("warehouse")
    per_as_of = (
        frame.groupby("as_of")["label"].agg(["size", "mean"])
        if "label" in frame
        else pd.DataFrame(columns=["size"])
    )
    meta = {
        "task": task,
        "feature_set_version": feature_set_version(task) if task else None,
        "features": TASK_FEATURES.get(task, []) if task else [],
        "rows": len(frame),
        "label_rate": float(frame["label"].mean()) if "label" in frame and len(frame) else None,
        "as_of_dates": [d.date().isoformat() for d in pd.to_datetime(sorted(frame["as_of"].unique()))],
        "per_as_of": [
            {
                "as_of": pd.Timestamp(d).date().isoformat(),
                "rows": int(r["size"]),
                "label_rate": float(r["mean"]),
            }
            for d, r in per_as_of.iterrows()
        ],
        "warehouse": str(Path(warehouse).resolve()) if warehouse else None,
        "sample": frame.attrs.get("sample"),
        "written_at": datetime.now(UTC).isoformat(timespec="seconds"),
    }
    meta_path = path.with_name(path.name + ".meta.json")
    meta_path.write_text(json.dumps(meta, indent=1, ensure_ascii=False))
    return path


def _guess_task(frame: pd.DataFrame) -> str | None:
    cols = set(frame.columns)
    matches = [t for t, feats in TASK_FEATURES.items() if set(feats) <= cols]
    return matches[0] if len(matches) == 1 else None
