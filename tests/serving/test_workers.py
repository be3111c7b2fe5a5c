"""Several workers on one home (`gridrisk serve --workers N`): a reload taken by one reaches every one.

Two apps with their own `ServiceState` on one home and one registry stand in for two worker processes; the
settings poll never (GRIDRISK_POLL_SECONDS=0), so only the reload signal can move the second one.
"""

from __future__ import annotations

import datetime as dt
import math

from fastapi.testclient import TestClient
from tinymodel import AS_OF, FEATURES, create_test_keys, scoring_frame, write_population_snapshot

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


def counted(refresh, counts: dict[str, int], name: str):  # type: ignore[no-untyped-def]
    def wrapper() -> dict[str, str]:
        counts[name] += 1
        return refresh()

    return wrapper


def record() -> dict[str, float | str | None]:
    row = scoring_frame()[FEATURES].iloc[0].to_dict()
    return {k: (None if isinstance(v, float) and math.isnan(v) else v) for k, v in row.items()}
