"""Response schemas of the customer-file and station-summary routes; the web page renders these same objects,
so a page shows exactly what the API would return to the same key.
"""

from __future__ import annotations

import datetime as dt
from enum import StrEnum

from pydantic import BaseModel, Field

from serving.schemas import ModelRef, Reason, Task

# -- GET /v1/customers/{customer_id} -----------------------------------------------------------------------

LOCAL_TIME = (
    "the warehouse's local time with its UTC offset (RFC 3339, e.g. 2026-10-26T18:45:18+08:00): the zone its "
    "ingest recorded (timezone.txt), Asia/Shanghai by default"
)


class ArchiveFacts(BaseModel):
    """The customer's row in the archive (客户档案); name, phone and address masked unless the caller is the
    customer's own station's collector."""

    customer_id: str
    usage_category: str | None = None
    industry_code: str | None = None
    voltage_kv: float | None = None
    contract_capacity_kva: float | None = None
    tariff: str | None = None
    payment_method: str | None = None
    supply_unit: str | None = None
    station: str | None = None
    area_id: str | None = None
    group_id: str | None = None
    open_date: dt.date | None = None
    close_date: dt.date | None = None
    name: str | None = None
    phone: str | None = None
    address: str | None = None
    pii_masked: bool = Field(description="true when name, phone and address are masked for this caller")


class MonthRecord(BaseModel):
    """One billing month: the latest version of the bill and what was paid against it."""

    period: dt.date
    kwh: float | None
    amount_due: float | None
    due_date: dt.date | None
    paid: float = Field(description="principal paid against the period, yuan: payments less their late fees")
    last_paid_at: dt.datetime | None = Field(description=f"the last payment against the period: {LOCAL_TIME}")
    days_late: int | None = Field(description="days from the due date to the last payment; null if unpaid")
    outstanding: float | None = Field(description="amount due minus paid, yuan (never below 0)")


class PaymentRecord(BaseModel):
    period: dt.date
    paid_at: dt.datetime = Field(description=LOCAL_TIME)
    amount: float
    late_fee: float | None
    channel: str | None


class SuspensionRecord(BaseModel):
    applied_at: dt.datetime = Field(description=LOCAL_TIME)
    kind: str
    start_date: dt.date | None
    end_date: dt.date | None
    capacity_kva: float | None


class InspectionRecord(BaseModel):
    inspected_at: dt.datetime = Field(description=LOCAL_TIME)
    result: str
    recovered_kwh: float | None
    recovered_amount: float | None


class TaskScore(BaseModel):
    """The customer's score in one task's latest snapshot, with the waterfall's pieces in log-odds."""

    task: Task
    model: ModelRef
    as_of: dt.date
    probability: float
    band: str
    percentile: float | None
    rank: int
    population: int = Field(description="customers in the snapshot (rank is out of this many)")
    amount_at_stake: float | None
    expected_value: float | None
    base_value: float = Field(description="the model's log-odds before any feature (population average)")
    raw_margin: float = Field(description="base_value + every feature's contribution")
    other_contribution: float = Field(description="the contributions of the features not among the reasons")
    reasons: list[Reason]


class TaskNote(BaseModel):
    """Why a task has no score for this customer (outside its population, no snapshot, no model)."""

    task: Task
    detail: str


class CustomerFile(BaseModel):
    customer_id: str
    as_of: dt.date | None = Field(description="the newest snapshot date: history is shown up to its month")
    archive: ArchiveFacts | None = Field(description="null when the warehouse has no row for the customer")
    scores: list[TaskScore]
    unscored: list[TaskNote]
    months: list[MonthRecord] = Field(description="the last 24 billing months, oldest first")
    older_owing: list[MonthRecord] = Field(
        default_factory=list,
        description="bills before those 24 months still owing, oldest first: they count in the amount at "
        "stake and the model's outstanding-debt reasons",
    )
    payments: list[PaymentRecord] = Field(description="payments in those months, newest first")
    suspensions: list[SuspensionRecord] = Field(description="every suspension or reduction, newest first")
    inspections: list[InspectionRecord] = Field(description="every inspection, newest first")


# -- GET /v1/{task}/summary ----------------------------------------------------------------------------------


class SummaryBy(StrEnum):
    STATION = "station"  # 供电所
    SUPPLY_UNIT = "supply_unit"  # 供电单位


class SummaryFigures(BaseModel):
    customers: int
    bands: dict[str, int] = Field(description="customers per risk band, riskiest band first")
    mean_probability: float | None
    amount_at_stake: float = Field(description="sum of amounts at stake, yuan (unknown amounts count 0)")
    expected_value: float = Field(description="sum of probability x amount at stake, yuan")


class SummaryRow(BaseModel):
    supply_unit: str | None
    station: str | None = Field(description="null when grouped by supply unit")
    current: SummaryFigures = Field(
        description="the group in this snapshot; all 0 for a group found only last month (renamed or closed)"
    )
    previous: SummaryFigures | None = Field(
        description="the same group in last month's snapshot (all 0 for a group new this month); null when "
        "no earlier month is scored"
    )
    expected_value_change: float | None = Field(description="current minus previous expected value, yuan")
    high_change: int | None = Field(description="current minus previous customers in the riskiest band")


class SummaryResponse(BaseModel):
    task: Task
    by: SummaryBy
    model: ModelRef
    as_of: dt.date
    previous_as_of: dt.date | None = Field(
        description="the newest snapshot from an earlier month; null when there is none"
    )
    previous_model: ModelRef | None = Field(
        description="the model that scored the previous_as_of snapshot; null when there is none. When it "
        "differs from `model`, band thresholds differ too: band changes mix the model's change with the "
        "customers'"
    )
    previous_detail: str | None = Field(
        default=None,
        description="why there is no comparison though an earlier month has a snapshot (it cannot be read)",
    )
    band_order: list[str] = Field(description="band names, riskiest first")
    rows: list[SummaryRow] = Field(
        description="one per group inside the caller's scope in this snapshot or the previous one, by "
        "expected value; they add up to `total`"
    )
    total: SummaryRow
