"""One customer's rows from the warehouse (archive, bills, payments, suspensions, inspections) for the
customer file route and page, read in milliseconds from customer-sorted copies kept in the service's home.

Warehouse tables are written in whatever order ingest produced, so a filtered Parquet read scans every row
group (~0.2–0.4 s for 1.8 M bills). A copy sorted by customer_id in small row groups lets the reader skip all
but one row group (~10 ms). Copies are rebuilt when the warehouse table's modification time changes.
"""

from __future__ import annotations

import bisect
import logging
import threading
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

from features.schema import table as contract_table
from features.sources import read_table, table_path
from serving.errors import HomeUnwritable
from serving.locks import folder_lock, replace_whole
from serving.settings import ServingSettings

logger = logging.getLogger(__name__)

# The columns each page section needs, with the event time that orders a customer's rows.
COLUMNS: dict[str, tuple[list[str], str | None]] = {
    "customers": (
        [
            "customer_id", "usage_category", "industry_code", "voltage_kv", "contract_capacity_kva", "tariff",
            "payment_method", "supply_unit", "station", "area_id", "group_id", "open_date", "close_date",
            "name", "phone", "address",
        ],
        None,
    ),
    "bills": (
        ["customer_id", "period", "kwh", "amount_due", "issue_date", "due_date", "known_at"], "known_at"
    ),
    "payments": (["customer_id", "period", "paid_at", "amount", "late_fee", "channel"], "paid_at"),
    "suspensions": (
        ["customer_id", "applied_at", "kind", "start_date", "end_date", "capacity_kva"], "applied_at"
    ),
    "inspections": (
        ["customer_id", "inspected_at", "result", "recovered_kwh", "recovered_amount"], "inspected_at"
    ),
}  # fmt: skip
BUILD_LOCK = ".build.lock"
ROW_GROUP_ROWS = 32_768  # one row group holds ~900 customers' 36 bills: one small read per page view


@dataclass(frozen=True)
class SortedCopy:
    """One customer-sorted copy and the first and last customer id of each row group (from its footer)."""

    path: Path
    source_mtime_ns: int
    first: list[str]
    last: list[str]

    @classmethod
    def open(cls, path: Path, source_mtime_ns: int) -> SortedCopy:
        meta = pq.read_metadata(path)
        column = meta.schema.names.index("customer_id")
        first, last = [], []
        for g in range(meta.num_row_groups):
            stats = meta.row_group(g).column(column).statistics
            if stats is None or not stats.has_min_max:  # never for our own copies; read everything then
                first, last = [""] * meta.num_row_groups, ["\U0010ffff"] * meta.num_row_groups
                break
            first.append(stats.min)
            last.append(stats.max)
        return cls(Path(path), source_mtime_ns, first, last)

    def rows(self, customer_id: str) -> pa.Table:
        # Row groups are in id order: the customer's rows sit in the groups whose [first, last] holds the id.
        groups = list(
            range(bisect.bisect_left(self.last, customer_id), bisect.bisect_right(self.first, customer_id))
        )
        table = pq.ParquetFile(self.path).read_row_groups(groups) if groups else None
        if table is None:
            return pq.read_schema(self.path).empty_table()
        return table.filter(pc.equal(table["customer_id"], customer_id))


class HistoryStore:
    """Customer-sorted copies of the history tables under `cache`, made from the warehouse in the background
    (`start_warming`) or by the first request that needs one."""

    def __init__(self, warehouse: Path, cache: Path) -> None:
        self.warehouse = Path(warehouse)
        self.cache = Path(cache)
        self._copies: dict[str, SortedCopy] = {}
        self._lock = threading.Lock()
        self._failed: dict[str, int] = {}  # table -> modification time whose copy failed in the background
        self._warming: threading.Thread | None = None
        self._warming_lock = threading.Lock()  # not `_lock`: a build holds that for seconds

    def start_warming(self) -> threading.Thread:
        """Run `warm` in a background thread unless one is already running; returns that thread. Returns
        at once (it is called from the event loop)."""
        with self._warming_lock:
            if self._warming is None or not self._warming.is_alive():
                self._warming = threading.Thread(target=self.warm, name="history-copies", daemon=True)
                self._warming.start()
            return self._warming

    def warm(self) -> None:
        """Build (or find) every table's copy now, so no request waits for one. Never raises: a copy that
        cannot be built is reported once per version of its table, and built, or its error reported, by the
        request that needs it."""
        for name in COLUMNS:
            try:
                mtime = table_path(self.warehouse, name).stat().st_mtime_ns
            except FileNotFoundError:  # an optional table the warehouse lacks
                continue
            if self._failed.get(name) == mtime:
                continue
            try:
                self._copy(name)
            except Exception:  # a background warm-up must not take the service down
                self._failed[name] = mtime
                logger.warning("history copy %s not built in the background", name, exc_info=True)

    def rows(self, name: str, customer_id: str) -> list[dict[str, Any]]:
        """The customer's rows of one table, ordered by event time, as dicts of Python values (dates as
        `date`, times as `datetime`); empty when the warehouse has no such table. Columns the export lacks
        (optional ones) are None."""
        copy = self._copy(name)
        return copy.rows(customer_id).to_pylist() if copy is not None else []

    def _copy(self, name: str) -> SortedCopy | None:
        source = table_path(self.warehouse, name)
        try:
            mtime = source.stat().st_mtime_ns
        except FileNotFoundError:
            return None
        known = self._copies.get(name)
        if known is not None and known.source_mtime_ns == mtime:
            return known
        with self._lock:
            known = self._copies.get(name)
            if known is None or known.source_mtime_ns != mtime:
                self._copies[name] = SortedCopy.open(self._build(name, mtime), mtime)
            return self._copies[name]

    def _build(self, name: str, mtime: int) -> Path:
        path = self.cache / f"{name}-{mtime}.parquet"
        if path.exists():  # another worker process built it already
            return path
        try:
            with folder_lock(self.cache, BUILD_LOCK, exclusive=True):  # one worker builds, the others read it
                if path.exists():
                    return path
                return self._write_copy(name, path)
        except OSError as exc:  # a read-only or full home: a 503 that names it, not a 500
            raise HomeUnwritable(
                "customer history copy",
                path,
                exc,
                "this customer file cannot be shown (its history is read from that copy, made anew when the "
                "warehouse table changes)",
            ) from exc

    def _write_copy(self, name: str, path: Path) -> Path:
        start = time.perf_counter()
        columns, event_time = COLUMNS[name]
        present = set(pq.read_schema(table_path(self.warehouse, name)).names)
        frame = read_table(self.warehouse, name, columns=[c for c in columns if c in present])
        for column in columns:
            if column not in present:
                frame[column] = None
        order = ["customer_id"] + ([event_time] if event_time else [])
        frame = frame.sort_values(order, kind="stable")[columns]
        schema = contract_table(name).arrow_schema(columns)
        data = pa.Table.from_pandas(frame, schema=schema, preserve_index=False)
        tmp = path.with_name(f".{path.name}.{threading.get_ident()}.tmp")
        replace_whole(
            path, tmp, lambda: pq.write_table(data, tmp, compression="zstd", row_group_size=ROW_GROUP_ROWS)
        )
        for old in self.cache.glob(f"{name}-*.parquet"):
            if old != path:
                old.unlink(missing_ok=True)
        seconds = time.perf_counter() - start
        logger.info("history copy %s: %d rows sorted in %.2f s", name, len(frame), seconds)
        return path


def history_store(app: Any, settings: ServingSettings) -> HistoryStore:
    """The app's store (on `app.state`), made for the settings' warehouse; the lifespan starts it warming."""
    store: HistoryStore | None = getattr(app.state, "history", None)
    if store is None or store.warehouse != settings.warehouse_path:
        store = HistoryStore(settings.warehouse_path, settings.home / "history-cache")
        app.state.history = store
    return store
