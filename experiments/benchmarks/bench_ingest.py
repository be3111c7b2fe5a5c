"""Ingest throughput: daily readings (customers × days) as CSV and Parquet, into an empty warehouse and again.

Prints rows, wall and CPU seconds, rows/s and the peak RSS of this process. Not a timed test (`make bench`).
    .venv/bin/python experiments/benchmarks/bench_ingest.py --customers 20000 --days 250
"""

from __future__ import annotations

import argparse
import resource
import tempfile
import time
from pathlib import Path

import numpy as np
import pandas as pd

from features.ingest import ingest
from features.sources import write_table


def build(out: Path, customers: int, days: int, seed: int) -> int:
    """Areas, customers and readings with a few faults; readings both as CSV and as Parquet."""
    rng = np.random.default_rng(seed)
    ids = np.char.add("C", np.arange(customers).astype(str))
    areas = pd.DataFrame(
        {
            "area_id": [f"A{i}" for i in range(max(customers // 100, 1))],
            "station": "S1",
            "supply_unit": "U1",
            "transformer_kva": 400.0,
        }
    )
    cust = pd.DataFrame(
        {
            "customer_id": ids,
            "usage_category": "residential",
            "industry_code": None,
            "voltage_kv": 0.22,
            "contract_capacity_kva": 8.0,
            "tariff": "single",
            "payment_method": "online",
            "supply_unit": "U1",
            "station": "S1",
            "area_id": areas["area_id"].to_numpy()[np.arange(customers) % len(areas)],
            "open_date": pd.Timestamp("2015-01-01"),
        }
    )
    dates = pd.date_range("2024-01-01", periods=days, freq="D")
    kwh = rng.gamma(2.0, 3.0, customers * days).round(2)
    faulty = rng.random(len(kwh)) < 0.001
    kwh[faulty] = -rng.gamma(2.0, 3.0, int(faulty.sum()))  # negative readings and resets
    readings = pd.DataFrame(
        {"customer_id": np.repeat(ids, days), "date": np.tile(dates.to_numpy(), customers), "kwh": kwh}
    )
    for fmt in ("csv", "parquet"):
        folder = out / fmt
        write_table(folder, "areas", areas)
        write_table(folder, "customers", cust)
    readings.to_csv(out / "csv" / "readings.csv", index=False, date_format="%Y-%m-%d")
    write_table(out / "parquet", "readings", readings)
    return len(readings)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--customers", type=int, default=20_000)
    parser.add_argument("--days", type=int, default=250)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        rows = build(root / "src", args.customers, args.days, args.seed)
        size = (root / "src" / "csv" / "readings.csv").stat().st_size
        print(f"readings: {rows:,} rows ({size / 1e6:,.0f} MB as CSV), {args.customers:,} customers")
        for fmt in ("parquet", "csv"):
            for attempt in ("first", "again"):
                start, cpu = time.perf_counter(), time.process_time()
                report = ingest(root / "src" / fmt, root / f"wh-{fmt}")
                seconds, cpu = time.perf_counter() - start, time.process_time() - cpu
                part = report.tables["readings"]
                assert part.balanced
                # CPU seconds too: on a shared machine wall time mostly measures the neighbours.
                print(
                    f"{fmt:8} {attempt:6} {seconds:6.1f} s wall {cpu:6.1f} s cpu "
                    f"{part.rows_read / seconds:>10,.0f} rows/s  "
                    f"accepted {part.accepted:,} (new {part.new:,}, unchanged {part.unchanged:,}), "
                    f"quarantined {part.quarantined:,}"
                )
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024**2
    print(f"peak RSS {peak:.2f} GiB")


if __name__ == "__main__":
    main()
