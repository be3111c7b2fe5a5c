"""The London importer and the theft-injection protocol: hand-built frames, then a few dozen real homes."""

from __future__ import annotations

import hashlib
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from features import london
from features.london import InjectionProtocol, import_frames, inject_theft
from features.schema import LOAD_ORDER

REPO = Path(__file__).resolve().parents[2]
LONDON = REPO.parent / "shared" / "data" / "london-smart-meters"


def _daily(rows: list[tuple]) -> pd.DataFrame:
    frame = pd.DataFrame(
        rows, columns=["LCLid", "day", "energy_sum_kwh", "energy_count", "block", "stdorToU"]
    )
    frame["day"] = pd.to_datetime(frame["day"])
    frame["Acorn"] = "ACORN-E"
    frame["Acorn_grouped"] = np.where(frame["block"] == 0, "Affluent", "Adversity")
    return frame


def _households(daily: pd.DataFrame) -> pd.DataFrame:
    hh = daily.drop_duplicates("LCLid")[["LCLid", "stdorToU", "Acorn", "Acorn_grouped", "block"]].copy()
    hh["file"] = "block_" + hh.pop("block").astype(str)
    return hh


@pytest.fixture
def small() -> london.LondonData:
    daily = _daily(
        [
            ("H1", "2013-01-30", 10.0, 48, 0, "Std"),  # full day
            ("H1", "2013-01-31", np.nan, 0, 0, "Std"),  # null sum: quarantined, the day stays missing
            ("H1", "2013-02-01", 6.0, 24, 0, "Std"),  # half the half-hours: scaled ×2 to 12 kWh
            ("H1", "2013-02-02", 1.0, 10, 0, "Std"),  # too partial to estimate: quarantined
            ("H1", "2013-02-03", 8.0, 48, 0, "Std"),  # last day of the trial: H1 never leaves
            ("H2", "2013-01-30", 4.0, 48, 2, "ToU"),  # ToU tariff, another block
            ("H2", "2013-02-01", 5.0, 48, 2, "ToU"),  # H2 stops two days before the trial ends
        ]
    )
    return import_frames(daily, _households(daily), seed=0)


def test_import_maps_the_archive(small: london.LondonData) -> None:
    c = small.customers.set_index("customer_id")
    assert list(c.index) == ["H1", "H2"]
    assert set(c["usage_category"]) == {"residential"}
    assert c.loc["H1", "tariff"] == "single" and c.loc["H2", "tariff"] == "tou"
    assert c.loc["H1", "industry_code"] == "Affluent" and c.loc["H2", "industry_code"] == "Adversity"
    assert c.loc["H1", "station"] == "ST000" and c.loc["H2", "station"] == "ST002"
    assert c.loc["H1", "open_date"] == pd.Timestamp("2013-01-30")
    assert pd.isna(c.loc["H1", "close_date"])  # read to the trial's last day
    assert c.loc["H2", "close_date"] == pd.Timestamp("2013-02-02")  # the day after its last reading
    assert set(small.areas["area_id"]) == set(c["area_id"])


def test_import_quarantines_and_scales_partial_days(small: london.LondonData) -> None:
    readings = london.readings_table(small)
    h1 = readings[readings["customer_id"] == "H1"].set_index("date")["kwh"]
    assert h1.to_dict() == {
        pd.Timestamp("2013-01-30"): 10.0,
        pd.Timestamp("2013-02-01"): 12.0,
        pd.Timestamp("2013-02-03"): 8.0,
    }
    q = small.quarantine
    assert sorted(zip(q["day"], q["_rule"], strict=True)) == [
        ("2013-01-31", "null"),
        ("2013-02-02", "out_of_range"),
    ]
    assert small.scaled_days == 1
    # Every source row is either a reading or quarantined: nothing disappears silently.
    assert len(readings) + len(q) == 7


def test_bills_scale_observed_days_to_open_days(small: london.LondonData) -> None:
    bills = london.bills_table(small).set_index(["customer_id", "period"])
    # H1 January: open 30th–31st, observed only the 30th (10 kWh) → 10 × 2/1.
    assert bills.loc[("H1", pd.Timestamp("2013-01-01")), "kwh"] == pytest.approx(20.0)
    # H1 February: open 1st–3rd, observed 12 and 8 → mean 10 × 3 days.
    assert bills.loc[("H1", pd.Timestamp("2013-02-01")), "kwh"] == pytest.approx(30.0)
    # H2 February: open 1st only (closes on the 2nd) → exactly its one reading.
    assert bills.loc[("H2", pd.Timestamp("2013-02-01")), "kwh"] == pytest.approx(5.0)
    row = bills.loc[("H1", pd.Timestamp("2013-01-01"))]
    assert row["amount_due"] == pytest.approx(20.0 * london.PRICE_YUAN_PER_KWH)
    assert row["issue_date"] == pd.Timestamp("2013-02-05") and row["due_date"] == pd.Timestamp("2013-02-25")


def test_area_supply_is_true_use_plus_technical_loss(small: london.LondonData) -> None:
    supply = london.area_supply_table(small, seed=0)
    assert set(supply["granularity"]) == {"month"} and not supply.duplicated(["area_id", "date"]).any()
    month = supply.set_index(["area_id", "date"])["supplied_kwh"]
    area = small.customers.set_index("customer_id").loc["H1", "area_id"]
    rate = small.tech_loss[area]
    assert london.TECH_LOSS_RANGE[0] <= rate <= london.TECH_LOSS_RANGE[1]
    # H1's February bill is 30 kWh; the supply adds a technical loss of rate × a wobble around 1.
    loss = month[(area, pd.Timestamp("2013-02-01"))] / 30.0 - 1.0
    assert 0.0 <= loss <= rate * 2.0


def _long_history(n: int = 40, days: int = 600, seed: int = 0) -> london.LondonData:
    """n households: the first half read for `days` days (eligible), the rest for 200 days (never thieves)."""
    rng = np.random.default_rng(seed)
    rows = []
    for i in range(n):
        length = days if i < n // 2 else 200
        d = pd.date_range("2012-01-01", periods=length, freq="D")
        rows.append(
            pd.DataFrame(
                {
                    "LCLid": f"H{i:03d}",
                    "day": d,
                    "energy_sum_kwh": rng.gamma(4.0, 2.5, size=length),
                    "energy_count": 48,
                    "block": i % 2,
                    "stdorToU": "Std",
                }
            )
        )
    daily = pd.concat(rows, ignore_index=True)
    daily["Acorn"] = "ACORN-E"
    daily["Acorn_grouped"] = "Affluent"
    return import_frames(daily, _households(daily), seed=seed)


def test_injection_follows_the_protocol() -> None:
    data = _long_history()
    p = InjectionProtocol(thief_share=0.5)  # 10 of the 20 eligible homes, two of each kind h1–h5
    out = inject_theft(data, seed=3, protocol=p)
    truth = out.truth.set_index("customer_id")
    thieves = truth[truth["is_thief"]]
    assert len(thieves) == 10 and thieves["is_eligible"].all()
    assert thieves["attack"].value_counts().to_dict() == {k: 2 for k in ("h1", "h2", "h3", "h4", "h5")}

    first = data.customers.set_index("customer_id")["open_date"]
    for cid, t in thieves.iterrows():
        i = int(np.flatnonzero(data.customer_ids == cid)[0])
        onset = (t["onset_date"] - data.days[0]).days
        start = (first[cid] - data.days[0]).days
        assert onset >= start + 300  # second half of a 600-day history
        before = slice(0, onset)
        np.testing.assert_array_equal(out.metered[i, before], data.true_kwh[i, before])
        after = out.metered[i, onset:600]
        assert not np.allclose(after, data.true_kwh[i, onset:600])
        assert 180 <= (t["inspected_at"].normalize() - t["onset_date"]).days <= 210
        if t["attack"] == "h1":
            np.testing.assert_allclose(after, data.true_kwh[i, onset:600] * t["factor"])
            assert 0.1 <= t["factor"] <= 0.8
        if t["attack"] == "h2":
            assert t["zero_window_days"] >= min(30, 600 - onset)
            assert (out.metered[i, onset : onset + int(t["zero_window_days"])][: 600 - onset] == 0).all()
    honest = ~truth["is_thief"].to_numpy()
    np.testing.assert_array_equal(out.metered[honest], data.true_kwh[honest])

    ins = out.inspections
    theft = ins[ins["result"] == "theft"]
    assert sorted(theft["customer_id"]) == sorted(thieves.index)
    assert (theft["recovered_kwh"] >= 0).all()
    normal = ins[ins["result"] == "normal"]
    assert len(normal) == round(0.2 * 40)
    # Random inspections sit in the first half of a home's history, before any onset.
    for _, r in normal.iterrows():
        assert r["inspected_at"] < first[r["customer_id"]] + pd.Timedelta(days=300)
    assert ins["inspection_id"].is_unique


def test_injection_is_deterministic_and_seeded() -> None:
    data = _long_history()
    a, b = inject_theft(data, seed=5), inject_theft(data, seed=5)
    np.testing.assert_array_equal(a.metered, b.metered)
    pd.testing.assert_frame_equal(a.inspections, b.inspections)
    c = inject_theft(data, seed=6)
    assert not a.truth["is_thief"].equals(c.truth["is_thief"]) or not np.array_equal(
        a.metered, c.metered, True
    )


def test_theft_raises_area_line_loss_but_not_supply() -> None:
    data = _long_history()
    out = inject_theft(data, seed=3, protocol=InjectionProtocol(thief_share=0.5))
    clean_supply = london.area_supply_table(data, seed=0)
    hit_supply = london.area_supply_table(out, seed=0)
    pd.testing.assert_frame_equal(clean_supply, hit_supply)  # the 台区 meter sees true use either way
    billed = london.bills_table(out).groupby("period")["kwh"].sum()
    clean_billed = london.bills_table(data).groupby("period")["kwh"].sum()
    assert (billed <= clean_billed + 1e-6).all() and billed.sum() < clean_billed.sum()


# --- a few dozen real households ---


@pytest.fixture(scope="module")
def real_src(tmp_path_factory: pytest.TempPathFactory) -> Path:
    if not (LONDON / london.DAILY_FILE).exists():
        pytest.skip(
            f"London smart-meter data not found at {LONDON} (expected beside the repo as ../shared/data)"
        )
    ids = london.source_households(LONDON)
    hh = london.read_households(LONDON)
    # 30 homes of block 0 and 10 of block 2: two stations, one with a single 台区 of 30 homes.
    picked = list(hh[hh["file"] == "block_0"]["LCLid"][:30]) + list(hh[hh["file"] == "block_2"]["LCLid"][:10])
    assert set(picked) <= set(ids)
    return london.write_source_subset(LONDON, tmp_path_factory.mktemp("london_src"), picked)


def _digest(folder: Path) -> dict[str, str]:
    return {p.name: hashlib.sha256(p.read_bytes()).hexdigest() for p in sorted(folder.iterdir())}


def test_real_import_writes_valid_contract_tables(real_src: Path, tmp_path: Path) -> None:
    before = _digest(real_src)
    summary = london.import_london(real_src, tmp_path / "wh", seed=0)
    assert _digest(real_src) == before  # the real data stays untouched
    assert summary.households == 40 and summary.stations == 2
    from features.sources import read_table

    readings = read_table(tmp_path / "wh", "readings")
    quarantined = pd.read_parquet(tmp_path / "wh" / "quarantine" / "readings.parquet")
    raw = pd.read_parquet(real_src / london.DAILY_FILE)
    assert len(readings) + len(quarantined) == len(raw)
    assert summary.quarantined == quarantined["_rule"].value_counts().to_dict()
    assert (readings["kwh"] >= 0).all() and not readings.duplicated(["customer_id", "date"]).any()

    validation = pytest.importorskip("features.validation")
    accepted: dict[str, pd.DataFrame] = {}
    for name in LOAD_ORDER:
        frame = read_table(tmp_path / "wh", name)
        result = validation.validate(frame, name, reference=accepted)
        assert len(result.quarantined) == 0, (name, result.quarantined.head())
        accepted[name] = result.accepted


def test_cli_import_london(real_src: Path, tmp_path: Path) -> None:
    from typer.testing import CliRunner

    from gridrisk.cli import app

    result = CliRunner().invoke(app, ["import", "london", str(real_src), "--out", str(tmp_path / "wh")])
    assert result.exit_code == 0, result.output
    assert (tmp_path / "wh" / "customers.parquet").exists() and "households" in result.output
    bad = CliRunner().invoke(
        app, ["import", "london", str(tmp_path / "nowhere"), "--out", str(tmp_path / "x")]
    )
    assert bad.exit_code == 2 and "daily_kwh.parquet" in bad.output.replace("\n", "")  # rich wraps long paths
