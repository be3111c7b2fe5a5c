"""`GET /v1/customers/{customer_id}`: one customer's archive, 24 months of bills and payments, suspensions,
inspections and every task's score, with the risk lists' access rules (station scope, PII per role)."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Depends, Path, Request
from starlette.convertors import PathConvertor, register_url_convertor

from features.schema import CUSTOMER_ID_MAX_CHARS
from serving.access import Action
from serving.customer_file import customer_file, warehouse_zone
from serving.dependencies import Audit, Caller, Models, Settings, Snapshots
from serving.errors import CUSTOMER_NOT_FOUND, ERROR_RESPONSES
from serving.history import HistoryStore, history_store
from serving.schemas import Lang
from serving.view_schemas import CustomerFile

router = APIRouter(tags=["customers"])


def get_history(request: Request, settings: Settings) -> HistoryStore:
    return history_store(request.app, settings)


History = Annotated[HistoryStore, Depends(get_history)]
CustomerIdPath = Annotated[str, Path(min_length=1, max_length=CUSTOMER_ID_MAX_CHARS, description="户号")]


class CustomerIdConvertor(PathConvertor):
    """`{customer_id:customer_id}`: the rest of the path, since ingest takes any id and a plain parameter
    stops at a `/`. Starlette's `path` would stop at a line break, leaving such an id no route (a bare 404
    outside the error schema); this takes every character, and at least one."""

    regex = "(?s:.+)"


register_url_convertor("customer_id", CustomerIdConvertor())


@router.get(
    "/v1/customers/{customer_id:customer_id}",  # nothing else lives under /v1/customers/
    response_model=CustomerFile,
    responses={**ERROR_RESPONSES, **CUSTOMER_NOT_FOUND},
)
def get_customer(
    customer_id: CustomerIdPath,
    caller: Caller,
    models: Models,
    snapshots: Snapshots,
    settings: Settings,
    history: History,
    audit: Audit,
    lang: Lang = Lang.ZH,
) -> CustomerFile:
    """Archive facts (PII only for the customer's own collector), history and scores with reasons."""
    caller.require(Action.CUSTOMER)
    zone = warehouse_zone(history.warehouse)
    file = customer_file(customer_id, caller, history, snapshots, models, settings.tasks, lang, zone)
    audit.record(caller, Action.CUSTOMER, "all", {"customer_id": customer_id}, None, 1)
    return file
