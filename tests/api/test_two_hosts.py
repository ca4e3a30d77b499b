"""Two API hosts that share only PostgreSQL: two real ``streetwatch api serve`` processes with their own
data directories, one database, ``STREETWATCH_BLOB_STORE=database`` and their background jobs running.

What one host took in, the other serves: a device's case and its evidence image, a camera's snapshot, a
model an admin published (downloaded by a device with a Range resume); a console login made through one
is accepted by the other; a zone edited through one changes the configuration ETag the other answers; an
overdue case is marked once although both run the job.
"""

from __future__ import annotations

import json
import os
import re
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import ExitStack, contextmanager
from pathlib import Path

import httpx
import pytest
from sqlalchemy import func, select

from api.auth import create_user
from api.models import AuditEvent, Case, Role
from contract.device_config import DeviceConfig
from tests.api.builders import case_report, device_auth, image_bytes, make_device_key, make_world
from tests.api.conftest import Store
from tests.api.test_model_registry import MODEL, demo_card, resumed_download
from tests.api.test_zone_editing import zone_body

pytestmark = pytest.mark.parametrize("store", ["postgresql"], indirect=True)

REPO = Path(__file__).resolve().parents[2]
PASSWORD = "correct-horse"
OVERDUE_INTERVAL_S = 0.3


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


@contextmanager
def _host(store: Store, data_dir: Path) -> Iterator[httpx.Client]:
    """``streetwatch api serve`` on a free port with its own data directory; a client for it."""
    assert store.settings.database_url
    port = _free_port()
    env = {
        **os.environ,
        "STREETWATCH_BLOB_STORE": "database",
        "STREETWATCH_RUN_JOBS": "true",
        "STREETWATCH_OVERDUE_CHECK_INTERVAL_S": str(OVERDUE_INTERVAL_S),
        "PYTHONPATH": str(REPO),
    }
    env.pop("STREETWATCH_SECRET_KEY", None)  # the key comes from the database
    command = [sys.executable, "-m", "streetwatch", "api", "serve", "--port", str(port)]
    command += ["--data-dir", str(data_dir), "--database-url", store.settings.database_url]
    process = subprocess.Popen(command, cwd=REPO, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    base = f"http://127.0.0.1:{port}"
    try:
        _wait_ready(process, base)
        with httpx.Client(base_url=base, timeout=30) as client:
            yield client
    finally:
        process.terminate()
        try:
            process.wait(timeout=15)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()


def _wait_ready(process: subprocess.Popen[bytes], base: str) -> None:
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        if process.poll() is not None:
            stderr = process.stderr.read().decode(errors="replace") if process.stderr else ""
            raise RuntimeError(f"api serve exited with {process.returncode}: {stderr[-2000:]}")
        try:
            if httpx.get(f"{base}/healthz", timeout=1).status_code == 200:
                return
        except httpx.HTTPError:
            pass
        time.sleep(0.2)
    raise RuntimeError(f"api serve at {base} not ready after 60 s")


@pytest.fixture
def hosts(store: Store, tmp_path: Path) -> Iterator[tuple[httpx.Client, httpx.Client]]:
    with ExitStack() as stack:
        a = stack.enter_context(_host(store, tmp_path / "host-a"))
        b = stack.enter_context(_host(store, tmp_path / "host-b"))
        yield a, b


def _bearer(client: httpx.Client, username: str) -> dict[str, str]:
    response = client.post("/api/v1/auth/login", json={"username": username, "password": PASSWORD})
    response.raise_for_status()
    return {"Authorization": f"Bearer {response.json()['access_token']}"}


def _overdue_case(store: Store, place_id: int, unit_id: int) -> int:
    """A case dispatched to a unit whose deadline passed an hour ago: the overdue job's work."""
    import datetime as dt

    past = dt.datetime.now(dt.UTC) - dt.timedelta(hours=1)
    with store.sessions.begin() as session:
        case = Case(
            status="dispatched",
            violation_code="0102",
            place_id=place_id,
            unit_id=unit_id,
            camera_code="cam-x",
            created_at=past,
            updated_at=past,
            filed_at=past,
            dispatched_at=past,
            first_dispatched_at=past,
            deadline_at=past,
        )
        session.add(case)
        session.flush()
        return case.id


def test_what_one_host_took_in_the_other_serves(
    store: Store, tmp_path: Path, hosts: tuple[httpx.Client, httpx.Client]
) -> None:
    a, b = hosts
    world = make_world(store.sessions)
    device = device_auth(make_device_key(store.sessions, "box-1"))
    with store.sessions.begin() as session:
        for role in (Role.ADMIN, Role.SHIFT_LEADER):
            create_user(session, username=role.value, password=PASSWORD, role=role)
    admin_a, leader_b = _bearer(a, "admin"), _bearer(b, "shift_leader")
    camera = a.post("/api/v1/cameras", json={"code": "cam-1", "device": "box-1"}, headers=admin_a)
    assert camera.status_code == 201, camera.text
    overdue = _overdue_case(store, world.place_id, world.sanitation_id)

    # a case and its evidence reported through A, read through B
    ingested = a.post("/api/v1/cases", json=case_report("two-hosts-1"), headers=device)
    assert ingested.status_code in (200, 201), ingested.text
    case_id = ingested.json()["case_id"]
    image = image_bytes(width=640, height=480, seed=3)
    upload = a.post(
        f"/api/v1/cases/{case_id}/evidence",
        files={"file": ("e.jpg", image, "image/jpeg")},
        data={"kind": "confirmation"},
        headers=device,
    )
    assert upload.status_code == 201, upload.text
    detail = b.get(f"/api/v1/cases/{case_id}", headers=leader_b)
    assert detail.status_code == 200
    [evidence] = detail.json()["evidence"]
    served = b.get(evidence["url"], headers=leader_b)
    assert served.status_code == 200 and served.content == image
    assert served.headers["content-type"] == "image/jpeg"

    # a snapshot uploaded through A, shown by B
    frame = image_bytes(width=320, height=240, seed=4)
    put = a.put("/api/v1/devices/me/cameras/cam-1/snapshot", files={"file": ("s.jpg", frame)}, headers=device)
    assert put.status_code == 200, put.text
    assert b.get("/api/v1/cameras/cam-1/snapshot", headers=leader_b).content == frame
    # neither host wrote any of it to its own data directory
    assert not [p for p in tmp_path.rglob("*.jpg")]

    # a zone edited through A changes the configuration ETag that B answers
    first = b.get("/api/v1/devices/me/config", headers=device)
    etag = first.headers["ETag"]
    assert b.get("/api/v1/devices/me/config", headers={**device, "If-None-Match": etag}).status_code == 304
    zone = a.put("/api/v1/cameras/cam-1/zones/gate", json=zone_body(world.place_key), headers=admin_a)
    assert zone.status_code == 200, zone.text
    changed = b.get("/api/v1/devices/me/config", headers={**device, "If-None-Match": etag})
    assert changed.status_code == 200 and changed.headers["ETag"] != etag
    assert changed.json()["cameras"][0]["zones"][0]["code"] == "gate"

    # a console login: the form and its CSRF cookie from A, posted to B, the session used on A
    form = a.get("/console/login")
    token = re.search(r'name="csrf_token" value="([^"]+)"', form.text)
    assert token is not None
    csrf_cookie = f"streetwatch_csrf={form.cookies['streetwatch_csrf']}"
    posted = b.post(
        "/console/login",
        data={"username": "shift_leader", "password": PASSWORD, "csrf_token": token.group(1)},
        headers={"Cookie": csrf_cookie},  # by hand: each client keeps its own host's cookies
        follow_redirects=False,
    )
    assert posted.status_code == 303, posted.text[:500]
    session_cookie = f"streetwatch_token={posted.cookies['streetwatch_token']}"
    page = a.get(f"/console/cases/{case_id}", headers={"Cookie": f"{csrf_cookie}; {session_cookie}"})
    assert page.status_code == 200 and "/console/login" not in str(page.url)

    # both hosts run the overdue job: the case is marked and audited once
    deadline = time.monotonic() + 20
    while time.monotonic() < deadline:
        with store.sessions() as session:
            if session.get_one(Case, overdue).overdue:
                break
        time.sleep(0.2)
    time.sleep(10 * OVERDUE_INTERVAL_S)  # several more runs of both hosts' jobs
    with store.sessions() as session:
        assert session.get_one(Case, overdue).overdue
        marks = select(func.count()).where(AuditEvent.case_id == overdue, AuditEvent.action == "overdue")
        assert session.scalar(marks) == 1


def test_a_model_published_through_one_host_is_downloaded_through_the_other(
    store: Store, tmp_path: Path, hosts: tuple[httpx.Client, httpx.Client]
) -> None:
    """The ONNX file is chunks in PostgreSQL: a device on host B resumes, with Range, a download of a
    model an admin published through host A."""
    a, b = hosts
    device = device_auth(make_device_key(store.sessions, "box-1"))
    with store.sessions.begin() as session:
        create_user(session, username="admin", password=PASSWORD, role=Role.ADMIN)
    admin_a = _bearer(a, "admin")
    files = {"file": ("model.onnx", MODEL, "application/octet-stream")}
    published = a.post(
        "/api/v1/models", files=files, data={"card": json.dumps(demo_card(sha256=None))}, headers=admin_a
    )
    assert published.status_code == 201, published.text
    version_id = published.json()["id"]
    body = {"role": "live", "devices": ["box-1"]}
    assert a.post(f"/api/v1/models/{version_id}/assignments", json=body, headers=admin_a).status_code == 201

    config = DeviceConfig.model_validate(b.get("/api/v1/devices/me/config", headers=device).json())
    (model,) = config.models
    ranges = resumed_download(b, device, model, tmp_path / "box")

    assert ranges == ["bytes=600000-899999", f"bytes=900000-{len(MODEL) - 1}"]
    # neither host kept the file in its data directory (the box's copy is under tmp_path/box)
    assert not list(tmp_path.glob("host-*/**/*.onnx")) and not list(tmp_path.glob("host-*/models"))
