"""The one as-of rule: inclusive end-of-day cutoff, known_at, latest version per key, the prepared view."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from features.point_in_time import AsOfView, PointInTimeError, as_of_days, as_of_filter, cutoff


def test_cutoff_is_the_end_of_the_as_of_day():
    assert cutoff("2023-06-30") == pd.Timestamp("2023-06-30 23:59:59.999999")
    # A time of day on the as-of is ignored: as-of dates are calendar days.
    assert cutoff(pd.Timestamp("2023-06-30 14:00")) == cutoff("2023-06-30")
    with pytest.raises(PointInTimeError, match="not a date"):
        cutoff("thirtieth of June")
    # An as-of written with an offset is the day as written; it was that instant's UTC day, a day off.
    assert cutoff("2023-06-30T20:00:00-05:00") == cutoff("2023-06-30")
    assert cutoff("2023-07-01T00:30:00+08:00") == cutoff("2023-07-01")


def test_a_time_column_with_a_zone_is_refused_not_read_as_utc_wall_clock():
    # Converted to UTC, Beijing 2023-07-01 07:00 read as 2023-06-30 23:00 and counted as of 2023-06-30.
    frame = _payments().assign(paid_at=lambda f: f["paid_at"].dt.tz_localize("Asia/Shanghai"))
    with pytest.raises(PointInTimeError, match="'paid_at' carries the time zone Asia/Shanghai"):
        as_of_filter(frame, "payments", "2023-06-30")


def _payments() -> pd.DataFrame:
    return pd.DataFrame(
        {
            "payment_id": ["p1", "p2", "p3", "p4"],
            "customer_id": ["c1"] * 4,
            "period": pd.to_datetime(["2023-05-01"] * 4),
            "paid_at": pd.to_datetime(
                [
                    "2023-06-29 08:00:00",  # before the as-of day: counts
                    "2023-06-30 23:59:59",  # on the as-of day, last second: counts (inclusive bound)
                    "2023-07-01 00:00:00",  # one second after the cutoff's last second: does not count
                    None,  # no event time: never counts
                ]
            ),
            "amount": [1.0, 2.0, 3.0, 4.0],
            "channel": ["online"] * 4,
        }
    )


def test_rows_at_the_cutoff_count_and_one_second_later_do_not():
    kept = as_of_filter(_payments(), "payments", "2023-06-30")
    assert kept["payment_id"].tolist() == ["p1", "p2"]
    assert as_of_filter(_payments(), "payments", "2023-07-01")["payment_id"].tolist() == ["p1", "p2", "p3"]


def test_an_unversioned_row_counts_from_its_known_at_when_it_has_one():
    # A bank's debit file posts on 2 July a payment made on 30 June: a score run on 30 June did not have it.
    posted = _payments().assign(
        known_at=pd.to_datetime(["2023-06-29 09:00", "2023-07-02 06:00", "2023-07-01 00:00", None])
    )
    assert as_of_filter(posted, "payments", "2023-06-30")["payment_id"].tolist() == ["p1"]
    assert as_of_filter(posted, "payments", "2023-07-01")["payment_id"].tolist() == ["p1", "p3"]
    assert as_of_filter(posted, "payments", "2023-07-02")["payment_id"].tolist() == ["p1", "p2", "p3"]
    # An empty known_at says nothing: the row counts from its event time, as without the column.
    blank = _payments().assign(known_at=pd.NaT)
    for day in ("2023-06-30", "2023-07-01"):
        ids = as_of_filter(blank, "payments", day)["payment_id"].tolist()
        assert ids == as_of_filter(_payments(), "payments", day)["payment_id"].tolist()
    # Unversioned: two payments posted at the same moment are two payments, not versions of one.
    same = posted.assign(known_at=pd.Timestamp("2023-07-03"))
    assert len(as_of_filter(same, "payments", "2023-07-03")) == 3


def _bills() -> pd.DataFrame:
    return pd.DataFrame(
        {
            "customer_id": ["c1", "c1", "c1", "c2", "c2"],
            "period": pd.to_datetime(["2023-05-01"] * 3 + ["2023-05-01", "2023-06-01"]),
            "kwh": [100.0, 150.0, 120.0, 10.0, 20.0],
            "amount_due": [60.0, 90.0, 72.0, 6.0, 12.0],
            "issue_date": pd.to_datetime(["2023-06-05"] * 3 + ["2023-06-05", "2023-07-05"]),
            "due_date": pd.to_datetime(["2023-06-25"] * 4 + ["2023-07-25"]),
            "known_at": pd.to_datetime(
                [
                    "2023-06-05 08:00",  # original bill
                    "2023-07-10 09:00",  # re-issued after T: invisible at T
                    "2023-06-20 10:00",  # corrected before T: the version T sees
                    "2023-06-05 08:00",
                    "2023-07-05 08:00",  # c2's June bill is issued after T
                ]
            ),
        }
    )


def test_versioned_tables_keep_the_latest_version_known_at_the_cutoff():
    at_t = as_of_filter(_bills(), "bills", "2023-06-30").sort_values(["customer_id", "period"])
    assert at_t["kwh"].tolist() == [120.0, 10.0]
    later = as_of_filter(_bills(), "bills", "2023-07-31").sort_values(["customer_id", "period"])
    assert later["kwh"].tolist() == [150.0, 10.0, 20.0]
    before_any = as_of_filter(_bills(), "bills", "2023-06-04")
    assert before_any.empty


def test_known_at_after_the_cutoff_hides_a_row_whose_event_time_is_before():
    bills = _bills().iloc[[0]].assign(known_at=pd.Timestamp("2023-07-01 00:00:00"))
    assert as_of_filter(bills, "bills", "2023-06-30").empty
    assert len(as_of_filter(bills, "bills", "2023-07-01")) == 1


def test_view_gives_the_same_rows_as_the_filter_for_every_date():
    bills = _bills()
    view = AsOfView(bills, "bills")
    for day in pd.date_range("2023-06-01", "2023-08-01", freq="D"):
        expected = as_of_filter(bills, "bills", day).sort_values(["customer_id", "period", "known_at"])
        got = view.at(day).sort_values(["customer_id", "period", "known_at"])
        pd.testing.assert_frame_equal(got.reset_index(drop=True), expected.reset_index(drop=True))
    # c1's May bill has two versions known at the end of June, three a month later.
    assert view.version_counts("2023-06-30").tolist() == [2, 1]
    assert view.version_counts("2023-07-31").tolist() == [3, 1, 1]


def test_tables_without_an_event_time_cannot_be_read_as_of_a_date():
    with pytest.raises(PointInTimeError, match="no event time"):
        as_of_filter(pd.DataFrame({"area_id": ["a"]}), "areas", "2023-06-30")


def test_spark_style_inputs_python_dates_and_object_columns_work():
    frame = _payments().assign(paid_at=lambda f: f["paid_at"].astype(object))
    assert as_of_filter(frame, "payments", "2023-06-30")["payment_id"].tolist() == ["p1", "p2"]
    readings = pd.DataFrame(
        {
            "customer_id": ["c"] * 2,
            "date": [pd.Timestamp("2023-06-30").date(), pd.Timestamp("2023-07-01").date()],
        }
    )
    readings["kwh"] = np.ones(2)
    assert len(as_of_filter(readings, "readings", "2023-06-30")) == 1


def test_as_of_days_sorts_and_deduplicates():
    assert as_of_days(["2023-06-30", "2023-01-31", pd.Timestamp("2023-06-30 12:00")]) == [
        pd.Timestamp("2023-01-31"),
        pd.Timestamp("2023-06-30"),
    ]
    with pytest.raises(PointInTimeError):
        as_of_days([])
