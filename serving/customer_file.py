"""The customer file (客户档案): archive facts, the last 24 billing months with payments, suspensions,
inspections, and the customer's score in every task's snapshot. `GET /v1/customers/{id}` and the web page.

Access is the risk lists' rule applied to one customer: a collector sees only customers of its own stations
(and then names, phones and addresses); analysts and admins see every customer with PII masked.
"""

from __future__ import annotations

import datetime as dt
import logging
import math
import zoneinfo
from pathlib import Path
from typing import Any

import numpy as np

from features.sources import stored_timezone
from features.validation import LOCAL_TIMEZONE
from serving.access import Principal, mask_name, mask_phone
from serving.errors import ModelUnavailable, SnapshotUnavailable, UnknownCustomers, caller_detail
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

logger = logging.getLogger(__name__)

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


def warehouse_zone(warehouse: Path) -> zoneinfo.ZoneInfo | None:
    """The zone whose wall clock the warehouse's times are in: the one its first ingest recorded, else
    ingest's default (Asia/Shanghai). None, logged, for a record naming an unknown zone (edited by hand)."""
    name = stored_timezone(warehouse) or LOCAL_TIMEZONE
    try:
        return zoneinfo.ZoneInfo(name)
    except (zoneinfo.ZoneInfoNotFoundError, ValueError):
        logger.warning(
            "warehouse %s names an unknown time zone %r: its times are sent without offset", warehouse, name
        )
        return None


def _in_zone(rows: list[dict[str, Any]], column: str, zone: zoneinfo.ZoneInfo | None) -> list[dict[str, Any]]:
    """Rows whose `column` (a wall-clock time of the warehouse) carries `zone`, so it reads as an instant."""
    if zone is None:
        return rows
    return [{**row, column: row[column].replace(tzinfo=zone) if row[column] else row[column]} for row in rows]


def mask_address(address: str | None) -> str | None:
    """Keep the district-level start of an address so an analyst can still tell areas apart."""
    if not address:
        return address
    keep = min(6, len(address) // 2)
    return address[:keep] + "*" * 4


def archive_facts(rows: list[dict[str, Any]], principal: Principal) -> ArchiveFacts | None:
    if not rows:
        return None
    facts = {k: v for k, v in rows[0].items() if k in ArchiveFacts.model_fields}
    masked = not principal.sees_pii
    if masked:
        facts["name"] = mask_name(facts.get("name"))
        facts["phone"] = mask_phone(facts.get("phone"))
        facts["address"] = mask_address(facts.get("address"))
    return ArchiveFacts(**facts, pii_masked=masked)


def months_before(month: dt.date, n: int) -> dt.date:
    index = month.year * 12 + month.month - 1 - n
    return dt.date(index // 12, index % 12 + 1, 1)


def month_records(
    bills: list[dict], payments: list[dict], last_month: dt.date
) -> tuple[list[MonthRecord], list[MonthRecord]]:
    """The latest version of each bill in the 24 months up to `last_month`, with what was paid against it;
    and the bills before them still owing (a two-year-old debt drives the amount at stake and the reasons,
    and the file showed nowhere).

    One customer has a few dozen rows, so plain Python over them beats a DataFrame's fixed overheads.
    """
    first_month = months_before(last_month, MONTHS - 1)
    standing: dict[dt.date, dict] = {}
    # A re-issued bill (退补) is a new version of its period: the newest known_at is the bill that stands.
    for bill in sorted(bills, key=lambda b: b["known_at"]):
        if bill["period"] <= last_month:
            standing[bill["period"]] = bill
    paid: dict[dt.date, float] = {}
    last_paid: dict[dt.date, dt.datetime] = {}
    for payment in payments:
        period = payment["period"]
        # A payment's amount includes its late fee (违约金), which settles no part of the bill: the features
        # and labels count the principal, and so does the page (a bill paid with its fee but 50 yuan short
        # showed as settled, while the model read 50 yuan outstanding).
        fee = payment.get("late_fee")
        principal = payment["amount"] - (fee if fee is not None and math.isfinite(fee) else 0.0)
        paid[period] = paid.get(period, 0.0) + principal
        last_paid[period] = max(last_paid.get(period, payment["paid_at"]), payment["paid_at"])
    recent: list[MonthRecord] = []
    older: list[MonthRecord] = []
    for period in sorted(standing):
        bill = standing[period]
        amount, settled_at = paid.get(period, 0.0), last_paid.get(period)
        due = bill["amount_due"]
        days_late = None
        if settled_at is not None and amount >= due - PAID_TOLERANCE_YUAN:
            days_late = max((settled_at.date() - bill["due_date"]).days, 0)
        record = MonthRecord(
            period=period,
            kwh=bill["kwh"],
            amount_due=due,
            due_date=bill["due_date"],
            paid=amount,
            last_paid_at=settled_at,
            days_late=days_late,
            outstanding=max(due - amount, 0.0),
        )
        if period >= first_month:
            recent.append(record)
        elif (record.outstanding or 0.0) > PAID_TOLERANCE_YUAN:
            older.append(record)
    return recent, older


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
    zone: zoneinfo.ZoneInfo | None = None,
) -> CustomerFile:
    """Everything the caller may see about one customer; Forbidden outside a collector's stations. With `zone`
    (the API's, `warehouse_zone`), the warehouse's times carry it, so they go out in RFC 3339 with their UTC
    offset; without (the page, which shows them as the local times they are), they stay wall-clock times."""
    archive = history.rows("customers", customer_id)
    found: dict[str, tuple[Snapshot, int]] = {}
    unscored: list[TaskNote] = []
    for name in tasks:
        task = Task(name)
        try:
            snapshot = snapshots.get(name)
        except SnapshotUnavailable as exc:
            unscored.append(TaskNote(task=task, detail=caller_detail(exc)))
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
    if not archive and not found:
        raise CustomerNotFound(customer_id)

    # The archive decides the station; a customer missing from it is placed by the snapshot that scored it.
    if archive:
        station, supply_unit = archive[0]["station"], archive[0]["supply_unit"]
    else:
        snapshot, pos = next(iter(found.values()))
        at = np.array([pos])
        station, supply_unit = snapshot.column("station", at)[0], snapshot.column("supply_unit", at)[0]
    principal.require_covers(station, supply_unit, f"customer {customer_id}")

    scores = []
    for name, (snapshot, pos) in found.items():
        try:
            package = models.get(name).package
        except ModelUnavailable as exc:
            unscored.append(TaskNote(task=Task(name), detail=caller_detail(exc)))
            continue
        scores.append(task_score(Task(name), snapshot, package, pos, lang))

    as_of = max((s.as_of for s, _ in found.values()), default=None)
    bills = history.rows("bills", customer_id)
    payments = _in_zone(history.rows("payments", customer_id), "paid_at", zone)
    if as_of is not None:
        last_month: dt.date | None = dt.date(as_of.year, as_of.month, 1)
    else:
        last_month = max((b["period"] for b in bills), default=None)
    months, older_owing = month_records(bills, payments, last_month) if last_month is not None else ([], [])
    shown = {m.period for m in months + older_owing}
    return CustomerFile(
        customer_id=customer_id,
        as_of=as_of,
        archive=archive_facts(archive, principal),
        scores=scores,
        unscored=unscored,
        months=months,
        older_owing=older_owing,
        payments=[
            PaymentRecord(**p)
            for p in sorted(payments, key=lambda p: p["paid_at"], reverse=True)
            if p["period"] in shown
        ],
        suspensions=[
            SuspensionRecord(**s)
            for s in sorted(
                _in_zone(history.rows("suspensions", customer_id), "applied_at", zone),
                key=lambda s: s["applied_at"],
                reverse=True,
            )
        ],
        inspections=[
            InspectionRecord(**i)
            for i in sorted(
                _in_zone(history.rows("inspections", customer_id), "inspected_at", zone),
                key=lambda i: i["inspected_at"],
                reverse=True,
            )
        ],
    )
