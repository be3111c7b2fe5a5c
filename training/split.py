"""Split a stacked training set by as-of date: train < validation < test, never randomly across time.

Between two parts there is a gap of at least the task's label window, so no label a model learns from
(which reads (T, T + window]) can see the period the next part is judged on.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field

import pandas as pd

from training.tasks import TrainingError


@dataclass(frozen=True)
class TimeSplit:
    train: tuple[pd.Timestamp, ...]
    validation: tuple[pd.Timestamp, ...]
    test: tuple[pd.Timestamp, ...]
    gap_days: int
    dropped: tuple[pd.Timestamp, ...] = field(default_factory=tuple)  # as-of dates inside a gap

    def part(self, as_of: pd.Series) -> pd.Series:
        """'train' | 'validation' | 'test' | 'gap' for each row's as-of date."""
        values = pd.to_datetime(as_of)
        out = pd.Series("gap", index=as_of.index, dtype=object)
        out[values.isin(self.train)] = "train"
        out[values.isin(self.validation)] = "validation"
        out[values.isin(self.test)] = "test"
        return out

    def summary(self) -> dict[str, str]:
        def span(dates: tuple[pd.Timestamp, ...]) -> str:
            return f"{dates[0].date()}..{dates[-1].date()} ({len(dates)})" if dates else "-"

        return {
            "split_train": span(self.train),
            "split_validation": span(self.validation),
            "split_test": span(self.test),
            "split_gap_days": str(self.gap_days),
        }


def split_by_time(
    as_of_dates: Sequence, *, validation_dates: int, test_dates: int, gap_days: int
) -> TimeSplit:
    """Test = the latest `test_dates` dates; validation = the latest `validation_dates` dates at least
    `gap_days` before the first test date; train = every date at least `gap_days` before the first
    validation date. "At least" is strict: a date T qualifies when T + gap_days < the next part's start."""
    dates = sorted({pd.Timestamp(d).normalize() for d in as_of_dates})
    if len(dates) < test_dates + validation_dates + 1:
        raise TrainingError(
            f"{len(dates)} as-of dates cannot give {test_dates} test, {validation_dates} validation and any "
            f"training dates; widen the config's [as_of] range or lower split.test_dates/validation_dates"
        )
    gap = pd.Timedelta(days=gap_days)
    test = dates[-test_dates:]
    val_pool = [d for d in dates if d + gap < test[0]]
    validation = val_pool[-validation_dates:]
    if len(validation) < validation_dates:
        raise TrainingError(
            f"only {len(val_pool)} as-of dates end their {gap_days}-day label window before the first test "
            f"date "
            f"{test[0].date()}; need {validation_dates} for validation. Start the [as_of] range earlier"
        )
    train = [d for d in dates if d + gap < validation[0]]
    if not train:
        raise TrainingError(
            f"no as-of date ends its {gap_days}-day label window before the first validation date "
            f"{validation[0].date()}: the as-of dates run {dates[0].date()}..{dates[-1].date()}, and a split "
            f"with two {gap_days}-day gaps needs training dates before {(validation[0] - gap).date()}. "
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


def month_ends(start: str, end: str, step_months: int = 1) -> list[pd.Timestamp]:
    """Month-end as-of dates from month `start` to month `end` (YYYY-MM, inclusive)."""
    first = pd.Period(start, freq="M")
    last = pd.Period(end, freq="M")
    if last < first:
        return []
    periods = pd.period_range(first, last, freq="M")[::step_months]
    return [p.to_timestamp(how="end").normalize() for p in periods]
