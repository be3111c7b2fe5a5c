"""The customer file's sorted history copies: built beside the requests, once for every worker."""

from __future__ import annotations

import time
from pathlib import Path

import pytest
from webdata import web_service

from serving.history import COLUMNS, HistoryStore
from serving.settings import ServingSettings


def copies(settings: ServingSettings) -> dict[str, Path]:
    return {p.name.split("-")[0]: p for p in (settings.home / "history-cache").glob("*.parquet")}


def test_the_service_builds_the_copies_at_start_up_not_in_a_page_view(settings, registry):
    with web_service(settings, registry) as web:
        deadline = time.monotonic() + 60
        while set(copies(settings)) != set(COLUMNS) and time.monotonic() < deadline:
            time.sleep(0.05)
        assert set(copies(settings)) == set(COLUMNS)  # no request asked for a customer file
        built = {name: path.stat().st_mtime_ns for name, path in copies(settings).items()}
        customer = web.population["customer_id"].iloc[0]
        r = web.client.get(f"/v1/customers/{customer}", headers={"X-API-Key": web.keys["admin"]})
        assert r.status_code == 200 and r.json()["months"]
        assert {name: path.stat().st_mtime_ns for name, path in copies(settings).items()} == built


def test_a_second_worker_reads_the_copies_the_first_built(settings, registry):
    with web_service(settings.model_copy(update={"warm_history": False}), registry):
        first = HistoryStore(settings.warehouse_path, settings.home / "history-cache")
        first.warm()
        built = {name: path.stat().st_mtime_ns for name, path in copies(settings).items()}
        HistoryStore(settings.warehouse_path, settings.home / "history-cache").warm()
        assert {name: path.stat().st_mtime_ns for name, path in copies(settings).items()} == built


def test_warming_up_never_raises(settings, registry, caplog: pytest.LogCaptureFixture):
    with web_service(settings.model_copy(update={"warm_history": False}), registry):
        (settings.warehouse_path / "bills.parquet").write_bytes(b"not parquet")
        HistoryStore(settings.warehouse_path, settings.home / "history-cache").warm()
        assert "history copy bills not built in the background" in caplog.text
        assert "payments" in copies(settings)  # the other tables still get theirs
