"""Turn an export's file name, headers and enumerated values into contract names, from a TOML mapping.

Used by `features/ingest.py` before validation; the default mapping is `default.toml` next to this module.
"""

from __future__ import annotations

import re
import tomllib
import unicodedata
from dataclasses import dataclass
from importlib import resources
from pathlib import Path

import pandas as pd

from features.schema import TABLES
from features.validation import ContractError, to_text

SECTIONS = ("files", "headers", "values")
# A unit after the name, as exports write it: 合同容量(kVA), 电量（千瓦时）, amount [元].
_TRAILING_UNIT = re.compile(r"\s*[(\[][^()\[\]]*[)\]]\s*$")
# Exports date-stamp their file names (电费账单_202403.xlsx, bills-2024-03-01.csv, 电费账单_2024年01月.csv,
# 202401电费账单.xlsx) and number the parts of one too large for a file (bills_part2.csv, bills_p2.csv,
# 电费账单_第2部分.csv, 电费账单_第二部分.csv), before or after the name, in any order.
_DATE_SUFFIX = re.compile(r"[\s_\-.]*\d[\d\s_\-.]*$")
_PART_SUFFIX = re.compile(r"(?:[\s_\-.]*(?:part|第)|[\s_\-.]+p)[\s_\-.]*\d+(?:部分)?(?=[\d\s_\-.]*$)")
_PART = re.compile(
    r"(?<![a-z])(?:part|p(?=\d))[\s_\-.]*\d+|第[\d一二三四五六七八九十百两〇零]+(?:部分|部|批|份|页)?"
)
_DATE = re.compile(r"\d+(?:年|月|日|号)?")
_SEPARATORS = " _-.·~—"


def normalize_header(header: str) -> str:
    text = unicodedata.normalize("NFKC", str(header))
    text = _TRAILING_UNIT.sub("", text.strip())
    return re.sub(r"\s+", "", text).lower()


def bare_stem(path: Path) -> str:
    """A file's normalised stem without its dates and part numbers: what [files] maps (长沙_电费账单)."""
    return _DATE.sub("", _PART.sub("", normalize_header(Path(path).stem))).strip(_SEPARATORS)


@dataclass(frozen=True)
class ColumnMap:
    """file stem -> table; header -> column (common and per table); value -> contract value per column."""

    files: dict[str, str]
    headers: dict[str, dict[str, str]]  # "common" or a table name -> {normalised header: column}
    values: dict[str, dict[str, str]]  # column -> {export value: contract value}
    origin: str = "default"

    @classmethod
    def load(cls, override: Path | None = None) -> ColumnMap:
        """The shipped default mapping, with ``override``'s entries added on top (they win on conflicts)."""
        text = resources.files("features.column_maps").joinpath("default.toml").read_text(encoding="utf-8")
        merged = cls.parse(tomllib.loads(text), "default.toml")
        if override is None:
            return merged
        try:
            extra = tomllib.loads(Path(override).read_text(encoding="utf-8"))
        except (OSError, UnicodeDecodeError, tomllib.TOMLDecodeError) as exc:
            raise ContractError(
                f"column map {override}: unreadable ({exc}); it must be a UTF-8 TOML file"
            ) from exc
        added = cls.parse(extra, str(override))
        headers = {k: dict(v) for k, v in merged.headers.items()}
        for scope, entries in added.headers.items():
            headers.setdefault(scope, {}).update(entries)
        values = {k: dict(v) for k, v in merged.values.items()}
        for column, entries in added.values.items():
            values.setdefault(column, {}).update(entries)
        return cls(
            files={**merged.files, **added.files},
            headers=headers,
            values=values,
            origin=f"default + {override}",
        )

    @classmethod
    def parse(cls, doc: dict, origin: str) -> ColumnMap:
        """Check every entry against the contract: a wrong target fails here, not as mystery quarantine."""
        unknown = sorted(set(doc) - set(SECTIONS))
        if unknown:
            raise ContractError(
                f"column map {origin}: unknown section(s) {unknown}; allowed: {list(SECTIONS)}"
            )
        files = {}
        for stem, target in doc.get("files", {}).items():
            _check_table(origin, f"[files] {stem!r}", target)
            files[normalize_header(stem)] = target
        headers: dict[str, dict[str, str]] = {}
        all_columns = {c for t in TABLES.values() for c in t.column_names}
        for scope, entries in doc.get("headers", {}).items():
            if not isinstance(entries, dict):
                raise ContractError(
                    f"column map {origin}: [headers] must hold tables ([headers.common], [headers.<table>]); "
                    f"found a value for {scope!r}"
                )
            if scope != "common":
                _check_table(origin, f"[headers.{scope}]", scope)
            allowed = all_columns if scope == "common" else set(TABLES[scope].column_names)
            for header, column in entries.items():
                if column == "":  # "缴费方式" = "": the header is read as no contract column (dropped)
                    headers.setdefault(scope, {})[normalize_header(header)] = column
                    continue
                if column not in allowed:
                    where = "any table" if scope == "common" else f"table {scope}"
                    raise ContractError(
                        f"column map {origin}: [headers.{scope}] {header!r} = {column!r}, but {where} has no "
                        f'column {column!r}; use one of {sorted(allowed)}, or "" to read the header as no '
                        "contract column"
                    )
                headers.setdefault(scope, {})[normalize_header(header)] = column
        values: dict[str, dict[str, str]] = {}
        enumerated = {c.name: c.allowed for t in TABLES.values() for c in t.columns if c.allowed}
        for column, entries in doc.get("values", {}).items():
            if column not in enumerated:
                raise ContractError(
                    f"column map {origin}: [values.{column}] names no enumerated column; "
                    f"use one of {sorted(enumerated)}"
                )
            for raw, target in entries.items():
                if target not in enumerated[column]:
                    raise ContractError(
                        f"column map {origin}: [values.{column}] {raw!r} = {target!r} is not one of "
                        f"{list(enumerated[column])}"
                    )
                values.setdefault(column, {})[str(raw).strip()] = target
        return cls(files=files, headers=headers, values=values, origin=origin)

    def table_for(self, path: Path) -> str | None:
        """The contract table a file holds, from its stem: a table name or a mapped name ([files]), with or
        without dates and part numbers around it."""
        stem = normalize_header(Path(path).stem)
        for candidate in (stem, _DATE_SUFFIX.sub("", _PART_SUFFIX.sub("", stem, count=1)), bare_stem(path)):
            if candidate in TABLES:
                return candidate
            if candidate in self.files:
                return self.files[candidate]
        return None

    def table_named_in(self, path: Path) -> tuple[str, str] | None:
        """For a file whose name is no table's: the longest table name or mapped name inside it, and its
        table (长沙_电费账单_202401.csv holds 电费账单: bills?), or None."""
        stem = normalize_header(Path(path).stem)
        names = {**{name: name for name in TABLES}, **self.files}
        inside = [name for name in names if name and name in stem]
        if not inside:
            return None
        name = max(inside, key=len)
        return name, names[name]

    def _ranked(self, headers: list[str], table_name: str) -> dict[str, list[tuple[tuple[int, int], str]]]:
        """Contract column -> the export headers that map to it, most preferred first: the table's own section
        (in the order the map lists it), then the contract's own names, then [headers.common] (in order). A
        header mapped to "" maps to nothing."""
        spec = TABLES[table_name]
        own = self.headers.get(table_name, {})
        common = self.headers.get("common", {})
        own_order = {key: i for i, key in enumerate(own)}
        common_order = {key: i for i, key in enumerate(common)}
        ranked: dict[str, list[tuple[tuple[int, int], str]]] = {}
        for header in headers:
            key = normalize_header(header)
            if key in own:
                column, rank = own[key], (0, own_order[key])
            elif key in spec.column_names:
                column, rank = key, (1, 0)
            elif key in common:
                column, rank = common[key], (2, common_order[key])
            else:
                continue
            if column in spec.column_names:
                ranked.setdefault(column, []).append((rank, header))
        return {column: sorted(found, key=lambda item: item[0]) for column, found in ranked.items()}

    def rename(self, headers: list[str], table_name: str) -> dict[str, str]:
        """Export header -> contract column for the headers this map (or the contract itself) knows. When
        several headers map to one column (缴费方式 and 缴费渠道, 电量 and 结算电量), the preferred one is
        read (`_ranked`) and the others are left as columns the contract does not know."""
        return {found[0][1]: column for column, found in self._ranked(headers, table_name).items()}

    def passed_over(self, headers: list[str], table_name: str) -> list[str]:
        """A note for each column several headers map to: which one is read, and how to read another."""
        notes = []
        for column, found in self._ranked(headers, table_name).items():
            if len(found) > 1:
                chosen, others = found[0][1], [header for _, header in found[1:]]
                notes.append(
                    f"headers {', '.join(h for _, h in found)} all map to {column}: {chosen} is read (first "
                    f"in the column map), {', '.join(others)} not; to read another, drop {chosen} in a "
                    f'--column-map TOML ([headers.{table_name}] "{chosen}" = "")'
                )
        return notes

    def apply(self, frame: pd.DataFrame, table_name: str, source: str) -> pd.DataFrame:
        """Rename known headers to contract columns and translate enumerated values; other columns stay."""
        mapping = self.rename([c for c in frame.columns if c != "_row"], table_name)
        # A header not read that is a contract column's own name (kwh beside the preferred 结算电量, or one
        # dropped with "") would otherwise be read as that column after all.
        contract_names = set(TABLES[table_name].column_names)
        for header in frame.columns:
            if header not in mapping and header in contract_names:
                mapping[header] = f"{header} (not read)"
        out = frame.rename(columns=mapping)
        # Two columns the contract does not know may share a header (two 备注): they are ignored either way,
        # but each needs a name of its own to be listed and kept in quarantine records.
        contract = set(TABLES[table_name].column_names)
        seen: dict[str, int] = {}
        names = []
        for name in out.columns:
            seen[name] = seen.get(name, 0) + 1
            names.append(name if seen[name] == 1 or name in contract else f"{name}.{seen[name] - 1}")
        out.columns = names
        for column in TABLES[table_name].column_names:
            translations = self.values.get(column)
            if translations and column in out.columns:
                text = to_text(out[column])
                out[column] = text.map(translations).fillna(text)
        return out


def _check_table(origin: str, where: str, name: object) -> None:
    if name not in TABLES:
        raise ContractError(f"column map {origin}: {where} names table {name!r}; use one of {sorted(TABLES)}")
