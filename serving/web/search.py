"""The risk list's search box (户号 / 户名): a whole customer id the key may open goes to the customer page;
any other text keeps the rows of the filtered list whose id, or name where the page shows it, holds the text.

Names are searched only for keys that see them (a collector, where the archive places the customer inside
its scope): letting a masked role match names, even whole ones, would let it learn who a masked row is.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc

from serving.access import Principal
from serving.directory import CustomerDirectory
from serving.snapshot import Snapshot


def openable(text: str, snapshot: Snapshot, directory: CustomerDirectory, principal: Principal) -> bool:
    """Whether `text` is a customer id whose file the key may open: placed inside its scope by the archive,
    or, for a customer missing from the archive, by this task's snapshot (the customer file's rule). Outside
    the scope it is no match, as on the list, so the search tells a collector nothing about other stations."""
    found = directory.index.get_indexer([text]) if len(directory.index) else np.array([-1])
    if found[0] >= 0:
        return principal.covers(directory.stations[found[0]], directory.supply_units[found[0]])
    pos = snapshot.positions([text], strict=False)
    if pos[0] < 0:
        return False
    return principal.covers(snapshot.column("station", pos)[0], snapshot.column("supply_unit", pos)[0])


def _contains(values: np.ndarray, at: np.ndarray, text: str) -> np.ndarray:
    """Whether each of `values[at]` holds `text`, ignoring case (nulls never do); in Arrow, taken in the
    array's own order: strings gathered in list order (by probability) took 0.37 s for a million, in order
    0.05 s."""
    inside = np.zeros(len(values), dtype=bool)
    inside[at] = True
    ordered = np.flatnonzero(inside)
    found = pc.match_substring(pa.array(values[ordered], type=pa.string()), text, ignore_case=True)
    hits = np.zeros(len(values), dtype=bool)
    hits[ordered] = pc.fill_null(found, False).to_numpy(zero_copy_only=False)
    return hits[at]


def _factorize(values: np.ndarray) -> tuple[np.ndarray, list[str | None]]:
    codes, levels = pd.factorize(values, use_na_sentinel=False)
    return codes, [None if pd.isna(level) else level for level in levels]  # factorize turns None into NaN


def _covered(principal: Principal, stations: np.ndarray, units: np.ndarray) -> np.ndarray:
    """`Principal.covers` of each (station, supply unit), asked once per distinct pair."""
    station_codes, station_names = _factorize(stations)
    unit_codes, unit_names = _factorize(units)
    n = max(len(unit_names), 1)
    pairs, inverse = np.unique(station_codes * n + unit_codes, return_inverse=True)
    allowed = [principal.covers(station_names[p // n], unit_names[p % n]) for p in pairs]
    return np.asarray(allowed, dtype=bool)[inverse]


def matching(
    text: str, snapshot: Snapshot, pos: np.ndarray, directory: CustomerDirectory, principal: Principal
) -> np.ndarray:
    """For each list row at `pos`, whether its id, or its name where the page shows it, holds `text`."""
    hits = _contains(snapshot.customer_id, pos, text)
    if principal.sees_pii and len(directory.index) and len(pos):
        at = directory.index.get_indexer(snapshot.customer_id[pos])
        known = at >= 0
        rows = at[known]
        shown = _covered(principal, directory.stations[rows], directory.supply_units[rows])
        named = np.zeros(len(pos), dtype=bool)
        named[known] = shown & _contains(directory.names, rows, text)
        hits |= named
    return hits
