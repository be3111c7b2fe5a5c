"""Training-test fixtures: a synthetic stacked training set with a known signal, a throwaway MLflow store."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest

# Columns the rule baselines of training/tasks.py sort by, plus a few more with and without signal.
SYNTHETIC_FEATURES = [
    "payments_outstanding_yuan",
    "payments_late_count_365d",
    "bills_utilization_pct_3m",
    "bills_kwh_yoy_change_pct_3m",
    "bills_kwh_change_pct_3m_vs_prev_3m",
    "signal_a",
    "signal_b",
    "noise",
    "usage_category",
]


def synthetic_frame(
    customers: int = 800, months: int = 24, seed: int = 0, start: str = "2021-01"
) -> pd.DataFrame:
    """customers x month-end as-of dates with a label drawn from a logistic model of a few features.

    signal_a and signal_b carry most of the signal (nonlinearly, so trees beat the linear baseline);
    the rule columns carry a weaker part of it; noise carries none.
    """
    rng = np.random.default_rng(seed)
    as_of = pd.period_range(start, periods=months, freq="M").to_timestamp(how="end").normalize()
    n = customers * months
    cust = np.tile(np.arange(customers), months)
    frame = pd.DataFrame(
        {
            "customer_id": pd.array([f"C{c:05d}" for c in cust], dtype="str"),
            "as_of": np.repeat(as_of.values, customers).astype("datetime64[ns]"),
            "usage_category": pd.array(
                np.array(["residential", "general_commercial", "large_industrial"])[cust % 3], dtype="str"
            ),
            "supply_unit": pd.array(np.array(["north", "south"])[cust % 2], dtype="str"),
            "station": pd.array([f"S{c % 8}" for c in cust], dtype="str"),
        }
    )
    a = rng.normal(size=n)
    b = rng.normal(size=n)
    owed = np.maximum(0, rng.gamma(1.0, 200.0, size=n) * (rng.random(n) < 0.3))
    late = rng.poisson(1.0, size=n).astype(float)
    frame["signal_a"] = a
    frame["signal_b"] = b
    frame["noise"] = rng.normal(size=n)
    frame["payments_outstanding_yuan"] = owed
    frame["payments_late_count_365d"] = late
    frame["bills_utilization_pct_3m"] = rng.uniform(5, 80, size=n)
    frame["bills_kwh_yoy_change_pct_3m"] = rng.normal(size=n) * 20
    frame["bills_kwh_change_pct_3m_vs_prev_3m"] = rng.normal(size=n) * 20
    frame.loc[rng.random(n) < 0.05, "signal_b"] = np.nan  # missing values must be tolerated
    logit = (
        -3.2
        + 1.4 * a
        + 1.0 * np.nan_to_num(b) ** 2 * 0.6
        + 0.002 * owed
        + 0.25 * late
        - 0.02 * frame["bills_kwh_yoy_change_pct_3m"].to_numpy()
        - 0.01 * frame["bills_kwh_change_pct_3m_vs_prev_3m"].to_numpy()
        + 0.3 * (cust % 3 == 2)
    )
    frame["oracle_p"] = 1 / (1 + np.exp(-logit))
    frame["label"] = (rng.random(n) < frame["oracle_p"].to_numpy()).astype("int8")
    frame["amount_at_stake"] = 100.0 + owed + rng.gamma(2.0, 100.0, size=n)
    return frame


@pytest.fixture(scope="session")
def frame() -> pd.DataFrame:
    return synthetic_frame()


@pytest.fixture(scope="session")
def features() -> list[str]:
    return list(SYNTHETIC_FEATURES)


@pytest.fixture
def tracking(tmp_path: Path) -> tuple[str, Path]:
    """A fresh SQLite tracking store and artifact root for one test."""
    return f"sqlite:///{tmp_path / 'mlflow.db'}", tmp_path / "mlartifacts"
