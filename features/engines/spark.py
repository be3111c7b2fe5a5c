"""The Spark engine: the same partition function through `groupBy(bucket).applyInPandas`, peers by Spark
groupBy.

Every row of every table gets the bucket of its customer's 台区 (a hash of area_id, so all customers of an
area meet in one group), the tables travel as one tagged union (`__table` + `<table>__<column>` columns) and
each group is split back into contract frames for `compute_partition`. Peer medians are computed per (as_of,
group) with `applyInPandas` (exact, the same `peer_table` as the local engine) and joined in Spark; only the
finished population rows come back to the driver.
"""

from __future__ import annotations

import logging
import os
import shlex
import sys
import warnings
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

import pandas as pd

from features import peers
from features.engines.partition import (
    ABSENT_TABLES_READ_AS_EMPTY,
    POPULATION_COLUMN,
    TABLE_COLUMNS,
    PartitionJob,
    compute_partition,
    conform,
    empty_output,
    output_columns,
    table_columns,
)
from features.schema import table as contract_table
from features.sources import WarehouseError, has_table, stored_columns, table_path

logger = logging.getLogger(__name__)

TAG = "__table"
BUCKET = "__bucket"
AREA_TABLES = ("areas", "area_supply")


class SparkEngineError(Exception):
    """Spark is missing or cannot start (no pyspark, no Java)."""


# The session `gridrisk features --engine spark` and `score --engine spark` make: local and loopback-only by
# default (tests and benchmarks never open a port beyond 127.0.0.1); these settings point it elsewhere.
MASTER_ENV = "GRIDRISK_SPARK_MASTER"  # e.g. yarn, spark://host:7077, local[8]
CONF_ENV = "GRIDRISK_SPARK_CONF"  # key=value pairs, shell-quoted: "spark.executor.memory=8g spark.x='a b'"
DEFAULT_MASTER = "local[2]"
# pyspark 4 warns on every pandas UDF and collect that it does not fully support pandas >= 3; the engine's
# parity with the local engine is tested bit for bit, so the line is noise in every command's output.
PANDAS_WARNING = "PySpark does not yet fully support pandas"


def session_settings(environ: Mapping[str, str] | None = None) -> tuple[str | None, dict[str, str]]:
    """The master and the Spark settings a session is made with: `GRIDRISK_SPARK_MASTER` (default local[2]),
    then `GRIDRISK_SPARK_CONF`'s key=value pairs on top of gridrisk's defaults (theirs win). The driver is
    bound to 127.0.0.1 for a local master only: a cluster's executors must reach it. Under spark-submit
    (the JVM already runs, PYSPARK_GATEWAY_PORT is set) and without GRIDRISK_SPARK_MASTER, the master is
    None: the one spark-submit was given is kept, not replaced by local[2]."""
    environ = os.environ if environ is None else environ
    master = environ.get(MASTER_ENV, "").strip() or None
    if master is None and not environ.get("PYSPARK_GATEWAY_PORT"):
        master = DEFAULT_MASTER
    conf = {
        "spark.sql.session.timeZone": "UTC",
        "spark.sql.execution.arrow.pyspark.enabled": "true",
        "spark.ui.enabled": "false",
        "spark.ui.showConsoleProgress": "false",
    }
    if master is not None and master.startswith("local"):
        conf |= {"spark.driver.host": "127.0.0.1", "spark.driver.bindAddress": "127.0.0.1"}
    try:
        pairs = shlex.split(environ.get(CONF_ENV, ""))
    except ValueError as exc:
        raise SparkEngineError(f"{CONF_ENV}: {exc}; give key=value pairs, shell-quoted") from exc
    for pair in pairs:
        key, sep, value = pair.partition("=")
        if not sep or not key.strip():
            raise SparkEngineError(
                f"{CONF_ENV}: {pair!r} is not key=value; give Spark settings as key=value pairs, "
                "shell-quoted "
                '(spark.executor.memory=8g "spark.driver.extraJavaOptions=-Xss4m -Dx=1")'
            )
        conf[key.strip()] = value
    return master, conf


def local_session(master: str | None = None, shuffle_partitions: int = 8) -> Any:
    """The engine's own SparkSession, whose Python workers run this interpreter (with pandas, numpy): local
    and loopback-only unless `GRIDRISK_SPARK_MASTER` / `GRIDRISK_SPARK_CONF` say otherwise
    (`session_settings`); ``master`` overrides the environment's."""
    os.environ.setdefault("PYSPARK_PYTHON", sys.executable)
    os.environ.setdefault("PYSPARK_DRIVER_PYTHON", sys.executable)
    found, conf = session_settings()
    master = master or found
    conf.setdefault("spark.sql.shuffle.partitions", str(shuffle_partitions))
    if master is not None and master.startswith("local"):
        os.environ.setdefault("SPARK_LOCAL_IP", "127.0.0.1")
    quiet_pandas_warning()
    try:
        from pyspark.sql import SparkSession
    except ImportError as exc:
        raise SparkEngineError("the spark engine needs pyspark: pip install 'gridrisk[spark]'") from exc
    builder = SparkSession.builder.appName("gridrisk-features")
    if master is not None:
        builder = builder.master(master)
    for key, value in conf.items():
        builder = builder.config(key, value)
    session = builder.getOrCreate()
    session.sparkContext.setLogLevel("ERROR")
    return session


def quiet_pandas_warning() -> None:
    """Filter pyspark's pandas >= 3 FutureWarning (`PANDAS_WARNING`) in this process and in the Python
    workers the JVM starts from its environment; every other warning is left as it was."""
    warnings.filterwarnings("ignore", message=PANDAS_WARNING, category=FutureWarning)
    rule = f"ignore:{PANDAS_WARNING}:FutureWarning"
    present = os.environ.get("PYTHONWARNINGS", "")
    if rule not in present:
        os.environ["PYTHONWARNINGS"] = f"{present},{rule}" if present else rule


def _spark_type(kind: str) -> Any:
    from pyspark.sql import types as T

    return {
        "str": T.StringType(),
        "float": T.DoubleType(),
        "bool": T.BooleanType(),
        "int8": T.ByteType(),
        "timestamp": T.TimestampNTZType(),
    }[kind]


def _schema(columns: list[tuple[str, str]]) -> Any:
    from pyspark.sql import types as T

    return T.StructType([T.StructField(name, _spark_type(kind), True) for name, kind in columns])


# Characters a Hadoop path glob reads as a pattern (`SparkHadoopUtil.isGlobPath`); a backslash escapes each.
GLOB_CHARACTERS = frozenset("\\{}[]*?")


def spark_path(path: Path) -> str:
    """`path` as `spark.read` must be given it to read that one file: Spark expands a path as a Hadoop glob,
    so the table of a warehouse folder named `wh[1]` would be read from a sibling `wh1` (another warehouse,
    without a word) and `wh*` from every match; the glob characters are escaped. It is made absolute: a
    relative `wh:1/bills.parquet` reads as a URI with the scheme `wh` and fails."""
    text = str(Path(path).absolute())
    return "".join("\\" + c if c in GLOB_CHARACTERS else c for c in text)


def tagged_union(spark: Any, warehouse: Path, buckets: int, task: str | None = None) -> Any:
    """All tables as one DataFrame: bucket, table tag, and each table's columns prefixed with its name."""
    from pyspark.sql import functions as F

    frames = {}
    for name, wanted in (table_columns(task) if task else TABLE_COLUMNS).items():
        if not has_table(warehouse, name):
            if contract_table(name).optional or name in ABSENT_TABLES_READ_AS_EMPTY:
                continue
            # As the local engine: without bills or payments every feature of them would read as missing and
            # every arrears label as unpaid, a training set built without a word from a half-loaded warehouse.
            raise WarehouseError(
                f"warehouse {warehouse} has no table {name!r} ({table_path(warehouse, name)} is missing); "
                "run `gridrisk ingest` or `gridrisk generate` first"
            )
        # The footer, read here: Spark would read a folder of parts, and INT96 instants in the session's zone.
        stored_columns(warehouse, name, wanted)
        df = spark.read.parquet(spark_path(table_path(warehouse, name)))
        frames[name] = df.select(*[c for c in wanted if c in df.columns])

    def bucket_of(area: Any) -> Any:
        return F.pmod(F.xxhash64(area.cast("string")), F.lit(buckets))

    customer_bucket = frames["customers"].select("customer_id", bucket_of(F.col("area_id")).alias(BUCKET))
    parts = []
    for name, df in frames.items():
        if name in AREA_TABLES:
            keyed = df.withColumn(BUCKET, bucket_of(F.col("area_id")))
        else:
            keyed = df.join(F.broadcast(customer_bucket), on="customer_id", how="inner")
        parts.append(
            keyed.select(
                F.col(BUCKET),
                F.lit(name).alias(TAG),
                *[F.col(c).alias(f"{name}__{c}") for c in df.columns],
            )
        )
    union = parts[0]
    for p in parts[1:]:
        union = union.unionByName(p, allowMissingColumns=True)
    return union


def split_union(frame: pd.DataFrame) -> dict[str, pd.DataFrame]:
    """One group of the tagged union back into contract frames (original column names)."""
    tables: dict[str, pd.DataFrame] = {}
    for name, rows in frame.groupby(TAG, sort=False):
        prefix = f"{name}__"
        cols = [c for c in rows.columns if c.startswith(prefix)]
        renamed = {c: c[len(prefix) :] for c in cols}
        tables[str(name)] = rows[cols].rename(columns=renamed).reset_index(drop=True)
    return tables


def partition_udf(job: PartitionJob) -> Callable[[pd.DataFrame], pd.DataFrame]:
    def run_group(frame: pd.DataFrame) -> pd.DataFrame:
        return conform(compute_partition(split_union(frame), job), job)

    return run_group


def peer_udf(group: str, columns: list[tuple[str, str]]) -> Callable[[pd.DataFrame], pd.DataFrame]:
    names = [n for n, _ in columns]

    def run_group(frame: pd.DataFrame) -> pd.DataFrame:
        table = peers.peer_table(frame, group)
        table["as_of"] = pd.to_datetime(table["as_of"]).astype("datetime64[ns]")
        return table[names]

    return run_group


def finish_udf(columns: list[tuple[str, str]]) -> Callable:
    names = [n for n, _ in columns]

    def run_batches(batches):
        for frame in batches:
            yield peers.add_peer_features(frame)[names]

    return run_batches


def run(
    warehouse: Path,
    job: PartitionJob,
    *,
    progress: Callable[[int, int], None] | None = None,
    spark: Any = None,
    buckets: int = 16,
) -> pd.DataFrame:
    """Population rows with every computed feature and the peer features (same table as the local engine)."""
    own_session = spark is None
    spark = local_session() if own_session else spark
    try:
        union = tagged_union(spark, Path(warehouse), buckets, job.task)
        columns = output_columns(job)
        computed = union.groupBy(BUCKET).applyInPandas(partition_udf(job), schema=_schema(columns)).cache()

        population = computed.filter(POPULATION_COLUMN)
        for group, key in peers.PEER_GROUPS.items():
            peer_cols = [("as_of", "timestamp"), (key, "str")]
            peer_cols += [(peers.peer_column(group, c), "float") for c in peers.PEER_INPUTS]
            inputs = computed.select("as_of", key, *peers.PEER_INPUTS).filter(computed[key].isNotNull())
            table = inputs.groupBy("as_of", key).applyInPandas(
                peer_udf(group, peer_cols), schema=_schema(peer_cols)
            )
            population = population.join(table, on=["as_of", key], how="left")

        kinds = dict(columns)
        final_cols = [(n, k) for n, k in columns] + [(fn.__name__, "float") for fn in peers.FEATURES]
        joined_cols = final_cols[: len(columns)] + [(c, "float") for c in peers.helper_columns()]
        population = population.select(*[n for n, _ in joined_cols])
        finished = population.mapInPandas(finish_udf(final_cols), schema=_schema(final_cols))
        out = finished.toPandas()
        computed.unpersist()
        if progress:
            progress(1, 1)
        if out.empty:
            out = empty_output(job).assign(
                **{fn.__name__: pd.Series([], dtype=float) for fn in peers.FEATURES}
            )
        out["as_of"] = pd.to_datetime(out["as_of"]).astype("datetime64[ns]")
        for name, kind in kinds.items():
            if kind == "str":
                out[name] = out[name].astype(object).where(out[name].notna(), None)
        logger.info("spark features: %d population rows", len(out))
        return out
    finally:
        if own_session:
            spark.stop()
