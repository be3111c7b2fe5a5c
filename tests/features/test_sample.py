"""A customer sample for training sets too large for memory: whole customers, stable, nested, and the test
dates and the peer features untouched."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from typer.testing import CliRunner

from features import labels
from features.sample import CustomerSample, members, read_sampled, whole_from
from features.training_set import build_training_set, write_training_set
from gridrisk.cli import app

IDS = np.array([f"C{i:07d}" for i in range(20_000)], dtype=object)


def test_membership_is_stable_sized_nested_and_seeded():
    quarter = members(IDS, 0.25)
    assert abs(quarter.mean() - 0.25) < 0.015
    np.testing.assert_array_equal(quarter, members(list(IDS), 0.25))  # same ids, same customers
    np.testing.assert_array_equal(quarter[::-1], members(IDS[::-1], 0.25))  # order does not matter
    half = members(IDS, 0.5)
    assert (half[quarter]).all() and half.sum() > quarter.sum()  # a smaller share is inside a larger one
    other = members(IDS, 0.25, seed=1)
    assert 0.1 < (quarter & other).sum() / quarter.sum() < 0.4  # another seed: about independent draws
    assert members(IDS, 1.0).all()
    with pytest.raises(ValueError, match=r"\(0, 1\]"):
        CustomerSample(0.0)
    with pytest.raises(ValueError, match="seed"):
        members(IDS, 0.5, seed=10**8)  # it would draw seed 0's customers again


def test_whole_from_is_the_first_of_the_latest_dates():
    dates = pd.to_datetime(["2023-03-31", "2023-01-31", "2023-02-28", "2023-01-31"])
    assert whole_from(dates, 2) == pd.Timestamp("2023-02-28")
    assert whole_from(dates, 9) == pd.Timestamp("2023-01-31")
    assert whole_from([], 3) is None


def _dates(warehouse: Path, task: str, n: int) -> list[pd.Timestamp]:
    latest = labels.latest_labelable_as_of(warehouse, task)
    return list(pd.date_range(end=latest, periods=n + 1, freq="ME"))[-n:]


@pytest.fixture(scope="module")
def full_and_sampled(generated_dir):
    dates = _dates(generated_dir, "theft", 4)
    sample = CustomerSample(0.3, dates[-2], seed=3)
    full = build_training_set(generated_dir, "theft", dates)
    cut = build_training_set(generated_dir, "theft", dates, sample=sample)
    return full, cut, sample


def test_sample_keeps_whole_customers_before_the_test_and_everyone_in_it(full_and_sampled):
    full, cut, sample = full_and_sampled
    early = full["as_of"] < sample.whole_from
    kept = members(full["customer_id"].to_numpy(), sample.share, sample.seed)
    expected = full[~early | kept].reset_index(drop=True)
    # Row for row the full set's values: the peer medians were computed over every customer, not the sample.
    pd.testing.assert_frame_equal(cut, expected, check_like=False)
    assert early.any() and (~early).any()
    assert len(cut[cut["as_of"] < sample.whole_from]) < 0.45 * early.sum()
    assert cut["label"].sum() > 0
    first = sample.whole_from.date().isoformat()
    assert cut.attrs["sample"] == {"customers": 0.3, "seed": 3, "whole_from": first}


def test_reading_a_full_set_with_a_sample_equals_building_it(full_and_sampled, tmp_path):
    full, cut, sample = full_and_sampled
    path = write_training_set(full, tmp_path / "theft.parquet", task="theft")
    table, read = read_sampled(path, sample.share, sample.seed, whole_dates=2)
    assert read == sample
    pd.testing.assert_frame_equal(table.to_pandas(), cut)


def test_cli_writes_a_sampled_set_and_says_so_in_its_metadata(generated_dir, tmp_path):
    out = tmp_path / "arrears.parquet"
    dates = _dates(generated_dir, "arrears", 3)
    command = ["features", "-w", str(generated_dir), "--task", "arrears", "-o", str(out)]
    # A time of day names the as-of day it falls on, for the sample's whole dates as for the build.
    command += [arg for d in dates for arg in ("--as-of", f"{d.date().isoformat()} 12:00")]
    result = CliRunner().invoke(app, [*command, "--sample", "0.5", "--whole-dates", "1"])
    assert result.exit_code == 0, result.output
    meta = json.loads(out.with_name(out.name + ".meta.json").read_text())
    assert meta["sample"] == {"customers": 0.5, "seed": 0, "whole_from": dates[-1].date().isoformat()}
    rows = {p["as_of"]: p["rows"] for p in meta["per_as_of"]}
    assert rows[dates[0].date().isoformat()] < 0.7 * rows[dates[-1].date().isoformat()]
    bad = CliRunner().invoke(app, [*command, "--sample", "0"])
    assert bad.exit_code == 2 and "not a share in (0, 1]" in bad.output
