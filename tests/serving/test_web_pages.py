"""The web page without a browser: sign-in and session cookies, what each role sees, paging, filters,
exports, error pages, language, security headers, the charts, the words catalogue and colour contrast."""

from __future__ import annotations

import datetime as dt
import html
import io
import itertools
import json
import re
import time
from collections.abc import Iterator
from pathlib import Path
from types import SimpleNamespace
from urllib.parse import parse_qs, quote, urlsplit

import numpy as np
import pandas as pd
import pytest
from disk_faults import full_disk, read_only
from starlette.requests import Request
from tinymodel import FakeRegistry
from webdata import WebService, rewrite_previous_snapshot, web_service

from serving.access import KeyStore, Role, create_key, revoke_key
from serving.exports import csv_bytes
from serving.model import TIE_BREAK, PackagedModel
from serving.schemas import FileFormat, Lang, ModelRef, Reason, SortKey, Task
from serving.settings import ServingSettings
from serving.view_schemas import SummaryBy, TaskScore
from serving.web import charts, pages
from serving.web.i18n import (
    EXPORT_HEADERS,
    INVALID_CHOICES,
    LABELS,
    METRIC_WORDS,
    TEXT,
    choices_zh,
    metric_word,
)
from serving.web.model_board import AliasView, PastTerm
from serving.web.pages import customer_url, page_path, safe_next
from serving.web.session import SESSION_COOKIE, SessionSigner, SignedOut, load_secret, principal_of

CSS = Path(__file__).resolve().parents[2] / "serving" / "web" / "static" / "gridrisk.css"


@pytest.fixture
def web(settings: ServingSettings, registry: FakeRegistry) -> Iterator[WebService]:
    with web_service(settings, registry) as service:
        yield service


def sign_in(web: WebService, role: str) -> None:
    r = web.client.post("/login", data={"api_key": web.keys[role], "next": "/list"}, follow_redirects=False)
    assert r.status_code == 303 and r.headers["location"] == "/list", r.text


def page(web: WebService, path: str, status: int = 200, **params) -> str:
    r = web.client.get(path, params=params, follow_redirects=False)
    assert r.status_code == status, r.text[:2000]
    return r.text


def rows(html: str) -> list[str]:
    body = html.split("<tbody>", 1)[1].split("</tbody>", 1)[0] if "<tbody>" in html else ""
    return re.findall(r"<tr[ >].*?</tr>", body, flags=re.S)


# -- sign-in and sessions ------------------------------------------------------------------------------------


def test_pages_need_a_session_and_return_after_sign_in(web):
    r = web.client.get("/customers/C0000000?lang=en", follow_redirects=False)
    assert r.status_code == 303
    assert r.headers["location"] == "/login?next=%2Fcustomers%2FC0000000%3Flang%3Den"
    r = web.client.post(
        "/login",
        data={"api_key": web.keys["collector"], "next": "/customers/C0000000"},
        follow_redirects=False,
    )
    assert r.headers["location"] == "/customers/C0000000"
    cookie = r.headers["set-cookie"]
    assert cookie.startswith(f"{SESSION_COOKIE}=") and "HttpOnly" in cookie and "SameSite=lax" in cookie
    assert web.keys["collector"] not in cookie and web.keys["collector"].split("_", 2)[2] not in cookie
    html = page(web, "/customers/C0000000")
    assert "王小0" in html and web.keys["collector"] not in html
    assert page(web, "/login", status=303) == ""  # already signed in: straight on


def test_wrong_keys_and_service_keys_cannot_sign_in(web):
    r = web.client.post("/login", data={"api_key": "grk_deadbeef_nope"}, follow_redirects=False)
    assert r.status_code == 401 and "密钥无效或已被吊销" in r.text and SESSION_COOKIE not in r.cookies
    r = web.client.post("/login", data={"api_key": web.keys["service"]}, follow_redirects=False)
    assert r.status_code == 403 and "系统对接" in r.text and SESSION_COOKIE not in r.cookies
    lines = [json.loads(x) for x in web.state.settings.audit_path.read_text().splitlines()]
    assert [(x["action"], x["status"], x["role"], x["route"]) for x in lines] == [
        ("refused", 401, None, "POST /login"),
        ("refused", 403, "service", "POST /login"),
    ]
    assert lines[1]["key_id"] == web.keys["service"].split("_")[1] and "grk_" not in json.dumps(lines)


def test_sign_in_never_redirects_off_site(web):
    for target in ("//evil.example/x", "https://evil.example/", "/\\evil", "", None):
        assert safe_next(target) == "/list"
    assert safe_next("/overview?task=theft") == "/overview?task=theft"
    r = web.client.post(
        "/login", data={"api_key": web.keys["admin"], "next": "//evil.example"}, follow_redirects=False
    )
    assert r.headers["location"] == "/list"


def test_sign_in_and_out_posted_from_another_site_are_refused(web):
    # Another site's page auto-submitted a sign-in form with its own key: the collector's browser was
    # switched to another key's stations unseen (SameSite=Lax lets a top-level POST set the cookie).
    sign_in(web, "collector")
    session = web.client.cookies[SESSION_COOKIE]
    for headers in (
        {"Origin": "http://localhost:18239"},
        {"Origin": "null"},  # a sandboxed frame or a file
        {"Referer": "http://evil.example/index.html"},  # an older browser without Origin
        {"Origin": "http://testserver.evil.example", "Referer": "http://testserver/list"},
    ):
        r = web.client.post(
            "/login", data={"api_key": web.keys["admin"]}, headers=headers, follow_redirects=False
        )
        assert r.status_code == 403 and "set-cookie" not in r.headers, headers
        assert "text/html" in r.headers["content-type"] and "from another site" in html.unescape(r.text)
        r = web.client.post("/logout", headers=headers, follow_redirects=False)
        assert r.status_code == 403 and "set-cookie" not in r.headers, headers
    refused = json.loads(web.state.settings.audit_path.read_text().splitlines()[-1])
    assert (refused["action"], refused["status"], refused["route"]) == ("refused", 403, "POST /logout")
    assert web.client.cookies[SESSION_COOKIE] == session
    assert "催费员" in page(web, "/list")  # still the collector's own session
    # This site's own form (Origin is the host the request went to), or a script that sends neither header.
    ours = ({"Origin": "http://testserver"}, {"Referer": "http://TESTSERVER:80/login?next=%2Flist"}, {})
    for headers in ours:
        r = web.client.post(
            "/login", data={"api_key": web.keys["admin"]}, headers=headers, follow_redirects=False
        )
        assert r.status_code == 303, headers
    r = web.client.post("/logout", headers={"Origin": "http://testserver"}, follow_redirects=False)
    assert r.status_code == 303 and r.headers["location"].startswith("/login")


def test_a_cross_site_refusal_names_the_site_never_the_referers_search(web):
    # Without Origin, the Referer is a page's whole URL: behind a proxy that rewrites Host, each sign-out from
    # a searched list wrote the search (a customer's name) into the audit line, which never holds it.
    sign_in(web, "collector")
    for referer, site in (
        (
            "https://gridrisk.example.com/list?task=arrears&q=%E7%8E%8B%E5%B0%8F7",
            "https://gridrisk.example.com",
        ),
        ("http://u:pw@evil.example:8443/list?q=%E7%8E%8B%E5%B0%8F7#top", "http://evil.example:8443"),
        ("/list?q=%E7%8E%8B%E5%B0%8F7", "an address without a host"),
        ("http://[::1/list?q=%E7%8E%8B%E5%B0%8F7", "an unreadable address"),  # a ValueError: it was a 500
    ):
        r = web.client.post("/logout", headers={"Referer": referer}, follow_redirects=False)
        assert r.status_code == 403, referer
        assert "%E7%8E%8B" not in r.text and "王小7" not in html.unescape(r.text)
        (shown,) = re.findall(r'<p class="detail">(.*?)</p>', html.unescape(r.text), flags=re.S)
        line = web.state.settings.audit_path.read_text().splitlines()[-1]
        detail = json.loads(line)["detail"]
        assert f"from another site ({site}) is refused" in shown and f"({site})" in detail
        for secret in ("%E7%8E%8B", "q=", "pw", "/list", "#"):
            assert secret not in shown and secret not in detail, (referer, secret)


def test_revoking_the_key_ends_the_session(web, settings):
    sign_in(web, "collector")
    page(web, "/list")
    key_id = web.keys["collector"].split("_")[1]
    revoke_key(settings.keys_path, key_id)
    assert page(web, "/list", status=303) == ""


def test_sign_out_ends_the_session_and_every_copy_of_its_cookie(web):
    sign_in(web, "analyst")
    kept = web.client.cookies[SESSION_COOKIE]  # what someone who copied the cookie would replay
    r = web.client.post("/logout", follow_redirects=False)
    assert r.status_code == 303 and r.headers["location"] == "/login?why=signed_out"
    web.client.cookies.clear()
    page(web, "/list", status=303)
    web.client.cookies.set(SESSION_COOKIE, kept)
    assert page(web, "/list", status=303) == ""  # the replayed cookie is signed out too
    web.client.cookies.clear()
    sign_in(web, "analyst")  # the same key signs in again: a new session, not the old one
    assert web.client.cookies[SESSION_COOKIE] != kept
    page(web, "/list")


def test_the_sign_in_form_says_why_the_session_ended(web, settings):
    # Sign-out, a revoked key and an expired session all landed on a bare form with no message.
    def note(location: str) -> str | None:
        r = web.client.get(location, follow_redirects=False)  # with `params`, httpx drops the URL's own
        assert r.status_code == 200, r.text[:300]
        found = re.search(r'<p class="note" role="status">([^<]*)</p>', r.text)
        return found.group(1) if found else None

    sign_in(web, "collector")
    r = web.client.post("/logout", follow_redirects=False)
    assert note(r.headers["location"]) == "您已退出登录。"

    sign_in(web, "analyst")
    key_id = web.keys["analyst"].split("_")[1]
    record = KeyStore(settings.keys_path).record(key_id)
    signer = web.client.app.state.web.signer
    stale = signer.issue(record, now=time.time() - signer.max_age_seconds - 60)
    web.client.cookies.set(SESSION_COOKIE, stale)
    r = web.client.get("/list", params={"page": 2}, follow_redirects=False)
    assert r.headers["location"] == "/login?next=%2Flist%3Fpage%3D2&why=expired"
    assert 'gridrisk_session=""' in r.headers["set-cookie"]  # the dead cookie goes
    web.client.cookies.clear()
    assert note(r.headers["location"]) == "登录已超时，请重新登录；登录后回到刚才的页面。"

    sign_in(web, "collector")
    revoke_key(settings.keys_path, web.keys["collector"].split("_")[1])
    r = web.client.get("/overview", follow_redirects=False)
    assert r.headers["location"] == "/login?next=%2Foverview&why=revoked"
    web.client.cookies.clear()
    assert note(r.headers["location"] + "&lang=en") == (
        "The key this browser signed in with has been revoked or replaced; sign in with a new key."
    )
    # A cookie we never signed gets no reason, and a made-up reason says nothing.
    web.client.cookies.set(SESSION_COOKIE, "forged.token")
    assert web.client.get("/list", follow_redirects=False).headers["location"] == "/login?next=%2Flist"
    web.client.cookies.clear()
    assert note("/login?why=hacked") is None and note("/login") is None


def test_the_session_cookie_outlives_its_session_by_a_week_so_expiry_can_be_told(web):
    r = web.client.post("/login", data={"api_key": web.keys["analyst"]}, follow_redirects=False)
    hours = web.client.app.state.web.settings.session_hours
    assert f"Max-Age={int(hours * 3600) + 7 * 86400}" in r.headers["set-cookie"]
    signer = web.client.app.state.web.signer
    token = web.client.cookies[SESSION_COOKIE]
    assert signer.read(token) is not None and not signer.expired(token)
    later = time.time() + hours * 3600 + 1
    assert signer.read(token, now=later) is None and signer.expired(token, now=later)


def test_signed_out_sessions_are_shared_by_workers_and_forgotten_when_they_expire(tmp_path):
    _, record = create_key(tmp_path / "keys.json", "analyst")
    signer = SessionSigner(b"s" * 32, max_age_seconds=3600)
    first = signer.read(signer.issue(record, now=1_000_000), now=1_000_000)
    second = signer.read(signer.issue(record, now=1_000_500), now=1_000_500)
    assert first is not None and second is not None and first.session_id != second.session_id
    one, other = SignedOut(tmp_path / "out.json"), SignedOut(tmp_path / "out.json")  # two workers
    assert first not in one
    one.add(first, now=1_000_100)
    assert first in other and second not in other  # the other worker rereads the changed file
    other.add(second, now=1_003_700)  # after the first cookie expired: its entry leaves the file
    assert set(json.loads((tmp_path / "out.json").read_text())) == {second.session_id}
    assert second in one


def test_the_signed_out_file_is_read_when_it_changes_and_never_fails_a_page(tmp_path, monkeypatch):
    import os

    _, record = create_key(tmp_path / "keys.json", "analyst")
    signer = SessionSigner(b"s" * 32, max_age_seconds=3600)
    a, b, c = (signer.read(signer.issue(record, now=1_000_000), now=1_000_000) for _ in range(3))
    path = tmp_path / "out.json"
    one, other = SignedOut(path), SignedOut(path)
    one.add(a, now=1_000_000)
    assert a in other
    before = path.stat()
    other.add(b, now=1_000_000)
    os.utime(path, ns=(before.st_atime_ns, before.st_mtime_ns))  # a coarse clock: the same mtime again
    assert b in one  # still seen: the file was replaced (another inode, another ctime)
    # The writer rereads the file under its lock, whatever it cached: nobody's entry is dropped.
    one._seen = (path.stat().st_ino, path.stat().st_size, path.stat().st_mtime_ns, path.stat().st_ctime_ns)
    one._ids = {}
    one.add(c, now=1_000_000)
    assert set(json.loads(path.read_text())) == {a.session_id, b.session_id, c.session_id}
    monkeypatch.setattr(SignedOut, "MAX_ENTRIES", 2)
    one.add(signer.read(signer.issue(record, now=1_000_100), now=1_000_100), now=1_000_100)
    assert len(json.loads(path.read_text())) == 2 and a.session_id not in json.loads(path.read_text())
    for broken in ('{"x": null}', "[1, 2]", "not json"):
        path.write_text(broken)
        assert a not in SignedOut(path)  # unreadable: no sign-out known, and no exception for the page


@pytest.mark.parametrize("fault", [read_only, full_disk], ids=["read-only", "full"])
def test_a_sign_out_that_cannot_be_recorded_says_so_and_a_recorded_one_ends_every_copy(
    web, settings, monkeypatch, fault
):
    # It said "signed out" (a 303 to /login) while a copy of the cookie kept working.
    sign_in(web, "analyst")
    kept = web.client.cookies[SESSION_COOKIE]
    fault(monkeypatch, settings.home)
    r = web.client.post("/logout", follow_redirects=False)
    assert r.status_code == 503 and "set-cookie" not in r.headers and "text/html" in r.headers["content-type"]
    cause = "Read-only file system" if fault is read_only else "No space left on device"
    text = html.unescape(r.text)
    assert f"signed-out sessions file …/web-signed-out.json cannot be written ({cause})" in text
    assert "this session could not be ended: you are still signed in" in text
    assert not list(settings.home.glob(".web-signed-out.json.*.tmp"))  # no part-written file left
    monkeypatch.undo()  # the home is writable again
    page(web, "/list")  # the page told the truth: still signed in
    r = web.client.post("/logout", follow_redirects=False)
    assert r.status_code == 303 and r.headers["location"] == "/login?why=signed_out"
    web.client.cookies.clear()
    web.client.cookies.set(SESSION_COOKIE, kept)
    assert page(web, "/list", status=303) == ""  # after a sign-out that answered 303, a replay is refused


@pytest.mark.parametrize("fault", [read_only, full_disk], ids=["read-only", "full"])
def test_pages_that_cannot_be_audited_are_503_pages_naming_the_log_until_it_can(
    web, settings, monkeypatch, fault
):
    sign_in(web, "analyst")
    audited = ["/list", "/overview", "/customers/C0000000", "/list/export?format=csv"]
    page(web, "/customers/C0000000")  # its history copies are made, as at start-up
    settings.audit_path.unlink()
    fault(monkeypatch, settings.home)
    cause = "Read-only file system" if fault is read_only else "No space left on device"
    for path in audited:
        text = html.unescape(page(web, path, status=503))
        assert f"audit log …/audit.log cannot be written ({cause})" in text, path  # no server path
    monkeypatch.undo()
    for path in audited:
        page(web, path)
    assert len(settings.audit_path.read_text().splitlines()) == len(audited)


def test_session_tokens_are_signed_and_expire(tmp_path):
    _, record = create_key(tmp_path / "keys.json", "analyst")
    signer = SessionSigner(b"s" * 32, max_age_seconds=3600)
    token = signer.issue(record, now=1_000_000)
    session = signer.read(token, now=1_000_000 + 3599)
    assert session is not None and (session.key_id, session.prefix) == (record.key_id, record.sha256[:16])
    assert session.expires == 1_000_000 + 3600 and len(session.session_id) == 16
    assert signer.read(token, now=1_000_000 + 3601) is None  # expired
    assert signer.read(token, now=1_000_000 - 5) is None  # issued in the future
    body, signature = token.split(".")
    forged = SessionSigner(b"t" * 32, 3600).issue(record, now=1_000_000)
    assert signer.read(forged, now=1_000_000) is None  # another secret
    assert signer.read(body + "." + signature[:-2] + "AA", now=1_000_000) is None  # tampered
    assert signer.read("garbage", now=1_000_000) is None and signer.read(None) is None
    with pytest.raises(ValueError, match="16 bytes"):
        SessionSigner(b"short", 3600)


def test_a_cookie_with_non_ascii_characters_is_no_session(web):
    # Sent as raw bytes, as a browser or proxy may; the server reads them as Latin-1 text ("a.Ã©").
    cookie = {"Cookie": b"gridrisk_session=a.\xc3\xa9"}
    for path in ("/list", "/overview"):
        r = web.client.get(path, headers=cookie, follow_redirects=False)
        assert r.status_code == 303 and r.headers["location"] == f"/login?next=%2F{path[1:]}"
    r = web.client.get("/login", headers=cookie, follow_redirects=False)
    assert r.status_code == 200 and 'name="api_key"' in r.text
    r = web.client.post("/logout", headers=cookie, follow_redirects=False)
    assert r.status_code == 303 and r.headers["location"] == "/login?why=signed_out"
    assert SessionSigner(b"s" * 32, 3600).read("a.\xe9") is None


def test_a_session_follows_the_key_record(tmp_path):
    keys_path = tmp_path / "keys.json"
    _, record = create_key(keys_path, "collector", stations=["S01"])
    store = KeyStore(keys_path)
    principal = principal_of(store, record.key_id, record.sha256[:16])
    assert principal is not None and principal.role == Role.COLLECTOR and principal.stations == ("S01",)
    assert principal_of(store, record.key_id, "0" * 16) is None  # a different key under the same id
    assert principal_of(store, "00000000", record.sha256[:16]) is None
    revoke_key(keys_path, record.key_id)
    assert principal_of(store, record.key_id, record.sha256[:16]) is None


def test_the_secret_is_made_once_and_kept_private(tmp_path):
    first = load_secret(None, tmp_path)
    assert len(first) == 32 and load_secret(None, tmp_path) == first
    assert (tmp_path / "web-session.secret").stat().st_mode & 0o777 == 0o600
    assert load_secret("configured-secret-value", tmp_path) == b"configured-secret-value"


# -- what each role sees -------------------------------------------------------------------------------------


def test_collector_list_is_its_station_with_names(web):
    sign_in(web, "collector")
    html = page(web, "/list")
    listed = rows(html)
    assert len(listed) == 20  # S01 holds every third of the 60 customers
    assert all(">S01<" in row for row in listed) and "王小" in html and "138****" not in html
    options = re.search(r'<select id="f-station".*?</select>', html, flags=re.S).group(0)
    assert re.findall(r'<option value="([^"]*)"', options) == ["", "S01"]
    page(web, "/list", status=403, station="S02")
    assert 'href="/models"' not in html  # no models page for collectors


def test_analyst_list_is_masked_and_pages(web, settings):
    sign_in(web, "analyst")
    web.client.app.state.web.settings.page_size = 25
    first = page(web, "/list")
    assert len(rows(first)) == 25 and "王**" in first and "138****" in first
    assert "60 户符合条件；第 1/3 页" in first
    last = page(web, "/list", page=99)  # past the end: the last page
    assert len(rows(last)) == 10 and "第 3/3 页" in last
    ids = [
        re.findall(r'class="customer" href="/customers/(C\d+)', page(web, "/list", page=p)) for p in (1, 2, 3)
    ]
    assert len({i for chunk in ids for i in chunk}) == 60  # pages neither repeat nor skip anyone


def listed_ids(html: str) -> list[str]:
    return re.findall(r'class="customer" href="/customers/([^"?]+)', html)


def test_a_whole_customer_id_in_the_search_box_opens_the_customer_inside_the_keys_scope(web):
    sign_in(web, "collector")  # station S01: C0000000, C0000003, …
    r = web.client.get("/list", params={"q": " C0000003 ", "station": "S01"}, follow_redirects=False)
    assert r.status_code == 303
    # The way back keeps the filters and drops the search, which would open the customer again.
    assert r.headers["location"] == "/customers/C0000003?back=%2Flist%3Ftask%3Darrears%26station%3DS01"
    # Another station's customer is no match, as on the list: not its page, not a 403 that says it exists.
    other = page(web, "/list", q="C0000001")
    assert listed_ids(other) == [] and "当前清单中没有户号或户名含「C0000001」的客户" in other
    assert "王小1<" not in other
    sign_in(web, "analyst")
    r = web.client.get("/list", params={"q": "C0000001"}, follow_redirects=False)
    assert r.status_code == 303 and r.headers["location"].startswith("/customers/C0000001?")


def test_search_narrows_the_list_by_id_and_by_name_where_names_are_shown(web):
    population = web.population.reset_index(drop=True)
    names = {f"C{i:07d}": f"王小{i}" for i in range(len(population))}  # tinymodel's archive names
    own = set(population.loc[population["station"] == "S01", "customer_id"])
    sign_in(web, "collector")
    found = listed_ids(page(web, "/list", q="王小1"))
    assert found and set(found) == {c for c in own if "王小1" in names[c]}
    assert set(listed_ids(page(web, "/list", q="c00000"))) == {c for c in own if "C00000" in c}  # any case
    summary = page(web, "/list", q="王小1")
    assert f"「王小1」：当前清单 20 户中找到 {len(found)} 户" in summary
    # The search keeps the filters: within the list, in its order.
    full = listed_ids(page(web, "/list", sort="probability"))
    assert listed_ids(page(web, "/list", q="5", sort="probability")) == [c for c in full if "5" in c]
    line = json.loads(web.state.settings.audit_path.read_text().splitlines()[-1])
    assert line["filters"]["searched"] is True and "王小" not in json.dumps(line)  # never the text
    # Exports are the work list: their links leave the search out.
    assert "q=" not in re.search(r'class="exports".*?</div>', summary, flags=re.S).group(0)

    sign_in(web, "analyst")  # names masked: a name, even a whole one, finds nobody
    for text in ("王小1", "王小12"):
        html = page(web, "/list", q=text)
        assert listed_ids(html) == [] and f"当前清单中没有户号含「{text}」的客户" in html
    assert "户号（" not in page(web, "/list") and '<label for="f-q">户号</label>' in page(web, "/list")
    assert len(listed_ids(page(web, "/list", q="000001"))) == 11  # C0000001 and C0000010…C0000019


def test_blank_form_fields_mean_any_and_bad_values_explain_themselves(web):
    sign_in(web, "admin")
    html = page(
        web, "/list", supply_unit="", station="", usage_category="", min_probability="", per_station_top=""
    )
    assert "60 户符合条件" in html
    capped = page(web, "/list", per_station_top="4", sort="probability")
    assert "60 户符合条件，按每所上限后 12 户" in capped
    bad = page(web, "/list", status=422, min_probability="2")
    assert "请求参数有误" in bad and "min_probability" in bad


def test_each_task_opens_in_its_own_work_list_order(settings, registry):
    from tinymodel import write_population_snapshot

    package = registry.models["gridrisk-arrears"]["1"]
    registry.register("gridrisk-theft", package)
    both = settings.model_copy(update={"tasks": ["arrears", "theft"]})
    with web_service(both, registry) as web:
        write_population_snapshot(package, both, task="theft")
        web.state.snapshots.refresh()
        sign_in(web, "admin")

        def ids(html: str) -> list[str]:
            return re.findall(r'class="customer" href="/customers/(C\d+)', html)

        theft = page(web, "/list", task="theft")
        assert '<option value="probability" selected>' in theft
        assert ids(theft) == ids(page(web, "/list", task="theft", sort="probability"))
        assert ids(theft) != ids(page(web, "/list", task="theft", sort="expected_value"))
        arrears = page(web, "/list", task="arrears", sort="expected_value")
        assert '<option value="expected_value" selected>' in arrears
        # The task tabs carried the sort along: theft opened by expected value from the arrears list.
        assert 'href="/list?task=theft"' in arrears and "sort=" not in arrears.split('class="tabs"')[1][:600]


def test_unknown_customer_and_other_station_are_error_pages(web):
    sign_in(web, "collector")
    missing = page(web, "/customers/NOPE42", status=404)
    assert "没有找到" in missing and "NOPE42" in missing
    other = page(web, "/customers/C0000001", status=403)
    assert "无权查看" in other and "王小1" not in other
    refused = json.loads(web.state.settings.audit_path.read_text().splitlines()[-1])
    assert refused["action"] == "refused" and refused["status"] == 403 and refused["role"] == "collector"
    assert refused["route"] == "GET /customers/C0000001"


def test_error_pages_say_what_happened_in_the_pages_language(web):
    # Every error's message was the API's English on a Chinese page, the 403's with a Python list in it.
    sign_in(web, "collector")
    refused = html.unescape(page(web, "/customers/C0000001", status=403))
    assert "您的密钥无权查看这些内容" in refused
    assert "covers stations 'S01'; customer C0000001 is not in them" in refused and "['" not in refused
    assert '<span lang="en">key ' in refused  # the API's message is marked as English for screen readers
    missing = html.unescape(page(web, "/customers/NOPE42", status=404))
    assert "没有找到这位客户：请核对户号" in missing and "NOPE42" in missing
    for path, params, said in [
        ("/list", {"min_probability": "abc"}, "最低概率（0–1）：应为数字"),
        ("/list", {"min_probability": "2"}, "最低概率（0–1）：应不大于 1"),
        ("/list", {"page": "0"}, "页码：应不小于 1"),
        ("/list", {"per_station_top": "0"}, "每所走访上限：应不小于 1"),
        # The choices were pydantic's: 「应为以下之一：'expected_value' or 'probability'」.
        ("/list", {"task": "xyz"}, "风险类型：应为「欠费风险」、「暂停可能」或「窃电嫌疑」"),
        ("/list", {"sort": "risk"}, "排序：应为「按期望损失」或「按概率」"),
        ("/list/export", {"format": "json"}, "导出格式：应为「CSV」或「Excel（XLSX）」"),
        ("/overview", {"by": "area"}, "对比口径：应为「供电所」或「供电单位」"),
        # `nan` read 「应不大于 1.0」 (should be at most 1).
        ("/list", {"min_probability": "nan"}, "最低概率（0–1）：应为普通数字，不能是 nan 或 inf"),
        ("/list", {"min_probability": "inf"}, "最低概率（0–1）：应为普通数字，不能是 nan 或 inf"),
    ]:
        text = html.unescape(page(web, path, status=422, **params))
        assert "请求中有一项取值不正确" in text and said in text, params
        (detail,) = re.findall(r'<p class="detail">(.*?)</p>', text, flags=re.S)
        assert "Input should" not in detail and " or " not in detail and "'" not in detail, params
        assert not re.search(r"expected_value|probability|supply_unit|arrears|xlsx|1\.0", detail), params
    english = html.unescape(page(web, "/list", status=422, min_probability="abc", lang="en"))
    assert "min_probability: Input should be a valid number" in english
    english = html.unescape(page(web, "/list", status=422, min_probability="nan", lang="en"))
    assert "min_probability: Input should be a finite number" in english
    assert "A value in the request is not valid" in english
    assert "Your key may not see this" in page(web, "/customers/C0000001", status=403, lang="en")


def test_every_choice_a_page_refuses_is_named_in_words():
    # An `enum` 422 names the allowed choices in the menus' words; a value without words showed as itself.
    for field, choices in (("task", Task), ("sort", SortKey), ("format", FileFormat), ("by", SummaryBy)):
        assert set(INVALID_CHOICES[field]) == {choice.value for choice in choices}, field
    assert choices_zh("by", ["station"]) == "「供电所」" and choices_zh("x", ["a", "b"]) == "「a」或「b」"


def test_a_customer_outside_a_tasks_population_is_said_in_the_pages_language(web, settings):
    from features.sources import read_table, write_table

    customers = read_table(settings.warehouse_path, "customers")
    extra = customers.iloc[:1].copy()
    extra["customer_id"] = "C9999999"  # in the archive, never scored
    write_table(settings.warehouse_path, "customers", pd.concat([customers, extra]))
    sign_in(web, "admin")
    zh = page(web, "/customers/C9999999")
    assert "欠费风险 · 未评分</strong>：<span>不在本类风险的评分人群中（2023-06-30 共评分 60 户）" in zh
    assert "population" not in zh
    en = page(web, "/customers/C9999999", lang="en")
    assert "not in this risk type's population as of 2023-06-30 (60 customers scored)" in html.unescape(en)


def test_customer_ids_holding_url_characters_are_linked_and_opened(settings, registry):
    # Ingest takes any id: `#` and `?` broke the list's links, and `/` was no route's parameter.
    odd = {"C0000000": "HN/0001", "C0000003": "HN#0002", "C0000006": "HN?0003"}
    with web_service(settings, registry, renamed=odd) as web:
        sign_in(web, "collector")  # station S01: every third customer, these among them
        links = {
            text: html.unescape(href)
            for href, text in re.findall(r'class="customer" href="([^"]*)">([^<]*)<', page(web, "/list"))
        }
        for customer_id in odd.values():
            href = links[customer_id]
            assert href.startswith(f"/customers/{quote(customer_id, safe='')}?back=%2Flist%3F")
            r = web.client.get(href)
            assert r.status_code == 200 and f"<h1>客户 {customer_id}" in r.text, r.text[:500]
            assert 'href="/list?task=arrears' in r.text  # back to the list it came from
            for heading in ("Customer", "客户"):  # the language switch links to the same customer, and back
                switch = html.unescape(re.search(r'class="lang" href="([^"]*)"', r.text).group(1))
                r = web.client.get(switch)
                assert f"<h1>{heading} {customer_id}" in r.text
            api = web.client.get(f"/v1/customers/{quote(customer_id, safe='')}", headers=web.headers("admin"))
            assert api.status_code == 200 and api.json()["customer_id"] == customer_id
        for unknown in ("no\nsuch", "no/such/"):  # the API's own 404, not a route missing
            r = web.client.get(f"/v1/customers/{quote(unknown, safe='/')}", headers=web.headers("admin"))
            assert r.status_code == 404 and r.json()["error"] == "CustomerNotFound", r.text
        assert web.client.get("/v1/customers/", headers=web.headers("admin")).status_code == 404
        metrics = web.client.get("/metrics").text  # the route's label is unchanged by its convertor
        assert 'route="/v1/customers/{customer_id}",status="200"} 3.0' in metrics
        web.client.cookies.clear()  # signed out: the sign-in form returns to the same customer
        r = web.client.get("/customers/HN%230002?lang=en", follow_redirects=False)
        assert r.headers["location"] == "/login?next=%2Fcustomers%2FHN%25230002%3Flang%3Den"
    # A `%` in an id (TestClient decodes a path twice, so not through it): "HN%41" is not "HNA".
    assert customer_url("HN%41", back="/list") == "/customers/HN%2541?back=%2Flist"
    request = Request({"type": "http", "method": "GET", "path": "/customers/HN%41/x", "headers": []})
    assert page_path(request) == "/customers/HN%2541/x"


def test_a_broken_keys_file_is_an_error_page_not_json(web, settings):
    sign_in(web, "analyst")
    settings.keys_path.write_text(settings.keys_path.read_text()[:40])  # truncated while serving
    for path in ("/list", "/login"):
        r = web.client.get(path, follow_redirects=False)
        assert r.status_code == 503 and r.headers["content-type"].startswith("text/html"), r.text[:300]
        assert "暂时无法提供" in r.text and "API keys cannot be read" in r.text
        assert "keys.json" not in r.text  # the file and its fault go to the log, not to the page
        assert "/logout" not in r.text  # nobody is signed in while no key can be checked
    r = web.client.post("/login", data={"api_key": web.keys["analyst"]}, follow_redirects=False)
    assert r.status_code == 503 and r.headers["content-type"].startswith("text/html")


def test_customer_page_draws_the_score_and_history(web):
    sign_in(web, "admin")
    html = page(web, "/customers/C0000002")
    assert 'id="waterfall-arrears"' in html and 'id="history"' in html
    assert html.count('stroke="#b42318"') == 3  # three unpaid months outlined in red
    assert "姓名、电话和地址已按您的权限做脱敏处理" in html and "王小2" not in html
    assert "欠费风险" in html and "第 " in html


def test_the_list_numbers_its_rows_and_names_the_overall_rank_as_such(web):
    # 「排名 52, 99, 118, 9, 363」 atop a station's list read as this list's order; it is the probability rank
    # among all customers scored.
    sign_in(web, "collector")
    html = page(web, "/list")
    assert ">序号</th>" in html and ">全局排名</th>" in html and "按概率在本次评分的全部客户中的名次" in html
    places = [int(re.findall(r'<td class="num">([\d,]+)</td>', row)[0]) for row in rows(html)]
    assert places == list(range(1, 21))
    ids = listed_ids(html)
    searched = rows(page(web, "/list", q="5"))  # a search keeps each row's place in the list
    assert [int(re.findall(r'<td class="num">([\d,]+)</td>', row)[0]) for row in searched] == [
        ids.index(c) + 1 for c in ids if "5" in c
    ]


def test_a_customer_tied_with_others_reads_the_tied_ranks(web):
    # One of ~300 customers at the same probability read 「第 741 名」, as if riskier than the 742nd.
    snapshot = web.state.snapshots.get("arrears")
    probability = snapshot.numbers["probability"]
    values, counts = np.unique(probability, return_counts=True)
    tied = values[counts == 2][0]  # the fixture's one pair of equal probabilities
    # ... and a third customer 4e-17 above them (the summed contributions' rounding), which only equal
    # values missed: the page read 「第 59–60（2 户概率相同）」 and 「第 58 名」 for three customers alike.
    level = np.flatnonzero(np.abs(probability - tied) <= TIE_BREAK)
    assert len(level) == 3 and np.count_nonzero(probability == tied) == 2
    first = int((probability > tied + TIE_BREAK).sum()) + 1
    sign_in(web, "admin")
    for pos in level:
        html = page(web, f"/customers/{snapshot.customer_id[pos]}")
        assert f"概率排名第 {first}–{first + 2}（3 户概率相同）/ 共 60 户" in html
    alone = int(np.flatnonzero(probability == values[counts == 1][-1])[0])
    html = page(web, f"/customers/{snapshot.customer_id[alone]}", lang="en")
    assert f"ranked {snapshot.numbers['rank'][alone]} of 60 by probability · Percentile" in html
    # The isotonic calibrator tilts a step by less than TIE_BREAK (training/calibrate.py), so a step's
    # customers are never equal; they share a band, a percentile and the printed percentage.
    tilted = probability.copy()
    tilted[level] = tied + np.array([0.0, 0.3, 0.6]) * TIE_BREAK
    snapshot.numbers["probability"] = tilted
    for pos in level:
        html = page(web, f"/customers/{snapshot.customer_id[pos]}", lang="zh")
        assert f"概率排名第 {first}–{first + 2}（3 户概率相同）/ 共 60 户" in html


def test_tied_ranks_count_probabilities_within_tie_break_as_one_level():
    # A tilted step of four (3e-7 apart in all), a customer above it and one below, and one 1.5 TIE_BREAK
    # under the step's lowest: a tie is what `band` and `percentile` call one level, no more.
    step = 0.3 + np.array([3e-7, 2e-7, 1e-7, 0.0])
    probability = np.concatenate([[0.5], step, [0.3 - 1.5 * TIE_BREAK, 0.1]])
    snapshot = SimpleNamespace(numbers={"probability": probability})
    assert pages.tied_ranks(snapshot, 0.5) == (1, 1)
    for p in step:
        assert pages.tied_ranks(snapshot, float(p)) == (2, 5)
    assert pages.tied_ranks(snapshot, 0.3 - 1.5 * TIE_BREAK) == (6, 6)  # more than TIE_BREAK below: its own
    assert pages.tied_ranks(snapshot, 0.1) == (7, 7)
    package = SimpleNamespace(score_quantiles=sorted(probability), bands={"high": 0.4, "medium": 0.3 + 3e-7})
    percentile, band = PackagedModel.percentile(package, step), PackagedModel.band(package, step)
    assert len(set(percentile)) == 1 and set(band) == {"medium"}  # the same level, as the service reads it


def test_customer_page_lists_older_bills_still_owing(web, settings):
    # A bill before the 24 months, never paid, counted in the amount at stake and the reasons; the page
    # showed none of it.
    from features.sources import read_table, write_table

    bills = read_table(settings.warehouse_path, "bills")
    old = bills[bills["customer_id"] == "C0000002"].sort_values("period").iloc[[0]].copy()
    old["period"] = pd.Timestamp("2019-03-01")
    old[["issue_date", "known_at"]] = pd.Timestamp("2019-04-03 08:00")
    old["due_date"] = pd.Timestamp("2019-04-25")
    old["amount_due"] = 364805.72
    write_table(settings.warehouse_path, "bills", pd.concat([bills, old], ignore_index=True))
    sign_in(web, "admin")
    html = page(web, "/customers/C0000002")
    assert "更早的欠费账单（1 笔，共 364,805.72 元，计入涉及金额）" in html and "2019-03" in html
    assert "Older bills still owing (1, 364,805.72 yuan" in page(web, "/customers/C0000002", lang="en")


def test_overview_compares_stations_with_last_month(web):
    sign_in(web, "analyst")
    html = page(web, "/overview")
    assert "与上月（2023-05-31）的对比" in html
    assert len(rows(html)) == 4  # three stations and the total
    assert 'href="/list?task=arrears&amp;supply_unit=U1&amp;station=S01"' in html
    by_unit = page(web, "/overview", by="supply_unit")
    assert len(rows(by_unit)) == 3
    sign_in(web, "collector")
    assert len(rows(page(web, "/overview"))) == 2  # its station and the total


def test_overview_keeps_a_row_for_a_station_only_last_month(web, settings, registry):
    rewrite_previous_snapshot(registry.models["gridrisk-arrears"]["1"], settings, {"S02": "S04"})
    sign_in(web, "analyst")
    listed = rows(page(web, "/overview"))
    assert len(listed) == 5  # S01, S02 (new), S03, S04 (last month only) and the total
    (gone,) = [row for row in listed if ">S04<" in row]
    assert re.findall(r'<td class="num">([^<]*)</td>', gone)[:4] == ["0", "0", "0", "0"]  # customers, bands
    (total,) = [row for row in listed if 'class="total"' in row]
    cells = re.findall(r'<td class="num[^"]*">(?:<strong>)?([^<]*)', total)
    changes = [re.findall(r'<td class="num[^"]*">(?:<strong>)?([^<]*)', row)[-1] for row in listed[:-1]]
    assert sum(int(c.replace(",", "").replace("+", "").replace("−", "-")) for c in changes) == int(
        cells[-1].replace(",", "").replace("+", "").replace("−", "-")
    )  # the high-risk changes of the rows add up to the total's
    sign_in(web, "collector")
    assert len(rows(page(web, "/overview"))) == 2  # S04 was not the collector's station


def test_overview_says_when_last_month_was_scored_by_another_model(web, settings, registry):
    from tinymodel import write_population_snapshot

    sign_in(web, "analyst")
    assert "分档变化含模型变化" not in page(web, "/overview")
    write_population_snapshot(registry.models["gridrisk-arrears"]["1"], settings, version="2")
    web.state.snapshots.refresh()
    assert "上月按模型 v1 评分，本月按 v2：分档变化含模型变化。" in page(web, "/overview")
    assert (
        "Last month was scored by model v1, this month by v2: band changes include the model change."
        in page(web, "/overview", lang="en")
    )


def test_models_page_is_for_analysts_and_admins(web):
    sign_in(web, "collector")
    page(web, "/models", status=403)
    sign_in(web, "admin")
    html = page(web, "/models")
    assert "gridrisk-arrears" in html and "v1" in html and "0.8000" in html


class Versions:
    """An alias source holding fixed versions: `champion`, `challenger`, and any other as `v<number>`."""

    def __init__(self, views: dict[str, AliasView]) -> None:
        self.views = views

    def alias(self, name: str, alias: str) -> AliasView | None:
        return self.views.get(alias)

    def version(self, name: str, version: str) -> AliasView | None:
        return self.views.get(f"v{version}")


def test_models_page_names_the_version_a_promotion_replaced_and_prints_counts_whole(web, monkeypatch):
    # After `gridrisk promote`, v1 (the gate's choice) was nowhere on the page, and counts read 389.0000.
    package = web.state.models.get("arrears").package
    metrics = {"pr_auc": 0.42, "roc_auc": 0.81, "brier": 0.11, "rows": 7356.0, "positives": 389.0}
    monkeypatch.setattr(package, "metrics", {**metrics, "lift_at_5pct": 3.1})
    monkeypatch.setitem(package.info, "primary_metric", "pr_auc")
    at = dt.datetime(2026, 11, 27, 12, 0, tzinfo=dt.UTC)
    champion = AliasView(
        alias="champion", version="2", promoted_at=at, promoted_by="override", decision="复核后人工晋升",
        metrics={**metrics, "pr_auc": 0.40}, replaced="1",
    )  # fmt: skip
    old = AliasView(
        alias="replaced", version="1", is_champion=False, metrics=metrics,
        past=PastTerm(since=at - dt.timedelta(days=30), until=at, replaced_by="2", replaced_how="override",
                      reason="复核后人工晋升"),
    )  # fmt: skip
    monkeypatch.setattr(pages, "alias_source", lambda models: Versions({"champion": champion, "v1": old}))
    sign_in(web, "admin")
    text = html.unescape(page(web, "/models"))
    assert "（人工晋升，取代 v1）" in text and ">被取代的版本</th>" in text
    head = text.split("<details>")[0]
    primary_first = ["pr_auc", "brier", "roc_auc"]
    assert re.findall(r'<th scope="row" title="(\w+)"', head) == primary_first
    assert '<td class="num">0.4000</td><td class="num">—</td><td class="num">0.4200</td>' in head
    folded = text.split("<details>")[1]
    assert "其他指标（3 项）" in folded and ">7,356</td>" in folded and ">389</td>" in folded
    assert "389.0000" not in text and ">前 5% 的提升度</th>" in folded
    assert "曾于 2026-10-28 12:00 UTC 至 2026-11-27 12:00 UTC 为当前模型，被 v2（人工晋升）取代" in text
    english = html.unescape(page(web, "/models", lang="en"))
    assert "(manual promotion, replacing v1)" in english and ">Replaced</th>" in english


def test_every_table_has_a_caption(web):
    # The customer page's five tables and the models page's had none, though the README said tables do.
    sign_in(web, "admin")
    for path in ("/list", "/customers/C0000003", "/overview", "/models"):
        html = page(web, path)
        tables = re.findall(r"<table[ >].*?</table>", html, flags=re.S)
        assert tables and all(re.match(r"<table[^>]*>\s*<caption", t) for t in tables), path
    caption = re.search(r"<caption[^>]*>([^<]*)</caption>", page(web, "/list")).group(1)
    assert caption == "欠费风险清单，按期望损失排序"  # it read 「…按按期望损失排序」
    caption = re.search(r"<caption[^>]*>([^<]*)</caption>", page(web, "/list", lang="en")).group(1)
    assert caption == "Arrears list, sorted by expected loss"  # not "by Expected loss"


def test_language_comes_from_the_query_then_the_cookie(web):
    sign_in(web, "analyst")
    r = web.client.get("/overview", params={"lang": "en"})
    assert "gridrisk_lang=en" in r.headers["set-cookie"] and "Overview: Arrears" in r.text
    again = page(web, "/list")
    assert '<html lang="en">' in again and "Risk list: Arrears" in again
    assert "kWh over the last 3 months" in again  # reason sentences from the model's English templates
    assert '<html lang="zh-CN">' in page(web, "/list", lang="zh")


def test_chinese_pages_use_chinese_colons(web):
    # 「当前身份: 催费员」「推高风险: …」 used an ASCII colon in Chinese text.
    sign_in(web, "collector")
    zh, en = page(web, "/list"), page(web, "/list", lang="en")
    assert "当前身份：催费员" in zh and "<h1>风险清单：欠费风险</h1>" in zh and "险: " not in zh
    assert re.search(r'<span class="visually-hidden">(推高|降低)风险：</span>', zh)
    assert "Signed in as: collector" in en and "<h1>Risk list: Arrears</h1>" in en


def test_pages_carry_a_strict_policy_and_no_inline_code(web):
    sign_in(web, "admin")
    for path in ("/list", "/customers/C0000003", "/overview", "/models"):
        r = web.client.get(path)
        assert "script-src 'self'" in r.headers["content-security-policy"]
        assert r.headers["cache-control"] == "no-store"
        assert not re.search(r"<script(?![^>]*\bsrc=)", r.text)  # the policy would block inline scripts
        assert " style=" not in r.text and "<style" not in r.text
        # An icon the policy allows (data: images): else the browser asks for /favicon.ico, a 404.
        assert (
            '<link rel="icon" href="data:image/svg+xml,' in r.text
            and "img-src 'self' data:" in (r.headers["content-security-policy"])
        )
    assert web.client.get("/static/gridrisk.css").headers["content-type"].startswith("text/css")
    assert web.client.get("/static/../pages.py").status_code == 404


# -- exports -------------------------------------------------------------------------------------------------


def test_export_holds_the_filtered_list_in_the_pages_language(web):
    from openpyxl import load_workbook

    sign_in(web, "admin")
    r = web.client.get("/list/export", params={"format": "xlsx", "station": "S02", "per_station_top": "7"})
    # The station in the name: two stations' files were "(1)" copies of one name.
    assert r.status_code == 200 and r.headers["content-disposition"] == (
        'attachment; filename="gridrisk-arrears-2023-06-30-S02.xlsx"; '
        "filename*=UTF-8''gridrisk-arrears-2023-06-30-S02.xlsx"
    )
    sheet = load_workbook(io.BytesIO(r.content)).active
    table = list(sheet.iter_rows(values_only=True))
    assert table[0][:3] == ("全局排名", "户号", "户名") and len(table) == 1 + 7
    assert {row[table[0].index("供电所")] for row in table[1:]} == {"S02"}
    assert {row[table[0].index("风险等级")] for row in table[1:]} <= {"高", "中", "低"}
    assert sheet.freeze_panes == "A2"
    csv = web.client.get("/list/export", params={"format": "csv", "lang": "en"})
    assert csv.content.startswith(b"\xef\xbb\xbfOverall rank,Customer ID,Name")
    assert len(csv.content.decode("utf-8-sig").strip().splitlines()) == 61
    assert (csv.headers["x-gridrisk-rows"], csv.headers["x-gridrisk-rows-listed"]) == ("60", "60")
    assert "Exports hold the first" not in page(web, "/list", lang="en")
    # JSON is the API's list, not a file: asking the page for it is a 422, not an XLSX under another name.
    assert web.client.get("/list/export", params={"format": "json"}).status_code == 422


def test_an_exports_name_holds_its_station_in_any_script(web):
    sign_in(web, "admin")
    r = web.client.get("/list/export", params={"format": "csv", "supply_unit": "U1"})
    assert 'filename="gridrisk-arrears-2023-06-30-U1.csv"' in r.headers["content-disposition"]
    assert pages.export_name(Task.THEFT, dt.date(2026, 11, 10), None, ["城东 供电所/二"]) == (
        "gridrisk-theft-2026-11-10-城东_供电所_二"
    )
    assert pages.ascii_name("gridrisk-theft-2026-11-10-城东") == "gridrisk-theft-2026-11-10-__"
    sign_in(web, "collector")  # its one station, without a filter
    r = web.client.get("/list/export", params={"format": "csv"})
    assert "filename*=UTF-8''gridrisk-arrears-2023-06-30-S01.csv" in r.headers["content-disposition"]


def test_the_way_back_from_a_customer_lands_on_its_row(web):
    # The back link returned to the right page and filters, but at the top of the page.
    sign_in(web, "collector")
    listed = page(web, "/list")
    href = html.unescape(re.findall(r'class="customer" href="([^"]*)"', listed)[2])
    assert 'id="r3"' in listed and parse_qs(urlsplit(href).query)["back"][0].endswith("#r3")
    r = web.client.get(href)
    back = html.unescape(re.search(r'<p class="crumbs"><a href="([^"]*)"', r.text).group(1))
    assert back.startswith("/list?") and back.endswith("#r3")


def test_the_csv_keeps_ids_as_data_and_its_button_sends_excel_users_to_the_xlsx(web):
    # Excel read the CSV's 0012345 as 12345 and phones as 1.92E+10; the CSV stays data, the page says so.
    sign_in(web, "collector")
    html_zh, html_en = page(web, "/list"), page(web, "/list", lang="en")
    assert "在 Excel 里查看请导出 XLSX，其中户号和电话是文本" in html_zh
    assert "To read the list in Excel, export the XLSX, where they are text." in html_en
    assert csv_bytes(["户号", "联系电话"], [["0012345", "07318888888"]]).decode("utf-8-sig").splitlines() == [
        "户号,联系电话", "0012345,07318888888"
    ]  # fmt: skip


def test_a_list_longer_than_an_export_may_be_says_so_on_the_page_and_in_the_file(web):
    sign_in(web, "admin")
    web.client.app.state.web.settings.export_max_rows = 25
    assert "Exports hold the first 25 of 60 rows" in page(web, "/list", lang="en")
    assert "导出仅含前 25 户（共 60 户）" in page(web, "/list", lang="zh")
    csv = web.client.get("/list/export", params={"format": "csv", "lang": "en"})
    assert len(csv.content.decode("utf-8-sig").strip().splitlines()) == 1 + 25
    assert (csv.headers["x-gridrisk-rows"], csv.headers["x-gridrisk-rows-listed"]) == ("25", "60")


# -- charts, words, colours ----------------------------------------------------------------------------------


def score(contributions: list[float], other: float = 0.25) -> TaskScore:
    reasons = [
        Reason(feature=f"f{i}", value=1.0, contribution=c, direction="raises" if c >= 0 else "lowers", text=t)
        for i, (c, t) in enumerate(
            zip(contributions, ["<script>x</script>", "近一年最长逾期42天", "c"], strict=False)
        )
    ]
    base = -1.0
    return TaskScore(
        task=Task.ARREARS, model=ModelRef(name="m", version="1"), as_of="2023-06-30", probability=0.5,
        band="high", percentile=50.0, rank=1, population=10, amount_at_stake=1.0, expected_value=0.5,
        base_value=base, raw_margin=base + sum(contributions) + other, other_contribution=other,
        reasons=reasons,
    )  # fmt: skip


def test_waterfall_steps_close_on_the_margin_and_escape_text():
    svg = str(charts.waterfall(score([0.8, -0.3]), "w", "t", "d", "base", "other", "total"))
    assert svg.count("<rect") == 5  # base, two reasons, the rest, the total
    assert "<script>" not in svg and "&lt;script&gt;" in svg
    widths = [float(w) for w in re.findall(r'<rect x="[^"]+" y="[^"]+" width="([^"]+)"', svg)]
    scale = widths[0] / 1.0  # the base bar spans |base| = 1.0 log-odds
    assert widths[1] == pytest.approx(0.8 * scale, rel=0.02) and widths[4] == pytest.approx(
        0.25 * scale, rel=0.02
    )
    assert 'fill="#b42318"' in svg and 'fill="#067647"' in svg


def test_axis_helpers():
    assert charts.ticks(-3.2, 0.2) == [-3.0, -2.0, -1.0, 0.0]
    assert charts.nice_max(37_704) == 50_000 and charts.nice_max(0) == 1.0
    assert charts.compact(1234) == "1.2k" and charts.compact(3_400_000) == "3.4M"
    assert charts.compact(500_000) == "500k"  # not "500.0k"
    # Chinese pages count money in 万 and 亿: the overview said ¥846.8k.
    assert [charts.compact(v, Lang.ZH) for v in (846_812, 500_000, 1.23e8, 9_999)] == [
        "84.7万", "50万", "1.2亿", "9999"
    ]  # fmt: skip
    assert [charts.signed(v) for v in (0.0, 1.5, -2.85)] == ["0", "+1.5", "−2.85"]  # the axis read "+0"


def test_the_last_month_label_never_lands_beside_another():
    # With 23 months (the snapshot's month has no bill yet) "26-09" and "26-10" printed over each other.
    assert charts.month_ticks(23) == [0, 3, 6, 9, 12, 15, 18, 22]
    assert charts.month_ticks(24) == [0, 3, 6, 9, 12, 15, 18, 21, 23]
    assert charts.month_ticks(1) == [0] and charts.month_ticks(0) == []
    for n in range(1, 30):
        ticks = charts.month_ticks(n)
        assert min((b - a for a, b in itertools.pairwise(ticks)), default=2) >= 2, n


def test_waterfall_tooltips_use_the_minus_sign_of_its_labels():
    svg = str(charts.waterfall(score([0.8, -0.3]), "w", "t", "d", "base", "other", "total"))
    titles = re.findall(r"<title>([^<]*)</title>", svg)
    assert any("−0.30" in t for t in titles) and not any(re.search(r"-\d", t) for t in titles)
    assert ">+0<" not in svg
    assert charts.fit("近3个月电量较去年同期下降76%", 12) == "近3个月电量…"  # 11 units and the ellipsis
    assert charts.fit("short", 12) == "short"


def test_metric_names_read_in_words_and_unknown_ones_as_they_are():
    # The models page showed amount_recall_at_station_capacity and ~25 other raw names on a Chinese page.
    assert [metric_word("zh", m) for m in ("pr_auc", "precision_at_5pct", "lift_at_0_5pct")] == [
        "PR-AUC", "前 5% 的精确率", "前 0.5% 的提升度"
    ]  # fmt: skip
    assert metric_word("zh", "amount_recall_at_station_capacity") == "每所走访上限内的金额召回率"
    assert metric_word("en", "amount_recall_at_station_capacity") == "Amount recall within station capacity"
    assert metric_word("en", "positives") == "Positives" and metric_word("zh", "log_loss") == "对数损失"
    assert metric_word("zh", "true_recall_at_5pct") == "true_recall_at_5pct"  # not a name training writes


def test_both_languages_hold_the_same_words():
    assert TEXT["zh"].keys() == TEXT["en"].keys()
    assert METRIC_WORDS["zh"].keys() == METRIC_WORDS["en"].keys()
    assert EXPORT_HEADERS["zh"].keys() == EXPORT_HEADERS["en"].keys()
    for kind in LABELS["zh"]:
        assert LABELS["zh"][kind].keys() == LABELS["en"][kind].keys(), kind
    from features.schema import InspectionResult, PaymentMethod, SuspensionKind, Tariff, UsageCategory

    for kind, enum in [
        ("usage_category", UsageCategory), ("tariff", Tariff), ("payment_method", PaymentMethod),
        ("kind", SuspensionKind), ("result", InspectionResult), ("task", Task), ("role", Role),
    ]:  # fmt: skip
        assert set(LABELS["zh"][kind]) == {e.value for e in enum}, kind


def contrast(a: str, b: str) -> float:
    def luminance(colour: str) -> float:
        channels = [int(colour[i : i + 2], 16) / 255 for i in (1, 3, 5)]
        linear = [c / 12.92 if c <= 0.04045 else ((c + 0.055) / 1.055) ** 2.4 for c in channels]
        return 0.2126 * linear[0] + 0.7152 * linear[1] + 0.0722 * linear[2]

    hi, lo = sorted((luminance(a), luminance(b)), reverse=True)
    return (hi + 0.05) / (lo + 0.05)


@pytest.mark.parametrize(
    "text, background",
    [
        ("--text", "--bg"), ("--text", "--page"), ("--muted", "--bg"), ("--muted", "--page"),
        ("--link", "--bg"), ("--link", "--page"), ("--header-text", "--header-bg"),
        ("--on-band", "--band-high"), ("--on-band", "--band-medium"), ("--on-band", "--band-low"),
        ("--on-band", "--link"), ("--alert-text", "--alert-bg"), ("--text", "--owing-bg"),
        ("--raises", "--bg"), ("--lowers", "--bg"),
    ],
)  # fmt: skip
def test_text_colours_meet_wcag_aa(text, background):
    colours = dict(re.findall(r"(--[\w-]+):\s*(#[0-9a-fA-F]{6})", CSS.read_text()))
    assert contrast(colours[text], colours[background]) >= 4.5


def test_a_home_that_cannot_hold_the_session_secret_is_a_503_page_naming_it(web, settings, monkeypatch):
    # On a read-only home with no web-session.secret yet, every page was a 500, its error page too.
    secret = settings.home / "web-session.secret"
    assert not secret.exists()  # no page asked for yet
    read_only(monkeypatch, settings.home)
    for path in ("/login", "/list"):
        r = web.client.get(path, follow_redirects=False)
        assert r.status_code == 503 and "text/html" in r.headers["content-type"], (path, r.text[:200])
        text = html.unescape(r.text)
        assert f"web session secret {secret} cannot be written (Read-only file system)" in text
        assert "GRIDRISK_WEB_SESSION_SECRET" in text
    monkeypatch.undo()
    assert web.client.get("/login").status_code == 200 and secret.exists()


def test_a_form_the_parser_cannot_read_is_a_page_in_the_pages_language(web):
    """Multipart without its boundary, or more than 1,000 fields, was FastAPI's English JSON."""
    r = web.client.post("/login", content=b"x", headers={"Content-Type": "multipart/form-data"})
    assert r.status_code == 400 and r.headers["content-type"].startswith("text/html")
    assert "无法读取提交的表单" in r.text
    many = "&".join(f"f{i}=1" for i in range(1_100))
    r = web.client.post(
        "/login?lang=en", content=many, headers={"Content-Type": "application/x-www-form-urlencoded"}
    )
    assert r.status_code == 400 and "The form sent could not be read" in r.text


def test_a_page_number_is_written_with_digits_only(web):
    """A 5,000-digit page was the parser's English "exceeded maximum size" on a Chinese page."""
    sign_in(web, "admin")
    for written, says in (("1_0", "digits only"), ("9" * 5_000, "at most 12 digits")):
        detail = (
            page(web, "/list", status=422, page=written).split('class="detail"', 1)[1].split("</p>", 1)[0]
        )
        assert says in detail and "9" * 20 not in detail
    assert page(web, "/list", page="2").count("<tr") > 1
