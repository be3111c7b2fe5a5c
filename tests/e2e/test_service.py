"""The service for real: an `mlflow server` (SQLite, loopback), a uvicorn process, and traffic over HTTP.

Covers scoring, lists, 401/403, audit lines, a champion moved mid-traffic with zero failed requests, a
restart while the tracking server is down (the local copy is served and /ready says so), and `/metrics`
across two workers.
"""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "serving"))
from tinymodel import FEATURES, scoring_frame, train_package, write_customers

from serving.access import create_key
from serving.model import PackagedModel, pyfunc_class
from serving.schemas import ModelRef
from serving.settings import ServingSettings
from serving.snapshot import score_frame, write_snapshot

pytestmark = [pytest.mark.e2e, pytest.mark.slow]
BIN = Path(sys.executable).parent


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_for(url: str, seconds: float, proc: subprocess.Popen) -> None:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"{proc.args[0]} exited with {proc.returncode} before {url} answered")
        try:
            if httpx.get(url, timeout=1).status_code < 500:
                return
        except httpx.HTTPError:
            pass
        time.sleep(0.25)
    raise TimeoutError(f"{url} did not answer within {seconds} s")


def stop(proc: subprocess.Popen, seconds: float = 5) -> None:
    if proc.poll() is None:
        os.killpg(proc.pid, 15)
        try:
            proc.wait(timeout=seconds)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, 9)
            proc.wait()


def start_mlflow(root: Path, port: int) -> subprocess.Popen:
    store = f"sqlite:///{root / 'mlflow.db'}"
    proc = subprocess.Popen(
        [
            str(BIN / "mlflow"), "server", "--host", "127.0.0.1", "--port", str(port), "--workers", "1",
            "--backend-store-uri", store, "--artifacts-destination", str(root / "art"),
        ],
        stdout=(root / "mlflow.log").open("ab"), stderr=subprocess.STDOUT, start_new_session=True,
        env={**os.environ, "PATH": f"{BIN}:{os.environ.get('PATH', '')}"},
    )  # fmt: skip
    wait_for(f"http://127.0.0.1:{port}/health", 90, proc)
    return proc


def start_service(home: Path, tracking_uri: str, port: int, workers: int = 1) -> subprocess.Popen:
    env = {
        **os.environ,
        "GRIDRISK_HOME": str(home),
        "GRIDRISK_TASKS": '["arrears"]',
        "GRIDRISK_POLL_SECONDS": "1",
        "MLFLOW_TRACKING_URI": tracking_uri,
    }
    proc = subprocess.Popen(
        [str(BIN / "gridrisk"), "serve", "--host", "127.0.0.1", "--port", str(port), "--workers",
         str(workers)],
        stdout=(home / "uvicorn.log").open("ab"), stderr=subprocess.STDOUT, start_new_session=True, env=env,
    )  # fmt: skip
    wait_for(f"http://127.0.0.1:{port}/health", 60, proc)
    return proc


def register(tracking_uri: str, package: PackagedModel, workdir: Path) -> str:
    """Log the package as training does (pyfunc with the package as an artifact) and make it champion."""
    import mlflow

    mlflow.set_tracking_uri(tracking_uri)
    client = mlflow.MlflowClient(tracking_uri)
    with mlflow.start_run():
        path = package.save(Path(tempfile.mkdtemp(dir=workdir)) / "package")
        info = mlflow.pyfunc.log_model(
            name="model",
            python_model=pyfunc_class()(),
            artifacts={"package": str(path)},
            pip_requirements=["lightgbm", "pandas"],
            registered_model_name="gridrisk-arrears",
        )
    version = str(info.registered_model_version)
    client.set_registered_model_alias("gridrisk-arrears", "champion", version)
    return version


class Live:
    def __init__(self, url: str, home: Path, keys: dict[str, str], tracking_uri: str) -> None:
        self.url, self.home, self.keys, self.tracking_uri = url, home, keys, tracking_uri

    def h(self, role: str) -> dict[str, str]:
        return {"X-API-Key": self.keys[role]}


@pytest.fixture(scope="module")
def live(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Live]:
    root = tmp_path_factory.mktemp("e2e")
    home = root / "home"
    home.mkdir()
    ml_port, api_port = free_port(), free_port()
    mlflow_proc = start_mlflow(root, ml_port)
    tracking_uri = f"http://127.0.0.1:{ml_port}"
    procs = [mlflow_proc]
    try:
        package = train_package(seed=0)
        register(tracking_uri, package, root)
        scores = score_frame(package, scoring_frame(), ModelRef(name="gridrisk-arrears", version="1"))
        write_snapshot(scores, home / "snapshots", "arrears", scoring_frame()["as_of"].iloc[0].date())
        write_customers(ServingSettings(home=home), scoring_frame())  # names for lists: /ready is `ready`
        keys = {
            "service": create_key(home / "keys.json", "service")[0],
            "admin": create_key(home / "keys.json", "admin")[0],
            "collector": create_key(home / "keys.json", "collector", stations=["S02"])[0],
        }
        procs.append(start_service(home, tracking_uri, api_port))
        yield Live(f"http://127.0.0.1:{api_port}", home, keys, tracking_uri)
    finally:
        for proc in reversed(procs):
            stop(proc)


def records(ids: list[str]) -> list[dict]:
    frame = scoring_frame().set_index("customer_id").loc[ids, FEATURES]
    return [
        {"customer_id": cid, **{k: (None if v != v else v) for k, v in row.items()}}  # NaN -> null
        for cid, row in frame.iterrows()
    ]


def test_scores_lists_and_access_over_http(live: Live):
    with httpx.Client(base_url=live.url, timeout=10) as c:
        ready = c.get("/ready").json()
        assert ready["status"] == "ready" and ready["registry_reachable"]
        assert ready["tasks"][0]["source"] == "registry"
        by_id = c.post("/v1/arrears/score", json={"customer_ids": ["C0000001"]}, headers=live.h("service"))
        assert by_id.status_code == 200 and by_id.json()["model"]["version"] == "1"
        scored = c.post(
            "/v1/arrears/score", json={"records": records(["C0000001"])}, headers=live.h("service")
        )
        assert scored.status_code == 200
        assert scored.json()["results"][0]["probability"] == pytest.approx(
            by_id.json()["results"][0]["probability"], abs=1e-12
        )
        listed = c.get("/v1/arrears/risk-list", params={"top": 5}, headers=live.h("collector"))
        assert listed.status_code == 200 and {i["station"] for i in listed.json()["items"]} == {"S02"}
        assert c.get("/v1/arrears/risk-list").status_code == 401
        assert (
            c.get("/v1/arrears/risk-list", params={"station": "S01"}, headers=live.h("collector")).status_code
            == 403
        )
        assert c.post("/v1/admin/reload", headers=live.h("service")).status_code == 403
        assert (
            c.post("/v1/arrears/score", json={"customer_ids": ["X"]}, headers=live.h("service")).status_code
            == 404
        )
        assert (
            c.post("/v1/arrears/score", json={"records": [{}]}, headers=live.h("service")).status_code == 422
        )
        assert "gridrisk_model_info" in c.get("/metrics").text
        models = c.get("/v1/models", headers=live.h("admin")).json()
        assert models["models"][0]["registry_versions"][0]["aliases"] == ["champion"]
    audit = [json.loads(x) for x in (live.home / "audit.log").read_text().splitlines()]
    assert {"score", "risk_list"} <= {a["action"] for a in audit}
    assert all("王小" not in json.dumps(a, ensure_ascii=False) for a in audit)


def test_champion_moves_mid_traffic_with_zero_failed_requests(live: Live, tmp_path: Path):
    body = {"records": records(["C0000001", "C0000002"])}
    failures: list[str] = []
    versions: list[str] = []
    stop_event = threading.Event()

    def client_loop() -> None:
        with httpx.Client(base_url=live.url, timeout=10) as c:
            while not stop_event.is_set():
                try:
                    r = c.post("/v1/arrears/score", json=body, headers=live.h("service"))
                except httpx.HTTPError as exc:
                    failures.append(repr(exc))
                    continue
                if r.status_code != 200:
                    failures.append(f"{r.status_code} {r.text[:200]}")
                else:
                    versions.append(r.json()["model"]["version"])

    threads = [threading.Thread(target=client_loop) for _ in range(4)]
    for t in threads:
        t.start()
    try:
        time.sleep(1.0)
        new_version = register(live.tracking_uri, train_package(seed=1, trees=40), tmp_path)
        deadline = time.monotonic() + 20  # the poller checks every second; reload forces it now
        with httpx.Client(base_url=live.url, timeout=30) as admin:
            admin.post("/v1/admin/reload", headers=live.h("admin"))
        while time.monotonic() < deadline and (not versions or versions[-1] != new_version):
            time.sleep(0.2)
        time.sleep(1.0)
    finally:
        stop_event.set()
        for t in threads:
            t.join()
    assert failures == []
    assert versions[0] == "1" and versions[-1] == new_version
    assert len(versions) > 50


def test_restart_with_the_tracking_server_down_serves_the_local_copy(live: Live):
    dead = f"http://127.0.0.1:{free_port()}"  # nothing listens here
    port = free_port()
    proc = start_service(live.home, dead, port)
    try:
        with httpx.Client(base_url=f"http://127.0.0.1:{port}", timeout=10) as c:
            ready = c.get("/ready")
            assert ready.status_code == 200
            body = ready.json()
            assert body["status"] == "degraded" and not body["registry_reachable"]
            assert body["tasks"][0]["source"] == "local-cache" and "unreachable" in body["tasks"][0]["detail"]
            r = c.post(
                "/v1/arrears/score", json={"records": records(["C0000003"])}, headers=live.h("service")
            )
            assert r.status_code == 200 and r.json()["model"]["version"] == "2"
    finally:
        stop(proc)


def metric(text: str, name: str, **labels: str) -> list[float]:
    """Every value of `name` in Prometheus text whose labels include `labels`."""
    found = []
    for line in text.splitlines():
        head, _, value = line.rpartition(" ")
        if head.split("{")[0] == name and all(f'{k}="{v}"' in head for k, v in labels.items()):
            found.append(float(value))
    return found


def worker_pids(pid: int) -> list[int]:
    """uvicorn's worker processes (multiprocessing's resource tracker is a child too)."""
    children = [int(p) for p in Path(f"/proc/{pid}/task/{pid}/children").read_text().split()]
    return [p for p in children if b"spawn_main" in Path(f"/proc/{p}/cmdline").read_bytes()]


def test_metrics_answer_for_every_worker_and_keep_a_killed_ones_counts(live: Live):
    # With --workers 2 each scrape answered with the counts of the worker that took it (705, then 791).
    port = free_port()
    proc = start_service(live.home, live.tracking_uri, port, workers=2)
    url = f"http://127.0.0.1:{port}"
    body = {"customer_ids": ["C0000001"]}
    try:
        for _ in range(40):  # a new connection each: the kernel hands them to either worker
            assert (
                httpx.post(f"{url}/v1/arrears/score", json=body, headers=live.h("service")).status_code == 200
            )
        served = httpx.get(f"{url}/ready").json()["tasks"][0]["model"]["version"]
        for _ in range(6):
            text = httpx.get(f"{url}/metrics").text
            assert metric(text, "gridrisk_requests_total", route="/v1/{task}/score", status="200") == [40.0]
            info = metric(text, "gridrisk_model_info", task="arrears")
            assert info == [1.0] and f'version="{served}"' in text
        workers = worker_pids(proc.pid)
        assert len(workers) == 2
        environ = Path(f"/proc/{workers[1]}/environ").read_bytes().split(b"\0")
        folder = Path(
            next(v for v in environ if v.startswith(b"PROMETHEUS_MULTIPROC_DIR=")).split(b"=", 1)[1].decode()
        )
        assert list(folder.glob(f"gauge_live*_{workers[0]}.db"))
        os.kill(workers[0], 9)  # uvicorn starts another; the dead one's counts stay, its gauges go
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline and (
            len(worker_pids(proc.pid)) < 2 or workers[0] in worker_pids(proc.pid)
        ):
            time.sleep(0.2)
        wait_for(f"{url}/health", 30, proc)
        for _ in range(6):
            text = httpx.get(f"{url}/metrics").text
            assert metric(text, "gridrisk_requests_total", route="/v1/{task}/score", status="200") == [40.0]
            assert metric(text, "gridrisk_model_info", task="arrears") == [1.0]
        assert not list(folder.glob(f"gauge_live*_{workers[0]}.db"))
    finally:
        stop(proc, seconds=30)  # the parent waits for both workers, then removes the folder
    assert not folder.exists()  # removed with the server: the next run starts from zero


def test_two_workers_on_a_new_registry_file_both_start_and_say_it_was_missing(tmp_path: Path):
    # Both made the missing mlflow.db's tables at once and one failed its start-up (alembic: "Online migration
    # expected to match one row"); the parent now opens it first, and tells the workers it was missing.
    home = tmp_path / "home"
    home.mkdir()
    port = free_port()
    proc = start_service(home, f"sqlite:///{home / 'mlflow.db'}", port, workers=2)
    log = home / "uvicorn.log"
    try:
        deadline = time.monotonic() + 60  # /health answers when the first worker is up
        while time.monotonic() < deadline and log.read_text().count("Application startup complete") < 2:
            assert "startup failed" not in log.read_text()
            time.sleep(0.2)
        for _ in range(6):
            tasks = httpx.get(f"http://127.0.0.1:{port}/ready").json()["tasks"]
            assert "restore it from a backup" in tasks[0]["detail"]
    finally:
        stop(proc, seconds=30)
    text = log.read_text()
    assert text.count("Application startup complete") == 2 and "startup failed" not in text
