"""`POST /v1/{task}/score`: scores with reasons, by customer id (snapshot) or from posted features (live)."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Depends, Response
from pydantic_core import to_json
from starlette.concurrency import run_in_threadpool

from serving.access import Action, Principal
from serving.dependencies import Caller, Models, State
from serving.errors import ERROR_RESPONSES, NOT_FOUND, UNPARSEABLE
from serving.schemas import Lang, ScoreRequest, ScoreResponse, Task
from serving.scoring import score_records
from serving.snapshot import score_ids

router = APIRouter(tags=["scores"])

# Small requests are scored on the event loop: a hop to the thread pool costs more than scoring a few rows.
# The route takes the whole state rather than one dependency per piece: each dependency is solved per request.
INLINE_ROWS = 64


async def may_score(caller: Caller) -> Principal:
    """The key and its role, checked before the body is validated: FastAPI solves dependencies first, so a
    collector's key gets its 403 without its records being looked at."""
    caller.require(Action.SCORE)
    return caller


@router.post(
    "/v1/{task}/score",
    response_model=ScoreResponse,
    responses={**ERROR_RESPONSES, **NOT_FOUND, **UNPARSEABLE},
)
async def score(
    task: Task,
    body: ScoreRequest,
    caller: Annotated[Principal, Depends(may_score)],
    models: Models,
    state: State,
    lang: Lang = Lang.ZH,
) -> Response:
    """Calibrated probability, band, percentile, model version and the top reasons for each customer."""
    model = models.get(task)

    def compute() -> dict[str, Any]:
        if body.customer_ids is not None:
            snapshot = state.snapshots.get(task)
            return score_ids(task, snapshot, model.package, body.customer_ids, lang, body.skip_unknown)
        return score_records(task, model.package, model.ref, body.records or [], state.settings.top_k, lang)

    asked = len(body.customer_ids or body.records or [])
    result = compute() if asked <= INLINE_ROWS else await run_in_threadpool(compute)
    state.metrics.observe_scores(task, result["source"], [r["probability"] for r in result["results"]])
    state.audit.record(
        caller,
        Action.SCORE,
        task,
        {"source": result["source"], "lang": lang.value},
        result["model"]["version"],
        len(result["results"]),
    )
    # Built as plain data by scoring.py/snapshot.py in the ScoreResponse shape (checked by schemathesis).
    # Reason values are already null when not finite; "null" keeps any other stray NaN out of the JSON.
    return Response(to_json(result, inf_nan_mode="null"), media_type="application/json")
