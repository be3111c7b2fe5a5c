"""Benchmark `gridrisk generate`: 1,000,000 customers × 36 months of bills (no daily readings).

Target: ≤ 120 s wall time and ≤ 8 GiB peak memory on 2 cores.
Run `python experiments/benchmarks/bench_generate.py` (or `--customers 100000` for a quick run); it prints
wall time, CPU time, the peak memory of the whole process tree (parent + chunk workers) and rows per table.
"""

from __future__ import annotations

import argparse
import os
import resource
import shutil
import sys
import tempfile
import threading
import time
from pathlib import Path

TARGET_SECONDS = 120.0
TARGET_GIB = 8.0
PAGE = os.sysconf("SC_PAGE_SIZE")


def _tree_rss(pid: int) -> int:
    """Resident bytes of a process and all its descendants (Linux /proc)."""
    total = 0
    try:
        with open(f"/proc/{pid}/statm") as f:
            total += int(f.read().split()[1]) * PAGE
        for task in os.listdir(f"/proc/{pid}/task"):
            with open(f"/proc/{pid}/task/{task}/children") as f:
                total += sum(_tree_rss(int(child)) for child in f.read().split())
    except (FileNotFoundError, ProcessLookupError, ValueError):
        pass
    return total


class PeakMemory:
    """Samples the process tree's resident memory every 0.1 s in a thread; `peak` is the largest sum seen."""

    def __init__(self) -> None:
        self.peak = 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._sample, daemon=True)

    def _sample(self) -> None:
        while not self._stop.wait(0.1):
            self.peak = max(self.peak, _tree_rss(os.getpid()))

    def __enter__(self) -> PeakMemory:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join()


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--customers", type=int, default=1_000_000)
    parser.add_argument("--months", type=int, default=36)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--daily-days", type=int, default=None)
    parser.add_argument("--out", type=Path, default=None, help="keep the output here (default: temp folder)")
    args = parser.parse_args()

    from features.synthetic import GeneratorConfig, generate

    out = args.out or Path(tempfile.mkdtemp(prefix="bench_generate_"))
    config = GeneratorConfig(
        customers=args.customers, months=args.months, seed=args.seed, daily_days=args.daily_days
    )
    started = time.perf_counter()
    with PeakMemory() as memory:
        summary = generate(config, out)
    wall = time.perf_counter() - started
    own, children = resource.getrusage(resource.RUSAGE_SELF), resource.getrusage(resource.RUSAGE_CHILDREN)
    cpu = own.ru_utime + own.ru_stime + children.ru_utime + children.ru_stime
    peak_gib = max(memory.peak, own.ru_maxrss * 1024) / 1024**3
    size_mib = sum(p.stat().st_size for p in out.rglob("*") if p.is_file()) / 1024**2
    print(f"customers={args.customers:,} months={args.months} daily_days={args.daily_days}")
    for name, rows in summary.rows.items():
        print(f"  {name:<24} {rows:>14,}")
    print(f"wall {wall:.1f} s   cpu {cpu:.1f} s   peak RSS {peak_gib:.2f} GiB   output {size_mib:,.0f} MiB")
    print(
        f"{os.cpu_count()} cores, load average {os.getloadavg()[0]:.1f} at the end "
        "(other jobs on a shared machine inflate wall time, not cpu time)"
    )
    if args.customers == 1_000_000 and args.months == 36 and args.daily_days is None:
        ok = wall <= TARGET_SECONDS and peak_gib <= TARGET_GIB
        print(f"target ≤ {TARGET_SECONDS:.0f} s and ≤ {TARGET_GIB:.0f} GiB: {'met' if ok else 'MISSED'}")
    if args.out is None:
        shutil.rmtree(out, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
