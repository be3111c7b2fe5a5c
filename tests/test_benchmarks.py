"""`make bench` is not part of CI, so each benchmark runs here at a tiny size: it must still run end to end,
print its table, and leave the published reports and the working folder alone. No timing is asserted."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

pytestmark = pytest.mark.slow

ROOT = Path(__file__).resolve().parents[1]
BENCH = ROOT / "experiments" / "benchmarks"
PUBLISHED = ROOT / "experiments" / "reports" / "serving" / "bench_serving.json"

CASES = {
    "bench_generate": (["--customers", "1000", "--months", "12"], "peak RSS"),
    "bench_ingest": (["--customers", "800", "--days", "40"], "quarantined"),
    "bench_features": (["--small", "1500", "--large", "0", "--skip-spark", "--data", "{tmp}"], "| run |"),
    "bench_web": (["--customers", "1500", "--stations", "4", "--repeat", "2"], "export CSV of 1,500 rows"),
    "bench_serving": (["--customers", "800", "--batch-rows", "3000", "--requests", "20"], "report and chart"),
    "bench_training": (["--customers", "1500", "--backtest", "1", "--json", "{tmp}/t.json"], "ECE <= 0.02"),
    "bench_explain_depth": (["--customers", "1500", "--tasks", "arrears"], "(default)"),
    "bench_settlement": (["--customers", "800", "--tile", "2", "--data", "{tmp}"], "settled since"),
}


def run_bench(name: str, args: list[str], tmp_path: Path) -> subprocess.CompletedProcess:
    env = {k: v for k, v in os.environ.items() if k != "MLFLOW_TRACKING_URI"}
    env.update(TMPDIR=str(tmp_path), GRIDRISK_HOME=str(tmp_path / "home"), COLUMNS="160")
    return subprocess.run(
        [sys.executable, str(BENCH / f"{name}.py"), *[a.format(tmp=tmp_path) for a in args]],
        cwd=tmp_path,
        env=env,
        capture_output=True,
        text=True,
        timeout=900,
    )


def test_every_benchmark_is_covered():
    assert sorted(CASES) == sorted(p.stem for p in BENCH.glob("bench_*.py"))


@pytest.mark.parametrize("name", sorted(CASES))
def test_benchmark_runs_small(name, tmp_path):
    args, says = CASES[name]
    published = PUBLISHED.read_bytes()
    result = run_bench(name, args, tmp_path)
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    assert says in result.stdout, result.stdout[-3000:]
    assert "Traceback" not in result.stderr
    assert PUBLISHED.read_bytes() == published  # a small run never replaces the published figures
    assert not (tmp_path / "mlruns").exists()  # MLflow artifacts stay in the benchmark's own store
    if name == "bench_training":  # valid JSON: strict parsing refuses a bare NaN
        rows = json.loads((tmp_path / "t.json").read_text(), parse_constant=pytest.fail)
        assert {r["task"] for r in rows} == {"arrears", "suspension", "theft"}


def test_a_cached_feature_warehouse_is_reused_only_while_the_generator_is_unchanged(tmp_path):
    args = ["--small", "800", "--large", "0", "--skip-spark", "--data", "{tmp}"]
    first = run_bench("bench_features", args, tmp_path)
    assert first.returncode == 0 and "generating 800 customers" in first.stdout, first.stderr[-2000:]
    again = run_bench("bench_features", args, tmp_path)
    assert "reusing" in again.stdout and "generating" not in again.stdout
    (tmp_path / "wh800" / "bench-stamp.txt").write_text("made by an older generator")
    stale = run_bench("bench_features", args, tmp_path)
    assert "made by another generator version or config: regenerating" in stale.stdout
