"""Case-store fixtures: every API test runs on SQLite and on the PostgreSQL at $STREETWATCH_TEST_PG.

A migrated template is made once per session and copied per test (file copy for SQLite,
``CREATE DATABASE ... TEMPLATE`` for PostgreSQL), so each test starts from a clean, migrated schema.
"""

from __future__ import annotations

import os
import shutil
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import Engine, create_engine, text
from sqlalchemy.orm import Session, sessionmaker

from api.app import create_app
from api.db import make_engine, make_session_factory
from api.migrate import upgrade
from api.models import Role
from api.settings import Settings
from tests.api.builders import make_device_key, make_operator, make_world, post_report
from tests.conftest import service_missing

PG_ADMIN_URL = os.environ.get("STREETWATCH_TEST_PG", "postgresql+psycopg://postgres@127.0.0.1:5432/test")
BACKENDS = ["sqlite", "postgresql"]


def _pg_available() -> bool:
    try:
        engine = create_engine(PG_ADMIN_URL)
        with engine.connect():
            pass
        engine.dispose()
        return True
    except Exception:
        return False


def _pg_url(database: str) -> str:
    return PG_ADMIN_URL.rsplit("/", 1)[0] + f"/{database}"


def _pg_admin() -> Engine:
    return create_engine(PG_ADMIN_URL, isolation_level="AUTOCOMMIT")


@pytest.fixture(scope="session")
def sqlite_template(tmp_path_factory: pytest.TempPathFactory) -> Path:
    folder = tmp_path_factory.mktemp("sqlite-template")
    engine = make_engine(Settings(data_dir=folder))
    upgrade(engine)
    engine.dispose()
    return folder / "streetwatch.sqlite"


@pytest.fixture(scope="session")
def pg_template() -> Iterator[str]:
    if not _pg_available():
        service_missing(f"PostgreSQL is not reachable at {PG_ADMIN_URL} (STREETWATCH_TEST_PG)")
    name = f"sw_template_{os.getpid()}"
    admin = _pg_admin()
    with admin.connect() as conn:
        conn.execute(text(f'DROP DATABASE IF EXISTS "{name}"'))
        conn.execute(text(f'CREATE DATABASE "{name}"'))
    engine = create_engine(_pg_url(name))
    upgrade(engine)
    engine.dispose()
    yield name
    with admin.connect() as conn:
        conn.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
    admin.dispose()


@dataclass
class Store:
    """One clean, migrated case store for a test."""

    backend: str
    settings: Settings
    engine: Engine
    sessions: sessionmaker[Session]


@pytest.fixture(params=BACKENDS)
def store(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Store]:
    data_dir = tmp_path / "data"
    data_dir.mkdir()
    if request.param == "sqlite":
        shutil.copy(request.getfixturevalue("sqlite_template"), data_dir / "streetwatch.sqlite")
        settings = Settings(data_dir=data_dir, run_jobs=False, _env_file=None)  # type: ignore[call-arg]
        engine = make_engine(settings)
        yield Store("sqlite", settings, engine, make_session_factory(engine))
        engine.dispose()
        return
    template = request.getfixturevalue("pg_template")
    name = f"sw_{uuid.uuid4().hex[:12]}"
    admin = _pg_admin()
    with admin.connect() as conn:
        conn.execute(text(f'CREATE DATABASE "{name}" TEMPLATE "{template}"'))
    settings = Settings(
        data_dir=data_dir,
        database_url=_pg_url(name),
        run_jobs=False,
        _env_file=None,  # type: ignore[call-arg]
    )
    engine = make_engine(settings)
    yield Store("postgresql", settings, engine, make_session_factory(engine))
    engine.dispose()
    with admin.connect() as conn:
        conn.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
    admin.dispose()


@pytest.fixture
def client(store: Store) -> Iterator[TestClient]:
    with TestClient(create_app(store.settings, engine=store.engine)) as test_client:
        yield test_client


@dataclass
class Scene:
    """A device's case and a shift leader who may act on it (the evidence tests)."""

    device_key: str
    leader: str
    case_id: int


@pytest.fixture
def scene(client: TestClient, store: Store) -> Scene:
    make_world(store.sessions)
    device_key = make_device_key(store.sessions, "box-1")
    leader = make_operator(store.sessions, Role.SHIFT_LEADER)
    case_id = post_report(client, device_key, "incident-0001")["case_id"]
    return Scene(device_key, leader, case_id)
