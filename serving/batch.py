"""Batch scoring (`gridrisk score`): the champion scores a task's population as of a date into a snapshot.

Features come from `features.training_set.build_scoring_frame`, the same functions training used; scores
and reasons from `snapshot.score_frame`. Each step is timed for the CLI and the benchmarks.
"""

from __future__ import annotations

import datetime as dt
import logging
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pandas as pd

from serving.errors import AsOfOutOfRange, HomeUnwritable
from serving.model import definitions_skew
from serving.model_store import LoadedModel, MlflowRegistry, ModelStore, Registry
from serving.settings import ServingSettings
from serving.settlement import OWED_FEATURE, add_balances
from serving.snapshot import latest_path, score_frame, write_snapshot

logger = logging.getLogger(__name__)


@dataclass
class BatchReport:
    task: str
    as_of: dt.date
    model: str
    version: str
    source: str
    rows: int
    path: Path
    served: bool  # the service's `latest` pointer names this file (False for `--out` outside the store)
    seconds: dict[str, float] = field(default_factory=dict)
    skew: str | None = None  # the model learned features defined otherwise than this code computes them
    day_skew: str | None = None  # scored on another day of the month than the model's dates (`day_skew`)

    @property
    def explain_ms_per_row(self) -> float:
        return 1000 * self.seconds.get("score", 0.0) / max(self.rows, 1)


def champion(settings: ServingSettings, task: str, registry: Registry | None = None) -> LoadedModel:
    """The task's champion as the service would load it (registry, else the local copy)."""
    store = ModelStore(
        settings.model_copy(update={"tasks": [task]}),
        registry or MlflowRegistry(settings.tracking_uri, settings.registry_timeout_seconds),
    )
    store.refresh()
    return store.get(task)


def default_as_of(warehouse: Path, info: dict[str, Any] | None = None) -> dt.date:
    """The latest date on the model's day of the month (`learned_day`: month ends for the shipped configs) at
    or before the warehouse's data end, the newest event it holds; the data end itself for a model that does
    not say, or when no such date has a bill before it. Scored on another day, the customers would be unlike
    those the model learned from (`day_skew`)."""
    from features.labels import LabelError, check_inside_data, data_end
    from features.point_in_time import day_in_month

    end = pd.Timestamp(data_end(Path(warehouse)).date())
    day = learned_day(info or {})
    if day is None:
        return end.date()
    month = end.to_period("M")
    on_day = day_in_month(month, day)
    if on_day > end:
        on_day = day_in_month(month - 1, day)
    try:
        check_inside_data(Path(warehouse), [on_day], scoring=True)
    except LabelError:
        return end.date()  # a warehouse shorter than a month: no such date with history behind it
    return on_day.date()


def learned_day(info: dict[str, Any]) -> int | str | None:
    """The day of the month of a model's test dates: "end" for month ends, else the day; None when the package
    does not record its dates (packed before they were)."""
    tested = [pd.Timestamp(d) for d in info.get("as_of_test") or []]
    if not tested:
        return None
    return "end" if all(d.is_month_end for d in tested) else tested[-1].day


def day_skew(info: dict[str, Any], as_of: dt.date) -> str | None:
    """What to say when `as_of` falls on another day of the month than the model's test dates: at a month end
    every bill of the month is past due, on the 10th most are not, so the scored customers are unlike those
    the model learned from and its probabilities are off (its ranking less so). None when they agree or the
    model does not say."""
    learned_on = learned_day(info)
    day = pd.Timestamp(as_of)
    # 28 February is a month end and day 28 alike: either model is on its own day there.
    if learned_on is None or learned_on == day.day or (learned_on == "end" and day.is_month_end):
        return None
    learned = "month ends" if learned_on == "end" else f"day {learned_on} of each month"
    when = "a month end" if day.is_month_end else f"day {day.day} of its month"
    same_day = '[as_of] day = "end"' if day.is_month_end else f"[as_of] day = {day.day}"
    fix = f"train with {same_day}" if day.is_month_end or day.day <= 28 else "score as of a month end"
    return (
        f"scoring as of {as_of}, {when}, with a model trained on {learned}: the customers' latest bills are "
        f"at another stage (due or not yet), so its probabilities may be off; {fix}, or pass --as-of a date "
        "on the model's own day"
    )


def scoring_as_of(warehouse: Path, as_of: dt.date | None, info: dict[str, Any] | None = None) -> dt.date:
    """The as-of date to score (default: `default_as_of` for the model `info` describes); AsOfOutOfRange when
    the warehouse cannot describe it (`features.labels.check_inside_data`: before the first bill, after the
    data end)."""
    from features.labels import LabelError, check_inside_data

    if as_of is None:
        return default_as_of(warehouse, info)
    try:
        check_inside_data(Path(warehouse), [pd.Timestamp(as_of)], scoring=True)
    except LabelError as exc:
        raise AsOfOutOfRange(str(exc)) from exc
    return as_of


def score_population(
    settings: ServingSettings,
    task: str,
    as_of: dt.date | None = None,
    out: Path | None = None,
    engine: str = "local",
    registry: Registry | None = None,
    progress: Callable[[str, int, int], None] | None = None,
    make_latest: bool = False,
) -> BatchReport:
    """Build the population's features as of the date, score and explain everyone, write the snapshot."""
    from features.training_set import build_scoring_frame

    seconds: dict[str, float] = {}
    if as_of is not None:
        as_of = scoring_as_of(settings.warehouse_path, as_of)  # before the model: a bad date fails fast
    start = time.perf_counter()
    model = champion(settings, task, registry)
    seconds["load model"] = time.perf_counter() - start
    if as_of is None:  # the model's own day of the month
        as_of = scoring_as_of(settings.warehouse_path, None, model.package.info)

    start = time.perf_counter()
    frame = build_scoring_frame(settings.warehouse_path, task, pd.Timestamp(as_of), engine=engine)
    seconds["features"] = time.perf_counter() - start
    logger.info("%s population as of %s: %d customers", task, as_of, len(frame))

    start = time.perf_counter()
    done = 0

    def step(rows: int) -> None:
        nonlocal done
        done += rows
        if progress is not None:
            progress("score", done, len(frame))

    scores = score_frame(model.package, frame, model.ref, k=settings.top_k, progress=step)
    if task == "arrears" and OWED_FEATURE in frame.columns:  # the lists' "paid since" (serving.settlement)
        scores = add_balances(scores, frame, settings.warehouse_path, as_of)
    seconds["score"] = time.perf_counter() - start

    start = time.perf_counter()
    try:
        path = write_snapshot(
            scores, settings.snapshots_path, task, as_of, out, model=model.ref, make_latest=make_latest
        )
    except OSError as exc:  # a read-only or full home: `gridrisk score` says so in a line, not a traceback
        target = out if out is not None else settings.snapshots_path / task / f"{as_of.isoformat()}.parquet"
        raise HomeUnwritable(
            f"{task} snapshot",
            Path(exc.filename) if exc.filename else target,
            exc,
            "the scores were not saved and the service keeps serving the snapshot it had",
        ) from exc
    seconds["write"] = time.perf_counter() - start
    served = latest_path(settings.snapshots_path, task) == path.resolve()
    return BatchReport(
        task,
        as_of,
        model.name,
        model.version,
        model.source,
        len(scores),
        path,
        served,
        seconds,
        definitions_skew(model.package.info, task),
        day_skew(model.package.info, as_of),
    )
