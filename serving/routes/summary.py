"""`GET /v1/{task}/summary?by=station|supply_unit`: customers per risk band, yuan at risk and the change since
last month per station or supply unit (对标), cut to the caller's scope."""

from __future__ import annotations

from fastapi import APIRouter, Query

from serving.access import Action, blank_is_any
from serving.dependencies import Audit, Caller, Models, Snapshots
from serving.errors import ERROR_RESPONSES, ModelUnavailable
from serving.schemas import Task
from serving.station_summary import summarize
from serving.view_schemas import SummaryBy, SummaryResponse

router = APIRouter(tags=["risk lists"])


@router.get("/v1/{task}/summary", response_model=SummaryResponse, responses=ERROR_RESPONSES)
def get_summary(
    task: Task,
    caller: Caller,
    models: Models,
    snapshots: Snapshots,
    audit: Audit,
    by: SummaryBy = SummaryBy.STATION,
    supply_unit: str | None = Query(None, max_length=100, description="only this supply unit's stations"),
) -> SummaryResponse:
    """One row per station (or supply unit) of the latest snapshot against the newest earlier month's; a
    group in only one of the two has 0 in the other, so the rows add up to the total. `previous_model` names
    the earlier snapshot's model: when it differs from `model`, band thresholds differ too."""
    caller.require(Action.RISK_LIST)
    stations, units = caller.scope(None, supply_unit)  # `?supply_unit=` is every unit in the key's scope
    try:
        package = models.get(task).package  # only for the band order; the snapshot holds the bands
    except ModelUnavailable:
        package = None
    response = summarize(task, snapshots.get(task), package, by, stations, units)
    audit.record(
        caller, Action.RISK_LIST, task, {"summary_by": by.value, "supply_unit": blank_is_any(supply_unit)},
        response.model.version, len(response.rows),
    )  # fmt: skip
    return response
