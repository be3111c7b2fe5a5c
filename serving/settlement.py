"""Paid since the list's date: which customers on an arrears list have paid what they owed at its as-of date.

A snapshot is scored as of a date T (a month end for the shipped models) and read for weeks after it: a
collector who pulls the list on the 10th would otherwise call customers who paid on the 3rd. `gridrisk score`
keeps, for arrears, each customer's open balance at T (`outstanding_yuan`, the feature the model read: the
principal still open on bills known and due by T) and the newest billing month among those bills
(`due_through`). The service adds up the principal of the payments the warehouse holds now that T could not
see (paid after T, or entered after T) toward those bills: the months up to `due_through`, late fees (违约金)
left out as the balance leaves them out. A customer whose principal paid since covers the balance is *settled*
(已结清); their score and rank stay what the model said at T, and a list can leave them out (`hide_settled`).

Payments toward a bill not yet due at T (issued before a day-10 T, due on the 25th), or issued after it, are
not counted: they pay a bill the balance at T did not hold. A customer without a bill due in the 13 months
before T counts payments for months before that window. Payments are read once per snapshot and version of
the payments table (filtered reads: 1.2–1.9 s, 1.8 CPU-s at 818,940 customers, `bench_settlement.py`),
off the request path, when the service refreshes. A table whose times are INT96 or zoned is refused
(`features.sources.stored_columns`) and the lists go unmarked, never marked from times 8 hours off.
"""

from __future__ import annotations

import datetime as dt
import logging
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.dataset as ds

from features.labels import column_extreme
from features.point_in_time import cutoff
from features.sources import stored_columns, table_path
from serving.snapshot import Snapshot

logger = logging.getLogger(__name__)

OUTSTANDING = "outstanding_yuan"
OWED_FEATURE = "payments_outstanding_yuan"  # the arrears feature it copies
DUE_THROUGH = "due_through"
BILL_MONTHS = 13  # how far back from T `due_through` looks for a customer's newest bill due
CENT = 0.005  # yuan: a balance paid to the fen is settled, rounding and all


def _window_start(as_of: dt.date) -> pd.Timestamp:
    return pd.Timestamp(as_of).to_period("M").to_timestamp() - pd.DateOffset(months=BILL_MONTHS)


def due_through(warehouse: Path, customer_ids: pd.Series, as_of: dt.date) -> np.ndarray:
    """The newest billing month (first day, datetime64[D]) of a bill known and due at T for each customer
    (NaT for none in the 13 months before T): issued, entered and due at or before the end of day T, the bills
    `payments_outstanding_yuan` reads."""
    cut = cutoff(as_of)
    start = _window_start(as_of)
    path = table_path(warehouse, "bills")
    names = set(stored_columns(warehouse, "bills", ["period", "issue_date", "due_date", "known_at"]))
    day = pa.scalar(cut.date(), pa.date32())
    visible = (
        (ds.field("period") >= pa.scalar(start.date(), pa.date32()))
        & (ds.field("issue_date") <= day)
        & (ds.field("due_date") <= day)
    )
    if "known_at" in names:
        known = ds.field("known_at")
        visible &= known.is_null() | (known <= pa.scalar(cut, pa.timestamp("us")))
    bills = ds.dataset(path).to_table(columns=["customer_id", "period"], filter=visible)
    newest = bills.group_by("customer_id").aggregate([("period", "max")])
    lookup = pd.Series(
        newest.column("period_max").to_numpy(zero_copy_only=False).astype("datetime64[D]"),
        index=newest.column("customer_id").to_pandas().astype(str),
    )
    return lookup.reindex(customer_ids.astype(str).to_numpy()).to_numpy(dtype="datetime64[D]")


def add_balances(scores: pd.DataFrame, frame: pd.DataFrame, warehouse: Path, as_of: dt.date) -> pd.DataFrame:
    """The arrears snapshot's two extra columns: each customer's open balance at T (the feature the model
    read; rows in the frame's order) and the newest billing month known at T."""
    owed = pd.to_numeric(frame[OWED_FEATURE], errors="coerce").to_numpy(dtype=np.float64)
    out = scores.copy()
    out[OUTSTANDING] = owed
    out[DUE_THROUGH] = due_through(warehouse, frame["customer_id"], as_of)
    return out


@dataclass(frozen=True)
class Settlement:
    """Per snapshot position: yuan paid since T toward the bills open at T, the last such payment's day, and
    whether they cover the balance at T. `payments_through` is the newest payment the warehouse holds."""

    key: tuple[Path, int, int]  # snapshot path and mtime, payments table mtime
    paid: np.ndarray  # float64 yuan, 0 where nothing was paid
    last_paid: np.ndarray  # datetime64[D], NaT where nothing was paid
    settled: np.ndarray  # bool
    payments_through: dt.date | None


def _payments_mtime(warehouse: Path) -> int | None:
    try:
        return table_path(warehouse, "payments").stat().st_mtime_ns
    except FileNotFoundError:
        return None


def settle(snapshot: Snapshot, warehouse: Path, current: Settlement | None = None) -> Settlement | None:
    """The snapshot's settlement now; None for a snapshot without balances (other tasks, snapshots scored
    before) or a warehouse without payments. `current` is returned as is when nothing it read has changed."""
    if OUTSTANDING not in snapshot.numbers or DUE_THROUGH not in snapshot.numbers:
        return None
    mtime = _payments_mtime(warehouse)
    if mtime is None:
        return None
    key = (snapshot.path, snapshot.mtime_ns, mtime)
    if current is not None and current.key == key:
        return current
    path = table_path(warehouse, "payments")
    cut = pa.scalar(cutoff(snapshot.as_of), pa.timestamp("us"))
    names = set(stored_columns(warehouse, "payments", ["paid_at", "known_at"]))  # INT96 refused, not shifted
    unseen = ds.field("paid_at") > cut  # what T could not see: paid after it, or entered after it
    if "known_at" in names:
        unseen |= ds.field("known_at") > cut
    columns = ["customer_id", "period", "paid_at", "amount"] + (["late_fee"] if "late_fee" in names else [])
    table = ds.dataset(path).to_table(columns=columns, filter=unseen)
    pos = snapshot.positions(table.column("customer_id").to_pylist(), strict=False)
    period = table.column("period").to_numpy(zero_copy_only=False).astype("datetime64[D]")
    through = snapshot.numbers[DUE_THROUGH].astype("datetime64[D]")
    fallback = (_window_start(snapshot.as_of) - pd.Timedelta(days=1)).to_datetime64().astype("datetime64[D]")
    limit = np.where(np.isnat(through), fallback, through)
    known = pos >= 0
    counts = np.zeros(len(pos), dtype=bool)
    counts[known] = period[known] <= limit[pos[known]]
    hit = pos[counts]
    amount = pc.fill_null(table.column("amount"), 0.0).to_numpy(zero_copy_only=False)
    if "late_fee" in columns:  # principal only: a late fee settles no part of a bill, as the balance reads it
        amount = amount - pc.fill_null(table.column("late_fee"), 0.0).to_numpy(zero_copy_only=False)
    amount = amount[counts]
    paid = np.bincount(hit, weights=amount, minlength=snapshot.size)
    day = table.column("paid_at").to_numpy(zero_copy_only=False).astype("datetime64[D]")[counts]
    last_paid = np.full(snapshot.size, np.datetime64("NaT"), dtype="datetime64[D]")
    if len(hit):
        newest = pd.Series(day).groupby(hit).max()
        last_paid[newest.index.to_numpy()] = newest.to_numpy(dtype="datetime64[D]")
    owed = np.nan_to_num(snapshot.numbers[OUTSTANDING])
    settled = (owed > CENT) & (paid >= owed - CENT)
    newest_payment = column_extreme(path, "paid_at", "max")
    logger.info(
        "%s snapshot as of %s: %d payments since, %d of %d customers with a balance settled",
        snapshot.task, snapshot.as_of, int(counts.sum()), int(settled.sum()), int((owed > CENT).sum()),
    )  # fmt: skip
    return Settlement(
        key,
        paid,
        last_paid,
        settled,
        newest_payment.date() if newest_payment is not None else None,
    )


def for_snapshot(settlements: dict[str, Settlement], snapshot: Snapshot) -> Settlement | None:
    """The settlement read for this very snapshot (a request may hold one the refresh just replaced)."""
    found = settlements.get(snapshot.task)
    return found if found is not None and found.key[:2] == (snapshot.path, snapshot.mtime_ns) else None
