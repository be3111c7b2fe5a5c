"""Spreadsheet exports of risk lists (CSV and XLSX), shared by the API (`ranking.py`) and the web page.

Names, phones and addresses come from customer archives, so a cell is never trusted to be plain text: text
that a spreadsheet would run as a formula gets the OWASP treatment (a leading single quote); numbers stay
numbers. The XLSX keeps the quote although its text cells are never formulas: a cell edited in Excel (F2,
Enter) is read again as typed, and `=HYPERLINK(…)` would then run.
"""

from __future__ import annotations

import csv
import io
from typing import Any

# What Excel, LibreOffice and Google Sheets start a formula with (OWASP, "CSV Injection").
FORMULA_TRIGGERS = ("=", "+", "-", "@", "\t", "\r", "\n")  # LF: importers that strip leading breaks
WIDE_COLUMNS = ("reason_", "原因", "Reason")  # reason sentences get wide columns in XLSX
XLSX_CELL_CHARS = 32_767  # the most characters an Excel cell holds


def neutralize(value: Any) -> Any:
    """A cell value safe to open in a spreadsheet: text starting like a formula is prefixed with `'`."""
    if isinstance(value, str) and value.startswith(FORMULA_TRIGGERS):
        return "'" + value
    return value


def csv_bytes(header: list[str], rows: list[list]) -> bytes:
    """CSV as data: an id or phone is written as it is (`0012345`). Excel guesses a CSV's types and reads it
    as a number (12345, 1.92E+10); writing it as `="0012345"` would suit Excel and break every program reading
    the file, so people are pointed to the XLSX instead, where ids and phones are text cells."""
    buffer = io.StringIO()
    writer = csv.writer(buffer)
    writer.writerow([neutralize(v) for v in header])
    writer.writerows([neutralize(v) for v in row] for row in rows)
    return buffer.getvalue().encode("utf-8-sig")  # the BOM makes Excel read the Chinese text as UTF-8


def xlsx_bytes(title: str, header: list[str], rows: list[list]) -> bytes:
    """A workbook with a bold, frozen header and wide reason columns, written row by row (write-only)."""
    from openpyxl import Workbook
    from openpyxl.cell import WriteOnlyCell
    from openpyxl.cell.cell import ILLEGAL_CHARACTERS_RE
    from openpyxl.styles import Font
    from openpyxl.utils import get_column_letter

    book = Workbook(write_only=True)
    sheet = book.create_sheet(title[:31])  # Excel's limit for a sheet name
    sheet.freeze_panes = "A2"
    for i, name in enumerate(header, start=1):
        sheet.column_dimensions[get_column_letter(i)].width = 48 if name.startswith(WIDE_COLUMNS) else 14

    def cell(value: Any) -> Any:
        if not isinstance(value, str):
            return value
        # XML 1.0 cannot hold most control characters (openpyxl raises on them), yet archive text may: write
        # each one as a visible escape ("王\x0b小" -> "王\\x0b小"), which never starts a formula.
        safe = ILLEGAL_CHARACTERS_RE.sub(lambda m: f"\\x{ord(m.group()):02x}", neutralize(value))
        if len(safe) > XLSX_CELL_CHARS:  # Excel cuts a longer cell silently: say so in the cell
            safe = safe[: XLSX_CELL_CHARS - 1] + "…"
        text = WriteOnlyCell(sheet, value=safe)
        # openpyxl reads "=..." as a formula and "#N/A" as an error; archive text is always a string.
        text.data_type = "s"
        return text

    bold = Font(bold=True)
    titles = [cell(name) for name in header]
    for title_cell in titles:
        title_cell.font = bold
    sheet.append(titles)
    for row in rows:
        sheet.append([cell(v) for v in row])
    buffer = io.BytesIO()
    book.save(buffer)
    return buffer.getvalue()
