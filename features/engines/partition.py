"""The partition function both engines run: some whole 台区 in, one row per (active customer, as-of date) out.

It is a pure function of pandas frames (`compute_partition(tables, job)`): the local engine calls it in a
process pool over partitions, the Spark engine through `groupBy(...).applyInPandas`. The global peer step
runs after it.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd

from features import archive, area_loss, consumption, events, labels, payments, peers, readings
from features.feature_sets import CATEGORICAL_FEATURES, TASK_FEATURES
from features.point_in_time import as_of_days
from features.sample import CustomerSample, members
from features.snapshot import BILL_MEASURES, prepare_partition

FAMILIES = (archive, consumption, readings, payments, events, area_loss)
SEGMENT_COLUMNS = ("usage_category", "supply_unit", "station")
POPULATION_COLUMN = "in_population"
# Source columns each table needs (PII never leaves the warehouse reader); an optional column the warehouse
# lacks (late_fee, an event's known_at) is left out of the read.
TABLE_COLUMNS: dict[str, tuple[str, ...]] = {
    "customers": (
        "customer_id",
        "usage_category",
        "industry_code",
        "voltage_kv",
        "contract_capacity_kva",
        "tariff",
        "payment_method",
        "supply_unit",
        "station",
        "area_id",
        "group_id",
        "open_date",
        "close_date",
    ),
    "bills": ("customer_id", "period", *BILL_MEASURES, "issue_date", "due_date", "known_at"),
    "payments": ("customer_id", "period", "paid_at", "amount", "late_fee", "channel", "known_at"),
    "readings": ("customer_id", "date", "kwh", "known_at"),
    "suspensions": (
        "customer_id",
        "applied_at",
        "start_date",
        "end_date",
        "capacity_kva",
        "kind",
        "known_at",
    ),
    "inspections": ("customer_id", "inspected_at", "result", "recovered_kwh", "known_at"),
    "areas": ("area_id", "station", "supply_unit", "transformer_kva"),
    "area_supply": ("area_id", "date", "granularity", "supplied_kwh", "known_at"),
}

# Tables the contract requires that both engines read as empty when the warehouse lacks them (a utility
# without suspensions or inspections yet); a missing customers, bills or payments table refuses the build.
ABSENT_TABLES_READ_AS_EMPTY = ("suspensions", "inspections", "area_supply", "areas")


# Bill measures only some features read: a task whose features use none of them does not load the column
# (a third of the bills' bytes for arrears). Everything else in TABLE_COLUMNS is always read.
OPTIONAL_BILL_MEASURES: dict[str, tuple[str, ...]] = {
    "kwh_peak": ("bills_peak_share_pct_3m", "bills_peak_share_change_pp_yoy"),
    "kwh_valley": ("bills_valley_share_pct_3m",),
    "max_demand_kw": (
        "bills_max_demand_to_capacity_pct_3m",
        "bills_max_demand_yoy_change_pct_3m",
        "bills_load_factor_pct_3m",
    ),
    "power_factor": ("bills_power_factor_mean_3m", "bills_power_factor_min_12m"),
    "energy_charge": ("bills_price_yuan_per_kwh_12m",),
    "basic_charge": ("bills_basic_charge_share_pct_3m",),
}
STAKE_BILL_MEASURES = {"theft": ("energy_charge",)}  # the theft amount at stake prices lost kWh


def table_columns(task: str) -> dict[str, tuple[str, ...]]:
    """The source columns a task's partitions read (TABLE_COLUMNS minus bill measures the task never uses)."""
    used = set(TASK_FEATURES[task])
    skip = {
        column
        for column, features in OPTIONAL_BILL_MEASURES.items()
        if not used & set(features) and column not in STAKE_BILL_MEASURES.get(task, ())
    }
    return {
        name: tuple(c for c in cols if not (name == "bills" and c in skip))
        for name, cols in TABLE_COLUMNS.items()
    }


@dataclass(frozen=True)
class PartitionJob:
    """What to compute: the task, its as-of dates and whether to attach labels (training) or not (scoring)."""

    task: str
    as_of_dates: tuple[pd.Timestamp, ...]
    with_labels: bool = True
    sample: CustomerSample | None = None  # cuts the population rows only; peers still see every customer

    @classmethod
    def make(
        cls, task: str, as_of_dates: object, with_labels: bool = True, sample: CustomerSample | None = None
    ) -> PartitionJob:
        labels.check_task(task)
        days = tuple(as_of_days(as_of_dates))
        return cls(task=task, as_of_dates=days, with_labels=with_labels, sample=sample)


def computed_features(task: str) -> list[str]:
    """Features the partition step computes for `task` (all but the peer features), plus the peer inputs."""
    peer_features = {fn.__name__ for fn in peers.FEATURES}
    names = [f for f in TASK_FEATURES[task] if f not in peer_features]
    for extra in peers.PEER_INPUTS:
        if extra not in names:
            names.append(extra)
    return names


def output_columns(job: PartitionJob) -> list[tuple[str, str]]:
    """(name, kind) of the partition output; kind is one of str, float, bool, int8, timestamp."""
    cols = [("customer_id", "str"), ("as_of", "timestamp")]
    cols += [(c, "str") for c in SEGMENT_COLUMNS]
    cols += [(peers.INDUSTRY_GROUP, "str")]
    cols += [(f, "str" if f in CATEGORICAL_FEATURES else "float") for f in computed_features(job.task)]
    cols += [(POPULATION_COLUMN, "bool"), ("amount_at_stake", "float")]
    if job.with_labels:
        cols.append(("label", "int8"))
    return cols


def empty_output(job: PartitionJob) -> pd.DataFrame:
    return pd.DataFrame({name: pd.Series([], dtype=_DTYPES[kind]) for name, kind in output_columns(job)})


def compute_partition(tables: dict[str, pd.DataFrame], job: PartitionJob) -> pd.DataFrame:
    """Features (as of each date), population flag, amount at stake and label for every active customer."""
    customers = tables.get("customers")
    if customers is None or len(customers) == 0:
        return empty_output(job)
    last_month = int(np.datetime64(max(job.as_of_dates).to_datetime64(), "M").astype(np.int64))
    part = prepare_partition(tables, months_until=last_month)
    names = computed_features(job.task)
    segments = {c: archive.strings(part.customers, c) for c in SEGMENT_COLUMNS}
    ids = part.customers["customer_id"].astype(str).to_numpy(dtype=object)
    sampled = members(ids, job.sample.share, job.sample.seed) if job.sample is not None else None
    kinds = dict(output_columns(job))
    columns: dict[str, list[np.ndarray]] = {name: [] for name in kinds}
    for day in job.as_of_dates:
        at = part.at(day)
        values: dict[str, np.ndarray] = {}
        for family in FAMILIES:
            values.update(family.compute(at))
        # Every active customer is a row, so peer medians see the same customers in training and scoring;
        # a customer whose label window is not observed only leaves the population (never the peers).
        rows = np.flatnonzero(at.active)
        in_population = labels.population(job.task, at, values)
        if job.with_labels:
            in_population &= labels.observed(job.task, at)
        if sampled is not None and job.sample.sampled(day):
            in_population &= sampled
        block: dict[str, np.ndarray] = {
            "customer_id": ids[rows],
            "as_of": np.full(len(rows), day.to_datetime64().astype("datetime64[ns]")),
        }
        block.update({c: v[rows] for c, v in segments.items()})
        block[peers.INDUSTRY_GROUP] = peers.industry_group(
            values["archive_industry_code"], values["archive_usage_category"]
        )[rows]
        block.update({f: values[f][rows] for f in names})
        block[POPULATION_COLUMN] = in_population[rows]
        block["amount_at_stake"] = labels.amount_at_stake(job.task, values)[rows]
        if job.with_labels:
            block["label"] = labels.label(job.task, at)[rows]
        for name in kinds:
            columns[name].append(block[name])
    # One frame at the end, each column already of its declared kind (strings stay Python objects).
    return pd.DataFrame(
        {
            name: pd.Series(np.concatenate(arrays), dtype=_DTYPES[kinds[name]])
            for name, arrays in columns.items()
        }
    )


_DTYPES = {"str": object, "float": "float64", "bool": bool, "int8": "int8", "timestamp": "datetime64[ns]"}


def conform(frame: pd.DataFrame, job: PartitionJob) -> pd.DataFrame:
    """Cast a partition output to the declared kinds (str objects, float64, bool, int8, ns times)."""
    out = {}
    for name, kind in output_columns(job):
        col = frame[name]
        if kind == "str":
            col = col.astype(object).where(col.notna(), None)
        elif kind == "float":
            col = pd.to_numeric(col, errors="coerce").astype("float64")
        elif kind == "bool":
            col = col.fillna(False).astype(bool)
        elif kind == "int8":
            col = col.astype("int8")
        else:
            col = pd.to_datetime(col).astype("datetime64[ns]")
        out[name] = col.reset_index(drop=True)
    return pd.DataFrame(out)
