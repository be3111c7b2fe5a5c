"""Names and phones for risk lists, read once from the warehouse's customer archive.

PII stays out of snapshots.

Only `ranking.py` attaches them, and only unmasked for a collector inside its scope (`access.Principal`).
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

    def __init__(self, ids: np.ndarray, names: np.ndarray, phones: np.ndarray) -> None:
        self.index = pd.Index(ids)
        self.names = names
        self.phones = phones

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
        columns = ["customer_id"] + [c for c in PII_COLUMNS if c in present]
        frame = read_table(warehouse, "customers", columns=columns)
        n = len(frame)

        def column(name: str) -> np.ndarray:
            if name not in frame.columns:
                return np.full(n, None, dtype=object)
            return frame[name].astype(object).where(frame[name].notna(), None).to_numpy(dtype=object)

        return cls(frame["customer_id"].astype(str).to_numpy(dtype=object), column("name"), column("phone"))

    def lookup(self, customer_ids: list[str]) -> tuple[list[str | None], list[str | None]]:
        pos = self.index.get_indexer(customer_ids) if len(self.index) else np.full(len(customer_ids), -1)
        names = [self.names[p] if p >= 0 else None for p in pos.tolist()]
        phones = [self.phones[p] if p >= 0 else None for p in pos.tolist()]
        return names, phones
