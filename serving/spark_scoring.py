"""Batch scoring on Spark: the registered pyfunc through `mlflow.pyfunc.spark_udf`, ranked and valued there.

For a population too large for one machine. It yields probability, raw margin, rank and expected value per
customer; the in-process `gridrisk score` adds the top-k reasons (a `pred_contrib` pass per chunk).
"""

from __future__ import annotations

from typing import Any

from serving.model import PackagedModel

RESULT_TYPE = "probability double, raw_margin double"  # what GridriskPyfunc.predict returns
KEEP = ("customer_id", "as_of", "usage_category", "supply_unit", "station", "amount_at_stake")


def score_with_spark(
    spark: Any, frame: Any, model_uri: str, package: PackagedModel, model_name: str, model_version: str
) -> Any:
    """Scores of a Spark DataFrame of scoring-frame rows (features named as the package's spec).

    `package` is the same model loaded on the driver; only its feature names are used here, so the
    executors score with exactly what the registry serves.
    """
    import mlflow.pyfunc
    from pyspark.sql import Window
    from pyspark.sql import functions as F

    udf = mlflow.pyfunc.spark_udf(spark, model_uri, result_type=RESULT_TYPE, env_manager="local")
    keep = [c for c in KEEP if c in frame.columns]
    scored = frame.select(*keep, udf(F.struct(*[F.col(n) for n in package.spec.names])).alias("score"))
    scored = scored.select(*keep, "score.probability", "score.raw_margin")
    # Rank over the whole population, ties broken by customer id so reruns agree.
    order = Window.orderBy(F.col("probability").desc(), F.col("customer_id"))
    out = scored.withColumn("rank", F.row_number().over(order))
    if "amount_at_stake" in keep:
        out = out.withColumn("expected_value", F.col("probability") * F.col("amount_at_stake"))
    return out.withColumn("model_name", F.lit(model_name)).withColumn("model_version", F.lit(model_version))
