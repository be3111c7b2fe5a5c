"""台区 features as of T: the area's line-loss rate and its trend, and the customer's share of the area's
consumption and its change. Theft that bypasses the meter shows up only here (DOMAIN §3, 无表法).

Line loss of a month = (supplied − billed) / supplied, where supplied comes from `area_supply` (days or
months, visible at T) and billed is the sum of the area's bills for that month visible at T. A month is used
only when it has ended by T, its supply is complete (every day, or the month row) and bills are visible for
at least 95 % of the customers open in it, so a month whose bills are still being issued does not look like
a loss spike. Windows count back from the area's latest usable month. Every customer of an area is in the
same partition, so this needs no data from other partitions.
"""

from __future__ import annotations

import numpy as np

from features import windows as w
from features.snapshot import LAGS, AsOf, evaluate

BILLED_SHARE_FOR_COMPLETE_MONTH = 0.95
HOURS_PER_MONTH = 730.0


def area_line_loss_pct_3m(supplied: np.ndarray, billed: np.ndarray) -> np.ndarray:
    return _loss(supplied[:, :3], billed[:, :3])


def area_line_loss_pct_12m(supplied: np.ndarray, billed: np.ndarray) -> np.ndarray:
    return _loss(supplied[:, :12], billed[:, :12], min_months=6)


def area_line_loss_change_pp_yoy(supplied: np.ndarray, billed: np.ndarray) -> np.ndarray:
    return _loss(supplied[:, :3], billed[:, :3]) - _loss(supplied[:, 12:15], billed[:, 12:15])


def area_line_loss_slope_pp_6m(supplied: np.ndarray, billed: np.ndarray) -> np.ndarray:
    """Trend of the monthly loss rate over the last 6 usable months, percentage points per month."""
    monthly = w.ratio(supplied[:, :6] - billed[:, :6], supplied[:, :6]) * 100.0
    return w.slope(monthly, min_count=4)


def area_customers_active(active_count: np.ndarray) -> np.ndarray:
    return active_count


def area_transformer_load_pct_3m(supplied: np.ndarray, transformer_kva: np.ndarray) -> np.ndarray:
    return w.ratio(w.mean(supplied[:, :3]), transformer_kva * HOURS_PER_MONTH) * 100.0


def area_kwh_share_pct_3m(own_kwh: np.ndarray, billed_at_customer: np.ndarray) -> np.ndarray:
    """The customer's share of its area's billed kWh over the area's last 3 usable months."""
    return w.ratio(w.total(own_kwh[:, :3]), w.total(billed_at_customer[:, :3])) * 100.0


def area_kwh_share_change_pp_yoy(own_kwh: np.ndarray, billed_at_customer: np.ndarray) -> np.ndarray:
    """Share now minus the share a year earlier: a thief's share falls while the area's loss rises."""
    now = w.ratio(w.total(own_kwh[:, :3]), w.total(billed_at_customer[:, :3]))
    before = w.ratio(w.total(own_kwh[:, 12:15]), w.total(billed_at_customer[:, 12:15]))
    return (now - before) * 100.0


def area_loss_corr_own_kwh_12m(own_kwh: np.ndarray, loss_kwh: np.ndarray) -> np.ndarray:
    """Correlation of the customer's monthly kWh with its area's monthly loss kWh over 12 usable months
    (用户电量与台区线损相关性): a meter that under-reports by a varying share moves the loss against it."""
    return w.corr(own_kwh[:, :12], loss_kwh[:, :12], min_count=6)


def area_loss_rise_vs_own_drop_pct(own_kwh: np.ndarray, loss_kwh: np.ndarray) -> np.ndarray:
    """The area's loss kWh rise over the same 3 months a year earlier, as a share of the customer's own kWh
    fall over those months; NaN unless its kWh fell. Near 100 %: the energy it stopped paying for is still
    drawn. An honest fall (a downturn, a move) leaves the loss where it was."""
    own_drop = w.total(own_kwh[:, 12:15], min_count=2) - w.total(own_kwh[:, :3], min_count=2)
    loss_rise = w.total(loss_kwh[:, :3], min_count=2) - w.total(loss_kwh[:, 12:15], min_count=2)
    return np.clip(w.ratio(loss_rise, own_drop) * 100.0, -w.LOSS_RISE_CAP, w.LOSS_RISE_CAP)


FEATURES_AREA = [
    area_line_loss_pct_3m,
    area_line_loss_pct_12m,
    area_line_loss_change_pp_yoy,
    area_line_loss_slope_pp_6m,
    area_customers_active,
    area_transformer_load_pct_3m,
]
FEATURES_CUSTOMER = [
    area_kwh_share_pct_3m,
    area_kwh_share_change_pp_yoy,
    area_loss_corr_own_kwh_12m,
    area_loss_rise_vs_own_drop_pct,
]


def _loss(supplied: np.ndarray, billed: np.ndarray, min_months: int = 2) -> np.ndarray:
    s = w.total(supplied, min_count=min_months)
    b = w.total(np.where(np.isnan(supplied), np.nan, billed), min_count=min_months)
    return w.ratio(s - b, s) * 100.0


def _month_bounds(month0: int, n_months: int) -> tuple[np.ndarray, np.ndarray]:
    """First and last day number of each grid month."""
    months = (month0 + np.arange(n_months + 1)).astype("datetime64[M]")
    firsts = months.astype("datetime64[D]").astype(np.int64).astype(np.float64)
    return firsts[:-1], firsts[1:] - 1


def compute(at: AsOf) -> dict[str, np.ndarray]:
    part = at.part
    n_areas, months = len(part.area_ids), at.months
    first_day, last_day = _month_bounds(at.first, months)

    pos, t = at.rows("area_supply")
    a, mi = t["area"][pos], t["month"][pos] - at.first
    ok = (a >= 0) & (mi >= 0) & (mi < months)
    cell = (a * months + mi)[ok]
    kwh_rows, daily = np.nan_to_num(t["supplied_kwh"][pos][ok]), t["daily"][pos][ok]

    def per_cell(weights: np.ndarray) -> np.ndarray:
        return np.bincount(cell, weights=weights, minlength=n_areas * months).reshape(n_areas, months)

    month_rows, day_rows = per_cell((~daily).astype(float)), per_cell(daily.astype(float))
    # The key allows a month row and that month's day rows side by side (a total and its detail): the month
    # row is the meter's total, so the days count only for a month without one, never on top of it.
    supplied = np.where(month_rows > 0, per_cell(np.where(daily, 0.0, kwh_rows)), per_cell(kwh_rows))
    days_in_month = (last_day - first_day + 1)[None, :]
    complete = (month_rows > 0) | (day_rows >= days_in_month)

    kwh = at.bills.values["kwh"]
    billed = w.group_sum(kwh, part.area_of, n_areas)
    billed_n = w.group_sum(~np.isnan(kwh), part.area_of, n_areas)

    #  Open in month m: known at T, opened by the month's end and not closed before it began (a close date
    # after T
    # is unknown at T and treated as open, which is what T saw).
    cust = part.tables["customers"]
    open_day, close_day = cust["open_day"], cust["close_day"]
    known = at.known
    open_in = (
        known[:, None] & (open_day[:, None] <= last_day[None, :]) & ~(close_day[:, None] < first_day[None, :])
    )
    active_n = w.group_sum(open_in, part.area_of, n_areas)

    usable = (
        complete
        & (last_day[None, :] <= at.day_num)
        & (active_n > 0)
        & (billed_n >= BILLED_SHARE_FOR_COMPLETE_MONTH * active_n)
        & (supplied > 0)
    )
    cols = np.arange(months)[None, :]
    last_usable = np.where(usable.any(axis=1), np.where(usable, cols, -1).max(axis=1), -1)
    sup_lag = w.align_lags(np.where(usable, supplied, np.nan), last_usable, LAGS)
    bil_lag = w.align_lags(np.where(usable, billed, np.nan), last_usable, LAGS)

    active_count = np.bincount(part.area_of, weights=at.active.astype(float), minlength=n_areas)
    per_area = evaluate(
        FEATURES_AREA,
        {
            "supplied": sup_lag,
            "billed": bil_lag,
            "active_count": active_count,
            "transformer_kva": part.transformer_kva,
        },
    )
    out = {name: values[part.area_of] for name, values in per_area.items()}

    cust_last = last_usable[part.area_of]
    own = w.align_lags(kwh, cust_last, LAGS)
    own = np.where(np.isnan(bil_lag[part.area_of]), np.nan, own)
    loss = (sup_lag - bil_lag)[part.area_of]
    out.update(
        evaluate(
            FEATURES_CUSTOMER, {"own_kwh": own, "billed_at_customer": bil_lag[part.area_of], "loss_kwh": loss}
        )
    )
    return out
