"""Everything one running service holds: settings, model and snapshot stores, keys, audit, metrics, PII.

Built once in the app's lifespan (or by a test with a fake registry); `refresh()` is the hot-reload step, and
`ReloadSignal` carries `POST /v1/admin/reload` from the worker that took it to the others.
"""

from __future__ import annotations

import logging
import os
import secrets
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path

import pyarrow as pa

from features.sources import WarehouseError, table_path
from serving.access import AuditLog, KeyStore
from serving.directory import CustomerDirectory
from serving.errors import HomeUnwritable
from serving.locks import replace_whole
from serving.metrics import ServiceMetrics
from serving.model_store import MlflowRegistry, ModelStore, Registry
from serving.schemas import ReadyResponse
from serving.settings import ServingSettings
from serving.settlement import Settlement, settle
from serving.snapshot import Snapshot, SnapshotStore
from serving.status import readiness

logger = logging.getLogger(__name__)

RETRY_SECONDS = 5.0  # after a failed reload: the next request that comes later than this tries again


class ReloadSignal:
    """A file naming the latest reload (`$GRIDRISK_HOME/reload-generation`), shared by the workers of a home.

    `gridrisk serve --workers N` runs N processes, each with its own stores; a reload reaches only the one
    that receives it. That one writes a new generation (a temporary file renamed over the old one), and
    every worker stats the file before it serves a request: a stat is about a microsecond, the file is
    read only when its inode or modification time changed, and a generation not yet seen means refresh.
    A refresh that failed, or a file that cannot be read, is tried again by a request `retry_seconds` later.
    """

    def __init__(self, path: Path, retry_seconds: float = RETRY_SECONDS) -> None:
        self.path = path
        self.retry_seconds = retry_seconds
        self.applied: str | None = None  # the generation this worker's stores have refreshed for
        self._seen: tuple[int, int] | None = None  # (inode, mtime) of the file when last read
        self._retry_at = 0.0  # time.monotonic() before which a failed attempt is not repeated
        self._failing = False  # an unreadable file is logged once, not on every request

    def _stamp(self) -> tuple[int, int] | None:
        try:
            stat = os.stat(self.path)
        except FileNotFoundError:
            return None
        except OSError as exc:  # a permission or disk error must not fail the request: serve what is loaded
            self._warn(exc)
            return None
        return stat.st_ino, stat.st_mtime_ns

    def moved(self) -> bool:
        """Cheap: was the file replaced since this worker last read it (or is a failed attempt due again)?"""
        return self._stamp() != self._seen and time.monotonic() >= self._retry_at

    def read(self) -> str | None:
        """The published generation; None when there is none, or the file cannot be read (retried later)."""
        try:
            with open(self.path, encoding="utf-8") as f:
                stat = os.fstat(f.fileno())  # the stamp of the very file read, whatever replaces it next
                generation = f.read().strip()
        except FileNotFoundError:
            self._seen = None
            return None
        except OSError as exc:
            self._warn(exc)
            self.retry_later()
            return None
        self._seen = stat.st_ino, stat.st_mtime_ns
        self._failing = False
        return generation

    def retry_later(self) -> None:
        """Forget the file's stamp, so a request after the back-off reads it and tries the refresh again."""
        self._seen = None
        self._retry_at = time.monotonic() + self.retry_seconds

    def _warn(self, exc: OSError) -> None:
        if not self._failing:
            self._failing = True
            logger.warning("cannot read the reload signal %s (%s); serving what is loaded", self.path, exc)

    def publish(self) -> str:
        """Write a new generation for the other workers; returns it. HomeUnwritable when the file cannot be
        written: the reload is then not done at all, since a worker that refreshed alone would serve other
        models and snapshots than the others, with nothing to tell them."""
        generation = f"{time.time_ns()}-{os.getpid()}-{secrets.token_hex(4)}"
        tmp = self.path.with_name(f".{self.path.name}.{generation}.tmp")

        def write() -> os.stat_result:
            tmp.write_text(generation + "\n", encoding="utf-8")
            # A rename keeps inode and mtime: this worker need not read its own generation.
            return os.stat(tmp)

        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            stat = replace_whole(self.path, tmp, write)
        except OSError as exc:
            raise HomeUnwritable(
                "reload signal",
                self.path,
                exc,
                "the reload was not done (the other workers would not follow it; no worker refreshed)",
            ) from exc
        self._seen = stat.st_ino, stat.st_mtime_ns
        return generation


@dataclass
class ServiceState:
    settings: ServingSettings
    models: ModelStore
    snapshots: SnapshotStore
    keys: KeyStore
    audit: AuditLog
    metrics: ServiceMetrics
    reloads: ReloadSignal
    directory: CustomerDirectory = field(default_factory=CustomerDirectory.empty)
    _directory_mtime: int | None = None
    settlements: dict[str, Settlement] = field(default_factory=dict)  # task -> paid since its snapshot
    _settlement_errors: dict[str, str] = field(default_factory=dict)
    _lock: threading.Lock = field(default_factory=threading.Lock)
    _reload_lock: threading.Lock = field(default_factory=threading.Lock)

    @classmethod
    def build(cls, settings: ServingSettings, registry: Registry | None = None) -> ServiceState:
        registry = registry or MlflowRegistry(settings.tracking_uri, settings.registry_timeout_seconds)
        state = cls(
            settings=settings,
            models=ModelStore(settings, registry),
            snapshots=SnapshotStore(settings.snapshots_path, settings.tasks),
            keys=KeyStore(settings.keys_path, settings.api_keys),
            audit=AuditLog(settings.audit_path),
            metrics=ServiceMetrics(),
            reloads=ReloadSignal(settings.reload_path),
        )
        state.metrics.watch(state._status)
        return state

    def _status(self) -> tuple[ReadyResponse, dict[str, Snapshot]]:
        """What `/metrics` renders as gauges: `/ready`'s answer, and the snapshots served."""
        ready = readiness(self.models, self.snapshots, self.keys, self.settings.home)
        return ready, self.snapshots.loaded()

    def start(self) -> dict[str, str]:
        """The first load at start-up; reloads published before it are already covered by it."""
        with self._reload_lock:
            self.reloads.applied = self.reloads.read()
        changed = self.refresh()
        self._warn_at_start()
        return changed

    def _warn_at_start(self) -> None:
        """What an operator must hear at start-up, as WARNING lines: the INFO `serving … (local-cache)` was
        the only word of a registry that could not be read, and a missing warehouse none at all."""
        for task, model in self.models.loaded().items():
            if model.source == "local-cache":
                why = self.models.detail(task) or "the registry could not be read"
                logger.warning("%s: serving the cached %s v%s: %s", task, model.name, model.version, why)
        customers = table_path(self.settings.warehouse_path, "customers")
        if not customers.is_file():
            logger.warning(
                "no customers table at %s (GRIDRISK_WAREHOUSE): risk lists and customer files carry no "
                "names, phones or addresses; /ready says degraded until there is one",
                customers,
            )

    def reload(self) -> dict[str, str]:
        """`POST /v1/admin/reload`: refresh now, and have every other worker refresh before its next one."""
        with self._reload_lock:
            generation = self.reloads.publish()
            try:
                changed = self.refresh()
            except Exception:
                self.reloads.retry_later()  # not applied: this worker's own later requests try again
                raise
            self.reloads.applied = generation
        return changed

    def follow_reloads(self) -> dict[str, str] | None:
        """Refresh if another worker published a reload this one has not applied; None when there was none."""
        with self._reload_lock:
            if not self.reloads.moved():
                return None  # another request's refresh finished while this one waited for the lock
            generation = self.reloads.read()
            if generation is None or generation == self.reloads.applied:
                return None  # nothing published (or the file unreadable), or applied already
            try:
                changed = self.refresh()
            except Exception:  # like the poller: a registry hiccup must not fail the request that noticed
                logger.exception("reload from another worker failed; serving the models already loaded")
                self.reloads.retry_later()  # the generation stays unapplied: a later request tries again
                return {}
            self.reloads.applied = generation
        logger.info("reload from another worker: %s", changed or "nothing changed")
        return changed

    def refresh(self) -> dict[str, str]:
        """Load moved champions, newer snapshots and a changed customer archive; swap each atomically."""
        changed = self.models.refresh()
        changed.update(self.snapshots.refresh())
        self._refresh_directory()
        changed.update(self._refresh_settlements())
        self.metrics.set_served(self.models.loaded(), self.snapshots.loaded())
        return changed

    def _refresh_settlements(self) -> dict[str, str]:
        """Re-read the payments since each snapshot's date when the snapshot or the payments table changed
        (what moved is part of a reload's answer). A warehouse that cannot be read leaves the lists without
        the mark, never without the list."""
        settlements, changed = {}, {}
        for task, snapshot in self.snapshots.loaded().items():
            try:
                found = settle(snapshot, self.settings.warehouse_path, self.settlements.get(task))
            except (OSError, ValueError, KeyError, pa.ArrowException, WarehouseError) as exc:
                said = f"{task}: payments since {snapshot.as_of} not read, lists go unmarked: {exc}"
                if self._settlement_errors.get(task) != said:  # once, not at every poll
                    logger.warning("%s", said)
                self._settlement_errors[task] = said
                continue
            self._settlement_errors.pop(task, None)
            if found is not None:
                settlements[task] = found
                if found is not self.settlements.get(task):
                    changed[f"{task}-payments"] = f"{int(found.settled.sum())} settled since {snapshot.as_of}"
        self.settlements = settlements
        return changed

    def _refresh_directory(self) -> None:
        path = self.settings.warehouse_path / "customers.parquet"
        mtime = path.stat().st_mtime_ns if path.exists() else None
        with self._lock:
            if mtime == self._directory_mtime:
                return
            self.directory = CustomerDirectory.from_warehouse(self.settings.warehouse_path)
            self._directory_mtime = mtime
