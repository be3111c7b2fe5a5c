"""Paid since the list's date: which customers on an arrears list have paid what they owed at its as-of date.

A snapshot is scored as of a date T (a month end for the shipped models) and read for weeks after it: a
collector who pulls the list on the 10th would otherwise call customers who paid on the 3rd. `gridrisk score`
keeps, for arrears, each customer's open balance at T (`outstanding_yuan`, the feature the model read) and the
bills it is made of (`open_bills`: each bill known and due by T with more than `TOLERANCE_YUAN` of principal
unpaid, and how much). The service reads the payments the warehouse holds now that T could not see (paid after
T, or entered after T) and counts their principal (late fees, 违约金, left out as the balance leaves them out)
bill by bill, each bill capped at what it had open. A customer is *settled* (已结清) when every bill open at T
is paid to within `TOLERANCE_YUAN`; their score and rank stay what the model said at T, and a list can leave
them out (`hide_settled`).

Money toward another month, a month already paid by T, a bill not yet due at T (issued before a day-10 T, due
on the 25th) or issued after it covers nothing: it pays no bill the balance at T held. A bill re-issued after
T (退补) is judged against what it had open at T; the next score reads the new amount. Payments are read once
per snapshot and version of the payments table, off the request path, when the service refreshes
(`bench_settlement.py` measures it at 818,940 customers). A table whose times are INT96 or zoned is refused
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
from features.payments import TOLERANCE_YUAN
from features.point_in_time import cutoff
from features.sources import stored_columns, table_path
from serving.snapshot import Snapshot

logger = logging.getLogger(__name__)

OUTSTANDING = "outstanding_yuan"
OWED_FEATURE = "payments_outstanding_yuan"  # the arrears feature it copies
OPEN_BILLS = "open_bills"  # per customer, "2026-09-01=81.90;2026-10-01=72.47": each bill open at T
CENT = 0.005  # yuan: what counts as a balance at all


def _visible(known: ds.Expression, cut: pa.Scalar) -> ds.Expression:
    return known.is_null() | (known <= cut)


def open_bills(
    warehouse: Path, customer_ids: pd.Series, owed: np.ndarray, as_of: dt.date
) -> list[str | None]:
    """Each customer's bills open at T, as `payments_outstanding_yuan` reads them: the version known at T of
    every bill issued and due by T, less the principal (amount − late fee) paid toward it by payments known at
    T, where more than `TOLERANCE_YUAN` is left. Encoded `period=yuan;…` (None for no open bill); only the
    customers with a balance are read, so the bills and payments of the others are never loaded."""
    ids = customer_ids.astype(str).to_numpy()
    owing = np.unique(ids[np.nan_to_num(owed) > CENT])
    if not len(owing):
        return [None] * len(ids)
    end = cutoff(as_of)
    cut, day = pa.scalar(end, pa.timestamp("us")), pa.scalar(end.date(), pa.date32())
    who = ds.field("customer_id").isin(pa.array(owing, pa.string()))
    bill_cols = set(stored_columns(warehouse, "bills", ["issue_date", "due_date", "known_at"]))
    wanted = who & (ds.field("issue_date") <= day) & (ds.field("due_date") <= day)
    if "known_at" in bill_cols:
        wanted &= _visible(ds.field("known_at"), cut)
    columns = ["customer_id", "period", "amount_due"] + (["known_at"] if "known_at" in bill_cols else [])
    bills = ds.dataset(table_path(warehouse, "bills")).to_table(columns=columns, filter=wanted).to_pandas()
    if "known_at" in bills:  # a re-issued bill (退补): the version known at T
        bills = bills.sort_values("known_at", kind="stable")
    bills = bills.drop_duplicates(["customer_id", "period"], keep="last").set_index(["customer_id", "period"])
    pay_cols = set(stored_columns(warehouse, "payments", ["paid_at", "known_at"]))
    seen = who & (ds.field("paid_at") <= cut)
    if "known_at" in pay_cols:
        seen &= _visible(ds.field("known_at"), cut)
    columns = ["customer_id", "period", "amount"] + (["late_fee"] if "late_fee" in pay_cols else [])
    pays = ds.dataset(table_path(warehouse, "payments")).to_table(columns=columns, filter=seen).to_pandas()
    principal = pays["amount"].fillna(0.0) - (pays["late_fee"].fillna(0.0) if "late_fee" in pays else 0.0)
    paid = principal.groupby([pays["customer_id"], pays["period"]]).sum()
    due = bills["amount_due"].astype(np.float64)
    left = due - paid.reindex(due.index).fillna(0.0).to_numpy()
    left = left[(due > TOLERANCE_YUAN) & (left > TOLERANCE_YUAN)]
    if left.empty:
        return [None] * len(ids)
    frame = left.rename("left").reset_index().sort_values(["customer_id", "period"], kind="stable")
    month = pd.to_datetime(frame["period"]).dt.strftime("%Y-%m-%d")
    frame["cell"] = month + "=" + frame["left"].round(2).astype(str)
    # Most customers owe one bill: their text is its cell; only the others are joined group by group.
    several = frame["customer_id"].duplicated(keep=False).to_numpy()
    one = frame.loc[~several].set_index("customer_id")["cell"]
    joined = frame.loc[several].groupby("customer_id", sort=False)["cell"].agg(";".join)
    text = pd.concat([one, joined]).reindex(ids)
    return text.astype(object).where(text.notna(), None).tolist()


def parse_open(text: object) -> dict[np.datetime64, float]:
    """`open_bills`' text back into {billing month: yuan open at T}."""
    if not isinstance(text, str) or not text:  # None, or NaN from a pandas column
        return {}
    return {np.datetime64(k, "D"): float(v) for k, v in (cell.split("=") for cell in text.split(";"))}


def add_balances(scores: pd.DataFrame, frame: pd.DataFrame, warehouse: Path, as_of: dt.date) -> pd.DataFrame:
    """The arrears snapshot's two extra columns: each customer's open balance at T (the feature the model
    read; rows in the frame's order) and the bills it is made of (`open_bills`)."""
    owed = pd.to_numeric(frame[OWED_FEATURE], errors="coerce").to_numpy(dtype=np.float64)
    out = scores.copy()
    out[OUTSTANDING] = owed
    out[OPEN_BILLS] = open_bills(warehouse, frame["customer_id"], owed, as_of)
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
    before) or a warehouse without payments. `current` is returned as is when nothing it read has changed.

    Each bill open at T is settled by the principal paid toward it since, capped at what it had open: money
    toward another month, a month already paid, or a bill T did not hold covers nothing. A customer is settled
    when every bill open at T is paid to within `TOLERANCE_YUAN`, the rule the balance itself reads."""
    if OUTSTANDING not in snapshot.numbers or OPEN_BILLS not in snapshot.codes:
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
    owing = pos >= 0
    owing[owing] = snapshot.codes[OPEN_BILLS][pos[owing]] >= 0  # customers with a bill open at T
    principal = pc.fill_null(table.column("amount"), 0.0).to_numpy(zero_copy_only=False)
    if "late_fee" in columns:  # principal only: a late fee settles no part of a bill, as the balance reads it
        principal = principal - pc.fill_null(table.column("late_fee"), 0.0).to_numpy(zero_copy_only=False)
    since = pd.DataFrame(
        {
            "pos": pos[owing],
            "period": table.column("period").to_numpy(zero_copy_only=False).astype("datetime64[D]")[owing],
            "principal": principal[owing],
            "day": table.column("paid_at").to_numpy(zero_copy_only=False).astype("datetime64[D]")[owing],
        }
    )
    bills = _open_table(snapshot, np.unique(since["pos"].to_numpy()))
    toward = since.merge(bills[["pos", "period"]], on=["pos", "period"])  # payments toward a bill open at T
    per_bill = toward.groupby(["pos", "period"], as_index=False).agg(paid=("principal", "sum"))
    bills = bills.merge(per_bill, on=["pos", "period"], how="left").fillna({"paid": 0.0})
    bills["covered"] = bills["paid"].clip(lower=0.0, upper=bills["left"])
    bills["done"] = bills["paid"] >= bills["left"] - TOLERANCE_YUAN
    by_customer = bills.groupby("pos").agg(covered=("covered", "sum"), done=("done", "all"))
    touched = by_customer.index.isin(toward["pos"].unique())  # settled only by a payment since T
    paid = np.zeros(snapshot.size)
    paid[by_customer.index.to_numpy()] = by_customer["covered"].to_numpy()
    settled = np.zeros(snapshot.size, dtype=bool)
    settled[by_customer.index.to_numpy()[touched]] = by_customer["done"].to_numpy()[touched]
    last_paid = np.full(snapshot.size, np.datetime64("NaT"), dtype="datetime64[D]")
    if len(toward):
        newest = toward.groupby("pos")["day"].max()
        last_paid[newest.index.to_numpy()] = newest.to_numpy(dtype="datetime64[D]")
    counted = len(toward)
    owed = np.nan_to_num(snapshot.numbers[OUTSTANDING])
    newest_payment = column_extreme(path, "paid_at", "max")
    logger.info(
        "%s snapshot as of %s: %d payments since toward bills open then, %d of %d customers with a balance "
        "settled", snapshot.task, snapshot.as_of, counted, int(settled.sum()), int((owed > CENT).sum()),
    )  # fmt: skip
    return Settlement(
        key,
        paid,
        last_paid,
        settled,
        newest_payment.date() if newest_payment is not None else None,
    )


def _open_table(snapshot: Snapshot, positions: np.ndarray) -> pd.DataFrame:
    """The bills open at T of the customers at `positions`, one row each: pos, period, left (yuan)."""
    codes = snapshot.codes[OPEN_BILLS][positions]
    have = codes >= 0
    texts = pd.Series(snapshot.categories[OPEN_BILLS][codes[have]], index=positions[have])
    cells = texts.str.split(";").explode()
    parts = cells.str.split("=", n=1, expand=True) if len(cells) else pd.DataFrame(columns=[0, 1])
    return pd.DataFrame(
        {
            "pos": cells.index.to_numpy(dtype=np.int64),
            "period": pd.to_datetime(parts[0]).to_numpy(dtype="datetime64[D]") if len(cells) else [],
            "left": parts[1].astype(np.float64).to_numpy() if len(cells) else [],
        }
    )


def for_snapshot(settlements: dict[str, Settlement], snapshot: Snapshot) -> Settlement | None:
    """The settlement read for this very snapshot (a request may hold one the refresh just replaced)."""
    found = settlements.get(snapshot.task)
    return found if found is not None and found.key[:2] == (snapshot.path, snapshot.mtime_ns) else None
