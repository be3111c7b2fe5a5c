"""Consumption features from monthly bills (电费账单) as of T: levels, trends, volatility, year-on-year
change, zero months, utilisation, TOU mix, demand, power factor and the bill itself.

Windows count billed months back from each customer's latest bill visible at T (`_3m` = that bill and the
two before it); `_yoy` compares a window with the same calendar months a year earlier. Only bills visible at
T under the as-of rule (issued and known at or before T, latest version) are read, through `AsOf.bills`.
"""

from __future__ import annotations

import numpy as np

from features import windows as w
from features.snapshot import BILL_MEASURES, AsOf, evaluate

HOURS_PER_MONTH = 730.0  # 8,760 h / 12: utilisation and load factor per average month
ZERO_KWH = 1.0  # a month under 1 kWh is a zero month (meter stopped, empty premises or bypassed)
NEAR_ZERO_SHARE = 0.1  # a month under 10 % of the customer's own 12-month mean
REPEAT_TOLERANCE = 0.001  # two months within 0.1 % of each other count as the same figure


def bills_months_since_last_bill(months_since_last: np.ndarray) -> np.ndarray:
    """Months between T and the latest visible bill (billing lag, stopped billing)."""
    return months_since_last


def bills_history_months(history_months: np.ndarray) -> np.ndarray:
    return history_months


def bills_kwh_last_1m(kwh: np.ndarray) -> np.ndarray:
    return kwh[:, 0]


def bills_kwh_mean_3m(kwh: np.ndarray) -> np.ndarray:
    return w.mean(kwh[:, :3])


def bills_kwh_mean_12m(kwh: np.ndarray) -> np.ndarray:
    return w.mean(kwh[:, :12], min_count=3)


def bills_kwh_slope_3m_pct(kwh: np.ndarray) -> np.ndarray:
    return w.slope_pct(kwh[:, :3], min_count=3)


def bills_kwh_slope_6m_pct(kwh: np.ndarray) -> np.ndarray:
    return w.slope_pct(kwh[:, :6], min_count=4)


def bills_kwh_slope_12m_pct(kwh: np.ndarray) -> np.ndarray:
    return w.slope_pct(kwh[:, :12], min_count=6)


def bills_kwh_cv_12m(kwh: np.ndarray) -> np.ndarray:
    return w.ratio(w.std(kwh[:, :12], min_count=3), w.mean(kwh[:, :12], min_count=3))


def bills_kwh_change_pct_3m_vs_prev_3m(kwh: np.ndarray) -> np.ndarray:
    return w.pct_change(w.total(kwh[:, :3], 3), w.total(kwh[:, 3:6], 3))


def bills_kwh_change_pct_3m_vs_prev_9m(kwh: np.ndarray) -> np.ndarray:
    """The last three months' mean against the customer's own nine months before (at least three of them):
    a sustained slump measured on the customer's own baseline, usable from 6 months of history on."""
    return w.pct_change(w.mean(kwh[:, :3], 3), w.mean(kwh[:, 3:12], 3))


def bills_kwh_yoy_change_pct_3m(kwh: np.ndarray) -> np.ndarray:
    return w.pct_change(w.total(kwh[:, :3], 3), w.total(kwh[:, 12:15], 3))


def bills_kwh_yoy_change_pct_12m(kwh: np.ndarray) -> np.ndarray:
    return w.pct_change(w.mean(kwh[:, :12], 9), w.mean(kwh[:, 12:24], 9))


def bills_zero_kwh_months_12m(kwh: np.ndarray) -> np.ndarray:
    return w.count_where(kwh[:, :12] < ZERO_KWH, kwh[:, :12])


def bills_near_zero_kwh_months_12m(kwh: np.ndarray) -> np.ndarray:
    window = kwh[:, :12]
    level = w.mean(window, min_count=3)
    return w.count_where(window < NEAR_ZERO_SHARE * level[:, None], window, min_count=3)


def bills_zero_kwh_run_months(kwh: np.ndarray) -> np.ndarray:
    """Consecutive zero months up to the latest bill (three in a row trigger a site check, DOMAIN §1)."""
    zero = kwh[:, :12][:, ::-1] < ZERO_KWH
    return np.where(np.isnan(kwh[:, 0]), np.nan, w.trailing_run(zero))


def bills_kwh_repeat_months_12m(kwh: np.ndarray, copied: np.ndarray) -> np.ndarray:
    """Months of the last 12 billed the same kWh as the month before (within 0.1 %): real use never repeats
    to the kWh; a meter or reading that reports a fixed figure does (估抄, attack h5's flat profile). The two
    halves of a two-monthly bill are one reading, not a repeat (`copied`: the month a bill was spread to)."""
    now, before = kwh[:, :11], kwh[:, 1:12]
    pairs = np.where(np.isnan(now) | np.isnan(before) | (copied[:, 1:12] == 1), np.nan, now)
    with np.errstate(invalid="ignore"):
        same = (np.abs(now - before) <= REPEAT_TOLERANCE * before) & (before >= ZERO_KWH)
    return w.count_where(same, pairs, min_count=3)


def bills_utilization_pct_3m(kwh: np.ndarray, capacity_kva: np.ndarray) -> np.ndarray:
    """kWh / (contract capacity × hours): how much of the contracted capacity the customer actually uses."""
    return w.ratio(w.mean(kwh[:, :3]), capacity_kva * HOURS_PER_MONTH) * 100.0


def bills_peak_share_pct_3m(kwh: np.ndarray, kwh_peak: np.ndarray) -> np.ndarray:
    return w.ratio(w.total(kwh_peak[:, :3]), w.total(kwh[:, :3])) * 100.0


def bills_valley_share_pct_3m(kwh: np.ndarray, kwh_valley: np.ndarray) -> np.ndarray:
    return w.ratio(w.total(kwh_valley[:, :3]), w.total(kwh[:, :3])) * 100.0


def bills_peak_share_change_pp_yoy(kwh: np.ndarray, kwh_peak: np.ndarray) -> np.ndarray:
    """Peak share now minus the same months last year: load moved into cheap hours (attack h6) shows here."""
    now = w.ratio(w.total(kwh_peak[:, :3]), w.total(kwh[:, :3]))
    before = w.ratio(w.total(kwh_peak[:, 12:15]), w.total(kwh[:, 12:15]))
    return (now - before) * 100.0


def bills_max_demand_to_capacity_pct_3m(max_demand_kw: np.ndarray, capacity_kva: np.ndarray) -> np.ndarray:
    """Max demand / capacity: near or under 40 % (the contract-demand floor) precedes 减容 (DOMAIN §2)."""
    return w.ratio(w.mean(max_demand_kw[:, :3]), capacity_kva) * 100.0


def bills_max_demand_yoy_change_pct_3m(max_demand_kw: np.ndarray) -> np.ndarray:
    return w.pct_change(w.mean(max_demand_kw[:, :3]), w.mean(max_demand_kw[:, 12:15]))


def bills_load_factor_pct_3m(kwh: np.ndarray, max_demand_kw: np.ndarray) -> np.ndarray:
    """kWh / (max demand × hours): a flat, low load factor is typical of a half-idle plant."""
    both = ~np.isnan(kwh[:, :3]) & ~np.isnan(max_demand_kw[:, :3])
    energy = w.total(np.where(both, kwh[:, :3], np.nan))
    demand = w.total(np.where(both, max_demand_kw[:, :3], np.nan))
    return np.minimum(w.ratio(energy, demand * HOURS_PER_MONTH) * 100.0, 100.0)


def bills_power_factor_mean_3m(power_factor: np.ndarray) -> np.ndarray:
    return w.mean(power_factor[:, :3])


def bills_power_factor_min_12m(power_factor: np.ndarray) -> np.ndarray:
    return w.minimum(power_factor[:, :12])


def bills_amount_due_last_yuan(amount_due: np.ndarray) -> np.ndarray:
    return amount_due[:, 0]


def bills_amount_due_mean_3m_yuan(amount_due: np.ndarray) -> np.ndarray:
    return w.mean(amount_due[:, :3])


def bills_amount_shock_ratio(amount_due: np.ndarray) -> np.ndarray:
    """Latest bill / mean of the 12 bills before it (bill shock)."""
    return w.ratio(amount_due[:, 0], w.mean(amount_due[:, 1:13], min_count=3))


def bills_basic_charge_share_pct_3m(basic_charge: np.ndarray, amount_due: np.ndarray) -> np.ndarray:
    """Capacity charge share of the bill: it grows as output falls and makes suspension pay (DOMAIN §2)."""
    return w.ratio(w.total(basic_charge[:, :3]), w.total(amount_due[:, :3])) * 100.0


def bills_reissued_count_12m(versions: np.ndarray) -> np.ndarray:
    """Bills re-issued (退补, more than one version known at T) in the last 12 billed months."""
    return w.count_where(versions[:, :12] > 1, versions[:, :12])


def bills_price_yuan_per_kwh_12m(
    kwh: np.ndarray, energy_charge: np.ndarray, amount_due: np.ndarray
) -> np.ndarray:
    """Own average energy price; falls back to the whole bill where the energy charge is not exported."""
    charge = np.where(np.isnan(energy_charge[:, :12]), amount_due[:, :12], energy_charge[:, :12])
    return w.ratio(w.total(charge), w.total(kwh[:, :12]))


def bills_kwh_drop_6m_yoy_kwh(kwh: np.ndarray) -> np.ndarray:
    """kWh missing against the same 6 months last year (0 when consumption did not fall)."""
    return np.maximum(w.total(kwh[:, 12:18], 6) - w.total(kwh[:, :6], 6), 0.0)


FEATURES = [
    bills_months_since_last_bill,
    bills_history_months,
    bills_kwh_last_1m,
    bills_kwh_mean_3m,
    bills_kwh_mean_12m,
    bills_kwh_slope_3m_pct,
    bills_kwh_slope_6m_pct,
    bills_kwh_slope_12m_pct,
    bills_kwh_cv_12m,
    bills_kwh_change_pct_3m_vs_prev_3m,
    bills_kwh_change_pct_3m_vs_prev_9m,
    bills_kwh_yoy_change_pct_3m,
    bills_kwh_yoy_change_pct_12m,
    bills_zero_kwh_months_12m,
    bills_near_zero_kwh_months_12m,
    bills_zero_kwh_run_months,
    bills_kwh_repeat_months_12m,
    bills_utilization_pct_3m,
    bills_peak_share_pct_3m,
    bills_valley_share_pct_3m,
    bills_peak_share_change_pp_yoy,
    bills_max_demand_to_capacity_pct_3m,
    bills_max_demand_yoy_change_pct_3m,
    bills_load_factor_pct_3m,
    bills_power_factor_mean_3m,
    bills_power_factor_min_12m,
    bills_amount_due_last_yuan,
    bills_amount_due_mean_3m_yuan,
    bills_amount_shock_ratio,
    bills_basic_charge_share_pct_3m,
    bills_reissued_count_12m,
    bills_price_yuan_per_kwh_12m,
    bills_kwh_drop_6m_yoy_kwh,
]


def compute(at: AsOf) -> dict[str, np.ndarray]:
    bills = at.bills
    part = at.part
    last_month = np.where(bills.last >= 0, at.first + bills.last, np.nan)
    inputs: dict[str, object] = {name: bills.lagged(name) for name in (*BILL_MEASURES, "versions", "copied")}
    inputs["months_since_last"] = at.month - last_month
    inputs["history_months"] = w.count(bills.values["kwh"])
    capacity = part.customers.get("contract_capacity_kva")
    inputs["capacity_kva"] = (
        np.full(part.n, np.nan) if capacity is None else capacity.to_numpy(dtype=np.float64, na_value=np.nan)
    )
    return evaluate(FEATURES, inputs)
