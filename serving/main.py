"""The scoring service's app factory: mounts the routers, loads champions and snapshots in the lifespan,
and polls the registry so a moved alias is served without a restart.

`gridrisk serve` runs `create_app` under uvicorn (factory mode); tests call it with a prepared `ServiceState`.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import AsyncIterator, Sequence
from typing import Any
from urllib.parse import unquote_plus

from fastapi import APIRouter, FastAPI
from starlette.concurrency import run_in_threadpool
from starlette.datastructures import Headers

from serving.dependencies import presented_key
from serving.errors import (
    TOO_LARGE,
    BodyTooLarge,
    KeyStoreError,
    NotAuthenticated,
    error_response,
    install_handlers,
)
from serving.history import history_store
from serving.metrics import MetricsMiddleware
from serving.routes import customers, feature_list, health, models, risk_lists, scores, summary
from serving.service import ServiceState
from serving.settings import ServingSettings
from serving.web import pages

logger = logging.getLogger(__name__)

# The web page (serving/web/pages.py) comes last. customers before summary: /v1/customers/{id} must win over
# /v1/{task}/summary for the (unlikely) customer id "summary".
ROUTERS: tuple[APIRouter, ...] = (
    health.router,
    scores.router,
    feature_list.router,
    risk_lists.router,
    models.router,
    customers.router,
    summary.router,
    pages.router,
)


# What the operations' own schemas cannot say.
API_DESCRIPTION = (
    "A query parameter sent blank (`?top=`, `?lang=`) is read as absent: its default, or any value within "
    "the key's scope for a filter. A query parameter the operation does not list, or one sent twice, is a "
    "422, except `_` (a cache-buster, ignored) and `lang` (`zh` or `en`; where the operation does not list "
    "it, its answer has no words to translate, and only its value is checked). Every answer under /v1/ is "
    "`Cache-Control: no-store`."
)


async def _poll(app: FastAPI, state: ServiceState) -> None:
    while True:
        await asyncio.sleep(state.settings.poll_seconds)
        try:
            changed = await run_in_threadpool(state.refresh)
        except Exception:  # the poller must outlive a registry hiccup
            logger.exception("refresh failed; serving the models already loaded")
        else:
            if changed:
                logger.info("reloaded: %s", changed)
        if state.settings.warm_history:  # a re-ingested table gets its sorted copy before a page needs it
            history_store(app, state.settings).start_warming()  # beside the poll: models never wait for it


class HeadAsGet:
    """HEAD answered as GET without the body (RFC 9110 9.3.2) on the probe routes: load balancers and uptime
    monitors send HEAD to /health, and FastAPI's routes would answer 405. The status, headers and
    Content-Length are the GET's. Only routes without side effects: a HEAD on a list or a customer page would
    build it and write an audit line for a view that never happened."""

    PATHS = frozenset({"/health", "/ready", "/metrics"})

    def __init__(self, app: Any) -> None:
        self.app = app

    async def __call__(self, scope: dict, receive: Any, send: Any) -> None:
        if scope["type"] != "http" or scope["method"] != "HEAD" or scope["path"] not in self.PATHS:
            await self.app(scope, receive, send)
            return
        inner = {**scope, "method": "GET"}

        async def headers_only(message: dict) -> None:
            if message["type"] == "http.response.body":
                if message.get("more_body", False):
                    return
                message = {"type": "http.response.body", "body": b"", "more_body": False}
            await send(message)

        try:
            await self.app(inner, receive, headers_only)
        finally:
            if "route" in inner:  # the metrics label a HEAD by the route it reached
                scope["route"] = inner["route"]


class BlankQueryIsAbsent:
    """An API query parameter left blank (`?min_probability=`, as a form or a script building URLs sends an
    empty field) is no parameter: the page and `?station=` already read blank as "any", while a blank number
    or sort key was a 422. Every method under /v1/ (a POST's `?lang=` was still a 422, a GET's the default);
    the query string is rebuilt only when it holds a blank."""

    def __init__(self, app: Any) -> None:
        self.app = app

    async def __call__(self, scope: dict, receive: Any, send: Any) -> None:
        query = scope.get("query_string", b"") if scope["type"] == "http" else b""
        if query and scope["path"].startswith("/v1/"):
            parts = query.split(b"&")
            # A blank copy of a parameter sent with a value too (`?station=S01&station=`) is kept, so the
            # check for repeats names it: dropped, the request read as S01 alone.
            named = {_name(p) for p in parts if not _blank_value(p)}
            kept = [p for p in parts if not _blank_value(p) or _name(p) in named]  # the others as sent
            if len(kept) < len(parts):
                scope = {**scope, "query_string": b"&".join(kept)}
        await self.app(scope, receive, send)


def _name(part: bytes) -> str:
    return unquote_plus(part.partition(b"=")[0].decode("latin-1"))


def _blank_value(part: bytes) -> bool:
    """`name=` or `name=%20`: a parameter whose value is empty or spaces (a bare `name` is not one)."""
    _, sep, value = part.partition(b"=")
    return bool(sep) and not unquote_plus(value.decode("latin-1")).strip()


class PrivateAnswers:
    """Every API answer (`/v1/…`) is `Cache-Control: no-store` and varies by key: risk lists in JSON, CSV
    and XLSX, customer files and scores hold names, phones and a customer's history, and what comes back
    depends on whose key asked. The pages already said so (serving/web/pages.py); the API's same lists carried
    no such header, so a browser or a proxy could keep a collector's list, names and phones included."""

    ADDED = ((b"cache-control", b"no-store"), (b"x-content-type-options", b"nosniff"))
    VARY = b"X-API-Key, Authorization"

    def __init__(self, app: Any) -> None:
        self.app = app

    async def __call__(self, scope: dict, receive: Any, send: Any) -> None:
        if scope["type"] != "http" or not scope["path"].startswith("/v1/"):
            await self.app(scope, receive, send)
            return

        async def private(message: dict) -> None:
            if message["type"] == "http.response.start":
                headers = [(k, v) for k, v in message.get("headers", []) if k.lower() != b"vary"]
                vary = [v for k, v in message.get("headers", []) if k.lower() == b"vary"]
                present = {k.lower() for k, _ in headers}
                headers += [(k, v) for k, v in self.ADDED if k not in present]
                headers.append((b"vary", b", ".join([*vary, self.VARY])))
                message = {**message, "headers": headers}
            await send(message)

        await self.app(scope, receive, private)


class BodyLimit:
    """A request body over GRIDRISK_MAX_BODY_BYTES is a 413 (`BodyTooLarge`), not read whole: one whose
    Content-Length says so before the app runs, one sent without a length (chunked) once it grows past the
    limit. A tester's 60 MB post was read and parsed. The app's own answer to the cut-off read (FastAPI
    calls it a 400, a form parser raises) is replaced by the 413, unless it had started answering before."""

    def __init__(self, app: Any) -> None:
        self.app = app

    async def __call__(self, scope: dict, receive: Any, send: Any) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        # The lifespan builds the service after middleware is installed; the app in the scope holds it.
        limit = scope["app"].state.service.settings.max_body_bytes
        declared = _content_length(scope)
        if declared is not None and declared > limit:
            await error_response(BodyTooLarge(limit, declared))(scope, receive, send)
            return
        received = 0
        over: BodyTooLarge | None = None
        started = False  # the app's answer began before the body went over: it is the answer

        async def counted() -> dict:
            nonlocal received, over
            message = await receive()
            if message["type"] == "http.request":
                received += len(message.get("body", b""))
                if received > limit:
                    over = BodyTooLarge(limit)
                    raise over
            return message

        async def unless_over(message: dict) -> None:
            nonlocal started
            if over is not None and not started:
                return
            started = started or message["type"] == "http.response.start"
            await send(message)

        try:
            await self.app(scope, counted, unless_over)
        except Exception:
            if over is None or started:
                raise
        if over is not None and not started:
            await error_response(over)(scope, receive, send)


class KeyBeforeBody:
    """A request under /v1/ that carries a body, and no key the key store knows (none, an unknown or revoked
    one, another scheme), reaches the app with its body left unread: FastAPI reads and parses a body before a
    route's dependencies check the key, so an anonymous 49 MB post cost 3-4 s of the event loop for its 401,
    and a keyless body that was no JSON got a 400 or 422 instead of the 401. Given an empty body, the key
    check of the route (`dependencies.get_principal`) answers as it always does: the 401, its audit line and
    its metrics.
    A key store that cannot be read is left to the route too (a 503)."""

    def __init__(self, app: Any) -> None:
        self.app = app

    async def __call__(self, scope: dict, receive: Any, send: Any) -> None:
        service = getattr(scope["app"].state, "service", None) if scope["type"] == "http" else None
        if service is not None and scope["path"].startswith("/v1/") and _has_body(scope):
            try:
                service.keys.authenticate(presented_key(Headers(scope=scope)))
            except NotAuthenticated:
                receive = _no_body
            except KeyStoreError:
                pass
        await self.app(scope, receive, send)


async def _no_body() -> dict:
    return {"type": "http.request", "body": b"", "more_body": False}


def _has_body(scope: dict) -> bool:
    """Whether the request says it sends a body: a Content-Length above 0, or a chunked transfer."""
    for name, value in scope["headers"]:
        if name == b"transfer-encoding" or (name == b"content-length" and value.strip(b"0 ")):
            return True
    return False


def _content_length(scope: dict) -> int | None:
    """The declared body length; None without one (chunked) or for a malformed one (the server refuses it)."""
    for name, value in scope["headers"]:
        if name == b"content-length":
            return int(value) if value.isdigit() else None
    return None


def create_app(
    settings: ServingSettings | None = None,
    state: ServiceState | None = None,
    routers: Sequence[APIRouter] = ROUTERS,
) -> FastAPI:
    """The FastAPI app. Without `state`, one is built from settings (environment) at start-up."""

    @contextlib.asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        service = state or ServiceState.build(settings or ServingSettings())
        app.state.service = service
        changed = await run_in_threadpool(service.start)
        logger.info("serving %s", changed or "no models yet")
        if service.settings.warm_history:
            # A customer file reads sorted copies of the history tables; at 200,000 customers the first one
            # took 17 s to build inside a page view. Build them now, beside the requests.
            history_store(app, service.settings).start_warming()
        poller = asyncio.create_task(_poll(app, service)) if service.settings.poll_seconds > 0 else None
        try:
            yield
        finally:
            if poller is not None:
                poller.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await poller

    app = FastAPI(
        title="gridrisk",
        version="0.1.0",
        summary="Calibrated, explained arrears, suspension and theft risk; risk lists for collection teams",
        description=API_DESCRIPTION,
        lifespan=lifespan,
    )
    if state is not None:
        app.state.service = state
    for router in routers:
        app.include_router(router, responses=TOO_LARGE)  # BodyLimit answers it on any route
    install_handlers(app)
    app.add_middleware(BlankQueryIsAbsent)
    app.add_middleware(KeyBeforeBody)  # inside the body limit: a 413 comes before the key, as documented
    app.add_middleware(HeadAsGet)  # inside the metrics: they count a HEAD as a HEAD
    app.add_middleware(BodyLimit)  # inside the metrics too: they count the 413s
    app.add_middleware(PrivateAnswers)  # outside the body limit: a 413 on /v1/ is an API answer too
    app.add_middleware(MetricsMiddleware)
    return app
