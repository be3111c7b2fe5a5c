"""Which features each task uses, what every feature means (unit, family) and how a reason code reads it.

Kept in git as plain data: a change to a task's list changes its `feature_set_version`, which training logs
and serving checks. Reason templates take {value} {abs_value} {dir_zh} {dir_en} (see
`serving.model.ReasonText`); a signed measure may carry a second pair of sentences for negative values, a
count its English sentence for a count of one, a change its sentences for one that shows as 0, and a 0/1 flag
its two states in words.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass

from features.windows import LOSS_RISE_CAP, PCT_CAP

# Bump when a feature's definition changes without its name changing, so models trained before are told apart.
# 2: a two-monthly customer's bills are spread over the months they cover; suspended days count each day
# once; a daily reading above 3 × the contract capacity × 24 h is not consumption.
# 3: a quarterly customer's bills are spread over the three months they cover, as two-monthly ones are.
# 4: a date reads the 60 months ending with its own (snapshot.HISTORY_MONTHS), not a grid from the partition's
# first row: a cycle customer's first bill keeps the months it covers, and history stops at 60 months.
DEFINITIONS_REVISION = 4


@dataclass(frozen=True)
class FeatureDoc:
    family: str  # archive | consumption | readings | payments | events | area | peers
    unit: str
    zh: str
    en: str
    # For a signed measure whose sentence turns around below zero ("paid 5 days before the due date" / "paid 5
    # days after it"): the sentences used for a negative value. None: the same sentence for every value.
    zh_negative: str | None = None
    en_negative: str | None = None
    # A categorical feature holding a contract column's codes: its sentence names the value in words
    # (schema.VALUE_LABELS[lang][labels]), not the code.
    labels: str | None = None
    # A count whose English sentence would say "paid 1 days": the sentence for a count that shows as 1, and
    # the negative sentence's. Chinese has no plural.
    en_one: str | None = None
    en_negative_one: str | None = None
    # A change read with {dir_zh}/{dir_en}: the sentences for one that shows as 0 at the sentence's precision,
    # which would claim a direction ("down 0 %") it does not show.
    zh_flat: str | None = None
    en_flat: str | None = None
    # A 0/1 flag: its state in words, when 0 and when 1 ("集团客户", not "集团客户标志 = 1").
    zh_off: str | None = None
    en_off: str | None = None
    zh_on: str | None = None
    en_on: str | None = None
    # A measure clipped at ±cap (features.windows.PCT_CAP and the like): a value at the cap reads "more than".
    cap: float | None = None


def _doc(
    family: str,
    unit: str,
    zh: str,
    en: str,
    negative: tuple[str, str] | None = None,
    labels: str | None = None,
    one: str | None = None,
    negative_one: str | None = None,
    flat: tuple[str, str] | None = None,
    off: tuple[str, str] | None = None,
    on: tuple[str, str] | None = None,
    cap: float | None = None,
) -> FeatureDoc:
    zh_neg, en_neg = negative or (None, None)
    zh_flat, en_flat = flat or (None, None)
    zh_off, en_off = off or (None, None)
    zh_on, en_on = on or (None, None)
    return FeatureDoc(
        family=family,
        unit=unit,
        zh=zh,
        en=en,
        zh_negative=zh_neg,
        en_negative=en_neg,
        labels=labels,
        en_one=one,
        en_negative_one=negative_one,
        zh_flat=zh_flat,
        en_flat=en_flat,
        zh_off=zh_off,
        en_off=en_off,
        zh_on=zh_on,
        en_on=en_on,
        cap=cap,
    )


# Features that state one fact twice: with every bill paid late, payments_days_before_due_mean_90d = −32
# reads 「近90天账单平均逾期 32 天缴清」 beside payments_days_late_mean_90d = 32,
# 「近90天账单平均逾期 32 天」.
# A row's reasons show the stronger of a pair only; the other's contribution stays in the rest.
RESTATED: tuple[tuple[str, str], ...] = (
    ("payments_days_late_mean_90d", "payments_days_before_due_mean_90d"),
    ("payments_days_late_mean_365d", "payments_days_before_due_mean_365d"),
)

FEATURE_DOCS: dict[str, FeatureDoc] = {
    # -- archive ---------------------------------------------------------------------------------------------
    "archive_usage_category": _doc(
        "archive", "category", "用电类别：{value}", "usage category: {value}", labels="usage_category"
    ),
    "archive_industry_code": _doc("archive", "category", "行业分类：{value}", "industry: {value}"),
    "archive_industry_section": _doc("archive", "category", "行业门类：{value}", "industry section: {value}"),
    "archive_voltage_kv": _doc("archive", "kV", "供电电压 {value:.4g} kV", "supply voltage {value:.4g} kV"),
    "archive_capacity_kva": _doc(
        "archive", "kVA", "合同容量 {value:.0f} kVA", "contract capacity {value:.0f} kVA"
    ),
    "archive_tariff": _doc("archive", "category", "电价类型：{value}", "tariff: {value}", labels="tariff"),
    "archive_payment_method": _doc(
        "archive", "category", "缴费方式：{value}", "payment method: {value}", labels="payment_method"
    ),
    "archive_tenure_days": _doc(
        "archive",
        "days",
        "立户 {value:.0f} 天",
        "customer for {value:.0f} days",
        one="customer for {value:.0f} day",
    ),
    "is_group_member": _doc(
        "archive",
        "flag",
        "集团客户标志 = {value:.0f}",
        "group customer flag = {value:.0f}",
        off=("非集团客户", "not part of a customer group"),
        on=("集团客户", "part of a customer group"),
    ),
    # -- consumption (monthly bills) -------------------------------------------------------------------------
    "bills_months_since_last_bill": _doc(
        "consumption",
        "months",
        "距最近一期账单 {value:.0f} 个月",
        "{value:.0f} months since the latest bill",
        one="{value:.0f} month since the latest bill",
    ),
    "bills_history_months": _doc(
        "consumption",
        "months",
        "已有 {value:.0f} 个月账单",
        "{value:.0f} months of bills on record",
        one="{value:.0f} month of bills on record",
    ),
    "bills_kwh_last_1m": _doc(
        "consumption", "kWh", "最近一月电量 {value:,.0f} kWh", "last month {value:,.0f} kWh"
    ),
    "bills_kwh_mean_3m": _doc(
        "consumption",
        "kWh",
        "近3个月月均电量 {value:,.0f} kWh",
        "{value:,.0f} kWh a month over the last 3 months",
    ),
    "bills_kwh_mean_12m": _doc(
        "consumption",
        "kWh",
        "近12个月月均电量 {value:,.0f} kWh",
        "{value:,.0f} kWh a month over the last 12 months",
    ),
    "bills_kwh_slope_3m_pct": _doc(
        "consumption",
        "% per month",
        # The straight-line slope as a share of the window's mean, not a monthly rate: "falls 136 % a month"
        # was possible for 76,695 -> 2,349 -> 2,536 kWh.
        "近3个月电量呈{dir_zh}趋势，每月变化约为期间月均的 {abs_value:.1f}%",
        (
            "kWh trend over the last 3 months: {dir_en} by {abs_value:.1f} % of the period's monthly mean a "
            "month"
        ),
        flat=("近3个月电量基本持平", "kWh about unchanged over the last 3 months"),
        cap=PCT_CAP,
    ),
    "bills_kwh_slope_6m_pct": _doc(
        "consumption",
        "% per month",
        # The straight-line slope as a share of the window's mean, not a monthly rate: "falls 136 % a month"
        # was possible for 76,695 -> 2,349 -> 2,536 kWh.
        "近6个月电量呈{dir_zh}趋势，每月变化约为期间月均的 {abs_value:.1f}%",
        (
            "kWh trend over the last 6 months: {dir_en} by {abs_value:.1f} % of the period's monthly mean a "
            "month"
        ),
        flat=("近6个月电量基本持平", "kWh about unchanged over the last 6 months"),
        cap=PCT_CAP,
    ),
    "bills_kwh_slope_12m_pct": _doc(
        "consumption",
        "% per month",
        # The straight-line slope as a share of the window's mean, not a monthly rate: "falls 136 % a month"
        # was possible for 76,695 -> 2,349 -> 2,536 kWh.
        "近12个月电量呈{dir_zh}趋势，每月变化约为期间月均的 {abs_value:.1f}%",
        (
            "kWh trend over the last 12 months: {dir_en} by {abs_value:.1f} % of the period's monthly mean a "
            "month"
        ),
        flat=("近12个月电量基本持平", "kWh about unchanged over the last 12 months"),
        cap=PCT_CAP,
    ),
    "bills_kwh_cv_12m": _doc(
        "consumption",
        "ratio",
        "近12个月电量波动系数 {value:.2f}",
        "kWh coefficient of variation {value:.2f} (12 months)",
    ),
    "bills_kwh_change_pct_3m_vs_prev_3m": _doc(
        "consumption",
        "%",
        "近3个月电量较前3个月{dir_zh}{abs_value:.0f}%",
        "kWh over the last 3 months {dir_en} {abs_value:.0f} % on the 3 months before",
        flat=(
            "近3个月电量与前3个月基本持平",
            "kWh over the last 3 months about the same as the 3 months before",
        ),
        cap=PCT_CAP,
    ),
    "bills_kwh_change_pct_3m_vs_prev_9m": _doc(
        "consumption",
        "%",
        "近3个月月均电量较此前9个月{dir_zh}{abs_value:.0f}%",
        "monthly kWh over the last 3 months {dir_en} {abs_value:.0f} % on the 9 months before",
        flat=(
            "近3个月月均电量与此前9个月基本持平",
            "monthly kWh over the last 3 months about the same as the 9 months before",
        ),
        cap=PCT_CAP,
    ),
    "bills_kwh_yoy_change_pct_3m": _doc(
        "consumption",
        "%",
        "近3个月电量较去年同期{dir_zh}{abs_value:.0f}%",
        "kWh over the last 3 months {dir_en} {abs_value:.0f} % on the same months last year",
        flat=(
            "近3个月电量与去年同期基本持平",
            "kWh over the last 3 months about the same as the same months last year",
        ),
        cap=PCT_CAP,
    ),
    "bills_kwh_yoy_change_pct_12m": _doc(
        "consumption",
        "%",
        "近12个月电量较上一年{dir_zh}{abs_value:.0f}%",
        "kWh over the last 12 months {dir_en} {abs_value:.0f} % on the year before",
        flat=(
            "近12个月电量与上一年基本持平",
            "kWh over the last 12 months about the same as the year before",
        ),
        cap=PCT_CAP,
    ),
    "bills_zero_kwh_months_12m": _doc(
        "consumption",
        "months",
        "近12个月零电量 {value:.0f} 个月",
        "{value:.0f} zero-kWh months in the last 12",
        one="{value:.0f} zero-kWh month in the last 12",
    ),
    "bills_near_zero_kwh_months_12m": _doc(
        "consumption",
        "months",
        "近12个月电量不足均值一成的月份 {value:.0f} 个",
        "{value:.0f} months under 10 % of the usual kWh in the last 12",
        one="{value:.0f} month under 10 % of the usual kWh in the last 12",
    ),
    "bills_zero_kwh_run_months": _doc(
        "consumption",
        "months",
        "连续零电量 {value:.0f} 个月",
        "{value:.0f} zero-kWh months in a row",
        one="zero kWh in the latest month",
        flat=("最近一月电量不为零", "latest month not zero"),
    ),
    "bills_kwh_repeat_months_12m": _doc(
        "consumption",
        "months",
        "近12个月有 {value:.0f} 个月电量与上月几乎相同（相差≤0.1%）",
        "{value:.0f} of the last 12 months within 0.1 % of the previous month's kWh",
    ),
    "bills_utilization_pct_3m": _doc(
        "consumption",
        "%",
        "近3个月容量利用率 {value:.1f}%",
        "capacity utilisation {value:.1f} % over the last 3 months",
    ),
    "bills_peak_share_pct_3m": _doc(
        "consumption",
        "%",
        "近3个月峰段电量占比 {value:.0f}%",
        "peak-hour share {value:.0f} % over the last 3 months",
    ),
    "bills_valley_share_pct_3m": _doc(
        "consumption",
        "%",
        "近3个月谷段电量占比 {value:.0f}%",
        "valley-hour share {value:.0f} % over the last 3 months",
    ),
    "bills_peak_share_change_pp_yoy": _doc(
        "consumption",
        "percentage points",
        "峰段占比较去年同期{dir_zh}{abs_value:.1f}个百分点",
        "peak-hour share {dir_en} {abs_value:.1f} points on the same months last year",
        flat=("峰段占比与去年同期基本持平", "peak-hour share about the same as the same months last year"),
    ),
    "bills_max_demand_to_capacity_pct_3m": _doc(
        "consumption",
        "%",
        "近3个月月最大需量均值为合同容量的 {value:.0f}%",
        "mean monthly max demand {value:.0f} % of contract capacity over the last 3 months",
    ),
    "bills_max_demand_yoy_change_pct_3m": _doc(
        "consumption",
        "%",
        "最大需量较去年同期{dir_zh}{abs_value:.0f}%",
        "max demand {dir_en} {abs_value:.0f} % on the same months last year",
        flat=("最大需量与去年同期基本持平", "max demand about the same as the same months last year"),
        cap=PCT_CAP,
    ),
    "bills_load_factor_pct_3m": _doc(
        "consumption", "%", "近3个月负荷率 {value:.0f}%", "load factor {value:.0f} % over the last 3 months"
    ),
    "bills_power_factor_mean_3m": _doc(
        "consumption",
        "ratio",
        "近3个月平均功率因数 {value:.2f}",
        "mean power factor {value:.2f} over the last 3 months",
    ),
    "bills_power_factor_min_12m": _doc(
        "consumption",
        "ratio",
        "近12个月最低功率因数 {value:.2f}",
        "lowest power factor {value:.2f} in the last 12 months",
    ),
    "bills_amount_due_last_yuan": _doc(
        "consumption", "yuan", "最近一期电费 {value:,.0f} 元", "latest bill {value:,.0f} yuan"
    ),
    "bills_amount_due_mean_3m_yuan": _doc(
        "consumption",
        "yuan",
        "近3期账单平均每期电费 {value:,.0f} 元",
        "{value:,.0f} yuan a bill over the last 3 bills",
    ),
    "bills_amount_shock_ratio": _doc(
        "consumption",
        "ratio",
        "最近一期电费为此前12期均值的 {value:.1f} 倍",
        "latest bill {value:.1f}× the mean of the 12 before",
    ),
    "bills_basic_charge_share_pct_3m": _doc(
        "consumption",
        "%",
        "近3个月基本电费占电费 {value:.0f}%",
        "basic (capacity) charge {value:.0f} % of the bill over the last 3 months",
    ),
    "bills_reissued_count_12m": _doc(
        "consumption",
        "bills",
        "近12个月有退补重开的账单 {value:.0f} 张",
        "{value:.0f} bills re-issued in the last 12 months",
        one="{value:.0f} bill re-issued in the last 12 months",
    ),
    "bills_price_yuan_per_kwh_12m": _doc(
        "consumption",
        "yuan/kWh",
        "近12个月平均电价 {value:.3f} 元/kWh",
        "average price {value:.3f} yuan/kWh (12 months)",
    ),
    "bills_kwh_drop_6m_yoy_kwh": _doc(
        "consumption",
        "kWh",
        "近6个月电量比去年同期少 {abs_value:,.0f} kWh",
        "{abs_value:,.0f} kWh less than the same 6 months last year",
        negative=(
            "近6个月电量比去年同期多 {abs_value:,.0f} kWh",
            "{abs_value:,.0f} kWh more than the same 6 months last year",
        ),
        # A rise is 0 (the function keeps drops only): "about the same" read a plant up 191 % as flat.
        flat=(
            "近6个月电量不低于去年同期",
            "kWh over the last 6 months not below the same 6 months last year",
        ),
    ),
    # -- daily readings --------------------------------------------------------------------------------------
    "readings_days_observed_90d": _doc(
        "readings",
        "days",
        "近90天有日冻结数据 {value:.0f} 天",
        "{value:.0f} days with daily readings in the last 90",
        one="{value:.0f} day with daily readings in the last 90",
    ),
    "readings_kwh_mean_30d": _doc(
        "readings",
        "kWh/day",
        "近30天日均电量 {value:,.1f} kWh",
        "{value:,.1f} kWh a day over the last 30 days",
    ),
    "readings_kwh_change_pct_30d_vs_prev_90d": _doc(
        "readings",
        "%",
        "近30天日均电量较此前90天{dir_zh}{abs_value:.0f}%",
        "daily kWh over the last 30 days {dir_en} {abs_value:.0f} % on the 90 days before",
        flat=(
            "近30天日均电量与此前90天基本持平",
            "daily kWh over the last 30 days about the same as the 90 days before",
        ),
        cap=PCT_CAP,
    ),
    "readings_zero_days_30d": _doc(
        "readings",
        "days",
        "近30天零电量 {value:.0f} 天",
        "{value:.0f} zero-kWh days in the last 30",
        one="{value:.0f} zero-kWh day in the last 30",
    ),
    "readings_zero_days_90d": _doc(
        "readings",
        "days",
        "近90天零电量 {value:.0f} 天",
        "{value:.0f} zero-kWh days in the last 90",
        one="{value:.0f} zero-kWh day in the last 90",
    ),
    "readings_zero_run_max_days_90d": _doc(
        "readings",
        "days",
        "近90天最长连续零电量 {value:.0f} 天",
        "longest zero-kWh run {value:.0f} days (last 90)",
        one="longest zero-kWh run {value:.0f} day (last 90)",
    ),
    "readings_flat_days_90d": _doc(
        "readings",
        "days",
        "近90天电量与前一日完全相同 {value:.0f} 天",
        "{value:.0f} days identical to the day before (last 90)",
        one="{value:.0f} day identical to the day before (last 90)",
    ),
    "readings_weekend_weekday_ratio_90d": _doc(
        "readings",
        "ratio",
        "近90天周末/工作日电量比 {value:.2f}",
        "weekend / weekday kWh ratio {value:.2f} (last 90 days)",
    ),
    "readings_level_drop_max_pct_90d": _doc(
        "readings",
        "%",
        # The largest fall of the 14-day mean at any split day: every customer has one, often small.
        "近90天14日均电量最大降幅 {value:.0f}%",
        "largest fall of the 14-day mean daily kWh in the last 90 days: {value:.0f} %",
        negative=("近90天14日均电量未出现下降", "the 14-day mean daily kWh did not fall in the last 90 days"),
    ),
    "readings_days_since_level_drop": _doc(
        "readings",
        "days",
        "近90天14日均电量降幅最大处在 {value:.0f} 天前",
        "the largest fall of the 14-day mean was {value:.0f} days ago",
        one="the largest fall of the 14-day mean was {value:.0f} day ago",
    ),
    "readings_variance_ratio_30d_vs_prev_90d": _doc(
        "readings",
        "ratio",
        "近30天电量波动为此前90天的 {value:.2f} 倍",
        "daily variation {value:.2f}× that of the 90 days before",
    ),
    "readings_cv_90d": _doc(
        "readings",
        "ratio",
        "近90天日电量波动系数 {value:.2f}",
        "daily kWh coefficient of variation {value:.2f} (90 days)",
    ),
    "readings_negative_days_90d": _doc(
        "readings",
        "days",
        # Negative, or more than the contract capacity can draw in a day (a register rollover).
        "近90天出现不可能读数（负值或超出容量上限）{value:.0f} 天",
        "{value:.0f} days with impossible readings (negative, or above what the capacity can draw; last 90)",
        one=(
            "{value:.0f} day with impossible readings (negative, or above what the capacity can draw; last "
            "90)"
        ),
    ),
    # -- payments --------------------------------------------------------------------------------------------
    "payments_days_late_mean_90d": _doc(
        "payments",
        "days",
        "近90天到期账单平均逾期 {value:.0f} 天（未缴清的计至今）",
        "bills due in the last 90 days: {value:.0f} days overdue on average (open ones counted so far)",
        one="bills due in the last 90 days: {value:.0f} day overdue on average (open ones counted so far)",
        flat=("近90天到期账单均未逾期", "no bill due in the last 90 days was late"),
    ),
    "payments_days_late_mean_365d": _doc(
        "payments",
        "days",
        "近一年到期账单平均逾期 {value:.0f} 天（未缴清的计至今）",
        "bills due in the last year: {value:.0f} days overdue on average (open ones counted so far)",
        one="bills due in the last year: {value:.0f} day overdue on average (open ones counted so far)",
        flat=("近一年到期账单均未逾期", "no bill due in the last year was late"),
    ),
    "payments_days_late_max_365d": _doc(
        "payments",
        "days",
        "近一年最长逾期 {value:.0f} 天",
        "longest delay {value:.0f} days in the last year",
        one="longest delay {value:.0f} day in the last year",
    ),
    "payments_days_late_last": _doc(
        "payments",
        "days",
        "最近一期已到期账单逾期 {value:.0f} 天（未缴清的计至今）",
        "latest bill past its due date: {value:.0f} days late (so far, if still open)",
        one="latest bill past its due date: {value:.0f} day late (so far, if still open)",
        flat=("最近一期已到期账单未逾期", "latest due bill not late"),
    ),
    "payments_days_before_due_mean_90d": _doc(
        "payments",
        "days",
        # An open bill counts its days overdue so far: 缴清 / "paid" read a customer with two unpaid bills of
        # three as one who pays late (a reviewer's 4300000470: 1 day early, 38 and 7 days overdue and open).
        "近90天到期账单平均早于到期日 {abs_value:.0f} 天（未缴清的按已逾期天数计）",
        (
            "bills due in the last 90 days: on average {abs_value:.0f} days before the due date (open ones "
            "count their days overdue)"
        ),
        negative=(
            "近90天到期账单平均超过到期日 {abs_value:.0f} 天（含至今未缴清的）",
            (
                "bills due in the last 90 days: on average {abs_value:.0f} days past the due date (open ones "
                "count so far)"
            ),
        ),
        one=(
            "bills due in the last 90 days: on average {abs_value:.0f} day before the due date (open ones "
            "count their days overdue)"
        ),
        negative_one=(
            "bills due in the last 90 days: on average {abs_value:.0f} day past the due date (open ones "
            "count so far)"
        ),
        flat=(
            "近90天到期账单平均在到期日当天（未缴清的按已逾期天数计）",
            "bills due in the last 90 days: on average on the due date (open ones count their days overdue)",
        ),
    ),
    "payments_days_before_due_mean_365d": _doc(
        "payments",
        "days",
        # An open bill counts its days overdue so far: 缴清 / "paid" read a customer with two unpaid bills of
        # three as one who pays late (a reviewer's 4300000470: 1 day early, 38 and 7 days overdue and open).
        "近一年到期账单平均早于到期日 {abs_value:.0f} 天（未缴清的按已逾期天数计）",
        (
            "bills due in the last year: on average {abs_value:.0f} days before the due date (open ones "
            "count their days overdue)"
        ),
        negative=(
            "近一年到期账单平均超过到期日 {abs_value:.0f} 天（含至今未缴清的）",
            (
                "bills due in the last year: on average {abs_value:.0f} days past the due date (open ones "
                "count so far)"
            ),
        ),
        one=(
            "bills due in the last year: on average {abs_value:.0f} day before the due date (open ones count "
            "their days overdue)"
        ),
        negative_one=(
            "bills due in the last year: on average {abs_value:.0f} day past the due date (open ones count "
            "so far)"
        ),
        flat=(
            "近一年到期账单平均在到期日当天（未缴清的按已逾期天数计）",
            "bills due in the last year: on average on the due date (open ones count their days overdue)",
        ),
    ),
    "payments_days_before_due_mean_730d": _doc(
        "payments",
        "days",
        # An open bill counts its days overdue so far: 缴清 / "paid" read a customer with two unpaid bills of
        # three as one who pays late (a reviewer's 4300000470: 1 day early, 38 and 7 days overdue and open).
        "近两年到期账单平均早于到期日 {abs_value:.0f} 天（未缴清的按已逾期天数计）",
        (
            "bills due in the last two years: on average {abs_value:.0f} days before the due date (open ones "
            "count their days overdue)"
        ),
        negative=(
            "近两年到期账单平均超过到期日 {abs_value:.0f} 天（含至今未缴清的）",
            (
                "bills due in the last two years: on average {abs_value:.0f} days past the due date (open "
                "ones count so far)"
            ),
        ),
        one=(
            "bills due in the last two years: on average {abs_value:.0f} day before the due date (open ones "
            "count their days overdue)"
        ),
        negative_one=(
            "bills due in the last two years: on average {abs_value:.0f} day past the due date (open ones "
            "count so far)"
        ),
        flat=(
            "近两年到期账单平均在到期日当天（未缴清的按已逾期天数计）",
            (
                "bills due in the last two years: on average on the due date (open ones count their days "
                "overdue)"
            ),
        ),
    ),
    "payments_window_left_share_365d": _doc(
        "payments",
        "ratio",
        "近一年到期账单平均在缴费期还剩 {abs_value:.0%} 时缴清（未缴清的按已逾期计）",
        (
            "bills due in the last year: paid with {abs_value:.0%} of the payment window left on average "
            "(open ones count as overdue)"
        ),
        negative=(
            "近一年到期账单平均超过到期日达缴费期长度的 {abs_value:.0%}（含未缴清的，每张最多计3倍）",
            (
                "bills due in the last year: on average {abs_value:.0%} of a payment window past the due "
                "date (open ones included, each at most 3 windows)"
            ),
        ),
        flat=(
            "近一年到期账单平均在缴费期截止时缴清（未缴清的按已逾期计）",
            (
                "bills due in the last year: paid as the payment window closed on average (open ones count "
                "as overdue)"
            ),
        ),
    ),
    "payments_window_left_share_730d": _doc(
        "payments",
        "ratio",
        "近两年到期账单平均在缴费期还剩 {abs_value:.0%} 时缴清（未缴清的按已逾期计）",
        (
            "bills due in the last two years: paid with {abs_value:.0%} of the payment window left on "
            "average (open ones count as overdue)"
        ),
        negative=(
            "近两年到期账单平均超过到期日达缴费期长度的 {abs_value:.0%}（含未缴清的，每张最多计3倍）",
            (
                "bills due in the last two years: on average {abs_value:.0%} of a payment window past the "
                "due date (open ones included, each at most 3 windows)"
            ),
        ),
        flat=(
            "近两年到期账单平均在缴费期截止时缴清（未缴清的按已逾期计）",
            (
                "bills due in the last two years: paid as the payment window closed on average (open ones "
                "count as overdue)"
            ),
        ),
    ),
    # An open bill counts minus its days overdue so far, so for a customer who has stopped paying the year's
    # older open bills weigh more than the last 90 days' newer ones: "paid 87 days earlier" was said of a
    # customer with ten unpaid bills. The sentences say what the number measures, paid or not.
    "payments_days_before_due_change_90d_vs_365d": _doc(
        "payments",
        "days",
        "近90天账单比近一年平均早缴或少逾期 {abs_value:.0f} 天",
        "bills of the last 90 days were {abs_value:.0f} days less late than the year's average",
        negative=(
            "近90天账单比近一年平均晚缴或多逾期 {abs_value:.0f} 天",
            "bills of the last 90 days were {abs_value:.0f} days later than the year's average",
        ),
        one="bills of the last 90 days were {abs_value:.0f} day less late than the year's average",
        negative_one="bills of the last 90 days were {abs_value:.0f} day later than the year's average",
        flat=(
            "近90天账单的缴费时点与近一年平均基本相同",
            "bills of the last 90 days were as late as the year's average",
        ),
    ),
    "payments_late_count_180d": _doc(
        "payments",
        "bills",
        "近6个月逾期账单 {value:.0f} 张（含尚未缴清的）",
        "{value:.0f} bills late in the last 6 months (paid late or still open)",
        one="{value:.0f} bill late in the last 6 months (paid late or still open)",
    ),
    "payments_late_count_365d": _doc(
        "payments",
        "bills",
        "近12个月逾期账单 {value:.0f} 张（含尚未缴清的）",
        "{value:.0f} bills late in the last 12 months (paid late or still open)",
        one="{value:.0f} bill late in the last 12 months (paid late or still open)",
    ),
    "payments_late_count_730d": _doc(
        "payments",
        "bills",
        "近两年逾期账单 {value:.0f} 张（含尚未缴清的）",
        "{value:.0f} bills late in the last two years (paid late or still open)",
        one="{value:.0f} bill late in the last two years (paid late or still open)",
    ),
    "payments_late_30d_count_365d": _doc(
        "payments",
        "bills",
        "近12个月逾期超30天的账单 {value:.0f} 张（含尚未缴清的）",
        "{value:.0f} bills over 30 days late in the last 12 months (paid late or still open)",
        one="{value:.0f} bill over 30 days late in the last 12 months (paid late or still open)",
    ),
    "payments_partial_count_365d": _doc(
        "payments",
        "bills",
        "近12个月分次或部分缴费 {value:.0f} 次",
        "{value:.0f} bills paid in instalments or only in part in the last 12 months",
        one="{value:.0f} bill paid in instalments or only in part in the last 12 months",
    ),
    "payments_unpaid_count_365d": _doc(
        "payments",
        "bills",
        "近12个月仍未结清账单 {value:.0f} 张",
        "{value:.0f} bills of the last 12 months still open",
        one="{value:.0f} bill of the last 12 months still open",
    ),
    "payments_outstanding_yuan": _doc(
        "payments", "yuan", "当前欠费 {value:,.0f} 元", "{value:,.0f} yuan outstanding"
    ),
    "payments_outstanding_age_days": _doc(
        "payments",
        "days",
        "最早一笔欠费已逾期 {value:.0f} 天",
        "oldest open bill overdue {value:.0f} days",
        one="oldest open bill overdue {value:.0f} day",
        flat=("当前无逾期欠费", "no overdue bill open"),  # 0 when nothing is open, not "overdue 0 days"
    ),
    "payments_outstanding_to_bill_ratio": _doc(
        "payments",
        "ratio",
        "欠费为近3期平均每期电费的 {value:.1f} 倍",
        "outstanding {value:.1f}× the average of the last 3 bills",
    ),
    "payments_paid_ratio_365d": _doc(
        "payments",
        "ratio",
        "近一年应收电费回收率 {value:.0%}",
        "{value:.0%} of the amount due in the last year paid",
    ),
    "payments_late_fee_sum_365d_yuan": _doc(
        "payments",
        "yuan",
        "近一年缴纳违约金 {value:,.0f} 元",
        "{value:,.0f} yuan of late fees paid in the last year",
    ),
    "payments_count_365d": _doc(
        "payments",
        "payments",
        "近一年缴费 {value:.0f} 笔",
        "{value:.0f} payments in the last year",
        one="{value:.0f} payment in the last year",
    ),
    "payments_channel_changes_365d": _doc(
        "payments",
        "changes",
        "近一年更换缴费渠道 {value:.0f} 次",
        "payment channel changed {value:.0f} times in the last year",
        one="payment channel changed once in the last year",
    ),
    # -- events ----------------------------------------------------------------------------------------------
    "events_suspension_count_365d": _doc(
        "events",
        "applications",
        "近一年申请暂停 {value:.0f} 次",
        "{value:.0f} suspension applications in the last year",
        one="{value:.0f} suspension application in the last year",
    ),
    "events_suspension_count_730d": _doc(
        "events",
        "applications",
        "近两年申请暂停 {value:.0f} 次",
        "{value:.0f} suspension applications in 2 years",
        one="{value:.0f} suspension application in 2 years",
    ),
    "events_reduction_count_730d": _doc(
        "events",
        "applications",
        "近两年申请减容 {value:.0f} 次",
        "{value:.0f} capacity reductions in 2 years",
        one="{value:.0f} capacity reduction in 2 years",
    ),
    "events_restore_count_365d": _doc(
        "events",
        "applications",
        # Restorations of a suspension or reduction: 恢复用电 reads as reconnection after a cut for arrears.
        "近一年申请暂停/减容恢复 {value:.0f} 次",
        "{value:.0f} suspension or reduction restorations applied for in the last year",
        one="{value:.0f} suspension or reduction restoration applied for in the last year",
    ),
    "events_changes_same_season_last_year": _doc(
        "events",
        "applications",
        "去年同期（此后半年）暂停/减容申请 {value:.0f} 次",
        "{value:.0f} suspension or reduction applications in the same season last year",
        one="{value:.0f} suspension or reduction application in the same season last year",
    ),
    "events_days_since_last_change": _doc(
        "events",
        "days",
        "距上次暂停/减容申请 {value:.0f} 天",
        "{value:.0f} days since the last suspension or reduction application",
        one="{value:.0f} day since the last suspension or reduction application",
    ),
    "events_suspended_days_365d": _doc(
        "events",
        "days",
        "近一年暂停 {value:.0f} 天",
        "suspended {value:.0f} days in the last year",
        one="suspended {value:.0f} day in the last year",
    ),
    "events_suspended_days_same_season_last_year": _doc(
        "events",
        "days",
        "去年同期（未来半年对应时段）暂停 {value:.0f} 天",
        "suspended {value:.0f} days in the same half-year last year",
        one="suspended {value:.0f} day in the same half-year last year",
    ),
    "is_suspended_at_as_of": _doc(
        "events",
        "flag",
        "当前暂停标志 = {value:.0f}",
        "suspended now flag = {value:.0f}",
        off=("当前未暂停用电", "not suspended now"),
        on=("当前暂停用电中", "suspended now"),
    ),
    "events_reduced_capacity_pct": _doc(
        "events",
        "%",
        "当前减容 {value:.0f}% 合同容量",
        "{value:.0f} % of capacity reduced now",
        flat=("当前无减容", "no capacity reduction in force"),
    ),
    "has_scheduled_change": _doc(
        "events",
        "flag",
        "已申请待生效的暂停/减容 = {value:.0f}",
        "suspension or reduction scheduled = {value:.0f}",
        off=("无待生效的暂停/减容申请", "no suspension or reduction scheduled"),
        on=("已申请暂停/减容，尚未生效", "a suspension or reduction is scheduled"),
    ),
    "events_inspection_count_730d": _doc(
        "events",
        "inspections",
        "近两年被检查 {value:.0f} 次",
        "{value:.0f} inspections in 2 years",
        one="{value:.0f} inspection in 2 years",
    ),
    "events_days_since_last_inspection": _doc(
        "events",
        "days",
        "距上次用电检查 {value:.0f} 天",
        "{value:.0f} days since the last inspection",
        one="{value:.0f} day since the last inspection",
    ),
    "events_violation_count_730d": _doc(
        "events",
        "inspections",
        "近两年违约用电 {value:.0f} 次",
        "{value:.0f} contract violations found in 2 years",
        one="{value:.0f} contract violation found in 2 years",
    ),
    "has_theft_finding": _doc(
        "events",
        "flag",
        "曾查实窃电 = {value:.0f}",
        "theft found before = {value:.0f}",
        off=("未曾查实窃电", "no theft found before"),
        on=("曾查实窃电", "theft found before"),
    ),
    "events_recovered_kwh_730d": _doc(
        "events", "kWh", "近两年追补电量 {value:,.0f} kWh", "{value:,.0f} kWh back-billed in 2 years"
    ),
    # -- 台区 (transformer areas) ---------------------------------------------------------------------------
    "area_line_loss_pct_3m": _doc(
        "area",
        "%",
        "所在台区近3个月线损率 {value:.1f}%",
        "area line loss {value:.1f} % over the last 3 months",
    ),
    "area_line_loss_pct_12m": _doc(
        "area",
        "%",
        "所在台区近12个月线损率 {value:.1f}%",
        "area line loss {value:.1f} % over the last 12 months",
    ),
    "area_line_loss_change_pp_yoy": _doc(
        "area",
        "percentage points",
        "台区线损率较去年同期{dir_zh}{abs_value:.1f}个百分点",
        "area line loss {dir_en} {abs_value:.1f} points on the same months last year",
        flat=("台区线损率与去年同期基本持平", "area line loss about the same as the same months last year"),
    ),
    "area_line_loss_slope_pp_6m": _doc(
        "area",
        "points per month",
        "台区线损率近6个月每月{dir_zh}{abs_value:.2f}个百分点",
        "area line loss {dir_en} {abs_value:.2f} points a month over 6 months",
        flat=("台区线损率近6个月基本持平", "area line loss about unchanged over 6 months"),
    ),
    "area_customers_active": _doc(
        "area",
        "customers",
        "所在台区在用客户 {value:.0f} 户",
        "{value:.0f} active customers in the area",
        one="{value:.0f} active customer in the area",
    ),
    "area_transformer_load_pct_3m": _doc(
        "area",
        "%",
        "近3个月台区变压器平均负载率 {value:.0f}%",
        "area transformer load {value:.0f} % over the last 3 months",
    ),
    "area_kwh_share_pct_3m": _doc(
        "area", "%", "占台区售电量 {value:.1f}%", "{value:.1f} % of the area's billed kWh"
    ),
    "area_kwh_share_change_pp_yoy": _doc(
        "area",
        "percentage points",
        "占台区电量比例较去年同期{dir_zh}{abs_value:.1f}个百分点",
        "share of the area's kWh {dir_en} {abs_value:.1f} points on last year",
        flat=("占台区电量比例与去年同期基本持平", "share of the area's kWh about the same as last year"),
    ),
    "area_loss_corr_own_kwh_12m": _doc(
        "area",
        "ratio",
        "近12个月本户电量与台区损失电量的相关系数为 {value:.2f}",
        "correlation {value:.2f} between its monthly kWh and the area's lost kWh (12 months)",
    ),
    "area_loss_rise_vs_own_drop_pct": _doc(
        "area",
        "%",
        "台区损失电量的增加相当于本户电量下降的 {value:.0f}%",
        "the area's lost kWh rose by {value:.0f} % of this customer's kWh fall",
        negative=(
            "本户电量下降期间台区损失电量反而减少，减少量相当于本户降幅的 {abs_value:.0f}%",
            "the area's lost kWh fell by {abs_value:.0f} % of this customer's kWh fall",
        ),
        cap=LOSS_RISE_CAP,
    ),
    # -- peers -----------------------------------------------------------------------------------------------
    "peers_industry_kwh_yoy_change_pct": _doc(
        "peers",
        "%",
        # The median of the peers' 3-month year-on-year changes (households: their usage category).
        "同行业（无行业代码时为同用电类别）客户近3个月电量同比变化中位数：{dir_zh}{abs_value:.0f}%",
        (
            "the industry's (or usage category's) median customer: kWh {dir_en} {abs_value:.0f} % on the "
            "same 3 months last year"
        ),
        flat=(
            "同行业（无行业代码时为同用电类别）客户近3个月电量同比变化中位数：基本持平",
            (
                "the industry's (or usage category's) median customer: kWh about the same as the same 3 "
                "months last year"
            ),
        ),
    ),
    "peers_station_kwh_yoy_change_pct": _doc(
        "peers",
        "%",
        "同供电所客户近3个月电量同比变化中位数：{dir_zh}{abs_value:.0f}%",
        "the station's median customer: kWh {dir_en} {abs_value:.0f} % on the same 3 months last year",
        flat=(
            "同供电所客户近3个月电量同比变化中位数：基本持平",
            "the station's median customer: kWh about the same as the same 3 months last year",
        ),
    ),
    "peers_kwh_yoy_change_vs_industry_pp": _doc(
        "peers",
        "percentage points",
        "电量同比变化比同行业中位数高 {abs_value:.0f} 个百分点",
        "kWh change on last year {abs_value:.0f} points above the industry median's",
        negative=(
            "电量同比变化比同行业中位数低 {abs_value:.0f} 个百分点",
            "kWh change on last year {abs_value:.0f} points below the industry median's",
        ),
        one="kWh change on last year {abs_value:.0f} point above the industry median's",
        negative_one="kWh change on last year {abs_value:.0f} point below the industry median's",
        flat=(
            "电量同比变化与同行业中位数基本持平",
            "kWh change on last year about the same as the industry median's",
        ),
    ),
    "peers_kwh_yoy_change_vs_station_pp": _doc(
        "peers",
        "percentage points",
        "电量同比变化比同供电所中位数高 {abs_value:.0f} 个百分点",
        "kWh change on last year {abs_value:.0f} points above the station median's",
        negative=(
            "电量同比变化比同供电所中位数低 {abs_value:.0f} 个百分点",
            "kWh change on last year {abs_value:.0f} points below the station median's",
        ),
        one="kWh change on last year {abs_value:.0f} point above the station median's",
        negative_one="kWh change on last year {abs_value:.0f} point below the station median's",
        flat=(
            "电量同比变化与同供电所中位数基本持平",
            "kWh change on last year about the same as the station median's",
        ),
    ),
    "peers_kwh_slope_6m_vs_industry_pp": _doc(
        "peers",
        "percentage points per month",
        "近6个月电量趋势比同行业高 {abs_value:.1f} 个百分点/月",
        "6-month kWh trend {abs_value:.1f} points a month above the industry's",
        negative=(
            "近6个月电量趋势比同行业低 {abs_value:.1f} 个百分点/月",
            "6-month kWh trend {abs_value:.1f} points a month below the industry's",
        ),
        flat=("近6个月电量趋势与同行业基本持平", "6-month kWh trend about the same as the industry's"),
    ),
}

CATEGORICAL_FEATURES: set[str] = {
    "archive_usage_category",
    "archive_industry_code",
    "archive_industry_section",
    "archive_tariff",
    "archive_payment_method",
}

_ARCHIVE = [
    "archive_usage_category",
    "archive_industry_section",
    "archive_industry_code",
    "archive_voltage_kv",
    "archive_capacity_kva",
    "archive_tariff",
    "archive_payment_method",
    "archive_tenure_days",
    "is_group_member",
]
_LEVELS = [
    "bills_months_since_last_bill",
    "bills_history_months",
    "bills_kwh_mean_3m",
    "bills_kwh_mean_12m",
    "bills_kwh_slope_3m_pct",
    "bills_kwh_slope_6m_pct",
    "bills_kwh_slope_12m_pct",
    "bills_kwh_cv_12m",
    "bills_kwh_change_pct_3m_vs_prev_3m",
    "bills_kwh_yoy_change_pct_3m",
    "bills_kwh_yoy_change_pct_12m",
    "bills_zero_kwh_months_12m",
    "bills_near_zero_kwh_months_12m",
    "bills_zero_kwh_run_months",
]
_PEERS = [
    "peers_industry_kwh_yoy_change_pct",
    "peers_station_kwh_yoy_change_pct",
    "peers_kwh_yoy_change_vs_industry_pp",
    "peers_kwh_yoy_change_vs_station_pp",
    "peers_kwh_slope_6m_vs_industry_pp",
]
_PAYMENTS_ALL = [name for name, doc in FEATURE_DOCS.items() if doc.family == "payments"]
_READINGS_ALL = [name for name, doc in FEATURE_DOCS.items() if doc.family == "readings"]
_AREA_ALL = [name for name, doc in FEATURE_DOCS.items() if doc.family == "area"]

TASK_FEATURES: dict[str, list[str]] = {
    "arrears": [
        *_ARCHIVE,
        *_LEVELS,
        "bills_amount_due_last_yuan",
        "bills_amount_due_mean_3m_yuan",
        "bills_amount_shock_ratio",
        "bills_basic_charge_share_pct_3m",
        "bills_utilization_pct_3m",
        "bills_reissued_count_12m",
        *_PAYMENTS_ALL,
        "events_suspension_count_365d",
        "events_reduction_count_730d",
        "events_days_since_last_change",
        "is_suspended_at_as_of",
        "events_violation_count_730d",
        "readings_kwh_change_pct_30d_vs_prev_90d",
        "readings_zero_days_30d",
        "readings_level_drop_max_pct_90d",
        *_PEERS,
    ],
    "suspension": [
        # Not the raw industry code: with a year of training dates it names which industries were in a
        # downturn then (ablation on a 50k-customer warehouse: top-5 % precision 0.015 -> 0.065 without it);
        # the section and the customer's own output, peers and bill shares carry the lasting part.
        *[name for name in _ARCHIVE if name != "archive_industry_code"],
        # Nor the two that measure how much data there is rather than the customer: with a short warehouse
        # they are NaN on the first year's as-of dates only, so they mark the calendar, and in a seasonal
        # task the calendar is the label rate (same warehouse, 3 seeds: ECE 0.074 -> 0.044, AUC 0.567 ->
        # 0.579).
        *[name for name in _LEVELS if name not in ("bills_history_months", "bills_kwh_slope_12m_pct")],
        "bills_kwh_change_pct_3m_vs_prev_9m",
        "bills_utilization_pct_3m",
        "bills_max_demand_to_capacity_pct_3m",
        "bills_max_demand_yoy_change_pct_3m",
        "bills_load_factor_pct_3m",
        "bills_power_factor_mean_3m",
        "bills_basic_charge_share_pct_3m",
        "bills_amount_due_mean_3m_yuan",
        "bills_amount_shock_ratio",
        "bills_peak_share_pct_3m",
        "events_suspension_count_365d",
        "events_suspension_count_730d",
        "events_reduction_count_730d",
        "events_changes_same_season_last_year",
        "events_restore_count_365d",
        "events_days_since_last_change",
        "events_suspended_days_same_season_last_year",
        "events_reduced_capacity_pct",
        "has_scheduled_change",
        "payments_days_late_mean_365d",
        "payments_late_count_365d",
        "payments_outstanding_yuan",
        "payments_outstanding_to_bill_ratio",
        "readings_kwh_change_pct_30d_vs_prev_90d",
        "readings_zero_days_30d",
        "readings_level_drop_max_pct_90d",
        "readings_weekend_weekday_ratio_90d",
        *_PEERS,
        "area_kwh_share_pct_3m",
    ],
    "theft": [
        *_ARCHIVE,
        *_LEVELS,
        "bills_kwh_last_1m",
        "bills_kwh_repeat_months_12m",
        "bills_utilization_pct_3m",
        "bills_peak_share_pct_3m",
        "bills_valley_share_pct_3m",
        "bills_peak_share_change_pp_yoy",
        "bills_max_demand_to_capacity_pct_3m",
        "bills_max_demand_yoy_change_pct_3m",
        "bills_load_factor_pct_3m",
        "bills_power_factor_mean_3m",
        "bills_power_factor_min_12m",
        "bills_reissued_count_12m",
        "bills_kwh_drop_6m_yoy_kwh",
        *_READINGS_ALL,
        "events_inspection_count_730d",
        "events_days_since_last_inspection",
        "events_violation_count_730d",
        "events_recovered_kwh_730d",
        "payments_days_late_mean_365d",
        "payments_channel_changes_365d",
        *_AREA_ALL,
        *_PEERS,
    ],
}


def feature_set_version(task: str) -> str:
    """A short hash of the task's ordered feature list and the definitions revision."""
    if task not in TASK_FEATURES:
        raise KeyError(f"task {task!r} has no feature set; the tasks are {sorted(TASK_FEATURES)}")
    payload = json.dumps({"features": TASK_FEATURES[task], "revision": DEFINITIONS_REVISION}, sort_keys=True)
    return hashlib.sha256(payload.encode()).hexdigest()[:12]
