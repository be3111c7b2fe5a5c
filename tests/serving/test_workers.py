"""Several workers on one home (`gridrisk serve --workers N`): a reload taken by one reaches every one.

Two apps with their own `ServiceState` on one home and one registry stand in for two worker processes; the
settings poll never (GRIDRISK_POLL_SECONDS=0), so only the reload signal can move the second one.
"""

from __future__ import annotations

import datetime as dt
import math
from pathlib import Path

import pytest
from fastapi.testclient import TestClient
from tinymodel import AS_OF, FEATURES, create_test_keys, scoring_frame, write_population_snapshot

import serving.service as service_module
from serving.main import create_app
from serving.schemas import ModelRef
from serving.service import ServiceState
from serving.snapshot import score_frame, write_snapshot


def test_a_reload_through_one_worker_is_seen_by_the_other_on_its_next_request(
    settings, registry, package, package_v2, monkeypatch
):
    write_population_snapshot(package, settings)
    keys = create_test_keys(settings.keys_path)
    admin, service = {"X-API-Key": keys["admin"]}, {"X-API-Key": keys["service"]}
    first, second = ServiceState.build(settings, registry), ServiceState.build(settings, registry)
    refreshes = {"first": 0, "second": 0}
    for name, state in (("first", first), ("second", second)):
        monkeypatch.setattr(state, "refresh", counted(state.refresh, refreshes, name))
    body = {"customer_ids": ["C0000001"]}
    with TestClient(create_app(settings, first)) as one, TestClient(create_app(settings, second)) as two:
        assert two.post("/v1/arrears/score", json=body, headers=service).json()["as_of"] == AS_OF.isoformat()
        assert refreshes == {"first": 1, "second": 1}  # start-up only: no reload was published yet

        # A new champion and a newer snapshot scored by it, then one reload through the first worker.
        registry.register("gridrisk-arrears", package_v2)
        later = AS_OF + dt.timedelta(days=31)
        scores = score_frame(package_v2, scoring_frame(), ModelRef(name="gridrisk-arrears", version="2"))
        write_snapshot(scores, settings.snapshots_path, "arrears", later)
        reload = one.post("/v1/admin/reload", headers=admin).json()
        assert reload["changed"] == {"arrears": "1 -> 2", "arrears-snapshot": f"{AS_OF} -> {later}"}

        scored = two.post("/v1/arrears/score", json=body, headers=service).json()
        assert (scored["as_of"], scored["model"]["version"]) == (later.isoformat(), "2")
        ready = two.get("/ready").json()["tasks"][0]
        assert (ready["model"]["version"], ready["snapshot_as_of"]) == ("2", later.isoformat())
        # Each worker refreshed once for the reload, and neither again on later requests.
        one.post("/v1/arrears/score", json=body, headers=service)
        two.post("/v1/arrears/score", json=body, headers=service)
        assert refreshes == {"first": 2, "second": 2}

        # A reload through the second worker reaches the first the same way.
        registry.register("gridrisk-arrears", package)
        two.post("/v1/admin/reload", headers=admin)
        live = one.post("/v1/arrears/score", json={"records": [record()]}, headers=service).json()
        assert live["model"]["version"] == "3"
        assert refreshes == {"first": 3, "second": 3}


def test_a_worker_started_after_a_reload_does_not_reload_again(settings, registry, package, monkeypatch):
    write_population_snapshot(package, settings)
    keys = create_test_keys(settings.keys_path)
    with TestClient(create_app(settings, ServiceState.build(settings, registry))) as one:
        one.post("/v1/admin/reload", headers={"X-API-Key": keys["admin"]})
    late = ServiceState.build(settings, registry)
    refreshes = {"late": 0}
    monkeypatch.setattr(late, "refresh", counted(late.refresh, refreshes, "late"))
    with TestClient(create_app(settings, late)) as two:
        assert two.get("/ready").status_code == 200
    assert refreshes == {"late": 1}  # its start-up load already covers the published reload


def test_a_reload_that_fails_on_a_worker_is_retried_by_its_next_request(
    settings, registry, package, package_v2, monkeypatch
):
    write_population_snapshot(package, settings)
    keys = create_test_keys(settings.keys_path)
    admin, service = {"X-API-Key": keys["admin"]}, {"X-API-Key": keys["service"]}
    second = ServiceState.build(settings, registry)
    body = {"records": [record()]}  # scored live: the response names the model in memory
    with (
        TestClient(create_app(settings, ServiceState.build(settings, registry))) as one,
        TestClient(create_app(settings, second)) as two,
    ):
        registry.register("gridrisk-arrears", package_v2)
        assert one.post("/v1/admin/reload", headers=admin).json()["changed"] == {"arrears": "1 -> 2"}
        refresh, attempts = second.refresh, []

        def flaky() -> dict[str, str]:
            attempts.append(len(attempts))
            if len(attempts) == 1:
                raise OSError("snapshot folder briefly unreadable")
            return refresh()

        monkeypatch.setattr(second, "refresh", flaky)
        second.reloads.retry_seconds = 3600.0  # a persistent failure is not retried on every request
        assert two.post("/v1/arrears/score", json=body, headers=service).json()["model"]["version"] == "1"
        assert two.post("/v1/arrears/score", json=body, headers=service).json()["model"]["version"] == "1"
        assert attempts == [0]
        second.reloads._retry_at = 0.0  # the back-off is over
        assert two.post("/v1/arrears/score", json=body, headers=service).json()["model"]["version"] == "2"
        assert two.post("/v1/arrears/score", json=body, headers=service).json()["model"]["version"] == "2"
        assert attempts == [0, 1]  # retried once, then applied


def test_a_reload_that_fails_on_the_worker_taking_it_is_retried(settings, registry, package, package_v2):
    write_population_snapshot(package, settings)
    keys = create_test_keys(settings.keys_path)
    state = ServiceState.build(settings, registry)
    state.reloads.retry_seconds = 0.0
    with TestClient(create_app(settings, state), raise_server_exceptions=False) as client:
        registry.register("gridrisk-arrears", package_v2)
        refresh = state.refresh
        state.refresh = failing  # type: ignore[method-assign]
        assert client.post("/v1/admin/reload", headers={"X-API-Key": keys["admin"]}).status_code == 500
        state.refresh = refresh  # type: ignore[method-assign]
        body = {"records": [record()]}
        scored = client.post("/v1/arrears/score", json=body, headers={"X-API-Key": keys["service"]})
        assert scored.json()["model"]["version"] == "2"


@pytest.mark.parametrize("call", ["stat", "open"])
def test_an_unreadable_reload_signal_is_logged_once_and_requests_are_served(
    settings, registry, package, monkeypatch, caplog, call
):
    write_population_snapshot(package, settings)
    keys = create_test_keys(settings.keys_path)
    state = ServiceState.build(settings, registry)
    state.reloads.retry_seconds = 0.0  # every request tries again: still one warning, never a 500
    with TestClient(create_app(settings, state)) as client:
        client.post("/v1/admin/reload", headers={"X-API-Key": keys["admin"]})
        signal = settings.reload_path
        state.reloads._seen = None  # as if another worker had published since
        real = {"stat": service_module.os.stat, "open": open}[call]

        def denied(path, *args, **kwargs):  # type: ignore[no-untyped-def]
            if Path(path) == signal:
                raise PermissionError(13, "Permission denied", str(path))
            return real(path, *args, **kwargs)

        if call == "stat":
            monkeypatch.setattr(service_module.os, "stat", denied)
        else:
            monkeypatch.setattr(service_module, "open", denied, raising=False)
        refreshes = {"state": 0}
        monkeypatch.setattr(state, "refresh", counted(state.refresh, refreshes, "state"))
        body = {"customer_ids": ["C0000001"]}
        for _ in range(3):
            r = client.post("/v1/arrears/score", json=body, headers={"X-API-Key": keys["service"]})
            assert r.status_code == 200, r.text
    warnings = [r for r in caplog.records if "reload signal" in r.getMessage()]
    assert len(warnings) == 1 and "Permission denied" in warnings[0].getMessage()
    assert refreshes == {"state": 0}


def failing() -> dict[str, str]:
    raise OSError("registry artifact store refused the download")


def counted(refresh, counts: dict[str, int], name: str):  # type: ignore[no-untyped-def]
    def wrapper() -> dict[str, str]:
        counts[name] += 1
        return refresh()

    return wrapper


def record() -> dict[str, float | str | None]:
    row = scoring_frame()[FEATURES].iloc[0].to_dict()
    return {k: (None if isinstance(v, float) and math.isnan(v) else v) for k, v in row.items()}
