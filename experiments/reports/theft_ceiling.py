"""How much of the theft oracle's lead is knowledge of the future? A point-in-time ceiling on generated data.

    python experiments/reports/theft_ceiling.py --training-set theft.parquet --warehouse WH [--windows 3]

The oracle (`oracle_roc_auc`) multiplies the generator's per-month probabilities over the label window, so it
knows who will start stealing after T and how often each thief will be inspected then. This script scores each
test window (the latest `test_dates` as-of dates, then one window earlier each time, as `gridrisk backtest`
cuts them) with what the generator knew at T only: whether the customer is stealing at T and its inspection
probability that month, held over the horizon. Customers who are not stealing at T keep a small score in
proportion to their inspection probability (an onset after T is a uniform draw, unforeseeable from data).
Prints, per window, that ceiling's ROC-AUC beside the oracle's (training.md, "Why theft and suspension stay
below 0.95 × oracle").
"""

from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np
import pandas as pd

from features.synthetic import oracle_probabilities
from features.synthetic.theft import DETECT
from features.synthetic.truth import HORIZON_DAYS, read_truth
from training.evaluate import roc_auc

NOT_STEALING_WEIGHT = 0.01  # ranks non-thieves by inspection probability, always below every thief


def point_in_time_ceiling(test: pd.DataFrame, monthly: pd.DataFrame) -> np.ndarray:
    keys = test[["customer_id"]].assign(period=test["as_of"].dt.to_period("M").dt.to_timestamp())
    state = keys.merge(monthly, on=["customer_id", "period"], how="left")
    stealing = state["is_stealing"].fillna(False).to_numpy(dtype=float)
    inspected = state["p_inspection"].fillna(0.0).to_numpy(dtype=float)
    months = HORIZON_DAYS["theft"] / 30.4
    found = 1.0 - (1.0 - DETECT * inspected) ** months
    return (stealing + NOT_STEALING_WEIGHT) * found


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--training-set", type=Path, required=True, help="`gridrisk features --task theft`")
    parser.add_argument("--warehouse", type=Path, required=True, help="the generated warehouse (with truth/)")
    parser.add_argument("--windows", type=int, default=3)
    parser.add_argument("--test-dates", type=int, default=3)
    args = parser.parse_args()

    frame = pd.read_parquet(args.training_set, columns=["customer_id", "as_of", "label"])
    frame["as_of"] = pd.to_datetime(frame["as_of"])
    truth = args.warehouse / "truth"
    monthly = read_truth(truth, "monthly", ["customer_id", "period", "is_stealing", "p_inspection"])
    monthly["period"] = pd.to_datetime(monthly["period"])
    dates = sorted(frame["as_of"].unique())
    print(f"{'window':<8}{'test dates':<26}{'positives':>10}{'ceiling at T':>14}{'oracle':>9}")
    for k in range(args.windows):
        end = len(dates) - k * args.test_dates
        window = dates[max(end - args.test_dates, 0) : end]
        if not window:
            break
        test = frame[frame["as_of"].isin(window)].reset_index(drop=True)
        oracle = oracle_probabilities(truth, "theft", window)
        oracle["as_of"] = pd.to_datetime(oracle["as_of"])
        merged = test.merge(oracle, on=["customer_id", "as_of"], how="left")
        p_oracle = merged["oracle_probability"].fillna(0.0).to_numpy()
        y = test["label"].to_numpy().astype(bool)
        span = f"{pd.Timestamp(window[0]).date()} – {pd.Timestamp(window[-1]).date()}"
        ceiling = roc_auc(y, point_in_time_ceiling(test, monthly))
        print(f"{k + 1:<8}{span:<26}{int(y.sum()):>10}{ceiling:>14.4f}{roc_auc(y, p_oracle):>9.4f}")


if __name__ == "__main__":
    main()
