"""Peer-relative features as of T: the customer's consumption change against the median of its industry and of
its 供电所 (station) at the same as-of date — the second, global step after the per-partition families.

Peers are all customers active at T (whatever the task) with a value for the input; the industry group is the
industry code, or the usage category where the archive has none (households); the medians use only
features computed as of T, so they never see the future. A group with fewer than `MIN_PEERS` values has no
median (NaN). Both engines call `peer_table` per group and `add_peer_features` per row block, so the numbers
are identical.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

MIN_PEERS = 5
PEER_INPUTS = ("bills_kwh_yoy_change_pct_3m", "bills_kwh_slope_6m_pct")
INDUSTRY_GROUP = "peer_industry_group"
PEER_GROUPS = {"industry": INDUSTRY_GROUP, "station": "station"}


def industry_group(industry_code: np.ndarray, usage_category: np.ndarray) -> np.ndarray:
    """The industry peer group: the industry code, else the usage category (households have none)."""
    code = pd.Series(industry_code, dtype=object)
    usage = "usage:" + pd.Series(usage_category, dtype=object).fillna("unknown").astype(str)
    return code.where(code.notna(), usage).to_numpy(dtype=object)


def peer_column(group: str, name: str) -> str:
    """Name of the joined median of `name` over the customer's `group` (a helper column, never a feature)."""
    return f"peer_{group}_median__{name}"


def peer_table(frame: pd.DataFrame, group: str) -> pd.DataFrame:
    """Median of each peer input per (as_of, group value); NaN where fewer than MIN_PEERS values exist."""
    key = PEER_GROUPS[group]
    rows = frame[frame[key].notna()]
    grouped = rows.groupby(["as_of", key], sort=True, observed=True)[list(PEER_INPUTS)]
    medians = grouped.median()
    counts = grouped.count()
    medians = medians.where(counts >= MIN_PEERS)
    medians.columns = [peer_column(group, c) for c in medians.columns]
    return medians.reset_index()


def peers_industry_kwh_yoy_change_pct(industry_yoy: np.ndarray) -> np.ndarray:
    """The industry's median kWh change on a year earlier: a downturn index (DOMAIN §2)."""
    return industry_yoy


def peers_station_kwh_yoy_change_pct(station_yoy: np.ndarray) -> np.ndarray:
    return station_yoy


def peers_kwh_yoy_change_vs_industry_pp(own_yoy: np.ndarray, industry_yoy: np.ndarray) -> np.ndarray:
    return own_yoy - industry_yoy


def peers_kwh_yoy_change_vs_station_pp(own_yoy: np.ndarray, station_yoy: np.ndarray) -> np.ndarray:
    return own_yoy - station_yoy


def peers_kwh_slope_6m_vs_industry_pp(own_slope: np.ndarray, industry_slope: np.ndarray) -> np.ndarray:
    return own_slope - industry_slope


FEATURES = [
    peers_industry_kwh_yoy_change_pct,
    peers_station_kwh_yoy_change_pct,
    peers_kwh_yoy_change_vs_industry_pp,
    peers_kwh_yoy_change_vs_station_pp,
    peers_kwh_slope_6m_vs_industry_pp,
]


def helper_columns() -> list[str]:
    return [peer_column(g, c) for g in PEER_GROUPS for c in PEER_INPUTS]


def add_peer_features(frame: pd.DataFrame) -> pd.DataFrame:
    """Turn the joined peer medians into the peer features and drop the helper columns."""
    from features.snapshot import evaluate

    def values(column: str) -> np.ndarray:
        return pd.to_numeric(frame[column], errors="coerce").to_numpy(dtype=np.float64, na_value=np.nan)

    yoy, slope = PEER_INPUTS
    inputs = {
        "own_yoy": values(yoy),
        "own_slope": values(slope),
        "industry_yoy": values(peer_column("industry", yoy)),
        "station_yoy": values(peer_column("station", yoy)),
        "industry_slope": values(peer_column("industry", slope)),
    }
    out = frame.drop(columns=helper_columns())
    for name, column in evaluate(FEATURES, inputs).items():
        out[name] = column
    return out


def join_peers(frame: pd.DataFrame, tables: dict[str, pd.DataFrame]) -> pd.DataFrame:
    """Left-join each group's peer table onto the rows (in-process engine)."""
    out = frame
    for group, table in tables.items():
        key = PEER_GROUPS[group]
        out = out.merge(table, on=["as_of", key], how="left", validate="many_to_one")
    return out
