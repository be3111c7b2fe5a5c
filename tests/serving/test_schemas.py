"""The OpenAPI document against the service: a body the schema accepts is one the service takes, and a body
the service refuses for its shape is one a client's validator refuses before sending it."""

from __future__ import annotations

import json

import jsonschema_rs
import pytest
from tinymodel import FEATURES


def validator(service, name: str):  # type: ignore[no-untyped-def]
    document = service.client.get("/openapi.json").json()
    return jsonschema_rs.validator_for(
        {"$ref": f"#/components/schemas/{name}", "components": document["components"]}
    )


def a_record(service) -> dict:  # type: ignore[no-untyped-def]
    return json.loads(service.population.iloc[0][FEATURES].to_json())  # NaN as null, numbers as JSON's


@pytest.mark.parametrize(
    ("body", "accepted"),
    [
        ({"customer_ids": ["C0000001"]}, True),
        ({"customer_ids": ["C0000001"], "skip_unknown": True}, True),
        ({"records": "RECORD"}, True),
        ({"records": "RECORD", "skip_unknown": False}, True),
        ({"records": "RECORD", "customer_ids": None}, True),
        # Schema-valid before, always a 422 (schemathesis' "schema-valid request rejected"):
        ({}, False),
        ({"customer_ids": None}, False),
        ({"customer_ids": ["C0000001"], "records": "RECORD"}, False),
        ({"customer_ids": ["C0000001"], "records": "RECORD", "skip_unknown": True}, False),
        ({"records": "RECORD", "skip_unknown": True}, False),
    ],
)
def test_the_score_schema_accepts_exactly_what_the_service_takes(service, body, accepted):
    if body.get("records") == "RECORD":
        body = {**body, "records": [a_record(service)]}
    r = service.client.post("/v1/arrears/score", json=body, headers=service.headers("service"))
    assert r.status_code == (200 if accepted else 422), r.text
    assert validator(service, "ScoreRequest").is_valid(body) is accepted


def test_a_rule_of_the_request_says_its_message_in_ctx(service):
    # ctx held the ValueError itself, which JSON wrote as {}: `"ctx":{"error":{}}`.
    r = service.client.post("/v1/arrears/score", json={}, headers=service.headers("service"))
    assert r.status_code == 422
    (error,) = r.json()["detail"]
    assert error["ctx"] == {"error": "send exactly one of customer_ids or records"}


def test_every_route_documents_the_413_and_the_customer_route_its_own_404(service):
    # The body limit answers on any route before it runs; only the score route listed it.
    paths = service.client.get("/openapi.json").json()["paths"]
    operations = [op for ops in paths.values() for op in ops.values()]
    assert len(operations) >= 10 and all("413" in op["responses"] for op in operations)
    # Every keyed route refuses a query parameter it does not read, those without parameters included.
    keyed = [op for path, ops in paths.items() if path.startswith("/v1/") for op in ops.values()]
    assert all("422" in op["responses"] for op in keyed)
    big = {"content-length": "60000000"}
    assert service.client.get("/health", headers=big).status_code == 413
    # It described the score route's 404 (ids not in the snapshot); the customer's is CustomerNotFound.
    customer_404 = paths["/v1/customers/{customer_id}"]["get"]["responses"]["404"]["description"]
    assert customer_404.startswith("CustomerNotFound") and "customers table" in customer_404
    r = service.client.get("/v1/customers/NOPE", headers=service.headers("admin"))
    assert r.status_code == 404 and r.json()["error"] == "CustomerNotFound"


def test_a_repeated_id_is_scored_each_time_and_the_schema_says_so(service):
    body = {"customer_ids": ["C0000001", "C0000002", "C0000001", "ZZ", "ZZ"], "skip_unknown": True}
    r = service.client.post("/v1/arrears/score", json=body, headers=service.headers("service"))
    assert [x["customer_id"] for x in r.json()["results"]] == ["C0000001", "C0000002", "C0000001"]
    assert r.json()["unknown"] == ["ZZ"]
    schema = service.client.get("/openapi.json").json()["components"]["schemas"]["ScoreRequest"]
    assert "an id sent twice is scored twice" in schema["properties"]["customer_ids"]["description"]
