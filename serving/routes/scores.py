"""`POST /v1/{task}/score`: scores with reasons, by customer id (snapshot) or from posted features (live)."""

from __future__ import annotations

from fastapi import APIRouter

from serving.access import Action
from serving.dependencies import Audit, Caller, Metrics, Models, Settings, Snapshots
from serving.errors import ERROR_RESPONSES, NOT_FOUND, UNPARSEABLE
from serving.schemas import Lang, ScoreRequest, ScoreResponse, Task
from serving.scoring import score_records
from serving.snapshot import score_ids

router = APIRouter(tags=["scores"])


@router.post(
    "/v1/{task}/score",
    response_model=ScoreResponse,
    responses={**ERROR_RESPONSES, **NOT_FOUND, **UNPARSEABLE},
)
def score(
    task: Task,
    body: ScoreRequest,
    caller: Caller,
    models: Models,
    snapshots: Snapshots,
    settings: Settings,
    audit: Audit,
    metrics: Metrics,
    lang: Lang = Lang.ZH,
) -> ScoreResponse:
    """Calibrated probability, band, percentile, model version and the top reasons for each customer."""
    caller.require(Action.SCORE)
    model = models.get(task)
    if body.customer_ids is not None:
        response = score_ids(task, snapshots.get(task), model.package, body.customer_ids, lang)
    else:
        response = score_records(task, model.package, model.ref, body.records or [], settings.top_k, lang)
    metrics.observe_scores(task, response.source, [r.probability for r in response.results])
    audit.record(
        caller,
        Action.SCORE,
        task,
        {"source": response.source, "lang": lang.value},
        response.model.version,
        len(response.results),
    )
    return response
