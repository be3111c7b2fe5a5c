"""Champion models for the service: loaded by alias from the MLflow registry, kept on local disk, hot-swapped.

The lifespan builds one `ModelStore`; routes reach it through `Depends`. `refresh()` checks each task's
alias and loads a moved champion beside the old one before swapping a single reference, so in-flight
requests finish on the model they started with. When the registry is down, the last champion saved in
the local cache is served. The workers of `gridrisk serve --workers N` share that cache: each writes a version
into a folder of its own and renames it into place in one step, so no worker sees another's half-written copy.
"""

from __future__ import annotations

import base64
import datetime as dt
import errno
import json
import logging
import os
import shutil
import threading
import time
import urllib.error
import urllib.request
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Literal, Protocol
from urllib.parse import unquote, urlsplit

import numpy as np

from serving.errors import ModelUnavailable
from serving.locks import folder_lock
from serving.model import BOOSTER_FILE, PACKAGE_FILE, PackagedModel, load_packaged_model
from serving.schemas import ModelRef, RegistryVersion
from serving.settings import ServingSettings, registered_name, uri_without_credentials

logger = logging.getLogger(__name__)

Source = Literal["registry", "local-cache"]
META_FILE = "meta.json"
# flock'ed by the workers sharing a task's cache while they place, prune or read a copy
LOCK_FILE = "cache.lock"
STALE_SECONDS = 3600  # a worker's staging folder this old belongs to a process that died mid-download


# `gridrisk serve --workers N` opens a local store before its workers do; when it found the file missing it
# says so here, since the workers then find the empty file it made.
MISSING_STORE = "GRIDRISK_MISSING_REGISTRY_FILE"


class RegistryError(Exception):
    """The registry could not be asked (server down, store unreadable)."""


class Registry(Protocol):
    """What the store needs from a model registry; `MlflowRegistry` in production, a dict in unit tests."""

    uri: str  # as it may be shown: no user or password (`uri_without_credentials`)

    def probe(self) -> str | None:
        """None when the registry answers, else why it does not."""

    def alias_version(self, name: str, alias: str) -> str | None:
        """The version an alias points at; None when the model or alias does not exist."""

    def load(self, name: str, version: str, dst: Path) -> PackagedModel: ...

    def versions(self, name: str) -> list[RegistryVersion]: ...


def health_request(uri: str) -> urllib.request.Request:
    """`GET <tracking server>/health`, with a user and password in the URI sent as Basic auth: urllib reads
    `http://alice:pw@host` as a host named `alice:pw@host` ("Name or service not known"), so a registry
    behind a password always looked down, while MLflow's own client (requests) reached it."""
    parts = urlsplit(uri)
    request = urllib.request.Request(uri_without_credentials(uri).rstrip("/") + "/health")
    if parts.username is not None:
        pair = f"{unquote(parts.username)}:{unquote(parts.password or '')}"
        request.add_header("Authorization", "Basic " + base64.b64encode(pair.encode()).decode())
    return request


def store_errors() -> tuple[type[BaseException], ...]:
    """What reading an MLflow store raises besides MlflowException: a locked or broken SQLite file surfaces
    as SQLAlchemy's or sqlite3's own error (`database is locked`, `file is not a database`), which took a
    worker's start-up, and with it the whole `serve --workers N`, down instead of the cached champion."""
    import sqlite3

    from alembic.util.exc import CommandError
    from sqlalchemy.exc import SQLAlchemyError

    # CommandError: two processes upgrading one store's schema at once (a new or older mlflow.db).
    return (OSError, sqlite3.Error, SQLAlchemyError, CommandError)


def _short(exc: BaseException) -> str:
    """The error's first line: SQLAlchemy's message carries the whole SQL statement and a help link."""
    return str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__


class MlflowRegistry:
    """The MLflow model registry at a tracking URI (SQLite store or `mlflow server`)."""

    def __init__(self, uri: str, timeout_seconds: float = 2.0) -> None:
        # `uri` is what anyone may read (`/ready`, error bodies, logs); MLflow's client gets the URI as given.
        self.uri = uri_without_credentials(uri)
        self._tracking_uri = uri
        self._userinfo = urlsplit(uri).netloc.rpartition("@")[0]
        self.timeout_seconds = timeout_seconds
        # An SQLite store whose file is missing is made anew, empty, by MLflow's first call: an operator's
        # moved mlflow.db read as "no champion; train one" instead of "restore the file".
        store = Path(uri.removeprefix("sqlite:///")) if uri.startswith("sqlite:///") else None
        made_by_serve = store is not None and os.environ.get(MISSING_STORE) == str(store)
        self.missing_store = store if store is not None and (made_by_serve or not store.exists()) else None
        if self.missing_store is not None:
            logger.warning(
                "the registry file %s does not exist: MLflow makes a new, empty one; if it held the models, "
                "restore it from a backup",
                self.missing_store,
            )

    def _client(self):  # type: ignore[no-untyped-def]
        from mlflow import MlflowClient

        return MlflowClient(tracking_uri=self._tracking_uri, registry_uri=self._tracking_uri)

    def _told(self, exc: BaseException | str) -> str:
        """An error's text without the URI's user and password: MLflow's messages quote the URL it asked."""
        text = str(exc)
        return text.replace(f"{self._userinfo}@", "") if self._userinfo else text

    def probe(self) -> str | None:
        # MLflow's REST client retries for minutes against a dead server; a short probe decides first.
        if not self.uri.startswith(("http://", "https://")):
            return None
        try:
            with urllib.request.urlopen(
                health_request(self._tracking_uri), timeout=self.timeout_seconds
            ) as resp:
                return None if resp.status == 200 else f"{self.uri}/health answered {resp.status}"
        except (urllib.error.URLError, OSError, ValueError) as exc:  # ValueError: a URI urllib cannot parse
            return f"tracking server {self.uri} unreachable: {self._told(exc)}"

    def alias_version(self, name: str, alias: str) -> str | None:
        from mlflow.exceptions import MlflowException

        try:
            return str(self._client().get_model_version_by_alias(name, alias).version)
        except MlflowException as exc:
            if exc.error_code in ("RESOURCE_DOES_NOT_EXIST", "INVALID_PARAMETER_VALUE", "NOT_FOUND"):
                return None
            raise RegistryError(
                f"registry {self.uri}: cannot read {name}@{alias}: {self._told(exc)}"
            ) from exc
        except store_errors() as exc:
            why = self._told(_short(exc))
            raise RegistryError(f"registry {self.uri}: cannot read {name}@{alias}: {why}") from exc

    def load(self, name: str, version: str, dst: Path) -> PackagedModel:
        try:
            return load_packaged_model(f"models:/{name}/{version}", dst=dst, tracking_uri=self._tracking_uri)
        except Exception as exc:
            if not self._userinfo:
                raise
            # Not chained: the store logs the traceback, which would quote the URL with its password.
            raise RegistryError(f"{type(exc).__name__}: {self._told(exc)}") from None

    def versions(self, name: str) -> list[RegistryVersion]:
        from mlflow.exceptions import MlflowException

        errors: tuple[type[BaseException], ...] = (MlflowException, *store_errors())
        try:
            client = self._client()
            found = client.search_model_versions(f"name = '{name}'")
            # search results leave `aliases` empty on some stores; the registered model has them all.
            aliases = client.get_registered_model(name).aliases if found else {}
        except errors as exc:
            why = self._told(_short(exc))
            raise RegistryError(f"registry {self.uri}: cannot list versions of {name}: {why}") from exc
        out = [
            RegistryVersion(
                version=str(mv.version),
                aliases=sorted(a for a, v in aliases.items() if str(v) == str(mv.version)),
                run_id=mv.run_id,
                created_at=dt.datetime.fromtimestamp(mv.creation_timestamp / 1000, tz=dt.UTC)
                if mv.creation_timestamp
                else None,
            )
            for mv in found
        ]
        return sorted(out, key=lambda v: int(v.version) if v.version.isdigit() else 0, reverse=True)


@dataclass(frozen=True)
class LoadedModel:
    """One champion in memory; immutable so a request holding it is never affected by a swap."""

    task: str
    name: str
    version: str
    package: PackagedModel
    source: Source
    loaded_at: dt.datetime
    explain_ms_per_row: float | None

    @property
    def ref(self) -> ModelRef:
        return ModelRef(name=self.name, version=self.version)


def explain_cost_ms(package: PackagedModel, rows: int = 64, seed: int = 0) -> float:
    """TreeSHAP milliseconds per row on rows drawn from the model's own split thresholds (realistic paths)."""
    n_features = len(package.spec.names)
    thresholds: list[list[float]] = [[] for _ in range(n_features)]

    def walk(node: dict) -> None:
        if "split_feature" in node:
            if node.get("decision_type") == "<=":
                thresholds[node["split_feature"]].append(float(node["threshold"]))
            walk(node["left_child"])
            walk(node["right_child"])

    for tree in package.booster.dump_model()["tree_info"]:
        walk(tree["tree_structure"])
    rng = np.random.default_rng(seed)
    X = np.zeros((rows, n_features))
    for j, values in enumerate(thresholds):
        if values:
            X[:, j] = rng.choice(values, size=rows) + rng.choice([-1e-6, 1e-6], size=rows)
    start = time.perf_counter()
    package.contributions(X)
    return (time.perf_counter() - start) * 1000 / rows


class ModelStore:
    """The served champion per task, with a disk cache of the last one loaded from the registry."""

    def __init__(self, settings: ServingSettings, registry: Registry) -> None:
        self.settings = settings
        self.registry = registry
        self.cache_root = settings.model_cache_path
        self._models: dict[str, LoadedModel] = {}
        self._details: dict[str, str] = {}
        self._registry_error: str | None = "not checked yet"
        self._lock = threading.Lock()

    # -- reading (request path, lock-free) ------------------------------------------------------------
    def get(self, task: str) -> LoadedModel:
        model = self._models.get(task)
        if model is None:
            reason = self._details.get(task) or f"task '{task}' is not configured (GRIDRISK_TASKS)"
            raise ModelUnavailable(f"no {task} model is loaded: {reason}")
        return model

    def loaded(self) -> dict[str, LoadedModel]:
        return dict(self._models)

    def detail(self, task: str) -> str | None:
        return self._details.get(task)

    @property
    def registry_error(self) -> str | None:
        return self._registry_error

    # -- loading --------------------------------------------------------------------------------------
    def refresh(self) -> dict[str, str]:
        """Check every task's alias; load and swap the ones that moved. Returns task -> 'old -> new'."""
        with self._lock:
            self._registry_error = self.registry.probe()
            changed: dict[str, str] = {}
            for task in self.settings.tasks:
                before = self._models.get(task)
                after = self._refresh_task(task, before)
                if after is not None and after is not before:
                    # One reference assignment: readers see either the old dict or the new one.
                    self._models = {**self._models, task: after}
                    logger.info("serving %s v%s (%s)", after.name, after.version, after.source)
                    # The local copy relabelled as the registry's champion is the same model: not a swap.
                    if before is None or before.version != after.version:
                        changed[task] = f"{before.version if before else 'none'} -> {after.version}"
            return changed

    def _refresh_task(self, task: str, current: LoadedModel | None) -> LoadedModel | None:
        name = registered_name(task)
        alias = self.settings.alias
        if self._registry_error is None:
            try:
                version = self.registry.alias_version(name, alias)
            except RegistryError as exc:
                self._registry_error = str(exc)
            else:
                if version is None:
                    missing = getattr(self.registry, "missing_store", None)
                    self._details[task] = (
                        f"registry {self.registry.uri} has no {name}@{alias}; train and promote one"
                        if missing is None
                        else f"registry {self.registry.uri} has no {name}@{alias}: its file {missing} did "
                        "not exist at start-up and was made anew, empty; restore it from a backup, or train "
                        "and promote one"
                    )
                    return current if current is not None else self._from_cache(task)
                if current is not None and current.version == version:
                    self._details.pop(task, None)
                    # The cached copy is the registry's champion again: no need to download it twice.
                    return current if current.source == "registry" else replace(current, source="registry")
                try:
                    loaded = self._from_registry(task, name, version)
                except Exception as exc:  # a broken artifact must not take the service down
                    logger.exception("cannot load %s v%s", name, version)
                    self._details[task] = f"cannot load {name} v{version} from {self.registry.uri}: {exc}"
                    return current if current is not None else self._from_cache(task)
                self._details.pop(task, None)
                return loaded
        if current is not None:  # loaded from the registry before it went away: say so, not "kept on disk"
            self._details[task] = f"{self._registry_error}; serving v{current.version}, loaded before that"
            return current
        self._details[task] = f"{self._registry_error}; serving the last champion kept on disk"
        cached = self._from_cache(task)
        if cached is None and not (self.cache_root / task / META_FILE).exists():
            # nothing kept: "serving the last champion kept on disk" was said of tasks that never had one
            self._details[task] = f"{self._registry_error}; no champion is kept on disk either"
        return cached

    def _from_registry(self, task: str, name: str, version: str) -> LoadedModel:
        task_dir = self.cache_root / task
        final = task_dir / f"v{version}"
        # Each process stages in a folder of its own: workers starting together all download, none collide.
        staging = task_dir / f".v{version}-{os.getpid()}-{time.time_ns()}"
        try:
            package = self.registry.load(name, version, staging / "download")
            package.save(staging / "version" / "package")
            # One worker at a time places its version, names it in meta.json and prunes: two workers loading
            # different versions (an alias moved mid-reload) can no longer delete each other's copy.
            with folder_lock(task_dir, LOCK_FILE, exclusive=True):
                _publish(staging / "version", final)
                meta = {"name": name, "version": version, "saved_at": dt.datetime.now(dt.UTC).isoformat()}
                tmp = task_dir / f".{META_FILE}.{os.getpid()}-{time.time_ns()}.tmp"
                tmp.write_text(json.dumps(meta))
                tmp.replace(task_dir / META_FILE)
                _prune(task_dir, keep=final)
        finally:
            shutil.rmtree(staging, ignore_errors=True)
        return self._loaded(task, name, version, package, "registry")

    def _from_cache(self, task: str) -> LoadedModel | None:
        task_dir = self.cache_root / task
        meta_path = task_dir / META_FILE
        if not meta_path.exists():
            return None
        try:
            # shared: no worker prunes the copy while this one reads it
            with folder_lock(task_dir, LOCK_FILE, exclusive=False):
                meta = json.loads(meta_path.read_text())
                package = PackagedModel.load(task_dir / f"v{meta['version']}" / "package")
        except Exception as exc:  # a copy broken by hand or a full disk must not stop the start-up
            logger.warning("cannot read the local copy of the %s model in %s: %s", task, task_dir, exc)
            self._details[task] = (
                f"{self._details.get(task) or 'no model from the registry'}; "
                f"the local copy in {task_dir} cannot be read: {exc}"
            )
            return None
        return self._loaded(task, meta["name"], str(meta["version"]), package, "local-cache")

    @staticmethod
    def _loaded(task: str, name: str, version: str, package: PackagedModel, source: Source) -> LoadedModel:
        return LoadedModel(
            task=task,
            name=name,
            version=version,
            package=package,
            source=source,
            loaded_at=dt.datetime.now(dt.UTC),
            explain_ms_per_row=explain_cost_ms(package),
        )

    def registry_versions(self, task: str) -> list[RegistryVersion]:
        if self._registry_error is not None:
            return []
        try:
            return self.registry.versions(registered_name(task))
        except RegistryError as exc:
            logger.warning("%s", exc)
            return []


def _complete(version_dir: Path) -> bool:
    package = version_dir / "package"
    return (package / PACKAGE_FILE).is_file() and (package / BOOSTER_FILE).is_file()


def _publish(built: Path, final: Path, attempts: int = 3) -> None:
    """Move a fully written version folder to `final` in one rename; keep a complete copy already there.

    A rename onto a non-empty folder fails, so the first worker to finish wins and the others drop their
    copies (the same version of the same registered model). An incomplete folder there (left by a crash of
    an older release, which wrote in place) is moved aside first, also by a rename, then retried. Any other
    failure (permissions, a full disk) is raised as it is, so `/ready` names the real cause.
    """
    for _ in range(attempts):
        try:
            built.rename(final)
            return
        except OSError as exc:
            if exc.errno not in (errno.ENOTEMPTY, errno.EEXIST):
                raise
            if not final.exists():
                continue  # another worker moved a stale copy aside between our two steps
            if _complete(final):
                return
            aside = final.with_name(f".stale-{final.name}-{os.getpid()}-{time.time_ns()}")
            try:
                final.rename(aside)
            except FileNotFoundError:
                continue
            shutil.rmtree(aside, ignore_errors=True)
    raise OSError(f"cannot place the downloaded model at {final}: it kept changing under another process")


def _prune(task_dir: Path, keep: Path) -> None:
    """Drop other versions, and staging folders of workers that died mid-download; call under `folder_lock`.

    The version meta.json names is the registry-down fallback, so it stays even when it is not `keep`.
    """
    try:
        named = task_dir / f"v{json.loads((task_dir / META_FILE).read_text())['version']}"
    except (OSError, ValueError, KeyError, TypeError):
        named = keep
    for old in task_dir.glob("v*"):
        if old not in (keep, named):
            shutil.rmtree(old, ignore_errors=True)
    cutoff = time.time() - STALE_SECONDS
    for leftover in task_dir.glob(".*"):
        try:
            stale = leftover.stat().st_mtime < cutoff
        except FileNotFoundError:
            continue
        if stale:
            if leftover.is_dir():
                shutil.rmtree(leftover, ignore_errors=True)
            else:
                leftover.unlink(missing_ok=True)
