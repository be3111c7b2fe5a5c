"""Training against a real `mlflow server` (SQLite backend, proxied artifacts, loopback): train one task on
the shared generated warehouse, register it, load `models:/gridrisk-arrears@champion` back and predict."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from typer.testing import CliRunner

pytestmark = [pytest.mark.e2e, pytest.mark.slow]
BIN = Path(sys.executable).parent
CONFIG = Path(__file__).resolve().parents[2] / "experiments" / "configs" / "arrears.toml"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture
def mlflow_server(tmp_path: Path) -> Iterator[tuple[str, Path]]:
    """`mlflow server` on a free loopback port; stopped by its PID (and its process group) on teardown."""
    port = free_port()
    root = tmp_path / "server"
    root.mkdir()
    log = (root / "mlflow.log").open("ab")
    proc = subprocess.Popen(
        [
            str(BIN / "mlflow"), "server", "--host", "127.0.0.1", "--port", str(port), "--workers", "1",
            "--backend-store-uri", f"sqlite:///{root / 'mlflow.db'}",
            "--artifacts-destination", str(root / "art"),
        ],
        stdout=log, stderr=subprocess.STDOUT, start_new_session=True,
        env={**os.environ, "PATH": f"{BIN}:{os.environ.get('PATH', '')}"},
    )  # fmt: skip
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 120
        while True:
            if proc.poll() is not None:
                raise RuntimeError(f"mlflow server exited with {proc.returncode}; see {root / 'mlflow.log'}")
            try:
                if httpx.get(f"{url}/health", timeout=1).status_code == 200:
                    break
            except httpx.HTTPError:
                pass
            if time.monotonic() > deadline:
                raise TimeoutError(f"mlflow server at {url} not healthy after 120 s")
            time.sleep(0.25)
        yield url, root / "art"
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, 15)
            try:
                proc.wait(timeout=5)
            except subprocess.TimeoutExpired:
                os.killpg(proc.pid, 9)
                proc.wait()
        log.close()


def test_train_register_and_load_champion_through_a_tracking_server(
    mlflow_server: tuple[str, Path], generated_dir: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import mlflow

    from features.training_set import build_scoring_frame
    from gridrisk.cli import app
    from serving.model import load_packaged_model

    url, served_artifacts = mlflow_server
    home = tmp_path / "home"
    monkeypatch.setenv("MLFLOW_TRACKING_URI", url)
    monkeypatch.setenv("GRIDRISK_HOME", str(home))
    # A shorter as-of range and one LightGBM thread keep this test quick; the rest is the shipped file.
    config = tmp_path / "arrears.toml"
    text = CONFIG.read_text(encoding="utf-8").replace('start = "auto"', 'start = "2022-06"')
    config.write_text(text.replace("num_threads = 2", "num_threads = 1"))

    result = CliRunner().invoke(app, ["train", str(config), "--warehouse", str(generated_dir)])
    assert result.exit_code == 0, result.output
    assert "promoted to champion" in result.output

    # Nothing went to the embedded store: runs and artifacts live behind the server.
    assert not (home / "mlflow.db").exists() and not (home / "mlartifacts").exists()
    assert any(served_artifacts.rglob("booster.txt"))

    mlflow.set_tracking_uri(url)
    champion = "models:/gridrisk-arrears@champion"
    pyfunc = mlflow.pyfunc.load_model(champion, dst_path=str(tmp_path))
    package = load_packaged_model(champion, tmp_path / "download")
    frame = build_scoring_frame(generated_dir, "arrears", "2023-06-30").head(50)
    out = pyfunc.predict(frame[package.spec.names])
    assert len(out) == 50 and out["probability"].between(0, 1).all()
    # The pyfunc and the package the service loads give the same probabilities.
    direct = package.predict_proba(package.spec.matrix(frame))
    assert abs(out["probability"].to_numpy() - direct).max() < 1e-12
    assert package.info["task"] == "arrears" and package.reasons  # reason texts travel with the model
