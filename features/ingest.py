"""`gridrisk ingest`: export files → column map → validation → upsert into the warehouse; rejects quarantined.

Every row read is accounted for: accepted (new, updated or unchanged in the warehouse) or quarantined with its
rule. Re-ingesting the same export changes nothing.
"""

from __future__ import annotations

import datetime as dt
import filecmp
import itertools
import json
import logging
import re
import shutil
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from functools import partial
from pathlib import Path
from urllib.parse import unquote

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc

from features.column_maps.mapping import ColumnMap, bare_stem
from features.labels import event_table_ends
from features.schema import ARCHIVE_TABLES, LOAD_ORDER, TABLES, Table
from features.sources import (
    EXPORT_SUFFIXES,
    UNREAD_TABLE_SUFFIXES,
    WAREHOUSE_ZONE_FILE,
    Export,
    QuarantineFile,
    WarehouseError,
    check_contract_columns,
    has_table,
    read_arrow_table,
    read_export,
    record_timezone,
    stored_timezone,
    table_path,
    unsupported_type,
    write_arrow_table,
)
from features.validation import (
    DATE_ORDER_RULES,
    FUTURE_TOLERANCE,
    LOCAL_TIMEZONE,
    ContractError,
    Rule,
    check_columns,
    check_timezone,
    equal_rows,
    ingest_moment,
    quarantine_frame,
    row_hashes,
    to_text,
    validate,
)

logger = logging.getLogger(__name__)

# What an accepted row did to the warehouse.
NEW, UPDATED, UNCHANGED, CONFLICT = range(4)
# Every file is read once to check it before anything is written. Files are held from that read, in load
# order, until they add up to this many bytes in memory; the rest are read again when their table's turn
# comes, so a large archive's peak memory is its largest table, not the sum of all of them.
KEEP_READ_BYTES = 1 << 30
# Stored rows compared with incoming ones at a time, so a re-ingest never holds the whole table as pandas.
COMPARE_ROWS = 1_000_000

# An export as read, and its frame under contract column names.
ReadFile = tuple[Export, pd.DataFrame]


@dataclass
class TableReport:
    """What one ingest did to one table. ``accepted`` = new + updated + unchanged rows."""

    table: str
    files: list[str] = field(default_factory=list)
    rows_read: int = 0
    accepted: int = 0
    quarantined: int = 0
    by_rule: Counter = field(default_factory=Counter)
    examples: dict[str, str] = field(default_factory=dict)  # rule -> the first message seen for it
    # rule -> where its first rows are, `EXAMPLES_PER_RULE` at most: the first with its file, column and value
    # ("电费账单.csv line 5: kwh '-7'"), the next by row ("line 6"), with their file when it is another and
    # their column when it is not the first row's ("line 9: amount_due")
    where: dict[str, list[str]] = field(default_factory=dict)
    where_column: dict[str, str] = field(default_factory=dict)  # rule -> the column of its first row shown
    new: int = 0  # rows whose key the warehouse did not have
    updated: int = 0  # rows replacing a stored row (archive tables) or adding a version of a stored key
    unchanged: int = 0  # rows identical to a stored row
    quarantine_added: int = 0  # records new to WH/quarantine (re-ingests add none)
    extra_columns: list[str] = field(default_factory=list)  # in the order of the files' headers
    notes: list[str] = field(default_factory=list)

    @property
    def balanced(self) -> bool:
        return self.rows_read == self.accepted + self.quarantined == self.accepted_split + self.quarantined

    @property
    def accepted_split(self) -> int:
        return self.new + self.updated + self.unchanged


@dataclass
class _HeldUpdates:
    """Changed archive rows (a closure, a station move) set aside until the run knows how new its export is:
    an export older than the warehouse's data would undo later changes, so they are quarantined instead."""

    spec: Table
    rows: pa.Table  # the accepted rows that change a stored row
    positions: np.ndarray  # their positions in the export's frame (for the quarantine's original values)
    row_numbers: np.ndarray  # their row numbers in the export files
    read_again: Callable[[], list[ReadFile]]
    timed: dict[str, bool]
    part: TableReport
    quarantine: QuarantineFile  # the table's quarantine file as this run has it (read once per run)


@dataclass
class IngestReport:
    source: Path
    warehouse: Path
    now: pd.Timestamp  # the moment of the ingest (UTC); later dates of things that happened are `future`
    now_declared: bool = False  # the moment is the one a generated export declares, not the clock
    tables: dict[str, TableReport] = field(default_factory=dict)
    skipped_files: list[str] = field(default_factory=list)  # not read: no table in the name, or a type (.zip)
    truth_files: int = 0  # generator ground truth copied to WH/truth
    timezone: str = LOCAL_TIMEZONE  # the zone whose wall clock the warehouse's times are in
    timezone_recorded: bool = False  # this run recorded it (the warehouse's first ingest)

    @property
    def rows_read(self) -> int:
        return sum(t.rows_read for t in self.tables.values())

    @property
    def accepted(self) -> int:
        return sum(t.accepted for t in self.tables.values())

    @property
    def quarantined(self) -> int:
        return sum(t.quarantined for t in self.tables.values())

    @property
    def balanced(self) -> bool:
        return all(t.balanced for t in self.tables.values())


def declared_export_moment(source: Path) -> pd.Timestamp | None:
    """The end of the day an export says it was taken, if it says so: `gridrisk generate` writes
    `truth/manifest.json` with `export_at` beside its tables. Real exports carry no such file."""
    from features.synthetic.truth import truth_path

    folder = Path(source) if Path(source).is_dir() else Path(source).parent
    path = truth_path(folder, "manifest")
    if not path.exists():
        return None
    try:
        export_at = json.loads(path.read_text(encoding="utf-8")).get("export_at")
        return pd.Timestamp(export_at).normalize() + pd.Timedelta(days=1) if export_at else None
    except (OSError, ValueError, TypeError, AttributeError):  # unreadable: the clock decides, as for others
        logger.warning("%s is unreadable or names no export_at date; the clock is the ingest moment", path)
        return None


def ingest(
    source: Path,
    warehouse: Path,
    *,
    column_map: Path | None = None,
    now: dt.datetime | str | None = None,
    progress: Callable[[str], None] | None = None,
    timezone: str | None = None,
) -> IngestReport:
    """Load every contract-table export under ``source`` (a folder, or one file) into ``warehouse``.

    ``now`` is the moment of the ingest (default: the wall clock, UTC); set it to re-ingest an archive as of
    the day it was exported. A time written with its zone or UTC offset is stored as ``timezone``'s wall
    clock (the warehouse's times are local). The zone is recorded with the warehouse at its first ingest and
    is the default of later ones (else Asia/Shanghai); naming another zone is refused, as it would mix two
    clocks in one table. Raises ContractError before anything is written when a file is unusable as a whole
    (unknown table, unreadable, wrong encoding, missing required column, unknown time zone, another zone
    than the warehouse's). ``progress`` receives a line per step.
    """
    step = progress or (lambda _: None)
    source, warehouse = Path(source), Path(warehouse)
    timezone = _warehouse_zone(warehouse, timezone)
    moment = ingest_moment(now)  # one moment for every file of the run
    declared = declared_export_moment(source) if now is None else None
    # A generated utility may run past today's date; its rows are not in the future of its own export.
    use_declared = declared is not None and declared > moment
    moment = declared if use_declared and declared is not None else moment
    check_contract_columns(warehouse)  # a stored table this run would extend must have the contract's columns
    mapping = ColumnMap.load(column_map)
    plan, root = _plan(source, mapping)
    # All files of one table are validated together: a key two files disagree on is a duplicate_key whichever
    # file comes first, exactly as within one file. `plan` is in load order, so this dict is too.
    pending: dict[str, list[tuple[Path, ReadFile | None, tuple[int, int]]]] = {}
    held = 0
    for name, path in plan:
        step(f"reading {path.relative_to(root)}")
        read = _read_mapped(path, name, mapping, root)  # every file is usable before anything is written
        size = sum(int(f.memory_usage(deep=True).sum()) for f in (read[0].frame, read[1]))
        hold = held + size <= KEEP_READ_BYTES
        held += size if hold else 0
        pending.setdefault(name, []).append((path, read if hold else None, _stamp(path)))
        del read

    report = IngestReport(
        source=source, warehouse=warehouse, now=moment, now_declared=use_declared, timezone=timezone
    )
    if stored_timezone(warehouse) is None:
        record_timezone(warehouse, timezone)  # every file was read and mapped: this run stores its tables
        report.timezone_recorded = True
    report.skipped_files = _skipped(source, plan, root)
    for name in report.skipped_files:
        logger.warning("%s: not read (no contract table in its name, or a type not read)", source / name)
    stored_ends = event_table_ends(warehouse)  # each stored event table's newest day, before this run
    held: list[_HeldUpdates] = []
    newest: dict[str, pd.Timestamp] = {}  # the export's newest accepted event day, table by table
    parents = {fk.table for spec in TABLES.values() for fk in spec.foreign_keys}
    current: dict[str, pd.DataFrame] = {}  # the stored parent tables, for the children's foreign keys
    while pending:
        name = next(iter(pending))
        spec = TABLES[name]
        part = report.tables.setdefault(name, TableReport(table=name))
        reference = {fk.table: _parent(current, warehouse, fk.table) for fk in spec.foreign_keys}
        # A table's files are let go once stored: peak memory is one table, not every table.
        entries = pending.pop(name)
        files = [read or _read_again(path, name, mapping, root, stamp) for path, read, stamp in entries]
        stamps = [(path, stamp) for path, _, stamp in entries]
        del entries
        rows = sum(len(frame) for _, frame in files)
        step(f"validating and storing {', '.join(e.name for e, _ in files)} ({rows:,} rows) as {name}")
        stored = _stored(warehouse, spec)
        merged = _ingest_table(
            files,
            partial(_read_all_again, stamps, name, mapping, root),
            spec,
            stored,
            reference,
            warehouse,
            part,
            moment,
            timezone,
            parent=name in parents,
            hold_updates=held if stored_ends and name in ARCHIVE_TABLES else None,
            newest=newest,
            stored_end=max(stored_ends.values()) if stored_ends else None,
        )
        del stored
        if merged is not None:
            current[name] = merged
        del merged
    # Like with like: the export's newest event against the stored newest of the same tables (a customers
    # export beside inspections from a system that runs a week behind is not an old export).
    compared = [t for t in newest if t in stored_ends]
    export_end = max(newest[t] for t in compared) if compared else None
    stored_end = max(stored_ends[t] for t in compared) if compared else None
    for updates in held:
        _settle_updates(updates, warehouse, stored_end, export_end, compared, moment)
    if source.is_dir() and (source / "truth").is_dir():
        report.truth_files = _copy_truth(source / "truth", warehouse / "truth")
    for part in report.tables.values():
        if not part.balanced:
            raise AssertionError(f"ingest lost rows in {part.table}: {part}")  # a bug, never a data problem
    return report


def _warehouse_zone(warehouse: Path, asked: str | None) -> str:
    """The zone this run stores times in: the one asked, else the warehouse's recorded zone, else
    Asia/Shanghai. Asking another zone than the recorded one is refused before anything is read."""
    stored = stored_timezone(warehouse)
    zone = check_timezone(asked or stored or LOCAL_TIMEZONE)
    if stored is not None and zone != stored:
        raise ContractError(
            f"warehouse {warehouse} holds its times as {stored} wall clock (recorded at its first ingest, "
            f"{warehouse / WAREHOUSE_ZONE_FILE}); this run asks for {zone}, and one table would mix two "
            f"clocks. Leave out --timezone to use {stored}, or ingest into a new warehouse"
        )
    return zone


def _read_mapped(path: Path, name: str, mapping: ColumnMap, root: Path) -> ReadFile:
    """Read one export and map its headers; raises ContractError when the file is unusable as a whole. A part
    of a table folder (a file below ``root``'s own files: ``bills/month=2023-06/part-0.parquet``) is named by
    that path, and its key=value partition folders become columns, as Spark and Hive read them back."""
    part = path.parent != root
    export = read_export(path, suffix=".parquet") if part else read_export(path)
    if part:
        export.label = path.relative_to(root).as_posix()
        _add_partition_columns(export, path.relative_to(root).parts[1:-1])
    export.notes.extend(mapping.passed_over([c for c in export.frame.columns if c != "_row"], name))
    frame = mapping.apply(export.frame, name, str(export.path))
    try:
        check_columns(frame, name, str(export.path))
    except ContractError as exc:
        hint = _header_hint(export, mapping, name)
        if hint is None:
            raise
        raise ContractError(f"{export.path} (table {name}): {hint}") from exc
    return export, frame


def _header_hint(export: Export, mapping: ColumnMap, name: str) -> str | None:
    """Where the header is when the first row is not it: a report title above it (长沙供电公司…明细表),
    or a header over two rows (电量 merged over 结算电量 and 峰电量). Sending the user to the column map, as a
    missing column does, would not help; None when no row nearby names more required columns."""
    required = set(TABLES[name].required_columns)

    def found(cells: list[str]) -> int:
        return len(required & set(mapping.rename(cells, name).values()))

    if len(export.head) < 2:
        return None
    first, header = export.head[0]
    unit = "line" if export.path.suffix.lower() == ".csv" else "row"
    best = (max(found(header), 1), "", [])
    for (above, upper), (number, cells) in itertools.pairwise(export.head):
        joined = [low or high for high, low in itertools.zip_longest(upper, cells, fillvalue="")]
        for candidate, where in (
            (cells, f"{unit} {number} names the columns"),
            (joined, f"the header spans {unit}s {above}–{number} (cells merged over sub-headers)"),
        ):
            if found(candidate) > best[0]:
                best = (found(candidate), where, candidate)
    _, where, cells = best
    if not where:
        return None
    named = ", ".join(cell for cell in cells if cell)
    named = named if len(named) <= 60 else named[:60] + "…"
    if where.startswith("the header spans"):
        return f"{where}; make it one {unit} of column names ({named}), then ingest again"
    title = " ".join(cell for cell in header if cell)
    title = title if len(title) <= 40 else title[:40] + "…"
    return (
        f"{unit} {first} ({title!r}) is not the header, and {where} ({named}); delete the {unit}s above it "
        "(a report title), then ingest again"
    )


def _stamp(path: Path) -> tuple[int, int]:
    stat = path.stat()
    return stat.st_size, stat.st_mtime_ns


def _read_again(path: Path, name: str, mapping: ColumnMap, root: Path, stamp: tuple[int, int]) -> ReadFile:
    """The second read of a file too large to hold since the first: it must still be the file that was
    checked, or this run would store what nobody checked."""
    if _stamp(path) != stamp:
        raise ContractError(
            f"{path}: changed while this ingest was running (its size or time differs from the first read); "
            f"the tables before {name} are stored (but not the changes to stored customers or areas rows), "
            f"{name} and the rest are not — run the ingest again once the export is complete"
        )
    return _read_mapped(path, name, mapping, root)


def _plan(source: Path, mapping: ColumnMap) -> tuple[list[tuple[str, Path]], Path]:
    """(table, file) pairs in foreign-key order (parents are stored before their children are checked), and
    the folder files are named from. A folder named for a table (``bills/``, ``customers.parquet/``, as Spark
    and Hive write a table) is that table's Parquet parts (`_table_folder`)."""
    if not source.exists():
        raise ContractError(f"{source}: no such file or folder; pass an export file or a folder of them")
    if source.is_file():
        name = mapping.table_for(source)
        if name is None:
            raise ContractError(
                f"{source}: cannot tell which table this file holds; name it <table>{source.suffix} "
                f"({', '.join(TABLES)}) or add its name to [files] in a --column-map TOML"
            )
        if source.suffix.lower() not in EXPORT_SUFFIXES:
            raise unsupported_type(source)
        return [(name, source)], source.parent
    entries = sorted(source.iterdir())
    pairs = [(mapping.table_for(p), p) for p in entries if p.is_file()]
    folders = [
        (mapping.table_for(p), p) for p in entries if p.is_dir() and not _hidden(p) and p.name != "truth"
    ]
    # A table file in a type gridrisk does not read (电费账单.xls, bills.txt) would leave that table out
    # without a word; it refuses the run instead, as an unreadable file does. So does an export file (or a
    # table folder) whose name holds a table's name among other words (长沙_电费账单.csv, 电费账单汇总.xlsx):
    # it may be that table, and a scheduled run reporting success without it would lose it. Other files
    # beside the export (the downloaded bills.zip, notes in bills.md, a lookup list.csv) are not read, and the
    # summary says so.
    for name, path in pairs:
        if name is not None and path.suffix.lower() in UNREAD_TABLE_SUFFIXES:
            raise unsupported_type(path)
    unclear = [
        (path, named)
        for name, path in pairs + folders
        if name is None
        and (path.is_dir() or path.suffix.lower() in EXPORT_SUFFIXES)
        and (named := mapping.table_named_in(path)) is not None
    ]
    if unclear:
        listed = "; ".join(
            f"{path.name}{'/' if path.is_dir() else ''} (holds {word!r}: {table}?)"
            for path, (word, table) in unclear
        )
        path, (_, table) = unclear[0]
        raise ContractError(
            f"{source}: {len(unclear)} file(s) named like a table but not as one: {listed}. A table's file "
            "is its name with or without dates and part numbers (电费账单_2024年01月.csv, "
            "202401电费账单.xlsx, 电费账单_第二部分.csv), a table folder its name (bills/). Rename it, map "
            f'its name in a --column-map TOML ([files] "{bare_stem(path)}" = "{table}"), or move it out of '
            "the folder; nothing was stored"
        )
    plan = [(name, p) for name, p in pairs if name is not None and p.suffix.lower() in EXPORT_SUFFIXES]
    plan += [
        (name, part) for name, folder in folders if name is not None for part in _table_folder(folder, name)
    ]
    root = source
    if not plan and (name := mapping.table_for(source)) is not None and _looks_like_parts(source):
        # `gridrisk ingest export/bills`: the folder given is itself one table's folder of parts.
        plan, root = [(name, part) for part in _table_folder(source, name)], source.parent
    if not plan:
        parts = (
            " It holds Parquet parts or key=value partition folders without a table's name: pass the folder "
            "that holds the table folders (bills/, customers/), or a table folder named for its table"
            if _looks_like_parts(source)
            else ""
        )
        raise ContractError(
            f"{source}: no export file for a contract table (expected e.g. bills.csv, customers.parquet, "
            f"电费账单.xlsx, or a table folder of Parquet parts such as bills/; tables: {', '.join(TABLES)})."
            + parts
        )
    return sorted(plan, key=lambda pair: (LOAD_ORDER.index(pair[0]), str(pair[1]))), root


# Spark and Hive write a table as a folder: part files, `key=value` folders for partitionBy columns, and
# bookkeeping (`_SUCCESS`, `_committed_…`, `.part-….crc`, `.hive-staging…`) that their own readers skip.
_PARTITION_FOLDER = re.compile(r"^[^=]+=.*$")
_HIVE_NULL = "__HIVE_DEFAULT_PARTITION__"  # how Spark and Hive write a null partition value
_PARQUET_MAGIC = b"PAR1"


def _hidden(path: Path) -> bool:
    return path.name.startswith(("_", "."))


def _is_parquet_part(path: Path) -> bool:
    """A `.parquet` file, or one without a suffix that is Parquet (Hive names its parts 000000_0)."""
    if path.suffix.lower() == ".parquet":
        return True
    if path.suffix:
        return False
    with path.open("rb") as handle:
        return handle.read(4) == _PARQUET_MAGIC


def _looks_like_parts(folder: Path) -> bool:
    return any(
        not _hidden(p) and (_PARTITION_FOLDER.match(p.name) if p.is_dir() else _is_parquet_part(p))
        for p in folder.iterdir()
    )


def _table_folder(folder: Path, table_name: str) -> list[Path]:
    """The Parquet parts of a table folder as Spark or Hive writes it, in path order. Files and folders
    whose names start with `_` or `.` are bookkeeping and left out, as Spark's reader leaves them out.
    Anything else that is not a part, a folder that is not a `key=value` partition, parts under different
    partition keys, or a folder without any part refuses the run: a table read in part would lose rows."""
    parts: list[Path] = []
    problems: list[str] = []
    where = folder.parent

    def walk(at: Path) -> None:
        for entry in sorted(at.iterdir()):
            if _hidden(entry):
                continue
            shown = entry.relative_to(where).as_posix()
            if entry.is_dir():
                if _PARTITION_FOLDER.match(entry.name):
                    walk(entry)
                else:
                    problems.append(f"{shown}/ (a folder, not a key=value partition)")
            elif _is_parquet_part(entry):
                parts.append(entry)
            else:
                problems.append(f"{shown} (not a Parquet part)")

    walk(folder)
    keys = {
        tuple(unquote(p.split("=", 1)[0]) for p in part.relative_to(folder).parts[:-1]): part
        for part in parts
    }
    if len(keys) > 1:
        problems += [
            f"{part.relative_to(where).as_posix()} (partition keys {', '.join(key) or 'none'})"
            for key, part in keys.items()
        ]
    if problems or not parts:
        shown = "; ".join(problems[:5]) + (f"; … and {len(problems) - 5} more" if len(problems) > 5 else "")
        raise ContractError(
            f"{folder} (table {table_name}, a table folder): "
            + (shown if problems else "no Parquet part file in it")
            + ". A table folder holds the table's Parquet parts, in key=value partition folders all under "
            "the same keys if partitioned; names starting with _ or . (_SUCCESS, .crc) are left out. Export "
            "the table again or move the other files out; nothing was stored"
        )
    return parts


def _add_partition_columns(export: Export, folders: tuple[str, ...]) -> None:
    """A part's `key=value` folders as columns (`month=2023-06` → month '2023-06'), as text like a CSV's
    values: Spark and Hive take a partitionBy column out of the files. One the contract has (`period`) is
    restored and validated like any other value; another (`month`) is listed with the ignored columns."""
    frame = export.frame
    for folder in folders:
        key, value = (unquote(text) for text in folder.split("=", 1))
        if key in frame.columns:
            raise ContractError(
                f"{export.path} (a part of a table folder): column {key!r} is both in the file and in its "
                f"partition folder {folder}; which one holds the value is not guessed — export the table "
                "again without the column in the files, or without that partition folder"
            )
        column = np.empty(len(frame), dtype=object)
        column.fill(None if value in ("", _HIVE_NULL) else value)
        frame.insert(len(frame.columns) - 1 if "_row" in frame.columns else len(frame.columns), key, column)


def _skipped(source: Path, plan: list[tuple[str, Path]], root: Path) -> list[str]:
    """The folder's files and folders the plan leaves out: no contract table, or a type not read (bills.zip).
    Folders starting with _ or . and a generated export's truth/ are not listed."""
    if not source.is_dir() or root != source:
        return []
    planned = {path.relative_to(source).parts[0] for _, path in plan}
    return sorted(
        p.name + ("/" if p.is_dir() else "")
        for p in source.iterdir()
        if p.name not in planned and (p.is_file() or not (_hidden(p) or p.name == "truth"))
    )


def _stored(warehouse: Path, spec: Table) -> pa.Table:
    """The stored table in the contract's Arrow schema (files may lack optional columns), or an empty one.
    Arrow, not pandas: a province's bills are several times larger as a DataFrame."""
    schema = spec.arrow_schema()
    if not has_table(warehouse, spec.name):
        return schema.empty_table()
    tbl = read_arrow_table(warehouse, spec.name)
    columns = [  # cast: a table an earlier release wrote may store a time at another unit
        _cast_stored(tbl, f, warehouse, spec.name)
        if f.name in tbl.column_names
        else pa.nulls(tbl.num_rows, f.type)
        for f in schema
    ]
    return pa.Table.from_arrays(columns, schema=schema)


def _cast_stored(tbl: pa.Table, target: pa.Field, warehouse: Path, name: str) -> pa.ChunkedArray:
    column = tbl.column(target.name)
    try:
        return column.cast(target.type)
    except MemoryError:
        raise
    except pa.ArrowException as exc:  # unparseable values, or a cast Arrow has no kernel for
        raise WarehouseError(
            f"{name}: the stored table's column {target.name} is {column.type}, not the contract's "
            f"{target.type} ({exc}); {table_path(warehouse, name)} was written or edited by something else. "
            f"Ingest the exports into an empty warehouse to rebuild it"
        ) from exc


def _parent(current: dict[str, pd.DataFrame], warehouse: Path, name: str) -> pd.DataFrame:
    if name not in current:
        current[name] = _frame(_stored(warehouse, TABLES[name]))
    return current[name]


def _read_all_again(
    stamps: list[tuple[Path, tuple[int, int]]], name: str, mapping: ColumnMap, root: Path
) -> list[ReadFile]:
    return [_read_again(path, name, mapping, root, stamp) for path, stamp in stamps]


def _originals(files: list[ReadFile]) -> tuple[pd.DataFrame, np.ndarray]:
    """The exports' own values under contract names (quarantine records keep what the files said), and
    the file each row came from."""
    raw = _stack([export.frame.set_axis(mapped.columns, axis=1) for export, mapped in files])
    return raw, np.concatenate([export.row_sources() for export, _ in files])


def _ingest_table(
    files: list[ReadFile],
    read_again: Callable[[], list[ReadFile]],
    spec: Table,
    stored: pa.Table,
    reference: dict[str, pd.DataFrame],
    warehouse: Path,
    part: TableReport,
    now: pd.Timestamp,
    timezone: str,
    *,
    parent: bool,
    hold_updates: list[_HeldUpdates] | None = None,
    newest: dict[str, pd.Timestamp] | None = None,
    stored_end: pd.Timestamp | None = None,
) -> pd.DataFrame | None:
    """Validate the export files of one table, upsert the accepted rows, quarantine the rest; returns the
    stored table when it is a ``parent`` (for its children's foreign keys). ``files`` pairs each export with
    its frame under contract column names; the list is emptied once validated, so the exports are let go
    before the merge and the write (the caller must hold no other reference to them). A conflict with a
    stored row quotes the export's values: ``read_again`` gives the files back for that rare case. With
    ``hold_updates``, changed archive rows are not stored yet but appended there (`_settle_updates`); an event
    table puts its newest accepted event day in ``newest``."""
    names = [export.name for export, _ in files]
    labels = [export.name + (f" ({export.encoding})" if export.encoding else "") for export, _ in files]
    # Where rows can come from, in file (and sheet) order: quarantine records are kept in that order.
    labels_in_order = list(
        dict.fromkeys(
            label
            for export, _ in files
            for label in (
                [f"{export.name} [{sheet}]" for sheet in pd.unique(export.sheets)]
                if export.sheets is not None
                else []
            )
            + [export.name]
        )
    )
    notes = [f"{export.name}: {note}" for export, _ in files for note in export.notes]
    frame = _stack([mapped for _, mapped in files])
    raw, sources = _originals(files)
    if len(files) > 1 or files[0][0].sheets is not None:  # one label for all rows is validate's `source`
        frame = frame.assign(_source=sources)
    malformed = _stack([export.malformed for export, _ in files])  # each names its file (and sheet)
    # A parent's stored ids: an incoming id that is one of them without its leading zeros is no new customer.
    stored_keys = stored.column(spec.key[0]).to_pandas() if parent and len(spec.key) == 1 else None
    result = validate(
        frame,
        spec.name,
        source=names[0],
        reference=reference,
        now=now,
        original=raw,
        timezone=timezone,
        stored_keys=stored_keys,
    )
    read = len(frame) + len(malformed)
    # Per accepted row, the contract columns its file lacks (monthly part files may differ in columns).
    absent = {c: lacking[result.accepted_positions] for c, lacking in _lacking(files, spec).items()}
    files.clear()
    del frame, raw, sources
    merged, kinds, rows = _upsert(stored, result.table, spec, absent=absent)
    counts = np.bincount(kinds, minlength=4)
    notes += _late_entry_notes(result.table, kinds == NEW, spec, stored, stored_end, absent)
    if newest is not None and spec.name not in ARCHIVE_TABLES:
        top = _newest_event(result.table, spec)
        if top is not None:
            newest[spec.name] = top
    written = merged
    quarantine = QuarantineFile(warehouse, spec.name, ignore=[INGESTED_AT])
    if hold_updates is not None and counts[UPDATED]:
        # Stored now: the new rows only. The children of this run are checked against the whole merge.
        written = pa.concat_tables([stored, rows.filter(pa.array(kinds == NEW))])
        held = np.flatnonzero(kinds == UPDATED)
        hold_updates.append(
            _HeldUpdates(
                spec,
                rows.take(pa.array(held)),
                result.accepted_positions[held],
                result.accepted_rows[held],
                read_again,
                result.timed,
                part,
                quarantine,
            )
        )
        counts[UPDATED] = 0
    conflicts = kinds == CONFLICT
    records = [
        result.quarantined,
        quarantine_frame(
            malformed[["_text"]],
            malformed["_row"].to_numpy(),
            table_name=spec.name,
            column="",
            rule=str(Rule.MALFORMED_ROW),
            message=malformed["_message"].to_numpy(dtype=object),
            source=malformed["_source"].to_numpy(dtype=object),
        ),
    ]
    if conflicts.any():
        values, sources = _originals(read_again())
        positions = result.accepted_positions[conflicts]
        records.append(
            quarantine_frame(
                values.iloc[positions],
                result.accepted_rows[conflicts],
                table_name=spec.name,
                column=spec.primary_key[0],
                rule=str(Rule.WAREHOUSE_CONFLICT),
                message=f"({', '.join(spec.primary_key)}) is already stored with other content; "
                + (
                    "a correction needs a later known_at"
                    if spec.versioned
                    else "fix the export, or remove the stored row on purpose"
                ),
                source=sources[positions],
                timed=result.timed,
            )
        )
        del values, sources
    quarantined = _in_file_order(
        pd.concat([r for r in records if len(r)] or records[:1], ignore_index=True), labels_in_order
    )
    if counts[NEW] or counts[UPDATED]:
        write_arrow_table(warehouse, spec.name, written)
    elif not has_table(warehouse, spec.name):
        # Every row quarantined: the table was ingested and holds nothing yet. Without a file, readers said
        # "… is missing; run gridrisk ingest", although it had run.
        write_arrow_table(warehouse, spec.name, spec.arrow_schema().empty_table())

    accepted = result.table.num_rows - int(counts[CONFLICT])
    part.files.extend(labels)
    part.rows_read += read
    part.quarantined += len(quarantined)
    part.accepted += accepted
    part.by_rule.update(quarantined["_rule"].tolist())
    _note_examples(part, quarantined)
    part.new += int(counts[NEW])
    part.updated += int(counts[UPDATED])  # held updates count when they are settled
    part.unchanged += int(counts[UNCHANGED])
    part.quarantine_added += _add_quarantine(quarantine, quarantined, now)
    part.extra_columns = list(dict.fromkeys([*part.extra_columns, *result.extra_columns]))  # in file order
    part.notes.extend(notes)
    logger.info(
        "%s (%s): %d rows read, %d accepted (%d new, %d updated, %d unchanged), %d quarantined",
        spec.name,
        ", ".join(names),
        read,
        accepted,
        int(counts[NEW]),
        int(counts[UPDATED]),
        int(counts[UNCHANGED]),
        len(quarantined),
    )
    return _frame(merged) if parent else None


def _in_file_order(records: pd.DataFrame, sources: list[str]) -> pd.DataFrame:
    """Quarantine records by file (and sheet) in the order they were read, then by row: a row that is no
    record (malformed) stands between the rows around it, as in the file."""
    if len(records) < 2:
        return records
    rank = records["_source"].map({source: i for i, source in enumerate(sources)}).fillna(len(sources))
    order = np.lexsort((records["_row"].to_numpy(), rank.to_numpy()))
    return records.iloc[order].reset_index(drop=True)


def _late_entry_notes(
    accepted: pa.Table,
    new: np.ndarray,
    spec: Table,
    stored: pa.Table,
    stored_end: pd.Timestamp | None,
    absent: dict[str, np.ndarray],
) -> list[str]:
    """What a point-in-time reader must know about this run's new rows of an event table (an auditor's):
    rows entered before the warehouse's data end, which a training set or snapshot built earlier for a date
    after their entry did not have; and rows from a file without the known_at the stored rows carry, which
    count from their event time, as if entered the moment they happened."""
    if spec.name in ARCHIVE_TABLES or spec.event_time is None or not new.any():
        return []
    notes = []
    known = spec.known_at
    if known is not None and not spec.versioned and known in absent:
        lacking = int((absent[known] & new).sum())
        stored_has = known in stored.column_names and stored.num_rows > stored.column(known).null_count
        if lacking and stored_has:
            notes.append(
                f"{lacking:,} new rows come from a file without {known}, while the stored rows have it: "
                f"they count from their {spec.event_time}, as if entered the moment they happened (a "
                f"payment posted days later would be seen early); export {known} with every file"
            )
    if stored_end is not None:
        times = [spec.event_time, *([known] if known and known in accepted.column_names else [])]
        frame = accepted.select(times).to_pandas()
        entered = pd.to_datetime(frame[spec.event_time])
        if len(times) > 1:  # entered when known; a null known_at counts from the event
            entered = np.fmax(entered, pd.to_datetime(frame[known]))
        early = int((new & (entered < stored_end).to_numpy()).sum())
        if early:
            notes.append(
                f"{early:,} new rows were entered before the warehouse's data end {stored_end.date()}: "
                "features as of dates after their entry now include them, so a training set or snapshot "
                "built before this run for such a date differs from one built now"
            )
    return notes


def _newest_event(tbl: pa.Table, spec: Table) -> pd.Timestamp | None:
    """The newest day of event time or known_at among a table's accepted rows (None without rows)."""
    out = []
    for column in (spec.event_time, spec.known_at):
        if column is not None and column in tbl.column_names and tbl.num_rows:
            top = pc.max(tbl.column(column)).as_py()
            if top is not None:
                out.append(pd.Timestamp(top))
    return max(out).normalize() if out else None


def _settle_updates(
    updates: _HeldUpdates,
    warehouse: Path,
    stored_end: pd.Timestamp | None,
    export_end: pd.Timestamp | None,
    tables: list[str],
    moment: pd.Timestamp,
) -> None:
    """Store held archive changes, unless this export's events end before the stored events of the same
    ``tables`` did: then the export is older than the state stored (a month replayed after the next one),
    and its archive rows would reopen closed accounts and move stations back, so they are quarantined
    (`warehouse_conflict`). An export of archive tables alone carries no date to compare: its changes are
    stored."""
    spec, part, n = updates.spec, updates.part, updates.rows.num_rows
    if stored_end is None or export_end is None or export_end >= stored_end:
        merged, kinds, _ = _upsert(_stored(warehouse, spec), updates.rows, spec)
        write_arrow_table(warehouse, spec.name, merged)
        part.updated += int((kinds == UPDATED).sum())
        part.unchanged += int((kinds == UNCHANGED).sum())
        return
    values, sources = _originals(updates.read_again())
    message = (
        f"({', '.join(spec.primary_key)}) is stored from later data: the warehouse's {', '.join(tables)} "
        f"run to {stored_end.date()}, this export's to {export_end.date()}, so its {spec.name} rows are "
        "older than the stored ones and would undo later changes (a closed account, a station move); ingest "
        "the newer export again, or change the stored row on purpose"
    )
    records = quarantine_frame(
        values.iloc[updates.positions],
        updates.row_numbers,
        table_name=spec.name,
        column=spec.primary_key[0],
        rule=str(Rule.WAREHOUSE_CONFLICT),
        message=message,
        source=sources[updates.positions],
        timed=updates.timed,
    )
    part.accepted -= n
    part.quarantined += n
    part.by_rule.update(records["_rule"].tolist())
    _note_examples(part, records)
    part.quarantine_added += _add_quarantine(updates.quarantine, records, moment)
    logger.warning("%s: %d rows older than the stored ones quarantined (%s)", spec.name, n, message)


# Quarantined rows shown per rule in the summary: enough to open the file at them without pandas.
EXAMPLES_PER_RULE = 3


def _note_examples(part: TableReport, records: pd.DataFrame) -> None:
    """The first message of each rule, and where its first rows are: file, row (a CSV's line), column and
    the value as the export had it. A later row names its column when it is not the first row's: one rule
    (unparseable, null) fails on several columns, and "lines 3, 8" under "paid_at '202203'" read as paid_at
    when line 3 was an amount."""
    for rule, group in records.groupby("_rule", sort=False):
        part.examples.setdefault(str(rule), str(group["_message"].iloc[0]))
        shown = part.where.setdefault(str(rule), [])
        for record in group.head(max(EXAMPLES_PER_RULE - len(shown), 0)).to_dict("records"):
            source, row, column = str(record["_source"]), int(record["_row"]), record["_column"]
            unit = "line" if source.lower().endswith(".csv") else "row"
            if shown:
                place = f"{unit} {row:,}" if shown[0].startswith(f"{source} ") else f"{source} {unit} {row:,}"
                other = column != part.where_column[str(rule)]
                shown.append(place + (f": {column or 'the line'}" if other else ""))
                continue
            part.where_column[str(rule)] = column
            value = record.get(column) if column else record.get("_text")
            text = "(empty)" if value is None or pd.isna(value) else repr(str(value))
            text = text if len(text) <= 40 else text[:39] + "…"
            shown.append(f"{source} {unit} {row:,}: {column or 'the line'} {text}")


# When a quarantine record was first written: the moment of that ingest (UTC, --now or the clock). A record
# already in quarantine keeps its stamp when a later run finds the same row again.
INGESTED_AT = "_ingested_at"


def _add_quarantine(quarantine: QuarantineFile, records: pd.DataFrame, moment: pd.Timestamp) -> int:
    """Append the records WH/quarantine does not hold yet, stamped with this run's moment; returns how many.
    The same row with the same reasons from an earlier run is not new, whatever its stamp, so re-ingesting an
    export adds nothing and the stamp says when a problem first appeared. ``quarantine`` is the table's file
    for this run, read at its first append only and compared once per append."""
    if records.empty:
        return 0
    return quarantine.append(records.assign(**{INGESTED_AT: f"{moment:%Y-%m-%d %H:%M:%S}"}))


def _stack(frames: list[pd.DataFrame]) -> pd.DataFrame:
    """Rows of several files one under the other (columns by name); one file is used as it is."""
    return frames[0] if len(frames) == 1 else pd.concat(frames, ignore_index=True)


def _lacking(files: list[ReadFile], spec: Table) -> dict[str, np.ndarray]:
    """For each contract column some file lacks, which rows of the stacked files came from such a file."""
    out = {}
    for column in spec.column_names:
        if any(column not in mapped.columns for _, mapped in files):
            out[column] = np.concatenate(
                [np.full(len(mapped), column not in mapped.columns) for _, mapped in files]
            )
    return out


def _upsert(
    stored: pa.Table, accepted: pa.Table, spec: Table, absent: dict[str, np.ndarray] | None = None
) -> tuple[pa.Table, np.ndarray, pa.Table]:
    """Merge accepted rows into the stored table by primary key.

    Returns the new table, per accepted row NEW, UPDATED, UNCHANGED or CONFLICT, and the accepted rows as
    merged (with stored values where ``absent`` marks a column the row's file lacks). Only the key columns
    of the stored table become pandas; rows are compared `COMPARE_ROWS` at a time. A column the export does
    not have (``absent``, per accepted row: an optional one, read as empty) says nothing about a stored row:
    its stored values stay (an export without 户名 or 销户日期 once erased every name and reopened every
    closed account).
    """
    kinds = np.full(accepted.num_rows, NEW, dtype=np.int8)
    if stored.num_rows == 0 or accepted.num_rows == 0:
        return (accepted if stored.num_rows == 0 else stored), kinds, accepted
    key = list(spec.primary_key)
    incoming = _frame(accepted.select(key))
    stored_keys = _frame(stored.select(key))
    pos = _positions(stored_keys, incoming, key, table=spec.name)
    matched = np.flatnonzero(pos >= 0)
    if absent and len(matched):
        accepted = _keep_stored(accepted, stored, pos, absent)
    same = _same_rows(accepted, matched, stored, pos[matched], spec.column_names)
    kinds[matched[same]] = UNCHANGED
    replaced = np.array([], dtype=np.int64)
    # Archive tables hold the latest state of a record: 销户 sets close_date, 改类 changes the usage
    # category, a transformer swap changes an area's kVA, so a changed row replaces the stored one. Events do
    # not change: a stored event arriving with other content and no newer known_at is a conflict a person
    # must look at, so it goes to quarantine rather than silently rewriting history.
    if spec.name in ARCHIVE_TABLES:
        kinds[matched[~same]] = UPDATED
        replaced = pos[matched[~same]]
    else:
        kinds[matched[~same]] = CONFLICT
        if spec.known_at and not spec.versioned:
            # An event stored without its known_at, now exported with one and otherwise the same (a utility
            # that starts exporting 销账时间): the export says when the row was entered, which fills a gap
            # rather than rewriting history. The other way round, an empty one says nothing, and a later one
            # is the same event entered again (补采), known since its first entry: the stored row stays.
            differ = matched[~same]
            rest = [c for c in spec.column_names if c != spec.known_at]
            alike = _same_rows(accepted, differ, stored, pos[differ], rest)
            stored_known = stored.column(spec.known_at).take(pa.array(pos[differ]))
            new_known = accepted.column(spec.known_at).take(pa.array(differ))
            stored_blank = stored_known.is_null().to_numpy(zero_copy_only=False)
            new_blank = new_known.is_null().to_numpy(zero_copy_only=False)
            later = pc.fill_null(pc.greater(new_known, stored_known), False).to_numpy(zero_copy_only=False)
            filled = differ[alike & stored_blank]
            kinds[filled] = UPDATED
            kinds[differ[alike & (new_blank | later)]] = UNCHANGED
            replaced = pos[filled]
    if spec.versioned:
        # A key already stored under another known_at: this row is a further version of that record.
        fresh = np.flatnonzero(kinds == NEW)
        record = list(spec.key)  # the primary key without known_at
        versions = _positions(
            stored_keys[record].drop_duplicates(), incoming.iloc[fresh], record, table=spec.name
        )
        kinds[fresh[versions >= 0]] = UPDATED
    add = (kinds == NEW) | (kinds == UPDATED)
    if not add.any():
        return stored, kinds, accepted
    current = np.ones(stored.num_rows, dtype=bool)
    current[replaced] = False
    still = stored if current.all() else stored.filter(pa.array(current))
    return pa.concat_tables([still, accepted.filter(pa.array(add))]), kinds, accepted


def _keep_stored(
    accepted: pa.Table, stored: pa.Table, pos: np.ndarray, absent: dict[str, np.ndarray]
) -> pa.Table:
    """``accepted`` with the stored values (row ``pos``, -1 for none) where ``absent`` marks the column as one
    the row's file lacks."""
    at = pa.array(np.maximum(pos, 0))
    for name, lacking in absent.items():
        keep = lacking & (pos >= 0)
        if not keep.any():
            continue
        field = accepted.schema.field(name)
        kept = stored.column(name).take(at).cast(field.type)
        column = pc.if_else(pa.array(keep), kept, accepted.column(name))
        accepted = accepted.set_column(accepted.schema.get_field_index(name), field, column)
    return accepted


def _frame(tbl: pa.Table) -> pd.DataFrame:
    """A contract table as pandas, with the dtypes `read_table` gives."""
    return tbl.to_pandas(date_as_object=False)


def _same_rows(
    left: pa.Table, left_rows: np.ndarray, right: pa.Table, right_rows: np.ndarray, columns: list[str]
) -> np.ndarray:
    """Whether row ``left_rows[i]`` of ``left`` equals row ``right_rows[i]`` of ``right`` on ``columns``."""
    same = np.empty(len(left_rows), dtype=bool)
    for start in range(0, len(left_rows), COMPARE_ROWS):
        part = slice(start, start + COMPARE_ROWS)
        same[part] = equal_rows(
            _take_rows(left, left_rows[part]), _take_rows(right, right_rows[part]), columns
        )
    return same


def _take_rows(tbl: pa.Table, rows: np.ndarray) -> pd.DataFrame:
    """Rows of a table as pandas; a run of consecutive rows (a re-ingested export, in stored order) is a
    zero-copy slice rather than a gather."""
    if len(rows) and (np.diff(rows) == 1).all():
        return _frame(tbl.slice(int(rows[0]), len(rows)))
    return _frame(tbl.take(pa.array(rows)))


def _positions(stored: pd.DataFrame, incoming: pd.DataFrame, key: list[str], *, table: str) -> np.ndarray:
    """Position in ``stored`` (unique on ``key``) of each incoming row's key, or -1.

    Matches 64-bit key hashes, then confirms the key values, so a hash collision can never merge two keys.
    A stored table that repeats a key (written by another tool, or edited) is refused: which of its rows an
    incoming row replaces would be a guess.
    """
    stored_hash = row_hashes(stored, key).to_numpy()
    index = pd.Index(stored_hash)
    if not index.is_unique:  # two stored keys share a hash: exact but slower join
        repeated = stored.duplicated(key, keep=False).to_numpy()
        if repeated.any():
            rows = np.flatnonzero(repeated)
            first = stored.iloc[rows[0]][key]
            keys = stored[key]
            same = np.flatnonzero((keys.eq(first) | (keys.isna() & first.isna())).all(axis=1).to_numpy())
            value = ", ".join(f"{name}={to_text(stored[name].iloc[rows[:1]]).iloc[0]}" for name in key)
            raise WarehouseError(
                f"{table}: the stored table repeats its primary key ({', '.join(key)}) in {len(rows):,} "
                f"rows, e.g. {value} in rows {', '.join(f'{r:,}' for r in same[:5])} (counted from 0); "
                f"gridrisk ingest never writes that, so the file was written or edited by something else. "
                f"Ingest the exports into an empty warehouse to rebuild it"
            )
        merged = (
            incoming[key]
            .reset_index(drop=True)
            .merge(stored[key].reset_index(drop=True).reset_index(names="_pos"), on=key, how="left")
        )
        return merged["_pos"].fillna(-1).to_numpy(dtype=np.int64)
    pos = index.get_indexer(row_hashes(incoming, key).to_numpy())
    hit = np.flatnonzero(pos >= 0)
    pos[hit[~equal_rows(incoming.iloc[hit], stored.iloc[pos[hit]], key)]] = -1
    return pos


def _copy_truth(src: Path, dst: Path) -> int:
    """Generated exports carry ground truth for evaluation; keep it next to the warehouse it describes."""
    copied = 0
    for path in sorted(src.rglob("*")):
        if not path.is_file():
            continue
        target = dst / path.relative_to(src)
        if target.exists() and filecmp.cmp(path, target, shallow=False):
            continue
        target.parent.mkdir(parents=True, exist_ok=True)
        shutil.copy2(path, target)
        copied += 1
    return copied


def contract_markdown(mapping: ColumnMap) -> str:
    """The data contract as Markdown, one table per contract table, with the headers the mapping accepts."""
    types = {"string": "string", "double": "float", "date32[day]": "date", "timestamp[us]": "timestamp"}
    lines = []
    for name in LOAD_ORDER:
        spec = TABLES[name]
        stems = sorted(stem for stem, target in mapping.files.items() if target == name)
        lines += [
            f"### `{name}` — {spec.doc}",
            "",
            f"File: `{name}.{{csv,parquet,xlsx}}`"
            + (f", or named {', '.join(stems)}" if stems else "")
            + f". Key: `{', '.join(spec.key)}`"
            + (f" + `{spec.known_at}` (versions)" if spec.versioned else "")
            + (f". Event time: `{spec.event_time}`" if spec.event_time else "")
            + (". Optional table." if spec.optional else "."),
            "",
            "| column | type | required | null | rule | default export headers | meaning |",
            "| --- | --- | --- | --- | --- | --- | --- |",
        ]
        for col in spec.columns:
            headers = [h for h, c in mapping.headers.get(name, {}).items() if c == col.name]
            headers += [h for h, c in mapping.headers.get("common", {}).items() if c == col.name]
            rule = []
            if col.allowed:
                rule.append(" / ".join(col.allowed))
            if col.min is not None or col.max is not None:
                low = "" if col.min is None else f"≥ {col.min:,.10g}"
                high = "" if col.max is None else f"≤ {col.max:,.10g}"
                rule.append(", ".join(x for x in (low, high) if x))
            if col.ceiling is not None:
                rule.append(f"magnitude ≤ {col.ceiling:g}".replace("e+0", "e").replace("e+", "e"))
            if col.past:
                rule.append(f"not after the ingest (+{FUTURE_TOLERANCE.days} day)")
            fk = [f"→ {f.table}.{f.ref_column}" for f in spec.foreign_keys if f.column == col.name]
            cells = [
                f"`{col.name}`",
                types.get(str(col.dtype), str(col.dtype)),
                "yes" if col.required else "no",
                "yes" if col.nullable else "no",
                "; ".join(rule + fk),
                ", ".join(dict.fromkeys(headers)),
                col.doc + (" (PII)" if col.pii else ""),
            ]
            lines.append("| " + " | ".join(cells) + " |")
        orders = [f"{later} ≥ {earlier}" for later, earlier, _ in DATE_ORDER_RULES.get(name, ())]
        if orders:
            lines += ["", "Date order (by day): " + "; ".join(orders) + "."]
        lines.append("")
    return "\n".join(lines)
