"""Risk-list exports: archive text that looks like a formula is written as inert text in CSV and XLSX (OWASP
CSV injection), numbers stay numbers; through the API and the web page, which share `serving.exports`."""

from __future__ import annotations

import csv
import io

import pytest
from openpyxl import load_workbook
from tinymodel import write_customers
from webdata import web_service

from serving.exports import csv_bytes, neutralize, xlsx_bytes

# Names a hostile or careless archive entry could hold; each would run as a formula if written as is.
HOSTILE = [
    '=HYPERLINK("http://evil.example","点我")',
    "+1+cmd|' /C calc'!A0",
    "-2+3",
    "@SUM(A1:A9)",
    "\t=1+1",
    "\r=1+1",
]


def test_neutralize_prefixes_formula_text_and_keeps_numbers():
    assert [neutralize(v) for v in HOSTILE] == ["'" + v for v in HOSTILE]
    assert neutralize("王小1") == "王小1" and neutralize("13800000001") == "13800000001"
    assert neutralize(-3.5) == -3.5 and neutralize(7) == 7 and neutralize(None) is None


def test_xlsx_cells_are_strings_never_formulas_or_errors():
    header = ["name", "probability"]
    rows = [[v, -0.5] for v in HOSTILE] + [["#N/A", 0.25]]
    sheet = load_workbook(io.BytesIO(xlsx_bytes("t", header, rows))).active
    cells = list(sheet.iter_rows(min_row=2))
    assert [c[0].data_type for c in cells] == ["s"] * len(rows)
    # XML reads a bare CR back as LF; the quote in front is what matters.
    assert [c[0].value for c in cells[: len(HOSTILE)]] == ["'" + v.replace("\r", "\n") for v in HOSTILE]
    assert cells[-1][0].value == "#N/A"  # text, not Excel's error value
    assert all(c[1].data_type == "n" for c in cells) and cells[0][1].value == -0.5


def test_xlsx_writes_control_characters_as_visible_escapes():
    # Ingest accepts any text; XML 1.0 (so openpyxl) refuses \x00-\x1f other than tab, LF and CR.
    rows = [["王\x0b小", 1.0], ["\x00\x1f", 2.0], ["=1+1\x07", 3.0], ["a\tb\nc", 4.0]]
    sheet = load_workbook(io.BytesIO(xlsx_bytes("t", ["name\x01", "amount"], rows))).active
    table = list(sheet.iter_rows(values_only=True))
    assert table[0] == ("name\\x01", "amount")
    assert [r[0] for r in table[1:]] == ["王\\x0b小", "\\x00\\x1f", "'=1+1\\x07", "a\tb\nc"]


def test_xlsx_text_longer_than_a_cell_holds_ends_with_a_mark():
    """Excel holds 32,767 characters a cell and cut a 40,000-character name without a word."""
    rows = [["王" * 40_000, 1.0], ["李" * 32_767, 2.0]]
    table = list(
        load_workbook(io.BytesIO(xlsx_bytes("t", ["name", "n"], rows))).active.iter_rows(values_only=True)
    )
    assert table[1][0] == "王" * 32_766 + "…" and table[2][0] == "李" * 32_767


def test_csv_cells_are_prefixed():
    text = csv_bytes(["name", "amount"], [[v, -12.5] for v in HOSTILE]).decode("utf-8-sig")
    rows = list(csv.reader(io.StringIO(text, newline="")))[1:]
    assert [r[0] for r in rows] == ["'" + v for v in HOSTILE] and {r[1] for r in rows} == {"-12.5"}


def hostile_archive(settings, population) -> None:
    names = [HOSTILE[i % len(HOSTILE)] for i in range(len(population))]
    write_customers(settings, population, names=names)


def test_api_exports_neutralize_archive_text(service, settings):
    hostile_archive(settings, service.population)
    service.state.refresh()
    params = {"top": 1000, "sort": "probability"}
    headers = service.headers("collector")  # sees names unmasked
    r = service.client.get("/v1/arrears/risk-list", params={**params, "format": "xlsx"}, headers=headers)
    sheet = load_workbook(io.BytesIO(r.content)).active
    header = [c.value for c in next(sheet.iter_rows(max_row=1))]
    name, probability = header.index("name"), header.index("probability")
    body = list(sheet.iter_rows(min_row=2))
    assert body and all(row[name].data_type == "s" and row[name].value[0] == "'" for row in body)
    assert all(isinstance(row[probability].value, float) for row in body)
    r = service.client.get("/v1/arrears/risk-list", params={**params, "format": "csv"}, headers=headers)
    rows = list(csv.DictReader(io.StringIO(r.content.decode("utf-8-sig"), newline="")))
    assert rows and all(row["name"][0] == "'" for row in rows)


def test_api_and_web_xlsx_exports_survive_control_characters_in_names(settings, registry):
    with web_service(settings, registry) as web:
        write_customers(settings, web.population, names=["王\x0b小"] * len(web.population))
        web.state.refresh()
        headers = {"X-API-Key": web.keys["collector"]}  # sees names unmasked
        params = {"top": 1000, "format": "xlsx"}
        api = web.client.get("/v1/arrears/risk-list", params=params, headers=headers)
        assert api.status_code == 200, api.text
        r = web.client.post("/login", data={"api_key": web.keys["collector"]}, follow_redirects=False)
        assert r.status_code == 303
        page = web.client.get("/list/export", params={"format": "xlsx", "lang": "en"})
        assert page.status_code == 200, page.text
    for content, column in ((api.content, "name"), (page.content, "Name")):
        table = list(load_workbook(io.BytesIO(content)).active.iter_rows(values_only=True))
        names = {row[table[0].index(column)] for row in table[1:]}
        assert names == {"王\\x0b小"}


@pytest.mark.parametrize("fmt", ["xlsx", "csv"])
def test_web_exports_neutralize_archive_text(settings, registry, fmt):
    with web_service(settings, registry) as web:
        hostile_archive(settings, web.population)
        web.state.refresh()
        r = web.client.post("/login", data={"api_key": web.keys["collector"]}, follow_redirects=False)
        assert r.status_code == 303
        r = web.client.get("/list/export", params={"format": fmt, "lang": "en"})
        assert r.status_code == 200, r.text
    if fmt == "xlsx":
        table = list(load_workbook(io.BytesIO(r.content)).active.iter_rows(values_only=True))
        names = [row[table[0].index("Name")] for row in table[1:]]
    else:
        text = io.StringIO(r.content.decode("utf-8-sig"), newline="")
        names = [row["Name"] for row in csv.DictReader(text)]
    assert names and all(n[0] == "'" for n in names)


def test_spreadsheet_exports_round_for_people_and_json_keeps_full_precision(service):
    params = {"top": 1000, "sort": "probability"}
    headers = service.headers("collector")
    full = service.client.get("/v1/arrears/risk-list", params=params, headers=headers).json()["items"]
    r = service.client.get("/v1/arrears/risk-list", params={**params, "format": "csv"}, headers=headers)
    rows = list(csv.DictReader(io.StringIO(r.content.decode("utf-8-sig"), newline="")))
    assert len(rows) == len(full) > 0
    places = {"probability": 4, "percentile": 1, "amount_at_stake": 2, "expected_value": 2}
    for item, row in zip(full, rows, strict=True):
        for column, decimals in places.items():
            if item[column] is None:
                assert row[column] == ""
                continue
            assert float(row[column]) == round(item[column], decimals)
            assert len(row[column].partition(".")[2]) <= decimals, row[column]
    assert any(len(str(item["probability"]).partition(".")[2]) > 4 for item in full)  # JSON is not rounded


def test_a_leading_line_feed_is_neutralized_like_cr_and_tab():
    # Fuzz report, 9: "\n=1+1" went out as is; some importers strip leading line breaks.
    from serving.exports import neutralize

    assert neutralize("\n=1+1") == "'\n=1+1"
