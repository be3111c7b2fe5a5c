"""The models page's facts: for each task the champion and the challenger, their test-window metrics, when
they were registered and promoted, and the gate's verdict — read from the MLflow registry the service uses.

Training records a gate verdict as version tags (`gate.decision`, `gate.reason`) inside the training run and a
manual promotion as `promotion.at` / `promotion.reason`; MLflow keeps no time for an alias move, so a gate
promotion is dated by the end of the run that made it (the page says so).
"""

from __future__ import annotations

import datetime as dt
import logging
from dataclasses import dataclass, field
from typing import Protocol

from serving.model_store import MlflowRegistry, ModelStore
from serving.schemas import TaskStatus
from serving.settings import registered_name
from serving.snapshot import SnapshotStore
from serving.status import task_status

logger = logging.getLogger(__name__)

ALIASES = ("champion", "challenger")
METRIC_PREFIX = "test_"


@dataclass
class AliasView:
    alias: str
    version: str
    run_id: str | None = None
    registered_at: dt.datetime | None = None
    promoted_at: dt.datetime | None = None
    promoted_by: str | None = None  # "gate" | "override"
    decision: str | None = None
    metrics: dict[str, float] = field(default_factory=dict)  # test-window metrics without the prefix


@dataclass
class TaskModels:
    task: str
    name: str
    serving: TaskStatus
    primary_metric: str | None
    metric_names: list[str]
    aliases: dict[str, AliasView | None]


class AliasSource(Protocol):
    """Where alias details come from: MLflow in production, the served packages when it cannot be asked."""

    def alias(self, name: str, alias: str) -> AliasView | None: ...


def _from_ms(ms: int | None) -> dt.datetime | None:
    return dt.datetime.fromtimestamp(ms / 1000, tz=dt.UTC) if ms else None


class MlflowAliases:
    """Alias details from an MLflow registry: version tags, the run's `test_*` metrics and times."""

    def __init__(self, uri: str) -> None:
        from mlflow import MlflowClient

        self.client = MlflowClient(tracking_uri=uri, registry_uri=uri)

    def alias(self, name: str, alias: str) -> AliasView | None:
        from mlflow.exceptions import MlflowException

        try:
            mv = self.client.get_model_version_by_alias(name, alias)
        except MlflowException:
            return None
        tags = dict(mv.tags or {})
        run = None
        if mv.run_id:
            try:
                run = self.client.get_run(mv.run_id)
            except MlflowException as exc:
                logger.warning("run %s of %s v%s unreadable: %s", mv.run_id, name, mv.version, exc)
        view = AliasView(
            alias=alias,
            version=str(mv.version),
            run_id=mv.run_id,
            registered_at=_from_ms(mv.creation_timestamp),
            metrics={
                k.removeprefix(METRIC_PREFIX): float(v)
                for k, v in (run.data.metrics.items() if run else ())
                if k.startswith(METRIC_PREFIX)
            },
            decision=tags.get("promotion.reason") or tags.get("gate.reason"),
        )
        if "promotion.at" in tags:
            view.promoted_at = dt.datetime.fromisoformat(tags["promotion.at"])
            view.promoted_by = "override"
        elif tags.get("gate.decision") == "promoted":
            view.promoted_at = _from_ms(run.info.end_time) if run else None
            view.promoted_by = "gate"
        return view


class ServedAliases:
    """Without a readable registry: the champion the service holds, from its package; no challenger."""

    def __init__(self, models: ModelStore) -> None:
        self.models = models

    def alias(self, name: str, alias: str) -> AliasView | None:
        served = {m.name: m for m in self.models.loaded().values()}
        if alias != "champion" or name not in served:
            return None
        model = served[name]
        return AliasView(alias=alias, version=model.version, metrics=dict(model.package.metrics))


def alias_source(models: ModelStore) -> AliasSource:
    if models.registry_error is None and isinstance(models.registry, MlflowRegistry):
        return MlflowAliases(models.registry.uri)
    return ServedAliases(models)


def model_board(
    models: ModelStore, snapshots: SnapshotStore, tasks: list[str], source: AliasSource
) -> list[TaskModels]:
    out = []
    loaded = models.loaded()
    for task in tasks:
        name = registered_name(task)
        aliases = {alias: source.alias(name, alias) for alias in ALIASES}
        served = loaded.get(task)
        # The served package lists the overall metrics; the runs also hold per-segment ones, left out here.
        if served is not None and served.package.metrics:
            names = sorted(served.package.metrics)
        else:
            names = sorted({k for view in aliases.values() if view for k in view.metrics})
        primary = served.package.info.get("primary_metric") if served is not None else None
        if primary in names:
            names.remove(primary)
            names.insert(0, primary)
        out.append(
            TaskModels(
                task=task,
                name=name,
                serving=task_status(task, models, snapshots),
                primary_metric=primary,
                metric_names=names,
                aliases=aliases,
            )
        )
    return out
