"""The customer file's sorted history copies: built beside the requests, once for every worker."""

from __future__ import annotations

import errno
import os
import threading
import time
from pathlib import Path

import pyarrow.parquet as pq
import pytest
from disk_faults import read_only
from webdata import web_service

from serving.history import COLUMNS, HistoryStore
from serving.settings import ServingSettings


def copies(settings: ServingSettings) -> dict[str, Path]:
    return {p.name.split("-")[0]: p for p in (settings.home / "history-cache").glob("*.parquet")}


def store(settings: ServingSettings) -> HistoryStore:
    return HistoryStore(settings.warehouse_path, settings.home / "history-cache")


def present(settings: ServingSettings) -> set[str]:
    return {name for name in COLUMNS if (settings.warehouse_path / f"{name}.parquet").exists()}


def test_the_service_builds_the_copies_at_start_up_not_in_a_page_view(settings, registry):
    with web_service(settings, registry) as web:
        deadline = time.monotonic() + 60
        while set(copies(settings)) != present(settings) and time.monotonic() < deadline:
            time.sleep(0.05)
        assert set(copies(settings)) == present(settings) and "bills" in present(settings)
        built = {name: path.stat().st_mtime_ns for name, path in copies(settings).items()}
        customer = web.population["customer_id"].iloc[0]
        r = web.client.get(f"/v1/customers/{customer}", headers={"X-API-Key": web.keys["admin"]})
        assert r.status_code == 200 and r.json()["months"]
        assert {name: path.stat().st_mtime_ns for name, path in copies(settings).items()} == built


def test_workers_warming_at_once_build_each_copy_once(settings, registry, monkeypatch):
    with web_service(settings.model_copy(update={"warm_history": False}), registry):
        builds: list[str] = []
        write = HistoryStore._write_copy

        def slow(self, name, path):  # long enough for the other worker to arrive while this one builds
            builds.append(name)
            time.sleep(0.1)
            return write(self, name, path)

        monkeypatch.setattr(HistoryStore, "_write_copy", slow)
        workers = [threading.Thread(target=store(settings).warm) for _ in range(2)]
        for worker in workers:
            worker.start()
        for worker in workers:
            worker.join()
        assert sorted(builds) == sorted(present(settings))  # without the lock each table is built twice


def test_a_copy_that_fails_is_reported_once_per_version_of_its_table(settings, registry, caplog):
    with web_service(settings.model_copy(update={"warm_history": False}), registry):
        bills = settings.warehouse_path / "bills.parquet"
        bills.write_bytes(b"not parquet")
        history = store(settings)
        history.warm()
        history.warm()  # the next poll does not rebuild (and log) the same failure again
        assert caplog.text.count("history copy bills not built in the background") == 1
        assert "payments" in copies(settings)  # the other tables still get theirs
        bills.write_bytes(b"still not parquet")
        later = bills.stat().st_mtime_ns + 1_000_000
        os.utime(bills, ns=(later, later))
        history.warm()  # a new version of the table is tried again
        assert caplog.text.count("history copy bills not built in the background") == 2


def test_starting_a_warm_up_never_waits_for_one_in_progress(settings, registry, monkeypatch):
    with web_service(settings.model_copy(update={"warm_history": False}), registry):
        release = threading.Event()
        write = HistoryStore._write_copy

        def held(self, name, path):
            release.wait(30)
            return write(self, name, path)

        monkeypatch.setattr(HistoryStore, "_write_copy", held)
        history = store(settings)
        first = history.start_warming()
        caller = threading.Thread(target=lambda: history.start_warming())  # as the poll loop would
        caller.start()
        caller.join(timeout=5)
        try:
            assert not caller.is_alive(), "start_warming blocked on the build in progress"
            assert history.start_warming() is first  # one warm-up at a time
        finally:
            release.set()
            first.join(30)
        assert set(copies(settings)) == present(settings)


@pytest.fixture(autouse=True)
def _no_stray_threads():
    yield
    for thread in threading.enumerate():
        if thread.name == "history-copies":
            thread.join(30)


@pytest.mark.parametrize("fault", ["read-only", "full"])
def test_a_copy_that_cannot_be_written_is_a_503_naming_it_and_is_made_once_it_can(
    settings, registry, monkeypatch, fault
):
    # It was a 500: a customer file asked for on a read-only or full home before its copy existed.
    with web_service(settings.model_copy(update={"warm_history": False}), registry) as web:
        if fault == "read-only":
            read_only(monkeypatch, settings.home)
        else:

            def fill(table, where, **kwargs):
                Path(where).write_bytes(b"PAR1" + b"\0" * 100)  # what fitted before the disk was full
                raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))

            monkeypatch.setattr(pq, "write_table", fill)
        customer = web.population["customer_id"].iloc[0]
        r = web.client.get(f"/v1/customers/{customer}", headers=web.headers("admin"))
        cause = "Read-only file system" if fault == "read-only" else "No space left on device"
        assert r.status_code == 503 and r.json()["error"] == "HomeUnwritable"
        assert (
            "customer history copy" in r.json()["detail"]
            and f"cannot be written ({cause})" in r.json()["detail"]
        )
        assert not list((settings.home / "history-cache").glob(".*.tmp"))  # no part-written copy left
        monkeypatch.undo()
        assert web.client.get(f"/v1/customers/{customer}", headers=web.headers("admin")).status_code == 200
