"""What the generator is asked for (GeneratorConfig), what it reports (GenerationSummary), and its calendar.

The domain numbers (tariffs, charges, mixes) live in `features/synthetic/domain.py`; this module only holds
the run's shape: which months, which days carry daily readings, and when the export is taken.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np


class GeneratorError(ValueError):
    """The generator was asked for something it cannot build (bad config, unreadable truth)."""


@dataclass(frozen=True)
class GeneratorConfig:
    customers: int
    start: str = "2021-01"  # first billing month YYYY-MM
    months: int = 36
    seed: int = 0
    daily_days: int | None = None  # daily readings for the last D days of the span; None = no readings
    faults: bool = False

    def validated(self) -> GeneratorConfig:
        if self.customers < 50:
            raise GeneratorError(f"customers={self.customers} is too few for a utility; ask for at least 50")
        if not 12 <= self.months <= 240:
            raise GeneratorError(f"months={self.months} must be between 12 and 240 (one to twenty years)")
        try:
            if not re.fullmatch(r"\d{4}-\d{2}", self.start):
                raise ValueError(self.start)  # numpy would cut 2021-01-15 to its month without a word
            np.datetime64(self.start, "M")
        except ValueError as exc:
            raise GeneratorError(
                f"start={self.start!r} is not a month; write it as YYYY-MM, e.g. 2021-01"
            ) from exc
        if self.daily_days is not None and not 1 <= self.daily_days <= self.months * 28:
            raise GeneratorError(
                f"daily_days={self.daily_days} must be between 1 and the span's length ({self.months} months)"
            )
        if self.seed < 0:
            raise GeneratorError(f"seed={self.seed} must be >= 0")
        return self


@dataclass
class GenerationSummary:
    """What one run wrote: rows per table (truth included), faults per kind and the wall time."""

    out: Path
    rows: dict[str, int] = field(default_factory=dict)
    faults: dict[str, int] = field(default_factory=dict)
    seconds: float = 0.0
    facts: dict[str, float] = field(default_factory=dict)  # label-relevant counts (thieves, suspensions, …)


@dataclass(frozen=True)
class Calendar:
    """The span's months and days as numpy datetime64[D] values."""

    month_start: np.ndarray  # (months + 1,) first day of each month and of the month after the span
    days_in_month: np.ndarray  # (months,)
    export_at: np.datetime64  # the export is taken this day (after the last month's bills are issued)
    daily_start: np.datetime64 | None  # first day with daily readings

    @property
    def months(self) -> int:
        return self.days_in_month.shape[0]

    @property
    def span_end(self) -> np.datetime64:
        """Last day of the last billing month."""
        return self.month_start[-1] - np.timedelta64(1, "D")

    @property
    def month_of_year(self) -> np.ndarray:
        return (self.month_start[:-1].astype("datetime64[M]").astype(np.int64) % 12) + 1

    @property
    def year(self) -> np.ndarray:
        return self.month_start[:-1].astype("datetime64[Y]").astype(np.int64) + 1970

    def month_index(self, days: np.ndarray) -> np.ndarray:
        """Index of the billing month containing each day (may be <0 or >=months outside the span)."""
        first = self.month_start[0].astype("datetime64[M]")
        return (days.astype("datetime64[M]") - first).astype(np.int64)


# The export is taken this many days after the span's last month ends: after its bills are issued (day 3–8).
EXPORT_LAG_DAYS = 10


def build_calendar(config: GeneratorConfig) -> Calendar:
    first = np.datetime64(config.start, "M")
    month_start = (first + np.arange(config.months + 1)).astype("datetime64[D]")
    days_in_month = np.diff(month_start).astype(np.int64)
    span_end = month_start[-1] - np.timedelta64(1, "D")
    daily_start = None
    if config.daily_days:
        daily_start = span_end - np.timedelta64(config.daily_days - 1, "D")
    return Calendar(
        month_start=month_start,
        days_in_month=days_in_month,
        export_at=month_start[-1] + np.timedelta64(EXPORT_LAG_DAYS, "D"),
        daily_start=daily_start,
    )
