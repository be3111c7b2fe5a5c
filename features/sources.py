"""Warehouse I/O: the only module that reads or writes contract tables (read, write, validate, quarantine).

A warehouse is a folder with one Parquet file per contract table (`<table>.parquet`), a `quarantine/`
folder of rejected rows with their reasons, and for generated data a `truth/` folder used only by evaluation.
"""

from __future__ import annotations

import codecs
import csv
import os
import re
import zipfile
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow as pa
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
    KeyError, or read UTC instants as local wall clock and see hours of the next day. Optional columns may
    be absent; every table's problems are named at once."""
    from features.schema import TABLES

    missing_columns, zoned = [], []
    for name, spec in TABLES.items():
        path = table_path(warehouse, name)
        if not path.exists():
            continue
        try:
            schema = pq.read_schema(path)
        except (OSError, pa.ArrowInvalid) as exc:
            raise WarehouseError(f"cannot read {path}: {exc}") from exc
        missing = [c for c in spec.required_columns if c not in schema.names]
        if missing:
            missing_columns.append(f"{name} ({path}) lacks {', '.join(missing)}")
        zoned += [
            f"{name}.{f.name} ({f.type.tz})"
            for f in schema
            if f.name in spec.column_names and pa.types.is_timestamp(f.type) and f.type.tz is not None
        ]
    if missing_columns:
        raise WarehouseError(
            f"warehouse {warehouse}: missing required column(s): {'; '.join(missing_columns)}. Tables "
            "written by `gridrisk ingest` always have them; ingest the exports into an empty warehouse to "
            "rebuild it, or add the columns"
        )
    if zoned:
        raise WarehouseError(
            f"warehouse {warehouse}: time column(s) stored with a time zone: {', '.join(zoned)}. The "
            "warehouse holds local wall-clock times, and an instant read as one is hours off the day it "
            "happened; `gridrisk ingest` converts them: ingest this folder into a new warehouse "
            f"(gridrisk ingest {warehouse} --warehouse NEW [--timezone ZONE])"
        )


def read_arrow_table(warehouse: Path, name: str, columns: list[str] | None = None) -> pa.Table:
    """A stored contract table as Arrow, as its file holds it (`read_table` gives pandas)."""
    path = table_path(warehouse, name)
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
_ZIP_MAGIC = b"PK\x03\x04"  # an .xlsx workbook is a zip archive
_CHUNK = 1 << 24


@dataclass
class Export:
    """One export file as read: raw headers and values (strings from CSV, typed cells from Parquet/XLSX).

    ``frame`` has a ``_row`` column: the data-row number in the file (1 = the first row under the header;
    blank lines are not counted). ``malformed`` holds rows the reader could not split into the header's fields
    (columns ``_row``, ``_text``, ``_message``); they never reach ``frame``. ``sheets``, for a workbook whose
    rows come from several sheets, names each row's sheet (``_row`` then counts within that sheet).
    """

    path: Path
    frame: pd.DataFrame
    malformed: pd.DataFrame
    encoding: str | None = None
    notes: list[str] = field(default_factory=list)
    sheets: np.ndarray | None = None

    def row_sources(self) -> np.ndarray:
        """Where each row of ``frame`` came from: the file name, with its sheet for a multi-sheet workbook."""
        if self.sheets is None:
            labels = np.empty(len(self.frame), dtype=object)
            labels.fill(self.path.name)  # one shared str object, not a copy per row
            return labels
        codes, names = pd.factorize(self.sheets)
        return np.array([f"{self.path.name} [{name}]" for name in names], dtype=object)[codes]


def read_export(path: Path) -> Export:
    """Read one CSV, Parquet or XLSX export; raise ContractError when the file as a whole is unusable."""
    path = Path(path)
    suffix = path.suffix.lower()
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


def _malformed(entries: list[tuple[int, str, str]]) -> pd.DataFrame:
    return pd.DataFrame(
        {
            "_row": pd.Series([e[0] for e in entries], dtype="int64"),
            "_text": pd.Series([e[1] for e in entries], dtype="str"),
            "_message": pd.Series([e[2] for e in entries], dtype="str"),
        }
    )


def _read_parquet(path: Path) -> Export:
    try:
        tbl = pq.read_table(path)
    except (OSError, pa.ArrowException) as exc:
        raise ContractError(
            f"{path}: unreadable Parquet ({exc}); the file is truncated or not Parquet — copy or export it "
            "again"
        ) from exc
    frame = tbl.to_pandas(date_as_object=False)
    frame["_row"] = np.arange(1, len(frame) + 1, dtype="int64")
    return Export(path=path, frame=frame, malformed=_malformed([]))


def _read_xlsx(path: Path) -> Export:
    """Every sheet of the workbook: exports larger than Excel's 1,048,576-row limit continue on further sheets
    under the same header, so those sheets are one table. A sheet with rows under another header refuses the
    file, never skipped; a sheet without rows holds nothing to lose and is left out."""
    try:
        with pd.ExcelFile(path, engine="openpyxl") as book:
            # dtype=object keeps what cells hold: date cells as datetimes, serials as numbers, ids as text.
            parsed = [(name, book.parse(name, dtype=object)) for name in book.sheet_names]
    except (zipfile.BadZipFile, OSError, KeyError, ValueError) as exc:
        raise ContractError(
            f"{path}: unreadable XLSX workbook ({exc}); the file is truncated or not .xlsx — save it again "
            "from Excel"
        ) from exc
    sheets: list[tuple[str, pd.DataFrame]] = []
    for name, frame in parsed:
        frame.columns = [str(c).strip() for c in frame.columns]
        frame["_row"] = np.arange(1, len(frame) + 1, dtype="int64")
        # A wholly empty sheet row is layout, not a record; numbers still match the sheet (row = _row + 1).
        blank = frame.drop(columns="_row").isna().all(axis=1)
        sheets.append((name, frame.loc[~blank].reset_index(drop=True)))
    # The header is the first sheet's with data rows. A sheet without rows (blank, or a notes sheet holding a
    # title) loses nothing when it is left out; it is named in a note when its header differs.
    with_rows = [sheet for sheet in sheets if len(sheet[1])]
    if not with_rows:
        frame = sheets[0][1] if sheets else pd.DataFrame({"_row": pd.Series([], dtype="int64")})
        return Export(path=path, frame=frame, malformed=_malformed([]))
    header = set(with_rows[0][1].columns)
    for sheet in with_rows[1:]:
        if set(sheet[1].columns) != header:
            _refuse_sheet(path, with_rows[0], sheet)
    left_out = [
        repr(name) for name, frame in sheets if not len(frame) and set(frame.columns) - {"_row"} - header
    ]
    notes = [f"left out sheet(s) without rows: {', '.join(left_out)}"] if left_out else []
    if len(with_rows) == 1:
        return Export(path=path, frame=with_rows[0][1], malformed=_malformed([]), notes=notes)
    counts = ", ".join(f"{name!r} ({len(frame):,} rows)" for name, frame in with_rows)
    notes.insert(0, f"read {len(with_rows)} sheets with one header: {counts}")
    return Export(
        path=path,
        frame=pd.concat([frame for _, frame in with_rows], ignore_index=True),
        malformed=_malformed([]),
        notes=notes,
        sheets=np.concatenate([np.full(len(frame), name, dtype=object) for name, frame in with_rows]),
    )


def _refuse_sheet(path: Path, first: tuple[str, pd.DataFrame], other: tuple[str, pd.DataFrame]) -> None:
    header = [c for c in first[1].columns if c != "_row"]
    columns = [c for c in other[1].columns if c != "_row"]
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
        f"{path}: sheet {other[0]!r} has another header than sheet {first[0]!r} ({differences}); a table "
        "split across sheets repeats the same header on each — fix that sheet's header, or move the sheet to "
        "a file of its own"
    )


def _utf8_payload(path: Path, data: bytes) -> tuple[bytes, str, list[str]]:
    """The bytes as UTF-8 and the encoding found; a file cut inside a character loses that character."""
    notes: list[str] = []
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
        return payload, name, notes
    raise ContractError(
        f"{path}: wrong encoding — not UTF-8, UTF-8 with BOM or GB18030 ({'; '.join(failures)}); "
        "re-export the file as UTF-8 CSV"
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
    payload, encoding, notes = _utf8_payload(path, raw)
    # Line ends may be CRLF, LF or a lone CR (Excel's "CSV (Macintosh)"). Only the first two lines are cut
    # out: splitting the payload would copy a whole province's file once more.
    lines = _first_lines(payload, 2)
    first_line = lines[0].decode("utf-8")
    skip_rows = 1
    # Excel writes a `sep=;` line above the header when the delimiter is not the locale's.
    hint = _SEP_HINT.fullmatch(first_line.strip(" "))
    if hint and len(lines) > 1:
        first_line, skip_rows = lines[1].decode("utf-8"), 2
    if not first_line.strip():
        raise ContractError(f"{path}: no header line; the first line must name the columns")
    delimiter = hint.group(1) if hint else max(",\t;|", key=first_line.count)
    try:
        header = next(csv.reader([first_line], delimiter=delimiter))
    except csv.Error as exc:
        raise ContractError(f"{path}: unreadable header line ({exc}); export the file again") from exc
    names = [f"c{i}" for i in range(len(header))]

    bad: list[tuple[int, str, str]] = []
    layout: list[int] = []  # lines of nothing but spaces and delimiters: not records

    def skip(row: pacsv.InvalidRow) -> str:
        number = row.number - skip_rows  # pyarrow counts the lines above the data too
        if not row.text.replace(delimiter, "").strip():
            layout.append(number)
            return "skip"
        bad.append(
            (
                number,
                row.text,
                f"{row.actual_columns} fields where the header has {row.expected_columns} "
                "(truncated row, or a delimiter inside an unquoted value)",
            )
        )
        return "skip"

    try:
        tbl = pacsv.read_csv(
            pa.BufferReader(payload),
            read_options=pacsv.ReadOptions(column_names=names, skip_rows=skip_rows, use_threads=False),
            parse_options=pacsv.ParseOptions(
                delimiter=delimiter, newlines_in_values=True, invalid_row_handler=skip
            ),
            convert_options=pacsv.ConvertOptions(
                column_types={n: pa.string() for n in names}, strings_can_be_null=False
            ),
        )
    except pa.ArrowException as exc:
        raise ContractError(f"{path}: unreadable CSV ({exc}); export it again") from exc
    frame = tbl.to_pandas()
    frame.columns = [h.strip() or f"unnamed_{i}" for i, h in enumerate(header)]
    total = len(frame) + len(bad) + len(layout)
    frame["_row"] = np.setdiff1d(
        np.arange(1, total + 1, dtype="int64"), [b[0] for b in bad] + layout, assume_unique=True
    )
    before = len(frame)
    frame, repeated = _drop_layout_rows(frame, header, delimiter)
    bad.extend(repeated)
    # Counted, so read = accepted + quarantined + these: the empty lines pyarrow set aside and the empty rows.
    if empty := len(layout) + before - len(frame) - len(repeated):
        notes.append(f"{empty} rows of empty fields skipped (layout a spreadsheet saves, not records)")
    # A file cut short inside its last field still splits into the right number of fields, with a wrong value:
    # the missing line end is the only trace, so that row is held back, not trusted. A quote never closed runs
    # to the end of the file: the last value then ends with the file's final line end, which no quote closes.
    last = str(frame.iloc[-1, len(header) - 1]) if len(frame) else ""
    open_quote = last.endswith(("\n", "\r")) and not payload.rstrip(b"\r\n").endswith(b'"')
    cut = not payload.endswith((b"\n", b"\r")) or open_quote
    if cut and len(frame) and frame["_row"].iloc[-1] == total:
        values = frame.drop(columns="_row").iloc[-1]
        bad.append(
            (
                total,
                delimiter.join("" if pd.isna(v) else str(v) for v in values),
                "the file ends inside this row (no line end, or an open quote): truncated? export it again",
            )
        )
        frame = frame.iloc[:-1]
    return Export(path=path, frame=frame, malformed=_malformed(bad), encoding=encoding, notes=notes)


_LINE_END = re.compile(rb"\r\n|\r|\n")


def _first_lines(payload: bytes, n: int) -> list[bytes]:
    """Up to `n` lines from the start of `payload`, without their line ends and without copying the rest."""
    lines, start = [], 0
    for end in _LINE_END.finditer(payload):
        lines.append(payload[start : end.start()])
        start = end.end()
        if len(lines) == n:
            return lines
    return [*lines, payload[start:]][:n]


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


def append_quarantine(warehouse: Path, name: str, records: pd.DataFrame) -> int:
    """Add records not already present (exact duplicates are dropped); returns how many were new."""
    if records.empty:
        return 0
    stored = read_quarantine(warehouse, name)
    values = [c for c in dict.fromkeys([*stored.columns, *records.columns]) if c not in QUARANTINE_META]
    columns = [*values, *QUARANTINE_META]
    both = pd.concat([stored, records], ignore_index=True).reindex(columns=columns)
    both = both.astype({c: "str" for c in columns if c != "_row"}).astype({"_row": "int64"})
    combined = both.drop_duplicates(ignore_index=True)
    added = len(combined) - len(stored)
    if added:
        _write_atomically(
            pa.Table.from_pandas(combined, preserve_index=False), quarantine_path(warehouse, name)
        )
    return added
