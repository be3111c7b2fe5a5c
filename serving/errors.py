"""The serving package's exceptions and the one place that maps them to HTTP status codes.

Plain functions (scoring, ranking, access, the model store) raise these; `install_handlers` turns them into
JSON responses whose shapes are declared in `ERROR_RESPONSES` so the OpenAPI document lists every status.
"""

from __future__ import annotations

import logging
from typing import Any

from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse

from serving.schemas import ErrorBody, HTTPErrorBody, ValidationErrorBody

logger = logging.getLogger(__name__)


class ServingError(Exception):
    """Base of every error the service reports to a caller."""


class NotAuthenticated(ServingError):
    """No API key, or one that matches no active key."""


class Forbidden(ServingError):
    """The key is valid but its role or scope does not cover the request."""


class UnknownCustomers(ServingError):
    """Customer ids not in the task's latest snapshot."""

    def __init__(self, task: str, customer_ids: list[str]) -> None:
        self.customer_ids = customer_ids
        shown = ", ".join(customer_ids[:20]) + (" …" if len(customer_ids) > 20 else "")
        super().__init__(
            f"{len(customer_ids)} customer id(s) not in the latest {task} snapshot: {shown}; "
            "they are outside the scored population or the snapshot is older than the account "
            "(run `gridrisk score --task " + task + "`, or post their features as `records`)"
        )


class InvalidPayload(ServingError):
    """A request body that passed the schema but not the model's rules (missing feature, wrong type)."""

    def __init__(self, errors: list[dict[str, Any]]) -> None:
        self.errors = errors
        super().__init__("; ".join(f"{'.'.join(map(str, e['loc']))}: {e['msg']}" for e in errors[:5]))


class ModelUnavailable(ServingError):
    """No model is loaded for a task (never registered, registry down and no local copy)."""


class SnapshotUnavailable(ServingError):
    """No snapshot has been written for a task yet."""


class KeyStoreError(ServingError):
    """The keys file or GRIDRISK_API_KEYS cannot be read; raised at start-up and by `gridrisk keys`."""


STATUS: dict[type[ServingError], int] = {
    NotAuthenticated: 401,
    Forbidden: 403,
    UnknownCustomers: 404,
    InvalidPayload: 422,
    ModelUnavailable: 503,
    SnapshotUnavailable: 503,
}

ERROR_RESPONSES: dict[int | str, dict[str, Any]] = {
    401: {"model": ErrorBody, "description": "no API key, or an unknown or revoked one"},
    403: {"model": ErrorBody, "description": "the key's role or station scope does not cover this request"},
    503: {"model": ErrorBody, "description": "no model or snapshot for the task, with the reason"},
}
UNPARSEABLE: dict[int | str, dict[str, Any]] = {
    400: {"model": HTTPErrorBody, "description": "the body is not parseable JSON"},
}
NOT_FOUND: dict[int | str, dict[str, Any]] = {
    404: {"model": ErrorBody, "description": "customer ids not in the latest snapshot, named"},
}


def status_of(exc: ServingError) -> int:
    for cls in type(exc).__mro__:
        if cls in STATUS:
            return STATUS[cls]  # type: ignore[index]
    return 500


async def _serving_error(request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, ServingError)
    status = status_of(exc)
    if isinstance(exc, InvalidPayload):
        body: dict[str, Any] = ValidationErrorBody.model_validate({"detail": exc.errors}).model_dump()
    else:
        body = ErrorBody(error=type(exc).__name__, detail=str(exc)).model_dump()
    headers = {"WWW-Authenticate": "ApiKey"} if status == 401 else None
    if status >= 500:
        logger.warning("%s %s -> %d %s", request.method, request.url.path, status, type(exc).__name__)
    return JSONResponse(body, status_code=status, headers=headers)


def install_handlers(app: FastAPI) -> None:
    app.add_exception_handler(ServingError, _serving_error)
