"""Events family (suspensions, reductions, inspections) and the archive family, on a few hand-written rows."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from tiny_warehouse import customer_rows, features_at, with_defaults

from features import archive, events

AS_OF = "2022-12-31"


def _app(i, customer, applied, start, end, kva, kind):
    return {
        "application_id": f"S{i}",
        "customer_id": customer,
        "applied_at": pd.Timestamp(applied),
        "start_date": pd.Timestamp(start),
        "end_date": pd.Timestamp(end) if end else pd.NaT,
        "capacity_kva": kva,
        "kind": kind,
    }


@pytest.fixture(scope="module")
def tables() -> dict[str, pd.DataFrame]:
    apps = [
        _app(1, "C0000", "2022-09-01 10:00", "2022-09-10", "2023-03-10", 1000.0, "suspension"),  # covers T
        _app(
            2, "C0001", "2022-03-01 10:00", "2022-03-10", "2022-09-10", 500.0, "suspension"
        ),  # ... restored early:
        _app(3, "C0001", "2022-06-01 10:00", "2022-06-05", None, 500.0, "suspension_restore"),
        _app(
            4, "C0002", "2022-05-01 10:00", "2022-05-10", None, 400.0, "reduction"
        ),  # 40 % reduced, open-ended
        _app(5, "C0003", "2022-12-20 10:00", "2023-01-10", "2023-02-10", 1000.0, "suspension"),  # scheduled
        _app(
            6, "C0004", "2022-01-03 10:00", "2022-01-10", "2022-03-10", 1000.0, "suspension"
        ),  # over before T
        _app(
            7, "C0004", "2023-01-02 10:00", "2023-01-10", "2023-03-10", 1000.0, "suspension"
        ),  # after T: unseen
    ]
    inspections = pd.DataFrame(
        {
            "inspection_id": ["I1", "I2", "I3"],
            "customer_id": ["C0005", "C0005", "C0006"],
            "inspected_at": pd.to_datetime(["2020-12-01 10:00", "2022-06-01 10:00", "2023-01-01 00:00"]),
            "result": ["theft", "violation", "theft"],  # C0006's finding is one instant after T
            "recovered_kwh": [5000.0, 300.0, 900.0],
        }
    )
    customers = customer_rows(
        7,
        tariff="two_part",
        contract_capacity_kva=1000.0,
        usage_category="large_industrial",
        industry_code="C13",
    )
    customers.loc[6, "group_id"] = "G1"
    customers.loc[6, "open_date"] = pd.Timestamp("2022-12-01")
    return with_defaults(customers=customers, suspensions=pd.DataFrame(apps), inspections=inspections)


@pytest.fixture(scope="module")
def f(tables) -> pd.DataFrame:
    return features_at(tables, AS_OF, events)


def test_suspension_in_force_at_t(f):
    c = f.loc["C0000"]
    assert c["is_suspended_at_as_of"] == 1
    assert c["events_suspension_count_365d"] == 1
    assert c["events_suspended_days_365d"] == 113  # 2022-09-10 … 2022-12-31
    assert c["events_days_since_last_change"] == 121  # applied 2022-09-01


def test_restored_and_finished_suspensions_are_not_in_force(f):
    assert f.loc["C0001", "is_suspended_at_as_of"] == 0
    # Restored on 2022-06-05: suspended 2022-03-10 … 2022-06-04, not to its planned end (185 days before).
    assert f.loc["C0001", "events_suspended_days_365d"] == 87
    assert f.loc["C0001", "events_restore_count_365d"] == 1
    assert f.loc["C0004", "is_suspended_at_as_of"] == 0
    # C0004's application of 2023-01-02 is after T: one suspension in 365 days, not two.
    assert f.loc["C0004", "events_suspension_count_365d"] == 1


def test_changes_in_the_same_season_last_year(f):
    # Applications 185-365 days before T (2022-01-01 … 2022-06-29) count, of either kind, restores not.
    assert f.loc["C0004", "events_changes_same_season_last_year"] == 1  # 2022-01-03: 362 days before T
    assert f.loc["C0001", "events_changes_same_season_last_year"] == 1  # 2022-03-01 counts, restore not
    assert f.loc["C0002", "events_changes_same_season_last_year"] == 1  # a reduction counts too
    assert f.loc["C0000", "events_changes_same_season_last_year"] == 0  # 121 days before T: this season
    # Days suspended in that window (2022-01-01 … 2022-06-29): C0004's 2022-01-10 … 2022-03-10 spell, all of
    # it; C0000's current suspension lies in this half-year, not last year's copy of the coming one.
    assert f.loc["C0004", "events_suspended_days_same_season_last_year"] == 60
    assert f.loc["C0000", "events_suspended_days_same_season_last_year"] == 0


def test_reduction_and_scheduled_change(f):
    assert f.loc["C0002", "events_reduced_capacity_pct"] == pytest.approx(40.0)
    assert f.loc["C0002", "events_reduction_count_730d"] == 1
    assert f.loc["C0003", "has_scheduled_change"] == 1
    assert f.loc["C0003", "is_suspended_at_as_of"] == 0
    assert f.loc["C0000", "has_scheduled_change"] == 0


def test_inspections_and_findings(f):
    c = f.loc["C0005"]
    assert c["has_theft_finding"] == 1  # 2020's finding is older than 730 days but still a finding
    assert c["events_inspection_count_730d"] == 1
    assert c["events_violation_count_730d"] == 1
    assert c["events_days_since_last_inspection"] == 213
    assert c["events_recovered_kwh_730d"] == 300
    assert f.loc["C0006", "has_theft_finding"] == 0  # found at 00:00 on the day after T
    assert np.isnan(f.loc["C0006", "events_days_since_last_inspection"])


def test_archive_features(tables):
    a = features_at(tables, AS_OF, archive)
    assert a.loc["C0000", "archive_industry_section"] == "C"
    assert a.loc["C0000", "archive_tariff"] == "two_part"
    assert a.loc["C0006", "is_group_member"] == 1 and a.loc["C0000", "is_group_member"] == 0
    assert a.loc["C0006", "archive_tenure_days"] == 30
    assert a.loc["C0000", "archive_capacity_kva"] == 1000.0
    # A customer opened after T has no tenure yet.
    assert np.isnan(features_at(tables, "2022-11-30", archive).loc["C0006", "archive_tenure_days"])


def test_an_amended_application_counts_each_suspended_day_once():
    # A second application inside the first's spell (an amendment) was added on top of it: 259 days in a
    # 180-day window.
    apps = [
        _app(1, "C0000", "2021-02-20 10:00", "2021-03-01", "2021-06-30", 500.0, "suspension"),
        _app(2, "C0000", "2021-03-06 10:00", "2021-03-16", "2021-08-31", 500.0, "suspension"),
    ]
    customers = customer_rows(1, tariff="two_part", contract_capacity_kva=500.0)
    tables = with_defaults(customers=customers, suspensions=pd.DataFrame(apps))
    c = features_at(tables, "2022-01-31", events).loc["C0000"]
    # Last year's copy of the label window is 2021-02-01 … 2021-07-30: suspended 2021-03-01 … 2021-07-30.
    assert c["events_suspended_days_same_season_last_year"] == 152
    assert c["events_suspended_days_365d"] == 184  # 2021-03-01 … 2021-08-31, once
