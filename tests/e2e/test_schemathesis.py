"""Property-based tests from the live OpenAPI document: ≥ 1,000 generated requests in-process (ASGI), no 5xx,
every response matching its documented status, content type and schema."""

from __future__ import annotations

import atexit
import shutil
import sys
import tempfile
from pathlib import Path

import pytest
import schemathesis
from hypothesis import HealthCheck, settings
from schemathesis import checks

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "serving"))
from tinymodel import FakeRegistry, train_package, write_customers, write_population_snapshot

from serving.access import create_key
from serving.main import create_app
from serving.service import ServiceState
from serving.settings import ServingSettings

pytestmark = [pytest.mark.e2e]
EXAMPLES = 220  # per operation; the parameterised ones reach it, the input-free ones stop at one
CHECKS = [
    checks.not_a_server_error,
    checks.status_code_conformance,
    checks.content_type_conformance,
    checks.response_schema_conformance,
    checks.response_headers_conformance,
]
calls: list[str] = []


def _app(home: Path):  # type: ignore[no-untyped-def]
    cfg = ServingSettings(home=home, poll_seconds=0)
    package = train_package(seed=0)
    registry = FakeRegistry()
    # Every task provisioned: a 503 (no model) would be a deployment gap, not what this test looks for.
    for task in cfg.tasks:
        registry.register(f"gridrisk-{task}", package)
        population = write_population_snapshot(package, cfg, task=task)
    write_customers(cfg, population)
    key, _ = create_key(cfg.keys_path, "admin")
    state = ServiceState.build(cfg, registry)
    state.refresh()
    return create_app(cfg, state), key


# schemathesis reads the app's schema at import, so the app (and its home) is made at import too.
# Removed at exit, so a run that only collects this module (deselected by a marker) leaves nothing either.
HOME = Path(tempfile.mkdtemp(prefix="gridrisk-schemathesis-"))
atexit.register(shutil.rmtree, HOME, ignore_errors=True)
APP, ADMIN_KEY = _app(HOME)
schema = schemathesis.openapi.from_asgi("/openapi.json", APP)


@schema.parametrize()
@settings(max_examples=EXAMPLES, deadline=None, suppress_health_check=list(HealthCheck))
def test_api_conforms_to_its_openapi_document(case: schemathesis.Case) -> None:
    calls.append(case.operation.label)
    case.call_and_validate(headers={"X-API-Key": ADMIN_KEY}, checks=CHECKS)


def test_enough_cases_were_generated() -> None:
    """Runs after the generated tests in this module (pytest keeps file order)."""
    if not calls:
        pytest.skip("run together with test_api_conforms_to_its_openapi_document")
    assert len(calls) >= 1000, f"only {len(calls)} generated requests over {sorted(set(calls))}"
    print(f"{len(calls)} generated requests over {len(set(calls))} operations")
