"""FastAPI dependencies: the pieces of `ServiceState` a route needs, and the caller's verified key.

Tests replace any of these through `app.dependency_overrides`. They are `async` only so FastAPI runs them on
the event loop: each sync dependency would cost a hop to the thread pool on every request. `get_state` is
where a worker notices a reload taken by another worker, so every route that reads the state sees it.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Annotated, Any

from fastapi import Depends, Request, Security
from fastapi.dependencies.models import Dependant
from fastapi.exceptions import RequestValidationError
from fastapi.routing import APIRoute
from fastapi.security import APIKeyHeader, HTTPAuthorizationCredentials, HTTPBearer
from pydantic import TypeAdapter, ValidationError
from starlette.concurrency import run_in_threadpool

from serving.access import KEY_PREFIX, AuditLog, KeyStore, Principal
from serving.directory import CustomerDirectory
from serving.errors import NotAuthenticated
from serving.metrics import ServiceMetrics
from serving.model_store import ModelStore
from serving.schemas import Lang
from serving.service import ServiceState
from serving.settings import ServingSettings
from serving.settlement import Settlement
from serving.snapshot import SnapshotStore

api_key_header = APIKeyHeader(
    name="X-API-Key", auto_error=False, description="an API key from `gridrisk keys`"
)
bearer = HTTPBearer(auto_error=False, description="the same API key as a bearer token")


async def get_state(request: Request) -> ServiceState:
    state: ServiceState = request.app.state.service
    if state.reloads.moved():  # one stat; the refresh itself (rare) runs off the event loop
        await run_in_threadpool(state.follow_reloads)
    return state


State = Annotated[ServiceState, Depends(get_state)]


async def get_settings(state: State) -> ServingSettings:
    return state.settings


async def get_model_store(state: State) -> ModelStore:
    return state.models


async def get_snapshot_store(state: State) -> SnapshotStore:
    return state.snapshots


async def get_key_store(state: State) -> KeyStore:
    return state.keys


async def get_audit(state: State) -> AuditLog:
    return state.audit


async def get_metrics(state: State) -> ServiceMetrics:
    return state.metrics


async def get_directory(state: State) -> CustomerDirectory:
    return state.directory


async def get_settlements(state: State) -> dict[str, Settlement]:
    return state.settlements


async def get_principal(
    keys: Annotated[KeyStore, Depends(get_key_store)],
    api_key: Annotated[str | None, Security(api_key_header)],
    credentials: Annotated[HTTPAuthorizationCredentials | None, Security(bearer)],
    request: Request,
) -> Principal:
    # `api_key` and `credentials` document the two headers in the OpenAPI document; `presented_key` reads them
    # as they do, and is what `main.KeyBeforeBody` checks before a body is read.
    presented = presented_key(request.headers)
    principal = keys.authenticate(presented)
    _only_known_query(request)  # after the key: a keyless request is a 401, whatever it asks
    return principal


def presented_key(headers: Mapping[str, str]) -> str | None:
    """The key in `X-API-Key`, else in `Authorization: Bearer`, as `api_key_header` and `bearer` read them;
    None without one. NotAuthenticated for an Authorization header of another scheme: HTTPBearer drops it
    without a word, and the caller, who sent a credential, was told it sent none."""
    api_key = headers.get("x-api-key") or None
    authorization = headers.get("authorization", "")
    scheme, _, credentials = authorization.partition(" ")
    presented = api_key or (credentials if scheme.lower() == "bearer" and credentials else None)
    word = authorization.split(maxsplit=1)[0] if authorization.strip() else ""
    if not presented and word and word.lower() != "bearer":
        raise NotAuthenticated(f"{_unread_authorization(word)}; {SEND_KEY_AS}")
    return presented


# Accepted on every keyed route besides its own parameters, as a client sets them once for all its calls:
# jQuery's `cache: false` appends `_=<time>` to every GET (any value, sent any number of times, ignored),
# and `lang` is read by the routes whose answers hold words (reasons, notes); on the others it changes
# nothing, but its value is checked as theirs is, so `lang=cn` is the same 422 everywhere.
CACHE_BUSTER = "_"
LANG = "lang"
_LANG = TypeAdapter(Lang)


def _only_known_query(request: Request) -> None:
    """A query parameter the route does not read, or one sent twice, is a 422: `?offset=100` returned the
    first page again without a word, `?station=A&station=B` listed B only, and `summary?station=` summed every
    station. No API parameter takes a list, so a repeat is always a contradiction. `_` and `lang` pass on
    every route (`CACHE_BUSTER`): `GET /v1/models?lang=en` and a jQuery call had become 422s."""
    route = request.scope.get("route")
    if not isinstance(route, APIRoute):
        return
    known = _query_names(route)
    given = request.query_params.multi_items()
    errors: list[dict[str, Any]] = []
    for name in dict.fromkeys(name for name, _ in given):
        if name == CACHE_BUSTER:
            continue
        values = [value for key, value in given if key == name]
        if name == LANG and name not in known and len(values) == 1:
            errors.extend(_lang_errors(values[0]))
        elif name not in known and name != LANG:
            reads = ", ".join(sorted(known)) or "no query parameter"
            paging = "; there is no paging, `top` sizes the list" if "top" in known else ""
            msg = f"{name!r} is not a parameter of this route (it reads {reads}){paging}"
            errors.append({"type": "extra_forbidden", "loc": ("query", name), "msg": msg, "input": values[0]})
        elif len(values) > 1:
            msg = f"{name} is sent {len(values)} times; send it once (only one value is read)"
            errors.append({"type": "repeated", "loc": ("query", name), "msg": msg, "input": values})
    if errors:
        raise RequestValidationError(errors)


def _lang_errors(value: str) -> list[dict[str, Any]]:
    """`lang` on a route that does not read it: the 422 the routes that read it give, or none."""
    try:
        _LANG.validate_python(value)
    except ValidationError as exc:
        return [{**error, "loc": ("query", LANG)} for error in exc.errors(include_url=False)]
    return []


def _query_names(route: APIRoute) -> frozenset[str]:
    """The query parameters a route reads, its dependencies' included (a walk over a dozen nodes)."""

    def walk(dependant: Dependant) -> set[str]:
        names = {field.alias for field in dependant.query_params}
        for sub in dependant.dependencies:
            names |= walk(sub)
        return names

    return frozenset(walk(route.dependant))


SEND_KEY_AS = "send the API key as X-API-Key or as Authorization: Bearer <key>"
# A scheme as RFC 9110 registers them (Basic, Digest, Token, Negotiate, PrivateToken): only such a word is
# repeated back. A key pasted without "Bearer " is the first word itself; quoting it put the key's id and part
# of its secret into the 401 and the audit log.
_SCHEME_WORD = re.compile(r"[A-Za-z]{1,12}")


def _unread_authorization(scheme: str) -> str:
    if scheme.startswith(f"{KEY_PREFIX}_"):
        return "an API key in Authorization without a scheme is not read"
    if _SCHEME_WORD.fullmatch(scheme):
        return f"Authorization: {scheme} is not read"
    return "an Authorization header without the Bearer scheme is not read"


Settings = Annotated[ServingSettings, Depends(get_settings)]
Models = Annotated[ModelStore, Depends(get_model_store)]
Keys = Annotated[KeyStore, Depends(get_key_store)]
Snapshots = Annotated[SnapshotStore, Depends(get_snapshot_store)]
Audit = Annotated[AuditLog, Depends(get_audit)]
Metrics = Annotated[ServiceMetrics, Depends(get_metrics)]
Directory = Annotated[CustomerDirectory, Depends(get_directory)]
Settlements = Annotated[dict[str, Settlement], Depends(get_settlements)]
Caller = Annotated[Principal, Depends(get_principal)]
