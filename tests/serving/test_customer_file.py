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
    (record,) = month_records([bill(october, 5040.32)], [short], october)
    assert record.paid == pytest.approx(4990.32) and record.outstanding == pytest.approx(50.0)
    assert record.days_late is None  # not settled
    whole = {**short, "amount": 5090.32}  # the bill and its fee
    (record,) = month_records([bill(october, 5040.32)], [whole], october)
    assert record.outstanding == 0 and record.days_late == 3
    no_fee = {**short, "late_fee": None}  # an export without the optional late_fee column
    (record,) = month_records([bill(october, 5040.32)], [no_fee], october)
    assert record.outstanding == 0
