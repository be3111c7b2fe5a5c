"""Row-level validation of one export table against the data contract in `features/schema.py`.

Sits between the readers (`features/ingest.py`) and the warehouse: every row leaves either accepted, with
contract dtypes, or quarantined with its original values and the first rule it broke.
"""

from __future__ import annotations

import datetime as dt
import logging
import re
import unicodedata
import zoneinfo
from collections.abc import Callable
from dataclasses import dataclass, field
from enum import StrEnum
from functools import cached_property, partial

import numpy as np
import pandas as pd
import pyarrow as pa

from features.schema import CEILING_YUAN, CUSTOMER_ID_MAX_CHARS, TABLES, Column, Table, table

logger = logging.getLogger(__name__)


class ContractError(Exception):
    """A file-level problem: missing required column, unreadable file, wrong encoding. Nothing is ingested."""


class Rule(StrEnum):
    """Why a row was quarantined; checked in this order, a row records the first it breaks."""

    MALFORMED_ROW = "malformed_row"  # wrong number of fields (truncated file, unquoted delimiter)
    UNPARSEABLE = "unparseable"
    NULL = "null"
    NOT_ALLOWED = "not_allowed"
    OUT_OF_RANGE = "out_of_range"
    NOT_MONTH_START = "not_month_start"
    FUTURE = "future"  # a date of something that has happened is later than the moment of the ingest
    DATE_ORDER = "date_order"
    UNKNOWN_REFERENCE = "unknown_reference"
    AREA_MISMATCH = "area_mismatch"
    DUPLICATE_KEY = "duplicate_key"  # same primary key, different content, within the export
    DUPLICATE_ROW = "duplicate_row"  # exact copy of an earlier row of the export
    WAREHOUSE_CONFLICT = "warehouse_conflict"  # same primary key as a stored row, different content


# Metadata columns of a quarantine record; the original values (as strings) come before them.
QUARANTINE_META = ("_table", "_row", "_column", "_rule", "_message", "_source")
# Where a row came from, carried beside its values: its number in the file and, when a table is read from
# several files or sheets, the file (and sheet) it came from.
ROW_META = ("_row", "_source")

# A date of something that has happened may run this far past the moment of the ingest: the exports' times are
# local (China is UTC+8) while the ingest moment is UTC, and a daily reading is dated the day it covers.
FUTURE_TOLERANCE = pd.Timedelta(days=1)

# The warehouse keeps local wall-clock times, as the marketing system writes them. A time that carries its
# zone (`2024-02-03T08:00:00+08:00`, `…Z`, a Parquet timestamp with a time zone, as Spark and Hive write them)
# is brought to this zone's wall clock; `ingest --timezone` names another.
LOCAL_TIMEZONE = "Asia/Shanghai"
MACHINE_ZONES = {"localtime", "posixrules", "Factory"}  # files of the system's zone database, not places

# Date-order rules as data: (later column, earlier column, message); a row breaks it when later < earlier.
DATE_ORDER_RULES: dict[str, tuple[tuple[str, str, str], ...]] = {
    "customers": (("close_date", "open_date", "close_date is before open_date"),),
    "bills": (
        ("issue_date", "period", "issue_date is before the billing period starts"),
        ("due_date", "issue_date", "due_date is before issue_date"),
        ("known_at", "issue_date", "known_at is before issue_date"),
    ),
    "payments": (
        ("paid_at", "period", "paid_at is before the billing period starts"),
        (
            "known_at",
            "paid_at",
            "known_at falls on a day before paid_at (a payment is posted after it is made)",
        ),
    ),
    "readings": (("known_at", "date", "known_at falls on a day before the day the reading covers"),),
    "suspensions": (
        ("end_date", "start_date", "end_date is before start_date"),
        ("known_at", "applied_at", "known_at falls on a day before applied_at"),
    ),
    "inspections": (("known_at", "inspected_at", "known_at falls on a day before inspected_at"),),
    "area_supply": (("known_at", "date", "known_at falls on a day before the day or month it measures"),),
}

# Columns that hold an id (户号, 台区编号, 流水号 …): keys and the foreign keys that point at them. A
# spreadsheet mangles ids as no other value (a number in scientific notation, 15 digits kept, zeros
# dropped), and an invisible character makes another id that prints the same: these are checked as ids.
ID_COLUMNS = frozenset(
    column.name
    for spec in TABLES.values()
    for column in spec.columns
    if column.dtype == pa.string()
    and column.allowed is None
    and (column.name in spec.key or any(fk.column == column.name for fk in spec.foreign_keys))
) | {"group_id"}
# A spreadsheet number keeps 15 significant digits: a longer id stored as a number lost its last ones.
SPREADSHEET_DIGITS = 15

# Columns that hold a billing month: the contract stores its first day.
MONTH_COLUMNS = frozenset({"period"})
# Where a month alone (202403, 2024-03, 2024年3月) is a value: a billing month, and an area's monthly supply
# (dated the first of its month). Elsewhere it is no day: read as the 1st, a payment made on 31 March would
# look 30 days earlier, and a known_at a month early would let a feature see data before it existed.
MONTH_FORMS = frozenset({*((name, c) for name in TABLES for c in MONTH_COLUMNS), ("area_supply", "date")})
_MONTH_ALONE = r"\d{4}[-/.年]\d{1,2}月?|\d{6}"

# Exports write nulls in several ways (Oracle/Hive dumps use \N or NULL; Chinese reports write "/" or "—" for
# 不适用, not applicable, as a resident's 功率因数, and 无 for none); all of them mean "no value".
_EXPORT_NULLS = ("", "NULL", "null", "Null", "\\N", "NaN", "nan", "NaT", "None", "N/A", "n/a", "-")
NULL_TOKENS = frozenset({*_EXPORT_NULLS, "/", "／", "—", "——", "－", "无"})

# Excel counts days from 1899-12-30; five-digit serials reach year 2173, so a longer number is not a serial.
EXCEL_EPOCH = pd.Timestamp("1899-12-30")
EXCEL_SERIAL_MAX = 100_000
# A whole number in this range in a date column is a year typed alone (立户日期 2015), not the Excel serial
# of a day in 1905: it is unparseable rather than a date nobody wrote.
YEAR_ALONE = (1900, 2100)

# Full-width forms, as Chinese input methods type them (１２３，４５６．７８, ￥), read as their ASCII twins.
_HALF_WIDTH = str.maketrans({chr(c): chr(c - 0xFEE0) for c in range(0xFF01, 0xFF5F)} | {"\uffe5": "¥"})
# Money may carry its currency: ¥1,234.50, 1234.50元, RMB 12.00 (sign before or after the mark).
_CURRENCY = re.compile(r"^([+-]?)\s*(?:¥|RMB|CNY)?\s*(.*?)\s*(?:元|RMB|CNY)?$", re.IGNORECASE)
_CURRENCY_MARK = re.compile(r"[¥元]|RMB|CNY", re.IGNORECASE)
_WIDE_SPACE = re.compile("[\u00a0\u202f\u3000]")  # no-break, narrow no-break, ideographic: Excel's groups
_SPACED_SIGN = re.compile(r"^([+-])\s+")  # "- 12" is -12
# An accountant's negative, as Excel's accounting and currency formats write a refund or a credit: (12.50),
# (¥1,234.50), ¥(12.50). Money only: a bracketed kWh or count is no convention anyone writes.
_ACCOUNTING = re.compile(r"^(¥|RMB|CNY)?\s*\(\s*([^()+\-]*?)\s*\)\s*(元)?$", re.IGNORECASE)
# Thousands separators only where they group three digits (1,234.50, 1 234.50): 123,45 is a decimal comma and
# 1,2,3 no number, and reading either as 12345 or 123 would alter the value.
_GROUPED = re.compile(r"^[+-]?\d{1,3}(?:,\d{3})+(?:\.\d*)?$|^[+-]?\d{1,3}(?: \d{3})+(?:\.\d*)?$")

# An Excel formula that is a text constant: ="000123" displays 000123.
_EXCEL_TEXT = re.compile(r'^="(.*)"$', re.DOTALL)

_MESSAGES_RANGE = {
    ("readings", "kwh"): "negative kWh — meter reset or reversed register?",
    ("bills", "kwh"): "negative kWh — meter reset or reversed register?",
}


@dataclass
class ValidationResult:
    """One validated table: accepted rows in contract dtypes, quarantined rows with their reasons."""

    table: pa.Table  # the accepted rows in the contract's Arrow schema
    quarantined: pd.DataFrame
    extra_columns: list[str] = field(default_factory=list)  # columns the contract does not know; not stored
    accepted_rows: np.ndarray = field(default_factory=lambda: np.array([], dtype="int64"))  # file row numbers
    # positions of the accepted rows in the frame given to `validate` (row numbers repeat across files)
    accepted_positions: np.ndarray = field(default_factory=lambda: np.array([], dtype="int64"))
    timed: dict[str, bool] = field(default_factory=dict)  # `timed_columns` of the export, for later records

    @cached_property
    def accepted(self) -> pd.DataFrame:
        """The accepted rows as pandas, with the dtypes `read_table` gives (made on first use: a large
        table written straight from Arrow never needs it)."""
        return self.table.to_pandas(date_as_object=False)

    @property
    def rows_read(self) -> int:
        return self.table.num_rows + len(self.quarantined)

    def counts_by_rule(self) -> dict[str, int]:
        return {str(k): int(v) for k, v in self.quarantined["_rule"].value_counts().sort_index().items()}


@dataclass
class _Check:
    column: str
    rule: Rule
    message: str
    mask: np.ndarray
    per_row: dict[int, str] | None = None  # position -> message, where a row needs its own words


# Rows validated at a time: a table's typed copy and its intermediate masks stay this size, so validating a
# 34-million-row bills export costs one chunk's memory on top of the export, not several copies of it.
CHUNK_ROWS = 1_000_000


def validate(
    frame: pd.DataFrame,
    table_name: str,
    *,
    source: str = "",
    reference: dict[str, pd.DataFrame] | None = None,
    now: dt.datetime | str | None = None,
    original: pd.DataFrame | None = None,
    chunk_rows: int | None = None,
    timezone: str = LOCAL_TIMEZONE,
    stored_keys: pd.Series | None = None,
) -> ValidationResult:
    """Split an export of one contract table into accepted and quarantined rows.

    ``frame`` has contract column names (headers already mapped) and any dtypes: strings from CSV,
    typed columns from Parquet, date cells or Excel serial numbers from XLSX. A ``_row`` column, when
    present, gives each row's number in its file as a user finds it (a CSV line, a sheet row; see
    `features.sources.Export`); otherwise rows count from 1. A
    ``_source`` column, when present, names each row's file (rows of several files validated together);
    otherwise every row comes from ``source``.
    ``reference`` holds accepted parent tables; foreign keys are checked only against parents given there.
    ``now`` is the moment of the ingest (default: the wall clock, UTC): dates of things that have happened
    may not be later (`FUTURE_TOLERANCE` allowed). ``original``, aligned with ``frame``, holds the export's
    own values before the column map translated them; quarantine records keep those.
    Rows are checked ``chunk_rows`` (default `CHUNK_ROWS`) at a time; keys are compared across all of them.
    A time that carries a zone or UTC offset becomes the wall clock of ``timezone`` (`LOCAL_TIMEZONE`).
    ``stored_keys``, for a table other tables point at (customers, areas), holds the ids the warehouse
    already has: an incoming all-digit id that is a stored one, or another of the export's, without its
    leading zeros is quarantined (`duplicate_key`), since it would be a second key for one customer.
    Raises ContractError for file-level problems (missing required column, duplicated column names).
    """
    zone = check_timezone(timezone)
    spec = _table_spec(table_name, source)
    rows = (
        frame["_row"].to_numpy(dtype="int64")
        if "_row" in frame.columns
        else np.arange(1, len(frame) + 1, dtype="int64")
    )
    if "_source" in frame.columns:
        sources = frame["_source"].to_numpy(dtype=object)
    else:  # one shared str object: np.full would make a copy of the string per row
        sources = np.empty(len(frame), dtype=object)
        sources.fill(source)
    data = frame.drop(columns=list(ROW_META), errors="ignore")
    check_columns(data, spec.name, source)
    extra = [c for c in data.columns if c not in spec.column_names]
    values = data if original is None else original.drop(columns=list(ROW_META), errors="ignore")
    moment = ingest_moment(now)
    if chunk_rows is not None and chunk_rows < 1:
        raise ValueError(f"chunk_rows must be at least 1, got {chunk_rows}")
    step = chunk_rows or CHUNK_ROWS
    timed = timed_columns(values)  # one date-time format per column, whichever chunk a cell is in
    parents = _parents(spec, reference)

    tables: list[pa.Table] = []  # each chunk's rows that pass every row-level rule, in contract types
    alive: list[np.ndarray] = []  # their positions in ``frame``
    hashes: list[np.ndarray] = []  # their key hashes
    quarantined: list[tuple[np.ndarray, pd.DataFrame]] = []  # (positions, records)
    for start in range(0, max(len(data), 1), step):
        stop = min(start + step, len(data))
        typed, checks = _row_checks(data.iloc[start:stop], spec, moment, parents, timed, zone)
        bad = np.zeros(stop - start, dtype=bool)
        for check in checks:
            bad |= check.mask
        if bad.any():
            part = slice(start, stop)
            records = _quarantine(values.iloc[part], rows[part], sources[part], bad, checks, spec.name, timed)
            quarantined.append((np.flatnonzero(bad) + start, records))
        table = _to_contract(typed.loc[~bad], spec)
        tables.append(table)
        alive.append(np.flatnonzero(~bad) + start)
        # Hashed in contract types, which every chunk shares (a parsed column's dtype can follow its values).
        keys = table.select(list(spec.primary_key)).to_pandas(date_as_object=False)
        hashes.append(row_hashes(keys, list(spec.primary_key)).to_numpy())
    candidates = pa.concat_tables(tables)
    positions = np.concatenate(alive)
    del tables, alive

    # Among otherwise valid rows (of every file given) a key may repeat, in one chunk or across chunks.
    duplicates = _lost_zero_checks(candidates, positions, spec, stored_keys, len(data))
    duplicates += _duplicate_checks(
        candidates, positions, np.concatenate(hashes), spec, rows, sources, len(data)
    )
    dropped = np.zeros(len(data), dtype=bool)
    for check in duplicates:
        dropped |= check.mask
    if dropped.any():
        records = _quarantine(values, rows, sources, dropped, duplicates, spec.name, timed)
        quarantined.append((np.flatnonzero(dropped), records))
    keep = ~dropped[positions]
    accepted = candidates if keep.all() else candidates.filter(pa.array(keep))
    positions = positions[keep]
    quarantine = _in_row_order(quarantined, values, spec.name)
    if len(quarantine):
        logger.debug(
            "%s%s: %d rows read, %d accepted, %d quarantined",
            spec.name,
            f" ({source})" if source else "",
            len(data),
            accepted.num_rows,
            len(quarantine),
        )
    return ValidationResult(
        table=accepted,
        quarantined=quarantine,
        extra_columns=extra,
        accepted_rows=rows[positions],
        accepted_positions=positions,
        timed=timed,
    )


def _row_checks(
    data: pd.DataFrame, spec: Table, now: pd.Timestamp, parents: _Parents, timed: dict[str, bool], zone: str
) -> tuple[pd.DataFrame, list[_Check]]:
    """Parse one chunk into contract columns and run every rule that reads a row on its own. ``timed`` is
    `timed_columns` of the whole export, so date-time cells in a text column read alike in every chunk."""
    checks: list[_Check] = []
    parsed: dict[str, pd.Series] = {}
    for col in spec.columns:
        if col.name in data.columns:
            values, col_checks = _parse_column(data[col.name], col, spec, zone, timed.get(col.name))
            checks.extend(col_checks)
        else:
            values = _empty_column(col, len(data))
        parsed[col.name] = values.set_axis(data.index)
    typed = pd.DataFrame(parsed, index=data.index)
    checks.extend(_future_checks(typed, spec, now))
    checks.extend(_date_order_checks(typed, spec))
    checks.extend(_reference_checks(typed, parents))
    return typed, checks


def _in_row_order(
    parts: list[tuple[np.ndarray, pd.DataFrame]], values: pd.DataFrame, table_name: str
) -> pd.DataFrame:
    """One quarantine frame from the chunks' records and the duplicates', in the order of the rows."""
    if not parts:
        return quarantine_frame(
            values.iloc[:0],
            np.array([], dtype="int64"),
            table_name=table_name,
            column="",
            rule="",
            message="",
            source="",
        )
    if len(parts) == 1:
        return parts[0][1]
    order = np.argsort(np.concatenate([p for p, _ in parts]), kind="stable")
    return pd.concat([r for _, r in parts], ignore_index=True).iloc[order].reset_index(drop=True)


def ingest_moment(now: dt.datetime | str | None = None) -> pd.Timestamp:
    """The moment of an ingest as a naive UTC timestamp: ``now`` (a date means its midnight; an aware time is
    converted to UTC), or the wall clock. Exports' times are naive, so the comparison is naive too."""
    if now is None:
        return pd.Timestamp.now(tz="UTC").tz_localize(None)
    try:
        moment = pd.Timestamp(now)
    except ValueError:
        moment = pd.NaT
    if pd.isna(moment):
        raise ContractError(
            f"ingest moment {now!r} is not a date or time; write YYYY-MM-DD or YYYY-MM-DDTHH:MM:SS"
        )
    return moment.tz_convert("UTC").tz_localize(None) if moment.tz is not None else moment


def _table_spec(table_name: str, source: str) -> Table:
    try:
        return table(table_name)
    except KeyError as exc:
        raise ContractError(f"{source or 'export'}: {exc.args[0]}") from None


def check_columns(data: pd.DataFrame, table_name: str, source: str = "") -> None:
    """Raise ContractError when a required column is missing or a column name appears twice."""
    spec = _table_spec(table_name, source)
    where = f"{source} (table {spec.name})" if source else f"table {spec.name}"
    duplicated = sorted(set(data.columns[data.columns.duplicated()]))
    if duplicated:
        raise ContractError(
            f"{where}: column(s) {duplicated} appear more than once (two headers map to the same contract "
            "column); drop one from the export or map it elsewhere with --column-map"
        )
    missing = [c for c in spec.required_columns if c not in data.columns]
    if missing:
        hints = ", ".join(f"{c} ({spec.column(c).doc})" if spec.column(c).doc else c for c in missing)
        raise ContractError(
            f"{where}: missing required column(s) {hints}; add them to the export, or map the export's "
            f'headers in a --column-map TOML ([headers.{spec.name}] "<your header>" = "{missing[0]}")'
        )


def _empty_column(col: Column, n: int) -> pd.Series:
    return pa.nulls(n, col.dtype).to_pandas(date_as_object=False)


# --- parsing -------------------------------------------------------------------------------------------


def check_timezone(name: str) -> str:
    """``name`` when it is an IANA time zone (``Asia/Shanghai``, ``UTC``); otherwise ContractError."""
    if name.rsplit("/", 1)[-1] in MACHINE_ZONES:  # posix/Factory too
        raise ContractError(
            f"time zone {name!r} is this machine's, not the warehouse's; name an IANA zone such as "
            "Asia/Shanghai"
        )
    try:
        zoneinfo.ZoneInfo(name)
    except (zoneinfo.ZoneInfoNotFoundError, ValueError) as exc:
        raise ContractError(
            f"time zone {name!r} is unknown; name an IANA zone such as Asia/Shanghai or Asia/Urumqi"
        ) from exc
    return name


def _map_uniques(values: pd.Series, convert: Callable[[pd.Index], pd.Series | np.ndarray]) -> pd.Series:
    """Apply ``convert`` to the distinct non-null values only (exports repeat values: the fast path)."""
    codes, uniques = pd.factorize(values, use_na_sentinel=True)
    converted = np.asarray(convert(uniques)) if len(uniques) else np.array([], dtype=object)
    if converted.dtype.kind == "M":
        missing = np.array(["NaT"], dtype=converted.dtype)
    elif converted.dtype.kind == "f":
        missing = np.array([np.nan])
    else:
        converted, missing = converted.astype(object), np.array([None], dtype=object)
    # Code -1 (null) takes the appended missing value.
    return pd.Series(np.concatenate([converted, missing])[codes], index=values.index)


def to_text(values: pd.Series, timed: bool | None = None) -> pd.Series:
    """Values as stripped strings with nulls (used for string columns and for quarantined originals).

    Date-times get one format per column: with a time of day if any value has one (``timed``, when given,
    decides instead: the column's answer where ``values`` are only some of its rows)."""
    if isinstance(values.dtype, pd.StringDtype):
        text = values.str.strip()
    elif pd.api.types.is_datetime64_any_dtype(values.dtype):
        if timed is None:
            timed = has_time_of_day(values)
        text = values.dt.strftime("%Y-%m-%d %H:%M:%S" if timed else "%Y-%m-%d").astype("str")
    else:
        text = _map_uniques(values, lambda u: np.array([_scalar_text(v) for v in u], dtype=object)).astype(
            "str"
        )
    return text.mask(text.isin(NULL_TOKENS))


def original_text(values: pd.Series, timed: bool | None = None) -> pd.Series:
    """Values as the export had them, for quarantine records: text verbatim (spaces, NULL and - kept), numbers
    and date cells written as `to_text` writes them; only a cell with nothing in it is null."""
    if isinstance(values.dtype, pd.StringDtype):
        return values
    if pd.api.types.is_datetime64_any_dtype(values.dtype):
        return to_text(values, timed)
    return _map_uniques(
        values, lambda u: np.array([v if isinstance(v, str) else _scalar_text(v) for v in u], dtype=object)
    ).astype("str")


def has_time_of_day(values: pd.Series) -> bool:
    """Whether a date-time column holds any value that is not a midnight."""
    present = values.dropna()
    return bool((present != present.dt.normalize()).any())


def timed_columns(frame: pd.DataFrame) -> dict[str, bool]:
    """`has_time_of_day` of each date-time column: quarantine records of some rows then read like the rest."""
    return {
        c: has_time_of_day(frame[c])
        for c in frame.columns
        if pd.api.types.is_datetime64_any_dtype(frame[c].dtype)
    }


def _scalar_text(value: object) -> str:
    # Excel and Parquet store numeric ids as numbers: 10023.0 must read back as "10023", not "10023.0". Past
    # 2**53 a float is no exact integer (1e39 stays "1e+39", not 39 digits of binary noise).
    if isinstance(value, float | np.floating) and abs(value) < 2**53 and float(value).is_integer():
        return str(int(value))
    if isinstance(value, pd.Timestamp | np.datetime64):
        ts = pd.Timestamp(value)
        return ts.strftime("%Y-%m-%d") if ts == ts.normalize() else ts.isoformat(sep=" ")
    return str(value).strip()


def _parse_column(
    raw: pd.Series, col: Column, spec: Table, zone: str, timed: bool | None = None
) -> tuple[pd.Series, list[_Check]]:
    raw = raw.reset_index(drop=True)
    checks: list[_Check] = []
    residue = _spreadsheet_residue(raw, col.name)
    if residue is not None:
        checks.append(residue)
        raw = raw.mask(residue.mask)  # the cell's value is unknown, not empty: no `null` besides
    if col.dtype == pa.string():
        values = to_text(raw, timed)
        # ="000123" is how exports keep Excel from reading an id as a number and dropping its zeros.
        guarded = values.str.startswith('="').to_numpy(dtype=bool, na_value=False)
        if guarded.any():
            values = values.where(~guarded, values.str.replace(_EXCEL_TEXT, r"\1", regex=True).str.strip())
            values = values.mask(guarded & values.isin(NULL_TOKENS))  # ="" guards nothing: the value is empty
        if col.allowed is not None:
            values = values.str.lower()
        unparseable = np.zeros(len(raw), dtype=bool)
        if col.name in ID_COLUMNS:
            values, check = _id_checks(raw, values, col.name)
            if check is not None:
                checks.append(check)
                unparseable = check.mask
                values = values.mask(unparseable)  # no id to look up: "not in customers" would add nothing
    elif col.dtype == pa.float64():
        values, unparseable = _parse_number(raw, money=col.ceiling == CEILING_YUAN)
        checks.append(_Check(col.name, Rule.UNPARSEABLE, f"{col.name}: not a number", unparseable))
    else:
        kind = "date" if col.dtype == pa.date32() else "time"
        values, unparseable = _parse_when(raw, zone, date_only=kind == "date")
        months = (spec.name, col.name) in MONTH_FORMS
        message = (
            f"{col.name}: not a {kind} (expected YYYY-MM-DD{' HH:MM:SS' if kind == 'time' else ''}, "
            f"YYYYMMDD{', YYYYMM' if months else ''} or an Excel date)"
        )
        if kind == "date":
            message += "; a date column cannot carry a time of day"
        if not months:
            alone = _months_alone(raw)
            if alone.any():
                values = values.mask(alone)
                unparseable = unparseable & ~alone
                said = (
                    f"{col.name}: a month without its day (202403, 2024年3月): which day is unknown, and the "
                    f"first would move it up to a month earlier — export the {kind} in full (only 电费年月, "
                    "a billing month, is read from a month)"
                )
                checks.append(_Check(col.name, Rule.UNPARSEABLE, said, alone))
        checks.append(_Check(col.name, Rule.UNPARSEABLE, message, unparseable))

    missing = values.isna().to_numpy() & ~unparseable
    for check in checks:  # a value quarantined as not a value is not empty too
        if check.rule == Rule.UNPARSEABLE:
            missing &= ~check.mask
    if not col.nullable:
        checks.append(
            _Check(col.name, Rule.NULL, f"{col.name}: empty, but the contract requires a value", missing)
        )
    if col.name == "customer_id":
        long = values.str.len().gt(CUSTOMER_ID_MAX_CHARS).to_numpy(dtype=bool, na_value=False)
        message = (
            f"customer_id: longer than {CUSTOMER_ID_MAX_CHARS} characters, more than the API takes (a 户号 "
            "runs 10-20); is a name or several fields in this column?"
        )
        checks.append(_Check(col.name, Rule.OUT_OF_RANGE, message, long))
    if col.allowed is not None:
        outside = values.notna().to_numpy() & ~values.isin(col.allowed).to_numpy()
        message = f"{col.name}: not one of {', '.join(col.allowed)} (map export values with --column-map)"
        checks.append(_Check(col.name, Rule.NOT_ALLOWED, message, outside))
    if col.min is not None or col.max is not None:
        top = col.max if col.max is not None else col.ceiling
        bounds = f"{col.name}: outside [{_bound(col.min, '-inf')}, {_bound(top, 'inf')}]"
        if col.min is not None:
            why = _MESSAGES_RANGE.get((spec.name, col.name)) if col.min == 0 else None
            low = values.lt(col.min).to_numpy(dtype=bool, na_value=False)
            checks.append(
                _Check(col.name, Rule.OUT_OF_RANGE, f"{col.name} < 0: {why}" if why else bounds, low)
            )
        if col.max is not None:
            high = values.gt(col.max).to_numpy(dtype=bool, na_value=False)
            checks.append(_Check(col.name, Rule.OUT_OF_RANGE, bounds, high))
    if col.ceiling is not None:
        huge = values.abs().gt(col.ceiling).to_numpy(dtype=bool, na_value=False)
        message = (
            f"{col.name}: magnitude above {col.ceiling:g}, the plausibility ceiling for this quantity (far "
            "beyond any real customer): a unit or decimal-point error?"
        )
        checks.append(_Check(col.name, Rule.OUT_OF_RANGE, message, huge))
    if col.name in MONTH_COLUMNS:
        day = values.dt.day.to_numpy(dtype="float64", na_value=np.nan)
        checks.append(
            _Check(
                col.name,
                Rule.NOT_MONTH_START,
                f"{col.name}: a billing month is stored as its first day",
                day > 1,
            )
        )
    return values, checks


# What a spreadsheet leaves in a cell instead of a value: a formula saved without its result (the reader puts
# its text there; see `features/sources.py`) or an error. ="000123" is Excel's text guard, not a formula.
_FORMULA = re.compile(r'^=(?!").+', re.DOTALL)
_EXCEL_ERROR = re.compile(r"^#(?:N/A|DIV/0!|VALUE!|REF!|NAME\?|NUM!|NULL!|SPILL!|CALC!|GETTING_DATA)$")


def _spreadsheet_residue(raw: pd.Series, column: str) -> _Check | None:
    """Cells holding a formula without its result, or a spreadsheet error, each with its own message (they
    are `unparseable`: the value is unknown, so it is neither a number nor empty)."""
    if isinstance(raw.dtype, pd.StringDtype):  # CSV: one vectorised look at first characters before any loop
        if not raw.str.lstrip().str.startswith(("=", "#")).any():
            return None
    elif raw.dtype != object:
        return None
    codes, uniques = pd.factorize(raw, use_na_sentinel=True)
    if not len(uniques):
        return None
    text = pd.Series([v.strip() if isinstance(v, str) else "" for v in uniques], dtype=object)
    formula = text.str.match(_FORMULA).to_numpy(dtype=bool)
    error = text.str.match(_EXCEL_ERROR).to_numpy(dtype=bool)
    if not (formula.any() or error.any()):
        return None
    said = np.where(
        formula,
        text.map(
            lambda f: (
                f"{column}: a formula ({f}) saved without its result — the file was written by a tool that "
                "leaves computing formulas to Excel; open it in Excel, save it, and ingest again"
            )
        ),
        text.map(lambda e: f"{column}: the spreadsheet error {e}, not a value — fix that cell's formula"),
    )
    hit = np.append(formula | error, False)[codes]
    messages = np.append(said, "")[codes]
    return _Check(
        column,
        Rule.UNPARSEABLE,
        f"{column}: a formula without its result, or a spreadsheet error",
        hit,
        per_row={int(i): str(messages[i]) for i in np.flatnonzero(hit)},
    )


_SCIENTIFIC = re.compile(r"^[+-]?\d+(?:\.\d*)?[eE][+-]?\d+$")
# Control characters, and the format characters that print as nothing (zero-width space, joiners, bidi marks,
# soft hyphen, byte-order mark): in an id they make a key that looks like another.
_INVISIBLE = re.compile("[\x00-\x1f\x7f-\x9f\u00ad\u200b-\u200f\u2028-\u202e\u2060-\u2064\ufeff]")
_PLAIN_ID = r"[0-9A-Za-z_\-./#]*"  # most ids: nothing in them to look at more closely


def _id_checks(raw: pd.Series, values: pd.Series, column: str) -> tuple[pd.Series, _Check | None]:
    """Ids as a spreadsheet leaves them, made plain where the id is certain and quarantined where it is not.

    Full-width characters (０４３１…, as Chinese input methods type them) read as their ASCII twins, and
    Excel's text prefix (a leading apostrophe, '0431…) is dropped, as ="0431…" is: the id is not in doubt.
    An id stored as a number past 15 significant digits, or written in scientific notation (4.3E+09), lost
    digits nobody can restore; an id holding an invisible character (NUL, a zero-width space) would be a
    second key that prints as the first. Both are `unparseable`, each with its own message."""
    prefixed = values.str.startswith("'").to_numpy(dtype=bool, na_value=False)
    if prefixed.any():
        values = values.where(~prefixed, values.str[1:].str.strip())
    wide = ~values.str.isascii().to_numpy(dtype=bool, na_value=True)
    if wide.any():
        values = values.where(~wide, values.str.translate(_HALF_WIDTH).str.strip())
    said = np.full(len(values), "", dtype=object)
    lossy = _lossy_numbers(raw)
    said[lossy] = [
        f"{column}: {v} was stored as a number, which keeps {SPREADSHEET_DIGITS} significant digits: the "
        f"id's last digits are lost — export {column} as text"
        for v in values[lossy]
    ]
    odd = ~values.str.fullmatch(_PLAIN_ID).to_numpy(dtype=bool, na_value=True) & ~lossy
    if odd.any():
        found = _map_uniques(
            values[odd], lambda u: np.array([_id_problem(v, column) for v in u], dtype=object)
        )
        said[odd] = found.fillna("").to_numpy(dtype=object)
    hit = said != ""
    if not hit.any():
        return values, None
    message = f"{column}: not an id as written (see each row)"
    return values, _Check(
        column, Rule.UNPARSEABLE, message, hit, per_row={int(i): str(said[i]) for i in np.flatnonzero(hit)}
    )


def _lossy_numbers(raw: pd.Series) -> np.ndarray:
    """Which values are numbers that cannot be an id exactly: past 15 significant digits as a float (Excel's,
    or a float64 column's), or with a fraction. Whole numbers stored as integers are exact."""
    limit = 10.0**SPREADSHEET_DIGITS
    if pd.api.types.is_float_dtype(raw.dtype):
        x = raw.to_numpy(dtype="float64", na_value=np.nan)
        with np.errstate(invalid="ignore"):
            return ~np.isnan(x) & ((np.abs(x) >= limit) | (x != np.floor(x)))
    if raw.dtype != object:
        return np.zeros(len(raw), dtype=bool)

    def lossy(uniques: pd.Index) -> np.ndarray:
        return np.array(
            [
                isinstance(v, float | np.floating) and (not np.isfinite(v) or abs(v) >= limit or v != int(v))
                for v in uniques
            ],
            dtype=object,
        )

    return _map_uniques(raw, lossy).fillna(False).to_numpy(dtype=bool)


def _id_problem(value: str, column: str) -> str:
    if _SCIENTIFIC.fullmatch(value):
        return (
            f"{column}: {value} is a number in scientific notation, as a spreadsheet shows a long id it "
            f"stored as a number: its digits are lost — export {column} as text"
        )
    found = _INVISIBLE.search(value)
    if found:
        char = found.group()
        name = unicodedata.name(char, "a control character")
        return (
            f"{column}: {value!r} holds an invisible character, U+{ord(char):04X} ({name}), at position "
            f"{found.start() + 1}: it would be another id that prints as {_INVISIBLE.sub('', value)} — "
            "remove it from the export"
        )
    return ""


def _months_alone(raw: pd.Series) -> np.ndarray:
    """Which values are a month without a day: YYYYMM (as text or a number), YYYY-MM, YYYY/MM, YYYY年M月."""
    if pd.api.types.is_datetime64_any_dtype(raw.dtype):
        return np.zeros(len(raw), dtype=bool)
    text = raw.str.strip() if isinstance(raw.dtype, pd.StringDtype) else to_text(raw)
    return text.str.fullmatch(_MONTH_ALONE).to_numpy(dtype=bool, na_value=False)


def _bound(value: float | None, open_end: str) -> str:
    return open_end if value is None else f"{value:g}"


def _parse_number(raw: pd.Series, *, money: bool = False) -> tuple[pd.Series, np.ndarray]:
    if pd.api.types.is_numeric_dtype(raw.dtype) and not pd.api.types.is_bool_dtype(raw.dtype):
        numbers = raw.to_numpy(dtype="float64", na_value=np.nan)
        present = ~np.isnan(numbers)
    else:
        text = to_text(raw)
        present = text.notna().to_numpy()
        numbers = _map_uniques(text, partial(_numbers_from_text, money=money)).to_numpy(
            dtype="float64", na_value=np.nan
        )
    finite = np.isfinite(numbers)
    return pd.Series(np.where(finite, numbers, np.nan)), present & ~finite


def _numbers_from_text(uniques: pd.Index, *, money: bool = False) -> np.ndarray:
    text = pd.Series(uniques, dtype="str")
    out = pd.to_numeric(text, errors="coerce").to_numpy(dtype="float64", na_value=np.nan, copy=True)
    # Most values are plain numbers; only the rest are read as people and spreadsheets write them.
    rest = np.flatnonzero(np.isnan(out))
    if len(rest):
        out[rest] = _written_numbers(text.iloc[rest], money=money)
    return np.where(np.isfinite(out), out, np.nan)


def _written_numbers(text: pd.Series, *, money: bool) -> np.ndarray:
    """Numbers with full-width digits, other spaces between digit groups, thousands separators, a space after
    the sign and, for money, a currency mark. Each step reads only the values it can change."""
    wide = ~text.str.isascii().to_numpy(dtype=bool, na_value=False)
    if wide.any():
        text = text.where(~wide, text.str.translate(_HALF_WIDTH).str.replace(_WIDE_SPACE, " ", regex=True))
    text = text.str.strip()
    if money:
        bracketed = text.str.fullmatch(_ACCOUNTING).to_numpy(dtype=bool, na_value=False)
        if bracketed.any():
            text = text.where(~bracketed, "-" + text[bracketed].str.extract(_ACCOUNTING)[1])
        marked = text.str.contains(_CURRENCY_MARK).to_numpy(dtype=bool, na_value=False)
        if marked.any():
            sign_and_number = text[marked].str.extract(_CURRENCY)
            text = text.where(~marked, sign_and_number[0] + sign_and_number[1])
    text = text.str.replace(_SPACED_SIGN, r"\1", regex=True)
    grouped = text.str.fullmatch(_GROUPED).to_numpy(dtype=bool, na_value=False)
    if grouped.any():
        text = text.where(~grouped, text.str.replace(r"[, ]", "", regex=True))
    return pd.to_numeric(text, errors="coerce").to_numpy(dtype="float64", na_value=np.nan)


def _present(raw: pd.Series) -> np.ndarray:
    """Non-null and not a null token: a value that exists and must therefore parse."""
    if pd.api.types.is_numeric_dtype(raw.dtype) or pd.api.types.is_datetime64_any_dtype(raw.dtype):
        return raw.notna().to_numpy()
    return to_text(raw).notna().to_numpy()


_YMD = re.compile(
    r"^(?P<year>\d{4})[-/.年](?P<month>\d{1,2})[-/.月](?P<day>\d{1,2})日?"
    r"(?:[ T](?P<hour>\d{1,2}):(?P<minute>\d{2})(?::(?P<second>\d{2})(?:\.(?P<frac>\d{1,6}))?)?"
    r" ?(?P<offset>[Zz]|[+-]\d{2}(?::?\d{2})?)?)?$"  # ISO 8601's offset from UTC, after a time of day only
)
_COMPACT = re.compile(
    r"^(?P<year>\d{4})(?P<month>\d{2})(?:(?P<day>\d{2})(?:(?P<hour>\d{2})(?P<minute>\d{2})(?P<second>\d{2})?)?)?$"
)
_YEAR_MONTH = re.compile(r"^(?P<year>\d{4})[-/.年](?P<month>\d{1,2})月?$")
_SERIAL = re.compile(r"^\d{1,5}(?:\.\d+)?$")


def _parse_when(raw: pd.Series, zone: str, *, date_only: bool) -> tuple[pd.Series, np.ndarray]:
    """Dates and times from ISO or Chinese text, compact digits (YYYYMMDD[HHMMSS], YYYYMM), Excel serials
    and real date cells, as wall-clock times of ``zone``; anything else is unparseable."""
    convert = partial(_times_from_uniques, zone=zone)
    if pd.api.types.is_datetime64_any_dtype(raw.dtype):
        values = (
            raw.dt.tz_convert(zone).dt.tz_localize(None) if getattr(raw.dt, "tz", None) is not None else raw
        )
        values = pd.Series(values.to_numpy(dtype="datetime64[us]"))
        present = values.notna().to_numpy()
    elif isinstance(raw.dtype, pd.StringDtype):
        text = to_text(raw)
        values = _map_uniques(text, convert).astype("datetime64[us]")
        present = text.notna().to_numpy()
    else:
        values = _map_uniques(raw, convert).astype("datetime64[us]")
        present = _present(raw)
    unparseable = present & values.isna().to_numpy()
    if date_only:
        has_time = (values.notna() & (values != values.dt.normalize())).to_numpy()
        unparseable |= has_time
        values = values.mask(has_time)
    return values, unparseable


def _times_from_uniques(uniques: pd.Index, zone: str) -> np.ndarray:
    out = np.full(len(uniques), np.datetime64("NaT"), dtype="datetime64[us]")
    items = list(uniques)
    stamps = [
        i for i, v in enumerate(items) if isinstance(v, pd.Timestamp | np.datetime64) or hasattr(v, "year")
    ]
    numbers = [
        i for i, v in enumerate(items) if isinstance(v, int | float | np.number) and not isinstance(v, bool)
    ]
    for i in stamps:
        stamp = pd.Timestamp(items[i])
        stamp = stamp.tz_convert(zone).tz_localize(None) if stamp.tz is not None else stamp
        out[i] = stamp.to_datetime64().astype("datetime64[us]")
    if numbers:
        out[numbers] = _times_from_numbers(np.array([float(items[i]) for i in numbers]), zone)
    rest = sorted(set(range(len(items))) - set(stamps) - set(numbers))
    if rest:
        text = pd.Series([str(items[i]).strip() for i in rest], dtype="str")
        out[rest] = _times_from_text(text, zone)
    return out


def _times_from_numbers(numbers: np.ndarray, zone: str) -> np.ndarray:
    out = np.full(len(numbers), np.datetime64("NaT"), dtype="datetime64[us]")
    serial = _serials(numbers)
    out[serial] = _from_serial(numbers[serial])
    whole = np.isfinite(numbers) & (numbers == np.floor(numbers)) & ~serial
    if whole.any():
        digits = pd.Series(numbers[whole].astype("int64").astype(str), dtype="str")
        out[whole] = _times_from_text(digits, zone)
    return out


def _serials(numbers: np.ndarray) -> np.ndarray:
    """Which numbers read as Excel serial days: 1 to 99,999, except a whole number that is a year alone."""
    year = (numbers == np.floor(numbers)) & (numbers >= YEAR_ALONE[0]) & (numbers <= YEAR_ALONE[1])
    return (numbers >= 1) & (numbers < EXCEL_SERIAL_MAX) & ~year


def _from_serial(serials: np.ndarray) -> np.ndarray:
    # Excel stores times as fractions of a day; round away the float noise to the millisecond.
    stamps = EXCEL_EPOCH + pd.to_timedelta(serials, unit="D")
    return pd.DatetimeIndex(stamps).round("ms").to_numpy(dtype="datetime64[us]")


def _times_from_text(text: pd.Series, zone: str) -> np.ndarray:
    out = np.full(len(text), np.datetime64("NaT"), dtype="datetime64[us]")
    todo = np.ones(len(text), dtype=bool)
    for pattern in (_YMD, _COMPACT, _YEAR_MONTH):
        if not todo.any():
            break
        parts = text[todo].str.extract(pattern)
        hit = parts["year"].notna().to_numpy()
        if not hit.any():
            continue
        parts = parts[hit]
        fields = pd.DataFrame(
            {
                "year": parts["year"].astype("float64"),
                "month": parts["month"].astype("float64"),
                "day": parts["day"].astype("float64").fillna(1) if "day" in parts else 1.0,
            }
        )
        for name in ("hour", "minute", "second"):
            if name in parts:
                fields[name] = parts[name].astype("float64").fillna(0)
        if "frac" in parts:
            fields["us"] = parts["frac"].fillna("0").str.ljust(6, "0").astype("float64")
        idx = np.flatnonzero(todo)[hit]
        stamps = pd.to_datetime(fields, errors="coerce").to_numpy(dtype="datetime64[us]")
        if "offset" in parts and parts["offset"].notna().any():
            stamps = _to_zone(stamps, parts["offset"].to_numpy(dtype=object), zone)
        out[idx] = stamps
        todo[idx] = False
    serial = todo & text.str.fullmatch(_SERIAL).to_numpy(dtype=bool, na_value=False)
    if serial.any():
        numbers = text[serial].astype("float64").to_numpy()
        days = _serials(numbers)
        out[np.flatnonzero(serial)[days]] = _from_serial(numbers[days])
    return out


def _to_zone(wall: np.ndarray, offsets: np.ndarray, zone: str) -> np.ndarray:
    """Times written with an offset from UTC (``Z``, ``+08:00``, ``-0500``, ``+08``) as ``zone``'s wall clock;
    an offset beyond ±14:00 or with 60 minutes or more makes the time unreadable (NaT)."""
    given = np.array([isinstance(o, str) for o in offsets])
    text = pd.Series(offsets[given], dtype="str").str.upper().replace("Z", "+00:00")
    digits = text.str.replace(r"[^0-9]", "", regex=True).str.ljust(4, "0")
    hours = digits.str[:2].astype("int64").to_numpy()
    minutes = digits.str[2:4].astype("int64").to_numpy()
    sign = np.where(text.str.startswith("-").to_numpy(), -1, 1)
    utc = pd.Series(wall[given]) - pd.to_timedelta(sign * (hours * 60 + minutes), unit="min")
    local = (
        utc.dt.tz_localize("UTC")
        .dt.tz_convert(zone)
        .dt.tz_localize(None)
        .to_numpy(dtype="datetime64[us]", copy=True)
    )
    local[(hours * 60 + minutes > 14 * 60) | (minutes >= 60)] = np.datetime64("NaT")
    out = wall.copy()
    out[given] = local
    return out


# --- rules across columns and rows -----------------------------------------------------------------


def _future_checks(typed: pd.DataFrame, spec: Table, now: pd.Timestamp) -> list[_Check]:
    # A row dated after the ingest cannot record what happened (a mistyped year, a wrong clock); let in, it
    # would move the data end, and with it every label window and the scoring date, to that day. The message
    # leaves out the moment itself, so re-ingesting the same export adds no quarantine record.
    limit = now + FUTURE_TOLERANCE
    checks = []
    for col in spec.columns:
        if col.past:
            late = (typed[col.name] > limit).to_numpy(dtype=bool, na_value=False)
            message = (
                f"{col.name}: after the moment of the ingest (+{FUTURE_TOLERANCE.days} day), yet it records "
                "something that has happened — a wrong year or clock? (re-ingesting an archive: pass --now)"
            )
            checks.append(_Check(col.name, Rule.FUTURE, message, late))
    return checks


def _date_order_checks(typed: pd.DataFrame, spec: Table) -> list[_Check]:
    # Days are compared, as the as-of rule reads them: a posting time exported as a date (销账时间 2024-02-11)
    # is midnight, hours "before" a payment at 09:00 that day, yet neither counts before that day's end.
    checks = []
    for later, earlier, message in DATE_ORDER_RULES.get(spec.name, ()):
        broken = (typed[later].dt.normalize() < typed[earlier].dt.normalize()).to_numpy(
            dtype=bool, na_value=False
        )
        checks.append(_Check(later, Rule.DATE_ORDER, message, broken))
    return checks


@dataclass
class _Parents:
    """What a table's rows must agree with in their parent tables, prepared once for every chunk."""

    keys: dict[str, tuple[str, pd.Index]]  # child column -> (parent table, the parent's keys)
    areas: pd.DataFrame | None = None  # customers: each area's station and supply unit, by area_id
    # child column -> the parent's all-digit keys without their leading zeros, to say why an id is unknown
    unpadded: dict[str, pd.Index] = field(default_factory=dict)


def _parents(spec: Table, reference: dict[str, pd.DataFrame] | None) -> _Parents:
    reference = reference or {}
    keys = {
        fk.column: (fk.table, pd.Index(reference[fk.table][fk.ref_column].dropna().unique()))
        for fk in spec.foreign_keys
        if fk.table in reference
    }
    areas = None
    if spec.name == "customers" and "areas" in reference:
        areas = reference["areas"].drop_duplicates("area_id", keep="last").set_index("area_id")
    unpadded = {
        column: pd.Index(_without_leading_zeros(pd.Series(ids)).dropna()) for column, (_, ids) in keys.items()
    }
    return _Parents(keys=keys, areas=areas, unpadded=unpadded)


def _without_leading_zeros(ids: pd.Series) -> pd.Series:
    """All-digit ids without their leading zeros (000123 -> 123); other ids null."""
    text = ids.astype("str")
    return text.str.lstrip("0").where(text.str.fullmatch(r"\d+").to_numpy(dtype=bool, na_value=False))


def _reference_checks(typed: pd.DataFrame, parents: _Parents) -> list[_Check]:
    checks = []
    for column, (parent, keys) in parents.keys.items():
        known = keys.get_indexer(typed[column]) >= 0
        broken = typed[column].notna().to_numpy() & ~known
        # 123 for 000123: a spreadsheet or a numeric column dropped the zeros in one of the exports. Matching
        # the digits would guess which id was meant, so the row waits, with the reason in its message.
        zeros = np.zeros(len(typed), dtype=bool)
        if broken.any() and len(parents.unpadded[column]):
            digits = _without_leading_zeros(typed[column].iloc[np.flatnonzero(broken)])
            zeros[np.flatnonzero(broken)] = digits.isin(parents.unpadded[column]).to_numpy()
        message = f"{column}: not in {parent} (an unknown id, or its {parent} row is quarantined)"
        checks.append(_Check(column, Rule.UNKNOWN_REFERENCE, message, broken & ~zeros))
        message = (
            f"{column}: not in {parent}, which has these digits with other leading zeros (000123 vs 123): "
            f"an export stored the ids as numbers, dropping the zeros; export {column} as text"
        )
        checks.append(_Check(column, Rule.UNKNOWN_REFERENCE, message, zeros))
    if parents.areas is not None:
        # A customer's station and supply unit are its area's (台区 → 供电所 → 供电单位): a mismatch is a
        # wrong station code or a stale archive, and would put the customer in the wrong team's risk list.
        for name in ("station", "supply_unit"):
            expected = typed["area_id"].map(parents.areas[name])
            broken = (expected.notna() & typed[name].notna() & (typed[name] != expected)).to_numpy(dtype=bool)
            message = f"{name}: does not match the {name} of its area in areas (unknown {name} code?)"
            checks.append(_Check(name, Rule.AREA_MISMATCH, message, broken))
    return checks


def row_hashes(typed: pd.DataFrame, columns: list[str]) -> pd.Series:
    """A 64-bit hash per row over ``columns`` (nulls hash equal): finds candidate matches fast; equality
    is then confirmed with `equal_rows`, so a collision never merges two rows."""
    return pd.util.hash_pandas_object(typed[columns], index=False)


def equal_rows(left: pd.DataFrame, right: pd.DataFrame, columns: list[str]) -> np.ndarray:
    """Row-by-row equality of two aligned frames over ``columns``; two nulls count as equal."""
    same = np.ones(len(left), dtype=bool)
    for column in columns:
        x, y = left[column].reset_index(drop=True), right[column].reset_index(drop=True)
        both_null = (x.isna() & y.isna()).to_numpy()
        same &= x.eq(y).to_numpy(dtype=bool, na_value=False) | both_null
    return same


# Tables other tables point at: their ids must not come in twice, once with and once without leading zeros.
_REFERENCED = frozenset(fk.table for spec in TABLES.values() for fk in spec.foreign_keys)


def _lost_zero_checks(
    candidates: pa.Table, positions: np.ndarray, spec: Table, stored: pd.Series | None, n: int
) -> list[_Check]:
    """A customer (or area) id that is a stored one, or another of this export's, without its leading zeros:
    a spreadsheet stored 0431000001 as the number 431000001. Accepted, it became a second customer with the
    same name and area, and the bills that lost their zeros too attached to it, splitting one customer's
    history across two keys. Which id was meant is not guessed: the shorter one waits."""
    if spec.name not in _REFERENCED or len(spec.key) != 1 or not candidates.num_rows:
        return []
    key = spec.key[0]
    ids = candidates.column(key).to_pandas().astype("str")
    digits = _without_leading_zeros(ids)
    if not digits.notna().any():
        return []
    known = pd.concat(
        [ids, pd.Series([] if stored is None else stored.dropna(), dtype="str")], ignore_index=True
    )
    known_digits = _without_leading_zeros(known)
    padded = (
        pd.DataFrame({"id": known, "digits": known_digits, "length": known.str.len()})
        .dropna(subset=["digits"])
        .sort_values(["length", "id"], ascending=[False, True], kind="stable")
        .drop_duplicates("digits")
        .set_index("digits")["id"]
    )
    longer = digits.map(padded)
    hit = (longer.notna() & (longer.str.len() > ids.str.len())).to_numpy(dtype=bool)
    mask = np.zeros(n, dtype=bool)
    mask[positions[hit]] = True
    said = {
        int(p): (
            f"{key}: {short} is {long} without its leading zeros ({long} is stored, or in this export): a "
            f"spreadsheet or a numeric column dropped them, and it would be a second key for one record — "
            f"export {key} as text"
        )
        for p, short, long in zip(positions[hit], ids[hit], longer[hit], strict=True)
    }
    message = f"{key}: an id that lost its leading zeros"
    return [_Check(key, Rule.DUPLICATE_KEY, message, mask, per_row=said)]


def _entered_again(subset: pd.DataFrame, spec: Table, group: np.ndarray) -> np.ndarray | None:
    """For an unversioned table with a known_at: per row, the position (in ``subset``) of its key's earliest
    entry, the row with the earliest known_at (the first in the file among equals; an empty known_at counts
    from the event time), or None for other tables. A reading uploaded twice (补采) is one reading, known from
    its first upload."""
    if not spec.known_at or spec.versioned or spec.event_time is None:
        return None
    known = pd.to_datetime(subset[spec.known_at]).fillna(pd.to_datetime(subset[spec.event_time]))
    order = pd.DataFrame({"group": group, "known": known.to_numpy(), "pos": np.arange(len(subset))})
    earliest = order.sort_values(["group", "known", "pos"], kind="stable").groupby("group")["pos"].first()
    return earliest.reindex(group).to_numpy()


def _duplicate_checks(
    candidates: pa.Table,
    positions: np.ndarray,
    hashes: np.ndarray,
    spec: Table,
    rows: np.ndarray,
    sources: np.ndarray,
    n: int,
) -> list[_Check]:
    """Among otherwise valid rows (``candidates``, at ``positions`` of the ``n`` rows read, with their key
    ``hashes``): one key with two contents is ambiguous (all copies out); an exact copy keeps its first
    occurrence."""
    key = list(spec.primary_key)
    conflict = np.zeros(n, dtype=bool)
    copy = np.zeros(n, dtype=bool)
    copy_message: dict[int, str] = {}
    # Equal keys hash equal, so only rows whose key hash repeats can be duplicates; those are checked exactly.
    repeats = np.flatnonzero(pd.Series(hashes).duplicated(keep=False).to_numpy())
    if len(repeats):
        suspects = candidates.take(pa.array(repeats)).to_pandas(date_as_object=False)
        dup = suspects[key].duplicated(keep=False).to_numpy()
        where = positions[repeats[dup]]
        if len(where):
            subset = suspects.loc[dup].reset_index(drop=True)
            frame = subset[key].assign(_pos=np.arange(len(where)))
            groups = frame.groupby(key, sort=False, dropna=False)
            group = groups.ngroup().to_numpy()
            first = groups["_pos"].transform("min").to_numpy()  # positions follow the file's row order
            # The same event entered twice (copies differing in known_at only): its first entry counts.
            entered = _entered_again(subset, spec, group)
            if entered is not None:
                first = entered
            exact = equal_rows(subset, subset.iloc[first], spec.column_names)
            compared = [c for c in spec.column_names if entered is None or c != spec.known_at]
            alike = exact if entered is None else equal_rows(subset, subset.iloc[first], compared)
            distinct = pd.Series(~alike).groupby(group).transform("any").to_numpy()
            kept = where[first]
            is_copy = ~distinct & (np.arange(len(where)) != first)
            conflict[where[distinct]] = True
            copy[where[is_copy]] = True
            copy_message = {
                int(p): (
                    f"exact copy of row {rows[k]}"
                    if same
                    else f"the same row as row {rows[k]}, entered again later ({spec.known_at})"
                )
                + ("" if sources[k] == sources[p] else f" of {sources[k]}")
                + ", which was kept"
                for same, p, k in zip(exact[is_copy], where[is_copy], kept[is_copy], strict=True)
            }
    names = ", ".join(key)
    return [
        _Check(
            key[0],
            Rule.DUPLICATE_KEY,
            f"({names}) appears more than once with different content (in this file or another file of the "
            "export); fix the export so each key is unique",
            conflict,
        ),
        _Check(key[0], Rule.DUPLICATE_ROW, "exact copy of an earlier row", copy, per_row=copy_message),
    ]


def quarantine_frame(
    original: pd.DataFrame,
    rows: np.ndarray,
    *,
    table_name: str,
    column: str | np.ndarray,
    rule: str | np.ndarray,
    message: str | np.ndarray,
    source: str | np.ndarray,
    timed: dict[str, bool] | None = None,
) -> pd.DataFrame:
    """Quarantine records: the original values as strings, then the metadata columns. ``timed`` gives the
    date-time format of a column whose other rows are not in ``original`` (see `timed_columns`)."""
    timed = timed or {}
    out = pd.DataFrame(
        {
            c: original_text(original[c], timed.get(c)).to_numpy()
            for c in original.columns
            if c not in ROW_META
        }
    )
    n = len(out)
    out = out.astype("str")
    meta = pd.DataFrame(
        {
            "_table": np.full(n, table_name, dtype=object),
            "_row": np.asarray(rows, dtype="int64"),
            "_column": np.broadcast_to(np.asarray(column, dtype=object), (n,)),
            "_rule": np.broadcast_to(np.asarray(rule, dtype=object), (n,)),
            "_message": np.broadcast_to(np.asarray(message, dtype=object), (n,)),
            "_source": np.broadcast_to(np.asarray(source, dtype=object), (n,)),
        }
    )
    meta = meta.astype({c: "str" for c in QUARANTINE_META if c != "_row"})
    return pd.concat([out.reset_index(drop=True), meta], axis=1)


def _quarantine(
    data: pd.DataFrame,
    rows: np.ndarray,
    sources: np.ndarray,
    bad: np.ndarray,
    checks: list[_Check],
    table_name: str,
    timed: dict[str, bool],
) -> pd.DataFrame:
    idx = np.flatnonzero(bad)
    column = np.empty(len(idx), dtype=object)
    rule = np.empty(len(idx), dtype=object)
    messages = np.full(len(idx), "", dtype=object)
    first = np.zeros(len(idx), dtype=bool)
    for check in checks:
        hit = check.mask[idx]
        if not hit.any():
            continue
        new = hit & ~first
        column[new] = check.column
        rule[new] = str(check.rule)
        first |= hit
        text = np.full(len(idx), check.message, dtype=object)
        if check.per_row:
            text = np.array([check.per_row.get(int(p), check.message) for p in idx], dtype=object)
        messages[hit] = np.where(messages[hit] == "", text[hit], messages[hit] + "; " + text[hit])
    return quarantine_frame(
        data.iloc[idx],
        rows[idx],
        table_name=table_name,
        column=column,
        rule=rule,
        message=messages,
        source=sources[idx],
        timed=timed,
    )


def _to_contract(typed: pd.DataFrame, spec: Table) -> pa.Table:
    """The rows in the contract's Arrow schema, without pandas metadata: `read_table` gives the same dtypes
    whichever frame they came from."""
    arrow = pa.Table.from_pandas(typed[spec.column_names], schema=spec.arrow_schema(), preserve_index=False)
    return arrow.replace_schema_metadata(None)
