"""The model store: registry first, the local copy when the registry is down, swaps on a moved alias."""

from __future__ import annotations

import errno
import fcntl
import json
import os
import shutil
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest
from tinymodel import FakeRegistry, feature_frame

from serving.errors import ModelUnavailable
from serving.model_store import ModelStore, _prune


def test_loads_the_champion_and_keeps_a_local_copy(settings, registry):
    store = ModelStore(settings, registry)
    assert store.refresh() == {"arrears": "none -> 1"}
    model = store.get("arrears")
    assert (model.version, model.source) == ("1", "registry")
    assert (settings.model_cache_path / "arrears" / "meta.json").exists()
    assert store.refresh() == {}  # nothing moved: no reload
    assert registry.loads == 1


def test_registry_down_at_start_serves_the_local_copy(settings, registry, package):
    ModelStore(settings, registry).refresh()
    registry.down = "tracking server http://127.0.0.1:1 unreachable"
    store = ModelStore(settings, registry)
    store.refresh()
    model = store.get("arrears")
    assert (model.version, model.source) == ("1", "local-cache")
    assert "unreachable" in store.detail("arrears")
    X = package.spec.matrix(feature_frame(5, seed=2))
    assert model.package.predict_proba(X) == pytest.approx(package.predict_proba(X))
    # The registry comes back with the same champion: relabelled, not downloaded again.
    registry.down = None
    loads = registry.loads
    assert store.refresh() == {}  # the same version: relabelled, not reported as a swap ('1 -> 1')
    assert store.get("arrears").source == "registry" and registry.loads == loads


def test_a_broken_sqlite_registry_serves_the_local_copy(settings, registry, tmp_path):
    # An operator's garbage mlflow.db (and a locked one) raised sqlite3's and SQLAlchemy's own errors out of
    # the start-up: with `--workers 2`, one worker respawning while the file was locked stopped the service.
    from serving.model_store import MlflowRegistry, RegistryError

    ModelStore(settings, registry).refresh()
    broken = tmp_path / "mlflow.db"
    broken.write_bytes(b"not a database, " * 64)
    sqlite = MlflowRegistry(f"sqlite:///{broken}")
    with pytest.raises(RegistryError, match="file is not a database"):
        sqlite.alias_version("gridrisk-arrears", "champion")
    with pytest.raises(RegistryError, match="file is not a database"):
        sqlite.versions("gridrisk-arrears")
    store = ModelStore(settings, sqlite)
    store.refresh()
    assert store.get("arrears").source == "local-cache"
    assert "file is not a database" in store.detail("arrears")


def test_a_missing_sqlite_registry_says_to_restore_it(settings, registry, tmp_path):
    # An operator moved mlflow.db away: MLflow made a new empty one, and every task said "train and promote
    # one", sending them to retrain rather than to restore the file.
    from serving.model_store import MlflowRegistry

    ModelStore(settings, registry).refresh()
    missing = tmp_path / "moved" / "mlflow.db"
    missing.parent.mkdir()
    store = ModelStore(settings, MlflowRegistry(f"sqlite:///{missing}"))
    store.refresh()
    assert store.get("arrears").source == "local-cache"
    assert f"its file {missing} did not exist at start-up" in store.detail("arrears")
    assert "restore it from a backup" in store.detail("arrears")
    again = ModelStore(
        settings, MlflowRegistry(f"sqlite:///{missing}")
    )  # the file MLflow made: nothing to say
    again.refresh()
    assert "did not exist" not in again.detail("arrears")


def test_registry_down_without_a_local_copy_is_unavailable_with_the_reason(settings):
    store = ModelStore(settings, FakeRegistry(down="tracking server unreachable"))
    store.refresh()
    with pytest.raises(ModelUnavailable, match="unreachable"):
        store.get("arrears")
    # It said "serving the last champion kept on disk" of a task that never had one.
    assert store.detail("arrears") == "tracking server unreachable; no champion is kept on disk either"


def test_registry_lost_while_serving_names_the_version_loaded_before(settings, registry):
    """A model loaded from the registry before it went away is not "the last champion kept on disk"."""
    store = ModelStore(settings, registry)
    store.refresh()
    registry.down = "tracking server http://127.0.0.1:1 unreachable"
    assert store.refresh() == {}
    assert store.get("arrears").version == "1"
    assert (
        store.detail("arrears")
        == "tracking server http://127.0.0.1:1 unreachable; serving v1, loaded before that"
    )


def test_a_moved_alias_swaps_and_the_old_model_stays_intact(settings, registry, package_v2):
    store = ModelStore(settings, registry)
    store.refresh()
    old = store.get("arrears")
    registry.register("gridrisk-arrears", package_v2)
    assert store.refresh() == {"arrears": "1 -> 2"}
    assert store.get("arrears").version == "2"
    assert old.version == "1" and old.package is not package_v2  # a request holding `old` is unaffected
    assert sorted(p.name for p in (settings.model_cache_path / "arrears").glob("v*")) == ["v2"]


def test_a_broken_new_version_keeps_the_old_one(settings, registry, package_v2):
    store = ModelStore(settings, registry)
    store.refresh()
    registry.register("gridrisk-arrears", package_v2)

    def broken(name, version, dst):
        raise OSError("artifact store refused the download")

    registry.load = broken
    assert store.refresh() == {}
    assert store.get("arrears").version == "1"
    assert "refused" in store.detail("arrears")


def test_workers_filling_one_cache_at_once_all_load_the_champion(settings, registry):
    # `gridrisk serve --workers N`: N processes start together and download the same champion into one
    # cache. Eight stores on one home, released together once each has its download, stand in for them.
    workers = 8
    barrier = threading.Barrier(workers)
    download = registry.load

    def together(name, version, dst):
        package = download(name, version, dst)
        barrier.wait(timeout=60)
        return package

    registry.load = together
    stores = [ModelStore(settings, registry) for _ in range(workers)]
    for _ in range(3):  # three rounds: a race lost once in a while must still show
        shutil.rmtree(settings.model_cache_path, ignore_errors=True)
        for store in stores:
            store._models = {}
        with ThreadPoolExecutor(workers) as pool:
            changes = list(pool.map(lambda store: store.refresh(), stores))
        assert changes == [{"arrears": "none -> 1"}] * workers
        assert [(s.get("arrears").source, s.detail("arrears")) for s in stores] == [
            ("registry", None)
        ] * workers
        task_dir = settings.model_cache_path / "arrears"
        assert sorted(p.name for p in task_dir.iterdir()) == ["cache.lock", "meta.json", "v1"]  # no staging
    registry.down = "tracking server unreachable"
    restarted = ModelStore(settings, registry)
    restarted.refresh()
    assert (restarted.get("arrears").version, restarted.get("arrears").source) == ("1", "local-cache")


def test_a_half_written_copy_or_a_dead_workers_staging_is_replaced(settings, registry):
    task_dir = settings.model_cache_path / "arrears"
    (task_dir / "v1" / "package").mkdir(parents=True)
    (task_dir / "v1" / "package" / "package.json").write_text("{")  # no booster: a crash mid-write
    dead = task_dir / ".v1-99999-1"
    (dead / "download").mkdir(parents=True)
    old = time.time() - 2 * 3600
    os.utime(dead, (old, old))
    store = ModelStore(settings, registry)
    assert store.refresh() == {"arrears": "none -> 1"}
    assert sorted(p.name for p in task_dir.iterdir()) == ["cache.lock", "meta.json", "v1"]
    registry.down = "tracking server unreachable"
    restarted = ModelStore(settings, registry)
    restarted.refresh()
    assert restarted.get("arrears").source == "local-cache"


def test_pruning_keeps_the_version_meta_json_names(settings, registry, package_v2):
    # Two workers, the alias moved mid-reload: this one placed v1, the other placed v2 and named it last.
    store = ModelStore(settings, registry)
    store.refresh()
    task_dir = settings.model_cache_path / "arrears"
    shutil.copytree(task_dir / "v1", task_dir / "v2")
    (task_dir / "v0").mkdir()  # an older version: neither placed now nor named
    (task_dir / "meta.json").write_text(json.dumps({"name": "gridrisk-arrears", "version": "2"}))
    _prune(task_dir, keep=task_dir / "v1")
    assert sorted(p.name for p in task_dir.glob("v*")) == ["v1", "v2"]
    registry.down = "tracking server unreachable"
    restarted = ModelStore(settings, registry)
    restarted.refresh()
    assert (restarted.get("arrears").version, restarted.get("arrears").source) == ("2", "local-cache")


def test_versions_are_pruned_under_the_cache_lock(settings, registry, package_v2, monkeypatch):
    ModelStore(settings, registry).refresh()
    lock_file = settings.model_cache_path / "arrears" / "cache.lock"
    rmtree, held = shutil.rmtree, []

    def probe(path, *args, **kwargs):  # type: ignore[no-untyped-def]
        if Path(path).name == "v1":  # the old version being pruned: another worker must not get the lock
            with open(lock_file, "a") as other:
                try:
                    fcntl.flock(other.fileno(), fcntl.LOCK_EX | fcntl.LOCK_NB)
                except BlockingIOError:
                    held.append(True)
                else:
                    held.append(False)
        return rmtree(path, *args, **kwargs)

    monkeypatch.setattr(shutil, "rmtree", probe)
    registry.register("gridrisk-arrears", package_v2)
    assert ModelStore(settings, registry).refresh() == {"arrears": "none -> 2"}
    assert held == [True]


def test_a_rename_refused_for_another_reason_names_it(settings, registry, monkeypatch):
    rename = Path.rename

    def refused(self, target):  # type: ignore[no-untyped-def]
        if Path(target).name == "v1":
            raise PermissionError(errno.EACCES, "Permission denied", str(self), None, str(target))
        return rename(self, target)

    monkeypatch.setattr(Path, "rename", refused)
    store = ModelStore(settings, registry)
    store.refresh()
    with pytest.raises(ModelUnavailable, match="Permission denied"):
        store.get("arrears")
    assert "Permission denied" in store.detail("arrears") and "kept changing" not in store.detail("arrears")


def test_an_unreadable_local_copy_is_no_model_not_a_crash(settings, registry):
    ModelStore(settings, registry).refresh()
    (settings.model_cache_path / "arrears" / "v1" / "package" / "booster.txt").write_text("not a model")
    registry.down = "tracking server unreachable"
    store = ModelStore(settings, registry)
    store.refresh()
    with pytest.raises(ModelUnavailable, match="cannot be read"):
        store.get("arrears")
