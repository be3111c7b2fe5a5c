"""台区 line loss and share, and peer-relative features, on hand-made areas and peer groups."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from tiny_warehouse import customer_rows, features_at, monthly_bills, with_defaults

from features import area_loss, peers
from features.engines.local import finish_local


def _supply(area: str, months: pd.DatetimeIndex, kwh: list[float]) -> pd.DataFrame:
    return pd.DataFrame({"area_id": area, "date": months, "granularity": "month", "supplied_kwh": kwh})


@pytest.fixture(scope="module")
def tables() -> dict[str, pd.DataFrame]:
    months = pd.date_range("2022-01-01", "2022-12-01", freq="MS")
    customers = customer_rows(4, area_id=["A0", "A0", "A1", "A2"])
    bills = pd.concat(
        [
            monthly_bills("C0000", "2022-01", [100.0] * 12),
            monthly_bills("C0001", "2022-01", [300.0] * 12),
            monthly_bills("C0002", "2022-01", [100.0] * 12),
            monthly_bills("C0003", "2022-01", [100.0] * 12),
        ]
    )
    # A0: 10 % loss for nine months, then a third of the supply lost from October (a bypass appears).
    a0 = _supply("A0", months, [440.0] * 9 + [600.0] * 3)
    # A1: the December supply row has not arrived.
    a1 = _supply("A1", months[:11], [110.0] * 11)
    # A2: daily supply, with 31 December missing: December is incomplete.
    days = pd.date_range("2022-01-01", "2022-12-30", freq="D")
    a2 = pd.DataFrame({"area_id": "A2", "date": days, "granularity": "day", "supplied_kwh": 4.0})
    areas = pd.DataFrame(
        {
            "area_id": ["A0", "A1", "A2"],
            "station": "S1",
            "supply_unit": "U1",
            "transformer_kva": [100.0, 50.0, 50.0],
        }
    )
    supply = pd.concat([a0, a1, a2], ignore_index=True)
    return with_defaults(customers=customers, bills=bills, area_supply=supply, areas=areas)


def test_line_loss_and_its_trend(tables):
    f = features_at(tables, "2023-01-31", area_loss)
    c = f.loc["C0000"]
    assert c["area_line_loss_pct_3m"] == pytest.approx(100 / 3)
    assert c["area_line_loss_pct_12m"] == pytest.approx((5760 - 4800) / 5760 * 100)
    assert c["area_line_loss_slope_pp_6m"] > 3  # 10 % for three months, then 33 %
    assert np.isnan(c["area_line_loss_change_pp_yoy"])  # no 2021 data
    assert c["area_customers_active"] == 2
    assert c["area_kwh_share_pct_3m"] == pytest.approx(25.0)
    assert f.loc["C0001", "area_kwh_share_pct_3m"] == pytest.approx(75.0)
    assert f.loc["C0001", "area_line_loss_pct_3m"] == c["area_line_loss_pct_3m"]  # an area feature
    assert c["area_transformer_load_pct_3m"] == pytest.approx(600 / (100 * 730) * 100)


def test_months_without_bills_or_full_supply_are_skipped(tables):
    # Before December's bills are issued (5 January) December is not used, though its supply row is known.
    early = features_at(tables, "2023-01-04", area_loss).loc["C0000"]
    assert early["area_line_loss_pct_3m"] == pytest.approx((440 + 600 + 600 - 1200) / 1640 * 100)
    late = features_at(tables, "2023-01-31", area_loss)
    # A1 lacks December's supply and A2 its last day: both use September–November.
    assert late.loc["C0002", "area_line_loss_pct_3m"] == pytest.approx(10 / 110 * 100)
    assert late.loc["C0003", "area_line_loss_pct_3m"] == pytest.approx((4 * 91 - 300) / (4 * 91) * 100)


def test_a_month_row_beside_its_day_rows_is_counted_once(tables):
    # A0 exported as monthly totals and, besides them, daily rows of the same months that sum to something
    # else (20 kWh a day): the month row is the meter's total, so it alone is the supply.
    days = pd.date_range("2022-01-01", "2022-12-31", freq="D")
    detail = pd.DataFrame({"area_id": "A0", "date": days, "granularity": "day", "supplied_kwh": 20.0})
    both = {**tables, "area_supply": pd.concat([tables["area_supply"], detail], ignore_index=True)}
    alone = features_at(tables, "2023-01-31", area_loss).loc["C0000"]
    together = features_at(both, "2023-01-31", area_loss).loc["C0000"]
    assert together["area_line_loss_pct_3m"] == pytest.approx(100 / 3)
    assert together.equals(alone)


def test_peer_medians_and_minimum_group_size():
    as_of = pd.Timestamp("2023-01-31")
    yoy = [-10.0, -20.0, -30.0, -40.0, -50.0, 0.0, 5.0, 15.0]
    rows = pd.DataFrame(
        {
            "customer_id": [f"C{i}" for i in range(8)],
            "as_of": as_of,
            # Six customers in C13 (a downturn), two in F51 (too few for a median).
            "peer_industry_group": ["C13"] * 6 + ["F51"] * 2,
            "station": ["S1"] * 8,
            "bills_kwh_yoy_change_pct_3m": yoy,
            "bills_kwh_slope_6m_pct": [1.0] * 8,
        }
    )
    # The population is the last three rows; every row (population or not) is a peer.
    out = finish_local(rows.iloc[5:].reset_index(drop=True), rows).set_index("customer_id")
    assert out.loc["C5", "peers_industry_kwh_yoy_change_pct"] == pytest.approx(-25.0)
    assert out.loc["C5", "peers_kwh_yoy_change_vs_industry_pp"] == pytest.approx(25.0)
    assert np.isnan(out.loc["C6", "peers_industry_kwh_yoy_change_pct"])
    assert out.loc["C7", "peers_station_kwh_yoy_change_pct"] == pytest.approx(-15.0)
    assert out.loc["C7", "peers_kwh_yoy_change_vs_station_pp"] == pytest.approx(30.0)
    assert out.loc["C5", "peers_kwh_slope_6m_vs_industry_pp"] == 0
    assert not set(peers.helper_columns()) & set(out.columns)


def test_peers_are_per_as_of_date():
    rows = pd.DataFrame(
        {
            "customer_id": [f"C{i}" for i in range(10)],
            "as_of": [pd.Timestamp("2022-12-31")] * 5 + [pd.Timestamp("2023-01-31")] * 5,
            "peer_industry_group": "C13",
            "station": "S1",
            "bills_kwh_yoy_change_pct_3m": [1.0] * 5 + [100.0] * 5,
            "bills_kwh_slope_6m_pct": 0.0,
        }
    )
    out = finish_local(rows, rows)
    # December's median ignores January's rows (the future): a leak would put it between 1 and 100.
    assert out.groupby("as_of")["peers_industry_kwh_yoy_change_pct"].first().tolist() == [1.0, 100.0]


def test_a_fall_the_area_loss_absorbs_is_told_from_an_honest_fall():
    months = pd.date_range("2021-01-01", "2022-12-01", freq="MS")
    varying = [100.0 * r for r in np.resize([1.0, 0.4, 0.7, 0.2, 0.9, 0.5], 24)]
    customers = customer_rows(5, area_id=["A0", "A0", "A1", "A1", "A2"])
    bills = pd.concat(
        [
            # A0: C0000 bills 40 instead of 100 from 2022 while the area is still supplied as before.
            monthly_bills("C0000", "2021-01", [100.0] * 12 + [40.0] * 12),
            monthly_bills("C0001", "2021-01", [200.0] * 24),
            # A1: C0002 really uses 60 less from 2022 and the supply falls with it.
            monthly_bills("C0002", "2021-01", [100.0] * 12 + [40.0] * 12),
            monthly_bills("C0003", "2021-01", [200.0] * 24),
            # A2: C0004's meter reports a varying share of a steady use; the loss moves against it.
            monthly_bills("C0004", "2021-01", varying),
        ]
    )
    supply = pd.concat(
        [
            _supply("A0", months, [330.0] * 24),
            _supply("A1", months, [330.0] * 12 + [270.0] * 12),
            _supply("A2", months, [110.0] * 24),
        ],
        ignore_index=True,
    )
    areas = pd.DataFrame(
        {"area_id": ["A0", "A1", "A2"], "station": "S1", "supply_unit": "U1", "transformer_kva": 100.0}
    )
    f = features_at(
        with_defaults(customers=customers, bills=bills, area_supply=supply, areas=areas),
        "2023-01-31",
        area_loss,
    )
    assert f.loc["C0000", "area_loss_rise_vs_own_drop_pct"] == pytest.approx(100.0)
    assert f.loc["C0002", "area_loss_rise_vs_own_drop_pct"] == pytest.approx(0.0, abs=1e-9)
    assert np.isnan(f.loc["C0001", "area_loss_rise_vs_own_drop_pct"])  # its kWh did not fall
    assert f.loc["C0004", "area_loss_corr_own_kwh_12m"] == pytest.approx(-1.0)
    assert np.isnan(f.loc["C0001", "area_loss_corr_own_kwh_12m"])  # flat kWh: no correlation to speak of


def test_row_correlation_matches_numpy_and_needs_enough_months():
    from features import windows as w

    rng = np.random.default_rng(0)
    a, b = rng.normal(size=(3, 12)), rng.normal(size=(3, 12))
    a[1, :7] = np.nan  # five months observed: too few
    got = w.corr(a, b, min_count=6)
    assert got[0] == pytest.approx(np.corrcoef(a[0], b[0])[0, 1])
    assert np.isnan(got[1]) and got[2] == pytest.approx(np.corrcoef(a[2], b[2])[0, 1])
