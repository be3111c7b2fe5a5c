"""Monthly bills (电费账单) from reported kWh: TOU split, demand, power factor, energy + basic charge +
power-factor adjustment, issue and due dates, and the normal re-issued bills (退补) as later versions.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from features.synthetic import domain as d
from features.synthetic.config import Calendar
from features.synthetic.usage import tou_month_shares

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
    tou: np.ndarray,  # each customer's peak/flat/valley habit (customers × 3)
    flat_tou: np.ndarray,
    pf_drop: np.ndarray,
    issue: np.ndarray,
    due: np.ndarray,
    calendar: Calendar,
    rng: np.random.Generator,
) -> tuple[Bills, Bills]:
    """First issues of every open customer-month (in customer, month order) and their later re-issues."""
    n = billed_kwh.shape[0]
    c, m = np.nonzero(active > 0)
    rows = c.shape[0]
    kwh = np.round(billed_kwh[c, m], 2)
    p = price[c]
    energy = p * kwh
    peak, flat, valley = (np.full(rows, np.nan) for _ in range(3))
    t = np.flatnonzero(tariff[c] != d.SINGLE)
    if t.size:
        shares = np.where(flat_tou[c[t], m[t]][:, None], 1.0 / 3.0, tou_month_shares(tou[c[t]], rng))
        parts = np.round(kwh[t, None] * shares, 2)
        parts[:, 1] = np.round(
            kwh[t] - parts[:, 0] - parts[:, 2], 2
        )  # flat absorbs rounding: parts sum to kwh
        parts = np.maximum(parts, 0.0)
        peak[t], flat[t], valley[t] = parts[:, 0], parts[:, 1], parts[:, 2]
        energy[t] = p[t] * (parts @ d.TOU_PRICE_RATIO)
    energy = np.round(energy, 2)

    basic = np.full(rows, np.nan)
    two = np.flatnonzero(tariff[c] == d.TWO_PART)
    billed_share = np.maximum(active[c[two], m[two]] - offline[c[two], m[two]], 0.0)
    basic[two] = np.round(d.BASIC_CHARGE_PER_KVA * capacity_kva[c[two]] * billed_share, 2)

    pf, pf_adj, rate = np.full(rows, np.nan), np.full(rows, np.nan), np.zeros(rows)
    pf_customer = np.clip(rng.normal(0.92, 0.035, size=n), 0.72, 0.99)
    big = np.flatnonzero(capacity_kva[c] >= d.PF_MIN_KVA)
    cb, mb = c[big], m[big]
    pf[big] = np.round(
        np.clip(pf_customer[cb] + rng.normal(0.0, PF_SD, big.size) - pf_drop[cb, mb], 0.5, 1.0), 2
    )
    rate[big] = d.pf_adjustment_rate(pf[big], d.pf_standard(category[cb], voltage_kv[cb]))
    pf_adj[big] = np.round((energy[big] + np.nan_to_num(basic[big])) * rate[big], 2)
    amount = energy.copy()
    amount[two] += basic[two]
    amount[big] += pf_adj[big]
    amount = np.round(amount, 2)

    demand = np.full(rows, np.nan)
    load_factor = rng.uniform(*LOAD_FACTOR, size=n)
    dm = np.flatnonzero((capacity_kva[c] >= d.PF_MIN_KVA) | (tariff[c] == d.TWO_PART))
    cd, md = c[dm], m[dm]
    hours = 24.0 * calendar.days_in_month[md] * np.maximum(active[cd, md] - 0.97 * offline[cd, md], 0.03)
    raw = kwh[dm] / (hours * load_factor[cd]) * rng.lognormal(0.0, DEMAND_SD, size=dm.size)
    demand[dm] = np.round(np.minimum(raw, capacity_kva[cd] * 1.05), 1)

    issue_date = issue[c, m]
    known = issue_date.astype("datetime64[s]") + rng.integers(3600, 5 * 3600, size=rows).astype(
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
        version=np.zeros(rows, dtype=np.int8),
    )
    return bills, reissue(bills, rng.random(rows) < REISSUE_SHARE, rate, calendar, rng)


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
