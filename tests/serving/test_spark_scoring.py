"""Spark variant: the pyfunc through `mlflow.pyfunc.spark_udf` (local mode) agrees with in-process scores."""

from __future__ import annotations

import os
import sys

import numpy as np
import pytest
from tinymodel import scoring_frame

from serving.model import pyfunc_class
from serving.scoring import explain

pytestmark = [pytest.mark.spark, pytest.mark.slow]


@pytest.fixture(scope="module")
def spark():
    pytest.importorskip("pyspark")
    os.environ.setdefault("PYSPARK_PYTHON", sys.executable)
    os.environ.setdefault("SPARK_LOCAL_IP", "127.0.0.1")
    from pyspark.sql import SparkSession

    session = (
        SparkSession.builder.master("local[2]")
        .appName("gridrisk-serving-test")
        .config("spark.ui.enabled", "false")
        .config("spark.sql.shuffle.partitions", "2")
        .config("spark.driver.bindAddress", "127.0.0.1")
        .getOrCreate()
    )
    yield session
    session.stop()


def test_spark_udf_scores_match_in_process(spark, package, tmp_path):
    import mlflow.pyfunc

    from serving.spark_scoring import score_with_spark

    model_dir = tmp_path / "model"
    mlflow.pyfunc.save_model(
        path=str(model_dir),
        python_model=pyfunc_class()(),
        artifacts={"package": str(package.save(tmp_path / "package"))},
        pip_requirements=["lightgbm", "pandas"],
    )
    frame = scoring_frame(80)
    rows = frame.astype({"as_of": "datetime64[us]"}).astype(object).where(frame.notna(), None)  # NaN -> null
    sdf = spark.createDataFrame(rows)
    out = score_with_spark(spark, sdf, str(model_dir), package, "gridrisk-arrears", "3").toPandas()
    out = out.set_index("customer_id").loc[frame["customer_id"]]
    expected = explain(package, package.spec.matrix(frame), k=1)
    np.testing.assert_allclose(out["probability"], expected.probability, atol=1e-12)
    np.testing.assert_allclose(out["raw_margin"], expected.raw_margin, atol=1e-9)
    assert sorted(out["rank"]) == list(range(1, 81))
    assert out["rank"].idxmin() == frame["customer_id"].iloc[int(np.argmax(expected.probability))]
    assert set(out["model_version"]) == {"3"}
