"""The models page's facts: for each task the champion and the challenger, their test-window metrics, when
they were registered and promoted, and the gate's verdict — read from the MLflow registry the service uses.

Training records a gate verdict as version tags (`gate.decision`, `gate.reason`) inside the training run and a
manual promotion as `promotion.at` / `promotion.reason`; MLflow keeps no time for an alias move, so a gate
promotion is dated by the end of the run that made it (the page says so).

The tags are history, the aliases are the present: `promotion.*` stays on a version after it is replaced, so
only the champion is shown as promoted. Any other version shows the gate's own verdict on it and, when it was
champion once, how that ended (`champion.until`, `champion.replaced_by`, … written by training/registry.py).
A challenger that is the champion too (registries from before `challenger` was settled) is not shown twice.
"""

from __future__ import annotations

import datetime as dt
import logging
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Protocol

from serving.model_store import MlflowRegistry, ModelStore
from serving.schemas import TaskStatus
from serving.settings import registered_name
from serving.snapshot import SnapshotStore
from serving.status import task_status

if TYPE_CHECKING:
    from mlflow.entities.model_registry import ModelVersion

logger = logging.getLogger(__name__)

ALIASES = ("champion", "challenger")
METRIC_PREFIX = "test_"
# Shown first, after the task's primary metric; the rest are folded away (the page listed ~25 at once).
HEADLINE_METRICS = ("roc_auc", "pr_auc", "brier")
COUNT_METRICS = ("rows", "positives")  # logged as floats by MLflow, read as whole numbers (389.0000)


@dataclass
class PastTerm:
    """How a version's latest time as champion ended, as far as its tags say."""

    since: dt.datetime | None  # its manual promotion, or the end of the training run whose gate promoted it
    until: dt.datetime | None  # None: promoted by hand, replaced before replacements were tagged
    replaced_by: str | None = None
    replaced_how: str | None = None  # "override" | "gate"
    reason: str | None = None  # why it was replaced; with `until` unknown, why it had been promoted


@dataclass
class AliasView:
    alias: str
    version: str
    run_id: str | None = None
    registered_at: dt.datetime | None = None
    promoted_at: dt.datetime | None = None  # the champion's only: when its current time as champion began
    promoted_by: str | None = None  # "gate" | "override"
    decision: str | None = None  # the override's reason for a champion promoted by hand, else the gate's
    metrics: dict[str, float] = field(default_factory=dict)  # test-window metrics without the prefix
    is_champion: bool = True
    gate_verdict: str | None = None  # "promoted" | "refused" | "unknown" (a reason without a decision)
    gate_reason: str | None = None
    past: PastTerm | None = None  # not the champion, but it was once
    replaced: str | None = None  # the champion's only: the version its promotion (by hand or gate) replaced


@dataclass
class TaskModels:
    task: str
    name: str
    serving: TaskStatus
    primary_metric: str | None
    metric_names: list[str]
    aliases: dict[str, AliasView | None]
    challenger_is_champion: bool = False  # the newest version was promoted: shown once, as the champion
    replaced: AliasView | None = None  # the version the champion replaced, when it is not the challenger

    @property
    def headline_metrics(self) -> list[str]:
        return [m for m in self.metric_names if m == self.primary_metric or m in HEADLINE_METRICS]

    @property
    def other_metrics(self) -> list[str]:
        return [m for m in self.metric_names if m not in self.headline_metrics]


def metric_text(name: str, value: float) -> str:
    """A metric as the page prints it: counts whole, with thousands separators; the rest to four places."""
    if name in COUNT_METRICS or name.startswith(tuple(f"{c}_" for c in COUNT_METRICS)):
        return f"{value:,.0f}"
    return f"{value:.4f}"


class AliasSource(Protocol):
    """Where alias details come from: MLflow in production, the served packages when it cannot be asked."""

    def alias(self, name: str, alias: str) -> AliasView | None: ...

    def version(self, name: str, version: str) -> AliasView | None: ...


def _from_ms(ms: int | None) -> dt.datetime | None:
    return dt.datetime.fromtimestamp(ms / 1000, tz=dt.UTC) if ms else None


def _parse_time(text: str | None) -> dt.datetime | None:
    """An ISO time from a tag (UTC when it names no zone); None when absent or unreadable."""
    if not text:
        return None
    try:
        value = dt.datetime.fromisoformat(text)
    except ValueError:
        logger.warning("unreadable time tag %r", text)
        return None
    return value if value.tzinfo is not None else value.replace(tzinfo=dt.UTC)


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
        return self._view(mv, alias)

    def version(self, name: str, version: str) -> AliasView | None:
        """One version by number (the one a promotion replaced), as it stands now."""
        from mlflow.exceptions import MlflowException

        try:
            mv = self.client.get_model_version(name, version)
        except MlflowException:
            return None
        return self._view(mv, "replaced")

    def _view(self, mv: ModelVersion, alias: str) -> AliasView:
        from mlflow.exceptions import MlflowException

        tags = dict(mv.tags or {})
        run = None
        if mv.run_id:
            try:
                run = self.client.get_run(mv.run_id)
            except MlflowException as exc:
                logger.warning("run %s of %s v%s unreadable: %s", mv.run_id, mv.name, mv.version, exc)
        gate_reason = tags.get("gate.reason")
        gate_decision = tags.get("gate.decision")
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
            is_champion=alias == "champion" or "champion" in (getattr(mv, "aliases", None) or ()),
            gate_verdict=(gate_decision if gate_decision in ("promoted", "refused") else "unknown")
            if gate_reason
            else None,
            gate_reason=gate_reason,
            decision=gate_reason,
        )
        manual_at = _parse_time(tags.get("promotion.at"))
        gate_at = _from_ms(run.info.end_time) if run and gate_decision == "promoted" else None
        if view.is_champion:
            # Its current time as champion began with its latest manual promotion, if it had one (the gate
            # promotes a version only when it is trained, before any override of it), else with the gate.
            if manual_at is not None:
                view.promoted_at, view.promoted_by = manual_at, "override"
                view.decision = tags.get("promotion.reason") or gate_reason
                view.replaced = tags.get("promotion.previous_champion")
            elif gate_decision == "promoted":
                view.promoted_at, view.promoted_by = gate_at, "gate"
                view.replaced = tags.get("gate.champion_version")
            if view.replaced in ("", "none"):  # the first champion replaced nothing
                view.replaced = None
            return view
        until = _parse_time(tags.get("champion.until"))
        if until is not None and (manual_at is None or manual_at <= until):
            view.past = PastTerm(
                since=manual_at or gate_at,
                until=until,
                replaced_by=tags.get("champion.replaced_by"),
                replaced_how=tags.get("champion.replaced_how"),
                reason=tags.get("champion.replaced_reason"),
            )
        elif manual_at is not None:  # promoted by hand, replaced without saying so (an older registry)
            view.past = PastTerm(since=manual_at, until=None, reason=tags.get("promotion.reason"))
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

    def version(self, name: str, version: str) -> AliasView | None:
        return None  # only the registry knows versions that are not served


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
        champion, challenger = aliases["champion"], aliases["challenger"]
        same = challenger is not None and (
            challenger.is_champion or (champion is not None and challenger.version == champion.version)
        )
        if same:
            aliases["challenger"] = None  # one version is never shown as both
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
        # The version a promotion replaced, unless it is on the page already (the challenger).
        shown = {view.version for view in aliases.values() if view}
        gone = champion.replaced if champion is not None else None
        replaced = source.version(name, gone) if gone is not None and gone not in shown else None
        out.append(
            TaskModels(
                task=task,
                name=name,
                serving=task_status(task, models, snapshots),
                primary_metric=primary,
                metric_names=names,
                aliases=aliases,
                challenger_is_champion=same,
                replaced=replaced,
            )
        )
    return out
