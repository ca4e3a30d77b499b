"""Property-based run of schemathesis against the app's own OpenAPI schema: every operation, with valid
and invalid input, answers only with documented status codes and content types, with bodies that match
the documented schema, and never with a 5xx.

In-process (ASGI), on SQLite only to keep it fast, with a small city loaded so that generated requests
meet real rows. Operator operations run as an admin (every one reachable), device operations with a
device key. Bounded: 20 valid and 5 invalid examples per operation, derandomized so that a failure
reproduces.
"""

from __future__ import annotations

import shutil
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import schemathesis
from fastapi.testclient import TestClient
from hypothesis import HealthCheck, Phase, given, settings
from hypothesis.errors import Unsatisfiable
from schemathesis import GenerationMode
from schemathesis.checks import (
    content_type_conformance,
    not_a_server_error,
    response_headers_conformance,
    response_schema_conformance,
    status_code_conformance,
)
from schemathesis.core.failures import FailureGroup
from sqlalchemy import select, update

from api.actors import SYSTEM
from api.app import create_app
from api.config_import import DEFAULT_CONFIG, import_file
from api.db import make_engine, make_session_factory
from api.models import Camera, Device, Role
from api.settings import Settings
from tests.api.builders import make_device_key, make_operator
from tests.api.conftest import Store

MAX_EXAMPLES = 20  # per operation, valid inputs
NEGATIVE_EXAMPLES = 5  # per operation, invalid inputs (when it has any input)
# Logging out would revoke the token the run uses; everything else is fair game.
EXCLUDED = [("POST", "/api/v1/auth/logout")]
# Operations only an edge box may call: they run with the device key, every other one with the admin's token.
DEVICE_OPERATIONS = {
    ("POST", "/api/v1/cases"),
    ("GET", "/api/v1/devices/me/config"),
    ("GET", "/api/v1/devices/me/cases"),
    ("PUT", "/api/v1/devices/me/cameras/{code}/health"),
    ("PUT", "/api/v1/devices/me/cameras/{code}/snapshot"),
    ("GET", "/api/v1/devices/me/models/{version_id}"),
    ("POST", "/api/v1/devices/me/model-comparisons"),
}
CREDENTIAL_FIELDS = ("authorization", "x-device-key", "x-api-key", "cookie", "api_key")
CHECKS = [
    not_a_server_error,
    status_code_conformance,
    content_type_conformance,
    response_schema_conformance,
    response_headers_conformance,
]


@pytest.fixture
def sqlite_store(sqlite_template: Path, tmp_path: Path) -> Iterator[Store]:
    data_dir = tmp_path / "data"
    data_dir.mkdir()
    shutil.copy(sqlite_template, data_dir / "streetwatch.sqlite")
    store_settings = Settings(data_dir=data_dir, run_jobs=False, _env_file=None)  # type: ignore[call-arg]
    engine = make_engine(store_settings)
    yield Store("sqlite", store_settings, engine, make_session_factory(engine))
    engine.dispose()


@pytest.fixture
def credentials(sqlite_store: Store) -> dict[str, dict[str, str]]:
    """Headers per kind of caller: the admin's token and the key of the box that owns every camera."""
    sessions = sqlite_store.sessions
    device_key = make_device_key(sessions, "box-1")
    with sessions.begin() as session:
        import_file(session, DEFAULT_CONFIG, SYSTEM)
        import_file(session, DEFAULT_CONFIG.parent / "example-city.yaml", SYSTEM)
        box_id = session.scalar(select(Device.id).where(Device.name == "box-1"))
        session.execute(update(Camera).values(device_id=box_id))
    admin = make_operator(sessions, Role.ADMIN, username="fuzz-admin")
    return {"device": {"X-Device-Key": device_key}, "operator": {"Authorization": f"Bearer {admin}"}}


def _without_credentials(values: Any) -> Any:
    """Generated credentials would only ever be rejected (401/403): the fixture's are sent instead."""
    if isinstance(values, dict):
        return {k: v for k, v in values.items() if str(k).lower() not in CREDENTIAL_FIELDS}
    return values


def _fuzz(operation: Any, mode: GenerationMode, examples: int, headers: dict[str, str]) -> None:
    @given(case=operation.as_strategy(generation_mode=mode))
    @settings(
        max_examples=examples,
        deadline=None,
        database=None,
        derandomize=True,
        suppress_health_check=list(HealthCheck),
        phases=[Phase.explicit, Phase.generate, Phase.shrink],
    )
    def run(case: Any) -> None:
        case.headers = _without_credentials(case.headers)
        case.query = _without_credentials(case.query)
        case.cookies = _without_credentials(case.cookies)
        case.body = _without_credentials(case.body)
        case.call_and_validate(headers=headers, checks=CHECKS)

    run()


def test_every_operation_answers_as_documented(
    sqlite_store: Store, credentials: dict[str, dict[str, str]]
) -> None:
    # schemathesis' own pytest plugin (schema.parametrize) does not run under pytest 9 yet, so the
    # operations are driven here with Hypothesis directly: same strategies, same checks.
    app = create_app(sqlite_store.settings, engine=sqlite_store.engine)
    with TestClient(app) as client:  # the credentials work: a 401/403 run would pass and test nothing
        assert client.get("/api/v1/devices/me/config", headers=credentials["device"]).status_code == 200
        assert client.get("/api/v1/auth/me", headers=credentials["operator"]).status_code == 200
    schema = schemathesis.openapi.from_asgi("/openapi.json", app)
    for method, path in EXCLUDED:
        schema = schema.exclude(method=method, path=path)
    operations = [result.ok() for result in schema.get_all_operations()]
    assert len(operations) > 40  # the whole API, not an empty schema
    failures = []
    for operation in operations:
        caller = "device" if (operation.method.upper(), operation.path) in DEVICE_OPERATIONS else "operator"
        for mode, examples in (
            (GenerationMode.POSITIVE, MAX_EXAMPLES),
            (GenerationMode.NEGATIVE, NEGATIVE_EXAMPLES),
        ):
            try:
                _fuzz(operation, mode, examples, credentials[caller])
            except Unsatisfiable:  # no input to make invalid (e.g. GET /healthz): nothing to test
                assert mode is GenerationMode.NEGATIVE, operation.path
            # Collect them all, so that one report lists every failing operation (schemathesis' failure
            # group is a BaseExceptionGroup, not an Exception).
            except (Exception, FailureGroup) as exc:
                failures.append(f"{operation.method.upper()} {operation.path} ({mode.value}): {exc}")
    assert not failures, f"{len(failures)} violations:\n\n" + "\n\n".join(failures)
