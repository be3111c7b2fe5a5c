"""`/metrics` for one worker and merged across `--workers N` (prometheus_client's multiprocess files)."""

from __future__ import annotations

import datetime as dt
import os
import subprocess
import sys
import textwrap
from pathlib import Path
from types import SimpleNamespace

from serving.metrics import ServiceMetrics

WORKER = textwrap.dedent(
    """
    import datetime as dt, sys
    from types import SimpleNamespace
    from serving.metrics import ServiceMetrics

    metrics = ServiceMetrics()
    assert metrics.shared_dir, "the variable was set before prometheus_client was imported"
    snapshot = SimpleNamespace(as_of=dt.date(2024, 6, 30), size=500)
    for version in sys.argv[1:]:  # the champion moves through these versions
        model = SimpleNamespace(name="gridrisk-arrears", version=version, source="registry")
        metrics.set_served({"arrears": model}, {"arrears": snapshot})
        metrics.requests.labels("POST", "/v1/{task}/score", "200").inc()
    sys.stdout.write(metrics.render().decode())
    """
)


def served(models: dict[str, str], as_of: dt.date = dt.date(2024, 6, 30)) -> tuple[dict, dict]:
    return (
        {t: SimpleNamespace(name=f"gridrisk-{t}", version=v, source="registry") for t, v in models.items()},
        {t: SimpleNamespace(as_of=as_of, size=500) for t in models},
    )


def info_lines(text: str) -> list[str]:
    return [x for x in text.splitlines() if x.startswith(("gridrisk_model_info{", "gridrisk_snapshot_rows{"))]


def test_one_worker_shows_only_what_it_serves_now():
    metrics = ServiceMetrics()
    assert metrics.shared_dir is None  # no PROMETHEUS_MULTIPROC_DIR in the test process
    metrics.set_served(*served({"arrears": "1", "theft": "4"}))
    metrics.set_served(*served({"arrears": "2"}, dt.date(2024, 7, 31)))
    assert info_lines(metrics.render().decode()) == [
        'gridrisk_model_info{name="gridrisk-arrears",source="registry",task="arrears",version="2"} 1.0',
        'gridrisk_snapshot_rows{as_of="2024-07-31",task="arrears"} 500.0',
    ]


def run_worker(folder: Path, *versions: str) -> str:
    env = {**os.environ, "PROMETHEUS_MULTIPROC_DIR": str(folder)}
    done = subprocess.run(
        [sys.executable, "-c", WORKER, *versions], env=env, capture_output=True, text=True, check=True
    )
    return done.stdout


def test_workers_merge_their_counts_and_a_swap_or_a_dead_worker_leaves_no_stale_model(tmp_path):
    # A shared file cannot forget a series: a model swapped out stayed listed as served, at 1.
    first = run_worker(tmp_path, "1", "2")
    assert info_lines(first) == [
        'gridrisk_model_info{name="gridrisk-arrears",source="registry",task="arrears",version="2"} 1.0',
        'gridrisk_snapshot_rows{as_of="2024-06-30",task="arrears"} 500.0',
    ]
    assert "-1.0" not in first
    # A second worker reads both files: the counts add up, and the first (exited) worker's gauges are gone.
    second = run_worker(tmp_path, "3")
    assert 'gridrisk_requests_total{method="POST",route="/v1/{task}/score",status="200"} 3.0' in second
    assert [x for x in info_lines(second) if "model_info" in x] == [
        'gridrisk_model_info{name="gridrisk-arrears",source="registry",task="arrears",version="3"} 1.0'
    ]
