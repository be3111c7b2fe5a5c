"""The web page's routes: sign-in, the risk list (filtered, paged, exported), the customer file, the station
overview and the models page. Each page calls the functions the API routes call, with the signed-in key's
principal, so a page shows what the API would return to that key and nothing more.

Errors raised by those functions become an HTML page with the API's status code (`serving.errors.status_of`);
a missing or expired session redirects to the sign-in form and back.
"""

from __future__ import annotations

import datetime as dt
import html
import logging
import math
import re
from collections.abc import Callable, Coroutine, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Annotated, Any
from urllib.parse import quote, urlencode, urlsplit

import jinja2
import numpy as np
from fastapi import APIRouter, Depends, Form, Query, Request, Response
from fastapi.exceptions import RequestValidationError
from fastapi.responses import FileResponse, HTMLResponse, RedirectResponse
from fastapi.routing import APIRoute
from pydantic import BaseModel, Field, field_validator
from starlette.exceptions import HTTPException

from serving.access import PERMISSIONS, Action, KeyStore, Principal, blank_is_any
from serving.customer_file import customer_file
from serving.dependencies import (
    Audit,
    Directory,
    Models,
    Settings,
    Settlements,
    Snapshots,
    State,
    get_key_store,
)
from serving.errors import (
    Forbidden,
    HomeUnwritable,
    KeyStoreError,
    NotAuthenticated,
    ServingError,
    SnapshotUnavailable,
    audit_refusal,
    caller_detail,
    status_of,
)
from serving.exports import csv_bytes, xlsx_bytes
from serving.model import TIE_BREAK
from serving.ranking import ListQuery, list_items, list_scope, risk_list, select, table_rows
from serving.routes.customers import CustomerIdPath, History
from serving.schemas import WORK_LIST_ORDER, FileFormat, Lang, RiskListResponse, SortKey, Task, WrittenInt
from serving.settlement import OUTSTANDING, Settlement, for_snapshot
from serving.snapshot import Snapshot, SnapshotStore
from serving.station_summary import scoped, served_station_table, summarize
from serving.view_schemas import CustomerFile, SummaryBy, SummaryResponse
from serving.web import charts
from serving.web.i18n import (
    EXPORT_HEADERS,
    INVALID_FIELDS,
    INVALID_TYPES,
    TEXT,
    choices_zh,
    label,
    metric_word,
)
from serving.web.model_board import alias_source, metric_text, model_board
from serving.web.search import matching, openable
from serving.web.session import (
    LANG_COOKIE,
    SESSION_COOKIE,
    SIGNED_OUT_FILE,
    SessionSigner,
    SignedOut,
    load_secret,
    principal_of,
)
from serving.web.settings import WebSettings

logger = logging.getLogger(__name__)

HERE = Path(__file__).parent
STATIC_TYPES = {"gridrisk.css": "text/css; charset=utf-8", "gridrisk.js": "text/javascript; charset=utf-8"}
SECURITY_HEADERS = {
    # Everything the page uses is served from here; charts are inline SVG markup, not scripts or styles.
    "Content-Security-Policy": "default-src 'self'; img-src 'self' data:; style-src 'self'; "
    "script-src 'self'; form-action 'self'; frame-ancestors 'none'; base-uri 'none'",
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "same-origin",
    "Cache-Control": "no-store",  # pages can hold names and phones
}
XLSX = "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet"
HTML_LANG = {Lang.ZH: "zh-CN", Lang.EN: "en"}  # the `lang` attribute of each
LANG_COOKIE_DAYS = 365
UNSAFE_IN_NAME = re.compile(r'[\\/:*?"<>|\s\x00-\x1f]')  # in a file name on Windows, or in a header
EXPIRED_NOTE_SECONDS = 7 * 86400


class NotSignedIn(NotAuthenticated):
    """No valid session cookie: the page redirects to the sign-in form, which says why when it can (`why`:
    "expired", "signed_out" or "revoked"; None for a browser that was never signed in)."""

    def __init__(self, message: str, why: str | None = None) -> None:
        super().__init__(message)
        self.why = why


class CrossSiteForm(Forbidden):
    """A form posted to this site from a page of another site (a 403 page)."""


class PageRoute(APIRoute):
    """Turns serving errors and invalid query strings into HTML pages (the API routes keep JSON)."""

    def get_route_handler(self) -> Callable[[Request], Coroutine[Any, Any, Response]]:
        handler = super().get_route_handler()

        async def page(request: Request) -> Response:
            try:
                return await handler(request)
            except NotSignedIn as exc:
                here = page_path(request) + (f"?{request.url.query}" if request.url.query else "")
                query = {"next": here} | ({"why": exc.why} if exc.why else {})
                redirect = RedirectResponse("/login?" + urlencode(query), status_code=303)
                if exc.why:  # the reason travels in the URL; the cookie is dead
                    redirect.delete_cookie(SESSION_COOKIE)
                return redirect
            except ServingError as exc:
                status = status_of(exc)
                if status >= 500:  # as the API's handler does: an operator has something to fix
                    logger.warning("%s %s -> %d: %s", request.method, request.url.path, status, exc)
                audit_refusal(request, exc)
                says = "error_says_csrf" if isinstance(exc, CrossSiteForm) else None
                return error_page(request, status, caller_detail(exc), says=says)
            except RequestValidationError as exc:
                lang = page_lang(request)
                return error_page(request, 422, invalid_detail(exc.errors(), lang), detail_lang=lang)
            except HTTPException as exc:
                if exc.status_code != 400:
                    raise
                # a form the parser cannot read (multipart without its boundary, more than 1,000 fields):
                # FastAPI's JSON on a page, in English
                return error_page(request, 400, str(exc.detail), says="error_says_form")

        return page


router = APIRouter(route_class=PageRoute, include_in_schema=False)


# -- context: settings, session, language, rendering ---------------------------------------------------------


def _yuan(value: float | None) -> str:
    return "—" if value is None or (isinstance(value, float) and math.isnan(value)) else f"¥{value:,.0f}"


def _pct(value: float | None, digits: int = 1) -> str:
    return "—" if value is None else f"{value * 100:.{digits}f}%"


def _signed_yuan(value: float | None) -> str:
    if value is None:
        return "—"
    return ("+" if value > 0 else "−" if value < 0 else "±") + f"¥{abs(value):,.0f}"


def _signed_int(value: int | None) -> str:
    return "—" if value is None else f"{value:+d}".replace("-", "−")


def _day(value: Any) -> str:
    return "—" if value is None else value.strftime("%Y-%m-%d")


def _minute(value: Any) -> str:
    """Warehouse times are local and naive; registry times carry a zone and are shown in UTC, saying so."""
    if value is None:
        return "—"
    if getattr(value, "tzinfo", None) is not None:
        return value.astimezone(dt.UTC).strftime("%Y-%m-%d %H:%M UTC")
    return value.strftime("%Y-%m-%d %H:%M")


def _number(value: float | None, digits: int = 0) -> str:
    return "—" if value is None else f"{value:,.{digits}f}"


def url(path: str, **params: Any) -> str:
    """A local URL with the non-empty parameters as its query string."""
    kept = {k: v.value if hasattr(v, "value") else v for k, v in params.items() if v not in (None, "")}
    return path + (f"?{urlencode(kept)}" if kept else "")


def customer_url(customer_id: str, **params: Any) -> str:
    """The customer page: ingest takes any id, and one holding `/`, `#`, `?` or `%` must stay one segment."""
    return url("/customers/" + quote(customer_id, safe=""), **params)


def page_path(request: Request) -> str:
    """This page's path as a link to it again: the decoded path re-encoded, so a customer id holding `#`, `?`
    or `%` comes back as itself (its `/` may stay a `/`: the customer routes take the rest of the path)."""
    return quote(request.scope["path"])


@dataclass
class WebContext:
    settings: WebSettings
    signer: SessionSigner
    env: jinja2.Environment
    signed_out: SignedOut

    @classmethod
    def build(cls, settings: WebSettings, home: Path) -> WebContext:
        configured = settings.session_secret.get_secret_value() if settings.session_secret else None
        signer = SessionSigner(load_secret(configured, home), settings.session_hours * 3600)
        env = jinja2.Environment(
            loader=jinja2.FileSystemLoader(HERE / "templates"),
            autoescape=jinja2.select_autoescape(["html"]),
            undefined=jinja2.StrictUndefined,  # a missing word or field fails the page tests, not a user
            trim_blocks=True,
            lstrip_blocks=True,
        )
        env.filters.update(
            yuan=_yuan,
            pct=_pct,
            signed_yuan=_signed_yuan,
            signed_int=_signed_int,
            day=_day,
            minute=_minute,
            number=_number,
        )
        env.globals.update(url=url, customer_url=customer_url, metric_text=metric_text)
        return cls(settings, signer, env, SignedOut(Path(home) / SIGNED_OUT_FILE))


def get_web(request: Request, state: State) -> WebContext:
    web: WebContext | None = getattr(request.app.state, "web", None)
    if web is None:
        web = WebContext.build(WebSettings(), state.settings.home)
        request.app.state.web = web
    return web


def page_lang(request: Request) -> Lang:
    """`?lang=` wins and is remembered in a cookie; else the cookie; else Chinese."""
    for value in (request.query_params.get("lang"), request.cookies.get(LANG_COOKIE)):
        if value in (Lang.ZH.value, Lang.EN.value):
            return Lang(value)
    return Lang.ZH


def session_principal(request: Request, web: WebContext, keys: KeyStore) -> Principal | None:
    session = web.signer.read(request.cookies.get(SESSION_COOKIE))
    if session is None or session in web.signed_out:
        return None
    return principal_of(keys, session.key_id, session.prefix)


Web = Annotated[WebContext, Depends(get_web)]
Keys = Annotated[KeyStore, Depends(get_key_store)]
PageLang = Annotated[Lang, Depends(page_lang)]


def signed_in(request: Request, web: Web, keys: Keys) -> Principal:
    principal = session_principal(request, web, keys)
    if principal is None:
        raise NotSignedIn("sign in with your API key", signed_out_why(request, web))
    return principal


def signed_out_why(request: Request, web: WebContext) -> str | None:
    """Why a browser holding a session cookie is no longer signed in, for a one-line note on the sign-in form.
    The cookie's holder learns only what signing in again would tell them; a cookie we did not sign gets no
    reason."""
    token = request.cookies.get(SESSION_COOKIE)
    session = web.signer.read(token)
    if session is None:
        return "expired" if web.signer.expired(token) else None
    if session in web.signed_out:
        return "signed_out"  # a copy of a cookie, replayed after its session signed out
    return "revoked"  # the key's record is gone: revoked, or replaced under the same id


User = Annotated[Principal, Depends(signed_in)]


def render(
    request: Request,
    web: WebContext,
    lang: Lang,
    template: str,
    user: Principal | None,
    status: int = 200,
    **context: Any,
) -> HTMLResponse:
    text = TEXT[lang.value]
    other = Lang.EN if lang == Lang.ZH else Lang.ZH
    switch = url(page_path(request), **{**dict(request.query_params), "lang": other.value})
    html = web.env.get_template(template).render(
        lang=lang.value,
        t=text,
        L=lambda kind, value: label(lang, kind, value),
        M=lambda name: metric_word(lang, name),
        fmt=lambda key, **kw: text[key].format(**kw),
        user=user,
        can_models=user is not None and user.role in PERMISSIONS[Action.MODELS],
        path=request.url.path,
        switch_url=switch,
        **context,
    )
    response = HTMLResponse(html, status_code=status, headers=SECURITY_HEADERS)
    if request.query_params.get("lang") in (Lang.ZH.value, Lang.EN.value):
        response.set_cookie(
            LANG_COOKIE,
            lang.value,
            max_age=LANG_COOKIE_DAYS * 86400,
            httponly=True,
            samesite="lax",
            secure=web.settings.cookie_secure,
        )
    return response


def invalid_detail(errors: Sequence[Any], lang: Lang) -> str:
    """A 422's errors as the page says them: on a Chinese page the field's label and the rule in Chinese
    where `INVALID_TYPES` has it (pydantic's English otherwise); on an English page pydantic's own words."""
    parts = []
    for error in errors:
        field = str(error["loc"][-1])
        if lang == Lang.EN:
            parts.append(f"{field}: {error['msg']}")
            continue
        rule = INVALID_TYPES.get(error["type"])
        try:
            said = rule.format(**_invalid_context(field, error)) if rule else error["msg"]
        except KeyError:  # a `ctx` without the rule's number or choices: pydantic's words
            said = error["msg"]
        parts.append(f"{INVALID_FIELDS.get(field, field)}：{said}")
    return "；".join(parts) if lang == Lang.ZH else "; ".join(parts)


def _invalid_context(field: str, error: dict[str, Any]) -> dict[str, Any]:
    """A 422's `ctx` as the Chinese rule quotes it: `1` for pydantic's `1.0`, and the allowed choices of an
    `enum` in the page's words (pydantic's `expected` is "'expected_value' or 'probability'")."""
    ctx = {
        name: int(value) if isinstance(value, float) and value.is_integer() else value
        for name, value in error.get("ctx", {}).items()
    }
    values = re.findall(r"'([^']*)'", str(ctx.get("expected", "")))
    if error["type"] == "enum" and values:
        ctx["expected"] = choices_zh(field, values)
    return ctx


def error_page(
    request: Request, status: int, detail: str, says: str | None = None, detail_lang: Lang = Lang.EN
) -> HTMLResponse:
    """The error page: a sentence in the page's language for the status (`says` names another), then the
    detail, which is the API's English message except where `detail_lang` says otherwise."""
    state = request.app.state.service
    try:
        web = getattr(request.app.state, "web", None) or WebContext.build(WebSettings(), state.settings.home)
    except HomeUnwritable as exc:  # the page itself needs the session secret: say so in plain HTML
        return HTMLResponse(f"<!doctype html><title>{status}</title><p>{html.escape(str(exc))}", status)
    try:
        user = session_principal(request, web, state.keys)
    except KeyStoreError:
        # The keys file is what this page reports (a 503): no one can be signed in until it is restored, and
        # letting the error out again here would answer the page with the API's JSON.
        user = None
    lang = page_lang(request)
    return render(
        request, web, lang, "error.html", user, status=status,
        status_code=status, detail=detail, says=says or f"error_says_{status}",
        detail_lang=None if detail_lang == lang else HTML_LANG[detail_lang],
    )  # fmt: skip


def safe_next(target: str | None) -> str:
    """Only a path on this site: never `//host` or a full URL (no open redirect through the sign-in form)."""
    if not target or not target.startswith("/") or target.startswith("//") or "\\" in target:
        return "/list"
    return target


# -- sign-in -------------------------------------------------------------------------------------------------


def _authority(netloc: str, scheme: str) -> str:
    """host[:port] in lower case, without the scheme's default port (browsers leave it out of Host)."""
    default = {"http": ":80", "https": ":443"}.get(scheme, "")
    netloc = netloc.lower()
    return netloc.removesuffix(default) if default else netloc


def same_site_form(request: Request) -> None:
    """CrossSiteForm unless the form was posted from a page of this host.

    `SameSite=Lax` does not stop another site's page from posting a sign-in form: the answer to a top-level
    cross-site POST still sets the cookie, so a collector was switched to another key's stations unseen.
    Browsers send `Origin` with every form POST (`Referer` where an older one does not), and a page cannot
    forge either. A POST with neither header comes from a script or curl, which can post any key it holds
    anyway, so it passes. Behind a reverse proxy, Host must reach the service as the browser sent it.
    """
    sent = request.headers.get("origin") or request.headers.get("referer")
    if sent is None:
        return
    try:
        parts = urlsplit(sent)  # "null" (a sandboxed frame, a file) has no host and is another site
    except ValueError:  # `http://[::1`: no browser sends it, and it was a 500
        parts = urlsplit("")
    here = _authority(request.headers.get("host", ""), request.url.scheme)
    if not parts.netloc or _authority(parts.netloc, parts.scheme) != here:
        raise CrossSiteForm(
            f"a form posted to {request.method} {request.url.path} from another site ({_site(sent)}) is "
            "refused: sign in and out on this site's own page"
        )


def _site(sent: str) -> str:
    """The site an Origin or Referer names, as a refusal quotes it (the 403 page and the audit line's
    `detail`): scheme://host[:port] only. A Referer's query holds the list's search (`/list?q=王小7`, a
    customer's name), which the audit log never holds, and user information would be a password."""
    if sent.strip() == "null":
        return "null"
    try:
        parts = urlsplit(sent)
    except ValueError:
        return "an unreadable address"
    host = parts.netloc.rpartition("@")[2]
    if not parts.scheme or not host:
        return "an address without a host"
    return f"{parts.scheme}://{host}"[:100]


SameSiteForm = Depends(same_site_form)


@router.get("/")
def home() -> RedirectResponse:
    return RedirectResponse("/list", status_code=303)


@router.get("/static/{name}")
def static(name: str) -> Response:
    if name not in STATIC_TYPES:
        return Response(status_code=404)
    return FileResponse(
        HERE / "static" / name, media_type=STATIC_TYPES[name], headers={"Cache-Control": "max-age=3600"}
    )


SIGN_IN_NOTES = ("signed_out", "expired", "revoked")  # `?why=` on the sign-in form; any other says nothing


@router.get("/login", response_class=HTMLResponse)
def login_form(
    request: Request, web: Web, keys: Keys, lang: PageLang, next: str | None = None, why: str | None = None
) -> Response:
    if session_principal(request, web, keys) is not None:
        return RedirectResponse(safe_next(next), status_code=303)
    note = TEXT[lang.value][f"login_note_{why}"] if why in SIGN_IN_NOTES else None
    return render(request, web, lang, "login.html", None, next=safe_next(next), error=None, note=note)


@router.post("/login", response_class=HTMLResponse, dependencies=[SameSiteForm])
def login(
    request: Request,
    web: Web,
    keys: Keys,
    lang: PageLang,
    api_key: Annotated[str, Form(max_length=300)] = "",
    next: Annotated[str, Form(max_length=2000)] = "/list",
) -> Response:
    text = TEXT[lang.value]
    try:
        principal = keys.authenticate(api_key.strip())
    except NotAuthenticated as exc:
        audit_refusal(request, exc)
        return render(
            request,
            web,
            lang,
            "login.html",
            None,
            status=401,
            next=safe_next(next),
            error=text["login_unknown"],
            note=None,
        )
    if principal.role not in PERMISSIONS[Action.RISK_LIST]:
        audit_refusal(
            request, principal.refusal(f"has role {principal.role}; the web page needs a list role")
        )
        error = text["login_role"].format(role=label(lang, "role", principal.role.value))
        return render(
            request, web, lang, "login.html", None, status=403, next=safe_next(next), error=error, note=None
        )
    record = keys.record(principal.key_id)
    assert record is not None  # authenticate just found it
    response = RedirectResponse(safe_next(next), status_code=303)
    response.set_cookie(
        SESSION_COOKIE,
        web.signer.issue(record),
        # The token expires after session_hours whatever the cookie does; the browser keeps the dead cookie a
        # week longer so the sign-in form can say the session expired (without it, it said nothing).
        max_age=int(web.settings.session_hours * 3600) + EXPIRED_NOTE_SECONDS,
        httponly=True,
        samesite="lax",
        secure=web.settings.cookie_secure,
    )
    logger.info("web sign-in: key %s (%s)", principal.key_id, principal.role.value)
    return response


@router.post("/logout", dependencies=[SameSiteForm])
def logout(request: Request, web: Web) -> RedirectResponse:
    session = web.signer.read(request.cookies.get(SESSION_COOKIE))
    if session is not None:
        try:
            web.signed_out.add(session)  # a copy of the cookie kept elsewhere is signed out too
        except OSError as exc:
            # Only the record ends the session: dropping this browser's cookie alone left every copy of it
            # working while the page said "signed out". The cookie stays, so sign-out can be tried again.
            until = dt.datetime.fromtimestamp(session.expires, dt.UTC).strftime("%Y-%m-%d %H:%M UTC")
            raise HomeUnwritable(
                "signed-out sessions file",
                web.signed_out.path,
                exc,
                f"this session could not be ended: you are still signed in, and the cookie keeps working "
                f"until {until} (`gridrisk keys revoke {session.key_id}` ends every session of the key now)",
            ) from exc
        logger.info("web sign-out: key %s", session.key_id)
    response = RedirectResponse("/login?why=signed_out", status_code=303)
    response.delete_cookie(SESSION_COOKIE)
    return response


# -- risk list -----------------------------------------------------------------------------------------------


class ListFilters(BaseModel):
    """The list form's fields; an empty form field means "any" (browsers send `station=` for it). `q` is the
    search box (serving/web/search.py): it narrows the page, not the exports, which are the work list."""

    task: Task = Task.ARREARS
    q: str | None = Field(None, max_length=100)
    supply_unit: str | None = Field(None, max_length=100)
    station: str | None = Field(None, max_length=100)
    usage_category: str | None = Field(None, max_length=100)
    # finite, as the API's: `nan` was refused as 「应不大于 1.0」 (should be at most 1)
    min_probability: float | None = Field(None, ge=0.0, le=1.0, allow_inf_nan=False)
    per_station_top: WrittenInt | None = Field(None, ge=1, le=100_000)
    sort: SortKey | None = None  # none chosen: the task's work-list order (`order`)
    hide_settled: bool | None = None  # arrears: leave out who paid their balance since the list's date
    page: WrittenInt = Field(1, ge=1)

    @field_validator(
        "supply_unit", "station", "usage_category", "min_probability", "per_station_top", mode="before"
    )
    @classmethod
    def _blank_is_any(cls, value: Any) -> Any:
        return blank_is_any(value) if isinstance(value, str) else value

    @field_validator("q", mode="before")
    @classmethod
    def _trimmed(cls, value: Any) -> Any:
        return (value.strip() or None) if isinstance(value, str) else value  # an id pasted with spaces

    @property
    def order(self) -> SortKey:
        return self.sort or WORK_LIST_ORDER[self.task]

    def query(self, top: int) -> ListQuery:
        return ListQuery(
            self.supply_unit,
            self.station,
            self.usage_category,
            self.min_probability,
            top,
            self.per_station_top,
            self.order,
            bool(self.hide_settled),
        )

    def params(self, **changes: Any) -> dict[str, Any]:
        return {**self.model_dump(mode="json"), **changes}


Filters = Annotated[ListFilters, Query()]


def filter_options(snapshot: Snapshot, user: Principal, supply_unit: str | None) -> dict[str, list[str]]:
    """Choices for the selects: only units and stations inside the key's scope that the snapshot holds."""
    stations, units = user.scope(None, None)
    table = scoped(served_station_table(snapshot), stations, units)
    unit_names = sorted({u for u in table["supply_unit"] if u is not None})
    in_unit = table if supply_unit is None else table[table["supply_unit"] == supply_unit]
    return {
        "supply_units": unit_names,
        "stations": sorted({s for s in in_unit["station"] if s is not None}),
        "usage_categories": sorted(str(c) for c in snapshot.categories.get("usage_category", [])),
    }


@router.get("/list", response_class=HTMLResponse)
def list_page(
    request: Request,
    web: Web,
    lang: PageLang,
    user: User,
    models: Models,
    snapshots: Snapshots,
    directory: Directory,
    settlements: Settlements,
    audit: Audit,
    filters: Filters,
) -> Response:
    user.require(Action.RISK_LIST)
    task = filters.task
    snapshot = snapshots.get(task)
    package = models.get(task).package
    settlement = for_snapshot(settlements, snapshot)
    stations, units = list_scope(snapshot, user, filters.station, filters.supply_unit)
    if filters.q and openable(filters.q, snapshot, directory, user):
        # Its back link drops the search, which would open the customer again.
        back = url("/list", **filters.params(q=None, page=None))
        return RedirectResponse(customer_url(filters.q, back=back), status_code=303)
    pos, matched = select_all(snapshot, filters, stations, units, settlement)
    listed = len(pos)
    places = np.arange(1, listed + 1)  # each row's place in the list, kept through the search
    if filters.q:
        found = matching(filters.q, snapshot, pos, directory, user)
        pos, places = pos[found], places[found]
    size = web.settings.page_size
    pages = max(1, math.ceil(len(pos) / size))
    page = min(filters.page, pages)
    shown = slice((page - 1) * size, page * size)
    items = list_items(snapshot, package, pos[shown], user, directory, lang, settlement)
    logged = {**filters.query(size).filters(), "page": page, "via": "web"}
    if filters.q:
        logged["searched"] = True  # never the text: it may be a name
    audit.record(user, Action.RISK_LIST, task, logged, snapshot.model.version, len(items))
    here = url("/list", **filters.params(page=page))
    return render(
        request, web, lang, "list.html", user,
        filters=filters, task=task, snapshot=snapshot, items=items, positions=places[shown].tolist(),
        settlement=settlement, paid_column=settlement is not None or OUTSTANDING in snapshot.numbers,
        matched=matched, listed=listed,
        found=len(pos), export_max=web.settings.export_max_rows,
        page=page, pages=pages, options=filter_options(snapshot, user, filters.supply_unit),
        here=here, tasks=list(Task), sorts=list(SortKey),
    )  # fmt: skip


def select_all(
    snapshot: Snapshot,
    filters: ListFilters,
    stations: list[str] | None,
    units: list[str] | None,
    settlement: Settlement | None,
) -> tuple[np.ndarray, int]:
    return select(snapshot, filters.query(top=max(snapshot.size, 1)), stations, units, settlement)


def export_table(response: RiskListResponse, lang: Lang) -> tuple[list[str], list[list]]:
    """The API's export rows with headers, bands and usage categories in the page's language."""
    header, rows = table_rows(response)
    words = EXPORT_HEADERS[lang.value]
    titled = [
        words["reason"].format(i=h.removeprefix("reason_")) if h.startswith("reason_") else words.get(h, h)
        for h in header
    ]
    translate = {i: kind for i, kind in enumerate(header) if kind in ("band", "usage_category", "settled")}
    for row in rows:
        for i, kind in translate.items():
            row[i] = label(lang, kind, row[i]) if row[i] is not None else None
    return titled, rows


@router.get("/list/export")
def export(
    web: Web,
    lang: PageLang,
    user: User,
    models: Models,
    snapshots: Snapshots,
    directory: Directory,
    settlements: Settlements,
    audit: Audit,
    filters: Filters,
    format: FileFormat = FileFormat.XLSX,
) -> Response:
    """The whole filtered list (every page, after the per-station cap), as the person sees it."""
    user.require(Action.RISK_LIST)
    task = filters.task
    query = filters.query(top=web.settings.export_max_rows)
    snapshot = snapshots.get(task)  # one snapshot for the file and the counts its headers give
    settlement = for_snapshot(settlements, snapshot)
    package = models.get(task).package
    response = risk_list(task, snapshot, package, query, user, directory, lang, settlement)
    audit.record(
        user, Action.RISK_LIST, task, {**query.filters(), "via": f"web-{format.value}"},
        response.model.version, response.count,
    )  # fmt: skip
    header, rows = export_table(response, lang)
    # The page says when the list is longer than an export may be; the file's response says it too.
    stations, units = user.scope(filters.station, filters.supply_unit)
    listed = len(select_all(snapshot, filters, stations, units, settlement)[0])
    name = export_name(task, response.as_of, units, stations)
    if format == FileFormat.CSV:
        body, media, ext = csv_bytes(header, rows), "text/csv; charset=utf-8", "csv"
    else:
        title = f"{label(lang, 'task', task.value)} {response.as_of.isoformat()}"
        body, media, ext = xlsx_bytes(title, header, rows), XLSX, "xlsx"
    disposition = f"attachment; filename=\"{ascii_name(name)}.{ext}\"; filename*=UTF-8''{quote(name)}.{ext}"
    counts = {"X-Gridrisk-Rows": str(response.count), "X-Gridrisk-Rows-Listed": str(listed)}
    return Response(
        body,
        media_type=media,
        headers={"Content-Disposition": disposition, "Cache-Control": "no-store", **counts},
    )


def export_name(task: Task, as_of: dt.date, units: list[str] | None, stations: list[str] | None) -> str:
    """gridrisk-arrears-2026-11-10[-<supply unit>][-<station>]: the one unit or station the file holds (a
    filter's, or a collector's own), so two stations' files are not "(1)" copies of one name."""
    parts = ["gridrisk", task.value, as_of.isoformat()]
    for places in (units, stations):
        if places is not None and len(places) == 1:  # a key of several stations has no one name for them
            parts.append(places[0])
    return "-".join(UNSAFE_IN_NAME.sub("_", part) for part in parts)


def ascii_name(name: str) -> str:
    """The file name for browsers that read only `filename=`: non-ASCII letters as `_`."""
    return name.encode("ascii", "replace").decode().replace("?", "_")


# -- customer, overview, models ------------------------------------------------------------------------------


@router.get("/customers/{customer_id:customer_id}", response_class=HTMLResponse)  # any id: routes.customers
def customer_page(
    request: Request,
    customer_id: CustomerIdPath,
    web: Web,
    lang: PageLang,
    user: User,
    models: Models,
    snapshots: Snapshots,
    settings: Settings,
    history: History,
    audit: Audit,
    back: str | None = None,
) -> HTMLResponse:
    user.require(Action.CUSTOMER)
    file = customer_file(customer_id, user, history, snapshots, models, settings.tasks, lang)
    audit.record(user, Action.CUSTOMER, "all", {"customer_id": customer_id, "via": "web"}, None, 1)
    text = TEXT[lang.value]
    waterfalls = {
        score.task.value: charts.waterfall(
            score,
            f"waterfall-{score.task.value}",
            f"{label(lang, 'task', score.task.value)}: {text['contribution_title']}",
            text["contribution_desc"],
            text["base_value"],
            text["other_features"],
            text["total_margin"].format(probability=_pct(score.probability)),
        )
        for score in file.scores
    }
    chart = charts.history(
        file.months,
        "history",
        text["history"],
        text["history_desc"],
        text["kwh"],
        text["amount_due"],
        text["paid"],
        lang,
    )
    back_url = back if back and back.startswith("/list") and not back.startswith("//") else "/list"
    return render(
        request, web, lang, "customer.html", user,
        file=file, waterfalls=waterfalls, history_chart=chart, back_url=back_url,
        unscored=unscored_notes(file, snapshots, lang),
        ties={score.task.value: tied_ranks(snapshots.get(score.task.value), score.probability)
              for score in file.scores},
    )  # fmt: skip


def tied_ranks(snapshot: Snapshot, probability: float) -> tuple[int, int]:
    """The first and last rank of the customers scored with this probability. The calibrator's steps tie
    hundreds of customers (~300 at 3.7 % of 2,477), whose ranks are consecutive in no meaningful order, so
    one of them read 「第 741 名」 as if it were riskier than the 742nd.

    A tie is a probability within `TIE_BREAK` of this one, as `PackagedModel.band` and `percentile` read
    it: the isotonic calibrator tilts each step by less than that to keep the booster's order, so counting
    only equal values found no tie inside a step (245 customers shown at 4.6 %, each 「第 N 名」)."""
    scored = snapshot.numbers["probability"]
    above = int(np.count_nonzero(scored > probability + TIE_BREAK))
    return above + 1, int(np.count_nonzero(scored >= probability - TIE_BREAK))


@dataclass
class UnscoredNote:
    task: Task
    text: str
    lang: str | None  # the note's own `lang` when it is not the page's (an operator's English message)


def unscored_notes(file: CustomerFile, snapshots: SnapshotStore, lang: Lang) -> list[UnscoredNote]:
    """Why a task has no score. Being outside the task's population (most notes: the suspension and theft
    populations are a few customers of a station) is said in the page's language, from the snapshot itself;
    a missing snapshot or model stays the operator's English message."""
    notes = []
    for note in file.unscored:
        try:
            snapshot = snapshots.get(note.task.value)
        except SnapshotUnavailable:
            snapshot = None
        if snapshot is not None and snapshot.positions([file.customer_id], strict=False)[0] < 0:
            text = TEXT[lang.value]["not_in_population"].format(
                as_of=snapshot.as_of.isoformat(), scored=f"{snapshot.size:,}"
            )
            notes.append(UnscoredNote(note.task, text, None))
        else:
            english = None if lang == Lang.EN else HTML_LANG[Lang.EN]
            notes.append(UnscoredNote(note.task, note.detail, english))
    return notes


@router.get("/overview", response_class=HTMLResponse)
def overview_page(
    request: Request,
    web: Web,
    lang: PageLang,
    user: User,
    models: Models,
    snapshots: Snapshots,
    audit: Audit,
    task: Task = Task.ARREARS,
    by: SummaryBy = SummaryBy.STATION,
) -> HTMLResponse:
    user.require(Action.RISK_LIST)
    stations, units = user.scope(None, None)
    loaded = models.loaded().get(task.value)
    summary = summarize(task, snapshots.get(task), loaded.package if loaded else None, by, stations, units)
    audit.record(
        user, Action.RISK_LIST, task, {"summary_by": by.value, "via": "web"}, summary.model.version,
        len(summary.rows),
    )  # fmt: skip
    text = TEXT[lang.value]
    by_word = label(lang, "by", by.value)
    chart = charts.overview(
        summary.rows,
        summary.band_order,
        {b: label(lang, "band", b) for b in summary.band_order},
        "overview",
        text["overview_chart_title"].format(by=by_word),
        text["overview_intro"].format(by=by_word, previous=summary.previous_as_of or "—"),
        text["band_mix"],
        text["ev_vs_last"],
        "{unit} {station}" if by == SummaryBy.STATION else "{unit}",
        lang,
    )
    return render(
        request, web, lang, "overview.html", user,
        summary=summary, chart=chart, task=task, by=by, by_word=by_word,
        tasks=list(Task), bys=list(SummaryBy), model_changed=_model_changed(summary, text),
    )  # fmt: skip


def _model_changed(summary: SummaryResponse, text: dict[str, str]) -> str | None:
    """The sentence saying last month was scored by another model (bands differ), or None when it was not."""
    before, now = summary.previous_model, summary.model
    if before is None or before == now:
        return None
    if before.name == now.name:
        return text["overview_model_changed"].format(previous=f"v{before.version}", current=f"v{now.version}")
    return text["overview_model_changed"].format(
        previous=f"{before.name} v{before.version}", current=f"{now.name} v{now.version}"
    )


@router.get("/models", response_class=HTMLResponse)
def models_page(
    request: Request,
    web: Web,
    lang: PageLang,
    user: User,
    models: Models,
    snapshots: Snapshots,
    settings: Settings,
) -> HTMLResponse:
    user.require(Action.MODELS)
    board = model_board(models, snapshots, settings.tasks, alias_source(models))
    return render(request, web, lang, "models.html", user, board=board, registry_error=models.registry_error)
