"""Test material for the customer file, summary and web page tests: a warehouse history (bills with a
re-issue, payments on time, late and missing, suspensions, inspections) for tinymodel's population, and last
month's snapshot so summaries have something to compare with."""

from __future__ import annotations

import contextlib
import datetime as dt
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd
from fastapi.testclient import TestClient
from tinymodel import (
    AS_OF,
    FakeRegistry,
    create_test_keys,
    scoring_frame,
    write_customers,
    write_population_snapshot,
)

from features.sources import write_table
from serving.main import create_app
from serving.model import PackagedModel
from serving.schemas import ModelRef
from serving.service import ServiceState
from serving.settings import ServingSettings
from serving.snapshot import score_frame, write_snapshot

MONTHS = 30  # more than the page's 24, so the cut is visible
PREVIOUS_AS_OF = dt.date(2023, 5, 31)
REISSUED = ("C0000001", pd.Timestamp("2023-03-01"))  # a bill corrected later (退补): the new amount stands
UNPAID = "C0000002"  # paid nothing for the last three months
LATE = "C0000004"  # pays every bill 20 days after its due date


def periods() -> pd.DatetimeIndex:
    last = pd.Timestamp(AS_OF.year, AS_OF.month, 1)
    return pd.date_range(end=last, periods=MONTHS, freq="MS")


def write_history(
    settings: ServingSettings, population: pd.DataFrame, seed: int = 0
) -> dict[str, pd.DataFrame]:
    """Bills, payments, suspensions and inspections of every customer in `population` (vectorised)."""
    rng = np.random.default_rng(seed)
    ids = population["customer_id"].to_numpy()
    months = periods()
    n, m = len(ids), len(months)
    customer = np.repeat(ids, m)
    period = np.tile(months.to_numpy(), n)
    capacity = np.repeat(population["contract_capacity_kva"].to_numpy(), m)
    season = np.tile(1 + 0.25 * np.sin(np.arange(m) / 12 * 2 * np.pi), n)
    kwh = np.round(capacity * 30 * season * rng.uniform(0.8, 1.2, n * m), 1)
    issue = pd.DatetimeIndex(period) + pd.DateOffset(months=1) + pd.Timedelta(days=4)
    bills = pd.DataFrame(
        {
            "customer_id": customer,
            "period": period,
            "kwh": kwh,
            "amount_due": np.round(kwh * 0.62, 2),
            "issue_date": issue,
            "due_date": issue + pd.Timedelta(days=10),
            "known_at": issue,
        }
    )
    who, when = REISSUED
    original = bills[(bills["customer_id"] == who) & (bills["period"] == when)].iloc[0]
    corrected = original.copy()
    corrected["amount_due"] = 999.99
    corrected["known_at"] = original["known_at"] + pd.Timedelta(days=20)
    bills = pd.concat([bills, corrected.to_frame().T], ignore_index=True).astype(bills.dtypes.to_dict())

    standing = bills.sort_values("known_at").drop_duplicates(["customer_id", "period"], keep="last")
    lateness = np.where(standing["customer_id"] == LATE, 20, -2)
    payments = pd.DataFrame(
        {
            "payment_id": [f"P{i:08d}" for i in range(len(standing))],
            "customer_id": standing["customer_id"].to_numpy(),
            "period": standing["period"].to_numpy(),
            "paid_at": (
                standing["due_date"] + pd.to_timedelta(lateness, unit="D") + pd.Timedelta(hours=10)
            ).to_numpy(),
            "amount": standing["amount_due"].to_numpy(),
            "channel": "online",
        }
    )
    unpaid = (payments["customer_id"] == UNPAID) & (payments["period"] > months[-4])
    payments = payments[~unpaid].reset_index(drop=True)

    suspensions = pd.DataFrame(
        {
            "application_id": ["A1", "A2"],
            "customer_id": ["C0000003", "C0000003"],  # a suspension and its restoration
            "applied_at": pd.to_datetime(["2022-11-02 09:00", "2023-02-20 15:30"]),
            "start_date": pd.to_datetime(["2022-11-10", "2023-03-01"]),
            "end_date": pd.to_datetime(["2023-02-28", None]),
            "capacity_kva": [200.0, 200.0],
            "kind": ["suspension", "suspension_restore"],
        }
    )
    inspections = pd.DataFrame(
        {
            "inspection_id": ["I1", "I2"],
            "customer_id": ["C0000003", "C0000006"],
            "inspected_at": pd.to_datetime(["2022-08-15 10:00", "2023-04-03 14:00"]),
            "result": ["normal", "theft"],
            "recovered_kwh": [0.0, 5230.0],
        }
    )
    tables = {"bills": bills, "payments": payments, "suspensions": suspensions, "inspections": inspections}
    for name, frame in tables.items():
        write_table(settings.warehouse_path, name, frame)
    return tables


def write_previous_snapshot(
    package: PackagedModel,
    settings: ServingSettings,
    task: str = "arrears",
    renamed: dict[str, str] | None = None,
    out: Path | None = None,
) -> None:
    """Last month's snapshot of the same population with different features (so the figures move), written
    before the current one so the `latest` pointer is left on the current snapshot. `renamed` gives some
    stations last month's other names (stations renamed or closed since)."""
    frame = scoring_frame(seed=11)
    frame["as_of"] = pd.Timestamp(PREVIOUS_AS_OF)
    if renamed:
        frame["station"] = frame["station"].replace(renamed)
    scores = score_frame(package, frame, ModelRef(name=f"gridrisk-{task}", version="1"))
    write_snapshot(scores, settings.snapshots_path, task, PREVIOUS_AS_OF, out=out)


def rewrite_previous_snapshot(
    package: PackagedModel, settings: ServingSettings, renamed: dict[str, str], task: str = "arrears"
) -> None:
    """Last month's snapshot again, with stations renamed, moved into place without touching `latest`."""
    staging = settings.snapshots_path / f".{task}-previous.parquet"  # outside the task folder: not served
    write_previous_snapshot(package, settings, task, renamed, out=staging)
    staging.replace(settings.snapshots_path / task / f"{PREVIOUS_AS_OF.isoformat()}.parquet")


@dataclass
class WebService:
    """A test app over a home with two monthly snapshots, an archive with PII and history; a key per role."""

    client: TestClient
    state: ServiceState
    population: pd.DataFrame
    history: dict[str, pd.DataFrame]
    keys: dict[str, str]

    def headers(self, role: str) -> dict[str, str]:
        return {"X-API-Key": self.keys[role]}


@contextlib.contextmanager
def web_service(
    settings: ServingSettings, registry: FakeRegistry, renamed: dict[str, str] | None = None
) -> Iterator[WebService]:
    """`renamed` gives some customers other ids (this month's snapshot, the archive and the history)."""
    package = registry.models["gridrisk-arrears"]["1"]
    write_previous_snapshot(package, settings)
    frame = scoring_frame()
    frame["customer_id"] = frame["customer_id"].replace(renamed or {})
    population = write_population_snapshot(package, settings, frame=frame)
    write_customers(settings, population)
    history = write_history(settings, population)
    keys = create_test_keys(settings.keys_path)
    state = ServiceState.build(settings, registry)
    with TestClient(create_app(settings, state)) as client:
        yield WebService(client, state, population, history, keys)
