"""A partition's source tables prepared once (customer index, month grid, as-of views) and read as of each
date.

`prepare_partition` turns the raw contract tables of some whole 台区 into integer-indexed arrays and one
`AsOfView` per table; `Partition.at(as_of)` returns the state as of that date. Every family reads its rows
through those views, so the one as-of rule of `point_in_time.py` applies to all of them.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from functools import cached_property

import numpy as np
import pandas as pd

from features.point_in_time import AsOfView, as_of_day, cutoff, time_values
from features.windows import LagIndex

LAGS = 24  # months of aligned history: 12-month windows and the same 12 months a year earlier
# The month grid a date reads: the 60 calendar months ending with T's own. Its first column is T's month − 59
# whatever the data hold, so a feature at T does not depend on rows known only later (an old month's back-bill
# or supply row issued after T moved the grid's start), on the other areas of its partition, on the number of
# cores or on the engine: all of them had set where a partition's grid began, and with it which spread copies
# were kept and the last bits of every row sum. It holds every window (730 days; 24 lags behind the latest
# bill) while that bill is within 36 months of T; a customer billed last 37-59 months before T reads cut
# windows, and one billed 60 or more months before, none. History stops at 60 months; bills left unpaid longer
# are still owed (payments.older_open_bills).
HISTORY_MONTHS = 60
# Energy-like measures carry ~7 significant digits (float32): plenty for kWh, demand and power factor, and it
# halves what an engine keeps in memory for 36 M bills. Money (amount_due, payments) stays float64 because the
# labels compare it to 1 元. The partition rounds these to float32 itself, so every engine computes the same.
FLOAT32_MEASURES = {
    "bills": (
        "kwh",
        "kwh_peak",
        "kwh_valley",
        "max_demand_kw",
        "power_factor",
        "energy_charge",
        "basic_charge",
    ),
    "readings": ("kwh",),
}
# A customer read every other month (双月抄表) gets one bill per two months, holding both months' use. Its
# energy is spread over the month a bill covers without a bill of its own, so monthly windows, year-on-year
# changes and the 台区's monthly loss see every month (they were NaN, or counted two months as one). Money
# stays on the bill (amount_due, energy and basic charges): bills are what is due, and a window's shares and
# prices compare whole bills with whole bills (12 months: six bills' money against six bills' kWh).
SPREAD_MEASURES = ("kwh", "kwh_peak", "kwh_valley")  # energy: money stays per bill, so shares of it still add
# Billing cycles spread, in months (a gap that is a multiple of both, six months, belongs to whichever run it
# lies in: both spread it over its six months).
CYCLES = (3, 2)
CYCLE_RUN = 3  # gaps of exactly one cycle in a run that make it a cycle (a missed bill is one longer gap)
BILL_MEASURES = (
    "kwh",
    "kwh_peak",
    "kwh_valley",
    "max_demand_kw",
    "power_factor",
    "energy_charge",
    "basic_charge",
    "amount_due",
)


def day_numbers(frame: pd.DataFrame, column: str) -> np.ndarray:
    """Days since 1970-01-01 (float, NaN for nulls) of a date/timestamp column, floored to the day."""
    t = time_values(frame, column)
    days = t.astype("datetime64[D]").astype(np.int64).astype(np.float64)
    return np.where(np.isnat(t), np.nan, days)


def month_numbers(frame: pd.DataFrame, column: str) -> np.ndarray:
    """Months since 1970-01 (int; -1 for nulls) of a date column."""
    t = time_values(frame, column)
    months = t.astype("datetime64[M]").astype(np.int64)
    return np.where(np.isnat(t), -1, months)


def _floats(frame: pd.DataFrame, column: str, single: bool = False) -> np.ndarray:
    """A numeric column as float64 (NaN for nulls); `single` rounds it to float32 precision first."""
    if column not in frame.columns:
        return np.full(len(frame), np.nan)
    values = pd.to_numeric(frame[column], errors="coerce").to_numpy(dtype=np.float64, na_value=np.nan)
    return values.astype(np.float32).astype(np.float64) if single else values


def _strings(frame: pd.DataFrame, column: str) -> np.ndarray:
    if column not in frame.columns:
        return np.full(len(frame), None, dtype=object)
    return frame[column].astype(object).where(frame[column].notna(), None).to_numpy()


@dataclass
class Rows:
    """Per-row arrays of one table, aligned with its view's frame."""

    view: AsOfView
    customer: np.ndarray  # customer index, -1 when the row's customer is not in this partition
    arrays: dict[str, np.ndarray] = field(default_factory=dict)

    def __getitem__(self, name: str) -> np.ndarray:
        return self.arrays[name]


@dataclass
class Partition:
    """Some whole 台区 with all their customers and history, ready for as-of reads."""

    customers: pd.DataFrame  # sorted by customer_id; row i is customer index i
    area_ids: np.ndarray  # sorted unique area ids of the partition
    area_of: np.ndarray  # area index of each customer
    transformer_kva: np.ndarray  # per area (NaN when the areas table lacks it)
    month0: int  # month number of the labels' grid column 0 (features read AsOf's grid of T's own)
    n_months: int
    tables: dict[str, Rows]
    has_readings: bool
    has_tou: bool
    cache: dict = field(default_factory=dict)  # per-partition inputs that do not depend on the as-of date

    @property
    def n(self) -> int:
        return len(self.customers)

    def at(self, as_of: object) -> AsOf:
        return AsOf(self, as_of_day(as_of))


def _by_content(susp: pd.DataFrame) -> pd.DataFrame:
    """Applications in an order of their own (applied time, then start, end, kind, capacity), not the file's:
    the change in force at T is the latest to start, and of two that start on the same day and were applied on
    the same day, the later in this order (`events.application_state`)."""
    if len(susp) == 0:
        return susp
    keys = [time_values(susp, "applied_at")]
    for column in ("start_date", "end_date"):
        if column in susp.columns:
            keys.append(time_values(susp, column))
    if "kind" in susp.columns:
        keys.append(pd.factorize(susp["kind"].fillna("").astype(str).to_numpy(dtype=object), sort=True)[0])
    if "capacity_kva" in susp.columns:
        keys.append(
            pd.to_numeric(susp["capacity_kva"], errors="coerce").to_numpy(dtype=np.float64, na_value=np.nan)
        )
    return susp.iloc[np.lexsort(keys[::-1])]


def prepare_partition(tables: dict[str, pd.DataFrame], months_until: int | None = None) -> Partition:
    """Index a partition's tables; `months_until` extends the month grid to the latest as-of month."""
    customers = tables["customers"]
    customers = customers.assign(customer_id=customers["customer_id"].astype(str))
    customers = customers.sort_values("customer_id", kind="stable").reset_index(drop=True)
    index = pd.Index(customers["customer_id"])

    def cust(frame: pd.DataFrame) -> np.ndarray:
        """Customer index of each row (-1: not a customer of this partition)."""
        if len(frame) == 0:
            return np.zeros(0, dtype=np.int64)
        col = frame["customer_id"]
        if isinstance(col.dtype, pd.CategoricalDtype):  # dictionary-encoded reads: look up each id once
            lookup = index.get_indexer(col.cat.categories.astype(str))
            codes = col.cat.codes.to_numpy()
            return np.where(codes >= 0, lookup[codes], -1)
        return index.get_indexer(col.astype(str))

    area_ids = np.array(sorted(customers["area_id"].astype(str).unique()), dtype=object)
    area_of = pd.Index(area_ids).get_indexer(customers["area_id"].astype(str))
    areas = tables.get("areas")
    if areas is not None and len(areas) and "transformer_kva" in areas.columns:
        kva = (
            areas.assign(area_id=areas["area_id"].astype(str)).drop_duplicates("area_id").set_index("area_id")
        )
        transformer_kva = kva["transformer_kva"].reindex(area_ids).to_numpy(dtype=np.float64, na_value=np.nan)
    else:
        transformer_kva = np.full(len(area_ids), np.nan)

    rows: dict[str, Rows] = {}
    view = AsOfView(customers, "customers")
    rows["customers"] = Rows(
        view,
        np.arange(len(customers)),
        {"open_day": day_numbers(customers, "open_date"), "close_day": _close_days(customers)},
    )

    bills = tables.get("bills", pd.DataFrame(columns=["customer_id", "period", "issue_date", "known_at"]))
    bill_cust, bill_month = cust(bills), month_numbers(bills, "period")
    # The contract key (customer_id, period) as one integer; rows of unknown customers share -1 codes
    # per month, which is harmless because they are never read.
    view = AsOfView(bills, "bills", key_codes=bill_cust.astype(np.int64) * 100_000 + bill_month)
    f = view.frame
    arrays = {m: _floats(f, m, single=m in FLOAT32_MEASURES["bills"]) for m in BILL_MEASURES}
    arrays["month"] = bill_month[view.order]
    for day in ("due", "issue"):
        column = f"{day}_date"
        arrays[f"{day}_day"] = day_numbers(f, column) if column in f.columns else np.full(len(f), np.nan)
    rows["bills"] = Rows(view, bill_cust[view.order], arrays)
    has_tou = bool(np.isfinite(arrays["kwh_peak"]).any())

    payments = tables.get("payments", pd.DataFrame(columns=["customer_id", "period", "paid_at"]))
    # Sorted by customer then time so channel changes are consecutive rows; the view keeps this order. Two
    # payments at the same instant go by channel name, never by their order in the file, which an export (or
    # a Spark shuffle) does not keep.
    pay_cust = cust(payments)
    channel = payments["channel"] if "channel" in payments.columns else pd.Series([""] * len(payments))
    by_channel = pd.factorize(channel.fillna("").astype(str).to_numpy(dtype=object), sort=True)[0]
    order = np.lexsort((by_channel, time_values(payments, "paid_at"), pay_cust))
    view = AsOfView(payments.iloc[order], "payments")
    f = view.frame
    late_fee = np.nan_to_num(_floats(f, "late_fee"))
    rows["payments"] = Rows(
        view,
        pay_cust[order],
        {
            "month": month_numbers(f, "period"),
            "paid_day": day_numbers(f, "paid_at"),
            "principal": _floats(f, "amount") - late_fee,
            "late_fee": late_fee,
            "channel": pd.factorize(f["channel"])[0] if "channel" in f.columns else np.full(len(f), -1),
        },
    )

    readings = tables.get("readings")
    has_readings = readings is not None and len(readings) > 0
    if readings is None:
        readings = pd.DataFrame(
            {"customer_id": pd.Series([], dtype=str), "date": pd.Series([], dtype="datetime64[us]")}
        )
    view = AsOfView(readings, "readings")
    f = view.frame
    rows["readings"] = Rows(
        view, cust(f), {"day": day_numbers(f, "date"), "kwh": _floats(f, "kwh", single=True)}
    )

    susp = tables.get(
        "suspensions", pd.DataFrame(columns=["customer_id", "applied_at", "start_date", "end_date"])
    )
    view = AsOfView(_by_content(susp), "suspensions")
    f = view.frame
    rows["suspensions"] = Rows(
        view,
        cust(f),
        {
            "applied_day": day_numbers(f, "applied_at"),
            "start_day": day_numbers(f, "start_date"),
            "end_day": day_numbers(f, "end_date"),
            "capacity_kva": _floats(f, "capacity_kva"),
            "kind": _strings(f, "kind"),
        },
    )

    insp = tables.get("inspections", pd.DataFrame(columns=["customer_id", "inspected_at"]))
    view = AsOfView(insp, "inspections")
    f = view.frame
    rows["inspections"] = Rows(
        view,
        cust(f),
        {
            "day": day_numbers(f, "inspected_at"),
            "result": _strings(f, "result"),
            "recovered_kwh": _floats(f, "recovered_kwh"),
        },
    )

    supply = tables.get(
        "area_supply", pd.DataFrame(columns=["area_id", "date", "granularity", "supplied_kwh"])
    )
    # In one order whatever the file's: an area's daily rows are summed per month, and float sums in another
    # order round differently (an auditor reversed the file and 7 theft area columns moved in the last bits).
    if len(supply):
        area = pd.factorize(supply["area_id"].astype(str), sort=True)[0]
        grain = pd.factorize(supply["granularity"].astype(str), sort=True)[0]
        supply = supply.iloc[np.lexsort((grain, time_values(supply, "date"), area))]
    view = AsOfView(supply, "area_supply")
    f = view.frame
    area_idx = (
        pd.Index(area_ids).get_indexer(f["area_id"].astype(str)) if len(f) else np.zeros(0, dtype=np.int64)
    )
    rows["area_supply"] = Rows(
        view,
        np.full(len(f), -1),
        {
            "area": area_idx,
            "day": day_numbers(f, "date"),
            "month": month_numbers(f, "date"),
            "daily": (_strings(f, "granularity") == "day"),
            "supplied_kwh": _floats(f, "supplied_kwh"),
        },
    )

    months = [m for m in (rows["bills"]["month"], rows["area_supply"]["month"]) if len(m)]
    known = np.concatenate(months) if months else np.zeros(0, dtype=np.int64)
    known = known[known >= 0]
    month0 = int(known.min()) if len(known) else (months_until if months_until is not None else 0)
    last = int(known.max()) if len(known) else month0
    if months_until is not None:
        last = max(last, months_until)
    return Partition(
        customers=customers,
        area_ids=area_ids,
        area_of=area_of,
        transformer_kva=transformer_kva,
        month0=month0,
        n_months=last - month0 + 1,
        tables=rows,
        has_readings=has_readings,
        has_tou=has_tou,
    )


def _close_days(customers: pd.DataFrame) -> np.ndarray:
    if "close_date" not in customers.columns:
        return np.full(len(customers), np.nan)
    return day_numbers(customers, "close_date")


class AsOf:
    """The partition as of one calendar date: which customers are active and what every table shows."""

    def __init__(self, part: Partition, day: pd.Timestamp) -> None:
        self.part = part
        self.day = day
        self.cutoff = cutoff(day)
        self.day_num = float((day.to_datetime64().astype("datetime64[D]")).astype(np.int64))
        self.month = int(day.to_datetime64().astype("datetime64[M]").astype(np.int64))
        # The HISTORY_MONTHS calendar months up to T's own: no bill or payment of a later period is visible
        # at T (its issue and payment come after its period starts); the grid's width and start are T's alone.
        self.months = HISTORY_MONTHS
        self.first = self.month - HISTORY_MONTHS + 1  # month number of grid column 0

    def rows(self, table_name: str) -> tuple[np.ndarray, Rows]:
        """Positions of the rows of `table_name` that count as of this date (as-of rule), and the table."""
        t = self.part.tables[table_name]
        return t.view.positions(self.day), t

    @cached_property
    def known(self) -> np.ndarray:
        """Customers whose account exists at the cutoff (open_date at or before it)."""
        return self.part.tables["customers"].view.mask(self.day)

    @cached_property
    def active(self) -> np.ndarray:
        """Open at T and not closed at T: open_date ≤ T and (close_date null or > T)."""
        close = self.part.tables["customers"]["close_day"]
        return self.known & ~(close <= self.day_num)

    @cached_property
    def bills(self) -> BillCells:
        return BillCells(self)


class BillCells:
    """Bills visible as of T (latest known version) as customer × month matrices, built on demand."""

    def __init__(self, at: AsOf) -> None:
        part = at.part
        self._rows = part.tables["bills"]
        pos = self._rows.view.positions(at.day)
        versions = self._rows.view.version_counts(at.day)
        ci = self._rows.customer[pos]
        mi = self._rows["month"][pos] - at.first
        ok = (ci >= 0) & (mi >= 0) & (mi < at.months)
        self._ci, self._mi, self._pos, self._versions = ci[ok], mi[ok], pos[ok], versions[ok]
        self.older = pos[(ci >= 0) & (mi < 0)]  # visible bills before the grid (payments.older_open_bills)
        self._shape = (part.n, at.months)
        self.last = np.full(part.n, -1, dtype=np.int64)  # grid column of each customer's latest visible bill
        np.maximum.at(self.last, self._ci, self._mi)
        opened = _open_months(part) - at.first
        self._spread = _spread_cells(self._ci, self._mi, np.where(opened >= 0, opened, -1))
        self._matrices: dict[str, np.ndarray] = {}
        self._lagged: dict[str, np.ndarray] = {}
        self._lag_index = LagIndex(self.last, at.months, LAGS)

    def _cells(self, name: str) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """(customer, grid month, value) of every visible cell of `name`: a bill measure, "due_day",
        "issue_day", "versions", or "copied" (1 where a two-monthly bill was spread to the month before)."""
        ci, mi, source, copy, months = self._spread
        if name == "copied":
            return ci[copy], mi[copy], np.ones(int(copy.sum()))
        if name in SPREAD_MEASURES:
            return ci, mi, self._rows[name][self._pos[source]] / months[source]
        return self._ci, self._mi, self._versions if name == "versions" else self._rows[name][self._pos]

    def matrix(self, name: str) -> np.ndarray:
        """Calendar matrix of a bill measure (or "due_day", "issue_day", "versions", "copied"); NaN: none."""
        if name not in self._matrices:
            mat = np.full(self._shape, np.nan)
            ci, mi, value = self._cells(name)
            mat[ci, mi] = value
            self._matrices[name] = mat
        return self._matrices[name]

    @property
    def values(self) -> _Matrices:
        return _Matrices(self)

    def lagged(self, name: str) -> np.ndarray:
        """`name` re-indexed per customer: column k is k months before the customer's latest visible bill."""
        if name not in self._lagged:
            if name in self._matrices:
                self._lagged[name] = self._lag_index.take(self._matrices[name])
            else:  # scatter straight into the lag grid: most measures never need the calendar matrix
                ci, mi, value = self._cells(name)
                lag = self.last[ci] - mi
                ok = lag < LAGS
                mat = np.full((len(self.last), LAGS), np.nan)
                mat[ci[ok], lag[ok]] = value[ok]
                self._lagged[name] = mat
        return self._lagged[name]


def _open_months(part: Partition) -> np.ndarray:
    """Month number each customer opened in; a month before any grid (0, 1970-01) when the archive has no open
    date. The same at every as-of date: computed once per partition."""
    if "open_months" not in part.cache:
        part.cache["open_months"] = _month_numbers_opened(part)
    return part.cache["open_months"]


def _month_numbers_opened(part: Partition) -> np.ndarray:
    months = np.zeros(part.n, dtype=np.int64)
    if "open_day" not in part.tables["customers"].arrays:
        return months
    days = part.tables["customers"]["open_day"]
    known = np.isfinite(days)
    stamps = days[known].astype("int64").astype("datetime64[D]")
    months[known] = stamps.astype("datetime64[M]").astype(np.int64)
    return months


def _spread_cells(ci: np.ndarray, mi: np.ndarray, open_month: np.ndarray) -> tuple[np.ndarray, ...]:
    """Visible bill cells plus a copy of each two-monthly or quarterly bill in each month it covers before its
    own: (customer, grid month, index of the bill cell it comes from, is a copy) for every cell, and per bill
    cell the number of months it covers (1 for a monthly bill).

    Decided bill by bill, from what is visible at T. For a cycle of L months (`CYCLES`), a run is a stretch of
    gaps between a customer's visible bills that are all whole multiples of L; in a run holding at least
    `CYCLE_RUN` gaps of exactly L, each bill covers the months back to the previous one (L, or 2L after a
    missed reading). A monthly customer's missed bill (a lone two-month gap among one-month ones) stays a gap,
    and a customer that changes cycle keeps each period as it was billed. A customer's first bill covers the
    run's L months when a run starts right after it, or fewer when the account opened in between
    (`open_month`, grid months). Cells arrive in (customer, month) order, as the bills view keeps them."""
    order = np.lexsort((mi, ci)) if len(ci) > 1 and np.any(np.diff(ci * (mi.max() + 1) + mi) < 0) else None
    c, m = (ci, mi) if order is None else (ci[order], mi[order])
    same = np.zeros(len(c), dtype=bool)  # the cell before is the same customer's
    same[1:] = c[1:] == c[:-1]
    gap = np.zeros(len(c), dtype=np.int64)
    gap[1:] = np.where(same[1:], m[1:] - m[:-1], 0)
    cycle = np.zeros(len(c), dtype=np.int64)  # the cycle of the run each gap lies in; 0: not spread
    for length in CYCLES:
        whole = (gap >= length) & (gap % length == 0) & (cycle == 0)
        starts = whole.copy()
        starts[1:] &= ~whole[:-1]  # a run begins where the gap before was not a whole multiple
        run = np.cumsum(starts) * whole  # run number of each such gap, 0 elsewhere
        exact = np.bincount(run, weights=(gap == length).astype(float))[run] * whole
        cycle[whole & (exact >= CYCLE_RUN)] = length
    covers = cycle > 0
    first = np.zeros(len(c), dtype=bool)  # the bill before a run that is the customer's first
    first[:-1] = ~same[:-1] & covers[1:]
    first_months = np.zeros(len(c), dtype=np.int64)
    first_months[:-1] = cycle[1:]
    opened = open_month[c]  # -1: before the grid, or no open date
    first_months = np.where(opened >= 0, np.minimum(first_months, m - opened + 1), first_months)
    first &= first_months >= 2
    sorted_months = np.where(covers, gap, np.where(first, first_months, 1))
    index = np.arange(len(c)) if order is None else order
    months = np.ones(len(ci), dtype=np.int64)
    months[index] = sorted_months
    spread = np.flatnonzero(months > 1)
    extra = months[spread] - 1  # copies per spread bill: the months it covers before its own
    source = np.repeat(spread, extra)
    back = np.arange(len(source)) - np.repeat(np.cumsum(extra) - extra, extra)  # 0, 1, … within a bill
    copy_month = mi[source] - 1 - back
    # A copy before the grid's first month (HISTORY_MONTHS before T) is not kept; the bill is still divided.
    kept = copy_month >= 0
    source, copy_month = source[kept], copy_month[kept]
    every = np.arange(len(ci))
    return (
        np.concatenate([ci, ci[source]]),
        np.concatenate([mi, copy_month]),
        np.concatenate([every, source]),
        np.concatenate([np.zeros(len(ci), dtype=bool), np.ones(len(source), dtype=bool)]),
        months.astype(np.float64),
    )


class _Matrices:
    """`bills.values["kwh"]` reads like a dict of matrices."""

    def __init__(self, cells: BillCells) -> None:
        self._cells = cells

    def __getitem__(self, name: str) -> np.ndarray:
        return self._cells.matrix(name)


def evaluate(functions: list, inputs: dict[str, object]) -> dict[str, np.ndarray]:
    """Call each feature function with the inputs its parameters name; its name is the feature's name.

    Numeric results come back as float64; categorical ones (object arrays of strings) unchanged.
    """
    import inspect

    out: dict[str, np.ndarray] = {}
    for fn in functions:
        params = inspect.signature(fn).parameters
        value = np.asarray(fn(**{p: inputs[p] for p in params}))
        out[fn.__name__] = value if value.dtype == object else value.astype(np.float64)
    return out
