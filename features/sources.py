"""Warehouse I/O: the only module that reads or writes contract tables (read, write, validate, quarantine).

A warehouse is a folder with one Parquet file per contract table (`<table>.parquet`), a `quarantine/`
folder of rejected rows with their reasons, and for generated data a `truth/` folder used only by evaluation.
"""

from __future__ import annotations

import codecs
import csv
import datetime as dt
import html
import os
import re
import zipfile
from collections.abc import Collection
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.csv as pacsv
import pyarrow.parquet as pq

from features.schema import Table, table
from features.validation import QUARANTINE_META, ContractError


class WarehouseError(Exception):
    """A warehouse table is missing or unreadable."""


def table_path(warehouse: Path, name: str) -> Path:
    return Path(warehouse) / f"{name}.parquet"


def has_table(warehouse: Path, name: str) -> bool:
    return table_path(warehouse, name).exists()


def read_table(warehouse: Path, name: str, columns: list[str] | None = None) -> pd.DataFrame:
    """Read one contract table with contract dtypes (dates and timestamps as datetime64).

    An optional table that is absent reads as an empty frame with the contract's columns.
    """
    spec: Table = table(name)
    path = table_path(warehouse, name)
    if not path.exists():
        if spec.optional:
            return spec.arrow_schema(columns).empty_table().to_pandas(date_as_object=False)
        raise WarehouseError(
            f"warehouse {warehouse} has no table {name!r} ({path} is missing); run `gridrisk ingest`"
        )
    return read_arrow_table(warehouse, name, columns).to_pandas(date_as_object=False)


WAREHOUSE_ZONE_FILE = "timezone.txt"


def stored_timezone(warehouse: Path) -> str | None:
    """The time zone whose wall clock the warehouse's times are in, as its first ingest recorded it (None: not
    recorded, a warehouse older than the record or one generated in place)."""
    path = Path(warehouse) / WAREHOUSE_ZONE_FILE
    try:
        return path.read_text(encoding="utf-8").strip() or None
    except FileNotFoundError:
        return None


def record_timezone(warehouse: Path, zone: str) -> None:
    """Write the warehouse's time zone beside its tables, atomically."""
    path = Path(warehouse) / WAREHOUSE_ZONE_FILE
    path.parent.mkdir(parents=True, exist_ok=True)
    partial = path.with_name(f".{path.name}.partial")
    partial.write_text(zone + "\n", encoding="utf-8")
    os.replace(partial, path)


def check_contract_columns(warehouse: Path) -> None:
    """Refuse a warehouse whose stored tables lack a column the contract requires, or hold times with a zone
    (a file written or edited by hand, or by Spark or Hive): features would otherwise stop deep inside with a
    KeyError, or read UTC instants as local wall clock and see hours of the next day. INT96 timestamps
    (Spark's and Hive's default) are such instants although they carry no zone mark. A table stored as a
    folder of part files is refused as well. Optional columns may be absent; every table's problems are
    named at once. Only the files' footers are read."""
    from features.schema import TABLES

    missing_columns, zoned, folders = [], [], []
    for name, spec in TABLES.items():
        path = table_path(warehouse, name)
        if not path.exists():
            continue
        if path.is_dir():
            folders.append(f"{name} ({path})")
            continue
        footer = _footer_schema(path)
        schema = footer.to_arrow_schema()
        missing = [c for c in spec.required_columns if c not in schema.names]
        if missing:
            missing_columns.append(f"{name} ({path}) lacks {', '.join(missing)}")
        int96 = set(int96_columns(footer))
        zoned += [
            f"{name}.{f.name} ({'INT96' if f.name in int96 else f.type.tz})"
            for f in schema
            if f.name in spec.column_names
            and pa.types.is_timestamp(f.type)
            and (f.type.tz is not None or f.name in int96)
        ]
    if folders:
        raise WarehouseError(
            f"warehouse {warehouse}: table(s) stored as a folder, not one Parquet file: {', '.join(folders)}"
            ". "
            "Spark and Hive write a table as a folder of part files; a warehouse table is the one file "
            "`gridrisk ingest` writes, with its rows checked and its times as local wall clock. Ingest this "
            f"folder into a new warehouse (gridrisk ingest {warehouse} --warehouse NEW [--timezone ZONE]): "
            "ingest reads table folders"
        )
    if missing_columns:
        raise WarehouseError(
            f"warehouse {warehouse}: missing required column(s): {'; '.join(missing_columns)}. Tables "
            "written by `gridrisk ingest` always have them; ingest the exports into an empty warehouse to "
            "rebuild it, or add the columns"
        )
    if zoned:
        raise WarehouseError(
            f"warehouse {warehouse}: time column(s) stored with a time zone: {', '.join(zoned)}. "
            + _ZONED_FIX.format(warehouse=warehouse)
        )


_ZONED_FIX = (
    "The warehouse holds local wall-clock times, and an instant read as one is hours off the day it happened "
    "(INT96, Spark's and Hive's default timestamp, holds UTC instants although it carries no zone); "
    "`gridrisk ingest` converts them: ingest this folder into a new warehouse "
    "(gridrisk ingest {warehouse} --warehouse NEW [--timezone ZONE])"
)


def _footer_schema(path: Path) -> pq.ParquetSchema:
    """A stored table's Parquet schema (physical types included), from its footer only."""
    if path.is_dir():
        raise WarehouseError(
            f"cannot read {path}: it is a folder (Spark and Hive write a table as a folder of part files), "
            f"not the one Parquet file of a warehouse table; ingest it into a new warehouse (gridrisk ingest "
            f"{path.parent} --warehouse NEW), which reads table folders"
        )
    try:
        with pa.OSFile(str(path)) as handle:  # a file, never a URI: `wh:1/bills.parquet` is a path
            return pq.read_metadata(handle).schema
    except (OSError, pa.ArrowInvalid) as exc:
        raise WarehouseError(f"cannot read {path}: {exc}") from exc


def int96_columns(schema: pq.ParquetSchema) -> list[str]:
    """Top-level columns a Parquet file stores as INT96: timestamps Spark and Hive write as UTC instants,
    which pyarrow reads as naive times (a Beijing 01:30 payment would read as 17:30 the day before)."""
    return [
        schema.column(i).path
        for i in range(len(schema))
        if schema.column(i).physical_type == "INT96" and "." not in schema.column(i).path
    ]


def stored_columns(warehouse: Path, name: str, columns: Collection[str] | None = None) -> list[str]:
    """The columns of a stored table, from its footer; refuses a folder, and an INT96 time column among
    ``columns`` (default: every column) as `check_contract_columns` does. Every engine asks this before it
    reads a table, so no reader takes INT96 instants as wall clock."""
    path = table_path(warehouse, name)
    footer = _footer_schema(path)
    instants = [c for c in int96_columns(footer) if columns is None or c in columns]
    if instants:
        raise WarehouseError(
            f"warehouse {warehouse}: time column(s) stored with a time zone: "
            + ", ".join(f"{name}.{c} (INT96)" for c in instants)
            + ". "
            + _ZONED_FIX.format(warehouse=warehouse)
        )
    return list(footer.names)


def read_arrow_table(warehouse: Path, name: str, columns: list[str] | None = None) -> pa.Table:
    """A stored contract table as Arrow, as its file holds it (`read_table` gives pandas). An INT96 time
    column is refused (`stored_columns`), never read as wall clock."""
    path = table_path(warehouse, name)
    stored_columns(warehouse, name, columns)
    try:
        return pq.read_table(path, columns=columns)
    except (OSError, pa.ArrowInvalid) as exc:
        raise WarehouseError(f"cannot read {path}: {exc}") from exc


def write_table(warehouse: Path, name: str, frame: pd.DataFrame) -> Path:
    """Write a contract table with the contract's Arrow schema (columns in contract order)."""
    spec = table(name)
    names = [c for c in spec.column_names if c in frame.columns]
    tbl = pa.Table.from_pandas(frame[names], schema=spec.arrow_schema(names), preserve_index=False)
    return write_arrow_table(warehouse, name, tbl)


def write_arrow_table(warehouse: Path, name: str, tbl: pa.Table) -> Path:
    """Write a contract table already in the contract's Arrow schema. No pandas metadata is kept: a table
    reads back with the same dtypes whether pandas or Arrow wrote it."""
    expected = table(name).arrow_schema(tbl.column_names)
    if not tbl.schema.equals(expected, check_metadata=False):
        raise WarehouseError(f"{name}: not the contract's schema:\n{tbl.schema}\nexpected\n{expected}")
    path = table_path(warehouse, name)
    _write_atomically(tbl.replace_schema_metadata(None), path)
    return path


def _write_atomically(tbl: pa.Table, path: Path) -> None:
    """Write beside the target, then rename: a crash mid-write leaves the old table, never half a file."""
    path.parent.mkdir(parents=True, exist_ok=True)
    partial = path.with_name(f".{path.name}.partial")
    pq.write_table(tbl, partial, compression="zstd")
    os.replace(partial, path)


# --- exports: the files a marketing or metering system hands over -------------------------------------

EXPORT_SUFFIXES = (".csv", ".parquet", ".xlsx")
# Table files in a type not read: named for a table in an export folder, they refuse the run, as leaving that
# table out would lose it without a word. Other types beside an export (bills.zip, bills.md) are skipped.
UNREAD_TABLE_SUFFIXES = (".xls", ".xlsm", ".xlsb", ".ods", ".txt", ".tsv", ".dat", ".dbf")

# Tried in this order. UTF-8 is strict enough that a GBK file practically never decodes as UTF-8, and GB18030
# is the superset of GBK/GB2312 that Chinese Windows tools write.
CSV_ENCODINGS = ("utf-8", "gb18030")
_UTF8_BOM = b"\xef\xbb\xbf"
_UTF16_BOMS = (b"\xff\xfe", b"\xfe\xff")
_ZIP_MAGIC = b"PK\x03\x04"  # an .xlsx workbook is a zip archive
_CHUNK = 1 << 24


@dataclass
class Export:
    """One export file as read: raw headers and values (strings from CSV, typed cells from Parquet/XLSX).

    ``frame`` has a ``_row`` column: where a user finds the row — the line of a CSV file it starts on
    (counting the header, blank lines and the lines of multi-line values, as an editor does), the sheet row
    of a workbook (as Excel shows it), the row of a Parquet file counted from 1. ``malformed`` holds rows
    that are no record (columns ``_row``, ``_text``, ``_message``, ``_source``); they never reach ``frame``.
    ``sheets``, for a workbook whose rows come from several sheets, names each row's sheet. ``head`` holds
    the first rows that are not empty, header included, as (row, cells): where the header really is when
    the first row is a title.
    """

    path: Path
    frame: pd.DataFrame
    malformed: pd.DataFrame
    encoding: str | None = None
    notes: list[str] = field(default_factory=list)
    sheets: np.ndarray | None = None
    head: list[tuple[int, list[str]]] = field(default_factory=list)
    label: str = (
        ""  # how rows name the file: its name, or a part's path in its table folder (bills/month=…/…)
    )

    @property
    def name(self) -> str:
        return self.label or self.path.name

    def row_sources(self) -> np.ndarray:
        """Where each row of ``frame`` came from: the file name, with its sheet for a multi-sheet workbook."""
        if self.sheets is None:
            labels = np.empty(len(self.frame), dtype=object)
            labels.fill(self.name)  # one shared str object, not a copy per row
            return labels
        codes, names = pd.factorize(self.sheets)
        return np.array([f"{self.name} [{name}]" for name in names], dtype=object)[codes]


def read_export(path: Path, *, suffix: str | None = None) -> Export:
    """Read one CSV, Parquet or XLSX export; raise ContractError when the file as a whole is unusable.
    ``suffix`` reads a file named without one as that type (Hive names its Parquet parts 000000_0)."""
    path = Path(path)
    suffix = (suffix or path.suffix).lower()
    if suffix == ".csv":
        return _read_csv(path)
    if suffix == ".parquet":
        return _read_parquet(path)
    if suffix == ".xlsx":
        return _read_xlsx(path)
    raise unsupported_type(path)


def unsupported_type(path: Path) -> ContractError:
    """The refusal of an export in a file type gridrisk does not read, with the way to one it does."""
    suffix = Path(path).suffix.lower()
    hints = {
        ".xls": " (re-save the .xls workbook as .xlsx)",
        ".txt": " (delimited text: rename it .csv; the delimiter is found from its header line)",
        ".tsv": " (delimited text: rename it .csv; the delimiter is found from its header line)",
    }
    return ContractError(
        f"{path}: unsupported file type {suffix!r}; export the table as one of {', '.join(EXPORT_SUFFIXES)}"
        + hints.get(suffix, "")
    )


def _malformed(entries: list[tuple[int, str, str]], source: str | list[str]) -> pd.DataFrame:
    """Rows that are no record, as (row, text, reason), from ``source`` (a file name, or one per entry)."""
    return pd.DataFrame(
        {
            "_row": pd.Series([e[0] for e in entries], dtype="int64"),
            "_text": pd.Series([e[1] for e in entries], dtype="str"),
            "_message": pd.Series([e[2] for e in entries], dtype="str"),
            "_source": pd.Series([source] * len(entries) if isinstance(source, str) else source, dtype="str"),
        }
    )


def _read_parquet(path: Path) -> Export:
    try:
        file = pq.ParquetFile(path)
        tbl = file.read()
    except (OSError, pa.ArrowException) as exc:
        raise ContractError(
            f"{path}: unreadable Parquet ({exc}); the file is truncated or not Parquet — copy or export it "
            "again"
        ) from exc
    tbl = _int96_as_utc(tbl, file.schema)
    frame = tbl.to_pandas(date_as_object=False)
    frame["_row"] = np.arange(1, len(frame) + 1, dtype="int64")
    return Export(path=path, frame=frame, malformed=_malformed([], path.name))


def _int96_as_utc(tbl: pa.Table, schema: pq.ParquetSchema) -> pa.Table:
    """INT96 columns marked as the UTC instants they are. Spark and Hive write timestamps as INT96 by default,
    in UTC, and pyarrow reads them without a zone: stored as they read, a payment posted at 01:00 Beijing time
    would be kept 8 hours early, on the day before. Marked UTC, validation converts them to the warehouse's
    zone like any zoned timestamp."""
    for name in sorted(set(int96_columns(schema)) & set(tbl.column_names)):
        column = tbl[name]
        if pa.types.is_timestamp(column.type) and column.type.tz is None:
            at = tbl.column_names.index(name)
            utc = column.cast(pa.timestamp(column.type.unit, tz="UTC"))  # the same instants, now marked
            tbl = tbl.set_column(at, pa.field(name, utc.type), utc)
    return tbl


def _read_xlsx(path: Path) -> Export:
    """Every sheet of the workbook: exports larger than Excel's 1,048,576-row limit continue on further sheets
    under the same header, so those sheets are one table. A sheet with rows under another header refuses the
    file, never skipped; a sheet without rows holds nothing to lose and is left out. ``_row`` is the sheet's
    own row number, as Excel shows it."""
    from openpyxl import load_workbook
    from openpyxl.utils.exceptions import InvalidFileException

    unreadable = (zipfile.BadZipFile, OSError, KeyError, ValueError, EOFError, InvalidFileException)
    try:
        book = load_workbook(path, read_only=True, data_only=True)
    except unreadable as exc:
        raise ContractError(
            f"{path}: unreadable XLSX workbook ({exc}); the file is truncated or not .xlsx — save it again "
            "from Excel"
        ) from exc
    try:
        sheets = [_read_sheet(book, sheet) for sheet in book.worksheets]
    except unreadable as exc:
        raise ContractError(
            f"{path}: unreadable XLSX workbook ({exc}); the file is truncated or damaged — save it again "
            "from Excel"
        ) from exc
    finally:
        book.close()
    # The header is the first sheet's with data rows. A sheet without rows (blank, or a notes sheet holding a
    # title) loses nothing when it is left out; it is named in a note when its header differs.
    with_rows = [sheet for sheet in sheets if len(sheet.frame) or sheet.malformed]
    if not with_rows:
        first = sheets[0] if sheets else None
        frame = first.frame if first else pd.DataFrame({"_row": pd.Series([], dtype="int64")})
        return Export(
            path=path, frame=frame, malformed=_malformed([], path.name), head=first.head if first else []
        )
    header = set(with_rows[0].frame.columns)
    for sheet in with_rows[1:]:
        if set(sheet.frame.columns) != header:
            _refuse_sheet(path, with_rows[0], sheet)
    left_out = [
        repr(sheet.name)
        for sheet in sheets
        if sheet not in with_rows and set(sheet.frame.columns) - {"_row"} - header
    ]
    notes = [f"left out sheet(s) without rows: {', '.join(left_out)}"] if left_out else []
    head = with_rows[0].head
    if len(with_rows) == 1:
        sheet = with_rows[0]
        return Export(
            path=path,
            frame=sheet.frame,
            malformed=_malformed(sheet.malformed, path.name),
            notes=notes,
            head=head,
        )
    counts = ", ".join(f"{sheet.name!r} ({len(sheet.frame):,} rows)" for sheet in with_rows)
    notes.insert(0, f"read {len(with_rows)} sheets with one header: {counts}")
    malformed = [(entry, f"{path.name} [{sheet.name}]") for sheet in with_rows for entry in sheet.malformed]
    return Export(
        path=path,
        frame=pd.concat([sheet.frame for sheet in with_rows], ignore_index=True),
        malformed=_malformed([entry for entry, _ in malformed], [source for _, source in malformed]),
        notes=notes,
        sheets=np.concatenate([np.full(len(sheet.frame), sheet.name, dtype=object) for sheet in with_rows]),
        head=head,
    )


@dataclass
class _Sheet:
    """One worksheet as read: its rows under its header (``_row`` = sheet row), the rows that are no record
    (the header again), and its first rows (for a header that is not on the first row)."""

    name: str
    frame: pd.DataFrame
    malformed: list[tuple[int, str, str]]
    head: list[tuple[int, list[str]]]


def _cell_text(value: object) -> str:
    return "" if value is None else str(value).strip()


def _is_blank(value: object) -> bool:
    return value is None or (isinstance(value, str) and not value.strip())


def _read_sheet(book, sheet) -> _Sheet:  # type: ignore[no-untyped-def]
    """The rows of one worksheet: the first row that is not empty is the header; empty rows are layout."""
    sheet.reset_dimensions()  # a stale size record (some tools write A1) would cut the sheet short
    uncomputed = _formulas_without_values(book, sheet)
    month_cells = _month_format_cells(book, sheet)
    header: list[str] | None = None
    rows: list[tuple] = []
    numbers: list[int] = []
    head: list[tuple[int, list[str]]] = []
    malformed: list[tuple[int, str, str]] = []
    for number, values in enumerate(sheet.iter_rows(min_row=1, values_only=True), start=1):
        if number in uncomputed:
            # A formula saved without its result reads as empty; its text stands in, so validation says so.
            values = list(values)
            for column, formula in uncomputed[number].items():
                values.extend([None] * (column - len(values)))
                values[column - 1] = formula
        if number in month_cells:
            values = _as_shown_month(values, month_cells[number])
        if all(_is_blank(v) for v in values):
            continue
        if len(head) < HEAD_ROWS:
            head.append((number, [_cell_text(v) for v in values]))
        if header is None:
            header = [_cell_text(v) for v in values]
            continue
        if [_cell_text(v) for v in values[: len(header)]] == header and not any(
            not _is_blank(v) for v in values[len(header) :]
        ):
            malformed.append(
                (
                    number,
                    "\t".join(header),
                    "the header row again, not a record (a paged export, or sheets pasted one under another)",
                )
            )
            continue
        rows.append(values)
        numbers.append(number)
    header = header or []
    width = max([len(header), *(len(row) for row in rows)]) if rows else len(header)
    names = [*header, *[""] * (width - len(header))]
    frame = pd.DataFrame.from_records(
        [tuple(row) + (None,) * (width - len(row)) for row in rows], columns=range(width), nrows=len(rows)
    ).astype(object)
    if not rows:
        frame = pd.DataFrame({i: pd.Series([], dtype=object) for i in range(width)})
    # A column without a header and without values is formatting, not data; one with values needs a name.
    keep = [i for i, name in enumerate(names) if name or frame[i].notna().any()]
    frame = frame[keep]
    frame.columns = [names[i] or f"unnamed_{i}" for i in keep]
    frame["_row"] = np.asarray(numbers, dtype="int64")
    return _Sheet(sheet.title, frame.reset_index(drop=True), malformed, head)


_CELL_REF = re.compile(rb'\br="([A-Z]+)(\d+)"')
_CACHED_VALUE = re.compile(rb"<v>([^<]*)</v>")
_FORMULA_TEXT = re.compile(rb"<f\b[^>]*>([^<]*)</f>")


def _formulas_without_values(book, sheet) -> dict[int, dict[int, str]]:  # type: ignore[no-untyped-def]
    """Sheet row -> column (from 1) -> ``=formula`` for formula cells saved without their result. Reporting
    tools (Apache POI, openpyxl) write formulas and leave computing them to Excel; such a cell reads as empty,
    and an optional value would be lost without a word. Only the sheet's formula cells are looked at."""
    from openpyxl.utils import column_index_from_string

    archive, member = getattr(book, "_archive", None), getattr(sheet, "_worksheet_path", None)
    if archive is None or member is None:
        return {}
    out: dict[int, dict[int, str]] = {}
    with archive.open(member) as src:
        tail = b""
        while chunk := src.read(_CHUNK):
            data = tail + chunk
            cut = data.rfind(b"</c>") + 4 if b"</c>" in data else 0
            block, tail = data[:cut], data[cut:]
            at = block.find(b"<f")
            while at >= 0:
                if block[at + 2 : at + 3] not in (b">", b" ", b"/"):  # <formula> of conditional formats
                    at = block.find(b"<f", at + 2)
                    continue
                begin, close = block.rfind(b"<c ", 0, at), block.find(b"</c>", at)
                cell = block[begin:close]
                attrs = cell[: cell.find(b">")]
                ref = _CELL_REF.search(attrs)
                cached = _CACHED_VALUE.search(cell)
                # An empty text result is a result (Excel writes t="str" and an empty value for it).
                if ref and not (cached and (cached.group(1) or b't="str"' in attrs)):
                    formula = _FORMULA_TEXT.search(cell)
                    text = html.unescape(formula.group(1).decode("utf-8")) if formula else ""
                    row, column = int(ref.group(2)), column_index_from_string(ref.group(1).decode("ascii"))
                    out.setdefault(row, {})[column] = f"={text}" if text else "=(a shared formula)"
                at = block.find(b"<f", close)
    return out


_STYLED_CELL = re.compile(rb'<c\b([^>]*?)\bs="(\d+)"([^>]*)>')
_FORMAT_LITERAL = re.compile(r'"[^"]*"|\\.|\[[^\]]*\]|_.|\*.')


def _month_only_format(code: str) -> bool:
    """Whether a date number format shows a year and month but no day (yyyy-mm, yyyy"年"m"月", mmm-yy)."""
    tokens = _FORMAT_LITERAL.sub("", code.split(";")[0]).lower()
    return ("y" in tokens or "e" in tokens) and "m" in tokens and "d" not in tokens


def _month_format_cells(book, sheet) -> dict[int, set[int]]:  # type: ignore[no-untyped-def]
    """Sheet row -> columns (from 1) of date cells whose number format shows only a month. openpyxl reads
    such a cell as the 1st of its month; Excel shows 2023-06, and which day it was is unknown. Only looked
    for when the workbook has such a format."""
    from openpyxl.styles.numbers import BUILTIN_FORMATS_MAX_SIZE, builtin_format_code
    from openpyxl.utils import column_index_from_string

    styles, custom = getattr(book, "_cell_styles", None), getattr(book, "_number_formats", None)
    dates = getattr(book, "_date_formats", None)
    archive, member = getattr(book, "_archive", None), getattr(sheet, "_worksheet_path", None)
    if styles is None or custom is None or dates is None or archive is None or member is None:
        return {}
    months = set()
    for index in dates:
        fmt = styles[index].numFmtId
        code = (
            custom[fmt - BUILTIN_FORMATS_MAX_SIZE]
            if fmt >= BUILTIN_FORMATS_MAX_SIZE
            else builtin_format_code(fmt)
        )
        if code and _month_only_format(code):
            months.add(index)
    if not months:
        return {}
    out: dict[int, set[int]] = {}
    with archive.open(member) as src:
        tail = b""
        while chunk := src.read(_CHUNK):
            data = tail + chunk
            cut = data.rfind(b"<")  # no tag is cut in two: '<' stands only at a tag's start
            block, tail = data[:cut], data[cut:]
            for match in _STYLED_CELL.finditer(block):
                if int(match.group(2)) in months:
                    ref = _CELL_REF.search(match.group(1) + match.group(3))
                    if ref:
                        row, column = (
                            int(ref.group(2)),
                            column_index_from_string(ref.group(1).decode("ascii")),
                        )
                        out.setdefault(row, set()).add(column)
    return out


def _as_shown_month(values: tuple | list, columns: set[int]) -> list:
    """A row's month-formatted date cells as the month Excel shows (``2023-06``): text that the month rule
    reads as a billing month where a month is a value, and quarantines elsewhere, as in a CSV export."""
    values = list(values)
    for column in columns:
        value = values[column - 1] if column <= len(values) else None
        if isinstance(value, dt.datetime | dt.date):
            values[column - 1] = f"{value.year:04d}-{value.month:02d}"
    return values


def _refuse_sheet(path: Path, first: _Sheet, other: _Sheet) -> None:
    header = [c for c in first.frame.columns if c != "_row"]
    columns = [c for c in other.frame.columns if c != "_row"]
    missing = [c for c in header if c not in columns]
    extra = [c for c in columns if c not in header]
    differences = "; ".join(
        part
        for part in (
            f"lacks {', '.join(missing)}" if missing else "",
            f"adds {', '.join(extra)}" if extra else "",
        )
        if part
    )
    raise ContractError(
        f"{path}: sheet {other.name!r} has another header than sheet {first.name!r} ({differences}); a table "
        "split across sheets repeats the same header on each — fix that sheet's header, or move the sheet to "
        "a file of its own"
    )


def _utf8_payload(path: Path, data: bytes) -> tuple[bytes, str, list[str], bool]:
    """The bytes as UTF-8, the encoding found, notes, and whether the file ends inside a character (cut
    short: that character is dropped)."""
    notes: list[str] = []
    if data.startswith(_UTF16_BOMS):
        # Excel's "Unicode text" and some Windows tools write UTF-16; its byte-order mark makes it certain.
        try:
            return data.decode("utf-16").encode("utf-8"), "utf-16", notes, False
        except UnicodeDecodeError as exc:
            raise ContractError(
                f"{path}: starts with a UTF-16 byte-order mark but does not decode as UTF-16 (at byte "
                f"{exc.start}): truncated or damaged? Save it again, as 'CSV UTF-8'"
            ) from exc
    head = data[:4096]
    if head.count(0) > len(head) // 4:  # no text holds NUL bytes; UTF-16 of ASCII is every other byte 0
        raise ContractError(
            f"{path}: wrong encoding — it looks like UTF-16 without a byte-order mark (every other byte "
            "is 0); re-export the file as UTF-8 CSV (Excel: 'CSV UTF-8')"
        )
    if data.startswith(_UTF8_BOM):
        data, bom = data[len(_UTF8_BOM) :], True
    else:
        bom = False
    failures = []
    for encoding in CSV_ENCODINGS if not bom else ("utf-8",):
        decoder = codecs.getincrementaldecoder(encoding)()
        out = bytearray() if encoding != "utf-8" else None
        view = memoryview(data)
        try:
            for start in range(0, len(data), _CHUNK):
                text = decoder.decode(view[start : start + _CHUNK], final=False)
                if out is not None:
                    out += text.encode("utf-8")
        except UnicodeDecodeError as exc:
            offset = start + exc.start
            failures.append(f"{encoding} fails at byte {offset} (0x{data[offset]:02x})")
            continue
        pending = len(decoder.getstate()[0])
        if pending:
            notes.append(
                f"file ends inside a {encoding} character: truncated? the last {pending} byte(s) dropped"
            )
        name = "utf-8-sig" if bom else encoding
        payload = data[: len(data) - pending] if out is None else bytes(out)
        if name == "utf-8" and (doubt := _gbk_read_as_utf8(data)):
            notes.append(doubt)
        return payload, name, notes, bool(pending)
    raise ContractError(
        f"{path}: wrong encoding — not UTF-8, UTF-8 with BOM, UTF-16 with BOM or GB18030 "
        f"({'; '.join(failures)}); re-export the file as UTF-8 CSV"
    )


_CJK = re.compile("[\u4e00-\u9fff]")
_LETTERS_NOT_CHINESE = re.compile("[\u00a0-\u052f]")  # Latin-1 to Cyrillic, IPA, Greek: ¬ΰ ʷǿ


def _gbk_read_as_utf8(data: bytes) -> str | None:
    """A note when a file that decodes as UTF-8 may be GBK: about 1,900 common hanzi (卢 伟 史 强 …) have GBK
    bytes that are also valid UTF-8. Read as UTF-8 such a file has no Chinese but Latin or Greek letters,
    while GB18030 reads Chinese; which is right cannot be told for certain, so it is said, not changed."""
    sample = data[: 1 << 20]
    text = sample.decode("utf-8", errors="ignore")
    if _CJK.search(text) or not (odd := _LETTERS_NOT_CHINESE.findall(text)):
        return None
    chinese = _CJK.findall(sample.decode("gb18030", errors="ignore"))
    if len(chinese) < len(odd) // 2:
        return None
    return (
        f"read as UTF-8, but its text has no Chinese and letters such as {''.join(odd[:6])}, which as "
        f"GB18030 would be {''.join(chinese[:6])}: if names look garbled, the file is GBK — re-export it as "
        "UTF-8 (a GBK file whose Chinese happens to be valid UTF-8 cannot be told apart for certain)"
    )


def _read_csv(path: Path) -> Export:
    try:
        raw = path.read_bytes()
    except OSError as exc:
        raise ContractError(f"{path}: unreadable ({exc}); check the path and its permissions") from exc
    if raw.startswith(_ZIP_MAGIC):
        raise ContractError(
            f"{path}: a zip archive or .xlsx workbook, not CSV text; if it is a workbook, name it .xlsx"
        )
    if not raw:
        raise ContractError(
            f"{path}: empty file (0 bytes), not even a header line — did the export fail? A table without "
            "rows is exported as its header line alone; export it again, or take the file out of the folder"
        )
    payload, encoding, notes, cut_char = _utf8_payload(path, raw)
    if not payload.strip():
        raise ContractError(f"{path}: no header line; the first line must name the columns")
    # Many exporters write no line end after the last line; one is added, so the last row reads as the others.
    ended = payload.endswith((b"\n", b"\r"))
    if not ended:
        payload += b"\n"
    lines = _Lines(payload)
    header_line = 1
    first_line = lines.text(1)
    # Excel writes a `sep=;` line above the header when the delimiter is not the locale's.
    hint = _SEP_HINT.fullmatch(first_line.strip(" "))
    if hint and len(lines) > 1:
        header_line, first_line = 2, lines.text(2)
    if not first_line.strip():
        raise ContractError(f"{path}: no header line; the first line must name the columns")
    delimiter = hint.group(1) if hint else max(",\t;|", key=first_line.count)
    try:
        header = next(csv.reader([first_line], delimiter=delimiter))
    except csv.Error as exc:
        raise ContractError(f"{path}: unreadable header line ({exc}); export the file again") from exc
    literal = _literal_quotes(payload, delimiter)
    if literal is not payload:
        lines = _Lines(literal)
    frame, bad, layout = _read_records(path, lines, header, header_line + 1, delimiter)
    frame, repeated = _drop_layout_rows(frame, header, delimiter)
    bad.extend(repeated)
    bad.sort(key=lambda entry: entry[0])
    # Counted, so read = accepted + quarantined + these: the lines of spaces and the rows of empty fields.
    if layout:
        notes.append(f"{layout} rows of empty fields skipped (layout a spreadsheet saves, not records)")
    if not ended and len(frame) and frame["_row"].iloc[-1] == lines.last_filled():
        if cut_char:
            # Cut inside a character, the file is short for certain: its last row is held back, not trusted.
            values = frame.drop(columns="_row").iloc[-1]
            bad.append(
                (
                    int(frame["_row"].iloc[-1]),
                    delimiter.join("" if pd.isna(v) else str(v) for v in values),
                    "the file ends inside a character of this row: truncated? export it again",
                )
            )
            frame = frame.iloc[:-1]
        else:
            notes.append(
                f"no line end after the last line (line {len(lines):,}); that row has every field and is "
                "read as a complete row — if the export may have been cut short, compare it with the source"
            )
    return Export(
        path=path,
        frame=frame,
        malformed=_malformed(bad, path.name),
        encoding=encoding,
        notes=notes,
        head=_csv_head(lines, header_line),
    )


_LINE_CHUNK = 1 << 26


class _Lines:
    """A CSV payload (ending with a line end) and its physical lines, numbered from 1 as an editor shows
    them. Line ends are CRLF, LF or a lone CR."""

    def __init__(self, payload: bytes) -> None:
        self.payload = payload
        arr = np.frombuffer(payload, dtype=np.uint8)
        ends, contents = [], []
        for start in range(0, len(arr), _LINE_CHUNK):
            part = arr[start : start + _LINE_CHUNK + 1]  # a byte more: a CR whose LF opens the next chunk
            own = part[: min(_LINE_CHUNK, len(arr) - start)]
            lf = np.flatnonzero(own == 10)
            cr = np.flatnonzero(own == 13)
            after = cr + 1
            paired = np.zeros(len(cr), dtype=bool)
            inside = after < len(part)
            paired[inside] = part[after[inside]] == 10
            end = np.sort(np.concatenate([lf, cr[~paired]]))
            content = end - np.isin(end, cr[paired] + 1)  # a CRLF line's content ends at its CR
            ends.append(end + start)
            contents.append(content + start)
        self.ends = np.concatenate(ends).astype(np.int64)
        self.content_ends = np.concatenate(contents).astype(np.int64)
        self.starts = np.concatenate([[0], self.ends[:-1] + 1]).astype(np.int64)

    def __len__(self) -> int:
        return len(self.starts)

    def raw(self, number: int) -> bytes:
        return self.payload[self.starts[number - 1] : self.content_ends[number - 1]]

    def text(self, number: int) -> str:
        return self.raw(number).decode("utf-8")

    def filled(self, first: int) -> np.ndarray:
        """The numbers of the lines from ``first`` on that are not empty (a CSV reader skips empty ones)."""
        lengths = self.content_ends[first - 1 :] - self.starts[first - 1 :]
        return np.flatnonzero(lengths > 0) + first

    def last_filled(self) -> int:
        filled = np.flatnonzero(self.content_ends > self.starts)
        return int(filled[-1]) + 1 if len(filled) else 0


# More lines than this opening a quote that never closes: the file's quotes do not follow CSV, and reading the
# rest again after each such line would not end in reasonable time; the file is refused instead.
MAX_OPEN_QUOTES = 100


def _read_records(
    path: Path, lines: _Lines, header: list[str], first: int, delimiter: str
) -> tuple[pd.DataFrame, list[tuple[int, str, str]], int]:
    """The records from line ``first`` on, each numbered by the line it starts on (``_row``); the rows that do
    not split into the header's fields, as (line, text, reason); and how many lines of nothing but spaces and
    delimiters (layout) were left out.

    A quote that opens a value and does not close on its line makes a CSV reader take the lines after it as
    part of that value, to the next quote or to the end of the file. When those lines look like records, or
    the value runs to the end of the file, the line with the quote is set aside with that reason and the lines
    after it are read again on their own: no row is lost inside another."""
    names = [f"c{i}" for i in range(len(header))]
    tables: list[pa.Table] = []
    numbers: list[np.ndarray] = []
    bad: list[tuple[int, str, str]] = []
    layout = 0
    opened: list[int] = []
    while first <= len(lines):
        tbl, invalid = _parse_lines(path, lines, first, names, delimiter)
        starts, spans, flags = _record_lines(lines, first, tbl, invalid)
        broken = _open_quote(lines, starts, spans, len(header), delimiter)
        cut = len(starts) if broken is None else broken[0]
        kept = starts[:cut][~flags[:cut]]
        tables.append(tbl.slice(0, len(kept)))
        numbers.append(kept)
        for (_, actual, expected, text), index in zip(invalid, np.flatnonzero(flags), strict=True):
            if index >= cut:
                break
            if not text.replace(delimiter, "").strip():
                layout += 1
                continue
            bad.append((int(starts[index]), text, _field_count_message(actual, expected, text, delimiter)))
        if broken is None:
            break
        index, end = broken
        line = int(starts[index])
        opened.append(line)
        if len(opened) > MAX_OPEN_QUOTES:
            raise ContractError(
                f"{path}: more than {MAX_OPEN_QUOTES} lines open a quoted value that does not close on its "
                f"line (lines {', '.join(f'{n:,}' for n in opened[:5])}, …): the file's quotes do not follow "
                "CSV. "
                'Export it again with every quote inside a value doubled (""), or without quotes'
            )
        reach = "runs to the end of the file" if end >= len(lines) else f"closes only on line {end:,}"
        bad.append(
            (
                line,
                lines.text(line),
                f"a quote opens a value in this line and {reach}, taking the {max(end - line, 0):,} line(s) "
                "after it into that value: this line is held back and the lines after it are read on their "
                'own. Fix the quote (a quote inside a value is written "")',
            )
        )
        first = line + 1
    frame = pa.concat_tables(tables).to_pandas() if tables else pd.DataFrame({n: [] for n in names})
    frame.columns = [h.strip() or f"unnamed_{i}" for i, h in enumerate(header)]
    frame["_row"] = np.concatenate(numbers).astype("int64") if numbers else np.array([], dtype="int64")
    return frame, bad, layout


def _field_count_message(actual: int, expected: int, text: str, delimiter: str) -> str:
    message = (
        f"{actual} fields where the header has {expected} (truncated row, or a delimiter inside an unquoted "
        "value)"
    )
    if actual == expected + 1 and text.rstrip().endswith(delimiter):
        message += (
            "; the line ends with a delimiter — if every data line does, end the header line with "
            f"{delimiter!r} too"
        )
    return message


def _parse_lines(
    path: Path, lines: _Lines, first: int, names: list[str], delimiter: str
) -> tuple[pa.Table, list[tuple[int, int, int, str]]]:
    """pyarrow's parse of the lines from ``first`` on: the rows that split into the header's fields, and the
    others as (record number from 1, fields, expected fields, text), in file order."""
    invalid: list[tuple[int, int, int, str]] = []

    def keep(row: pacsv.InvalidRow) -> str:
        invalid.append((row.number, row.actual_columns, row.expected_columns, row.text))
        return "skip"

    data = pa.py_buffer(lines.payload)[int(lines.starts[first - 1]) :]
    block: int | None = None
    while True:
        invalid.clear()
        try:
            tbl = pacsv.read_csv(
                pa.BufferReader(data),
                read_options=pacsv.ReadOptions(
                    column_names=names, use_threads=False, **({"block_size": block} if block else {})
                ),
                parse_options=pacsv.ParseOptions(
                    delimiter=delimiter, newlines_in_values=True, invalid_row_handler=keep
                ),
                convert_options=pacsv.ConvertOptions(
                    column_types={n: pa.string() for n in names}, strings_can_be_null=False
                ),
            )
            break
        except pa.ArrowInvalid as exc:
            # A row longer than the reader's block (megabytes pasted into one cell) needs a larger block: the
            # rest of the file at most, so no row is too long short of memory.
            if block is None and "block" in str(exc):
                block = min(data.size + 1, (1 << 31) - 1)
                continue
            raise ContractError(
                f"{path}: unreadable CSV from line {first:,} on ({exc}); export it again"
            ) from exc
    invalid.sort(key=lambda row: row[0])
    return tbl, invalid


def _record_lines(
    lines: _Lines, first: int, tbl: pa.Table, invalid: list[tuple[int, int, int, str]]
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """For each record parsed from line ``first`` on, in file order: the line it starts on, how many lines
    it spans, and whether it is one of the ``invalid`` rows. A reader skips empty lines and numbers records,
    not lines; the line numbers come from the empty lines and the line ends inside quoted values."""
    n = tbl.num_rows + len(invalid)
    flags = np.zeros(n, dtype=bool)
    filled = lines.filled(first)
    spans = np.ones(n, dtype=np.int64)
    if n == 0:
        return np.array([], dtype=np.int64), spans, flags
    flags[[number - 1 for number, *_ in invalid]] = True  # the valid rows take the places between them
    if len(filled) == n:  # no record spans lines: the k-th record is the k-th line that is not empty
        return filled.astype(np.int64), spans, flags
    breaks = np.zeros(tbl.num_rows, dtype=np.int64)
    for column in tbl.columns:
        counts = [pc.count_substring(column, end) for end in ("\n", "\r", "\r\n")]
        breaks += (counts[0].to_numpy() + counts[1].to_numpy() - counts[2].to_numpy()).astype(np.int64)
    spans[~flags] += breaks
    spans[flags] += np.array(
        [text.count("\n") + text.count("\r") - text.count("\r\n") for *_, text in invalid], dtype=np.int64
    )
    starts = np.empty(n, dtype=np.int64)
    at = 0  # position in `filled` of the next record's first line
    done = 0
    for k in np.flatnonzero(spans > 1):
        count = k - done
        starts[done:k] = filled[at : at + count]
        at += count
        starts[k] = filled[min(at, len(filled) - 1)]
        at = int(np.searchsorted(filled, starts[k] + spans[k]))
        done = k + 1
    rest = filled[at : at + n - done]
    starts[done : done + len(rest)] = rest
    starts[done + len(rest) :] = filled[-1] if len(filled) else first  # a value running past the last line
    return starts, spans, flags


def _open_quote(
    lines: _Lines, starts: np.ndarray, spans: np.ndarray, fields: int, delimiter: str
) -> tuple[int, int] | None:
    """The first record with a quoted value that took in lines not its own, and the line that value ends on:
    a value running to the end of the file (its quote never closes), or one with a line holding a record's
    delimiters inside the quotes. A value over a few lines of an address or a remark is neither."""
    for k in np.flatnonzero(spans > 1):
        line, end = int(starts[k]), int(starts[k] + spans[k] - 1)
        if end > len(lines):  # the value took in the file's last line end
            return int(k), len(lines)
        text = lines.payload[lines.starts[line - 1] : lines.content_ends[end - 1]].decode("utf-8")
        if fields > 1 and _quoted_lines_with(text, delimiter, fields - 1):
            return int(k), end
    if len(starts):
        rest = lines.payload[lines.starts[starts[-1] - 1] :].decode("utf-8")
        if _ends_in_open_quote(rest, delimiter):
            return len(starts) - 1, len(lines)
    return None


_LINE_BREAK = re.compile("\r\n|\r|\n")


def _quoted_values(text: str, delimiter: str) -> list[str] | None:
    """The quoted values of ``text`` read as a CSV reader reads quotes (a quote opens a value only at the
    start of a field; "" inside one is a quote), or None when the text ends inside one."""
    breaks = re.compile(f"[{re.escape(delimiter)}\r\n]")
    values = []
    at, field_start = 0, True
    while at < len(text):
        if field_start and text[at] == '"':
            close = at + 1
            while True:
                close = text.find('"', close)
                if close < 0:
                    return None
                if not text.startswith('""', close):
                    break
                close += 2
            values.append(text[at + 1 : close])
            at, field_start = close + 1, False
            continue
        found = breaks.search(text, at)
        if found is None:
            break
        at, field_start = found.end(), True
    return values


def _quoted_lines_with(text: str, delimiter: str, count: int) -> bool:
    """Whether a quoted value of ``text`` has a line, after its first, holding ``count`` delimiters or more:
    lines of records taken into a value whose quote closed only at a later quote."""
    return any(
        part.count(delimiter) >= count
        for value in _quoted_values(text, delimiter) or []
        for part in _LINE_BREAK.split(value)[1:]
    )


def _ends_in_open_quote(text: str, delimiter: str) -> bool:
    """Whether ``text`` ends inside a quoted value."""
    return _quoted_values(text, delimiter) is None


def _literal_quotes(payload: bytes, delimiter: str) -> bytes:
    """The payload with ``"阳光"便利店`` kept as written. A value that starts with a quoted part and goes on
    after the closing quote is not a quoted value but one with quotes in it; a CSV reader would drop them
    without a word, so such a value is quoted whole (``\"\"\"阳光\"\"便利店\"``) for the reader to keep them.
    A quoted part holding the delimiter is left to the reader: its quotes guard the delimiter."""
    if b'"' not in payload:
        return payload
    d = re.escape(delimiter.encode("utf-8"))
    pattern = re.compile(
        rb"(?:^|(?<=[" + d + rb'\r\n]))"([^"' + d + rb'\r\n]+)"([^"' + d + rb'\s][^"' + d + rb"\r\n]*)"
        rb"(?=[" + d + rb"\r\n])",
        re.MULTILINE,
    )
    if pattern.search(payload) is None:
        return payload
    return pattern.sub(lambda m: b'"""' + m.group(1) + b'""' + m.group(2) + b'"', payload)


# Rows from the top of a file kept with the export, to say where its header is when the first row is not it.
HEAD_ROWS = 12


def _csv_head(lines: _Lines, header: int) -> list[tuple[int, list[str]]]:
    """The first lines that are not empty from the ``header`` line on, split into fields (each line by the
    delimiter it has most of)."""
    out = []
    for number in lines.filled(header)[:HEAD_ROWS]:
        text = lines.text(int(number))
        try:
            cells = next(csv.reader([text], delimiter=max(",\t;|", key=text.count)))
        except (csv.Error, StopIteration):
            cells = [text]
        out.append((int(number), [cell.strip() for cell in cells]))
    return out


_SEP_HINT = re.compile(r'"?sep=([,\t;|])"?', re.IGNORECASE)


def _drop_layout_rows(
    frame: pd.DataFrame, header: list[str], delimiter: str
) -> tuple[pd.DataFrame, list[tuple[int, str, str]]]:
    """Rows that hold no record. A row of empty fields (`,,,,` — Excel saves formatted but empty rows so) is
    layout and left out, as a blank sheet row is. The header line again (exports joined one after another,
    or a paged export) is no record either: it is returned as malformed, with its line, so it is counted."""
    if not len(frame):
        return frame, []
    # A joined export's second header may carry its file's byte-order mark.
    names = [h.strip().lstrip("\ufeff") for h in header]
    first = frame.iloc[:, 0].str.strip().str.lstrip("\ufeff")
    suspects = np.flatnonzero(first.isin(["", names[0]]).to_numpy(dtype=bool, na_value=True))
    if not len(suspects):
        return frame, []
    text = frame.iloc[suspects, : len(header)].apply(lambda column: column.str.strip())
    blank = (text == "").all(axis=1).to_numpy()
    text.iloc[:, 0] = text.iloc[:, 0].str.lstrip("\ufeff")
    again = (text == names).all(axis=1).to_numpy()
    rows = frame["_row"].to_numpy()
    repeated = [
        (
            int(rows[i]),
            delimiter.join(frame.iloc[i, : len(header)]),
            "the header line again, not a record (exports joined one after another, or a paged export)",
        )
        for i in suspects[again]
    ]
    keep = np.ones(len(frame), dtype=bool)
    keep[suspects[blank | again]] = False
    return (frame if keep.all() else frame.loc[keep].reset_index(drop=True)), repeated


# --- quarantine: rejected rows with their reasons, append-only ------------------------------------------


def quarantine_path(warehouse: Path, name: str) -> Path:
    return Path(warehouse) / "quarantine" / f"{name}.parquet"


def read_quarantine(warehouse: Path, name: str) -> pd.DataFrame:
    """All quarantine records of one table so far (empty frame when none)."""
    path = quarantine_path(warehouse, name)
    if not path.exists():
        return pd.DataFrame(columns=list(QUARANTINE_META))
    return pq.read_table(path).to_pandas()


def append_quarantine(
    warehouse: Path, name: str, records: pd.DataFrame, *, ignore: Collection[str] = ()
) -> int:
    """Add records not already present (duplicates are dropped); returns how many were new. Records that
    differ only in the ``ignore`` columns are the same record. A run appending several times to one table
    uses one `QuarantineFile`, which reads the file once."""
    return QuarantineFile(warehouse, name, ignore=ignore).append(records)


class QuarantineFile:
    """One table's quarantine file as a run appends to it. The file only grows, so it is read (and made text)
    once, at the run's first append, and kept as written: a later append of the same run (held archive
    changes quarantined after the other tables) compares and writes without reading it again.

    Two records are the same when they agree on every column but ``ignore`` (a stamp of the run that wrote
    them): a record already stored is not added again, nor is one repeated within the records appended."""

    def __init__(self, warehouse: Path, name: str, *, ignore: Collection[str] = ()) -> None:
        self.warehouse, self.name = Path(warehouse), name
        self.ignore = frozenset(ignore)
        self._stored: pd.DataFrame | None = None  # the file as written, once read

    def append(self, records: pd.DataFrame) -> int:
        """Write the records the file does not hold yet; returns how many."""
        if records.empty:
            return 0
        if self._stored is None:
            self._stored = _as_text(read_quarantine(self.warehouse, self.name))
        stored = self._stored
        values = [c for c in dict.fromkeys([*stored.columns, *records.columns]) if c not in QUARANTINE_META]
        columns = [*values, *QUARANTINE_META]
        if list(stored.columns) != columns:  # a column this table's records did not have before
            stored = _as_text(stored.reindex(columns=columns))
        incoming = _as_text(records.reindex(columns=columns))
        same = [c for c in columns if c not in self.ignore]
        # One pass over stored + incoming: an incoming record repeating an earlier one is not new.
        repeated = pd.concat([stored[same], incoming[same]], ignore_index=True).duplicated()
        new = incoming.loc[~repeated.to_numpy()[len(stored) :]]
        if new.empty:
            return 0
        combined = pd.concat([stored, new], ignore_index=True)
        _write_atomically(
            pa.Table.from_pandas(combined, preserve_index=False), quarantine_path(self.warehouse, self.name)
        )
        self._stored = combined
        return len(new)


def _as_text(records: pd.DataFrame) -> pd.DataFrame:
    """Quarantine records as stored: every column text but the row number, so values the export wrote in one
    column as numbers and as text compare and store alike."""
    return records.astype({c: "str" for c in records.columns if c != "_row"}).astype({"_row": "int64"})
