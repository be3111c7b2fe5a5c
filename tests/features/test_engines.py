"""Both engines give the same table: partitions never split an area, the result does not depend on how areas
are grouped or how many workers run, and Spark's applyInPandas matches the local process pool exactly.
"""

from __future__ import annotations

import os
import re
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from tiny_warehouse import make_tables, write

from features.engines import local
from features.engines.partition import PartitionJob
from features.sample import CustomerSample
from features.training_set import _finish

AS_OF = ("2022-06-30", "2022-11-30")


@pytest.fixture(scope="module")
def warehouse(tmp_path_factory) -> Path:
    return write(staggered(make_tables()), tmp_path_factory.mktemp("engines"))


def staggered(tables: dict[str, pd.DataFrame]) -> dict[str, pd.DataFrame]:
    """Area A1's history starts four months after the others', and every third customer is billed every other
    month. A partition's month grid began at its own first row, so features depended on which areas shared
    a partition, on the number of cores and on the engine (an outside audit: 119 theft rows moved between one
    and two cores); a fixture where every area starts together could not see it."""
    customers, bills, supply = tables["customers"], tables["bills"], tables["area_supply"]
    late = set(customers.loc[customers["area_id"] == "A1", "customer_id"])
    start = pd.to_datetime(bills["period"]).min() + pd.DateOffset(months=4)  # odd: folded bills start it
    period = pd.to_datetime(bills["period"])
    folded = bills["customer_id"].isin(set(customers["customer_id"].iloc[::3]))
    bills = bills[
        ~(bills["customer_id"].isin(late) & (period < start)) & ~(folded & (period.dt.month % 2 == 0))
    ]
    odd = bills["customer_id"].isin(set(customers["customer_id"].iloc[::3]))
    bills = bills.assign(kwh=bills["kwh"].where(~odd, bills["kwh"] * 2))
    supply = supply[~((supply["area_id"] == "A1") & (pd.to_datetime(supply["date"]) < start))]
    return {**tables, "bills": bills.reset_index(drop=True), "area_supply": supply.reset_index(drop=True)}


def _local(warehouse: Path, task: str, sample: CustomerSample | None = None, **kwargs) -> pd.DataFrame:
    job = PartitionJob.make(task, AS_OF, sample=sample)
    return _finish(local.run(warehouse, job, **kwargs), task, with_labels=True)


def test_partitions_hold_whole_areas_and_every_row_once():
    tables = make_tables()
    parts = local.split_tables(tables, 3)
    area_parts: dict[str, set[int]] = {}
    for k, part in enumerate(parts):
        for area in part["customers"]["area_id"]:
            area_parts.setdefault(area, set()).add(k)
        ids = set(part["customers"]["customer_id"])
        # Every customer-keyed row sits with its customer; every area row with its area.
        for name in ("bills", "payments", "readings", "suspensions", "inspections"):
            assert set(part[name]["customer_id"]) <= ids
        assert set(part["area_supply"]["area_id"]) <= set(part["customers"]["area_id"])
    assert all(len(v) == 1 for v in area_parts.values())
    for name, frame in tables.items():
        assert sum(len(p[name]) for p in parts) == len(frame), name


def test_result_does_not_depend_on_partitioning_or_workers(warehouse, monkeypatch):
    one = _local(warehouse, "theft", workers=1)
    monkeypatch.setattr(local, "TARGET_CUSTOMERS_PER_PARTITION", 7)  # many small partitions, two processes
    many = _local(warehouse, "theft", workers=2)
    pd.testing.assert_frame_equal(one, many)
    assert len(one) > 0 and one["label"].sum() > 0


def test_the_order_of_rows_in_the_files_changes_nothing(tmp_path):
    """Payments at the same instant through two channels (a bill split at the counter and online), and a
    suspension cancelled the day it was applied: which came "last" followed the rows' order in the file, so
    reversing an export changed payments_channel_changes_365d and who was suspended at T (and with it the
    suspension population). A Spark shuffle does not keep file order either."""
    tables = make_tables()
    pays = tables["payments"]
    before = pays[(pays["customer_id"] == "C0002") & (pays["paid_at"] <= pd.Timestamp(AS_OF[0]))]
    # The last payment before T, split: online then counter is one change, counter then online two.
    split = before.nlargest(1, "paid_at").assign(channel="counter", amount=1.0, payment_id="Q000001")
    assert (before["channel"] == "online").all()
    tables["payments"] = pd.concat([pays, split], ignore_index=True)
    susp = tables["suspensions"]
    first = susp.iloc[0]
    same_day = pd.DataFrame(
        {
            "application_id": ["S5", "S6"],
            "customer_id": [susp["customer_id"].iloc[3]] * 2,
            "applied_at": pd.to_datetime(["2022-06-01 09:00", "2022-06-01 15:00"]),
            "start_date": pd.to_datetime(["2022-06-10", "2022-06-10"]),
            "end_date": pd.to_datetime(["2022-09-10", pd.NaT]),
            "capacity_kva": [first["capacity_kva"]] * 2,
            "kind": ["suspension", "suspension_restore"],  # cancelled the same afternoon
        }
    )
    tables["suspensions"] = pd.concat([susp, same_day], ignore_index=True)
    forward = write(tables, tmp_path / "forward")
    backward = write({k: v.iloc[::-1].reset_index(drop=True) for k, v in tables.items()}, tmp_path / "back")
    for task in ("arrears", "suspension"):
        pd.testing.assert_frame_equal(_local(forward, task, workers=1), _local(backward, task, workers=1))


@pytest.fixture(scope="module")
def spark_session():
    pytest.importorskip("pyspark")
    from features.engines import spark

    os.environ["PYSPARK_PYTHON"] = sys.executable
    os.environ["SPARK_LOCAL_IP"] = "127.0.0.1"
    session = spark.local_session(shuffle_partitions=2)
    yield session
    session.stop()


@pytest.mark.spark
@pytest.mark.slow
@pytest.mark.parametrize("task", ["theft", "arrears"])  # theft reads every family; arrears the payment label
def test_spark_and_local_engines_give_the_same_table(warehouse, spark_session, task):
    from features.engines import spark

    job = PartitionJob.make(task, AS_OF)
    got = _finish(spark.run(warehouse, job, spark=spark_session, buckets=3), task, with_labels=True)
    expected = _local(warehouse, task, workers=1)
    assert len(expected) > 0
    pd.testing.assert_frame_equal(got, expected)
    # Not a vacuous match: the table has labels, categorical and peer features filled in.
    assert np.isfinite(got["peers_kwh_yoy_change_vs_station_pp"]).any()
    assert got["archive_tariff"].notna().all()


@pytest.mark.spark
@pytest.mark.slow
def test_spark_waits_for_known_at_like_local(tmp_path, spark_session):
    """Event rows entered days after they happened (a payment posted from a debit file, a finding written up
    later) count from their known_at in both engines."""
    from features.engines import spark

    tables, rng = make_tables(), np.random.default_rng(3)
    times = {
        "payments": "paid_at",
        "readings": "date",
        "suspensions": "applied_at",
        "inspections": "inspected_at",
    }
    for name, column in times.items():
        lag = pd.to_timedelta(rng.integers(0, 20 * 86_400, size=len(tables[name])), unit="s")
        tables[name] = tables[name].assign(known_at=pd.to_datetime(tables[name][column]) + lag)
    warehouse = write(tables, tmp_path / "posted")
    job = PartitionJob.make("theft", AS_OF)
    got = _finish(spark.run(warehouse, job, spark=spark_session, buckets=3), "theft", with_labels=True)
    expected = _local(warehouse, "theft", workers=1)
    pd.testing.assert_frame_equal(got, expected)
    unlagged = _local(write(make_tables(), tmp_path / "at_once"), "theft", workers=1)
    assert not expected.equals(unlagged)  # the lags are read, not dropped on the way


@pytest.mark.spark
@pytest.mark.slow
def test_spark_cuts_the_same_customer_sample(warehouse, spark_session):
    from features.engines import spark

    sample = CustomerSample(0.5, pd.Timestamp(AS_OF[1]), seed=1)
    job = PartitionJob.make("theft", AS_OF, sample=sample)
    got = _finish(spark.run(warehouse, job, spark=spark_session, buckets=3), "theft", with_labels=True)
    expected = _local(warehouse, "theft", sample=sample, workers=1)
    pd.testing.assert_frame_equal(got, expected)
    full = _local(warehouse, "theft", workers=1)
    first = pd.Timestamp(AS_OF[0])
    assert 0 < (got["as_of"] == first).sum() < (full["as_of"] == first).sum()


@pytest.mark.parametrize("task", ["arrears", "suspension", "theft"])
def test_reading_only_the_task_columns_changes_nothing(warehouse, task):
    """Bill measures no feature of the task uses are not read: same table as from every column."""
    from features.engines.partition import TABLE_COLUMNS, table_columns

    pruned = _local(warehouse, task, workers=1)
    everything = _finish(
        local.run(warehouse, PartitionJob.make(task, AS_OF), workers=1, tables=local.read_tables(warehouse)),
        task,
        with_labels=True,
    )
    pd.testing.assert_frame_equal(pruned, everything)
    if task == "arrears":
        assert len(table_columns(task)["bills"]) < len(TABLE_COLUMNS["bills"])


@pytest.mark.spark
@pytest.mark.slow
@pytest.mark.parametrize("folder", ["wh[1]", "wh:1"])
def test_spark_reads_a_warehouse_whose_path_holds_glob_or_colon_characters(
    tmp_path, spark_session, monkeypatch, folder
):
    """Spark expands a path as a Hadoop glob: `wh[1]/bills.parquet` matched the sibling warehouse `wh1` and
    built its features without a word. A relative `wh:1` read as a URI scheme and failed (and any relative
    path resolved against the JVM's working directory, not the caller's)."""
    from features.engines import spark

    write(make_tables(), tmp_path / folder)
    write(make_tables(seed=5, customers=12), tmp_path / "wh1")  # what the glob `wh[1]` matches
    warehouse = tmp_path / folder
    if ":" in folder:  # relative, as `gridrisk features --warehouse wh:1` passes it
        monkeypatch.chdir(tmp_path)
        warehouse = Path(folder)
    job = PartitionJob.make("theft", AS_OF)
    got = _finish(spark.run(warehouse, job, spark=spark_session, buckets=3), "theft", with_labels=True)
    expected = _local(tmp_path / folder, "theft", workers=1)
    assert len(expected) > 0
    pd.testing.assert_frame_equal(got, expected)


@pytest.mark.spark
@pytest.mark.slow
@pytest.mark.parametrize("missing", ["payments", "bills"])
def test_spark_refuses_a_warehouse_without_a_required_table_like_local(tmp_path, spark_session, missing):
    """Without payments.parquet Spark built an arrears training set in which nearly every bill read as unpaid
    (label rate ~1) where the local engine refuses; both now refuse with the same WarehouseError."""
    from features.engines import spark
    from features.sources import WarehouseError, table_path

    warehouse = write(make_tables(), tmp_path / "wh")
    table_path(warehouse, missing).unlink()
    job = PartitionJob.make("arrears", AS_OF)
    with pytest.raises(WarehouseError, match=f"no table '{missing}'"):
        local.run(warehouse, job, workers=1)
    with pytest.raises(WarehouseError, match=f"no table '{missing}'"):
        spark.run(warehouse, job, spark=spark_session, buckets=3)


def test_the_order_of_daily_supply_rows_changes_no_bit(tmp_path):
    # An area's daily supply rows are summed per month; in the file's order, a reversed export moved 7 theft
    # area columns in their last bits (an auditor).
    tables = make_tables()
    supply = tables["area_supply"]
    months = supply[supply["area_id"] == "A0"]
    rng = np.random.default_rng(1)
    days = [
        pd.DataFrame(
            {
                "area_id": "A0",
                "date": pd.date_range(row.date, periods=pd.Timestamp(row.date).days_in_month, freq="D"),
                "granularity": "day",
                "supplied_kwh": row.supplied_kwh
                / 30
                * rng.uniform(0.9, 1.1, pd.Timestamp(row.date).days_in_month),
            }
        )
        for row in months.itertuples()
    ]
    tables["area_supply"] = pd.concat([supply[supply["area_id"] != "A0"], *days], ignore_index=True)
    forward = write(tables, tmp_path / "forward")
    shuffled = tables["area_supply"].sample(frac=1.0, random_state=3).reset_index(drop=True)
    backward = write({**tables, "area_supply": shuffled}, tmp_path / "shuffled")
    got, expected = _local(backward, "theft", workers=1), _local(forward, "theft", workers=1)
    assert got.filter(like="area_").notna().any().any()
    pd.testing.assert_frame_equal(got, expected, check_exact=True)


def test_spark_session_settings_come_from_the_environment():
    """The session was hard-wired (`local[2]`, driver on 127.0.0.1) and replaced spark-submit's master: a
    provincial cluster could not be used from the CLI. The default stays local and loopback-only."""
    from features.engines.spark import SparkEngineError, session_settings

    master, conf = session_settings({})
    assert master == "local[2]" and conf["spark.driver.bindAddress"] == "127.0.0.1"
    assert conf["spark.sql.session.timeZone"] == "UTC"
    master, conf = session_settings(
        {
            "GRIDRISK_SPARK_MASTER": "yarn",
            "GRIDRISK_SPARK_CONF": "spark.executor.memory=8g 'spark.driver.extraJavaOptions=-Xss4m -Dx=1'",
        }
    )
    assert master == "yarn" and "spark.driver.bindAddress" not in conf  # executors must reach the driver
    assert conf["spark.executor.memory"] == "8g"
    assert conf["spark.driver.extraJavaOptions"] == "-Xss4m -Dx=1"
    _, conf = session_settings({"GRIDRISK_SPARK_CONF": "spark.sql.session.timeZone=Asia/Shanghai"})
    assert conf["spark.sql.session.timeZone"] == "Asia/Shanghai"  # the user's settings win
    assert session_settings({"PYSPARK_GATEWAY_PORT": "41234"})[0] is None  # spark-submit's master is kept
    with pytest.raises(
        SparkEngineError, match=re.escape("GRIDRISK_SPARK_CONF: 'spark.executor.memory' is not key=value")
    ):
        session_settings({"GRIDRISK_SPARK_CONF": "spark.executor.memory"})


def test_only_pysparks_pandas_3_warning_is_silenced(monkeypatch):
    """Every Spark run printed `FutureWarning: PySpark does not yet fully support pandas >= 3.0.0` four
    times; parity with the local engine is tested bit for bit, so the line is noise. Other warnings stay."""
    import warnings

    pytest.importorskip("pyspark")
    from pyspark.sql.pandas.utils import require_minimum_pandas_version

    from features.engines.spark import quiet_pandas_warning

    monkeypatch.setenv("PYTHONWARNINGS", "default")
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        quiet_pandas_warning()
        require_minimum_pandas_version()
        warnings.warn("another FutureWarning", FutureWarning, stacklevel=1)
    assert [str(w.message) for w in caught] == ["another FutureWarning"]
    # The Python workers the JVM starts inherit the filter through the environment, beside the user's own.
    assert os.environ["PYTHONWARNINGS"] == (
        "default,ignore:PySpark does not yet fully support pandas:FutureWarning"
    )


@pytest.mark.spark
@pytest.mark.slow
def test_a_training_set_and_a_scoring_frame_in_ones_own_spark_session(warehouse, spark_session):
    """`build_training_set(…, spark=session)`: the CLI's columns and date checks in a caller's session (a
    cluster's). Before, only the engine's raw rows were public, without the checks."""
    from features.training_set import TrainingSetError, build_scoring_frame, build_training_set

    got = build_training_set(warehouse, "arrears", AS_OF, spark=spark_session)
    pd.testing.assert_frame_equal(got, build_training_set(warehouse, "arrears", AS_OF))
    assert got.attrs["engine"] == "spark" and len(got) > 0
    scored = build_scoring_frame(warehouse, "theft", AS_OF[1], spark=spark_session)
    pd.testing.assert_frame_equal(scored, build_scoring_frame(warehouse, "theft", AS_OF[1]))
    with pytest.raises(TrainingSetError, match="label windows past the warehouse's data end"):
        build_training_set(warehouse, "arrears", ["2030-06-30"], spark=spark_session)
    with pytest.raises(TrainingSetError, match="a Spark session was passed with engine='local'"):
        build_training_set(warehouse, "arrears", AS_OF, engine="local", spark=spark_session)
    assert not spark_session.sparkContext._jsc.sc().isStopped()  # the caller's session is left running
