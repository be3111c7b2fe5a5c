"""`gridrisk train | backtest | evaluate | promote` on the shared generated warehouse, through the CLI."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from typer.testing import CliRunner

from gridrisk.cli import app

pytestmark = pytest.mark.slow

SHIPPED = Path(__file__).resolve().parents[2] / "experiments" / "configs" / "arrears.toml"


@pytest.fixture
def config(tmp_path: Path) -> Path:
    """The shipped arrears config, shorter as-of range and one thread (less to build and fit, same rules)."""
    path = tmp_path / "arrears.toml"
    text = SHIPPED.read_text(encoding="utf-8").replace('start = "auto"', 'start = "2022-06"')
    # One LightGBM thread: in a pytest process OpenMP is already loaded with spinning waits (see the README).
    path.write_text(text.replace("num_threads = 2", "num_threads = 1"))
    return path


@pytest.fixture
def home(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.setenv("GRIDRISK_HOME", str(tmp_path / "home"))
    monkeypatch.delenv("MLFLOW_TRACKING_URI", raising=False)
    monkeypatch.delenv("GRIDRISK_WAREHOUSE", raising=False)
    return tmp_path / "home"


def invoke(*args: str):
    result = CliRunner().invoke(app, list(args), catch_exceptions=False, env={"COLUMNS": "160"})
    return result


def test_train_twice_reproduces_metrics_then_evaluate_and_promote(
    generated_dir: Path, home: Path, config: Path
) -> None:
    from mlflow import MlflowClient

    first = invoke("train", str(config), "--warehouse", str(generated_dir))
    assert first.exit_code == 0, first.output
    assert "promoted to champion" in first.output
    assert "rule baseline" in first.output and "oracle" in first.output
    assert "ROC-AUC standard error" in first.output
    second = invoke("train", str(config), "--warehouse", str(generated_dir))
    assert second.exit_code == 0, second.output
    assert "stays challenger" in second.output

    # The embedded store lives in the gridrisk home, artifacts included.
    uri = f"sqlite:///{(home / 'mlflow.db').resolve()}"
    client = MlflowClient(uri, uri)
    experiment = client.get_experiment_by_name("gridrisk-arrears")
    assert experiment.artifact_location.startswith((home / "mlartifacts").resolve().as_uri())
    runs = client.search_runs(
        [experiment.experiment_id],
        "tags.`gridrisk.kind` = 'training'",
        order_by=["attributes.start_time ASC"],
    )
    assert len(runs) == 2
    metrics = [r.data.metrics for r in runs]
    keys = [k for k in metrics[0] if k.startswith(("test_", "baseline_", "oracle_"))]
    assert "oracle_roc_auc" in keys and "test_amount_recall_at_5pct" in keys
    # Same config + same data = the same numbers, to the last bit.
    assert {k: metrics[0][k] for k in keys} == {k: metrics[1][k] for k in keys}
    # The seconds the command prints are the run's training_seconds plus the set's build_seconds (a tester
    # found 27.4 s printed against a training_seconds of 11.28).
    said = " ".join(second.output.split())
    built, trained = metrics[1]["build_seconds"], metrics[1]["training_seconds"]
    assert f"(training set {built:.1f} s, training_seconds {trained:.1f}, " in said, said
    # ... and the rest is said, so the parts add up to the total (a tester found 20.9 s against 4.7 + 14.7).
    import re

    total, *parts = re.search(
        r"([\d.]+) s \(training set ([\d.]+) s, training_seconds ([\d.]+), ([\d.]+) s closing the run", said
    ).groups()
    assert sum(float(p) for p in parts) == pytest.approx(float(total), abs=0.151)

    evaluated = invoke(
        "evaluate", "--task", "arrears", "--config", str(config), "--warehouse", str(generated_dir)
    )
    assert evaluated.exit_code == 0, evaluated.output
    evaluation = client.search_runs([experiment.experiment_id], "tags.`gridrisk.kind` = 'evaluation'")[0]
    # Scoring the registered champion on the same window reproduces the training run's test numbers.
    assert evaluation.data.metrics["test_roc_auc"] == pytest.approx(metrics[0]["test_roc_auc"], abs=1e-12)
    # The run names the version the alias pointed at, and the data, as a training run does.
    tags = evaluation.data.tags
    assert tags["model_uri"] == "models:/gridrisk-arrears@champion" and tags["model_version"] == "1"
    assert tags["data_fingerprint"] == runs[0].data.tags["data_fingerprint"]
    assert [d.dataset.digest for d in evaluation.inputs.dataset_inputs] == [tags["data_fingerprint"]]

    absent = invoke("promote", "--task", "arrears", "--version", "7", "--reason", "drill")
    assert absent.exit_code == 2 and "has no version '7'; its versions are 1, 2" in absent.output
    promoted = invoke("promote", "--task", "arrears", "--version", "2", "--reason", "drill")
    assert promoted.exit_code == 0 and "was 1" in promoted.output
    assert str(client.get_model_version_by_alias("gridrisk-arrears", "champion").version) == "2"


def test_backtest_prints_each_window_and_logs_a_run(generated_dir: Path, home: Path, config: Path) -> None:
    from mlflow import MlflowClient

    # Five more as-of dates than training uses: enough for the window before training's test window.
    config.write_text(config.read_text(encoding="utf-8").replace('start = "2022-06"', 'start = "2022-01"'))
    result = invoke("backtest", str(config), "--windows", "2", "--warehouse", str(generated_dir))
    assert result.exit_code == 0, result.output
    assert "arrears: backtest, amount_recall_at_5pct and ROC-AUC by test window" in result.output
    assert "model − logistic on amount_recall_at_5pct" in result.output and "of 2 windows" in result.output
    uri = f"sqlite:///{(home / 'mlflow.db').resolve()}"
    client = MlflowClient(uri, uri)
    experiment = client.get_experiment_by_name("gridrisk-arrears")
    (run,) = client.search_runs([experiment.experiment_id], "tags.`gridrisk.kind` = 'backtest'")
    assert run.data.params["windows"] == "2" and "backtest_mean_oracle_roc_auc" in run.data.metrics
    # Nothing is registered by a backtest.
    assert client.search_registered_models() == []


def test_cli_errors_are_clear(home: Path, tmp_path: Path) -> None:
    bad = tmp_path / "bad.toml"
    bad.write_text('task = "arrears"\n[lightgbm]\nnum_leafs = 7\n')
    result = invoke("train", str(bad))
    assert result.exit_code == 2 and "lightgbm.num_leafs" in result.output
    assert invoke("train").exit_code == 2
    assert invoke("backtest", "--task", "arrears", str(bad)).exit_code == 2
    missing = invoke("promote", "--task", "arrears", "--version", "1", "--reason", "x")
    assert missing.exit_code == 2 and "gridrisk-arrears" in missing.output  # the user's to fix, like a typo
    assert invoke("train", "--task", "arrears", "--trials", "0").exit_code == 2
    # An unknown task without a file was a ValueError traceback in all three.
    for command in ("train", "backtest", "evaluate"):
        unknown = invoke(command, "--task", "fraud")
        assert unknown.exit_code == 2 and "task 'fraud' is unknown" in unknown.output, unknown.output
    folder = invoke("train", str(tmp_path))  # an IsADirectoryError traceback
    assert folder.exit_code == 2 and "is a folder; name a TOML file" in folder.output


def test_a_bad_gridrisk_variable_is_a_usage_error(home: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    # `gridrisk score` already said so; train, features, ingest and generate showed pydantic's traceback.
    monkeypatch.setenv("GRIDRISK_POLL_SECONDS", "abc")
    result = invoke("train", "--task", "arrears")
    assert result.exit_code == 2 and "invalid GRIDRISK_POLL_SECONDS in the environment" in result.output
    assert "errors.pydantic.dev" not in result.output and "type=" not in result.output  # pydantic's own noise
    monkeypatch.delenv("GRIDRISK_POLL_SECONDS")
    home.parent.mkdir(parents=True, exist_ok=True)
    home.write_text("")  # GRIDRISK_HOME names a file: a FileExistsError traceback when MLflow made its store
    result = invoke("train", "--task", "arrears")
    assert result.exit_code == 2 and "is a file; point it at a folder" in result.output


def test_a_training_set_that_cannot_train_is_refused_before_any_task_runs(
    home: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import pandas as pd

    from gridrisk.commands import training as command

    def never(*args, **kwargs):  # type: ignore[no-untyped-def]
        raise AssertionError("the file is refused before any work")

    monkeypatch.setattr(command, "_train_one", never)
    table = tmp_path / "customers.parquet"  # a warehouse table named by mistake: no as-of, no label
    pd.DataFrame({"customer_id": ["C1"], "tariff": ["single"]}).to_parquet(table)
    scoring = tmp_path / "scoring.parquet"  # `gridrisk features --scoring`: as-of dates but no label
    pd.DataFrame({"customer_id": ["C1"], "as_of": [pd.Timestamp("2023-06-30")]}).to_parquet(scoring)
    text = tmp_path / "set.parquet"
    text.write_text("customer_id,label\n")  # a CSV saved under the Parquet name
    from training.tasks import task_spec

    theft = tmp_path / "theft.parquet"  # a theft set named in the arrears config
    columns = ["customer_id", "as_of", "label", "amount_at_stake", "station", *task_spec("theft").features]
    pd.DataFrame({c: [0.0] for c in columns}).to_parquet(theft)
    cases = [
        (tmp_path / "absent.parquet", "does not exist; build it with `gridrisk features --task arrears"),
        (tmp_path, "is a folder; name the Parquet file"),  # read as an empty population before
        (text, "is not a Parquet file"),  # an ArrowInvalid traceback before
        (table, "is not a training set (no as_of column"),  # 60 missing column names before
        (scoring, "has no label column (a `gridrisk features --scoring` frame?)"),
        (theft, "built for another task or an older feature set"),  # exit 1 after reading the whole set
    ]
    config = tmp_path / "arrears.toml"
    for path, says in cases:
        config.write_text(f'task = "arrears"\ntraining_set = "{path}"\n')
        for verb in ("train", "backtest"):
            result = invoke(verb, str(config))
            assert result.exit_code == 2 and says in " ".join(result.output.split()), result.output
    # A relative path is read from the current folder, not the config's; the refusal shows where it looked.
    monkeypatch.chdir(tmp_path)
    config.write_text('task = "arrears"\ntraining_set = "sets/arrears.parquet"\n')
    said = " ".join(invoke("train", str(config)).output.split())
    where = tmp_path.resolve() / "sets" / "arrears.parquet"
    said = said.replace("\n", "")
    assert f"(relative paths are read from the current folder, not the config file's: {where})" in said


def test_evaluate_names_what_the_registry_holds_before_reading_any_data(
    home: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from mlflow import MlflowClient

    def never(*args, **kwargs):  # type: ignore[no-untyped-def]
        raise AssertionError("no training set is built for a model that is not there")

    monkeypatch.setattr("training.experiment.load_training_frame", never)
    result = invoke("evaluate", "--task", "theft", "--warehouse", str(tmp_path))
    said = " ".join(result.output.split())
    assert result.exit_code == 2 and "no gridrisk-theft model is registered" in said, said
    assert "train one with `gridrisk train --task theft`" in said
    home.mkdir(parents=True, exist_ok=True)
    uri = f"sqlite:///{(home / 'mlflow.db').resolve()}"
    client = MlflowClient(uri, uri)
    client.create_registered_model("gridrisk-theft")
    version = client.create_model_version("gridrisk-theft", (tmp_path / "model").as_uri()).version
    client.set_registered_model_alias("gridrisk-theft", "champion", version)
    for args, says in [
        (["--version", "9"], "gridrisk-theft has no version '9'; its versions are 1: pass one to --version"),
        (["--version", "abc"], "gridrisk-theft has no version 'abc'; its versions are 1"),
        (["--alias", "best"], "gridrisk-theft has no alias 'best' (its aliases: champion (v1))"),
    ]:
        result = invoke("evaluate", "--task", "theft", "--warehouse", str(tmp_path), *args)
        said = " ".join(result.output.split())
        assert result.exit_code == 2 and says in said, said


def test_a_missing_or_empty_warehouse_is_refused_without_a_traceback(
    home: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    absent = tmp_path / "nowhere"
    result = invoke("train", "--task", "all", "--warehouse", str(absent))
    assert result.exit_code == 2 and f"warehouse {absent} does not exist" in result.output
    # The shipped configs name no warehouse, so GRIDRISK_WAREHOUSE decides.
    monkeypatch.setenv("GRIDRISK_WAREHOUSE", str(absent))
    result = invoke("backtest", str(SHIPPED))
    assert result.exit_code == 2 and f"warehouse {absent} does not exist" in result.output
    # A relative one says where it was looked for (a config's `warehouse = "wh"` is read from the shell's).
    monkeypatch.chdir(tmp_path)
    result = invoke("train", "--task", "arrears", "--warehouse", "nowhere")
    said = " ".join(result.output.split())
    here = f"(a relative path, read from the current folder {tmp_path}, not the config file's)"
    assert f"warehouse nowhere {here} does not exist" in said, said
    # A config's own relative warehouse is read from there too, and the refusal says so (a tester had to
    # find out which folder `warehouse = "../wh36"` was read from).
    elsewhere = tmp_path / "configs"
    elsewhere.mkdir()
    (elsewhere / "arrears.toml").write_text('task = "arrears"\nwarehouse = "../wh36"\n')
    said = " ".join(invoke("train", str(elsewhere / "arrears.toml")).output.split())
    assert f"warehouse ../wh36 {here} does not exist" in said, said
    empty = tmp_path / "empty"
    empty.mkdir()
    result = invoke("train", "--task", "theft", "--warehouse", str(empty))
    assert (
        result.exit_code == 1
        and "has no dated rows" in result.output
        and "not trained: theft" in result.output
    )


def test_demo_stops_at_the_first_step_that_fails(home: Path, tmp_path: Path) -> None:
    import typer

    from gridrisk.commands.demo import _run

    with pytest.raises(typer.Exit) as stopped:
        _run(["train", "--task", "arrears", "--warehouse", str(tmp_path / "nowhere")])
    assert stopped.value.exit_code == 2
    with pytest.raises(typer.Exit) as usage:  # a usage error stops it too, with click's exit code
        _run(["score", "--task", "nope"])
    assert usage.value.exit_code == 2


def test_train_all_goes_on_past_a_task_that_fails(
    home: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from gridrisk.commands import training as command
    from training.tasks import TrainingError

    tried = []

    def fail(cfg, *args, **kwargs):  # type: ignore[no-untyped-def]
        tried.append(cfg.task.value)
        raise TrainingError(f"{cfg.task.value} needs more history")

    monkeypatch.setattr(command, "_train_one", fail)
    result = invoke("train", "--task", "all", "--warehouse", str(tmp_path))
    assert tried == ["arrears", "suspension", "theft"]
    assert result.exit_code == 1
    assert "suspension needs more history" in result.output and "theft needs more history" in result.output
    assert "not trained: arrears, suspension, theft" in result.output


def test_demo_refuses_a_busy_port_before_any_work(home: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    # A tester's demo generated, trained and scored for minutes, then stopped on "address already in use".
    import socket

    from gridrisk.commands import demo as command

    ran: list[list[str]] = []
    monkeypatch.setattr(command, "_run", ran.append)
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        result = CliRunner().invoke(app, ["demo", "--port", str(port)], env={"COLUMNS": "160"})
    assert result.exit_code == 2, result.output
    assert f"port {port} on 127.0.0.1 cannot be used" in result.output and "--no-serve" in result.output
    assert ran == []


def test_demo_takes_a_port_whose_last_connection_lingers(home: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    # A reviewer's probe refused a port in TIME_WAIT that uvicorn (SO_REUSEADDR) binds: a demo stopped with a
    # browser on it could not be started again for a minute.
    import socket

    from gridrisk.commands import port_free_or_exit

    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as server:
        server.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        server.bind(("127.0.0.1", 0))
        server.listen()
        port = server.getsockname()[1]
        client = socket.create_connection(("127.0.0.1", port))
        accepted, _ = server.accept()
        accepted.close()  # the server side closes first: its end of the connection waits in TIME_WAIT
        client.close()
    port_free_or_exit("127.0.0.1", port, "gridrisk demo", "")  # no exit


def test_demo_stops_cleanly_when_a_task_has_no_as_of_date(
    home: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from gridrisk.commands import demo as command
    from training.tasks import TrainingError

    ran: list[list[str]] = []
    monkeypatch.setattr(command, "_run", ran.append)  # generate and ingest are not the point here

    def no_dates(config, warehouse):  # type: ignore[no-untyped-def]
        raise TrainingError("no as-of month from 2024-05 to 2024-02 is fully observed")

    monkeypatch.setattr("training.experiment.resolve_as_of_dates", no_dates)
    result = CliRunner().invoke(app, ["demo", "--no-serve"], env={"COLUMNS": "160"})
    assert result.exit_code == 1 and isinstance(result.exception, SystemExit), result.output
    assert "gridrisk demo stopped (arrears): no as-of month" in result.output
    assert [args[0] for args in ran] == ["generate", "ingest"]


def test_a_defect_in_one_task_does_not_stop_the_others(tmp_path: Path) -> None:
    from types import SimpleNamespace

    from rich.console import Console

    from gridrisk.commands.training import _each_task

    configs = [
        (SimpleNamespace(task=SimpleNamespace(value=name), warehouse=tmp_path, training_set=None), None)
        for name in ("arrears", "suspension", "theft")
    ]

    def work(cfg, warehouse, text, progress):
        if cfg.task.value == "suspension":
            raise IndexError("index 0 is out of bounds")  # not a data error: a defect
        return cfg.task.value

    shown: list[str] = []
    console = Console(record=True, width=120)
    failed = _each_task(console, configs, None, work, lambda _console, report: shown.append(report))
    assert failed == ["suspension"] and shown == ["arrears", "theft"]
    output = console.export_text()
    assert "unexpected error (suspension)" in output and "IndexError" in output  # with its traceback


def test_the_demo_scores_the_tasks_with_a_champion_and_says_why_the_others_wait(
    tmp_path: Path, capsys
) -> None:
    from mlflow import MlflowClient

    from gridrisk.commands.demo import _with_champion

    uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
    client = MlflowClient(uri, uri)
    for task in ("arrears", "suspension", "theft"):
        client.create_registered_model(f"gridrisk-{task}")
        version = client.create_model_version(f"gridrisk-{task}", (tmp_path / task).as_uri()).version
        if task == "suspension":  # the gate kept it: the rule beat it on both numbers
            client.set_model_version_tag(
                f"gridrisk-{task}", version, "gate.reason", "the rule baseline beats it"
            )
            client.set_registered_model_alias(f"gridrisk-{task}", "challenger", version)
        else:
            client.set_registered_model_alias(f"gridrisk-{task}", "champion", version)
    assert _with_champion(uri) == ["arrears", "theft"]
    said = " ".join(capsys.readouterr().err.split())
    assert (
        "suspension is not scored: the gate kept version 1 as challenger (the rule baseline beats it)" in said
    )
    assert 'gridrisk promote --task suspension --version 1 --reason "…"' in said


def test_a_tracking_server_that_does_not_answer_is_refused_at_once(
    home: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import socket

    def never(*args, **kwargs):  # type: ignore[no-untyped-def]
        raise AssertionError("nothing is built or logged for a server that is not there")

    monkeypatch.setattr("training.experiment.load_training_frame", never)
    with socket.socket() as probe:  # a loopback port nothing listens on
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    monkeypatch.setenv("MLFLOW_TRACKING_URI", f"http://127.0.0.1:{port}")
    monkeypatch.setenv("MLFLOW_HTTP_REQUEST_MAX_RETRIES", "0")  # without the check: fail, not wait 4 minutes
    for args in (
        ["train", "--task", "arrears", "--warehouse", str(tmp_path)],
        ["backtest", "--task", "theft", "--warehouse", str(tmp_path)],
        ["evaluate", "--task", "theft", "--warehouse", str(tmp_path)],
        ["promote", "--task", "theft", "--version", "1", "--reason", "rollback"],
    ):
        result = CliRunner().invoke(app, args, env={"COLUMNS": "200"})
        said = " ".join(result.output.split())
        assert result.exit_code == 2, (args, result.output)
        assert (
            f"the MLflow tracking server http://127.0.0.1:{port} (MLFLOW_TRACKING_URI) does not answer"
            in said
        )
        assert "unset it to use the embedded store" in said


def test_the_tracking_probe_stops_only_for_a_server_that_is_not_there(capsys: pytest.CaptureFixture) -> None:
    import http.server
    import socket
    import threading
    from types import SimpleNamespace

    import typer

    from gridrisk.commands import tracking_server_or_exit

    class Locked(http.server.BaseHTTPRequestHandler):
        def do_GET(self) -> None:  # a proxy that wants credentials: it answers, so MLflow decides
            self.send_response(401)
            self.end_headers()

        def log_message(self, *args) -> None:  # type: ignore[no-untyped-def]
            pass

    server = http.server.HTTPServer(("127.0.0.1", 0), Locked)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    port = server.server_address[1]

    def settings(uri: str) -> SimpleNamespace:
        return SimpleNamespace(tracking_uri=uri, registry_timeout_seconds=2.0, home=Path("home"))

    try:
        tracking_server_or_exit(settings(f"http://127.0.0.1:{port}"))
        # TLS against a plain server fails the handshake: MLflow's TLS settings may differ from urllib's
        # (a private CA), so only MLflow can tell; it once stopped such servers with exit 2.
        tracking_server_or_exit(settings(f"https://127.0.0.1:{port}"))
        tracking_server_or_exit(settings(f"http://ops:s3cret@127.0.0.1:{port}"))  # was "Name not known"
    finally:
        server.shutdown()
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        closed = probe.getsockname()[1]
    with pytest.raises(typer.Exit):
        tracking_server_or_exit(settings(f"http://ops:s3cret@127.0.0.1:{closed}"))
    said = capsys.readouterr().err
    assert f"http://127.0.0.1:{closed} (MLFLOW_TRACKING_URI) does not answer" in said and "s3cret" not in said


def test_where_to_see_the_runs_is_an_address_for_a_server() -> None:
    from gridrisk.commands.training import where_to_see_runs

    # `mlflow ui --backend-store-uri http://…` fails (a server is no backend store); the page is the address.
    said = where_to_see_runs("http://ops:s3cret@127.0.0.1:5917/?token=abc")
    assert said.startswith("http://127.0.0.1:5917/ ") and "s3cret" not in said and "token" not in said
    assert (
        where_to_see_runs("sqlite:////h/mlflow.db") == "mlflow ui --backend-store-uri sqlite:////h/mlflow.db"
    )


def _report(task: str, metrics: dict, primary: str, unlearned: list[str]) -> Any:
    """What `_print_report` reads of a training report, with the given test metrics."""
    from types import SimpleNamespace

    return SimpleNamespace(
        task=task,
        metrics=metrics,
        split=SimpleNamespace(summary=lambda: {"split_test": "2022-05-31..2022-07-31 (3)"}),
        primary_metric=primary,
        sample_customers=1.0,
        extra={"explain_ms_single_row": 0.2, "explain_ms_per_row_batch": 0.1},
        run_id="r",
        seconds=1.0,
        build_seconds=0.4,
        training_seconds=0.6,
        gate=None,
        unlearned=unlearned,
    )


def _printed(report: Any) -> str:
    from rich.console import Console

    from gridrisk.commands.training import _print_report

    console = Console(record=True, width=200)
    _print_report(console, report)
    return console.export_text()


@pytest.mark.parametrize("ece, said", [(0.096, True), (0.019, False)])
def test_a_model_far_off_the_test_rate_is_said_to_rank_only(ece: float, said: bool) -> None:
    # A seasonal suspension model served 0.116 on average against a 0.212 rate (ECE 0.096) and was promoted
    # on its ranking without a word about its levels.
    model = {"rows": 1791.0, "positives": 380.0, "roc_auc": 0.778, "ece": ece, "mean_probability": 0.116}
    metrics = {"model": {**model, "label_rate": 0.212}}
    report = _report("suspension", metrics, "precision_at_5pct", ["readings_cv_90d"])
    text = _printed(report)
    assert ("average 0.116 against a label rate of 0.212" in text) is said
    assert ("do not read them as rates" in text) is said
    assert ("The rate moved" in text) is said
    assert "1 feature has no value on any training date" in text and "readings_cv_90d" in text
    assert "but does on the test dates, so the model cannot use it yet" in text
    # The title is one line on a wide terminal (as the table's title it wrapped at the table's width).
    assert "positives (★ = primary metric)\n" in text
    # Off at the right mean: too confident, not a moved rate.
    report.metrics["model"].update(ece=0.082, mean_probability=0.200, label_rate=0.204)
    text = _printed(report)
    assert "over- or under-confidence" in text and "The rate moved" not in text
    assert "logistic baseline beats" not in text  # no logistic metrics, nothing to say


def test_the_printed_seconds_add_up_to_the_total() -> None:
    # "20.9 s (training set 4.7 s, training_seconds 14.7)": a second and a half was in neither part.
    report = _report("arrears", {"model": {"rows": 900.0, "positives": 90.0}}, "roc_auc", [])
    report.seconds, report.build_seconds, report.training_seconds = 20.9, 4.7, 14.7
    text = " ".join(_printed(report).split())
    assert (
        "20.9 s (training set 4.7 s, training_seconds 14.7, 1.5 s closing the run and freeing memory)" in text
    )


def test_a_model_the_logistic_baseline_beats_is_said_so() -> None:
    # A tester's 30-month archive: the first arrears model stopped at 43 trees on 7 training dates, lost to
    # the logistic baseline on 11 of 13 metrics, and was promoted (the gate holds a first model to the rule).
    metrics = {
        "model": {"rows": 9000.0, "positives": 449.0, "amount_recall_at_5pct": 0.9943, "ece": 0.014},
        "logistic": {"amount_recall_at_5pct": 0.9970},
    }
    report = _report("arrears", metrics, "amount_recall_at_5pct", [])
    text = _printed(report)
    assert "the logistic baseline beats the model on amount_recall_at_5pct (0.9970 against 0.9943)" in text
    metrics["logistic"]["amount_recall_at_5pct"] = 0.99
    assert "logistic baseline beats" not in _printed(report)
    # Tied on the primary metric (no hit in either list), the whole list decides.
    metrics["logistic"].update(amount_recall_at_5pct=0.9943, roc_auc=0.81)
    metrics["model"]["roc_auc"] = 0.74
    tied = "ties the model on amount_recall_at_5pct (0.9943) and ranks the whole list better"
    assert tied in _printed(report)
    metrics["model"]["roc_auc"] = 0.82
    assert "logistic baseline" not in _printed(report)


@pytest.mark.parametrize("auc, said", [(0.3702, True), (0.5, False), (0.62, False)])
def test_a_model_worse_than_chance_is_said_so(auc: float, said: bool) -> None:
    # A tester's first suspension model ranked its test window at ROC-AUC 0.37 (the rule 0.65) and the summary
    # said nothing of it.
    model = {"rows": 9000.0, "positives": 260.0, "precision_at_5pct": 0.037, "roc_auc": auc, "ece": 0.01}
    text = _printed(_report("suspension", {"model": model}, "precision_at_5pct", []))
    assert ("ranks the test window worse than chance (ROC-AUC 0.3702 < 0.5)" in text) is said


@pytest.mark.parametrize("command", ["train", "backtest", "evaluate"])
def test_sample_help_names_the_config_section(command: str) -> None:
    # Rich read "[sample]" as markup and printed "…; overrides" with the section gone.
    result = CliRunner().invoke(app, [command, "--help"], env={"COLUMNS": "300"})
    assert "overrides [sample]" in result.output, result.output


def test_evaluate_uses_the_versions_own_config_and_says_what_skews_another_window(
    generated_dir: Path, home: Path, config: Path
) -> None:
    # A tester's day-10 model was evaluated on the default month-end window, which also read outcomes it had
    # been fitted on, without a word; the alias's version was not printed, nor train's warnings.
    from mlflow import MlflowClient

    day10 = config.with_name("day10.toml")
    day10.write_text(config.read_text(encoding="utf-8").replace('# day = "end"', "day = 10"))
    trained = invoke("train", str(day10), "--warehouse", str(generated_dir))
    assert trained.exit_code == 0, trained.output
    uri = f"sqlite:///{(home / 'mlflow.db').resolve()}"
    client = MlflowClient(uri, uri)
    experiment = client.get_experiment_by_name("gridrisk-arrears")
    (run,) = client.search_runs([experiment.experiment_id], "tags.`gridrisk.kind` = 'training'")

    own = invoke("evaluate", "--task", "arrears", "--warehouse", str(generated_dir))
    said = " ".join(own.output.split())
    assert own.exit_code == 0, own.output
    assert "evaluating models:/gridrisk-arrears@champion (version 1) with v1's own config" in said, said
    assert f"on test {run.data.tags['split_test']}" in said  # its own day-10 test window
    assert "model ROC-AUC standard error" in said  # the warnings train prints, by the same code
    assert "note:" not in said
    evaluation = client.search_runs([experiment.experiment_id], "tags.`gridrisk.kind` = 'evaluation'")[0]
    assert evaluation.data.metrics["test_roc_auc"] == pytest.approx(
        run.data.metrics["test_roc_auc"], abs=1e-12
    )

    # The month-end config: another day, and a window whose start its fitted dates' labels reach into.
    other = invoke("evaluate", "--task", "arrears", "--version", "1", "--config", str(config),
                   "--warehouse", str(generated_dir))  # fmt: skip
    said = " ".join(other.output.split())
    assert other.exit_code == 0, other.output
    assert "it has seen these outcomes, so its numbers here are flattered" in said, said
    assert "was trained on day 10 of each month, and this window's as-of dates are month ends" in said
    latest = client.search_runs(
        [experiment.experiment_id],
        "tags.`gridrisk.kind` = 'evaluation'",
        order_by=["attributes.start_time DESC"],
    )[0]
    assert "has seen these outcomes" in latest.data.tags["evaluation_notes"]


def _api_refusing_server(status: int, body: str, answers: tuple[str, ...] = ()):  # type: ignore[no-untyped-def]
    """A tracking server whose /health answers 200 (MLflow exempts it from its checks) and whose REST API
    answers `status` with `body` (MLflow 3's host check, a proxy refusing the credentials, a server going
    down), but for the paths in `answers`, which answer `{}`."""
    import http.server
    import threading

    class Handler(http.server.BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            code, text = (status, body)
            if self.path == "/health":
                code, text = 200, "OK"
            elif self.path.startswith(answers):
                code, text = 200, "{}"
            self.send_response(code)
            self.send_header("Content-Type", "text/plain")
            self.send_header("Content-Length", str(len(text)))
            self.end_headers()
            self.wfile.write(text.encode())

        do_POST = do_GET

        def log_message(self, *args) -> None:  # type: ignore[no-untyped-def]
            pass

    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    return server


COMMANDS = (
    ["train", "--task", "theft"],
    ["backtest", "--task", "theft"],
    ["evaluate", "--task", "theft"],
    ["promote", "--task", "theft", "--version", "1", "--reason", "rollback"],
)


@pytest.mark.parametrize(
    ("status", "body", "said"),
    [
        (
            403,
            "Invalid Host header - possible DNS rebinding attack detected",
            "refuses the Host header 127.0.0.1:{port} (403 Invalid Host header",
        ),
        (401, "Unauthorized", "refused the credentials (HTTP 401) given as the user and password in"),
    ],
)
def test_a_server_refusing_its_api_is_one_line_before_any_work(
    home: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, status: int, body: str, said: str
) -> None:
    """`/health` is exempt from MLflow 3's host check and from a proxy's password: the probe passed, the
    training set was built, and the run ended in a 150-line traceback. Each training command now stops at
    start-up with the cause and the fix; MLflow's retry budget and its URL printing are set for them too."""

    def never(*args, **kwargs):  # type: ignore[no-untyped-def]
        raise AssertionError("nothing is built for a server that refuses its API")

    monkeypatch.setattr("training.experiment.load_training_frame", never)
    for key in ("MLFLOW_SUPPRESS_PRINTING_URL_TO_STDOUT", "MLFLOW_HTTP_REQUEST_MAX_RETRIES"):
        monkeypatch.delenv(key, raising=False)
    monkeypatch.setenv("MLFLOW_HTTP_REQUEST_BACKOFF_FACTOR", "0")
    server = _api_refusing_server(status, body)
    port = server.server_address[1]
    monkeypatch.setenv("MLFLOW_TRACKING_URI", f"http://alice:s3cretpw@127.0.0.1:{port}")
    try:
        for args in COMMANDS:
            extra = [] if args[0] == "promote" else ["--warehouse", str(tmp_path)]
            result = CliRunner().invoke(app, [*args, *extra], env={"COLUMNS": "300"})
            out = " ".join(result.output.split())
            assert result.exit_code == 2, (args, result.output)
            assert said.format(port=port) in out and "s3cretpw" not in result.output
            assert "Traceback" not in result.output and len(result.output.strip().splitlines()) == 1
    finally:
        server.shutdown()
    import os

    assert os.environ["MLFLOW_SUPPRESS_PRINTING_URL_TO_STDOUT"] == "true"
    assert os.environ["MLFLOW_HTTP_REQUEST_MAX_RETRIES"] == "3"
    assert os.environ["MLFLOW_HTTP_REQUEST_BACKOFF_FACTOR"] == "0"  # the user's own setting is kept


def test_a_server_lost_during_training_is_one_line_and_the_set_is_kept(
    home: Path, config: Path, generated_dir: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The server answered at start-up and fails once the training set is built: MLflow retried for 4.5
    minutes, then a 440-line traceback, and the built set was lost. Now: MLflow's retries are bounded, the
    error is one line naming the server and the cause, and the set is kept for `training_set =`."""
    import json
    import time

    monkeypatch.setenv("MLFLOW_HTTP_REQUEST_BACKOFF_FACTOR", "0")  # the bounded retries, without the waits
    monkeypatch.delenv("MLFLOW_HTTP_REQUEST_MAX_RETRIES", raising=False)
    server = _api_refusing_server(503, "Service Unavailable", answers=("/api/2.0/mlflow/experiments/search",))
    port = server.server_address[1]
    monkeypatch.setenv("MLFLOW_TRACKING_URI", f"http://alice:s3cretpw@127.0.0.1:{port}")
    started = time.monotonic()
    try:
        result = CliRunner().invoke(
            app, ["train", str(config), "--warehouse", str(generated_dir)], env={"COLUMNS": "400"}
        )
    finally:
        server.shutdown()
    said = " ".join(result.output.split())
    assert result.exit_code == 1, result.output
    assert time.monotonic() - started < 120
    assert "Traceback" not in result.output and "s3cretpw" not in result.output
    assert (
        f"error (arrears): the MLflow tracking server http://127.0.0.1:{port} (MLFLOW_TRACKING_URI) failed "
        "during the run (HTTP 503); the training set built for it is kept in " in said
    )
    kept = sorted((home / "cache" / "training-sets").glob("arrears-*.parquet"))
    assert len(kept) == 1 and f'training_set = "{kept[0]}"' in said
    meta = json.loads(kept[0].with_name(kept[0].name + ".meta.json").read_text())
    assert meta["task"] == "arrears" and meta["warehouse"] == str(generated_dir.resolve())


def _e2e_fixture(name: str) -> Any:
    """A fixture of tests/e2e/test_mlflow_server.py (a real `mlflow server` on loopback, stopped by PID)."""
    import importlib.util

    path = Path(__file__).resolve().parents[1] / "e2e" / "test_mlflow_server.py"
    spec = importlib.util.spec_from_file_location("gridrisk_e2e_mlflow_server", path)
    module = importlib.util.module_from_spec(spec)  # type: ignore[arg-type]
    spec.loader.exec_module(module)  # type: ignore[union-attr]
    return getattr(module, name)


mlflow_server = _e2e_fixture("mlflow_server")


@pytest.mark.e2e
def test_no_password_in_the_output_of_a_command_that_ends_a_run(
    home: Path, mlflow_server: tuple[str, Path], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """MLflow prints "🏃 View run … at: <tracking URI>/#/…" when a run ends, with the URI's user and password;
    `promote` logs its override as a run against a real server here (`train`, `backtest` and `evaluate` end
    runs the same way and get the same setting, see the test above)."""
    from training.registry import client_for, model_name

    url, _ = mlflow_server
    monkeypatch.delenv("MLFLOW_SUPPRESS_PRINTING_URL_TO_STDOUT", raising=False)
    secret = url.replace("http://", "http://alice:s3cretpw@")
    client = client_for(url)
    name = model_name("theft")
    client.create_registered_model(name)
    for _ in range(2):
        client.create_model_version(name, "s3://nowhere/model")  # promote moves an alias, reads no model
    monkeypatch.setenv("MLFLOW_TRACKING_URI", secret)
    result = CliRunner().invoke(app, ["promote", "--task", "theft", "--version", "2", "--reason", "rollback"])
    assert result.exit_code == 0, result.output
    assert "is now champion" in result.output
    assert "s3cretpw" not in result.output and "View run" not in result.output


def test_a_model_prefix_that_cannot_name_models_is_refused_at_once(
    home: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("GRIDRISK_MODEL_PREFIX", "East Grid")
    result = CliRunner().invoke(app, ["promote", "--task", "theft", "--version", "1", "--reason", "x"])
    assert result.exit_code == 2 and "GRIDRISK_MODEL_PREFIX='East Grid' cannot name models" in result.output


@pytest.mark.parametrize(
    "command", [["serve", "--port", "1"], ["score", "--task", "arrears"], ["keys", "list"]]
)
def test_every_command_refuses_a_model_prefix_that_cannot_name_models(
    home: Path, monkeypatch: pytest.MonkeyPatch, command: list[str]
) -> None:
    """A reviewer: `serve` started with it and looked for `gridrisk-Bad Prefix!-arrears`."""
    monkeypatch.setenv("GRIDRISK_MODEL_PREFIX", "Bad Prefix!")
    result = CliRunner().invoke(app, command)
    assert result.exit_code == 2, result.output
    assert "invalid GRIDRISK_MODEL_PREFIX in the environment" in result.output


def test_evaluate_with_another_warehouse_reads_it_not_the_versions_prebuilt_set(
    generated_dir: Path, home: Path, config: Path, tmp_path: Path
) -> None:
    """A reviewer: the version's own config kept its `training_set`, which is read before the warehouse, so
    `evaluate --warehouse NEW` evaluated the old set without a word."""
    from mlflow import MlflowClient

    built = tmp_path / "set.parquet"
    made = invoke("features", "-w", str(generated_dir), "--task", "arrears", "-o", str(built),
                  "--as-of-range", "2022-06:2023-12")  # fmt: skip
    assert made.exit_code == 0, made.output
    from_set = config.with_name("from_set.toml")
    from_set.write_text(
        config.read_text(encoding="utf-8").replace(
            '# training_set = "sets/arrears.parquet"', f'training_set = "{built}"'
        )
    )
    trained = invoke("train", str(from_set))
    assert trained.exit_code == 0, trained.output
    other = invoke("evaluate", "--task", "arrears", "--warehouse", str(generated_dir))
    assert other.exit_code == 0, other.output
    uri = f"sqlite:///{(home / 'mlflow.db').resolve()}"
    client = MlflowClient(uri, uri)
    experiment = client.get_experiment_by_name("gridrisk-arrears")
    (evaluation,) = client.search_runs([experiment.experiment_id], "tags.`gridrisk.kind` = 'evaluation'")
    assert evaluation.data.tags["data_source"] == str(generated_dir.resolve())
