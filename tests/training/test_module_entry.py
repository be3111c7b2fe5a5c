"""`python -m gridrisk` runs the CLI (it said "No module named gridrisk.__main__")."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def test_python_dash_m_gridrisk_runs_the_cli() -> None:
    env = {**os.environ, "PYTHONPATH": str(ROOT), "COLUMNS": "120"}
    out = subprocess.run(
        [sys.executable, "-m", "gridrisk", "--help"], capture_output=True, text=True, env=env, timeout=120
    )
    assert out.returncode == 0, out.stderr[-2000:]
    assert "Usage: gridrisk" in out.stdout and "train" in out.stdout
