"""Risk lists for collection teams: filter the latest snapshot, rank, cap per station, export JSON/CSV/XLSX.

Work lists are cut per station (供电所) because visits are capacity-limited: `per_station_top` keeps the best
N of each station, and sorting by expected value (probability x amount at stake) puts the yuan first.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import pandas as pd

from serving.access import Principal, blank_is_any, mask_name, mask_phone, named
from serving.directory import CustomerDirectory
from serving.exports import csv_bytes, xlsx_bytes
from serving.model import PackagedModel
from serving.schemas import Lang, RiskListItem, RiskListResponse, SortKey, Task
from serving.settlement import OUTSTANDING, Settlement
from serving.snapshot import Snapshot

LIST_COLUMNS = (
    "rank",
    "usage_category",
    "supply_unit",
    "station",
    "probability",
    "band",
    "percentile",
    "amount_at_stake",
    "expected_value",
)


@dataclass(frozen=True)
class ListQuery:
    supply_unit: str | None = None
    station: str | None = None
    usage_category: str | None = None
    min_probability: float | None = None
    top: int = 100
    per_station_top: int | None = None
    sort: SortKey = SortKey.EXPECTED_VALUE  # callers pass the task's WORK_LIST_ORDER unless one was chosen
    hide_settled: bool = False  # arrears: leave out customers whose payments since cover their balance

    def __post_init__(self) -> None:
        # `?station=` filters nothing for every role, as an empty field of the web form (access.blank_is_any).
        for name in ("supply_unit", "station", "usage_category"):
            object.__setattr__(self, name, blank_is_any(getattr(self, name)))

    def filters(self) -> dict[str, str | bool | float | int | None]:
        return {
            "supply_unit": self.supply_unit,
            "station": self.station,
            "usage_category": self.usage_category,
            "min_probability": self.min_probability,
            "top": self.top,
            "per_station_top": self.per_station_top,
            "sort": self.sort.value,
            "hide_settled": self.hide_settled,
        }


def _isin(snapshot: Snapshot, column: str, values: list[str]) -> np.ndarray:
    codes = [snapshot.code_of(column, v) for v in values]
    return np.isin(snapshot.codes[column], [c for c in codes if c >= 0])


def list_scope(
    snapshot: Snapshot, principal: Principal, station: str | None, supply_unit: str | None
) -> tuple[list[str] | None, list[str] | None]:
    """The stations and supply units a list may show (`Principal.scope`), and Forbidden for a key scoped by
    supply unit that asks for a station the snapshot has only in other units: a station key asking another
    station got a 403 while a unit key got an empty list for the same request."""
    stations, units = principal.scope(station, supply_unit)
    asked = blank_is_any(station)
    if principal.stations or not principal.supply_units or units is None or asked is None:
        return stations, units
    code = snapshot.code_of("station", asked)
    if code >= 0:
        its_units = set(snapshot.codes["supply_unit"][snapshot.codes["station"] == code].tolist())
        if not its_units & {snapshot.code_of("supply_unit", u) for u in units}:
            raise principal.refusal(
                f"covers supply units {named(principal.supply_units)}, and station {asked!r} is not in them"
            )
    return stations, units


def select(
    snapshot: Snapshot,
    query: ListQuery,
    stations: list[str] | None,
    supply_units: list[str] | None,
    settlement: Settlement | None = None,
) -> tuple[np.ndarray, int]:
    """Positions of the list rows in order, and how many rows matched before the caps (all vectorised).
    `hide_settled` leaves out the customers `settlement` marks settled (nobody, without one)."""
    mask = np.ones(snapshot.size, dtype=bool)
    if stations is not None:
        mask &= _isin(snapshot, "station", stations)
    if supply_units is not None:
        mask &= _isin(snapshot, "supply_unit", supply_units)
    if query.usage_category is not None:
        mask &= _isin(snapshot, "usage_category", [query.usage_category])
    probability = snapshot.numbers["probability"]
    if query.min_probability is not None:
        mask &= probability >= query.min_probability
    if query.hide_settled and settlement is not None:
        mask &= ~settlement.settled
    pos = np.flatnonzero(mask)
    matched = len(pos)
    key = snapshot.numbers[query.sort.value][pos]
    # Missing amounts sort last; ties fall back to the population rank so the order is stable across calls.
    key = np.where(np.isnan(key), -np.inf, key)
    pos = pos[np.lexsort((snapshot.numbers["rank"][pos], -key))]
    if query.per_station_top is not None:
        station = pd.Series(snapshot.codes["station"][pos])
        pos = pos[(station.groupby(station.to_numpy()).cumcount() < query.per_station_top).to_numpy()]
    return pos[: query.top], matched


def list_items(
    snapshot: Snapshot,
    package: PackagedModel,
    pos: np.ndarray,
    principal: Principal,
    directory: CustomerDirectory,
    lang: Lang,
    settlement: Settlement | None = None,
) -> list[RiskListItem]:
    """List rows at snapshot positions already cut to the caller's scope (the web page pages with it), with
    what was paid since the snapshot where `settlement` has it."""
    ids = snapshot.column("customer_id", pos)
    names, phones, places = directory.lookup_placed(ids)
    # Unmasked only where the archive places the customer inside the key's scope now, as the customer file
    # decides: a customer moved to another station after scoring stays on the old station's list (the
    # snapshot's) until the next score, but its name and phone went to the old station's collector.
    shown = [principal.sees_pii and principal.covers(*place) for place in places]
    names = [n if show else mask_name(n) for n, show in zip(names, shown, strict=True)]
    phones = [p if show else mask_phone(p) for p, show in zip(phones, shown, strict=True)]
    columns = {name: snapshot.column(name, pos) for name in LIST_COLUMNS}
    reasons = snapshot.reasons(package, pos, lang)
    if OUTSTANDING in snapshot.numbers:  # owed at T, shown even when the payments since cannot be read
        columns["outstanding_yuan"] = snapshot.column(OUTSTANDING, pos)
    if settlement is not None:
        columns["paid_since_yuan"] = settlement.paid[pos].tolist()
        columns["last_paid_on"] = settlement.last_paid[pos].tolist()  # NaT -> None
        columns["settled"] = settlement.settled[pos].tolist()
    return [
        RiskListItem(
            customer_id=ids[r],
            name=names[r],
            phone=phones[r],
            reasons=reasons[r],
            **{name: values[r] for name, values in columns.items()},
        )
        for r in range(len(pos))
    ]


def risk_list(
    task: Task,
    snapshot: Snapshot,
    package: PackagedModel,
    query: ListQuery,
    principal: Principal,
    directory: CustomerDirectory,
    lang: Lang,
    settlement: Settlement | None = None,
) -> RiskListResponse:
    stations, supply_units = list_scope(snapshot, principal, query.station, query.supply_unit)
    pos, matched = select(snapshot, query, stations, supply_units, settlement)
    items = list_items(snapshot, package, pos, principal, directory, lang, settlement)
    return RiskListResponse(
        task=task,
        model=snapshot.model,
        as_of=snapshot.as_of,
        filters=query.filters(),
        matched=matched,
        count=len(items),
        payments_through=settlement.payments_through if settlement is not None else None,
        items=items,
    )


TABLE_COLUMNS = ("rank", "customer_id", "name", "phone", *LIST_COLUMNS[1:])
PAID_COLUMNS = ("outstanding_yuan", "paid_since_yuan", "last_paid_on", "settled")  # lists with a settlement
# A spreadsheet is read by people: fen for yuan, a tenth of a percentile, four places of probability.
# (The JSON list keeps full precision for programs.)
TABLE_DECIMALS = {
    "probability": 4, "percentile": 1, "amount_at_stake": 2, "expected_value": 2, "outstanding_yuan": 2,
    "paid_since_yuan": 2,
}  # fmt: skip


def table_rows(response: RiskListResponse) -> tuple[list[str], list[list]]:
    """Header and rows for the spreadsheet exports: one column per reason sentence, then (arrears) what was
    owed at the as-of date and paid since: columns added later go last, where a reader by position is safe."""
    k = max((len(item.reasons) for item in response.items), default=0)
    marked = any(item.outstanding_yuan is not None or item.settled is not None for item in response.items)
    paid = PAID_COLUMNS if marked else ()
    header = list(TABLE_COLUMNS) + [f"reason_{i}" for i in range(1, k + 1)] + list(paid)
    rows = []
    for item in response.items:
        values = [_cell(getattr(item, c), TABLE_DECIMALS.get(c)) for c in TABLE_COLUMNS]
        reasons = [r.text for r in item.reasons] + [None] * (k - len(item.reasons))
        rows.append(values + reasons + [_cell(getattr(item, c), TABLE_DECIMALS.get(c)) for c in paid])
    return header, rows


def _cell(value, decimals: int | None):
    if isinstance(value, float):
        return None if math.isnan(value) else value if decimals is None else round(value, decimals)
    return value


def to_csv(response: RiskListResponse) -> bytes:
    return csv_bytes(*table_rows(response))


def to_xlsx(response: RiskListResponse) -> bytes:
    return xlsx_bytes(f"{response.task.value} {response.as_of.isoformat()}", *table_rows(response))
