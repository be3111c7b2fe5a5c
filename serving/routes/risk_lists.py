"""`GET /v1/{task}/risk-list`: ranked work lists from the latest snapshot, scoped to the caller's stations."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Query, Response

from serving.access import Action
from serving.dependencies import Audit, Caller, Directory, Models, Settlements, Snapshots
from serving.errors import ERROR_RESPONSES
from serving.ranking import ListQuery, risk_list, to_csv, to_xlsx
from serving.schemas import (
    SORT_DOC,
    WORK_LIST_ORDER,
    Lang,
    ListFormat,
    RiskListResponse,
    SortKey,
    Task,
    WrittenInt,
)
from serving.settlement import for_snapshot

router = APIRouter(tags=["risk lists"])

XLSX = "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet"


@router.get(
    "/v1/{task}/risk-list",
    response_model=RiskListResponse,
    responses={**ERROR_RESPONSES, 200: {"content": {"text/csv": {}, XLSX: {}}}},
)
def get_risk_list(
    task: Task,
    caller: Caller,
    models: Models,
    snapshots: Snapshots,
    directory: Directory,
    settlements: Settlements,
    audit: Audit,
    supply_unit: str | None = Query(None, max_length=100),
    station: str | None = Query(None, max_length=100),
    usage_category: str | None = Query(None, max_length=100),
    min_probability: float | None = Query(None, ge=0.0, le=1.0, allow_inf_nan=False),
    top: Annotated[WrittenInt, Query(ge=1, le=100_000)] = 100,
    per_station_top: Annotated[
        WrittenInt | None, Query(ge=1, le=100_000, description="visit capacity per station")
    ] = None,
    sort: SortKey | None = Query(None, description=SORT_DOC),
    hide_settled: bool = Query(
        False,
        description="arrears: leave out customers whose payments since the as-of date cover their balance "
        "then (`settled`); filters nothing on the other tasks",
    ),
    format: ListFormat = ListFormat.JSON,
    lang: Lang = Lang.ZH,
) -> RiskListResponse | Response:
    """Customers ranked by expected value (probability x amount at stake) or probability, with reasons; by
    default in the task's work-list order (expected value for arrears, probability for the others)."""
    caller.require(Action.RISK_LIST)
    order = sort or WORK_LIST_ORDER[task]
    query = ListQuery(
        supply_unit, station, usage_category, min_probability, top, per_station_top, order, hide_settled
    )
    snapshot = snapshots.get(task)
    package = models.get(task).package
    settlement = for_snapshot(settlements, snapshot)
    response = risk_list(task, snapshot, package, query, caller, directory, lang, settlement)
    audit.record(caller, Action.RISK_LIST, task, query.filters(), response.model.version, response.count)
    if format == ListFormat.CSV:
        return Response(
            to_csv(response), media_type="text/csv; charset=utf-8", headers=_download(task, "csv")
        )
    if format == ListFormat.XLSX:
        return Response(to_xlsx(response), media_type=XLSX, headers=_download(task, "xlsx"))
    return response


def _download(task: Task, ext: str) -> dict[str, str]:
    return {"Content-Disposition": f'attachment; filename="gridrisk-{task.value}-risk-list.{ext}"'}
