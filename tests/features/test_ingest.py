"""`gridrisk ingest` end to end on small hand-built exports: file formats, encodings, the default Chinese map,
upserts, quarantine and the exit-code-2 paths through the CLI."""

from __future__ import annotations

import datetime as dt
import hashlib
import json
import shutil
from pathlib import Path

import numpy as np
import openpyxl
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from typer.testing import CliRunner

from features.ingest import ingest
from features.schema import TABLES
from features.sources import WarehouseError, has_table, read_export, read_quarantine, read_table
from features.validation import ContractError
from gridrisk.cli import app

AREAS = "台区编号,供电所,供电单位,配变容量(kVA)\nA1,S1,U1,400\nA2,S2,U1,630\n"
CUSTOMERS = (
    "户号,用电类别,行业分类,供电电压,合同容量,电价类型,缴费方式,供电单位,供电所,台区编号,立户日期,户名\n"
    "C1,居民,,0.22,8,单一制,代扣,U1,S1,A1,2015-06-01,张三\n"
    "C2,大工业,C13,10,630,两部制,坐收,U1,S2,A2,2018-03-01,某厂\n"
    "C3,一般工商业,F52,0.4,50,分时,网上缴费,U1,S1,A1,2019-01-01,某店\n"
)
BILL_HEADER = "户号,电费年月,电量,应收电费,发行日期,缴费截止日期,入账时间\n"
BILLS = (
    BILL_HEADER + "C1,202401,120,70.5,2024-02-03,2024-02-20,2024-02-03 08:00:00\n"
    "C2,202401,52000,39000,2024-02-03,2024-02-20,2024-02-03 08:00:00\n"
    "C3,202401,900,650.25,2024-02-03,2024-02-20,2024-02-03 08:00:00\n"
)


def write(folder: Path, name: str, text: str, encoding: str = "utf-8") -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / name
    path.write_bytes(text.encode(encoding))
    return path


def export(tmp_path: Path, bills: str = BILLS, encoding: str = "utf-8") -> Path:
    src = tmp_path / "export"
    write(src, "台区.csv", AREAS)
    write(src, "客户档案.csv", CUSTOMERS)
    write(src, "电费账单.csv", bills, encoding)
    return src


def run(*args: str):
    return CliRunner().invoke(app, ["ingest", *map(str, args)], env={"COLUMNS": "200"})


def count_reads(monkeypatch: pytest.MonkeyPatch) -> list[str]:
    """The names of the files ingest reads from now on, once per read."""
    from features import ingest as module

    reads: list[str] = []

    def counted(path: Path):  # type: ignore[no-untyped-def]
        reads.append(path.name)
        return read_export(path)

    monkeypatch.setattr(module, "read_export", counted)
    return reads


def digest(folder: Path) -> dict[str, str]:
    return {
        str(p.relative_to(folder)): hashlib.sha256(p.read_bytes()).hexdigest()
        for p in sorted(folder.rglob("*.parquet"))
    }


def test_chinese_headers_and_values_through_the_default_map(tmp_path: Path):
    wh = tmp_path / "wh"
    report = ingest(export(tmp_path), wh)
    assert {t: (p.rows_read, p.accepted, p.quarantined) for t, p in report.tables.items()} == {
        "areas": (2, 2, 0),
        "customers": (3, 3, 0),
        "bills": (3, 3, 0),
    }
    customers = read_table(wh, "customers").set_index("customer_id")
    assert customers["usage_category"].to_dict() == {
        "C1": "residential",
        "C2": "large_industrial",
        "C3": "general_commercial",
    }
    assert customers["tariff"].tolist() == ["single", "two_part", "tou"]
    assert customers["payment_method"].tolist() == ["bank_withholding", "counter", "online"]
    assert read_table(wh, "areas")["transformer_kva"].tolist() == [400.0, 630.0]  # header with a unit
    bills = read_table(wh, "bills")
    assert bills["period"].unique().tolist() == [pd.Timestamp("2024-01-01")]
    assert bills["amount_due"].sum() == pytest.approx(70.5 + 39000 + 650.25)


# utf-16: Excel's "Save as Unicode text" (UTF-16 with a byte-order mark), renamed .csv
@pytest.mark.parametrize("encoding", ["gbk", "utf-8-sig", "gb18030", "utf-16"])
def test_csv_encodings_are_detected(tmp_path: Path, encoding: str):
    wh = tmp_path / "wh"
    bills = BILLS.replace(",", "\t") if encoding == "utf-16" else BILLS  # Unicode text is tab-separated
    report = ingest(export(tmp_path, bills=bills, encoding=encoding), wh)
    assert report.tables["bills"].accepted == 3
    assert report.tables["bills"].files[0].startswith("电费账单.csv")
    if encoding == "utf-16":  # named for what it is, not refused as "not UTF-8 … 0xff"
        assert report.tables["bills"].files == ["电费账单.csv (utf-16)"]
    assert read_table(wh, "bills")["customer_id"].tolist() == ["C1", "C2", "C3"]


def test_a_gbk_file_that_decodes_as_utf8_is_named_in_a_note(tmp_path: Path):
    # 卢伟 and 史强 in GBK are valid UTF-8 (¬ΰ, ʷǿ): with ASCII headers, the names were stored garbled
    # without a word. Which encoding is right cannot be told for certain, so it is said, not changed.
    src = export(tmp_path)
    assert not any("GB18030" in n for n in ingest(src, tmp_path / "wh").tables["customers"].notes)  # UTF-8
    header = (
        "customer_id,usage_category,industry_code,voltage_kv,contract_capacity_kva,tariff,payment_method,"
    )
    rows = [
        f"C{i},residential,,0.22,8,single,online,U1,S1,A1,2015-06-01,{name}"
        for i, name in ((1, "卢伟"), (2, "史强"))
    ]
    (src / "客户档案.csv").write_bytes(
        "\n".join([header + "supply_unit,station,area_id,open_date,name", *rows]).encode("gbk")
    )
    report = ingest(src, tmp_path / "wh2").tables["customers"]
    assert report.files == ["客户档案.csv (utf-8)"]
    assert any("letters such as ¬ΰʷǿ, which as GB18030 would be 卢伟史强" in note for note in report.notes)


def test_undecodable_csv_exits_2_naming_the_file(tmp_path: Path):
    src = export(tmp_path)
    write(src, "电费账单.csv", BILLS, "utf-16-le")  # UTF-16 without its byte-order mark: not certain
    result = run(src, "--warehouse", tmp_path / "wh")
    assert result.exit_code == 2
    assert "电费账单.csv: wrong encoding" in result.output and "re-export the file as UTF-8" in result.output
    assert "looks like UTF-16 without a byte-order mark" in result.output
    assert not (tmp_path / "wh" / "areas.parquet").exists()  # refused before anything was written


def test_missing_required_column_exits_2_naming_file_column_and_fix(tmp_path: Path):
    src = export(tmp_path, bills=BILLS.replace("缴费截止日期", "备注"))
    result = run(src, "--warehouse", tmp_path / "wh")
    assert result.exit_code == 2
    assert "电费账单.csv (table bills): missing required column(s) due_date (缴费截止日期)" in result.output
    assert '--column-map TOML ([headers.bills] "<your header>" = "due_date")' in result.output
    assert not (tmp_path / "wh").exists()  # areas and customers were fine, but nothing is written


def test_a_title_above_the_header_or_a_header_over_two_rows_is_named(tmp_path: Path):
    # Report layouts: "missing required column(s) <all of them> … map them in a --column-map" sent the user
    # to a column map that cannot help.
    src = export(tmp_path, bills="长沙供电公司2024年01月电费发行明细表\n" + BILLS)
    result = run(src, "--warehouse", tmp_path / "wh")
    assert result.exit_code == 2
    assert (
        "电费账单.csv (table bills): line 1 ('长沙供电公司2024年01月电费发行明细表') is not the header, and "
        "line 2 names the columns (户号, 电费年月, 电量, 应收电费, 发行日期, 缴费截止日期, 入账时间); delete "
        "the lines above it (a report title), then ingest again"
    ) in result.output
    (src / "电费账单.csv").unlink()
    book = openpyxl.Workbook()
    sheet = book.active
    sheet.append(
        ["户号", "电费年月", "电量", None, "金额", "日期", None, "入账时间"]
    )  # 电量 over 结算电量, 峰电量
    sheet.append([None, None, "结算电量", "峰电量", "应收电费", "发行日期", "缴费截止日期", None])
    sheet.merge_cells("C1:D1")
    sheet.append(["C1", "2024-01", 120, 80, 70.5, "2024-02-03", "2024-02-20", "2024-02-03 08:00"])
    book.save(src / "电费账单.xlsx")
    result = run(src, "--warehouse", tmp_path / "wh")
    assert result.exit_code == 2
    assert (
        "电费账单.xlsx (table bills): the header spans rows 1–2 (cells merged over sub-headers); make it "
        in (result.output)
    )


def test_two_headers_for_one_column_read_the_one_the_map_lists_first(tmp_path: Path):
    # SG186 payment exports carry 缴费方式 (the instrument: 现金, POS) beside 缴费渠道 (the channel), and
    # bill exports 电量 (metered) beside 结算电量 (settled, billed): both pairs map to one column, and the
    # run was refused with a fix ("map the others elsewhere") the column map could not express.
    src = export(
        tmp_path, bills=BILLS.replace("电量,", "结算电量,电量,", 1).replace(",202401,", ",202401,1,")
    )
    write(src, "缴费记录.csv", "缴费流水号,户号,电费年月,缴费时间,实收金额,缴费方式,缴费渠道\n"
          "P1,C1,202401,2024-02-10 10:00,70.5,现金,坐收\n")  # fmt: skip
    result = run(src, "--warehouse", tmp_path / "wh")
    assert result.exit_code == 0, result.output
    assert sorted(read_table(tmp_path / "wh", "bills")["kwh"]) == [1.0, 1.0, 1.0]  # 结算电量, not 电量
    assert read_table(tmp_path / "wh", "payments")["channel"].tolist() == ["counter"]
    assert (
        "headers 缴费渠道, 缴费方式 all map to channel: 缴费渠道 is read (first in the column map), 缴费方式 "
        'not; to read another, drop 缴费渠道 in a --column-map TOML ([headers.payments] "缴费渠道" = "")'
    ) in " ".join(result.output.split())
    # The other way round, as the note says: 缴费方式 read as the channel, 电量 as the kWh.
    dropped = write(tmp_path, "map.toml", '[headers.payments]\n"缴费渠道" = ""\n'
                    '[headers.bills]\n"结算电量" = ""\n[values.channel]\n"现金" = "counter"\n')  # fmt: skip
    report = ingest(src, tmp_path / "wh2", column_map=dropped)
    assert report.tables["payments"].extra_columns == ["缴费渠道"] and not report.tables["payments"].notes
    assert sorted(read_table(tmp_path / "wh2", "bills")["kwh"]) == [120.0, 900.0, 52000.0]


def test_a_header_dropped_in_the_column_map_is_not_read_even_as_a_contract_name(tmp_path: Path):
    src = export(tmp_path, bills=BILLS.replace("电量,", "kwh,", 1))
    dropped = write(tmp_path, "map.toml", '[headers.bills]\n"kwh" = ""\n')
    result = run(src, "--warehouse", tmp_path / "wh", "--column-map", dropped)
    assert result.exit_code == 2 and "missing required column(s) kwh" in result.output


def test_truncated_parquet_exits_2(tmp_path: Path):
    wh = tmp_path / "wh"
    ingest(export(tmp_path), wh)
    src = tmp_path / "parquet"
    src.mkdir()
    whole = (wh / "bills.parquet").read_bytes()
    (src / "bills.parquet").write_bytes(whole[: len(whole) // 2])
    result = run(src, "--warehouse", tmp_path / "wh2")
    assert result.exit_code == 2
    assert "bills.parquet: unreadable Parquet" in result.output


def test_truncated_xlsx_exits_2(tmp_path: Path):
    path = tmp_path / "x" / "电费账单.xlsx"
    path.parent.mkdir()
    book = openpyxl.Workbook()
    book.active.append(["户号"])
    book.save(path)
    path.write_bytes(path.read_bytes()[:300])
    result = run(path, "--warehouse", tmp_path / "wh")
    assert result.exit_code == 2 and "电费账单.xlsx: unreadable XLSX" in result.output


def test_unknown_file_name_and_missing_source_exit_2(tmp_path: Path):
    odd = write(tmp_path, "notes.csv", "a,b\n1,2\n")
    result = run(odd, "--warehouse", tmp_path / "wh")
    assert result.exit_code == 2 and "cannot tell which table" in result.output
    assert run(tmp_path / "nowhere", "--warehouse", tmp_path / "wh").exit_code == 2


@pytest.mark.parametrize(
    ("cut", "why"),
    [
        (BILLS + "C1,202402,13", "cut after a field separator: too few fields"),
        (BILLS + 'C1,202402,130,"70', "cut inside a quoted value"),
        (BILLS + 'C1,202402,130,70,2024-03-03,2024-03-20,"2024-03-03 08:0', "every field, the last one open"),
    ],
)
def test_truncated_csv_holds_back_the_cut_row(tmp_path: Path, cut: str, why: str):
    wh = tmp_path / "wh"
    report = ingest(export(tmp_path, bills=cut), wh).tables["bills"]
    assert report.by_rule == {"malformed_row": 1}, why
    assert report.rows_read == report.accepted + report.quarantined == 4
    q = read_quarantine(wh, "bills")
    assert q[["_rule", "_row", "_source"]].values.tolist() == [["malformed_row", 5, "电费账单.csv"]]


def test_a_complete_last_row_without_a_final_line_end_is_read(tmp_path: Path):
    # Java and database export tools often write no line end after the last row; it is not a cut file, and
    # quarantining that row every month left a record nobody could clear.
    report = ingest(export(tmp_path, bills=BILLS[:-1]), tmp_path / "wh").tables["bills"]
    assert (report.rows_read, report.accepted, report.quarantined) == (3, 3, 0)
    assert any("no line end after the last line (line 4)" in note for note in report.notes)


def test_a_header_without_rows_is_an_empty_export_with_or_without_its_line_end(tmp_path: Path):
    for header in (BILL_HEADER, BILL_HEADER.rstrip("\n")):  # no bills this month
        report = ingest(export(tmp_path, bills=header), tmp_path / "wh").tables["bills"]
        assert (report.rows_read, report.quarantined) == (0, 0)
    result = run(export(tmp_path, bills=""), "--warehouse", tmp_path / "wh2")  # 0 bytes: a failed export
    assert result.exit_code == 2 and "电费账单.csv: empty file (0 bytes)" in result.output


def test_an_unclosed_quote_holds_back_its_line_and_no_other(tmp_path: Path):
    # A remark opening a quote it never closes made the reader take every line after it into that value:
    # 200 bills read as 11, and in a large file the whole run was refused in the reader's words.
    dates = "2024-02-03,2024-02-20,2024-02-03"
    rows = [f"C{1 + i % 3},{2000 + i // 12}{1 + i % 12:02d},{100 + i},50,{dates},正常" for i in range(200)]
    rows[10] = rows[10].replace("正常", '"客户称已缴')  # file line 12: closes only at the quote on line 52
    rows[50] = rows[50].replace("正常", '"未缴')  # line 52, read again on its own: closes at line 61
    rows[59] = rows[59].replace("正常", '"复核')  # line 61, read again on its own: runs to the end
    header = BILL_HEADER.rstrip("\n") + ",备注\n"
    src = export(tmp_path, bills=header + "\n".join(rows) + "\n")
    report = ingest(src, tmp_path / "wh", now="2100-01-01").tables["bills"]
    assert (report.rows_read, report.accepted, report.by_rule) == (200, 197, {"malformed_row": 3})
    q = read_quarantine(tmp_path / "wh", "bills")
    assert q["_row"].tolist() == [12, 52, 61]
    assert q["_text"].tolist() == [rows[10], rows[50], rows[59]]  # the line alone, not the rest of the file
    messages = q["_message"].tolist()
    assert messages[0].startswith(
        "a quote opens a value in this line and closes only on line 52, taking the 40"
    )
    assert "closes only on line 61" in messages[1] and "runs to the end of the file" in messages[2]


def test_a_row_longer_than_the_readers_block_is_read(tmp_path: Path):
    # 3 MB pasted into one remark: the reader's default block is 1 MB, and the run was refused whole
    src = export(tmp_path)
    header, *rows = BILLS.splitlines()
    remarked = [header + ",备注", rows[0] + "," + "地址" * 500_000, *(row + ",正常" for row in rows[1:])]
    write(src, "电费账单.csv", "\n".join(remarked) + "\n")
    report = ingest(src, tmp_path / "wh").tables["bills"]
    assert (report.rows_read, report.accepted) == (3, 3)


def test_row_numbers_are_the_lines_an_editor_shows(tmp_path: Path):
    header, c1, c2, c3 = BILLS.splitlines()
    text = (
        f"sep=,\n{header}\n\n"  # lines 1-3: Excel's delimiter line, the header, a blank line
        + c1.replace("120,70.5", '"120\n",70.5')
        + "\n"  # lines 4-5: a value over two lines
        + "\r\n"  # line 6: blank
        + c2.replace("52000", "-1")
        + "\n"  # line 7: a negative kWh
        + c3.replace("900", "x")
        + "\n"  # line 8: kWh unparseable
    )
    wh = tmp_path / "wh"
    report = ingest(export(tmp_path, bills=text), wh).tables["bills"]
    assert (report.accepted, report.quarantined) == (1, 2)
    q = read_quarantine(wh, "bills")
    assert q[["_row", "_rule"]].values.tolist() == [[7, "out_of_range"], [8, "unparseable"]]


@pytest.mark.parametrize("seed", range(40))
def test_row_numbers_match_the_lines_pythons_csv_module_counts(tmp_path: Path, seed: int):
    # Values over several lines (several in one row, blank lines inside them), blank lines between rows,
    # quotes inside values, CRLF / LF / CR: each row's _row is the line the csv module starts it on.
    import csv
    import io
    import random

    r = random.Random(seed)
    values = ['"x\n\nyz"', '"x\r\nz"', '"a,b"', '"a""b"', '5"号', "", "7"]
    eol = r.choice(["\n", "\r\n", "\r"])
    lines = ["a,b,c"]
    for _ in range(r.randint(0, 30)):
        lines += [""] * (r.random() < 0.2)
        lines.append(",".join(r.choice(values) for _ in range(3)))
    text = eol.join(lines) + eol * (r.random() < 0.7)
    if seed == 0:  # two multi-line values in one row: the closing line of the first holds delimiters
        text = 'a,b,c\r\n"x\n\nyz",940,310\r\n"x\r\nz",945,"x\nz"\r\n1,2,3\r\n'
    path = write(tmp_path, "bills.csv", text)
    reader = csv.reader(io.StringIO(text, newline=""))
    expected, line = [], 0
    for record in reader:
        if reader.line_num > 1 and any(v.strip() for v in record):
            expected.append(line + 1)
        line = reader.line_num
    export = read_export(path)
    assert export.frame["_row"].tolist() == expected and export.malformed.empty


def test_a_trailing_delimiter_on_data_lines_is_named(tmp_path: Path):
    header, *rows = BILLS.splitlines()
    report = ingest(
        export(tmp_path, bills="\n".join([header, *(r + "," for r in rows)]) + "\n"), tmp_path / "wh"
    )
    q = read_quarantine(tmp_path / "wh", "bills")
    assert report.tables["bills"].by_rule == {"malformed_row": 3}
    assert "the line ends with a delimiter" in q["_message"].iloc[0]


def test_csv_cut_inside_a_multibyte_character(tmp_path: Path):
    src = export(tmp_path)
    remarked = "".join(
        line + ",备注\n" for line in (BILLS + "C1,202402,130,70,2024-03-03,2024-03-20,2024-03-03").split("\n")
    )
    data = remarked.rstrip("\n").encode("utf-8")
    (src / "电费账单.csv").write_bytes(data[:-1])  # the file ends inside 注 (3 bytes in UTF-8)
    report = ingest(src, tmp_path / "wh").tables["bills"]
    assert report.by_rule == {"malformed_row": 1} and report.accepted == 3
    assert report.files == ["电费账单.csv (utf-8)"]  # not mistaken for GB18030 because of the cut
    assert any("inside a utf-8 character" in note for note in report.notes)


def test_xlsx_with_date_cells_and_excel_serials(tmp_path: Path):
    src = export(tmp_path)
    (src / "电费账单.csv").unlink()
    book = openpyxl.Workbook()
    sheet = book.active
    sheet.append(["户号", "电费年月", "电量", "应收电费", "发行日期", "缴费截止日期", "入账时间"])
    # a row typed in Excel as dates; a row whose dates came out as serial numbers; a numeric customer id
    sheet.append(["C1", dt.datetime(2024, 1, 1), 120, 70.5, dt.date(2024, 2, 3), dt.date(2024, 2, 20),
                  dt.datetime(2024, 2, 3, 8)])  # fmt: skip
    sheet.append(["C2", 45292, 52000, 39000, 45325, 45342, 45325.3333333333])
    sheet.append([None] * 7)  # an empty sheet row is layout, not a record
    sheet.append(["C3", "2024-01", "900", "650.25", "2024/2/3", "20240220", "2024-02-03 08:00"])
    book.save(src / "电费账单.xlsx")
    wh = tmp_path / "wh"
    report = ingest(src, wh).tables["bills"]
    assert (report.rows_read, report.accepted, report.quarantined) == (3, 3, 0)
    bills = read_table(wh, "bills")
    assert (bills["period"] == pd.Timestamp("2024-01-01")).all()
    assert (bills["issue_date"] == pd.Timestamp("2024-02-03")).all()
    assert (bills["due_date"] == pd.Timestamp("2024-02-20")).all()
    assert (bills["known_at"] == pd.Timestamp("2024-02-03 08:00")).all()


def test_xlsx_row_numbers_match_the_sheet(tmp_path: Path):
    path = tmp_path / "x" / "readings.xlsx"
    path.parent.mkdir()
    book = openpyxl.Workbook()
    sheet = book.active
    sheet.append(["户号", "日期", "电量"])
    sheet.append(["C1", dt.date(2024, 3, 1), 5.0])
    sheet.append([None, None, None])
    sheet.append(["C1", dt.date(2024, 3, 2), -99812.0])  # sheet row 4: a meter reset
    book.save(path)
    wh = tmp_path / "wh"
    ingest(export(tmp_path), wh)
    ingest(path, wh)
    q = read_quarantine(wh, "readings")
    assert q[["_row", "_rule"]].values.tolist() == [[4, "out_of_range"]]  # the sheet row, as Excel shows it


def test_an_archive_saved_through_excel_adds_no_customer_under_a_mangled_id(tmp_path: Path):
    # Last month's archive opened in Excel and saved as .xlsx: 0431000001 became the number 431000001, a long
    # id 4.3E+09 or 15 digits of 18. Each was stored as a new customer beside the real one, and the bills
    # that lost their zeros too then attached to the phantom instead of being stopped.
    wh = tmp_path / "wh"
    header, c1, c2, c3 = CUSTOMERS.splitlines()
    first = "\n".join([header, c1.replace("C1", "0431000001"), c2.replace("C2", "0431000002"), c3]) + "\n"
    src = export(tmp_path)
    write(src, "客户档案.csv", first)
    (src / "电费账单.csv").unlink()
    ingest(src, wh)
    book = openpyxl.Workbook()
    sheet = book.active
    sheet.append(header.split(","))
    for number in (431000001, "4.3E+09", 430100000012345678):
        sheet.append([number, *c1.split(",")[1:10], dt.date(2015, 6, 1), "张三"])
    saved = tmp_path / "saved"
    saved.mkdir()
    book.save(saved / "客户档案.xlsx")
    report = ingest(saved, wh).tables["customers"]
    assert (report.accepted, report.by_rule) == (0, {"duplicate_key": 1, "unparseable": 2})
    q = read_quarantine(wh, "customers")
    assert (
        q["_message"].str.startswith("customer_id: 431000001 is 0431000001 without its leading zeros").any()
    )
    assert sorted(read_table(wh, "customers")["customer_id"]) == ["0431000001", "0431000002", "C3"]
    write(tmp_path / "bills", "电费账单.csv", BILL_HEADER + BILLS.splitlines()[1].replace("C1", "431000001"))
    bills = ingest(tmp_path / "bills", wh).tables["bills"]
    assert (bills.accepted, bills.by_rule) == (0, {"unknown_reference": 1})  # no phantom to attach to
    assert "other leading zeros" in read_quarantine(wh, "bills")["_message"].iloc[0]


def test_reingest_changes_no_byte(tmp_path: Path):
    src = export(tmp_path, bills=BILLS + "C9,202401,1,1,2024-02-03,2024-02-20,2024-02-03 08:00:00\n")
    wh = tmp_path / "wh"
    first = ingest(src, wh)
    before = digest(wh)
    second = ingest(src, wh)
    assert digest(wh) == before
    bills = second.tables["bills"]
    assert (bills.new, bills.updated, bills.unchanged, bills.quarantined) == (0, 0, 3, 1)
    assert bills.quarantine_added == 0 and first.tables["bills"].quarantine_added == 1


@pytest.mark.parametrize("compare_rows", [1, 1_000_000], ids=["row-by-row", "at-once"])
def test_versions_conflicts_and_unchanged_rows_against_the_warehouse(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, compare_rows: int
):
    from features import ingest as module

    monkeypatch.setattr(module, "COMPARE_ROWS", compare_rows)
    wh = tmp_path / "wh"
    ingest(export(tmp_path), wh)
    later = write(
        tmp_path / "later",
        "bills.csv",
        BILL_HEADER
        # unchanged: exactly the stored row
        + "C1,202401,120,70.5,2024-02-03,2024-02-20,2024-02-03 08:00:00\n"
        # re-issued bill (退补): same key, later known_at -> a new version
        + "C2,202401,50000,37500,2024-02-03,2024-02-20,2024-03-10 09:00:00\n"
        # same key and known_at as a stored row, other content -> conflict
        + "C3,202401,901,650.25,2024-02-03,2024-02-20,2024-02-03 08:00:00\n"
        # a new month
        + "C1,202402,110,64,2024-03-03,2024-03-20,2024-03-03 08:00:00\n",
    )
    reads = count_reads(monkeypatch)
    report = ingest(later, wh).tables["bills"]
    assert reads == ["bills.csv", "bills.csv"], "let go after validation, read again to quote the conflict"
    assert (report.new, report.updated, report.unchanged, report.quarantined) == (1, 1, 1, 1)
    assert report.by_rule == {"warehouse_conflict": 1}
    stored = read_table(wh, "bills")
    assert len(stored) == 5
    assert stored.loc[stored["customer_id"] == "C2", "amount_due"].tolist() == [39000.0, 37500.0]
    assert stored.loc[stored["customer_id"] == "C3", "kwh"].tolist() == [900.0]  # history not rewritten
    q = read_quarantine(wh, "bills")
    assert q[["customer_id", "kwh", "_row", "_rule"]].values.tolist() == [
        ["C3", "901", 4, "warehouse_conflict"]  # line 4 of bills.csv
    ]


def test_unchanged_rows_at_scattered_stored_positions(tmp_path: Path):
    # C1 and C3 are stored rows 1 and 3: compared by gathering those rows, not a slice from the first
    wh = tmp_path / "wh"
    ingest(export(tmp_path), wh)
    lines = BILLS.splitlines(keepends=True)
    report = ingest(write(tmp_path / "again", "bills.csv", lines[0] + lines[1] + lines[3]), wh).tables[
        "bills"
    ]
    assert (report.unchanged, report.quarantined, report.new) == (2, 0, 0)


def test_a_table_an_earlier_release_stored_merges_by_key(tmp_path: Path):
    # Stored by pandas with its metadata, known_at in nanoseconds: the same export again changes nothing.
    wh = tmp_path / "wh"
    ingest(export(tmp_path), wh)
    old = read_table(wh, "bills").astype({"known_at": "datetime64[ns]"})
    pq.write_table(pa.Table.from_pandas(old, preserve_index=False), wh / "bills.parquet")
    report = ingest(export(tmp_path / "again"), wh).tables["bills"]
    assert (report.unchanged, report.new, report.updated, report.quarantined) == (3, 0, 0, 0)
    assert len(read_table(wh, "bills")) == 3


def test_a_stored_table_that_repeats_a_key_is_refused_by_name(tmp_path: Path):
    # Written by another tool: C2's January bill twice. Which row an update replaces would be a guess.
    wh = tmp_path / "wh"
    ingest(export(tmp_path), wh)
    bills = read_table(wh, "bills")
    pq.write_table(
        pa.Table.from_pandas(pd.concat([bills, bills.iloc[[1]]]), preserve_index=False), wh / "bills.parquet"
    )
    again = export(tmp_path / "again")
    with pytest.raises(WarehouseError, match=r"bills: the stored table repeats its primary key") as caught:
        ingest(again, wh)
    assert "e.g. customer_id=C2, period=2024-01-01, known_at=2024-02-03 08:00:00 in rows 1, 3" in str(
        caught.value
    )
    result = run(again, "--warehouse", wh)
    assert result.exit_code == 2 and "ingest refused: bills: the stored table repeats" in result.output


def test_a_stored_column_of_another_type_is_refused_by_name(tmp_path: Path):
    wh = tmp_path / "wh"
    ingest(export(tmp_path), wh)
    bills = read_table(wh, "bills").assign(kwh="abc")
    pq.write_table(pa.Table.from_pandas(bills, preserve_index=False), wh / "bills.parquet")
    result = run(export(tmp_path / "again"), "--warehouse", wh)
    assert result.exit_code == 2
    assert (
        "ingest refused: bills: the stored table's column kwh is large_string, not the contract's double"
        in result.output
    )


def test_an_older_export_replayed_after_a_newer_one_does_not_undo_its_changes(tmp_path: Path):
    wh = tmp_path / "wh"
    january = export(tmp_path / "jan")  # bills issued to 2024-02-03; every account open
    with_close = (
        CUSTOMERS.replace("户名\n", "户名,销户日期\n")
        .replace("\n", ",\n")
        .replace("销户日期,\n", "销户日期\n")
    )
    write(january, "客户档案.csv", with_close)
    ingest(january, wh, now="2024-02-05")
    february = tmp_path / "feb"
    write(february, "台区.csv", AREAS.replace("A2,S2,U1,630", "A2,S2,U1,800"))  # a transformer swap
    closed = CUSTOMERS.replace("户名\n", "户名,销户日期\n").replace("某厂\n", "某厂,2024-03-10\n")
    write(february, "客户档案.csv", closed.replace("张三\n", "张三,\n").replace("某店\n", "某店,\n"))
    write(
        february, "电费账单.csv", BILL_HEADER + "C1,202402,110,66,2024-03-03,2024-03-20,2024-03-03 08:00:00\n"
    )
    assert ingest(february, wh, now="2024-03-12").tables["customers"].updated == 1
    # January again (by mistake, or to fill a gap): it reopened C2 and put the transformer back, without a
    # word, and the closed account came back on the risk lists.
    replay = ingest(january, wh, now="2024-03-12")
    customers = read_table(wh, "customers").set_index("customer_id")
    assert customers.loc["C2", "close_date"] == pd.Timestamp("2024-03-10")
    assert read_table(wh, "areas").set_index("area_id").loc["A2", "transformer_kva"] == 800.0
    part = replay.tables["customers"]
    assert (part.accepted, part.quarantined, part.updated, part.unchanged) == (2, 1, 0, 2) and part.balanced
    assert replay.tables["areas"].quarantined == 1 and replay.tables["bills"].unchanged == 3
    record = read_quarantine(wh, "customers").iloc[-1]
    assert record["customer_id"] == "C2" and record["_rule"] == "warehouse_conflict"
    assert "bills run to 2024-03-03, this export's to 2024-02-03" in record["_message"]
    # The newer export again, and a later one that changes a row, still update as before.
    assert ingest(february, wh, now="2024-03-12").tables["customers"].unchanged == 3
    march = tmp_path / "mar"
    write(march, "客户档案.csv", closed.replace("某店\n", "某店（新）,\n").replace("张三\n", "张三,\n"))
    write(march, "电费账单.csv", BILL_HEADER + "C1,202403,100,60,2024-04-03,2024-04-20,2024-04-03 08:00:00\n")
    later = ingest(march, wh, now="2024-04-05")
    assert later.tables["customers"].updated == 1 and later.tables["customers"].balanced
    assert read_table(wh, "customers").set_index("customer_id").loc["C3", "name"] == "某店（新）"


def test_a_run_reads_each_tables_quarantine_file_once(tmp_path: Path, monkeypatch: pytest.MonkeyPatch):
    # Each append read the whole quarantine file twice (to drop records already stored, then again to drop
    # duplicates while writing), and held archive changes quarantined at the end of a run read it twice more.
    wh = tmp_path / "wh"
    january = export(
        tmp_path / "jan", bills=BILLS + "C1,202312,-5,1,2024-01-03,2024-01-20,2024-01-03 08:00:00\n"
    )
    write(january, "客户档案.csv", CUSTOMERS + "C4,居民,,0.22,8,单一制,代扣,U1,S1,A9,2015-06-01,李四\n")
    ingest(january, wh, now="2024-02-05")  # C4's area is unknown; the -5 kWh bill is quarantined
    february = tmp_path / "feb"
    write(february, "客户档案.csv", CUSTOMERS.replace("某厂", "某厂（新）"))
    write(
        february, "电费账单.csv", BILL_HEADER + "C1,202402,110,66,2024-03-03,2024-03-20,2024-03-03 08:00:00\n"
    )
    ingest(february, wh, now="2024-03-12")
    # January again with a new bad row: customers are appended to twice in one run (C5 when the table is
    # stored, C2's older name when held archive changes are settled after the bills), bills once.
    write(january, "客户档案.csv", CUSTOMERS + "C4,居民,,0.22,8,单一制,代扣,U1,S1,A9,2015-06-01,李四\n"
          "C5,居民,,0.22,8,单一制,代扣,U1,S1,A9,2015-06-01,王五\n")  # fmt: skip
    reads: list[str] = []
    read_table = pq.read_table

    def counted(source, *args, **kwargs):  # type: ignore[no-untyped-def]
        if Path(source).parent.name == "quarantine":
            reads.append(Path(source).name)
        return read_table(source, *args, **kwargs)

    monkeypatch.setattr(pq, "read_table", counted)
    replay = ingest(january, wh, now="2024-03-12")
    assert sorted(reads) == ["bills.parquet", "customers.parquet"]
    customers = replay.tables["customers"]
    assert (customers.quarantined, customers.quarantine_added, replay.tables["bills"].quarantine_added) == (
        3,
        2,
        0,
    )
    monkeypatch.undo()
    stored = read_quarantine(wh, "customers")
    assert stored[["customer_id", "_rule"]].values.tolist() == [
        ["C4", "unknown_reference"],
        ["C5", "unknown_reference"],
        ["C2", "warehouse_conflict"],
    ]
    assert stored["_ingested_at"].tolist() == ["2024-02-05 00:00:00", *["2024-03-12 00:00:00"] * 2]
    assert len(read_quarantine(wh, "bills")) == 1


def test_a_current_archive_beside_a_lagging_event_table_is_not_an_old_export(tmp_path: Path):
    wh = tmp_path / "wh"
    inspections = "检查编号,户号,检查时间,检查结果,追补电量\nI1,C1,2024-01-15 10:00:00,normal,0\n"
    january = export(tmp_path / "jan")  # bills to 2024-02-03
    write(january, "用电检查.csv", inspections)
    ingest(january, wh, now="2024-02-05")
    # This month's archive with the inspection system's export, a few weeks behind the bills: compared with
    # the stored bills (2024-02-03) it looked old, and the closure was quarantined.
    today = tmp_path / "today"
    closed = CUSTOMERS.replace("户名\n", "户名,销户日期\n").replace("某厂\n", "某厂,2024-02-04\n")
    write(today, "客户档案.csv", closed.replace("张三\n", "张三,\n").replace("某店\n", "某店,\n"))
    write(today, "用电检查.csv", inspections)
    report = ingest(today, wh, now="2024-02-05")
    assert report.tables["customers"].updated == 1 and report.quarantined == 0
    assert read_table(wh, "customers").set_index("customer_id").loc["C2", "close_date"] == pd.Timestamp(
        "2024-02-04"
    )


def test_a_column_the_export_lacks_keeps_the_stored_values(tmp_path: Path):
    wh = tmp_path / "wh"
    closed = CUSTOMERS.replace("户名\n", "户名,销户日期\n").replace("某厂\n", "某厂,2024-01-20\n")
    full = tmp_path / "full"
    write(full, "台区.csv", AREAS)
    write(full, "客户档案.csv", closed.replace("张三\n", "张三,\n").replace("某店\n", "某店,\n"))
    peak = BILLS.replace("入账时间\n", "入账时间,峰电量\n").replace(":00\n", ":00,40\n")
    write(full, "电费账单.csv", peak)
    ingest(full, wh, now="2024-02-05")
    # The next export leaves out the optional 户名, 销户日期 and 峰电量 columns. Every name was erased, the
    # closed account reopened, and each bill became a warehouse_conflict (its peak kWh read as empty).
    lean = tmp_path / "lean"
    write(lean, "客户档案.csv", "\n".join(line.rsplit(",", 1)[0] for line in CUSTOMERS.splitlines()) + "\n")
    write(lean, "电费账单.csv", BILLS)
    report = ingest(lean, wh, now="2024-02-05")
    assert report.tables["customers"].unchanged == 3 and report.tables["bills"].unchanged == 3
    assert report.quarantined == 0
    customers = read_table(wh, "customers").set_index("customer_id")
    assert customers["name"].tolist() == ["张三", "某厂", "某店"]
    assert customers.loc["C2", "close_date"] == pd.Timestamp("2024-01-20")
    assert read_table(wh, "bills")["kwh_peak"].tolist() == [40.0, 40.0, 40.0]
    # The same in a table split in parts of which only one lacks the columns (monthly parts differ): the
    # rows of that part erased their names (250 of 500) and reopened their closed accounts.
    parts = tmp_path / "parts"
    header, *rows = CUSTOMERS.splitlines()
    write(parts, "客户档案_第1部分.csv", "\n".join([header, rows[0]]) + "\n")
    write(
        parts,
        "客户档案_第2部分.csv",
        "\n".join(line.rsplit(",", 1)[0] for line in [header, *rows[1:]]) + "\n",
    )
    report = ingest(parts, wh, now="2024-02-05")
    assert report.tables["customers"].unchanged == 3 and report.quarantined == 0
    customers = read_table(wh, "customers").set_index("customer_id")
    assert customers["name"].tolist() == ["张三", "某厂", "某店"]
    assert customers.loc["C2", "close_date"] == pd.Timestamp("2024-01-20")
    # A column the export has, even empty, is the export's word: an emptied name is stored as empty.
    write(lean, "客户档案.csv", CUSTOMERS.replace(",张三\n", ",\n"))
    assert ingest(lean, wh, now="2024-02-05").tables["customers"].updated == 1
    assert pd.isna(read_table(wh, "customers").set_index("customer_id").loc["C1", "name"])


def test_a_stored_table_without_a_required_column_is_refused_before_any_file_is_read(tmp_path: Path):
    wh = tmp_path / "wh"
    ingest(export(tmp_path), wh)
    path = wh / "bills.parquet"
    pq.write_table(pq.read_table(path).drop_columns(["amount_due"]), path)
    stored = path.read_bytes()
    result = run(export(tmp_path / "again"), "--warehouse", wh)
    said = " ".join(result.output.split())
    # It read every file, then stopped with ArrowInvalid: "Column 'amount_due' is declared non-nullable".
    assert result.exit_code == 2, result.output
    assert f"ingest refused: warehouse {wh}: missing required column(s): bills" in said
    assert "lacks amount_due" in said and "ingest the exports into an empty warehouse" in said
    assert path.read_bytes() == stored


def test_a_file_changed_between_its_two_reads_stops_the_run(tmp_path: Path, monkeypatch: pytest.MonkeyPatch):
    from features import ingest as module

    monkeypatch.setattr(module, "KEEP_READ_BYTES", 0)
    src, wh = export(tmp_path), tmp_path / "wh"
    bills = next(p for p in src.iterdir() if p.name.startswith("电费账单"))

    def edit_when_customers_are_stored(line: str) -> None:
        if line.startswith("validating and storing") and line.endswith("as customers"):
            bills.write_text(BILLS + "C1,202402,110,64,2024-03-03,2024-03-20,2024-03-03 08:00:00\n")

    with pytest.raises(ContractError, match="changed while this ingest was running"):
        ingest(src, wh, progress=edit_when_customers_are_stored)
    assert has_table(wh, "customers") and not has_table(wh, "bills")


def test_archive_rows_are_updated_in_place(tmp_path: Path):
    wh = tmp_path / "wh"
    ingest(export(tmp_path), wh)
    closed = CUSTOMERS.replace("2015-06-01,张三", "2015-06-01,张三").replace("户名\n", "户名,销户日期\n", 1)
    lines = closed.splitlines()
    lines = [lines[0]] + [line + (",2024-05-31" if line.startswith("C1") else ",") for line in lines[1:]]
    report = ingest(write(tmp_path / "may", "customers.csv", "\n".join(lines) + "\n"), wh).tables["customers"]
    assert (report.new, report.updated, report.unchanged) == (0, 1, 2)
    stored = read_table(wh, "customers").set_index("customer_id")
    assert len(stored) == 3 and stored.loc["C1", "close_date"] == pd.Timestamp("2024-05-31")


def test_quarantine_is_append_only_and_deduplicated(tmp_path: Path):
    wh = tmp_path / "wh"
    bad_one = BILLS + "C1,202402,-4,1,2024-03-03,2024-03-20,2024-03-03 08:00:00\n"
    ingest(export(tmp_path, bills=bad_one), wh)
    bad_two = BILLS + "C1,202403,x,1,2024-04-03,2024-04-20,2024-04-03 08:00:00\n"
    ingest(export(tmp_path / "b", bills=bad_two), wh)
    ingest(export(tmp_path, bills=bad_one), wh)  # the first export again: nothing new
    q = read_quarantine(wh, "bills")
    assert q["_rule"].tolist() == ["out_of_range", "unparseable"]
    assert q["kwh"].tolist() == ["-4", "x"]


def test_quarantine_records_say_when_they_were_first_quarantined(tmp_path: Path):
    # Records carried no run or time: a record resolved months ago could not be told from an open one.
    wh = tmp_path / "wh"
    src = export(tmp_path, bills=BILLS.replace("C2,202401,52000", "C2,202401,-1"))
    ingest(src, wh, now="2024-03-01")
    write(
        src,
        "电费账单.csv",
        BILLS.replace("C2,202401,52000", "C2,202401,-1").replace("C3,202401,900", "C3,202401,x"),
    )
    report = ingest(src, wh, now="2024-04-01T06:30:00").tables["bills"]
    assert report.quarantine_added == 1  # the known record is not added again with a new stamp
    q = read_quarantine(wh, "bills")
    assert q[["customer_id", "_ingested_at"]].values.tolist() == [
        ["C2", "2024-03-01 00:00:00"],
        ["C3", "2024-04-01 06:30:00"],
    ]


def test_custom_column_map_adds_headers_values_and_file_names(tmp_path: Path):
    wh = tmp_path / "wh"
    ingest(export(tmp_path), wh)
    mapping = write(
        tmp_path,
        "map.toml",
        '[files]\n"检查记录" = "inspections"\n\n'
        '[headers.inspections]\n"稽查单号" = "inspection_id"\n"稽查时间" = "inspected_at"\n'
        '"稽查结论" = "result"\n"补收电量" = "recovered_kwh"\n\n'
        '[values.result]\n"无异常" = "normal"\n',
    )
    path = write(
        tmp_path / "x",
        "检查记录_20240331.csv",  # date-stamped file name
        "稽查单号,户号,稽查时间,稽查结论,补收电量\n"
        "I1,C1,2024-03-05 10:00,无异常,0\n"
        "I2,C3,2024-03-06 11:00,窃电,4200\n",
    )
    result = run(path, "--warehouse", wh, "--column-map", mapping)
    assert result.exit_code == 0, result.output
    assert read_table(wh, "inspections")["result"].tolist() == ["normal", "theft"]


def test_a_wrong_column_map_exits_2(tmp_path: Path):
    mapping = write(tmp_path, "map.toml", '[headers.bills]\n"电量" = "kwh_total"\n')
    result = run(export(tmp_path), "--warehouse", tmp_path / "wh", "--column-map", mapping)
    assert result.exit_code == 2 and "table bills has no column 'kwh_total'" in result.output


def test_timezone_option_converts_offset_times_and_refuses_an_unknown_zone(tmp_path: Path):
    zoned = BILLS.replace("2024-02-03 08:00:00", "2024-02-03T00:00:00Z")
    result = run(export(tmp_path, bills=zoned), "--warehouse", tmp_path / "wh")
    assert result.exit_code == 0, result.output
    assert (read_table(tmp_path / "wh", "bills")["known_at"] == pd.Timestamp("2024-02-03 08:00")).all()

    result = run(export(tmp_path, bills=zoned), "--warehouse", tmp_path / "utc", "--timezone", "UTC")
    assert result.exit_code == 0, result.output
    assert (read_table(tmp_path / "utc", "bills")["known_at"] == pd.Timestamp("2024-02-03 00:00")).all()

    result = run(export(tmp_path), "--warehouse", tmp_path / "bad", "--timezone", "Beijing")
    assert result.exit_code == 2 and "time zone 'Beijing' is unknown" in result.output
    assert not (tmp_path / "bad").exists()  # refused before anything was read or written


def test_int96_parquet_timestamps_are_utc_instants_brought_to_the_warehouse_zone(tmp_path: Path):
    # Spark and Hive write INT96 timestamps, UTC instants that pyarrow reads without a zone: a bill posted at
    # 2024-02-03 01:00 Beijing time (2024-02-02 17:00 UTC) was stored at 17:00 the day before, 8 hours early.
    src = export(tmp_path)
    (src / "电费账单.csv").unlink()
    bills = pd.read_csv(pd.io.common.StringIO(BILLS), dtype=str)
    bills["入账时间"] = pd.to_datetime(["2024-02-02 17:00", "2024-02-03 00:00", "2024-02-03 08:00"])
    pq.write_table(
        pa.Table.from_pandas(bills, preserve_index=False),
        src / "电费账单.parquet",
        use_deprecated_int96_timestamps=True,
    )
    assert pq.ParquetFile(src / "电费账单.parquet").schema.column(6).physical_type == "INT96"
    result = run(src, "--warehouse", tmp_path / "wh")
    assert result.exit_code == 0, result.output
    stored = read_table(tmp_path / "wh", "bills").sort_values("customer_id")["known_at"].tolist()
    assert stored == [
        pd.Timestamp("2024-02-03 01:00"),
        pd.Timestamp("2024-02-03 08:00"),
        pd.Timestamp("2024-02-03 16:00"),
    ]


def test_xlsx_date_cells_formatted_as_a_month_follow_the_month_rule(tmp_path: Path):
    # A payment cell Excel shows as 2023-06 (format yyyy-mm, perhaps paid on the 28th) was read as 2023-06-01
    # 00:00 and accepted, up to a month early; the same value written as text was quarantined.
    src = export(tmp_path)
    book = openpyxl.Workbook()
    sheet = book.active
    sheet.append(["缴费流水号", "户号", "电费年月", "缴费时间", "实收金额", "缴费渠道", "销账时间"])
    january, posted = dt.datetime(2024, 1, 1), dt.datetime(2024, 2, 10, 10, 0)
    formats = [
        ("yyyy-mm", "yyyy-mm"),  # P1: paid_at and known_at show a month
        ("yyyy-mm-dd hh:mm", 'yyyy"年"m"月"'),  # P2: known_at shows 2024年2月
        ("yyyy-mm-dd hh:mm", "yyyy-mm"),  # P3: known_at an Excel serial shown as a month
        ("yyyy-mm-dd hh:mm", "yyyy-mm-dd hh:mm"),  # P4: in full
    ]
    for number, (paid, known) in enumerate(formats, start=1):
        at = 45332 if number == 3 else (january if number == 1 else posted)
        sheet.append([f"P{number}", "C1", january, january if number == 1 else posted, 70.5, "坐收", at])
        sheet.cell(number + 1, 3).number_format = "yyyy-mm"  # 电费年月: a billing month, read from a month
        sheet.cell(number + 1, 4).number_format = paid
        sheet.cell(number + 1, 7).number_format = known
    book.save(src / "缴费记录.xlsx")
    result = run(src, "--warehouse", tmp_path / "wh")
    assert result.exit_code == 0, result.output
    payments = read_table(tmp_path / "wh", "payments")
    assert payments["payment_id"].tolist() == ["P4"]
    assert payments["period"].tolist() == [pd.Timestamp("2024-01-01")]
    assert payments["known_at"].tolist() == [pd.Timestamp("2024-02-10 10:00")]
    quarantined = read_quarantine(tmp_path / "wh", "payments")
    assert sorted(quarantined["payment_id"].astype(str).unique()) == ["P1", "P2", "P3"]
    assert quarantined["_message"].str.contains("a month without its day").all()


def test_the_warehouse_keeps_the_zone_of_its_first_ingest(tmp_path: Path):
    # The zone was not stored: a second ingest that left out --timezone put Asia/Shanghai wall clock beside
    # the first run's UTC wall clock in the same table, eight hours apart, without a word.
    from features.sources import stored_timezone

    zoned = BILLS.replace("2024-02-03 08:00:00", "2024-02-03T00:00:00Z")
    wh = tmp_path / "wh"
    result = run(export(tmp_path, bills=zoned), "--warehouse", wh, "--timezone", "UTC")
    assert result.exit_code == 0, result.output
    assert stored_timezone(wh) == "UTC" and "times are UTC wall clock" in result.output
    later = zoned.replace("2024-02-03T00:00:00Z", "2024-02-03T01:00:00Z")
    result = run(export(tmp_path / "later", bills=later), "--warehouse", wh)
    assert result.exit_code == 0, result.output
    assert "times are" not in result.output  # recorded once
    stored = set(read_table(wh, "bills")["known_at"])  # re-issues beside the first run's rows, both UTC
    assert stored == {pd.Timestamp("2024-02-03 00:00"), pd.Timestamp("2024-02-03 01:00")}

    before = {p.name: p.stat().st_mtime_ns for p in wh.glob("*.parquet")}
    result = run(export(tmp_path / "other", bills=later), "--warehouse", wh, "--timezone", "Asia/Shanghai")
    assert result.exit_code == 2
    assert "holds its times as UTC wall clock" in result.output and "asks for Asia/Shanghai" in result.output
    assert {p.name: p.stat().st_mtime_ns for p in wh.glob("*.parquet")} == before  # nothing written

    assert ingest(export(tmp_path / "plain"), tmp_path / "default").accepted > 0
    assert stored_timezone(tmp_path / "default") == "Asia/Shanghai"  # no zone asked, none recorded


def test_cli_summary_balances(tmp_path: Path):
    src = export(tmp_path, bills=BILLS + "C1,202402,-4,1,2024-03-03,2024-03-20,2024-03-03 08:00:00\n")
    result = run(src, "--warehouse", tmp_path / "wh")
    assert result.exit_code == 0, result.output
    assert "9 rows read = 8 accepted + 1 quarantined" in result.output
    assert "negative kWh — meter reset or reversed register?" in result.output


def test_the_summary_shows_where_quarantined_rows_are(tmp_path: Path):
    # Finding a quarantined row took pandas; the summary now names file, line, column and value.
    bills = (
        BILLS.replace("C2,202401,52000", "C2,202401,-7") + "\n" + BILLS.splitlines()[3].replace("900", "-9")
    )
    result = run(export(tmp_path, bills=bills + "\n" + "C1,2024,1\n"), "--warehouse", tmp_path / "wh")
    assert result.exit_code == 0, result.output
    assert "电费账单.csv line 3: kwh '-7'; line 6" in result.output  # the next rows by their line
    assert "电费账单.csv line 7: the line 'C1,2024,1'" in result.output  # a malformed line shows its text


def test_the_where_column_names_a_later_rows_column_when_it_is_not_the_first_ones(tmp_path: Path):
    # One rule fails on several columns: "line 3: kwh 'abc'; lines 4, 5" read as if 4 and 5 were kwh too.
    rows = BILLS.splitlines()
    bills = "\n".join(
        [
            rows[0],
            rows[1],
            rows[2].replace("52000", "abc"),  # line 3: kwh
            rows[3].replace("650.25", "六百"),  # line 4: amount_due
            rows[1].replace("202401", "202402").replace("70.5", "七十"),  # line 5: amount_due
            rows[1].replace("202401", "202403").replace("120", "x"),  # line 6: kwh (not shown, 3 per rule)
        ]
    )
    result = run(export(tmp_path, bills=bills + "\n"), "--warehouse", tmp_path / "wh")
    assert result.exit_code == 0, result.output
    assert "电费账单.csv line 3: kwh 'abc'; lines 4, 5: amount_due …" in " ".join(result.output.split())
    from gridrisk.commands.ingest import _where

    where = ingest(export(tmp_path / "again", bills=bills + "\n"), tmp_path / "wh2").tables["bills"].where
    assert where["unparseable"] == [
        "电费账单.csv line 3: kwh 'abc'",
        "line 4: amount_due",
        "line 5: amount_due",
    ]
    # a later row on the first row's column stays a bare line; one from another file names file and column
    assert _where(["a.csv line 2: kwh '-1'", "line 3: amount_due", "line 7"], 3) == (
        "a.csv line 2: kwh '-1'; line 3: amount_due; line 7"
    )
    assert _where(["a.csv line 2: kwh '-1'", "line 4", "b.csv line 3: amount_due"], 9) == (
        "a.csv line 2: kwh '-1'; line 4; b.csv line 3: amount_due …"
    )


def test_a_wide_export_names_its_first_ignored_columns_in_file_order(tmp_path: Path):
    # 5,000 indicator columns printed 60 kB of names, sorted as text (指标0, 指标1, 指标10, 指标100 …)
    header, *rows = BILLS.splitlines()
    extra = [f"指标{i}" for i in range(30)]
    text = "\n".join([",".join([header, *extra]), *(",".join([row, *["1"] * 30]) for row in rows)]) + "\n"
    result = run(export(tmp_path, bills=text), "--warehouse", tmp_path / "wh")
    assert result.exit_code == 0, result.output
    output = " ".join(result.output.split())  # as printed, wrapped lines joined
    assert "ignored columns not in the contract: 指标0, 指标1, 指标2," in output
    assert "指标19 … and 10 more" in output and "指标20" not in output


def test_a_table_whose_every_row_is_quarantined_is_stored_empty(tmp_path: Path):
    # Without a file, readers said "bills … is missing; run gridrisk ingest", although ingest had run.
    wh = tmp_path / "wh"
    report = ingest(export(tmp_path, bills=BILLS.replace(",2024-02-20,", ",2024-01-20,")), wh)  # due < issue
    assert (report.tables["bills"].accepted, report.tables["bills"].quarantined) == (0, 3)
    assert (
        read_table(wh, "bills").empty
        and list(read_table(wh, "bills").columns) == TABLES["bills"].column_names
    )


def test_contract_is_printed_with_default_headers():
    result = CliRunner().invoke(app, ["ingest", "--contract"])
    assert result.exit_code == 0
    assert "| `due_date` | date | yes | no |  | 缴费截止日期, 缴费截止日 |" in result.output


def test_fault_kinds_each_land_under_their_rule(tmp_path: Path):
    """One row per fault kind `gridrisk generate --faults` injects, built by hand."""
    src = export(
        tmp_path,
        bills=BILLS
        # duplicate bill (an exact copy of C1's January bill)
        + "C1,202401,120,70.5,2024-02-03,2024-02-20,2024-02-03 08:00:00\n"
        # dates out of order: due before issue
        + "C2,202402,50000,37000,2024-03-03,2024-02-25,2024-03-03 08:00:00\n"
        # extra re-issued bill: same customer and period, later known_at, corrected amount -> accepted
        + "C3,202401,880,636.0,2024-02-03,2024-02-20,2024-03-12 10:00:00\n",
    )
    write(src, "customers.csv", "customer_id,usage_category,industry_code,voltage_kv,contract_capacity_kva,"
          "tariff,payment_method,supply_unit,station,area_id,open_date\n"
          "C4,residential,,0.22,8,single,online,U1,S7,A1,2020-01-01\n"   # unknown station code for A1
          "C5,residential,,0.22,8,single,online,U1,S1,A404,2020-01-01\n")  # fmt: skip # unknown area id
    write(src, "readings.csv", "customer_id,date,kwh\n"
          "C1,2024-03-01,4.2\n"
          "C1,2024-03-02,-0.7\n"        # negative reading
          "C1,2024-03-03,\n"            # null reading
          "C1,2024-03-04,-99995.1\n")  # fmt: skip # meter reset (register rollover)
    write(src, "suspensions.csv",
          "application_id,customer_id,applied_at,start_date,end_date,capacity_kva,kind\n"
          "S1,C2,2024-01-02 09:00,2024-01-10,2024-01-05,630,suspension\n")  # fmt: skip # end before start
    wh = tmp_path / "wh"
    report = ingest(src, wh)
    assert report.balanced
    got = {
        name: read_quarantine(wh, name)[["_row", "_column", "_rule"]].values.tolist()
        for name in ("bills", "customers", "readings", "suspensions")
    }
    assert got == {
        # _row is the line of the file, header included
        "bills": [[5, "customer_id", "duplicate_row"], [6, "due_date", "date_order"]],
        "customers": [[2, "station", "area_mismatch"], [3, "area_id", "unknown_reference"]],
        "readings": [[3, "kwh", "out_of_range"], [4, "kwh", "null"], [5, "kwh", "out_of_range"]],
        "suspensions": [[2, "end_date", "date_order"]],
    }
    bills = report.tables["bills"]
    assert (bills.new, bills.updated) == (
        4,
        0,
    )  # the re-issue is a second version of a key new to the warehouse
    assert len(read_table(wh, "bills").query("customer_id == 'C3'")) == 2


# --- generated exports ------------------------------------------------------------------------------------

# The rule each fault kind of `gridrisk generate --faults` must land under; None = accepted as a new version.
FAULT_RULES = {
    "unknown_station": "area_mismatch",
    "unknown_area": "unknown_reference",
    "duplicate_bill": "duplicate_row",
    "due_before_issue": "date_order",
    "known_before_issue": "date_order",
    "paid_before_period": "date_order",
    "end_before_start": "date_order",
    "negative_reading": "out_of_range",
    "missing_reading": "null",
    "meter_reset": "out_of_range",
    "reissued_bill": None,
}


def keyed(frame: pd.DataFrame, name: str) -> pd.DataFrame:
    """Primary-key columns as comparable values (quarantine and fault keys hold them as text)."""
    spec = TABLES[name]
    out = pd.DataFrame(index=frame.index)
    for column in spec.primary_key:
        kind = str(spec.column(column).dtype)
        out[column] = (
            pd.to_datetime(frame[column], format="ISO8601")
            if kind.startswith(("date", "timestamp"))
            else frame[column]
        )
    return out


def test_a_clean_generated_export_is_accepted_whole(generated_dir: Path, tmp_path: Path):
    wh = tmp_path / "wh"
    report = ingest(generated_dir, wh)
    assert report.quarantined == 0, {t: dict(p.by_rule) for t, p in report.tables.items()}
    assert not (wh / "quarantine").exists()
    for name, part in report.tables.items():
        original = read_table(generated_dir, name)
        assert part.rows_read == part.accepted == part.new == len(original), name
        stored = read_table(wh, name)[list(original.columns)]
        pd.testing.assert_frame_equal(stored, original, check_dtype=True, obj=name)
    truth = sorted(p.relative_to(generated_dir) for p in (generated_dir / "truth").rglob("*") if p.is_file())
    assert truth and report.truth_files == len(truth)  # ground truth travels with the data
    assert sorted(p.relative_to(wh) for p in (wh / "truth").rglob("*") if p.is_file()) == truth


def test_every_generated_fault_is_quarantined_under_its_rule_or_versioned(tmp_path: Path):
    from features.synthetic import GeneratorConfig, generate

    src, wh = tmp_path / "faulty", tmp_path / "wh"
    generate(GeneratorConfig(customers=600, months=18, seed=11, daily_days=120, faults=True), src)
    report = ingest(src, wh)
    faults = pd.read_parquet(src / "truth" / "faults.parquet")
    assert set(faults["kind"]) == set(FAULT_RULES), "every fault kind is exercised"

    customers_out = set(read_quarantine(wh, "customers")["customer_id"])
    for name, part in report.tables.items():
        exported = len(read_table(src, name))
        stored, quarantined = len(read_table(wh, name)), len(read_quarantine(wh, name))
        assert part.rows_read == exported == stored + quarantined, f"{name}: a row was lost"

    for name, group in faults.groupby("table"):
        spec = TABLES[name]
        cols = list(spec.primary_key)
        keys = keyed(pd.DataFrame([json.loads(k) for k in group["key"]], index=group.index), name)
        q = read_quarantine(wh, name)
        q = keyed(q, name).assign(rule=q["_rule"], owner=q.get("customer_id"))
        stored = keyed(read_table(wh, name), name).assign(is_stored=True)
        found = (
            keys.assign(kind=group["kind"]).merge(q, on=cols, how="left").merge(stored, on=cols, how="left")
        )
        for row in found.itertuples(index=False):
            expected = FAULT_RULES[row.kind]
            collateral = (
                name != "customers" and row.rule == "unknown_reference" and row.owner in customers_out
            )
            if expected is None:  # a re-issued bill is stored as a further version of its key
                assert row.is_stored is True or collateral, row
            elif row.kind == "duplicate_bill":  # the first copy is stored, the second quarantined
                assert (row.rule == expected and row.is_stored is True) or collateral, row
            else:
                assert row.rule == expected or collateral, row
                assert row.is_stored is not True, row

    # No false alarms: a quarantined row is a fault, or a child of a quarantined customer.
    for name in report.tables:
        q = read_quarantine(wh, name)
        if q.empty:
            continue
        spec = TABLES[name]
        faulted = keyed(
            pd.DataFrame([json.loads(k) for k in faults.loc[faults["table"] == name, "key"]]), name
        ).assign(_fault=True)
        marked = pd.concat([keyed(q, name), q[["_rule"]]], axis=1)
        marked = marked.merge(faulted.drop_duplicates(), on=list(spec.primary_key), how="left")
        unexplained = marked["_fault"].isna()
        if "customer_id" in q.columns and name != "customers":
            unexplained &= ~(q["customer_id"].isin(customers_out) & (q["_rule"] == "unknown_reference"))
        assert not unexplained.any(), marked[unexplained].head()

    again = ingest(src, wh)
    assert again.accepted == sum(p.unchanged for p in again.tables.values())
    assert sum(p.quarantine_added for p in again.tables.values()) == 0


CHUNK = 97


def test_a_large_archive_read_twice_and_in_chunks_is_stored_the_same(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
):
    """Above KEEP_READ_BYTES a file is read again when its table is stored, rows are validated CHUNK_ROWS at
    a time and compared with stored ones COMPARE_ROWS at a time; none may change a stored row, a quarantine
    record or a count."""
    from features import ingest as module
    from features import validation
    from features.synthetic import GeneratorConfig, generate

    src = tmp_path / "faulty"
    generate(GeneratorConfig(customers=300, months=14, seed=5, daily_days=60, faults=True), src)
    reads = count_reads(monkeypatch)
    whole = ingest(src, tmp_path / "whole")
    files = sorted(set(reads))
    assert sorted(reads) == files, "a small archive is read once"
    reads.clear()
    monkeypatch.setattr(module, "KEEP_READ_BYTES", 0)
    monkeypatch.setattr(validation, "CHUNK_ROWS", CHUNK)
    monkeypatch.setattr(module, "COMPARE_ROWS", CHUNK)
    chunked = ingest(src, tmp_path / "chunked")
    assert sorted(reads) == sorted(files * 2), "above KEEP_READ_BYTES every file is read again to be stored"
    assert chunked.tables == whole.tables
    again = ingest(src, tmp_path / "chunked")
    assert again.accepted == sum(p.unchanged for p in again.tables.values()) == whole.accepted
    copies = read_quarantine(tmp_path / "whole", "bills").query("_rule == 'duplicate_row'")
    kept = copies["_message"].str.extract(r"row (\d+)")[0].astype(int)
    chunk = (copies["_row"] - 1) // CHUNK  # rows count from 1, positions from 0 (one file per table)
    assert (chunk != (kept - 1) // CHUNK).any(), "a copy and its original in different chunks"
    for name in whole.tables:
        pd.testing.assert_frame_equal(
            read_table(tmp_path / "chunked", name), read_table(tmp_path / "whole", name)
        )
        pd.testing.assert_frame_equal(  # but for the moment of each run
            read_quarantine(tmp_path / "chunked", name).drop(columns="_ingested_at", errors="ignore"),
            read_quarantine(tmp_path / "whole", name).drop(columns="_ingested_at", errors="ignore"),
        )


def test_key_matching_survives_hash_collisions(monkeypatch: pytest.MonkeyPatch):
    from features import ingest as module

    stored = pd.DataFrame({"customer_id": ["C1", "C2"], "kwh": [1.0, 2.0]})
    incoming = pd.DataFrame({"customer_id": ["C2", "C3"], "kwh": [2.0, 3.0]})
    exact = module._positions(stored, incoming, ["customer_id"], table="t").tolist()
    assert exact == [1, -1]  # C2 is stored at position 1; C3 is new
    # every key hashing alike: the stored index is not unique, so the exact join runs
    monkeypatch.setattr(
        module, "row_hashes", lambda frame, cols: pd.Series(np.zeros(len(frame), dtype="uint64"))
    )
    assert module._positions(stored, incoming, ["customer_id"], table="t").tolist() == exact
    # a single stored key colliding with a new one: values are compared, so C3 is not taken for C1
    assert module._positions(stored.iloc[:1], incoming.iloc[1:], ["customer_id"], table="t").tolist() == [-1]


# --- future dates, multi-sheet workbooks, huge values, keys across files -----------------------------------


def test_future_rows_are_quarantined_as_of_the_given_moment(tmp_path: Path):
    src = export(
        tmp_path,
        bills=BILLS
        # three bills issued in 2099: if accepted they would move the data end, and every label, to 2099
        + "".join(f"C{i},209901,1,1,2099-01-05,2099-01-25,2099-01-05 10:00:00\n" for i in (1, 2, 3)),
    )
    write(src, "客户档案.csv", CUSTOMERS + "C4,居民,,0.22,8,单一制,代扣,U1,S1,A1,2204-03-01,李四\n")
    write(src, "payments.csv", "payment_id,customer_id,period,paid_at,amount,channel\n"
          "P1,C1,2024-01-01,2024-02-10 10:00,70.5,online\n"
          "P2,C2,2024-01-01,2030-06-01 12:00,39000,counter\n")  # fmt: skip # paid in 2030
    wh = tmp_path / "wh"
    result = run(src, "--warehouse", wh, "--now", "2024-03-01")
    assert result.exit_code == 0, result.output
    assert (
        "future: dated after 2024-03-02 00:00 (the ingest moment 2024-03-01 00:00 UTC + 1 day"
        in result.output
    )
    got = {name: read_quarantine(wh, name)[["_row", "_column", "_rule"]].values.tolist() for name in
           ("customers", "bills", "payments")}  # fmt: skip
    assert got == {
        "customers": [[5, "open_date", "future"]],
        "bills": [[5, "period", "future"], [6, "period", "future"], [7, "period", "future"]],
        "payments": [[3, "paid_at", "future"]],
    }
    from features.labels import data_end

    assert data_end(wh) == pd.Timestamp("2024-02-10")  # the last payment, not 2099 or 2204
    # The same export as of 2300 holds no future row; re-ingesting as of the first moment adds nothing.
    assert ingest(src, tmp_path / "wh2", now="2300-01-01").quarantined == 0
    assert sum(p.quarantine_added for p in ingest(src, wh, now="2024-03-01").tables.values()) == 0
    assert run(src, "--warehouse", wh, "--now", "soon").exit_code == 2


def test_a_payments_posting_time_is_stored_as_its_known_at_and_checked(tmp_path: Path):
    """销账时间 (when a payment was posted) is the payment's known_at: stored, checked against paid_at, and
    the data end reads it; left empty, the payment counts from paid_at."""
    src = export(tmp_path)
    write(src, "缴费记录.csv", "缴费流水号,户号,电费年月,缴费时间,实收金额,缴费渠道,销账时间\n"
          "P1,C1,202401,2024-02-10 10:00,70.5,代扣,2024-02-12 06:00\n"  # a debit file posted 2 days later
          "P2,C2,202401,2024-02-11 09:00,39000,坐收,\n"  # no posting time: counts from paid_at
          "P3,C3,202401,2024-02-11 09:00,650.25,网上缴费,2024-02-10 23:00\n"  # the day before paid_at
          "P4,C3,202401,2024-02-11 09:00,1.0,网上缴费,2024-02-11\n")  # fmt: skip # a date: that day counts
    wh = tmp_path / "wh"
    result = run(src, "--warehouse", wh, "--now", "2024-03-01")
    assert result.exit_code == 0, result.output
    stored = read_table(wh, "payments").set_index("payment_id")
    assert stored.loc["P1", "known_at"] == pd.Timestamp("2024-02-12 06:00")
    assert pd.isna(stored.loc["P2", "known_at"]) and "P3" not in stored.index and "P4" in stored.index
    got = read_quarantine(wh, "payments")[["_row", "_column", "_rule", "_message"]].values.tolist()
    message = "known_at falls on a day before paid_at (a payment is posted after it is made)"
    assert got == [[4, "known_at", "date_order", message]]
    from features.labels import data_end
    from features.point_in_time import as_of_filter

    assert data_end(wh) == pd.Timestamp("2024-02-12")  # the posting, not the payment
    visible = as_of_filter(stored.reset_index(), "payments", "2024-02-11")["payment_id"].tolist()
    assert visible == ["P2", "P4"]

    # P2's posting time exported later fills the empty one (updated); P4's left empty says nothing and P1
    # posted again later is the same payment known since its first posting (both unchanged); P1 posted
    # before its stored posting would rewrite history (a conflict).
    write(src, "缴费记录.csv", "缴费流水号,户号,电费年月,缴费时间,实收金额,缴费渠道,销账时间\n"
          "P1,C1,202401,2024-02-10 10:00,70.5,代扣,2024-02-13 06:00\n"
          "P2,C2,202401,2024-02-11 09:00,39000,坐收,2024-02-11 09:30\n"
          "P4,C3,202401,2024-02-11 09:00,1.0,网上缴费,\n")  # fmt: skip
    report = ingest(src, wh, now="2024-03-01").tables["payments"]
    assert (report.updated, report.unchanged, report.quarantined) == (1, 2, 0)
    write(src, "缴费记录.csv", "缴费流水号,户号,电费年月,缴费时间,实收金额,缴费渠道,销账时间\n"
          "P1,C1,202401,2024-02-10 10:00,70.5,代扣,2024-02-11 06:00\n")  # fmt: skip
    assert ingest(src, wh, now="2024-03-01").tables["payments"].quarantined == 1
    stored = read_table(wh, "payments").set_index("payment_id")["known_at"]
    assert stored.to_dict() == {
        "P1": pd.Timestamp("2024-02-12 06:00"),
        "P2": pd.Timestamp("2024-02-11 09:30"),
        "P4": pd.Timestamp("2024-02-11"),
    }
    assert read_quarantine(wh, "payments")["_rule"].tolist()[-1] == "warehouse_conflict"


def test_posting_headers_map_per_table_so_an_export_with_two_of_them_still_ingests(tmp_path: Path):
    # 入账时间 is a bill's version time; mapped for every table, a payments export carrying it beside 销账时间
    # was refused whole ("headers ... all map to column 'known_at'").
    src = export(tmp_path)
    write(src, "缴费记录.csv", "缴费流水号,户号,电费年月,缴费时间,实收金额,缴费渠道,入账时间,销账时间\n"
          "P1,C1,202401,2024-02-10 10:00,70.5,代扣,2024-02-10 10:00,2024-02-12 06:00\n")  # fmt: skip
    report = ingest(src, tmp_path / "wh", now="2024-03-01")
    assert report.tables["payments"].extra_columns == ["入账时间"]
    assert read_table(tmp_path / "wh", "payments")["known_at"].tolist() == [pd.Timestamp("2024-02-12 06:00")]


def test_a_generated_export_is_not_in_its_own_future(tmp_path: Path):
    """A synthetic utility may be generated past today's date; its manifest says when it was exported."""
    from features.synthetic import GeneratorConfig, generate

    src = tmp_path / "gen"
    generate(GeneratorConfig(customers=60, start="2031-01", months=14, seed=3, daily_days=30), src)
    report = ingest(src, tmp_path / "wh")
    assert report.quarantined == 0 and report.now >= pd.Timestamp("2032-02-01") and report.now_declared
    result = run(src, "--warehouse", tmp_path / "wh_cli")
    assert result.exit_code == 0 and "the day after the generated export's own export_at" in result.output
    # An explicit moment still rules: as of 2031-06 the later rows are in the future.
    early = ingest(src, tmp_path / "wh_early", now="2031-06-01")
    assert early.tables["bills"].by_rule.get("future", 0) > 0


def multi_sheet_bills(path: Path, sheets: dict[str, list[list]]) -> Path:
    book = openpyxl.Workbook()
    book.remove(book.active)
    for name, rows in sheets.items():
        sheet = book.create_sheet(name)
        for row in rows:
            sheet.append(row)
    path.parent.mkdir(parents=True, exist_ok=True)
    book.save(path)
    return path


HEADER = ["户号", "电费年月", "电量", "应收电费", "发行日期", "缴费截止日期", "入账时间"]


def month_bills(month: int, kwh: list[object]) -> list[list]:
    return [
        [f"C{i + 1}", f"2023-{month:02d}", k, 10, f"2023-{month:02d}-25", f"2023-{month:02d}-28",
         f"2023-{month:02d}-25 08:00"]
        for i, k in enumerate(kwh)
    ]  # fmt: skip


def test_a_workbook_split_across_sheets_is_read_whole(tmp_path: Path):
    wh = tmp_path / "wh"
    ingest(export(tmp_path), wh)
    path = multi_sheet_bills(
        tmp_path / "x" / "电费账单.xlsx",
        {
            # an export past Excel's row limit continues on a second sheet under the same header
            "Sheet1": [HEADER, *month_bills(1, [100, 110, 120])],
            "Sheet2": [HEADER, *month_bills(2, [90, -5, 95])],  # C2's February kWh is negative (sheet row 3)
            "Sheet3": [],  # an empty sheet Excel added
        },
    )
    result = run(path, "--warehouse", wh)
    assert result.exit_code == 0, result.output
    assert "6 rows read = 5 accepted + 1 quarantined" in result.output
    assert "read 2 sheets with one header: 'Sheet1' (3 rows), 'Sheet2' (3 rows)" in result.output
    assert len(read_table(wh, "bills").query("period < '2024-01-01'")) == 5
    q = read_quarantine(wh, "bills")
    assert q[["_source", "_row", "_rule"]].values.tolist() == [["电费账单.xlsx [Sheet2]", 3, "out_of_range"]]


def with_cached_value(path: Path, cell: str, value: str) -> None:
    """Store a result for one formula cell, as Excel does on saving (openpyxl writes formulas without)."""
    import zipfile

    with zipfile.ZipFile(path) as book:
        members = {name: book.read(name) for name in book.namelist()}
    sheet = members["xl/worksheets/sheet1.xml"].decode()
    start = sheet.index(f'<c r="{cell}"')
    end = sheet.index("</c>", start)
    members["xl/worksheets/sheet1.xml"] = (
        sheet[:start] + sheet[start:end].replace("<v />", f"<v>{value}</v>") + sheet[end:]
    ).encode()
    with zipfile.ZipFile(path, "w") as book:
        for name, data in members.items():
            book.writestr(name, data)


def test_formulas_saved_without_their_results_are_quarantined_by_name(tmp_path: Path):
    # Reporting tools (Apache POI, openpyxl) write formulas and leave computing them to Excel: such a cell
    # read as empty, so an optional 电度电费 was dropped from an accepted bill without a word.
    wh = tmp_path / "wh"
    ingest(export(tmp_path), wh)
    march = month_bills(3, [100, 200, 300, 400])
    march[3][:4] = ["C2", "2023-02", 400, "=C5*0.7"]  # row 5: the required 应收电费 is a formula, no result
    charges = ["=C2*0.588", 117.6, "#N/A", 1]  # rows 2-4: a formula without its result, a value, an error
    path = multi_sheet_bills(
        tmp_path / "x" / "电费账单.xlsx",
        {
            "Sheet1": [
                [*HEADER, "电度电费"],
                *([*row, charge] for row, charge in zip(march, charges, strict=True)),
                [*month_bills(4, [500])[0], "=C6*0.588"],  # row 6: a formula Excel computed and saved
            ]
        },
    )
    with_cached_value(path, "H6", "294")
    report = ingest(path, wh, now="2024-06-01").tables["bills"]
    assert (report.rows_read, report.accepted, report.by_rule) == (5, 2, {"unparseable": 3})
    q = read_quarantine(wh, "bills")
    assert q[["_row", "_column"]].values.tolist() == [
        [2, "energy_charge"],
        [4, "energy_charge"],
        [5, "amount_due"],
    ]
    assert q["_message"].tolist() == [
        "energy_charge: a formula (=C2*0.588) saved without its result — the file was written by a tool that "
        "leaves computing formulas to Excel; open it in Excel, save it, and ingest again",
        "energy_charge: the spreadsheet error #N/A, not a value — fix that cell's formula",
        "amount_due: a formula (=C5*0.7) saved without its result — the file was written by a tool that "
        "leaves computing formulas to Excel; open it in Excel, save it, and ingest again",
    ]
    assert q["energy_charge"].tolist()[0] == "=C2*0.588"  # the record shows the formula
    stored = read_table(wh, "bills").query("period < '2024-01-01'").set_index("kwh")["energy_charge"]
    assert stored.to_dict() == {200.0: 117.6, 500.0: 294.0}


def test_xlsx_row_numbers_are_the_sheets_and_a_repeated_header_row_is_no_record(tmp_path: Path):
    wh = tmp_path / "wh"
    ingest(export(tmp_path), wh)
    rows = month_bills(5, [100, -1])
    path = multi_sheet_bills(
        tmp_path / "x" / "电费账单.xlsx",
        # sheet rows 1-2 blank, header on row 3; a paged export repeats the header on row 5
        {"Sheet1": [[None], [None], HEADER, rows[0], HEADER, [None], rows[1]]},
    )
    report = ingest(path, wh, now="2024-06-01").tables["bills"]
    assert (report.rows_read, report.accepted) == (3, 1)
    q = read_quarantine(wh, "bills")
    assert q[["_row", "_rule"]].values.tolist() == [[5, "malformed_row"], [7, "out_of_range"]]
    assert q["_message"].iloc[0].startswith("the header row again, not a record")


def test_a_sheet_with_another_header_refuses_the_workbook(tmp_path: Path):
    path = multi_sheet_bills(
        tmp_path / "x" / "bills.xlsx",
        {"Sheet1": [HEADER, *month_bills(1, [100])], "备注": [["说明", "日期"], ["补录", "2023-02-01"]]},
    )
    result = run(path, "--warehouse", tmp_path / "wh")
    assert result.exit_code == 2
    assert "bills.xlsx: sheet '备注' has another header than sheet 'Sheet1'" in result.output
    assert "move the sheet to a file of its own" in result.output
    assert not (tmp_path / "wh").exists()


def test_huge_values_are_quarantined_not_stored_as_inf(tmp_path: Path):
    wh = tmp_path / "wh"
    report = ingest(
        export(
            tmp_path,
            bills=BILLS
            + "C1,202402,1e39,70,2024-03-03,2024-03-20,2024-03-03 08:00:00\n"  # beyond float32: inf
            + "C2,202402,50000,1e308,2024-03-03,2024-03-20,2024-03-03 08:00:00\n",  # beyond any bill
        ),
        wh,
        now="2024-04-01",
    ).tables["bills"]
    assert report.by_rule == {"out_of_range": 2} and report.accepted == 3
    stored = read_table(wh, "bills")
    assert np.isfinite(stored[["kwh", "amount_due"]].to_numpy(dtype="float32")).all()


@pytest.mark.parametrize("names", [("bills_1.csv", "bills_2.csv"), ("bills_2.csv", "bills_1.csv")])
def test_a_key_two_files_disagree_on_is_a_duplicate_key_whichever_comes_first(
    tmp_path: Path, names: tuple[str, str]
):
    src = export(tmp_path)
    (src / "电费账单.csv").unlink()
    one, two = names
    # bills_1 and bills_2 both hold C2's January bill (same known_at) with other amounts, and C1's as is
    write(src, one, BILLS)
    write(src, two, BILL_HEADER + "C1,202401,120,70.5,2024-02-03,2024-02-20,2024-02-03 08:00:00\n"
          "C2,202401,52000,38000,2024-02-03,2024-02-20,2024-02-03 08:00:00\n")  # fmt: skip
    wh = tmp_path / "wh"
    report = ingest(src, wh).tables["bills"]
    assert report.rows_read == 5 and report.by_rule == {"duplicate_key": 2, "duplicate_row": 1}
    q = read_quarantine(wh, "bills").sort_values(["_rule", "_source"])
    assert q[["_source", "_row", "_rule"]].values.tolist() == [
        ["bills_1.csv", 3, "duplicate_key"],
        ["bills_2.csv", 3, "duplicate_key"],
        ["bills_2.csv", 2, "duplicate_row"],
    ]
    assert q["_message"].iloc[-1] == "exact copy of row 2 of bills_1.csv, which was kept"
    assert sorted(read_table(wh, "bills")["customer_id"]) == ["C1", "C3"]


def test_a_table_split_into_numbered_parts_is_read_whole(tmp_path: Path):
    src = export(tmp_path)
    (src / "电费账单.csv").unlink()
    lines = BILLS.splitlines(keepends=True)
    write(src, "bills_part1.csv", lines[0] + lines[1])  # a large export cut into numbered parts
    write(src, "bills.part2.csv", lines[0] + lines[2])
    write(src, "电费账单_第3部分_202401.csv", lines[0] + lines[3])
    report = ingest(src, tmp_path / "wh")
    assert report.tables["bills"].accepted == 3 and not report.skipped_files
    assert sorted(read_table(tmp_path / "wh", "bills")["customer_id"]) == ["C1", "C2", "C3"]


@pytest.mark.parametrize(
    ("name", "hint"),
    [("bills.txt", "rename it .csv"), ("电费账单.xls", "re-save the .xls workbook as .xlsx")],
)
def test_a_table_in_a_file_type_not_read_refuses_the_run(tmp_path: Path, name: str, hint: str):
    src = export(tmp_path)
    (src / "电费账单.csv").rename(src / name)  # left out, the bills would be missing without a word
    for source in (src, src / name):
        result = run(source, "--warehouse", tmp_path / "wh")
        assert result.exit_code == 2
        assert f"{name}: unsupported file type" in result.output and hint in result.output
    assert not (tmp_path / "wh").exists()


def test_other_files_named_for_a_table_beside_the_export_are_skipped(tmp_path: Path):
    src = export(tmp_path)
    (src / "电费账单.zip").write_bytes(b"PK\x03\x04")  # the downloaded archive, left beside what it held
    (src / "bills.md").write_text("notes on this month's export\n", encoding="utf-8")
    write(src, "供电所名单.csv", "供电所\nS1\n")  # a lookup list: no table in its name
    result = run(src, "--warehouse", tmp_path / "wh")
    assert result.exit_code == 0, result.output
    assert "⚠ 3 file(s) in" in result.output and "not read" in result.output  # said under the counts
    assert "bills.md, 供电所名单.csv, 电费账单.zip" in result.output
    assert (tmp_path / "wh" / "bills.parquet").exists()


def spark_table_folder(folder: Path, frame: pd.DataFrame, by: str | None = None) -> list[Path]:
    """``frame`` written as Spark writes a table: part files (one per row here), partitionBy ``by`` folders
    without that column in the files, INT96 times, and the _SUCCESS and .crc files beside them."""
    folder.mkdir(parents=True)
    (folder / "_SUCCESS").write_bytes(b"")
    parts = []
    for number, (_, row) in enumerate(frame.iterrows()):
        at = folder / f"{by}={row[by]}" if by else folder
        at.mkdir(exist_ok=True)
        path = at / f"part-{number:05d}-7d1f.c000.snappy.parquet"
        rows = frame.iloc[[number]].drop(columns=[by] if by else [])
        pq.write_table(
            pa.Table.from_pandas(rows, preserve_index=False), path, use_deprecated_int96_timestamps=True
        )
        (at / f".{path.name}.crc").write_bytes(b"crc")
        parts.append(path)
    return parts


def test_spark_and_hive_table_folders_are_read_as_their_tables(tmp_path: Path):
    # A Spark export (bills/period=…/part-….parquet, _SUCCESS, .crc) beside exported files was skipped
    # without a word: "✓ 3,091 rows read", exit 0, and the warehouse had no bills and no payments.
    src = export(tmp_path)
    (src / "电费账单.csv").unlink()
    bills = pd.read_csv(pd.io.common.StringIO(BILLS), dtype=str).rename(columns={"电费年月": "period"})
    bills["period"] = "2024-01-01"  # partitionBy(period): the contract column lives in the folder names only
    bills.loc[2, "period"] = "2024-02-01"
    # 01:30 Beijing time on 2024-02-03, as the UTC instant a Spark session writes as INT96
    bills["入账时间"] = pd.Timestamp("2024-02-02 17:30")
    spark_table_folder(src / "bills", bills, by="period")
    payments = pd.DataFrame(
        {
            "payment_id": ["P1", "P2"],
            "customer_id": ["C1", "C2"],
            "period": [dt.date(2024, 1, 1)] * 2,  # a Spark DateType: INT32 days, no time and no zone
            "paid_at": pd.to_datetime(["2024-02-04 02:00", "2024-02-05 03:00"]),
            "amount": [70.5, 39000.0],
            "channel": ["counter", "counter"],
            "month": ["2024-02", "2024-02"],  # partitionBy(month): a column the contract does not have
        }
    )
    spark_table_folder(src / "payments", payments, by="month")
    (src / "docs").mkdir()  # a folder that is no table: listed as not read
    (src / "_temporary").mkdir()  # Spark's own bookkeeping: left out without a word, as Spark's reader does
    result = run(src, "--warehouse", tmp_path / "wh")
    assert result.exit_code == 0, result.output
    said = " ".join(result.output.split())
    assert "10 rows read = 10 accepted + 0 quarantined" in said
    assert "bills/ (3 Parquet parts), payments/ (2 Parquet parts)" in said
    assert "payments: ignored columns not in the contract: month" in said
    assert "⚠ 1 file(s) in" in said and "not read" in said and "docs/" in said and "_temporary" not in said
    stored = read_table(tmp_path / "wh", "bills").sort_values("customer_id")
    assert stored["period"].tolist() == pd.to_datetime(["2024-01-01", "2024-01-01", "2024-02-01"]).tolist()
    assert (stored["known_at"] == pd.Timestamp("2024-02-03 01:30")).all()  # INT96 instants to Beijing time
    assert read_table(tmp_path / "wh", "payments")["paid_at"].tolist() == [
        pd.Timestamp("2024-02-04 10:00"),
        pd.Timestamp("2024-02-05 11:00"),
    ]

    # A bad row is quarantined under the part's path: part names repeat across partition folders.
    again = tmp_path / "again"
    shutil.copytree(src, again)
    bad = next((again / "bills" / "period=2024-02-01").glob("part-*.parquet"))
    part = pq.read_table(bad)
    pq.write_table(part.set_column(part.schema.get_field_index("电量"), "电量", pa.array(["-7"])), bad)
    report = ingest(again, tmp_path / "wh2")
    quarantined = read_quarantine(tmp_path / "wh2", "bills")
    assert report.tables["bills"].accepted == 2 and len(quarantined) == 1
    assert quarantined["_source"].tolist() == [f"bills/period=2024-02-01/{bad.name}"]
    assert quarantined["_row"].tolist() == [1]

    # Given alone, the table folder is that table.
    alone = ingest(src / "bills", tmp_path / "wh")
    assert alone.tables["bills"].unchanged == 3 and list(alone.tables) == ["bills"]


def test_a_table_folder_that_cannot_be_read_whole_refuses_the_run(tmp_path: Path):
    bills = pd.read_csv(pd.io.common.StringIO(BILLS), dtype=str)
    cases = {
        "stray": lambda folder: (folder / "notes.txt").write_text(
            "how this was exported\n", encoding="utf-8"
        ),
        "nested": lambda folder: (folder / "2024").mkdir(),
        "empty": lambda folder: [p.unlink() for p in folder.glob("*.parquet")],
    }
    for case, spoil in cases.items():
        src = export(tmp_path / case)
        (src / "电费账单.csv").unlink()
        spark_table_folder(src / "bills", bills)
        spoil(src / "bills")
        result = run(src, "--warehouse", tmp_path / case / "wh")
        said = " ".join(result.output.split())
        assert result.exit_code == 2, result.output
        assert f"{src / 'bills'} (table bills, a table folder):" in said
        expected = {
            "stray": "bills/notes.txt (not a Parquet part)",
            "nested": "bills/2024/ (a folder, not a key=value partition)",
            "empty": "no Parquet part file in it",
        }[case]
        assert expected in said and "nothing was stored" in said
        assert not (tmp_path / case / "wh").exists()
    # Parts of no named table: the refusal says what to pass instead.
    parts = tmp_path / "month=2024-01"
    spark_table_folder(parts, bills)
    result = run(parts, "--warehouse", tmp_path / "wh")
    assert result.exit_code == 2
    assert "Parquet parts or key=value partition folders without a table's name" in " ".join(
        result.output.split()
    )


def test_a_warehouse_table_stored_as_a_folder_is_refused_and_ingest_reads_it(tmp_path: Path):
    # Spark writing a warehouse makes WH/bills.parquet a folder of parts; it is refused by name, and the fix
    # the message gives (ingest that folder into a new warehouse) works.
    src = export(tmp_path)
    assert run(src, "--warehouse", tmp_path / "wh").exit_code == 0
    spark_wh = tmp_path / "spark_wh"
    shutil.copytree(tmp_path / "wh", spark_wh)
    stored = pq.read_table(spark_wh / "bills.parquet").to_pandas()
    for column in stored.select_dtypes("datetime").columns:  # the UTC instants of a session in Beijing time
        stored[column] = stored[column].dt.tz_localize("Asia/Shanghai").dt.tz_convert(None)
    (spark_wh / "bills.parquet").unlink()
    spark_table_folder(spark_wh / "bills.parquet", stored)
    result = run(src, "--warehouse", spark_wh)
    said = " ".join(result.output.split())
    assert result.exit_code == 2
    assert f"table(s) stored as a folder, not one Parquet file: bills ({spark_wh / 'bills.parquet'})" in said
    assert f"gridrisk ingest {spark_wh} --warehouse NEW" in said
    report = ingest(spark_wh, tmp_path / "new")
    assert report.tables["bills"].accepted == 3 and report.quarantined == 0
    pd.testing.assert_frame_equal(read_table(tmp_path / "new", "bills"), read_table(tmp_path / "wh", "bills"))


@pytest.mark.parametrize("name", ["电费账单_2024年01月.csv", "202401电费账单.csv", "电费账单_第二部分.csv",
                                  "bills-2024-01-31.csv", "台区_2024年1月.csv"])  # fmt: skip
def test_dated_and_numbered_table_files_are_read_as_their_table(tmp_path: Path, name: str):
    # 电费账单_2024年01月.csv was skipped under a green ✓: the month's bills were counted nowhere
    src = export(tmp_path)
    moved = "台区.csv" if name.startswith("台区") else "电费账单.csv"
    (src / moved).rename(src / name)
    report = ingest(src, tmp_path / "wh")
    assert not report.skipped_files
    assert (report.tables["areas"].accepted, report.tables["bills"].accepted) == (2, 3)


def test_a_file_named_like_a_table_but_not_as_one_refuses_the_run(tmp_path: Path):
    src = export(tmp_path)
    (src / "电费账单.csv").rename(src / "长沙_电费账单_202401.csv")  # a city before the table's name
    result = run(src, "--warehouse", tmp_path / "wh")
    assert result.exit_code == 2
    assert "长沙_电费账单_202401.csv (holds '电费账单': bills?)" in result.output
    assert '[files] "长沙_电费账单" = "bills"' in result.output  # without the date: next month's too
    assert not (tmp_path / "wh").exists()  # nothing stored, bills or not
    mapped = write(tmp_path, "map.toml", '[files]\n"长沙_电费账单" = "bills"\n')  # its date is still ignored
    result = run(src, "--warehouse", tmp_path / "wh", "--column-map", mapped)
    assert result.exit_code == 0, result.output
    assert len(read_table(tmp_path / "wh", "bills")) == 3


def test_an_xlsx_workbook_named_csv_is_refused_as_one(tmp_path: Path):
    src = export(tmp_path)
    pd.DataFrame({"户号": ["C1"]}).to_excel(src / "电费账单.csv", index=False)
    result = run(src, "--warehouse", tmp_path / "wh")
    assert result.exit_code == 2 and "not CSV text; if it is a workbook, name it .xlsx" in result.output


@pytest.mark.parametrize(
    ("text", "why"),
    [
        (BILLS.replace("\n", "\r"), "Excel's CSV (Macintosh) ends lines with a lone CR"),
        ("sep=;\n" + BILLS.replace(",", ";"), "Excel's delimiter line above the header"),
        (BILLS + ",,,,,,\n  \n,,,,,,\r\n", "empty rows Excel saves, blank lines"),
    ],
)
def test_csv_line_ends_delimiter_line_and_empty_rows(tmp_path: Path, text: str, why: str):
    report = ingest(export(tmp_path, bills=text), tmp_path / "wh").tables["bills"]
    assert (report.rows_read, report.accepted, report.quarantined) == (3, 3, 0), why
    skipped = [note for note in report.notes if "rows of empty fields skipped" in note]
    assert len(skipped) == (1 if ",,,," in text else 0)  # what is left out is counted and said


def test_a_lone_quote_inside_a_value_holds_back_no_row(tmp_path: Path):
    customers = CUSTOMERS.replace("某店", '5"号楼')  # a literal quote in an unquoted value (5" = 5 inch)
    src = export(tmp_path)
    write(src, "客户档案.csv", customers)
    report = ingest(src, tmp_path / "wh")
    assert report.tables["customers"].accepted == 3 and report.tables["bills"].accepted == 3
    assert read_table(tmp_path / "wh", "customers")["name"].tolist()[-1] == '5"号楼'


def test_a_value_starting_with_a_quoted_part_keeps_its_quotes(tmp_path: Path):
    # "阳光"便利店 is a name with quotes in it, not a quoted value; a reader dropped them without a word
    customers = CUSTOMERS.replace("某店", '"阳光"便利店').replace("某厂", '"钢,铁"厂')
    src = export(tmp_path)
    write(src, "客户档案.csv", customers)
    ingest(src, tmp_path / "wh")
    names = read_table(tmp_path / "wh", "customers")["name"].tolist()
    assert names == ["张三", "钢,铁厂", '"阳光"便利店']  # a quoted delimiter is still a quoted delimiter


def test_a_header_repeated_inside_the_file_is_quarantined_by_name(tmp_path: Path):
    # two exports joined with `copy /b` or `cat`: the second brings its header (and byte-order mark) along
    lines = BILLS.splitlines(keepends=True)
    joined = "".join(lines[:3]).encode("utf-8-sig") + (lines[0] + lines[3]).encode("utf-8-sig")
    src = export(tmp_path)
    (src / "电费账单.csv").write_bytes(joined)
    report = ingest(src, tmp_path / "wh").tables["bills"]
    assert (report.rows_read, report.accepted, report.by_rule) == (4, 3, {"malformed_row": 1})
    q = read_quarantine(tmp_path / "wh", "bills")
    assert q["_row"].tolist() == [4] and q["_message"].str.startswith("the header line again").all()


def test_two_columns_outside_the_contract_may_share_a_header(tmp_path: Path):
    lines = BILLS.splitlines()
    remarked = "\n".join(f"{line},{'备注,备注' if i == 0 else 'a,b'}" for i, line in enumerate(lines)) + "\n"
    report = ingest(export(tmp_path, bills=remarked), tmp_path / "wh").tables["bills"]
    assert report.accepted == 3 and report.extra_columns == ["备注", "备注.1"]


def test_new_rows_entered_in_the_past_or_without_known_at_are_named_in_notes(tmp_path: Path):
    # An auditor: a later export's rows entered before the warehouse's data end changed features at past
    # dates without a word, and a payments file without 销账时间 beside stored postings counted its rows from
    # their payment time, seen before they were posted.
    src = export(tmp_path)
    header = "缴费流水号,户号,电费年月,缴费时间,实收金额,缴费渠道,销账时间\n"
    write(src, "缴费记录.csv", header + "P1,C1,202401,2024-02-10 10:00,70.5,代扣,2024-02-12 06:00\n")
    wh = tmp_path / "wh"
    assert ingest(src, wh, now="2024-03-01").tables["payments"].notes == []
    later = tmp_path / "later"
    write(later, "缴费记录.csv", header + "P2,C2,202401,2024-02-05 10:00,39000,坐收,2024-02-06 08:00\n"
          "P3,C3,202401,2024-02-20 10:00,650.25,网上缴费,2024-02-21 08:00\n")  # fmt: skip
    notes = ingest(later, wh, now="2024-03-01").tables["payments"].notes
    assert any("1 new rows were entered before the warehouse's data end 2024-02-12" in n for n in notes)
    lean = tmp_path / "lean"
    write(lean, "缴费记录.csv", "缴费流水号,户号,电费年月,缴费时间,实收金额,缴费渠道\n"
          "P4,C1,202402,2024-03-10 10:00,70.5,代扣\n")  # fmt: skip
    notes = ingest(lean, wh, now="2024-04-01").tables["payments"].notes
    assert any(
        "1 new rows come from a file without known_at, while the stored rows have it" in n for n in notes
    )
