"""`gridrisk score`, `serve` and `keys` refuse bad input with a message and exit code 2, never a traceback."""

from __future__ import annotations

import datetime as dt
import errno
import json
import os
from pathlib import Path

import pandas as pd
import pytest
import typer
from disk_faults import full_disk, read_only
from tinymodel import scoring_frame, write_customers
from typer.testing import CliRunner

from gridrisk.cli import app
from gridrisk.commands import local_tracking_store
from serving.batch import scoring_as_of
from serving.errors import AsOfOutOfRange
from serving.settings import ServingSettings

FIRST_BILL, DATA_END = dt.date(2022, 2, 5), dt.date(2023, 7, 10)


@pytest.fixture
def env(home: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.setenv("GRIDRISK_HOME", str(home))
    for name in ("GRIDRISK_WAREHOUSE", "GRIDRISK_API_KEYS", "MLFLOW_TRACKING_URI"):
        monkeypatch.delenv(name, raising=False)
    return home


def run(*args: str) -> tuple[int, str]:
    result = CliRunner().invoke(app, list(args), env={"COLUMNS": "200"})
    # A clean refusal is a SystemExit; anything else escaped as a traceback.
    assert result.exception is None or isinstance(result.exception, SystemExit), result.exception
    return result.exit_code, result.output


def billed_warehouse(root: Path) -> Path:
    """Bills only as far as the date checks need them: two customers, first bill and data end known."""
    root.mkdir(parents=True)
    pd.DataFrame(
        {
            "customer_id": ["C1", "C2"],
            "issue_date": pd.to_datetime(
                [FIRST_BILL, DATA_END - dt.timedelta(days=3)]
            ),  # first bill; a later one
            "known_at": pd.to_datetime([FIRST_BILL, DATA_END]),  # the newest event: the data end
            "period": pd.to_datetime(["2022-01-01", "2023-06-01"]),
            "kwh": [100.0, 120.0],
            "amount_due": [55.0, 66.0],
            "due_date": pd.to_datetime(
                [FIRST_BILL + dt.timedelta(days=20), DATA_END + dt.timedelta(days=17)]
            ),
        }
    ).to_parquet(root / "bills.parquet")
    return root


@pytest.mark.parametrize("text", ["2022-13-01", "2022-02-30", "yesterday"])
def test_a_malformed_as_of_is_a_usage_error(env, text):
    code, output = run("score", "--task", "arrears", "--as-of", text)
    assert code == 2 and "--as-of" in output and "YYYY-MM-DD" in output


def test_scoring_dates_stay_inside_the_warehouse(tmp_path):
    warehouse = billed_warehouse(tmp_path / "wh")
    assert scoring_as_of(warehouse, None) == DATA_END
    assert scoring_as_of(warehouse, FIRST_BILL) == FIRST_BILL  # on the first bill: in range
    with pytest.raises(AsOfOutOfRange, match=r"after the data end .* \(2023-07-10"):
        scoring_as_of(warehouse, dt.date(2099, 1, 1))
    with pytest.raises(AsOfOutOfRange, match=r"before the first bill .* 2022-02-05"):
        scoring_as_of(warehouse, FIRST_BILL - dt.timedelta(days=1))

    # Without a date, the model's own day of the month: the demo's models learned month ends and were scored
    # on its data end, the 10th, where most latest bills are not yet due (an outside audit).
    month_ends = {"as_of_test": ["2023-01-31", "2023-03-31"]}
    assert scoring_as_of(warehouse, None, month_ends) == dt.date(2023, 6, 30)
    assert scoring_as_of(warehouse, None, {"as_of_test": ["2023-01-05", "2023-03-05"]}) == dt.date(2023, 7, 5)
    assert scoring_as_of(warehouse, None, {"as_of_test": ["2023-01-10"]}) == DATA_END  # the 10th is the end
    assert scoring_as_of(warehouse, None, {"as_of_test": ["2023-01-20"]}) == dt.date(2023, 6, 20)


def test_an_as_of_after_the_data_end_is_refused_before_loading_a_model(env, tmp_path):
    warehouse = billed_warehouse(tmp_path / "wh")
    code, output = run("score", "--task", "all", "--as-of", "2099-01-01", "--warehouse", str(warehouse))
    assert code == 2 and "--as-of" in output and "2023-07-10" in output


def test_a_missing_warehouse_is_a_clean_error(env, tmp_path):
    code, output = run("score", "--task", "arrears", "--warehouse", str(tmp_path / "nonexistent"))
    assert code == 2 and "--warehouse" in output and "does not exist" in output
    (tmp_path / "empty").mkdir()
    code, output = run("score", "--task", "arrears", "--warehouse", str(tmp_path / "empty"))
    assert code == 2 and "score refused" in output and "gridrisk ingest" in output


def test_a_warehouse_without_bills_is_a_clean_error(env, tmp_path):
    settings = ServingSettings(home=env, warehouse=tmp_path / "wh")
    write_customers(settings, scoring_frame())  # an archive, no bills
    code, output = run("score", "--task", "arrears", "--warehouse", str(tmp_path / "wh"))
    # The data end reads only event tables: an archive's open dates give none, so no model is ever loaded.
    refusal = f"score refused: warehouse {tmp_path / 'wh'} has no dated rows; run `gridrisk ingest` first"
    assert code == 2 and refusal in output


def test_an_out_that_would_break_a_store_is_refused_before_any_work(env, tmp_path, monkeypatch):
    def never(*args, **kwargs):
        raise AssertionError("nothing is scored for an --out that cannot be written")

    monkeypatch.setattr("serving.batch.score_population", never)
    warehouse = billed_warehouse(tmp_path / "wh")
    bills = (warehouse / "bills.parquet").read_bytes()
    env.mkdir(parents=True)
    (env / "keys.json").write_text("[]")
    cases = [
        (tmp_path, "is a folder"),  # IsADirectoryError once everyone was scored
        (warehouse / "bills.parquet" / "x.parquet", "is a file"),  # FileExistsError, the same
        (warehouse / "bills.parquet", "inside warehouse"),  # the scores replaced the warehouse's bills
        (warehouse / "readings.parquet", "inside warehouse"),  # and would be read as its readings
        (env / "keys.json", "gridrisk keeps (keys.json)"),  # every API key gone
        (env / "mlflow.db", "gridrisk keeps (mlflow.db)"),  # the registry and every run gone
        (env / "snapshots" / "theft" / "2023-01-31.parquet", "snapshots"),  # served as the theft list
        (env / "snapshots" / "arrears" / "latest", "pointer"),  # the service's pointer, not a snapshot
    ]
    for out, says in cases:
        code, output = run("score", "--task", "arrears", "--warehouse", str(warehouse), "--out", str(out))
        assert code == 2 and "--out" in output and says in output, output
    assert (warehouse / "bills.parquet").read_bytes() == bills and (env / "keys.json").read_text() == "[]"


def test_an_out_over_the_tracking_store_named_by_mlflow_is_refused(env, tmp_path, monkeypatch):
    def never(*args, **kwargs):
        raise AssertionError("nothing is scored for an --out that cannot be written")

    monkeypatch.setattr("serving.batch.score_population", never)
    warehouse = billed_warehouse(tmp_path / "wh")
    store = tmp_path / "shared" / "runs.db"  # outside the home: only MLFLOW_TRACKING_URI names it
    store.parent.mkdir()
    store.write_bytes(b"SQLite format 3\x00")
    monkeypatch.setenv("MLFLOW_TRACKING_URI", f"sqlite:///{store}")
    code, output = run("score", "--task", "arrears", "--warehouse", str(warehouse), "--out", str(store))
    assert code == 2 and "gridrisk keeps (runs.db)" in output, output  # the snapshot replaced the registry
    assert store.read_bytes() == b"SQLite format 3\x00"


@pytest.mark.parametrize(
    "uri, kept",
    [
        ("sqlite:////srv/mlflow/runs.db", (Path("/srv/mlflow/runs.db"),)),
        ("sqlite:///runs.db", (Path("runs.db"),)),  # SQLAlchemy: three slashes, then a relative path
        ("sqlite:///:memory:", ()),
        ("file:///srv/mlruns", (Path("/srv/mlruns"),)),
        ("./mlruns", (Path("mlruns"),)),  # a bare path is a file store
        ("http://127.0.0.1:5000", ()),  # a server keeps its own files
        ("databricks", ()),
    ],
)
def test_the_local_tracking_store_is_read_from_the_uri(uri, kept):
    assert local_tracking_store(uri) == kept


def test_a_home_that_is_a_file_is_a_usage_error(env):
    env.parent.mkdir(parents=True, exist_ok=True)
    env.write_text("")  # a FileExistsError traceback when the keys file was made under it
    code, output = run("keys", "create", "--role", "admin")
    assert code == 2 and "is a file; point it at a folder" in output


def test_serve_refuses_unreadable_api_keys(env, monkeypatch):
    import uvicorn

    def never(*args, **kwargs):
        raise AssertionError("the server must not start")

    monkeypatch.setattr(uvicorn, "run", never)
    monkeypatch.setenv("GRIDRISK_API_KEYS", "notjson")
    code, output = run("serve", "--port", "1")
    assert code == 2 and "GRIDRISK_API_KEYS is not valid JSON" in output


def test_serve_refuses_a_port_another_process_holds_before_loading_models(env, monkeypatch):
    # A second instance on the same port announced "gridrisk API on …", loaded every model, then failed.
    import socket

    import uvicorn

    def never(*args, **kwargs):
        raise AssertionError("the server must not start")

    monkeypatch.setattr(uvicorn, "run", never)
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        code, output = run("serve", "--port", str(port))
    assert code == 2 and f"port {port} on 127.0.0.1 cannot be used" in output
    assert "gridrisk API on" not in output


def test_keys_list_reports_a_corrupt_file(env):
    env.mkdir(parents=True)
    (env / "keys.json").write_text("{not json")
    code, output = run("keys", "list")
    assert code == 2 and "keys.json" in output and "not valid JSON" in output


@pytest.mark.parametrize("scope", [["--station", ""], ["--station", "  "], ["--supply-unit", ""]])
def test_keys_need_real_scope_names(env, scope):
    code, output = run("keys", "create", "--role", "collector", *scope)
    assert code == 2 and "blank" in output
    assert not (env / "keys.json").exists()


def test_a_key_for_a_station_the_warehouse_lacks_is_made_with_a_warning(env, tmp_path, monkeypatch):
    from features.sources import write_table

    warehouse = tmp_path / "wh"
    areas = {"area_id": ["A1", "A2"], "station": ["ST0001", "ST0002"], "supply_unit": ["U1", "U1"]}
    write_table(warehouse, "areas", pd.DataFrame({**areas, "transformer_kva": [400.0, 630.0]}))
    monkeypatch.setenv("GRIDRISK_WAREHOUSE", str(warehouse))
    # ST001 typed for ST0001: the key was made without a word, and its lists and summary stayed empty.
    code, output = run("keys", "create", "--role", "collector", "--station", "ST001", "--supply-unit", "U1")
    said = " ".join(output.split())
    assert code == 0 and "warning: station 'ST001' is not in warehouse" in said
    assert "(its stations: ST0001, ST0002)" in said and "supply unit" not in said
    code, output = run("keys", "create", "--role", "collector", "--station", "ST0002")
    assert code == 0 and "warning" not in output
    # Each name known, but not as a pair: the key's lists were empty without a word.
    code, output = run("keys", "create", "--role", "collector", "--station", "ST0002", "--supply-unit", "U2")
    said = " ".join(output.split())
    assert code == 0 and "warning: station 'ST0002' is in U1, not in U2" in said


def test_a_station_key_nothing_can_pin_to_a_supply_unit_is_refused(env, tmp_path, monkeypatch):
    # Made before the data (or for a station the warehouse lacks) the key stayed unpinned, and once two
    # units had a station of that name it saw both, names and phones included.
    from features.sources import write_table

    monkeypatch.setenv("GRIDRISK_WAREHOUSE", str(tmp_path / "empty"))
    code, output = run("keys", "create", "--role", "collector", "--station", "ST0001")
    said = " ".join(output.split())
    assert code == 2 and "has no areas yet, so the key cannot be tied to a supply unit" in said
    assert "Add --supply-unit U" in said and not (env / "keys.json").exists()
    code, output = run("keys", "create", "--role", "collector", "--station", "ST0001", "--supply-unit", "U1")
    assert code == 0, output

    warehouse = tmp_path / "wh"
    areas = {"area_id": ["A1"], "station": ["ST0002"], "supply_unit": ["U1"], "transformer_kva": [400.0]}
    write_table(warehouse, "areas", pd.DataFrame(areas))
    monkeypatch.setenv("GRIDRISK_WAREHOUSE", str(warehouse))
    code, output = run("keys", "create", "--role", "collector", "--station", "ST0009")
    assert code == 2 and "has no station 'ST0009'" in " ".join(output.split())


def test_a_station_name_two_supply_units_share_needs_the_unit(env, tmp_path, monkeypatch):
    from features.sources import write_table
    from serving.access import read_keys

    warehouse = tmp_path / "wh"
    areas = {
        "area_id": ["A1", "A2", "A3", "A4"],
        "station": ["城关供电所", "城关供电所", "良渚供电所", "瓜沥供电所"],
        "supply_unit": [
            "国网余杭区供电公司",
            "国网萧山区供电公司",
            "国网余杭区供电公司",
            "国网萧山区供电公司",
        ],
    }
    write_table(warehouse, "areas", pd.DataFrame({**areas, "transformer_kva": [400.0, 630.0, 400.0, 400.0]}))
    monkeypatch.setenv("GRIDRISK_WAREHOUSE", str(warehouse))
    # By name alone the key saw both counties' 城关供电所, names and phones included.
    code, output = run("keys", "create", "--role", "collector", "--station", "城关供电所")
    said = " ".join(output.split())
    assert code == 2 and "'城关供电所' is in 国网余杭区供电公司, 国网萧山区供电公司" in said
    assert "add --supply-unit" in said and not (env / "keys.json").exists()
    code, _ = run(
        "keys",
        "create",
        "--role",
        "collector",
        "--station",
        "城关供电所",
        "--supply-unit",
        "国网萧山区供电公司",
    )
    assert code == 0
    # A name in one supply unit is pinned to it: a same-named station added later stays outside the key.
    code, output = run("keys", "create", "--role", "collector", "--station", "良渚供电所")
    assert code == 0 and "良渚供电所, 国网余杭区供电公司" in output
    scopes = sorted((r.stations, r.supply_units) for r in read_keys(env / "keys.json").values())
    assert scopes == [(["城关供电所"], ["国网萧山区供电公司"]), (["良渚供电所"], ["国网余杭区供电公司"])]
    # Stations of two units in one key would cover each name in both units: one key per unit instead.
    code, output = run(
        "keys", "create", "--role", "collector", "--station", "良渚供电所", "--station", "瓜沥供电所"
    )
    assert code == 2 and "make one key per supply unit" in " ".join(output.split())
    code, output = run(
        "keys", "create", "--role", "collector", "--station", "城关供电所",
        "--supply-unit", "国网余杭区供电公司", "--supply-unit", "国网萧山区供电公司",
    )  # fmt: skip
    assert code == 2 and "covers one supply unit, not 2" in " ".join(output.split())


def test_mlflow_download_bars_stay_out_of_command_output(env, monkeypatch):
    from mlflow.environment_variables import MLFLOW_ENABLE_ARTIFACTS_PROGRESS_BAR

    monkeypatch.delenv("MLFLOW_ENABLE_ARTIFACTS_PROGRESS_BAR", raising=False)
    assert MLFLOW_ENABLE_ARTIFACTS_PROGRESS_BAR.get() is True  # MLflow's default: a tqdm bar per model load
    code, _ = run("keys", "list")
    assert code == 0 and MLFLOW_ENABLE_ARTIFACTS_PROGRESS_BAR.get() is False
    monkeypatch.setenv("MLFLOW_ENABLE_ARTIFACTS_PROGRESS_BAR", "true")  # who asks for the bar keeps it
    run("keys", "list")
    assert MLFLOW_ENABLE_ARTIFACTS_PROGRESS_BAR.get() is True


def test_a_model_of_other_feature_definitions_is_said_at_scoring():
    # The definitions revision was only logged: a champion trained before a definition changed was scored on
    # features computed the new way without a word.
    from features.feature_sets import feature_set_version
    from serving.model import definitions_skew

    now = feature_set_version("suspension")
    assert definitions_skew({"feature_set_version": now}, "suspension") is None
    assert definitions_skew({}, "suspension") is None  # a package from before the version was recorded
    said = definitions_skew({"feature_set_version": "603d0000aaaa"}, "suspension")
    assert said is not None and f"trained on feature set 603d0000aaaa, this code computes {now}" in said
    assert "gridrisk train --task suspension" in said


# -- a read-only or full home: one line naming the file and the cause, exit 2, never a traceback -------------


@pytest.mark.parametrize("fault", [read_only, full_disk], ids=["read-only", "full"])
def test_keys_create_and_revoke_on_an_unwritable_home_say_so_in_a_line(env, monkeypatch, fault):
    code, output = run("keys", "create", "--role", "analyst")
    assert code == 0, output
    before = (env / "keys.json").read_bytes()
    key_id = json.loads(before)["keys"][0]["key_id"]
    cause = "Read-only file system" if fault is read_only else "No space left on device"
    with monkeypatch.context() as patched:  # not the whole monkeypatch: it holds GRIDRISK_HOME too
        fault(patched, env)
        code, output = run("keys", "create", "--role", "admin")
        assert code == 2 and "Traceback" not in output
        assert f"keys file {env / 'keys.json'} cannot be written ({cause}), so no key was made" in output
        code, output = run("keys", "revoke", key_id)
        assert code == 2 and f"so key {key_id} was not revoked and still works" in output
    assert (env / "keys.json").read_bytes() == before and not list(env.glob(".keys.json*"))
    assert run("keys", "revoke", key_id)[0] == 0


def test_keys_made_and_revoked_are_audit_lines_naming_who_ran_the_command(env):
    # An operator could not tell from the home when a leaked key had been made, or by whom.
    made = run(
        "keys", "create", "--role", "collector", "--station", "ST1", "--supply-unit", "U1", "--note", "team 1"
    )
    assert made[0] == 0, made[1]
    key_id = json.loads((env / "keys.json").read_text())["keys"][0]["key_id"]
    assert run("keys", "revoke", key_id)[0] == 0
    lines = [json.loads(x) for x in (env / "audit.log").read_text().splitlines()]
    assert [(x["action"], x["key_id"], x["role"]) for x in lines] == [
        ("key_created", key_id, "collector"),
        ("key_revoked", key_id, "collector"),
    ]
    assert (
        lines[0]["filters"] == {"stations": ["ST1"], "supply_units": ["U1"]} and lines[0]["note"] == "team 1"
    )
    assert lines[0]["by"] and "grk_" not in (env / "audit.log").read_text()
    # The key is made (and shown, once) or revoked even when the log cannot take the line: a warning.
    (env / "audit.log").unlink()
    (env / "audit.log").mkdir()
    code, output = run("keys", "create", "--role", "admin")
    assert code == 0 and "grk_" in output and f"warning: the audit log {env / 'audit.log'} did not" in output


@pytest.mark.parametrize("error", [errno.ENOSPC, errno.EROFS])
def test_score_on_an_unwritable_home_says_so_and_the_served_snapshot_stays(
    env, tmp_path, monkeypatch, package, registry, error
):
    import pyarrow.parquet as pq
    from tinymodel import write_population_snapshot

    import features.training_set
    import serving.batch

    settings = ServingSettings(home=env, tasks=["arrears"], poll_seconds=0)
    served = write_population_snapshot(package, settings)  # what the service serves now
    before = (settings.snapshots_path / "arrears" / "latest").read_text()
    monkeypatch.setenv("GRIDRISK_WAREHOUSE", str(billed_warehouse(tmp_path / "warehouse")))
    champion = serving.batch.champion
    monkeypatch.setattr(serving.batch, "champion", lambda s, task, reg=None: champion(s, task, registry))
    monkeypatch.setattr(features.training_set, "build_scoring_frame", lambda *a, **k: scoring_frame())

    def fill(table, where, **kwargs):  # the disk fills (or is found read-only) as the snapshot is written
        Path(where).write_bytes(b"PAR1")
        raise OSError(error, os.strerror(error), *([str(where)] if error == errno.EROFS else []))

    monkeypatch.setattr(pq, "write_table", fill)
    code, output = run("score", "--task", "arrears")
    assert code == 2 and "Traceback" not in output
    assert f"cannot be written ({os.strerror(error)}), so the scores were not saved" in output
    assert "arrears snapshot" in output and str(settings.snapshots_path / "arrears") in output
    assert (settings.snapshots_path / "arrears" / "latest").read_text() == before and served is not None


def test_keys_commands_say_a_service_on_gridrisk_api_keys_does_not_read_keys_json(env, monkeypatch):
    # A tester revoked a key, was told "revoked", and a service started with GRIDRISK_API_KEYS kept taking it.
    assert run("keys", "create", "--role", "analyst")[0] == 0
    served = (env / "keys.json").read_text()
    monkeypatch.setenv("GRIDRISK_API_KEYS", served)
    key_id = json.loads(served)["keys"][0]["key_id"]
    code, output = run("keys", "revoke", key_id)
    assert code == 0 and f"revoked {key_id}" in output
    assert "warning: GRIDRISK_API_KEYS is set" in output and f"key {key_id} is still accepted" in output
    code, output = run("keys", "create", "--role", "admin")
    assert code == 0 and "GRIDRISK_API_KEYS is set" in output and "is refused by a service started" in output
    # `list` shows what such a service serves: the variable's keys (the one revoked in the file is active).
    monkeypatch.setenv("GRIDRISK_API_KEYS", '{"keys": []}')
    code, output = run("keys", "list")
    assert code == 0 and "keys from GRIDRISK_API_KEYS" in output and key_id not in output
    monkeypatch.delenv("GRIDRISK_API_KEYS")
    code, output = run("keys", "list")
    assert code == 0 and key_id in output and "GRIDRISK_API_KEYS" not in output


def test_revoking_a_revoked_key_says_so_and_writes_no_second_audit_line(env):
    assert run("keys", "create", "--role", "analyst")[0] == 0
    key_id = json.loads((env / "keys.json").read_text())["keys"][0]["key_id"]
    assert run("keys", "revoke", key_id)[0] == 0
    code, output = run("keys", "revoke", key_id)
    assert code == 0 and f"{key_id} was already revoked at" in output and "nothing changed" in output
    actions = [json.loads(x)["action"] for x in (env / "audit.log").read_text().splitlines()]
    assert actions == ["key_created", "key_revoked"]


def test_keys_and_score_run_as_another_account_than_the_homes_say_so(env, monkeypatch):
    # `sudo gridrisk keys create` on a home owned by the service's account locked the service out of its keys.
    assert run("keys", "create", "--role", "analyst")[0] == 0
    owner = env.stat().st_uid
    monkeypatch.setattr(os, "geteuid", lambda: owner + 4321)
    code, output = run("keys", "create", "--role", "admin")
    assert code == 0 and "belongs to" in output and f"(uid {owner}), but this command runs as" in output
    assert "run gridrisk commands as the service's account" in output
    code, output = run("score", "--task", "arrears", "--warehouse", str(env / "nowhere"))
    assert code == 2 and "run gridrisk commands as the service's account" in output
    monkeypatch.setattr(os, "geteuid", lambda: owner)
    assert "service's account" not in run("keys", "create", "--role", "admin")[1]


@pytest.fixture
def no_server(monkeypatch: pytest.MonkeyPatch) -> None:
    """`serve` stops where it would check its port (after every setting is checked): no server starts."""
    import gridrisk.commands

    def stop_here(*args: object) -> None:
        raise typer.Exit(9)

    monkeypatch.setattr(gridrisk.commands, "port_free_or_exit", stop_here)


@pytest.mark.parametrize(
    ("variable", "value", "said"),
    [
        ("GRIDRISK_WEB_SESSION_SECRET", "short", "the session secret must be at least 16 bytes"),
        ("GRIDRISK_WEB_SESSION_HOURS", "-1", "greater than 0"),
        ("GRIDRISK_WEB_PAGE_SIZE", "abc", "valid integer"),
        ("GRIDRISK_WEB_COOKIE_SECURE", "maybe", "valid boolean"),
    ],
)
def test_serve_refuses_a_bad_web_setting_in_one_line(env, monkeypatch, no_server, variable, value, said):
    # Each started the service, /ready said ready, and every page was a 500 with a 90-line traceback.
    monkeypatch.setenv(variable, value)
    code, output = run("serve")
    assert code == 2 and f"invalid {variable} in the environment: " in output and said in output
    assert "Traceback" not in output and len(output.strip().splitlines()) == 1


@pytest.mark.parametrize("workers", ["0", "-3"])
def test_serve_refuses_fewer_than_one_worker(env, no_server, workers):
    code, output = run("serve", "--workers", workers)
    assert code == 2 and "--workers" in output and "greater than or equal to 1" in output
    assert run("serve", "--workers", "2")[0] == 9  # reached the port check


def test_bad_tasks_and_poll_seconds_stop_every_command_in_one_line(env, monkeypatch):
    monkeypatch.setenv("GRIDRISK_TASKS", '["arrears", "bogus"]')
    code, output = run("keys", "list")
    assert code == 2 and "invalid GRIDRISK_TASKS in the environment: unknown task 'bogus'" in output
    monkeypatch.setenv("GRIDRISK_TASKS", '["arrears"]')
    monkeypatch.setenv("GRIDRISK_POLL_SECONDS", "0.01")
    code, output = run("keys", "list")
    assert code == 2 and "invalid GRIDRISK_POLL_SECONDS in the environment: 0.01 s would poll" in output


def test_serve_hands_its_log_level_and_options_to_every_worker(env, monkeypatch):
    # `gridrisk -v serve --workers 2` changed nothing in the workers; uvicorn's config carries the logging
    import logging
    import signal

    import uvicorn

    import gridrisk.commands
    from gridrisk.commands import serving as serving_commands

    monkeypatch.setattr(gridrisk.commands, "port_free_or_exit", lambda *args: None)
    monkeypatch.setattr(logging.getLogger(), "level", logging.getLogger().level)  # `-v` sets it: put back
    monkeypatch.setattr(signal, "signal", lambda *args: None)  # serve's SIGTERM handler: not this process's
    seen: dict[str, object] = {}

    def run_server(self) -> None:  # type: ignore[no-untyped-def]
        seen.update(vars(self.config))
        self.started = True

    monkeypatch.setattr(uvicorn.Server, "run", run_server)
    code, output = run("-v", "serve", "--forwarded-allow-ips", "10.0.0.5", "--worker-timeout", "90")
    assert code == 0, output
    assert seen["log_config"]["root"]["level"] == "DEBUG"  # type: ignore[index]
    assert "%(process)d" in seen["log_config"]["formatters"]["gridrisk"]["format"]  # type: ignore[index]
    assert (seen["forwarded_allow_ips"], seen["timeout_worker_healthcheck"]) == ("10.0.0.5", 90)
    assert seen["app"] == "gridrisk.commands.serving:service_app" and serving_commands.service_app
