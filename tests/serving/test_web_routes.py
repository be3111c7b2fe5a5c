"""The API behind the web page: `GET /v1/customers/{id}` (archive, history, scores, access) and
`GET /v1/{task}/summary` (bands, yuan at risk, month over month, scope), through FastAPI's test client."""

from __future__ import annotations

import datetime as dt
import json
from collections.abc import Iterator

import numpy as np
import pandas as pd
import pytest
from tinymodel import FakeRegistry
from webdata import (
    LATE,
    PREVIOUS_AS_OF,
    REISSUED,
    UNPAID,
    WebService,
    rewrite_previous_snapshot,
    web_service,
)

from serving.settings import ServingSettings


@pytest.fixture
def web(settings: ServingSettings, registry: FakeRegistry) -> Iterator[WebService]:
    with web_service(settings, registry) as service:
        yield service


def customer(web: WebService, customer_id: str, role: str, **params) -> dict:
    r = web.client.get(f"/v1/customers/{customer_id}", params=params, headers=web.headers(role))
    assert r.status_code == 200, r.text
    return r.json()


def test_customer_file_holds_archive_24_months_and_the_score(web):
    body = customer(web, "C0000000", "collector")  # C0000000 is in station S01, the collector's own
    assert body["archive"]["station"] == "S01" and body["archive"]["name"] == "王小0"
    assert not body["archive"]["pii_masked"] and body["archive"]["address"] == "某路1号"
    months = body["months"]
    assert len(months) == 24 and months[-1]["period"] == "2023-06-01" and months[0]["period"] == "2021-07-01"
    assert [m["period"] for m in months] == sorted(m["period"] for m in months)
    assert all(m["days_late"] == 0 and m["outstanding"] == 0 for m in months)  # pays two days early
    (score,) = body["scores"]
    assert score["task"] == "arrears" and score["model"] == {"name": "gridrisk-arrears", "version": "1"}
    listed = web.client.post(
        "/v1/arrears/score", json={"customer_ids": ["C0000000"]}, headers=web.headers("admin")
    ).json()["results"][0]
    assert score["probability"] == pytest.approx(listed["probability"], abs=1e-12)
    assert [r["text"] for r in score["reasons"]] == [r["text"] for r in listed["reasons"]]
    # The waterfall closes: base + reasons + the rest is the margin.
    reasons = sum(r["contribution"] for r in score["reasons"])
    assert score["base_value"] + reasons + score["other_contribution"] == pytest.approx(score["raw_margin"])
    assert 1 <= score["rank"] <= score["population"] == len(web.population)


def test_reissued_bills_late_and_missing_payments(web):
    who, when = REISSUED
    months = {m["period"]: m for m in customer(web, who, "admin")["months"]}
    assert months[when.date().isoformat()]["amount_due"] == pytest.approx(999.99)  # the correction stands
    late = customer(web, LATE, "admin")["months"]
    assert {m["days_late"] for m in late} == {20}
    unpaid = customer(web, UNPAID, "admin")["months"]
    assert [m["paid"] for m in unpaid[-3:]] == [0.0, 0.0, 0.0]
    assert all(m["outstanding"] > 0 and m["days_late"] is None for m in unpaid[-3:])
    assert unpaid[-4]["outstanding"] == 0


def test_events_come_newest_first(web):
    body = customer(web, "C0000003", "analyst")
    assert [s["kind"] for s in body["suspensions"]] == ["suspension_restore", "suspension"]
    assert body["suspensions"][0]["end_date"] is None
    assert [i["result"] for i in body["inspections"]] == ["normal"]
    paid_at = [p["paid_at"] for p in body["payments"]]
    assert paid_at == sorted(paid_at, reverse=True) and len(paid_at) == 24


def test_pii_is_masked_for_analysts_and_admins(web):
    for role in ("analyst", "admin"):
        archive = customer(web, "C0000000", role)["archive"]
        assert archive["pii_masked"] and archive["name"] == "王**"
        assert archive["phone"] == "138****0000" and archive["address"] == "某路" + "*" * 4


def test_collectors_reach_only_their_own_stations_customers(web):
    # C0000001 is in S02 (station = i % 3); the S01 collector gets a 403 naming its own scope, neither the
    # customer's name nor its station.
    r = web.client.get("/v1/customers/C0000001", headers=web.headers("collector"))
    detail = r.json()["detail"]
    assert r.status_code == 403 and "S01" in detail and "C0000001 is not in them" in detail
    assert "S02" not in detail and "王小1" not in r.text
    # The U2 collector covers supply unit U2 (station S03 only): C0000002 yes, C0000000 no.
    assert customer(web, "C0000002", "unit_collector")["archive"]["station"] == "S03"
    assert web.client.get("/v1/customers/C0000000", headers=web.headers("unit_collector")).status_code == 403
    assert web.client.get("/v1/customers/C0000000", headers=web.headers("service")).status_code == 403
    assert web.client.get("/v1/customers/C0000000").status_code == 401


def test_a_customer_moved_since_scoring_keeps_its_pii_from_the_old_station(web, settings):
    # The list scoped by the snapshot's station but attached the archive's current name and phone, while
    # the file scoped by the archive: the old station's collector saw the name of a customer it got a 403 for.
    from features.sources import read_table, write_table

    customers = read_table(settings.warehouse_path, "customers")
    customers.loc[customers["customer_id"] == "C0000000", "station"] = "S02"  # moved from S01
    write_table(settings.warehouse_path, "customers", customers)
    web.state.refresh()  # as the poller does
    listed = web.client.get("/v1/arrears/risk-list", params={"top": 1000}, headers=web.headers("collector"))
    row = next(i for i in listed.json()["items"] if i["customer_id"] == "C0000000")  # the snapshot's S01
    assert row["name"] == "王**" and row["phone"] == "138****0000"
    assert web.client.get("/v1/customers/C0000000", headers=web.headers("collector")).status_code == 403
    others = [i for i in listed.json()["items"] if i["customer_id"] != "C0000000"]
    assert others and all("*" not in i["name"] for i in others)  # the station's own still show


def test_unknown_customer_is_a_404_naming_the_id(web):
    r = web.client.get("/v1/customers/NOPE42", headers=web.headers("admin"))
    assert r.status_code == 404 and "NOPE42" in r.json()["detail"]


def test_customer_outside_the_population_is_noted(web, settings):
    from features.sources import read_table, write_table

    customers = read_table(settings.warehouse_path, "customers")
    extra = customers.iloc[:1].copy()
    extra["customer_id"] = "C9999999"  # in the archive, never scored
    write_table(settings.warehouse_path, "customers", pd.concat([customers, extra]))
    body = customer(web, "C9999999", "admin")
    assert body["scores"] == [] and "not in the arrears population" in body["unscored"][0]["detail"]
    assert body["months"] == []


def test_summary_by_station_against_last_month(web):
    r = web.client.get("/v1/arrears/summary", params={"by": "station"}, headers=web.headers("analyst"))
    assert r.status_code == 200, r.text
    body = r.json()
    assert body["as_of"] == "2023-06-30" and body["previous_as_of"] == PREVIOUS_AS_OF.isoformat()
    assert body["band_order"] == ["high", "medium", "low"]
    snapshot = web.state.snapshots.get("arrears")
    station = np.asarray(snapshot.column("station", np.arange(snapshot.size)), dtype=object)
    band = np.asarray(snapshot.column("band", np.arange(snapshot.size)), dtype=object)
    ev = np.nan_to_num(snapshot.numbers["expected_value"])
    rows = {row["station"]: row for row in body["rows"]}
    assert set(rows) == {"S01", "S02", "S03"}
    for name, row in rows.items():
        here = station == name
        assert row["current"]["customers"] == here.sum()
        assert row["current"]["bands"] == {b: int((band[here] == b).sum()) for b in ("high", "medium", "low")}
        assert row["current"]["expected_value"] == pytest.approx(ev[here].sum())
        assert row["expected_value_change"] == pytest.approx(
            row["current"]["expected_value"] - row["previous"]["expected_value"]
        )
    evs = [row["current"]["expected_value"] for row in body["rows"]]
    assert evs == sorted(evs, reverse=True)
    assert body["total"]["current"]["customers"] == snapshot.size
    assert body["total"]["current"]["expected_value"] == pytest.approx(ev.sum())


def test_summary_is_cut_to_the_collectors_scope(web):
    by_station = web.client.get("/v1/arrears/summary", headers=web.headers("collector")).json()
    assert [row["station"] for row in by_station["rows"]] == ["S01"]
    # Grouped by supply unit, the S01 collector's U1 total still counts S01 only (S02 is also in U1).
    by_unit = web.client.get(
        "/v1/arrears/summary", params={"by": "supply_unit"}, headers=web.headers("collector")
    ).json()
    assert [(row["supply_unit"], row["station"]) for row in by_unit["rows"]] == [("U1", None)]
    assert by_unit["rows"][0]["current"] == by_station["rows"][0]["current"]
    assert by_unit["total"]["current"]["customers"] == 20
    denied = web.client.get(
        "/v1/arrears/summary", params={"supply_unit": "U2"}, headers=web.headers("collector")
    )
    assert denied.status_code == 200  # a station-scoped key has no unit restriction: U2 is simply empty
    assert denied.json()["rows"] == []
    forbidden = web.client.get(
        "/v1/arrears/summary", params={"supply_unit": "U1"}, headers=web.headers("unit_collector")
    )
    assert forbidden.status_code == 403


def test_a_unit_key_asking_another_units_station_is_a_403_as_for_a_station_key(web):
    # The U2 collector asking for S01 (a U1 station) got an empty 200, the S01 collector asking for S02 a 403.
    headers = web.headers("unit_collector")
    other = web.client.get("/v1/arrears/risk-list", params={"station": "S01"}, headers=headers)
    assert other.status_code == 403 and "station 'S01' is not in them" in other.json()["detail"]
    own = web.client.get("/v1/arrears/risk-list", params={"station": "S03"}, headers=headers)
    assert own.status_code == 200 and own.json()["items"]
    unknown = web.client.get("/v1/arrears/risk-list", params={"station": "S99"}, headers=headers)
    assert unknown.status_code == 200 and unknown.json()["items"] == []  # no such station: nothing to refuse
    signed = web.client.post("/login", data={"api_key": web.keys["unit_collector"]}, follow_redirects=False)
    assert signed.status_code == 303
    assert web.client.get("/list", params={"station": "S01"}).status_code == 403


def test_a_blank_filter_is_any_within_the_scope_for_every_role(web, settings):
    # `?station=` was "any" for an admin and a unit collector but a 403 for a station collector, and
    # `?supply_unit=` a 403 for a unit collector; the web form always read blank as "any".
    for role in ("admin", "collector", "unit_collector"):
        headers = web.headers(role)
        plain = web.client.get("/v1/arrears/risk-list", params={"top": 1000}, headers=headers).json()
        blank = web.client.get(
            "/v1/arrears/risk-list",
            params={"top": 1000, "station": "", "supply_unit": "", "usage_category": " "},
            headers=headers,
        )
        assert blank.status_code == 200, (role, blank.text)
        assert [i["customer_id"] for i in blank.json()["items"]] == [i["customer_id"] for i in plain["items"]]
        assert blank.json()["filters"]["station"] is None
        # A blank number or sort key was a 422 while the page read it as "any".
        numbers = web.client.get(
            "/v1/arrears/risk-list?top=1000&min_probability=&per_station_top=%20&sort=", headers=headers
        )
        assert numbers.status_code == 200, (role, numbers.text)
        assert numbers.json()["items"] == plain["items"]
        summary = web.client.get("/v1/arrears/summary", params={"supply_unit": ""}, headers=headers)
        assert summary.status_code == 200, (role, summary.text)
        assert summary.json() == web.client.get("/v1/arrears/summary", headers=headers).json()
        audited = json.loads(settings.audit_path.read_text().splitlines()[-2])  # the blank one, not the plain
        assert audited["filters"] == {"summary_by": "station", "supply_unit": None}


def test_summary_without_an_earlier_month(web, settings):
    (settings.snapshots_path / "arrears" / f"{PREVIOUS_AS_OF.isoformat()}.parquet").unlink()
    body = web.client.get("/v1/arrears/summary", headers=web.headers("admin")).json()
    assert body["previous_as_of"] is None and body["previous_model"] is None
    assert all(row["previous"] is None and row["expected_value_change"] is None for row in body["rows"])


def test_a_damaged_snapshot_of_last_month_leaves_the_summary_without_the_comparison(web, settings):
    # It was a 500 for the summary and the overview page, while /ready said ready.
    (settings.snapshots_path / "arrears" / f"{PREVIOUS_AS_OF.isoformat()}.parquet").write_bytes(b"garbage")
    r = web.client.get("/v1/arrears/summary", headers=web.headers("admin"))
    assert r.status_code == 200, r.text
    body = r.json()
    assert body["previous_as_of"] is None and all(row["previous"] is None for row in body["rows"])
    damaged = f"last month's snapshot {PREVIOUS_AS_OF.isoformat()}.parquet cannot be read"
    assert damaged in body["previous_detail"]
    signed = web.client.post("/login", data={"api_key": web.keys["admin"]}, follow_redirects=False)
    assert signed.status_code == 303
    assert web.client.get("/overview").status_code == 200


def test_a_snapshot_earlier_in_the_same_month_is_not_last_month():
    from serving.station_summary import previous_month

    files = [(dt.date(2023, 5, 31), "may"), (dt.date(2023, 6, 15), "mid"), (dt.date(2023, 6, 30), "end")]
    assert previous_month(files, dt.date(2023, 6, 30)) == files[0]
    assert previous_month(files[1:], dt.date(2023, 6, 30)) is None


def add_up(body: dict) -> None:
    """Every figure of the rows sums to the total's, this month and last, changes included."""
    rows, total = body["rows"], body["total"]
    for month in ("current", "previous"):
        figures = [row[month] for row in rows if row[month] is not None]
        assert sum(f["customers"] for f in figures) == total[month]["customers"], month
        for band in body["band_order"]:
            assert sum(f["bands"][band] for f in figures) == total[month]["bands"][band], (month, band)
        for key in ("amount_at_stake", "expected_value"):
            assert sum(f[key] for f in figures) == pytest.approx(total[month][key]), (month, key)
    assert sum(row["expected_value_change"] for row in rows) == pytest.approx(total["expected_value_change"])
    assert sum(row["high_change"] for row in rows) == total["high_change"]


def test_summary_rows_add_up_when_a_station_was_only_there_last_month(web, settings, registry):
    # Last month S02 (in U1) was called S04 and S03 (in U2) S05: renamed or closed since. Each old name
    # keeps a row, 0 this month, so the rows add up to the total; S02 and S03 had 0 customers last month.
    rewrite_previous_snapshot(
        registry.models["gridrisk-arrears"]["1"], settings, {"S02": "S04", "S03": "S05"}
    )
    body = web.client.get("/v1/arrears/summary", headers=web.headers("admin")).json()
    rows = {row["station"]: row for row in body["rows"]}
    assert set(rows) == {"S01", "S02", "S03", "S04", "S05"}
    assert (rows["S04"]["supply_unit"], rows["S05"]["supply_unit"]) == ("U1", "U2")
    for gone, new in (("S04", "S02"), ("S05", "S03")):
        assert rows[gone]["current"] == {
            "customers": 0, "bands": {"high": 0, "medium": 0, "low": 0}, "mean_probability": None,
            "amount_at_stake": 0.0, "expected_value": 0.0,
        }  # fmt: skip
        assert rows[gone]["previous"]["customers"] == 20
        assert rows[gone]["expected_value_change"] == pytest.approx(-rows[gone]["previous"]["expected_value"])
        assert rows[gone]["high_change"] == -rows[gone]["previous"]["bands"]["high"]
        assert rows[new]["previous"]["customers"] == 0 and rows[new]["current"]["customers"] == 20
        assert rows[new]["expected_value_change"] == pytest.approx(rows[new]["current"]["expected_value"])
    assert body["total"]["previous"]["customers"] == 60
    add_up(body)
    by_unit = web.client.get(
        "/v1/arrears/summary", params={"by": "supply_unit"}, headers=web.headers("admin")
    )
    assert sorted(row["supply_unit"] for row in by_unit.json()["rows"]) == ["U1", "U2"]
    add_up(by_unit.json())
    # Scope as for this month's rows: the S01 collector sees neither old name, the U2 collector only S05.
    collector = web.client.get("/v1/arrears/summary", headers=web.headers("collector")).json()
    assert [row["station"] for row in collector["rows"]] == ["S01"]
    assert collector["total"]["previous"]["customers"] == 20
    add_up(collector)
    unit = web.client.get("/v1/arrears/summary", headers=web.headers("unit_collector")).json()
    assert sorted(row["station"] for row in unit["rows"]) == ["S03", "S05"]
    assert unit["total"]["previous"]["customers"] == unit["total"]["current"]["customers"] == 20
    add_up(unit)
    unit_by_unit = web.client.get(
        "/v1/arrears/summary", params={"by": "supply_unit"}, headers=web.headers("unit_collector")
    ).json()
    assert [row["supply_unit"] for row in unit_by_unit["rows"]] == ["U2"]
    add_up(unit_by_unit)


def test_summary_names_the_model_of_last_months_snapshot(web, settings, registry):
    from tinymodel import write_population_snapshot

    body = web.client.get("/v1/arrears/summary", headers=web.headers("analyst")).json()
    assert body["previous_model"] == body["model"] == {"name": "gridrisk-arrears", "version": "1"}
    # Retrained and promoted: this month is scored by v2, last month's snapshot stays v1's.
    write_population_snapshot(registry.models["gridrisk-arrears"]["1"], settings, version="2")
    web.state.snapshots.refresh()
    body = web.client.get("/v1/arrears/summary", headers=web.headers("analyst")).json()
    assert body["model"] == {"name": "gridrisk-arrears", "version": "2"}
    assert body["previous_model"] == {"name": "gridrisk-arrears", "version": "1"}


def test_the_previous_model_is_read_from_the_rows_of_a_snapshot_without_metadata(tmp_path):
    import pyarrow as pa
    import pyarrow.parquet as pq

    from serving.schemas import ModelRef
    from serving.station_summary import snapshot_model

    path = tmp_path / "2023-05-31.parquet"
    pq.write_table(pa.table({"model_name": ["gridrisk-arrears"], "model_version": ["7"]}), path)
    assert snapshot_model(path, path.stat().st_mtime_ns) == ModelRef(name="gridrisk-arrears", version="7")
    pq.write_table(pa.table({"model_name": pa.array([], pa.string())}), tmp_path / "empty.parquet")
    empty = tmp_path / "empty.parquet"
    assert snapshot_model(empty, empty.stat().st_mtime_ns) is None


def test_the_summary_and_pages_read_the_snapshot_in_memory(web):
    # An operator damaged the served snapshot's file: the API kept serving the copy in memory, but the
    # summary, /list and /overview read the file again and answered 500; and after a re-score without a
    # reload, the summary showed the new file's counts under the served model's name.
    snapshot = web.state.snapshots.get("arrears")
    snapshot.path.write_bytes(b"PAR1 cut short")  # before anything summarised it
    after = web.client.get("/v1/arrears/summary", headers=web.headers("analyst"))
    assert after.status_code == 200, after.text
    total = after.json()["total"]["current"]
    assert total["customers"] == snapshot.size
    assert total["expected_value"] == pytest.approx(np.nan_to_num(snapshot.numbers["expected_value"]).sum())
    r = web.client.post(
        "/login", data={"api_key": web.keys["analyst"], "next": "/list"}, follow_redirects=False
    )
    assert r.status_code == 303
    for path in ("/list", "/overview"):
        page = web.client.get(path)
        assert page.status_code == 200, (path, page.text[:300])


def test_a_station_no_snapshot_holds_is_empty_except_for_a_station_collector(web):
    # As README "### Access" says: it claimed an empty list for every key; a station collector gets a 403.
    for role, status in (("admin", 200), ("analyst", 200), ("unit_collector", 200), ("collector", 403)):
        r = web.client.get("/v1/arrears/risk-list", params={"station": "S99"}, headers=web.headers(role))
        assert r.status_code == status, role
        assert status == 403 or r.json()["items"] == []
    assert r.json()["detail"].endswith("covers stations 'S01', not station 'S99'")
