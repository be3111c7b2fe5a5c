"""Shared fixtures: one small generated utility per test session, reused by every package's tests."""

from __future__ import annotations

from pathlib import Path

import pytest

# Small enough for 2 cores, large enough that every task has positives in every as-of month.
SMALL = {"customers": 1500, "start": "2021-01", "months": 36, "seed": 7, "daily_days": 200}


@pytest.fixture(scope="session")
def generated_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A clean generated export (contract tables + truth/), usable directly as a warehouse."""
    from features.synthetic import GeneratorConfig, generate

    out = tmp_path_factory.mktemp("generated")
    generate(GeneratorConfig(**SMALL), out)
    return out
