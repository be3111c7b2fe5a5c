"""The one as-of rule: which warehouse rows a feature computed as of a date may read.

Every feature family reads its source rows through `as_of_filter` or an `AsOfView` (the same rule, prepared
once for many as-of dates); nothing else in `features/` filters by time. Labels look forward through
`labels.py`.

The rule: as of the calendar date T, the cutoff is the END of day T (23:59:59.999999), inclusive. A row
counts when its event time and, where the row has one, its `known_at` (when it entered the system: a bill's
version, a payment's posting) are at or before the cutoff. For versioned tables (re-issued bills) only the
latest version known at the cutoff counts for each business key.
"""

from __future__ import annotations

from collections.abc import Iterable
from datetime import date, datetime

import numpy as np
import pandas as pd

from features.schema import table

TIME_UNIT = "datetime64[us]"


class PointInTimeError(Exception):
    """A frame cannot be filtered as of a date (missing time column, unusable as-of date)."""


def cutoff(as_of: date | datetime | str | pd.Timestamp) -> pd.Timestamp:
    """The last instant that counts as of the calendar date `as_of`: the end of that day, inclusive.

    A time-of-day on `as_of` is ignored: as-of dates are calendar days, so 2023-06-30 14:00 means 2023-06-30,
    and so does 2023-06-30T20:00-05:00 (the day as written, not that instant's day in another zone).
    """
    try:
        day = pd.Timestamp(as_of)
    except (TypeError, ValueError) as exc:
        raise PointInTimeError(
            f"as-of {as_of!r} is not a date; pass a calendar date like 2023-06-30"
        ) from exc
    if day is pd.NaT:
        raise PointInTimeError("as-of is missing (NaT); pass a calendar date like 2023-06-30")
    if day.tz is not None:
        day = day.tz_localize(None)
    return day.normalize().as_unit("us") + pd.Timedelta(days=1) - pd.Timedelta(microseconds=1)


def as_of_day(as_of: date | datetime | str | pd.Timestamp) -> pd.Timestamp:
    """The as-of calendar date at midnight (the `as_of` column of feature frames)."""
    return cutoff(as_of).normalize()


def day_in_month(month: pd.Period, day: int | str | None) -> pd.Timestamp:
    """The as-of date of `month` on `day` of the month (1-28), or its last day for "end" / None."""
    if day is None or day == "end":
        return month.to_timestamp(how="end").normalize()
    return month.to_timestamp() + pd.Timedelta(days=int(day) - 1)


def time_values(frame: pd.DataFrame, column: str) -> np.ndarray:
    """A date or timestamp column as datetime64[us] (NaT for nulls), whatever engine produced the frame."""
    if column not in frame.columns:
        raise PointInTimeError(f"frame has no time column {column!r}; the data contract requires it")
    col = frame[column]
    if not pd.api.types.is_datetime64_any_dtype(col.dtype):
        # Spark hands DateType columns to pandas as Python date objects.
        col = pd.to_datetime(col)
    if isinstance(col.dtype, pd.DatetimeTZDtype):
        # Converting to UTC would read an instant as local wall clock, hours off its day; the warehouse holds
        # local times (ingest converts zoned ones), and a frame built by hand must too.
        raise PointInTimeError(
            f"time column {column!r} carries the time zone {col.dt.tz}; as-of dates compare local wall-clock "
            f"times: convert it first (frame[{column!r}].dt.tz_convert('Asia/Shanghai').dt.tz_localize(None))"
        )
    return col.to_numpy(dtype=TIME_UNIT)


def _cut(as_of: date | datetime | str | pd.Timestamp) -> np.datetime64:
    return np.datetime64(cutoff(as_of).to_datetime64(), "us")


class AsOfView:
    """One table prepared once, to be read as of many dates with exactly the rule of `as_of_filter`.

    Rows are sorted by business key then `known_at`, so for each as-of date the visible rows and the latest
    visible version per key come from one vectorised pass (no sort per date).
    """

    def __init__(self, frame: pd.DataFrame, table_name: str, key_codes: np.ndarray | None = None) -> None:
        """`key_codes`: integers that identify each row's business key, when the caller already has them (the
        partition passes customer index × month); without them the key columns are grouped here."""
        spec = table(table_name)
        if spec.event_time is None:
            raise PointInTimeError(
                f"table {table_name!r} has no event time in the contract, so it cannot be read as of a date; "
                "join it through a table that has one"
            )
        self.table_name = table_name
        self.versioned = spec.versioned
        event = time_values(frame, spec.event_time)
        if self.versioned:
            known = time_values(frame, spec.known_at)
        elif spec.known_at is not None and spec.known_at in frame.columns:
            # An optional known_at: an empty one says nothing, so the row counts from its event time.
            known = time_values(frame, spec.known_at)
            known = np.where(np.isnat(known), event, known)
        else:
            known = event
        if self.versioned:
            if key_codes is None:
                missing = [k for k in spec.key if k not in frame.columns]
                if missing:
                    raise PointInTimeError(f"table {table_name!r} frame lacks key columns {missing}")
                group = frame.groupby(list(spec.key), sort=False, dropna=False).ngroup().to_numpy()
            else:
                group = np.asarray(key_codes)
            order = np.lexsort((known, group))
            self.order = order
            self.frame = frame.iloc[order].reset_index(drop=True)
            self._group = group[order]
            event, known = event[order], known[order]
        else:
            self.order = np.arange(len(frame))
            self.frame = frame.reset_index(drop=True)
            self._group = None
        # NaT compares False, so a row without an event time never counts.
        self._visible_from = np.maximum(event, known)
        self._visible_from = np.where(
            np.isnat(event) | np.isnat(known), np.datetime64("NaT"), self._visible_from
        )

    def __len__(self) -> int:
        return len(self.frame)

    def mask(self, as_of: date | datetime | str | pd.Timestamp) -> np.ndarray:
        """Rows whose event time and known_at are at or before the cutoff (all versions)."""
        return self._visible_from <= _cut(as_of)

    def positions(self, as_of: date | datetime | str | pd.Timestamp) -> np.ndarray:
        """Positions (into `self.frame`) of the rows that count as of `as_of`: latest version per key."""
        visible = np.flatnonzero(self.mask(as_of))
        if self._group is None or len(visible) == 0:
            return visible
        g = self._group[visible]
        last_of_key = np.ones(len(visible), dtype=bool)
        last_of_key[:-1] = g[:-1] != g[1:]
        return visible[last_of_key]

    def version_counts(self, as_of: date | datetime | str | pd.Timestamp) -> np.ndarray:
        """For each row of `positions(as_of)`, how many versions of its key are known at the cutoff."""
        visible = np.flatnonzero(self.mask(as_of))
        if self._group is None or len(visible) == 0:
            return np.ones(len(visible), dtype=np.int64)
        g = self._group[visible]
        starts = np.flatnonzero(np.r_[True, g[1:] != g[:-1]])
        return np.diff(np.r_[starts, len(g)])

    def at(self, as_of: date | datetime | str | pd.Timestamp) -> pd.DataFrame:
        return self.frame.iloc[self.positions(as_of)]


def as_of_filter(
    frame: pd.DataFrame, table_name: str, as_of: date | datetime | str | pd.Timestamp
) -> pd.DataFrame:
    """The rows of a contract table that count as of `as_of` (see the module docstring for the rule)."""
    return AsOfView(frame, table_name).at(as_of)


def as_of_days(as_of_dates: Iterable[date | datetime | str | pd.Timestamp]) -> list[pd.Timestamp]:
    """Sorted, de-duplicated as-of calendar dates."""
    days = sorted({as_of_day(d) for d in as_of_dates})
    if not days:
        raise PointInTimeError("no as-of dates given; pass at least one calendar date like 2023-06-30")
    return days
