"""Judge scores on the test window: ranking, calibration and the business metrics collection teams live by.

Work lists are drawn per as-of date, so top-k metrics select the top k within each as-of date and pool the
hits; per-station capacity metrics select each station's top `capacity` customers of each as-of date.
Plain functions of arrays and frames; MLflow logging happens in `training/experiment.py`.
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass

import numpy as np
import pandas as pd

EPS = 1e-15


@dataclass(frozen=True)
class Scored:
    """One scorer's output on the test rows, aligned with the evaluation frame."""

    name: str
    score: np.ndarray  # ranking score (higher = riskier)
    probability: np.ndarray | None  # a calibrated probability if the scorer produces one
    list_score: np.ndarray | None = None  # order of the default work list when it differs (expected value)


# -- ranking -------------------------------------------------------------------------------------------------
def roc_auc(y: np.ndarray, s: np.ndarray) -> float:
    """Mann-Whitney ROC-AUC with average ranks for ties; NaN when one class is absent."""
    y = np.asarray(y).astype(bool)
    n_pos = int(y.sum())
    n_neg = len(y) - n_pos
    if n_pos == 0 or n_neg == 0:
        return float("nan")
    ranks = pd.Series(np.asarray(s, dtype=np.float64)).rank(method="average").to_numpy()
    return float((ranks[y].sum() - n_pos * (n_pos + 1) / 2) / (n_pos * n_neg))


def roc_auc_standard_error(auc: float, n_pos: int, n_neg: int) -> float:
    """Hanley & McNeil (1982) standard error of a ROC-AUC: how far apart two scorers' AUCs on the same few
    positives must be before the difference means anything. Slightly conservative (it assumes exponential
    score distributions). NaN when one class is absent."""
    if n_pos == 0 or n_neg == 0 or math.isnan(auc):
        return float("nan")
    q1, q2 = auc / (2 - auc), 2 * auc**2 / (1 + auc)
    var = (auc * (1 - auc) + (n_pos - 1) * (q1 - auc**2) + (n_neg - 1) * (q2 - auc**2)) / (n_pos * n_neg)
    return math.sqrt(max(var, 0.0))


def pr_auc(y: np.ndarray, s: np.ndarray) -> float:
    """Average precision (area under the precision-recall curve, step-wise)."""
    from sklearn.metrics import average_precision_score

    y = np.asarray(y).astype(int)
    if y.sum() == 0:
        return float("nan")
    return float(average_precision_score(y, s))


def ks_statistic(y: np.ndarray, s: np.ndarray) -> float:
    """Kolmogorov-Smirnov: the largest gap between the score CDFs of positives and negatives."""
    from sklearn.metrics import roc_curve

    y = np.asarray(y).astype(int)
    if y.sum() == 0 or y.sum() == len(y):
        return float("nan")
    fpr, tpr, _ = roc_curve(y, s)
    return float(np.max(tpr - fpr))


# -- calibration ---------------------------------------------------------------------------------------------
def brier(y: np.ndarray, p: np.ndarray) -> float:
    return float(np.mean((np.asarray(p, dtype=np.float64) - np.asarray(y, dtype=np.float64)) ** 2))


def log_loss(y: np.ndarray, p: np.ndarray) -> float:
    p = np.clip(np.asarray(p, dtype=np.float64), EPS, 1 - EPS)
    y = np.asarray(y, dtype=np.float64)
    return float(-np.mean(y * np.log(p) + (1 - y) * np.log(1 - p)))


def calibration_table(y: np.ndarray, p: np.ndarray, bins: int = 10) -> pd.DataFrame:
    """Equal-width probability bins: rows, mean predicted and observed rate per non-empty bin."""
    p = np.asarray(p, dtype=np.float64)
    y = np.asarray(y, dtype=np.float64)
    idx = np.minimum((p * bins).astype(int), bins - 1)
    frame = pd.DataFrame({"bin": idx, "p": p, "y": y})
    table = frame.groupby("bin").agg(rows=("y", "size"), predicted=("p", "mean"), observed=("y", "mean"))
    return table.reset_index()


def expected_calibration_error(y: np.ndarray, p: np.ndarray, bins: int = 10) -> float:
    """ECE over equal-width bins, weighted by rows: sum |observed - predicted| x share of rows."""
    table = calibration_table(y, p, bins)
    if table.empty:
        return float("nan")
    weights = table["rows"] / table["rows"].sum()
    return float((weights * (table["observed"] - table["predicted"]).abs()).sum())


# -- work lists ----------------------------------------------------------------------------------------------
def top_k_share(
    score: np.ndarray, groups: np.ndarray, fraction: float | None = None, k: int | None = None
) -> np.ndarray:
    """How much of each row a list would select: the top `fraction` (at least one row) or top `k` of each
    group. Rows above the cut count 1, below it 0, and rows tied at the cut share the places left (3 tied
    rows for 1 place count 1/3 each): the expected list when ties are picked at random. Breaking ties by row
    order made a rule with many tied scores (it "never pretends to rank ties") as good or as bad as the
    frame's order happened to be.
    """
    score = np.asarray(score, dtype=np.float64)
    frame = pd.DataFrame({"g": groups, "s": -score})
    order = frame.sort_values(["g", "s"], kind="mergesort").index.to_numpy()
    g_sorted = frame["g"].to_numpy()[order]
    s_sorted = np.nan_to_num(frame["s"].to_numpy()[order], nan=np.inf)  # unscored rows: one tie, last
    position = pd.Series(np.ones(len(order))).groupby(g_sorted).cumsum().to_numpy()
    if k is not None:
        limit = np.full(len(order), k, dtype=np.float64)
    else:
        sizes = pd.Series(g_sorted).map(pd.Series(g_sorted).value_counts()).to_numpy()
        limit = np.maximum(1, np.round(sizes * float(fraction)))
    new_block = np.ones(len(order), dtype=bool)
    new_block[1:] = (g_sorted[1:] != g_sorted[:-1]) | (s_sorted[1:] != s_sorted[:-1])
    block = np.cumsum(new_block)
    first = pd.Series(position).groupby(block).transform("min").to_numpy()
    last = pd.Series(position).groupby(block).transform("max").to_numpy()
    places = np.clip(limit - first + 1, 0, None)
    share = np.zeros(len(score))
    share[order] = np.minimum(places / (last - first + 1), 1.0)
    return share


def list_metrics(y: np.ndarray, amount: np.ndarray, share: np.ndarray, suffix: str) -> dict[str, float]:
    """Precision, recall, lift and amount-weighted recall (yuan at stake of positives captured) of a list
    that selects `share` of each row (`top_k_share`)."""
    selected = float(share.sum())
    hits = float(share[y].sum())
    positives = int(y.sum())
    amount_pos = float(np.nansum(np.where(y, amount, 0.0)))
    amount_hit = float(np.nansum(np.where(y, share * amount, 0.0)))
    base_rate = positives / len(y) if len(y) else float("nan")
    precision = hits / selected if selected else float("nan")
    return {
        f"precision_at_{suffix}": precision,
        f"recall_at_{suffix}": hits / positives if positives else float("nan"),
        f"lift_at_{suffix}": precision / base_rate if base_rate else float("nan"),
        f"amount_recall_at_{suffix}": amount_hit / amount_pos if amount_pos > 0 else float("nan"),
    }


def lift_by_decile(y: np.ndarray, score: np.ndarray, as_of: np.ndarray) -> pd.DataFrame:
    """Deciles of score within each as-of date (1 = riskiest), pooled: rows, positives, rate, lift, gain."""
    score = np.asarray(score, dtype=np.float64)
    frame = pd.DataFrame({"as_of": as_of, "s": score, "y": np.asarray(y, dtype=np.float64)})
    pct = frame.groupby("as_of")["s"].rank(method="first", ascending=False, pct=True)
    frame["decile"] = np.minimum(np.ceil(pct * 10), 10).astype(int)
    table = frame.groupby("decile").agg(rows=("y", "size"), positives=("y", "sum"))
    table["rate"] = table["positives"] / table["rows"]
    base = frame["y"].mean()
    table["lift"] = table["rate"] / base if base > 0 else np.nan
    total = table["positives"].sum()
    table["cumulative_gain"] = table["positives"].cumsum() / total if total > 0 else np.nan
    return table.reset_index()


# -- everything for one scorer -------------------------------------------------------------------------------
def score_metrics(
    frame: pd.DataFrame,
    scored: Scored,
    *,
    station_capacity: int,
    top_fractions: tuple[float, ...] = (0.01, 0.05),
) -> dict[str, float]:
    """All test metrics of one scorer on a frame with label, as_of, station and amount_at_stake."""
    y = frame["label"].to_numpy().astype(bool)
    as_of = frame["as_of"].to_numpy()
    amount = pd.to_numeric(frame["amount_at_stake"], errors="coerce").to_numpy(
        dtype=np.float64, na_value=np.nan
    )
    s = scored.score
    out: dict[str, float] = {
        "rows": float(len(y)),
        "positives": float(y.sum()),
        "label_rate": float(y.mean()) if len(y) else float("nan"),
        "roc_auc": roc_auc(y, s),
        "pr_auc": pr_auc(y, s),
        "ks": ks_statistic(y, s),
    }
    out["roc_auc_se"] = roc_auc_standard_error(out["roc_auc"], int(y.sum()), int((~y).sum()))
    if scored.probability is not None:
        p = scored.probability
        out.update(
            brier=brier(y, p),
            log_loss=log_loss(y, p),
            ece=expected_calibration_error(y, p),
            mean_probability=float(np.mean(p)),
        )
    list_score = scored.list_score if scored.list_score is not None else s
    for fraction in top_fractions:
        suffix = f"{fraction * 100:g}pct".replace(".", "_")
        out.update(list_metrics(y, amount, top_k_share(list_score, as_of, fraction=fraction), suffix))
    station_groups = pd.Series(as_of).astype(str).to_numpy() + "|" + frame["station"].astype(str).to_numpy()
    capacity = top_k_share(list_score, station_groups, k=station_capacity)
    out.update(list_metrics(y, amount, capacity, "station_capacity"))
    deciles = lift_by_decile(y, list_score, as_of)
    # The riskiest decile present (with under 10 rows per as-of date, decile 1 can be empty).
    out["lift_top_decile"] = float(deciles["lift"].iloc[0]) if len(deciles) else float("nan")
    return out


def segment_metrics(
    frame: pd.DataFrame,
    scored: Scored,
    segment_columns: tuple[str, ...],
    *,
    primary_metric: str,
    station_capacity: int,
    min_rows: int,
) -> dict[str, float]:
    """ROC-AUC, PR-AUC, label rate and the primary metric per value of each segment column.

    Keys look like `roc_auc_usage_category_residential`; segments with fewer than `min_rows` rows or a
    single class are skipped rather than reported as noise.
    """
    out: dict[str, float] = {}
    for column in segment_columns:
        if column not in frame.columns:
            continue
        values = frame[column].astype(str).to_numpy()
        for value in sorted(set(values)):
            idx = np.flatnonzero(values == value)
            y = frame["label"].to_numpy()[idx]
            if len(idx) < min_rows or y.min() == y.max():
                continue
            part = Scored(
                scored.name,
                scored.score[idx],
                None if scored.probability is None else scored.probability[idx],
                None if scored.list_score is None else scored.list_score[idx],
            )
            metrics = score_metrics(
                frame.iloc[idx], part, station_capacity=station_capacity, top_fractions=(0.05,)
            )
            key = metric_key(f"{column}_{value}")
            for name in ("roc_auc", "pr_auc", "label_rate", "rows", primary_metric):
                if name in metrics and np.isfinite(metrics[name]):
                    out[f"{name}_{key}"] = metrics[name]
    return out


def metric_key(text: str) -> str:
    """MLflow metric names allow letters, digits, _ - . / and spaces; anything else becomes _."""
    return re.sub(r"[^\w\-./ ]", "_", text)
