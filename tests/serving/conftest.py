"""Serving fixtures: the tiny package, a fake registry holding it, settings in a temporary home."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pandas as pd
import pytest
from fastapi.testclient import TestClient
from tinymodel import (
    FakeRegistry,
    create_test_keys,
    train_package,
    write_customers,
    write_population_snapshot,
)

from serving.main import create_app
from serving.model import PackagedModel
from serving.service import ServiceState
from serving.settings import ServingSettings


@pytest.fixture(scope="session")
def package() -> PackagedModel:
    return train_package(seed=0)


@pytest.fixture(scope="session")
def package_v2() -> PackagedModel:
    return train_package(seed=1, trees=40)


@pytest.fixture
def home(tmp_path: Path) -> Path:
    return tmp_path / "home"


@pytest.fixture
def settings(home: Path) -> ServingSettings:
    return ServingSettings(home=home, tasks=["arrears"], poll_seconds=0)


@pytest.fixture
def registry(package: PackagedModel) -> FakeRegistry:
    reg = FakeRegistry()
    reg.register("gridrisk-arrears", package)
    return reg


@dataclass
class Service:
    """A running test app with its state, the registry behind it and one key per role."""

    client: TestClient
    state: ServiceState
    registry: FakeRegistry
    population: pd.DataFrame
    keys: dict[str, str]

    def headers(self, role: str) -> dict[str, str]:
        return {"X-API-Key": self.keys[role]}


@pytest.fixture
def service(settings: ServingSettings, registry: FakeRegistry, package: PackagedModel) -> Iterator[Service]:
    population = write_population_snapshot(package, settings)
    write_customers(settings, population)
    keys = create_test_keys(settings.keys_path)
    state = ServiceState.build(settings, registry)
    with TestClient(create_app(settings, state)) as client:
        yield Service(client, state, registry, population, keys)
