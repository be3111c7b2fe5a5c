"""Figures for the README's `gridrisk generate` section, drawn from a generated utility and its truth/.

    gridrisk generate --customers 20000 --seed 11 --daily-days 200 --out DIR
    python experiments/reports/generate/figures.py --warehouse DIR

Writes theft.png (one thief's daily readings and its 台区's line loss) and downturn.png (an industry's
operating rate against its customers' arrears and suspension applications) next to this file.
"""

from __future__ import annotations

import argparse
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt
import numpy as np
import pandas as pd

from features.sources import read_table
from features.synthetic import read_truth

HERE = Path(__file__).parent


def theft_figure(wh: Path, out: Path) -> None:
    truth = read_truth(wh / "truth", "customers")
    readings = read_table(wh, "readings")
    customers = read_table(wh, "customers", ["customer_id", "area_id", "usage_category"])
    supply = read_table(wh, "area_supply")
    start = readings.date.min()
    # A commercial h1 thief that starts inside the readings window and is found later in it.
    cand = truth[
        truth.attack_kind.isin(["h1", "h3"])
        & (truth.theft_onset > start + pd.Timedelta(days=30))
        & truth.theft_found_at.notna()
        & (truth.usage_category == "general_commercial")
    ]
    if cand.empty:
        cand = truth[truth.attack_kind.notna() & (truth.theft_onset > start)]
    thief = cand.iloc[0]
    area = customers.set_index("customer_id").area_id[thief.customer_id]
    mine = readings[readings.customer_id == thief.customer_id].set_index("date").kwh
    members = customers[customers.area_id == area].customer_id
    billed = readings[readings.customer_id.isin(members)].groupby("date").kwh.sum()
    supplied = supply[(supply.area_id == area) & (supply.granularity == "day")].set_index("date").supplied_kwh
    loss = (1 - billed / supplied.reindex(billed.index)) * 100

    fig, (a, b) = plt.subplots(2, 1, figsize=(9, 5.5), sharex=True)
    a.plot(mine.index, mine.to_numpy(), lw=0.9, color="tab:blue", label="reported daily kWh")
    a.set_ylabel("kWh / day")
    b.plot(
        loss.index, loss.rolling(7, min_periods=1).mean(), color="tab:red", label="area line loss, 7-day mean"
    )
    b.set_ylabel("line loss %")
    for ax in (a, b):
        ax.axvline(thief.theft_onset, color="k", ls="--", lw=1)
        if pd.notna(thief.theft_found_at):
            ax.axvline(thief.theft_found_at, color="tab:green", ls="-", lw=1.5)
        ax.legend(loc="upper left", fontsize=8)
    a.set_title(
        f"customer {thief.customer_id} ({thief.usage_category}, attack {thief.attack_kind}): "
        "theft starts (dashed), inspection finds it (green)",
        fontsize=9,
    )
    fig.tight_layout()
    fig.savefig(out / "theft.png", dpi=110)
    plt.close(fig)


def downturn_figure(wh: Path, out: Path) -> None:
    industries = read_truth(wh / "truth", "industries")
    depth = industries.groupby("industry_code").downturn_depth.max()
    code = depth[depth.index.str.startswith("C")].idxmax()
    customers = read_table(wh, "customers", ["customer_id", "industry_code", "tariff"])
    bills = read_table(wh, "bills", ["customer_id", "period", "amount_due", "due_date", "known_at"])
    payments = read_table(wh, "payments", ["customer_id", "period", "paid_at", "amount"])
    suspensions = read_table(wh, "suspensions", ["customer_id", "applied_at", "kind"])
    first = bills.sort_values("known_at").drop_duplicates(["customer_id", "period"])
    # Only bills whose due date + 30 days has passed when the export was taken can be judged.
    first = first[first.due_date + pd.Timedelta(days=31) <= payments.paid_at.max()]
    paid = payments.merge(first[["customer_id", "period", "due_date"]], on=["customer_id", "period"])
    paid = (
        paid[paid.paid_at < paid.due_date + pd.Timedelta(days=31)]
        .groupby(["customer_id", "period"])
        .amount.sum()
    )
    first = first.set_index(["customer_id", "period"])
    first["owing"] = first.amount_due - paid.reindex(first.index).fillna(0) > 1
    first = first.reset_index().merge(customers, on="customer_id")
    industrial = first[first.tariff == "two_part"]
    group = np.where(industrial.industry_code == code, code, "other industry")
    owing = industrial.groupby([group, "period"]).owing.mean().unstack(0) * 100
    apps = suspensions[suspensions.kind.isin(["suspension", "reduction"])].merge(customers, on="customer_id")
    apps["period"] = apps.applied_at.dt.to_period("M").dt.to_timestamp()
    seasonal = apps.industry_code.isin(["D44", "C13"])
    n_two = (
        customers[customers.tariff == "two_part"]
        .groupby(
            np.where(customers[customers.tariff == "two_part"].industry_code == code, code, "other industry")
        )
        .size()
    )
    a_group = np.where(apps.industry_code == code, code, "other industry")
    rate = apps[~seasonal].groupby([a_group[~seasonal], "period"]).size().unstack(0).fillna(0) / n_two * 100
    rate = rate.reindex(owing.index).fillna(0)
    op = industries[industries.industry_code == code].set_index("period").operating_rate

    fig, axes = plt.subplots(3, 1, figsize=(9, 7), sharex=True)
    axes[0].plot(op.index, op.to_numpy(), color="k")
    axes[0].set_ylabel("operating rate")
    axes[0].set_title(
        f"industry {code} slows down (truth/industries) — its two-part customers react", fontsize=9
    )
    for col, style in ((code, "tab:red"), ("other industry", "tab:gray")):
        axes[1].plot(owing.index, owing[col].rolling(3, min_periods=1).mean(), color=style, label=col)
        axes[2].plot(rate.index, rate[col].rolling(3, min_periods=1).mean(), color=style, label=col)
    axes[1].set_ylabel("bills unpaid at\ndue + 30 days, %")
    axes[2].set_ylabel("suspension/reduction\napplications per 100\ncustomers a month")
    for ax in axes[1:]:
        ax.legend(fontsize=8, loc="upper left")
    fig.tight_layout()
    fig.savefig(out / "downturn.png", dpi=110)
    plt.close(fig)


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--warehouse", type=Path, required=True)
    parser.add_argument("--out", type=Path, default=HERE)
    args = parser.parse_args()
    theft_figure(args.warehouse, args.out)
    downturn_figure(args.warehouse, args.out)


if __name__ == "__main__":
    main()
