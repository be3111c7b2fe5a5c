"""The in-process engine: whole 台区 grouped into partitions, `compute_partition` on each in a process pool.

The parent reads the contract tables once as Arrow (only the columns features need, customer ids
dictionary-encoded so 36 M bill rows stay compact), works out which partition every row belongs to and forks
the workers. A worker takes its partition's rows from the shared tables (copy-on-write: no copy before
it takes them), turns them into pandas frames and runs the partition function; it returns its population rows
and the narrow peer inputs of every active customer, and the parent computes the peer medians and joins them.
"""

from __future__ import annotations

import logging
import multiprocessing
import os
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

from features import peers
from features.engines.partition import (
    ABSENT_TABLES_READ_AS_EMPTY,
    POPULATION_COLUMN,
    TABLE_COLUMNS,
    PartitionJob,
    compute_partition,
    empty_output,
    table_columns,
)
from features.memory import release_memory
from features.schema import table
from features.snapshot import FLOAT32_MEASURES
from features.sources import WarehouseError, has_table, stored_columns, table_path

logger = logging.getLogger(__name__)

TARGET_CUSTOMERS_PER_PARTITION = 20_000  # matrices of ~20k customers × 60 months stay well under 100 MB each
AREA_TABLES = ("areas", "area_supply")
DICTIONARY_COLUMNS = ("customer_id", "area_id", "channel", "kind", "result", "granularity")


def read_tables(warehouse: Path, task: str | None = None) -> dict[str, pa.Table]:
    """The contract tables features need as Arrow, only the columns they (or `task`) use; never PII."""
    tables: dict[str, pa.Table] = {}
    for name, wanted in (table_columns(task) if task else TABLE_COLUMNS).items():
        spec = table(name)
        path = table_path(warehouse, name)
        if not has_table(warehouse, name):
            if spec.optional or name in ABSENT_TABLES_READ_AS_EMPTY:
                continue
            raise WarehouseError(
                f"warehouse {warehouse} has no table {name!r} ({path} is missing); "
                "run `gridrisk ingest` or `gridrisk generate` first"
            )
        present = set(stored_columns(warehouse, name, wanted))  # a folder or INT96 times are refused
        cols = [c for c in wanted if c in present]
        encode = [c for c in cols if c in DICTIONARY_COLUMNS] if name != "customers" else []
        single = FLOAT32_MEASURES.get(name, ())
        # One threaded read, then one contiguous chunk per column: a partition's `take` then touches only its
        # own rows (a take across chunks joins them first); energy columns become float32 on the way.
        raw = pq.read_table(path, columns=cols, read_dictionary=encode or None)
        arrays = []
        for c in cols:
            column = raw.column(c)
            if pa.types.is_dictionary(column.type):
                column = column.unify_dictionaries()
            column = column.combine_chunks() if column.num_chunks != 1 else column.chunk(0)
            arrays.append(pc.cast(column, pa.float32()) if c in single else column)
        del raw
        tables[name] = pa.Table.from_arrays(arrays, names=cols)
    pa.default_memory_pool().release_unused()
    return tables


def partition_of_areas(customers: pd.DataFrame, n_parts: int) -> pd.Series:
    """Assign each area to a partition, balancing customer counts (largest areas first)."""
    sizes = customers["area_id"].astype(str).value_counts()
    load = np.zeros(n_parts)
    assignment = {}
    for area, size in sizes.items():  # a loop over areas, not customers: a few thousand iterations at most
        k = int(load.argmin())
        assignment[area] = k
        load[k] += size
    return pd.Series(assignment, dtype=np.int64)


def _keys_of(column: pa.ChunkedArray, part_of: pd.Series) -> np.ndarray:
    """Partition of every value of a string or dictionary column (-1 for values outside every partition)."""
    if pa.types.is_dictionary(column.type):
        column = column.unify_dictionaries()
        if column.num_chunks == 0:
            return np.zeros(0, dtype=np.int64)
        lookup = part_of.reindex(column.chunk(0).dictionary.to_pandas().astype(str)).to_numpy()
        lookup = np.nan_to_num(np.asarray(lookup, dtype=np.float64), nan=-1).astype(np.int64)
        parts = []
        for chunk in column.chunks:
            idx = chunk.indices.to_numpy(zero_copy_only=False)
            parts.append(lookup[idx] if len(lookup) else np.full(len(idx), -1))
        return np.concatenate(parts) if parts else np.zeros(0, dtype=np.int64)
    values = pa.array(part_of.index.to_numpy(dtype=object), pa.string())
    position = pc.index_in(column.cast(pa.string()), value_set=values).to_numpy(zero_copy_only=False)
    position = np.nan_to_num(np.asarray(position, dtype=np.float64), nan=-1).astype(np.int64)
    return np.where(position >= 0, part_of.to_numpy()[np.maximum(position, 0)], -1)


@dataclass
class PartitionPlan:
    """For every table, its rows ordered by partition and where each partition starts."""

    tables: dict[str, pa.Table]
    order: dict[str, np.ndarray]
    bounds: dict[str, np.ndarray]
    n_parts: int

    def frames(self, k: int) -> dict[str, pd.DataFrame]:
        """Partition `k` as pandas frames with contract dtypes (dates as datetime64)."""
        out = {}
        for name, tbl in self.tables.items():
            rows = self.order[name][self.bounds[name][k] : self.bounds[name][k + 1]]
            part = tbl.take(pa.array(rows))
            # Decode dictionaries: the taken rows would still carry every customer id of the table.
            columns = [
                pc.cast(c, c.type.value_type) if pa.types.is_dictionary(c.type) else c for c in part.columns
            ]
            part = pa.Table.from_arrays(columns, names=part.column_names)
            out[name] = part.to_pandas(date_as_object=False)
        return out


def plan_partitions(tables: dict[str, pa.Table], n_parts: int) -> PartitionPlan:
    """Assign whole areas to partitions and every row to its customer's (or area's) partition."""
    customers = tables["customers"].select(["customer_id", "area_id"]).to_pandas()
    area_part = partition_of_areas(customers, n_parts)
    cust_part = pd.Series(
        area_part.reindex(customers["area_id"].astype(str)).to_numpy(),
        index=customers["customer_id"].astype(str).to_numpy(),
    )
    order, bounds = {}, {}
    for name, tbl in tables.items():
        key_col, lookup = ("area_id", area_part) if name in AREA_TABLES else ("customer_id", cust_part)
        key = _keys_of(tbl.column(key_col), lookup).astype(np.int16 if n_parts < 30_000 else np.int64)
        # A stable sort of small integers is a radix sort in numpy: linear in the rows.
        order[name] = np.argsort(key, kind="stable").astype(np.int32 if tbl.num_rows < 2**31 else np.int64)
        bounds[name] = np.searchsorted(key[order[name]], np.arange(n_parts + 1))
        del key
    return PartitionPlan(tables=tables, order=order, bounds=bounds, n_parts=n_parts)


def split_tables(tables: dict, n_parts: int) -> list[dict[str, pd.DataFrame]]:
    """Every partition as pandas frames (for small data and tests; `run` takes partitions one at a time)."""
    plan = plan_partitions(_as_arrow(tables), n_parts)
    return [plan.frames(k) for k in range(n_parts)]


def _as_arrow(tables: dict) -> dict[str, pa.Table]:
    return {
        name: t if isinstance(t, pa.Table) else pa.Table.from_pandas(t, preserve_index=False)
        for name, t in tables.items()
    }


_PLAN: PartitionPlan | None = None  # set in the parent before forking; read by the workers


def _run_part(args: tuple[int, PartitionJob]) -> tuple[pd.DataFrame, pd.DataFrame]:
    k, job = args
    assert _PLAN is not None
    out = compute_partition(_PLAN.frames(k), job)
    peer_cols = ["as_of", *peers.PEER_GROUPS.values(), *peers.PEER_INPUTS]
    return out[out[POPULATION_COLUMN]].reset_index(drop=True), out[peer_cols]


def default_workers() -> int:
    return max(1, len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else (os.cpu_count() or 1))


def run(
    warehouse: Path,
    job: PartitionJob,
    *,
    progress: Callable[[int, int], None] | None = None,
    workers: int | None = None,
    tables: dict | None = None,
) -> pd.DataFrame:
    """Population rows with every computed feature and the peer features, for all as-of dates of `job`."""
    global _PLAN
    started = time.perf_counter()
    tables = read_tables(warehouse, job.task) if tables is None else _as_arrow(tables)
    rows_in = {name: t.num_rows for name, t in tables.items()}
    workers = workers or default_workers()
    n_customers = tables["customers"].num_rows
    n_areas = len(pc.unique(tables["customers"].column("area_id")))
    n_parts = max(workers, int(np.ceil(n_customers / TARGET_CUSTOMERS_PER_PARTITION)))
    n_parts = max(1, min(n_parts, n_areas))
    plan = plan_partitions(tables, n_parts)
    del tables
    logger.info(
        "features %s: read %s rows and planned %d partitions of whole areas in %.1f s; %d workers",
        job.task,
        rows_in,
        n_parts,
        time.perf_counter() - started,
        workers,
    )
    _PLAN = plan
    partitions_started = time.perf_counter()
    results: list[tuple[pd.DataFrame, pd.DataFrame]] = []
    try:
        if workers == 1 or n_parts == 1:
            for k in range(n_parts):
                results.append(_run_part((k, job)))
                if progress:
                    progress(k + 1, n_parts)
        else:
            ctx = multiprocessing.get_context("fork")
            with ctx.Pool(processes=min(workers, n_parts)) as pool:
                for i, result in enumerate(
                    pool.imap_unordered(_run_part, [(k, job) for k in range(n_parts)])
                ):
                    results.append(result)
                    if progress:
                        progress(i + 1, n_parts)
    finally:
        _PLAN = None
    # The stacking and the peers need neither the tables (3.7 GiB at 1,000,000 customers) nor a partition's
    # rows once stacked: the build's peak was here, tables and partitions alive beside the stacked copies.
    del plan
    release_memory()
    parts, peer_parts = [r[0] for r in results], [r[1] for r in results]
    del results
    population = pd.concat(parts, ignore_index=True) if parts else empty_output(job)
    del parts
    peer_inputs = pd.concat(peer_parts, ignore_index=True) if peer_parts else population
    del peer_parts
    peers_started = time.perf_counter()
    out = finish_local(population, peer_inputs)
    logger.info(
        "features %s: %d population rows (of %d active) from the partitions in %.1f s, peers in %.1f s",
        job.task,
        len(out),
        len(peer_inputs),
        peers_started - partitions_started,
        time.perf_counter() - peers_started,
    )
    return out


def finish_local(population: pd.DataFrame, peer_inputs: pd.DataFrame) -> pd.DataFrame:
    """The global step: peer medians per (as_of, industry) and (as_of, station), joined as features."""
    tables = {group: peers.peer_table(peer_inputs, group) for group in peers.PEER_GROUPS}
    return peers.add_peer_features(peers.join_peers(population, tables))
