"""Figures for the README's "Features and training sets" section, from a generated warehouse with its truth.

    python experiments/reports/features_figures.py --warehouse WH --out experiments/reports/features

Writes as_of_rule.png (which rows a feature and a label may read), thieves_around_onset.png (theft features by
month relative to the hidden theft onset: flat before it, moving after it) and label_rates.png (label rate per
as-of date for the three tasks).
"""

from __future__ import annotations

import argparse
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt
import pandas as pd


def as_of_rule(out: Path) -> Path:
    fig, ax = plt.subplots(figsize=(10, 2.9))
    ax.axvspan(-12, 0, color="#dbe9f6", label="feature rows: event time and known_at ≤ end of day T")
    ax.axvspan(0, 6, color="#fde2cf", label="label window (T, T + horizon]")
    ax.axvspan(6, 7, color="#f6f0c8", label="arrears grace: payments until due date + 30 days")
    ax.axvline(0, color="black", lw=1.5)
    ax.text(
        0,
        1.02,
        "T = end of the as-of day (23:59:59.999999, inclusive)",
        ha="center",
        transform=ax.get_xaxis_transform(),
    )
    rows = [
        (-9, 0.75, "bill issued and known", True),
        (-3, 0.55, "bill re-issued, known before T: this version", True),
        (-0.05, 0.35, "payment at 23:59:59 on T: counts", True),
        (0.05, 0.15, "payment 1 s later: only the label sees it", False),
        (2.0, 0.75, "re-issue known after T: ignored by features", False),
        (3.5, 0.45, "inspection finds theft: label 1", False),
    ]
    for x, y, text, counts in rows:
        ax.plot(x, y, "o", color="#1f6fb4" if counts else "#d9480f", ms=7)
        ax.text(
            x + (0.25 if x >= 0 else -0.25),
            y,
            text,
            va="center",
            ha="left" if x >= 0 else "right",
            fontsize=8,
        )
    ax.set_xlim(-12, 7.5)
    ax.set_ylim(0, 1)
    ax.set_yticks([])
    ax.set_xlabel("months relative to the as-of date T")
    ax.legend(loc="upper left", fontsize=7, frameon=False, bbox_to_anchor=(0, -0.28), ncol=2)
    fig.subplots_adjust(left=0.02, right=0.98, top=0.88, bottom=0.36)
    path = out / "as_of_rule.png"
    fig.savefig(path, dpi=130)
    plt.close(fig)
    return path


def thieves_around_onset(warehouse: Path, out: Path) -> Path:
    from features.training_set import build_scoring_frame

    truth = pd.read_parquet(warehouse / "truth" / "customers.parquet")
    thieves = truth[truth["is_thief"] & truth["theft_onset"].notna()][["customer_id", "theft_onset"]]
    thieves["theft_onset"] = pd.to_datetime(thieves["theft_onset"])
    months = pd.date_range("2021-12-31", "2023-12-31", freq="ME")
    frames = [build_scoring_frame(warehouse, "theft", d) for d in months]
    scored = pd.concat(frames, ignore_index=True)
    scored = scored.merge(thieves, on="customer_id", how="left")
    scored["months_from_onset"] = (scored["as_of"].dt.year - scored["theft_onset"].dt.year) * 12 + (
        scored["as_of"].dt.month - scored["theft_onset"].dt.month
    )
    features = [
        ("bills_kwh_yoy_change_pct_3m", "kWh, 3 months vs last year (%)"),
        ("area_kwh_share_change_pp_yoy", "share of the area's kWh vs last year (points)"),
        ("area_line_loss_change_pp_yoy", "area line loss vs last year (points)"),
    ]
    fig, axes = plt.subplots(1, 3, figsize=(12, 3.4))
    honest = scored[scored["theft_onset"].isna()]
    window = scored[scored["months_from_onset"].between(-12, 12)]
    for ax, (name, title) in zip(axes, features, strict=True):
        q = honest[name].quantile([0.25, 0.5, 0.75])
        ax.axhspan(q[0.25], q[0.75], color="#e9ecef", label="honest customers, 25–75 %")
        ax.axhline(q[0.5], color="#868e96", lw=1)
        med = window.groupby("months_from_onset")[name].median()
        ax.plot(med.index, med.values, color="#d9480f", marker="o", ms=3, label="thieves, median")
        ax.axvline(0, color="black", lw=1, ls="--")
        ax.set_title(title, fontsize=9)
        ax.set_xlabel("months from the hidden theft onset")
    axes[0].legend(fontsize=7, frameon=False)
    fig.suptitle(
        f"{len(thieves)} generated thieves: features as of each month end (known only at that date)",
        fontsize=9,
    )
    fig.tight_layout()
    path = out / "thieves_around_onset.png"
    fig.savefig(path, dpi=130)
    plt.close(fig)
    return path


def label_rates(warehouse: Path, out: Path) -> Path:
    from features.labels import latest_labelable_as_of
    from features.training_set import build_training_set

    fig, ax = plt.subplots(figsize=(8, 3))
    for task in ("arrears", "suspension", "theft"):
        dates = pd.date_range("2021-12-31", latest_labelable_as_of(warehouse, task), freq="ME")
        frame = build_training_set(warehouse, task, dates)
        rate = frame.groupby("as_of")["label"].mean() * 100
        ax.plot(rate.index, rate.values, marker="o", ms=3, label=f"{task} ({len(frame):,} rows)")
    ax.set_ylabel("label rate (%)")
    ax.set_yscale("log")
    ax.legend(fontsize=8, frameon=False)
    ax.set_title("label rate per as-of date (the last as-of is the latest fully observed window)", fontsize=9)
    fig.tight_layout()
    path = out / "label_rates.png"
    fig.savefig(path, dpi=130)
    plt.close(fig)
    return path


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--warehouse", type=Path, required=True, help="a generated warehouse (with truth/)")
    parser.add_argument("--out", type=Path, default=Path(__file__).parent / "features")
    args = parser.parse_args()
    args.out.mkdir(parents=True, exist_ok=True)
    for path in (
        as_of_rule(args.out),
        thieves_around_onset(args.warehouse, args.out),
        label_rates(args.warehouse, args.out),
    ):
        print(path)


if __name__ == "__main__":
    main()
