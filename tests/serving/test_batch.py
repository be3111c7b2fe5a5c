"""`gridrisk score` on a generated utility: real features as of the data end, a champion from an MLflow store,
a snapshot the service then serves with names and phones for the right collector."""

from __future__ import annotations

from pathlib import Path

import lightgbm
import pandas as pd
import pytest
from fastapi.testclient import TestClient
from typer.testing import CliRunner

from serving.access import create_key
from serving.main import create_app
from serving.model import Calibrator, FeatureSpec, PackagedModel, ReasonText, pyfunc_class
from serving.service import ServiceState
from serving.settings import ServingSettings
from serving.snapshot import Snapshot, latest_path

pytestmark = pytest.mark.slow


def real_package(warehouse: Path) -> PackagedModel:
    """A small model on the task's real features and labels (one labelable as-of date)."""
    from features.feature_sets import FEATURE_DOCS, TASK_FEATURES
    from features.labels import latest_labelable_as_of
    from features.training_set import build_training_set

    frame = build_training_set(warehouse, "arrears", [latest_labelable_as_of(warehouse, "arrears")])
    names = TASK_FEATURES["arrears"]
    spec = FeatureSpec.from_frame(frame, names)
    booster = lightgbm.train(
        {"objective": "binary", "num_leaves": 7, "min_data_in_leaf": 10, "verbose": -1},
        lightgbm.Dataset(spec.matrix(frame), frame["label"], feature_name=names,
                         categorical_feature=spec.categorical_indices),
        num_boost_round=20,
    )  # fmt: skip
    reasons = {n: ReasonText.from_doc(d) for n in names if (d := FEATURE_DOCS.get(n)) is not None}
    return PackagedModel("arrears", booster, spec, Calibrator("none"), reasons)


def register(tracking_uri: str, package: PackagedModel, tmp: Path) -> None:
    import mlflow

    mlflow.set_tracking_uri(tracking_uri)
    with mlflow.start_run():
        info = mlflow.pyfunc.log_model(
            name="model",
            python_model=pyfunc_class()(),
            artifacts={"package": str(package.save(tmp / "package"))},
            pip_requirements=["lightgbm"],
            registered_model_name="gridrisk-arrears",
        )
    mlflow.MlflowClient(tracking_uri).set_registered_model_alias(
        "gridrisk-arrears", "champion", info.registered_model_version
    )


def test_gridrisk_score_writes_the_snapshot_the_service_serves(generated_dir, tmp_path, monkeypatch):
    from features.training_set import build_scoring_frame
    from gridrisk.cli import app

    home = tmp_path / "home"
    tracking_uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
    register(tracking_uri, real_package(generated_dir), tmp_path)
    monkeypatch.setenv("GRIDRISK_HOME", str(home))
    monkeypatch.setenv("GRIDRISK_WAREHOUSE", str(generated_dir))
    monkeypatch.setenv("MLFLOW_TRACKING_URI", tracking_uri)

    result = CliRunner().invoke(app, ["score", "--task", "arrears", "--as-of", "2023-12-31"])
    assert result.exit_code == 0, result.output
    path = latest_path(home / "snapshots", "arrears")
    assert path == (home / "snapshots" / "arrears" / "2023-12-31.parquet").resolve()
    snap = Snapshot.read("arrears", path)
    population = build_scoring_frame(generated_dir, "arrears", pd.Timestamp("2023-12-31"))
    assert snap.size == len(population) > 500 and snap.model.version == "1" and snap.k == 5
    assert set(snap.customer_id) == set(population["customer_id"])

    # --out elsewhere writes that file only: the service keeps serving the snapshot above.
    export = tmp_path / "export" / "arrears.parquet"
    args = ["score", "--task", "arrears", "--as-of", "2023-11-30", "--out", str(export)]
    exported = CliRunner().invoke(app, args, env={"COLUMNS": "200"})
    assert exported.exit_code == 0 and "written as a file only" in exported.output, exported.output
    assert Snapshot.read("arrears", export).as_of.isoformat() == "2023-11-30"
    assert latest_path(home / "snapshots", "arrears") == path

    # --task all scores what has a champion and names what has not.
    args = ["score", "--task", "all", "--as-of", "2023-12-31"]
    every = CliRunner().invoke(app, args, env={"COLUMNS": "200"})
    assert every.exit_code == 2
    assert "gridrisk-arrears v1" in every.output and "not scored: suspension, theft" in every.output

    settings = ServingSettings(home=home, warehouse=generated_dir, tasks=["arrears"], poll_seconds=0)
    station = str(population["station"].iloc[0])
    key, _ = create_key(settings.keys_path, "collector", stations=[station])
    with TestClient(create_app(settings, ServiceState.build(settings))) as client:
        body = client.get("/v1/arrears/risk-list", params={"top": 10}, headers={"X-API-Key": key}).json()
    assert body["model"]["version"] == "1" and body["count"] == 10
    assert {i["station"] for i in body["items"]} == {station}
    names = pd.read_parquet(generated_dir / "customers.parquet", columns=["customer_id", "name"])
    expected = names.set_index("customer_id")["name"]
    assert [i["name"] for i in body["items"]] == [expected[i["customer_id"]] for i in body["items"]]
    assert all(len(i["reasons"]) == 5 and i["reasons"][0]["text"] for i in body["items"])
    paid_since_is_what_the_warehouse_holds_after_the_as_of_date(generated_dir, settings, population)


def paid_since_is_what_the_warehouse_holds_after_the_as_of_date(
    warehouse: Path, settings: ServingSettings, population: pd.DataFrame
) -> None:
    """The arrears list marks who paid their balance at T since (serving.settlement), computed here again
    from the raw tables: the principal paid after T toward the months known and due by T."""
    t = pd.Timestamp("2023-12-31 23:59:59.999999")
    bills = pd.read_parquet(
        warehouse / "bills.parquet", columns=["customer_id", "period", "issue_date", "due_date", "known_at"]
    )
    for column in ("period", "issue_date", "due_date"):
        bills[column] = pd.to_datetime(bills[column])
    due = bills[
        (bills["issue_date"] <= t) & (bills["due_date"] <= t) & (bills["known_at"] <= t)
        & (bills["period"] >= "2022-12-01")
    ]  # fmt: skip
    through = due.groupby("customer_id")["period"].max()
    pays = pd.read_parquet(
        warehouse / "payments.parquet", columns=["customer_id", "period", "paid_at", "amount", "late_fee"]
    )
    pays["period"] = pd.to_datetime(pays["period"])
    pays["principal"] = pays["amount"] - pays["late_fee"].fillna(0.0)
    after = pays[pays["paid_at"] > t].copy()
    limit = after["customer_id"].map(through).fillna(pd.Timestamp("2022-11-30"))
    paid = after[after["period"] <= limit].groupby("customer_id")["principal"].sum()
    owed = population.set_index("customer_id")["payments_outstanding_yuan"].fillna(0.0)
    expected_settled = {c for c, o in owed.items() if o > 0.005 and paid.get(c, 0.0) >= o - 0.005}
    assert 0 < len(expected_settled) < len(owed)

    key, _ = create_key(settings.keys_path, "admin")
    params = {"top": 100_000, "sort": "probability"}
    with TestClient(create_app(settings, ServiceState.build(settings))) as client:
        every = client.get("/v1/arrears/risk-list", params=params, headers={"X-API-Key": key}).json()
        params["hide_settled"] = "true"
        unsettled = client.get("/v1/arrears/risk-list", params=params, headers={"X-API-Key": key}).json()
    assert every["payments_through"] == pays["paid_at"].max().date().isoformat() > "2023-12-31"
    items = {i["customer_id"]: i for i in every["items"]}
    assert {c for c, i in items.items() if i["settled"]} == expected_settled
    for c, i in items.items():
        assert i["paid_since_yuan"] == pytest.approx(paid.get(c, 0.0)), c
        assert i["outstanding_yuan"] == pytest.approx(owed[c]), c
    assert unsettled["matched"] == every["matched"] - len(expected_settled)
    assert unsettled["filters"]["hide_settled"] is True and every["filters"]["hide_settled"] is False
    assert not expected_settled & {i["customer_id"] for i in unsettled["items"]}


def test_a_score_on_another_day_of_the_month_than_the_model_learned_says_so():
    # An outside audit: the demo scores on its data end, the 10th, where 27 % of latest bills are past due,
    # with models trained on month ends, where all are.
    import datetime as dt

    from serving.batch import day_skew

    month_ends = {"as_of_test": ["2023-04-30", "2023-06-30"]}
    assert day_skew(month_ends, dt.date(2023, 12, 31)) is None
    said = day_skew(month_ends, dt.date(2024, 1, 10))
    assert said is not None and "day 10 of its month, with a model trained on month ends" in said
    assert "train with [as_of] day = 10" in said
    tenths = {"as_of_test": ["2023-04-10", "2023-06-10"]}
    assert day_skew(tenths, dt.date(2024, 1, 10)) is None
    assert '[as_of] day = "end"' in (day_skew(tenths, dt.date(2023, 12, 31)) or "")
    assert "score as of a month end" in (day_skew(month_ends, dt.date(2024, 1, 30)) or "")
    assert day_skew({}, dt.date(2024, 1, 10)) is None  # a model packed before its dates were recorded
    # 28 February 2023 is day 28 and a month end: `score` picks it for a day-28 model, which is on its day.
    assert day_skew({"as_of_test": ["2023-01-28"]}, dt.date(2023, 2, 28)) is None
    assert day_skew(month_ends, dt.date(2023, 2, 28)) is None
