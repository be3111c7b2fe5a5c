"""Split a stacked training set by as-of date, never randomly across time.

`holdout`: train < validation < test. `purged_kfold`: test as before; every earlier date whose label window
ends before the test starts is for development, cut into contiguous blocks of dates, each block validated by a
model trained on the development dates on either side of it (López de Prado's purged K-fold). Between a
validation block or the test and any date a model learns from there is a gap of at least the task's label
window, so no label a model learns from (which reads (T, T + window]) overlaps the labels it is judged on.
"""

from __future__ import annotations

import logging
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field, replace

import numpy as np
import pandas as pd

from features.point_in_time import day_in_month
from training.tasks import TrainingError

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class TimeSplit:
    train: tuple[pd.Timestamp, ...]
    validation: tuple[pd.Timestamp, ...]
    test: tuple[pd.Timestamp, ...]
    gap_days: int
    dropped: tuple[pd.Timestamp, ...] = field(default_factory=tuple)  # as-of dates inside a gap
    # purged_kfold: the validation blocks (train then holds every development date; validation is empty).
    folds: tuple[tuple[pd.Timestamp, ...], ...] = field(default_factory=tuple)

    def fold_training(self, block: tuple[pd.Timestamp, ...]) -> tuple[pd.Timestamp, ...]:
        """Development dates a model validated on `block` may learn from: label windows that end before the
        block's first date, or dates after the block's last label window."""
        gap = pd.Timedelta(days=self.gap_days)
        return tuple(d for d in self.train if d + gap < block[0] or d > block[-1] + gap)

    def part(self, as_of: pd.Series) -> pd.Series:
        """'train' | 'validation' | 'test' | 'gap' for each row's as-of date."""
        values = pd.to_datetime(as_of)
        out = pd.Series("gap", index=as_of.index, dtype=object)
        out[values.isin(self.train)] = "train"
        out[values.isin(self.validation)] = "validation"
        out[values.isin(self.test)] = "test"
        return out

    def validation_pairs(self, train: pd.DataFrame, validation: pd.DataFrame) -> ValidationPairs:
        """(learn-from, validate-on) frames: the one holdout pair, or one per purged fold (from `train`)."""
        return ValidationPairs(self, train, validation)

    def summary(self) -> dict[str, str]:
        def span(dates: tuple[pd.Timestamp, ...]) -> str:
            return f"{dates[0].date()}..{dates[-1].date()} ({len(dates)})" if dates else "-"

        validation = (
            f"purged {len(self.folds)}-fold over the training dates: "
            + ", ".join(span(block) for block in self.folds)
            if self.folds
            else span(self.validation)
        )
        return {
            "split_train": span(self.train),
            "split_validation": validation,
            "split_test": span(self.test),
            "split_gap_days": str(self.gap_days),
        }


def sorted_dates(as_of_dates: Sequence) -> list[pd.Timestamp]:
    return sorted({pd.Timestamp(d).normalize() for d in as_of_dates})


def ending_before(dates: Sequence[pd.Timestamp], first: pd.Timestamp, gap_days: int) -> list[pd.Timestamp]:
    """The dates whose `gap_days` label window ends strictly before `first`."""
    gap = pd.Timedelta(days=gap_days)
    return [d for d in dates if d + gap < first]


def split_by_time(
    as_of_dates: Sequence, *, validation_dates: int, test_dates: int, gap_days: int
) -> TimeSplit:
    """Test = the latest `test_dates` dates; validation = the latest `validation_dates` dates at least
    `gap_days` before the first test date; train = every date at least `gap_days` before the first
    validation date. "At least" is strict: a date T qualifies when T + gap_days < the next part's start."""
    dates = sorted_dates(as_of_dates)
    if len(dates) < test_dates + validation_dates + 1:
        raise TrainingError(
            f"{len(dates)} as-of dates cannot give {test_dates} test, {validation_dates} validation and any "
            f"training dates; widen the config's [as_of] range or lower split.test_dates/validation_dates"
        )
    test = dates[-test_dates:]
    val_pool = ending_before(dates, test[0], gap_days)
    validation = val_pool[-validation_dates:]
    if len(validation) < validation_dates:
        raise TrainingError(
            f"only {len(val_pool)} as-of dates end their {gap_days}-day label window before the first test "
            f"date "
            f"{test[0].date()}; need {validation_dates} for validation. Start the [as_of] range earlier"
        )
    train = ending_before(dates, validation[0], gap_days)
    if not train:
        raise TrainingError(
            f"no as-of date ends its {gap_days}-day label window before the first validation date "
            f"{validation[0].date()}: the as-of dates run {dates[0].date()}..{dates[-1].date()}, and a split "
            f"with two {gap_days}-day gaps needs training dates before "
            f"{(validation[0] - pd.Timedelta(days=gap_days)).date()}. "
            f"Start the [as_of] range earlier (as_of.start, or a lower as_of.history_months), lower "
            f"split.validation_dates/test_dates, or train on an export with more history"
        )
    used = set(train) | set(validation) | set(test)
    return TimeSplit(
        train=tuple(train),
        validation=tuple(validation),
        test=tuple(test),
        gap_days=gap_days,
        dropped=tuple(d for d in dates if d not in used),
    )


def purged_kfold_split(as_of_dates: Sequence, *, folds: int, test_dates: int, gap_days: int) -> TimeSplit:
    """Test = the latest `test_dates` dates; development = every date whose label window ends before the first
    test date, in `folds` contiguous blocks. Each block is validated by a model trained on
    `TimeSplit.fold_training(block)`; the final model learns from every development date.

    Against one holdout window it judges the model on every season the development dates cover: a
    seasonal label (suspension) whose latest three months happen to be off-season no longer decides the
    number of trees and the calibration alone."""
    dates = sorted_dates(as_of_dates)
    if len(dates) < test_dates + folds:
        raise TrainingError(
            f"{len(dates)} as-of dates cannot give {test_dates} test dates and {folds} validation blocks; "
            f"widen the config's [as_of] range or lower split.test_dates/folds"
        )
    test = dates[-test_dates:]
    development = ending_before(dates, test[0], gap_days)
    if len(development) < folds:
        raise TrainingError(
            f"only {len(development)} as-of dates end their {gap_days}-day label window before the first "
            f"test date {test[0].date()}; need at least {folds} (split.folds); start the [as_of] range "
            f"earlier"
        )
    size, extra = divmod(len(development), folds)
    blocks, start = [], 0
    for i in range(folds):  # contiguous, sizes differing by at most one, the larger ones first
        stop = start + size + (1 if i < extra else 0)
        blocks.append(tuple(development[start:stop]))
        start = stop
    split = TimeSplit(
        train=tuple(development),
        validation=(),
        test=tuple(test),
        gap_days=gap_days,
        dropped=tuple(d for d in dates if d not in set(development) | set(test)),
    )
    # On a short archive a middle block can have no date clear of it on either side: it is not validated
    # (its dates still train the served model); the other blocks are.
    usable = tuple(block for block in blocks if split.fold_training(block))
    if not usable:
        raise TrainingError(
            f"no validation block of the {len(development)} development dates "
            f"({development[0].date()}..{development[-1].date()}) has a date {gap_days} days clear of it on "
            f"either side to learn from; start the [as_of] range earlier"
        )
    skipped = [b for b in blocks if b not in usable]
    if skipped:
        logger.info(
            "purged folds: %d of %d blocks have nothing clear of them to learn from, not validated: %s",
            len(skipped),
            folds,
            ", ".join(f"{b[0].date()}..{b[-1].date()}" for b in skipped),
        )
    return replace(split, folds=usable)


@dataclass(frozen=True, eq=False, repr=False)
class ValidationPairs:
    """The (learn-from, validate-on) frames of a split, made one pair at a time as they are iterated: the
    purged folds' learning frames overlap, so all of them at once would hold the development rows ~2.5
    times."""

    split: TimeSplit
    train: pd.DataFrame
    validation: pd.DataFrame

    def __len__(self) -> int:
        return len(self.split.folds) if self.split.folds else 1

    def __iter__(self) -> Iterator[tuple[pd.DataFrame, pd.DataFrame]]:
        if not self.split.folds:
            yield self.train, self.validation
            return
        as_of = pd.to_datetime(self.train["as_of"])
        for block in self.split.folds:
            yield (
                rows_where(self.train, as_of.isin(self.split.fold_training(block))),
                rows_where(self.train, as_of.isin(block)),
            )


def rows_where(frame: pd.DataFrame, mask: pd.Series | np.ndarray) -> pd.DataFrame:
    """The rows of `frame` where `mask` holds (by position: a Series' index is not aligned), indexed from 0.
    A training set is sorted by as-of date, so a split's part is usually one run of rows: that is a slice,
    which copy-on-write shares with `frame` until either is changed, where a boolean mask would copy every
    column."""
    where = np.flatnonzero(np.asarray(mask, dtype=bool))
    if len(where) and where[-1] - where[0] + 1 == len(where):
        return frame.iloc[int(where[0]) : int(where[-1]) + 1].reset_index(drop=True)
    return frame.iloc[where].reset_index(drop=True)


def split_for(
    scheme: str, as_of_dates: Sequence, *, folds: int, validation_dates: int, test_dates: int, gap_days: int
) -> TimeSplit:
    """The config's split scheme (`holdout` or `purged_kfold`) applied to the as-of dates."""
    if scheme == "purged_kfold":
        return purged_kfold_split(as_of_dates, folds=folds, test_dates=test_dates, gap_days=gap_days)
    return split_by_time(
        as_of_dates, validation_dates=validation_dates, test_dates=test_dates, gap_days=gap_days
    )


def fewest_monthly_dates(scheme: str, *, limit: int = 240, **settings: int) -> int | None:
    """The fewest consecutive month-end as-of dates the split accepts whatever month they start in (None if
    not even `limit`): what a refusal can tell the user to aim for. Found by trying, so it holds for every
    scheme and setting; months of 28 to 31 days make a gap in days fit one month sooner in some years."""
    quiet, logger.disabled = logger.disabled, True  # the trial splits' notes are not news
    try:
        for n in range(1, limit + 1):
            try:
                for month in range(1, 13):
                    split_for(scheme, pd.date_range(f"2001-{month:02d}-01", periods=n, freq="ME"), **settings)
            except TrainingError:
                continue
            return n
        return None
    finally:
        logger.disabled = quiet


def month_ends(start: str, end: str, step_months: int = 1, day: int | None = None) -> list[pd.Timestamp]:
    """Month-end as-of dates from month `start` to month `end` (YYYY-MM, inclusive); with `day`, that day of
    each month instead (1–28, so every month has it)."""
    first = pd.Period(start, freq="M")
    last = pd.Period(end, freq="M")
    if last < first:
        return []
    return [day_in_month(p, day) for p in pd.period_range(first, last, freq="M")[::step_months]]
