"""The data contract: every warehouse table, its columns, rules, keys and times.

Sources (readers, validation, quarantine), the synthetic generator, feature code and the README all
read this one module; nothing else defines a column name, dtype, allowed value or key.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from enum import StrEnum

import pyarrow as pa


class UsageCategory(StrEnum):
    RESIDENTIAL = "residential"
    GENERAL_COMMERCIAL = "general_commercial"
    LARGE_INDUSTRIAL = "large_industrial"
    AGRICULTURAL = "agricultural"


class Tariff(StrEnum):
    SINGLE = "single"
    TOU = "tou"
    TWO_PART = "two_part"


class PaymentMethod(StrEnum):
    COUNTER = "counter"
    BANK_WITHHOLDING = "bank_withholding"
    ONLINE = "online"
    PREPAID = "prepaid"


class SuspensionKind(StrEnum):
    """Service changes (变更用电) that move billed capacity; DOMAIN.md §2."""

    SUSPENSION = "suspension"  # 暂停
    SUSPENSION_RESTORE = "suspension_restore"  # 暂停恢复
    REDUCTION = "reduction"  # 减容
    REDUCTION_RESTORE = "reduction_restore"  # 减容恢复


class InspectionResult(StrEnum):
    NORMAL = "normal"
    THEFT = "theft"  # 窃电
    VIOLATION = "violation"  # 违约用电


# The contract's coded values in words, per language: the web page's labels and the reasons' sentences
# (「缴费方式：online」 read as a code in a Chinese sentence).
VALUE_LABELS: dict[str, dict[str, dict[str, str]]] = {
    "zh": {
        "usage_category": {
            "residential": "居民生活",
            "general_commercial": "一般工商业",
            "large_industrial": "大工业",
            "agricultural": "农业生产",
        },
        "tariff": {"single": "单一制", "tou": "分时电价", "two_part": "两部制"},
        "payment_method": {
            "counter": "柜台缴费",
            "bank_withholding": "银行代扣",
            "online": "网上缴费",
            "prepaid": "预付费",
        },
        "kind": {
            "suspension": "暂停",
            "suspension_restore": "暂停恢复",
            "reduction": "减容",
            "reduction_restore": "减容恢复",
        },
        "result": {"normal": "正常", "theft": "窃电", "violation": "违约用电"},
    },
    "en": {
        "usage_category": {
            "residential": "Residential",
            "general_commercial": "General commercial",
            "large_industrial": "Large industrial",
            "agricultural": "Agricultural",
        },
        "tariff": {"single": "Single rate", "tou": "Time of use", "two_part": "Two-part"},
        "payment_method": {
            "counter": "Counter",
            "bank_withholding": "Bank withholding",
            "online": "Online",
            "prepaid": "Prepaid",
        },
        "kind": {
            "suspension": "Suspension",
            "suspension_restore": "Suspension ended",
            "reduction": "Capacity reduction",
            "reduction_restore": "Reduction ended",
        },
        "result": {"normal": "Normal", "theft": "Theft", "violation": "Violation"},
    },
}


class Granularity(StrEnum):
    DAY = "day"
    MONTH = "month"


# Two-part tariff (两部制) applies from this capacity; DOMAIN.md §1 and DESIGN.md's suspension task.
TWO_PART_MIN_KVA = 315.0

# Plausibility ceilings on a quantity's magnitude. The contract's largest customer (1,000,000 kVA, the
# `contract_capacity_kva` maximum) drawing its full capacity for a 31-day month uses 7.44e8 kWh and pays
# about 1e9 元 for it (DOMAIN.md §1 tariffs are below 1 元/kWh). Each ceiling sits over ten times above that,
# so it rejects no real row, only unit or decimal-point slips and values such as 1e39 that would overflow the
# float32 the feature engine rounds energy to (`features/snapshot.py`) or the float64 sums of money.
CEILING_KWH_MONTH = 1e10  # a bill's energy, a month's area supply, a recovered (追补) amount of energy
CEILING_KWH_DAY = 1e9  # a day's energy: 24 h at 1,000,000 kW is 2.4e7 kWh
CEILING_KW = 1e7  # demand: 1,000,000 kVA at unity power factor is 1e6 kW
CEILING_KVA = 1e7  # a transformer area's or a suspension's capacity
CUSTOMER_ID_MAX_CHARS = 64  # the longest 户号 ingest stores and the API takes (real ones run 10-20 digits)
CEILING_YUAN = 1e11  # any amount of money on one bill, payment or inspection, credit or debit

# Archive tables hold the current state of a record (its latest version replaces the stored one); every other
# table records events. An archive row's date (a customer's open_date) is an attribute, not an observation.
ARCHIVE_TABLES = frozenset({"customers", "areas"})


@dataclass(frozen=True)
class Column:
    """One column: its Arrow type, whether it must be present and non-null, and its value rules."""

    name: str
    dtype: pa.DataType
    required: bool = True  # column must exist in every export
    nullable: bool = False  # null values allowed in the column
    allowed: tuple[str, ...] | None = None
    min: float | None = None
    max: float | None = None
    ceiling: float | None = None  # plausibility limit on |value|; see CEILING_* above
    # The value records something that has happened (an issue date, a payment time), so it cannot be later
    # than the moment of the ingest; dates planned ahead (a due date, a suspension's end) leave this False.
    past: bool = False
    pii: bool = False
    doc: str = ""


@dataclass(frozen=True)
class ForeignKey:
    column: str
    table: str
    ref_column: str


@dataclass(frozen=True)
class Table:
    """A warehouse table: columns, primary key, foreign keys and its times.

    ``key`` identifies the business record. ``event_time`` is the column the point-in-time rule compares with
    the as-of date; ``known_at``, where the table has one, is when the row entered the system, and the rule
    waits for it too. In a ``versioned`` table (bills) it is required and several versions of one key may
    exist (a re-issued bill, 退补): the primary key is ``key + (known_at,)``. Elsewhere it is optional and
    may be empty (the row then counts from its event time): a payment posted from a bank's debit file days
    after it was made, a daily reading uploaded the next morning.
    """

    name: str
    doc: str
    columns: tuple[Column, ...]
    key: tuple[str, ...]
    event_time: str | None = None
    known_at: str | None = None
    versioned: bool = False
    foreign_keys: tuple[ForeignKey, ...] = field(default_factory=tuple)
    optional: bool = False  # the warehouse may lack this table entirely

    @property
    def primary_key(self) -> tuple[str, ...]:
        return self.key + ((self.known_at,) if self.known_at and self.versioned else ())

    @property
    def column_names(self) -> list[str]:
        return [c.name for c in self.columns]

    @property
    def required_columns(self) -> list[str]:
        return [c.name for c in self.columns if c.required]

    def column(self, name: str) -> Column:
        for c in self.columns:
            if c.name == name:
                return c
        raise KeyError(f"table {self.name!r} has no column {name!r}")

    def arrow_schema(self, names: list[str] | None = None) -> pa.Schema:
        cols = [c for c in self.columns if names is None or c.name in names]
        return pa.schema([pa.field(c.name, c.dtype, nullable=c.nullable) for c in cols])


def _values(enum: type[StrEnum]) -> tuple[str, ...]:
    return tuple(e.value for e in enum)


STR = pa.string()
F64 = pa.float64()
DATE = pa.date32()
TS = pa.timestamp("us")


def _known_at(doc: str) -> Column:
    """The optional column of an unversioned event table that says when a row entered the system (`Table`)."""
    return Column("known_at", TS, required=False, nullable=True, past=True, doc=doc)


CUSTOMERS = Table(
    name="customers",
    doc="客户档案: one row per customer account.",
    key=("customer_id",),
    event_time="open_date",
    columns=(
        Column("customer_id", STR, doc="户号"),
        Column("usage_category", STR, allowed=_values(UsageCategory), doc="用电类别"),
        Column("industry_code", STR, nullable=True, doc="行业分类 (GB/T 4754 section letter + division)"),
        Column("voltage_kv", F64, min=0.22, max=500.0, doc="供电电压 kV"),
        Column("contract_capacity_kva", F64, min=0.0, max=1_000_000.0, doc="合同容量 kVA"),
        Column("tariff", STR, allowed=_values(Tariff), doc="电价类型"),
        Column("payment_method", STR, allowed=_values(PaymentMethod), doc="缴费方式"),
        Column("supply_unit", STR, doc="供电单位"),
        Column("station", STR, doc="供电所"),
        Column("area_id", STR, doc="台区编号"),
        Column("group_id", STR, required=False, nullable=True, doc="集团客户编号"),
        Column("open_date", DATE, past=True, doc="立户日期"),
        Column("close_date", DATE, required=False, nullable=True, doc="销户日期"),
        Column("name", STR, required=False, nullable=True, pii=True, doc="户名"),
        Column("phone", STR, required=False, nullable=True, pii=True, doc="联系电话"),
        Column("address", STR, required=False, nullable=True, pii=True, doc="用电地址"),
    ),
    foreign_keys=(ForeignKey("area_id", "areas", "area_id"),),
)

BILLS = Table(
    name="bills",
    doc="电费账单: one row per customer x billing month x version (a re-issued bill is a new version).",
    key=("customer_id", "period"),
    event_time="issue_date",
    known_at="known_at",
    versioned=True,
    columns=(
        Column("customer_id", STR),
        Column("period", DATE, past=True, doc="billing month, first day (电费年月)"),
        Column("kwh", F64, min=0.0, ceiling=CEILING_KWH_MONTH, doc="电量 kWh"),
        Column(
            "kwh_peak",
            F64,
            required=False,
            nullable=True,
            min=0.0,
            ceiling=CEILING_KWH_MONTH,
            doc="峰 kWh (TOU)",
        ),
        Column(
            "kwh_flat",
            F64,
            required=False,
            nullable=True,
            min=0.0,
            ceiling=CEILING_KWH_MONTH,
            doc="平 kWh (TOU)",
        ),
        Column(
            "kwh_valley",
            F64,
            required=False,
            nullable=True,
            min=0.0,
            ceiling=CEILING_KWH_MONTH,
            doc="谷 kWh (TOU)",
        ),
        Column(
            "max_demand_kw",
            F64,
            required=False,
            nullable=True,
            min=0.0,
            ceiling=CEILING_KW,
            doc="最大需量 kW",
        ),
        Column("power_factor", F64, required=False, nullable=True, min=0.0, max=1.0, doc="功率因数"),
        Column("energy_charge", F64, required=False, nullable=True, ceiling=CEILING_YUAN, doc="电度电费 元"),
        Column(
            "basic_charge",
            F64,
            required=False,
            nullable=True,
            min=0.0,
            ceiling=CEILING_YUAN,
            doc="基本电费 元",
        ),
        Column(
            "pf_adjustment",
            F64,
            required=False,
            nullable=True,
            ceiling=CEILING_YUAN,
            doc="力调电费 元 (+ penalty, - credit)",
        ),
        Column(
            "amount_due", F64, ceiling=CEILING_YUAN, doc="应收电费 元 (negative only for a credit re-issue)"
        ),
        Column("issue_date", DATE, past=True, doc="发行日期"),
        Column("due_date", DATE, doc="缴费截止日期"),
        Column("known_at", TS, past=True, doc="when this version of the bill entered the system"),
    ),
    foreign_keys=(ForeignKey("customer_id", "customers", "customer_id"),),
)

PAYMENTS = Table(
    name="payments",
    doc="缴费记录: one row per payment against a billing month.",
    key=("payment_id",),
    event_time="paid_at",
    known_at="known_at",
    columns=(
        Column("payment_id", STR),
        Column("customer_id", STR),
        Column("period", DATE, doc="the billing month paid (not after paid_at, below)"),
        Column("paid_at", TS, past=True, doc="缴费时间"),
        Column("amount", F64, min=0.0, ceiling=CEILING_YUAN, doc="实收金额 元 (incl. late fee)"),
        Column(
            "late_fee", F64, required=False, nullable=True, min=0.0, ceiling=CEILING_YUAN, doc="违约金 元"
        ),
        Column("channel", STR, allowed=_values(PaymentMethod), doc="缴费渠道"),
        _known_at(
            "销账时间: when the payment was posted (a bank's debit file comes days later); empty: paid_at"
        ),
    ),
    foreign_keys=(ForeignKey("customer_id", "customers", "customer_id"),),
)

READINGS = Table(
    name="readings",
    doc="日冻结电量: one row per customer x day (optional table).",
    key=("customer_id", "date"),
    event_time="date",
    known_at="known_at",
    optional=True,
    columns=(
        Column("customer_id", STR),
        Column("date", DATE, past=True),
        Column(
            "kwh",
            F64,
            min=0.0,
            ceiling=CEILING_KWH_DAY,
            doc="day's energy; a negative day (a meter reset, a reversed register) is quarantined by ingest",
        ),
        _known_at("入库时间: when the day's reading was stored (uploaded the next morning); empty: date"),
    ),
    foreign_keys=(ForeignKey("customer_id", "customers", "customer_id"),),
)

SUSPENSIONS = Table(
    name="suspensions",
    doc="暂停/减容 applications and restorations.",
    key=("application_id",),
    event_time="applied_at",
    known_at="known_at",
    columns=(
        Column("application_id", STR),
        Column("customer_id", STR),
        Column("applied_at", TS, past=True, doc="申请时间"),
        Column("start_date", DATE),
        Column("end_date", DATE, nullable=True, doc="planned end; null for open-ended reductions"),
        Column(
            "capacity_kva", F64, min=0.0, ceiling=CEILING_KVA, doc="capacity suspended, reduced or restored"
        ),
        Column("kind", STR, allowed=_values(SuspensionKind)),
        _known_at("录入时间: when the application was entered; empty: applied_at"),
    ),
    foreign_keys=(ForeignKey("customer_id", "customers", "customer_id"),),
)

INSPECTIONS = Table(
    name="inspections",
    doc="用电检查: one row per on-site inspection.",
    key=("inspection_id",),
    event_time="inspected_at",
    known_at="known_at",
    columns=(
        Column("inspection_id", STR),
        Column("customer_id", STR),
        Column("inspected_at", TS, past=True),
        Column("result", STR, allowed=_values(InspectionResult)),
        Column(
            "recovered_kwh",
            F64,
            min=0.0,
            ceiling=CEILING_KWH_MONTH,
            doc="追补电量 kWh (0 unless theft/violation)",
        ),
        Column(
            "recovered_amount",
            F64,
            required=False,
            nullable=True,
            min=0.0,
            ceiling=CEILING_YUAN,
            doc="追补电费+违约使用电费 元",
        ),
        _known_at("录入时间: when the result was entered (written up after the visit); empty: inspected_at"),
    ),
    foreign_keys=(ForeignKey("customer_id", "customers", "customer_id"),),
)

AREAS = Table(
    name="areas",
    doc="台区: one row per transformer area.",
    key=("area_id",),
    columns=(
        Column("area_id", STR),
        Column("station", STR),
        Column("supply_unit", STR),
        Column("transformer_kva", F64, min=0.0, ceiling=CEILING_KVA),
    ),
)

AREA_SUPPLY = Table(
    name="area_supply",
    doc="台区供电量: energy into each area per day or month; billed kWh of its customers gives line loss.",
    # a daily row and a monthly row may share the first of a month, so granularity is part of the key
    key=("area_id", "date", "granularity"),
    event_time="date",
    known_at="known_at",
    columns=(
        Column("area_id", STR),
        Column("date", DATE, past=True, doc="the day, or the first day of the month"),
        Column("granularity", STR, allowed=_values(Granularity)),
        Column("supplied_kwh", F64, min=0.0, ceiling=CEILING_KWH_MONTH),
        _known_at("入库时间: when the measurement was stored; empty: date"),
    ),
    foreign_keys=(ForeignKey("area_id", "areas", "area_id"),),
)

TABLES: dict[str, Table] = {
    t.name: t for t in (CUSTOMERS, BILLS, PAYMENTS, READINGS, SUSPENSIONS, INSPECTIONS, AREAS, AREA_SUPPLY)
}

# Order that respects foreign keys (parents first): ingest validates in this order.
LOAD_ORDER: tuple[str, ...] = (
    "areas",
    "customers",
    "bills",
    "payments",
    "readings",
    "suspensions",
    "inspections",
    "area_supply",
)


def table(name: str) -> Table:
    try:
        return TABLES[name]
    except KeyError:
        raise KeyError(f"unknown table {name!r}; the contract has {sorted(TABLES)}") from None
