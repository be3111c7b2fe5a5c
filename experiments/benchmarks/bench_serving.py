"""Benchmark the scoring service in one run, on loopback, with one champion model.

1. live scoring: single-row `POST /v1/arrears/score` with features and top-5 reasons under uvicorn (1 worker)
   against `mlflow models serve` of the same model (probability only): 2,000 sequential requests, then 4
   concurrent clients; p50, p99, req/s and the ratio. Targets: >= 3x mlflow's req/s, p99 <= 15 ms.
2. by id from the snapshot: >= 1,000 req/s on one worker, p99 <= 5 ms; a 1,000-customer request <= 50 ms.
3. batch: `score_frame` of 1,000,000 customers with top-5 reasons: <= 10 minutes on 2 cores, and the reason
   step within 1.25x of LightGBM's bare `pred_contrib` on the same matrix.
Also: TreeSHAP cost per row next to test AUC for the champion and two other tree sizes.

The champion is trained here on a generated utility (arrears, the project's default LightGBM settings) and
registered in a throw-away SQLite MLflow store. The 1,000,000 batch rows are drawn from the real scoring
frame's rows (bootstrap, fresh ids), so feature distributions are realistic.

    python experiments/benchmarks/bench_serving.py [--customers 4000] [--batch-rows 1000000] [--requests 2000]
"""

from __future__ import annotations

import argparse
import json
import os
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

import numpy as np
import pandas as pd

BIN = Path(sys.executable).parent
REPORT = Path(__file__).resolve().parents[1] / "reports" / "serving"
TASK = "arrears"


# -- the champion --------------------------------------------------------------------------------------------
def build_population(customers: int, work: Path) -> tuple[Path, pd.DataFrame, list[pd.Timestamp]]:
    from features.labels import latest_labelable_as_of
    from features.synthetic import GeneratorConfig, generate
    from features.training_set import build_training_set

    warehouse = work / "warehouse"
    generate(
        GeneratorConfig(customers=customers, start="2021-01", months=36, seed=11, daily_days=200), warehouse
    )
    last = pd.Timestamp(latest_labelable_as_of(warehouse, TASK)).to_period("M") - 1
    dates = [(last - i).to_timestamp(how="end").normalize() for i in range(8, -1, -1)]
    return warehouse, build_training_set(warehouse, TASK, dates), dates


def fit(frame: pd.DataFrame, dates: list[pd.Timestamp], params: dict, rounds: int):
    """Train on six as-of dates, stop early on the seventh, test on the last; returns (package, test AUC)."""
    import lightgbm
    from sklearn.metrics import roc_auc_score

    from features.feature_sets import FEATURE_DOCS, TASK_FEATURES
    from serving.model import Calibrator, FeatureSpec, PackagedModel, ReasonText

    names = TASK_FEATURES[TASK]
    train, valid, test = (frame[frame["as_of"].isin(d)] for d in (dates[:6], dates[6:7], dates[-1:]))
    spec = FeatureSpec.from_frame(train, names)
    data = lightgbm.Dataset(
        spec.matrix(train), train["label"], feature_name=names, categorical_feature=spec.categorical_indices
    )
    booster = lightgbm.train(
        {"objective": "binary", "verbose": -1, "seed": 1, **params}, data, num_boost_round=rounds,
        valid_sets=[lightgbm.Dataset(spec.matrix(valid), valid["label"], reference=data)],
        callbacks=[lightgbm.early_stopping(50, verbose=False)],
    )  # fmt: skip
    reasons = {n: ReasonText.from_doc(d) for n in names if (d := FEATURE_DOCS.get(n)) is not None}
    package = PackagedModel(TASK, booster, spec, Calibrator("none"), reasons)
    package.score_quantiles = np.quantile(
        package.predict_proba(spec.matrix(valid)), np.linspace(0, 1, 101)
    ).tolist()
    auc = float(roc_auc_score(test["label"], package.predict_proba(spec.matrix(test))))
    package.metrics = {"test_roc_auc": auc}
    return package, auc


def explain_ms_per_row(package, X: np.ndarray) -> float:
    start = time.perf_counter()
    package.contributions(X)
    return (time.perf_counter() - start) * 1000 / len(X)


def register(package, tracking_uri: str, work: Path) -> None:
    import mlflow

    from serving.model import pyfunc_class

    mlflow.set_tracking_uri(tracking_uri)
    # Artifacts beside the store, not MLflow's fallback ./mlruns in whatever folder the benchmark runs from.
    experiment = mlflow.create_experiment("bench-serving", artifact_location=(work / "mlartifacts").as_uri())
    with mlflow.start_run(experiment_id=experiment):
        info = mlflow.pyfunc.log_model(
            name="model",
            python_model=pyfunc_class()(),
            artifacts={"package": str(package.save(work / "package"))},
            pip_requirements=["lightgbm", "pandas"],
            registered_model_name=f"gridrisk-{TASK}",
        )
    mlflow.MlflowClient(tracking_uri).set_registered_model_alias(
        f"gridrisk-{TASK}", "champion", info.registered_model_version
    )


# -- servers and load ----------------------------------------------------------------------------------------
def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def start(cmd: list[str], env: dict[str, str], url: str, log: Path) -> subprocess.Popen:
    import httpx

    proc = subprocess.Popen(
        cmd, env=env, stdout=log.open("ab"), stderr=subprocess.STDOUT, start_new_session=True
    )
    deadline = time.monotonic() + 180
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"{cmd[:3]} exited with {proc.returncode}; see {log}")
        try:
            if httpx.get(url, timeout=1).status_code == 200:
                return proc
        except httpx.HTTPError:
            pass
        time.sleep(0.3)
    raise TimeoutError(f"{url} not up after 180 s; see {log}")


def stop(proc: subprocess.Popen) -> None:
    if proc.poll() is None:
        os.killpg(proc.pid, 15)
        try:
            proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, 9)
            proc.wait()


def load(url: str, bodies: list[dict], headers: dict[str, str], clients: int) -> dict[str, float]:
    """Send every body once, split over `clients` threads each with its own keep-alive connection."""
    import httpx

    latencies: list[float] = []
    errors = 0
    lock = threading.Lock()

    def run(part: list[dict]) -> None:
        nonlocal errors
        mine, bad = [], 0
        with httpx.Client(timeout=30) as c:
            c.post(url, json=part[0], headers=headers)  # warm the connection
            for body in part:
                t = time.perf_counter()
                r = c.post(url, json=body, headers=headers)
                mine.append(time.perf_counter() - t)
                bad += r.status_code != 200
        with lock:
            latencies.extend(mine)
            errors += bad

    parts = [bodies[i::clients] for i in range(clients)]
    threads = [threading.Thread(target=run, args=(p,)) for p in parts]
    start_time = time.perf_counter()
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    wall = time.perf_counter() - start_time
    ms = np.asarray(latencies) * 1000
    return {"requests": len(bodies), "errors": errors, "p50_ms": float(np.percentile(ms, 50)),
            "p99_ms": float(np.percentile(ms, 99)), "req_per_s": len(bodies) / wall}  # fmt: skip


def bench_http(package, frame: pd.DataFrame, work: Path, tracking_uri: str, requests: int) -> dict:
    import httpx

    from serving.access import create_key

    home = work / "home"
    key, _ = create_key(home / "keys.json", "admin")
    env = {
        **os.environ,
        "PATH": f"{BIN}:{os.environ.get('PATH', '')}",
        "MLFLOW_TRACKING_URI": tracking_uri,
        "GRIDRISK_HOME": str(home),
        "GRIDRISK_TASKS": f'["{TASK}"]',
        "GRIDRISK_POLL_SECONDS": "0",
    }
    names = package.spec.names
    rows = frame.sample(requests, replace=True, random_state=0)
    plain = rows[names].astype(object).where(rows[names].notna(), None)
    records = [{"records": [r]} for r in plain.to_dict("records")]
    mlflow_bodies = [
        {"dataframe_split": {"columns": names, "data": [list(r.values())]}} for r in plain.to_dict("records")
    ]
    ids = [{"customer_ids": [c]} for c in rows["customer_id"]]
    out: dict = {}
    api_port, ml_port = free_port(), free_port()
    api = start([str(BIN / "gridrisk"), "serve", "--port", str(api_port)], env,
                f"http://127.0.0.1:{api_port}/ready", work / "api.log")  # fmt: skip
    try:
        score_url = f"http://127.0.0.1:{api_port}/v1/{TASK}/score"
        headers = {"X-API-Key": key}
        check = httpx.post(score_url, json=records[0], headers=headers).json()
        assert len(check["results"][0]["reasons"]) == 5, check
        out["gridrisk_live"] = {str(c): load(score_url, records, headers, c) for c in (1, 4)}
        out["gridrisk_by_id"] = {str(c): load(score_url, ids, headers, c) for c in (1, 4)}
        # 1,000 customers per request (all of them in a population smaller than that)
        big = {"customer_ids": frame["customer_id"].sample(min(1000, len(frame)), random_state=1).tolist()}
        with httpx.Client(timeout=30) as c:
            times = []
            for _ in range(21):
                t = time.perf_counter()
                assert c.post(score_url, json=big, headers=headers).status_code == 200
                times.append((time.perf_counter() - t) * 1000)
        out["gridrisk_by_id_1000"] = {
            "ids": len(big["customer_ids"]),
            "median_ms": statistics.median(times[1:]),
            "max_ms": max(times[1:]),
        }
    finally:
        stop(api)
    mlflow = start([str(BIN / "mlflow"), "models", "serve", "-m", f"models:/gridrisk-{TASK}@champion",
                    "--env-manager", "local", "-h", "127.0.0.1", "-p", str(ml_port)], env,
                   f"http://127.0.0.1:{ml_port}/ping", work / "mlflow-serve.log")  # fmt: skip
    try:
        url = f"http://127.0.0.1:{ml_port}/invocations"
        out["mlflow_serve"] = {str(c): load(url, mlflow_bodies, {}, c) for c in (1, 4)}
    finally:
        stop(mlflow)
    return out


# -- batch ---------------------------------------------------------------------------------------------------
def bench_batch(package, frame: pd.DataFrame, rows: int) -> dict:
    from serving.schemas import ModelRef
    from serving.scoring import explain
    from serving.snapshot import CHUNK_ROWS, score_frame, write_snapshot

    big = frame.sample(rows, replace=True, random_state=2).reset_index(drop=True)
    big["customer_id"] = [f"B{i:08d}" for i in range(rows)]
    X = package.spec.matrix(big)
    bare = 0.0
    for s in range(0, rows, CHUNK_ROWS):  # LightGBM alone, same chunks: the floor
        t = time.perf_counter()
        package.booster.predict(X[s : s + CHUNK_ROWS], pred_contrib=True)
        bare += time.perf_counter() - t
    # Our reason step (pred_contrib, margin, top-5, decoding) against the bare call on the first two chunks.
    sample = X[: 2 * CHUNK_ROWS]
    bare_sample = reasons = 0.0
    for s in range(0, len(sample), CHUNK_ROWS):
        t = time.perf_counter()
        package.booster.predict(sample[s : s + CHUNK_ROWS], pred_contrib=True)
        bare_sample += time.perf_counter() - t
        t = time.perf_counter()
        explain(package, sample[s : s + CHUNK_ROWS], 5)
        reasons += time.perf_counter() - t
    t = time.perf_counter()
    scores = score_frame(package, big, ModelRef(name=f"gridrisk-{TASK}", version="1"))
    full = time.perf_counter() - t
    with tempfile.TemporaryDirectory() as tmp:
        t = time.perf_counter()
        write_snapshot(scores, Path(tmp), TASK, pd.Timestamp(big["as_of"].iloc[0]).date())
        write = time.perf_counter() - t
    return {
        "rows": rows,
        "bare_pred_contrib_s": bare,
        "reason_step_sample_rows": len(sample),
        "reason_over_bare": reasons / bare_sample,
        "score_frame_s": full,
        "score_frame_over_bare": full / bare,
        "write_s": write,
        "total_s": full + write,
        "ms_per_row": 1000 * (full + write) / rows,
    }


def plot(result: dict, path: Path) -> None:
    """Requests per second and p99 latency of each way of scoring, sequential and with 4 clients."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    http = result["http"]
    rows = [
        ("mlflow models serve\n(probability only)", http["mlflow_serve"]),
        ("gridrisk live\n(features + top-5 reasons)", http["gridrisk_live"]),
        ("gridrisk by id\n(snapshot + reasons)", http["gridrisk_by_id"]),
    ]
    fig, axes = plt.subplots(1, 2, figsize=(10, 3.6))
    for ax, metric, title in (
        (axes[0], "req_per_s", "requests per second"),
        (axes[1], "p99_ms", "p99 latency, ms"),
    ):
        y = np.arange(len(rows))
        for offset, clients, colour in ((-0.2, "1", "#8da0cb"), (0.2, "4", "#fc8d62")):
            values = [r[1][clients][metric] for r in rows]
            ax.barh(
                y + offset,
                values,
                height=0.38,
                color=colour,
                label=f"{clients} client{'s' if clients != '1' else ''}",
            )
            for yi, v in zip(y + offset, values, strict=True):
                ax.text(
                    v, yi, f" {v:,.0f}" if metric == "req_per_s" else f" {v:.1f}", va="center", fontsize=8
                )
        ax.set_yticks(y, [r[0] for r in rows], fontsize=8)
        ax.invert_yaxis()
        ax.set_title(title, fontsize=10)
        ax.spines[["top", "right"]].set_visible(False)
    axes[0].legend(fontsize=8, frameon=False)
    fig.suptitle(f"Single-row scoring over loopback, uvicorn 1 worker, {result['machine']}", fontsize=10)
    fig.tight_layout()
    fig.savefig(path, dpi=110)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--customers", type=int, default=4000)
    parser.add_argument("--batch-rows", type=int, default=1_000_000)
    parser.add_argument("--requests", type=int, default=2000)
    parser.add_argument("--plot-only", action="store_true", help="redraw the chart from the last JSON report")
    parser.add_argument(
        "--out",
        type=Path,
        default=None,
        help=f"folder for bench_serving.json and the chart (default: {REPORT} at the default sizes, "
        "else a temporary folder, so a small run never replaces the published figures)",
    )
    args = parser.parse_args()
    published = args.plot_only or all(
        getattr(args, k) == parser.get_default(k) for k in ("customers", "batch_rows", "requests")
    )
    out = args.out or (REPORT if published else Path(tempfile.mkdtemp(prefix="bench-serving-report-")))
    if args.plot_only:
        plot(json.loads((out / "bench_serving.json").read_text()), out / "serving_latency.png")
        return
    os.environ.setdefault("MLFLOW_ENABLE_ARTIFACTS_PROGRESS_BAR", "false")
    result: dict = {"machine": f"{os.cpu_count()} cores", "customers": args.customers}
    with tempfile.TemporaryDirectory(prefix="bench-serving-") as tmp:
        work = Path(tmp)
        t = time.perf_counter()
        warehouse, training, dates = build_population(args.customers, work)
        result["training_rows"] = len(training)
        sizes = {
            "champion: 15 leaves, depth 5 (project default)": ({"num_leaves": 15, "max_depth": 5,
                                                                 "learning_rate": 0.05}, 400),
            "31 leaves, depth 8": ({"num_leaves": 31, "max_depth": 8, "learning_rate": 0.05}, 400),
            "63 leaves, unlimited depth": ({"num_leaves": 63, "max_depth": -1, "learning_rate": 0.05}, 400),
        }  # fmt: skip
        test_X = None
        result["tree_sizes"] = {}
        for label, (params, rounds) in sizes.items():
            package, auc = fit(training, dates, params, rounds)
            test_X = package.spec.matrix(training[training["as_of"] == dates[-1]].head(1000))
            result["tree_sizes"][label] = {
                "trees": package.booster.num_trees(),
                "test_roc_auc": auc,
                "explain_ms_per_row": explain_ms_per_row(package, test_X),
            }
            if label.startswith("champion"):
                champion = package
        result["setup_s"] = time.perf_counter() - t
        tracking_uri = f"sqlite:///{work / 'mlflow.db'}"
        register(champion, tracking_uri, work)

        from features.training_set import build_scoring_frame
        from serving.batch import score_population
        from serving.settings import ServingSettings

        settings = ServingSettings(home=work / "home", warehouse=warehouse, tasks=[TASK])
        os.environ["MLFLOW_TRACKING_URI"] = tracking_uri
        report = score_population(settings, TASK)
        result["gridrisk_score"] = {"rows": report.rows, "as_of": report.as_of.isoformat(), **report.seconds}
        frame = build_scoring_frame(warehouse, TASK, pd.Timestamp(report.as_of))
        result["http"] = bench_http(champion, frame, work, tracking_uri, args.requests)
        result["batch"] = bench_batch(champion, frame, args.batch_rows)
    live, ml = result["http"]["gridrisk_live"], result["http"]["mlflow_serve"]
    result["live_ratio"] = {c: live[c]["req_per_s"] / ml[c]["req_per_s"] for c in live}
    out.mkdir(parents=True, exist_ok=True)
    (out / "bench_serving.json").write_text(json.dumps(result, indent=1, default=str))
    plot(result, out / "serving_latency.png")
    print(json.dumps(result, indent=1, default=str))
    print(f"report and chart written to {out}")


if __name__ == "__main__":
    main()
