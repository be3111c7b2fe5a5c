"""The model store: registry first, the local copy when the registry is down, swaps on a moved alias."""

from __future__ import annotations

import pytest
from tinymodel import FakeRegistry, feature_frame

from serving.errors import ModelUnavailable
from serving.model_store import ModelStore


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
    store.refresh()
    assert store.get("arrears").source == "registry" and registry.loads == loads


def test_registry_down_without_a_local_copy_is_unavailable_with_the_reason(settings):
    store = ModelStore(settings, FakeRegistry(down="tracking server unreachable"))
    store.refresh()
    with pytest.raises(ModelUnavailable, match="unreachable"):
        store.get("arrears")


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
