"""The synthetic utility: determinism, the contract, the domain rules it follows, its faults and its oracle.

Most tests read the shared `generated_dir` (1,500 customers × 36 months, daily readings for 200 days); the
downturn and suspension-rule tests use a larger generation without readings, the fault tests a small one.
Labels are computed here straight from the tables with DESIGN.md's definitions.
"""

from __future__ import annotations

import hashlib
import json
from datetime import date
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from sklearn.metrics import roc_auc_score
from typer.testing import CliRunner

from features.schema import LOAD_ORDER
from features.sources import read_table
from features.synthetic import (
    FAULT_KINDS,
    GeneratorConfig,
    GeneratorError,
    generate,
    oracle_probabilities,
    read_truth,
)
from features.synthetic import domain as d
from features.synthetic import generator as generator_module
from features.synthetic import theft as theft_module
from features.synthetic.config import build_calendar
from features.validation import validate


@pytest.fixture(scope="module")
def plain_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """More customers (so more two-part customers and downturn months), no daily readings."""
    out = tmp_path_factory.mktemp("plain")
    generate(GeneratorConfig(customers=8000, months=36, seed=3), out)
    return out


@pytest.fixture(scope="module")
def faulted_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("faulted")
    generate(GeneratorConfig(customers=800, months=24, seed=5, daily_days=60, faults=True), out)
    return out


def _digests(folder: Path) -> dict[str, str]:
    return {
        str(p.relative_to(folder)): hashlib.sha256(p.read_bytes()).hexdigest()
        for p in sorted(folder.rglob("*"))
        if p.is_file()
    }


def _tables(folder: Path, *names: str) -> list[pd.DataFrame]:
    return [read_table(folder, n) for n in names]


# Labels exactly as DESIGN.md "The three tasks" defines them, from the tables alone.


def _active(customers: pd.DataFrame, t: pd.Timestamp) -> pd.DataFrame:
    return customers[(customers.open_date <= t) & (customers.close_date.isna() | (customers.close_date > t))]


def _arrears_labels(folder: Path, t: pd.Timestamp) -> pd.Series:
    customers, bills, payments = _tables(folder, "customers", "bills", "payments")
    pop = _active(customers, t)
    pop = pop[pop.payment_method != "prepaid"]
    latest = bills.sort_values("known_at").drop_duplicates(["customer_id", "period"], keep="last")
    due = latest[(latest.due_date > t) & (latest.due_date <= t + pd.Timedelta(days=90))]
    paid = payments.merge(due[["customer_id", "period", "due_date"]], on=["customer_id", "period"])
    paid = paid[paid.paid_at < paid.due_date + pd.Timedelta(days=31)]  # by the end of due date + 30 days
    total = paid.groupby(["customer_id", "period"]).amount.sum()
    due = due.set_index(["customer_id", "period"])
    owing = due.amount_due - total.reindex(due.index).fillna(0.0) > 1.0
    return pd.Series(
        pop.customer_id.isin(due[owing].index.get_level_values(0)).to_numpy(), index=pop.customer_id
    )


def _suspension_labels(folder: Path, t: pd.Timestamp) -> pd.Series:
    customers, suspensions = _tables(folder, "customers", "suspensions")
    pop = _active(customers, t)
    pop = pop[(pop.tariff == "two_part") & (pop.contract_capacity_kva >= 315)]
    spells = suspensions[suspensions.kind.isin(["suspension", "reduction"])]
    covering = spells[
        (spells.applied_at <= t)
        & (spells.start_date <= t)
        & (spells.end_date.isna() | (spells.end_date >= t))
    ]
    pop = pop[~pop.customer_id.isin(covering.customer_id)]
    window = spells[
        (spells.applied_at > t + pd.Timedelta(days=1)) & (spells.applied_at < t + pd.Timedelta(days=181))
    ]
    return pd.Series(pop.customer_id.isin(window.customer_id).to_numpy(), index=pop.customer_id)


def _theft_labels(folder: Path, t: pd.Timestamp) -> pd.Series:
    customers, inspections = _tables(folder, "customers", "inspections")
    found = inspections[inspections.result == "theft"]
    end_of_t = t + pd.Timedelta(days=1)
    pop = _active(customers, t)
    pop = pop[~pop.customer_id.isin(found[found.inspected_at < end_of_t].customer_id)]
    window = found[
        (found.inspected_at >= end_of_t) & (found.inspected_at < end_of_t + pd.Timedelta(days=180))
    ]
    return pd.Series(pop.customer_id.isin(window.customer_id).to_numpy(), index=pop.customer_id)


LABELS = {"arrears": _arrears_labels, "suspension": _suspension_labels, "theft": _theft_labels}


# Determinism


def test_same_seed_gives_byte_identical_files_and_another_seed_does_not(tmp_path: Path) -> None:
    config = GeneratorConfig(customers=300, months=24, seed=11, daily_days=45, faults=True)
    generate(config, tmp_path / "a")
    generate(config, tmp_path / "b")
    generate(GeneratorConfig(customers=300, months=24, seed=12, daily_days=45, faults=True), tmp_path / "c")
    a, b, c = (_digests(tmp_path / x) for x in "abc")
    assert len(a) == 14  # 8 tables + 5 truth tables + manifest
    assert a == b
    assert a["bills.parquet"] != c["bills.parquet"]


def test_chunks_run_in_worker_processes_give_the_same_files_every_time(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Small chunks force the multi-process path that large runs take.
    monkeypatch.setattr(generator_module, "CHUNK_CUSTOMERS", 250)
    config = GeneratorConfig(customers=900, months=24, seed=4)
    first = generate(config, tmp_path / "a")
    generate(config, tmp_path / "b")
    assert _digests(tmp_path / "a") == _digests(tmp_path / "b")
    assert first.rows["customers"] == 900
    supply = read_table(tmp_path / "a", "area_supply")
    # Whole areas per chunk: each area has exactly one row per month.
    assert not supply.duplicated(["area_id", "date"]).any()
    assert supply.groupby("area_id").size().eq(24).all()
    bills = read_table(tmp_path / "a", "bills")
    assert (
        bills.customer_id.nunique()
        == 900 - (read_table(tmp_path / "a", "customers").open_date > pd.Timestamp("2022-12-31")).sum()
    )


# The contract


def test_every_generated_table_passes_the_contract(generated_dir: Path) -> None:
    reference: dict[str, pd.DataFrame] = {}
    for name in LOAD_ORDER:
        frame = read_table(generated_dir, name)
        assert len(frame) > 0, name
        result = validate(frame, name, reference=reference)
        assert result.quarantined.empty, (name, result.counts_by_rule())
        reference[name] = result.accepted


def test_config_is_checked_before_anything_is_written(tmp_path: Path) -> None:
    for bad in (
        GeneratorConfig(customers=10),
        GeneratorConfig(customers=100, start="2021/01"),
        GeneratorConfig(customers=100, months=6),
        GeneratorConfig(customers=100, months=12, daily_days=1000),
    ):
        with pytest.raises(GeneratorError):
            generate(bad, tmp_path / "never")
    assert not (tmp_path / "never").exists()


# The archive


def test_archive_mix_hierarchy_and_pii(generated_dir: Path) -> None:
    customers, areas = _tables(generated_dir, "customers", "areas")
    share = customers.usage_category.value_counts(normalize=True)
    assert 0.70 < share["residential"] < 0.84
    assert 0.035 < share["large_industrial"] < 0.07
    assert share["agricultural"] > 0.01 and share["general_commercial"] > 0.1
    industrial = customers[customers.usage_category == "large_industrial"]
    assert (industrial.tariff == "two_part").all() and (industrial.contract_capacity_kva >= 315).all()
    assert len(industrial) >= 50  # enough two-part customers for the suspension task on this fixture
    assert (customers[customers.tariff == "two_part"].usage_category == "large_industrial").all()
    assert customers.loc[customers.usage_category == "residential", "industry_code"].isna().all()
    assert customers.loc[customers.usage_category != "residential", "industry_code"].notna().all()
    # 台区 → 供电所 → 供电单位: a customer's station and unit are its area's.
    merged = customers.merge(areas, on="area_id", suffixes=("", "_area"))
    assert len(merged) == len(customers)
    assert (merged.station == merged.station_area).all() and (
        merged.supply_unit == merged.supply_unit_area
    ).all()
    assert customers.station.nunique() >= 3 and customers.supply_unit.nunique() >= 2
    # Customers open and (a few) close during the span.
    assert (customers.open_date >= pd.Timestamp("2021-01-01")).mean() > 0.05
    assert 0.005 < customers.close_date.notna().mean() < 0.06
    # Fake PII in every row, for masking tests.
    assert customers[["name", "phone", "address"]].notna().all().all()
    assert customers.phone.str.fullmatch(r"1[3-9]\d{9}").all()
    assert customers.address.str.startswith("湖南省").all()
    assert customers.loc[industrial.index, "name"].str.endswith("有限公司").all()
    assert set(customers.payment_method) == {"counter", "bank_withholding", "online", "prepaid"}


# Consumption and bills


def test_consumption_follows_the_seasons(generated_dir: Path) -> None:
    customers, bills = _tables(generated_dir, "customers", "bills")
    b = bills.merge(customers[["customer_id", "usage_category"]], on="customer_id")
    b = b[b.period < pd.Timestamp("2023-01-01")]
    month = b.period.dt.month

    def mean_kwh(category: str, months: list[int]) -> float:
        return float(b[(b.usage_category == category) & month.isin(months)].kwh.median())

    assert mean_kwh("residential", [7, 8]) > 1.25 * mean_kwh("residential", [4, 5])  # summer air conditioning
    assert mean_kwh("residential", [1, 12]) > 1.1 * mean_kwh("residential", [4, 5])  # winter heating
    assert mean_kwh("agricultural", [5, 6, 7, 8]) > 3 * mean_kwh("agricultural", [11, 12, 1, 2])  # irrigation
    # Spring Festival 2022 (1 February): industry slows in February against March.
    assert mean_kwh("large_industrial", [2]) < 0.85 * mean_kwh("large_industrial", [3])


def test_bills_follow_the_tariff_rules(generated_dir: Path) -> None:
    customers, bills = _tables(generated_dir, "customers", "bills")
    first = bills.sort_values("known_at").drop_duplicates(["customer_id", "period"])
    b = first.merge(customers, on="customer_id")
    cat = b.usage_category.map({c: i for i, c in enumerate(d.CATEGORIES)}).to_numpy()
    price = d.energy_price(cat, b.voltage_kv.to_numpy())
    single = (b.tariff == "single").to_numpy()
    np.testing.assert_allclose(
        b.energy_charge[single], np.round(price[single] * b.kwh[single], 2), atol=0.011
    )
    tou = b[~single]
    np.testing.assert_allclose(tou.kwh_peak + tou.kwh_flat + tou.kwh_valley, tou.kwh, atol=0.011)
    expected = price[~single] * (1.5 * tou.kwh_peak + tou.kwh_flat + 0.5 * tou.kwh_valley)
    np.testing.assert_allclose(tou.energy_charge, expected, atol=0.011)
    assert b.loc[single, ["kwh_peak", "kwh_flat", "kwh_valley"]].isna().all().all()
    # Two-part: 20 元/kVA·month on capacity; a full month with no suspension pays the whole capacity.
    two = b[b.tariff == "two_part"]
    assert two.basic_charge.notna().all() and b.loc[b.tariff != "two_part", "basic_charge"].isna().all()
    suspended = read_table(generated_dir, "suspensions")
    touched = set(suspended.customer_id)
    steady = two[~two.customer_id.isin(touched) & (two.open_date < two.period) & two.close_date.isna()]
    np.testing.assert_allclose(steady.basic_charge, 20.0 * steady.contract_capacity_kva, atol=0.01)
    # Power-factor adjustment from 100 kVA: (energy + basic) × the rate for the bill's power factor.
    big = b[b.contract_capacity_kva >= 100]
    assert (
        big.power_factor.notna().all() and b.loc[b.contract_capacity_kva < 100, "power_factor"].isna().all()
    )
    standard = d.pf_standard(cat[big.index], big.voltage_kv.to_numpy())
    rate = d.pf_adjustment_rate(big.power_factor.to_numpy(), standard)
    base = big.energy_charge + big.basic_charge.fillna(0.0)
    np.testing.assert_allclose(big.pf_adjustment, np.round(base * rate, 2), atol=0.011)
    total = b.energy_charge + b.basic_charge.fillna(0) + b.pf_adjustment.fillna(0)
    np.testing.assert_allclose(b.amount_due, total, atol=0.011)
    # Issue a few days after the month, due 15–25 days after issue, known when issued.
    issue_day = b.issue_date.dt.day
    assert (b.issue_date.dt.to_period("M") == (b.period.dt.to_period("M") + 1)).all()
    assert issue_day.between(3, 8).all()
    assert (b.due_date - b.issue_date).dt.days.isin([15, 20, 25]).all()
    assert ((b.known_at - b.issue_date) < pd.Timedelta(hours=6)).all() and (b.known_at >= b.issue_date).all()


def test_normal_reissued_bills_exist_without_faults(generated_dir: Path) -> None:
    bills = read_table(generated_dir, "bills")
    versions = bills.groupby(["customer_id", "period"]).known_at.agg(["size", "min", "max"])
    reissued = versions[versions["size"] > 1]
    assert 0.001 < len(reissued) / len(versions) < 0.01  # 退补 is normal business, but rare
    assert (reissued["max"] - reissued["min"] >= pd.Timedelta(days=3)).all()
    assert not bills.duplicated(["customer_id", "period", "known_at"]).any()
    assert read_truth(generated_dir / "truth", "faults").empty


def test_readings_add_up_to_the_bills_of_the_months_they_cover(generated_dir: Path) -> None:
    readings, bills = _tables(generated_dir, "readings", "bills")
    assert readings.date.max() == pd.Timestamp("2023-12-31")
    assert readings.date.min() == pd.Timestamp("2023-12-31") - pd.Timedelta(days=199)
    monthly = readings.groupby(["customer_id", readings.date.dt.to_period("M").dt.to_timestamp()]).kwh.sum()
    monthly.index.names = ["customer_id", "period"]
    first = (
        bills.sort_values("known_at")
        .drop_duplicates(["customer_id", "period"])
        .set_index(["customer_id", "period"])
    )
    full = monthly[monthly.index.get_level_values(1) >= pd.Timestamp("2023-07-01")]  # months wholly inside
    np.testing.assert_allclose(full, first.kwh.reindex(full.index), atol=0.011)


# Payments


def test_payments_carry_the_late_fee_rules(generated_dir: Path) -> None:
    customers, bills, payments = _tables(generated_dir, "customers", "bills", "payments")
    first = bills.sort_values("known_at").drop_duplicates(["customer_id", "period"])
    p = payments.merge(first[["customer_id", "period", "due_date"]], on=["customer_id", "period"]).merge(
        customers[["customer_id", "usage_category", "payment_method"]], on="customer_id"
    )
    day = p.paid_at.dt.normalize()
    late = day > p.due_date
    assert late.mean() > 0.03 and (p.late_fee[~late] == 0).all()
    principal = p.amount - p.late_fee
    fee = d.late_fee(
        principal.to_numpy(),
        p.due_date.to_numpy().astype("datetime64[D]"),
        day.to_numpy().astype("datetime64[D]"),
        (p.usage_category == "residential").to_numpy(),
    )
    top_up = p.payment_id.str.endswith("-3")  # corrections of a re-issued bill carry no fee
    np.testing.assert_allclose(p.late_fee[~top_up], fee[~top_up.to_numpy()], atol=0.011)
    assert (p.late_fee[late & ~top_up] >= 1.0).all()
    # 费控 and bank withholding rarely fall into arrears; counter customers do more often.
    assert (p[p.payment_method == "prepaid"].channel == "prepaid").all()
    late_share = late.groupby(p.payment_method).mean()
    assert late_share["prepaid"] < 0.3 * late_share["counter"]
    assert late_share["bank_withholding"] < 0.5 * late_share["counter"]


# Suspensions


def test_suspensions_obey_the_rules(generated_dir: Path, plain_dir: Path) -> None:
    for folder in (generated_dir, plain_dir):
        customers, s = _tables(folder, "customers", "suspensions")
        s = s.merge(customers[["customer_id", "tariff", "contract_capacity_kva"]], on="customer_id")
        assert (s.tariff == "two_part").all()
        assert (s.capacity_kva <= s.contract_capacity_kva + 1e-9).all() and (s.capacity_kva > 0).all()
        # Every application ≥ 5 working days before it takes effect.
        workdays = np.busday_count(
            s.applied_at.to_numpy().astype("datetime64[D]"), s.start_date.to_numpy().astype("datetime64[D]")
        )
        assert (workdays >= 5).all()
        sus = s[s.kind == "suspension"]
        days = (sus.end_date - sus.start_date).dt.days + 1
        assert (days >= 15).all()
        year = sus.start_date.dt.year
        assert (sus.end_date.dt.year == year).all()
        per_year = sus.groupby(["customer_id", year]).agg(n=("kind", "size"), days=("start_date", "size"))
        per_year["days"] = days.groupby([sus.customer_id, year]).sum()
        assert (per_year.n <= 2).all()
        assert (per_year.days <= 184).all()  # six months
        red = s[(s.kind == "reduction") & s.end_date.notna()]
        red_days = (red.end_date - red.start_date).dt.days + 1
        assert red_days.between(183, 731).all()
        # Restorations follow the spell they end.
        for kind, restore in (("suspension", "suspension_restore"), ("reduction", "reduction_restore")):
            first_spell = s[s.kind == kind].groupby("customer_id").start_date.min()
            first_restore = s[s.kind == restore].groupby("customer_id").start_date.min()
            both = first_restore.index.intersection(first_spell.index)
            assert first_restore.index.isin(first_spell.index).all()
            assert (first_restore[both] > first_spell[both]).all()


def test_suspended_capacity_stops_consumption_and_the_basic_charge(plain_dir: Path) -> None:
    customers, bills = _tables(plain_dir, "customers", "bills")
    spells = read_truth(plain_dir / "truth", "suspension_spells")
    whole = spells.merge(customers[["customer_id", "contract_capacity_kva"]], on="customer_id")
    whole = whole[(whole.kind == "suspension") & (whole.capacity_kva == whole.contract_capacity_kva)]
    bills = bills[bills.customer_id.isin(whole.customer_id)]
    first = bills.sort_values("known_at").drop_duplicates(["customer_id", "period"])
    truth = read_truth(plain_dir / "truth", "monthly")
    online = first.merge(
        truth[truth.offline_share == 0][["customer_id", "period"]], on=["customer_id", "period"]
    )
    median = online.groupby("customer_id").kwh.median()  # a normal month, with all capacity connected
    # A thief's meter says what the thief wants (h5 reports its average month even while sealed).
    honest = truth[~truth.is_stealing][["customer_id", "period"]]
    first = first.merge(honest, on=["customer_id", "period"])
    checked = 0
    for spell in whole.itertuples():
        months = pd.date_range(spell.start_date + pd.offsets.MonthBegin(0), spell.actual_end, freq="MS")
        inside = [m for m in months if m + pd.offsets.MonthEnd(0) <= spell.actual_end]
        rows = first[(first.customer_id == spell.customer_id) & first.period.isin(inside)]
        for row in rows.itertuples():
            assert row.kwh < 0.1 * median[spell.customer_id]
            assert row.basic_charge == pytest.approx(0.0, abs=0.01)
            checked += 1
    assert checked >= 5


def test_seasonal_industries_suspend_every_year(plain_dir: Path) -> None:
    customers, s = _tables(plain_dir, "customers", "suspensions")
    heat = customers[customers.industry_code == "D44"].customer_id
    applied = s[s.customer_id.isin(heat) & (s.kind == "suspension")]
    assert len(heat) >= 5
    # Heat supply idles after the heating season: applications in March, every year.
    assert (applied.applied_at.dt.month == 3).mean() > 0.8
    per_customer_years = applied.groupby("customer_id").applied_at.apply(lambda x: x.dt.year.nunique())
    assert (per_customer_years >= 2).mean() > 0.7


# Downturns


def test_downturns_move_consumption_arrears_and_suspensions(plain_dir: Path) -> None:
    truth = read_truth(plain_dir / "truth", "monthly")
    customers, bills, payments, suspensions = _tables(
        plain_dir, "customers", "bills", "payments", "suspensions"
    )
    business = customers[customers.usage_category.isin(["general_commercial", "large_industrial"])]
    t = truth[truth.customer_id.isin(business.customer_id)].copy()
    t["downturn"] = t.downturn_depth >= 0.15
    assert t.downturn.sum() > 1000 and (~t.downturn).sum() > 1000

    # Consumption: below the customer's own typical month while its industry is down.
    first = bills.sort_values("known_at").drop_duplicates(["customer_id", "period"])
    b = first.merge(t[["customer_id", "period", "downturn"]], on=["customer_id", "period"])
    b["relative"] = b.kwh / b.groupby("customer_id").kwh.transform("median")
    relative = b.groupby("downturn").relative.median()
    assert relative[True] < 0.85 * relative[False]

    # Arrears: bills still unpaid 30 days after their due date, from the tables.
    paid = payments.merge(b[["customer_id", "period", "due_date"]], on=["customer_id", "period"])
    paid = (
        paid[paid.paid_at < paid.due_date + pd.Timedelta(days=31)]
        .groupby(["customer_id", "period"])
        .amount.sum()
    )
    b = b.set_index(["customer_id", "period"])
    b = b[b.due_date + pd.Timedelta(days=31) < pd.Timestamp("2024-01-10")]
    b["owing"] = b.amount_due - paid.reindex(b.index).fillna(0.0) > 1.0
    owing = b.groupby("downturn").owing.mean()
    assert owing[True] > 1.8 * owing[False]

    # Suspensions: applications per two-part customer-month.
    two = t[t.customer_id.isin(customers[customers.tariff == "two_part"].customer_id)].copy()
    applied = suspensions[suspensions.kind.isin(["suspension", "reduction"])]
    applied = applied.assign(period=applied.applied_at.dt.to_period("M").dt.to_timestamp())
    two = two.merge(
        applied.groupby(["customer_id", "period"]).size().rename("n"),
        on=["customer_id", "period"],
        how="left",
    )
    seasonal = customers[customers.industry_code.isin(list(d.SEASONAL_SUSPENSION))].customer_id
    rate = two[~two.customer_id.isin(seasonal)].assign(n=lambda x: x.n.fillna(0)).groupby("downturn").n.mean()
    assert rate[True] > 2.0 * rate[False]


# Theft


def test_thieves_under_report_and_stop_when_found(generated_dir: Path) -> None:
    truth = read_truth(generated_dir / "truth", "monthly")
    thieves = read_truth(generated_dir / "truth", "customers")
    stealing_share = truth.groupby("period").is_stealing.mean()
    assert 0.01 < stealing_share.mean() < 0.04  # point prevalence
    assert set(thieves.attack_kind.dropna()) == {"h1", "h2", "h3", "h4", "h5"}
    t = truth.merge(thieves[["customer_id", "attack_kind", "theft_found_at"]], on="customer_id")
    stealing = t[t.is_stealing & t.attack_kind.isin(["h1", "h2", "h3", "h4"])]
    assert (stealing.kwh_reported.sum() / stealing.kwh_true.sum()) < 0.6
    honest = t[~t.is_stealing]
    np.testing.assert_allclose(honest.kwh_reported, honest.kwh_true, atol=0.2)  # daily readings are rounded
    found = t[t.theft_found_at.notna()]
    after = found[found.period > found.theft_found_at]
    assert len(after) > 50 and not after.is_stealing.any()


def test_thieves_raise_their_areas_line_loss(generated_dir: Path) -> None:
    customers, bills, supply = _tables(generated_dir, "customers", "bills", "area_supply")
    truth = read_truth(generated_dir / "truth", "monthly")
    supply["period"] = supply.date.dt.to_period("M").dt.to_timestamp()
    supplied = supply.groupby(["area_id", "period"]).supplied_kwh.sum()
    assert (supply.groupby(["area_id", "period"]).granularity.nunique() == 1).all()  # days or month, not both
    first = bills.sort_values("known_at").drop_duplicates(["customer_id", "period"])
    first = first.merge(customers[["customer_id", "area_id"]], on="customer_id")
    billed = first.groupby(["area_id", "period"]).kwh.sum()
    loss = (1 - billed / supplied).dropna()
    t = truth.merge(customers[["customer_id", "area_id"]], on="customer_id")
    t["stolen"] = t.kwh_true - t.kwh_reported
    stolen_share = (t.groupby(["area_id", "period"]).stolen.sum() / supplied).reindex(loss.index)
    with_theft = loss[stolen_share > 0.02]
    without = loss[stolen_share.abs() < 1e-9]
    assert len(with_theft) > 30 and len(without) > 30
    assert with_theft.mean() > without.mean() + 0.03
    assert 0.01 < without.median() < 0.07  # technical loss only
    assert np.corrcoef(loss, stolen_share)[0, 1] > 0.7


def test_inspections_are_biased_and_settle_found_theft(generated_dir: Path) -> None:
    customers, inspections = _tables(generated_dir, "customers", "inspections")
    thieves = read_truth(generated_dir / "truth", "customers")
    i = inspections.merge(customers, on="customer_id").merge(
        thieves[["customer_id", "is_thief"]], on="customer_id"
    )
    assert set(i.result) == {"normal", "theft", "violation"}
    per_customer = i.groupby("customer_id").size().reindex(customers.customer_id, fill_value=0)
    rate = per_customer.groupby(customers.set_index("customer_id").tariff).mean()
    assert rate["two_part"] > 3 * rate["single"]  # high-tariff customers are inspected more often
    thief_ids = thieves[thieves.is_thief].customer_id
    assert (
        per_customer[thief_ids].mean() > 2 * per_customer.drop(thief_ids).mean()
    )  # drops and losses draw visits
    theft = i[i.result == "theft"]
    assert theft.is_thief.all()
    assert not theft.duplicated("customer_id").any()  # a thief is found once, then stops
    # h5 only flattens the profile: on a single tariff it shifts no energy, so nothing is recovered.
    assert (theft.recovered_kwh >= 0).all() and (theft.recovered_kwh > 0).mean() > 0.8
    cat = theft.usage_category.map({c: k for k, c in enumerate(d.CATEGORIES)}).to_numpy()
    price = d.energy_price(cat, theft.voltage_kv.to_numpy())
    np.testing.assert_allclose(
        theft.recovered_amount, np.round(theft.recovered_kwh * price * 4.0, 2), atol=0.02
    )
    other = i[i.result != "theft"]
    assert (other.recovered_kwh == 0).all()
    assert (other[other.result == "violation"].recovered_amount > 0).all()


# Faults


def test_every_fault_kind_is_injected_and_recorded_row_by_row(faulted_dir: Path) -> None:
    faults = read_truth(faulted_dir / "truth", "faults")
    assert set(faults.kind) == set(FAULT_KINDS)
    areas = read_table(faulted_dir, "areas")
    tables = {
        name: read_table(faulted_dir, name)
        for name in ("customers", "bills", "payments", "readings", "suspensions")
    }

    def rows(name: str, key: dict) -> pd.DataFrame:
        frame = tables[name]
        mask = np.ones(len(frame), dtype=bool)
        for column, value in key.items():
            mask &= (
                frame[column] == pd.Timestamp(value)
                if frame[column].dtype.kind == "M"
                else frame[column] == value
            ).to_numpy()
        return frame[mask]

    for fault in faults.itertuples():
        key = json.loads(fault.key)
        found = rows(fault.table, key)
        assert len(found) >= 1, fault
        row = found.iloc[-1]
        if fault.kind == "unknown_station":
            assert row.station not in set(areas.station)
        elif fault.kind == "unknown_area":
            assert row.area_id not in set(areas.area_id)
        elif fault.kind == "duplicate_bill":
            assert len(found) == 2 and found.iloc[0].equals(found.iloc[1])
        elif fault.kind == "due_before_issue":
            assert row.due_date < row.issue_date
        elif fault.kind == "known_before_issue":
            assert row.known_at < row.issue_date
        elif fault.kind == "reissued_bill":
            versions = rows("bills", {"customer_id": key["customer_id"], "period": key["period"]})
            assert len(versions) >= 2 and row.known_at == versions.known_at.max()
        elif fault.kind == "paid_before_period":
            assert row.paid_at < row.period
        elif fault.kind == "end_before_start":
            assert row.end_date < row.start_date
        elif fault.kind == "negative_reading":
            assert -100 < row.kwh < 0
        elif fault.kind == "missing_reading":
            assert np.isnan(row.kwh)
        elif fault.kind == "meter_reset":
            assert row.kwh < -90_000
    # Nothing else is broken: outside the recorded rows, the export passes the contract.
    bills = tables["bills"]
    result = validate(bills, "bills")
    assert result.counts_by_rule() == {
        "date_order": int(faults.kind.isin(["due_before_issue", "known_before_issue"]).sum()),
        "duplicate_row": int((faults.kind == "duplicate_bill").sum()),
    }


# The oracle


@pytest.mark.parametrize(("task", "min_auc"), [("arrears", 0.8), ("suspension", 0.75), ("theft", 0.9)])
def test_oracle_is_a_probability_that_ranks_the_labels(
    generated_dir: Path, task: str, min_auc: float
) -> None:
    as_of = [pd.Timestamp(x) for x in ("2022-01-01", "2022-04-01", "2022-07-01", "2022-10-01", "2023-01-01")]
    oracle = oracle_probabilities(generated_dir / "truth", task, as_of)
    assert list(oracle.columns) == ["customer_id", "as_of", "oracle_probability"]
    assert oracle.as_of.dtype.kind == "M"
    p = oracle.oracle_probability
    assert p.notna().all() and p.between(0.0, 1.0).all()
    ys, ps = [], []
    for t in as_of:
        labels = LABELS[task](generated_dir, t)
        at = oracle[oracle.as_of == t].set_index("customer_id").oracle_probability
        assert labels.index.isin(at.index).all()  # the population is active at T, and so covered
        ys.append(labels.to_numpy())
        ps.append(at.reindex(labels.index).to_numpy())
    y, p = np.concatenate(ys), np.concatenate(ps)
    assert y.sum() >= 5 * len(as_of) * (0.5 if task == "suspension" else 1.0)
    assert roc_auc_score(y, p) > min_auc
    assert 0.5 * y.mean() < p.mean() < 1.6 * y.mean()  # calibrated: the mean oracle is near the label rate
    # What happened was possible: after a permanent reduction the oracle blocked every later month, while the
    # generator lets the customer apply again six months on, and those who did had probability 0.
    assert (p[y == 1] > 0).all(), f"{int((p[y == 1] == 0).sum())} positives the oracle called impossible"


def test_the_suspension_oracle_frees_a_customer_when_the_generator_does(tmp_path: Path) -> None:
    # After a permanent reduction (no end) the oracle blocked every later month, while the generator lets the
    # customer apply again six months after it starts: customers who did had probability 0.
    truth = tmp_path / "truth"
    truth.mkdir()
    periods = pd.date_range("2023-01-01", "2024-12-01", freq="MS")
    monthly = pd.DataFrame({"customer_id": "C1", "period": periods.date, "p_suspension": np.float32(0.1)})
    pq.write_table(pa.Table.from_pandas(monthly, preserve_index=False), truth / "monthly.parquet")
    customers = pd.DataFrame({"customer_id": ["C1"], "open_date": [date(2020, 1, 1)], "close_date": [None]})
    customers["close_date"] = pd.to_datetime(customers["close_date"]).dt.date
    pq.write_table(pa.Table.from_pandas(customers, preserve_index=False), truth / "customers.parquet")
    spells = pd.DataFrame(
        {
            "customer_id": ["C1"],
            "applied_at": [pd.Timestamp("2023-03-10 09:00")],
            "start_date": [date(2023, 3, 20)],
            "actual_end": pd.Series([None], dtype="datetime64[ns]").dt.date,  # permanent
        }
    )
    pq.write_table(pa.Table.from_pandas(spells, preserve_index=False), truth / "suspension_spells.parquet")
    p = oracle_probabilities(truth, "suspension", [pd.Timestamp("2023-04-30"), pd.Timestamp("2023-09-30")])
    early, later = p["oracle_probability"].to_numpy()
    # Free from 2023-09-19 (start + 183 days): as of April 30 the window (to October 27) is open in October
    # only (its first day is after that); as of September 30 every month of the window is open.
    assert early == pytest.approx(1 - 0.9 ** (27 / 31), rel=1e-6)
    assert later == pytest.approx(1 - 0.9 ** (5 + 28 / 31), rel=1e-6)


def test_the_theft_oracle_keeps_a_found_thiefs_probability_as_if_it_were_still_unfound() -> None:
    # The oracle asks "found in (T, T+H] | not found by T", so each month needs the probability of a find had
    # the thief not been found yet. p_theft_found was the realised one: once found, the thief bills in full,
    # its zero-reading and drop triggers vanish and the months after fell to the base rate, so the oracle
    # underrated every thief found early in its window (≈ 6 % fewer positives expected than observed).
    calendar = build_calendar(GeneratorConfig(customers=1, start="2023-01", months=8))
    months = calendar.months
    stealing = np.arange(months)[None, :] >= 3  # honest for three months, then reports zero
    plan = {
        "thief": np.array([True]),
        "kind": np.array([theft_module.H2]),
        "onset": np.array(["2022-12-20"], dtype="datetime64[D]"),
        "onset_month": np.array([3]),
        "window_end": np.array(["2200-01-01"], dtype="datetime64[D]"),
        "window_end_month": np.array([months + 1]),
        "alpha": np.array([0.5]),
        "pf_shift": np.array([0.05]),
        "stealing_unfound": stealing,
    }
    true_kwh = np.full((1, months), 1000.0)
    theft = theft_module.inspect(
        plan,
        true_kwh,
        np.where(stealing, 0.0, true_kwh),
        true_kwh * 1.03,  # one area, this customer's, with 3 % technical loss
        area=np.array([0]),
        area_dedicated=np.array([False]),
        category=np.array([d.COM]),
        tariff=np.array([d.SINGLE]),
        voltage_kv=np.array([10.0]),  # a zero reading at ≥ 10 kV is always checked
        active=np.ones((1, months)),
        offline=np.zeros((1, months)),
        open_date=np.array(["2010-01-01"], dtype="datetime64[D]"),
        close_date=np.array(["NaT"], dtype="datetime64[D]"),
        calendar=calendar,
        rng=np.random.default_rng(0),
    )
    found = int(theft.found_month[0])
    assert found in (4, 5)  # the first zero bill (month 3) gets it inspected in months 4 and 5
    # Two months after the find it bills in full again, so the policy stops visiting it …
    assert theft.p_inspect[0, found + 2] < 0.05
    # … but had it still been stealing, its zero bills would have drawn a certain visit to the end of the span
    # (month 7; from month 8 the median of its reference bills would be zero and the rule would see no drop).
    np.testing.assert_allclose(theft.p_found[0, found + 2 :], theft_module.DETECT)
    np.testing.assert_allclose(
        theft.p_found[0, : found + 2],
        theft.p_inspect[0, : found + 2] * stealing[0, : found + 2] * theft_module.DETECT,
    )


def test_oracle_rejects_an_unknown_task_and_a_folder_without_truth(
    generated_dir: Path, tmp_path: Path
) -> None:
    with pytest.raises(GeneratorError, match="no oracle"):
        oracle_probabilities(generated_dir / "truth", "churn", [pd.Timestamp("2022-01-01")])
    with pytest.raises(GeneratorError, match="missing"):
        oracle_probabilities(tmp_path, "arrears", [pd.Timestamp("2022-01-01")])


def test_domain_rules_on_hand_picked_values() -> None:
    # Power factor on the 0.90 scale: 0.80 → +5 %, 0.65 → +15 %, 0.64 → +17 %; above it, credits.
    pf = np.array([0.90, 0.80, 0.65, 0.64, 0.93, 0.99])
    rate = d.pf_adjustment_rate(pf, np.full(pf.size, 0.90))
    np.testing.assert_allclose(rate, [0.0, 0.05, 0.15, 0.17, -0.0045, -0.0075])
    # 0.85 and 0.80 scales shift the same steps.
    np.testing.assert_allclose(
        d.pf_adjustment_rate(np.array([0.75, 0.70]), np.array([0.85, 0.80])), [0.05, 0.05]
    )
    due = np.array(
        ["2022-03-20", "2022-03-20", "2022-12-21", "2022-03-20", "2022-03-20"], dtype="datetime64[D]"
    )
    paid = np.array(
        ["2022-03-30", "2022-03-30", "2023-01-10", "2022-03-20", "2022-03-21"], dtype="datetime64[D]"
    )
    principal = np.array([1000.0, 1000.0, 1000.0, 1000.0, 100.0])
    residential = np.array([True, False, False, False, True])
    fee = d.late_fee(principal, due, paid, residential)
    # 10 days × 1‰; 10 days × 2‰; 10 days in 2022 × 2‰ + 10 in 2023 × 3‰; on time; 0.1 元 rounds up to 1 元.
    np.testing.assert_allclose(fee, [10.0, 20.0, 50.0, 0.0, 1.0])
    # Tariff: large industry at 10 kV pays the 1–10 kV price, at 110 kV the 110 kV one.
    np.testing.assert_allclose(
        d.energy_price(np.array([d.IND, d.IND, d.RES]), np.array([10.0, 110.0, 0.22])),
        [0.6437, 0.6037, 0.5880],
    )


def test_cli_generate_writes_a_warehouse_and_prints_the_summary(tmp_path: Path) -> None:
    from gridrisk.cli import app

    result = CliRunner().invoke(
        app,
        [
            "generate",
            "--customers",
            "150",
            "--months",
            "12",
            "--seed",
            "2",
            "--out",
            str(tmp_path),
            "--faults",
        ],
    )
    assert result.exit_code == 0, result.output
    assert (
        "truth/faults" in result.output and "meter_reset" not in result.output
    )  # no readings, no reading faults
    assert (tmp_path / "bills.parquet").exists() and (tmp_path / "truth" / "manifest.json").exists()
    assert not (tmp_path / "readings.parquet").exists()
    refused = CliRunner().invoke(app, ["generate", "--customers", "5", "--out", str(tmp_path / "x")])
    assert refused.exit_code == 2
    day = CliRunner().invoke(app, ["generate", "--start", "2021-01-15", "--out", str(tmp_path / "y")])
    assert day.exit_code == 2 and "is not a month" in day.output
    (tmp_path / "a_file").write_text("")
    onto_file = CliRunner().invoke(
        app, ["generate", "--customers", "60", "--out", str(tmp_path / "a_file")], env={"COLUMNS": "200"}
    )
    assert onto_file.exit_code == 2 and "is a file; name a folder" in onto_file.output
