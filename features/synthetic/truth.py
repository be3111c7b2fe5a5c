"""Ground truth of a generated utility (`<export>/truth/`) and the oracle built from it.

No real system knows these: true theft state, latent stress, the per-month probabilities the generator
sampled each event from. Evaluation reads them to report an oracle ceiling (`oracle_roc_auc`).
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import date
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq

from features.synthetic import domain as d
from features.synthetic.config import GeneratorError

TRUTH_DIR = "truth"
DATE, TS, STR, F32, F64, BOOL = (
    pa.date32(),
    pa.timestamp("us"),
    pa.string(),
    pa.float32(),
    pa.float64(),
    pa.bool_(),
)

TRUTH_SCHEMAS: dict[str, pa.Schema] = {
    "monthly": pa.schema(
        [
            ("customer_id", STR),
            ("period", DATE),
            ("stress", F32),  # latent financial stress (≈ N(0, 1.2) outside downturns)
            ("operating_level", F32),  # output relative to the customer's normal
            ("downturn_depth", F32),  # industry downturn felt by the customer
            ("kwh_true", F64),  # energy actually used
            ("kwh_reported", F64),  # energy on the bill (after theft)
            ("is_stealing", BOOL),
            ("offline_share", F32),  # share of capacity-days suspended or reduced
            ("due_date", DATE),  # the month's bill due date
            ("p_unpaid_30d", F32),  # P(this bill is still unpaid 30 days after its due date)
            ("p_suspension", F32),  # P(applying for a suspension or reduction this month | eligible)
            ("p_inspection", F32),  # P(inspected this month) under the utility's policy
            ("p_theft_found", F32),  # P(an inspection this month finds theft | not found before)
        ]
    ),
    "customers": pa.schema(
        [
            ("customer_id", STR),
            ("usage_category", STR),
            ("industry_code", STR),
            ("open_date", DATE),
            ("close_date", DATE),
            ("stress_level", F32),
            ("is_thief", BOOL),
            ("attack_kind", STR),  # h1..h5 (features/attacks.py), null for honest customers
            ("theft_onset", DATE),
            ("theft_found_at", TS),
            ("stolen_kwh", F64),
        ]
    ),
    "industries": pa.schema(
        [("industry_code", STR), ("period", DATE), ("operating_rate", F32), ("downturn_depth", F32)]
    ),
    "suspension_spells": pa.schema(
        [
            ("customer_id", STR),
            ("kind", STR),
            ("applied_at", TS),
            ("start_date", DATE),
            ("planned_end", DATE),
            ("actual_end", DATE),  # last day offline; null for a permanent reduction
            ("capacity_kva", F64),
        ]
    ),
    "faults": pa.schema([("table", STR), ("key", STR), ("kind", STR)]),
}

# DESIGN.md "The three tasks": horizons of the labels the oracle predicts.
HORIZON_DAYS = {"arrears": 90, "suspension": 180, "theft": 180}


def truth_path(out: Path, name: str) -> Path:
    suffix = ".json" if name == "manifest" else ".parquet"
    return Path(out) / TRUTH_DIR / f"{name}{suffix}"


def read_truth(truth_dir: Path, name: str, columns: list[str] | None = None) -> pd.DataFrame:
    path = Path(truth_dir) / f"{name}.parquet"
    if not path.exists():
        raise GeneratorError(
            f"truth table {name!r} is missing ({path}); only `gridrisk generate` output has truth/"
        )
    return pq.read_table(path, columns=columns).to_pandas(date_as_object=False)


def oracle_probabilities(truth_dir: Path, task: str, as_of: Sequence[date | pd.Timestamp]) -> pd.DataFrame:
    """The generator's own probability that ``task``'s label is 1, per customer active at each as-of date.

    Built from the per-month probabilities the generator sampled from, over the label's window (T, T+H]:
    a month partly inside the window counts by its share of days (events fall on uniform days of a month).
    - arrears: 1 − Π (1 − p_unpaid_30d) over the bills due in the window;
    - suspension: 1 − Π (1 − p_suspension)^share over months not blocked by a spell applied at or before T;
    - theft: 1 − Π (1 − p_theft_found)^share (zero for customers who are not stealing); after a find the
      generator writes the probability the thief would have faced still unfound, as the window needs.
    Returns columns customer_id, as_of (datetime64), oracle_probability.
    """
    if task not in HORIZON_DAYS:
        raise GeneratorError(f"task {task!r} has no oracle; use one of {sorted(HORIZON_DAYS)}")
    columns = [
        "customer_id",
        "period",
        {"arrears": "p_unpaid_30d", "suspension": "p_suspension", "theft": "p_theft_found"}[task],
    ]
    if task == "arrears":
        columns.append("due_date")
    monthly = read_truth(truth_dir, "monthly", columns)
    customers = read_truth(truth_dir, "customers", ["customer_id", "open_date", "close_date"])
    ids = customers["customer_id"].to_numpy()
    index = pd.Index(ids)
    row = index.get_indexer(monthly["customer_id"])
    periods = np.sort(monthly["period"].unique()).astype("datetime64[D]")
    col = np.searchsorted(periods, monthly["period"].to_numpy().astype("datetime64[D]"))
    p = np.zeros((ids.size, periods.size))
    p[row, col] = monthly[columns[2]].to_numpy(dtype=np.float64)
    log_stay = np.log1p(-np.clip(p, 0.0, 1.0 - 1e-12))
    month_end = np.append(periods[1:], (periods[-1].astype("datetime64[M]") + 1).astype("datetime64[D]"))
    if task == "arrears":
        due = np.full((ids.size, periods.size), np.datetime64("NaT"), dtype="datetime64[D]")
        due[row, col] = monthly["due_date"].to_numpy().astype("datetime64[D]")
    if task == "suspension":
        spells = read_truth(
            truth_dir, "suspension_spells", ["customer_id", "applied_at", "start_date", "actual_end"]
        )
        s_row = index.get_indexer(spells["customer_id"])
        s_applied = spells["applied_at"].to_numpy().astype("datetime64[D]")
        s_start = spells["start_date"].to_numpy().astype("datetime64[D]")
        s_end = spells["actual_end"].to_numpy().astype("datetime64[D]")
        # The generator's rule (service_changes.free_from): a customer may apply again from the day after a
        # spell ends, and six months after a permanent reduction starts (it has no end). Blocking every later
        # month after a permanent reduction gave 0 to customers who then applied.
        min_days = np.timedelta64(d.REDUCTION_MIN_DAYS, "D")
        s_free = np.where(np.isnat(s_end), s_start + min_days, s_end + np.timedelta64(1, "D"))
        s_month = s_applied.astype("datetime64[M]").astype("datetime64[D]")

    open_date = customers["open_date"].to_numpy().astype("datetime64[D]")
    close_date = customers["close_date"].to_numpy().astype("datetime64[D]")
    frames = []
    for t in as_of:
        day = np.datetime64(pd.Timestamp(t).date(), "D")
        end = day + np.timedelta64(HORIZON_DAYS[task], "D")
        active = (open_date <= day) & (np.isnat(close_date) | (close_date > day))
        if task == "arrears":
            inside = (due > day) & (due <= end)
            total = np.where(inside, log_stay, 0.0).sum(axis=1)
        else:
            # Days (T, T+H] inside each month, as a share of the month.
            lo = np.maximum(periods, day + np.timedelta64(1, "D"))
            hi = np.minimum(month_end, end + np.timedelta64(1, "D"))
            share = np.maximum((hi - lo).astype(np.int64), 0) / (month_end - periods).astype(np.int64)
            weight = np.broadcast_to(share[None, :], p.shape)
            if task == "suspension":
                blocked = np.zeros(p.shape, dtype=bool)
                known = s_applied <= day
                # A spell applied by T blocks new applications from its application month (one a month) to
                # the months whose first day comes before the customer is free again.
                cover = (periods[None, :] >= s_month[known, None]) & (periods[None, :] < s_free[known, None])
                np.logical_or.at(blocked, s_row[known], cover)
                weight = np.where(blocked, 0.0, weight)
            total = (weight * log_stay).sum(axis=1)
        prob = -np.expm1(total)
        frames.append(
            pd.DataFrame(
                {
                    "customer_id": ids[active],
                    "as_of": pd.Timestamp(day),
                    "oracle_probability": prob[active],
                }
            )
        )
    out = pd.concat(frames, ignore_index=True)
    out["as_of"] = out["as_of"].astype("datetime64[ns]")
    return out
