"""Time split: parts ordered by as-of date, a gap of at least the label window between them, never random."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from training.config import default_config
from training.experiment import split_frame
from training.split import fewest_monthly_dates, month_ends, purged_kfold_split, split_by_time
from training.tasks import TrainingError, task_spec


def test_month_ends() -> None:
    dates = month_ends("2023-11", "2024-02")
    assert [d.strftime("%Y-%m-%d") for d in dates] == ["2023-11-30", "2023-12-31", "2024-01-31", "2024-02-29"]
    assert [d.month for d in month_ends("2023-01", "2023-12", 3)] == [1, 4, 7, 10]
    tenths = month_ends("2023-12", "2024-02", day=10)
    assert [d.strftime("%Y-%m-%d") for d in tenths] == ["2023-12-10", "2024-01-10", "2024-02-10"]


def test_parts_are_ordered_and_separated_by_the_gap() -> None:
    dates = month_ends("2021-07", "2023-06")
    split = split_by_time(dates, validation_dates=3, test_dates=3, gap_days=180)
    assert split.test == tuple(dates[-3:])
    gap = pd.Timedelta(days=180)
    # No training label window reaches the first validation date, nor a validation one the first test date.
    assert max(split.train) + gap < min(split.validation)
    assert max(split.validation) + gap < min(split.test)
    assert len(split.validation) == 3
    assert set(split.train).isdisjoint(split.validation) and set(split.validation).isdisjoint(split.test)
    # Every date is either used or dropped inside a gap.
    assert len(split.train) + 3 + 3 + len(split.dropped) == len(dates)


def test_gap_bound_is_strict() -> None:
    # 2023-01-01 + 30 days = 2023-01-31: a label window ending on the test date touches it -> excluded.
    dates = pd.to_datetime(["2022-10-31", "2022-12-01", "2023-01-01", "2023-01-31"])
    split = split_by_time(dates, validation_dates=1, test_dates=1, gap_days=30)
    assert split.test == (pd.Timestamp("2023-01-31"),)
    assert split.validation == (pd.Timestamp("2022-12-01"),)  # 2022-12-01 + 30d = 2022-12-31 < 2023-01-31
    assert split.train == (pd.Timestamp("2022-10-31"),)  # 2022-10-31 + 30d = 2022-11-30 < 2022-12-01
    assert pd.Timestamp("2023-01-01") in split.dropped


def test_too_few_dates_says_what_to_change() -> None:
    with pytest.raises(TrainingError, match="widen"):
        split_by_time(month_ends("2023-01", "2023-05"), validation_dates=3, test_dates=3, gap_days=90)
    with pytest.raises(TrainingError, match="label window"):
        split_by_time(month_ends("2023-01", "2023-10"), validation_dates=3, test_dates=3, gap_days=200)
    # Two years of suspension as-of dates: validation and test fit, training would need dates before 2022-03.
    with pytest.raises(TrainingError, match=r"run 2022-07-31\.\.2023-06-30.*before 2022-03-04.*more history"):
        split_by_time(month_ends("2022-07", "2023-06"), validation_dates=3, test_dates=3, gap_days=180)


@pytest.mark.parametrize(
    "scheme, folds, gap_days",
    [("holdout", 3, 120), ("holdout", 3, 180), ("purged_kfold", 3, 180), ("purged_kfold", 2, 180)],
)
def test_fewest_monthly_dates_is_the_shortest_span_the_split_accepts(
    scheme: str, folds: int, gap_days: int
) -> None:
    settings = {"folds": folds, "validation_dates": 3, "test_dates": 3, "gap_days": gap_days}
    need = fewest_monthly_dates(scheme, **settings)
    assert need is not None
    split = purged_kfold_split if scheme == "purged_kfold" else split_by_time
    drop = "validation_dates" if split is purged_kfold_split else "folds"
    kwargs = {k: v for k, v in settings.items() if k != drop}

    def dates(first: str, n: int) -> list[pd.Timestamp]:
        return month_ends(first, (pd.Period(first, "M") + n - 1).strftime("%Y-%m"))

    starts = [f"2024-{m:02d}" for m in range(1, 13)]
    for first in starts:  # enough whatever month the dates start in ...
        split(dates(first, need), **kwargs)
    refused = 0
    for first in starts:  # ... and one fewer is refused for some start
        try:
            split(dates(first, need - 1), **kwargs)
        except TrainingError:
            refused += 1
    assert refused > 0


def test_a_short_archive_is_told_how_many_months_it_needs(frame: pd.DataFrame) -> None:
    # Eight monthly as-of dates cannot hold theft's purged folds with two 180-day gaps.
    short = frame[frame["as_of"] < pd.Timestamp("2021-09-01")]
    config = default_config("theft")
    need = fewest_monthly_dates(
        "purged_kfold", folds=3, validation_dates=3, test_dates=3, gap_days=config.split.gap_days or 180
    )
    with pytest.raises(
        TrainingError, match=rf"needs at least {need} dates and has 8\..*about {need + 6 + 6} months"
    ):
        split_frame(short, task_spec("theft"), config)


def test_a_max_dates_cap_is_named_when_it_is_the_limit(frame: pd.DataFrame) -> None:
    config = default_config("arrears", as_of={"max_dates": 8})
    capped = frame[frame["as_of"] >= sorted(frame["as_of"].unique())[-8]]
    with pytest.raises(TrainingError, match=r"as_of\.max_dates = 8 keeps only the latest 8: raise it to"):
        split_frame(capped, task_spec("arrears"), config)


def test_gap_shorter_than_the_label_window_is_refused(frame: pd.DataFrame) -> None:
    # arrears labels read 90 + 30 days: the config itself is refused, before a training set is built
    with pytest.raises(TrainingError, match="gap_days = 90 is shorter than the arrears label window"):
        default_config("arrears", split={"gap_days": 90})
    # and the split refuses a config changed after it was read (model_copy skips validation)
    config = default_config("arrears")
    short = config.model_copy(update={"split": config.split.model_copy(update={"gap_days": 90})})
    with pytest.raises(TrainingError, match="label window"):
        split_frame(frame, task_spec("arrears"), short)


def test_split_frame_rows_follow_their_dates(frame: pd.DataFrame) -> None:
    split, train, validation, test = split_frame(frame, task_spec("arrears"), default_config("arrears"))
    assert train["as_of"].max() + pd.Timedelta(days=120) < validation["as_of"].min()
    assert validation["as_of"].max() + pd.Timedelta(days=120) < test["as_of"].min()
    assert len(train) + len(validation) + len(test) + frame["as_of"].isin(split.dropped).sum() == len(frame)


def test_purged_folds_cover_the_development_dates_and_keep_every_gap() -> None:
    dates = month_ends("2021-04", "2023-06")
    split = purged_kfold_split(dates, folds=3, test_dates=3, gap_days=180)
    gap = pd.Timedelta(days=180)
    assert split.test == tuple(dates[-3:]) and split.validation == ()
    # Development = every date whose label window ends before the test; the blocks tile it in order.
    assert split.train == tuple(d for d in dates if d + gap < dates[-3])
    assert tuple(d for block in split.folds for d in block) == split.train  # here every block is validated
    assert [len(b) for b in split.folds] == [7, 6, 6]
    for block in split.folds:
        learn = split.fold_training(block)
        assert learn and set(learn).isdisjoint(block)
        # A date a fold learns from has its label window end before the block, or starts after the block's
        # last label window: no learned label overlaps a judged one.
        assert all(d + gap < block[0] or d > block[-1] + gap for d in learn)
        # ... and every development date that satisfies this is used (nothing thrown away needlessly).
        assert len(learn) == sum(d + gap < block[0] or d > block[-1] + gap for d in split.train)
    assert "purged 3-fold" in split.summary()["split_validation"]


def test_purged_folds_refuse_what_they_cannot_do() -> None:
    with pytest.raises(TrainingError, match=r"split\.folds"):
        purged_kfold_split(month_ends("2023-01", "2023-10"), folds=3, test_dates=3, gap_days=200)
    # Seven development dates in blocks of 3, 2 and 2: every 180-day gap swallows all the neighbours.
    with pytest.raises(TrainingError, match="no validation block of the 7 development dates"):
        purged_kfold_split(month_ends("2022-01", "2023-02"), folds=3, test_dates=2, gap_days=180)


def test_a_block_with_nothing_clear_of_it_is_not_validated_but_still_trains() -> None:
    # A 30-month archive's suspension dates: development 2022-06..2023-06 in blocks of 5, 4 and 4; the
    # middle block (2022-11..2023-02) has no date 180 days clear of it on either side.
    dates = month_ends("2022-06", "2024-02")
    split = purged_kfold_split(dates, folds=3, test_dates=3, gap_days=180)
    assert [(b[0].strftime("%Y-%m"), len(b)) for b in split.folds] == [("2022-06", 5), ("2023-03", 4)]
    assert split.train == tuple(dates[:13])  # the middle block's dates still train the served model
    assert [len(split.fold_training(b)) for b in split.folds] == [3, 4]


def test_split_frame_follows_the_configured_scheme(frame: pd.DataFrame) -> None:
    config = default_config("arrears", split={"scheme": "purged_kfold", "folds": 2})
    split, train, validation, test = split_frame(frame, task_spec("arrears"), config)
    assert len(split.folds) == 2 and validation.empty
    pairs = split.validation_pairs(train, validation)
    assert len(pairs) == 2
    for (learn, judge), block in zip(pairs, split.folds, strict=True):
        assert set(judge["as_of"]) == set(block) and set(learn["as_of"]) == set(split.fold_training(block))
    assert set(test["as_of"]) == set(split.test)


@pytest.mark.parametrize("order", ["sorted", "shuffled"])
def test_parts_and_folds_are_the_rows_of_their_dates_and_a_sorted_frame_is_not_copied(
    frame: pd.DataFrame, order: str
) -> None:
    frame = frame.sort_values(["as_of", "customer_id"], ignore_index=True)
    if order == "shuffled":
        frame = frame.sample(frac=1.0, random_state=0, ignore_index=True)
    config = default_config("arrears", split={"scheme": "purged_kfold", "folds": 2})
    split, train, validation, test = split_frame(frame, task_spec("arrears"), config)

    def rows(frame: pd.DataFrame, dates: tuple[pd.Timestamp, ...]) -> pd.DataFrame:
        return frame[frame["as_of"].isin(dates)].reset_index(drop=True)

    pd.testing.assert_frame_equal(train, rows(frame, split.train))
    pd.testing.assert_frame_equal(test, rows(frame, split.test))
    folds = split.validation_pairs(train, validation)
    pairs = list(folds)
    for (learn, judge), block in zip(pairs, split.folds, strict=True):
        pd.testing.assert_frame_equal(learn, rows(train, split.fold_training(block)))
        pd.testing.assert_frame_equal(judge, rows(train, block))
    # made anew at each pass, as every Optuna trial makes them
    assert len(folds) == 2 and len(list(folds)) == 2
    for (learn, judge), (again, judged) in zip(pairs, folds, strict=True):
        pd.testing.assert_frame_equal(learn, again)
        pd.testing.assert_frame_equal(judge, judged)
    # A training set comes sorted by as-of date: each part, and each fold's validation block, is one run of
    # rows, taken as a slice that shares the frame's memory (copy-on-write) instead of a copy of every column.
    shared = [np.shares_memory(part["label"].to_numpy(), frame["label"].to_numpy()) for part in (train, test)]
    shared += [np.shares_memory(judge["label"].to_numpy(), frame["label"].to_numpy()) for _, judge in pairs]
    assert shared == [order == "sorted"] * len(shared)
