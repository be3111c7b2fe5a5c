"""`GET /v1/models` (served versions, registry versions and aliases, metrics) and `POST /v1/admin/reload`."""

from __future__ import annotations

from fastapi import APIRouter, Request
from starlette.concurrency import run_in_threadpool

from serving.access import Action, Principal, Role
from serving.dependencies import Caller, Models, Settings, Snapshots, State
from serving.errors import ERROR_RESPONSES, UNKNOWN_QUERY, without_paths
from serving.history import history_store
from serving.schemas import ModelsResponse, ModelSummary, ReloadResponse, TaskStatus
from serving.settings import registered_name
from serving.status import task_status

router = APIRouter(tags=["models"])


@router.get("/v1/models", response_model=ModelsResponse, responses={**ERROR_RESPONSES, **UNKNOWN_QUERY})
def list_models(caller: Caller, models: Models, snapshots: Snapshots, settings: Settings) -> ModelsResponse:
    caller.require(Action.MODELS)
    loaded = models.loaded()
    summaries = [
        ModelSummary(
            task=task,
            name=registered_name(task),
            serving=caller_status(caller, task_status(task, models, snapshots)),
            metrics=loaded[task].package.metrics if task in loaded else {},
            explain_ms_per_row=loaded[task].explain_ms_per_row if task in loaded else None,
            registry_versions=models.registry_versions(task),
        )
        for task in settings.tasks
    ]
    return ModelsResponse(
        alias=settings.alias, registry_reachable=models.registry_error is None, models=summaries
    )


@router.post(
    "/v1/admin/reload", response_model=ReloadResponse, responses={**ERROR_RESPONSES, **UNKNOWN_QUERY}
)
async def reload(request: Request, caller: Caller, state: State) -> ReloadResponse:
    """Check the aliases and snapshots now; moved models load beside the old ones and swap atomically.

    `changed` is this worker's; the other workers of `gridrisk serve --workers N` refresh before their next
    request (serving/service.py `ReloadSignal`). A re-ingested warehouse's history copies are rebuilt in the
    background."""
    caller.require(Action.RELOAD)
    changed = await run_in_threadpool(state.reload)
    # Who moved what the service serves, beside who pulled what (an operator found no line for a reload).
    state.audit.record(caller, Action.RELOAD, "all", {"changed": changed}, None, 0)
    if state.settings.warm_history:
        history_store(request.app, state.settings).start_warming()
    return ReloadResponse(
        changed=changed,
        tasks=[
            caller_status(caller, task_status(t, state.models, state.snapshots)) for t in state.settings.tasks
        ],
    )


def caller_status(caller: Principal, status: TaskStatus) -> TaskStatus:
    """A task's status with the server's paths for an admin (who runs the service), without for the others."""
    if caller.role == Role.ADMIN or status.detail is None:
        return status
    return status.model_copy(update={"detail": without_paths(status.detail)})
