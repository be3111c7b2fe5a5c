"""A training set that cannot teach anything is refused with its cause, not with the split it would break."""

from __future__ import annotations

from pathlib import Path

import pandas as pd
import pytest

from training.experiment import check_learnable
from training.tasks import TrainingError


def test_an_empty_population_is_named(frame: pd.DataFrame, tmp_path: Path) -> None:
    with pytest.raises(TrainingError, match=r"in the suspension population \(active two-part-tariff"):
        check_learnable(frame.iloc[0:0], "suspension", tmp_path)


def test_no_positive_names_the_missing_label_table(frame: pd.DataFrame, tmp_path: Path) -> None:
    negatives = frame.assign(label=0)
    with pytest.raises(TrainingError, match=r"has no inspections table, .* without rows stores none"):
        check_learnable(negatives, "theft", tmp_path)
    _inspections(tmp_path, ["normal", "theft"])  # a finding, but outside the label windows
    with pytest.raises(
        TrainingError,
        match=r"2021-01-31\.\.2022-12-31 .* its 1 inspections rows with result theft fall outside",
    ):
        check_learnable(negatives, "theft", tmp_path)
    prebuilt = tmp_path / "theft.parquet"
    prebuilt.touch()
    with pytest.raises(TrainingError, match=f"rebuild {prebuilt}"):
        check_learnable(negatives, "theft", prebuilt)


def test_a_label_that_never_happens_is_not_blamed_on_the_as_of_range(
    frame: pd.DataFrame, tmp_path: Path
) -> None:
    negatives = frame.assign(label=0)
    _inspections(tmp_path, ["normal", "violation"])  # inspected, never found stealing
    with pytest.raises(TrainingError, match="none of the 2 rows of its inspections table has result theft"):
        check_learnable(negatives, "theft", tmp_path)
    # Arrears has no label-event rows to count: bills due in the windows, all paid, say everyone paid...
    (tmp_path / "payments.parquet").touch()
    first = pd.Timestamp(negatives["as_of"].min())
    due = [first + pd.Timedelta(days=d) for d in (10, 80, 400 * 20)]  # two inside (T, T+90], one far beyond
    pd.DataFrame({"due_date": due}).to_parquet(tmp_path / "bills.parquet")
    paid = "2 stored bill rows fell due in those windows and none was left unpaid"
    with pytest.raises(TrainingError, match=paid) as refused:
        check_learnable(negatives, "arrears", tmp_path)
    assert "[as_of]" not in str(refused.value)
    # ... and with no bill due in any window, the bills' coverage is the cause, not everyone paying.
    pd.DataFrame({"due_date": [first - pd.Timedelta(days=1), due[-1]]}).to_parquet(tmp_path / "bills.parquet")
    with pytest.raises(TrainingError, match="no stored bill falls due in those windows") as refused:
        check_learnable(negatives, "arrears", tmp_path)
    assert "[as_of]" in str(refused.value) and "none was left unpaid" not in str(refused.value)


def _inspections(warehouse: Path, results: list[str]) -> None:
    pd.DataFrame({"result": results}).to_parquet(warehouse / "inspections.parquet")


def test_a_learnable_set_passes(frame: pd.DataFrame, tmp_path: Path) -> None:
    check_learnable(frame, "theft", tmp_path)  # positives present: no table is looked at


def test_features_no_training_row_has_are_named() -> None:
    # Daily readings kept for the last 6 months fall inside the last label window: every readings feature is
    # empty on the training dates and the model learned nothing from them, without a word.
    import numpy as np

    from training.experiment import unlearned_features

    train = pd.DataFrame({"a": [1.0, 2.0], "readings": [np.nan, np.nan], "never": [np.nan, np.nan]})
    test = pd.DataFrame({"a": [1.0], "readings": [3.0], "never": [np.nan]})
    assert unlearned_features(train, test, ["a", "readings", "never"]) == ["readings"]


def test_an_explicit_as_of_range_picks_a_prebuilt_sets_dates(frame: pd.DataFrame, tmp_path: Path) -> None:
    # A tester's `training_set = …` run logged as_of.end = 2024-02 beside a test window 2024-06..08: the
    # range was ignored. It now picks among the set's dates as it would among the warehouse's.
    from training.config import default_config
    from training.experiment import load_training_frame

    path = tmp_path / "arrears.parquet"  # 24 month ends, 2021-01..2022-12
    frame.to_parquet(path)

    def dates(**as_of) -> list[str]:
        config = default_config("arrears", training_set=path, as_of=as_of)
        loaded = load_training_frame(config, tmp_path / "no-warehouse")
        return [f"{d:%Y-%m}" for d in sorted(pd.to_datetime(loaded["as_of"].unique()))]

    assert len(dates()) == 24  # auto .. latest: the set's own dates
    assert dates(start="2021-04", end="2022-02") == [
        str(m) for m in pd.period_range("2021-04", "2022-02", freq="M")
    ]
    assert dates(step_months=6) == ["2021-01", "2021-07", "2022-01", "2022-07"]  # from the set's first date
    assert dates(max_dates=3) == ["2022-10", "2022-11", "2022-12"]
    with pytest.raises(TrainingError, match=r"2021-01-31\.\.2022-12-31, and the config's \[as_of\] range"):
        dates(start="2023-01")
    # A set of month ends is not a day-10 set, and --as-of-range builds month ends only: the refusal names
    # --as-of dates on the config's day (it sent the reviewer back to --as-of-range).
    with pytest.raises(TrainingError, match=r"on day 10\) picks none .* --as-of 2022-12-10 … --out FILE"):
        dates(day=10)
    # [sample] keeps the range's latest dates whole, the test dates, not the set's: an earlier end, or a step
    # that skips some of the set's last months, tested on a sample (2022-08 held 351 of 800 customers).
    everyone = frame.groupby("as_of")["customer_id"].nunique().max()
    for as_of in ({"end": "2022-06"}, {"start": "2021-02", "step_months": 2}):
        sampled = default_config("arrears", training_set=path, as_of=as_of, sample={"customers": 0.5})
        loaded = load_training_frame(sampled, tmp_path)
        per_date = loaded.groupby("as_of")["customer_id"].nunique().sort_index()
        assert (per_date.tail(3) == everyone).all() and (per_date.iloc[:-3] < everyone).all(), as_of
    late = default_config("arrears", training_set=path, as_of={"start": "2022-01"}, sample={"customers": 0.5})
    assert pd.to_datetime(load_training_frame(late, tmp_path)["as_of"]).min() == pd.Timestamp("2022-01-31")


def test_auto_start_on_a_prebuilt_set_counts_history_from_its_warehouse(
    frame: pd.DataFrame, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    # A tester's prebuilt theft set trained from as-of dates with one month of bills behind them:
    # history_months did nothing, and the same config gave another model than from the warehouse.
    import json

    from training.config import default_config
    from training.experiment import load_training_frame, truth_dir_for

    warehouse = tmp_path / "wh"
    (warehouse / "truth").mkdir(parents=True)
    # Bills from October 2020: "auto" with history_months = 6 starts in April 2021, as from the warehouse.
    pd.DataFrame({"customer_id": ["C1"], "period": ["2020-10"]}).to_parquet(warehouse / "bills.parquet")
    path = tmp_path / "arrears.parquet"  # 24 month ends, 2021-01..2022-12
    frame.to_parquet(path)
    meta = path.with_name(path.name + ".meta.json")
    meta.write_text(json.dumps({"task": "arrears", "warehouse": str(warehouse)}))

    def first_date(**as_of) -> str:
        config = default_config("arrears", training_set=path, as_of=as_of)
        loaded = load_training_frame(config, tmp_path / "no-warehouse")
        return f"{pd.to_datetime(loaded['as_of']).min():%Y-%m}"

    assert first_date() == "2021-04"
    assert first_date(history_months=3) == "2021-01"
    assert first_date(history_months=1) == "2021-01"  # never before the set's own first date
    assert first_date(start="2021-02") == "2021-02"  # a fixed start is the config's
    # The oracle's truth comes from the set's warehouse when the config's has none (it had no oracle).
    config = default_config("arrears", training_set=path)
    assert truth_dir_for(config, tmp_path / "no-warehouse") == warehouse / "truth"
    # A set whose warehouse is gone starts at its first date, and says history_months was not applied.
    meta.write_text(json.dumps({"task": "arrears", "warehouse": str(tmp_path / "gone")}))
    with caplog.at_level("WARNING", logger="training.experiment"):
        assert first_date() == "2021-01"
    assert "as_of.history_months = 6 is not applied" in caplog.text
    assert truth_dir_for(config, tmp_path / "no-warehouse") is None
