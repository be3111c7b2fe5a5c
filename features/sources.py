"""Warehouse I/O: the only module that reads or writes contract tables (read, write, validate, quarantine).

A warehouse is a folder with one Parquet file per contract table (`<table>.parquet`), a `quarantine/`
folder of rejected rows with their reasons, and for generated data a `truth/` folder used only by evaluation.
"""

from __future__ import annotations

from pathlib import Path

import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq

from features.schema import Table, table


class WarehouseError(Exception):
    """A warehouse table is missing or unreadable."""


def table_path(warehouse: Path, name: str) -> Path:
    return Path(warehouse) / f"{name}.parquet"


def has_table(warehouse: Path, name: str) -> bool:
    return table_path(warehouse, name).exists()


def read_table(warehouse: Path, name: str, columns: list[str] | None = None) -> pd.DataFrame:
    """Read one contract table with contract dtypes (dates and timestamps as datetime64).

    An optional table that is absent reads as an empty frame with the contract's columns.
    """
    spec: Table = table(name)
    path = table_path(warehouse, name)
    if not path.exists():
        if spec.optional:
            return spec.arrow_schema(columns).empty_table().to_pandas(date_as_object=False)
        raise WarehouseError(f"warehouse {warehouse} has no table {name!r} ({path} is missing); run `gridrisk ingest`")
    try:
        tbl = pq.read_table(path, columns=columns)
    except (OSError, pa.ArrowInvalid) as exc:
        raise WarehouseError(f"cannot read {path}: {exc}") from exc
    return tbl.to_pandas(date_as_object=False)


def write_table(warehouse: Path, name: str, frame: pd.DataFrame) -> Path:
    """Write a contract table with the contract's Arrow schema (columns in contract order)."""
    spec = table(name)
    names = [c for c in spec.column_names if c in frame.columns]
    tbl = pa.Table.from_pandas(frame[names], schema=spec.arrow_schema(names), preserve_index=False)
    path = table_path(warehouse, name)
    path.parent.mkdir(parents=True, exist_ok=True)
    pq.write_table(tbl, path, compression="zstd")
    return path
