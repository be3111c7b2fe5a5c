"""The in-process engine: whole 台区 grouped into partitions, `compute_partition` on each in a process pool.

The parent reads the contract tables once (only the columns features need), splits them by partition and forks
the workers, which see the split tables without copying them. Each worker returns its population rows and the
narrow peer inputs of every active customer; the parent computes the peer medians and joins them.
"""

from __future__ import annotations

import logging
import multiprocessing
import os
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow.parquet as pq

from features import peers
from features.engines.partition import (
    POPULATION_COLUMN,
    TABLE_COLUMNS,
    PartitionJob,
    compute_partition,
    empty_output,
)
from features.schema import table
from features.sources import WarehouseError, has_table, table_path

logger = logging.getLogger(__name__)

TARGET_CUSTOMERS_PER_PARTITION = 20_000  # matrices of ~20k customers × 60 months stay well under 100 MB each
AREA_TABLES = ("areas", "area_supply")

_PARTS: list[dict[str, pd.DataFrame]] = []  # set in the parent before forking; read by the workers


def read_tables(warehouse: Path) -> dict[str, pd.DataFrame]:
    """The contract tables features need, only the columns they use (never PII)."""
    tables: dict[str, pd.DataFrame] = {}
    for name, wanted in TABLE_COLUMNS.items():
        spec = table(name)
        if not has_table(warehouse, name):
            if spec.optional or name in ("suspensions", "inspections", "area_supply", "areas"):
                continue
            raise WarehouseError(
                f"warehouse {warehouse} has no table {name!r} ({table_path(warehouse, name)} is missing); "
                "run `gridrisk ingest` or `gridrisk generate` first"
            )
        present = set(pq.read_schema(table_path(warehouse, name)).names)
        cols = [c for c in wanted if c in present]
        tables[name] = pq.read_table(table_path(warehouse, name), columns=cols).to_pandas(
            date_as_object=False
        )
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


def split_tables(tables: dict[str, pd.DataFrame], n_parts: int) -> list[dict[str, pd.DataFrame]]:
    """Split every table by partition so each partition holds whole areas and all their customers' rows."""
    customers = tables["customers"]
    area_part = partition_of_areas(customers, n_parts)
    cust_part = pd.Series(
        area_part.reindex(customers["area_id"].astype(str)).to_numpy(),
        index=customers["customer_id"].astype(str),
    )
    parts: list[dict[str, pd.DataFrame]] = [{} for _ in range(n_parts)]
    for name, frame in tables.items():
        if name in AREA_TABLES:
            key = area_part.reindex(frame["area_id"].astype(str)).to_numpy()
        else:
            key = cust_part.reindex(frame["customer_id"].astype(str)).to_numpy()
        key = np.nan_to_num(np.asarray(key, dtype=np.float64), nan=-1).astype(np.int64)
        order = np.argsort(key, kind="stable")
        bounds = np.searchsorted(key[order], np.arange(n_parts + 1))
        for k in range(n_parts):
            parts[k][name] = frame.iloc[order[bounds[k] : bounds[k + 1]]].reset_index(drop=True)
    return parts


def _run_part(args: tuple[int, PartitionJob]) -> tuple[pd.DataFrame, pd.DataFrame]:
    k, job = args
    out = compute_partition(_PARTS[k], job)
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
    tables: dict[str, pd.DataFrame] | None = None,
) -> pd.DataFrame:
    """Population rows with every computed feature and the peer features, for all as-of dates of `job`."""
    global _PARTS
    tables = read_tables(warehouse) if tables is None else tables
    workers = workers or default_workers()
    n_customers = len(tables["customers"])
    n_parts = max(
        1, min(max(workers, int(np.ceil(n_customers / TARGET_CUSTOMERS_PER_PARTITION))), n_customers)
    )
    if workers > 1:
        n_parts = max(n_parts, workers) if n_customers >= workers else n_parts
    parts = split_tables(tables, n_parts)
    del tables
    logger.info("features: %d customers in %d partitions, %d workers", n_customers, n_parts, workers)
    _PARTS = parts
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
        _PARTS = []
    population = pd.concat([r[0] for r in results], ignore_index=True) if results else empty_output(job)
    peer_inputs = pd.concat([r[1] for r in results], ignore_index=True) if results else population
    return finish_local(population, peer_inputs)


def finish_local(population: pd.DataFrame, peer_inputs: pd.DataFrame) -> pd.DataFrame:
    """The global step: peer medians per (as_of, industry) and (as_of, station), joined as features."""
    tables = {group: peers.peer_table(peer_inputs, group) for group in peers.PEER_GROUPS}
    return peers.add_peer_features(peers.join_peers(population, tables))
