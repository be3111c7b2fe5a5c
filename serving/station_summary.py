"""Station and supply-unit benchmarking (对标) from the snapshots: customers per risk band, yuan at risk,
and this month against the newest snapshot of an earlier month. Feeds `GET /v1/{task}/summary` and the
overview page.

Every snapshot is reduced once to one row per (supply unit, station); a caller's scope then picks station
rows, so a collector's totals never include another station's customers, even when grouped by supply unit.
"""

from __future__ import annotations

import datetime as dt
import functools
import logging
from collections.abc import Iterable
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow.parquet as pq

from serving.model import PackagedModel
from serving.schemas import Task
from serving.snapshot import Snapshot, dated_snapshots
from serving.view_schemas import SummaryFigures, SummaryResponse, SummaryRow

logger = logging.getLogger(__name__)

KEYS = ("supply_unit", "station")
READ_COLUMNS = ["supply_unit", "station", "band", "probability", "amount_at_stake", "expected_value"]


def band_order(package: PackagedModel | None, present: Iterable[str] = ()) -> list[str]:
    """Band names riskiest first: the model's thresholds high to low, then `low`, then any others present."""
    bands = package.bands if package is not None else {"high": 0.5, "medium": 0.2}
    order = sorted(bands, key=lambda name: bands[name], reverse=True)
    for name in ["low", *sorted(present)]:
        if name not in order:
            order.append(name)
    return order


def previous_month(files: list[tuple[dt.date, Path]], as_of: dt.date) -> tuple[dt.date, Path] | None:
    """The newest snapshot from a calendar month before `as_of`'s month."""
    earlier = [(d, p) for d, p in files if (d.year, d.month) < (as_of.year, as_of.month)]
    return earlier[-1] if earlier else None


@functools.lru_cache(maxsize=16)
def station_table(path: Path, mtime_ns: int) -> pd.DataFrame:
    """One row per (supply unit, station) of a snapshot file: customers, band counts and sums.

    Cached by file and modification time: a rewritten snapshot is read again, an unchanged one never.
    """
    frame = pq.read_table(path, columns=READ_COLUMNS).to_pandas()
    for key in KEYS:
        frame[key] = frame[key].astype(object).where(frame[key].notna(), None)
    band = frame["band"].astype(str).to_numpy()
    columns = {
        "customers": np.ones(len(frame), dtype=np.int64),
        "probability_sum": frame["probability"].to_numpy(dtype=np.float64),
        # Unknown amounts add nothing to the yuan at risk (the same rule the lists use for sorting last).
        "amount_at_stake": np.nan_to_num(frame["amount_at_stake"].to_numpy(dtype=np.float64)),
        "expected_value": np.nan_to_num(frame["expected_value"].to_numpy(dtype=np.float64)),
    }
    for name in np.unique(band):
        columns[f"band:{name}"] = (band == name).astype(np.int64)
    parts = pd.DataFrame(columns)
    parts["supply_unit"] = frame["supply_unit"].to_numpy()
    parts["station"] = frame["station"].to_numpy()
    table = parts.groupby(list(KEYS), dropna=False, sort=True).sum().reset_index()
    logger.info("summarised %s: %d customers in %d stations", path.name, len(frame), len(table))
    return table


def scoped(table: pd.DataFrame, stations: list[str] | None, supply_units: list[str] | None) -> pd.DataFrame:
    mask = np.ones(len(table), dtype=bool)
    if stations is not None:
        mask &= table["station"].isin(stations).to_numpy()
    if supply_units is not None:
        mask &= table["supply_unit"].isin(supply_units).to_numpy()
    return table[mask]


def _grouped(table: pd.DataFrame, by: str) -> pd.DataFrame:
    if by == "station":
        return table
    out = table.drop(columns="station").groupby("supply_unit", dropna=False, sort=True).sum().reset_index()
    out["station"] = None
    return out


def _figures(row: pd.Series, bands: list[str]) -> SummaryFigures:
    customers = int(row["customers"])
    return SummaryFigures(
        customers=customers,
        bands={b: int(row.get(f"band:{b}", 0) or 0) for b in bands},
        mean_probability=float(row["probability_sum"]) / customers if customers else None,
        amount_at_stake=float(row["amount_at_stake"]),
        expected_value=float(row["expected_value"]),
    )


def _row(
    supply_unit: str | None,
    station: str | None,
    current: SummaryFigures,
    previous: SummaryFigures | None,
    bands: list[str],
) -> SummaryRow:
    top = bands[0] if bands else None
    return SummaryRow(
        supply_unit=supply_unit,
        station=station,
        current=current,
        previous=previous,
        expected_value_change=current.expected_value - previous.expected_value if previous else None,
        high_change=(current.bands.get(top, 0) - previous.bands.get(top, 0)) if previous and top else None,
    )


def _totals(table: pd.DataFrame) -> pd.Series:
    return table.drop(columns=list(KEYS)).sum()


def summarize(
    task: Task,
    snapshot: Snapshot,
    package: PackagedModel | None,
    by: str,
    stations: list[str] | None,
    supply_units: list[str] | None,
) -> SummaryResponse:
    """`snapshot` summarised inside a scope (None = every station / unit), against last month's snapshot."""
    current = scoped(station_table(snapshot.path, snapshot.mtime_ns), stations, supply_units)
    previous_file = previous_month(dated_snapshots(snapshot.path.parent), snapshot.as_of)
    previous = None
    if previous_file is not None:
        path = previous_file[1]
        previous = scoped(station_table(path, path.stat().st_mtime_ns), stations, supply_units)
    present = [c.removeprefix("band:") for c in current.columns if c.startswith("band:")]
    bands = band_order(package, present)

    now = _grouped(current, by)
    before = _grouped(previous, by) if previous is not None else None
    before_index = (
        {(r["supply_unit"], r["station"]): r for _, r in before.iterrows()} if before is not None else {}
    )
    rows = []
    for _, r in now.iterrows():  # one iteration per station: tens to hundreds, never per customer
        prior = before_index.get((r["supply_unit"], r["station"]))
        rows.append(
            _row(
                r["supply_unit"],
                r["station"],
                _figures(r, bands),
                _figures(prior, bands) if prior is not None else None,
                bands,
            )
        )
    rows.sort(key=lambda x: x.current.expected_value, reverse=True)
    total = _row(
        None,
        None,
        _figures(_totals(current), bands),
        _figures(_totals(previous), bands) if previous is not None else None,
        bands,
    )
    return SummaryResponse(
        task=task,
        by=by,  # type: ignore[arg-type]
        model=snapshot.model,
        as_of=snapshot.as_of,
        previous_as_of=previous_file[0] if previous_file else None,
        band_order=bands,
        rows=rows,
        total=total,
    )
