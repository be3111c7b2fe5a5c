"""True consumption: monthly kWh per customer (season, Spring Festival, growth, operating level, noise) and
its spread over days and over peak/flat/valley periods.

Suspensions then switch capacity off and thieves under-report; both act on these true series.
"""

from __future__ import annotations

import numpy as np

from features.synthetic import domain as d
from features.synthetic.config import Calendar

HOURS_PER_MONTH = 730.0
# [I] Utilisation (average load ÷ capacity) medians and spreads by category; residential kWh/month directly.
RESIDENTIAL_KWH_MEDIAN = 170.0
UTILISATION = {d.COM: (0.12, 0.5), d.IND: (0.20, 0.45), d.AGR: (0.08, 0.5)}
GROWTH = (0.02, 0.04)  # yearly growth mean and spread across customers
MONTHLY_NOISE_SD = np.array([0.10, 0.08, 0.06, 0.15])
SPRING_FESTIVAL_DIP = np.array([0.0, 0.25, 0.55, 0.0])  # share of output lost inside the holiday window
# Weekday profile (Mon..Sun) and day-to-day noise by category.
WEEKDAY = np.array(
    [
        [0.97, 0.97, 0.97, 0.97, 0.98, 1.07, 1.07],
        [1.02, 1.02, 1.02, 1.02, 1.02, 0.95, 0.95],
        [1.04, 1.04, 1.04, 1.04, 1.04, 0.92, 0.88],
        [1.0, 1.0, 1.0, 1.0, 1.0, 1.0, 1.0],
    ]
)
DAILY_NOISE_SD = np.array([0.18, 0.10, 0.07, 0.25])
# Time-of-use shares (peak, flat, valley) by category; industry runs night shifts.
TOU_MONTHLY_SD = 0.012
TOU_SHARES = np.array([[0.32, 0.38, 0.30], [0.45, 0.35, 0.20], [0.36, 0.32, 0.32], [0.33, 0.34, 0.33]])


def active_fraction(open_date: np.ndarray, close_date: np.ndarray, calendar: Calendar) -> np.ndarray:
    """Share of each month's days the account is open (customers × months): bills are prorated by it."""
    first = calendar.month_start[:-1][None, :]
    after = calendar.month_start[1:][None, :]
    lo = np.maximum(first, open_date[:, None])
    closed = np.where(np.isnat(close_date), calendar.month_start[-1] + np.timedelta64(1, "D"), close_date)
    hi = np.minimum(after, closed[:, None])
    days = np.maximum((hi - lo).astype(np.int64), 0)
    return days / calendar.days_in_month[None, :]


def spring_festival_overlap(calendar: Calendar) -> np.ndarray:
    """Share of each month's days inside the Spring Festival slowdown (months,)."""
    out = np.zeros(calendar.months)
    years = np.unique(calendar.year)
    for year in np.concatenate([years - 1, years, years + 1]):
        sf = d.spring_festival(int(year))
        lo = sf - np.timedelta64(d.SPRING_FESTIVAL_BEFORE_DAYS, "D")
        hi = sf + np.timedelta64(d.SPRING_FESTIVAL_AFTER_DAYS + 1, "D")
        a = np.maximum(calendar.month_start[:-1], lo)
        b = np.minimum(calendar.month_start[1:], hi)
        out += np.maximum((b - a).astype(np.int64), 0)
    return np.minimum(out / calendar.days_in_month, 1.0)


def base_consumption(
    category: np.ndarray,
    capacity_kva: np.ndarray,
    operating_level: np.ndarray,
    active: np.ndarray,
    calendar: Calendar,
    rng: np.random.Generator,
) -> tuple[np.ndarray, np.ndarray]:
    """Monthly kWh before suspensions and theft (customers × months) and each customer's normal level."""
    n = category.shape[0]
    level = np.empty(n)
    res = category == d.RES
    level[res] = rng.lognormal(np.log(RESIDENTIAL_KWH_MEDIAN), 0.55, size=res.sum())
    for cat, (median, sd) in UTILISATION.items():
        mask = category == cat
        util = np.clip(rng.lognormal(np.log(median), sd, size=mask.sum()), 0.02, 0.75)
        level[mask] = capacity_kva[mask] * HOURS_PER_MONTH * util
    growth = rng.normal(*GROWTH, size=n)
    t_years = np.arange(calendar.months) / 12.0
    season = d.SEASONALITY[category][:, calendar.month_of_year - 1]
    holiday = 1.0 - SPRING_FESTIVAL_DIP[category][:, None] * spring_festival_overlap(calendar)[None, :]
    noise = rng.lognormal(0.0, MONTHLY_NOISE_SD[category][:, None], size=(n, calendar.months))
    kwh = (
        level[:, None]
        * (1.0 + growth[:, None]) ** t_years[None, :]
        * season
        * holiday
        * operating_level
        * noise
        * active
    )
    return kwh, level


def tou_habits(category: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """Each customer's own peak/flat/valley shares (customers × 3), around its category's."""
    habit = rng.gamma(shape=80.0 * TOU_SHARES[category], scale=1.0)
    return habit / habit.sum(axis=1, keepdims=True)


def tou_month_shares(habit: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """One month's shares (rows × 3): the habit with the peak share moving a little month to month."""
    jitter = rng.normal(0.0, TOU_MONTHLY_SD, size=(habit.shape[0], 1)) * np.array([1.0, -0.5, -0.5])
    shares = np.clip(habit + jitter, 0.02, None)
    return shares / shares.sum(axis=1, keepdims=True)


def day_weights(
    category: np.ndarray,
    open_date: np.ndarray,
    close_date: np.ndarray,
    days: np.ndarray,
    rng: np.random.Generator,
) -> np.ndarray:
    """Un-normalised share of a month's kWh on each day (customers × days); 0 while the account is shut."""
    n = category.shape[0]
    weekday = (days.astype(np.int64) + 3) % 7  # 1970-01-01 was a Thursday
    w = WEEKDAY[category][:, weekday]
    w = w * rng.lognormal(0.0, DAILY_NOISE_SD[category][:, None], size=(n, days.shape[0]))
    sf_days = np.zeros(days.shape[0], dtype=bool)
    years = np.unique(days.astype("datetime64[Y]").astype(np.int64) + 1970)
    for year in years:
        sf = d.spring_festival(int(year))
        sf_days |= (days >= sf - np.timedelta64(d.SPRING_FESTIVAL_BEFORE_DAYS, "D")) & (
            days <= sf + np.timedelta64(d.SPRING_FESTIVAL_AFTER_DAYS, "D")
        )
    w = w * (1.0 - SPRING_FESTIVAL_DIP[category][:, None] * sf_days[None, :])
    closed = np.where(np.isnat(close_date), days[-1] + np.timedelta64(1, "D"), close_date)
    open_ = (days[None, :] >= open_date[:, None]) & (days[None, :] < closed[:, None])
    return np.where(open_, w, 0.0)
