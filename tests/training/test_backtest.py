"""The rolling-origin backtest: its windows step back one test window at a time, never see a later label,
window 1 is training's own test window, and the paired comparison is what the windows say."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from features.sample import members
from training.backtest import BacktestWindow, backtest_frame, compare, log_backtest, window_rows
from training.config import default_config
from training.experiment import train_on_frame
from training.registry import client_for
from training.split import TimeSplit
from training.tasks import TrainingError

pytestmark = pytest.mark.slow


def config(sample: float = 1.0, **split):
    return default_config(
        "arrears",
        lightgbm={"num_boost_round": 60, "num_threads": 1},
        register_model=False,
        split={"test_dates": 2, "validation_dates": 2, **split},
        sample={"customers": sample},
    )


@pytest.fixture(scope="module")
def report(frame, features):
    return backtest_frame(frame, config(), windows=3, features=features)


def test_windows_step_back_one_test_window_and_keep_the_gap(report) -> None:
    assert [w.number for w in report.windows] == [1, 2, 3]
    for newer, older in zip(report.windows, report.windows[1:], strict=False):
        assert len(older.split.test) == 2
        # The older window's test dates are the two dates just before the newer one's.
        assert older.split.test[-1] < newer.split.test[0]
        assert (newer.split.test[0] - older.split.test[-1]).days < 32
    for w in report.windows:
        gap = pd.Timedelta(days=w.split.gap_days)
        learned = [*w.split.train, *w.split.validation]
        assert max(learned) + gap < w.split.test[0]
    assert report.stopped is None and report.requested == 3


def test_window_one_is_the_training_runs_test_window(report, frame, features, tmp_path: Path) -> None:
    trained = train_on_frame(
        frame, config(), tracking_uri=f"sqlite:///{tmp_path / 'mlflow.db'}", artifact_root=tmp_path / "art",
        features=features, feature_version="test-v1", reasons={}, source="synthetic",
    )  # fmt: skip
    assert trained.split.test == report.windows[0].split.test
    for scorer in ("model", "logistic", "rule"):
        for metric in ("roc_auc", "precision_at_5pct", "amount_recall_at_5pct"):
            assert report.windows[0].metrics[scorer][metric] == pytest.approx(trained.metrics[scorer][metric])


def test_a_sampled_window_learns_from_the_customers_train_would(frame, features, tmp_path: Path) -> None:
    # The frame keeps every window's test dates whole (load_training_frame's whole_dates); each window cuts
    # its own earlier dates to the sample, so window 1 is `gridrisk train --sample 0.5` on the same data.
    sampled = backtest_frame(frame, config(sample=0.5), windows=2, features=features)
    dates = sorted(frame["as_of"].unique())
    kept = members(frame["customer_id"].to_numpy(), 0.5)
    as_trained = frame[(frame["as_of"] >= dates[-2]) | kept].reset_index(drop=True)
    trained = train_on_frame(
        as_trained, config(sample=0.5), tracking_uri=f"sqlite:///{tmp_path / 'mlflow.db'}",
        artifact_root=tmp_path / "art", features=features, feature_version="test-v1", reasons={},
        source="synthetic",
    )  # fmt: skip
    for metric in ("roc_auc", "precision_at_5pct", "amount_recall_at_5pct"):
        assert sampled.windows[0].metrics["model"][metric] == pytest.approx(trained.metrics["model"][metric])
    window = window_rows(frame, dates[-3], dates[-4], kept)  # window 2: tests on dates[-4:-2]
    early = window[window["as_of"] < dates[-4]]
    assert set(early["customer_id"]) == set(frame.loc[kept, "customer_id"])
    assert len(window[window["as_of"] >= dates[-4]]) == 2 * frame["customer_id"].nunique()


def test_an_older_window_never_sees_a_later_label(report, frame, features) -> None:
    """Scramble every label from window 2's test dates on: window 3 must come out bit for bit the same."""
    cut = report.windows[1].split.test[0]
    scrambled = frame.copy()
    later = scrambled["as_of"] >= cut
    scrambled.loc[later, "label"] = np.random.default_rng(5).permutation(scrambled.loc[later, "label"].values)
    again = backtest_frame(scrambled, config(), windows=3, features=features)
    assert again.windows[2].metrics == report.windows[2].metrics
    assert again.windows[1].metrics["model"]["roc_auc"] != report.windows[1].metrics["model"]["roc_auc"]


def test_the_comparison_is_the_mean_paired_difference(report) -> None:
    primary = report.primary_metric
    diffs = [w.metrics["model"][primary] - w.metrics["logistic"][primary] for w in report.windows]
    logistic = next(c for c in report.comparisons if c.baseline == "logistic")
    assert logistic.windows == 3 and logistic.wins == sum(d > 0 for d in diffs)
    assert logistic.mean_difference == pytest.approx(np.mean(diffs))
    assert logistic.standard_error == pytest.approx(np.std(diffs, ddof=1) / np.sqrt(3))
    table = report.table()
    assert list(table["window"]) == [1, 2, 3]
    assert report.means()[f"model_{primary}"] == pytest.approx(table[f"model_{primary}"].mean())


def test_compare_counts_wins_and_has_no_error_from_one_window() -> None:
    split = TimeSplit(train=(), validation=(), test=(pd.Timestamp("2022-01-31"),), gap_days=60)

    def window(model: float, logistic: float) -> BacktestWindow:
        return BacktestWindow(1, split, {"model": {"m": model}, "logistic": {"m": logistic}})

    two = compare([window(0.5, 0.4), window(0.3, 0.4)], "m", "logistic")
    assert (two.wins, two.mean_difference, two.standard_error) == (1, pytest.approx(0.0), pytest.approx(0.1))
    one = compare([window(0.5, 0.4)], "m", "logistic")
    assert one.wins == 1 and np.isnan(one.standard_error)


def test_too_few_dates_stop_the_backtest_with_the_reason(frame, features) -> None:
    short = frame[frame["as_of"] >= sorted(frame["as_of"].unique())[12]]
    report = backtest_frame(short, config(), windows=6, features=features)
    assert 1 <= len(report.windows) < 6
    assert report.stopped.startswith(f"window {len(report.windows) + 1} (test dates ending ")
    assert "label window" in report.stopped or "as-of dates" in report.stopped
    # The window was cut short by the windows after it, not by the warehouse: no advice on its length (a
    # tester's 36-month warehouse was told it needed "about 28 months of bills").
    done = len(report.windows)
    assert f"At most {done} window{'s' if done > 1 else ''} fit" in report.stopped, report.stopped
    assert "the warehouse needs about" not in report.stopped and "history_months" not in report.stopped
    with pytest.raises(TrainingError, match="no backtest window could be fitted"):
        backtest_frame(frame[frame["as_of"] >= sorted(frame["as_of"].unique())[20]], config(), windows=2,
                       features=features)  # fmt: skip
    with pytest.raises(TrainingError, match="at least one window"):
        backtest_frame(frame, config(), windows=0, features=features)


def test_the_backtest_run_logs_windows_as_steps_a_table_and_a_plot(report, tmp_path: Path) -> None:
    uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
    run_id = log_backtest(report, config(), uri, tmp_path / "art", source="synthetic", warehouse=Path("wh"))
    client = client_for(uri)
    run = client.get_run(run_id)
    # The config as the windows used it: it kept "auto", "latest" and no gap, as training's once did.
    folder = Path(client.download_artifacts(run_id, "config", str(tmp_path)))
    resolved = json.loads((folder / "resolved.json").read_text())
    first = min(report.windows[0].split.train)
    assert resolved["as_of"]["start"] == f"{first:%Y-%m}" and resolved["split"]["gap_days"] == 120
    assert resolved["warehouse"] == str(Path("wh").resolve())
    assert json.loads((folder / "as_written.json").read_text())["as_of"]["start"] == "auto"
    assert run.data.tags["gridrisk.kind"] == "backtest" and run.data.params["windows"] == "3"
    history = client.get_metric_history(run_id, "backtest_model_roc_auc")
    assert sorted(m.step for m in history) == [1, 2, 3]
    second = {m.step: m.value for m in history}[2]
    assert second == pytest.approx(report.windows[1].metrics["model"]["roc_auc"])
    assert run.data.metrics["backtest_wins_vs_logistic"] == report.comparisons[0].wins
    assert sorted(f.path for f in client.list_artifacts(run_id, "backtest")) == [
        "backtest/backtest.png",
        "backtest/windows.csv",
    ]
