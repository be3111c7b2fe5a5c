"""Everything one running service holds: settings, model and snapshot stores, keys, audit, metrics, PII.

Built once in the app's lifespan (or by a test with a fake registry); `refresh()` is the hot-reload step.
"""

from __future__ import annotations

import logging
import threading
from dataclasses import dataclass, field

from serving.access import AuditLog, KeyStore
from serving.directory import CustomerDirectory
from serving.metrics import ServiceMetrics
from serving.model_store import MlflowRegistry, ModelStore, Registry
from serving.settings import ServingSettings
from serving.snapshot import SnapshotStore

logger = logging.getLogger(__name__)


@dataclass
class ServiceState:
    settings: ServingSettings
    models: ModelStore
    snapshots: SnapshotStore
    keys: KeyStore
    audit: AuditLog
    metrics: ServiceMetrics
    directory: CustomerDirectory = field(default_factory=CustomerDirectory.empty)
    _directory_mtime: int | None = None
    _lock: threading.Lock = field(default_factory=threading.Lock)

    @classmethod
    def build(cls, settings: ServingSettings, registry: Registry | None = None) -> ServiceState:
        registry = registry or MlflowRegistry(settings.tracking_uri, settings.registry_timeout_seconds)
        return cls(
            settings=settings,
            models=ModelStore(settings, registry),
            snapshots=SnapshotStore(settings.snapshots_path, settings.tasks),
            keys=KeyStore(settings.keys_path, settings.api_keys),
            audit=AuditLog(settings.audit_path),
            metrics=ServiceMetrics(),
        )

    def refresh(self) -> dict[str, str]:
        """Load moved champions, newer snapshots and a changed customer archive; swap each atomically."""
        changed = self.models.refresh()
        changed.update(self.snapshots.refresh())
        self._refresh_directory()
        self.metrics.set_served(self.models.loaded(), self.snapshots.loaded())
        return changed

    def _refresh_directory(self) -> None:
        path = self.settings.warehouse_path / "customers.parquet"
        mtime = path.stat().st_mtime_ns if path.exists() else None
        with self._lock:
            if mtime == self._directory_mtime:
                return
            self.directory = CustomerDirectory.from_warehouse(self.settings.warehouse_path)
            self._directory_mtime = mtime
