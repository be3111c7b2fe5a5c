"""The serving package's exceptions and the one place that maps them to HTTP status codes.

Plain functions (scoring, ranking, access, the model store) raise these; `install_handlers` turns them into
JSON responses whose shapes are declared in `ERROR_RESPONSES` so the OpenAPI document lists every status.
"""

from __future__ import annotations

import email.message
import logging
import re
from pathlib import Path
from typing import Any

from fastapi import FastAPI, Request
from fastapi.encoders import jsonable_encoder
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse, Response
from pydantic_core import to_json

from serving.schemas import MAX_BATCH, ErrorBody, HTTPErrorBody, ValidationErrorBody
from serving.settings import MAX_BODY_BYTES

logger = logging.getLogger(__name__)


class ServingError(Exception):
    """Base of every error the service reports to a caller."""


class Refusal(ServingError):
    """A request turned away for who sent it (401, 403); `key_id` and `role` name the key when it is known,
    for the audit log's line about the refusal."""

    def __init__(self, message: str, key_id: str | None = None, role: str | None = None) -> None:
        super().__init__(message)
        self.key_id, self.role = key_id, role


class NotAuthenticated(Refusal):
    """No API key, or one that matches no active key (a revoked one is named)."""


class Forbidden(Refusal):
    """The key is valid but its role or scope does not cover the request."""


class UnknownCustomers(ServingError):
    """Customer ids not in the task's latest snapshot."""

    def __init__(self, task: str, customer_ids: list[str]) -> None:
        customer_ids = list(dict.fromkeys(customer_ids))  # an id asked four times is one unknown id
        self.customer_ids = customer_ids
        shown = ", ".join(customer_ids[:20]) + (" …" if len(customer_ids) > 20 else "")
        super().__init__(
            f"{len(customer_ids)} customer id(s) not in the latest {task} snapshot: {shown}; "
            "they are outside the scored population or the snapshot is older than the account "
            "(run `gridrisk score --task " + task + "`, or post their features as `records`)"
        )


class InvalidPayload(ServingError):
    """A request body that passed the schema but not the model's rules (missing feature, wrong type)."""

    def __init__(self, errors: list[dict[str, Any]], more: bool = False) -> None:
        self.errors = errors
        self.more = more  # checking stopped with errors left to find (`scoring.RecordErrors`)
        super().__init__("; ".join(f"{'.'.join(map(str, e['loc']))}: {e['msg']}" for e in errors[:5]))


class ModelUnavailable(ServingError):
    """No model is loaded for a task (never registered, registry down and no local copy)."""


class SnapshotUnavailable(ServingError):
    """No snapshot has been written for a task yet."""


class AsOfOutOfRange(ServingError):
    """`gridrisk score --as-of` outside the warehouse's data (after its data end, before its first bill)."""


class KeyStoreError(ServingError):
    """The keys file or GRIDRISK_API_KEYS cannot be read; raised at start-up and by `gridrisk keys`."""


class HomeUnwritable(ServingError):
    """A file the service must write in its home cannot be written (a read-only mount, a full disk): the audit
    log, the reload signal, the signed-out sessions, the keys file, a snapshot. The file is left as it was,
    and what needed the write is refused rather than done without it; nothing to restart once it can be
    written again."""

    def __init__(self, what: str, path: Path, cause: OSError | str, refused: str) -> None:
        self.path = Path(path)
        self.cause = cause if isinstance(cause, str) else write_fault(cause)
        super().__init__(
            f"{what} {path} cannot be written ({self.cause}), so {refused}: make {self.path.parent} writable "
            "or free space on its disk, then try again (the service needs no restart)"
        )


def write_fault(exc: OSError) -> str:
    """An OSError as an operator reads it: "Read-only file system", "No space left on device"."""
    return exc.strerror or str(exc) or type(exc).__name__


class BodyTooLarge(ServingError):
    """A request body over GRIDRISK_MAX_BODY_BYTES: declared so (`declared`, its Content-Length), or sent
    without a length and grown past the limit while it was read."""

    def __init__(self, limit: int, declared: int | None = None) -> None:
        self.limit = limit
        body = (
            f"is {declared:,} bytes (its Content-Length)"
            if declared is not None
            else f"(sent without a Content-Length) grew past {limit:,} bytes"
        )
        # Under the default a full batch no longer fits: "send at most 10,000" misled at 100,000 bytes, which
        # about 7,000 ids already fill.
        setting, batch = (
            ("GRIDRISK_MAX_BODY_BYTES", f"send at most {MAX_BATCH:,} customers or records a request")
            if limit >= MAX_BODY_BYTES
            else (
                f"GRIDRISK_MAX_BODY_BYTES, set below the {MAX_BODY_BYTES:,} a full batch of {MAX_BATCH:,} "
                "records may need",
                f"split the batch into bodies under {limit:,} bytes",
            )
        )
        super().__init__(
            f"the request body {body}; the service reads at most {limit:,} bytes a request ({setting}): "
            f"{batch} (`gridrisk score` scores a whole population), or have the operator raise "
            "GRIDRISK_MAX_BODY_BYTES"
        )


STATUS: dict[type[ServingError], int] = {
    NotAuthenticated: 401,
    Forbidden: 403,
    UnknownCustomers: 404,
    InvalidPayload: 422,
    ModelUnavailable: 503,
    SnapshotUnavailable: 503,
    KeyStoreError: 503,  # the keys file went bad while serving: no key can be checked until it is restored
    HomeUnwritable: 503,  # a request that cannot be audited is not served; it can be asked again later
    BodyTooLarge: 413,
}

ERROR_RESPONSES: dict[int | str, dict[str, Any]] = {
    401: {"model": ErrorBody, "description": "no API key, or an unknown or revoked one"},
    403: {"model": ErrorBody, "description": "the key's role or station scope does not cover this request"},
    503: {
        "model": ErrorBody,
        "description": "no model or snapshot for the task, an unreadable keys file, or a home that cannot be "
        "written (the audit log, the reload signal): the request was not served",
    },
}
# Malformed JSON is a 422 (`json_invalid`, see `_invalid_request`); FastAPI answers 400 when the body cannot
# be read at all: bytes that are not UTF-8 (a gzip body among them), arrays nested past the JSON parser's
# recursion limit, an integer of more than Python's 4,300 digits.
UNPARSEABLE: dict[int | str, dict[str, Any]] = {
    400: {
        "model": HTTPErrorBody,
        "description": "the body cannot be read: not UTF-8 text, nested past the JSON parser's depth, or an "
        "integer of more than 4,300 digits (malformed JSON is a 422)",
    },
}
NOT_FOUND: dict[int | str, dict[str, Any]] = {
    404: {"model": ErrorBody, "description": "customer ids not in the latest snapshot, named"},
}
CUSTOMER_NOT_FOUND: dict[int | str, dict[str, Any]] = {
    404: {
        "model": ErrorBody,
        "description": "CustomerNotFound: the id is in neither the warehouse's customers table nor any "
        "task's latest snapshot",
    },
}
# Routes without parameters of their own answer it too (`dependencies._only_known_query`); FastAPI lists a 422
# only for a route with parameters.
UNKNOWN_QUERY: dict[int | str, dict[str, Any]] = {
    422: {
        "model": ValidationErrorBody,
        "description": "a query parameter the route does not read, or one sent twice",
    },
}
# `main.BodyLimit` answers it on every route, before the route runs; `create_app` lists it on each.
TOO_LARGE: dict[int | str, dict[str, Any]] = {
    413: {
        "model": ErrorBody,
        "description": "the body is over GRIDRISK_MAX_BODY_BYTES (by default a full batch at 5 KiB a "
        "record); any route, checked before the key",
    },
}


KEY_STORE_DOWN = (
    "the service's API keys cannot be read, so no key can be checked until an operator restores them (the "
    "server's log names the file and the fault)"
)


def caller_detail(exc: ServingError) -> str:
    """What a caller is told: the message, except for a broken key store, whose message names a file on the
    server (told to any caller, keyless ones included), and the server's paths in a 503's message (a model,
    snapshot or home that is missing or cannot be written): the log has them whole."""
    if isinstance(exc, KeyStoreError):
        return KEY_STORE_DOWN
    if isinstance(exc, ModelUnavailable | SnapshotUnavailable | HomeUnwritable):
        return without_paths(str(exc))
    return str(exc)


# An absolute path (two or more parts; the API's own /v1/… routes aside), or a URI with a path.
_PATH = re.compile(
    r"(?P<uri>[A-Za-z][A-Za-z0-9+.-]*://[^/\s'\"]*)(?P<uri_path>/[^\s;,'\"()<>]+)"
    r"|(?<![\w.:/~-])(?P<path>/(?!v1/)(?:[^\s/;,'\"()<>\[\]{}]+/)+[^\s/;,'\"()<>\[\]{}]*)"
)


def without_paths(text: str) -> str:
    """`text` with the server's file system layout cut out, for callers who have no use for it (anyone may
    read `/ready`; a collector reads a 503): an absolute path keeps its last part (`…/mlflow.db`), a URI its
    scheme, host and last part (`sqlite:///…/mlflow.db`). The server's log keeps the whole text."""

    def short(match: re.Match[str]) -> str:
        path = match["uri_path"] if match["uri"] is not None else match["path"]
        parts = [part for part in path.split("/") if part]
        if len(parts) < (2 if match["uri"] is not None else 1):
            return match[0]
        return f"{match['uri'] or ''}{'/' if match['uri'] is not None else ''}…/{parts[-1]}"

    return _PATH.sub(short, text)


def status_of(exc: ServingError) -> int:
    for cls in type(exc).__mro__:
        if cls in STATUS:
            return STATUS[cls]  # type: ignore[index]
    return 500


async def _serving_error(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, ServingError)
    status = status_of(exc)
    if isinstance(exc, InvalidPayload):
        listed = exc.errors[:ECHO_ERRORS]
        body: dict[str, Any] = ValidationErrorBody.model_validate({"detail": listed}).model_dump()
        for error, raw in zip(body["detail"], listed, strict=True):
            error["loc"] = [_echo(part) for part in error["loc"]]
            error["msg"] = _text(error["msg"], ECHO_MSG_CHARS)
            if "input" in raw:  # the bad value, cut short as FastAPI's own 422s show it
                error["input"] = _echo(raw["input"])
        body["detail"] += _not_listed(len(exc.errors)) + (
            [{"loc": ["body"], "msg": MORE_NOT_CHECKED, "type": "too_many_errors"}] if exc.more else []
        )
        # An echoed NaN or Infinity (Python's JSON parser reads them) as a string, as `_invalid_request` does.
        content = to_json(body, inf_nan_mode="strings")
        return Response(content, status_code=status, media_type="application/json")
    if status >= 500:
        logger.warning(
            "%s %s -> %d %s: %s", request.method, request.url.path, status, type(exc).__name__, exc
        )
    audit_refusal(request, exc)
    return error_response(exc)


def audit_refusal(request: Request, exc: ServingError) -> None:
    """A 401 or 403 is an audit line (`AuditLog.refused`): who was turned away from what, and why. Apps built
    without a service (some tests) have no log to write."""
    if not isinstance(exc, Refusal):
        return
    service = getattr(request.app.state, "service", None)
    if service is not None:
        client = request.client.host if request.client else None
        service.audit.refused(exc, status_of(exc), f"{request.method} {request.url.path}", client)


def error_response(exc: ServingError) -> JSONResponse:
    """The `ErrorBody` answer to `exc`; ASGI middleware sends it itself (the app's handlers are inside it)."""
    status = status_of(exc)
    body = ErrorBody(error=type(exc).__name__, detail=_encodable(caller_detail(exc))).model_dump()
    headers = {"WWW-Authenticate": "ApiKey"} if status == 401 else None
    return JSONResponse(body, status_code=status, headers=headers)


# An error body names what was wrong, it does not return the request: a 10,001-id batch once came back as
# a 25 MB 422 because `too_long` echoes the whole list.
ECHO_CHARS = 100  # of an echoed string (input, a field name in loc)
ECHO_MSG_CHARS = 1_000  # of a message (ours quote the bad value)
ECHO_ITEMS = 10  # items of an echoed list, fields of an echoed object
ECHO_DEPTH = 2  # nesting levels shown before an object or list is only described
ECHO_ERRORS = 50  # errors listed in one 422


MORE_NOT_CHECKED = (
    f"more errors not listed: checking stops after the first {ECHO_ERRORS}; correct these and send again"
)


def _not_listed(errors: int) -> list[dict[str, Any]]:
    """The last item of a 422 that lists only the first `ECHO_ERRORS` of its errors."""
    if errors <= ECHO_ERRORS:
        return []
    more = errors - ECHO_ERRORS
    return [{"loc": ["body"], "msg": f"{more:,} more errors not listed", "type": "too_many_errors"}]


def _encodable(text: str) -> str:
    """A lone UTF-16 surrogate (JSON allows "\\ud800") shown as its escape: as is, it made the response's
    UTF-8 encoding fail with a 500."""
    return text.encode("utf-8", "backslashreplace").decode("utf-8")


def _text(value: str, limit: int) -> str:
    """At most `limit` characters (then how many there were), and encodable."""
    if len(value) > limit:
        value = f"{value[:limit]}… ({len(value):,} characters)"
    return _encodable(value)


def _echo(value: Any, depth: int = 0) -> Any:
    """A JSON-ready value, cut short: long strings truncated, big or deep lists and objects described."""
    if isinstance(value, str):
        return _text(value, ECHO_CHARS)
    if isinstance(value, list | tuple):
        if len(value) > ECHO_ITEMS or (value and depth >= ECHO_DEPTH):
            return f"(a list of {len(value):,} items)"
        return [_echo(v, depth + 1) for v in value]
    if isinstance(value, dict):
        if len(value) > ECHO_ITEMS or (value and depth >= ECHO_DEPTH):
            return f"(an object of {len(value):,} fields)"
        return {_text(str(k), ECHO_CHARS): _echo(v, depth + 1) for k, v in value.items()}
    if value is None or isinstance(value, bool | int | float):
        return value
    return _echo(jsonable_encoder(value), depth)  # an exception in ctx, a date: as FastAPI would write it


NOT_JSON = (
    "the body is read as JSON only: send it with Content-Type: application/json, as uncompressed UTF-8 "
    "text (it came {came})"
)


def _not_json(request: Request) -> str | None:
    """How an API request's body came when not as JSON (FastAPI then validates the raw text as the body,
    and said only "Input should be a valid dictionary"); None for JSON. The page's forms are no API bodies."""
    if not request.url.path.startswith("/v1/"):
        return None
    content_type = request.headers.get("content-type")
    if not content_type:
        return "without a Content-Type"
    message = email.message.Message()
    message["content-type"] = content_type
    subtype = message.get_content_subtype()
    if message.get_content_maintype() == "application" and (subtype == "json" or subtype.endswith("+json")):
        return None
    return f"as {_text(content_type, ECHO_CHARS)!r}"


async def _invalid_request(request: Request, exc: Exception) -> Response:
    """FastAPI's 422 body (loc, msg, type, input, ctx), kept small and made JSON-safe.

    Python's JSON parser accepts NaN, Infinity and 1e999; echoed back as floats they made FastAPI's own
    handler fail with a 500. They are written as the strings "NaN", "Infinity", "-Infinity" instead.
    Unparseable JSON lands here too (type `json_invalid`), so it is a 422 like any other invalid body.
    Echoed inputs are cut short (`_echo`), lone surrogates escaped, and at most `ECHO_ERRORS` errors listed.
    """
    assert isinstance(exc, RequestValidationError)
    errors = exc.errors()
    came = _not_json(request)
    if came is not None and any(tuple(e["loc"][:1]) == ("body",) for e in errors):
        # The same rule FastAPI reads bodies by (`curl -d` sends a form's type): one error naming it.
        rule = {"type": "content_type", "loc": ["header", "content-type"], "msg": NOT_JSON.format(came=came)}
        return JSONResponse({"detail": [rule]}, status_code=422)
    detail: list[dict[str, Any]] = []
    for error in errors[:ECHO_ERRORS]:
        item: dict[str, Any] = {
            "type": _text(str(error["type"]), ECHO_CHARS),
            "loc": [_echo(part) for part in error["loc"]],
            "msg": _text(str(error["msg"]), ECHO_MSG_CHARS),
        }
        if "input" in error:
            item["input"] = _echo(error["input"])
        if isinstance(error.get("ctx"), dict):
            # A validator's ValueError sits in ctx as the exception itself, which JSON made `{}`: its message.
            item["ctx"] = {
                _text(str(k), ECHO_CHARS): _text(str(v), ECHO_MSG_CHARS)
                if isinstance(v, Exception)
                else _echo(v, 1)
                for k, v in error["ctx"].items()
            }
        detail.append(item)
    body = {"detail": detail + _not_listed(len(errors))}
    return Response(to_json(body, inf_nan_mode="strings"), status_code=422, media_type="application/json")


def install_handlers(app: FastAPI) -> None:
    app.add_exception_handler(ServingError, _serving_error)
    app.add_exception_handler(RequestValidationError, _invalid_request)
