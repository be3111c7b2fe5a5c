"""What an operator relies on at start-up and while serving: warnings in the log, `/ready` and `/metrics`
gauges that say when lists lose their names or the audit log cannot be written, settings refused at start."""

from __future__ import annotations

import datetime as dt
import json
import logging

import pytest
from fastapi.testclient import TestClient
from pydantic import ValidationError
from tinymodel import AS_OF, create_test_keys, write_customers, write_population_snapshot

from serving.main import create_app
from serving.service import ServiceState
from serving.settings import ServingSettings


def test_a_missing_warehouse_is_a_warning_at_start_and_degraded_on_ready(settings, registry, package, caplog):
    # A mistyped GRIDRISK_WAREHOUSE gave collectors lists with `name: null` and `phone: null`, and no word.
    population = write_population_snapshot(package, settings)
    state = ServiceState.build(settings, registry)
    with caplog.at_level(logging.INFO), TestClient(create_app(settings, state)) as client:
        warned = [
            r for r in caplog.records if r.levelno == logging.WARNING and "no customers table" in r.message
        ]
        assert warned and str(settings.warehouse_path / "customers.parquet") in warned[0].message
        ready = client.get("/ready")
        assert ready.status_code == 200 and ready.json()["status"] == "degraded"
        detail = ready.json()["tasks"][0]["detail"]
        assert "GRIDRISK_WAREHOUSE" in detail and "no names, phones or addresses" in detail
        assert str(settings.home) not in detail  # any caller reads /ready: no paths
        write_customers(settings, population)
        assert client.get("/ready").json()["status"] == "ready"


def test_a_registry_down_at_start_is_a_warning_naming_the_cached_champion(
    settings, registry, package, caplog
):
    write_population_snapshot(package, settings)
    ServiceState.build(settings, registry).models.refresh()  # the cache holds v1
    registry.down = "tracking server http://127.0.0.1:9 unreachable"
    with (
        caplog.at_level(logging.INFO),
        TestClient(create_app(settings, ServiceState.build(settings, registry))),
    ):
        warned = [r.message for r in caplog.records if r.levelno == logging.WARNING]
    assert any(
        "serving the cached gridrisk-arrears v1" in m
        and "tracking server http://127.0.0.1:9 unreachable" in m
        for m in warned
    ), warned


def test_ready_is_not_ready_while_the_audit_log_cannot_be_written(settings, registry, package):
    # audit.log replaced by a folder: every score was a 503, and /ready said home_writable: true with a 200.
    population = write_population_snapshot(package, settings)
    write_customers(settings, population)
    keys = create_test_keys(settings.keys_path)
    with TestClient(create_app(settings, ServiceState.build(settings, registry))) as client:
        assert client.get("/ready").json()["home_writable"] is True
        settings.audit_path.unlink(missing_ok=True)
        settings.audit_path.mkdir()
        body = {"customer_ids": [population["customer_id"].iloc[0]]}
        assert (
            client.post("/v1/arrears/score", json=body, headers={"X-API-Key": keys["service"]}).status_code
            == 503
        )
        ready = client.get("/ready")
        assert ready.status_code == 503 and ready.json()["home_writable"] is False
        assert "audit log cannot be written (Is a directory)" in ready.json()["home_detail"]
        assert str(settings.home) not in ready.json()["home_detail"]
        assert "gridrisk_home_writable 0.0" in client.get("/metrics").text
        settings.audit_path.rmdir()
        assert client.get("/ready").status_code == 200


def test_metrics_say_readiness_and_the_snapshot_date_to_alert_on(settings, registry, package):
    population = write_population_snapshot(package, settings)
    write_customers(settings, population)
    with TestClient(create_app(settings, ServiceState.build(settings, registry))) as client:
        text = client.get("/metrics").text
        midnight = dt.datetime.combine(AS_OF, dt.time(), tzinfo=dt.UTC).timestamp()
        line = next(
            x for x in text.splitlines() if x.startswith("gridrisk_snapshot_as_of_timestamp_seconds{")
        )
        assert line.startswith('gridrisk_snapshot_as_of_timestamp_seconds{task="arrears"} ')
        assert float(line.rpartition(" ")[2]) == midnight
        assert "gridrisk_ready 2.0" in text and "gridrisk_registry_reachable 1.0" in text
        assert "gridrisk_keys_readable 1.0" in text and "gridrisk_home_writable 1.0" in text
        assert "process_resident_memory_bytes" in text and "process_start_time_seconds" in text
        settings.keys_path.write_text("{")  # every keyed request is a 503 now
        assert "gridrisk_ready 0.0" in client.get("/metrics").text


@pytest.mark.parametrize(
    ("value", "said"),
    [
        ('["arrears", "bogus"]', "unknown task 'bogus'"),
        ("[]", "the list is empty"),
        ("arrears", "'arrears' is not JSON"),
    ],
)
def test_tasks_must_be_a_json_list_of_known_tasks(monkeypatch, tmp_path, value, said):
    monkeypatch.setenv("GRIDRISK_TASKS", value)
    with pytest.raises(ValidationError) as raised:
        ServingSettings(home=tmp_path)
    assert said in str(raised.value) and "a JSON list of tasks from arrears, suspension, theft" in str(
        raised.value
    )
    monkeypatch.setenv("GRIDRISK_TASKS", '["theft", "arrears", "theft"]')
    assert ServingSettings(home=tmp_path).tasks == ["theft", "arrears"]


@pytest.mark.parametrize("seconds", ["0.01", "0.5"])
def test_the_registry_poll_is_off_or_at_least_a_second(monkeypatch, tmp_path, seconds):
    # 0.01 s kept an idle worker at 29 % of a core polling SQLite.
    monkeypatch.setenv("GRIDRISK_POLL_SECONDS", seconds)
    with pytest.raises(ValidationError, match=r"use 0 \(only on reload\) or 1"):
        ServingSettings(home=tmp_path)
    for fine in ("0", "1", "30"):
        monkeypatch.setenv("GRIDRISK_POLL_SECONDS", fine)
        assert ServingSettings(home=tmp_path).poll_seconds == float(fine)


def test_answered_requests_name_their_client_in_the_audit_log(service):
    # Only refusals carried `client`; a score, a list or a customer file did not say where it went.
    body = {"customer_ids": [service.population["customer_id"].iloc[0]]}
    assert (
        service.client.post("/v1/arrears/score", json=body, headers=service.headers("service")).status_code
        == 200
    )
    assert service.client.get("/v1/arrears/risk-list", headers=service.headers("analyst")).status_code == 200
    lines = [json.loads(x) for x in service.state.settings.audit_path.read_text().splitlines()]
    assert [(x["action"], x["client"]) for x in lines] == [
        ("score", "testclient"),
        ("risk_list", "testclient"),
    ]
