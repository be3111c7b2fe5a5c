"""Evaluation metrics on hand-built frames where the right answer can be counted by hand."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from sklearn.metrics import brier_score_loss, roc_auc_score
from sklearn.metrics import log_loss as sk_log_loss

from training.evaluate import (
    Scored,
    brier,
    calibration_table,
    expected_calibration_error,
    ks_statistic,
    lift_by_decile,
    log_loss,
    metric_key,
    roc_auc,
    roc_auc_standard_error,
    score_metrics,
    segment_metrics,
    top_k_share,
)


def test_auc_standard_error_matches_the_spread_over_repeated_draws() -> None:
    # 400 test windows of 40 positives and 800 negatives from the same binormal scorer: the Hanley–McNeil
    # standard error of one window's AUC should match the spread of the AUCs across windows. Its exponential
    # model makes it a little conservative for binormal scores (about 1.2x the spread here).
    rng = np.random.default_rng(5)
    aucs, ses = [], []
    for _ in range(400):
        y = np.r_[np.ones(40, bool), np.zeros(800, bool)]
        s = rng.normal(size=840) + 1.2 * y
        aucs.append(roc_auc(y, s))
        ses.append(roc_auc_standard_error(aucs[-1], 40, 800))
    assert np.mean(aucs) == pytest.approx(0.80, abs=0.01)
    assert np.std(aucs) <= np.mean(ses) <= 1.3 * np.std(aucs)
    assert roc_auc_standard_error(0.8, 400, 8000) < np.mean(ses) / 3  # shrinks like 1/sqrt(positives)
    assert np.isnan(roc_auc_standard_error(0.7, 0, 10))


def test_ranking_metrics_match_sklearn() -> None:
    rng = np.random.default_rng(3)
    y = rng.random(500) < 0.2
    s = np.round(rng.random(500) + y * 0.3, 1)  # rounded -> many ties
    assert roc_auc(y, s) == pytest.approx(roc_auc_score(y, s), abs=1e-12)
    p = np.clip(s / 1.3, 0.01, 0.99)
    assert brier(y, p) == pytest.approx(brier_score_loss(y, p))
    assert log_loss(y, p) == pytest.approx(sk_log_loss(y, p))
    assert 0 < ks_statistic(y, s) < 1
    assert np.isnan(roc_auc(np.zeros(4), np.arange(4)))  # no positives -> undefined, not 0.5


def test_top_k_is_per_group_and_ties_at_the_cut_share_the_places() -> None:
    groups = np.array(["a", "a", "a", "a", "b", "b"])
    score = np.array([0.9, 0.1, 0.5, 0.5, 0.2, 0.3])
    assert top_k_share(score, groups, k=1).tolist() == [1, 0, 0, 0, 0, 1]
    # top 50 % of a (2 rows): 0.9, and the tied 0.5s share the one place left; top 50 % of b: 0.3. By row
    # order the first 0.5 was in and the second out, so a list's precision hung on how the frame was sorted.
    assert top_k_share(score, groups, fraction=0.5).tolist() == [1, 0, 0.5, 0.5, 0, 1]
    assert top_k_share(score[::-1], groups[::-1], fraction=0.5).tolist() == [1, 0, 0.5, 0.5, 0, 1]
    # a tiny fraction still selects at least one row per group
    assert top_k_share(score, groups, fraction=0.01).sum() == 2
    # every score tied, 5 % of 100 rows with 10 positives: precision is the rate, whatever the row order
    y = np.zeros(100, dtype=bool)
    y[:10] = True
    share = top_k_share(np.zeros(100), np.zeros(100), fraction=0.05)
    assert share.sum() == pytest.approx(5) and share[y].sum() / share.sum() == pytest.approx(0.1)
    # unscored rows (NaN) come last, as one tie
    assert top_k_share(np.array([np.nan, 0.2, np.nan]), np.zeros(3), k=2).tolist() == [0.5, 1, 0.5]


def test_amount_weighted_recall_counts_yuan() -> None:
    frame = pd.DataFrame(
        {
            "label": [1, 1, 0, 0, 1, 0, 0, 0, 0, 0],
            "as_of": pd.to_datetime(["2023-06-30"] * 10),
            "station": ["S1"] * 10,
            # the big debtor (900 yuan) ranks 1st, a 100-yuan one 2nd, a false alarm 3rd; a 50-yuan one last
            "amount_at_stake": [900.0, 100.0, 10.0, 10.0, 50.0, 1.0, 1.0, 1.0, 1.0, 1.0],
        }
    )
    score = np.array([0.9, 0.8, 0.7, 0.1, 0.05, 0.3, 0.3, 0.2, 0.2, 0.2])
    out = score_metrics(frame, Scored("m", score, None), station_capacity=3, top_fractions=(0.2,))
    assert out["precision_at_20pct"] == 1.0  # top 2 rows are both positive
    assert out["recall_at_20pct"] == pytest.approx(2 / 3)
    assert out["amount_recall_at_20pct"] == pytest.approx(1000 / 1050)
    assert out["precision_at_station_capacity"] == pytest.approx(
        2 / 3
    )  # 3 visits: two debtors, one false alarm
    assert out["lift_at_20pct"] == pytest.approx(1.0 / 0.3)


def test_top_k_is_drawn_per_as_of_date() -> None:
    # Two months; the second month's scores are all lower. A pooled top-50 % would only pick month one.
    frame = pd.DataFrame(
        {
            "label": [1, 0, 1, 0],
            "as_of": pd.to_datetime(["2023-05-31", "2023-05-31", "2023-06-30", "2023-06-30"]),
            "station": ["S1"] * 4,
            "amount_at_stake": [1.0] * 4,
        }
    )
    out = score_metrics(
        frame, Scored("m", np.array([0.9, 0.8, 0.2, 0.1]), None), station_capacity=1, top_fractions=(0.5,)
    )
    assert out["precision_at_50pct"] == 1.0 and out["recall_at_50pct"] == 1.0


def test_ece_and_calibration_table() -> None:
    y = np.array([0, 0, 0, 1, 1, 1, 1, 1])
    p = np.array([0.05, 0.05, 0.05, 0.05, 0.95, 0.95, 0.95, 0.95])
    # bin 0: predicted 0.05, observed 0.25 (4 rows); bin 9: predicted 0.95, observed 1.0 (4 rows)
    assert expected_calibration_error(y, p) == pytest.approx(0.5 * 0.20 + 0.5 * 0.05)
    table = calibration_table(y, p)
    assert table["rows"].tolist() == [4, 4]


def test_lift_by_decile_sums_up() -> None:
    rng = np.random.default_rng(0)
    y = (rng.random(1000) < 0.1).astype(int)
    s = y + rng.random(1000)
    table = lift_by_decile(y, s, np.repeat(pd.to_datetime(["2023-01-31", "2023-02-28"]), 500))
    assert table["rows"].sum() == 1000 and table["positives"].sum() == y.sum()
    assert table["cumulative_gain"].iloc[-1] == pytest.approx(1.0)
    assert table["lift"].iloc[0] > 5


def test_segments_skip_small_and_single_class_groups() -> None:
    rng = np.random.default_rng(1)
    n = 300
    frame = pd.DataFrame(
        {
            "label": (rng.random(n) < 0.3).astype(int),
            "as_of": pd.to_datetime(["2023-06-30"] * n),
            "station": ["S1"] * n,
            "amount_at_stake": np.ones(n),
            "usage_category": ["residential"] * 200 + ["large industrial/35kV"] * 60 + ["agricultural"] * 40,
        }
    )
    frame.loc[200:259, "label"] = 0  # the industrial segment has no positives -> no AUC
    out = segment_metrics(
        frame,
        Scored("m", rng.random(n), None),
        ("usage_category",),
        primary_metric="precision_at_5pct",
        station_capacity=5,
        min_rows=50,
    )
    assert "roc_auc_usage_category_residential" in out
    assert not any("industrial" in k for k in out)  # single class
    assert not any("agricultural" in k for k in out)  # 40 rows < 50
    assert metric_key("supply_unit_东区/35kV (A)") == "supply_unit_东区/35kV _A_"


def test_true_thieves_are_those_stealing_in_the_label_window(tmp_path) -> None:
    # The truth counted only the as-of month: a thief who began after T, and whom an inspection then found
    # (label 1), was an honest customer in the "vs true thieves" metrics.
    import pyarrow as pa
    import pyarrow.parquet as pq

    from training.experiment import true_thieves

    periods = pd.date_range("2023-01-01", "2024-06-01", freq="MS")
    stealing_months = {
        "now": ["2023-06", "2023-07", "2023-08"],  # stealing at T and on
        "later": ["2023-09"],  # begins two months after T
        "too_late": ["2024-01"],  # begins after T + 180 days (2023-12-27)
        "before": ["2023-03", "2023-04", "2023-05"],  # stopped before T
        "only_t": ["2023-06"],  # stopped in T's own month: the window starts on July 1
    }
    monthly = pd.DataFrame(
        [
            {"customer_id": c, "period": p.date(), "is_stealing": p.strftime("%Y-%m") in months}
            for c, months in stealing_months.items()
            for p in periods
        ]
    )
    truth = tmp_path / "truth"
    truth.mkdir()
    pq.write_table(pa.Table.from_pandas(monthly, preserve_index=False), truth / "monthly.parquet")
    frame = pd.DataFrame({"customer_id": [*stealing_months, "unknown"], "as_of": pd.Timestamp("2023-06-30")})
    got = dict(zip(frame["customer_id"], true_thieves(truth, frame, horizon_days=180), strict=True))
    assert got == {"now": 1, "later": 1, "too_late": 0, "before": 0, "only_t": 0, "unknown": 0}
