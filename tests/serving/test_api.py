"""The HTTP API through FastAPI's test client: scores, lists, access rules, errors, metrics, reload, audit."""

from __future__ import annotations

import io
import json
import os
import threading

import numpy as np
import pytest
from disk_faults import full_disk, read_only
from tinymodel import FEATURES, FakeRegistry

from serving.access import revoke_key
from serving.dependencies import get_model_store
from serving.model_store import ModelStore


def records_of(service, ids):
    rows = service.population.set_index("customer_id").loc[ids, FEATURES]
    return [
        {
            "customer_id": cid,
            **{k: (None if isinstance(v, float) and np.isnan(v) else v) for k, v in row.items()},
        }
        for cid, row in rows.iterrows()
    ]


def test_score_by_id_comes_from_the_snapshot_and_names_the_model(service):
    r = service.client.post(
        "/v1/arrears/score",
        json={"customer_ids": ["C0000001", "C0000002"]},
        params={"lang": "en"},
        headers=service.headers("service"),
    )
    assert r.status_code == 200, r.text
    body = r.json()
    assert body["source"] == "snapshot" and body["as_of"] == "2023-06-30"
    assert body["model"] == {"name": "gridrisk-arrears", "version": "1"}
    assert [x["customer_id"] for x in body["results"]] == ["C0000001", "C0000002"]
    first = body["results"][0]
    assert 0 <= first["probability"] <= 1 and first["band"] in {"low", "medium", "high"}
    assert len(first["reasons"]) == 4  # the tiny model has four features; k=5 returns them all
    contributions = [abs(x["contribution"]) for x in first["reasons"]]
    assert contributions == sorted(contributions, reverse=True)
    # With every feature among the reasons, base + contributions is the whole margin.
    assert first["base_value"] + sum(x["contribution"] for x in first["reasons"]) == pytest.approx(
        first["raw_margin"]
    )


def test_live_records_score_like_the_snapshot(service):
    ids = ["C0000003", "C0000004", "C0000005"]
    live = service.client.post(
        "/v1/arrears/score", json={"records": records_of(service, ids)}, headers=service.headers("service")
    ).json()
    stored = service.client.post(
        "/v1/arrears/score", json={"customer_ids": ids}, headers=service.headers("service")
    ).json()
    assert live["source"] == "live" and live["as_of"] is None
    for a, b in zip(live["results"], stored["results"], strict=True):
        assert a["customer_id"] == b["customer_id"]
        assert a["probability"] == pytest.approx(b["probability"], abs=1e-12)
        assert [x["feature"] for x in a["reasons"]] == [x["feature"] for x in b["reasons"]]
        assert [x["text"] for x in a["reasons"]] == [x["text"] for x in b["reasons"]]


def test_the_features_a_record_needs_are_published(service, package):
    # A caller learned them only from a 422, which lists 50 errors: arrears needs 65 features.
    r = service.client.get("/v1/arrears/features", headers=service.headers("service"))
    assert r.status_code == 200, r.text
    body = r.json()
    assert body["model"] == {"name": "gridrisk-arrears", "version": "1"}
    fields = {f["name"]: f for f in body["features"]}
    assert list(fields) == package.spec.names
    assert fields["usage_category"]["type"] == "category"
    assert fields["usage_category"]["categories"] == package.spec.categorical["usage_category"]
    numbers = [f for f in body["features"] if f["type"] == "number"]
    assert numbers and all(f["categories"] is None for f in numbers)
    assert fields["payments_days_late_max_365d"]["unit"] == "days"
    assert service.client.get("/v1/arrears/features", headers=service.headers("collector")).status_code == 403
    # A record built from the list alone is scored.
    record = {f["name"]: (f["categories"][0] if f["categories"] else 1.0) for f in body["features"]}
    scored = service.client.post(
        "/v1/arrears/score", json={"records": [record]}, headers=service.headers("service")
    )
    assert scored.status_code == 200, scored.text


def test_a_category_level_the_model_never_learned_scores_as_missing(service):
    # By design, as LightGBM and the batch scores read it (FeatureSpec.matrix): documented by /features.
    record = records_of(service, ["C0000003"])[0]
    scores = []
    for level in (None, "no_such_level", "General_Commercial", 5):
        posted = {**record, "usage_category": level}
        r = service.client.post(
            "/v1/arrears/score", json={"records": [posted]}, headers=service.headers("service")
        )
        scores.append(r.json()["results"][0]["probability"])
    assert len(set(scores)) == 1


def test_sentences_follow_the_language(service):
    body = {"customer_ids": ["C0000002"]}
    zh = service.client.post("/v1/arrears/score", json=body, headers=service.headers("admin")).json()
    en = service.client.post(
        "/v1/arrears/score", json=body, params={"lang": "en"}, headers=service.headers("admin")
    ).json()
    zh_texts = {r["feature"]: r["text"] for r in zh["results"][0]["reasons"]}
    en_texts = {r["feature"]: r["text"] for r in en["results"][0]["reasons"]}
    assert "天" in zh_texts["payments_days_late_max_365d"] or "—" in zh_texts["payments_days_late_max_365d"]
    assert zh_texts["bills_kwh_yoy_change_pct_90d"].startswith("近3个月电量较去年同期")
    assert en_texts["bills_kwh_yoy_change_pct_90d"].startswith("kWh over the last 3 months")


def test_keys_are_required_and_checked(service, settings):
    c = service.client
    body = {"customer_ids": ["C0000001"]}
    assert c.post("/v1/arrears/score", json=body).status_code == 401
    r = c.post("/v1/arrears/score", json=body, headers={"X-API-Key": "grk_00000000_wrong"})
    assert r.status_code == 401 and "not recognised" in r.json()["detail"]
    bearer = {"Authorization": f"Bearer {service.keys['service']}"}
    assert c.post("/v1/arrears/score", json=body, headers=bearer).status_code == 200
    # A pasted key with a trailing space worked as a bearer token and on the page, not in X-API-Key.
    spaced = {"X-API-Key": f"{service.keys['service']} "}
    assert c.post("/v1/arrears/score", json=body, headers=spaced).status_code == 200
    # Another scheme was dropped without a word: the caller sent a credential and was told it sent none.
    r = c.post("/v1/arrears/score", json=body, headers={"Authorization": "Basic dXNlcjpwdw=="})
    assert r.status_code == 401 and "Authorization: Basic is not read" in r.json()["detail"]
    r = c.post("/v1/arrears/score", json=body, headers={"Authorization": "Bearer"})
    assert r.status_code == 401 and r.json()["detail"].startswith("no API key")
    key_id = service.keys["service"].split("_")[1]
    revoke_key(settings.keys_path, key_id)
    r = c.post("/v1/arrears/score", json=body, headers=service.headers("service"))
    assert r.status_code == 401 and "revoked" in r.json()["detail"]


@pytest.mark.parametrize(
    "authorization",
    [
        "{key}",  # the key pasted without "Bearer ": its id and 7 secret characters came back as the "scheme"
        "{key} extra",
        "Sup3r-Secret-Token-Value",  # not a scheme word: it may be some other secret
    ],
)
def test_a_credential_in_authorization_without_a_scheme_is_never_repeated(service, settings, authorization):
    key = service.keys["service"]
    header = authorization.format(key=key)
    r = service.client.post(
        "/v1/arrears/score", json={"customer_ids": ["C0000001"]}, headers={"Authorization": header}
    )
    assert r.status_code == 401
    detail = r.json()["detail"]
    assert "send the API key as X-API-Key or as Authorization: Bearer <key>" in detail
    secret_start = header.split()[0][:8]
    assert secret_start not in detail and key.split("_")[1] not in detail
    audit = settings.audit_path.read_text()
    assert '"refused"' in audit and secret_start not in audit and "grk_" not in audit
    # A scheme word is still named, so the caller learns which header was not read.
    r = service.client.get("/v1/models", headers={"Authorization": "Digest abc"})
    assert r.status_code == 401 and r.json()["detail"].startswith("Authorization: Digest is not read")


def test_roles_and_station_scope_give_403(service):
    c = service.client
    assert c.get("/v1/arrears/risk-list", headers=service.headers("service")).status_code == 403
    r = c.post("/v1/arrears/score", json={"customer_ids": ["C0000001"]}, headers=service.headers("collector"))
    assert r.status_code == 403 and "collector" in r.json()["detail"]
    r = c.get("/v1/arrears/risk-list", params={"station": "S02"}, headers=service.headers("collector"))
    assert r.status_code == 403 and "S02" in r.json()["detail"]
    r = c.get(
        "/v1/arrears/risk-list", params={"supply_unit": "U1"}, headers=service.headers("unit_collector")
    )
    assert r.status_code == 403
    assert c.post("/v1/admin/reload", headers=service.headers("analyst")).status_code == 403
    assert c.get("/v1/models", headers=service.headers("service")).status_code == 403


def test_refused_requests_are_audit_lines(service, settings, monkeypatch):
    # An operator asked who had been probing with a revoked key: refusals were only in the server's log.
    c = service.client
    body = {"customer_ids": ["C0000001"]}
    c.post("/v1/arrears/score", json=body)
    c.post("/v1/arrears/score", json=body, headers={"X-API-Key": "grk_00000000_wrong"})
    c.get("/v1/arrears/risk-list", params={"station": "S02"}, headers=service.headers("collector"))
    c.get("/v1/customers/C0000001", headers=service.headers("service"))
    key_id = service.keys["service"].split("_")[1]
    revoke_key(settings.keys_path, key_id)
    c.post("/v1/arrears/score", json=body, headers=service.headers("service"))
    lines = [json.loads(x) for x in settings.audit_path.read_text().splitlines()]
    assert [(x["action"], x["status"], x["key_id"], x["role"]) for x in lines] == [
        ("refused", 401, None, None),
        ("refused", 401, None, None),
        ("refused", 403, service.keys["collector"].split("_")[1], "collector"),
        ("refused", 403, key_id, "service"),
        ("refused", 401, key_id, "service"),  # a revoked key's role, as the README promises
    ]
    assert lines[0]["route"] == "POST /v1/arrears/score" and lines[0]["client"] == "testclient"
    assert lines[0]["detail"].startswith("no API key") and "not recognised" in lines[1]["detail"]
    assert "not station 'S02'" in lines[2]["detail"] and "revoked" in lines[4]["detail"]
    assert "grk_" not in settings.audit_path.read_text()  # never a presented key, right or wrong
    # A refusal that cannot be recorded is still a refusal, not a 503 that would tell a prober about the disk.
    read_only(monkeypatch, settings.home)
    assert c.post("/v1/arrears/score", json=body).status_code == 401
    assert c.get("/v1/models", headers=service.headers("collector")).status_code == 403


def test_a_blank_query_parameter_is_absent_on_every_method(service):
    # A POST's blank `lang` was a 422 (enum) where a GET's was the default; the document said neither.
    body = {"customer_ids": ["C0000001"]}
    blank = service.client.post("/v1/arrears/score?lang=", json=body, headers=service.headers("service"))
    assert blank.status_code == 200 and blank.json()["lang"] == "zh"
    assert "blank" in service.client.get("/openapi.json").json()["info"]["description"]


def test_an_unknown_or_repeated_query_parameter_is_a_422(service):
    c, analyst = service.client, service.headers("analyst")
    # `offset` gave the first page again, without a word: there is no paging.
    r = c.get("/v1/arrears/risk-list", params={"offset": 10}, headers=analyst)
    assert r.status_code == 422
    (error,) = r.json()["detail"]
    assert error["loc"] == ["query", "offset"] and error["type"] == "extra_forbidden"
    assert "there is no paging, `top` sizes the list" in error["msg"] and "per_station_top" in error["msg"]
    # The last of two stations was listed alone; the summary has no station and summed every one.
    r = c.get("/v1/arrears/risk-list?station=S01&station=S02", headers=analyst)
    assert r.status_code == 422 and r.json()["detail"][0]["input"] == ["S01", "S02"]
    assert "station is sent 2 times" in r.json()["detail"][0]["msg"]
    assert c.get("/v1/arrears/summary", params={"station": "S02"}, headers=analyst).status_code == 422
    assert c.get("/v1/arrears/risk-list", params={"top": 5, "lang": "en"}, headers=analyst).status_code == 200
    # The key comes first: a keyless request is a 401 whatever it asks.
    assert c.get("/v1/arrears/risk-list", params={"offset": 10}).status_code == 401


def test_refusal_lines_are_capped_per_minute_and_the_rest_counted(service, settings, monkeypatch):
    # Anyone may send keyless requests: a line each let a prober fill the home's disk, after which every
    # audited request is a 503 (a reviewer).
    import serving.access as access

    monkeypatch.setattr(access, "REFUSALS_PER_MINUTE", 3)
    now = [6000.0]
    monkeypatch.setattr(access.time, "monotonic", lambda: now[0])
    for _ in range(5):
        assert service.client.get("/v1/arrears/risk-list").status_code == 401
    assert len(settings.audit_path.read_text().splitlines()) == 3
    now[0] += 60  # the next minute: its first line says how many were not written
    assert service.client.get("/v1/arrears/risk-list").status_code == 401
    last = json.loads(settings.audit_path.read_text().splitlines()[-1])
    assert last["action"] == "refused" and last["refusals_not_written_before"] == 2


def test_a_cache_buster_and_lang_pass_on_every_keyed_route(service):
    # Every unlisted parameter had become a 422: jQuery's `cache: false` (`?_=<time>`) and a client's
    # `lang` set once for all its calls (`GET /v1/models?lang=en`), both ignored before.
    c, admin = service.client, service.headers("admin")
    operations = [
        (method.upper(), path.replace("{task}", "arrears").replace("{customer_id}", "C0000001"))
        for path, item in c.get("/openapi.json").json()["paths"].items()
        if path.startswith("/v1/")
        for method in item
    ]
    assert len(operations) >= 7
    for method, path in operations:
        body = {"customer_ids": ["C0000001"]} if path.endswith("/score") else None
        for query in ("_=1700000000", "_=1&_=2", "lang=en", "lang=zh&_=1700000000"):
            r = c.request(method, f"{path}?{query}", json=body, headers=admin)
            assert r.status_code == 200, (method, path, query, r.text)
        # `lang` is checked where it changes nothing as where it is read; a misspelled parameter is a 422.
        for query, kind in (
            ("lang=cn", "enum"),
            ("lang=en&lang=zh", "repeated"),
            ("_=1&lnag=en", "extra_forbidden"),
        ):
            r = c.request(method, f"{path}?{query}", json=body, headers=admin)
            assert r.status_code == 422 and [e["type"] for e in r.json()["detail"]] == [kind], (path, query)
    assert c.get("/v1/models?lang=en").status_code == 401  # the key still comes first


def test_a_nan_threshold_is_refused_as_not_a_number(service):
    # It was refused as "Input should be less than or equal to 1".
    r = service.client.get(
        "/v1/arrears/risk-list", params={"min_probability": "nan"}, headers=service.headers("analyst")
    )
    assert r.status_code == 422 and "finite number" in r.text


def test_unknown_customers_are_named_in_a_404(service):
    r = service.client.post(
        "/v1/arrears/score", json={"customer_ids": ["C0000001", "NOPE-1"]}, headers=service.headers("service")
    )
    assert r.status_code == 404
    assert r.json()["error"] == "UnknownCustomers" and "NOPE-1" in r.json()["detail"]
    # One id asked four times was "4 customer id(s) not in …: NOPE, NOPE, NOPE, NOPE".
    r = service.client.post(
        "/v1/arrears/score", json={"customer_ids": ["NOPE"] * 4}, headers=service.headers("service")
    )
    assert r.json()["detail"].startswith("1 customer id(s) not in the latest arrears snapshot: NOPE;")


def test_skip_unknown_scores_the_known_ids_and_names_the_others(service):
    """A batch from another system holds ids outside the population (178 of 5,000 for theft): with
    skip_unknown it gets the scores it can have, in its order, and the rest named once."""
    headers = service.headers("service")
    known = service.client.post(
        "/v1/arrears/score", json={"customer_ids": ["C0000002", "C0000001"]}, headers=headers
    ).json()
    r = service.client.post(
        "/v1/arrears/score",
        json={"customer_ids": ["C0000002", "NOPE-1", "C0000001", "NOPE-1"], "skip_unknown": True},
        headers=headers,
    )
    assert r.status_code == 200, r.text
    assert r.json()["results"] == known["results"] and r.json()["unknown"] == ["NOPE-1"]
    assert known["unknown"] == []
    r = service.client.post(
        "/v1/arrears/score", json={"customer_ids": ["NOPE-1"], "skip_unknown": True}, headers=headers
    )
    assert r.status_code == 200 and r.json()["results"] == [] and r.json()["unknown"] == ["NOPE-1"]
    r = service.client.post(
        "/v1/arrears/score", json={"records": [{}], "skip_unknown": True}, headers=headers
    )
    assert r.status_code == 422 and "skip_unknown applies to customer_ids" in r.text
    for loose in ("yes", "off", 1):  # pydantic's lax bool read these as true and false
        r = service.client.post(
            "/v1/arrears/score", json={"customer_ids": ["NOPE-1"], "skip_unknown": loose}, headers=headers
        )
        assert r.status_code == 422 and r.json()["detail"][0]["loc"] == ["body", "skip_unknown"], r.text


@pytest.mark.parametrize(
    ("body", "loc"),
    [
        ({"customer_ids": ["C1"], "records": [{}]}, ["body"]),  # both sources
        ({}, ["body"]),  # neither
        ({"customer_ids": []}, ["body", "customer_ids"]),  # empty list
        ({"records": [{"bills_kwh_yoy_change_pct_90d": 1.0}]}, ["body", "records", 0]),  # features left out
        ({"records": [{"x": [1]}]}, ["body", "records", 0, "x"]),  # a list is no feature value
    ],
)
def test_invalid_payloads_give_422_with_field_paths(service, body, loc):
    r = service.client.post("/v1/arrears/score", json=body, headers=service.headers("service"))
    assert r.status_code == 422, r.text
    locs = [e["loc"] for e in r.json()["detail"]]
    assert any(found[: len(loc)] == loc for found in locs), locs


def post_raw(service, content: str | bytes):
    """A score request with this body exactly as written: no client-side JSON encoding."""
    return service.client.post(
        "/v1/arrears/score",
        content=content,
        headers={**service.headers("service"), "content-type": "application/json"},
    )


def strict_json(text: str):
    """JSON as RFC 8259 defines it: NaN and Infinity are not numbers there."""

    def refuse(constant: str) -> None:
        raise ValueError(f"{constant} is not JSON")

    return json.loads(text, parse_constant=refuse)


@pytest.mark.parametrize(
    ("raw", "loc"),
    [
        ('{"customer_ids": [NaN]}', ["body", "customer_ids", 0]),
        ('{"customer_ids": [Infinity]}', ["body", "customer_ids", 0]),
        ('{"customer_ids": [1e999]}', ["body", "customer_ids", 0]),  # parses as inf
        ('{"records": NaN}', ["body", "records"]),
        ("NaN", ["body"]),
        ('{"customer_ids": ["x"], "extra": -Infinity}', ["body", "extra"]),
    ],
)
def test_non_finite_numbers_in_an_invalid_body_give_422_not_500(service, raw, loc):
    # Python's parser accepts these; echoing them back as floats used to fail FastAPI's handler (500).
    r = post_raw(service, raw)
    assert r.status_code == 422, r.text
    detail = strict_json(r.text)["detail"]
    assert any(e["loc"] == loc for e in detail), detail
    assert {str(e["input"]) for e in detail if e["loc"] == loc} & {"NaN", "Infinity", "-Infinity"}


def test_unparseable_bodies_get_their_documented_status(service):
    post = lambda content: post_raw(service, content)  # noqa: E731
    documented = service.client.get("/openapi.json").json()["paths"]["/v1/{task}/score"]["post"]["responses"]
    malformed = post('{"customer_ids": [')  # text, but not JSON: a 422 like any invalid body
    assert malformed.status_code == 422 and malformed.json()["detail"][0]["type"] == "json_invalid"
    assert "422" in documented
    undecodable = post(b"\xc3\x28")  # not even UTF-8: FastAPI's 400
    assert undecodable.status_code == 400 and isinstance(undecodable.json()["detail"], str)
    assert "not UTF-8" in documented["400"]["description"] and "422" in documented["400"]["description"]


@pytest.mark.parametrize(
    ("content_type", "came"),
    [
        (
            "application/x-www-form-urlencoded",
            "as 'application/x-www-form-urlencoded'",
        ),  # what `curl -d` sends
        ("text/plain; charset=utf-8", "as 'text/plain; charset=utf-8'"),
        (None, "without a Content-Type"),
    ],
)
def test_a_body_not_sent_as_json_is_a_422_that_says_so(service, content_type, came):
    # The 422 read "Input should be a valid dictionary", quoting the JSON text back as a string.
    headers = {**service.headers("service"), **({"content-type": content_type} if content_type else {})}
    r = service.client.post("/v1/arrears/score", content=b'{"customer_ids": ["C0000001"]}', headers=headers)
    assert r.status_code == 422
    assert r.json() == {
        "detail": [
            {
                "type": "content_type",
                "loc": ["header", "content-type"],
                "msg": "the body is read as JSON only: send it with Content-Type: application/json, as "
                f"uncompressed UTF-8 text (it came {came})",
            }
        ]
    }
    json_typed = {**service.headers("service"), "content-type": "application/vnd.api+json"}
    r = service.client.post(
        "/v1/arrears/score", content=b'{"customer_ids": ["C0000001"]}', headers=json_typed
    )
    assert r.status_code == 200


@pytest.mark.parametrize(
    ("raw", "loc"),
    [
        (rb'{"customer_ids": ["\ud800"]}', ["body", "customer_ids", 0]),
        (rb'{"customer_ids": ["C000000\udc001"]}', ["body", "customer_ids", 0]),  # a known id's format
        (rb'{"customer_ids": ["a"], "\udc00x": 1}', ["body"]),  # the field name itself
        (rb'{"records": [{"customer_id": "C\ud800"}]}', ["body", "records", 0, "customer_id"]),
    ],
)
def test_lone_surrogates_in_a_body_give_422_not_500(service, raw, loc):
    # JSON allows "\ud800"; Python's parser makes it a lone surrogate, which no UTF-8 encoder accepts.
    r = post_raw(service, raw)
    assert r.status_code == 422, r.text
    detail = r.json()["detail"]
    assert any(e["loc"] == loc and "\\ud" in e["input"] for e in detail), detail  # shown as its escape


def test_lone_surrogates_that_pass_the_schema_are_not_echoed_raw(service):
    # json.dumps writes ASCII with \u escapes, as a client would send them.
    post = lambda record: post_raw(service, json.dumps({"records": [record]}))  # noqa: E731
    record = records_of(service, ["C0000001"])[0]
    unknown_level = post({**record, "usage_category": "resid\ud800ential"})
    assert unknown_level.status_code == 200, unknown_level.text  # an unknown category is missing
    assert unknown_level.json()["results"][0]["customer_id"] == "C0000001"
    not_a_number = post({**record, "contract_capacity_kva": "\udc00"})
    assert not_a_number.status_code == 422, not_a_number.text
    assert "\\udc00" in not_a_number.json()["detail"][0]["msg"]


@pytest.mark.parametrize(
    ("customer_id", "kind"),
    [(12, "string_type"), ("x" * 65, "string_too_long"), ("", "string_too_short")],
)
def test_a_records_customer_id_follows_the_rules_of_customer_ids(service, customer_id, kind):
    # A number was answered as customer_id null, and a 100,000-character id was echoed back.
    record = {**records_of(service, ["C0000001"])[0], "customer_id": customer_id}
    for body, loc in (
        ({"records": [record]}, ["body", "records", 0, "customer_id"]),
        ({"customer_ids": [customer_id]}, ["body", "customer_ids", 0]),
    ):
        r = service.client.post("/v1/arrears/score", json=body, headers=service.headers("service"))
        assert r.status_code == 422, r.text
        assert [(e["loc"], e["type"]) for e in r.json()["detail"]] == [(loc, kind)]


def test_a_record_without_customer_id_is_scored_with_a_null_id(service):
    record = records_of(service, ["C0000001"])[0]
    del record["customer_id"]
    for sent in (record, {**record, "customer_id": None}):
        r = service.client.post(
            "/v1/arrears/score", json={"records": [sent]}, headers=service.headers("service")
        )
        assert r.status_code == 200 and r.json()["results"][0]["customer_id"] is None


def test_a_422_for_an_oversize_batch_does_not_echo_the_batch(service):
    too_many = [f"C{i:07d}" for i in range(10_001)]
    r = service.client.post(
        "/v1/arrears/score", json={"customer_ids": too_many}, headers=service.headers("service")
    )
    assert r.status_code == 422 and len(r.content) < 2_000, len(r.content)
    error = r.json()["detail"][0]
    assert (error["type"], error["input"], error["ctx"]) == (
        "too_long",
        "(a list of 10,001 items)",
        {"field_type": "List", "max_length": 10_000, "actual_length": 10_001},
    )


def test_a_422_lists_a_few_errors_and_cuts_long_values_short(service):
    r = service.client.post(
        "/v1/arrears/score",
        json={"customer_ids": [12] * 5_000 + ["x" * 100_000]},
        headers=service.headers("service"),
    )
    assert r.status_code == 422 and len(r.content) < 20_000, len(r.content)
    detail = r.json()["detail"]
    assert len(detail) == 51 and detail[-1] == {
        "loc": ["body"],
        "msg": "4,951 more errors not listed",
        "type": "too_many_errors",
    }
    r = service.client.post(
        "/v1/arrears/score",
        json={"customer_ids": ["x" * 100_000], "y" * 100_000: {"a": list(range(50))}},
        headers=service.headers("service"),
    )
    assert r.status_code == 422 and len(r.content) < 2_000, len(r.content)
    inputs = {e["type"]: e["input"] for e in r.json()["detail"]}
    assert inputs["string_too_long"] == "x" * 100 + "… (100,000 characters)"
    assert inputs["extra_forbidden"] == {"a": "(a list of 50 items)"}


def test_non_finite_feature_values_are_null_in_responses(service, package, settings):
    from tinymodel import AS_OF, scoring_frame

    from serving.schemas import ModelRef
    from serving.snapshot import score_frame, write_snapshot

    scores = score_frame(package, scoring_frame(), ModelRef(name="gridrisk-arrears", version="1"))
    scores.loc[scores["customer_id"] == "C0000001", "reason_1_value"] = np.inf  # a ratio over a zero bill
    scores.loc[scores["customer_id"] == "C0000001", "reason_1_label"] = None
    write_snapshot(scores, settings.snapshots_path, "arrears", AS_OF)
    service.state.refresh()
    r = service.client.post(
        "/v1/arrears/score", json={"customer_ids": ["C0000001"]}, headers=service.headers("service")
    )
    assert r.status_code == 200 and strict_json(r.text)["results"][0]["reasons"][0]["value"] is None
    r = service.client.get("/v1/arrears/risk-list", params={"top": 1000}, headers=service.headers("admin"))
    item = next(i for i in strict_json(r.text)["items"] if i["customer_id"] == "C0000001")
    assert item["reasons"][0]["value"] is None


def test_unknown_task_is_a_422(service):
    r = service.client.post(
        "/v1/nope/score", json={"customer_ids": ["C1"]}, headers=service.headers("service")
    )
    assert r.status_code == 422 and r.json()["detail"][0]["loc"] == ["path", "task"]


def test_no_model_is_a_503_with_the_reason(service, settings, tmp_path):
    # A fresh home: no champion in the registry and no local copy to fall back on.
    empty = ModelStore(settings.model_copy(update={"home": tmp_path / "fresh"}), FakeRegistry())
    empty.refresh()
    service.client.app.dependency_overrides[get_model_store] = lambda: empty
    try:
        r = service.client.post(
            "/v1/arrears/score", json={"customer_ids": ["C0000001"]}, headers=service.headers("service")
        )
    finally:
        service.client.app.dependency_overrides.clear()
    assert r.status_code == 503
    assert "gridrisk-arrears@champion" in r.json()["detail"]


def _tracking_server(password: str, api_status: int):  # type: ignore[no-untyped-def]
    """A tracking server behind Basic auth: /health answers 200 to alice, the REST API `api_status`."""
    import base64
    import http.server

    expected = "Basic " + base64.b64encode(f"alice:{password}".encode()).decode()

    class Handler(http.server.BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            status = 401 if self.headers.get("Authorization") != expected else 200
            if status == 200 and self.path != "/health":
                status = api_status
            self.send_response(status)
            self.send_header("Content-Length", "0")
            self.end_headers()

        def log_message(self, *args) -> None:  # type: ignore[no-untyped-def]
            pass

    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    return server


def test_a_registry_behind_a_password_is_probed_with_it_and_never_shows_it(
    service, settings, tmp_path, monkeypatch, caplog
):
    from serving.model_store import MlflowRegistry

    monkeypatch.setenv("MLFLOW_HTTP_REQUEST_MAX_RETRIES", "0")  # MLflow's REST client would retry for minutes
    server = _tracking_server(
        "s3cret", api_status=500
    )  # up, but its API fails: MLflow quotes the URL it asked
    port = server.server_address[1]
    try:
        registry = MlflowRegistry(f"http://alice:s3cret@127.0.0.1:{port}")
        # urllib read "alice:s3cret@127.0.0.1" as a host name: such a registry always looked down.
        assert registry.probe() is None
        assert "401" in (MlflowRegistry(f"http://alice:wrong@127.0.0.1:{port}").probe() or "")
        store = ModelStore(settings.model_copy(update={"home": tmp_path / "fresh"}), registry)
        store.refresh()
        service.client.app.dependency_overrides[get_model_store] = lambda: store
        ready = service.client.get("/ready")
        scored = service.client.post(
            "/v1/arrears/score", json={"customer_ids": ["C0000001"]}, headers=service.headers("service")
        )
    finally:
        service.client.app.dependency_overrides.clear()
        server.shutdown()
    assert ready.json()["registry_uri"] == f"http://127.0.0.1:{port}"  # /ready needs no key
    assert "cannot read gridrisk-arrears@champion" in ready.text and scored.status_code == 503
    for shown in (ready.text, scored.text, caplog.text):
        assert "s3cret" not in shown and "alice" not in shown


def test_a_uri_is_shown_without_user_password_or_query():
    from serving.settings import uri_without_credentials

    assert uri_without_credentials("https://ops:p%40ss@mlflow.corp:5000/base?token=abc") == (
        "https://mlflow.corp:5000/base"
    )
    assert uri_without_credentials("postgresql://ml:pw@[::1]:5432/mlflow") == "postgresql://[::1]:5432/mlflow"
    assert uri_without_credentials("sqlite:////srv/home/mlflow.db") == "sqlite:////srv/home/mlflow.db"
    # A password with a bare "/", "?" or "#": the parser ended the host there and showed the rest as a path.
    for password in ("pa/ss", "pa?ss", "pa#ss", "p@ss"):
        shown = uri_without_credentials(f"https://ops:{password}@mlflow.corp:5000/base")
        assert shown == "https://mlflow.corp:5000/base", password
    from serving.model_store import MlflowRegistry

    said = MlflowRegistry("http://ops:pa/ss@127.0.0.1:1/", timeout_seconds=0.2).probe()
    assert said is not None and "unreachable" in said and "pa/ss" not in said and "ops" not in said


def test_collector_sees_its_station_with_names_and_phones(service):
    r = service.client.get(
        "/v1/arrears/risk-list", params={"top": 1000}, headers=service.headers("collector")
    )
    assert r.status_code == 200, r.text
    body = r.json()
    assert body["matched"] == 20 and body["count"] == 20
    assert {i["station"] for i in body["items"]} == {"S01"}
    assert all(i["name"].startswith("王小") and "*" not in i["phone"] for i in body["items"])
    unit = service.client.get("/v1/arrears/risk-list", headers=service.headers("unit_collector")).json()
    assert {i["station"] for i in unit["items"]} == {"S03"}


def test_analyst_sees_every_station_with_pii_masked(service):
    body = service.client.get(
        "/v1/arrears/risk-list", params={"top": 1000}, headers=service.headers("analyst")
    ).json()
    assert body["count"] == 60 and {i["station"] for i in body["items"]} == {"S01", "S02", "S03"}
    assert all(i["name"].endswith("*") and "****" in i["phone"] for i in body["items"])


def test_each_task_lists_in_its_own_work_list_order_by_default(settings, registry, package):
    from fastapi.testclient import TestClient
    from tinymodel import create_test_keys, write_customers, write_population_snapshot

    from serving.main import create_app
    from serving.service import ServiceState

    settings = settings.model_copy(update={"tasks": ["arrears", "theft"]})
    registry.register("gridrisk-theft", package)
    population = write_population_snapshot(package, settings)
    write_population_snapshot(package, settings, task="theft")
    write_customers(settings, population)
    keys = create_test_keys(settings.keys_path)
    with TestClient(create_app(settings, ServiceState.build(settings, registry))) as client:

        def ranks(task: str, **params: str) -> list[int]:
            r = client.get(
                f"/v1/{task}/risk-list",
                params={"top": 1000, **params},
                headers={"X-API-Key": keys["analyst"]},
            )
            assert r.status_code == 200, r.text
            return [i["rank"] for i in r.json()["items"]]

        # Theft's model is judged on the probability order; its list came out by expected value (a large
        # amount at stake on a low probability near the top).
        assert ranks("theft") == list(range(1, 61)) == ranks("theft", sort="probability")
        assert ranks("theft", sort="expected_value") == ranks("arrears") != ranks("theft")
    audit = [json.loads(line) for line in settings.audit_path.read_text().splitlines()]
    assert [a["filters"]["sort"] for a in audit] == ["probability"] * 2 + ["expected_value"] * 2 + [
        "probability"
    ]


def test_list_order_filters_and_station_capacity(service):
    get = lambda **p: service.client.get(  # noqa: E731
        "/v1/arrears/risk-list", params={"top": 1000, **p}, headers=service.headers("analyst")
    ).json()
    by_value = get()["items"]
    values = [i["expected_value"] for i in by_value if i["expected_value"] is not None]
    assert values == sorted(values, reverse=True)
    assert by_value[-1]["customer_id"] == "C0000005"  # no amount at stake: no expected value, listed last
    by_probability = get(sort="probability")["items"]
    assert [i["rank"] for i in by_probability] == list(range(1, 61))
    capped = get(per_station_top=2, sort="probability")["items"]
    assert len(capped) == 6 and all(
        sum(i["station"] == s for i in capped) == 2 for s in ("S01", "S02", "S03")
    )
    assert capped[0]["rank"] == 1
    high = get(min_probability=0.5)
    assert high["matched"] == sum(i["probability"] >= 0.5 for i in by_value)
    residential = get(usage_category="residential")["items"]
    assert residential and {i["usage_category"] for i in residential} == {"residential"}
    assert get(top=3)["count"] == 3


def test_lists_export_as_csv_and_xlsx(service):
    params = {"top": 5, "lang": "en"}
    csv_r = service.client.get(
        "/v1/arrears/risk-list", params={**params, "format": "csv"}, headers=service.headers("collector")
    )
    assert csv_r.status_code == 200 and csv_r.headers["content-type"].startswith("text/csv")
    lines = csv_r.content.decode("utf-8-sig").splitlines()
    assert lines[0].startswith("rank,customer_id,name,phone") and len(lines) == 6
    xlsx_r = service.client.get(
        "/v1/arrears/risk-list", params={**params, "format": "xlsx"}, headers=service.headers("collector")
    )
    from openpyxl import load_workbook

    rows = list(load_workbook(io.BytesIO(xlsx_r.content)).active.iter_rows(values_only=True))
    assert rows[0][:2] == ("rank", "customer_id") and len(rows) == 6


def test_answers_with_customer_data_are_never_cached(service):
    # The page's lists were no-store; the API's same lists, names and phones included, carried no header.
    c, collector = service.client, service.headers("collector")
    answers = [
        c.get("/v1/arrears/risk-list", params={"top": 2, "format": f}, headers=collector)
        for f in ("json", "csv")
    ]
    answers += [
        c.get("/v1/arrears/risk-list", params={"top": 2, "format": "xlsx"}, headers=collector),
        c.get(f"/v1/customers/{answers[0].json()['items'][0]['customer_id']}", headers=collector),
        c.get("/v1/arrears/summary", headers=collector),
        c.post("/v1/arrears/score", json={"customer_ids": ["C0000001"]}, headers=service.headers("service")),
        c.get("/v1/arrears/risk-list", params={"station": "S02"}, headers=collector),  # a 403 names a scope
    ]
    assert [r.status_code for r in answers] == [200] * 6 + [403]
    for r in answers:
        assert r.headers["cache-control"] == "no-store" and r.headers["x-content-type-options"] == "nosniff"
        assert r.headers["vary"] == "X-API-Key, Authorization"
    assert "cache-control" not in c.get("/health").headers  # probes hold nothing private


def test_metrics_count_requests_and_name_the_model(service):
    service.client.post(
        "/v1/arrears/score", json={"customer_ids": ["C0000001"]}, headers=service.headers("service")
    )
    service.client.post("/v1/arrears/score", json={"customer_ids": ["C0000001"]})
    text = service.client.get("/metrics").text
    assert 'gridrisk_requests_total{method="POST",route="/v1/{task}/score",status="200"} 1.0' in text
    assert 'gridrisk_requests_total{method="POST",route="/v1/{task}/score",status="401"} 1.0' in text
    assert (
        'gridrisk_model_info{name="gridrisk-arrears",source="registry",task="arrears",version="1"} 1.0'
        in text
    )
    assert 'gridrisk_score_probability_count{source="snapshot",task="arrears"} 1.0' in text
    assert "gridrisk_request_duration_seconds_bucket" in text


def test_ready_and_models_describe_what_is_served(service):
    ready = service.client.get("/ready").json()
    assert ready["status"] == "ready" and ready["tasks"][0]["model"]["version"] == "1"
    assert service.client.get("/health").json() == {"status": "ok"}
    models = service.client.get("/v1/models", headers=service.headers("analyst")).json()
    arrears = models["models"][0]
    assert arrears["metrics"]["test_roc_auc"] == 0.8
    assert arrears["registry_versions"][0]["aliases"] == ["champion"]
    assert arrears["explain_ms_per_row"] > 0


def test_head_on_the_probe_routes_is_a_get_without_the_body(service):
    for path in ("/health", "/ready", "/metrics"):
        got = service.client.get(path)
        head = service.client.head(path)
        assert head.status_code == got.status_code == 200, path
        assert head.content == b""
        if path != "/metrics":  # the metrics text changes with every request
            assert head.headers["content-length"] == str(len(got.content))
        assert head.headers["content-type"] == got.headers["content-type"]
    # Routes that build lists or write audit lines keep refusing HEAD: no audited view that never happened.
    assert service.client.head("/v1/models", headers=service.headers("analyst")).status_code == 405
    assert service.client.head("/v1/arrears/score").status_code == 405
    metrics = service.client.get("/metrics").text
    assert 'gridrisk_requests_total{method="HEAD",route="/health",status="200"} 1.0' in metrics


def test_a_long_list_of_record_errors_says_how_many_it_leaves_out(service):
    r = service.client.post(
        "/v1/arrears/score", json={"records": [{}] * 20}, headers=service.headers("service")
    )
    assert r.status_code == 422
    detail = r.json()["detail"]
    # Checking records stops after the errors a 422 lists (a fuzz tester's million errors held a worker):
    # the answer says more were left unchecked, not how many.
    assert len(detail) == 51 and detail[-1] == {
        "loc": ["body"],
        "msg": "more errors not listed: checking stops after the first 50; correct these and send again",
        "type": "too_many_errors",
    }


@pytest.mark.parametrize("value", [True, "1_000", " 20 ", "２０", "١٠٠٠", 1e308, -1e19, "1e300"])
def test_a_feature_must_be_a_plain_number_of_a_feature_size(service, value):
    record = records_of(service, ["C0000001"])[0]
    name = next(n for n, v in record.items() if isinstance(v, float) and n != "customer_id")
    r = service.client.post(
        "/v1/arrears/score", json={"records": [{**record, name: value}]}, headers=service.headers("service")
    )
    assert r.status_code == 422, r.text
    assert any(e["loc"][:4] == ["body", "records", 0, name] for e in r.json()["detail"]), r.text
    plain = service.client.post(
        "/v1/arrears/score", json={"records": [{**record, name: "1e3"}]}, headers=service.headers("service")
    )
    assert plain.status_code == 200  # a number as ASCII text is still read


def test_a_body_over_the_limit_is_a_413_that_names_the_limit_and_the_setting(service):
    # A tester's 60 MB post to the score route was read and parsed: the service set no limit on a body.
    service.state.settings.max_body_bytes = 4_096  # read per request: the limit as an operator sets it
    headers = service.headers("service")
    small = service.client.post("/v1/arrears/score", json={"customer_ids": ["C0000001"]}, headers=headers)
    assert small.status_code == 200, small.text
    big = json.dumps({"customer_ids": ["C0000001"] * 1_000}).encode()  # 13 KB
    declared = post_raw(service, big)
    assert declared.status_code == 413 and declared.json()["error"] == "BodyTooLarge"
    detail = declared.json()["detail"]
    assert (
        f"is {len(big):,} bytes" in detail and "4,096 bytes" in detail and "GRIDRISK_MAX_BODY_BYTES" in detail
    )
    # Below the default a full batch does not fit: "send at most 10,000 customers" was wrong advice.
    assert "split the batch into bodies under 4,096 bytes" in detail and "at most 10,000" not in detail
    chunked = service.client.post(  # a generator: sent chunked, without a Content-Length
        "/v1/arrears/score",
        content=(part for part in (big,)),
        headers={**headers, "content-type": "application/json"},
    )
    assert "content-length" not in chunked.request.headers
    assert chunked.status_code == 413 and chunked.json()["error"] == "BodyTooLarge", chunked.text
    assert "without a Content-Length" in chunked.json()["detail"]
    # A form the page parses (Starlette's form parser, not FastAPI's JSON body) is cut off alike, not a 500.
    form = service.client.post(
        "/login",
        content=(part for part in (b"api_key=" + b"k" * 5_000,)),
        headers={"content-type": "application/x-www-form-urlencoded"},
    )
    assert form.status_code == 413 and form.json()["error"] == "BodyTooLarge"
    documented = service.client.get("/openapi.json").json()["paths"]["/v1/{task}/score"]["post"]["responses"]
    assert "GRIDRISK_MAX_BODY_BYTES" in documented["413"]["description"]
    # Inside the metrics (the refusals are counted) and beside the other middleware: HEAD and blank queries.
    assert service.client.head("/health").status_code == 200
    blank = service.client.get("/v1/arrears/risk-list?min_probability=", headers=service.headers("analyst"))
    assert blank.status_code == 200, blank.text
    metrics = service.client.get("/metrics").text
    assert 'gridrisk_requests_total{method="POST",route="/v1/{task}/score",status="413"} 1.0' in metrics
    assert 'gridrisk_requests_total{method="POST",route="unmatched",status="413"} 1.0' in metrics


def test_a_declared_body_over_the_limit_is_never_read_and_an_undeclared_one_only_up_to_it(service):
    # Through the ASGI interface, as a server delivers a body: in chunks, as they arrive.
    import asyncio

    service.state.settings.max_body_bytes = 4_096
    app = service.client.app

    def post(declared: int | None) -> tuple[list[dict], int]:
        chunks = iter([b"[" * 1_024] * 60_000)  # 60 MB
        read = 0

        async def receive() -> dict:
            nonlocal read
            chunk = next(chunks, b"")
            read += len(chunk)
            return {"type": "http.request", "body": chunk, "more_body": bool(chunk)}

        sent: list[dict] = []

        async def send(message: dict) -> None:
            sent.append(message)

        length = [(b"content-length", str(declared).encode())] if declared is not None else []
        headers = [(b"content-type", b"application/json"), (b"x-api-key", service.keys["service"].encode())]
        scope = {
            "type": "http",
            "asgi": {"version": "3.0"},
            "http_version": "1.1",
            "method": "POST",
            "scheme": "http",
            "path": "/v1/arrears/score",
            "raw_path": b"/v1/arrears/score",
            "query_string": b"",
            "root_path": "",
            "headers": headers + length,
            "client": ("127.0.0.1", 50_000),
            "server": ("testserver", 80),
        }
        asyncio.run(app(scope, receive, send))
        return sent, read

    sent, read = post(declared=60_000 * 1_024)
    assert sent[0]["status"] == 413 and read == 0
    assert json.loads(sent[1]["body"])["error"] == "BodyTooLarge"
    sent, read = post(declared=None)
    assert sent[0]["status"] == 413 and read <= 4_096 + 1_024  # the chunk that went over, and no more
    assert json.loads(sent[1]["body"])["error"] == "BodyTooLarge"
    assert [m["type"] for m in sent] == ["http.response.start", "http.response.body"]  # one answer, the 413


def test_the_default_body_limit_holds_the_largest_batch_and_is_a_setting(home, monkeypatch):
    from features.feature_sets import TASK_FEATURES
    from serving.schemas import MAX_BATCH
    from serving.settings import ServingSettings

    # The widest task's records at full float precision with the longest ids, indented: 4 KiB a record.
    widest = max(TASK_FEATURES.values(), key=len)
    record = {"customer_id": "C" * 64, **dict.fromkeys(widest, -123456.78901234567)}
    per_record = len(json.dumps({"records": [record] * 10}, indent=2).encode()) / 10
    assert per_record * MAX_BATCH < ServingSettings(home=home).max_body_bytes
    monkeypatch.setenv("GRIDRISK_MAX_BODY_BYTES", "1000000")
    assert ServingSettings(home=home).max_body_bytes == 1_000_000


def test_reload_swaps_to_the_moved_alias(service, package_v2):
    service.registry.register("gridrisk-arrears", package_v2)
    r = service.client.post("/v1/admin/reload", headers=service.headers("admin"))
    assert r.status_code == 200 and r.json()["changed"] == {"arrears": "1 -> 2"}
    # Who moved what the service serves is recorded beside who pulled what (an operator found no line).
    line = json.loads(service.state.settings.audit_path.read_text().splitlines()[-1])
    assert (line["action"], line["role"], line["filters"]) == (
        "reload",
        "admin",
        {"changed": {"arrears": "1 -> 2"}},
    )
    live = service.client.post(
        "/v1/arrears/score",
        json={"records": records_of(service, ["C0000001"])},
        headers=service.headers("service"),
    ).json()
    assert live["model"]["version"] == "2"
    stored = service.client.post(
        "/v1/arrears/score", json={"customer_ids": ["C0000001"]}, headers=service.headers("service")
    ).json()
    assert stored["model"]["version"] == "1"  # the snapshot names the version that scored it


def test_no_request_fails_while_models_swap(service, package, package_v2):
    records = records_of(service, ["C0000001", "C0000002"])
    stop = threading.Event()

    def flip() -> None:
        while not stop.is_set():
            service.registry.register(
                "gridrisk-arrears", package_v2 if len(service.registry.models) % 2 else package
            )
            service.state.refresh()

    flipper = threading.Thread(target=flip)
    flipper.start()
    try:
        statuses, versions = [], set()
        for _ in range(150):
            r = service.client.post(
                "/v1/arrears/score", json={"records": records}, headers=service.headers("service")
            )
            statuses.append(r.status_code)
            versions.add(r.json()["model"]["version"])
    finally:
        stop.set()
        flipper.join()
    assert set(statuses) == {200}
    assert len(versions) > 1  # the swaps really happened during the traffic


def test_audit_log_records_calls_without_pii(service, settings):
    service.client.post(
        "/v1/arrears/score", json={"customer_ids": ["C0000001"]}, headers=service.headers("service")
    )
    service.client.get(
        "/v1/arrears/risk-list", params={"station": "S01", "top": 7}, headers=service.headers("collector")
    )
    lines = [json.loads(x) for x in settings.audit_path.read_text().splitlines()]
    assert [x["action"] for x in lines] == ["score", "risk_list"]
    score, pull = lines
    assert score["key_id"] == service.keys["service"].split("_")[1] and score["rows"] == 1
    assert (
        score["model_version"] == "1"
        and score["task"] == "arrears"
        and score["filters"]["source"] == "snapshot"
    )
    assert pull["role"] == "collector" and pull["filters"]["station"] == "S01" and pull["rows"] == 7
    text = settings.audit_path.read_text()
    assert "王小" not in text and "13800" not in text


def test_an_audit_line_stays_one_line_for_every_line_reader(service, settings):
    # JSON leaves U+0085, U+2028 and U+2029 raw: str.splitlines() and log shippers cut such a line in two.
    odd = "S\x85a\u2028b\u2029c"
    r = service.client.get(
        "/v1/arrears/risk-list", params={"station": odd}, headers=service.headers("analyst")
    )
    assert r.status_code == 200
    service.client.get("/v1/arrears/risk-list", params={"station": odd}, headers=service.headers("collector"))
    text = settings.audit_path.read_text(encoding="utf-8")
    assert not {"\x85", "\u2028", "\u2029"} & set(text)
    lines = [json.loads(x) for x in text.splitlines()]
    assert [x["action"] for x in lines] == ["risk_list", "refused"]
    assert lines[0]["filters"]["station"] == odd


class HandMadeHistory:
    """A customer's history as `HistoryStore.rows` gives it: wall-clock times of the warehouse."""

    def __init__(self, warehouse, tables):  # type: ignore[no-untyped-def]
        self.warehouse, self.tables = warehouse, tables

    def rows(self, name, customer_id):  # type: ignore[no-untyped-def]
        return [dict(row) for row in self.tables.get(name, [])]


@pytest.mark.parametrize(("zone", "offset"), [(None, "+08:00"), ("Asia/Urumqi", "+06:00"), ("UTC", "Z")])
def test_a_customer_files_times_carry_the_warehouses_offset(service, settings, tmp_path, zone, offset):
    # They went out as "2023-06-20T10:00:00" under "format": "date-time": a strict client refused them, a
    # lenient one could not tell UTC from local. The warehouse holds local wall clock in the zone ingest
    # recorded (timezone.txt), Asia/Shanghai when none is recorded.
    import datetime as dt

    from serving.routes.customers import get_history

    warehouse = tmp_path / "warehouse"
    warehouse.mkdir()
    if zone is not None:
        (warehouse / "timezone.txt").write_text(zone + "\n")
    june, paid_at = dt.date(2023, 6, 1), dt.datetime(2023, 6, 20, 10, 0)
    bill = {"period": june, "kwh": 100.0, "amount_due": 80.0, "due_date": dt.date(2023, 6, 25)}
    history = HandMadeHistory(
        warehouse,
        {
            "bills": [{**bill, "known_at": dt.datetime(2023, 6, 5, 8)}],
            "payments": [
                {"period": june, "paid_at": paid_at, "amount": 80.0, "late_fee": None, "channel": "bank"}
            ],
            "suspensions": [
                {"applied_at": dt.datetime(2023, 3, 2, 9, 30), "kind": "suspend", "start_date": None,
                 "end_date": None, "capacity_kva": None}
            ],
            "inspections": [
                {"inspected_at": dt.datetime(2022, 11, 8, 15, 53, 31), "result": "normal",
                 "recovered_kwh": None, "recovered_amount": None}
            ],
        },
    )  # fmt: skip
    service.client.app.dependency_overrides[get_history] = lambda: history
    try:
        r = service.client.get("/v1/customers/C0000001", headers=service.headers("admin"))
    finally:
        service.client.app.dependency_overrides.clear()
    assert r.status_code == 200, r.text
    body = r.json()
    assert body["payments"][0]["paid_at"] == f"2023-06-20T10:00:00{offset}"
    assert body["months"][-1]["last_paid_at"] == f"2023-06-20T10:00:00{offset}"
    assert body["months"][-1]["days_late"] == 0
    assert body["suspensions"][0]["applied_at"] == f"2023-03-02T09:30:00{offset}"
    assert body["inspections"][0]["inspected_at"] == f"2022-11-08T15:53:31{offset}"
    schema = service.client.get("/openapi.json").json()["components"]["schemas"]["PaymentRecord"]
    assert "UTC offset" in schema["properties"]["paid_at"]["description"]


def test_ready_is_degraded_when_the_snapshot_cannot_be_read(service, settings):
    broken = settings.snapshots_path / "arrears" / "2023-07-31.parquet"
    broken.write_bytes(b"PAR1 cut short")
    (settings.snapshots_path / "arrears" / "latest").write_text(str(broken))
    service.client.post("/v1/admin/reload", headers=service.headers("admin"))
    ready = service.client.get("/ready").json()
    assert ready["status"] == "degraded" and "cannot read snapshot" in ready["tasks"][0]["detail"]


def test_an_empty_snapshot_names_its_model_and_date(service, settings, package):
    from tinymodel import AS_OF, scoring_frame

    from serving.schemas import ModelRef
    from serving.snapshot import score_frame, write_snapshot

    model = ModelRef(name="gridrisk-arrears", version="1")
    empty = score_frame(package, scoring_frame().iloc[:0], model)  # nobody in the population
    write_snapshot(empty, settings.snapshots_path, "arrears", AS_OF, model=model)
    service.client.post("/v1/admin/reload", headers=service.headers("admin"))
    listed = service.client.get("/v1/arrears/risk-list", headers=service.headers("analyst")).json()
    assert listed["model"] == model.model_dump() and listed["as_of"] == "2023-06-30" and listed["items"] == []
    summary = service.client.get("/v1/arrears/summary", headers=service.headers("analyst")).json()
    assert summary["model"] == model.model_dump() and summary["as_of"] == "2023-06-30"
    ready = service.client.get("/ready").json()
    task = ready["tasks"][0]
    assert ready["status"] == "degraded" and task["snapshot_as_of"] == "2023-06-30"
    assert task["snapshot_rows"] == 0 and "holds no customers" in task["detail"]


def test_a_rollback_flags_the_snapshot_of_the_newer_version(service, settings, package_v2):
    from tinymodel import write_population_snapshot

    service.registry.register("gridrisk-arrears", package_v2)  # v2 becomes champion and scores a snapshot
    write_population_snapshot(package_v2, settings, version="2")
    service.client.post("/v1/admin/reload", headers=service.headers("admin"))
    assert service.client.get("/ready").json()["status"] == "ready"
    service.registry.aliases[("gridrisk-arrears", "champion")] = "1"  # gridrisk promote --version 1
    reload = service.client.post("/v1/admin/reload", headers=service.headers("admin")).json()
    assert reload["changed"] == {"arrears": "2 -> 1"}
    ready = service.client.get("/ready")
    task = ready.json()["tasks"][0]
    assert ready.status_code == 200 and ready.json()["status"] == "degraded"
    assert task["model"]["version"] == "1" and task["snapshot_model"]["version"] == "2"
    assert "scored by gridrisk-arrears v2, but v1 is loaded" in task["detail"]
    assert "gridrisk score --task arrears" in task["detail"]
    models = service.client.get("/v1/models", headers=service.headers("analyst")).json()
    assert "v1 is loaded" in models["models"][0]["serving"]["detail"]


def test_a_champion_of_other_feature_definitions_is_named_by_ready_and_models(service, settings):
    # Only `gridrisk score` said it: the service served a model trained on an older revision of the feature
    # definitions as "ready", and the models page showed nothing.
    import dataclasses

    from tinymodel import train_package, write_population_snapshot

    old = train_package(seed=1, trees=40)
    old = dataclasses.replace(old, info={**old.info, "feature_set_version": "603d0000aaaa"})
    service.registry.register("gridrisk-arrears", old)
    write_population_snapshot(old, settings, version="2")
    service.client.post("/v1/admin/reload", headers=service.headers("admin"))
    ready = service.client.get("/ready")
    task = ready.json()["tasks"][0]
    assert ready.status_code == 200 and ready.json()["status"] == "degraded"
    assert "trained on feature set 603d0000aaaa" in task["detail"]
    assert "gridrisk train --task arrears" in task["detail"]
    models = service.client.get("/v1/models", headers=service.headers("analyst")).json()
    assert "trained on feature set 603d0000aaaa" in models["models"][0]["serving"]["detail"]


def test_a_keys_file_corrupted_while_serving_is_a_503_not_a_500(service, settings):
    assert service.client.get("/v1/models", headers=service.headers("admin")).status_code == 200
    settings.keys_path.write_text("{not json")
    response = service.client.get("/v1/models", headers=service.headers("admin"))
    assert response.status_code == 503
    # The file's path and fault go to the log; any caller, keyless ones too, was told where the file lives.
    assert response.json()["error"] == "KeyStoreError" and "cannot be read" in response.json()["detail"]
    assert str(settings.keys_path) not in response.text and "keys.json" not in response.text
    # Bytes that are not text, or a file the server may not read, were a 500: read_keys caught only bad JSON.
    settings.keys_path.write_bytes(b"\xff\xfe\x00garbage")
    assert service.client.get("/v1/models", headers=service.headers("admin")).status_code == 503
    settings.keys_path.unlink()
    settings.keys_path.mkdir()  # unreadable as a file, on any user (chmod does not stop root)
    assert service.client.get("/v1/models", headers=service.headers("admin")).status_code == 503


def test_ready_is_not_ready_while_no_key_can_be_checked(service, settings):
    # An operator's broken keys file: every keyed call was a 503 while /ready said ready, so a load balancer
    # kept sending the traffic.
    good = settings.keys_path.read_text()
    assert service.client.get("/ready").json()["keys_readable"] is True
    settings.keys_path.write_text("{not json")
    ready = service.client.get("/ready")
    assert ready.status_code == 503 and ready.json()["status"] == "not_ready"
    assert ready.json()["keys_readable"] is False and "cannot be read" in ready.json()["keys_detail"]
    assert "keys.json" not in ready.text  # /ready takes no key: the file's path goes to the log only
    settings.keys_path.write_text(good)
    assert service.client.get("/ready").json()["keys_readable"] is True


# -- a home that cannot be written ---------------------------------------------------------------------------

AUDITED = [  # every route that answers with customers' data, and so writes an audit line first
    ("post", "/v1/arrears/score", {"json": {"customer_ids": ["C0000001"]}}, "service"),
    ("post", "/v1/arrears/score", {"json": {"records": "live"}}, "service"),
    ("get", "/v1/arrears/risk-list", {"params": {"top": 3}}, "analyst"),
    ("get", "/v1/arrears/risk-list", {"params": {"top": 3, "format": "csv"}}, "analyst"),
    ("get", "/v1/arrears/summary", {}, "analyst"),
    ("get", "/v1/customers/C0000001", {}, "analyst"),
]


@pytest.mark.parametrize("fault", [read_only, full_disk], ids=["read-only", "full"])
def test_a_request_that_cannot_be_audited_is_a_503_naming_the_log_and_it_recovers(
    service, settings, monkeypatch, fault
):
    # The audit log is the record of who pulled which customers: an answer it cannot record is not given,
    # and it was a 500 with a traceback in the server's log.
    calls = [
        (
            method,
            path,
            {"json": {"records": records_of(service, ["C0000001"])}} if "live" in str(kw) else kw,
            role,
        )
        for method, path, kw, role in AUDITED
    ]
    service.client.get("/v1/arrears/risk-list", headers=service.headers("analyst"))  # a line before the fault
    before = settings.audit_path.read_bytes()
    fault(monkeypatch, settings.home)
    cause = "Read-only file system" if fault is read_only else "No space left on device"
    for method, path, kw, role in calls:
        r = getattr(service.client, method)(path, headers=service.headers(role), **kw)
        assert r.status_code == 503, (path, r.status_code, r.text[:300])
        body = r.json()
        assert body["error"] == "HomeUnwritable"
        # The caller is told which file and why, not where it is (the server's log says that).
        assert f"audit log …/audit.log cannot be written ({cause})" in body["detail"]
    assert settings.audit_path.read_bytes() == before  # no half line left behind
    monkeypatch.undo()  # the operator frees space or remounts read-write: no restart
    for method, path, kw, role in calls:
        assert getattr(service.client, method)(path, headers=service.headers(role), **kw).status_code == 200
    lines = [json.loads(x) for x in settings.audit_path.read_text().splitlines()]
    assert len(lines) == 1 + len(calls)


@pytest.mark.parametrize("fault", [read_only, full_disk], ids=["read-only", "full"])
def test_a_reload_that_cannot_tell_the_other_workers_is_a_503_and_changes_nothing(
    service, settings, package_v2, monkeypatch, fault
):
    service.registry.register("gridrisk-arrears", package_v2)
    fault(monkeypatch, settings.home)
    r = service.client.post("/v1/admin/reload", headers=service.headers("admin"))
    assert r.status_code == 503 and r.json()["error"] == "HomeUnwritable"
    cause = "Read-only file system" if fault is read_only else "No space left on device"
    assert f"reload signal …/reload-generation cannot be written ({cause})" in r.json()["detail"]
    assert "reload was not done" in r.json()["detail"]
    assert service.state.models.get("arrears").ref.version == "1"  # no worker serves v2 alone
    assert not list(settings.home.glob(".reload-generation*"))  # no part-written temporary file left
    monkeypatch.undo()
    r = service.client.post("/v1/admin/reload", headers=service.headers("admin"))
    assert r.status_code == 200 and r.json()["changed"] == {"arrears": "1 -> 2"}


def test_ready_is_not_ready_while_the_home_cannot_be_written(service, settings, monkeypatch):
    # An operator's read-only (or full) home: audited requests were refused while /ready said ready.
    import collections

    from serving import status

    assert service.client.get("/ready").json()["home_writable"] is True
    real_access = status.os.access
    monkeypatch.setattr(
        status.os, "access", lambda path, mode: False if mode == os.W_OK else real_access(path, mode)
    )
    ready = service.client.get("/ready")
    assert ready.status_code == 503 and ready.json()["home_writable"] is False
    assert "read-only" in ready.json()["home_detail"] and str(settings.home) not in ready.text
    monkeypatch.undo()
    usage = collections.namedtuple("usage", "total used free")
    monkeypatch.setattr(status.shutil, "disk_usage", lambda path: usage(100, 100, 0))
    ready = service.client.get("/ready")
    assert ready.status_code == 503 and "has 0 bytes free" in ready.json()["home_detail"]
    monkeypatch.undo()
    assert service.client.get("/ready").json()["home_writable"] is True


@pytest.mark.parametrize("body", [b"\xff", b'{"a":', b'{"records": [' + b"[1,2,3]," * 1000 + b"[1]]}"])
@pytest.mark.parametrize("key", [None, "grk_00000000_wrong"])
def test_a_body_without_a_valid_key_is_refused_before_it_is_read(service, settings, monkeypatch, body, key):
    # A keyless body was read and parsed before its 401 (3-4 s for 49 MB), and one that was no JSON got a 400
    # or a 422 instead of the 401 (fuzz report, 2).
    from starlette.requests import Request

    parsed = []
    body_of = Request.body

    async def read(request):  # type: ignore[no-untyped-def]
        parsed.append(await body_of(request))
        return parsed[-1]

    monkeypatch.setattr(Request, "body", read)
    headers = {"content-type": "application/json", **({"X-API-Key": key} if key else {})}
    r = service.client.post("/v1/arrears/score", content=body, headers=headers)
    assert r.status_code == 401, r.text
    assert r.json()["error"] == "NotAuthenticated" and r.headers["www-authenticate"] == "ApiKey"
    assert r.headers["cache-control"] == "no-store"
    assert not any(parsed), "the body was read"
    line = json.loads(settings.audit_path.read_text().splitlines()[-1])
    assert (line["action"], line["status"], line["route"]) == ("refused", 401, "POST /v1/arrears/score")


def test_a_filter_ending_in_nul_matches_nothing(service):
    # numpy compared "S01\x00" equal to "S01": the list was S01's while its `filters` and audit line said
    # another station, and the summary matched nothing (fuzz report, 5).
    admin = service.headers("admin")
    plain = service.client.get("/v1/arrears/risk-list", params={"station": "S01"}, headers=admin).json()
    assert plain["matched"] > 0
    for params in ({"station": "S01\x00"}, {"usage_category": plain["items"][0]["usage_category"] + "\x00"}):
        r = service.client.get("/v1/arrears/risk-list", params=params, headers=admin)
        assert r.status_code == 200 and r.json()["matched"] == 0, (params, r.json()["matched"])


def test_the_servers_paths_reach_only_its_log_and_an_admin(settings, registry):
    # /ready (keyless), 503 bodies and the customer file named the home's absolute paths (fuzz report, 6).
    from fastapi.testclient import TestClient
    from tinymodel import create_test_keys

    from serving.main import create_app
    from serving.service import ServiceState

    keys = create_test_keys(settings.keys_path)  # a home with a champion and no snapshot
    with TestClient(create_app(settings, ServiceState.build(settings, registry))) as client:
        home = str(settings.home)
        ready = client.get("/ready")
        task = ready.json()["tasks"][0]
        assert "no arrears snapshot" in task["detail"] and "under …/arrears:" in task["detail"]
        answers = [
            ready,
            client.post(
                "/v1/arrears/score",
                json={"customer_ids": ["C0000001"]},
                headers={"X-API-Key": keys["service"]},
            ),
            client.get("/v1/arrears/risk-list", headers={"X-API-Key": keys["collector"]}),
            client.get("/v1/models", headers={"X-API-Key": keys["analyst"]}),
        ]
        for r in answers:
            assert home not in r.text and "/tmp/" not in r.text, (r.request.url, r.text)
        assert answers[1].status_code == 503 and "no arrears snapshot" in answers[1].json()["detail"]
        admin = client.get("/v1/models", headers={"X-API-Key": keys["admin"]}).json()
        assert home in admin["models"][0]["serving"]["detail"]  # who runs the service sees where


def test_a_parameter_sent_with_a_value_and_blank_is_a_repeat(service):
    # Fuzz report, 8: the blank copy was dropped before the repeat check, so S01 was listed without a word.
    r = service.client.get("/v1/arrears/risk-list?station=S01&station=", headers=service.headers("admin"))
    assert r.status_code == 422 and r.json()["detail"][0]["type"] == "repeated", r.text
    assert (
        service.client.get("/v1/arrears/risk-list?station=", headers=service.headers("admin")).status_code
        == 200
    )


@pytest.mark.parametrize("top", ["1_0", "+5", " 5", "5 ", "1.0", "０5", "1" * 13])
def test_a_count_in_the_query_is_written_with_digits_only(service, top):
    """int() reads `1_0`, `+5` and ` 5`: `?top=1_0` listed ten rows; a live feature refuses such text."""
    r = service.client.get("/v1/arrears/risk-list", params={"top": top}, headers=service.headers("analyst"))
    assert r.status_code == 422, r.text
    (error,) = r.json()["detail"]
    assert error["loc"] == ["query", "top"] and "whole number" in error["msg"]
    ok = service.client.get("/v1/arrears/risk-list", params={"top": "05"}, headers=service.headers("analyst"))
    assert ok.status_code == 200 and ok.json()["count"] == 5
    low = service.client.get(
        "/v1/arrears/risk-list", params={"top": "-1"}, headers=service.headers("analyst")
    )
    assert low.status_code == 422 and low.json()["detail"][0]["type"] == "greater_than_equal"
