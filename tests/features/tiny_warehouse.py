"""A tiny, hand-controlled warehouse for feature tests (a few dozen customers, every table, every quirk).

Not a generator: just enough varied rows (late payers, re-issued bills, suspensions, thefts, TOU and
non-TOU, daily readings for some customers) for the as-of rule, labels and engines to be exercised without
the synthetic utility.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd

from features.sources import write_table


def make_tables(
    seed: int = 3, customers: int = 48, months: int = 30, start: str = "2021-01"
) -> dict[str, pd.DataFrame]:
    rng = np.random.default_rng(seed)
    ids = np.array([f"C{i:04d}" for i in range(customers)], dtype=object)
    n_areas = 4
    area = np.array([f"A{i % n_areas}" for i in range(customers)], dtype=object)
    station = np.where(np.isin(area, ["A0", "A1"]), "S1", "S2").astype(object)
    category = np.array(
        ["residential", "general_commercial", "large_industrial", "agricultural"], dtype=object
    )[np.arange(customers) % 4]
    industrial = category == "large_industrial"
    capacity = np.where(
        industrial, rng.choice([400.0, 630.0, 1000.0], customers), rng.choice([8.0, 50.0], customers)
    )
    tariff = np.where(
        industrial, "two_part", np.where(np.arange(customers) % 3 == 0, "tou", "single")
    ).astype(object)
    payment = np.array(["counter", "bank_withholding", "online", "prepaid"], dtype=object)[
        (np.arange(customers) // 4) % 4
    ]
    period0 = pd.Period(start, "M")
    open_date = pd.to_datetime(np.where(np.arange(customers) % 11 == 5, "2022-03-10", "2019-06-01"))
    close_date = pd.Series(pd.NaT, index=range(customers), dtype="datetime64[us]")
    close_date[7] = pd.Timestamp("2022-09-15")  # closes mid-way: active before, gone after
    customers_df = pd.DataFrame(
        {
            "customer_id": ids,
            "usage_category": category,
            "industry_code": np.where(category == "residential", None, np.where(industrial, "C13", "F51")),
            "voltage_kv": np.where(industrial, 10.0, 0.4),
            "contract_capacity_kva": capacity,
            "tariff": tariff,
            "payment_method": payment,
            "supply_unit": "U1",
            "station": station,
            "area_id": area,
            "group_id": np.where(np.arange(customers) % 9 == 0, "G1", None),
            "open_date": open_date,
            "close_date": close_date,
            "name": [f"户{i}" for i in range(customers)],
        }
    )

    periods = pd.period_range(period0, periods=months, freq="M")
    base = np.where(industrial, 60_000.0, np.where(category == "residential", 200.0, 3_000.0))
    season = 1.0 + 0.2 * np.cos(2 * np.pi * (np.arange(months) - 7) / 12)
    kwh = base[:, None] * season[None, :] * rng.lognormal(0, 0.1, (customers, months))
    kwh[3, 20:] *= 0.2  # customer 3 starts "stealing" in month 20: a clear drop
    kwh[5, 24:27] = 0.0  # customer 5: three zero months
    cust_idx, month_idx = np.meshgrid(np.arange(customers), np.arange(months), indexing="ij")
    cust_idx, month_idx = cust_idx.ravel(), month_idx.ravel()
    p_start = periods.to_timestamp()[month_idx]
    existed = (p_start >= open_date.to_numpy()[cust_idx].astype("datetime64[M]")) & ~(
        p_start >= close_date.to_numpy()[cust_idx]
    )
    cust_idx, month_idx, p_start = cust_idx[existed], month_idx[existed], p_start[existed]
    k = kwh[cust_idx, month_idx]
    tou = tariff[cust_idx] != "single"
    price = np.where(industrial[cust_idx], 0.6, 0.56)
    basic = np.where(tariff[cust_idx] == "two_part", capacity[cust_idx] * 20.0, 0.0)
    issue = p_start + pd.DateOffset(months=1) + pd.to_timedelta(4, "D")
    bills = pd.DataFrame(
        {
            "customer_id": ids[cust_idx],
            "period": p_start,
            "kwh": k,
            "kwh_peak": np.where(tou, k * 0.4, np.nan),
            "kwh_flat": np.where(tou, k * 0.35, np.nan),
            "kwh_valley": np.where(tou, k * 0.25, np.nan),
            "max_demand_kw": np.where(industrial[cust_idx], k / 400.0, np.nan),
            "power_factor": np.where(capacity[cust_idx] >= 100, 0.92, np.nan),
            "energy_charge": k * price,
            "basic_charge": basic,
            "amount_due": np.round(k * price + basic, 2),
            "issue_date": issue,
            "due_date": issue + pd.to_timedelta(20, "D"),
            "known_at": issue + pd.to_timedelta(8, "h"),
        }
    )
    # Re-issued bills (退补): a corrected second version known two months later.
    fix = bills.index[(bills["customer_id"] == "C0002") & (bills["period"] == pd.Timestamp("2022-06-01"))]
    reissue = bills.loc[fix].copy()
    reissue["amount_due"] = reissue["amount_due"] * 1.5
    reissue["kwh"] = reissue["kwh"] * 1.5
    reissue["known_at"] = reissue["known_at"] + pd.Timedelta(days=60)
    bills = pd.concat([bills, reissue], ignore_index=True)

    #  Payments: most on time, some late, customer 1 chronically late, customer 9 partial, customer 13 stops
    # paying.
    latest = bills.sort_values("known_at").drop_duplicates(["customer_id", "period"], keep="last")
    who = latest["customer_id"].to_numpy()
    lateness = rng.integers(-10, 0, len(latest)).astype(float)
    lateness[who == "C0001"] = rng.integers(10, 70, (who == "C0001").sum())
    paid_share = np.ones(len(latest))
    paid_share[who == "C0009"] = 0.6
    stop = (who == "C0013") & (latest["period"] >= pd.Timestamp("2022-10-01")).to_numpy()
    pays = pd.DataFrame(
        {
            "customer_id": who,
            "period": latest["period"].to_numpy(),
            "paid_at": latest["due_date"].to_numpy()
            + pd.to_timedelta(lateness, "D")
            + pd.Timedelta(hours=10),
            "amount": np.round(latest["amount_due"].to_numpy() * paid_share, 2),
            "late_fee": np.where(lateness > 0, 5.0, 0.0),
            "channel": np.where(
                who == "C0001", np.where(rng.random(len(latest)) < 0.5, "counter", "online"), "online"
            ),
        }
    )
    pays = pays[~stop & (payment[pd.Index(ids).get_indexer(who)] != "prepaid")]
    pays = pays.assign(amount=pays["amount"] + pays["late_fee"]).reset_index(drop=True)
    pays.insert(0, "payment_id", [f"P{i:06d}" for i in range(len(pays))])

    # Daily readings for the last 200 days, for every second customer.
    days = pd.date_range(
        periods.to_timestamp()[-1] + pd.offsets.MonthEnd(0) - pd.Timedelta(days=199), periods=200
    )
    with_daily = np.arange(0, customers, 2)
    daily = (base[with_daily, None] / 30.0) * rng.lognormal(0, 0.15, (len(with_daily), len(days)))
    daily[with_daily == 4, 120:] = 0.0  # customer 4: a zero run at the end
    daily[with_daily == 6, 100:] = daily[with_daily == 6, 100:].mean()  # customer 6: flat line (h5-like)
    readings = pd.DataFrame(
        {
            "customer_id": np.repeat(ids[with_daily], len(days)),
            "date": np.tile(days.to_numpy(), len(with_daily)),
            "kwh": daily.ravel(),
        }
    )

    ind = np.flatnonzero(industrial)
    suspensions = pd.DataFrame(
        {
            "application_id": ["S1", "S2", "S3", "S4"],
            "customer_id": ids[ind[[0, 0, 1, 2]]],
            "applied_at": pd.to_datetime(
                ["2021-11-03 09:00", "2022-08-20 10:00", "2022-05-01 11:00", "2022-12-05 09:30"]
            ),
            "start_date": pd.to_datetime(["2021-11-10", "2022-09-01", "2022-05-10", "2022-12-20"]),
            "end_date": pd.to_datetime(["2022-01-10", "2022-12-31", pd.NaT, "2023-03-01"]),
            "capacity_kva": [200.0, 200.0, 315.0, 400.0],
            "kind": ["suspension", "suspension", "reduction", "suspension"],
        }
    )
    inspections = pd.DataFrame(
        {
            "inspection_id": ["I1", "I2", "I3", "I4"],
            "customer_id": ["C0003", "C0010", "C0003", "C0011"],
            "inspected_at": pd.to_datetime(
                ["2022-01-05 10:00", "2022-04-02 15:00", "2022-11-20 10:00", "2022-12-01 9:00"]
            ),
            "result": ["normal", "violation", "theft", "theft"],
            "recovered_kwh": [0.0, 100.0, 5000.0, 300.0],
        }
    )
    areas = pd.DataFrame(
        {
            "area_id": [f"A{i}" for i in range(n_areas)],
            "station": ["S1", "S1", "S2", "S2"],
            "supply_unit": "U1",
            "transformer_kva": [2000.0, 2000.0, 3000.0, 3000.0],
        }
    )
    billed_area = bills.drop_duplicates(["customer_id", "period"], keep="first").merge(
        customers_df[["customer_id", "area_id"]], on="customer_id"
    )
    supply = billed_area.groupby(["area_id", "period"], as_index=False)["kwh"].sum()
    supply["supplied_kwh"] = supply["kwh"] * 1.06
    supply.loc[
        (supply["area_id"] == "A3") & (supply["period"] >= pd.Timestamp("2022-09-01")), "supplied_kwh"
    ] *= 1.1
    area_supply = pd.DataFrame(
        {
            "area_id": supply["area_id"],
            "date": supply["period"],
            "granularity": "month",
            "supplied_kwh": supply["supplied_kwh"],
        }
    )
    return {
        "customers": customers_df,
        "bills": bills,
        "payments": pays,
        "readings": readings,
        "suspensions": suspensions,
        "inspections": inspections,
        "areas": areas,
        "area_supply": area_supply,
    }


def write(tables: dict[str, pd.DataFrame], warehouse: Path) -> Path:
    for name, frame in tables.items():
        write_table(warehouse, name, frame)
    return warehouse


def customer_rows(n: int = 1, **overrides) -> pd.DataFrame:
    """`n` plain customers (C0000…) in area A0, open since 2019, post-paid, single (override any column)."""
    frame = pd.DataFrame(
        {
            "customer_id": [f"C{i:04d}" for i in range(n)],
            "usage_category": "general_commercial",
            "industry_code": "F51",
            "voltage_kv": 0.4,
            "contract_capacity_kva": 100.0,
            "tariff": "single",
            "payment_method": "counter",
            "supply_unit": "U1",
            "station": "S1",
            "area_id": "A0",
            "group_id": None,
            "open_date": pd.Timestamp("2019-01-01"),
            "close_date": pd.NaT,
        }
    )
    for column, value in overrides.items():
        frame[column] = value
    return frame


def monthly_bills(
    customer_id: str, first: str, kwh: list[float], price: float = 0.5, **extra
) -> pd.DataFrame:
    """One bill per month from `first`: issued the 5th of next month, due on the 25th, known when issued."""
    periods = pd.date_range(first, periods=len(kwh), freq="MS")
    issue = periods + pd.DateOffset(months=1) + pd.Timedelta(days=4)
    frame = pd.DataFrame(
        {
            "customer_id": customer_id,
            "period": periods,
            "kwh": np.asarray(kwh, dtype=float),
            "amount_due": np.asarray(kwh, dtype=float) * price,
            "energy_charge": np.asarray(kwh, dtype=float) * price,
            "issue_date": issue,
            "due_date": issue + pd.Timedelta(days=20),
            "known_at": issue + pd.Timedelta(hours=8),
        }
    )
    for column, value in extra.items():
        frame[column] = value
    return frame


def with_defaults(**tables: pd.DataFrame) -> dict[str, pd.DataFrame]:
    """Fill in empty event tables so a test names only the tables it is about."""
    empty = {
        "bills": monthly_bills("C0000", "2021-01", []),
        "payments": pd.DataFrame(
            {
                "payment_id": pd.Series([], dtype=str),
                "customer_id": pd.Series([], dtype=str),
                "period": pd.Series([], dtype="datetime64[us]"),
                "paid_at": pd.Series([], dtype="datetime64[us]"),
                "amount": pd.Series([], dtype=float),
                "late_fee": pd.Series([], dtype=float),
                "channel": pd.Series([], dtype=str),
            }
        ),
        "suspensions": pd.DataFrame(
            {
                "application_id": pd.Series([], dtype=str),
                "customer_id": pd.Series([], dtype=str),
                "applied_at": pd.Series([], dtype="datetime64[us]"),
                "start_date": pd.Series([], dtype="datetime64[us]"),
                "end_date": pd.Series([], dtype="datetime64[us]"),
                "capacity_kva": pd.Series([], dtype=float),
                "kind": pd.Series([], dtype=str),
            }
        ),
        "inspections": pd.DataFrame(
            {
                "inspection_id": pd.Series([], dtype=str),
                "customer_id": pd.Series([], dtype=str),
                "inspected_at": pd.Series([], dtype="datetime64[us]"),
                "result": pd.Series([], dtype=str),
                "recovered_kwh": pd.Series([], dtype=float),
            }
        ),
    }
    return {**empty, **tables}


def features_at(tables: dict[str, pd.DataFrame], as_of: str, family_module) -> pd.DataFrame:
    """One family's features for every customer of `tables` as of `as_of` (customer_id as the index)."""
    from features.snapshot import prepare_partition

    part = prepare_partition(tables)
    values = family_module.compute(part.at(as_of))
    return pd.DataFrame(values, index=part.customers["customer_id"].to_numpy())
