"""Training sets and scoring frames on the generated warehouse, their metadata, the CLI and the feature
catalogue.
"""

from __future__ import annotations

import json
import re
import shutil
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow.parquet as pq
import pytest
from typer.testing import CliRunner

from features import labels, peers
from features.engines.partition import FAMILIES, SEGMENT_COLUMNS, PartitionJob
from features.feature_sets import (
    CATEGORICAL_FEATURES,
    FEATURE_DOCS,
    TASK_FEATURES,
    feature_set_version,
)
from features.schema import TABLES
from features.training_set import (
    TrainingSetError,
    build_scoring_frame,
    build_training_set,
    write_training_set,
)
from gridrisk.cli import app

TASKS = ("arrears", "suspension", "theft")


def _last_month_ends(warehouse: Path, task: str, n: int) -> list[pd.Timestamp]:
    latest = labels.latest_labelable_as_of(warehouse, task)
    return list(pd.date_range(end=latest, periods=n + 1, freq="ME"))[-n:]


@pytest.fixture(scope="module")
def training_sets(generated_dir: Path) -> dict[str, pd.DataFrame]:
    return {t: build_training_set(generated_dir, t, _last_month_ends(generated_dir, t, 3)) for t in TASKS}


@pytest.mark.parametrize("task", TASKS)
def test_training_set_columns_dtypes_and_labels(training_sets, task):
    frame = training_sets[task]
    expected = ["customer_id", "as_of", *SEGMENT_COLUMNS, *TASK_FEATURES[task], "label", "amount_at_stake"]
    assert list(frame.columns) == expected
    assert frame["as_of"].dtype == "datetime64[ns]"
    assert frame["label"].dtype == "int8" and set(frame["label"].unique()) <= {0, 1}
    assert not frame.duplicated(["customer_id", "as_of"]).any()
    assert frame["as_of"].nunique() == 3
    per_as_of = frame.groupby("as_of")["label"].agg(["size", "mean"])
    assert (per_as_of["size"] > 20).all()
    assert 0 < frame["label"].mean() < 0.5
    assert (frame["amount_at_stake"] >= 0).all() and frame["amount_at_stake"].gt(0).any()
    for name in TASK_FEATURES[task]:
        if name in CATEGORICAL_FEATURES:
            assert frame[name].dtype != float, name
        else:
            assert frame[name].dtype == "float64", name
    # The core of each family is filled for most rows (households have no industry code; TOU shares, basic
    # charges and daily readings exist only for some customers, so they are not in this check).
    core = {"bills_kwh_mean_3m", "bills_kwh_mean_12m", "bills_history_months", "bills_kwh_yoy_change_pct_3m"}
    for name in TASK_FEATURES[task]:
        if (FEATURE_DOCS[name].family in ("archive", "payments") and "industry" not in name) or name in core:
            assert frame[name].notna().mean() > 0.5, name


def test_populations_follow_the_task_definitions(training_sets):
    assert (training_sets["arrears"]["archive_payment_method"] != "prepaid").all()
    susp = training_sets["suspension"]
    assert (susp["archive_tariff"] == "two_part").all() and (susp["archive_capacity_kva"] >= 315).all()
    assert (training_sets["theft"]["customer_id"].nunique()) > susp["customer_id"].nunique()


def test_the_scoring_frame_has_the_training_features(generated_dir, training_sets):
    train = training_sets["theft"]
    as_of = train["as_of"].max()
    score = build_scoring_frame(generated_dir, "theft", as_of)
    assert list(score.columns) == [c for c in train.columns if c != "label"]
    both = train[train["as_of"] == as_of].merge(score, on=["customer_id", "as_of"], suffixes=("", "_score"))
    assert len(both) == (train["as_of"] == as_of).sum()  # scoring covers everyone training has at that date
    numeric = [f for f in TASK_FEATURES["theft"] if f not in CATEGORICAL_FEATURES]
    np.testing.assert_array_equal(both[numeric].to_numpy(), both[[f"{f}_score" for f in numeric]].to_numpy())


def test_as_of_dates_whose_labels_are_not_observed_are_refused(generated_dir):
    latest = labels.latest_labelable_as_of(generated_dir, "theft")
    with pytest.raises(TrainingSetError, match=str(latest.date())):
        build_training_set(generated_dir, "theft", [latest, latest + pd.Timedelta(days=1)])


def test_write_training_set_adds_metadata(training_sets, generated_dir, tmp_path):
    frame = training_sets["arrears"]
    path = write_training_set(frame, tmp_path / "arrears.parquet")
    meta = json.loads((tmp_path / "arrears.parquet.meta.json").read_text())
    assert meta["task"] == "arrears" and meta["feature_set_version"] == feature_set_version("arrears")
    assert meta["rows"] == len(frame) and len(meta["per_as_of"]) == 3
    assert meta["warehouse"] == str(generated_dir.resolve())
    assert meta["label_rate"] == pytest.approx(frame["label"].mean())
    back = pd.read_parquet(path)
    pd.testing.assert_frame_equal(back, frame, check_dtype=False)


def features_cli(warehouse, task: str, out, *args: str):
    """`gridrisk features -w WAREHOUSE --task TASK -o OUT …` as a user types it."""
    command = ["features", "-w", str(warehouse), "--task", task, "-o", str(out), *args]
    return CliRunner().invoke(app, command, env={"COLUMNS": "200"})


def test_cli_builds_a_training_set_with_a_range(generated_dir, tmp_path):
    out = tmp_path / "theft.parquet"
    result = features_cli(generated_dir, "theft", out, "--as-of-range", "2023-04:2023-12")
    assert result.exit_code == 0, result.output
    assert "dropped" in result.output  # month ends after the latest labelable date
    meta = json.loads(out.with_name(out.name + ".meta.json").read_text())
    latest = labels.latest_labelable_as_of(generated_dir, "theft")
    assert meta["as_of_dates"][-1] <= latest.date().isoformat()
    assert meta["rows"] == len(pd.read_parquet(out))


def test_cli_clips_a_range_that_starts_before_the_first_bill(generated_dir, tmp_path):
    """The range's end was clipped to labelable dates, its start refused whole: 2020-11:2021-03 on a warehouse
    whose first bill is issued in 2021-02 now keeps February and March and says what it dropped."""
    out = tmp_path / "arrears.parquet"
    first = labels.first_bill_issued(generated_dir)
    result = features_cli(generated_dir, "arrears", out, "--as-of-range", "2020-11:2021-03")
    assert result.exit_code == 0, result.output
    assert f"before {first.date()} dropped" in result.output
    kept = json.loads(out.with_name(out.name + ".meta.json").read_text())["as_of_dates"]
    assert kept and all(d >= first.date().isoformat() for d in kept)
    # Every month end before it: still refused, naming the dates the warehouse can describe.
    refused = features_cli(
        generated_dir, "arrears", tmp_path / "x.parquet", "--as-of-range", "2020-01:2020-06"
    )
    assert refused.exit_code != 0 and "before the first bill" in refused.output


def test_cli_refuses_bad_input(generated_dir, tmp_path):
    runner = CliRunner()
    bad = runner.invoke(
        app, ["features", "-w", str(generated_dir), "--task", "churn", "--as-of", "2022-06-30", "-o", "x"]
    )
    assert bad.exit_code == 2 and "churn" in bad.output
    none = runner.invoke(
        app, ["features", "-w", str(generated_dir), "--task", "theft", "-o", str(tmp_path / "x")]
    )
    assert none.exit_code == 2 and "--as-of" in none.output


@pytest.mark.parametrize(
    "args, says",
    [
        (["--as-of-range", ":"], "must look like 2022-01:2023-12"),
        (["--as-of-range", "2022-06:"], "must look like 2022-01:2023-12"),
        (["--as-of-range", "2015-01:2015-03"], "are before the first bill in warehouse"),
        (["--as-of", "2015-06-30", "--scoring"], "is before the first bill in warehouse"),
        (["--as-of", "2099-01-31", "--scoring"], "after the data end"),
    ],
)
def test_cli_refuses_dates_the_warehouse_cannot_describe(generated_dir, tmp_path, args, says):
    result = features_cli(generated_dir, "arrears", tmp_path / "sets" / "x.parquet", *args)
    assert result.exit_code == 2 and says in result.output, result.output
    assert not (tmp_path / "sets").exists()  # a refused run leaves no empty folder behind
    assert "features arrears" not in result.output  # nor a stopped progress bar before the refusal


def test_cli_checks_the_output_path_before_any_work(generated_dir, tmp_path):
    result = features_cli(generated_dir, "arrears", tmp_path, "--as-of", "2022-06-30")
    assert result.exit_code == 2 and "is a folder; name the file to write" in result.output
    (tmp_path / "a_file").write_text("")
    under_file = features_cli(
        generated_dir, "arrears", tmp_path / "a_file" / "sets" / "x.parquet", "--as-of", "2022-06-30"
    )
    assert under_file.exit_code == 2 and "a_file is a file" in under_file.output, under_file.output


def test_cli_refuses_a_warehouse_that_is_not_there_and_an_out_inside_it(generated_dir, tmp_path):
    absent = features_cli(tmp_path / "nowhere", "arrears", tmp_path / "x.parquet", "--as-of", "2022-06-30")
    # It said the warehouse "has no dated rows", as if it were there but empty.
    assert absent.exit_code == 2 and "--warehouse" in absent.output and "does not exist" in absent.output
    warehouse = tmp_path / "wh"  # not the shared one: without the check its bills were replaced
    shutil.copytree(generated_dir, warehouse, ignore=shutil.ignore_patterns("truth"))
    bills = (warehouse / "bills.parquet").read_bytes()
    inside = features_cli(warehouse, "arrears", warehouse / "bills.parquet", "--as-of", "2022-06-30")
    # The training set replaced the warehouse's bills.
    assert inside.exit_code == 2 and "inside warehouse" in inside.output, inside.output
    assert (warehouse / "bills.parquet").read_bytes() == bills


def test_a_table_without_a_required_column_is_refused_by_name(generated_dir, tmp_path):
    warehouse = tmp_path / "wh"  # a table written by hand, not by `gridrisk ingest`
    shutil.copytree(generated_dir, warehouse, ignore=shutil.ignore_patterns("truth"))
    for name, column in (("bills", "amount_due"), ("payments", "paid_at")):
        path = warehouse / f"{name}.parquet"
        pq.write_table(pq.read_table(path).drop_columns([column]), path)
    # It stopped with a traceback: ValueError "'paid_at' is not in list" (features), KeyError (score).
    for args in (["--as-of", "2022-06-30"], ["--as-of", "2022-06-30", "--scoring"]):
        result = features_cli(warehouse, "arrears", tmp_path / "x.parquet", *args)
        said = " ".join(result.output.split())
        assert result.exit_code == 2, result.output
        assert "missing required column(s)" in said and "bills" in said and "lacks amount_due" in said
        assert "payments" in said and "lacks paid_at" in said
    # An optional column may be absent: the same warehouse with it only still builds.
    shutil.copy(generated_dir / "bills.parquet", warehouse / "bills.parquet")
    shutil.copy(generated_dir / "payments.parquet", warehouse / "payments.parquet")
    optional = next(c.name for c in TABLES["bills"].columns if not c.required)
    path = warehouse / "bills.parquet"
    pq.write_table(pq.read_table(path).drop_columns([optional]), path)
    labels.check_inside_data(warehouse, [pd.Timestamp("2022-06-30")], scoring=True)


def spark_paid_at(generated_dir: Path, warehouse: Path, *, int96: bool) -> Path:
    """A copy of the warehouse whose payments.paid_at holds what a Spark session in Asia/Shanghai writes: the
    UTC instants of the Beijing wall clock, marked UTC (TIMESTAMP_MICROS) or as INT96 (no zone mark)."""
    import pyarrow as pa

    shutil.copytree(generated_dir, warehouse, ignore=shutil.ignore_patterns("truth"))
    path = warehouse / "payments.parquet"
    local = pq.read_table(path)
    at = local.schema.get_field_index("paid_at")
    utc = local.column("paid_at").to_pandas().dt.tz_localize("Asia/Shanghai").dt.tz_convert("UTC")
    instants = pa.array(utc.dt.tz_convert(None), type=pa.timestamp("us")) if int96 else pa.array(utc)
    table = local.set_column(at, pa.field("paid_at", instants.type), instants)
    pq.write_table(table, path, use_deprecated_int96_timestamps=int96)
    assert (pq.ParquetFile(path).schema.column(at).physical_type == "INT96") == int96
    return warehouse


def refused_and_converted(generated_dir: Path, warehouse: Path, tmp_path: Path, named: str) -> None:
    """`gridrisk features` refuses the warehouse naming the column and the fix, and the fix gives back the
    generated wall-clock times."""
    from features.ingest import ingest
    from features.sources import read_table

    result = features_cli(warehouse, "arrears", tmp_path / "x.parquet", "--as-of", "2022-06-30")
    said = " ".join(result.output.split())
    assert result.exit_code == 2, result.output
    assert f"time column(s) stored with a time zone: {named}" in said
    assert f"gridrisk ingest {warehouse} --warehouse NEW" in said
    converted = tmp_path / "wh"
    ingest(warehouse, converted, now="2030-01-01")
    paid_at = read_table(converted, "payments")["paid_at"]
    assert paid_at.equals(read_table(generated_dir, "payments")["paid_at"])


def test_a_table_with_zoned_times_is_refused_and_ingest_converts_it(generated_dir, tmp_path):
    # A payments table Spark wrote (UTC instants) was read as UTC wall clock: a Beijing 07:00 payment on
    # 2023-07-01 counted as of 2023-06-30.
    warehouse = spark_paid_at(generated_dir, tmp_path / "spark", int96=False)
    refused_and_converted(generated_dir, warehouse, tmp_path, "payments.paid_at (UTC)")


def test_a_table_with_int96_times_is_refused_by_every_reader_and_ingest_converts_it(generated_dir, tmp_path):
    # Spark and Hive write timestamps as INT96 by default: UTC instants without a zone mark. The warehouse
    # read them as wall clock, 8 hours early (a bank batch posted at 01:30 Beijing time counted on the day
    # before), and every command, both engines included, built features from them without a word.
    from unittest import mock

    from features.engines import local, spark
    from features.sources import WarehouseError, read_arrow_table, read_table

    warehouse = spark_paid_at(generated_dir, tmp_path / "spark", int96=True)
    named = "payments.paid_at (INT96)"
    refused_and_converted(generated_dir, warehouse, tmp_path, named)
    job = PartitionJob.make("arrears", [pd.Timestamp("2022-06-30")])
    for read in (
        lambda: read_arrow_table(warehouse, "payments"),
        lambda: read_table(warehouse, "payments", ["payment_id", "paid_at"]),
        lambda: local.read_tables(warehouse, "arrears"),
        lambda: local.run(warehouse, job, workers=1),
        lambda: spark.tagged_union(mock.MagicMock(), warehouse, 3, "arrears"),  # checked before Spark reads
    ):
        with pytest.raises(WarehouseError, match=re.escape(named)):
            read()
    read_table(warehouse, "payments", ["payment_id", "amount"])  # columns without INT96 times read as before


def test_cli_says_how_to_end_a_range_past_every_labelable_date(generated_dir, tmp_path):
    result = features_cli(generated_dir, "theft", tmp_path / "x.parquet", "--as-of-range", "2025-01:2025-06")
    said = " ".join(result.output.split())
    # It said "no as-of dates: pass --as-of ... or --as-of-range A:B", though a range was passed.
    assert result.exit_code == 2 and "every month end of --as-of-range 2025-01:2025-06 is after" in said
    latest = labels.latest_labelable_as_of(generated_dir, "theft")
    last = (latest + pd.Timedelta(days=1)).to_period("M") - 1
    assert f"end the range by {last}" in said and last.to_timestamp(how="end") <= latest


# -- the feature catalogue -----------------------------------------------------------------------------------


def test_every_feature_has_one_definition_and_a_doc():
    defined = [fn.__name__ for family in FAMILIES for fn in _functions(family)] + [
        fn.__name__ for fn in peers.FEATURES
    ]
    assert len(defined) == len(set(defined)), "a feature name is defined twice"
    assert set(defined) == set(FEATURE_DOCS)
    for task, names in TASK_FEATURES.items():
        assert len(names) == len(set(names)), task
        assert set(names) <= set(FEATURE_DOCS), task
        assert 40 <= len(names) <= 80, (task, len(names))


def _functions(family) -> list:
    return (
        getattr(family, "FEATURES", [])
        + getattr(family, "FEATURES_AREA", [])
        + getattr(family, "FEATURES_CUSTOMER", [])
    )


def test_reason_templates_format_for_positive_negative_and_categorical_values():
    for name, doc in FEATURE_DOCS.items():
        value = "two_part" if name in CATEGORICAL_FEATURES else -12.5
        signed = [t for t in (doc.zh_negative, doc.en_negative) if t is not None]
        assert len(signed) in (0, 2), f"{name}: a negative sentence in one language only"
        for template in (doc.zh, doc.en, *signed):
            numeric = not isinstance(value, str)
            text = template.format(
                value=value,
                abs_value=abs(value) if numeric else value,
                dir_zh="上升" if numeric and value >= 0 else "下降",
                dir_en="up" if numeric and value >= 0 else "down",
            )
            assert text and "{" not in text, name
        assert doc.family in {"archive", "consumption", "readings", "payments", "events", "area", "peers"}


def test_feature_set_version_is_stable_and_tracks_the_list(monkeypatch):
    first = feature_set_version("theft")
    assert first == feature_set_version("theft") and len(first) == 12
    monkeypatch.setitem(TASK_FEATURES, "theft", TASK_FEATURES["theft"][:-1])
    assert feature_set_version("theft") != first
