"""Domain facts the generator follows (DOMAIN.md §1–§4): tariffs, charges, late fees, customer mixes, seasons.

Numbers marked [S] are from DOMAIN.md's sources; [I] marks an assumption where DOMAIN found none, chosen to be
plausible and kept here in one place so it can be changed.
"""

from __future__ import annotations

import numpy as np

from features.schema import PaymentMethod, Tariff, UsageCategory

# Category codes used inside the generator's arrays (index into CATEGORIES).
CATEGORIES = (
    UsageCategory.RESIDENTIAL.value,
    UsageCategory.GENERAL_COMMERCIAL.value,
    UsageCategory.LARGE_INDUSTRIAL.value,
    UsageCategory.AGRICULTURAL.value,
)
RES, COM, IND, AGR = range(4)
# [I] residential most; large industrial 5 % so that 1,500 customers hold ~75 two-part customers.
CATEGORY_SHARE = np.array([0.77, 0.15, 0.05, 0.03])

TARIFFS = (Tariff.SINGLE.value, Tariff.TOU.value, Tariff.TWO_PART.value)
SINGLE, TOU, TWO_PART = range(3)
# [I] share of time-of-use tariffs among residential, commercial, (industrial is two-part), agricultural.
TOU_SHARE = np.array([0.35, 0.55, 0.0, 0.0])

METHODS = tuple(m.value for m in PaymentMethod)  # counter, bank_withholding, online, prepaid
COUNTER, BANK, ONLINE, PREPAID = range(4)
# [I] DOMAIN found no source for channel shares (§1 "Payment channels").
METHOD_SHARE = np.array(
    [
        [0.15, 0.25, 0.42, 0.18],  # residential: many 费控 (prepaid) meters
        [0.22, 0.28, 0.40, 0.10],  # general commercial
        [0.35, 0.35, 0.27, 0.03],  # large industrial
        [0.50, 0.20, 0.30, 0.00],  # agricultural
    ]
)

# Industries (GB/T 4754 section letter + division) per category; residential customers have none.
INDUSTRIES = (
    # general commercial
    "G51", "G52", "H61", "H62", "K70", "L72", "P83", "Q84", "I64", "R88",
    # large industrial (C13 agricultural food processing and D44 heat supply are seasonal)
    "C13", "C17", "C22", "C26", "C30", "C31", "C33", "C34", "C39", "D44",
    # agricultural
    "A01", "A03", "A04",
)  # fmt: skip
INDUSTRY_CATEGORY = np.array([COM] * 10 + [IND] * 10 + [AGR] * 3)
# [I] Relative frequency of each industry inside its category; the two seasonal industries are rarer.
INDUSTRY_WEIGHT = np.array([1.0] * 10 + [0.45] + [1.0] * 8 + [0.45] + [1.0] * 3)
INDUSTRY_NAMES = {
    "G51": "商贸", "G52": "超市", "H61": "酒店", "H62": "餐饮", "K70": "物业", "L72": "商务",
    "P83": "教育", "Q84": "医疗", "I64": "网络", "R88": "文体",
    "C13": "粮油食品", "C17": "纺织", "C22": "纸业", "C26": "化工", "C30": "建材", "C31": "钢铁",
    "C33": "金属制品", "C34": "机械", "C39": "电子", "D44": "热力",
    "A01": "种植", "A03": "养殖", "A04": "水产",
}  # fmt: skip
# Seasonal industries suspend every year in the same months (DOMAIN §2: not a downturn signal).
# (first month of the suspension, its length in months): heat supply idles outside the heating season,
# grain processing after the autumn harvest work is done.
SEASONAL_SUSPENSION = {"D44": (4, 6), "C13": (2, 3)}

# [S] Energy price 元/kWh by category, falling with voltage (Yueyang schedule, DOMAIN §1). DOMAIN gives the
# end points; the steps between them are [I] linear.
PRICE_BY_VOLTAGE = {
    RES: ((1.0, 0.5880), (np.inf, 0.5630)),
    COM: ((1.0, 0.7003), (10.0, 0.6803), (35.0, 0.6603), (np.inf, 0.6403)),
    IND: ((10.0, 0.6437), (35.0, 0.6237), (110.0, 0.6037), (np.inf, 0.5627)),
    AGR: ((1.0, 0.5487), (10.0, 0.5187), (np.inf, 0.4887)),
}
# [I] Peak/flat/valley price ratios: DOMAIN found no source; 1.5 : 1 : 0.5 is a common Chinese schedule.
TOU_PRICE_RATIO = np.array([1.5, 1.0, 0.5])
# [S] Two-part basic charge on capacity, 20 元/kVA·month, prorated by day (DOMAIN §1, §2).
BASIC_CHARGE_PER_KVA = 20.0
# [S] Power-factor adjustment applies from 100 kVA (DOMAIN §1).
PF_MIN_KVA = 100.0

# [S] Late fee (违约金) per day of the arrears: residential 1‰; others 2‰ current-year, 3‰ cross-year; ≥ 1 元.
LATE_FEE_RESIDENTIAL = 0.001
LATE_FEE_CURRENT_YEAR = 0.002
LATE_FEE_CROSS_YEAR = 0.003
LATE_FEE_MINIMUM = 1.0

# [S] Suspension rules (1996 供电营业规则 with the 2016 relaxation; DOMAIN §2), kept as parameters because the
# 2024 limits were not verified.
SUSPENSION_MIN_DAYS = 15
SUSPENSIONS_PER_YEAR = 2
SUSPENSION_DAYS_PER_YEAR = 181  # "≤ 6 months a year in total": the shortest six calendar months (Jan–Jun)
APPLICATION_WORKING_DAYS = 5  # apply ≥ 5 working days before the start
REDUCTION_MIN_DAYS = 183  # 减容 lasts 6 months …
REDUCTION_MAX_DAYS = 730  # … to 2 years

# [S] Theft settlement: back-pay plus 3× as a penalty, over at most 180 days (DOMAIN §3).
THEFT_PENALTY_MULTIPLE = 3.0
THEFT_BACKPAY_MAX_DAYS = 180
# [S] Violation settlement (DOMAIN §2): unauthorised capacity increase 3× basic charge (two-part) or 50 元/kW.
VIOLATION_BASIC_MULTIPLE = 3.0
VIOLATION_PER_KW = 50.0

# Monthly consumption seasonality by category, January first. [I] shapes; DOMAIN §6 asks for summer/winter
# peaks for households, summer for commerce, flat industry (its Spring Festival dip is applied by date),
# and Apr–Sep irrigation for agriculture.
SEASONALITY = np.array(
    [
        [1.22, 1.12, 0.95, 0.85, 0.88, 1.02, 1.32, 1.38, 1.04, 0.86, 0.92, 1.12],
        [1.02, 0.92, 0.90, 0.92, 1.00, 1.14, 1.28, 1.30, 1.10, 0.95, 0.94, 1.04],
        [1.00, 1.00, 1.00, 0.99, 0.99, 1.01, 1.03, 1.03, 1.00, 0.99, 0.98, 0.99],
        [0.30, 0.30, 0.45, 1.25, 1.55, 1.75, 1.85, 1.75, 1.35, 0.55, 0.32, 0.30],
    ]
)
# Spring Festival (春节) dates; industry slows from a week before to two weeks after.
SPRING_FESTIVAL = {
    2015: "2015-02-19", 2016: "2016-02-08", 2017: "2017-01-28", 2018: "2018-02-16", 2019: "2019-02-05",
    2020: "2020-01-25", 2021: "2021-02-12", 2022: "2022-02-01", 2023: "2023-01-22", 2024: "2024-02-10",
    2025: "2025-01-29", 2026: "2026-02-17", 2027: "2027-02-06", 2028: "2028-01-26", 2029: "2029-02-13",
    2030: "2030-02-03", 2031: "2031-01-23", 2032: "2032-02-11", 2033: "2033-01-31", 2034: "2034-02-19",
    2035: "2035-02-08", 2036: "2036-01-28", 2037: "2037-02-15", 2038: "2038-02-04", 2039: "2039-01-24",
    2040: "2040-02-12",
}  # fmt: skip
SPRING_FESTIVAL_BEFORE_DAYS = 7
SPRING_FESTIVAL_AFTER_DAYS = 14


def spring_festival(year: int) -> np.datetime64:
    # Outside the table the festival falls around 5 February on average.
    return np.datetime64(SPRING_FESTIVAL.get(year, f"{year}-02-05"), "D")


def energy_price(category: np.ndarray, voltage_kv: np.ndarray) -> np.ndarray:
    """Energy price 元/kWh per customer from its category and supply voltage."""
    price = np.zeros(category.shape[0])
    for cat, steps in PRICE_BY_VOLTAGE.items():
        mask = category == cat
        bounds = np.array([b for b, _ in steps])
        prices = np.array([p for _, p in steps])
        # A voltage at or below a bound gets that bound's price (e.g. 10 kV industry pays the 1–10 kV price).
        idx = np.searchsorted(bounds, voltage_kv[mask], side="left")
        price[mask] = prices[np.minimum(idx, len(prices) - 1)]
    return price


def pf_standard(category: np.ndarray, voltage_kv: np.ndarray) -> np.ndarray:
    """[S] Standard power factor: 0.90 high-voltage industry, 0.80 agriculture, 0.85 other ≥ 100 kVA."""
    return np.where(category == AGR, 0.80, np.where((category == IND) & (voltage_kv >= 10.0), 0.90, 0.85))


def pf_adjustment_rate(power_factor: np.ndarray, standard: np.ndarray) -> np.ndarray:
    """Share of (energy + basic charge) added (+) or credited (−) for a power factor against its standard.

    Penalty [S] (DOMAIN §1, on the 0.90 scale, shifted for 0.85/0.80): 0.5 % per 0.01 below the
    standard for the first 0.20, 1 % per 0.01 for the next 0.05 (0.65 → +15 %), then 2 % per 0.01. Credits
    above the standard are [I] from the national 1983 《功率因数调整电费办法》 table (not verified by DOMAIN).
    """
    steps = np.rint((standard - power_factor) * 100.0)
    below = np.maximum(steps, 0.0)
    penalty = (
        0.005 * np.minimum(below, 20) + 0.01 * np.clip(below - 20, 0, 5) + 0.02 * np.maximum(below - 25, 0)
    )
    above = np.maximum(-steps, 0.0).astype(np.int64)
    credit_090 = np.array([0.0, 0.0015, 0.0030, 0.0045, 0.0075])
    credit_085 = np.array([0.0, 0.001, 0.002, 0.003, 0.004, 0.005, 0.0065, 0.008, 0.0095, 0.011])
    credit_080 = np.array(
        [0.0, 0.001, 0.002, 0.003, 0.004, 0.005, 0.006, 0.007, 0.008, 0.009, 0.010, 0.0115, 0.013]
    )
    credit = np.select(
        [np.isclose(standard, 0.90), np.isclose(standard, 0.85)],
        [credit_090[np.minimum(above, 4)], credit_085[np.minimum(above, 9)]],
        credit_080[np.minimum(above, 12)],
    )
    return np.where(steps > 0, penalty, -credit)


def late_fee(principal: np.ndarray, due: np.ndarray, paid: np.ndarray, residential: np.ndarray) -> np.ndarray:
    """Late fee 元 for paying ``principal`` on day ``paid`` against ``due`` (datetime64[D] arrays).

    Days are counted after the due date up to the payment day. Non-residential arrears pay 2‰ per day in the
    bill's own year and 3‰ per day once they cross into a later year; residential 1‰ throughout; minimum 1 元.
    """
    days = np.maximum((paid - due).astype(np.int64), 0)
    year_end = (due.astype("datetime64[Y]") + 1).astype("datetime64[D]") - np.timedelta64(1, "D")
    same_year_days = np.minimum(days, np.maximum((year_end - due).astype(np.int64), 0))
    cross_days = days - same_year_days
    rate = np.where(
        residential,
        LATE_FEE_RESIDENTIAL * days,
        LATE_FEE_CURRENT_YEAR * same_year_days + LATE_FEE_CROSS_YEAR * cross_days,
    )
    fee = np.round(principal * rate, 2)
    return np.where(days > 0, np.maximum(fee, LATE_FEE_MINIMUM), 0.0)
