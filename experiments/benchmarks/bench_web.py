"""Benchmark the web page and the customer-file and summary routes in-process (FastAPI test client).

Builds a warehouse of N customers in S stations with 36 months of bills and payments written in period order
(as a monthly export lands), a snapshot of every customer scored by a small LightGBM model with reasons, last
month's snapshot, and an admin key. Then times, for the rendered page or the JSON route:

1. a customer's history straight from the warehouse file (a filtered Parquet read) against the service's
   customer-sorted copy (`serving.history.HistoryStore`), and the one-off cost of making the copies;
2. `GET /v1/customers/{id}` and the customer page, p50 / p95 over random customers;
3. a risk-list page (50 rows with reasons), unfiltered and with a station and a per-station cap;
4. `GET /v1/arrears/summary` and the overview page (first call reads and reduces the snapshots; later calls
   hit the cache);
5. the XLSX and CSV export of up to 10,000 rows (the population, when smaller).

    python experiments/benchmarks/bench_web.py [--customers 50000] [--stations 40] [--repeat 30]
"""

from __future__ import annotations

import argparse
import datetime as dt
import statistics
import tempfile
import time
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow.parquet as pq

AS_OF = dt.date(2023, 12, 31)
MONTHS = 36
FEATURES = ["f_late_days", "f_kwh_change_pct", "f_capacity_kva", "f_outstanding_yuan", "usage_category"]
CATEGORIES = ["residential", "general_commercial", "large_industrial", "agricultural"]


def build_warehouse(warehouse: Path, n: int, stations: int, seed: int) -> pd.DataFrame:
    from features.sources import write_table

    rng = np.random.default_rng(seed)
    ids = np.char.add("C", np.char.zfill(np.arange(n).astype(str), 8)).astype(object)
    station = np.array([f"S{i % stations:03d}" for i in range(n)], dtype=object)
    unit = np.array([f"U{(i % stations) // 8:02d}" for i in range(n)], dtype=object)
    customers = pd.DataFrame(
        {
            "customer_id": ids,
            "usage_category": rng.choice(CATEGORIES, n),
            "voltage_kv": 0.4,
            "contract_capacity_kva": rng.choice([8.0, 50.0, 400.0, 1250.0], n),
            "tariff": "single",
            "payment_method": "online",
            "supply_unit": unit,
            "station": station,
            "area_id": "A1",
            "open_date": pd.Timestamp("2015-01-01"),
            "name": "某客户",
            "phone": "13800000000",
            "address": "某市某区某路1号",
        }
    )
    write_table(warehouse, "customers", customers)
    periods = pd.date_range(end=pd.Timestamp(AS_OF.year, AS_OF.month, 1), periods=MONTHS, freq="MS")
    # Period-major order, as monthly exports are appended: the worst case for a per-customer read.
    period = np.repeat(periods.to_numpy(), n)
    customer = np.tile(ids, MONTHS)
    kwh = rng.gamma(2.0, 300.0, n * MONTHS)
    issue = pd.DatetimeIndex(period) + pd.Timedelta(days=35)
    bills = pd.DataFrame(
        {
            "customer_id": customer,
            "period": period,
            "kwh": kwh,
            "amount_due": kwh * 0.6,
            "issue_date": issue,
            "due_date": issue + pd.Timedelta(days=10),
            "known_at": issue,
        }
    )
    write_table(warehouse, "bills", bills)
    paid = rng.random(len(bills)) > 0.03
    write_table(
        warehouse,
        "payments",
        pd.DataFrame(
            {
                "payment_id": np.arange(paid.sum()).astype(str),
                "customer_id": customer[paid],
                "period": period[paid],
                "paid_at": (bills["due_date"][paid] + pd.to_timedelta(rng.integers(-5, 20, paid.sum()), "D")),
                "amount": bills["amount_due"][paid],
                "channel": "online",
            }
        ),
    )
    for name, frame in {
        "suspensions": pd.DataFrame(
            {
                "application_id": ["A1"],
                "customer_id": [ids[0]],
                "applied_at": [pd.Timestamp("2022-05-01")],
                "start_date": [pd.Timestamp("2022-06-01")],
                "end_date": [pd.NaT],
                "capacity_kva": [100.0],
                "kind": ["reduction"],
            }
        ),
        "inspections": pd.DataFrame(
            {
                "inspection_id": ["I1"],
                "customer_id": [ids[1]],
                "inspected_at": [pd.Timestamp("2023-03-01")],
                "result": ["normal"],
                "recovered_kwh": [0.0],
            }
        ),
    }.items():
        write_table(warehouse, name, frame)
    return customers


def train_package(seed: int):  # type: ignore[no-untyped-def]
    import lightgbm

    from serving.model import Calibrator, FeatureSpec, PackagedModel, ReasonText

    frame = features(pd.DataFrame({"customer_id": np.arange(20_000)}), seed)
    logit = 0.08 * frame["f_late_days"] - 0.02 * frame["f_kwh_change_pct"] - 2.5
    y = (np.random.default_rng(seed).random(len(frame)) < 1 / (1 + np.exp(-logit))).astype(int)
    spec = FeatureSpec.from_frame(frame, FEATURES)
    booster = lightgbm.train(
        {"objective": "binary", "num_leaves": 31, "max_depth": 6, "verbose": -1, "seed": seed},
        lightgbm.Dataset(
            spec.matrix(frame), y, feature_name=FEATURES, categorical_feature=spec.categorical_indices
        ),
        num_boost_round=100,
    )  # fmt: skip
    p = booster.predict(spec.matrix(frame))
    return PackagedModel(
        task="arrears",
        booster=booster,
        spec=spec,
        calibrator=Calibrator("none"),
        reasons={
            "f_late_days": ReasonText(zh="近一年最长逾期{value:.0f}天", en="up to {value:.0f} days late"),
            "f_kwh_change_pct": ReasonText(
                zh="电量同比{dir_zh}{abs_value:.0f}%", en="kWh {dir_en} {abs_value:.0f} %"
            ),
        },
        bands={"high": float(np.quantile(p, 0.95)), "medium": float(np.quantile(p, 0.8))},
        score_quantiles=np.quantile(p, np.linspace(0, 1, 101)).tolist(),
        metrics={"roc_auc": 0.8},
    )


def features(frame: pd.DataFrame, seed: int) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    n = len(frame)
    out = frame.copy()
    out["f_late_days"] = rng.exponential(8, n)
    out["f_kwh_change_pct"] = rng.normal(0, 30, n)
    out["f_capacity_kva"] = rng.choice([8.0, 50.0, 400.0], n)
    out["f_outstanding_yuan"] = rng.exponential(300, n)
    out["usage_category"] = rng.choice(CATEGORIES, n)
    return out


class OneModelRegistry:
    """The registry protocol over one in-memory package (the benchmark measures pages, not MLflow)."""

    uri = "memory://bench"

    def __init__(self, package) -> None:  # type: ignore[no-untyped-def]
        self.package = package

    def probe(self) -> str | None:
        return None

    def alias_version(self, name: str, alias: str) -> str | None:
        return "1" if name == "gridrisk-arrears" and alias == "champion" else None

    def load(self, name: str, version: str, dst: Path):  # type: ignore[no-untyped-def]
        return self.package

    def versions(self, name: str) -> list:
        return []


def timed(call, repeat: int) -> tuple[float, float]:  # type: ignore[no-untyped-def]
    seconds = []
    for i in range(repeat):
        start = time.perf_counter()
        call(i)
        seconds.append(time.perf_counter() - start)
    seconds.sort()
    return statistics.median(seconds) * 1000, seconds[int(0.95 * (len(seconds) - 1))] * 1000


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--customers", type=int, default=50_000)
    parser.add_argument("--stations", type=int, default=40)
    parser.add_argument("--repeat", type=int, default=30)
    args = parser.parse_args()

    from fastapi.testclient import TestClient

    from serving.access import create_key
    from serving.history import HistoryStore
    from serving.main import create_app
    from serving.schemas import ModelRef
    from serving.service import ServiceState
    from serving.settings import ServingSettings
    from serving.snapshot import score_frame, write_snapshot

    with tempfile.TemporaryDirectory() as tmp:
        home = Path(tmp) / "home"
        settings = ServingSettings(home=home, tasks=["arrears"], poll_seconds=0)
        start = time.perf_counter()
        customers = build_warehouse(settings.warehouse_path, args.customers, args.stations, seed=1)
        bills_rows = pq.read_metadata(settings.warehouse_path / "bills.parquet").num_rows
        print(
            f"warehouse: {args.customers:,} customers in {args.stations} stations, {bills_rows:,} bills "
            f"(built in {time.perf_counter() - start:.1f} s)"
        )
        package = train_package(seed=2)
        population = features(customers[["customer_id", "station", "supply_unit"]], seed=3)
        population["amount_at_stake"] = population["f_outstanding_yuan"] + 200
        for as_of, seed in ((AS_OF - dt.timedelta(days=31), 4), (AS_OF, 3)):
            frame = features(customers[["customer_id", "station", "supply_unit"]], seed)
            frame["amount_at_stake"] = frame["f_outstanding_yuan"] + 200
            frame["as_of"] = pd.Timestamp(as_of)
            start = time.perf_counter()
            scores = score_frame(package, frame, ModelRef(name="gridrisk-arrears", version="1"))
            write_snapshot(scores, settings.snapshots_path, "arrears", as_of)
            seconds = time.perf_counter() - start
            print(f"snapshot {as_of}: {len(scores):,} customers scored with reasons in {seconds:.1f} s")
        key = create_key(settings.keys_path, "admin")[0]

        # 1. one customer's rows: the warehouse file against the sorted copy
        ids = customers["customer_id"].to_numpy()
        rng = np.random.default_rng(0)
        picks = rng.choice(ids, args.repeat)
        source = settings.warehouse_path / "bills.parquet"
        p50, p95 = timed(
            lambda i: pq.read_table(source, filters=[("customer_id", "==", picks[i])]), args.repeat
        )
        print(
            f"bills of one customer, filtered read of the warehouse file: p50 {p50:.1f} ms, p95 {p95:.1f} ms"
        )
        store = HistoryStore(settings.warehouse_path, Path(tmp) / "copies")
        start = time.perf_counter()
        for name in ("customers", "bills", "payments", "suspensions", "inspections"):
            store.rows(name, ids[0])
        seconds = time.perf_counter() - start
        print(f"customer-sorted copies of the five tables made in {seconds:.1f} s (once per table change)")
        p50, p95 = timed(lambda i: store.rows("bills", picks[i]), args.repeat)
        print(f"bills of one customer from the sorted copy: p50 {p50:.1f} ms, p95 {p95:.1f} ms")

        state = ServiceState.build(settings, OneModelRegistry(package))
        with TestClient(create_app(settings, state)) as client:
            headers = {"X-API-Key": key}

            def get(path: str, **params) -> None:  # type: ignore[no-untyped-def]
                r = client.get(path, params=params, headers=headers)
                assert r.status_code == 200, r.text[:500]

            start = time.perf_counter()
            get(f"/v1/customers/{ids[0]}")
            print(f"first customer file (the service makes its copies): {time.perf_counter() - start:.1f} s")
            p50, p95 = timed(lambda i: get(f"/v1/customers/{picks[i]}"), args.repeat)
            print(f"GET /v1/customers/{{id}}: p50 {p50:.1f} ms, p95 {p95:.1f} ms")
            signed_in = client.post("/login", data={"api_key": key}, follow_redirects=False)
            assert signed_in.status_code == 303, signed_in.text[:500]

            def page(path: str, **params) -> None:  # type: ignore[no-untyped-def]
                r = client.get(path, params=params, follow_redirects=False)
                assert r.status_code == 200 and r.text.startswith("<!doctype html>"), r.status_code

            p50, p95 = timed(lambda i: page(f"/customers/{picks[i]}"), args.repeat)
            print(f"customer page: p50 {p50:.1f} ms, p95 {p95:.1f} ms")
            p50, p95 = timed(lambda i: page("/list", page=1 + i % 5), args.repeat)
            print(f"risk-list page (50 rows, whole population): p50 {p50:.1f} ms, p95 {p95:.1f} ms")
            p50, p95 = timed(lambda i: page("/list", station="S001", per_station_top=30), args.repeat)
            print(f"risk-list page (one station, capacity 30): p50 {p50:.1f} ms, p95 {p95:.1f} ms")
            start = time.perf_counter()
            get("/v1/arrears/summary")
            ms = (time.perf_counter() - start) * 1000
            print(f"summary, first call (reads and reduces two snapshots): {ms:.0f} ms")
            p50, p95 = timed(lambda i: get("/v1/arrears/summary", by="station"), args.repeat)
            print(f"GET /v1/arrears/summary ({args.stations} stations): p50 {p50:.1f} ms, p95 {p95:.1f} ms")
            p50, p95 = timed(lambda i: page("/overview"), args.repeat)
            print(f"overview page: p50 {p50:.1f} ms, p95 {p95:.1f} ms")
            client.app.state.web.settings.export_max_rows = 10_000
            for fmt in ("xlsx", "csv"):
                start = time.perf_counter()
                r = client.get("/list/export", params={"format": fmt})
                assert r.status_code == 200
                seconds, rows = time.perf_counter() - start, int(r.headers["x-gridrisk-rows"])
                print(
                    f"export {fmt.upper()} of {rows:,} rows with reasons: {seconds:.2f} s, "
                    f"{len(r.content) / 1e6:.1f} MB"
                )


if __name__ == "__main__":
    main()
