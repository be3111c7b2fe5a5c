"""MLflow experiments, the model registry and the promotion gate.

One experiment and one registered model per task (`gridrisk-<task>`). A new version gets alias `challenger`;
it becomes `champion` only through `gate` (numbers on the same test window) or `promote` (a logged override).

`challenger` stays on the newest version whatever happens to `champion` (each new version gets it, and a
version promoted while it is the newest holds both); the models page shows such a version once.

Version tags: `gate.*` is the gate's own verdict on the version (set once, when it was trained); `promotion.*`
is its latest manual promotion (who, when, why, what it replaced), kept after it stops being champion;
`champion.*` says how its latest time as champion ended (`champion.until`, `champion.replaced_by`,
`champion.replaced_how` = override | gate, `champion.replaced_reason`), and is removed when it becomes
champion again. Every override is also its own `promote-vN` run, so the whole history stays in MLflow.
"""

from __future__ import annotations

import logging
import math
import os
import re
from collections.abc import Callable
from dataclasses import dataclass, replace
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from training.config import GateConfig
from training.tasks import TrainingError

logger = logging.getLogger(__name__)

CHAMPION = "champion"
CHALLENGER = "challenger"


MODEL_PREFIX = "GRIDRISK_MODEL_PREFIX"
PREFIX_PATTERN = re.compile(r"[a-z0-9][a-z0-9_.-]{0,39}")


def model_name(task: str) -> str:
    """`gridrisk-<task>`, or `gridrisk-<prefix>-<task>` with GRIDRISK_MODEL_PREFIX set (one utility's
    models on a shared tracking server): the service reads the same variable (serving.settings)."""
    from serving.settings import registered_name

    return registered_name(task)


def experiment_name(task: str) -> str:
    return model_name(task)


def model_prefix_error() -> str | None:
    """Why GRIDRISK_MODEL_PREFIX cannot be part of a model name, or None when it can (or is not set)."""
    prefix = os.environ.get(MODEL_PREFIX, "").strip()
    if not prefix or PREFIX_PATTERN.fullmatch(prefix):
        return None
    return (
        f"{MODEL_PREFIX}={prefix!r} cannot name models: use 1-40 lower-case letters, digits, '-', '_' or "
        "'.', starting with a letter or digit (e.g. the utility's short name)"
    )


def is_local_store(tracking_uri: str) -> bool:
    """True for embedded stores (SQLite file or plain folder), whose artifacts go into the gridrisk home."""
    return tracking_uri.startswith(("sqlite:", "file:")) or "://" not in tracking_uri


def client_for(tracking_uri: str):
    from mlflow import MlflowClient

    return MlflowClient(tracking_uri=tracking_uri, registry_uri=tracking_uri)


def ensure_experiment(tracking_uri: str, name: str, artifact_root: Path | None) -> str:
    """The experiment's id, creating it (with artifacts under `artifact_root/<name>` for embedded stores).

    An experiment's artifact location is fixed when MLflow creates it, as an absolute path. After the gridrisk
    home was moved (or restored elsewhere) the embedded store still named the old home's folder, and new
    runs and model versions were written there, recreating it, or failing after the whole fit where it
    cannot be written. So an existing experiment of an embedded store whose artifacts live outside
    `artifact_root` is renamed `<name> (artifacts in <old folder>)`, its runs kept and still listed, and a new
    `<name>` is created under `artifact_root`, with a warning; registered models are not experiments, and
    keep their versions."""
    client = client_for(tracking_uri)
    experiment = client.get_experiment_by_name(name)
    root = (
        Path(artifact_root).resolve() if artifact_root is not None and is_local_store(tracking_uri) else None
    )
    if experiment is not None:
        if experiment.lifecycle_stage == "deleted":
            client.restore_experiment(experiment.experiment_id)
        if root is None or not _outside(experiment.artifact_location, root):
            return experiment.experiment_id
        old = _folder(experiment.artifact_location)
        kept = _free_name(client, f"{name} (artifacts in {old})")
        client.rename_experiment(experiment.experiment_id, kept)
        logger.warning(
            "experiment %s keeps its artifacts in %s, outside this gridrisk home's %s (a home moved or "
            "restored elsewhere): renamed it %r with its runs, and new runs of %s go to a new experiment "
            "under %s. Registered versions still load from where they were written; see the README on "
            "moving a home",
            name,
            old,
            root,
            kept,
            name,
            root,
        )
    location = (root / name).as_uri() if root is not None else None
    return client.create_experiment(name, artifact_location=location)


def _folder(location: str) -> str:
    """A file: URI as a path; anything else as it is."""
    from urllib.parse import unquote, urlparse

    parsed = urlparse(location)
    return unquote(parsed.path) if parsed.scheme == "file" else location


def _outside(location: str | None, artifact_root: Path) -> bool:
    """Whether an embedded store's experiment keeps its artifacts in a folder outside `artifact_root`. A
    location that is not a local folder (an object store someone chose) is left alone."""
    if not location:
        return False
    from urllib.parse import urlparse

    scheme = urlparse(location).scheme
    if scheme not in ("", "file"):
        return False
    return not Path(_folder(location)).resolve().is_relative_to(Path(artifact_root).resolve())


def _free_name(client, wanted: str) -> str:
    """`wanted`, or `wanted` with " 2", " 3", … when an experiment already has that name."""
    name, n = wanted, 1
    while client.get_experiment_by_name(name) is not None:
        n += 1
        name = f"{wanted} {n}"
    return name


def version_by_alias(client, task: str, alias: str):
    """The model version holding `alias`, or None when the alias (or the registered model) does not exist."""
    from mlflow.exceptions import MlflowException

    try:
        return client.get_model_version_by_alias(model_name(task), alias)
    except MlflowException as exc:
        if exc.error_code in ("RESOURCE_DOES_NOT_EXIST", "INVALID_PARAMETER_VALUE", "NOT_FOUND"):
            return None
        raise


def registered_model_uri(tracking_uri: str, task: str, version: str | None, alias: str) -> str:
    """`models:/gridrisk-<task>/<version>`, or `@<alias>` without a version, checked against the registry so a
    wrong one is refused before any data is read; the refusal names the versions and aliases there are."""
    from mlflow.exceptions import MlflowException

    client = client_for(tracking_uri)
    name = model_name(task)
    try:
        found = client.search_model_versions(f"name = '{name}'")
    except MlflowException as exc:
        raise TrainingError(f"cannot read the registry at {tracking_uri}: {exc.message}") from exc
    versions = sorted({str(v.version) for v in found}, key=int)
    if not versions:
        raise TrainingError(
            f"no {name} model is registered in {tracking_uri}; train one with `gridrisk train --task {task}`"
        )
    if version is not None:
        if str(version).strip() not in versions:
            raise TrainingError(
                f"{name} has no version {version!r}; its versions are {', '.join(versions)}: pass one to "
                "--version"
            )
        return f"models:/{name}/{str(version).strip()}"
    aliases = client.get_registered_model(name).aliases  # {alias: version}
    if alias not in aliases:
        held = ", ".join(f"{a} (v{v})" for a, v in sorted(aliases.items())) or "none"
        raise TrainingError(
            f"{name} has no alias {alias!r} (its aliases: {held}); pass one to --alias, or --version V"
        )
    return f"models:/{name}@{alias}"


def register_challenger(client, task: str, model_uri: str, run_id: str, tags: dict[str, str]):
    """Register the logged model as a new version of `gridrisk-<task>` and point `challenger` at it."""
    import mlflow

    name = model_name(task)
    version = mlflow.register_model(model_uri, name, tags=tags)
    if not client.get_registered_model(name).description:
        client.update_registered_model(
            name, description=f"gridrisk {task} risk: calibrated LightGBM with reason texts (serving.model)"
        )
    point_challenger(client, name, str(version.version))
    logger.info("registered %s version %s as %s (run %s)", name, version.version, CHALLENGER, run_id)
    return version


def point_challenger(client, name: str, version: str) -> None:
    """Point `challenger` at `version`, then at the newest version if one was registered meanwhile: two
    trainings against one server each set it to their own version, and the one that set it last (the older
    version) kept it. Setting first and checking after converges: the run whose version is newest sets it
    after registering it, and any run setting an older one later sees the newer version when it checks."""
    client.set_registered_model_alias(name, CHALLENGER, version)
    newest = client.search_model_versions(f"name = '{name}'", max_results=1, order_by=["version_number DESC"])
    if newest and int(newest[0].version) > int(version):
        client.set_registered_model_alias(name, CHALLENGER, str(newest[0].version))
        logger.info(
            "%s version %s was registered while version %s was: %s stays on the newest",
            name,
            newest[0].version,
            version,
            CHALLENGER,
        )


@dataclass(frozen=True)
class GateScores:
    """One model's numbers on the test window the gate compares on."""

    version: str
    primary: float
    roc_auc: float


@dataclass(frozen=True)
class GateDecision:
    promote: bool
    reason: str
    primary_metric: str
    challenger: GateScores
    champion: GateScores | None
    rule: GateScores | None = None  # the task's rule on the same window: the bar while there is no champion

    def metrics(self) -> dict[str, float]:
        out = {
            "gate_promoted": float(self.promote),
            "gate_challenger_primary": self.challenger.primary,
            "gate_challenger_roc_auc": self.challenger.roc_auc,
        }
        if self.champion is not None:
            out.update(
                gate_champion_primary=self.champion.primary, gate_champion_roc_auc=self.champion.roc_auc
            )
        if self.rule is not None:
            out.update(gate_rule_primary=self.rule.primary, gate_rule_roc_auc=self.rule.roc_auc)
        return out

    def tags(self) -> dict[str, str]:
        return {
            "gate.decision": "promoted" if self.promote else "refused",
            "gate.reason": self.reason,
            "gate.primary_metric": self.primary_metric,
            "gate.champion_version": self.champion.version if self.champion else "none",
        }


def decide(
    challenger: GateScores,
    champion: GateScores | None,
    gate: GateConfig,
    primary_metric: str,
    rule: GateScores | None = None,
    *,
    task: str,
) -> GateDecision:
    """The promotion rule, on numbers measured on the same test window:
    primary >= champion's primary + margin (strictly higher when the margin is 0: a tie is refused as "ties
    the champion"), and ROC-AUC >= champion's ROC-AUC - tolerance.

    With no champion yet, the task's rule (what the teams rank by today) is the floor: the first model is
    served when it loses to the rule on neither number, or wins on the one it does not lose on (`_first`).
    A model that ranks the test window worse than chance (ROC-AUC < 0.5) is never served by the gate, first
    or not: its other numbers only measure how it orders a few hits."""
    if challenger.roc_auc < CHANCE_AUC:
        against = (
            f" vs champion v{champion.version} {champion.primary:.4f}"
            if champion is not None
            else (f" vs the rule {rule.primary:.4f}" if rule is not None else "")
        )
        reason = (
            f"{'no champion yet, and it' if champion is None else 'it'} ranks the test window worse than "
            f"chance (ROC-AUC {challenger.roc_auc:.4f} below {CHANCE_AUC:g}), whatever its {primary_metric} "
            f"{challenger.primary:.4f}{against}; {_override(task, challenger.version)}"
        )
        return GateDecision(False, reason, primary_metric, challenger, champion, rule)
    if champion is None:
        return _first(challenger, gate, primary_metric, rule, task)
    need_primary = champion.primary + gate.primary_margin
    need_auc = champion.roc_auc - gate.auc_tolerance
    # With no margin the primary metric must be strictly higher: a tie makes up for nothing, as for a first
    # model against the rule (an identical retrain under `primary_margin = 0` "beat" the champion).
    if gate.primary_margin > 0:
        beats, need = challenger.primary >= need_primary, f">= {need_primary:.4f}"
    else:
        beats, need = challenger.primary > champion.primary, f"> {champion.primary:.4f}"
    keeps_auc = challenger.roc_auc >= need_auc
    facts = (
        f"{primary_metric} {challenger.primary:.4f} vs champion v{champion.version} {champion.primary:.4f} "
        f"(needs {need}); roc_auc {challenger.roc_auc:.4f} vs {champion.roc_auc:.4f} "
        f"(needs >= {need_auc:.4f})"
    )
    if beats and keeps_auc:
        return GateDecision(True, f"beats the champion: {facts}", primary_metric, challenger, champion)
    if not beats and challenger.primary == champion.primary:
        short = "short of the margin" if gate.primary_margin > 0 else "and a tie makes up for nothing"
        why = f"ties the champion on its primary metric, {short}"
    elif not beats:
        why = "does not beat the champion's primary metric by the margin"
    else:
        why = "loses too much ROC-AUC"
    return GateDecision(False, f"{why}: {facts}", primary_metric, challenger, champion)


CHANCE_AUC = 0.5  # a ROC-AUC below it orders the customers worse than a coin toss would


def _override(task: str, version: str) -> str:
    return f'`gridrisk promote --task {task} --version {version} --reason "…"` serves it anyway'


def _first(
    challenger: GateScores, gate: GateConfig, primary_metric: str, rule: GateScores | None, task: str
) -> GateDecision:
    """The first model against the task's rule. Each number is won, level or lost: the primary metric is won
    only when strictly higher (a tie is level), ROC-AUC is level within `gate.auc_tolerance` of the rule's.
    The model is served when it loses on neither, or when a loss on one is made up by a win on the other (a
    better top of the list, or a better list overall). A tie on the primary metric is no win: on a small
    utility both lists can hold no hit at all (0.0000 vs 0.0000), and a model ranking at ROC-AUC 0.08 against
    the rule's 0.58 had been served on it. A number the rule lacks (NaN: it ranks nobody apart) counts as
    won: the rule has nothing there to beat."""
    if rule is None:
        return GateDecision(True, "no champion yet", primary_metric, challenger, None)
    override = _override(task, challenger.version)
    if math.isnan(challenger.primary) or math.isnan(challenger.roc_auc):
        reason = (
            f"no champion yet, and its own {primary_metric} {challenger.primary:.4f} / roc_auc "
            f"{challenger.roc_auc:.4f} on the test window cannot be compared with the rule's; {override}"
        )
        return GateDecision(False, reason, primary_metric, challenger, None, rule)
    facts = (
        f"{primary_metric} {challenger.primary:.4f} vs the rule {rule.primary:.4f}; "
        f"roc_auc {challenger.roc_auc:.4f} vs the rule {rule.roc_auc:.4f} (tolerance {gate.auc_tolerance:g})"
    )
    primary = _outcome(challenger.primary, rule.primary, 0.0)
    auc = _outcome(challenger.roc_auc, rule.roc_auc, gate.auc_tolerance)
    names = {"primary": primary_metric, "auc": "ROC-AUC"}
    outcomes = {"primary": primary, "auc": auc}
    lost = [names[k] for k, v in outcomes.items() if v == "lost"]
    won = [names[k] for k, v in outcomes.items() if v == "won"]
    if len(lost) == 2:
        reason = (
            f"no champion yet, and the rule baseline the teams use today beats it on both its primary metric "
            f"and ROC-AUC: {facts}; {override}"
        )
        return GateDecision(False, reason, primary_metric, challenger, None, rule)
    if lost and not won:
        level = "ties" if primary == "level" else "is level with"
        other = primary_metric if primary == "level" else "ROC-AUC (within the tolerance)"
        reason = (
            f"no champion yet, and it {level} the rule baseline on {other} but is worse on {lost[0]}, "
            f"so nothing makes up for the loss: {facts}; {override}"
        )
        return GateDecision(False, reason, primary_metric, challenger, None, rule)
    if lost:
        reason = f"no champion yet; better than the rule baseline on {won[0]}, worse on {lost[0]}: {facts}"
    else:
        reason = f"no champion yet; as good as the rule baseline or better: {facts}"
    return GateDecision(True, reason, primary_metric, challenger, None, rule)


def _outcome(model: float, rule: float, tolerance: float) -> str:
    """won, level or lost: the model's number against the rule's, level within `tolerance` either way (the
    bounds as the champion gate computes them); a number the rule lacks (NaN) is won."""
    if math.isnan(rule) or model > rule + tolerance:
        return "won"
    if model < rule - tolerance:
        return "lost"
    return "level"


def _before_alias_move(name: str, alias: str) -> None:
    """Called between the gate's read of the champion and the check just before the alias moves: tests make
    another training promote here, as a second `gridrisk train` against the same server can."""


GATE_ATTEMPTS = 3  # gates against a champion that keeps moving before the challenger is refused


def apply_decision(
    client,
    task: str,
    decision: GateDecision,
    regate: Callable[[Any], GateDecision] | None = None,
) -> GateDecision:
    """Move `champion` when the gate says so and record the (final) decision on the challenger version.

    The move is a compare-and-set: the champion is read again just before the alias is set, and when it is
    no longer the version the gate compared with (another training promoted meanwhile), the challenger is
    gated again against the new champion (`regate`, given the new champion's version), or refused when
    there is no `regate`; it never overwrites a champion it was not compared with. MLflow has no
    transactions: what is left is the time between that read and the alias write (one request), so one
    training per task per server at a time stays the safe rule."""
    name = model_name(task)
    version = decision.challenger.version
    for attempt in range(GATE_ATTEMPTS + 1):
        if not decision.promote:
            break
        _before_alias_move(name, CHAMPION)
        current = version_by_alias(client, task, CHAMPION)
        now = str(current.version) if current is not None else None
        gated = decision.champion.version if decision.champion is not None else None
        if now in (gated, version):
            if now != version:
                client.set_registered_model_alias(name, CHAMPION, version)
                if current is not None:
                    _record_replaced(client, name, now, version, "gate", decision.reason, _now())
            logger.info("%s version %s is now %s: %s", name, version, CHAMPION, decision.reason)
            break
        moved = (
            f"the champion moved from {'no champion' if gated is None else f'v{gated}'} to v{now} while this "
            "version was gated (another training against this tracking server?)"
        )
        logger.warning("%s: %s", name, moved)
        if regate is None or attempt == GATE_ATTEMPTS:
            decision = replace(
                decision,
                promote=False,
                reason=(
                    f"{moved}; not promoted over a champion it was not compared with. Train again, or "
                    f"{_override(task, version)}"
                ),
            )
            break
        decision = regate(current)
    if not decision.promote:
        logger.info("%s version %s stays %s: %s", name, version, CHALLENGER, decision.reason)
    for key, value in decision.tags().items():
        client.set_model_version_tag(name, version, key, value)
    return decision


REPLACED_TAGS = (
    "champion.until",
    "champion.replaced_by",
    "champion.replaced_how",
    "champion.replaced_reason",
)


def _now() -> str:
    return datetime.now(UTC).isoformat(timespec="seconds")


def _record_replaced(client, name: str, version: str, by: str, how: str, reason: str, at: str) -> None:
    """Tag `version` with how its time as champion ended: when, by which version, how and why."""
    if version == by:
        return
    values = (at, by, how, reason)
    for key, value in zip(REPLACED_TAGS, values, strict=True):
        client.set_model_version_tag(name, version, key, value)
    # Its training run said "champion since …" from an override; that time has ended (a rolled-back version's
    # run kept saying it was champion).
    run_id = client.get_model_version(name, version).run_id
    if run_id:
        since = client.get_run(run_id).data.tags.get("promotion.override", "")
        if since.startswith("champion since "):
            began, _, why = since.removeprefix("champion since ").partition(": ")
            ended = f"champion from {began} until {at} ({why}); replaced by v{by} ({how})"
            client.set_tag(run_id, "promotion.override", ended)


def promote(tracking_uri: str, task: str, version: str, reason: str, user: str = "") -> dict[str, Any]:
    """Manual override: make `version` champion whatever the gate said; log who, why and what it replaced.

    The replaced champion is tagged `champion.*` (until when, by which version, why); `challenger` does not
    move (it stays on the newest version)."""
    import mlflow

    if not reason.strip():
        raise TrainingError("promote needs a --reason: an override of the gate must say why")
    client = client_for(tracking_uri)
    name = model_name(task)
    registered_model_uri(tracking_uri, task, version, CHAMPION)  # refuses a version it lacks, naming them
    target = client.get_model_version(name, str(version).strip())
    previous = version_by_alias(client, task, CHAMPION)
    previous_version = str(previous.version) if previous is not None else "none"
    at = _now()
    target_version = str(target.version)
    if previous_version == target_version:  # retagging would overwrite the record of the real promotion
        raise TrainingError(
            f"version {target_version} is already the champion of {name}; nothing to promote (its gate.* or "
            "promotion.* tags keep how it got there)"
        )
    client.set_registered_model_alias(name, CHAMPION, target_version)
    if previous is not None:
        _record_replaced(client, name, previous_version, target_version, "override", reason, at)
    for key in REPLACED_TAGS:  # champion again: how its earlier time as champion ended is in the runs
        if key in (target.tags or {}):
            client.delete_model_version_tag(name, target_version, key)
    tags = {
        "promotion.override": "true",
        "promotion.reason": reason,
        "promotion.at": at,
        "promotion.previous_champion": previous_version,
        "promotion.by": user,
    }
    for key, value in tags.items():
        client.set_model_version_tag(name, target_version, key, value)
    experiment_id = ensure_experiment(tracking_uri, experiment_name(task), None)
    mlflow.set_tracking_uri(tracking_uri)
    with mlflow.start_run(experiment_id=experiment_id, run_name=f"promote-v{target_version}") as run:
        mlflow.set_tags(
            {"gridrisk.kind": "promotion-override", "task": task, "version": target_version, **tags}
        )
    if target.run_id:
        client.set_tag(target.run_id, "promotion.override", f"champion since {at}: {reason}")
    logger.info(
        "override: %s version %s is now champion (was %s): %s", name, target_version, previous_version, reason
    )
    return {
        "model": name,
        "version": target_version,
        "previous_champion": previous_version,
        "reason": reason,
        "at": at,
        "run_id": run.info.run_id,
    }
