"""A real case store for pipeline tests: a migrated SQLite store (the API's own migrations) served by
uvicorn on a free local port in a thread. ``stop()`` shuts the server down (the store "goes down"; the
port refuses connections) and ``start()`` brings it back on the same port and database.

Reference data comes from ``tests.api.builders.make_world``; devices are real (``api.auth.create_device``).
"""

from __future__ import annotations

import shutil
import socket
import tempfile
import threading
import time
from pathlib import Path

import uvicorn
from sqlalchemy import func, select
from sqlalchemy.orm import Session, sessionmaker

from api.actors import Actor
from api.app import create_app
from api.auth import create_device
from api.case_actions import apply_action
from api.db import make_engine, make_session_factory
from api.migrate import upgrade
from api.models import AuditEvent, Camera, Case, CaseStatus, Evidence, Role, Sighting
from api.settings import Settings
from tests.api.builders import World, make_world

_TEMPLATE: list[Path] = []  # one migrated database per test process, copied for each store


def _migrated_template() -> Path:
    if not _TEMPLATE:
        folder = Path(tempfile.mkdtemp(prefix="streetwatch-store-template-"))
        engine = make_engine(Settings(data_dir=folder, _env_file=None))
        upgrade(engine)
        engine.dispose()
        _TEMPLATE.append(folder / "streetwatch.sqlite")
    return _TEMPLATE[0]


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port: int = probe.getsockname()[1]
        return port


class LiveStore:
    """One case store on ``url`` with the tiny world of ``make_world`` in it."""

    def __init__(self, folder: Path) -> None:
        data_dir = folder / "store"
        data_dir.mkdir(parents=True)
        shutil.copy(_migrated_template(), data_dir / "streetwatch.sqlite")
        self.settings = Settings(data_dir=data_dir, run_jobs=False, _env_file=None)
        self.engine = make_engine(self.settings)
        self.sessions: sessionmaker[Session] = make_session_factory(self.engine)
        self.world: World = make_world(self.sessions)
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self._server: uvicorn.Server | None = None
        self._thread: threading.Thread | None = None

    # --- up and down ---

    def start(self) -> None:
        if self._server is not None:
            return
        config = uvicorn.Config(
            create_app(self.settings, engine=self.engine),
            host="127.0.0.1",
            port=self.port,
            log_level="warning",
            lifespan="on",
            timeout_graceful_shutdown=2,
        )
        server = uvicorn.Server(config)
        thread = threading.Thread(target=server.run, name=f"case-store-{self.port}", daemon=True)
        thread.start()
        deadline = time.monotonic() + 20
        while not server.started:
            if not thread.is_alive() or time.monotonic() > deadline:
                raise RuntimeError(f"the case store did not start on {self.url}")
            time.sleep(0.02)
        self._server, self._thread = server, thread

    def stop(self) -> None:
        if self._server is None or self._thread is None:
            return
        self._server.should_exit = True
        self._thread.join(15)
        if self._thread.is_alive():
            raise RuntimeError(f"the case store on {self.url} did not shut down")
        self._server = self._thread = None

    def close(self) -> None:
        self.stop()
        self.engine.dispose()

    # --- reference data ---

    def add_device(self, name: str, cameras: tuple[str, ...] = ()) -> tuple[int, str]:
        """A real device (its key as the case store issues it) with ``cameras`` registered to it."""
        with self.sessions.begin() as session:
            issued = create_device(session, name)
            for code in cameras:
                session.add(Camera(code=code, name=code, device_id=issued.device.id))
            return issued.device.id, issued.key

    # --- the workflow, as operators would move it ---

    def act(self, case_id: int, action: str, unit_id: int | None = None) -> str:
        """Take ``action`` on the case as an admin (who may do everything); returns the new status."""
        admin = Actor(kind="user", id=None, name="admin", role=Role.ADMIN)
        with self.sessions.begin() as session:
            case = session.get_one(Case, case_id)
            case = apply_action(session, case, action, admin, settings=self.settings, unit_id=unit_id)
            return case.status

    def resolve(self, case_id: int) -> None:
        """File the case (routing dispatches it when the place has a unit; else the traffic unit gets it)
        and report it done."""
        if self.act(case_id, "file") == CaseStatus.FILED:
            self.act(case_id, "dispatch", unit_id=self.world.traffic_id)
        assert self.act(case_id, "resolve") == CaseStatus.RESOLVED

    # --- what arrived ---

    def events(self, case_id: int) -> list[tuple[str, str]]:
        """(actor, action) of the case's audit trail, oldest first."""
        with self.sessions() as session:
            rows = session.execute(
                select(AuditEvent.actor, AuditEvent.action)
                .where(AuditEvent.case_id == case_id)
                .order_by(AuditEvent.id)
            )
            return [(actor, action) for actor, action in rows]

    def case_count(self) -> int:
        with self.sessions() as session:
            return session.scalar(select(func.count()).select_from(Case)) or 0

    def sighting_keys(self) -> list[str]:
        with self.sessions() as session:
            return list(session.scalars(select(Sighting.idempotency_key).order_by(Sighting.id)))

    def case(self, case_id: int) -> Case:
        with self.sessions() as session:
            return session.get_one(Case, case_id)

    def evidence(self, case_id: int) -> list[tuple[str, str]]:
        """(kind, sha256) of the case's evidence, in upload order."""
        with self.sessions() as session:
            rows = session.execute(
                select(Evidence.kind, Evidence.sha256)
                .where(Evidence.case_id == case_id)
                .order_by(Evidence.id)
            )
            return [(kind, sha) for kind, sha in rows]
