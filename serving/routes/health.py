"""Liveness, readiness (which model and snapshot each task serves, and from where) and Prometheus metrics."""

from __future__ import annotations

from fastapi import APIRouter, Response
from fastapi.responses import JSONResponse

from serving.dependencies import Keys, Metrics, Models, Settings, Snapshots
from serving.errors import without_paths
from serving.schemas import HealthResponse, ReadyResponse
from serving.status import readiness

router = APIRouter(tags=["operations"])


@router.get("/health", response_model=HealthResponse)
async def health() -> HealthResponse:
    return HealthResponse(status="ok")


@router.get("/ready", response_model=ReadyResponse, responses={503: {"model": ReadyResponse}})
async def ready(models: Models, snapshots: Snapshots, keys: Keys, settings: Settings) -> Response:
    body = readiness(models, snapshots, keys, settings.home)
    # Anyone may ask: what is wrong, without the server's paths (the log, and `/v1/models` for an admin, have
    # them).
    body.registry_uri = without_paths(body.registry_uri)
    for task in body.tasks:
        task.detail = without_paths(task.detail) if task.detail else None
    return JSONResponse(body.model_dump(mode="json"), status_code=503 if body.status == "not_ready" else 200)


@router.get("/metrics", response_class=Response, responses={200: {"content": {"text/plain": {}}}})
async def metrics(metrics: Metrics) -> Response:
    return Response(metrics.render(), media_type=metrics.content_type)
