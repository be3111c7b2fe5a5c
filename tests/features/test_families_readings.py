"""Daily-readings family: zero runs, level drops, weekday/weekend, flat lines, variance (hand-made curves)."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from tiny_warehouse import customer_rows, features_at, with_defaults

from features import readings

AS_OF = pd.Timestamp("2023-06-30")
DAYS = pd.date_range(AS_OF - pd.Timedelta(days=179), AS_OF, freq="D")  # 180 days ending on T


def _curve(customer: str, kwh: np.ndarray) -> pd.DataFrame:
    return pd.DataFrame({"customer_id": customer, "date": DAYS, "kwh": kwh})


@pytest.fixture(scope="module")
def f() -> pd.DataFrame:
    rng = np.random.default_rng(0)
    weekend = DAYS.dayofweek >= 5
    curves = [
        # C0000: 10 kWh on weekdays, 5 at weekends (a shop closed on Sunday afternoons).
        _curve("C0000", np.where(weekend, 5.0, 10.0)),
        # C0001: a steady 10 kWh that falls to 2 kWh for the last 30 days (a bypass installed 30 days ago).
        _curve("C0001", np.r_[np.full(150, 10.0), np.full(30, 2.0)]),
        # C0002: noisy consumption, the last 20 days zero (meter stopped).
        _curve("C0002", np.r_[rng.uniform(5, 15, 160), np.zeros(20)]),
        # C0003: noisy, then exactly 7.0 kWh every day for the last 50 days (a flat line, attack h5) ...
        _curve("C0003", np.r_[rng.uniform(5, 15, 130), np.full(50, 7.0)]),
        # C0005: ... a negative day (a meter reset) among normal ones, and a register rolling over (more
        # than its contract capacity could draw in 24 hours).
        _curve(
            "C0005",
            np.r_[rng.uniform(5, 15, 170), [-3.0], rng.uniform(5, 15, 4), [99_987.65], rng.uniform(5, 15, 4)],
        ),
        # A reading one day after T: invisible (and would be a huge drop if it were read).
        pd.DataFrame({"customer_id": ["C0001"], "date": [AS_OF + pd.Timedelta(days=1)], "kwh": [0.0]}),
    ]
    # C0004 has no daily readings at all.
    tables = with_defaults(customers=customer_rows(6), readings=pd.concat(curves, ignore_index=True))
    return features_at(tables, str(AS_OF.date()), readings)


def test_weekday_weekend_ratio(f):
    assert f.loc["C0000", "readings_weekend_weekday_ratio_90d"] == pytest.approx(0.5)
    assert f.loc["C0000", "readings_days_observed_90d"] == 90
    assert f.loc["C0000", "readings_zero_days_30d"] == 0


def test_sudden_level_drop(f):
    c = f.loc["C0001"]
    assert c["readings_level_drop_max_pct_90d"] == pytest.approx(80.0)
    assert c["readings_kwh_change_pct_30d_vs_prev_90d"] == pytest.approx(-80.0)
    # The largest 14-day-vs-14-day drop straddles the change day, 30 days before T.
    assert 25 <= c["readings_days_since_level_drop"] <= 35
    assert f.loc["C0000", "readings_level_drop_max_pct_90d"] < 40  # weekly rhythm is not a change point


def test_zero_days_and_runs(f):
    c = f.loc["C0002"]
    assert c["readings_zero_days_30d"] == 20
    assert c["readings_zero_run_max_days_90d"] == 20
    assert c["readings_zero_days_90d"] == 20


def test_flat_line_and_variance_collapse(f):
    c = f.loc["C0003"]
    assert c["readings_flat_days_90d"] == 49  # the first flat day differs from the noisy day before it
    assert c["readings_variance_ratio_30d_vs_prev_90d"] == pytest.approx(0.0)
    assert f.loc["C0002", "readings_flat_days_90d"] == 0  # zero days are zero runs, not flat lines


def test_negative_days_are_counted_not_consumed(f):
    c = f.loc["C0005"]
    assert c["readings_negative_days_90d"] == 2
    assert c["readings_days_observed_90d"] == 88
    assert c["readings_cv_90d"] < 0.5  # the 99,987.65 kWh day read 9.4 when it was consumption


def test_no_readings_gives_nan(f):
    c = f.loc["C0004"]
    assert c["readings_days_observed_90d"] == 0
    for name in ("readings_kwh_mean_30d", "readings_zero_days_30d", "readings_level_drop_max_pct_90d"):
        assert np.isnan(c[name]), name


def test_a_warehouse_without_a_readings_table():
    tables = with_defaults(customers=customer_rows(2))
    out = features_at(tables, "2023-06-30", readings)
    assert out["readings_kwh_mean_30d"].isna().all()


def test_no_capacity_on_file_sets_no_bar():
    # A capacity of 0 (or none) must not turn every day into an impossible one.
    customers = customer_rows(2)
    customers.loc[0, "contract_capacity_kva"] = 0.0
    customers.loc[1, "contract_capacity_kva"] = np.nan
    curves = pd.concat([_curve("C0000", np.full(180, 12.0)), _curve("C0001", np.full(180, 12.0))])
    f = features_at(with_defaults(customers=customers, readings=curves), str(AS_OF.date()), readings)
    assert (f["readings_negative_days_90d"] == 0).all() and (f["readings_days_observed_90d"] == 90).all()
