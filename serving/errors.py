"""The serving package's exceptions and the one place that maps them to HTTP status codes.

Plain functions (scoring, ranking, access, the model store) raise these; `install_handlers` turns them into
JSON responses whose shapes are declared in `ERROR_RESPONSES` so the OpenAPI document lists every status.
"""

from __future__ import annotations

import logging
from typing import Any

from fastapi import FastAPI, Request
from fastapi.encoders import jsonable_encoder
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse, Response
from pydantic_core import to_json

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


class AsOfOutOfRange(ServingError):
    """`gridrisk score --as-of` outside the warehouse's data (after its data end, before its first bill)."""


class KeyStoreError(ServingError):
    """The keys file or GRIDRISK_API_KEYS cannot be read; raised at start-up and by `gridrisk keys`."""


STATUS: dict[type[ServingError], int] = {
    NotAuthenticated: 401,
    Forbidden: 403,
    UnknownCustomers: 404,
    InvalidPayload: 422,
    ModelUnavailable: 503,
    SnapshotUnavailable: 503,
    KeyStoreError: 503,  # the keys file went bad while serving: no key can be checked until it is restored
}

ERROR_RESPONSES: dict[int | str, dict[str, Any]] = {
    401: {"model": ErrorBody, "description": "no API key, or an unknown or revoked one"},
    403: {"model": ErrorBody, "description": "the key's role or station scope does not cover this request"},
    503: {"model": ErrorBody, "description": "no model or snapshot for the task, or an unreadable keys file"},
}
# Malformed JSON is a 422 (`json_invalid`, see `_invalid_request`); FastAPI answers 400 only when the body
# cannot even be read as text (bytes that are not UTF-8).
UNPARSEABLE: dict[int | str, dict[str, Any]] = {
    400: {"model": HTTPErrorBody, "description": "the body is not UTF-8 text (malformed JSON is a 422)"},
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


async def _invalid_request(request: Request, exc: Exception) -> Response:
    """FastAPI's 422 body (loc, msg, type, input, ctx), with the echoed input made JSON-safe.

    Python's JSON parser accepts NaN, Infinity and 1e999; echoed back as floats they made FastAPI's own
    handler fail with a 500. They are written as the strings "NaN", "Infinity", "-Infinity" instead.
    Unparseable JSON lands here too (type `json_invalid`), so it is a 422 like any other invalid body.
    """
    assert isinstance(exc, RequestValidationError)
    body = {"detail": jsonable_encoder(exc.errors())}
    return Response(to_json(body, inf_nan_mode="strings"), status_code=422, media_type="application/json")


def install_handlers(app: FastAPI) -> None:
    app.add_exception_handler(ServingError, _serving_error)
    app.add_exception_handler(RequestValidationError, _invalid_request)
