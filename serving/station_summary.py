"""Station and supply-unit benchmarking (对标) from the snapshots: customers per risk band, yuan at risk,
and this month against the newest snapshot of an earlier month. Feeds `GET /v1/{task}/summary` and the
overview page.

Every snapshot is reduced once to one row per (supply unit, station); a caller's scope then picks station
rows, so a collector's totals never include another station's customers, even when grouped by supply unit.

The rows add up to the total, this month and last: a group found only last month (a station renamed or
closed) gets a row with this month's figures at 0, and when last month was scored, a group new this month
gets last month's figures at 0. The response names both snapshots' models, since bands (and so band counts)
move with a retrained model's thresholds.
"""

from __future__ import annotations

import collections
import datetime as dt
import functools
import logging
import threading
import weakref
from collections.abc import Iterable
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq

from serving.model import PackagedModel
from serving.schemas import ModelRef, Task
from serving.snapshot import Snapshot, dated_snapshots, snapshot_meta
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


def station_table(frame: pd.DataFrame) -> pd.DataFrame:
    """One row per (supply unit, station) of a snapshot's rows (`READ_COLUMNS`): customers, band counts and
    sums."""
    frame = frame.copy()
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
    return _nulls_as_none(parts.groupby(list(KEYS), dropna=False, sort=True).sum().reset_index())


@functools.lru_cache(maxsize=16)
def file_station_table(path: Path, mtime_ns: int) -> pd.DataFrame:
    """`station_table` of a snapshot file (last month's), cached by file and modification time: a rewritten
    file is read again, an unchanged one never."""
    table = station_table(pq.read_table(path, columns=READ_COLUMNS).to_pandas())
    logger.info("summarised %s: %d stations", path.name, len(table))
    return table


_SERVED: collections.OrderedDict[int, tuple[weakref.ref[Snapshot], pd.DataFrame]] = collections.OrderedDict()
_SERVED_LOCK = threading.Lock()


def _served_column(snapshot: Snapshot, name: str) -> np.ndarray:
    """One column of the snapshot in memory, categories decoded (None for a null)."""
    if name not in snapshot.codes:
        return snapshot.numbers[name]
    codes, levels = snapshot.codes[name], snapshot.categories[name]
    out = np.full(len(codes), None, dtype=object)
    known = codes >= 0
    out[known] = levels[codes[known]]
    return out


def served_station_table(snapshot: Snapshot) -> pd.DataFrame:
    """`station_table` of the snapshot in memory, the one the lists and scores serve. It read the file at the
    snapshot's path, which a re-score had replaced (the summary showed the new model's counts under the old
    model's name) or damaged (a 500 while the API served the copy in memory). Kept per snapshot while it
    lives (a weak reference: a swapped-out snapshot of a million customers is not kept alive by its
    summary)."""
    with _SERVED_LOCK:
        held = _SERVED.get(id(snapshot))
        if held is not None and held[0]() is snapshot:
            return held[1]
    table = station_table(pd.DataFrame({name: _served_column(snapshot, name) for name in READ_COLUMNS}))
    with _SERVED_LOCK:
        _SERVED[id(snapshot)] = (weakref.ref(snapshot), table)
        while len(_SERVED) > 8:  # three tasks' snapshots and the ones just swapped out
            _SERVED.popitem(last=False)
    return table


def _nulls_as_none(table: pd.DataFrame) -> pd.DataFrame:
    """Null group keys as None (a group-by turns them into NaN, which neither validates nor matches)."""
    for key in KEYS:
        if key in table.columns:
            table[key] = table[key].astype(object).where(table[key].notna(), None)
    return table


@functools.lru_cache(maxsize=16)
def snapshot_model(path: Path, mtime_ns: int) -> ModelRef | None:
    """The model a snapshot file was scored by: its Parquet metadata, else its first row (files written
    before the metadata was); None when neither says. Reads the footer (and at most two columns)."""
    file = pq.ParquetFile(path)
    meta = snapshot_meta(file.schema_arrow)
    if "model_version" in meta:
        return ModelRef(name=meta["model_name"], version=meta["model_version"])
    names = set(file.schema_arrow.names)
    if {"model_name", "model_version"} <= names and file.metadata.num_rows:
        first = file.read_row_group(0, columns=["model_name", "model_version"]).slice(0, 1).to_pylist()
        if first:
            return ModelRef(name=str(first[0]["model_name"]), version=str(first[0]["model_version"]))
    return None


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
    return _nulls_as_none(out)


def _figures(row: pd.Series | None, bands: list[str]) -> SummaryFigures:
    """A group's figures; `None` (the group has no customers in that snapshot) is all zeros."""
    if row is None:
        return SummaryFigures(
            customers=0, bands=dict.fromkeys(bands, 0), mean_probability=None, amount_at_stake=0.0,
            expected_value=0.0,
        )  # fmt: skip
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
    current = scoped(served_station_table(snapshot), stations, supply_units)
    previous_file = previous_month(dated_snapshots(snapshot.path.parent), snapshot.as_of)
    previous = None
    previous_model = None
    previous_detail = None
    if previous_file is not None:
        path = previous_file[1]
        try:
            mtime_ns = path.stat().st_mtime_ns
            previous = scoped(file_station_table(path, mtime_ns), stations, supply_units)
            previous_model = snapshot_model(path, mtime_ns)
        except (OSError, ValueError, KeyError, pa.ArrowException) as exc:
            # Last month is a comparison, not the answer: a damaged file of it made the summary a 500.
            logger.warning("cannot read last month's %s snapshot %s: %s", task, path, exc)
            previous, previous_file = None, None
            previous_detail = (
                f"last month's snapshot {path.name} cannot be read ({type(exc).__name__}): shown without the "
                f"comparison; `gridrisk score --task {task} --as-of` that date writes it again"
            )
    present = {
        c.removeprefix("band:")
        for table in (current, previous)
        if table is not None
        for c in table.columns
        if c.startswith("band:")
    }  # last month's bands too: a retrained model may name others, and its counts must still add up
    bands = band_order(package, present)

    now = _grouped(current, by)
    before = _grouped(previous, by) if previous is not None else None
    before_index = (
        {(r["supply_unit"], r["station"]): r for _, r in before.iterrows()} if before is not None else {}
    )
    rows = []
    for _, r in now.iterrows():  # one iteration per station: tens to hundreds, never per customer
        key = (r["supply_unit"], r["station"])
        prior = before_index.pop(key, None)
        rows.append(
            _row(
                *key,
                _figures(r, bands),
                # With last month scored, a group new this month had nothing then: its change is all new.
                _figures(prior, bands) if before is not None else None,
                bands,
            )
        )
    # Groups only last month had (renamed or closed stations, inside the same scope): this month 0.
    for key, prior in before_index.items():
        rows.append(_row(*key, _figures(None, bands), _figures(prior, bands), bands))
    rows.sort(
        key=lambda x: (x.current.expected_value, x.previous.expected_value if x.previous else 0.0),
        reverse=True,
    )
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
        previous_model=previous_model,
        previous_detail=previous_detail,
        band_order=bands,
        rows=rows,
        total=total,
    )
