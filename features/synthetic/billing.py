"""Monthly bills (电费账单) from reported kWh: TOU split, demand, power factor, energy + basic charge +
power-factor adjustment, issue and due dates, and the normal re-issued bills (退补) as later versions.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from features.synthetic import domain as d
from features.synthetic.config import Calendar

ISSUE_DAYS = (3, 9)  # bills are issued on a fixed day 3–8 of the next month, per station
DUE_DAYS = np.array([15, 20, 25])  # days from issue to due date, per supply unit
REISSUE_SHARE = 0.004  # [I] share of bills corrected later (退补): normal business
REISSUE_AFTER_DAYS = (3, 21)
REISSUE_KWH_SD = 0.06
PF_SD = 0.012
LOAD_FACTOR = (0.35, 0.7)
DEMAND_SD = 0.05


@dataclass
class Bills:
    customer: np.ndarray
    month: np.ndarray
    kwh: np.ndarray
    kwh_peak: np.ndarray  # NaN where not on a TOU or two-part tariff
    kwh_flat: np.ndarray
    kwh_valley: np.ndarray
    max_demand_kw: np.ndarray
    power_factor: np.ndarray
    energy_charge: np.ndarray
    basic_charge: np.ndarray
    pf_adjustment: np.ndarray
    amount_due: np.ndarray
    issue_date: np.ndarray  # datetime64[D]
    due_date: np.ndarray
    known_at: np.ndarray  # datetime64[s]
    version: np.ndarray  # 0 first issue, 1 re-issue

    def __len__(self) -> int:
        return self.customer.shape[0]

    def take(self, idx: np.ndarray) -> Bills:
        return Bills(**{k: v[idx] for k, v in self.__dict__.items()})

    @staticmethod
    def concat(parts: list[Bills]) -> Bills:
        return Bills(**{k: np.concatenate([getattr(p, k) for p in parts]) for k in parts[0].__dict__})


def bill_dates(
    station: np.ndarray, unit: np.ndarray, calendar: Calendar, rng_station: np.ndarray, rng_unit: np.ndarray
) -> tuple[np.ndarray, np.ndarray]:
    """Issue and due dates (customers × months) from each station's issue day and each unit's due period."""
    issue_day = rng_station[station]
    due_days = rng_unit[unit]
    issue = calendar.month_start[1:][None, :] + (issue_day[:, None] - 1).astype("timedelta64[D]")
    return issue, issue + due_days[:, None].astype("timedelta64[D]")


def schedule_draws(n_stations: int, n_units: int, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    return rng.integers(*ISSUE_DAYS, size=n_stations), rng.choice(DUE_DAYS, size=n_units)


def build_bills(
    *,
    category: np.ndarray,
    tariff: np.ndarray,
    capacity_kva: np.ndarray,
    voltage_kv: np.ndarray,
    price: np.ndarray,
    active: np.ndarray,
    offline: np.ndarray,
    billed_kwh: np.ndarray,
    tou: np.ndarray,
    flat_tou: np.ndarray,
    pf_drop: np.ndarray,
    issue: np.ndarray,
    due: np.ndarray,
    calendar: Calendar,
    rng: np.random.Generator,
) -> Bills:
    n = billed_kwh.shape[0]
    c, m = np.nonzero(active > 0)
    kwh = np.round(billed_kwh[c, m], 2)
    has_tou = tariff[c] != d.SINGLE
    shares = np.where(flat_tou[c, m][:, None], 1.0 / 3.0, tou[c, m])
    parts = np.round(kwh[:, None] * shares, 2)
    parts[:, 1] = np.round(kwh - parts[:, 0] - parts[:, 2], 2)  # flat absorbs rounding so parts sum to kwh
    parts = np.maximum(parts, 0.0)
    nan = np.full(c.shape[0], np.nan)
    peak = np.where(has_tou, parts[:, 0], nan)
    flat = np.where(has_tou, parts[:, 1], nan)
    valley = np.where(has_tou, parts[:, 2], nan)
    p = price[c]
    energy = np.where(has_tou, p * (parts @ d.TOU_PRICE_RATIO), p * kwh)

    two_part = tariff[c] == d.TWO_PART
    billed_capacity_share = np.maximum(active[c, m] - offline[c, m], 0.0)
    basic = np.where(
        two_part, np.round(d.BASIC_CHARGE_PER_KVA * capacity_kva[c] * billed_capacity_share, 2), nan
    )

    big = capacity_kva[c] >= d.PF_MIN_KVA
    pf_customer = np.clip(rng.normal(0.92, 0.035, size=n), 0.72, 0.99)
    pf = pf_customer[c] + rng.normal(0.0, PF_SD, size=c.shape[0]) - pf_drop[c, m]
    pf = np.where(big, np.round(np.clip(pf, 0.5, 1.0), 2), nan)
    standard = d.pf_standard(category[c], voltage_kv[c])
    rate = np.where(big, d.pf_adjustment_rate(np.nan_to_num(pf, nan=1.0), standard), 0.0)
    base = energy + np.nan_to_num(basic)
    pf_adj = np.where(big, np.round(base * rate, 2), nan)
    energy = np.round(energy, 2)
    amount = np.round(energy + np.nan_to_num(basic) + np.nan_to_num(pf_adj), 2)

    load_factor = rng.uniform(*LOAD_FACTOR, size=n)
    hours = 24.0 * calendar.days_in_month[m] * np.maximum(active[c, m] - 0.97 * offline[c, m], 0.03)
    demand = kwh / (hours * load_factor[c]) * rng.lognormal(0.0, DEMAND_SD, size=c.shape[0])
    demand = np.minimum(demand, capacity_kva[c] * 1.05)
    demand = np.where(big | two_part, np.round(demand, 1), nan)

    issue_date = issue[c, m]
    known = issue_date.astype("datetime64[s]") + rng.integers(3600, 5 * 3600, size=c.shape[0]).astype(
        "timedelta64[s]"
    )
    bills = Bills(
        customer=c,
        month=m,
        kwh=kwh,
        kwh_peak=peak,
        kwh_flat=flat,
        kwh_valley=valley,
        max_demand_kw=demand,
        power_factor=pf,
        energy_charge=energy,
        basic_charge=basic,
        pf_adjustment=pf_adj,
        amount_due=amount,
        issue_date=issue_date,
        due_date=due[c, m],
        known_at=known,
        version=np.zeros(c.shape[0], dtype=np.int8),
    )
    corrected = reissue(bills, rng.random(len(bills)) < REISSUE_SHARE, rate, calendar, rng)
    return Bills.concat([bills, corrected])


def reissue(
    bills: Bills,
    chosen: np.ndarray,
    pf_rate: np.ndarray,
    calendar: Calendar,
    rng: np.random.Generator,
    after_days: tuple[int, int] = REISSUE_AFTER_DAYS,
) -> Bills:
    """Corrected versions of the chosen bills: new kWh, charges recomputed, a later known_at."""
    idx = np.flatnonzero(chosen)
    new = bills.take(idx)
    factor = np.clip(1.0 + rng.normal(0.0, REISSUE_KWH_SD, size=idx.size), 0.5, 1.5)
    new.kwh = np.round(new.kwh * factor, 2)
    for name in ("kwh_peak", "kwh_valley"):
        setattr(new, name, np.round(getattr(new, name) * factor, 2))
    new.kwh_flat = np.where(
        np.isnan(new.kwh_flat), np.nan, np.round(new.kwh - new.kwh_peak - new.kwh_valley, 2)
    )
    new.energy_charge = np.round(new.energy_charge * factor, 2)
    base = new.energy_charge + np.nan_to_num(new.basic_charge)
    new.pf_adjustment = np.where(np.isnan(new.pf_adjustment), np.nan, np.round(base * pf_rate[idx], 2))
    new.amount_due = np.round(base + np.nan_to_num(new.pf_adjustment), 2)
    lag = rng.integers(*after_days, size=idx.size).astype("timedelta64[D]")
    new.known_at = new.known_at + lag + rng.integers(0, 8 * 3600, size=idx.size).astype("timedelta64[s]")
    new.version = np.ones(idx.size, dtype=np.int8)
    keep = new.known_at < calendar.export_at.astype("datetime64[s]")
    return new.take(np.flatnonzero(keep))
