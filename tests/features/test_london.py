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


# --- real-data quirks: every row is a reading or a quarantine record with its rule ---


def _rules(data: london.LondonData) -> dict[str, str]:
    """Quarantined rows by their row number in the source → rule."""
    q = data.quarantine
    return dict(zip(q["_row"], q["_rule"], strict=True))


def test_rows_without_a_household_or_a_day_are_quarantined() -> None:
    rows = [
        ("H1", "2013-01-30"),  # a good row
        (None, "2013-01-30"),  # no household
        ("  ", "2013-01-30"),  # a blank id is no household either
        ("H1", None),  # no day
        ("H1", "2013-02-30"),  # no such date
        ("H1", "31/01/2013"),  # day-first text: not guessed
        ("H1", "1970-01-01"),  # a zero turned into a date, far before the trial
        ("H1", "2013-02-01"),  # a good row
        ("NaN", "2013-01-30"),  # an export's token for null is no household named "NaN"
    ]
    daily = pd.DataFrame(rows, columns=["LCLid", "day"]).assign(energy_sum_kwh=10.0, energy_count=48, block=0)
    daily = daily.assign(stdorToU="Std", Acorn="ACORN-E", Acorn_grouped="Affluent")
    data = import_frames(daily, _households(daily.iloc[[0]]), seed=0)
    assert _rules(data) == {
        1: "null", 2: "null", 3: "null", 4: "unparseable", 5: "unparseable", 6: "out_of_range", 8: "null",
    }  # fmt: skip
    assert list(data.customers["customer_id"]) == ["H1"]
    assert list(data.days) == list(pd.date_range("2013-01-30", "2013-02-01"))  # 1970 stretches nothing
    assert len(london.readings_table(data)) + len(data.quarantine) == len(daily)
    q = data.quarantine.set_index("_row")
    assert q.loc[4, "day"] == "2013-02-30" and q.loc[4, "_column"] == "day"  # the value as it was read


def test_impossible_sums_and_counts_are_quarantined() -> None:
    daily = _daily(
        [
            ("H1", "2013-01-01", 10.0, 48, 0, "Std"),  # a good day
            ("H1", "2013-01-02", 10.0, np.nan, 0, "Std"),  # how much of the day the sum covers is unknown
            ("H1", "2013-01-03", 10.0, 50, 0, "Std"),  # 25-hour day (clocks back): kept as read
            ("H1", "2013-01-04", 10.0, 96, 0, "Std"),  # every half-hour twice
            ("H1", "2013-01-05", -2.0, 48, 0, "Std"),  # meter reset
            ("H1", "2013-01-06", 600.0, 48, 0, "Std"),  # above 23 kVA × 24 h = 552 kWh
            ("H1", "2013-01-07", 300.0, 24, 0, "Std"),  # 600 kWh once scaled to a full day
            ("H1", "2013-01-08", np.inf, 48, 0, "Std"),  # not a reading
        ]
    )
    data = import_frames(daily, _households(daily), seed=0)
    assert _rules(data) == {1: "null", **{row: "out_of_range" for row in (3, 4, 5, 6, 7)}}
    kwh = london.readings_table(data).set_index("date")["kwh"]
    assert kwh.to_dict() == {pd.Timestamp("2013-01-01"): 10.0, pd.Timestamp("2013-01-03"): 10.0}
    assert "readings counted twice" in data.quarantine.set_index("_row").loc[3, "_message"]


def test_sums_stored_as_text_are_parsed_or_quarantined() -> None:
    daily = _daily([("H1", "2013-01-01", 0.0, 48, 0, "Std")] * 3)
    daily["day"] = pd.to_datetime(["2013-01-01", "2013-01-02", "2013-01-03"])
    daily["energy_sum_kwh"] = ["7.5", "Null", "12,O"]  # a number, an export's null, a typo
    data = import_frames(daily, _households(daily), seed=0)
    assert _rules(data) == {1: "null", 2: "unparseable"}
    assert london.readings_table(data)["kwh"].tolist() == [7.5]


def test_a_day_read_twice_keeps_one_exact_copy_and_drops_conflicting_ones() -> None:
    daily = _daily(
        [
            ("H1", "2013-01-01", 10.0, 48, 0, "Std"),
            ("H1", "2013-01-01", 10.0, 48, 0, "Std"),  # exact copy: the first is kept
            ("H1", "2013-01-02", 10.0, 48, 0, "Std"),
            ("H1", "2013-01-02", 12.0, 48, 0, "Std"),  # same day, another sum: which is right is unknown
            ("H1", "2013-01-03", np.nan, 0, 0, "Std"),  # a null copy of a good day: the good one stays
            ("H1", "2013-01-03", 9.0, 48, 0, "Std"),
        ]
    )
    data = import_frames(daily, _households(daily), seed=0)
    assert _rules(data) == {1: "duplicate_row", 2: "duplicate_key", 3: "duplicate_key", 4: "null"}
    assert data.quarantine.set_index("_row").loc[1, "_message"] == "exact copy of row 0, which was kept"
    kwh = london.readings_table(data).set_index("date")["kwh"]
    assert kwh.to_dict() == {pd.Timestamp("2013-01-01"): 10.0, pd.Timestamp("2013-01-03"): 9.0}
    assert len(kwh) + len(data.quarantine) == len(daily)


def test_household_attributes_fall_back_and_unknown_tariffs_are_quarantined() -> None:
    daily = _daily(
        [
            ("H1", "2013-01-01", 10.0, 48, 1, "std"),  # any case of Std or ToU is a known tariff
            ("H2", "2013-01-01", 10.0, 48, 3, "Economy7"),  # no known tariff: the household cannot be billed
            ("H2", "2013-01-02", 10.0, 48, 3, "Economy7"),
            ("H3", "2013-01-01", 10.0, 48, 5, None),  # tariff only in the household table
            ("H4", "2013-01-01", 10.0, 48, 7, "ToU"),  # block stored as text; no Acorn group anywhere
            ("H5", "2013-01-01", 10.0, 48, 9, "Std"),  # no block number anywhere: no station
            ("H6", "2013-01-01", 10.0, 48, 9, "Std"),  # 7.5 is no block: the household table's file is
            ("H7", "2013-01-01", 10.0, 48, 9, "Std"),  # a negative block is none either
        ]
    )
    daily["block"] = ["block_1", "block_3", "block_3", "5", "block_7", None, "block_7.5", "-3"]
    daily["Acorn_grouped"] = [
        "ACORN-",
        "Affluent",
        "Affluent",
        "Adversity",
        None,
        "Affluent",
        "Affluent",
        None,
    ]
    households = _households(daily.assign(block=0))
    households.loc[households["LCLid"] == "H3", "stdorToU"] = "ToU"
    households.loc[households["LCLid"] == "H4", "Acorn_grouped"] = np.nan
    households.loc[households["LCLid"].isin(["H5", "H7"]), "file"] = np.nan
    households.loc[households["LCLid"] == "H6", "file"] = "block_9"
    data = import_frames(daily, households, seed=0)
    assert _rules(data) == {1: "not_allowed", 2: "not_allowed", 5: "null", 7: "null"}
    assert "'Economy7'" in data.quarantine.set_index("_row").loc[1, "_message"]
    c = data.customers.set_index("customer_id")
    assert list(c.index) == ["H1", "H3", "H4", "H6"]
    assert c["tariff"].to_dict() == {"H1": "single", "H3": "tou", "H4": "tou", "H6": "single"}
    assert c["station"].to_dict() == {"H1": "ST001", "H3": "ST005", "H4": "ST007", "H6": "ST009"}
    assert c.loc["H1", "industry_code"] == "ACORN-" and pd.isna(c.loc["H4", "industry_code"])  # not "nan"


def test_zone_aware_days_are_london_calendar_days() -> None:
    # Midnights of the days around the spring clock change, stored in UTC: 31 March is 23 hours long.
    daily = _daily([("H1", "2013-03-30", 1.0, 48, 0, "Std"), ("H1", "2013-03-31", 2.0, 46, 0, "Std"),
                    ("H1", "2013-04-01", 3.0, 48, 0, "Std")])  # fmt: skip
    daily["day"] = daily["day"].dt.tz_localize("Europe/London").dt.tz_convert("UTC")
    data = import_frames(daily, _households(daily), seed=0)
    assert data.quarantine.empty and list(data.days) == list(pd.date_range("2013-03-30", "2013-04-01"))
    assert london.readings_table(data)["kwh"].round(3).tolist() == [1.0, round(2.0 * 48 / 46, 3), 3.0]


def test_text_days_with_an_offset_are_london_calendar_days(tmp_path: Path) -> None:
    # ISO text with a UTC offset, mixed offsets and offset-free text in one column: each is a London day.
    daily = _daily([("H1", "2013-06-01", 1.0, 48, 0, "Std"), ("H1", "2013-06-02", 2.0, 48, 0, "Std"),
                    ("H1", "2013-06-03", 3.0, 48, 0, "Std")])  # fmt: skip
    daily["day"] = ["2013-05-31T23:00:00Z", "2013-06-02T00:00:00+01:00", "2013-06-03"]
    src = _write_source(tmp_path / "src", daily, _households(daily))
    summary = london.import_london(src, tmp_path / "wh")  # read through the file, as the CLI does
    assert summary.quarantined == {} and (summary.first_day, summary.last_day) == ("2013-06-01", "2013-06-03")
    readings = pd.read_parquet(tmp_path / "wh" / "readings.parquet")
    assert readings.sort_values("date")["kwh"].tolist() == [1.0, 2.0, 3.0]


def _write_source(folder: Path, daily: pd.DataFrame, households: pd.DataFrame | None) -> Path:
    folder.mkdir(parents=True)
    daily.to_parquet(folder / london.DAILY_FILE, index=False)
    if households is not None:
        households.to_csv(folder / london.HOUSEHOLDS_FILE, index=False, compression="gzip")
    return folder


def test_household_table_rows_not_imported_are_quarantined(tmp_path: Path) -> None:
    daily = _daily([("H1", "2013-01-01", 10.0, 48, 0, "Std"), ("H2", "2013-01-01", 10.0, 48, 0, "Economy7")])
    households = pd.concat(
        [
            _households(daily),  # H1 imported; H2 has no known tariff, so no household
            _households(daily).iloc[[0]],  # H1 again, the same: kept once
            _households(daily).iloc[[0]].assign(Acorn_grouped="Adversity"),  # H1 a third time, different
            pd.DataFrame({"LCLid": ["H9", None], "stdorToU": "Std"}),  # H9 has no daily row; no id at all
        ],
        ignore_index=True,
    )
    src = _write_source(tmp_path / "src", daily, households)
    summary = london.import_london(src, tmp_path / "wh")
    q = pd.read_parquet(tmp_path / "wh" / "quarantine" / "customers.parquet")
    assert dict(zip(q["_row"], q["_rule"], strict=True)) == {
        0: "duplicate_key", 1: "not_allowed", 2: "duplicate_key", 3: "duplicate_key",
        4: "unknown_reference", 5: "null",
    }  # fmt: skip
    assert "'Economy7', neither Std nor ToU" in q.loc[q["_row"] == 1, "_message"].iloc[0]
    assert summary.quarantined_households == {
        "duplicate_key": 3, "not_allowed": 1, "null": 1, "unknown_reference": 1
    }  # fmt: skip
    assert summary.quarantined == {"not_allowed": 1} and summary.households == 1
    # H1's rows disagree, so its Acorn group is the daily file's own.
    customers = pd.read_parquet(tmp_path / "wh" / "customers.parquet")
    assert customers["industry_code"].tolist() == ["Affluent"]


def test_missing_household_table_uses_the_daily_file_and_broken_files_are_named(tmp_path: Path) -> None:
    daily = _daily([("H1", "2013-01-01", 10.0, 48, 2, "ToU")])
    src = _write_source(tmp_path / "src", daily, None)
    summary = london.import_london(src, tmp_path / "wh")
    customers = pd.read_parquet(tmp_path / "wh" / "customers.parquet")
    assert summary.households == 1 and customers["tariff"].tolist() == ["tou"]
    broken = tmp_path / "broken"
    broken.mkdir()
    (broken / london.DAILY_FILE).write_bytes(b"not a parquet file")
    with pytest.raises(london.LondonError, match=r"broken/daily_kwh.parquet cannot be read as Parquet"):
        london.import_london(broken, tmp_path / "wh2")
    (broken / london.DAILY_FILE).unlink()
    _write_source(broken / "x", daily.drop(columns="energy_count"), None)
    with pytest.raises(london.LondonError, match=r"lacks columns \['energy_count'\]"):
        london.import_london(broken / "x", tmp_path / "wh3")


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


def test_a_household_without_a_usable_day_is_inspected_on_its_open_date() -> None:
    days = pd.date_range("2012-01-01", periods=400).strftime("%Y-%m-%d")
    rows = [("H1", d, 8.0, 48, 0, "Std") for d in days]
    rows.append(("H2", "2012-06-01", 0.1, 10, 0, "Std"))  # its one row is too partial: no reading at all
    daily = _daily(rows)
    data = import_frames(daily, _households(daily), seed=0)
    out = inject_theft(data, seed=0, protocol=InjectionProtocol(random_inspection_share=1.0))
    inspected = out.inspections.set_index("customer_id")["inspected_at"]
    assert inspected["H2"].normalize() == pd.Timestamp("2012-06-01")  # not the trial's first day


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
