"""The customer file's month records: what stands of each bill and what was paid against it."""

from __future__ import annotations

import datetime as dt

import pytest

from serving.customer_file import month_records


def bill(period: dt.date, amount_due: float) -> dict:
    return {
        "period": period,
        "kwh": 100.0,
        "amount_due": amount_due,
        "due_date": period + dt.timedelta(days=55),
        "known_at": dt.datetime.combine(period + dt.timedelta(days=35), dt.time(8)),
    }


def test_a_late_fee_settles_no_part_of_the_bill():
    october = dt.date(2023, 10, 1)
    due = bill(october, 5040.32)["due_date"]
    paid_at = dt.datetime.combine(due + dt.timedelta(days=3), dt.time(10))
    # 5,040.32 paid, of which 50 yuan late fee: the bill is 50 yuan short. The page showed it settled
    # (outstanding 0, 3 days late) while the features and labels read 50 yuan outstanding.
    short = {"period": october, "paid_at": paid_at, "amount": 5040.32, "late_fee": 50.0}
    (record,), _ = month_records([bill(october, 5040.32)], [short], october)
    assert record.paid == pytest.approx(4990.32) and record.outstanding == pytest.approx(50.0)
    assert record.days_late is None  # not settled
    whole = {**short, "amount": 5090.32}  # the bill and its fee
    (record,), _ = month_records([bill(october, 5040.32)], [whole], october)
    assert record.outstanding == 0 and record.days_late == 3
    no_fee = {**short, "late_fee": None}  # an export without the optional late_fee column
    (record,), _ = month_records([bill(october, 5040.32)], [no_fee], october)
    assert record.outstanding == 0


def test_a_debt_older_than_the_24_months_is_listed_apart():
    # A bill unpaid for two years drove the amount at stake and the model's reasons, and the file showed it
    # nowhere: its 24 months began after it.
    last = dt.date(2026, 10, 1)
    old_unpaid, old_paid = bill(dt.date(2024, 9, 1), 364805.72), bill(dt.date(2024, 8, 1), 100.0)
    paid = {"period": old_paid["period"], "paid_at": dt.datetime(2024, 10, 20, 9), "amount": 100.0}
    recent = [bill(dt.date(2026, m, 1), 80.0) for m in range(1, 11)]
    months, older = month_records([old_unpaid, old_paid, *recent], [paid], last)
    assert [m.period for m in months] == [b["period"] for b in recent]
    assert [(m.period, m.outstanding) for m in older] == [(dt.date(2024, 9, 1), pytest.approx(364805.72))]
