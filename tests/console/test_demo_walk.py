"""Issue 13 "Done when": the demo walked from scripts/demo.sh's store to a closed case, in the browser only.

The store is built as the script builds it (the same functions its commands call): migrated with the
default reference data (``api migrate``), an admin ``operator`` (``api create-user``), the ``demo-box``
device (``api create-device``), configs/reference/demo-city.yaml and the clip's store.yaml (written by the
function ``scenes render-demo`` writes it with; the long video render is skipped) imported by
``api import-config``. The demo daemon then files a report of rubbish on the pavement, over HTTP with the
box's key and its evidence image. From there on everything happens in Chromium, as the roles would: the
admin creates the shift leader, the dispatcher and the sanitation handler in the admin pages; the shift
leader files (立案) the case from the review queue and routing dispatches it to 环卫所 with a deadline; the
dispatcher sees it there; the handler starts it (开始处置), uploads a photo and reports it done (处理反馈);
the shift leader verifies and closes it; the case page shows the closed state and the whole audit trail,
and the change log shows the admin's new users. In zh, and the same walk in en.
"""

from __future__ import annotations

import datetime as dt
import shutil
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest
from sqlalchemy import select
from sqlalchemy.orm import Session, sessionmaker

from api.actors import Actor
from api.admin_audit import set_actor
from api.auth import create_device, create_user
from api.config_import import import_file, load_defaults_if_empty
from api.console.i18n import translate
from api.db import make_engine, make_session_factory
from api.models import AuditEvent, Case, CaseStatus, Role, Unit
from api.settings import Settings
from datasets.scenes import demo
from datasets.scenes.video import CAMERA_ID, DEMO_DEVICE, write_store_config
from tests.conftest import REPO
from tests.console.conftest import evidence_jpeg, screenshot
from tests.pipeline.live_store import LiveStore, _migrated_template, free_port

DEMO_CITY = REPO / "configs" / "reference" / "demo-city.yaml"
ADMIN_PASSWORD = "demo-operator-pw"
TIMELINE = ["created", "evidence", "file", "dispatch", "start", "evidence", "resolve", "verify", "close"]
# the users the admin creates in the browser: username -> (role, unit code, display name, password)
STAFF = {
    "chen": ("shift_leader", "", "陈值班", "shift-leader-1"),
    "liu": ("dispatcher", "", "刘派遣", "dispatcher-22"),
    "huang": ("unit_handler", "demo-sanitation", "黄环卫", "sanitation-3"),
}


class DemoStore(LiveStore):
    """The case store of scripts/demo.sh, served like LiveStore (without the tests' own tiny city)."""

    def __init__(self, folder: Path) -> None:
        data_dir = folder / "store"
        data_dir.mkdir(parents=True)
        shutil.copy(_migrated_template(), data_dir / "streetwatch.sqlite")  # `api migrate`'s schema
        self.settings = Settings(data_dir=data_dir, run_jobs=False, _env_file=None)
        self.engine = make_engine(self.settings)
        self.sessions: sessionmaker[Session] = make_session_factory(self.engine)
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self._server = None
        self._thread = None


@dataclass
class Demo:
    store: DemoStore
    device_key: str

    @property
    def url(self) -> str:
        return self.store.url

    def report_rubbish(self) -> int:
        """What the demo daemon sends when the bags on the pavement are confirmed: the report over HTTP with
        the box's key, then the confirmation image."""
        zone = next(z for z in demo.ZONES if z.id == "pavement")
        now = dt.datetime.now(dt.UTC)
        body = {
            "idempotency_key": f"demo-{uuid.uuid4().hex}",
            "camera": CAMERA_ID,
            "zone": zone.id,
            "place": zone.place,
            "violation_type": "exposed_garbage",
            "first_seen_at": (now - dt.timedelta(seconds=90)).isoformat(),
            "confirmed_at": (now - dt.timedelta(seconds=60)).isoformat(),
            "confidence": 0.82,
            "boxes": [{"xyxy": [300, 260, 420, 380], "confidence": 0.82, "class_name": "garbage"}],
            "model_name": "streetwatch-demo-n",
            "model_version": "1",
        }
        with httpx.Client(base_url=self.url, headers={"X-Device-Key": self.device_key}, timeout=10) as client:
            response = client.post("/api/v1/cases", json=body)
            response.raise_for_status()
            case_id: int = response.json()["case_id"]
            image = evidence_jpeg(3, f"{CAMERA_ID} exposed_garbage")
            client.post(
                f"/api/v1/cases/{case_id}/evidence",
                files={"file": ("confirmation.jpg", image, "image/jpeg")},
                data={"kind": "confirmation"},
            ).raise_for_status()
        return case_id

    def case(self, case_id: int) -> Case:
        with self.store.sessions() as session:
            return session.get_one(Case, case_id)

    def unit_code(self, unit_id: int | None) -> str | None:
        with self.store.sessions() as session:
            unit = session.get(Unit, unit_id) if unit_id else None
            return unit.code if unit else None


@pytest.fixture
def demo_store(tmp_path: Path) -> Iterator[Demo]:
    store = DemoStore(tmp_path)
    cli = Actor(kind="cli", id=None, name="demo")
    assert load_defaults_if_empty(store.sessions) is not None  # `api migrate`: configs/reference/default.yaml
    with store.sessions.begin() as session:
        set_actor(session, cli.label)
        create_user(
            session,
            username="operator",
            password=ADMIN_PASSWORD,
            role=Role.ADMIN,
            display_name="Demo operator",
        )
        key = create_device(session, DEMO_DEVICE).key
    store_yaml = tmp_path / "clip" / "store.yaml"
    store_yaml.parent.mkdir()
    write_store_config(store_yaml, seed=7, device=DEMO_DEVICE)  # as `scenes render-demo` writes it
    for path in (DEMO_CITY, store_yaml):
        with store.sessions.begin() as session:
            import_file(session, path, cli)
    store.start()
    try:
        yield Demo(store, key)
    finally:
        store.close()


def _login(page: Any, demo: Demo, username: str, password: str) -> None:
    page.goto(f"{demo.url}/console/login")
    page.fill("#username", username)
    page.fill("#password", password)
    page.click("#login-submit")
    page.wait_for_url(lambda url: "/console/login" not in url)


def _logout(page: Any) -> None:
    page.click("#logout")
    page.wait_for_url("**/console/login")


def _fill(page: Any, form: str, **fields: str) -> None:
    for name, value in fields.items():
        locator = page.locator(f"#{form}-{name}")
        if locator.evaluate("e => e.tagName") == "SELECT":
            locator.select_option(value)
        else:
            locator.fill(value)
    page.click(f"#{form}-submit")
    page.wait_for_load_state("load")


@pytest.mark.parametrize("lang", ["zh", "en"])
def test_the_demo_from_its_store_to_a_closed_case_in_the_browser(
    demo_store: Demo, desktop: Any, tmp_path: Path, lang: str
) -> None:
    demo, page = demo_store, desktop

    def t(key: str, **values: object) -> str:
        return translate("en" if lang == "en" else "zh", key, **values)

    case_id = demo.report_rubbish()  # the demo daemon's report
    assert demo.case(case_id).status == CaseStatus.PENDING_REVIEW

    # The admin sets up the staff in the admin pages (no CLI).
    _login(page, demo, "operator", ADMIN_PASSWORD)
    if lang == "en":
        page.click("#lang-en")
        page.wait_for_selector("html[lang=en]")
    page.click(f"nav.mainnav >> text={t('nav.admin')}")
    page.click(f"#admin-nav >> text={t('admin.users.title')}")
    page.wait_for_url("**/console/admin/users")
    for username, (role, unit, name, password) in STAFF.items():
        fields = {"username": username, "display_name": name, "role": role, "password": password}
        _fill(page, "user-form", **fields, **({"unit": unit} if unit else {}))
        assert page.locator("#saved").is_visible(), page.locator("#admin-title").inner_text()
        assert name in page.locator(f"#user-{username}").inner_text()
    page.click(f"#admin-nav >> text={t('admin.audit.title')}")
    log = page.locator("#admin-events tbody tr").all_inner_texts()
    assert [row for row in log[:3] if "Demo operator" in row and t("admin.audit.action.created") in row]
    assert "huang" in log[0] and "liu" in log[1] and "chen" in log[2]
    _logout(page)

    # The shift leader files it from the review queue; routing dispatches it to 环卫所 with a deadline.
    _login(page, demo, "chen", STAFF["chen"][3])
    assert page.url.endswith("/console/review")
    assert page.locator(".case-card.current").get_attribute("data-case-id") == str(case_id)
    page.keyboard.press("c")
    page.locator(f"#case-{case_id}").wait_for(state="detached")
    assert "环卫所" in page.locator("#flash .flash.ok").first.inner_text()
    case = demo.case(case_id)
    assert case.status == CaseStatus.DISPATCHED and demo.unit_code(case.unit_id) == "demo-sanitation"
    assert case.deadline_at is not None and case.deadline_at > dt.datetime.now(dt.UTC)
    _logout(page)

    # The dispatcher finds it dispatched to the right unit, its deadline counting down.
    _login(page, demo, "liu", STAFF["liu"][3])
    page.goto(f"{demo.url}/console/cases/{case_id}")
    assert page.locator("#case-status").get_attribute("data-status") == "dispatched"
    assert page.locator("#case-unit").inner_text() == "环卫所"
    assert page.locator("#countdown").is_visible()
    _logout(page)

    # The sanitation handler starts it, uploads the photo after clearing and reports it done.
    _login(page, demo, "huang", STAFF["huang"][3])
    page.wait_for_url("**/console/board")
    card = page.locator(f"#case-{case_id}")
    card.locator(".start-note").fill(t("action.start"))
    card.locator("button.start").click()
    page.wait_for_url("**/console/board?done=start")
    assert demo.case(case_id).status == CaseStatus.IN_PROGRESS
    card = page.locator(f"#case-{case_id}")
    card.locator(".resolve-form summary").click()
    card.locator("textarea[name=note]").fill("垃圾已清运" if lang == "zh" else "rubbish cleared")
    photo = tmp_path / "after.jpg"
    photo.write_bytes(evidence_jpeg(11, "after"))
    card.locator("input[name=photo]").set_input_files(str(photo))
    card.locator(".resolve-form button[type=submit]").click()
    page.wait_for_url("**/console/board?done=resolve")
    assert demo.case(case_id).status == CaseStatus.RESOLVED
    _logout(page)

    # The shift leader verifies and closes it on the case page.
    _login(page, demo, "chen", STAFF["chen"][3])
    page.goto(f"{demo.url}/console/cases/{case_id}")
    assert page.locator("#evidence-after img").count() == 1
    for action in ("verify", "close"):
        page.locator(f"#act-{action} summary").click()
        page.locator(f"#act-{action} textarea[name=note]").fill(t(f"action.{action}"))
        page.click(f"#submit-{action}")
        page.wait_for_url(f"**/console/cases/{case_id}?done={action}")

    # The case page: closed, no more actions, and the whole audit trail as stored.
    assert page.locator("#case-status").get_attribute("data-status") == "closed"
    assert page.locator("#case-status").inner_text() == t("status.closed")
    assert page.locator("#no-actions").is_visible()
    shown = page.locator("#timeline .event").evaluate_all("es => es.map(e => e.dataset.action)")
    assert shown == TIMELINE
    with demo.store.sessions() as session:
        stored = session.scalars(
            select(AuditEvent.action).where(AuditEvent.case_id == case_id).order_by(AuditEvent.id)
        ).all()
    assert list(stored) == TIMELINE
    timeline = page.locator("#timeline").inner_text()
    for action in ("file", "dispatch", "start", "resolve", "verify", "close"):
        assert t(f"action.{action}") in timeline, action
    assert ("垃圾已清运" if lang == "zh" else "rubbish cleared") in timeline
    assert demo.case(case_id).closed_at is not None
    screenshot(page, f"demo-walk-closed-{lang}-1366x768")
