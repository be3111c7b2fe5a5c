"""`gridrisk serve` as an operator runs it: the log of every worker, and the signals (SIGHUP reloads, SIGTERM
stops with exit code 0), on a real uvicorn process over a home with an empty SQLite registry."""

from __future__ import annotations

import os
import re
import signal
import subprocess
import time
from pathlib import Path

import httpx
import pytest
from test_service import free_port, start_service, stop, worker_pids

pytestmark = [pytest.mark.e2e, pytest.mark.slow]

# gridrisk's format: time, level, logger. Lines from a worker came out bare or not at all with --workers 2.
STAMP = r"^\d{4}-\d\d-\d\d \d\d:\d\d:\d\d,\d{3} "
PID = r" \[\d+\]"


def lines(log: Path, level: str, logger: str, text: str) -> list[str]:
    pattern = re.compile(f"{STAMP}{level}{PID} {re.escape(logger)}: {re.escape(text)}", re.M)
    return pattern.findall(log.read_text())


def wait_until(check, seconds: float = 90) -> None:  # type: ignore[no-untyped-def]
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if check():
            return
        time.sleep(0.2)
    raise TimeoutError("not within the time")


def started(tmp_path: Path, workers: int) -> tuple[subprocess.Popen, Path, Path]:
    """A service on a new home with an empty SQLite registry, once every worker has started: the process,
    the home and its log."""
    home = tmp_path / "home"
    home.mkdir()
    port = free_port()
    proc = start_service(home, f"sqlite:///{home / 'mlflow.db'}", port, workers=workers)
    proc.url = f"http://127.0.0.1:{port}"  # type: ignore[attr-defined]
    log = home / "uvicorn.log"
    wait_until(lambda: log.read_text().count("Application startup complete") >= workers)
    return proc, home, log


def test_two_workers_log_in_gridrisk_format_and_reload_on_sighup(tmp_path: Path):
    proc, home, log = started(tmp_path, workers=2)
    try:
        # Each worker's INFO and WARNING lines, with time, level and logger.
        assert len(lines(log, "INFO", "serving.main", "serving ")) == 2, log.read_text()
        assert len(lines(log, "WARNING", "serving.service", "no customers table at ")) == 2
        assert lines(log, "INFO", "uvicorn.error", "Started parent process")  # uvicorn's lines are dated too
        workers = sorted(worker_pids(proc.pid))
        # SIGHUP to the parent (systemd's ExecReload) is a reload, not a restart that never finished.
        os.kill(proc.pid, signal.SIGHUP)
        wait_until(lambda: lines(log, "INFO", "serving.signals", "SIGHUP: reload "), 30)
        assert (home / "reload-generation").exists()
        for _ in range(8):  # a fresh connection each: both workers take requests and follow the reload
            assert httpx.get(f"{proc.url}/v1/arrears/risk-list").status_code == 401  # type: ignore[attr-defined]
            assert httpx.get(f"{proc.url}/ready").status_code == 503  # type: ignore[attr-defined]
        wait_until(lambda: lines(log, "INFO", "serving.service", "reload from another worker"), 30)
        # A hang-up of the whole group (a terminal closed) leaves the workers serving.
        os.killpg(proc.pid, signal.SIGHUP)
        time.sleep(2)
        assert proc.poll() is None and sorted(worker_pids(proc.pid)) == workers
        assert "was not ready in time" not in log.read_text()
    finally:
        stop(proc, seconds=60)
    assert proc.returncode == 0


def test_one_worker_reloads_on_sighup_and_exits_0_on_sigterm(tmp_path: Path):
    # SIGHUP killed it at once with its requests in flight; SIGTERM left exit code 143 (0 with several).
    proc, _, log = started(tmp_path, workers=1)
    try:
        os.kill(proc.pid, signal.SIGHUP)
        wait_until(lambda: lines(log, "INFO", "serving.signals", "SIGHUP: reload "), 30)
        assert proc.poll() is None
        assert httpx.get(f"{proc.url}/health").status_code == 200  # type: ignore[attr-defined]
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(timeout=60) == 0
    finally:
        stop(proc)
    assert "Application shutdown complete" in log.read_text()
