"""Consumption family on hand-built bills with answers worked out by hand."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from tiny_warehouse import customer_rows, features_at, monthly_bills, with_defaults

from features import consumption
from features.feature_sets import FEATURE_DOCS


@pytest.fixture(scope="module")
def tables() -> dict[str, pd.DataFrame]:
    year1, year2 = [100.0] * 12, [100.0] * 9 + [50.0] * 3
    bills = [
        # C0000: flat 100 kWh, then the last quarter of 2022 halves; 40 % of it in peak hours.
        monthly_bills("C0000", "2021-01", year1 + year2, kwh_peak=np.array(year1 + year2) * 0.4),
        # C0001: a new customer with two bills only (short history: long windows are NaN, not errors).
        monthly_bills("C0001", "2022-11", [80.0, 90.0]),
        # C0002: three zero months at the end.
        monthly_bills("C0002", "2022-01", [100.0] * 9 + [0.0] * 3),
        # C0003: no bill for November 2022 (a gap, not a zero).
        monthly_bills("C0003", "2022-01", [100.0] * 10 + [300.0]).assign(
            period=lambda f: f["period"].where(f["period"] < "2022-11-01", pd.Timestamp("2022-12-01")),
            issue_date=lambda f: f["period"] + pd.DateOffset(months=1) + pd.Timedelta(days=4),
            known_at=lambda f: f["issue_date"] + pd.Timedelta(hours=8),
        ),
        # C0005: kWh rising by 10 every month.
        monthly_bills("C0005", "2022-01", [100.0 + 10 * i for i in range(12)]),
    ]
    # C0004: October's bill re-issued at double kWh, known on 2022-12-10 (after the original).
    c4 = monthly_bills("C0004", "2022-01", [100.0] * 12)
    fix = c4[c4["period"] == "2022-10-01"].assign(
        kwh=200.0, amount_due=100.0, known_at=pd.Timestamp("2022-12-10")
    )
    bills = pd.concat([*bills, c4, fix], ignore_index=True)
    return with_defaults(customers=customer_rows(6), bills=bills)


def test_levels_changes_and_year_on_year(tables):
    f = features_at(tables, "2023-01-31", consumption).loc["C0000"]
    assert f["bills_months_since_last_bill"] == 1  # December's bill, issued 5 January
    assert f["bills_history_months"] == 24
    assert f["bills_kwh_last_1m"] == 50
    assert f["bills_kwh_mean_3m"] == 50
    assert f["bills_kwh_mean_12m"] == pytest.approx(87.5)
    assert f["bills_kwh_yoy_change_pct_3m"] == pytest.approx(-50.0)
    assert f["bills_kwh_change_pct_3m_vs_prev_3m"] == pytest.approx(-50.0)
    # 50 a month for the last 3 against 100 for the 9 before: a slump on the customer's own baseline.
    assert f["bills_kwh_change_pct_3m_vs_prev_9m"] == pytest.approx(-50.0)
    assert f["bills_kwh_yoy_change_pct_12m"] == pytest.approx(-12.5)
    assert f["bills_kwh_drop_6m_yoy_kwh"] == pytest.approx(150.0)
    assert f["bills_peak_share_pct_3m"] == pytest.approx(40.0)
    assert np.isnan(f["bills_valley_share_pct_3m"])  # no valley column exported: NaN, not 0
    # 50 kWh a month on 100 kVA: 50 / (100 × 730 h).
    assert f["bills_utilization_pct_3m"] == pytest.approx(50 / 73_000 * 100)
    assert f["bills_price_yuan_per_kwh_12m"] == pytest.approx(0.5)


def test_windows_follow_the_latest_bill_visible_at_t(tables):
    # On 4 January December's bill is not issued yet: November is the latest bill.
    f = features_at(tables, "2023-01-04", consumption).loc["C0000"]
    assert f["bills_months_since_last_bill"] == 2
    assert f["bills_kwh_mean_3m"] == pytest.approx((100 + 50 + 50) / 3)


def test_short_history_gives_nan_for_long_windows(tables):
    f = features_at(tables, "2023-01-31", consumption).loc["C0001"]
    assert f["bills_kwh_mean_3m"] == pytest.approx(85.0)
    for name in (
        "bills_kwh_mean_12m",
        "bills_kwh_slope_6m_pct",
        "bills_kwh_yoy_change_pct_3m",
        "bills_kwh_cv_12m",
    ):
        assert np.isnan(f[name]), name


def test_zero_months_and_runs(tables):
    f = features_at(tables, "2023-01-31", consumption).loc["C0002"]
    assert f["bills_zero_kwh_months_12m"] == 3
    assert f["bills_zero_kwh_run_months"] == 3
    assert f["bills_near_zero_kwh_months_12m"] == 3
    assert features_at(tables, "2023-01-31", consumption).loc["C0000", "bills_zero_kwh_run_months"] == 0


def test_a_missing_month_is_a_gap_not_a_zero(tables):
    f = features_at(tables, "2023-01-31", consumption).loc["C0003"]
    assert f["bills_kwh_mean_3m"] == pytest.approx((300 + 100) / 2)
    assert f["bills_zero_kwh_months_12m"] == 0


def test_reissued_bill_counts_from_when_it_is_known(tables):
    before = features_at(tables, "2022-11-30", consumption).loc["C0004"]
    after = features_at(tables, "2023-01-31", consumption).loc["C0004"]
    assert before["bills_reissued_count_12m"] == 0
    assert before["bills_kwh_mean_3m"] == pytest.approx(100.0)  # Aug–Oct, October as first issued
    assert after["bills_reissued_count_12m"] == 1
    assert after["bills_kwh_mean_12m"] == pytest.approx((11 * 100 + 200) / 12)


def test_slope_is_percent_of_level_per_month(tables):
    f = features_at(tables, "2023-01-31", consumption).loc["C0005"]
    assert f["bills_kwh_slope_12m_pct"] == pytest.approx(10 / 155 * 100)
    assert f["bills_kwh_slope_3m_pct"] == pytest.approx(10 / 200 * 100)


def test_customers_without_any_bill_get_nan(tables):
    f = features_at(with_defaults(customers=customer_rows(1)), "2023-01-31", consumption).loc["C0000"]
    assert np.isnan(f["bills_kwh_mean_3m"]) and np.isnan(f["bills_months_since_last_bill"])
    assert f["bills_history_months"] == 0


def test_repeated_monthly_figures_are_counted():
    flat = [120.0] * 6 + [95.0, 101.0, 99.0, 120.0, 120.0, 120.0]  # a fixed figure, then real use, then fixed
    bills = pd.concat(
        [
            monthly_bills("C0000", "2022-01", flat),
            monthly_bills("C0001", "2022-01", [100.0 + i for i in range(12)]),  # always moving
            monthly_bills("C0002", "2022-01", [0.0] * 12),  # zeros are zero months, not repeats
            monthly_bills("C0003", "2022-10", [50.0, 50.0]),  # one pair: too little to say
        ]
    )
    f = features_at(with_defaults(customers=customer_rows(4), bills=bills), "2023-01-31", consumption)
    assert f.loc["C0000", "bills_kwh_repeat_months_12m"] == 7  # five pairs in the first run, two in the last
    assert f.loc["C0001", "bills_kwh_repeat_months_12m"] == 0
    assert f.loc["C0002", "bills_kwh_repeat_months_12m"] == 0
    assert np.isnan(f.loc["C0003", "bills_kwh_repeat_months_12m"])


def test_a_customer_read_every_other_month_has_every_month():
    # 双月抄表: one bill per two months holding both months' kWh. Its 3-month and year-on-year windows were
    # NaN and its 3-month mean twice its monthly use; spread over the month each bill covers, it reads as the
    # same use billed monthly does.
    use = [100.0 + 10 * (i // 2) for i in range(24)]  # 2021-01..2022-12, the same in each pair of months
    two_monthly = monthly_bills(
        "C0001",
        "2021-02",
        [use[i] + use[i - 1] for i in range(1, 24, 2)],
        basic_charge=4000.0,  # a two-part customer: its basic charge is billed per bill, as amount_due is
    )
    two_monthly["amount_due"] += 4000.0
    two_monthly["period"] = pd.date_range("2021-02", periods=12, freq="2MS")
    two_monthly["issue_date"] = two_monthly["period"] + pd.DateOffset(months=1) + pd.Timedelta(days=4)
    two_monthly["known_at"] = two_monthly["issue_date"] + pd.Timedelta(hours=8)
    two_monthly["due_date"] = two_monthly["issue_date"] + pd.Timedelta(days=20)
    monthly = monthly_bills("C0000", "2021-01", use, basic_charge=2000.0)
    monthly["amount_due"] += 2000.0
    bills = pd.concat([monthly, two_monthly], ignore_index=True)
    tables = with_defaults(customers=customer_rows(2), bills=bills)
    f = features_at(tables, "2023-01-31", consumption)
    monthly, spread = f.loc["C0000"], f.loc["C0001"]
    assert (
        spread["bills_kwh_mean_3m"] == pytest.approx(monthly["bills_kwh_mean_3m"]) == pytest.approx(620 / 3)
    )
    for name in (
        "bills_kwh_yoy_change_pct_3m",
        "bills_kwh_change_pct_3m_vs_prev_3m",
        "bills_kwh_yoy_change_pct_12m",
        "bills_kwh_mean_12m",
        "bills_kwh_drop_6m_yoy_kwh",
        "bills_price_yuan_per_kwh_12m",
    ):
        assert np.isfinite(spread[name]) and spread[name] == pytest.approx(monthly[name]), name
    # Money stays per bill, so a share compares whole bills (it read 69.5 % against 92.6 % when spread).
    assert spread["bills_basic_charge_share_pct_3m"] == pytest.approx(
        monthly["bills_basic_charge_share_pct_3m"], abs=0.1
    )
    # The last 3 bills' mean is per bill, and so are its words and the outstanding ratio's (they said 月均 and
    # "a month": twice a two-monthly customer's monthly money).
    for name in ("bills_amount_due_mean_3m_yuan", "payments_outstanding_to_bill_ratio"):
        doc = FEATURE_DOCS[name]
        assert "月均" not in doc.zh and "每期" in doc.zh and "month" not in doc.en and "bills" in doc.en, name
    # The two halves of one bill are one reading, not a repeated figure; equal months billed apart are.
    assert spread["bills_kwh_repeat_months_12m"] == 0 and monthly["bills_kwh_repeat_months_12m"] == 6
    # As of 2022-12-31 the Nov–Dec bill is not issued yet: its months stay unseen, the Sep–Oct bill is latest.
    before = features_at(tables, "2022-12-31", consumption).loc["C0001"]
    assert before["bills_months_since_last_bill"] == 2 and before["bills_kwh_last_1m"] == pytest.approx(
        use[21]
    )


def _billed(customer: str, months: list[int], kwh: list[float]) -> pd.DataFrame:
    """Bills of the given months after 2021-01 (0 = January 2021), issued the 5th of the next month."""
    frame = monthly_bills(customer, "2021-01", kwh)
    frame["period"] = [pd.Timestamp("2021-01-01") + pd.DateOffset(months=k) for k in months]
    frame["issue_date"] = frame["period"] + pd.DateOffset(months=1) + pd.Timedelta(days=4)
    frame["known_at"] = frame["issue_date"] + pd.Timedelta(hours=8)
    frame["due_date"] = frame["issue_date"] + pd.Timedelta(days=20)
    return frame


def test_the_cycle_is_read_bill_by_bill():
    # One cycle decided per customer from its latest gaps re-read its whole history when it changed, and a
    # monthly customer whose alternate bills were held for review (visible 0, 2, 4) was halved.
    later = list(range(1, 12, 2)) + list(range(12, 24))  # two-monthly in 2021 (Feb..Dec), monthly in 2022
    held = [12, 14, 16]  # a customer opened in 2022 whose November and others are not visible yet
    bills = pd.concat(
        [
            _billed("C0000", later, [200.0] * 6 + [100.0] * 12),
            _billed("C0001", held, [100.0] * 3),
        ]
    )
    customers = customer_rows(2).assign(open_date=pd.Timestamp("2020-01-01"))
    customers.loc[1, "open_date"] = pd.Timestamp("2022-01-01")
    f = features_at(with_defaults(customers=customers, bills=bills), "2023-01-31", consumption)
    # 2021 stays spread (100 a month) after the switch to monthly bills: a year on year of 0 %, not NaN.
    assert f.loc["C0000", "bills_kwh_yoy_change_pct_12m"] == pytest.approx(0.0)
    assert f.loc["C0000", "bills_kwh_mean_3m"] == pytest.approx(100.0)
    # Two two-month gaps are not a cycle yet: the held customer keeps its bills whole.
    assert f.loc["C0001", "bills_kwh_last_1m"] == 100.0


def test_a_missed_two_monthly_reading_keeps_the_cycle():
    # One missed reading (a four-month gap) broke the run, and the bills after it were read whole (200 a
    # month) for four months.
    months = [1, 3, 5, 7, 9, 11, 13, 15, 19, 21]  # 2021-02 … 2022-10, the 2022-06 reading missed
    kwh = [200.0] * 8 + [400.0, 200.0]  # 100 a month throughout
    alone = _billed("C0000", months, kwh)
    customers = customer_rows(2).assign(open_date=pd.Timestamp("2020-01-01"))
    for as_of in ("2022-08-31", "2022-11-30"):
        f = features_at(with_defaults(customers=customers.iloc[:1], bills=alone), as_of, consumption)
        assert f.loc["C0000", "bills_kwh_mean_3m"] == pytest.approx(100.0), as_of
        assert f.loc["C0000", "bills_kwh_yoy_change_pct_3m"] == pytest.approx(0.0), as_of
    # With a customer billed from an earlier month in the same partition, the levels do not change (only the
    # first bill's copy, before this partition's grid, adds a month of history there).
    shared = pd.concat([alone, monthly_bills("C0001", "2020-06", [50.0] * 30)])
    together = features_at(with_defaults(customers=customers, bills=shared), "2022-11-30", consumption)
    f = features_at(with_defaults(customers=customers.iloc[:1], bills=alone), "2022-11-30", consumption)
    for name in ("bills_kwh_mean_3m", "bills_kwh_mean_12m", "bills_kwh_yoy_change_pct_3m"):
        assert together.loc["C0000", name] == pytest.approx(f.loc["C0000", name]), name


def test_a_customer_read_every_quarter_has_every_month():
    # 季度抄表 (rural and agricultural accounts): one bill per three months. Its bills sat whole in their own
    # month with two empty months between, so its trend and year-on-year features were all NaN, its 3-month
    # mean was three times its use, and its 台区's monthly loss lost two months in three.
    use = [90.0 + 30 * (i // 3) for i in range(24)]  # 2021-01..2022-12, the same within each quarter
    quarters = list(range(2, 24, 3))  # the bill of each quarter is in its last month
    kwh = [sum(use[q - 2 : q + 1]) for q in quarters]
    bills = pd.concat(
        [monthly_bills("C0000", "2021-01", use), _billed("C0001", quarters, kwh)], ignore_index=True
    )
    customers = customer_rows(2).assign(open_date=pd.Timestamp("2020-06-01"))
    f = features_at(with_defaults(customers=customers, bills=bills), "2023-01-31", consumption)
    monthly, spread = f.loc["C0000"], f.loc["C0001"]
    for name in (
        "bills_kwh_mean_3m",
        "bills_kwh_mean_12m",
        "bills_kwh_yoy_change_pct_3m",
        "bills_kwh_yoy_change_pct_12m",
        "bills_kwh_drop_6m_yoy_kwh",
        "bills_history_months",
    ):
        assert np.isfinite(spread[name]) and spread[name] == pytest.approx(monthly[name]), name
    # The three thirds of one bill are one reading, not repeated figures.
    assert spread["bills_kwh_repeat_months_12m"] == 0


def test_a_missed_quarter_keeps_the_cycle_and_two_monthly_runs_stay_two_monthly():
    # Quarterly with the 2022-04 reading missed.
    quarterly = _billed("C0000", [2, 5, 8, 11, 17, 20, 23], [300.0] * 4 + [600.0, 300.0, 300.0])
    # Two-monthly with a six-month gap (two readings missed): a multiple of three, still a two-monthly run.
    two_monthly = _billed("C0001", [1, 3, 5, 7, 13, 15, 17, 19, 21, 23], [200.0] * 4 + [600.0] + [200.0] * 5)
    customers = customer_rows(2).assign(open_date=pd.Timestamp("2020-06-01"))
    tables = with_defaults(customers=customers, bills=pd.concat([quarterly, two_monthly]))
    f = features_at(tables, "2023-01-31", consumption)
    for customer in ("C0000", "C0001"):
        assert f.loc[customer, "bills_kwh_mean_12m"] == pytest.approx(100.0), customer
        assert f.loc[customer, "bills_kwh_yoy_change_pct_12m"] == pytest.approx(0.0), customer


def test_a_first_quarterly_bill_covers_only_the_months_the_account_was_open():
    # Opened in 2021-02, billed for Feb–Mar in 2021-03, then every quarter: the first bill is two months.
    # A customer billed since 2020 starts the grid earlier, so a copy into 2021-01 would be kept if made.
    bills = pd.concat(
        [
            _billed("C0000", [2, 5, 8, 11, 14], [200.0, 300.0, 300.0, 300.0, 300.0]),
            monthly_bills("C0001", "2020-06", [50.0] * 22),
        ]
    )
    customers = customer_rows(2).assign(open_date=pd.Timestamp("2020-06-01"))
    customers.loc[0, "open_date"] = pd.Timestamp("2021-02-10")
    f = features_at(with_defaults(customers=customers, bills=bills), "2022-04-30", consumption)
    assert f.loc["C0000", "bills_history_months"] == 14  # 2021-02..2022-03, not from 2021-01
    assert f.loc["C0000", "bills_kwh_mean_12m"] == pytest.approx(100.0)
    assert f.loc["C0000", "bills_kwh_cv_12m"] == pytest.approx(0.0, abs=1e-9)  # every month 100
