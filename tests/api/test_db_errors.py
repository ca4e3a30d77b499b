"""The database out of reach (what a PostgreSQL restart does to the store for a moment): the store answers
503 with Retry-After, never 500, and serves again as soon as the database takes connections."""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Iterator

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import func, select, text
from sqlalchemy.orm import Session, sessionmaker

from api.jobs import Job, _loop
from api.models import Sighting
from api.settings import Settings
from tests.api.builders import case_report, device_auth, make_device_key, make_world
from tests.api.conftest import Store, _pg_admin


@pytest.fixture
def pg_store(store: Store) -> Iterator[Store]:
    if store.backend != "postgresql":
        pytest.skip("refusing connections to one database is a PostgreSQL test")
    yield store


def _refuse_connections(database: str, refuse: bool) -> None:
    """As during a restart: existing connections are cut and new ones refused (only this test's database;
    the shared server itself is never restarted)."""
    admin = _pg_admin()
    with admin.connect() as conn:
        conn.execute(text(f'ALTER DATABASE "{database}" ALLOW_CONNECTIONS {str(not refuse).lower()}'))
        if refuse:
            conn.execute(
                text(
                    "SELECT pg_terminate_backend(pid) FROM pg_stat_activity "
                    "WHERE datname = :name AND pid <> pg_backend_pid()"
                ),
                {"name": database},
            )
    admin.dispose()


def test_a_report_while_the_database_is_unreachable_gets_503_then_is_stored_once(
    pg_store: Store, client: TestClient
) -> None:
    make_world(pg_store.sessions)
    device_key = make_device_key(pg_store.sessions)
    database = pg_store.engine.url.database
    assert database is not None
    body = case_report("incident-restart-1")
    assert client.post(
        "/api/v1/cases", json=case_report("incident-before-1"), headers=device_auth(device_key)
    ).is_success

    _refuse_connections(database, refuse=True)
    try:
        refused = client.post("/api/v1/cases", json=body, headers=device_auth(device_key))
    finally:
        _refuse_connections(database, refuse=False)

    assert refused.status_code == 503, refused.text
    assert refused.headers["Retry-After"] == "1"
    assert refused.json()["code"] == "database_unavailable"
    # The pool's connections were cut: the next request gets a fresh one, no lingering failures.
    stored = client.post("/api/v1/cases", json=body, headers=device_auth(device_key))
    assert stored.is_success and stored.json()["duplicate"] is False, stored.text
    again = client.post("/api/v1/cases", json=body, headers=device_auth(device_key))
    assert again.status_code == 200 and again.json()["duplicate"] is True
    with pg_store.sessions() as session:
        count = session.scalar(
            select(func.count()).select_from(Sighting).where(Sighting.idempotency_key == "incident-restart-1")
        )
    assert count == 1


def test_a_job_caught_in_a_database_outage_logs_one_line_and_runs_again(
    pg_store: Store, caplog: pytest.LogCaptureFixture
) -> None:
    database = pg_store.engine.url.database
    assert database is not None
    runs: list[bool] = []

    def touch_database(sessions: sessionmaker[Session], _settings: Settings) -> int:
        with sessions() as session:
            session.execute(text("SELECT 1"))
        runs.append(True)
        return 0

    async def run_briefly() -> None:
        job = Job("probe", 0.2, touch_database)
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(_loop(job, pg_store.sessions, pg_store.settings, None), 1.0)

    _refuse_connections(database, refuse=True)
    try:
        with caplog.at_level(logging.WARNING, logger="api.jobs"):
            asyncio.run(run_briefly())
    finally:
        _refuse_connections(database, refuse=False)
    assert not runs
    assert "job probe: database unavailable, retried in 0 s: OperationalError" in caplog.text
    assert "Traceback" not in caplog.text and not any(r.exc_info for r in caplog.records)
    asyncio.run(run_briefly())  # the database is back: the next run succeeds
    assert runs
