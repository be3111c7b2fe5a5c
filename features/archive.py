"""Archive features (客户档案) as of T: category, industry, voltage, capacity, tariff, payment method, tenure
and group membership.

The archive is one row per customer, read through the as-of rule on open_date (a customer opened after T
does not exist at T). Its other attributes are the export's current values: the contract has no history of
archive changes, so a tariff or capacity changed after T would show its new value here (documented limit;
reductions are tracked through `suspensions` instead).
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from features.snapshot import AsOf, evaluate


def archive_usage_category(usage_category: np.ndarray) -> np.ndarray:
    return usage_category


def archive_industry_code(industry_code: np.ndarray) -> np.ndarray:
    return industry_code


def archive_industry_section(industry_code: np.ndarray) -> np.ndarray:
    """GB/T 4754 section letter (C = manufacturing, …): coarser and more robust than the division."""
    section = pd.Series(industry_code, dtype=object).str[:1]
    return section.astype(object).where(section.notna(), None).to_numpy()


def archive_voltage_kv(voltage_kv: np.ndarray) -> np.ndarray:
    return voltage_kv


def archive_capacity_kva(contract_capacity_kva: np.ndarray) -> np.ndarray:
    return contract_capacity_kva


def archive_tariff(tariff: np.ndarray) -> np.ndarray:
    return tariff


def archive_payment_method(payment_method: np.ndarray) -> np.ndarray:
    return payment_method


def archive_tenure_days(open_day: np.ndarray, today: float) -> np.ndarray:
    return np.where(open_day <= today, today - open_day, np.nan)


def is_group_member(group_id: np.ndarray) -> np.ndarray:
    """Belongs to a 集团客户 (arrears at the group's other accounts matter, DOMAIN §4)."""
    return pd.notna(group_id).astype(np.float64)


FEATURES = [
    archive_usage_category,
    archive_industry_code,
    archive_industry_section,
    archive_voltage_kv,
    archive_capacity_kva,
    archive_tariff,
    archive_payment_method,
    archive_tenure_days,
    is_group_member,
]
CATEGORICAL = (
    "archive_usage_category",
    "archive_industry_code",
    "archive_industry_section",
    "archive_tariff",
    "archive_payment_method",
)


def strings(frame: pd.DataFrame, column: str) -> np.ndarray:
    """A string column as an object array with None for missing (or all None when the export lacks it)."""
    if column not in frame.columns:
        return np.full(len(frame), None, dtype=object)
    col = frame[column].astype("string")
    return col.astype(object).where(col.notna() & (col != ""), None).to_numpy()


def numbers(frame: pd.DataFrame, column: str) -> np.ndarray:
    if column not in frame.columns:
        return np.full(len(frame), np.nan)
    return pd.to_numeric(frame[column], errors="coerce").to_numpy(dtype=np.float64, na_value=np.nan)


def compute(at: AsOf) -> dict[str, np.ndarray]:
    static = at.part.cache.get("archive")
    if static is None:  # the archive does not change with the as-of date: convert its columns once
        c = at.part.customers
        static = {
            name: strings(c, name)
            for name in ("usage_category", "industry_code", "tariff", "payment_method", "group_id")
        }
        static["voltage_kv"] = numbers(c, "voltage_kv")
        static["contract_capacity_kva"] = numbers(c, "contract_capacity_kva")
        static["open_day"] = at.part.tables["customers"]["open_day"]
        at.part.cache["archive"] = static
    return evaluate(FEATURES, {**static, "today": at.day_num})
