"""`--faults`: realistic data-quality problems injected into an export, each row recorded in truth/faults.

Ingest tests read truth/faults.parquet (table, key as JSON, kind) to prove that every faulted row is
quarantined by the right rule, or kept as a new version (extra re-issued bills).
"""

from __future__ import annotations

import json

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from features.schema import table
from features.synthetic.config import Calendar
from features.synthetic.population import Population
from features.synthetic.truth import TRUTH_SCHEMAS

# Share of a table's rows hit by each kind (at least one row when the table has any).
RATES = {
    "unknown_station": 0.002,
    "unknown_area": 0.002,
    "duplicate_bill": 0.002,
    "due_before_issue": 0.001,
    "known_before_issue": 0.001,
    "reissued_bill": 0.002,
    "paid_before_period": 0.001,
    "end_before_start": 0.02,
    "negative_reading": 0.0005,
    "missing_reading": 0.003,
    "meter_reset": 0.0002,
}
FAULT_KINDS = tuple(RATES)
REGISTER_ROLLOVER_KWH = 99_999.99  # a 5-digit register wrapping to zero reads as a huge negative day


class FaultLog:
    """Faulted rows in injection order: (table, key JSON, kind)."""

    def __init__(self) -> None:
        self.rows: list[tuple[str, str, str]] = []

    def add(self, name: str, tbl: pa.Table, idx: np.ndarray, kind: str) -> None:
        key_cols = list(table(name).primary_key)
        if name == "bills" and kind == "duplicate_bill":
            key_cols = list(table(name).primary_key)
        cols = {c: tbl.column(c).take(pa.array(idx)).to_pylist() for c in key_cols}
        for i in range(idx.size):
            key = {c: _jsonable(cols[c][i]) for c in key_cols}
            self.rows.append((name, json.dumps(key, ensure_ascii=False, sort_keys=True), kind))

    def counts(self) -> dict[str, int]:
        out: dict[str, int] = {}
        for _, _, kind in self.rows:
            out[kind] = out.get(kind, 0) + 1
        return out

    def table(self) -> pa.Table:
        names, keys, kinds = (
            (list(col) for col in zip(*self.rows, strict=True)) if self.rows else ([], [], [])
        )
        return pa.table({"table": names, "key": keys, "kind": kinds}, schema=TRUTH_SCHEMAS["faults"])


def _jsonable(value: object) -> object:
    return value.isoformat() if hasattr(value, "isoformat") else value


def _pick(n: int, rate: float, rng: np.random.Generator, exclude: np.ndarray | None = None) -> np.ndarray:
    if n == 0:
        return np.zeros(0, dtype=np.int64)
    free = np.ones(n, dtype=bool)
    if exclude is not None and exclude.size:
        free[exclude] = False
    candidates = np.flatnonzero(free)
    k = min(candidates.size, max(1, round(rate * n)))
    return np.sort(rng.choice(candidates, size=k, replace=False))


def _set(tbl: pa.Table, name: str, idx: np.ndarray, values: pa.Array | np.ndarray) -> pa.Table:
    col = tbl.column(name).combine_chunks()
    mask = np.zeros(tbl.num_rows, dtype=bool)
    mask[idx] = True
    full = np.zeros(tbl.num_rows, dtype=np.int64)
    full[idx] = np.arange(idx.size)
    replacement = (
        pa.array(values, type=col.type) if not isinstance(values, pa.Array) else values.cast(col.type)
    )
    new = pc.if_else(pa.array(mask), replacement.take(pa.array(full)), col)
    return tbl.set_column(tbl.schema.get_field_index(name), tbl.schema.field(name), new)


def inject_customer_faults(
    customers: pa.Table, pop: Population, log: FaultLog, rng: np.random.Generator
) -> pa.Table:
    n = customers.num_rows
    station = _pick(n, RATES["unknown_station"], rng)
    area = _pick(n, RATES["unknown_area"], rng, exclude=station)
    bad_station = pa.array([f"ST9{int(x):04d}" for x in rng.integers(0, 10_000, size=station.size)])
    bad_area = pa.array([f"T9{int(x):07d}" for x in rng.integers(0, 10_000_000, size=area.size)])
    customers = _set(customers, "station", station, bad_station)
    customers = _set(customers, "area_id", area, bad_area)
    log.add("customers", customers, station, "unknown_station")
    log.add("customers", customers, area, "unknown_area")
    return customers


def inject_chunk_faults(
    tables: dict[str, pa.Table], log: FaultLog, calendar: Calendar, rng: np.random.Generator
) -> dict[str, pa.Table]:
    out = dict(tables)
    out["bills"] = _bill_faults(tables["bills"], log, calendar, rng)
    out["payments"] = _payment_faults(tables["payments"], log, rng)
    out["suspensions"] = _suspension_faults(tables["suspensions"], log, rng)
    if "readings" in tables:
        out["readings"] = _reading_faults(tables["readings"], log, rng)
    return out


def _bill_faults(bills: pa.Table, log: FaultLog, calendar: Calendar, rng: np.random.Generator) -> pa.Table:
    n = bills.num_rows
    due = _pick(n, RATES["due_before_issue"], rng)
    known = _pick(n, RATES["known_before_issue"], rng, exclude=due)
    issue = bills.column("issue_date").to_numpy().astype("datetime64[D]")
    bills = _set(
        bills, "due_date", due, issue[due] - rng.integers(1, 11, size=due.size).astype("timedelta64[D]")
    )
    early = issue[known].astype("datetime64[us]") - rng.integers(1, 20, size=known.size).astype(
        "timedelta64[D]"
    )
    bills = _set(bills, "known_at", known, early)
    log.add("bills", bills, due, "due_before_issue")
    log.add("bills", bills, known, "known_before_issue")

    # Extra re-issued bills: later versions with corrected kWh and amounts (valid data, to be versioned).
    taken = np.concatenate([due, known])
    extra = _pick(n, RATES["reissued_bill"], rng, exclude=taken)
    new = bills.take(pa.array(extra))
    factor = np.clip(1.0 + rng.normal(0.0, 0.1, size=extra.size), 0.5, 1.5)
    for name in ("kwh", "kwh_peak", "kwh_flat", "kwh_valley", "energy_charge", "pf_adjustment", "amount_due"):
        values = new.column(name).to_numpy(zero_copy_only=False).astype(np.float64)
        scaled = np.round(values * factor, 2)
        new = new.set_column(
            new.schema.get_field_index(name), new.schema.field(name), pa.array(scaled, from_pandas=True)
        )
    known_at = new.column("known_at").to_numpy().astype("datetime64[us]")
    lag = rng.integers(20, 120, size=extra.size).astype("timedelta64[D]")
    later = np.minimum(known_at + lag, calendar.export_at.astype("datetime64[us]") - np.timedelta64(1, "h"))
    new = new.set_column(
        new.schema.get_field_index("known_at"), new.schema.field("known_at"), pa.array(later)
    )
    log.add("bills", new, np.arange(new.num_rows), "reissued_bill")

    dup = _pick(n, RATES["duplicate_bill"], rng, exclude=np.concatenate([taken, extra]))
    copies = bills.take(pa.array(dup))
    log.add("bills", copies, np.arange(copies.num_rows), "duplicate_bill")
    return pa.concat_tables([bills, new, copies])


def _payment_faults(payments: pa.Table, log: FaultLog, rng: np.random.Generator) -> pa.Table:
    idx = _pick(payments.num_rows, RATES["paid_before_period"], rng)
    period = payments.column("period").to_numpy().astype("datetime64[D]")
    before = period[idx].astype("datetime64[us]") - rng.integers(1, 60, size=idx.size).astype(
        "timedelta64[D]"
    )
    before = before + rng.integers(8 * 3600, 20 * 3600, size=idx.size).astype("timedelta64[s]")
    payments = _set(payments, "paid_at", idx, before.astype("datetime64[us]"))
    log.add("payments", payments, idx, "paid_before_period")
    return payments


def _suspension_faults(suspensions: pa.Table, log: FaultLog, rng: np.random.Generator) -> pa.Table:
    has_end = np.flatnonzero(suspensions.column("end_date").is_valid().to_numpy(zero_copy_only=False))
    if has_end.size == 0:
        return suspensions
    pick = has_end[_pick(has_end.size, RATES["end_before_start"], rng)]
    start = suspensions.column("start_date").to_numpy().astype("datetime64[D]")
    bad_end = start[pick] - rng.integers(1, 31, size=pick.size).astype("timedelta64[D]")
    suspensions = _set(suspensions, "end_date", pick, bad_end)
    log.add("suspensions", suspensions, pick, "end_before_start")
    return suspensions


def _reading_faults(readings: pa.Table, log: FaultLog, rng: np.random.Generator) -> pa.Table:
    n = readings.num_rows
    neg = _pick(n, RATES["negative_reading"], rng)
    missing = _pick(n, RATES["missing_reading"], rng, exclude=neg)
    reset = _pick(n, RATES["meter_reset"], rng, exclude=np.concatenate([neg, missing]))
    kwh = readings.column("kwh").to_numpy(zero_copy_only=False).astype(np.float64)
    readings = _set(readings, "kwh", neg, -np.round(rng.uniform(0.5, 50.0, size=neg.size), 2))
    readings = _set(readings, "kwh", reset, np.round(kwh[reset] - REGISTER_ROLLOVER_KWH, 2))
    readings = _set(readings, "kwh", missing, pa.nulls(missing.size, pa.float64()))
    log.add("readings", readings, neg, "negative_reading")
    log.add("readings", readings, missing, "missing_reading")
    log.add("readings", readings, reset, "meter_reset")
    return readings
