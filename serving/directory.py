"""Names and phones for risk lists, read once from the warehouse's customer archive, with where the archive
places each customer now (its station and supply unit).

PII stays out of snapshots.

Only `ranking.py` attaches them, and only unmasked for a collector whose scope holds the customer where the
archive places it now (`access.Principal.covers`), the customer file's rule: a customer moved to another
station since the snapshot was scored stays on the old station's list until the next score, without its
name and phone.
"""

from __future__ import annotations

import logging
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow.parquet as pq

from features.sources import read_table, table_path

logger = logging.getLogger(__name__)

PII_COLUMNS = ("name", "phone")


class CustomerDirectory:
    """customer_id -> name, phone; empty when the warehouse or its PII columns are absent."""

    def __init__(
        self,
        ids: np.ndarray,
        names: np.ndarray,
        phones: np.ndarray,
        stations: np.ndarray | None = None,
        supply_units: np.ndarray | None = None,
    ) -> None:
        self.index = pd.Index(ids)
        self.names = names
        self.phones = phones
        nowhere = np.full(len(ids), None, dtype=object)
        self.stations = stations if stations is not None else nowhere
        self.supply_units = supply_units if supply_units is not None else nowhere

    @classmethod
    def empty(cls) -> CustomerDirectory:
        none = np.array([], dtype=object)
        return cls(none, none, none)

    @classmethod
    def from_warehouse(cls, warehouse: Path) -> CustomerDirectory:
        path = table_path(warehouse, "customers")
        if not path.exists():
            logger.info("no customers table at %s: risk lists carry no names or phones", path)
            return cls.empty()
        present = set(pq.read_schema(path).names)
        columns = ["customer_id", "station", "supply_unit"] + [c for c in PII_COLUMNS if c in present]
        frame = read_table(warehouse, "customers", columns=[c for c in columns if c in present])
        n = len(frame)

        def column(name: str) -> np.ndarray:
            if name not in frame.columns:
                return np.full(n, None, dtype=object)
            return frame[name].astype(object).where(frame[name].notna(), None).to_numpy(dtype=object)

        return cls(
            frame["customer_id"].astype(str).to_numpy(dtype=object),
            column("name"),
            column("phone"),
            column("station"),
            column("supply_unit"),
        )

    def lookup_placed(
        self, customer_ids: list[str]
    ) -> tuple[list[str | None], list[str | None], list[tuple[str | None, str | None]]]:
        """Names, phones and (station, supply unit) where the archive places each customer now."""
        pos = self.index.get_indexer(customer_ids) if len(self.index) else np.full(len(customer_ids), -1)
        found = pos.tolist()
        names = [self.names[p] if p >= 0 else None for p in found]
        phones = [self.phones[p] if p >= 0 else None for p in found]
        places = [(self.stations[p], self.supply_units[p]) if p >= 0 else (None, None) for p in found]
        return names, phones, places
