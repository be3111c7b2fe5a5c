"""What each task serves now (model version and source, snapshot date): `/ready`, `/v1/models`, reload."""

from __future__ import annotations

import os
import shutil
from pathlib import Path

from features.sources import table_path
from serving.access import KeyStore
from serving.errors import KEY_STORE_DOWN, KeyStoreError, ModelUnavailable, SnapshotUnavailable
from serving.model import definitions_skew
from serving.model_store import LoadedModel, ModelStore
from serving.schemas import ReadyResponse, TaskStatus
from serving.snapshot import Snapshot, SnapshotStore


def task_status(task: str, models: ModelStore, snapshots: SnapshotStore) -> TaskStatus:
    return _assess(task, models, snapshots, _warehouse_problem(models.settings.warehouse_path))[0]


def _assess(
    task: str, models: ModelStore, snapshots: SnapshotStore, warehouse: str | None
) -> tuple[TaskStatus, bool]:
    """The task's status, and whether it is fully served: a registry model and a readable, non-empty
    snapshot scored by that same model version. `warehouse` is the service's warehouse problem, if any."""
    details = []
    model: LoadedModel | None = None
    try:
        model = models.get(task)
    except ModelUnavailable as exc:
        details.append(str(exc))
    if model is not None and (model.source == "local-cache" or models.detail(task)):
        details.append(models.detail(task) or "serving the local copy")
    if model is not None and (skew := definitions_skew(model.package.info, task)):
        details.append(skew)
    snap: Snapshot | None = None
    try:
        snap = snapshots.get(task)
    except SnapshotUnavailable as exc:
        details.append(str(exc))
    else:
        if snapshots.detail(task):
            details.append(snapshots.detail(task))  # type: ignore[arg-type]
    if warehouse is not None:
        details.append(warehouse)
    if snap is not None and snap.size == 0:
        details.append(
            f"the {task} snapshot as of {snap.as_of} holds no customers (the population was empty in the "
            "warehouse): risk lists are empty and no id can be scored from it"
        )
    if snap is not None and model is not None and snap.model != model.ref:
        # After a promotion or a rollback: by-id scores and lists still come from the older scoring run.
        details.append(
            f"the {task} snapshot was scored by {snap.model.name} v{snap.model.version}, but "
            f"v{model.version} is loaded: scores by id and risk lists are v{snap.model.version}'s until "
            f"`gridrisk score --task {task}` is run again"
        )
    status = TaskStatus(
        task=task,
        model=model.ref if model else None,
        source=model.source if model else None,
        loaded_at=model.loaded_at if model else None,
        snapshot_as_of=snap.as_of if snap else None,
        snapshot_model=snap.model if snap else None,
        snapshot_rows=snap.size if snap else None,
        detail="; ".join(details) or None,
    )
    return status, model is not None and model.source == "registry" and not details


def readiness(
    models: ModelStore, snapshots: SnapshotStore, keys: KeyStore | None = None, home: Path | None = None
) -> ReadyResponse:
    """ready: every task has a registry model and a readable, non-empty snapshot scored by that model;
    degraded (still 200): some task lacks one of those, each said in its `detail`; not_ready (503): no model
    at all, or an API keys file that cannot be read, so that every keyed request fails (a load balancer kept
    sending an operator's traffic to an instance answering each call with a 503), or a home that cannot be
    written (a read-only mount, a full disk), where every request that must be audited is refused."""
    warehouse = _warehouse_problem(models.settings.warehouse_path)  # one look for every task
    assessed = [_assess(t, models, snapshots, warehouse) for t in models.settings.tasks]
    tasks = [t for t, _ in assessed]
    keys_detail = _keys_problem(keys) if keys is not None else None
    home_detail = _home_problem(home) if home is not None else None
    if keys_detail is not None or home_detail is not None or not any(t.model is not None for t in tasks):
        status = "not_ready"
    elif all(whole for _, whole in assessed):
        status = "ready"
    else:
        status = "degraded"
    return ReadyResponse(
        status=status,  # type: ignore[arg-type]
        registry_uri=models.registry.uri,
        registry_reachable=models.registry_error is None,
        keys_readable=keys_detail is None,
        keys_detail=keys_detail,
        home_writable=home_detail is None,
        home_detail=home_detail,
        tasks=tasks,
    )


HOME_SPACE_BYTES = 1 << 20  # below this free, an audit line or a reload signal may no longer fit


def _home_problem(home: Path) -> str | None:
    """Why the home cannot be written, without its path (any caller reads /ready), or None. A home not made
    yet is judged by the folder it would be made in."""
    while not home.exists() and home.parent != home:
        home = home.parent
    if not os.access(home, os.W_OK):
        return (
            "the service's home cannot be written (a read-only file system?): scores, lists and pages, which "
            "are audited there, are refused until it can"
        )
    if (audit := _audit_problem(home / AUDIT_LOG)) is not None:
        return audit
    try:
        free = shutil.disk_usage(home).free
    except OSError:
        return None
    if free < HOME_SPACE_BYTES:
        return (
            f"the disk of the service's home has {free:,} bytes free: scores, lists and pages, which are "
            "audited there, are refused until space is freed"
        )
    return None


AUDIT_LOG = "audit.log"  # in the home (ServingSettings.audit_path)


def _audit_problem(path: Path) -> str | None:
    """Why the audit log cannot take a line, found by opening it for appending as a request would (nothing is
    written), or None. The folder alone said writable while audit.log was a folder, or root's file under a
    service run as another account, and every audited request was a 503 behind a `ready`; and to root,
    `os.access` says yes to everything."""
    try:
        fd = os.open(path, os.O_WRONLY | os.O_APPEND)
    except FileNotFoundError:
        return None  # made by the first line written, in a folder found writable
    except OSError as exc:
        cause = exc.strerror or type(exc).__name__  # never the path: any caller reads /ready
        return (
            f"the service's audit log cannot be written ({cause}): scores, lists and pages, which are "
            "audited there, are refused until it can (the server's log names the file)"
        )
    os.close(fd)
    return None


def _warehouse_problem(warehouse: Path) -> str | None:
    """Lists without names: a missing or mistyped GRIDRISK_WAREHOUSE (an NFS mount not mounted) gave every
    collector a risk list with `name: null` and `phone: null`, and nothing said so. Without the folder's path:
    any caller reads /ready; the server's log names it at start-up."""
    if table_path(warehouse, "customers").is_file():
        return None
    return (
        "the warehouse (GRIDRISK_WAREHOUSE, default $GRIDRISK_HOME/warehouse) holds no customers table: risk "
        "lists and customer files carry no names, phones or addresses until it does"
    )


def _keys_problem(keys: KeyStore) -> str | None:
    """Why no key can be checked, in the words any caller may see (the log names the file), or None."""
    try:
        keys.record("")  # reads the file again when it changed, as a request would
    except KeyStoreError:
        return KEY_STORE_DOWN
    return None
