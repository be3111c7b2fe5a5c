"""`[sample] customers`: training learns from a share of the customers; the test dates keep all of them."""

from __future__ import annotations

import json
import logging
from pathlib import Path

import pandas as pd
import pytest
from typer.testing import CliRunner

from features.sample import members
from gridrisk.cli import app
from training.config import default_config
from training.experiment import load_training_frame
from training.tasks import TrainingError


def _config(**sample):
    return default_config("arrears", as_of={"start": "2023-01"}, sample=sample)


def test_the_test_dates_keep_every_customer_and_earlier_dates_the_sample(generated_dir: Path) -> None:
    full = load_training_frame(_config(), generated_dir)
    cut = load_training_frame(_config(customers=0.4, seed=2), generated_dir)
    dates = sorted(full["as_of"].unique())
    test = full["as_of"] >= dates[-3]  # the default split's 3 test dates
    kept = members(full["customer_id"].to_numpy(), 0.4, 2)
    pd.testing.assert_frame_equal(cut, full[test | kept].reset_index(drop=True))
    assert (~test & ~kept).any()
    # A backtest keeps every window's test dates whole.
    wider = load_training_frame(_config(customers=0.4, seed=2), generated_dir, whole_dates=6)
    test6 = full["as_of"] >= dates[-6]
    pd.testing.assert_frame_equal(wider, full[test6 | kept].reset_index(drop=True))


def test_a_prebuilt_set_is_sampled_as_it_is_read(frame: pd.DataFrame, tmp_path: Path) -> None:
    path = tmp_path / "arrears.parquet"
    frame.drop(columns=["oracle_p"]).to_parquet(path, index=False)
    config = default_config("theft", training_set=path, sample={"customers": 0.5})
    cut = load_training_frame(config, tmp_path)
    dates = sorted(frame["as_of"].unique())
    per_date = cut.groupby("as_of").size()
    customers = frame["customer_id"].nunique()
    assert (per_date.loc[dates[-3:]] == customers).all()
    assert per_date.loc[dates[:-3]].between(0.4 * customers, 0.6 * customers).all()
    assert cut.attrs["sample"]["whole_from"] == pd.Timestamp(dates[-3]).date().isoformat()


def test_a_prebuilt_set_without_ids_cannot_be_sampled(frame: pd.DataFrame, tmp_path: Path) -> None:
    path = tmp_path / "theft.parquet"
    frame.drop(columns=["customer_id", "oracle_p"]).to_parquet(path, index=False)
    config = default_config("theft", training_set=path, sample={"customers": 0.5})
    with pytest.raises(TrainingError, match=r"lacks columns \['customer_id'\], which \[sample\] needs"):
        load_training_frame(config, tmp_path)


def test_a_set_sampled_into_its_test_dates_is_flagged(frame, tmp_path: Path, caplog) -> None:
    path = tmp_path / "theft.parquet"
    frame.drop(columns=["oracle_p"]).to_parquet(path, index=False)
    last = pd.Timestamp(frame["as_of"].max()).date().isoformat()
    meta = {"sample": {"customers": 0.25, "seed": 0, "whole_from": last}}
    path.with_name(path.name + ".meta.json").write_text(json.dumps(meta))
    with caplog.at_level(logging.WARNING, logger="training.experiment"):
        load_training_frame(default_config("theft", training_set=path), tmp_path)
    assert "keeps every customer only from" in caplog.text and "--whole-dates" in caplog.text
    assert "draws with seed" not in caplog.text
    caplog.clear()
    with caplog.at_level(logging.WARNING, logger="training.experiment"):
        again = default_config("theft", training_set=path, sample={"customers": 0.5, "seed": 3})
        load_training_frame(again, tmp_path)
    assert "keep about 12.5 % of the customers, not 50.0 %" in caplog.text


@pytest.mark.slow
def test_train_says_it_learned_from_a_sample_and_logs_it(
    generated_dir: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from mlflow import MlflowClient

    monkeypatch.setenv("GRIDRISK_HOME", str(tmp_path / "home"))
    monkeypatch.delenv("MLFLOW_TRACKING_URI", raising=False)
    config = tmp_path / "arrears.toml"
    config.write_text(
        'task = "arrears"\n[as_of]\nstart = "2022-06"\n[lightgbm]\nnum_threads = 1\n'
        "[sample]\ncustomers = 0.5\n"
    )
    result = CliRunner().invoke(
        app, ["train", str(config), "--warehouse", str(generated_dir)], env={"COLUMNS": "160"}
    )
    assert result.exit_code == 0, result.output
    assert "trained on 50% of the customers ([sample])" in result.output
    uri = f"sqlite:///{(tmp_path / 'home' / 'mlflow.db').resolve()}"
    client = MlflowClient(uri, uri)
    (run,) = client.search_runs([client.get_experiment_by_name("gridrisk-arrears").experiment_id])
    assert run.data.params["sample.customers"] == "0.5"
    full = load_training_frame(default_config("arrears", as_of={"start": "2022-06"}), generated_dir)
    last3 = sorted(full["as_of"].unique())[-3:]
    assert int(run.data.params["rows_test"]) == int(full["as_of"].isin(last3).sum())


def test_a_sample_share_outside_zero_to_one_is_refused_before_any_work(tmp_path: Path) -> None:
    result = CliRunner().invoke(
        app, ["train", "--task", "all", "--sample", "0", "--warehouse", str(tmp_path / "none")]
    )
    assert result.exit_code == 2 and "not a share in (0, 1]" in result.output
