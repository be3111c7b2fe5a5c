"""Settings of the scoring service and the batch scorer, read from GRIDRISK_* variables in the entry points.

Serving sits below `gridrisk/`, so it reads the same variables through its own settings class.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Annotated, Any
from urllib.parse import urlsplit, urlunsplit

from pydantic import Field, field_validator
from pydantic_settings import BaseSettings, NoDecode, SettingsConfigDict

from serving.schemas import MAX_BATCH

TASKS: tuple[str, ...] = ("arrears", "suspension", "theft")
# The request body read by default: the largest batch the API takes (MAX_BATCH records) at 5 KiB a record. The
# widest task's 70 features at full float precision with a 64-character id take 4.0 KiB indented (tested).
MAX_BODY_BYTES = MAX_BATCH * 5 * 1024


class ServingSettings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="GRIDRISK_", extra="ignore")

    home: Path = Field(
        default=Path(".gridrisk"), description="snapshots, keys, audit log and the model cache"
    )
    warehouse: Path | None = Field(
        default=None, description="default: $GRIDRISK_HOME/warehouse (PII for lists)"
    )
    tasks: Annotated[list[str], NoDecode] = Field(  # NoDecode: `_tasks_known` reads the JSON and says so
        default=list(TASKS), description="tasks the service loads a champion for"
    )
    alias: str = Field(default="champion", description="registry alias the service serves")
    poll_seconds: float = Field(
        default=30.0, ge=0, description="how often to check the alias; 0 = only on reload; else at least 1"
    )
    top_k: int = Field(default=5, ge=1, le=20, description="reasons returned per customer")
    api_keys: str | None = Field(
        default=None, description="JSON list of key records (hashes only), used instead of keys.json"
    )
    registry_timeout_seconds: float = Field(
        default=2.0, gt=0, description="probe timeout for an HTTP registry"
    )
    max_body_bytes: int = Field(
        default=MAX_BODY_BYTES,
        gt=0,
        description="largest request body read, in bytes; a larger one is a 413 (a declared one unread)",
    )
    warm_history: bool = Field(
        default=True,
        description="build the customer files' sorted history copies in the background at start-up and when "
        "the warehouse changes, so no page view waits for them (false: on the first customer file)",
    )

    @field_validator("home")
    @classmethod
    def _home_is_a_folder(cls, v: Path) -> Path:
        if v.exists() and not v.is_dir():
            raise ValueError(
                f"GRIDRISK_HOME {v} is a file; point it at a folder (one that does not exist is made)"
            )
        return v

    @field_validator("tasks", mode="before")
    @classmethod
    def _tasks_known(cls, v: Any) -> Any:
        """A JSON list of known tasks, at least one. `["arrears","bogus"]` was served `degraded` for ever, and
        `[]` started a service that stayed `not_ready` without a word; `arrears` was refused with pydantic's
        "error parsing value for field" and no hint of the JSON expected."""
        expected = f"a JSON list of tasks from {', '.join(TASKS)}, e.g. GRIDRISK_TASKS='[\"arrears\"]'"
        if isinstance(v, str):
            try:
                v = json.loads(v)
            except json.JSONDecodeError:
                raise ValueError(f"{v!r} is not JSON; expected {expected}") from None
        if not isinstance(v, list) or not all(isinstance(t, str) for t in v):
            raise ValueError(f"expected {expected}, got {json.dumps(v)}")
        if not v:
            raise ValueError(f"the list is empty, so the service would serve nothing; expected {expected}")
        unknown = [t for t in v if t not in TASKS]
        if unknown:
            raise ValueError(f"unknown task {', '.join(map(repr, unknown))}; expected {expected}")
        return list(dict.fromkeys(v))  # a task named twice is loaded once

    @field_validator("poll_seconds")
    @classmethod
    def _poll_not_busy(cls, v: float) -> float:
        """0.01 s kept an idle worker at 29 % of a core polling the registry (0.03 s per 10 s at 30 s)."""
        if 0 < v < 1:
            raise ValueError(f"{v} s would poll the registry without a pause; use 0 (only on reload) or 1+")
        return v

    @property
    def warehouse_path(self) -> Path:
        return self.warehouse if self.warehouse is not None else self.home / "warehouse"

    @property
    def tracking_uri(self) -> str:
        """MLflow's own variable wins; else the embedded SQLite store in the home (as `gridrisk.settings`)."""
        uri = os.environ.get("MLFLOW_TRACKING_URI")
        if uri:
            return uri
        return f"sqlite:///{(self.home / 'mlflow.db').resolve()}"

    @property
    def snapshots_path(self) -> Path:
        return self.home / "snapshots"

    @property
    def keys_path(self) -> Path:
        return self.home / "keys.json"

    @property
    def audit_path(self) -> Path:
        return self.home / "audit.log"

    @property
    def model_cache_path(self) -> Path:
        return self.home / "serving-cache"

    @property
    def reload_path(self) -> Path:
        """The latest `POST /v1/admin/reload`'s generation; every worker follows it (serving/service.py)."""
        return self.home / "reload-generation"


def uri_without_credentials(uri: str) -> str:
    """A tracking or registry URI as it may be shown (`/ready`, an error body, a log line): no user,
    password, query (a token) or fragment. `/ready` answers without a key, so `http://alice:pw@host` was
    anyone's to read. A URI without a host (`sqlite:///…`, a path) holds none and is returned as it is."""
    scheme, sep, rest = uri.partition("://")
    if sep and "@" in rest:
        # Up to the last "@": a password written with a bare "/", "?" or "#" (not %-encoded) made the parser
        # end the host there, and the rest of the password was shown as the path (a reviewer).
        uri = f"{scheme}://{rest.rpartition('@')[2]}"
    parts = urlsplit(uri)
    if not parts.netloc:
        return uri
    return urlunsplit((parts.scheme, parts.netloc, parts.path, "", ""))


def registered_name(task: str) -> str:
    """`gridrisk-<task>`, or `gridrisk-<prefix>-<task>` with GRIDRISK_MODEL_PREFIX set: training registers
    (training.registry.model_name) and the service loads under the same name, so utilities sharing one
    tracking server keep apart."""
    prefix = os.environ.get("GRIDRISK_MODEL_PREFIX", "").strip()
    return f"gridrisk-{prefix}-{task}" if prefix else f"gridrisk-{task}"
