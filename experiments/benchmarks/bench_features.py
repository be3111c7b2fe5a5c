"""Benchmark the feature engines: training sets from generated warehouses, local process pool vs Spark.

Targets (issue 3): 1,000,000 customers × 36 months of bills, one as-of date, local engine: ≤ 60 s and
≤ 8 GiB on 2 cores; 100,000 customers for the scaling ratio; 24 monthly as-of dates × 100,000 customers
(time, rows/s); Spark local[2] on 100,000 customers against the local engine.

    python experiments/benchmarks/bench_features.py                 # everything (generates ~2 GB once)
    python experiments/benchmarks/bench_features.py --large 0       # skip the 1 M run
    python experiments/benchmarks/bench_features.py --skip-spark --json out.json

Each measurement runs in its own process; memory is the peak proportional set size (PSS) of that process
and all its workers, sampled every 0.2 s, so pages the forked workers share with the parent count once.
CPU time is user + system of the process tree (also sampled live, for Spark's JVM). Warehouses are
generated once into --data (not timed).
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import subprocess
import sys
import threading
import time
from pathlib import Path

TASK = "arrears"
ONE_AS_OF = "2023-06-30"
# 24 month ends whose 120-day arrears windows end before the generated data does (bills to 2023-12).
MONTHLY = [f"{y}-{m:02d}" for y in (2021, 2022, 2023) for m in range(1, 13)][8:32]


def _children(pid: int) -> list[int]:
    out = []
    try:
        for task in os.listdir(f"/proc/{pid}/task"):
            with open(f"/proc/{pid}/task/{task}/children") as f:
                out += [int(c) for c in f.read().split()]
    except (FileNotFoundError, ProcessLookupError):
        pass
    return out


def _tree_pss(pid: int) -> int:
    total = 0
    try:
        with open(f"/proc/{pid}/smaps_rollup") as f:
            for line in f:
                if line.startswith("Pss:"):
                    total += int(line.split()[1]) * 1024
                    break
    except (FileNotFoundError, ProcessLookupError, PermissionError):
        return 0
    return total + sum(_tree_pss(c) for c in _children(pid))


def _tree_cpu(pid: int) -> float:
    """CPU seconds (user + system, own and reaped children) of a process and its live descendants."""
    try:
        with open(f"/proc/{pid}/stat") as f:
            fields = f.read().rsplit(")", 1)[1].split()
        own = sum(int(v) for v in fields[11:15]) / os.sysconf("SC_CLK_TCK")
    except (FileNotFoundError, ProcessLookupError, IndexError):
        return 0.0
    return own + sum(_tree_cpu(c) for c in _children(pid))


def measure(args: list[str]) -> dict:
    """Run this script with `args` in a child process; its JSON answer plus wall, CPU and peak PSS."""
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    started = time.perf_counter()
    proc = subprocess.Popen([sys.executable, __file__, *args], stdout=subprocess.PIPE, text=True)
    peak, sampled_cpu = 0, 0.0
    stop = threading.Event()

    def sample() -> None:
        nonlocal peak, sampled_cpu
        while not stop.wait(0.2):
            peak = max(peak, _tree_pss(proc.pid))
            # Spark's JVM and its Python workers are never reaped by the step process: sample them live.
            sampled_cpu = max(sampled_cpu, _tree_cpu(proc.pid))

    thread = threading.Thread(target=sample, daemon=True)
    thread.start()
    out, _ = proc.communicate()
    stop.set()
    thread.join()
    wall = time.perf_counter() - started
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    if proc.returncode != 0:
        raise SystemExit(f"benchmark step {args} failed with exit code {proc.returncode}")
    result = json.loads(out.strip().splitlines()[-1])
    cpu = max((after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime), sampled_cpu)
    result.update(wall_s=round(wall, 1), cpu_s=round(cpu, 1), peak_gib=round(peak / 2**30, 2))
    return result


def step(warehouse: str, engine: str, dates: list[str]) -> None:
    """One measured build (runs in the child process); prints one JSON line."""
    from features.training_set import build_training_set

    started = time.perf_counter()
    frame = build_training_set(Path(warehouse), TASK, dates, engine=engine)
    seconds = time.perf_counter() - started
    print(
        json.dumps(
            {"rows": len(frame), "build_s": round(seconds, 1), "label_rate": float(frame["label"].mean())}
        )
    )


def generator_stamp(config) -> str:
    """The config and the generator's source: a cached warehouse is reused only while both are unchanged."""
    import hashlib

    import features.synthetic as synthetic

    digest = hashlib.sha256(repr(config).encode())
    for source in sorted(Path(synthetic.__file__).parent.glob("*.py")):
        digest.update(source.read_bytes())
    return digest.hexdigest()


def ensure_warehouse(data: Path, customers: int) -> Path:
    import shutil

    from features.synthetic import GeneratorConfig, generate

    out = data / f"wh{customers}"
    config = GeneratorConfig(customers=customers, start="2021-01", months=36, seed=1)
    stamp, stamp_file = generator_stamp(config), out / "bench-stamp.txt"
    if stamp_file.exists() and stamp_file.read_text() == stamp and (out / "bills.parquet").exists():
        print(f"reusing {out} (same generator and config)", flush=True)
        return out
    if out.exists():
        print(f"{out} was made by another generator version or config: regenerating", flush=True)
        shutil.rmtree(out)
    print(f"generating {customers:,} customers × 36 months into {out} …", flush=True)
    generate(config, out)
    stamp_file.write_text(stamp)
    return out


def month_ends(months: list[str]) -> list[str]:
    import pandas as pd

    return [str(pd.Period(m, "M").to_timestamp(how="end").date()) for m in months]


def load_note() -> str:
    one, five, _ = os.getloadavg()
    return f"load average {one:.1f} (1 min), {five:.1f} (5 min) on {os.cpu_count()} cores"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--large", type=int, default=1_000_000, help="customers in the large run (0 skips it)"
    )
    parser.add_argument("--small", type=int, default=100_000, help="customers in the small runs")
    parser.add_argument(
        "--data", type=Path, default=Path(os.environ.get("TMPDIR", "/tmp")) / "gridrisk-bench"
    )
    parser.add_argument("--skip-spark", action="store_true")
    parser.add_argument("--json", type=Path, help="also write the results here")
    parser.add_argument("--step", nargs=3, metavar=("WAREHOUSE", "ENGINE", "DATES"), help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.step:
        warehouse, engine, dates = args.step
        step(warehouse, engine, dates.split(","))
        return

    args.data.mkdir(parents=True, exist_ok=True)
    small = ensure_warehouse(args.data, args.small)
    large = ensure_warehouse(args.data, args.large) if args.large else None
    results: dict[str, dict] = {}
    plan = [("local_1_as_of_small", small, "local", [ONE_AS_OF])]
    if large:
        plan.append(("local_1_as_of_large", large, "local", [ONE_AS_OF]))
    plan.append(("local_24_as_of_small", small, "local", month_ends(MONTHLY)))
    if not args.skip_spark:
        plan.append(("spark_1_as_of_small", small, "spark", [ONE_AS_OF]))
    for name, warehouse, engine, dates in plan:
        print(f"{name}: {engine}, {len(dates)} as-of date(s), {warehouse.name} … ({load_note()})", flush=True)
        results[name] = measure(["--step", str(warehouse), engine, ",".join(dates)])
        results[name]["load"] = load_note()
        print(f"  {results[name]}", flush=True)

    print("\n| run | customers | as-of dates | rows | wall s | CPU s | peak GiB | rows/s |")
    print("| --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: |")
    sizes = {"small": args.small, "large": args.large}
    for name, r in results.items():
        n = sizes["large" if name.endswith("large") else "small"]
        dates = 24 if "24" in name else 1
        print(
            f"| {name} | {n:,} | {dates} | {r['rows']:,} | {r['wall_s']} | {r['cpu_s']} | {r['peak_gib']} | "
            f"{r['rows'] / r['wall_s']:,.0f} |"
        )
    if large:  # the target is for one million customers; at other sizes there is no verdict
        ratio = results["local_1_as_of_large"]["wall_s"] / results["local_1_as_of_small"]["wall_s"]
        cpu_ratio = results["local_1_as_of_large"]["cpu_s"] / results["local_1_as_of_small"]["cpu_s"]
        scale = args.large / args.small
        print(f"\nlarge/small wall-time ratio {ratio:.1f} (CPU {cpu_ratio:.1f}) for {scale:.0f}× customers")
        big = results["local_1_as_of_large"]
        if args.large == 1_000_000:
            verdict = "meets" if big["wall_s"] <= 60 and big["peak_gib"] <= 8 else "misses"
            print(f"1 M target (≤ 60 s, ≤ 8 GiB): {verdict} ({big['wall_s']} s, {big['peak_gib']} GiB)")
    if not args.skip_spark:
        ratio = results["spark_1_as_of_small"]["wall_s"] / results["local_1_as_of_small"]["wall_s"]
        print(f"spark/local wall-time ratio on {args.small:,} customers: {ratio:.1f}")
    if args.json:
        args.json.write_text(json.dumps(results, indent=1))


if __name__ == "__main__":
    main()
