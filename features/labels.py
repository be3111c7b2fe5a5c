"""Labels, task populations and the amount at stake (DESIGN.md "The three tasks"); the only code that looks
after T.

A label as of T reads only the window (T, T + horizon] (arrears: payments until 30 days after each due date
in the window). A label exists only when that window is fully observed: T + horizon (+ grace) must be on or
before the warehouse's data end, the last day carrying any event time or known_at across its tables (an
export is a snapshot taken at one moment, so its newest row dates it). A customer whose account closes
inside the window is excluded. Populations and amounts at stake use only what is known at T.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

from features.point_in_time import as_of_day
from features.schema import (
    ARCHIVE_TABLES,
    TABLES,
    TWO_PART_MIN_KVA,
    InspectionResult,
    PaymentMethod,
    SuspensionKind,
    Tariff,
)
from features.snapshot import AsOf
from features.sources import check_contract_columns, has_table, table_path

TASKS = ("arrears", "suspension", "theft")
HORIZON_DAYS = {"arrears": 90, "suspension": 180, "theft": 180}
ARREARS_GRACE_DAYS = 30  # a bill counts as unpaid when still unpaid 30 days after its due date
TOLERANCE_YUAN = 1.0
BASIC_CHARGE_YUAN_PER_KVA_MONTH = 20.0  # 容量电价, DOMAIN §1 (Yueyang schedule)
SUSPENSION_LABEL_KINDS = (SuspensionKind.SUSPENSION.value, SuspensionKind.REDUCTION.value)


class LabelError(Exception):
    """A label was asked for where it cannot be built (unknown task, horizon not observed)."""


def check_task(task: str) -> str:
    if task not in TASKS:
        raise LabelError(f"task {task!r} is unknown; the tasks are {', '.join(TASKS)}")
    return task


def label_observable_until(task: str) -> pd.Timedelta:
    """How far past T the warehouse must reach for a label as of T: the horizon (+ grace for arrears)."""
    days = HORIZON_DAYS[check_task(task)] + (ARREARS_GRACE_DAYS if task == "arrears" else 0)
    return pd.Timedelta(days=days)


def column_extreme(path: Path, column: str, which: str) -> pd.Timestamp | None:
    """The min or max of one column of a Parquet file, from its row-group statistics when every row group has
    them (the footer only: a 30-million-row table answers in milliseconds), else from the column itself. None
    for a table without the column (an optional one, such as a payment's known_at)."""
    meta = pq.ParquetFile(path).metadata
    if column not in meta.schema.names:
        return None
    index = meta.schema.names.index(column)
    values = []
    for group in range(meta.num_row_groups):
        stats = meta.row_group(group).column(index).statistics
        if stats is None or not stats.has_min_max:
            if meta.row_group(group).num_rows == 0:
                continue
            top = getattr(pc, which)(pq.read_table(path, columns=[column]).column(column)).as_py()
            return pd.Timestamp(top) if top is not None else None
        values.append(pd.Timestamp(stats.max if which == "max" else stats.min))
    if not values:
        return None
    return max(values) if which == "max" else min(values)


def data_end(warehouse: Path) -> pd.Timestamp:
    """The warehouse's data end: the latest calendar day of any event time or known_at across its event
    tables. An archive row's date (a customer's open_date) observes nothing a label reads, and one mistyped
    year there must not move every label window and the scoring date. Refuses a table without a column the
    contract requires (`check_contract_columns`): every command that reads a warehouse asks this first."""
    check_contract_columns(warehouse)
    ends = event_table_ends(warehouse)
    if not ends:
        raise LabelError(f"warehouse {warehouse} has no dated rows; run `gridrisk ingest` first")
    return max(ends.values())


def event_table_ends(warehouse: Path) -> dict[str, pd.Timestamp]:
    """Each stored event table's newest calendar day of event time or known_at (tables without dated rows
    are left out)."""
    out = {}
    for spec in TABLES.values():
        if spec.name in ARCHIVE_TABLES or not has_table(warehouse, spec.name):
            continue
        tops = [
            column_extreme(table_path(warehouse, spec.name), column, "max")
            for column in (spec.event_time, spec.known_at)
            if column is not None
        ]
        dated = [top for top in tops if top is not None]
        if dated:
            out[spec.name] = max(dated).normalize()
    return out


def first_bill_issued(warehouse: Path) -> pd.Timestamp | None:
    """The day the warehouse's first bill was issued (None without bills): before it no customer has a
    billing history."""
    if not has_table(warehouse, "bills"):
        return None
    return column_extreme(table_path(warehouse, "bills"), TABLES["bills"].event_time or "issue_date", "min")


def check_inside_data(warehouse: Path, as_of_dates: list[pd.Timestamp], *, scoring: bool) -> pd.Timestamp:
    """Refuse as-of dates the warehouse cannot describe: before its first bill was issued (no customer has a
    billing history; every bill feature would be missing), and for scoring after its data end (months
    without bills would read as real behaviour). Raises LabelError naming the dates and the range; returns
    the data end it read, for callers that need it next."""
    end = data_end(warehouse)
    first = first_bill_issued(warehouse)
    early = [d for d in as_of_dates if first is not None and d.normalize() < first.normalize()]
    if early:
        raise LabelError(
            f"as-of date{'s' if len(early) > 1 else ''} {', '.join(d.date().isoformat() for d in early[:5])}"
            f"{' …' if len(early) > 5 else ''} {'are' if len(early) > 1 else 'is'} before the first bill in "
            f"warehouse {warehouse} (issued {first.date()}): no customer has a billing history then; pass "
            f"dates from {first.date()} to {end.date()}"
        )
    late = [d for d in as_of_dates if d.normalize() > end] if scoring else []
    if late:
        raise LabelError(
            f"as-of date {late[0].date()} is after the data end of warehouse {warehouse} ({end.date()}, its "
            f"newest event): pass a date on or before {end.date()}"
        )
    return end


def latest_labelable_as_of(warehouse: Path, task: str) -> pd.Timestamp:
    """The last as-of date whose label window is fully observed in this warehouse."""
    return data_end(warehouse) - label_observable_until(task)


def unlabelable(as_of_dates: list[pd.Timestamp], end: pd.Timestamp, task: str) -> list[pd.Timestamp]:
    limit = end - label_observable_until(task)
    return [d for d in as_of_dates if as_of_day(d) > limit]


# -- populations (known at T) --------------------------------------------------------------------------------


# What `population` and the label builders below read, in words, for refusals that name the cause.
POPULATION_DOCS = {
    "arrears": "active customers who do not prepay",
    "suspension": "active two-part-tariff customers, not suspended at T",
    "theft": "active customers without an earlier theft finding",
}
LABEL_TABLES = {"arrears": "payments", "suspension": "suspensions", "theft": "inspections"}
LABEL_DOCS = {
    "arrears": f"a bill due in the {HORIZON_DAYS['arrears']} days after it still unpaid "
    f"{ARREARS_GRACE_DAYS} days after its due date",
    "suspension": "a suspension or capacity reduction applied for in the "
    f"{HORIZON_DAYS['suspension']} days after it",
    "theft": f"an inspection in the {HORIZON_DAYS['theft']} days after it that finds theft",
}
# The rows of a label table that can make a label positive; arrears has none, as its label is a bill and its
# payments together.
LABEL_EVENTS = {
    "suspension": ("kind", SUSPENSION_LABEL_KINDS),
    "theft": ("result", (InspectionResult.THEFT.value,)),
}


def label_event_rows(warehouse: Path, task: str) -> tuple[int, int, str] | None:
    """(rows, label-event rows, what makes a row one) of the task's stored label table over all its dates,
    None for arrears: tells a warehouse whose inspections never found theft from one whose findings lie
    outside the as-of range."""
    if task not in LABEL_EVENTS:
        return None
    column, values = LABEL_EVENTS[task]
    path = table_path(warehouse, LABEL_TABLES[task])
    found = pq.read_table(path, columns=[column]).column(column)
    events = int(pc.sum(pc.is_in(found, value_set=pa.array(values))).as_py() or 0)
    return len(found), events, f"{column} {' or '.join(values)}"


def bills_due_in_windows(warehouse: Path, as_of_dates: list[pd.Timestamp]) -> int:
    """Stored bill rows due in the arrears label window (T, T + horizon] of any of the as-of dates: none means
    the bills do not reach those windows, not that everyone paid."""
    due = pd.to_datetime(
        pq.read_table(table_path(warehouse, "bills"), columns=["due_date"]).column("due_date").to_pandas()
    ).to_numpy()
    hit = np.zeros(len(due), dtype=bool)
    for t in as_of_dates:
        t = np.datetime64(pd.Timestamp(t).normalize())
        hit |= (due > t) & (due <= t + np.timedelta64(HORIZON_DAYS["arrears"], "D"))
    return int(hit.sum())


def population(task: str, at: AsOf, features: dict[str, np.ndarray]) -> np.ndarray:
    """The task's population as of T (DESIGN.md), from the archive and features computed as of T."""
    active = at.active
    if task == "arrears":
        return active & (features["archive_payment_method"] != PaymentMethod.PREPAID.value)
    if task == "suspension":
        return (
            active
            & (features["archive_tariff"] == Tariff.TWO_PART.value)
            & (features["archive_capacity_kva"] >= TWO_PART_MIN_KVA)
            & (features["is_suspended_at_as_of"] < 1)
        )
    if task == "theft":
        return active & (features["has_theft_finding"] < 1)
    raise LabelError(f"task {task!r} is unknown; the tasks are {', '.join(TASKS)}")


# -- labels (read only (T, T + horizon]) ---------------------------------------------------------------------


def observed(task: str, at: AsOf) -> np.ndarray:
    """Customers whose label window is observed: not closed inside (T, T + horizon]."""
    close = at.part.tables["customers"]["close_day"]
    inside = (close > at.day_num) & (close <= at.day_num + HORIZON_DAYS[task])
    return ~inside


def label(task: str, at: AsOf) -> np.ndarray:
    """0/1 per customer for the window after T (population and observability are applied by the caller)."""
    check_task(task)
    if task == "arrears":
        return arrears_label(at)
    if task == "suspension":
        return suspension_label(at)
    return theft_label(at)


def _window(day: np.ndarray, at: AsOf, horizon: int) -> np.ndarray:
    return (day > at.day_num) & (day <= at.day_num + horizon)


def arrears_label(at: AsOf) -> np.ndarray:
    """A bill (latest version) due in (T, T+90d] whose principal paid by due + 30 d is short by > 1 元."""
    part, n, months = at.part, at.part.n, at.part.n_months
    horizon = HORIZON_DAYS["arrears"]
    settle_by = at.day + pd.Timedelta(days=horizon + ARREARS_GRACE_DAYS)
    bills = part.tables["bills"]
    pos = bills.view.positions(settle_by)  # the version in force when the label is settled
    ci, mi = bills.customer[pos], bills["month"][pos] - part.month0
    due_day, amount = bills["due_day"][pos], bills["amount_due"][pos]
    keep = (ci >= 0) & (mi >= 0) & (mi < months) & _window(due_day, at, horizon) & (amount > TOLERANCE_YUAN)
    ci, mi, due_day, amount = ci[keep], mi[keep], due_day[keep], amount[keep]
    cell = ci * months + mi

    pays = part.tables["payments"]
    ppos = np.flatnonzero(pays.customer >= 0)
    pcell = pays.customer[ppos] * months + (pays["month"][ppos] - part.month0)
    in_grid = (pays["month"][ppos] - part.month0 >= 0) & (pays["month"][ppos] - part.month0 < months)
    ppos, pcell = ppos[in_grid], pcell[in_grid]
    due_of_cell = np.full(n * months, np.nan)
    due_of_cell[cell] = due_day
    on_time = pays["paid_day"][ppos] <= due_of_cell[pcell] + ARREARS_GRACE_DAYS
    paid = np.bincount(
        pcell[on_time], weights=np.nan_to_num(pays["principal"][ppos][on_time]), minlength=n * months
    )
    short = paid[cell] < amount - TOLERANCE_YUAN
    return (np.bincount(ci[short], minlength=n) > 0).astype(np.int8)


def suspension_label(at: AsOf) -> np.ndarray:
    """Applies for a suspension or capacity reduction (applied_at) in (T, T+180d]."""
    t = at.part.tables["suspensions"]
    hit = (t.customer >= 0) & np.isin(t["kind"], SUSPENSION_LABEL_KINDS)
    hit &= _window(t["applied_day"], at, HORIZON_DAYS["suspension"])
    return (np.bincount(t.customer[hit], minlength=at.part.n) > 0).astype(np.int8)


def theft_label(at: AsOf) -> np.ndarray:
    """An inspection in (T, T+180d] finds theft."""
    t = at.part.tables["inspections"]
    hit = (t.customer >= 0) & (t["result"] == "theft") & _window(t["day"], at, HORIZON_DAYS["theft"])
    return (np.bincount(t.customer[hit], minlength=at.part.n) > 0).astype(np.int8)


# -- amount at stake (known at T) ----------------------------------------------------------------------------


def amount_at_stake(task: str, features: dict[str, np.ndarray]) -> np.ndarray:
    """Yuan at stake if the label turns out 1, from features as of T (README documents each rule).

    arrears: the open balance at T plus the expected next bill (mean of the last 3 bills);
    suspension: the basic charge not billed over the horizon, on the capacity not already reduced;
    theft: kWh missing against the same 6 months last year × the customer's own price (6-month horizon).
    Never below 0: a credit re-issue (a negative bill) or a balance in the customer's favour puts nothing at
    stake, and a negative stake would rank the customer below those with nothing owed.
    """
    f = {k: np.nan_to_num(np.asarray(v, dtype=np.float64)) for k, v in features.items() if k in _STAKE_INPUTS}
    if task == "arrears":
        stake = f["payments_outstanding_yuan"] + f["bills_amount_due_mean_3m_yuan"]
    elif task == "suspension":
        months = HORIZON_DAYS["suspension"] / 30.4375
        billed_kva = f["archive_capacity_kva"] * (1.0 - f["events_reduced_capacity_pct"] / 100.0)
        stake = billed_kva * BASIC_CHARGE_YUAN_PER_KVA_MONTH * months
    elif task == "theft":
        stake = f["bills_kwh_drop_6m_yoy_kwh"] * f["bills_price_yuan_per_kwh_12m"]
    else:
        raise LabelError(f"task {task!r} is unknown; the tasks are {', '.join(TASKS)}")
    return np.maximum(stake, 0.0)


_STAKE_INPUTS = {
    "payments_outstanding_yuan",
    "bills_amount_due_mean_3m_yuan",
    "archive_capacity_kva",
    "events_reduced_capacity_pct",
    "bills_kwh_drop_6m_yoy_kwh",
    "bills_price_yuan_per_kwh_12m",
}
