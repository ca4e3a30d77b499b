"""Browser tests of the operator console: the real app under uvicorn, Debian's chromium through Playwright.

Fixtures (reuse them for any console page):

- ``console`` (:class:`ConsoleWorld`): a migrated SQLite case store served on a free port (the same
  :class:`tests.pipeline.live_store.LiveStore` the pipeline tests push to), with the tiny city of
  ``tests.api.builders.make_world``, a second place, routing rules (0102 → sanitation, 0505 → traffic),
  a device ``box-1`` with cameras ``cam-1``/``cam-2``, and one user per role (:data:`USERS`, password
  :data:`PASSWORD`). ``console.report(...)`` files a case report with its evidence image the way an edge
  box does (HTTP, device key); ``console.url``; ``console.store.sessions`` for direct reads.
- ``browser``: one headless chromium per test session (``/usr/bin/chromium``, no sandbox, no background
  networking; never ``playwright install``). Missing chromium/playwright: skip, or fail under ``CI``.
- ``desktop`` / ``phone``: a fresh page at 1366x768 or 390x844 (a new context: no cookies).
- ``login(page, console, username)``: log in through the login form and wait for the landing page.
- ``screenshot(page, name)``: write ``<artifacts>/<name>.png`` (``STREETWATCH_ARTIFACTS`` or
  ``tests-artifacts/screenshots/`` at the repository root) and return its path.
- ``assert_fits_phone(page)``: no horizontal overflow (scrollWidth <= innerWidth).
"""

from __future__ import annotations

import datetime as dt
import os
import uuid
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import cv2
import httpx
import numpy as np
import pytest

from api.auth import hash_password
from api.models import Place, Role, RoutingRule, User
from tests.api.builders import case_report
from tests.conftest import REPO, VTEST
from tests.pipeline.live_store import LiveStore

PASSWORD = "correct-horse"
CHROMIUM = Path(os.environ.get("STREETWATCH_CHROMIUM", "/usr/bin/chromium"))
ARTIFACTS = Path(os.environ.get("STREETWATCH_ARTIFACTS", REPO / "tests-artifacts" / "screenshots"))
DESKTOP = {"width": 1366, "height": 768}
PHONE = {"width": 390, "height": 844}
SECOND_PLACE = "110101001001002"

# username -> (role, unit attribute of World or None)
USERS: dict[str, tuple[Role, str | None]] = {
    "li": (Role.SHIFT_LEADER, None),
    "zhang": (Role.DISPATCHER, None),
    "wang": (Role.UNIT_HANDLER, "sanitation_id"),
    "zhao": (Role.UNIT_HANDLER, "traffic_id"),
    "admin": (Role.ADMIN, None),
    "guest": (Role.VIEWER, None),
}
DISPLAY_NAMES = {
    "li": "李值班",
    "zhang": "张派遣",
    "wang": "王环卫",
    "zhao": "赵交通",
    "admin": "管理员",
    "guest": "访客",
}


def evidence_jpeg(seed: int, caption: str) -> bytes:
    """A confirmation image as the daemon makes it: a street frame (vtest.avi when installed) with the zone
    and the box drawn by :func:`pipeline.evidence.annotate`."""
    from detector.detections import Detections
    from pipeline.evidence import annotate

    frame: np.ndarray[Any, np.dtype[np.uint8]]
    capture = cv2.VideoCapture(str(VTEST)) if VTEST.exists() else None
    ok = False
    if capture is not None:
        capture.set(cv2.CAP_PROP_POS_FRAMES, (seed * 37) % 700)
        ok, frame = capture.read()
        capture.release()
    if not ok:
        rng = np.random.default_rng(seed)
        frame = np.full((480, 640, 3), 120, np.uint8) + rng.integers(0, 40, (480, 640, 3), dtype=np.uint8)
    height, width = frame.shape[:2]
    x = 40 + (seed * 53) % (width - 200)
    boxes = Detections(
        xyxy=np.array([[x, height * 0.45, x + 120, height * 0.8]], np.float32),
        confidence=np.array([0.8], np.float32),
        class_id=np.array([0], np.int64),
    )
    zone = [
        (width * 0.05, height * 0.4),
        (width * 0.95, height * 0.4),
        (width * 0.95, height * 0.95),
        (width * 0.05, height * 0.95),
    ]
    annotated = annotate(frame, zone, boxes, ["car"], caption)
    ok, encoded = cv2.imencode(".jpg", annotated, [cv2.IMWRITE_JPEG_QUALITY, 80])
    if not ok:
        raise RuntimeError("OpenCV could not encode the evidence JPEG")
    return bytes(encoded.tobytes())


@dataclass
class ConsoleWorld:
    store: LiveStore
    device_key: str
    user_ids: dict[str, int] = field(default_factory=dict)
    _reports: int = 0

    @property
    def url(self) -> str:
        return self.store.url

    def report(
        self,
        *,
        place: str = "110101001001001",
        violation_type: str = "exposed_garbage",
        camera: str = "cam-1",
        confidence: float = 0.8,
        with_image: bool = True,
    ) -> int:
        """Submit a report as the device does (a new case when its place+violation has none open) and its
        confirmation image; returns the case id."""
        self._reports += 1
        body = case_report(
            f"console-{uuid.uuid4().hex}",
            place=place,
            violation_type=violation_type,
            camera=camera,
            confidence=confidence,
            confirmed_at=(dt.datetime.now(dt.UTC) - dt.timedelta(minutes=1)).isoformat(),
            first_seen_at=(dt.datetime.now(dt.UTC) - dt.timedelta(minutes=6)).isoformat(),
        )
        headers = {"X-Device-Key": self.device_key}
        with httpx.Client(base_url=self.url, headers=headers, timeout=10) as client:
            response = client.post("/api/v1/cases", json=body)
            response.raise_for_status()
            case_id: int = response.json()["case_id"]
            if with_image:
                image = evidence_jpeg(self._reports, f"{camera} {violation_type}")
                files = {"file": ("confirmation.jpg", image, "image/jpeg")}
                client.post(
                    f"/api/v1/cases/{case_id}/evidence", files=files, data={"kind": "confirmation"}
                ).raise_for_status()
        return case_id

    def add_evidence(self, case_id: int, kind: str, image: bytes) -> int:
        """Upload one more evidence image of ``kind`` as the device does; returns its evidence id."""
        with httpx.Client(base_url=self.url, headers={"X-Device-Key": self.device_key}, timeout=10) as client:
            response = client.post(
                f"/api/v1/cases/{case_id}/evidence",
                files={"file": (f"{kind}.jpg", image, "image/jpeg")},
                data={"kind": kind},
            )
            response.raise_for_status()
            evidence_id: int = response.json()["id"]
            return evidence_id


@pytest.fixture
def console(tmp_path: Path) -> Iterator[ConsoleWorld]:
    live = LiveStore(tmp_path)
    world = live.world
    with live.sessions.begin() as session:
        session.add(Place(key=SECOND_PLACE, name="王府井大街 grid 2", owner_unit_id=world.district_id))
        session.add(RoutingRule(violation_code="0102", unit_id=world.sanitation_id, priority=10))
        session.add(RoutingRule(violation_code="0505", unit_id=world.traffic_id, priority=10))
    user_ids: dict[str, int] = {}
    password_hash = hash_password(PASSWORD)  # argon2 once, not once per user
    with live.sessions.begin() as session:
        for username, (role, unit_attr) in USERS.items():
            user = User(
                username=username,
                password_hash=password_hash,
                role=role.value,
                unit_id=getattr(world, unit_attr) if unit_attr else None,
                display_name=DISPLAY_NAMES[username],
            )
            session.add(user)
            session.flush()
            user_ids[username] = user.id
    _device_id, key = live.add_device("box-1", cameras=("cam-1", "cam-2"))
    live.start()
    try:
        yield ConsoleWorld(live, key, user_ids)
    finally:
        live.close()


@pytest.fixture(scope="session")
def browser() -> Iterator[Any]:
    try:
        from playwright.sync_api import sync_playwright
    except ImportError:
        _missing("the playwright package (pip install -e '.[dev]')")
    if not CHROMIUM.exists():
        _missing(f"chromium at {CHROMIUM} (apt-get install chromium)")
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(
            executable_path=str(CHROMIUM),
            headless=True,
            args=["--no-sandbox", "--disable-background-networking", "--disable-dev-shm-usage"],
        )
        yield browser
        browser.close()


def _missing(what: str) -> None:
    if os.environ.get("CI"):
        pytest.fail(f"browser tests need {what}")
    pytest.skip(f"browser tests need {what}")


def _page(browser: Any, viewport: dict[str, int], **options: Any) -> Iterator[Any]:
    context = browser.new_context(viewport=viewport, locale="zh-CN", timezone_id="Asia/Shanghai", **options)
    context.set_default_timeout(10_000)
    page = context.new_page()
    errors: list[str] = []
    page.on("pageerror", lambda error: errors.append(str(error)))
    yield page
    context.close()
    assert not errors, f"JavaScript errors on the page: {errors}"


@pytest.fixture
def desktop(browser: Any) -> Iterator[Any]:
    yield from _page(browser, DESKTOP)


@pytest.fixture
def phone(browser: Any) -> Iterator[Any]:
    yield from _page(browser, PHONE, is_mobile=True, has_touch=True)


def login(page: Any, console: ConsoleWorld, username: str, password: str = PASSWORD) -> None:
    """Log in through the form; waits until the landing page (queue or board) has loaded."""
    page.goto(f"{console.url}/console/login")
    page.fill("#username", username)
    page.fill("#password", password)
    page.click("#login-submit")
    page.wait_for_url(lambda url: "/console/login" not in url)


def screenshot(page: Any, name: str) -> Path:
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    path = ARTIFACTS / f"{name}.png"
    page.screenshot(path=str(path), full_page=True)
    assert path.stat().st_size > 0
    return path


def assert_fits_phone(page: Any) -> None:
    scroll_width, inner_width = page.evaluate("[document.scrollingElement.scrollWidth, window.innerWidth]")
    assert scroll_width <= inner_width, (
        f"{page.url}: horizontal overflow ({scroll_width}px > {inner_width}px)"
    )


# The case-store fixtures (a clean migrated store on SQLite and on PostgreSQL) for the data-level tests.
from tests.api.conftest import pg_template, sqlite_template, store  # noqa: E402, F401
