"""What each task serves now (model version and source, snapshot date): `/ready`, `/v1/models`, reload."""

from __future__ import annotations

from serving.errors import ModelUnavailable, SnapshotUnavailable
from serving.model_store import LoadedModel, ModelStore
from serving.schemas import ReadyResponse, TaskStatus
from serving.snapshot import SnapshotStore


def task_status(task: str, models: ModelStore, snapshots: SnapshotStore) -> TaskStatus:
    details = []
    model: LoadedModel | None = None
    try:
        model = models.get(task)
    except ModelUnavailable as exc:
        details.append(str(exc))
    if model is not None and (model.source == "local-cache" or models.detail(task)):
        details.append(models.detail(task) or "serving the local copy")
    try:
        snap = snapshots.get(task)
    except SnapshotUnavailable as exc:
        snap = None
        details.append(str(exc))
    return TaskStatus(
        task=task,
        model=model.ref if model else None,
        source=model.source if model else None,
        loaded_at=model.loaded_at if model else None,
        snapshot_as_of=snap.as_of if snap else None,
        snapshot_model=snap.model if snap else None,
        detail="; ".join(details) or None,
    )


def readiness(models: ModelStore, snapshots: SnapshotStore) -> ReadyResponse:
    """ready: every task has a model from the registry; degraded: some task lacks one or runs on the local
    copy; not_ready: no model at all (503)."""
    tasks = [task_status(t, models, snapshots) for t in models.settings.tasks]
    served = [t for t in tasks if t.model is not None]
    if not served:
        status = "not_ready"
    elif len(served) == len(tasks) and all(t.source == "registry" for t in served):
        status = "ready"
    else:
        status = "degraded"
    return ReadyResponse(
        status=status,  # type: ignore[arg-type]
        registry_uri=models.registry.uri,
        registry_reachable=models.registry_error is None,
        tasks=tasks,
    )
