"""`generate`: runs the simulation in chunks of whole 台区, streaming contract tables and truth/ to Parquet.

Order inside a chunk: drivers → consumption → suspensions → theft and inspections → daily readings → bills →
payments. Each chunk has its own random stream derived from the seed, so a run is byte-identical to another
with the same config.
"""

from __future__ import annotations

import itertools
import json
import logging
import multiprocessing
import os
import time
from collections import deque
from collections.abc import Callable, Iterator
from concurrent.futures import ProcessPoolExecutor
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

from features.schema import LOAD_ORDER, Granularity, InspectionResult, table
from features.sources import table_path
from features.synthetic import domain as d
from features.synthetic.billing import Bills, bill_dates, build_bills, schedule_draws
from features.synthetic.collection import Payments, bill_risk, simulate_payments
from features.synthetic.config import Calendar, GenerationSummary, GeneratorConfig, build_calendar
from features.synthetic.economy import Industries, customer_drivers, industry_conditions
from features.synthetic.faults import FaultLog, inject_chunk_faults, inject_customer_faults
from features.synthetic.population import Population, build_population, pii, station_codes, unit_codes
from features.synthetic.service_changes import (
    KIND_VALUES,
    OFFLINE_RESIDUAL,
    ServiceChanges,
    offline_share_by_day,
    simulate_service_changes,
)
from features.synthetic.theft import H2, H5, KINDS, Theft, attack_series, choose_thieves, inspect, settle
from features.synthetic.truth import TRUTH_SCHEMAS, truth_path
from features.synthetic.usage import active_fraction, base_consumption, day_weights, tou_habits

logger = logging.getLogger(__name__)

CHUNK_CUSTOMERS = 50_000  # fixed, so that the output does not depend on the machine
WORKERS = 2  # chunk simulations running at once (each holds one chunk, ~1 GiB at 50,000 customers)
TECH_LOSS = ((0.025, 0.06), (0.01, 0.025))  # technical loss range of public areas, dedicated lines
TECH_LOSS_MONTHLY_SD = 0.004
TECH_LOSS_DAILY_SD = 0.01
RESULTS = (InspectionResult.NORMAL.value, InspectionResult.THEFT.value, InspectionResult.VIOLATION.value)


class _Sink:
    """Streams one table to Parquet chunk by chunk, with a fixed schema."""

    def __init__(self, path: Path, schema: pa.Schema) -> None:
        self.path = path
        self.schema = schema
        self.rows = 0
        path.parent.mkdir(parents=True, exist_ok=True)
        # Dictionaries pay off for repeated ids, codes and dates, not for measurements.
        dictionary = [f.name for f in schema if not pa.types.is_floating(f.type)]
        self._writer = pq.ParquetWriter(path, schema, compression="zstd", use_dictionary=dictionary)

    def write(self, tbl: pa.Table) -> None:
        self._writer.write_table(tbl.cast(self.schema))
        self.rows += tbl.num_rows

    def close(self) -> None:
        self._writer.close()


def _contract_schema(name: str, relaxed: bool) -> pa.Schema:
    spec = table(name)
    # The generated systems post every row the moment it happens: an event table's optional known_at is left
    # out (only bills, versioned, carry one), and its rows count from their event time.
    schema = spec.arrow_schema([c for c in spec.column_names if spec.versioned or c != spec.known_at])
    if relaxed:
        # A faulted export breaks the contract on purpose (nulls where none are allowed).
        schema = pa.schema([f.with_nullable(True) for f in schema])
    return schema


def _contract_table(name: str, columns: dict[str, pa.Array | np.ndarray]) -> pa.Table:
    schema = table(name).arrow_schema(list(columns))
    arrays = [_arrow(columns[f.name], f.type) for f in schema]
    return pa.Table.from_arrays(arrays, schema=pa.schema([f.with_nullable(True) for f in schema]))


def _arrow(values: pa.Array | np.ndarray, typ: pa.DataType) -> pa.Array:
    if isinstance(values, pa.Array | pa.ChunkedArray):
        return values.cast(typ)
    if values.dtype.kind == "M" and pa.types.is_timestamp(typ):
        values = values.astype("datetime64[us]")
    return pa.array(values, type=typ, from_pandas=True)


def generate(
    config: GeneratorConfig, out: Path, progress: Callable[[int, int], None] | None = None
) -> GenerationSummary:
    """Write a synthetic utility's contract tables to ``out/<table>.parquet`` and its ground truth to
    ``out/truth/``. ``progress(done, total)`` is called after each chunk of customers."""
    config = config.validated()
    started = time.perf_counter()
    out = Path(out)
    calendar = build_calendar(config)
    pop = build_population(config.customers, calendar, np.random.default_rng([config.seed, 0]))
    industries = industry_conditions(calendar.months, np.random.default_rng([config.seed, 2]))
    issue_days, due_days = schedule_draws(
        int(pop.station.max()) + 1, int(pop.unit.max()) + 1, np.random.default_rng([config.seed, 3])
    )
    log = FaultLog()
    summary = GenerationSummary(out=out)

    relaxed = config.faults
    sinks = {name: _Sink(table_path(out, name), _contract_schema(name, relaxed)) for name in LOAD_ORDER}
    if not config.daily_days:
        sinks.pop("readings").close()
        table_path(out, "readings").unlink()
    truth_sinks = {name: _Sink(truth_path(out, name), schema) for name, schema in TRUTH_SCHEMAS.items()}
    try:
        sinks["areas"].write(_areas_table(pop))
        customers = _customers_table(pop, np.random.default_rng([config.seed, 4]))
        if config.faults:
            customers = inject_customer_faults(customers, pop, log, np.random.default_rng([config.seed, 5]))
        sinks["customers"].write(customers)
        truth_sinks["industries"].write(_industries_table(industries, calendar))
        facts: dict[str, float] = {}
        done = 0
        jobs = (
            _Job(i, pop.chunk(lo, hi), calendar, industries, issue_days, due_days, config.seed)
            for i, (lo, hi) in enumerate(_chunks(pop))
        )
        for job, (tables, truth, chunk_facts) in _run(iter(jobs)):
            if config.faults:
                rng = np.random.default_rng([config.seed, 5, job.index])
                tables = inject_chunk_faults(tables, log, calendar, rng)
            for name, tbl in tables.items():
                if name in sinks:
                    sinks[name].write(tbl)
            for name, tbl in truth.items():
                truth_sinks[name].write(tbl)
            for k, v in chunk_facts.items():
                facts[k] = facts.get(k, 0.0) + v
            done += job.pop.size
            if progress is not None:
                progress(done, pop.size)
        truth_sinks["faults"].write(log.table())
    finally:
        for sink in (*sinks.values(), *truth_sinks.values()):
            sink.close()

    manifest = {
        "config": asdict(config),
        "first_period": str(calendar.month_start[0]),
        "last_period": str(calendar.month_start[-2]),
        "span_end": str(calendar.span_end),
        "export_at": str(calendar.export_at),
        "daily_start": None if calendar.daily_start is None else str(calendar.daily_start),
        "attack_kinds": list(KINDS),
        "industries": list(d.INDUSTRIES),
    }
    truth_path(out, "manifest").write_text(json.dumps(manifest, indent=2, sort_keys=True) + "\n")
    summary.rows = {name: s.rows for name, s in sinks.items()} | {
        f"truth/{name}": s.rows for name, s in truth_sinks.items()
    }
    summary.faults = log.counts()
    summary.facts = facts
    summary.seconds = time.perf_counter() - started
    logger.info(
        "generated %d customers x %d months into %s in %.1f s",
        config.customers,
        config.months,
        out,
        summary.seconds,
    )
    return summary


def _run(jobs: Iterator[_Job]) -> Iterator[tuple[_Job, tuple]]:
    """Simulate chunks in order: in this process for one chunk, else in worker processes with a bounded
    number in flight (results are consumed in chunk order, so the files do not depend on timing)."""
    first = next(jobs)
    second = next(jobs, None)
    if second is None:
        yield first, _simulate_chunk(first)
        return
    workers = max(1, min(WORKERS, os.cpu_count() or 1))
    # fork: a spawned worker would re-import the caller's __main__, which breaks any script calling generate()
    # without an `if __name__ == "__main__"` guard; Arrow and numpy re-create their thread pools after fork.
    with ProcessPoolExecutor(workers, mp_context=multiprocessing.get_context("fork")) as pool:
        pending: deque = deque()
        for job in itertools.chain([first, second], jobs):
            pending.append((job, pool.submit(_simulate_chunk, job)))
            if len(pending) > workers:
                done, future = pending.popleft()
                yield done, future.result()
        while pending:
            done, future = pending.popleft()
            yield done, future.result()


def _chunks(pop: Population) -> list[tuple[int, int]]:
    """Customer index ranges holding whole areas, about CHUNK_CUSTOMERS each."""
    area_end = np.flatnonzero(np.diff(pop.area, append=pop.area[-1] + 1)) + 1  # end index of each area
    bounds = []
    lo = 0
    while lo < pop.size:
        target = lo + CHUNK_CUSTOMERS
        hi = int(area_end[np.searchsorted(area_end, target, side="left")]) if target < pop.size else pop.size
        bounds.append((lo, hi))
        lo = hi
    return bounds


def _areas_table(pop: Population) -> pa.Table:
    return _contract_table(
        "areas",
        {
            "area_id": pop.area_id,
            "station": station_codes(pop.area_station),
            "supply_unit": unit_codes(pop.area_unit),
            "transformer_kva": pop.area_kva,
        },
    )


def _customers_table(pop: Population, rng: np.random.Generator) -> pa.Table:
    name, phone, address = pii(pop, rng)
    industry = pa.array([*d.INDUSTRIES, None]).take(
        pa.array(np.where(pop.industry >= 0, pop.industry, len(d.INDUSTRIES)))
    )
    group_digits = pc.utf8_lpad(pc.cast(pa.array(np.maximum(pop.group, 0) + 1), pa.string()), 5, "0")
    group = pc.if_else(pa.array(pop.group >= 0), pc.binary_join_element_wise("G", group_digits, ""), None)
    return _contract_table(
        "customers",
        {
            "customer_id": pop.customer_id,
            "usage_category": pa.array(d.CATEGORIES).take(pa.array(pop.category)),
            "industry_code": industry,
            "voltage_kv": pop.voltage_kv,
            "contract_capacity_kva": pop.capacity_kva,
            "tariff": pa.array(d.TARIFFS).take(pa.array(pop.tariff)),
            "payment_method": pa.array(d.METHODS).take(pa.array(pop.method)),
            "supply_unit": unit_codes(pop.unit),
            "station": station_codes(pop.station),
            "area_id": pop.area_id.take(pa.array(pop.area)),
            "group_id": group,
            "open_date": pop.open_date,
            "close_date": pop.close_date,
            "name": name,
            "phone": phone,
            "address": address,
        },
    )


def _industries_table(industries: Industries, calendar: Calendar) -> pa.Table:
    n, months = industries.operating_rate.shape
    return pa.table(
        {
            "industry_code": pa.array(np.repeat(np.array(d.INDUSTRIES), months)),
            "period": pa.array(np.tile(calendar.month_start[:-1], n)),
            "operating_rate": pa.array(industries.operating_rate.ravel().astype(np.float32)),
            "downturn_depth": pa.array(industries.downturn_depth.ravel().astype(np.float32)),
        },
        schema=TRUTH_SCHEMAS["industries"],
    )


def _yyyymm(calendar: Calendar) -> pa.Array:
    return pa.array([str(s)[:7].replace("-", "") for s in calendar.month_start[:-1]])


@dataclass(frozen=True)
class _Job:
    """Everything one chunk needs; picklable, so a worker process can run it."""

    index: int
    pop: Population
    calendar: Calendar
    industries: Industries
    issue_days: np.ndarray
    due_days: np.ndarray
    seed: int


def _simulate_chunk(job: _Job) -> tuple[dict[str, pa.Table], dict[str, pa.Table], dict[str, float]]:
    pop, calendar = job.pop, job.calendar
    rng = np.random.default_rng([job.seed, 1, job.index])
    months = calendar.months
    category, tariff, method = pop.category, pop.tariff, pop.method
    capacity, voltage, industry = pop.capacity_kva, pop.voltage_kv, pop.industry
    open_date, close_date = pop.open_date, pop.close_date
    area = pop.area
    n_areas = pop.areas
    area_dedicated = pop.area_dedicated
    ids = pop.customer_id
    two_part = tariff == d.TWO_PART
    industries, issue_days, due_days = job.industries, job.issue_days, job.due_days

    active = active_fraction(open_date, close_date, calendar)
    drivers = customer_drivers(category, industry, calendar.month_of_year, industries, rng)
    base_kwh, normal_kwh = base_consumption(
        category, capacity, drivers.operating_level, active, calendar, rng
    )
    basic = d.BASIC_CHARGE_PER_KVA * capacity
    basic_share = np.where(two_part, basic / (basic + pop.price * normal_kwh), 0.0)
    changes = simulate_service_changes(
        two_part,
        capacity,
        pop.transformers,
        industry,
        active,
        drivers.operating_level,
        drivers.stress,
        drivers.downturn,
        basic_share,
        calendar,
        rng,
    )
    true_kwh = base_kwh * (1.0 - (1.0 - OFFLINE_RESIDUAL) * changes.offline_share)

    lo_loss = np.where(area_dedicated, TECH_LOSS[1][0], TECH_LOSS[0][0])
    hi_loss = np.where(area_dedicated, TECH_LOSS[1][1], TECH_LOSS[0][1])
    tech = rng.uniform(lo_loss, hi_loss)[:, None] + rng.normal(
        0.0, TECH_LOSS_MONTHLY_SD, size=(n_areas, months)
    )
    tech = np.clip(tech, 0.002, None)
    supply = np.stack(
        [np.bincount(area, weights=true_kwh[:, m], minlength=n_areas) for m in range(months)], 1
    )
    supply = supply * (1.0 + tech)

    plan = choose_thieves(category, open_date, close_date, active, calendar, rng)
    attacked = attack_series(true_kwh, plan, plan["onset_month"], plan["window_end_month"], 12, rng)
    theft = inspect(
        plan,
        true_kwh,
        attacked,
        supply,
        area,
        area_dedicated,
        category,
        tariff,
        voltage,
        active,
        changes.offline_share,
        open_date,
        close_date,
        calendar,
        rng,
    )
    billed = theft.billed
    readings = area_daily = None
    if calendar.daily_start is not None:
        billed, readings, area_daily = _daily(
            category,
            open_date,
            close_date,
            area,
            n_areas,
            tech,
            true_kwh,
            billed,
            theft,
            plan,
            changes,
            calendar,
            rng,
        )
    recovered_kwh, recovered_amount = settle(theft, true_kwh, billed, pop.price, capacity, two_part, rng)

    station, unit = pop.station, pop.unit
    issue, due = bill_dates(station, unit, calendar, issue_days, due_days)
    tou = tou_habits(category, rng)
    flat_tou = theft.stealing & (theft.kind == H5)[:, None] & (tariff != d.SINGLE)[:, None]
    pf_drop = theft.stealing * theft.pf_shift[:, None]
    bills, reissued = build_bills(
        category=category,
        tariff=tariff,
        capacity_kva=capacity,
        voltage_kv=voltage,
        price=pop.price,
        active=active,
        offline=changes.offline_share,
        billed_kwh=billed,
        tou=tou,
        flat_tou=flat_tou,
        pf_drop=pf_drop,
        issue=issue,
        due=due,
        calendar=calendar,
        rng=rng,
    )
    owing_p, late_p = bill_risk(drivers.stress, category, method)
    payments = simulate_payments(
        bills, reissued, owing_p, late_p, drivers.stress, category, method, calendar, rng
    )

    yyyymm = _yyyymm(calendar)
    tables = {
        # First issues in customer, month order, then the re-issued versions (退补) of this chunk.
        "bills": pa.concat_tables(
            [_bills_table(bills, ids, calendar), _bills_table(reissued, ids, calendar)]
        ),
        "payments": _payments_table(payments, ids, yyyymm, calendar),
        "suspensions": _suspensions_table(changes, ids),
        "inspections": _inspections_table(theft, recovered_kwh, recovered_amount, ids, yyyymm),
        "area_supply": _area_supply_table(supply, area_daily, pop.area_id, calendar),
    }
    if readings is not None:
        tables["readings"] = _readings_table(*readings, ids)
    truth = _truth_tables(
        ids,
        category,
        industry,
        open_date,
        close_date,
        active,
        drivers,
        true_kwh,
        billed,
        theft,
        changes,
        owing_p,
        due,
        calendar,
    )
    facts = {
        "thieves": float(theft.thief.sum()),
        "thieves_found": float((theft.found_month >= 0).sum()),
        "inspections": float(theft.insp_customer.size),
        "suspension_spells": float(changes.spells),
        "two_part_customers": float(two_part.sum()),
    }
    return tables, truth, facts


def _daily(
    category: np.ndarray,
    open_date: np.ndarray,
    close_date: np.ndarray,
    area: np.ndarray,
    n_areas: int,
    tech: np.ndarray,
    true_kwh: np.ndarray,
    billed: np.ndarray,
    theft: Theft,
    plan: dict[str, np.ndarray],
    changes: ServiceChanges,
    calendar: Calendar,
    rng: np.random.Generator,
) -> tuple[np.ndarray, tuple[np.ndarray, ...], tuple[np.ndarray, ...]]:
    """Spread monthly kWh over the days of the readings window, attack thieves' days, and make the bills of
    those months the sum of the reported days (so readings and bills agree)."""
    n, months = true_kwh.shape
    first_month = int(calendar.month_index(np.array([calendar.daily_start]))[0])
    grid = np.arange(calendar.month_start[first_month], calendar.month_start[-1], dtype="datetime64[D]")
    grid_month = calendar.month_index(grid)
    weights = day_weights(category, open_date, close_date, grid, rng)
    weights *= 1.0 - (1.0 - OFFLINE_RESIDUAL) * offline_share_by_day(changes, n, grid)
    local = grid_month - first_month
    n_local = months - first_month
    sums = np.zeros((n, n_local))
    for j in range(n_local):
        sums[:, j] = weights[:, local == j].sum(axis=1)
    with np.errstate(invalid="ignore", divide="ignore"):
        share = np.where(sums[:, local] > 0, weights / sums[:, local], 0.0)
    true_daily = true_kwh[:, grid_month] * share

    day0 = grid[0]
    onset = np.clip((plan["onset"] - day0).astype(np.int64), 0, grid.size)
    onset = np.where(plan["thief"], onset, grid.size)
    window_end = np.clip((plan["window_end"] - day0).astype(np.int64), 0, grid.size)
    reported = attack_series(true_daily, plan, onset, window_end, 30, rng)
    # Daily attacks stop the day after the inspection that found them.
    found_day = np.where(
        np.isnat(theft.found_at),
        grid.size,
        (theft.found_at.astype("datetime64[D]") - day0).astype(np.int64) + 1,
    )
    after = np.arange(grid.size)[None, :] >= found_day[:, None]
    reported = np.where(after, true_daily, reported)
    reported = np.round(np.maximum(reported, 0.0), 2)

    # In these months a thief is stealing when any of its days is attacked (onsets fall mid-month).
    t = np.arange(grid.size)[None, :]
    attacked_day = plan["thief"][:, None] & (t >= onset[:, None]) & ~after
    attacked_day &= np.where((plan["kind"] == H2)[:, None], t < window_end[:, None], True)
    billed = billed.copy()
    for j in range(n_local):
        billed[:, first_month + j] = reported[:, local == j].sum(axis=1)
        theft.stealing[:, first_month + j] = attacked_day[:, local == j].any(axis=1)

    keep_days = grid >= calendar.daily_start
    open_mask = (grid[None, :] >= open_date[:, None]) & (
        np.isnat(close_date)[:, None] | (grid[None, :] < close_date[:, None])
    )
    c, t = np.nonzero(open_mask & keep_days[None, :])
    readings = (c, grid[t], reported[c, t])

    area_tech = tech[:, grid_month] + rng.normal(0.0, TECH_LOSS_DAILY_SD, size=(n_areas, grid.size))
    area_true = np.zeros((n_areas, grid.size))
    np.add.at(area_true, area, true_daily)
    area_supply = np.round(area_true * (1.0 + np.clip(area_tech, 0.0, None)), 1)
    # Area meters report whole months of days, so a month has either its month row or all its day rows.
    a, t = np.nonzero(np.ones(area_supply.shape, dtype=bool))
    return billed, readings, (a, grid[t], area_supply[a, t])


def _join_id(*parts: pa.Array | str) -> pa.Array:
    return pc.binary_join_element_wise(*parts, "")


def _bills_table(b: Bills, ids: pa.Array, calendar: Calendar) -> pa.Table:
    return _contract_table(
        "bills",
        {
            "customer_id": ids.take(pa.array(b.customer)),
            "period": calendar.month_start[b.month],
            "kwh": b.kwh,
            "kwh_peak": b.kwh_peak,
            "kwh_flat": b.kwh_flat,
            "kwh_valley": b.kwh_valley,
            "max_demand_kw": b.max_demand_kw,
            "power_factor": b.power_factor,
            "energy_charge": b.energy_charge,
            "basic_charge": b.basic_charge,
            "pf_adjustment": b.pf_adjustment,
            "amount_due": b.amount_due,
            "issue_date": b.issue_date,
            "due_date": b.due_date,
            "known_at": b.known_at,
        },
    )


def _payments_table(p: Payments, ids: pa.Array, yyyymm: pa.Array, calendar: Calendar) -> pa.Table:
    cust = ids.take(pa.array(p.customer))
    pid = _join_id("P", cust, "-", yyyymm.take(pa.array(p.month)), "-", pc.cast(pa.array(p.seq), pa.string()))
    return _contract_table(
        "payments",
        {
            "payment_id": pid,
            "customer_id": cust,
            "period": calendar.month_start[p.month],
            "paid_at": p.paid_at,
            "amount": p.amount,
            "late_fee": p.late_fee,
            "channel": pa.array(d.METHODS).take(pa.array(p.channel)),
        },
    )


def _suspensions_table(ch: ServiceChanges, ids: pa.Array) -> pa.Table:
    customer = np.concatenate([ch.customer, ch.restore_customer])
    kind = np.concatenate([ch.kind, ch.restore_kind])
    applied = np.concatenate([ch.applied_at, ch.restore_applied_at])
    start = np.concatenate([ch.start, ch.restore_start])
    end = np.concatenate(
        [ch.planned_end, np.full(ch.restore_customer.size, np.datetime64("NaT"), "datetime64[D]")]
    )
    cap = np.concatenate([ch.capacity_kva, ch.restore_capacity_kva])
    order = np.lexsort((kind, applied, customer))
    customer, kind, applied, start, end, cap = (a[order] for a in (customer, kind, applied, start, end, cap))
    return _contract_table(
        "suspensions",
        {
            "application_id": _application_ids(customer, ids),
            "customer_id": ids.take(pa.array(customer)),
            "applied_at": applied,
            "start_date": start,
            "end_date": end,
            "capacity_kva": cap,
            "kind": pa.array(KIND_VALUES).take(pa.array(kind)),
        },
    )


def _application_ids(customer: np.ndarray, ids: pa.Array) -> pa.Array:
    """`B<customer>-<nn>`: the customer's applications numbered in time order (customer must be sorted)."""
    first = np.searchsorted(customer, customer, side="left")
    seq = np.arange(customer.size) - first + 1
    digits = pc.utf8_lpad(pc.cast(pa.array(seq), pa.string()), 2, "0")
    return _join_id("B", ids.take(pa.array(customer)), "-", digits)


def _inspections_table(
    theft: Theft, kwh: np.ndarray, amount: np.ndarray, ids: pa.Array, yyyymm: pa.Array
) -> pa.Table:
    order = np.lexsort((theft.insp_at, theft.insp_customer))
    c, m = theft.insp_customer[order], theft.insp_month[order]
    cust = ids.take(pa.array(c))
    return _contract_table(
        "inspections",
        {
            "inspection_id": _join_id("J", cust, "-", yyyymm.take(pa.array(m))),
            "customer_id": cust,
            "inspected_at": theft.insp_at[order],
            "result": pa.array(RESULTS).take(pa.array(theft.insp_result[order])),
            "recovered_kwh": kwh[order],
            "recovered_amount": amount[order],
        },
    )


def _area_supply_table(
    supply: np.ndarray, daily: tuple[np.ndarray, ...] | None, area_ids: pa.Array, calendar: Calendar
) -> pa.Table:
    n_areas, months = supply.shape
    if daily is not None:
        # Months covered by daily rows have no month row (one supply figure per area and day or month).
        months = int(calendar.month_index(np.array([daily[1].min()]))[0])
    a = np.repeat(np.arange(n_areas), months)
    date = np.tile(calendar.month_start[:months], n_areas)
    kwh = np.round(supply[:, :months].ravel(), 1)
    gran = np.zeros(a.size, dtype=np.int8)
    if daily is not None:
        da, ddate, dkwh = daily
        a = np.concatenate([a, da])
        date = np.concatenate([date, ddate])
        kwh = np.concatenate([kwh, dkwh])
        gran = np.concatenate([gran, np.ones(da.size, dtype=np.int8)])
    order = np.lexsort((date, gran, a))
    return _contract_table(
        "area_supply",
        {
            "area_id": area_ids.take(pa.array(a[order])),
            "date": date[order],
            "granularity": pa.array([Granularity.MONTH.value, Granularity.DAY.value]).take(
                pa.array(gran[order])
            ),
            "supplied_kwh": kwh[order],
        },
    )


def _readings_table(c: np.ndarray, date: np.ndarray, kwh: np.ndarray, ids: pa.Array) -> pa.Table:
    return _contract_table("readings", {"customer_id": ids.take(pa.array(c)), "date": date, "kwh": kwh})


def _truth_tables(
    ids: pa.Array,
    category: np.ndarray,
    industry: np.ndarray,
    open_date: np.ndarray,
    close_date: np.ndarray,
    active: np.ndarray,
    drivers,
    true_kwh: np.ndarray,
    billed: np.ndarray,
    theft: Theft,
    changes: ServiceChanges,
    owing_p: np.ndarray,
    due: np.ndarray,
    calendar: Calendar,
) -> dict[str, pa.Table]:
    c, m = np.nonzero(active > 0)
    f32 = np.float32
    monthly = pa.table(
        {
            "customer_id": ids.take(pa.array(c)),
            "period": pa.array(calendar.month_start[m]),
            "stress": pa.array(drivers.stress[c, m].astype(f32)),
            "operating_level": pa.array(drivers.operating_level[c, m].astype(f32)),
            "downturn_depth": pa.array(drivers.downturn[c, m].astype(f32)),
            "kwh_true": pa.array(np.round(true_kwh[c, m], 2)),
            "kwh_reported": pa.array(np.round(billed[c, m], 2)),
            "is_stealing": pa.array(theft.stealing[c, m]),
            "offline_share": pa.array(changes.offline_share[c, m].astype(f32)),
            "due_date": pa.array(due[c, m]),
            "p_unpaid_30d": pa.array(owing_p[c, m].astype(f32)),
            "p_suspension": pa.array(changes.hazard[c, m].astype(f32)),
            "p_inspection": pa.array(theft.p_inspect[c, m].astype(f32)),
            "p_theft_found": pa.array(theft.p_found[c, m].astype(f32)),
        },
        schema=TRUTH_SCHEMAS["monthly"],
    )
    kind = pa.array([*KINDS, None]).take(pa.array(np.where(theft.kind >= 0, theft.kind, len(KINDS))))
    customers = pa.table(
        {
            "customer_id": ids,
            "usage_category": pa.array(d.CATEGORIES).take(pa.array(category)),
            "industry_code": pa.array([*d.INDUSTRIES, None]).take(
                pa.array(np.where(industry >= 0, industry, len(d.INDUSTRIES)))
            ),
            "open_date": pa.array(open_date),
            "close_date": pa.array(close_date),
            "stress_level": pa.array(drivers.stress_level.astype(f32)),
            "is_thief": pa.array(theft.thief),
            "attack_kind": kind,
            "theft_onset": pa.array(theft.onset),
            "theft_found_at": pa.array(theft.found_at.astype("datetime64[us]")),
            "stolen_kwh": pa.array(np.round(np.maximum(true_kwh - billed, 0.0).sum(axis=1), 1)),
        },
        schema=TRUTH_SCHEMAS["customers"],
    )
    order = np.lexsort((changes.applied_at, changes.customer))
    spells = pa.table(
        {
            "customer_id": ids.take(pa.array(changes.customer[order])),
            "kind": pa.array(KIND_VALUES).take(pa.array(changes.kind[order])),
            "applied_at": pa.array(changes.applied_at[order].astype("datetime64[us]")),
            "start_date": pa.array(changes.start[order]),
            "planned_end": pa.array(changes.planned_end[order]),
            "actual_end": pa.array(
                np.where(
                    changes.actual_end[order] >= np.datetime64("2200-01-01"),
                    np.datetime64("NaT"),
                    changes.actual_end[order],
                )
            ),
            "capacity_kva": pa.array(changes.capacity_kva[order]),
        },
        schema=TRUTH_SCHEMAS["suspension_spells"],
    )
    return {"monthly": monthly, "customers": customers, "suspension_spells": spells}
