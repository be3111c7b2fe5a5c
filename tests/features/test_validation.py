"""Row rules of `features.validation.validate`, one test per rule, on hand-built exports of a few rows."""

from __future__ import annotations

import datetime as dt

import numpy as np
import pandas as pd
import pytest

from features.schema import TABLES, table
from features.validation import ContractError, Rule, validate


def bills(**overrides: list) -> pd.DataFrame:
    """Two valid bills as a CSV reader delivers them (all strings); overrides replace whole columns."""
    base = {
        "customer_id": ["C1", "C2"],
        "period": ["2024-01-01", "2024-01-01"],
        "kwh": ["120.5", "80"],
        "amount_due": ["70.1", "45"],
        "issue_date": ["2024-02-03", "2024-02-03"],
        "due_date": ["2024-02-20", "2024-02-20"],
        "known_at": ["2024-02-03 08:00:00", "2024-02-03 08:00:00"],
    }
    base.update(overrides)
    return pd.DataFrame(base)


def suspensions(**overrides: list) -> pd.DataFrame:
    """Two suspension applications, filed a week before they start; overrides replace whole columns."""
    base = {
        "application_id": ["A1", "A2"],
        "customer_id": ["C1", "C2"],
        "applied_at": ["2024-01-02 09:00", "2024-01-02 09:00"],
        "start_date": ["2024-01-10", "2024-01-10"],
        "end_date": ["2024-04-10", "2024-04-10"],
        "capacity_kva": ["400", "400"],
        "kind": ["suspension", "suspension"],
    }
    base.update(overrides)
    return pd.DataFrame(base)


def rules(result) -> list[tuple[int, str, str]]:
    q = result.quarantined
    return list(zip(q["_row"].tolist(), q["_column"].tolist(), q["_rule"].tolist(), strict=True))


def test_valid_rows_come_out_in_contract_dtypes_and_columns():
    result = validate(bills(), "bills", source="bills.csv")
    assert len(result.accepted) == 2 and result.quarantined.empty
    assert list(result.accepted.columns) == table("bills").column_names
    empty = table("bills").arrow_schema().empty_table().to_pandas(date_as_object=False)
    assert result.accepted.dtypes.to_dict() == empty.dtypes.to_dict()
    assert result.accepted["kwh"].tolist() == [120.5, 80.0]
    assert result.accepted["known_at"].iloc[0] == pd.Timestamp("2024-02-03 08:00")
    # optional columns absent from the export arrive as nulls, not missing
    assert result.accepted["kwh_peak"].isna().all()


def test_unparseable_number_and_date_are_quarantined_with_original_text():
    frame = bills(kwh=["12O", "80"], due_date=["2024-02-20", "20th Feb"])  # letter O; free text
    result = validate(frame, "bills", source="bills.csv")
    assert rules(result) == [(1, "kwh", "unparseable"), (2, "due_date", "unparseable")]
    assert result.quarantined["kwh"].tolist() == ["12O", "80"]
    assert result.quarantined["_source"].unique().tolist() == ["bills.csv"]
    assert result.accepted.empty


def test_null_in_a_non_nullable_column_and_null_tokens():
    # row 1: empty string; row 2: the \N a Hive dump writes for null
    result = validate(bills(customer_id=["", "C2"], amount_due=["70", "\\N"]), "bills")
    assert rules(result) == [(1, "customer_id", "null"), (2, "amount_due", "null")]


def test_nullable_optional_column_may_be_empty():
    result = validate(bills(kwh_peak=["", "NULL"]), "bills")
    assert len(result.accepted) == 2


def test_value_not_in_allowed():
    frame = pd.DataFrame(
        {
            "inspection_id": ["I1", "I2", "I3"],
            "customer_id": ["C1", "C1", "C1"],
            "inspected_at": ["2024-03-01 10:00"] * 3,
            "result": ["theft", "Normal", "stolen"],  # valid; case differs only; not a contract value
            "recovered_kwh": ["500", "0", "0"],
        }
    )
    result = validate(frame, "inspections")
    assert rules(result) == [(3, "result", "not_allowed")]
    assert result.accepted["result"].tolist() == ["theft", "normal"]


def test_negative_kwh_names_a_meter_reset():
    frame = pd.DataFrame(
        {
            "customer_id": ["C1", "C1", "C1"],
            "date": ["2024-03-01", "2024-03-02", "2024-03-03"],
            "kwh": ["5.2", "-99812.0", "0"],  # ordinary day; register rolled back; zero is allowed
        }
    )
    result = validate(frame, "readings")
    assert rules(result) == [(2, "kwh", "out_of_range")]
    assert "negative kWh — meter reset or reversed register?" in result.quarantined["_message"].iloc[0]


def test_above_max_is_out_of_range():
    result = validate(bills(power_factor=["0.93", "1.7"]), "bills")  # a power factor cannot exceed 1
    assert rules(result) == [(2, "power_factor", "out_of_range")]
    assert "outside [0, 1]" in result.quarantined["_message"].iloc[0]


def test_period_must_be_first_day_of_month():
    result = validate(bills(period=["2024-01-01", "2024-01-15"]), "bills")
    assert rules(result) == [(2, "period", "not_month_start")]


@pytest.mark.parametrize(
    ("tbl", "frame", "column"),
    [
        (
            "bills",
            bills(due_date=["2024-02-20", "2024-02-01"]),  # row 2 falls due before it is issued
            "due_date",
        ),
        (
            "bills",
            bills(known_at=["2024-02-03 00:00:00", "2024-02-02 23:59:59"]),  # row 1 on the bound
            "known_at",
        ),
        (
            "suspensions",
            suspensions(end_date=["2024-04-10", "2024-01-09"]),  # row 2 ends before it starts
            "end_date",
        ),
        (
            "payments",
            pd.DataFrame(
                {
                    "payment_id": ["P1", "P2"],
                    "customer_id": ["C1", "C2"],
                    "period": ["2024-01-01", "2024-03-01"],
                    "paid_at": ["2024-02-10 10:00", "2024-02-10 10:00"],  # paid before March began
                    "amount": ["70", "45"],
                    "channel": ["online", "counter"],
                }
            ),
            "paid_at",
        ),
    ],
)
def test_dates_out_of_order(tbl: str, frame: pd.DataFrame, column: str):
    result = validate(frame, tbl)
    assert rules(result) == [(2, column, "date_order")]


def test_same_key_different_content_quarantines_every_copy():
    # rows 1-2: one bill version twice with different amounts: nobody can tell which is right
    frame = bills(customer_id=["C1", "C1"], amount_due=["70", "75"])
    result = validate(frame, "bills")
    assert rules(result) == [(1, "customer_id", "duplicate_key"), (2, "customer_id", "duplicate_key")]


def test_exact_copy_keeps_the_first_row():
    frame = pd.concat([bills(), bills().iloc[[0]]], ignore_index=True)  # row 3 repeats row 1
    result = validate(frame, "bills")
    assert len(result.accepted) == 2
    assert rules(result) == [(3, "customer_id", "duplicate_row")]
    assert result.quarantined["_message"].iloc[0] == "exact copy of row 1, which was kept"


def test_a_reissued_bill_is_a_new_version_not_a_duplicate():
    # same customer and period, later known_at and a corrected amount (退补): both versions are kept
    frame = bills(customer_id=["C1", "C1"], known_at=["2024-02-03 08:00", "2024-03-05 08:00"])
    assert len(validate(frame, "bills").accepted) == 2


def test_an_event_entered_twice_is_one_event_known_from_its_first_entry():
    # A day's reading uploaded again (补采) with a later 入库时间 sent both copies to duplicate_key: the day
    # was lost. The earliest entry is kept, wherever it stands in the file; another kWh is still ambiguous.
    frame = pd.DataFrame(
        {
            "customer_id": ["C1", "C1", "C2", "C2", "C3", "C3"],
            "date": ["2024-03-01"] * 6,
            "kwh": ["4.2", "4.2", "7.0", "7.0", "1.0", "9.0"],
            "known_at": ["2024-03-05 02:00", "2024-03-02 02:00", "2024-03-02 02:00", "", "", "2024-03-02"],
        }
    )
    result = validate(frame, "readings")
    assert rules(result) == [
        (1, "customer_id", "duplicate_row"),
        (3, "customer_id", "duplicate_row"),
        (5, "customer_id", "duplicate_key"),
        (6, "customer_id", "duplicate_key"),
    ]
    kept = result.accepted.set_index("customer_id")["known_at"]
    assert kept["C1"] == pd.Timestamp("2024-03-02 02:00") and pd.isna(
        kept["C2"]
    )  # empty: from the day itself
    message = result.quarantined["_message"].tolist()[0]
    assert message == "the same row as row 2, entered again later (known_at), which was kept"


def test_invalid_rows_do_not_count_as_duplicates():
    # row 1 is broken (negative kWh), so row 2 with the same key is the only candidate and is kept
    frame = bills(customer_id=["C1", "C1"], kwh=["-3", "80"])
    result = validate(frame, "bills")
    assert rules(result) == [(1, "kwh", "out_of_range")]
    assert len(result.accepted) == 1


def test_chunks_give_the_answer_of_one_pass():
    # rows 1, 4, 7 are one bill (7 an exact copy of 1, 4 an edit of it: every copy out); row 6 copies row 2;
    # row 3 is broken and its key repeats in row 5. With 2 rows a chunk every pair sits in another chunk.
    frame = bills(
        customer_id=["C1", "C2", "C3", "C1", "C3", "C2", "C1"],
        period=["2024-01-01"] * 7,
        kwh=["120.5", "80", "-3", "120.5", "60", "80", "120.5"],
        amount_due=["70.1", "45", "30", "71", "30", "45", "70.1"],
        issue_date=["2024-02-03"] * 7,
        due_date=["2024-02-20"] * 7,
        known_at=["2024-02-03 08:00:00"] * 7,
    )
    whole, chunked = validate(frame, "bills"), validate(frame, "bills", chunk_rows=2)
    assert (
        rules(chunked)
        == rules(whole)
        == [
            (1, "customer_id", "duplicate_key"),
            (3, "kwh", "out_of_range"),
            (4, "customer_id", "duplicate_key"),
            (6, "customer_id", "duplicate_row"),
            (7, "customer_id", "duplicate_key"),
        ]
    )
    pd.testing.assert_frame_equal(chunked.quarantined, whole.quarantined)
    pd.testing.assert_frame_equal(chunked.accepted, whole.accepted)
    assert chunked.accepted_rows.tolist() == whole.accepted_rows.tolist() == [2, 5]
    assert chunked.quarantined["_message"].iloc[3] == "exact copy of row 2, which was kept"


def test_date_cells_in_a_text_column_read_alike_in_every_chunk():
    # An XLSX export with date cells in group_id: a midnight reads with its time, as its column has times.
    frame = customers(group_id=[pd.Timestamp("2021-03-01"), pd.Timestamp("2021-03-01 08:00"), None])
    whole, chunked = validate(frame, "customers"), validate(frame, "customers", chunk_rows=1)
    assert chunked.accepted["group_id"].tolist()[:2] == ["2021-03-01 00:00:00", "2021-03-01 08:00:00"]
    pd.testing.assert_frame_equal(chunked.accepted, whole.accepted)
    with pytest.raises(ValueError, match="chunk_rows"):
        validate(frame, "customers", chunk_rows=0)


def test_foreign_keys_only_against_given_parents():
    frame = bills(customer_id=["C1", "C9"])  # C9 is not a customer
    parents = {"customers": pd.DataFrame({"customer_id": ["C1", "C2"]})}
    assert rules(validate(frame, "bills", reference=parents)) == [(2, "customer_id", "unknown_reference")]
    assert validate(frame, "bills").quarantined.empty


def customers(**overrides: list) -> pd.DataFrame:
    base = {
        "customer_id": ["C1", "C2", "C3"],
        "usage_category": ["residential"] * 3,
        "industry_code": ["", "", ""],  # required column, but residential customers have no industry
        "voltage_kv": ["0.22"] * 3,
        "contract_capacity_kva": ["8"] * 3,
        "tariff": ["single"] * 3,
        "payment_method": ["online"] * 3,
        "supply_unit": ["U1", "U1", "U1"],
        "station": ["S1", "S1", "S1"],
        "area_id": ["A1", "A1", "A1"],
        "open_date": ["2015-06-01"] * 3,
    }
    base.update(overrides)
    return pd.DataFrame(base)


def test_customer_area_station_and_supply_unit_must_match_the_area():
    areas = pd.DataFrame(
        {"area_id": ["A1"], "station": ["S1"], "supply_unit": ["U1"], "transformer_kva": [400.0]}
    )
    frame = customers(
        area_id=["A1", "A7", "A1"],  # row 2: unknown area
        station=["S1", "S1", "S9"],  # row 3: a station code its area does not belong to
    )
    result = validate(frame, "customers", reference={"areas": areas})
    assert rules(result) == [(2, "area_id", "unknown_reference"), (3, "station", "area_mismatch")]


def test_close_date_before_open_date():
    result = validate(customers(close_date=["", "2014-01-01", ""]), "customers")
    assert rules(result) == [(2, "close_date", "date_order")]


def test_first_broken_rule_is_recorded_and_every_break_is_described():
    result = validate(bills(kwh=["-1", "80"], due_date=["2024-01-01", "2024-02-20"]), "bills")
    assert rules(result) == [(1, "kwh", "out_of_range")]
    assert result.quarantined["_message"].iloc[0].endswith("due_date is before issue_date")


def test_date_forms_from_real_exports():
    frame = bills(
        customer_id=["C1", "C2", "C3", "C4", "C5", "C6"],
        period=["202401", "2024-01", "2024年1月", "45292", "2024/1/1", "20240101"],
        kwh=["1"] * 6,
        amount_due=["1"] * 6,
        issue_date=["2024-02-03"] * 6,
        due_date=["2024-02-20"] * 6,
        known_at=[
            "2024-02-03 08:00:00",
            "2024/2/3 8:00",
            "20240203080000",
            "45325.3333333333",  # Excel serial for 2024-02-03 08:00
            "2024-02-03T08:00:00.000",
            "2024年2月3日 08:00",
        ],
    )
    result = validate(frame, "bills")
    assert result.quarantined.empty, result.quarantined["_message"].tolist()
    assert (result.accepted["period"] == pd.Timestamp("2024-01-01")).all()
    assert (result.accepted["known_at"] == pd.Timestamp("2024-02-03 08:00")).all()


def test_excel_cells_date_objects_and_serial_numbers():
    # what openpyxl hands over: real date cells as datetime, serials as float, ids as float
    frame = bills(
        customer_id=[10023.0, "C2"],
        period=[dt.datetime(2024, 1, 1), 45292.0],
        kwh=[120.5, 80],
        amount_due=[70.1, 45],
        issue_date=[dt.datetime(2024, 2, 3), 45325],
        due_date=[dt.date(2024, 2, 20), 45342],
        known_at=[dt.datetime(2024, 2, 3, 8), 45325.5],
    )
    frame = frame.astype(object)
    result = validate(frame, "bills")
    assert result.quarantined.empty
    assert result.accepted["customer_id"].tolist() == ["10023", "C2"]
    assert (result.accepted["period"] == pd.Timestamp("2024-01-01")).all()
    assert result.accepted["due_date"].tolist() == [pd.Timestamp("2024-02-20")] * 2
    assert result.accepted["known_at"].tolist() == [
        pd.Timestamp("2024-02-03 08:00"),
        pd.Timestamp("2024-02-03 12:00"),
    ]


def test_a_date_column_refuses_a_time_of_day():
    result = validate(bills(due_date=["2024-02-20", "2024-02-20 13:00"]), "bills")
    assert rules(result) == [(2, "due_date", "unparseable")]


def test_times_with_a_utc_offset_are_stored_as_local_wall_clock():
    # ISO 8601 with an offset, as a web or Java export writes it; the warehouse keeps Beijing wall clock.
    frame = bills(
        customer_id=["C1", "C2", "C3", "C4", "C5", "C6"],
        period=["2024-01-01"] * 6,
        kwh=["1"] * 6,
        amount_due=["1"] * 6,
        issue_date=["2024-02-03"] * 6,
        due_date=["2024-02-20"] * 6,
        known_at=[
            "2024-02-03T08:00:00+08:00",
            "2024-02-03T00:00:00Z",
            "2024-02-03 08:00:00 +0800",
            "2024-02-02T19:00:00-05:00",
            "2024-02-03T08:00:00+14:30",  # no zone is more than 14 hours from UTC
            "2024-02-03T08:00:00+08:60",
        ],
    )
    result = validate(frame, "bills")
    assert result.accepted["known_at"].tolist() == [pd.Timestamp("2024-02-03 08:00")] * 4
    assert rules(result) == [(5, "known_at", "unparseable"), (6, "known_at", "unparseable")]
    lower = validate(frame.iloc[:2].assign(known_at=["2024-02-03T00:00:00z"] * 2), "bills").accepted
    assert lower["known_at"].tolist() == [pd.Timestamp("2024-02-03 08:00")] * 2
    # Another zone's wall clock when the warehouse is kept in it.
    utc = validate(frame.iloc[:4], "bills", timezone="UTC").accepted["known_at"]
    assert utc.tolist() == [pd.Timestamp("2024-02-03 00:00")] * 4


def test_zoned_parquet_timestamps_are_converted_before_the_date_rule():
    # Spark and Hive store instants in UTC: a due date at Beijing midnight reads back as 16:00 the day before.
    accepted = validate(bills(), "bills").accepted
    zoned = accepted.assign(
        due_date=(accepted["due_date"] - pd.Timedelta(hours=8)).dt.tz_localize("UTC"),
        known_at=accepted["known_at"].dt.tz_localize("Asia/Shanghai").dt.tz_convert("UTC"),
    )
    again = validate(zoned, "bills")
    assert again.quarantined.empty, again.quarantined["_message"].tolist()
    pd.testing.assert_frame_equal(again.accepted, accepted)
    # Kept as UTC wall clock, the due date would carry 16:00 and be refused by the date rule.
    assert rules(validate(zoned, "bills", timezone="UTC")) == [
        (1, "due_date", "unparseable"),
        (2, "due_date", "unparseable"),
    ]


def test_an_unknown_time_zone_is_a_contract_error():
    with pytest.raises(ContractError, match="time zone 'Beijing' is unknown; name an IANA zone"):
        validate(bills(), "bills", timezone="Beijing")
    for machine in ("localtime", "posix/Factory"):
        with pytest.raises(ContractError, match=f"'{machine}' is this machine's, not the warehouse's"):
            validate(bills(), "bills", timezone=machine)


def test_typed_parquet_frames_pass_unchanged():
    accepted = validate(bills(), "bills").accepted
    again = validate(accepted, "bills")
    assert again.quarantined.empty
    pd.testing.assert_frame_equal(again.accepted, accepted)


def test_row_numbers_from_the_reader_are_kept():
    frame = bills(kwh=["1", "-1"]).assign(_row=[7, 9])  # the reader already dropped rows 8 (malformed)
    assert rules(validate(frame, "bills")) == [(9, "kwh", "out_of_range")]


def test_missing_required_column_is_a_contract_error_naming_it():
    with pytest.raises(ContractError, match=r"bills\.csv.*due_date.*--column-map"):
        validate(bills().drop(columns=["due_date"]), "bills", source="bills.csv")


def test_unknown_table_is_a_contract_error():
    with pytest.raises(ContractError, match="unknown table 'bill'"):
        validate(bills(), "bill")


def test_accepted_plus_quarantined_equals_read_on_random_noise():
    rng = np.random.default_rng(3)
    n = 400
    frame = bills(
        customer_id=rng.choice(["C1", "C2", "C3", "", "C4"], n).tolist(),
        period=rng.choice(["2024-01-01", "2024-02-01", "2024-02-15", "bad"], n).tolist(),
        kwh=rng.choice(["1", "-2", "x", "", "3.5"], n).tolist(),
        amount_due=["1"] * n,
        issue_date=["2024-03-03"] * n,
        due_date=rng.choice(["2024-03-20", "2024-03-01"], n).tolist(),
        known_at=["2024-03-03 08:00"] * n,
    )
    result = validate(frame, "bills")
    assert len(result.accepted) + len(result.quarantined) == n
    assert sorted(result.quarantined["_row"]) == sorted(set(result.quarantined["_row"]))
    assert set(result.quarantined["_rule"]) <= {str(r) for r in Rule}
    assert not result.accepted.duplicated(subset=list(table("bills").primary_key)).any()


def test_every_contract_table_validates_an_empty_export():
    for name, spec in TABLES.items():
        result = validate(pd.DataFrame({c: pd.Series([], dtype="str") for c in spec.required_columns}), name)
        assert result.accepted.empty and result.quarantined.empty


def test_duplicate_check_is_exact_under_hash_collisions(monkeypatch: pytest.MonkeyPatch):
    from features import validation as module

    # every row hashes alike; only rows 1 and 3 (same content) and rows 4 and 5 (other amounts) share keys
    monkeypatch.setattr(
        module, "row_hashes", lambda frame, cols: pd.Series(np.zeros(len(frame), dtype="uint64"))
    )
    frame = bills(
        customer_id=["C1", "C2", "C1", "C3", "C3"],
        amount_due=["70", "70", "70", "1", "2"],
        **{k: v * 5 for k, v in _first_bill().items() if k != "amount_due"},
    )
    assert rules(validate(frame, "bills")) == [
        (3, "customer_id", "duplicate_row"),
        (4, "customer_id", "duplicate_key"),
        (5, "customer_id", "duplicate_key"),
    ]


def _first_bill() -> dict[str, list]:
    return {k: [v[0]] for k, v in bills().items() if k != "customer_id"}


# --- dates after the ingest, implausible magnitudes, rows of several files -------------------------------

NOW = pd.Timestamp("2024-03-01 12:00")  # the ingest moment these tests pretend; never the real clock


def test_dates_of_things_that_happened_may_not_lie_after_the_ingest():
    frame = bills(
        customer_id=["C1", "C2", "C3", "C4"],
        period=["2024-02-01", "2024-03-01", "2099-01-01", "2024-02-01"],
        kwh=["1"] * 4,
        amount_due=["1"] * 4,
        # C1: issued the day before; C2: the day after the ingest, inside the one-day tolerance (UTC+8 times);
        # C3: a bill of 2099, a typo for 2009 or a wrong clock; C4: known only in 2030
        issue_date=["2024-02-29", "2024-03-02", "2099-01-05", "2024-02-29"],
        # due dates lie ahead by nature: C1's falls due next month, which is no fault
        due_date=["2024-04-20", "2024-03-20", "2099-01-25", "2024-03-20"],
        known_at=["2024-02-29 08:00", "2024-03-02 08:00", "2099-01-05 08:00", "2030-06-01 08:00"],
    )
    result = validate(frame, "bills", now=NOW)
    assert rules(result) == [(3, "period", "future"), (4, "known_at", "future")]
    message = result.quarantined["_message"].iloc[0]
    assert message.startswith("period: after the moment of the ingest (+1 day)") and "--now" in message
    assert "issue_date: after the moment" in message and "known_at: after the moment" in message
    assert "2024-03" not in message  # the moment is left out, so a re-ingest adds no new record
    # the same rows ingested as of 2100 are all history
    assert validate(frame, "bills", now=pd.Timestamp("2100-01-01")).quarantined.empty


def test_future_rule_covers_event_times_but_not_planned_dates():
    later = "2204-03-01"
    open_later = customers(open_date=["2015-06-01", later, "2015-06-01"], close_date=["", "", later])
    # row 2 opens in 2204; row 3's closure is scheduled ahead (a temporary supply's term), which is allowed
    assert rules(validate(open_later, "customers", now=NOW)) == [(2, "open_date", "future")]
    # A1 applies now for a suspension from next week to the autumn (planned dates lie ahead);
    # A2's application itself is dated next year
    applications = suspensions(
        applied_at=["2024-03-01 09:00", "2025-03-01 09:00"],
        start_date=["2024-03-08", "2025-03-08"],
        end_date=["2024-09-08", "2025-09-08"],
    )
    assert rules(validate(applications, "suspensions", now=NOW)) == [(2, "applied_at", "future")]
    readings = pd.DataFrame(
        {"customer_id": ["C1", "C1"], "date": ["2024-03-01", "2040-01-01"], "kwh": ["1", "2"]}
    )
    assert rules(validate(readings, "readings", now=NOW)) == [(2, "date", "future")]


def test_every_event_time_and_known_at_is_checked_against_the_ingest():
    for spec in TABLES.values():
        for name in (spec.event_time, spec.known_at):
            if name is not None:
                assert spec.column(name).past, f"{spec.name}.{name}"
    # planned dates are not: a bill falls due, and a suspension starts and ends, after it is recorded
    assert not table("bills").column("due_date").past
    assert not any(table("suspensions").column(c).past for c in ("start_date", "end_date"))


def test_ingest_moment_defaults_to_the_clock_and_parses_dates_and_aware_times():
    from features.validation import ingest_moment

    assert ingest_moment("2024-03-01") == pd.Timestamp("2024-03-01")
    assert ingest_moment("2024-03-01T08:00:00+08:00") == pd.Timestamp("2024-03-01 00:00")  # to UTC
    clock = pd.Timestamp.now(tz="UTC").tz_localize(None)
    assert abs(ingest_moment() - clock) < pd.Timedelta(minutes=1)
    with pytest.raises(ContractError, match="not a date or time"):
        ingest_moment("yesterday-ish")


def test_implausibly_large_numbers_are_out_of_range():
    frame = bills(
        customer_id=["C1", "C2", "C3", "C4", "C5"],
        period=["2024-01-01"] * 5,
        # C1: the contract's largest customer flat out for a month (7.44e8 kWh, ~1e9 元): real, accepted;
        # C2: 1e39 kWh, which float32 features would turn into inf; C3: 1e308 元; C4: -1e308 元 (a "credit")
        # C5: inf as text is not a number at all
        kwh=["744000000", "1e39", "5", "5", "inf"],
        amount_due=["1000000000", "1", "1e308", "-1e308", "1"],
        issue_date=["2024-02-03"] * 5,
        due_date=["2024-02-20"] * 5,
        known_at=["2024-02-03 08:00"] * 5,
    )
    result = validate(frame, "bills", now=NOW)
    assert rules(result) == [
        (2, "kwh", "out_of_range"),
        (3, "amount_due", "out_of_range"),
        (4, "amount_due", "out_of_range"),
        (5, "kwh", "unparseable"),
    ]
    assert "kwh: magnitude above 1e+10, the plausibility ceiling" in result.quarantined["_message"].iloc[0]
    assert result.accepted["kwh"].tolist() == [744_000_000.0]


def test_every_number_has_a_finite_bound_that_fits_float32():
    # the feature engine rounds energy to float32 (features/snapshot.py): no accepted value may overflow it
    for spec in TABLES.values():
        for col in spec.columns:
            if str(col.dtype) == "double":
                bound = col.ceiling if col.ceiling is not None else col.max
                assert bound is not None and bound < np.finfo(np.float32).max, f"{spec.name}.{col.name}"


def test_rows_of_several_files_are_checked_together_and_name_their_file():
    one, two = bills(), bills(amount_due=["70.1", "99"])  # C1's bill again, as is; C2's with another amount
    frame = pd.concat(
        [one.assign(_source="bills_1.csv", _row=[1, 2]), two.assign(_source="bills_2.csv", _row=[1, 2])],
        ignore_index=True,
    )
    result = validate(frame, "bills", now=NOW)
    q = result.quarantined
    assert q[["_source", "_row", "_rule"]].values.tolist() == [
        ["bills_1.csv", 2, "duplicate_key"],  # the first copy too: which amount is right is unknown
        ["bills_2.csv", 1, "duplicate_row"],
        ["bills_2.csv", 2, "duplicate_key"],
    ]
    assert q["_message"].iloc[1] == "exact copy of row 1 of bills_1.csv, which was kept"
    assert result.accepted["customer_id"].tolist() == ["C1"] and result.accepted_positions.tolist() == [0]


def test_thousands_separators_count_only_where_they_group_three_digits():
    frame = bills(
        customer_id=["C1", "C2", "C3", "C4", "C5", "C6", "C7", "C8"],
        kwh=[
            "1,234.50",  # a thousands separator
            "1 234",  # a space groups thousands too
            "1\u00a0234.50",  # so does Excel's no-break space (and the narrow and ideographic ones)
            "+ 12",  # a space after the sign
            "123,45",  # a decimal comma: not 12345
            "1,2,3",  # no number: not 123
            "12 34",  # two numbers run together: not 1234
            "1\u3000\u300034",  # nor with wide spaces
        ],
        period=["2024-01-01"] * 8,
        amount_due=["1"] * 8,
        issue_date=["2024-02-03"] * 8,
        due_date=["2024-02-20"] * 8,
        known_at=["2024-02-03 08:00"] * 8,
    )
    result = validate(frame, "bills")
    assert result.accepted["kwh"].tolist() == [1234.5, 1234.0, 1234.5, 12.0]
    assert rules(result) == [(r, "kwh", "unparseable") for r in (5, 6, 7, 8)]


def test_money_may_carry_its_currency_and_full_width_digits():
    amounts = ["¥1,234.50", "1234.50元", "￥12", "RMB 12.00", "-¥3.5", "１２３．５"]
    n = len(amounts)
    frame = bills(
        customer_id=[f"C{i}" for i in range(n)],
        period=["2024-01-01"] * n,
        kwh=["１２０", "10", "10", "10", "10", "12元"],  # full-width digits read; 元 is no unit of energy
        amount_due=amounts,
        issue_date=["2024-02-03"] * n,
        due_date=["2024-02-20"] * n,
        known_at=["2024-02-03 08:00"] * n,
    )
    result = validate(frame, "bills")
    assert result.accepted["amount_due"].tolist() == [1234.5, 1234.5, 12.0, 12.0, -3.5]
    assert result.accepted["kwh"].iloc[0] == 120.0
    assert rules(result) == [(6, "kwh", "unparseable")]
    assert result.quarantined["kwh"].tolist() == ["12元"]


def test_money_in_accounting_brackets_is_negative():
    # Excel's accounting format writes a credit as (12.50): it was unparseable, and the row quarantined.
    amounts = ["(12.50)", "(¥1,234.50)", "¥(3)", "（１２．５）", "(1,2)", "(-5)", "((5))", "5"]
    n = len(amounts)
    frame = bills(
        customer_id=[f"C{i}" for i in range(n)],
        period=["2024-01-01"] * n,
        kwh=["10"] * (n - 1) + ["(10)"],  # not money: a bracketed kWh stays unparseable
        amount_due=amounts,
        issue_date=["2024-02-03"] * n,
        due_date=["2024-02-20"] * n,
        known_at=["2024-02-03 08:00"] * n,
    )
    result = validate(frame, "bills")
    assert result.accepted["amount_due"].tolist() == [-12.5, -1234.5, -3.0, -12.5]
    assert rules(result) == [
        (5, "amount_due", "unparseable"),  # a decimal comma stays unreadable, brackets or not
        (6, "amount_due", "unparseable"),  # a sign inside the brackets: which one was meant?
        (7, "amount_due", "unparseable"),
        (8, "kwh", "unparseable"),
    ]


def test_a_year_alone_is_not_an_excel_serial():
    # 2015 as an Excel serial would be 1905-07-08; a five-digit serial still reads as a day
    frame = customers(open_date=["2015", 2015, "42156"]).astype(object)
    result = validate(frame, "customers")
    assert rules(result) == [(1, "open_date", "unparseable"), (2, "open_date", "unparseable")]
    assert result.accepted["open_date"].tolist() == [pd.Timestamp("2015-06-01")]


def test_an_id_that_lost_its_leading_zeros_is_named_as_such():
    parents = {"customers": pd.DataFrame({"customer_id": ["000123", "C2"]})}
    frame = bills(customer_id=["123", "C9"])  # a spreadsheet dropped 000123's zeros; C9 is unknown
    result = validate(frame, "bills", reference=parents)
    assert rules(result) == [(1, "customer_id", "unknown_reference"), (2, "customer_id", "unknown_reference")]
    first, second = result.quarantined["_message"].tolist()
    assert "other leading zeros" in first and "export customer_id as text" in first
    assert second == "customer_id: not in customers (an unknown id, or its customers row is quarantined)"


def test_an_id_kept_as_excel_text_loses_only_its_guard():
    # ="000123" is how an export keeps Excel from dropping the zeros; the quarantine keeps what the file said
    parents = {"customers": pd.DataFrame({"customer_id": ["000123"]})}
    result = validate(bills(customer_id=['="000123"', '="000999"']), "bills", reference=parents)
    assert result.accepted["customer_id"].tolist() == ["000123"]
    assert result.quarantined["customer_id"].tolist() == ['="000999"']
    # ="" guards nothing: the id is empty, a null, not the id "".
    empty = validate(customers(customer_id=['=""', '=" "', "C3"]), "customers")
    assert rules(empty) == [(1, "customer_id", "null"), (2, "customer_id", "null")]


def test_a_customer_id_longer_than_the_api_takes_is_out_of_range():
    # Ingest stores no id the API could not be asked about (1 to 64 characters in /v1/customers and scores).
    longest, too_long = "户" * 64, "C" * 65
    result = validate(customers(customer_id=[longest, too_long, "C3"]), "customers")
    assert result.accepted["customer_id"].tolist() == [longest, "C3"]
    assert rules(result) == [(2, "customer_id", "out_of_range")]
    assert "longer than 64 characters" in result.quarantined["_message"].iloc[0]


def test_ids_a_spreadsheet_mangled_are_quarantined_each_with_its_reason():
    parents = {"customers": pd.DataFrame({"customer_id": ["0431000001", "0431000002", "0431000003", "1"]})}
    ids = [
        "０４３１０００００１",  # full-width digits, as an input method types them: the same id
        "'0431000002",  # Excel's text prefix: the same id
        "4.3E+09",  # Excel's display of 4300000001: digits lost
        "0431000003\u200b",  # a zero-width space: an id that prints as 0431000003
        "0431000003\x00",  # a NUL byte
        4.301000000123457e17,  # an 18-digit id Excel stored as a number (15 digits kept)
        1234567890123456.0,  # 16 digits as a float: the 16th is not Excel's to keep
        1.0,  # a small whole number from a numeric cell is exact
    ]
    frame = pd.concat([bills()] * 4, ignore_index=True).assign(customer_id=ids).astype(object)
    frame["period"] = [f"2023-{m:02d}-01" for m in range(1, 9)]  # one key per row
    result = validate(frame, "bills", reference=parents)
    assert result.accepted["customer_id"].tolist() == ["0431000001", "0431000002", "1"]
    assert rules(result) == [(r, "customer_id", "unparseable") for r in (3, 4, 5, 6, 7)]
    messages = result.quarantined["_message"].tolist()
    assert messages[0] == (
        "customer_id: 4.3E+09 is a number in scientific notation, as a spreadsheet shows a long id it stored "
        "as a number: its digits are lost — export customer_id as text"
    )
    assert messages[1].startswith(
        "customer_id: '0431000003\\u200b' holds an invisible character, U+200B (ZERO WIDTH SPACE), at "
        "position 11: it would be another id that prints as 0431000003"
    )
    assert "U+0000 (a control character)" in messages[2]
    assert messages[3] == (
        "customer_id: 4.301000000123457e+17 was stored as a number, which keeps 15 significant digits: the "
        "id's last digits are lost — export customer_id as text"
    )
    assert messages[4].startswith("customer_id: 1234567890123456 was stored as a number")
    assert not any("not in customers" in m for m in messages)  # the id's own fault, not an unknown id


def test_a_customer_id_without_its_leading_zeros_is_no_new_customer():
    # A spreadsheet stored 0431000001 as 431000001: accepted, it became a second customer beside the first,
    # and the bills that lost their zeros too attached to it.
    ids = ["0431000001", "431000001", "431000002", "C7", "7"]
    frame = pd.concat([customers()] * 2, ignore_index=True).iloc[:5].assign(customer_id=ids)
    result = validate(frame, "customers", stored_keys=pd.Series(["0431000002", "007"]))
    assert result.accepted["customer_id"].tolist() == ["0431000001", "C7"]
    assert rules(result) == [(r, "customer_id", "duplicate_key") for r in (2, 3, 5)]
    said = (
        "customer_id: {0} is 0{0} without its leading zeros (0{0} is stored, or in this export): a "
        "spreadsheet or a numeric column dropped them, and it would be a second key for one record — export "
        "customer_id as text"
    )
    assert result.quarantined["_message"].tolist() == [said.format(i) for i in ("431000001", "431000002")] + [
        said.format("7").replace("07", "007")  # the longest stored form is named
    ]


def test_a_month_alone_is_a_value_only_where_a_month_is():
    # 缴费时间 "2024年3月" was stored as 2024-03-01 00:00: a payment made on 31 March looked 30 days earlier,
    # and a known_at a month early lets a feature see a row before it existed.
    payments = pd.DataFrame(
        {
            "payment_id": ["P1", "P2", "P3", "P4"],
            "customer_id": ["C1"] * 4,
            "period": ["202401", "2024年1月", "2024-01", 202401],  # a billing month: read from a month
            "paid_at": ["2024年3月", "202403", 202403, "2024-03-31 10:00"],
            "amount": ["1"] * 4,
            "channel": ["online"] * 4,
        }
    ).astype(object)
    result = validate(payments, "payments")
    assert result.accepted["payment_id"].tolist() == ["P4"]
    assert rules(result) == [(r, "paid_at", "unparseable") for r in (1, 2, 3)]
    assert result.quarantined["_message"].iloc[0] == (
        "paid_at: a month without its day (202403, 2024年3月): which day is unknown, and the first would "
        "move it up to a month earlier — export the time in full (only 电费年月, a billing month, is read "
        "from a month)"
    )
    supply = pd.DataFrame(
        {"area_id": ["A1"], "date": ["2024-01"], "granularity": ["month"], "supplied_kwh": ["9"]}
    )
    assert validate(supply, "area_supply").accepted["date"].tolist() == [pd.Timestamp("2024-01-01")]


def test_not_applicable_markers_are_empty_and_quarantine_keeps_what_the_export_wrote():
    # "/" is how Chinese reports write 不适用 (a resident's 功率因数): it quarantined the whole bill. A record
    # turned NULL, - and spaces into NaN, although it is said to keep the export's values as they were.
    frame = bills(power_factor=["/", "—"], max_demand_kw=["无", "-"], kwh=["NULL", " - "])
    result = validate(frame, "bills")
    assert rules(result) == [(1, "kwh", "null"), (2, "kwh", "null")]
    assert result.quarantined["kwh"].tolist() == ["NULL", " - "]
    assert result.quarantined["power_factor"].tolist() == ["/", "—"]
    accepted = validate(bills(power_factor=["/", "0.9"]), "bills").accepted
    assert accepted["power_factor"].isna().tolist() == [True, False]
