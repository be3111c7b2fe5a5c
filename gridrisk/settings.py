"""Runtime settings for every entry point, read from GRIDRISK_* variables (and MLflow's own).

Built in the entry points, never at import; importing this module creates no folder.
"""

from __future__ import annotations

import os
from pathlib import Path

from pydantic import Field
from pydantic_settings import BaseSettings, SettingsConfigDict


class Settings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="GRIDRISK_", extra="ignore")

    home: Path = Field(
        default=Path(".gridrisk"), description="embedded warehouse, MLflow store, snapshots, keys"
    )
    warehouse: Path | None = Field(default=None, description="default: $GRIDRISK_HOME/warehouse")

    @property
    def warehouse_path(self) -> Path:
        return self.warehouse if self.warehouse is not None else self.home / "warehouse"

    @property
    def tracking_uri(self) -> str:
        """MLflow's convention: MLFLOW_TRACKING_URI when set, else a SQLite store in the home."""
        uri = os.environ.get("MLFLOW_TRACKING_URI")
        if uri:
            return uri
        return f"sqlite:///{(self.home / 'mlflow.db').resolve()}"

    @property
    def artifact_root(self) -> Path:
        return (self.home / "mlartifacts").resolve()

    @property
    def snapshots_path(self) -> Path:
        return self.home / "snapshots"

    @property
    def keys_path(self) -> Path:
        return self.home / "keys.json"


def load_settings() -> Settings:
    return Settings()
