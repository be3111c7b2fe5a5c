"""`gridrisk demo` end to end on a small utility, then the retrain the README tells a data scientist to run:
`gridrisk train --task all` must rebuild the demo's training sets and reproduce its metrics exactly."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

pytestmark = [pytest.mark.slow, pytest.mark.e2e]

ROOT = Path(__file__).resolve().parents[2]
GATE = re.compile(r"gridrisk-(\w+) version 2 stays challenger: .*? (\w+) ([\d.]+) vs champion v1 ([\d.]+)")


def gridrisk(home: Path, *args: str) -> subprocess.CompletedProcess:
    env = {k: v for k, v in os.environ.items() if k not in ("MLFLOW_TRACKING_URI", "GRIDRISK_WAREHOUSE")}
    env.update(GRIDRISK_HOME=str(home), COLUMNS="200")
    return subprocess.run(
        [str(Path(sys.executable).parent / "gridrisk"), *args],
        cwd=ROOT,  # the demo trains from the shipped experiments/configs/, as `make demo` does
        env=env,
        capture_output=True,
        text=True,
        timeout=900,
    )


def test_demo_then_train_all_reproduces_the_demo_models(tmp_path):
    home = tmp_path / "home"
    demo = gridrisk(home, "demo", "--customers", "3000", "--no-serve")
    assert demo.returncode == 0, demo.stdout[-3000:] + demo.stderr[-3000:]
    for task in ("arrears", "suspension", "theft"):
        assert f"gridrisk-{task} version 1: promoted to champion" in demo.stdout
    assert "keys create --role collector" in demo.stdout
    assert "Start the service with `gridrisk serve --port 8000`" in demo.stdout
    assert list((home / "snapshots").rglob("*.parquet")), "the demo scores every task into snapshots"

    again = gridrisk(home, "train", "--task", "all")
    assert again.returncode == 0, again.stdout[-3000:] + again.stderr[-3000:]
    gates = {m[0]: m[1:] for m in GATE.findall(again.stdout + again.stderr)}
    assert sorted(gates) == ["arrears", "suspension", "theft"], again.stdout[-3000:]
    for task, (metric, challenger, champion) in gates.items():
        assert challenger == champion, f"{task}: {metric} {challenger} after the demo's {champion}"

    from mlflow import MlflowClient  # every test metric, at full precision, not the gate's rounded line

    client = MlflowClient(f"sqlite:///{home / 'mlflow.db'}")
    for task in gates:
        runs = {str(v.version): v.run_id for v in client.search_model_versions(f"name='gridrisk-{task}'")}
        demo_run, retrain = (client.get_run(runs[v]).data.metrics for v in ("1", "2"))
        tested = {k: v for k, v in demo_run.items() if k.startswith("test_")}
        assert len(tested) > 10 and tested == {k: retrain[k] for k in tested}, task
