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
    with pytest.raises(TrainingError, match="has no inspections table, which the theft label reads"):
        check_learnable(negatives, "theft", tmp_path)
    (tmp_path / "inspections.parquet").touch()
    with pytest.raises(TrainingError, match=r"no event in its inspections table .* 2021-01-31\.\.2022-12-31"):
        check_learnable(negatives, "theft", tmp_path)
    prebuilt = tmp_path / "theft.parquet"
    prebuilt.touch()
    with pytest.raises(TrainingError, match=f"rebuild {prebuilt}"):
        check_learnable(negatives, "theft", prebuilt)


def test_a_learnable_set_passes(frame: pd.DataFrame, tmp_path: Path) -> None:
    check_learnable(frame, "theft", tmp_path)  # positives present: no table is looked at
