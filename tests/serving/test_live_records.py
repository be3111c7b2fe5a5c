"""Live records (`POST /v1/{task}/score` with `records`): bounded checking, unknown fields, feature domains
and how reasons print a zero; the findings of an outside fuzz tester (reports/fuzz.md, 1, 3, 4 and 7)."""

from __future__ import annotations

import json
import math

import numpy as np
import pandas as pd
import pytest
from test_api import records_of
from tinymodel import FEATURES

from features.feature_sets import FEATURE_DOCS
from serving.errors import MORE_NOT_CHECKED
from serving.feature_domain import feature_domain


def post(service, records, role="service", **params):  # type: ignore[no-untyped-def]
    return service.client.post(
        "/v1/arrears/score", json={"records": records}, params=params, headers=service.headers(role)
    )


def test_a_collector_is_refused_before_its_records_are_checked(service):
    # Finding 1: any key's body was validated before the role, so a collector could send the bodies below.
    r = post(service, [{f"f{i}": True for i in range(65)}] * 500, role="collector")
    assert r.status_code == 403 and "collector" in r.json()["detail"]


def test_checking_records_stops_after_the_errors_a_422_lists(service, monkeypatch):
    # Finding 1: 4,000 records of 65 booleans built 520,000 errors on the event loop (10 s) before 50 were
    # shown; 10,000 records of 300 unknown fields built 6 million (130 s, 2.3 GB).
    for records in (
        [{f"f{i}": True for i in range(300)}] * 2_000,
        [{name: True for name in FEATURES}] * 2_000,
    ):
        r = post(service, records)
        assert r.status_code == 422
        detail = r.json()["detail"]
        assert len(detail) == 51 and detail[-1] == {
            "loc": ["body"],
            "msg": MORE_NOT_CHECKED,
            "type": "too_many_errors",
        }
    # The work itself is bounded: the values a checker looks at stop at the 51st error.
    import serving.scoring as scoring

    seen = []
    original = scoring._number
    monkeypatch.setattr(scoring, "_number", lambda value: seen.append(value) or original(value))
    post(
        service,
        [{name: True for name in FEATURES if name != "usage_category"} | {"usage_category": None}] * 5_000,
    )
    assert len(seen) == 51


def test_an_unknown_field_in_a_record_is_a_422_naming_it(service):
    # Finding 3: a mistyped extra field, or another task's feature, was dropped without a word (200).
    record = records_of(service, ["C0000001"])[0]
    r = post(service, [{**record, "no_such_feature": 5, "another typo": "x"}])
    assert r.status_code == 422, r.text
    detail = r.json()["detail"]
    assert [(e["loc"], e["type"]) for e in detail] == [
        (["body", "records", 0, "no_such_feature"], "extra_forbidden"),
        (["body", "records", 0, "another typo"], "extra_forbidden"),
    ] or [(e["loc"], e["type"]) for e in detail] == [
        (["body", "records", 0, "another typo"], "extra_forbidden"),
        (["body", "records", 0, "no_such_feature"], "extra_forbidden"),
    ]
    assert "is not a feature of the served model" in detail[0]["msg"]
    assert "GET /v1/arrears/features" in detail[0]["msg"]
    assert {e["input"] for e in detail} == {5, "x"}


def test_a_record_errors_first_on_its_fields_then_on_its_values(service):
    record = records_of(service, ["C0000001"])[0]
    del record["contract_capacity_kva"]
    r = post(service, [{**record, "payments_days_late_max_365d": "late"}])
    assert [(e["loc"][-1], e["type"]) for e in r.json()["detail"]] == [
        ("contract_capacity_kva", "missing"),
        ("payments_days_late_max_365d", "float_type"),
    ]
    # An echoed NaN (Python's parser reads it) is a string in the answer, not a 500.
    raw = json.dumps(
        {"records": [{**record, "contract_capacity_kva": 1.0, "payments_days_late_max_365d": math.nan}]}
    )
    r = service.client.post(
        "/v1/arrears/score",
        content=raw,
        headers={**service.headers("service"), "content-type": "application/json"},
    )
    assert r.status_code == 422 and r.json()["detail"][0]["input"] == "NaN"


@pytest.mark.parametrize(
    ("value", "kind", "bound"),
    [(-5, "greater_than_equal", "at least 0"), (-0.5, "greater_than_equal", "at least 0")],
)
def test_a_feature_value_the_pipeline_cannot_produce_is_a_422_naming_the_rule(service, value, kind, bound):
    # Finding 4: "-5 days" and "1000000000000000000 of the last 12 months" were scored and worded.
    record = records_of(service, ["C0000001"])[0]
    r = post(service, [{**record, "payments_days_late_max_365d": value}])
    assert r.status_code == 422, r.text
    (error,) = r.json()["detail"]
    assert error["loc"] == ["body", "records", 0, "payments_days_late_max_365d"] and error["type"] == kind
    assert error["msg"] == (
        f"payments_days_late_max_365d must be {bound} (a number of days, never negative), got {value:g}"
    )
    # The same record at the edge of the domain is scored.
    assert post(service, [{**record, "payments_days_late_max_365d": 0}]).status_code == 200


def test_feature_domains_come_from_the_catalogue():
    assert feature_domain("bills_kwh_repeat_months_12m").maximum == 12  # "{value} of the last 12 months"
    assert feature_domain("readings_zero_days_30d").maximum == 30
    assert feature_domain("archive_tenure_days").maximum is None  # a count of days, no window
    assert feature_domain("area_customers_active").minimum == 0
    flag = feature_domain("has_theft_finding")
    assert (flag.minimum, flag.maximum) == (0, 1)
    capped = feature_domain("bills_max_demand_yoy_change_pct_3m")  # "more than 1000 %" is the cap
    assert (capped.minimum, capped.maximum) == (None, 1000)
    # Signed measures (a sentence for a negative value, up/down, an absolute value) are not bounded below.
    assert feature_domain("payments_days_before_due_mean_365d") is None
    assert feature_domain("payments_days_before_due_change_90d_vs_365d") is None
    # Units real warehouses hold negative (a refund, a reversed register) are not bounded.
    for name in (
        "bills_amount_due_last_yuan",
        "bills_kwh_last_1m",
        "archive_capacity_kva",
        "area_line_loss_pct_3m",
    ):
        assert feature_domain(name) is None, name
    assert feature_domain("not_in_the_catalogue") is None
    assert sum(feature_domain(name) is not None for name in FEATURE_DOCS) > 40


def test_the_features_listing_names_each_domain(service):
    body = service.client.get("/v1/arrears/features", headers=service.headers("service")).json()
    fields = {f["name"]: f for f in body["features"]}
    late = fields["payments_days_late_max_365d"]
    assert (late["minimum"], late["maximum"], late["rule"]) == (0, None, "a number of days, never negative")
    assert (
        fields["contract_capacity_kva"]["minimum"] is None and fields["contract_capacity_kva"]["rule"] is None
    )


@pytest.mark.slow
def test_every_row_the_pipeline_produces_is_inside_the_domains(generated_dir):
    # Live scoring must take every row `gridrisk score` and training read: a rule that refused a real row
    # would make a live score impossible where the snapshot has one.
    from features.training_set import build_scoring_frame

    for task in ("arrears", "suspension", "theft"):
        frame = build_scoring_frame(generated_dir, task, pd.Timestamp("2023-12-31"))
        assert len(frame) > 50
        for name in frame.columns:
            domain = feature_domain(name)
            if domain is None:
                continue
            values = pd.to_numeric(frame[name], errors="coerce").to_numpy(dtype=np.float64)
            values = values[~np.isnan(values)]
            outside = [v for v in values if domain.refusal(float(v)) is not None]
            assert not outside, (task, name, outside[:5])


def test_a_negative_zero_prints_as_zero(service):
    # Finding 7: "-0 active customers", "customer for -0 days": -0.0 skipped the fix for -0.3.
    record = records_of(service, ["C0000001"])[0]
    zeros = {name: -0.0 for name in FEATURES if name != "usage_category"}
    for lang in ("en", "zh"):
        r = post(service, [{**record, **zeros}], lang=lang)
        assert r.status_code == 200, r.text
        texts = [reason["text"] for reason in r.json()["results"][0]["reasons"]]
        assert not any("-0" in text for text in texts), texts


@pytest.mark.parametrize("value", [{"a": 1}, [1, 2], True])
def test_a_category_feature_refuses_objects_lists_and_booleans(service, value):
    """A reviewer: after records left pydantic, a category feature read `{"a": 1}` as an unknown level, so
    missing, and answered 200, where the schema says text, a number or null."""
    record = records_of(service, ["C0000001"])[0]
    r = post(service, [{**record, "usage_category": value}])
    assert r.status_code == 422, r.text
    (error,) = r.json()["detail"]
    assert error["loc"] == ["body", "records", 0, "usage_category"] and error["type"] == "string_type"
    assert post(service, [{**record, "usage_category": 7}]).status_code == 200  # a number: an unknown level
