"""Labels exactly as DESIGN.md defines them: populations, windows, data end, amounts at stake."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from tiny_warehouse import customer_rows, make_tables, monthly_bills, with_defaults, write

from features import labels
from features.engines.partition import PartitionJob, compute_partition

AS_OF = "2023-01-31"


def _labelled(tables: dict[str, pd.DataFrame], task: str, as_of: str = AS_OF) -> pd.DataFrame:
    out = compute_partition(tables, PartitionJob.make(task, [as_of]))
    return out.set_index("customer_id")


def test_horizons_and_observation_windows():
    assert labels.HORIZON_DAYS == {"arrears": 90, "suspension": 180, "theft": 180}
    assert labels.label_observable_until("arrears") == pd.Timedelta(days=120)
    assert labels.label_observable_until("theft") == pd.Timedelta(days=180)
    with pytest.raises(labels.LabelError, match="unknown"):
        labels.label_observable_until("churn")


def test_arrears_label_grace_tolerance_and_latest_version():
    # One January bill each (100 元, due 2023-02-25, inside (T, T + 90 d]); paid how and when is the point.
    bills = pd.concat([monthly_bills(f"C000{i}", "2023-01", [200.0]) for i in range(7)], ignore_index=True)
    # C0005's bill is re-issued at 50 元 before anything is paid: the latest version is what must be paid.
    fix = bills[bills["customer_id"] == "C0005"].assign(amount_due=50.0, known_at=pd.Timestamp("2023-02-10"))
    bills = pd.concat([bills, fix], ignore_index=True)
    pays = pd.DataFrame(
        {
            "payment_id": [f"P{i}" for i in range(6)],
            "customer_id": ["C0000", "C0001", "C0002", "C0003", "C0005", "C0006"],
            "period": pd.Timestamp("2023-01-01"),
            "paid_at": pd.to_datetime(
                [
                    "2023-03-27 23:00",  # C0000: on the 30th day after the due date: counts (label 0)
                    "2023-03-28 00:00",  # C0001: the 31st day: too late (label 1)
                    "2023-02-20 10:00",  # C0002: 99.50 of 100: within the 1 元 tolerance (label 0)
                    "2023-02-20 10:00",  # C0003: 98 of 100: short by 2 元 (label 1)
                    "2023-02-20 10:00",  # C0005: pays the re-issued 50 元 (label 0)
                    "2023-01-20 10:00",  # C0006: paid before T, ahead of the due date (label 0)
                ]
            ),
            "amount": [100.0 + 5.0, 100.0, 99.5, 98.0, 50.0, 100.0],
            "late_fee": [5.0, 0.0, 0.0, 0.0, 0.0, 0.0],  # a late fee is not principal
            "channel": "online",
        }
    )
    # C0004 pays nothing but is prepaid: not in the arrears population.
    customers = customer_rows(7)
    customers.loc[4, "payment_method"] = "prepaid"
    out = _labelled(with_defaults(customers=customers, bills=bills, payments=pays), "arrears")
    pop = out[out["in_population"]]
    assert pop["label"].to_dict() == {"C0000": 0, "C0001": 1, "C0002": 0, "C0003": 1, "C0005": 0, "C0006": 0}
    assert not out.loc["C0004", "in_population"]


def _apps(rows: list[tuple[str, str, str]]) -> pd.DataFrame:
    return pd.DataFrame(
        {
            "application_id": [f"S{i}" for i in range(len(rows))],
            "customer_id": [r[0] for r in rows],
            "applied_at": pd.to_datetime([r[1] for r in rows]),
            "start_date": pd.to_datetime([r[1][:10] for r in rows]) + pd.Timedelta(days=10),
            "end_date": pd.to_datetime([r[1][:10] for r in rows]) + pd.Timedelta(days=70),
            "capacity_kva": 400.0,
            "kind": [r[2] for r in rows],
        }
    )


def test_suspension_label_window_kinds_and_population():
    apps = _apps(
        [
            ("C0000", "2023-07-30 23:00", "suspension"),  # T + 180 days: the window's last day (1)
            ("C0001", "2023-07-31 00:00", "suspension"),  # T + 181 days: after the window (0)
            ("C0002", "2023-03-01 10:00", "reduction"),  # a capacity reduction counts too (1)
            ("C0003", "2023-03-01 10:00", "suspension_restore"),  # a restoration does not (0)
            ("C0004", "2023-01-31 23:00", "suspension"),  # on T itself: before the window (0)
            ("C0005", "2022-12-01 10:00", "suspension"),  # suspended at T: not in the population
        ]
    )
    customers = customer_rows(8, tariff="two_part", contract_capacity_kva=630.0)
    customers.loc[6, "contract_capacity_kva"] = 250.0  # below the two-part threshold
    customers.loc[7, "tariff"] = "single"
    out = _labelled(with_defaults(customers=customers, suspensions=apps), "suspension")
    pop = out[out["in_population"]]
    assert pop["label"].to_dict() == {"C0000": 1, "C0001": 0, "C0002": 1, "C0003": 0, "C0004": 0}
    assert not out.loc[["C0005", "C0006", "C0007"], "in_population"].any()
    # Basic charge at stake: 630 kVA × 20 元 × 180/30.44 months.
    assert pop.loc["C0000", "amount_at_stake"] == pytest.approx(630 * 20 * 180 / 30.4375)


def test_theft_label_and_population():
    insp = pd.DataFrame(
        {
            "inspection_id": ["I0", "I1", "I2", "I3"],
            "customer_id": ["C0000", "C0001", "C0002", "C0003"],
            "inspected_at": pd.to_datetime(
                [
                    "2023-02-01 00:00",  # C0000: theft found the first instant after T (1)
                    "2023-03-01 10:00",  # C0001: a violation is not theft (0)
                    "2023-01-31 12:00",  # C0002: theft found on T: out of the population
                    "2023-07-31 00:00",  # C0003: theft on T + 181 days: too late (0)
                ]
            ),
            "result": ["theft", "violation", "theft", "theft"],
            "recovered_kwh": 0.0,
        }
    )
    out = _labelled(with_defaults(customers=customer_rows(4), inspections=insp), "theft")
    pop = out[out["in_population"]]
    assert pop["label"].to_dict() == {"C0000": 1, "C0001": 0, "C0003": 0}
    assert not out.loc["C0002", "in_population"]


def test_theft_amount_is_lost_kwh_times_own_price():
    # 100 kWh a month in 2022, 40 a month in the first half of 2023 at 0.5 元/kWh: 360 kWh × 0.5 元 missing.
    bills = monthly_bills("C0000", "2022-01", [100.0] * 12 + [40.0] * 6)
    out = _labelled(with_defaults(customers=customer_rows(1), bills=bills), "theft", "2023-07-31")
    assert out.loc["C0000", "amount_at_stake"] == pytest.approx(360 * 0.5)


def test_data_end_and_latest_labelable_as_of(tmp_path: Path):
    wh = write(make_tables(), tmp_path / "wh")
    end = labels.data_end(wh)
    tables = make_tables()
    # The latest instant of any event time or known_at, as a calendar day.
    latest = max(
        tables["payments"]["paid_at"].max(),
        tables["bills"]["known_at"].max(),
        tables["readings"]["date"].max(),
        tables["inspections"]["inspected_at"].max(),
    )
    assert end == latest.normalize()
    assert labels.latest_labelable_as_of(wh, "arrears") == end - pd.Timedelta(days=120)
    assert labels.latest_labelable_as_of(wh, "theft") == end - pd.Timedelta(days=180)
    late = labels.unlabelable([end - pd.Timedelta(days=179), end - pd.Timedelta(days=180)], end, "theft")
    assert late == [end - pd.Timedelta(days=179)]


def test_data_end_is_not_moved_by_an_archive_date(tmp_path: Path):
    tables = make_tables()
    end = labels.data_end(write(tables, tmp_path / "wh"))
    # A customer row opening in 2204 (one that got past ingest's future rule, say written by hand) is an
    # attribute of the archive, not an observation: labels and scoring must not move to 2204 because of it.
    tables["customers"].loc[0, "open_date"] = pd.Timestamp("2204-03-01")
    assert labels.data_end(write(tables, tmp_path / "wh2")) == end


def test_amounts_for_arrears_add_the_open_balance_and_next_bill():
    f = {
        "payments_outstanding_yuan": np.array([300.0, np.nan]),
        "bills_amount_due_mean_3m_yuan": np.array([100.0, 50.0]),
    }
    np.testing.assert_allclose(labels.amount_at_stake("arrears", f), [400.0, 50.0])


def test_a_credit_puts_nothing_at_stake():
    # A new customer whose only bill was credited (a re-issue with a negative amount_due) showed −82,993 元
    # at stake, and a negative expected loss below every customer who owes nothing.
    f = {
        "payments_outstanding_yuan": np.array([-82_993.0, -500.0, 1_000.0]),
        "bills_amount_due_mean_3m_yuan": np.array([-82_993.0, 300.0, -400.0]),
    }
    np.testing.assert_allclose(labels.amount_at_stake("arrears", f), [0.0, 0.0, 600.0])


@pytest.mark.parametrize("statistics", [True, False])
def test_column_extremes_come_from_the_footer_or_the_column_alike(tmp_path: Path, statistics: bool):
    import pyarrow as pa
    import pyarrow.parquet as pq

    days = pd.to_datetime(["2023-03-05 00:00", "2021-07-01 00:00", "2024-01-10 08:00", None])
    path = tmp_path / "t.parquet"
    # Two row groups, so the extremes must be combined across them.
    pq.write_table(pa.table({"t": days}), path, row_group_size=2, write_statistics=statistics)
    assert labels.column_extreme(path, "t", "max") == pd.Timestamp("2024-01-10 08:00")
    assert labels.column_extreme(path, "t", "min") == pd.Timestamp("2021-07-01")
    empty = tmp_path / "empty.parquet"
    pq.write_table(pa.table({"t": pa.array([], pa.timestamp("us"))}), empty)
    assert labels.column_extreme(empty, "t", "max") is None
