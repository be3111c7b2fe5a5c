"""What the arrears lists' "paid since" marks cost (serving.settlement) at a province's size.

A generated utility (default 50,000 customers x 36 months) is scored for arrears features as of a month end
before its data end; its bills, payments and that population are then tiled `--tile` times with suffixed
customer ids (20 x 50,000 = 1,000,000 customers, ~34 M bills, ~33 M payments), and two steps are timed:

- `open_bills`: each bill open at T of each customer with a balance, which `gridrisk score` adds to the
  arrears snapshot (filtered reads of those customers' bills and payments);
- `settle`: the payments T could not see, counted bill by bill toward those bills, which the service does
  once per snapshot and payments version when it refreshes (one filtered read of the payments).

Each step runs twice; wall and CPU seconds (process-wide, pyarrow's threads included) and the peak RSS are
printed. No target: the figures go in the README beside the feature.

    python experiments/benchmarks/bench_settlement.py [--customers 50000] [--tile 20] [--data DIR]
"""

from __future__ import annotations

import argparse
import json
import resource
import tempfile
import time
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq


def tiled(table: pa.Table, times: int) -> pa.Table:
    """`times` copies of the table, the k-th with `-kk` appended to every customer id."""
    ids = table["customer_id"].cast(pa.string())
    at = table.schema.get_field_index("customer_id")
    copies = [
        table.set_column(at, "customer_id", pc.binary_join_element_wise(ids, pa.scalar(f"-{k:02d}"), ""))
        for k in range(times)
    ]
    return pa.concat_tables(copies, promote_options="permissive")


def main() -> None:
    from features.synthetic import GeneratorConfig, generate
    from features.training_set import build_scoring_frame
    from serving.settlement import OPEN_BILLS, OUTSTANDING, OWED_FEATURE, open_bills, settle
    from serving.snapshot import META_KEY, Snapshot

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--customers", type=int, default=50_000)
    parser.add_argument("--tile", type=int, default=20)
    parser.add_argument("--data", type=Path, default=None, help="folder for the data (default: a temp dir)")
    args = parser.parse_args()

    root = args.data or Path(tempfile.mkdtemp(prefix="gridrisk-bench-settlement-"))
    source = root / "generated"
    if not (source / "payments.parquet").exists():
        config = GeneratorConfig(customers=args.customers, start="2021-01", months=36, seed=11, daily_days=30)
        generate(config, source)
    as_of = pd.Timestamp("2023-12-31")  # the data end is 2024-01-10: ten days of payments since
    frame = build_scoring_frame(source, "arrears", as_of)
    population = pa.table(
        {
            "customer_id": frame["customer_id"].astype(str).to_numpy(),
            "probability": np.full(len(frame), 0.1),
            "rank": np.arange(1, len(frame) + 1),
            OUTSTANDING: pd.to_numeric(frame[OWED_FEATURE]).to_numpy(dtype=np.float64),
        }
    )
    warehouse = root / f"tiled-{args.tile}"
    warehouse.mkdir(parents=True, exist_ok=True)
    for name, columns in {
        "bills": ["customer_id", "period", "amount_due", "issue_date", "due_date", "known_at"],
        "payments": ["customer_id", "period", "paid_at", "amount", "late_fee"],
    }.items():
        pq.write_table(tiled(pq.read_table(source / f"{name}.parquet", columns=columns), args.tile),
                       warehouse / f"{name}.parquet")  # fmt: skip
    snapshot_table = tiled(population, args.tile)
    ids = pd.Series(snapshot_table["customer_id"].to_numpy(zero_copy_only=False))

    def timed(step: str, call):  # type: ignore[no-untyped-def]
        out = None
        for attempt in (1, 2):
            cpu, wall = time.process_time(), time.perf_counter()
            out = call()
            rows.append((step, attempt, time.perf_counter() - wall, time.process_time() - cpu))
        return out

    rows: list[tuple[str, int, float, float]] = []
    owed = snapshot_table[OUTSTANDING].to_numpy(zero_copy_only=False)
    opens = timed("open_bills", lambda: open_bills(warehouse, ids, owed, as_of.date()))
    table = snapshot_table.append_column(OPEN_BILLS, pa.array(opens, pa.string()))
    meta = {"task": "arrears", "as_of": as_of.date().isoformat(), "model_name": "bench", "model_version": "0"}
    path = warehouse / "snapshot.parquet"
    pq.write_table(table.replace_schema_metadata({META_KEY: json.dumps(meta)}), path)
    snapshot = Snapshot.read("arrears", path)
    found = timed("settle", lambda: settle(snapshot, warehouse))

    bills = pq.ParquetFile(warehouse / "bills.parquet").metadata.num_rows
    payments = pq.ParquetFile(warehouse / "payments.parquet").metadata.num_rows
    assert found is not None
    owing = int((np.nan_to_num(snapshot.numbers[OUTSTANDING]) > 0.005).sum())
    print(f"{snapshot.size:,} customers ({args.customers:,} generated x {args.tile}), {bills:,} bills, "
          f"{payments:,} payments; as of {as_of.date()}, payments to {found.payments_through}")  # fmt: skip
    print(f"{owing:,} with a balance at T, {int(found.settled.sum()):,} settled since")
    print("| step | run | wall s | CPU s |")
    print("| --- | --- | --- | --- |")
    for step, attempt, wall, cpu in rows:
        print(f"| {step} | {attempt} | {wall:.2f} | {cpu:.2f} |")
    print(f"peak RSS {resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2**20:.2f} GiB (whole run)")


if __name__ == "__main__":
    main()
