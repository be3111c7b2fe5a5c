"""Whole experiments on a throwaway SQLite MLflow store: what is logged, registered, gated and overridden."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from training.config import default_config
from training.experiment import train_on_frame
from training.registry import CHALLENGER, CHAMPION, client_for, model_name, promote, version_by_alias
from training.tasks import TrainingError

pytestmark = pytest.mark.slow


def run(frame: pd.DataFrame, features: list[str], tracking: tuple[str, Path], **lightgbm):
    uri, artifacts = tracking
    config = default_config("arrears", lightgbm={"num_boost_round": 150, "num_threads": 1, **lightgbm})
    return train_on_frame(
        frame,
        config,
        tracking_uri=uri,
        artifact_root=artifacts,
        features=features,
        feature_version="test-v1",
        reasons={},
        source="synthetic",
    )


def run_unregistered(frame: pd.DataFrame, features: list[str], tmp_path: Path, **sections):
    """One short run in a fresh store with nothing registered; `sections` override the config (search=...)."""
    uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
    config = default_config(
        "arrears", lightgbm={"num_boost_round": 60, "num_threads": 1}, register_model=False, **sections
    )
    report = train_on_frame(
        frame, config, tracking_uri=uri, artifact_root=tmp_path / "art", features=features,
        feature_version="test-v1", reasons={}, source="synthetic",
    )  # fmt: skip
    return uri, report


@pytest.fixture(scope="module")
def store(frame, features, tmp_path_factory):
    """Three runs in one store: a weak first model, a proper one, and the proper one retrained unchanged."""
    root = tmp_path_factory.mktemp("mlflow")
    tracking = (f"sqlite:///{root / 'mlflow.db'}", root / "mlartifacts")
    weak = run(frame, features, tracking, num_leaves=2, num_boost_round=3, learning_rate=0.05)  # 3 stumps
    strong = run(frame, features, tracking)
    again = run(frame, features, tracking)
    return tracking, weak, strong, again


def test_gate_promotes_refuses_and_is_overridden(store) -> None:
    (uri, _), weak, strong, again = store
    client = client_for(uri)
    # 1. No champion yet -> the first version becomes champion whatever its numbers.
    assert weak.gate.promote and weak.version == "1"
    # 2. A proper model beats it on the same test window -> promoted.
    assert strong.gate.promote, strong.gate.reason
    assert strong.gate.champion.version == "1"
    # 3. Retraining the same config on the same data reproduces the metrics exactly and is refused.
    assert again.metrics == strong.metrics
    assert not again.gate.promote and "margin" in again.gate.reason
    assert "note:" not in again.gate.reason  # the same split: the champion saw none of the test's outcomes
    assert str(version_by_alias(client, "arrears", CHAMPION).version) == "2"
    assert str(version_by_alias(client, "arrears", CHALLENGER).version) == "3"
    tags = client.get_model_version(model_name("arrears"), "3").tags
    assert tags["gate.decision"] == "refused" and tags["gate.champion_version"] == "2"
    # v1's time as champion ended when the gate promoted v2; the version says so.
    ended = client.get_model_version(model_name("arrears"), "1").tags
    assert (ended["champion.replaced_by"], ended["champion.replaced_how"]) == ("2", "gate")
    run_data = client.get_run(again.run_id).data
    assert run_data.tags["gate.decision"] == "refused"
    assert run_data.metrics["gate_champion_primary"] == pytest.approx(
        strong.metrics["model"]["amount_recall_at_5pct"]
    )
    # 4. A person overrides the gate; the override is logged on the version and as its own run.
    result = promote(uri, "arrears", "1", "rollback drill", user="tester")
    assert result["previous_champion"] == "2"
    assert str(version_by_alias(client, "arrears", CHAMPION).version) == "1"
    v1 = client.get_model_version(model_name("arrears"), "1").tags
    assert v1["promotion.reason"] == "rollback drill" and v1["promotion.previous_champion"] == "2"
    assert "champion.until" not in v1  # champion again
    v2 = client.get_model_version(model_name("arrears"), "2").tags
    assert v2["champion.replaced_by"] == "1" and v2["champion.replaced_reason"] == "rollback drill"
    assert v2["champion.until"] == result["at"] and v2["gate.decision"] == "promoted"
    # The newest version (v3) is not the champion: it stays the challenger.
    assert str(version_by_alias(client, "arrears", CHALLENGER).version) == "3"
    override_run = client.get_run(result["run_id"])
    assert override_run.data.tags["gridrisk.kind"] == "promotion-override"
    with pytest.raises(TrainingError, match="no version '9'"):
        promote(uri, "arrears", "9", "typo")
    # Promoting the champion again overwrote promotion.previous_champion ("2") with itself ("1").
    with pytest.raises(TrainingError, match="version 1 is already the champion of gridrisk-arrears"):
        promote(uri, "arrears", "1", "again")
    assert client.get_model_version(model_name("arrears"), "1").tags["promotion.previous_champion"] == "2"
    with pytest.raises(TrainingError, match="reason"):
        promote(uri, "arrears", "2", "  ")


def test_a_champion_whose_files_are_gone_is_a_refusal_not_a_crash(frame, features, tmp_path: Path) -> None:
    """A home moved or restored elsewhere leaves the champion's artifacts behind: the gate said "unexpected
    error, a defect to report", and the new version kept `challenger` with no gate decision recorded."""
    import shutil

    tracking = (f"sqlite:///{tmp_path / 'mlflow.db'}", tmp_path / "mlartifacts")
    first = run(frame, features, tracking, num_leaves=2, num_boost_round=3)
    assert first.gate.promote
    shutil.rmtree(tmp_path / "mlartifacts")
    second = run(frame, features, tracking, num_leaves=2, num_boost_round=3)
    assert not second.gate.promote and second.version == "2"
    assert "champion v1's model cannot be loaded" in second.gate.reason
    assert "gridrisk promote --task arrears --version 2" in second.gate.reason
    tags = client_for(tracking[0]).get_model_version(model_name("arrears"), "2").tags
    assert tags["gate.decision"] == "refused" and tags["gate.champion_version"] == "1"


def test_run_logs_metrics_dataset_plots_and_a_servable_package(store, frame, features, tmp_path) -> None:
    import mlflow

    from serving.model import load_packaged_model

    (uri, artifacts), _, report, _ = store
    client = client_for(uri)
    logged = client.get_run(report.run_id)
    metrics, tags, params = logged.data.metrics, logged.data.tags, logged.data.params
    for key in (
        "test_roc_auc",
        "test_pr_auc",
        "test_ks",
        "test_brier",
        "test_log_loss",
        "test_ece",
        "test_precision_at_1pct",
        "test_precision_at_5pct",
        "test_recall_at_station_capacity",
        "test_amount_recall_at_5pct",
        "test_lift_top_decile",
        "baseline_logistic_roc_auc",
        "baseline_rule_precision_at_5pct",
        "test_roc_auc_usage_category_residential",
        "test_roc_auc_supply_unit_north",
        "validation_roc_auc",
        "explain_ms_single_row",
    ):
        assert key in metrics, key
    assert "baseline_rule_brier" not in metrics  # a rule ranks; it has no probability to judge
    assert tags["data_fingerprint"] and tags["git_commit"] and tags["feature_set_version"] == "test-v1"
    assert params["calibration.method"] == "isotonic"
    inputs = logged.inputs.dataset_inputs
    assert inputs and inputs[0].dataset.digest and inputs[0].tags[0].value == "training"
    artifact_paths = {a.path for a in client.list_artifacts(report.run_id, "plots")}
    assert {
        "plots/roc.png",
        "plots/pr.png",
        "plots/calibration.png",
        "plots/gain_lift.png",
        "plots/shap_summary.png",
        "plots/importance.png",
    } <= artifact_paths
    assert str(artifacts) in client.get_experiment(report.experiment_id).artifact_location

    mlflow.set_tracking_uri(uri)
    package = load_packaged_model(f"models:/{model_name('arrears')}/{report.version}", tmp_path / "package")
    assert package.info["run_id"] == report.run_id and package.info["task"] == "arrears"
    assert len(package.score_quantiles) == 101 and package.bands["high"] >= package.bands["medium"]
    assert package.metrics["roc_auc"] == pytest.approx(report.metrics["model"]["roc_auc"])
    pyfunc = mlflow.pyfunc.load_model(f"models:/{model_name('arrears')}@{CHALLENGER}", dst_path=str(tmp_path))
    out = pyfunc.predict(frame[features].head(5))
    assert list(out.columns) == ["probability", "raw_margin"] and out["probability"].between(0, 1).all()
    assert pyfunc.metadata.signature is not None
    # Scores keep the input's index, so a filtered or reordered frame takes each customer's own score back.
    picked = frame[features].iloc[[4, 0, 2]]
    again = pyfunc.predict(picked)
    assert again.index.tolist() == picked.index.tolist()
    np.testing.assert_array_equal(
        picked.assign(p=again["probability"])["p"].to_numpy(), out["probability"].to_numpy()[[4, 0, 2]]
    )


def test_a_registered_model_loads_by_uri_whatever_the_global_store(store, tmp_path: Path) -> None:
    """`gridrisk serve` and `score` run in a fresh process, where MLflow's global URI is its default
    (./mlflow.db); loading must go to the store it is given, by version and by alias."""
    import mlflow

    from serving.model import load_packaged_model
    from serving.model_store import MlflowRegistry

    (uri, _), _, strong, _ = store
    previous = mlflow.get_tracking_uri()
    mlflow.set_tracking_uri(f"sqlite:///{tmp_path / 'elsewhere.db'}")  # an empty store, as in a fresh process
    try:
        by_version = MlflowRegistry(uri).load(model_name("arrears"), strong.version, tmp_path / "v")
        by_alias = load_packaged_model(f"models:/{model_name('arrears')}@{CHAMPION}", tmp_path / "a", uri)
    finally:
        mlflow.set_tracking_uri(previous)
    assert by_version.info["run_id"] == strong.run_id
    assert (
        by_alias.info["run_id"]
        == client_for(uri).get_model_version_by_alias(model_name("arrears"), CHAMPION).run_id
    )
    with pytest.raises(ValueError, match="models:/<name>/<version>"):
        load_packaged_model(f"models:/{model_name('arrears')}", tmp_path / "x", uri)


def test_search_logs_each_trial_as_a_nested_run(frame, features, tmp_path: Path) -> None:
    uri, report = run_unregistered(frame, features, tmp_path, search={"enabled": True, "n_trials": 2})
    client = client_for(uri)
    children = client.search_runs([report.experiment_id], f"tags.`mlflow.parentRunId` = '{report.run_id}'")
    assert len(children) == 2
    assert all("validation_roc_auc" in c.data.metrics and "num_leaves" in c.data.params for c in children)
    parent = client.get_run(report.run_id).data
    assert parent.metrics["search_best_validation_roc_auc"] == max(
        c.data.metrics["validation_roc_auc"] for c in children
    )
    assert report.version is None and report.gate is None  # register_model = false: nothing registered


def test_a_purged_kfold_run_logs_its_folds(frame, features, tmp_path: Path) -> None:
    uri, report = run_unregistered(frame, features, tmp_path, split={"scheme": "purged_kfold", "folds": 3})
    logged = client_for(uri).get_run(report.run_id).data
    assert logged.params["split.scheme"] == "purged_kfold"
    assert len(logged.params["fold_trees"].split(",")) == 3
    assert logged.tags["split_validation"].startswith("purged 3-fold over the training dates: ")
    assert 0.5 < logged.metrics["validation_roc_auc"] < 1 and logged.metrics["test_roc_auc"] > 0.6
    assert int(logged.params["rows_validation"]) == 0 and report.version is None
    # Whether the calibrator was served, and the held-out Brier scores that decided it.
    raw, calibrated = (logged.metrics[f"calibration_transfer_brier_{k}"] for k in ("raw", "calibrated"))
    assert logged.params["calibration.served"] == ("isotonic" if calibrated < raw else "none")


def test_a_categorical_the_export_left_empty_still_logs_a_package(frame, features, tmp_path: Path) -> None:
    # industry_code may be null on every customer (the contract lets it): its feature has no level at all.
    empty = frame.assign(archive_industry_code=pd.Series(pd.NA, index=frame.index, dtype="string"))
    import mlflow

    uri, report = run_unregistered(empty, [*features, "archive_industry_code"], tmp_path)
    mlflow.set_tracking_uri(uri)
    pyfunc = mlflow.pyfunc.load_model(f"runs:/{report.run_id}/model", dst_path=str(tmp_path))
    out = pyfunc.predict(empty[[*features, "archive_industry_code"]].head(3))
    assert out["probability"].between(0, 1).all()


def test_the_resolved_config_names_what_the_run_used(
    frame, features, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # config/resolved.json kept "auto", "latest", gap_days null and a relative warehouse: nothing resolved.
    import json

    monkeypatch.chdir(tmp_path)
    uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
    from training.config import with_overrides

    config = default_config(
        "arrears", lightgbm={"num_boost_round": 30, "num_threads": 1}, register_model=False
    )
    # As `gridrisk train --warehouse wh --trials 3 --no-search` gives it: the command line's values are not
    # "as written" (a tester found --warehouse in as_written.json).
    config = with_overrides(config, warehouse=Path("wh"), search={"enabled": False, "n_trials": 3})
    report = train_on_frame(
        frame, config, tracking_uri=uri, artifact_root=tmp_path / "art", features=features,
        feature_version="test-v1", reasons={}, source="synthetic", warehouse=Path("wh"),
    )  # fmt: skip
    client = client_for(uri)
    folder = Path(client.download_artifacts(report.run_id, "config", str(tmp_path)))
    resolved = json.loads((folder / "resolved.json").read_text())
    assert resolved["as_of"]["start"] == "2021-01" and resolved["as_of"]["end"] == "2022-12"
    assert resolved["split"]["gap_days"] == 120  # arrears: 90 days + 30 of grace
    assert resolved["warehouse"] == str(tmp_path / "wh")
    assert default_config(**resolved).as_of.start == "2021-01"  # still a config
    written = json.loads((folder / "as_written.json").read_text())
    assert written["as_of"]["start"] == "auto" and written["split"]["gap_days"] is None
    assert written["warehouse"] is None and written["search"]["n_trials"] == 20
    overrides = json.loads((folder / "overrides.json").read_text())
    assert overrides == {"warehouse": "wh", "search.enabled": False, "search.n_trials": 3}
    # The params hold the resolved values and every key, so runs compare in the MLflow table: a day-10 run
    # and a step_months = 2 run had the same as_of.* params as the default ones.
    params = client.get_run(report.run_id).data.params
    expected = {
        "as_of.start": "2021-01",
        "as_of.end": "2022-12",
        "as_of.day": "end",
        "as_of.history_months": "6",
        "as_of.step_months": "1",
        "as_of.max_dates": "36",
        "split.gap_days": "120",
        "evaluation.top_fractions": "0.01,0.05",
        "evaluation.min_segment_rows": "50",
        "search.enabled": "False",
        "search.n_trials": "3",  # the config's value (it was 0 whenever the search was off)
        "search.timeout_seconds": "None",
    }
    assert {k: params.get(k) for k in expected} == expected


def test_the_gate_says_when_the_champion_was_trained_on_other_data(frame, features, tmp_path: Path) -> None:
    # A champion trained on another utility's warehouse was said to "have seen these outcomes" of the
    # challenger's, and the decision did not say the two models came from different data.
    uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
    config = default_config("arrears", lightgbm={"num_boost_round": 30, "num_threads": 1})

    def train(data: pd.DataFrame, source: str):
        return train_on_frame(
            data, config, tracking_uri=uri, artifact_root=tmp_path / "art", features=features,
            feature_version="test-v1", reasons={}, source=source,
        )  # fmt: skip

    assert train(frame, "/data/utility-a").gate.promote
    earlier = frame[frame["as_of"] <= pd.Timestamp("2022-09-30")]  # a test window the champion validated on
    same = train(earlier, "/data/utility-a")
    assert "was fitted on as-of dates up to" in same.gate.reason
    assert "it has seen these outcomes, so the comparison favours it" in same.gate.reason
    other = train(earlier, "/data/utility-b")
    reason = other.gate.reason
    assert "has seen these outcomes" not in reason, reason
    assert "the champion v1 was trained on other data (/data/utility-a, data_fingerprint " in reason
    assert "than the challenger (/data/utility-b, data_fingerprint " in reason
    assert "the two were trained on different data" in reason
    # The same rows (one fingerprint) are the same data, whatever the path said; and a prebuilt set is the
    # data of the warehouse its .meta.json names. Both had been "other data", which also hid the leak note.
    same_rows = train(frame, "/data/utility-a-mounted-elsewhere").gate.reason
    assert "other data" not in same_rows, same_rows
    built = tmp_path / "set.parquet"
    (tmp_path / "set.parquet.meta.json").write_text(json.dumps({"warehouse": "/data/utility-a"}))
    from_set = train(earlier[earlier["as_of"] > earlier["as_of"].min()], str(built)).gate.reason
    assert "other data" not in from_set and "it has seen these outcomes" in from_set, from_set
