"""Payments family: days late, partial payments, the open balance and its age, fees and channels, by hand."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from tiny_warehouse import customer_rows, features_at, monthly_bills, with_defaults

from features import payments

AS_OF = (
    "2023-01-31"  # bills of Jan–Dec 2022 are due (the 25th of the month after next), the last on 2023-01-25
)


def _pay(customer: str, period: str, paid_at: str, amount: float, channel: str = "online", fee: float = 0.0):
    return {
        "customer_id": customer,
        "period": pd.Timestamp(period),
        "paid_at": pd.Timestamp(paid_at),
        "amount": amount + fee,
        "late_fee": fee,
        "channel": channel,
    }


@pytest.fixture(scope="module")
def tables() -> dict[str, pd.DataFrame]:
    bills = pd.concat([monthly_bills(c, "2022-01", [200.0] * 12) for c in ("C0000", "C0001", "C0002")])
    due = bills.set_index(["customer_id", "period"])["due_date"]
    rows = []
    for period in pd.date_range("2022-01-01", "2022-12-01", freq="MS"):
        #  C0000 pays every bill on its due date, except September's: 10 days late at the counter with a 2
        # 元 fee.
        if period == pd.Timestamp("2022-09-01"):
            rows.append(_pay("C0000", period, "2022-11-04 10:00", 100.0, channel="counter", fee=2.0))
        else:
            rows.append(_pay("C0000", period, str(due["C0000", period].date()) + " 09:00", 100.0))
        # C0001 pays on time until September ...
        if period <= pd.Timestamp("2022-09-01"):
            rows.append(_pay("C0001", period, str(due["C0001", period].date()) + " 09:00", 100.0))
    #  ... October in two parts (60 before the due date 2022-11-25, 40 on 2022-12-10: 15 days late), then
    # nothing.
    rows.append(_pay("C0001", "2022-10-01", "2022-11-20 09:00", 60.0))
    rows.append(_pay("C0001", "2022-10-01", "2022-12-10 09:00", 40.0))
    # A payment after the as-of date: invisible at T.
    rows.append(_pay("C0001", "2022-11-01", "2023-02-01 00:00", 100.0))
    pays = pd.DataFrame(rows)
    pays.insert(0, "payment_id", [f"P{i}" for i in range(len(pays))])
    # C0002 never pays; C0003 has no bills at all.
    return with_defaults(customers=customer_rows(4), bills=bills, payments=pays)


@pytest.fixture(scope="module")
def f(tables) -> pd.DataFrame:
    return features_at(tables, AS_OF, payments)


def test_a_good_payer_with_one_late_bill(f):
    c = f.loc["C0000"]
    assert c["payments_days_late_max_365d"] == 10
    assert c["payments_days_late_mean_365d"] == pytest.approx(10 / 12)
    assert c["payments_late_count_365d"] == 1
    assert c["payments_late_count_180d"] == 1  # September's bill was due 2022-10-25, within 180 days of T
    assert c["payments_days_late_last"] == 0
    assert c["payments_outstanding_yuan"] == 0 and c["payments_outstanding_age_days"] == 0
    assert c["payments_late_fee_sum_365d_yuan"] == 2.0
    assert c["payments_channel_changes_365d"] == 2  # online → counter → online
    assert c["payments_paid_ratio_365d"] == pytest.approx(1.0)


def test_partial_then_open_bills(f):
    c = f.loc["C0001"]
    #  October settled 15 days late in two payments; November (due 2022-12-25) and December (due 2023-01-25)
    # open.
    assert c["payments_partial_count_365d"] == 1
    assert c["payments_unpaid_count_365d"] == 2
    assert c["payments_outstanding_yuan"] == pytest.approx(200.0)
    assert c["payments_outstanding_age_days"] == 37  # 2022-12-25 → 2023-01-31
    assert c["payments_days_late_last"] == 6  # December's bill, overdue since 2023-01-25
    assert c["payments_days_late_max_365d"] == 37
    assert c["payments_outstanding_to_bill_ratio"] == pytest.approx(2.0)
    assert c["payments_paid_ratio_365d"] == pytest.approx(1000 / 1200)


def test_never_paid_and_no_bills(f):
    c = f.loc["C0002"]
    assert c["payments_outstanding_yuan"] == pytest.approx(1200.0)
    assert c["payments_late_count_365d"] == 12
    assert c["payments_count_365d"] == 0
    assert c["payments_paid_ratio_365d"] == 0
    none = f.loc["C0003"]
    assert np.isnan(none["payments_days_late_mean_365d"]) and np.isnan(none["payments_outstanding_yuan"])
    assert none["payments_count_365d"] == 0


def test_a_bill_due_today_is_not_late_yet(tables):
    #  As of the due date of C0001's December bill it is due but 0 days late; the November bill is 31 days
    # late.
    c = features_at(tables, "2023-01-25", payments).loc["C0001"]
    assert c["payments_days_late_last"] == 0
    assert c["payments_days_late_max_365d"] == 31


def test_days_before_due_keep_the_sign_that_days_late_clip(f):
    # C0000 pays on the due date (0 days before it) except September's bill, 10 days late.
    assert f.loc["C0000", "payments_days_before_due_mean_365d"] == pytest.approx(-10 / 12)
    c = f.loc["C0001"]
    #  Due within 90 days of T: October's (settled 15 days late), November's (open 37 days) and December's
    # (open 6 days); the nine bills before were paid on their due dates.
    assert c["payments_days_before_due_mean_90d"] == pytest.approx(-(15 + 37 + 6) / 3)
    assert c["payments_days_before_due_mean_365d"] == pytest.approx(-(15 + 37 + 6) / 12)
    assert c["payments_days_before_due_change_90d_vs_365d"] == pytest.approx(
        -(15 + 37 + 6) * (1 / 3 - 1 / 12)
    )
    assert np.isnan(f.loc["C0003", "payments_days_before_due_mean_365d"])
    # The same in shares of the 20-day payment window (issue on the 5th, due on the 25th), and over two years
    # (this history has one).
    assert c["payments_window_left_share_365d"] == pytest.approx(-(15 + 37 + 6) / 20 / 12)
    assert c["payments_window_left_share_730d"] == c["payments_window_left_share_365d"]
    assert c["payments_days_before_due_mean_730d"] == c["payments_days_before_due_mean_365d"]
    assert c["payments_late_count_730d"] == c["payments_late_count_365d"] == 3


def test_paying_early_counts_as_days_before_due():
    bills = monthly_bills("C0000", "2022-01", [200.0] * 12)
    rows = [
        _pay("C0000", p, str((d - pd.Timedelta(days=5)).date()) + " 09:00", 100.0)
        for p, d in zip(bills["period"], bills["due_date"], strict=True)
    ]
    pays = pd.DataFrame(rows)
    pays.insert(0, "payment_id", [f"P{i}" for i in range(len(pays))])
    c = features_at(with_defaults(customers=customer_rows(1), bills=bills, payments=pays), AS_OF, payments)
    assert c.loc["C0000", "payments_days_before_due_mean_365d"] == pytest.approx(5.0)
    assert c.loc["C0000", "payments_window_left_share_365d"] == pytest.approx(5 / 20)
    assert c.loc["C0000", "payments_days_late_mean_365d"] == 0


def test_two_year_windows_reach_back_two_years():
    bills = monthly_bills("C0000", "2021-01", [200.0] * 24)
    late_2021 = bills["period"] < "2022-01-01"
    rows = [
        _pay("C0000", p, str((d + pd.Timedelta(days=10 if old else 0)).date()) + " 09:00", 100.0)
        for p, d, old in zip(bills["period"], bills["due_date"], late_2021, strict=True)
    ]
    pays = pd.DataFrame(rows)
    pays.insert(0, "payment_id", [f"P{i}" for i in range(len(pays))])
    c = features_at(with_defaults(customers=customer_rows(1), bills=bills, payments=pays), AS_OF, payments)
    # Every 2021 bill was paid 10 days late, every 2022 bill on its due date.
    assert c.loc["C0000", "payments_late_count_365d"] == 0
    assert c.loc["C0000", "payments_late_count_730d"] == 12
    assert c.loc["C0000", "payments_days_before_due_mean_730d"] == pytest.approx(-10 * 12 / 24)
    assert c.loc["C0000", "payments_window_left_share_730d"] == pytest.approx(-0.5 * 12 / 24)


def test_a_bill_unpaid_for_longer_than_the_month_grid_is_still_owed():
    # The grid reads the 60 months up to T: a 2017 bill left unpaid dropped out of the outstanding amount,
    # its age and the amount at stake, as if it had been paid (a reviewer).
    old = monthly_bills("C0000", "2017-01", [200.0] * 3)  # 100 元 each, due the 25th of the month after next
    recent = monthly_bills("C0000", "2022-01", [200.0] * 12)
    due = pd.concat([old, recent]).set_index("period")["due_date"]
    rows = [_pay("C0000", p, str(due[p].date()) + " 09:00", 100.0) for p in recent["period"]]
    rows += [_pay("C0000", "2017-01-01", str(due[pd.Timestamp("2017-01-01")].date()), 100.0)]
    rows += [_pay("C0000", "2017-02-01", "2017-03-20 09:00", 30.0)]  # 70 of February's bill never paid
    rows += [_pay("C0000", "2017-03-01", "2017-04-25 09:00", 100.0)]
    pays = pd.DataFrame(rows)
    pays.insert(0, "payment_id", [f"P{i}" for i in range(len(pays))])
    tables = with_defaults(customers=customer_rows(1), bills=pd.concat([old, recent]), payments=pays)
    c = features_at(tables, AS_OF, payments).loc["C0000"]
    assert c["payments_outstanding_yuan"] == pytest.approx(70.0)
    age = (pd.Timestamp(AS_OF) - due[pd.Timestamp("2017-02-01")]).days
    assert c["payments_outstanding_age_days"] == age > 5 * 365
    assert c["payments_outstanding_to_bill_ratio"] == pytest.approx(70.0 / 100.0)
