"""The customer file (客户档案): archive facts, the last 24 billing months with payments, suspensions,
inspections, and the customer's score in every task's snapshot. `GET /v1/customers/{id}` and the web page.

Access is the risk lists' rule applied to one customer: a collector sees only customers of its own stations
(and then names, phones and addresses); analysts and admins see every customer with PII masked.
"""

from __future__ import annotations

import datetime as dt
import math

import numpy as np
import pandas as pd

from serving.access import Principal, mask_name, mask_phone
from serving.errors import ModelUnavailable, SnapshotUnavailable, UnknownCustomers
from serving.history import HistoryStore
from serving.model import PackagedModel
from serving.model_store import ModelStore
from serving.schemas import Lang, Task
from serving.snapshot import Snapshot, SnapshotStore
from serving.view_schemas import (
    ArchiveFacts,
    CustomerFile,
    InspectionRecord,
    MonthRecord,
    PaymentRecord,
    SuspensionRecord,
    TaskNote,
    TaskScore,
)

MONTHS = 24
PAID_TOLERANCE_YUAN = 0.01  # a bill counts as settled when payments reach its amount within a fen


class CustomerNotFound(UnknownCustomers):
    """Neither the archive nor any snapshot knows the customer id (404 through UnknownCustomers)."""

    def __init__(self, customer_id: str) -> None:
        self.customer_ids = [customer_id]
        Exception.__init__(
            self,
            f"customer {customer_id!r} is in neither the warehouse's customers table nor any task's latest "
            "snapshot; check the id (户号), or ingest the archive and run `gridrisk score`",
        )


def mask_address(address: str | None) -> str | None:
    """Keep the district-level start of an address so an analyst can still tell areas apart."""
    if not address:
        return address
    keep = min(6, len(address) // 2)
    return address[:keep] + "*" * 4


def _none(value: object) -> object:
    if value is None or value is pd.NaT:
        return None
    if isinstance(value, float) and math.isnan(value):
        return None
    if isinstance(value, pd.Timestamp):
        return value.to_pydatetime()
    return value


def _records(frame: pd.DataFrame) -> list[dict]:
    # Object dtype first: to_dict on datetime columns would give Timestamps and NaT, which pydantic refuses.
    return [{k: _none(v) for k, v in row.items()} for row in frame.astype(object).to_dict("records")]


def archive_facts(row: pd.DataFrame, principal: Principal) -> ArchiveFacts | None:
    if row.empty:
        return None
    facts = _records(row.iloc[:1])[0]
    for day in ("open_date", "close_date"):
        if isinstance(facts.get(day), dt.datetime):
            facts[day] = facts[day].date()
    masked = not principal.sees_pii
    if masked:
        facts["name"] = mask_name(facts.get("name"))
        facts["phone"] = mask_phone(facts.get("phone"))
        facts["address"] = mask_address(facts.get("address"))
    return ArchiveFacts(**facts, pii_masked=masked)


def month_records(bills: pd.DataFrame, payments: pd.DataFrame, last_month: pd.Timestamp) -> list[MonthRecord]:
    """The latest version of each bill in the 24 months up to `last_month`, with what was paid against it."""
    first_month = last_month - pd.DateOffset(months=MONTHS - 1)
    bills = bills[(bills["period"] >= first_month) & (bills["period"] <= last_month)]
    # A re-issued bill (退补) is a new version of its period: the newest known_at is the bill that stands.
    bills = bills.sort_values("known_at", kind="stable").drop_duplicates("period", keep="last")
    paid = payments.groupby("period").agg(paid=("amount", "sum"), last_paid_at=("paid_at", "max"))
    months = bills.merge(paid, how="left", left_on="period", right_index=True).sort_values("period")
    months["paid"] = months["paid"].fillna(0.0)
    settled = months["paid"] >= months["amount_due"] - PAID_TOLERANCE_YUAN
    late = (months["last_paid_at"].dt.normalize() - months["due_date"]).dt.days.clip(lower=0)
    months["days_late"] = late.where(settled & months["last_paid_at"].notna())
    months["outstanding"] = (months["amount_due"] - months["paid"]).clip(lower=0.0)
    out = []
    for row in _records(months):
        row["period"] = row["period"].date()
        row["due_date"] = row["due_date"].date() if row["due_date"] else None
        row["days_late"] = int(row["days_late"]) if row["days_late"] is not None else None
        out.append(MonthRecord(**{k: row[k] for k in MonthRecord.model_fields}))
    return out


def _dates(row: dict, *names: str) -> dict:
    for name in names:
        if isinstance(row.get(name), dt.datetime):
            row[name] = row[name].date()
    return row


def task_score(task: Task, snapshot: Snapshot, package: PackagedModel, pos: int, lang: Lang) -> TaskScore:
    at = np.array([pos])
    reasons = snapshot.reasons(package, at, lang)[0]
    base = float(snapshot.numbers["base_value"][pos])
    margin = float(snapshot.numbers["raw_margin"][pos])
    percentile = snapshot.column("percentile", at)[0]
    return TaskScore(
        task=task,
        model=snapshot.model,
        as_of=snapshot.as_of,
        probability=float(snapshot.numbers["probability"][pos]),
        band=snapshot.column("band", at)[0],
        percentile=percentile,
        rank=int(snapshot.numbers["rank"][pos]),
        population=snapshot.size,
        amount_at_stake=snapshot.column("amount_at_stake", at)[0],
        expected_value=snapshot.column("expected_value", at)[0],
        base_value=base,
        raw_margin=margin,
        other_contribution=margin - base - sum(r.contribution for r in reasons),
        reasons=reasons,
    )


def customer_file(
    customer_id: str,
    principal: Principal,
    history: HistoryStore,
    snapshots: SnapshotStore,
    models: ModelStore,
    tasks: list[str],
    lang: Lang,
) -> CustomerFile:
    """Everything the caller may see about one customer; Forbidden outside a collector's stations."""
    archive = history.rows("customers", customer_id)
    found: dict[str, tuple[Snapshot, int]] = {}
    unscored: list[TaskNote] = []
    for name in tasks:
        task = Task(name)
        try:
            snapshot = snapshots.get(name)
        except SnapshotUnavailable as exc:
            unscored.append(TaskNote(task=task, detail=str(exc)))
            continue
        pos = int(snapshot.index.get_indexer([customer_id])[0])
        if pos < 0:
            unscored.append(
                TaskNote(
                    task=task,
                    detail=f"not in the {name} population as of {snapshot.as_of.isoformat()} "
                    f"({snapshot.size:,} customers scored)",
                )
            )
            continue
        found[name] = (snapshot, pos)
    if archive.empty and not found:
        raise CustomerNotFound(customer_id)

    # The archive decides the station; a customer missing from it is placed by the snapshot that scored it.
    if not archive.empty:
        station, supply_unit = archive["station"].iloc[0], archive["supply_unit"].iloc[0]
    else:
        snapshot, pos = next(iter(found.values()))
        at = np.array([pos])
        station, supply_unit = snapshot.column("station", at)[0], snapshot.column("supply_unit", at)[0]
    principal.scope(station, supply_unit)  # raises Forbidden for another station's collector

    scores = []
    for name, (snapshot, pos) in found.items():
        try:
            package = models.get(name).package
        except ModelUnavailable as exc:
            unscored.append(TaskNote(task=Task(name), detail=str(exc)))
            continue
        scores.append(task_score(Task(name), snapshot, package, pos, lang))

    as_of = max((s.as_of for s, _ in found.values()), default=None)
    bills = history.rows("bills", customer_id)
    payments = history.rows("payments", customer_id)
    if as_of is not None:
        last_month = pd.Timestamp(as_of.year, as_of.month, 1)
    elif not bills.empty:
        last_month = bills["period"].max()
    else:
        last_month = None
    months = month_records(bills, payments, last_month) if last_month is not None else []
    shown = {m.period for m in months}
    payments = payments[payments["period"].dt.date.isin(shown)].sort_values("paid_at", ascending=False)
    suspensions = history.rows("suspensions", customer_id).sort_values("applied_at", ascending=False)
    inspections = history.rows("inspections", customer_id).sort_values("inspected_at", ascending=False)
    return CustomerFile(
        customer_id=customer_id,
        as_of=as_of,
        archive=archive_facts(archive, principal),
        scores=scores,
        unscored=unscored,
        months=months,
        payments=[
            PaymentRecord(**_dates(r, "period")) for r in _records(payments.drop(columns="customer_id"))
        ],
        suspensions=[
            SuspensionRecord(**_dates(r, "start_date", "end_date"))
            for r in _records(suspensions.drop(columns="customer_id"))
        ],
        inspections=[InspectionRecord(**r) for r in _records(inspections.drop(columns="customer_id"))],
    )
