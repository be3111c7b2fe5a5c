"""Real London smart-meter curves → contract tables, and the documented theft-injection protocol.

`gridrisk import london` reads the Low Carbon London daily files (never changes them) into a warehouse;
the London theft benchmark (`training/london_benchmark.py`) injects Jokar attacks into the same curves first.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq

from features.attacks import apply_attack
from features.schema import (
    InspectionResult,
    PaymentMethod,
    Tariff,
    UsageCategory,
    table,
)
from features.sources import write_table
from features.validation import NULL_TOKENS, quarantine_frame, to_text

logger = logging.getLogger(__name__)

DAILY_FILE = "daily_kwh.parquet"
HOUSEHOLDS_FILE = "households.csv.gz"
DAILY_COLUMNS = (
    "LCLid",
    "day",
    "energy_sum_kwh",
    "energy_count",
    "block",
    "stdorToU",
    "Acorn",
    "Acorn_grouped",
)
HOUSEHOLD_COLUMNS = ("LCLid", "stdorToU", "Acorn", "Acorn_grouped", "file")

# --- the import's documented defaults (README "Real data: theft on London smart-meter curves") ---
HALF_HOURS_PER_DAY = 48
# A day with at least half its half-hours is scaled to a full day (48 / count), as a collection system
# estimates a day it partly missed (补采); with fewer, the day is quarantined and stays missing.
MIN_HALF_HOURS = 24
MAX_HALF_HOURS = 50  # the 25-hour day when the clocks go back; a count above it is readings counted twice
PRICE_YUAN_PER_KWH = (
    0.5880  # DOMAIN.md §1 residential tariff (lowest voltage), one flat price for every household
)
VOLTAGE_KV = 0.23  # UK single-phase 230 V
CONTRACT_CAPACITY_KVA = 23.0  # a 100 A single-phase service fuse, the usual UK home supply
TRANSFORMER_KVA = 200.0  # one synthetic 台区 transformer per ~30 homes
PAYMENT_METHOD = PaymentMethod.BANK_WITHHOLDING  # most UK homes pay by direct debit
HOUSEHOLDS_PER_AREA = 30
BLOCKS_PER_SUPPLY_UNIT = 20  # block numbers 0-19 → SU00, 20-39 → SU01, …
TECH_LOSS_RANGE = (0.03, 0.06)  # 台区 technical loss as a share of the energy its homes really used
TECH_LOSS_MONTHLY_SD = 0.2  # month-to-month relative wobble of the technical loss
ISSUE_DAYS_AFTER_MONTH = 5  # bill issued on the 5th of the next month
DUE_DAYS_AFTER_ISSUE = 20
PAID_DAYS_AFTER_ISSUE = 7  # direct debit collects a week after the bill is issued, always in full
TARIFFS = {"Std": Tariff.SINGLE, "ToU": Tariff.TOU}
TARIFF_NAMES = {name.casefold(): str(t) for name, t in TARIFFS.items()}  # the source's spelling, any case
# Full load all day is the most a home's supply can deliver: a day above it is a meter or export error.
MAX_KWH_PER_DAY = CONTRACT_CAPACITY_KVA * 24
# The trial's days (first and last readings 2011-11-23 and 2014-02-28, with the weather file's margin): a day
# outside it is a broken date (1970-01-01 from a zero), not a reading.
TRIAL_DAYS = (pd.Timestamp("2011-11-01"), pd.Timestamp("2014-03-31"))
TRIAL_TEXT = f"{TRIAL_DAYS[0]:%Y-%m-%d} – {TRIAL_DAYS[1]:%Y-%m-%d}"
LONDON_TZ = "Europe/London"
ISO_OFFSET = r"(?:Z|[+-]\d{2}:?\d{2})$"  # a UTC offset ending ISO text: 2013-01-01T00:00:00Z, …+01:00
BLOCK_PATTERN = r"^\s*(?:block_)?(\d+)\s*$"  # block 7 may be stored as 7 or as its file name, block_7


class LondonError(Exception):
    """The London source folder is missing, incomplete or breaks the file layout the importer expects."""


@dataclass
class LondonData:
    """One imported set of households, held as a households × days matrix so attacks stay vectorised.

    ``metered`` is what the meters report (attacked for thieves after injection); ``true_kwh`` is what the
    homes really used, which only the 台区's supply meter sees. ``truth`` (one row per household) is empty
    until `inject_theft` fills it.
    """

    customers: pd.DataFrame
    areas: pd.DataFrame
    days: pd.DatetimeIndex
    metered: np.ndarray
    true_kwh: np.ndarray
    tech_loss: pd.Series  # per area_id: technical loss rate
    quarantine: pd.DataFrame
    scaled_days: int
    inspections: pd.DataFrame = field(default_factory=lambda: _empty("inspections"))
    truth: pd.DataFrame = field(default_factory=pd.DataFrame)

    @property
    def customer_ids(self) -> np.ndarray:
        return self.customers["customer_id"].to_numpy(dtype=object)


@dataclass(frozen=True)
class ImportSummary:
    households: int
    areas: int
    stations: int
    days: int
    readings: int
    scaled_partial_days: int
    quarantined: dict[str, int]
    quarantined_households: dict[str, int]
    bills: int
    first_day: str
    last_day: str
    thieves: int = 0
    inspections: int = 0

    def as_dict(self) -> dict:
        return {k: getattr(self, k) for k in self.__dataclass_fields__}


# --- reading the source folder ---


def source_households(src: Path) -> list[str]:
    """Household ids present in the daily file (sorted; an empty or null-token LCLid is no household)."""
    ids = _read_daily(_daily_path(src), ["LCLid"]).column("LCLid").unique().to_pylist()
    return sorted(str(i) for i in ids if i is not None and str(i).strip() not in NULL_TOKENS)


def read_source(src: Path, households: Sequence[str] | None = None) -> pd.DataFrame:
    """The daily rows of the source (optionally only some households, read with a pyarrow filter).

    Columns keep the types they are stored with (`day` as a date, a timestamp or text); `import_frames`
    parses them and quarantines what does not parse.
    """
    filters = [("LCLid", "in", list(households))] if households is not None else None
    # Text columns stay as they are stored (dictionary → categorical): decoding 1.8 M strings costs seconds.
    return _read_daily(_daily_path(src), list(DAILY_COLUMNS), filters).to_pandas(date_as_object=False)


def read_households(src: Path) -> pd.DataFrame:
    """The household table as text; without the file, no rows (the daily file carries the same attributes)."""
    path = Path(src) / HOUSEHOLDS_FILE
    if not path.exists():
        logger.warning("%s is absent: tariffs and Acorn groups come from %s alone", path, DAILY_FILE)
        return pd.DataFrame(columns=list(HOUSEHOLD_COLUMNS), dtype=object)
    try:
        frame = pd.read_csv(path, dtype=str)
    except (OSError, EOFError, ValueError) as exc:
        raise LondonError(f"{path} cannot be read as a gzipped CSV ({exc}); restore it or remove it") from exc
    if "LCLid" not in frame.columns:
        raise LondonError(f"{path} lacks column LCLid; expected {list(HOUSEHOLD_COLUMNS)}")
    # Only LCLid is required: an attribute the table lacks is read from the daily file instead.
    return frame.reindex(columns=[*frame.columns, *(c for c in HOUSEHOLD_COLUMNS if c not in frame.columns)])


def source_last_day(src: Path) -> pd.Timestamp:
    """The last day of the trial in this source: a household whose readings end earlier has left."""
    path = _daily_path(src)
    days, _ = _parse_days(_read_daily(path, ["day"]).column("day").to_pandas(date_as_object=False))
    days = days[(days >= TRIAL_DAYS[0]) & (days <= TRIAL_DAYS[1])]
    if days.empty:
        raise LondonError(f"{path}: no row has a day within the trial, {TRIAL_TEXT}")
    return pd.Timestamp(days.max())


def write_source_subset(src: Path, out: Path, households: Sequence[str]) -> Path:
    """Copy some households of a source folder into ``out`` with the same file names and columns.

    Gives a small folder for a quick run, or a disjoint household set for `benchmark london-theft --test`.
    """
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    wanted = list(households)
    tbl = _read_daily(_daily_path(src), None, [("LCLid", "in", wanted)])
    pq.write_table(tbl, out / DAILY_FILE, compression="zstd")
    if (Path(src) / HOUSEHOLDS_FILE).exists():
        hh = read_households(src)
        hh[hh["LCLid"].isin(wanted)].to_csv(out / HOUSEHOLDS_FILE, index=False, compression="gzip")
    return out


def _daily_path(src: Path) -> Path:
    path = Path(src) / DAILY_FILE
    if not path.exists():
        raise LondonError(
            f"{path} is missing; point the importer at a folder laid out like shared/data/london-smart-meters"
        )
    return path


def _read_daily(path: Path, columns: list[str] | None, filters: list | None = None) -> pa.Table:
    """Columns of the daily file (every column with ``columns=None``) once DAILY_COLUMNS are known present."""
    try:
        names = pq.read_schema(path).names
        missing = [c for c in DAILY_COLUMNS if c not in names]
        table = None if missing else pq.read_table(path, columns=columns, filters=filters)
    except (OSError, ValueError, pa.ArrowException) as exc:
        raise LondonError(f"{path} cannot be read as Parquet ({exc}); restore the file") from exc
    if table is None:
        raise LondonError(
            f"{path} lacks columns {missing}; the importer needs {list(DAILY_COLUMNS)} "
            "(the layout of shared/data/london-smart-meters)"
        )
    return table


def _parse_days(values: pd.Series) -> tuple[pd.Series, np.ndarray]:
    """The calendar day of each value (NaT where there is none) and which values are empty.

    A `day` may be stored as a date, a timestamp or YYYY-MM-DD text. A zone-aware timestamp, or ISO text
    with an offset (`Z`, `+01:00`), counts in London wall time (UTC midnights across a clock change are not a
    day apart); other text (is 12/01/2013 in December or January?) gives no day.
    """
    if isinstance(values.dtype, pd.DatetimeTZDtype):
        return _london_wall_time(values).dt.normalize(), values.isna().to_numpy()
    if pd.api.types.is_datetime64_dtype(values.dtype):
        return values.dt.normalize(), values.isna().to_numpy()
    text = to_text(values)
    offset = text.str.strip().str.contains(ISO_OFFSET, na=False).to_numpy()
    days = pd.Series(pd.NaT, index=text.index, dtype="datetime64[ns]")
    days[~offset] = pd.to_datetime(text[~offset], format="ISO8601", errors="coerce")
    if offset.any():  # mixed offsets parse only to UTC
        days[offset] = _london_wall_time(
            pd.to_datetime(text[offset], format="ISO8601", errors="coerce", utc=True)
        )
    return days.dt.normalize(), text.isna().to_numpy()


def _london_wall_time(values: pd.Series) -> pd.Series:
    return values.dt.tz_convert(LONDON_TZ).dt.tz_localize(None)


def _numbers(values: pd.Series, pattern: str | None = None) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """A column stored as numbers or as text: (floats, which are empty, which are text but no number).

    ``pattern`` picks the number out of the text (`block_7` → 7).
    """
    if pd.api.types.is_numeric_dtype(values.dtype) and not pd.api.types.is_bool_dtype(values.dtype):
        numbers = values.to_numpy(dtype=np.float64, na_value=np.nan)
        return numbers, np.isnan(numbers), np.zeros(len(numbers), dtype=bool)
    text = to_text(values)
    empty = text.isna().to_numpy()
    if pattern is not None:
        text = text.str.extract(pattern, expand=False)
    numbers = pd.to_numeric(text, errors="coerce").to_numpy(dtype=np.float64, na_value=np.nan)
    return numbers, empty, np.isnan(numbers) & ~empty


# --- import ---


class _Verdicts:
    """The first rule each source row breaks ('' while it breaks none), with its column and message."""

    def __init__(self, n: int) -> None:
        self.clean = np.ones(n, dtype=bool)
        self.rule = np.full(n, "", dtype=object)
        self.column = np.full(n, "", dtype=object)
        self.message = np.full(n, "", dtype=object)

    def flag(self, mask: np.ndarray, column: str, rule: str, message: str | np.ndarray) -> None:
        new = np.asarray(mask, dtype=bool) & self.clean
        self.clean &= ~new
        self.rule[new], self.column[new] = rule, column
        self.message[new] = message[new] if isinstance(message, np.ndarray) else message

    def quarantine(self, source: pd.DataFrame, file: str, table_name: str) -> pd.DataFrame:
        """The rows that broke a rule, as strings with their rule (the ingest quarantine layout)."""
        bad = ~self.clean
        return quarantine_frame(
            source.loc[bad],
            np.flatnonzero(bad),
            table_name=table_name,
            column=self.column[bad],
            rule=self.rule[bad],
            message=self.message[bad],
            source=file,
        )


def import_frames(
    daily: pd.DataFrame,
    households: pd.DataFrame,
    *,
    seed: int,
    trial_end: pd.Timestamp | None = None,
) -> LondonData:
    """Turn the source's daily rows and household table into `LondonData` (no theft yet).

    Every row becomes a reading or a quarantine record with the first rule it breaks (`_check_rows`); days
    of 24–47 half-hours are scaled to 48. ``trial_end`` (default: the last day in ``daily``) decides who
    left early.
    """
    if daily.empty:
        raise LondonError(
            "the London source has no daily rows for the requested households; nothing to import"
        )
    rng = np.random.default_rng(seed)
    daily = daily.reset_index(drop=True)  # row numbers of the source, kept in the quarantine
    checked = _check_rows(daily, households)
    codes, names, day, placed = checked.codes, checked.names, checked.day, checked.placed
    quarantine = checked.verdict.quarantine(daily[list(DAILY_COLUMNS)], DAILY_FILE, "readings")
    if not placed.any():
        first = quarantine.iloc[0]
        raise LondonError(
            f"no row of {DAILY_FILE} has a household and a day to place it on "
            f"({quarantine['_rule'].value_counts().to_dict()}); row {first['_row']}, column "
            f"{first['_column']}: {first['_message']}"
        )
    usable = checked.verdict.clean
    scaled_days = int((usable & (checked.count < HALF_HOURS_PER_DAY)).sum())

    present = np.zeros(len(names), dtype=bool)
    present[codes[placed]] = True
    kept = np.flatnonzero(present)
    order = kept[np.argsort(names[kept], kind="stable")]  # households in id order, whatever the source order
    rank = np.full(len(names), -1)
    rank[order] = np.arange(len(order))
    row, ids = rank[np.maximum(codes, 0)], names[order]
    first_day, last_day = day[placed].min(), day[placed].max()
    trial_end = pd.Timestamp(last_day if trial_end is None else trial_end)
    days = pd.date_range(first_day, last_day, freq="D")
    col = (day - first_day).dt.days.fillna(-1).to_numpy(dtype=np.int64)
    matrix = np.full((len(ids), len(days)), np.nan)
    matrix[row[usable], col[usable]] = checked.kwh[usable]

    first_col = np.full(len(ids), np.iinfo(np.int64).max)
    last_col = np.full(len(ids), -1)
    np.minimum.at(first_col, row[placed], col[placed])
    np.maximum.at(last_col, row[placed], col[placed])
    homes = checked.homes.iloc[order]
    block = homes["block"].to_numpy(dtype=np.int64)
    open_date = first_day + pd.to_timedelta(first_col, unit="D")
    last = pd.Series(first_day + pd.to_timedelta(last_col, unit="D"))
    close = (last + pd.Timedelta(days=1)).where(last < trial_end)

    customers = pd.DataFrame(
        {
            "customer_id": ids,
            "usage_category": UsageCategory.RESIDENTIAL.value,
            # Acorn group (Affluent / Comfortable / Adversity / ACORN-U) is the household segment; it sits in
            # industry_code so industry-peer features compare a home with homes of its own Acorn group.
            "industry_code": homes["acorn_group"].to_numpy(dtype=object),
            "voltage_kv": VOLTAGE_KV,
            "contract_capacity_kva": CONTRACT_CAPACITY_KVA,
            "tariff": homes["tariff"].to_numpy(dtype=object),
            "payment_method": PAYMENT_METHOD.value,
            "supply_unit": [f"SU{b // BLOCKS_PER_SUPPLY_UNIT:02d}" for b in block],
            "station": [f"ST{b:03d}" for b in block],
            "area_id": "",
            "open_date": pd.to_datetime(open_date),
            "close_date": pd.to_datetime(close.to_numpy()),
        }
    )
    customers["area_id"] = _assign_areas(customers["station"], rng)
    areas = (
        customers.groupby("area_id", sort=True)
        .agg(station=("station", "first"), supply_unit=("supply_unit", "first"))
        .reset_index()
    )
    areas["transformer_kva"] = TRANSFORMER_KVA
    tech_loss = pd.Series(rng.uniform(*TECH_LOSS_RANGE, size=len(areas)), index=areas["area_id"].to_numpy())
    logger.info(
        "imported %d households, %d days, %d readings (%d partial days scaled, %d rows quarantined)",
        len(ids), len(days), int(usable.sum()), scaled_days, len(quarantine),
    )  # fmt: skip
    return LondonData(
        customers=customers,
        areas=areas,
        days=days,
        metered=matrix,
        true_kwh=matrix.copy(),
        tech_loss=tech_loss,
        quarantine=quarantine,
        scaled_days=scaled_days,
    )


@dataclass
class _CheckedRows:
    """The daily rows parsed and checked: arrays are per row, ``homes`` per household of ``names``."""

    verdict: _Verdicts
    codes: np.ndarray  # position of the row's household in ``names``; -1 for none
    names: np.ndarray
    day: pd.Series
    kwh: np.ndarray  # partial days scaled to 48 half-hours
    count: np.ndarray
    homes: pd.DataFrame  # tariff, acorn_group, block
    placed: np.ndarray  # the row puts its household on a day (its reading may still be unusable)


def _check_rows(daily: pd.DataFrame, households: pd.DataFrame) -> _CheckedRows:
    """Each row's first broken rule, in this order: no household or day; a household without a known tariff
    or block (all its rows); a null or impossible energy sum or half-hour count; a repeated (LCLid, day)."""
    verdict = _Verdicts(len(daily))
    codes, uniques = pd.factorize(daily["LCLid"])  # a null LCLid gets code -1
    names = np.asarray([str(u) for u in uniques], dtype=object)
    # A blank id, or a token exports write for null ("NaN", "NULL", "-"), names no household.
    empty = np.flatnonzero([n.strip() in NULL_TOKENS for n in names])
    codes = np.where(np.isin(codes, empty), -1, codes)
    home = np.maximum(codes, 0)  # rows without a household are flagged first: their `home` is never read
    verdict.flag(codes < 0, "LCLid", "null", "LCLid is empty: the row belongs to no household")
    day, no_day = _parse_days(daily["day"])
    verdict.flag(no_day, "day", "null", "day is empty: the row belongs to no day")
    verdict.flag(day.isna().to_numpy(), "day", "unparseable", "day is not a date (YYYY-MM-DD)")
    outside = ((day < TRIAL_DAYS[0]) | (day > TRIAL_DAYS[1])).to_numpy()
    verdict.flag(outside, "day", "out_of_range", f"day is outside the Low Carbon London trial ({TRIAL_TEXT})")
    homes = _home_attributes(daily, households, codes, names, verdict.clean)
    no_tariff = homes["tariff_message"].to_numpy(dtype=object)[home]
    verdict.flag(no_tariff != "", "stdorToU", "not_allowed", no_tariff)
    verdict.flag(
        homes["block"].isna().to_numpy()[home],
        "block",
        "null",
        "no row of the household has a block number (7 or block_7): its station is unknown",
    )
    placed = verdict.clean.copy()

    kwh_read, no_kwh, bad_kwh = _numbers(daily["energy_sum_kwh"])
    count, no_count, bad_count = _numbers(daily["energy_count"])
    kwh = kwh_read * np.where(count < HALF_HOURS_PER_DAY, HALF_HOURS_PER_DAY / np.maximum(count, 1.0), 1.0)
    missing = "the day is missing"
    verdict.flag(no_kwh, "energy_sum_kwh", "null", f"energy_sum_kwh is null: {missing}")
    verdict.flag(bad_kwh, "energy_sum_kwh", "unparseable", f"energy_sum_kwh is not a number: {missing}")
    unknown_share = f"how much of the day the sum covers is unknown, {missing}"
    verdict.flag(no_count, "energy_count", "null", f"energy_count is null: {unknown_share}")
    verdict.flag(bad_count, "energy_count", "unparseable", f"energy_count is not a number: {unknown_share}")
    verdict.flag(
        count < MIN_HALF_HOURS,
        "energy_count",
        "out_of_range",
        f"energy_count < {MIN_HALF_HOURS} half-hours: too little of the day to estimate, {missing}",
    )
    verdict.flag(
        count > MAX_HALF_HOURS,
        "energy_count",
        "out_of_range",
        f"energy_count > {MAX_HALF_HOURS} half-hours, more than the longest day (25 h when the clocks go "
        f"back): readings counted twice? {missing}",
    )
    verdict.flag(
        kwh_read < 0,
        "energy_sum_kwh",
        "out_of_range",
        f"negative kWh — meter reset or reversed register? {missing}",
    )
    verdict.flag(
        kwh > MAX_KWH_PER_DAY,
        "energy_sum_kwh",
        "out_of_range",
        f"above {MAX_KWH_PER_DAY:g} kWh, what a {CONTRACT_CAPACITY_KVA:g} kVA supply delivers in a day (a "
        f"partial day scaled to 48 half-hours): {missing}",
    )
    _flag_repeated_days(verdict, daily, codes, day, kwh_read, count)
    return _CheckedRows(verdict, codes, names, day, kwh, count, homes, placed)


def _assign_areas(station: pd.Series, rng: np.random.Generator) -> np.ndarray:
    """Each station's homes are dealt at random into ⌈n / 30⌉-ish 台区 of about 30 homes."""
    n = len(station)
    order = rng.permutation(n)
    frame = pd.DataFrame({"station": station.to_numpy()[order], "pos": order})
    rank = frame.groupby("station").cumcount().to_numpy()
    size = frame.groupby("station")["station"].transform("size").to_numpy()
    n_areas = np.maximum(1, np.rint(size / HOUSEHOLDS_PER_AREA)).astype(np.int64)
    area = np.empty(n, dtype=object)
    area[frame["pos"].to_numpy()] = [
        f"{s}-A{k}" for s, k in zip(frame["station"], rank % n_areas, strict=True)
    ]
    return area


def _home_attributes(
    daily: pd.DataFrame, households: pd.DataFrame, codes: np.ndarray, names: np.ndarray, rows: np.ndarray
) -> pd.DataFrame:
    """Tariff, Acorn group and block number of each household (positions as ``names``), read from ``rows``.

    The household table is the archive of record; the daily file's first non-null value fills what it lacks,
    and stands in for a household listed twice with different content. A tariff other than Std or ToU (any
    case) gets a message: the household cannot be imported.
    """
    own = (
        daily.loc[rows, ["stdorToU", "Acorn_grouped"]]
        .assign(block=_block_numbers(daily["block"])[rows])
        .groupby(codes[rows])
        .first()
        .reindex(range(len(names)))
        .astype(object)
    )
    table = households.dropna(subset=["LCLid"]).drop_duplicates()
    listed = table[~table["LCLid"].duplicated(keep=False)].set_index("LCLid").reindex(names)
    listed.index = own.index

    def of_record(column: str) -> pd.Series:
        value = listed[column].astype(object)
        return value.where(value.notna(), own[column])

    tariff_text = of_record("stdorToU")
    tariff = _tariffs(tariff_text).tolist()
    read = ["empty" if pd.isna(v) else repr(v) for v in tariff_text]
    group = of_record("Acorn_grouped")
    return pd.DataFrame(
        {
            "tariff": tariff,
            "tariff_message": [
                "" if t else f"stdorToU is {r}, neither Std nor ToU: the household's tariff is unknown"
                for t, r in zip(tariff, read, strict=True)
            ],
            "acorn_group": group.where(group.notna(), None),
            # The daily rows' block, else the household table's file name (block_7).
            "block": pd.to_numeric(own["block"]).fillna(pd.Series(_block_numbers(listed["file"]), own.index)),
        }
    )


def _block_numbers(values: pd.Series) -> np.ndarray:
    """Block numbers stored as 7, 7.0, "7" or "block_7"; NaN for anything else (7.5, -3, block_x)."""
    numbers = _numbers(values, BLOCK_PATTERN)[0]
    whole = (numbers >= 0) & (np.mod(numbers, 1) == 0)
    return np.where(whole, numbers, np.nan)


def _flag_repeated_days(
    verdict: _Verdicts,
    daily: pd.DataFrame,
    codes: np.ndarray,
    day: pd.Series,
    kwh: np.ndarray,
    count: np.ndarray,
) -> None:
    """A household's day read more than once: exact copies keep the first row; different contents are
    ambiguous, so every copy is quarantined and the day stays missing (as `gridrisk ingest` does)."""
    clean = np.flatnonzero(verdict.clean)
    # One integer per (household, day) of the trial: far faster to compare than the pair.
    key = codes[clean].astype(np.int64) * 100_000 + (day.iloc[clean] - TRIAL_DAYS[0]).dt.days.to_numpy()
    again = pd.Series(key).duplicated(keep=False).to_numpy()
    if not again.any():
        return
    at = clean[again]
    content = pd.DataFrame(
        {
            "home": codes[at],
            "day": day.to_numpy()[at],
            "kwh": kwh[at],
            "count": count[at],
            **{
                c: to_text(daily[c].iloc[at]).to_numpy(dtype=object)
                for c in ("block", "stdorToU", "Acorn", "Acorn_grouped")
            },
        }
    )
    variants = content.drop_duplicates()
    ambiguous = variants[variants.duplicated(["home", "day"], keep=False)]
    pair = ["home", "day"]
    conflict = pd.MultiIndex.from_frame(content[pair]).isin(pd.MultiIndex.from_frame(ambiguous[pair]))
    first = content.assign(_pos=at).groupby(list(content.columns), dropna=False)["_pos"].transform("min")
    copy = ~conflict & (first.to_numpy() != at)
    n = len(verdict.rule)
    verdict.flag(
        np.isin(np.arange(n), at[conflict]),
        "LCLid",
        "duplicate_key",
        "(LCLid, day) appears more than once with different content: which is right is unknown, the day is "
        "missing",
    )
    message = np.full(n, "", dtype=object)
    message[at[copy]] = [f"exact copy of row {k}, which was kept" for k in first.to_numpy()[copy]]
    verdict.flag(message != "", "LCLid", "duplicate_row", message)


def _tariffs(values: pd.Series) -> pd.Series:
    """The contract tariff of each source spelling (Std or ToU in any case); None if unknown or null."""
    known = values.astype(object).map(
        lambda v: None if pd.isna(v) else TARIFF_NAMES.get(str(v).strip().casefold())
    )
    return known.astype(object).where(known.notna(), None)


def household_quarantine(households: pd.DataFrame, imported: Sequence[str]) -> pd.DataFrame:
    """Rows of the household table that describe no imported household, or repeat one, with their rule."""
    households = households.reset_index(drop=True)
    verdict = _Verdicts(len(households))
    ids = households["LCLid"]
    verdict.flag(ids.isna().to_numpy(), "LCLid", "null", "LCLid is empty: the row describes no household")
    tariff = households["stdorToU"]
    unknown = tariff.notna() & _tariffs(tariff).isna()
    verdict.flag(
        unknown.to_numpy(),
        "stdorToU",
        "not_allowed",
        "stdorToU is " + tariff.astype(str).map(repr).to_numpy(dtype=object) + ", neither Std nor ToU: the "
        "household's tariff is unknown, so none of its rows is imported",
    )
    verdict.flag(
        ~ids.isin(list(imported)).to_numpy(),
        "LCLid",
        "unknown_reference",
        f"no household of this LCLid was imported: it has no usable row in {DAILY_FILE} "
        "(see quarantine/readings.parquet)",
    )
    distinct = households.drop_duplicates()
    verdict.flag(
        ids.isin(distinct["LCLid"][distinct["LCLid"].duplicated()]).to_numpy(),
        "LCLid",
        "duplicate_key",
        "LCLid appears more than once with different content: the household's tariff and Acorn group come "
        f"from {DAILY_FILE}",
    )
    verdict.flag(households.duplicated().to_numpy(), "LCLid", "duplicate_row", "exact copy of an earlier row")
    return verdict.quarantine(households, HOUSEHOLDS_FILE, "customers")


# --- contract tables from the matrix ---


def readings_table(data: LondonData) -> pd.DataFrame:
    """`readings`: one row per household × observed day, from the metered (possibly attacked) matrix."""
    r, c = np.nonzero(~np.isnan(data.metered))
    return pd.DataFrame(
        {
            "customer_id": data.customer_ids[r],
            "date": data.days[c],
            "kwh": np.maximum(data.metered[r, c], 0.0),
        }
    )


def monthly_kwh(data: LondonData, matrix: np.ndarray) -> tuple[pd.DatetimeIndex, np.ndarray]:
    """Billed kWh per household × month: observed days scaled to the days the account was open that month.

    A month with open days but no observed day has no bill (NaN): there is nothing to bill from.
    """
    days = data.days
    month_start = days.to_period("M").to_timestamp()
    periods = pd.DatetimeIndex(month_start.unique())
    edges = np.flatnonzero(np.r_[True, month_start[1:] != month_start[:-1]])
    observed = ~np.isnan(matrix)
    sums = np.add.reduceat(np.where(observed, matrix, 0.0), edges, axis=1)
    counts = np.add.reduceat(observed.astype(np.float64), edges, axis=1)
    open_d = data.customers["open_date"].to_numpy(dtype="datetime64[D]")[:, None]
    close_raw = data.customers["close_date"].to_numpy(dtype="datetime64[D]")
    close_d = np.where(np.isnat(close_raw), np.datetime64("9999-12-31"), close_raw)[:, None]
    day_arr = days.to_numpy(dtype="datetime64[D]")[None, :]
    is_open = (day_arr >= open_d) & (day_arr < close_d)
    open_days = np.add.reduceat(is_open.astype(np.float64), edges, axis=1)
    with np.errstate(invalid="ignore", divide="ignore"):
        kwh = np.where(counts > 0, np.maximum(sums, 0.0) * open_days / counts, np.nan)
    return periods, kwh


def bills_table(data: LondonData) -> pd.DataFrame:
    """`bills` summed from the metered readings at one flat price; issue on the 5th, due 20 days later."""
    periods, kwh = monthly_kwh(data, data.metered)
    r, c = np.nonzero(~np.isnan(kwh))
    period = periods[c]
    issue = period + pd.offsets.MonthBegin(1) + pd.Timedelta(days=ISSUE_DAYS_AFTER_MONTH - 1)
    amount = np.round(kwh[r, c] * PRICE_YUAN_PER_KWH, 2)
    return pd.DataFrame(
        {
            "customer_id": data.customer_ids[r],
            "period": period,
            "kwh": np.round(kwh[r, c], 3),
            "energy_charge": amount,
            "basic_charge": 0.0,
            "amount_due": amount,
            "issue_date": issue,
            "due_date": issue + pd.Timedelta(days=DUE_DAYS_AFTER_ISSUE),
            "known_at": issue + pd.Timedelta(hours=8),
        }
    )


def payments_table(bills: pd.DataFrame) -> pd.DataFrame:
    """`payments`: the documented default, every bill paid in full by direct debit a week after issue."""
    return pd.DataFrame(
        {
            "payment_id": bills["customer_id"] + "-" + bills["period"].dt.strftime("%Y%m"),
            "customer_id": bills["customer_id"],
            "period": bills["period"],
            "paid_at": bills["issue_date"] + pd.Timedelta(days=PAID_DAYS_AFTER_ISSUE, hours=10),
            "amount": bills["amount_due"],
            "late_fee": 0.0,
            "channel": PAYMENT_METHOD.value,
        }
    )


def area_supply_table(data: LondonData, seed: int) -> pd.DataFrame:
    """`area_supply`: what each 台区 really delivered per month — its homes' TRUE use plus technical loss.

    Monthly rows only: the contract keys area_supply by (area_id, date), so daily and monthly rows cannot
    share a first-of-month date. Computed from the households in ``data`` only, so a split warehouse's line
    loss sees only its own homes. Theft lowers the billed side but not this one: stolen energy becomes line
    loss.
    """
    rng = np.random.default_rng([seed, 7])
    area_ids, area_row = np.unique(data.customers["area_id"].to_numpy(dtype=str), return_inverse=True)
    rate = data.tech_loss.reindex(area_ids).to_numpy()
    periods, kwh = monthly_kwh(data, data.true_kwh)
    month = np.zeros((len(area_ids), len(periods)))
    np.add.at(month, area_row, np.nan_to_num(kwh))
    has_month = np.zeros_like(month, dtype=bool)
    np.logical_or.at(has_month, area_row, ~np.isnan(kwh))
    wobble = np.clip(1.0 + TECH_LOSS_MONTHLY_SD * rng.standard_normal(month.shape), 0.0, None)
    supplied = month * (1.0 + rate[:, None] * wobble)
    a, m = np.nonzero(has_month)
    return pd.DataFrame(
        {
            "area_id": area_ids[a],
            "date": periods[m],
            "granularity": "month",
            "supplied_kwh": np.round(supplied[a, m], 3),
        }
    )


def contract_tables(data: LondonData, seed: int) -> dict[str, pd.DataFrame]:
    """Every contract table of the warehouse, derived from ``data`` (bills follow the metered readings)."""
    bills = bills_table(data)
    return {
        "areas": data.areas,
        "customers": data.customers,
        "bills": bills,
        "payments": payments_table(bills),
        "readings": readings_table(data),
        "suspensions": _empty("suspensions"),
        "inspections": data.inspections,
        "area_supply": area_supply_table(data, seed),
    }


def write_warehouse(data: LondonData, out: Path, seed: int) -> dict[str, int]:
    """Write the contract tables, the quarantine and (after injection) `truth/london_theft.parquet`."""
    out = Path(out)
    rows = {}
    for name, frame in contract_tables(data, seed).items():
        write_table(out, name, frame)
        rows[name] = len(frame)
    (out / "quarantine").mkdir(parents=True, exist_ok=True)
    data.quarantine.to_parquet(out / "quarantine" / "readings.parquet", index=False)
    if len(data.truth):
        (out / "truth").mkdir(parents=True, exist_ok=True)
        data.truth.to_parquet(out / "truth" / "london_theft.parquet", index=False)
    return rows


def _empty(name: str) -> pd.DataFrame:
    return table(name).arrow_schema().empty_table().to_pandas(date_as_object=False)


def import_london(
    src: Path,
    out: Path,
    *,
    seed: int = 0,
    households: Sequence[str] | None = None,
) -> ImportSummary:
    """`gridrisk import london`: the source's households → a warehouse in ``out`` (source untouched)."""
    src, out = Path(src), Path(out)
    if out.resolve() == src.resolve():
        raise LondonError(
            f"--out {out} is the source folder; write the warehouse elsewhere (the real data stays untouched)"
        )
    table = read_households(src)
    data = import_frames(read_source(src, households), table, seed=seed, trial_end=source_last_day(src))
    rows = write_warehouse(data, out, seed)
    # The household table's rows are input too: each describes an imported household or is quarantined.
    listed = table if households is None else table[table["LCLid"].isin(list(households))]
    unused = household_quarantine(listed, data.customers["customer_id"].tolist())
    unused.to_parquet(out / "quarantine" / "customers.parquet", index=False)
    summary = summarise(data, rows, unused)
    (out / "import_report.json").write_text(json.dumps(summary.as_dict(), indent=1))
    return summary


def summarise(data: LondonData, rows: dict[str, int], unused: pd.DataFrame | None = None) -> ImportSummary:
    """The import's counts; ``unused``: `household_quarantine`, household-table rows not imported."""
    return ImportSummary(
        households=len(data.customers),
        areas=len(data.areas),
        stations=int(data.customers["station"].nunique()),
        days=len(data.days),
        readings=rows["readings"],
        scaled_partial_days=data.scaled_days,
        quarantined=_by_rule(data.quarantine),
        quarantined_households={} if unused is None else _by_rule(unused),
        bills=rows["bills"],
        first_day=str(data.days[0].date()),
        last_day=str(data.days[-1].date()),
        thieves=int(data.truth["is_thief"].sum()) if len(data.truth) else 0,
        inspections=rows["inspections"],
    )


def _by_rule(quarantine: pd.DataFrame) -> dict[str, int]:
    return {str(k): int(v) for k, v in quarantine["_rule"].value_counts().sort_index().items()}


# --- the injection protocol (experiments/reports/london_theft.md) ---


@dataclass(frozen=True)
class InjectionProtocol:
    """The fixed theft-injection protocol of the London benchmark; each number is documented in the report."""

    thief_share: float = 0.10  # of households with at least min_history_days observed days
    min_history_days: int = 365
    attack_kinds: tuple[str, ...] = ("h1", "h2", "h3", "h4", "h5")  # equal shares
    factor_range: tuple[float, float] = (0.1, 0.8)  # α (h1) and γ (h3, h4), Jokar et al.
    min_zero_window_days: int = 30  # h2
    # A thief is inspected 180–210 days after the onset, so under the theft label (an inspection finding theft
    # in (T, T+180d]) a thief's monthly as-of dates are positive from about its onset until it is caught.
    inspection_delay_days: tuple[int, int] = (180, 210)
    random_inspection_share: float = (
        0.20  # of all households, at a uniform day in the first half of their history
    )


def inject_theft(data: LondonData, seed: int, protocol: InjectionProtocol | None = None) -> LondonData:
    """Inject theft into ``data`` by the protocol: attacked metered readings, inspections and per-home truth.

    The true consumption is kept (the 台区 supply meter still sees it); bills derived afterwards follow the
    attacked readings.
    """
    p = protocol or InjectionProtocol()
    rng = np.random.default_rng([seed, 1])
    n, n_days = data.metered.shape
    observed = ~np.isnan(data.true_kwh)
    n_observed = observed.sum(axis=1)
    # A home without a usable day (all its readings quarantined) spans its open date alone: a random
    # inspection of it falls there, not on the trial's first day, before the account existed.
    opened = (data.customers["open_date"] - data.days[0]).dt.days.to_numpy()
    seen = n_observed > 0
    first = np.where(seen, np.argmax(observed, axis=1), opened)
    last = np.where(seen, n_days - 1 - np.argmax(observed[:, ::-1], axis=1), opened)
    eligible = np.flatnonzero(n_observed >= p.min_history_days)
    n_thieves = round(p.thief_share * len(eligible))
    thieves = np.sort(rng.choice(eligible, size=n_thieves, replace=False))
    kinds = np.empty(n, dtype=object)
    # Equal shares: deal the kinds in turn over the thieves in random order.
    kinds[rng.permutation(thieves)] = [p.attack_kinds[i % len(p.attack_kinds)] for i in range(n_thieves)]

    length = last - first + 1
    half = length // 2
    onset = np.full(n, -1, dtype=np.int64)
    onset[thieves] = (
        first[thieves]
        + half[thieves]
        + np.floor(rng.random(n_thieves) * (length[thieves] - half[thieves])).astype(np.int64)
    )

    metered = data.true_kwh.copy()
    factor = np.full(n, np.nan)
    zero_days = np.zeros(n, dtype=np.int64)
    low, high = p.factor_range
    for kind in p.attack_kinds:
        rows = np.flatnonzero(kinds == kind)
        if len(rows) == 0:
            continue
        x = data.true_kwh[rows]
        params: dict = {"onset": onset[rows], "low": low, "high": high}
        if kind == "h1":
            params["alpha"] = factor[rows] = rng.uniform(low, high, size=len(rows))
        elif kind == "h2":
            # The zero window starts at the onset (the first tampered day) and lasts ≥ 30 days, or to the end.
            span = n_days - onset[rows]
            w_len = np.minimum(span, p.min_zero_window_days) + np.floor(
                rng.random(len(rows)) * (span - np.minimum(span, p.min_zero_window_days) + 1)
            ).astype(np.int64)
            params["window"] = (onset[rows], onset[rows] + w_len)
            zero_days[rows] = w_len
        metered[rows] = apply_attack(kind, x, rng, **params)

    delay = rng.integers(p.inspection_delay_days[0], p.inspection_delay_days[1] + 1, size=n)
    inspected_day = data.days[0] + pd.to_timedelta(np.where(onset >= 0, onset + delay, 0), unit="D")
    stolen = _stolen_kwh(data.true_kwh, metered, onset, onset + delay)

    theft = pd.DataFrame(
        {
            "customer_id": data.customer_ids[thieves],
            "inspected_at": inspected_day[thieves] + pd.Timedelta(hours=10),
            "result": InspectionResult.THEFT.value,
            "recovered_kwh": np.round(stolen[thieves], 3),
        }
    )
    # Back-pay plus three times as a penalty (违约使用电费), DOMAIN.md §3.
    theft["recovered_amount"] = np.round(theft["recovered_kwh"] * PRICE_YUAN_PER_KWH * 4.0, 2)

    n_random = round(p.random_inspection_share * n)
    picked = np.sort(rng.choice(n, size=n_random, replace=False))
    # Random inspections fall in the first half of a home's history, before any onset (always in the second
    # half), so they are blind to theft and always find nothing — thieves and honest homes are picked alike.
    r_day = first[picked] + np.floor(rng.random(n_random) * np.maximum(half[picked], 1)).astype(np.int64)
    random_rows = pd.DataFrame(
        {
            "customer_id": data.customer_ids[picked],
            "inspected_at": data.days[r_day] + pd.Timedelta(hours=10),
            "result": InspectionResult.NORMAL.value,
            "recovered_kwh": 0.0,
            "recovered_amount": 0.0,
        }
    )
    inspections = pd.concat([theft, random_rows], ignore_index=True).sort_values(
        ["inspected_at", "customer_id"], kind="stable"
    )
    inspections.insert(0, "inspection_id", [f"INS{seed:04d}-{i:06d}" for i in range(len(inspections))])

    is_thief = np.zeros(n, dtype=bool)
    is_thief[thieves] = True
    truth = pd.DataFrame(
        {
            "customer_id": data.customer_ids,
            "is_eligible": n_observed >= p.min_history_days,
            "is_thief": is_thief,
            "attack": pd.array(np.where(is_thief, kinds, None), dtype="string"),
            "onset_date": pd.DatetimeIndex(np.where(is_thief, data.days[np.maximum(onset, 0)], pd.NaT)),
            "inspected_at": pd.DatetimeIndex(np.where(is_thief, inspected_day, pd.NaT)),
            "factor": factor,
            "zero_window_days": np.where(kinds == "h2", zero_days, 0),
            "stolen_kwh_to_inspection": np.where(is_thief, stolen, 0.0),
        }
    )
    logger.info("injected %d thieves among %d eligible of %d households", n_thieves, len(eligible), n)
    return replace(data, metered=metered, inspections=inspections.reset_index(drop=True), truth=truth)


def _stolen_kwh(true_kwh: np.ndarray, metered: np.ndarray, start: np.ndarray, stop: np.ndarray) -> np.ndarray:
    """Energy used but not metered in [start, stop) per home (≥ 0: h5 can move energy without stealing)."""
    t = np.arange(true_kwh.shape[1])[None, :]
    inside = (t >= start[:, None]) & (t < stop[:, None]) & (start[:, None] >= 0)
    diff = np.where(inside, np.nan_to_num(true_kwh) - np.nan_to_num(metered), 0.0)
    return np.maximum(diff.sum(axis=1), 0.0)
