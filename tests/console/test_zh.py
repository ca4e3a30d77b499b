"""The console in Chinese, in a real browser: the incident's own times (first seen, confirmed) in the store's
time zone, and no English on any page a Chinese-speaking operator opens.

The crawl opens :data:`ZH_PAGES` as the roles that use them, over a store with cases in many states (filed
and routed, unrouted, started, resolved with a photo, overdue, re-coded), a zone with a schedule, and a
suppression, and fails on any ASCII-letter word outside :data:`ALLOWED_WORDS` and the data's own codes.
A new page is one line in :data:`ZH_PAGES`.
"""

from __future__ import annotations

import datetime as dt
import json
import re
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest
from sqlalchemy import select, update

from api.actors import Actor
from api.case_actions import apply_action
from api.console.i18n import catalogue
from api.evidence import add_evidence
from api.models import (
    CalendarSettings,
    Camera,
    Case,
    Device,
    Place,
    Role,
    RoutingRule,
    Suppression,
    Unit,
    User,
    ViolationType,
    Zone,
    utcnow,
)
from api.overdue import check_overdue
from api.reference.routing_rules import RoutingRuleUpdate, update_routing_rule
from api.work_calendar import DEFAULT_TIMEZONE
from contract.reports import EvidenceKind
from tests.api.builders import case_report
from tests.api.clip_builders import clip_bytes
from tests.console.conftest import SECOND_PLACE, ConsoleWorld, evidence_jpeg, login

# (who opens it, the path; ``{name}`` is filled from the crawl's data, see _Data). One line per page.
ZH_PAGES: tuple[tuple[str, str], ...] = (
    ("", "/console/login"),
    ("li", "/console/review"),
    ("guest", "/console/review"),
    ("li", "/console/cases/{routed}"),
    ("li", "/console/cases/{unrouted}"),
    ("li", "/console/cases/{overdue}"),
    ("li", "/console/cases/{recoded}"),
    ("wang", "/console/cases/{routed}"),
    ("wang", "/console/board"),
    ("zhang", "/console/board"),
    ("li", "/console/board"),
    ("admin", "/console/cameras"),
    ("admin", "/console/cameras/cam-1/zones"),
    ("li", "/console/cameras/cam-1/suppressions"),
    ("li", "/console/dashboards"),
    ("li", "/console/dashboards/report"),
    ("guest", "/console/dashboards"),
    ("li", "/console/cases/{clipped}"),  # the evidence clip: for the roles that see unredacted video
    ("zhang", "/console/cases/{clipped}"),
    ("admin", "/console/admin"),
    ("admin", "/console/admin/units"),
    ("admin", "/console/admin/units/sanitation"),
    ("admin", "/console/admin/places"),
    ("admin", "/console/admin/places/{place}"),
    ("admin", "/console/admin/violation-types"),
    ("admin", "/console/admin/violation-types/0102"),
    ("admin", "/console/admin/routing"),
    ("admin", "/console/admin/routing/{rule}"),
    ("admin", "/console/admin/calendar"),
    ("admin", "/console/admin/cameras"),
    ("admin", "/console/admin/cameras/cam-1"),
    ("admin", "/console/admin/devices"),
    ("admin", "/console/admin/users"),
    ("admin", "/console/admin/users/{user}"),
    ("admin", "/console/admin/audit"),
    ("zhang", "/console/search"),
    ("zhang", "/console/search?status=closed&status=voided&sort=deadline"),
    ("wang", "/console/search"),
    ("zhang", "/console/map"),
    ("admin", "/console/models"),
)

# Admin forms posted with a value the store refuses, as an admin types it: (the page, the form, its fields,
# what the error must say). The page shown again names the problem in Chinese. One line per refusal.
ZH_REFUSALS: tuple[tuple[str, str, dict[str, str], str], ...] = (
    (
        "/console/admin/units",
        "unit-form",
        {"code": "sanitation", "name": "环卫所"},
        "单位编码“sanitation”已存在",
    ),
    ("/console/admin/units", "unit-form", {"code": "环卫 二所", "name": "环卫二所"}, "编码: "),
    ("/console/admin/units", "unit-form", {"code": "grid-9", "name": ""}, "名称: 必填"),
    (
        "/console/admin/places",
        "place-form",
        {"key": "110101009009009", "name": "新网格", "lat": "39.9"},
        "纬度和经度须同时填写",
    ),
    (
        "/console/admin/places",
        "place-form",
        {"key": "110101001001001", "name": "重复"},
        "地点编码“110101001001001”已存在",
    ),
    (
        "/console/admin/places",
        "place-form",
        {"key": "110101009009009", "name": "远方", "lat": "91", "lon": "1"},
        "超出允许范围",
    ),
    (
        "/console/admin/violation-types",
        "violation-form",
        {"code": "0102", "name": "暴露垃圾", "pipeline_type": "exposed_garbage"},
        "问题类型代码“0102”已存在",
    ),
    ("/console/admin/calendar", "calendar-form", {"timezone": "北京时间"}, "未知时区“北京时间”"),
    (
        "/console/admin/calendar",
        "calendar-form",
        {"periods": "8点到12点"},
        "时段“8点到12点”：请写成“开始-结束”",
    ),
    (
        "/console/admin/calendar",
        "calendar-form",
        {"periods": "12:00-08:30"},
        "时段 12:00-08:30 的结束时间早于开始时间",
    ),
    (
        "/console/admin/cameras",
        "camera-form",
        {"code": "cam-1", "name": "东华门路口"},
        "摄像头编码“cam-1”已存在",
    ),
    ("/console/admin/devices", "device-form", {"name": "box-1"}, "名为“box-1”的边缘设备已存在"),
    (
        "/console/admin/users",
        "user-form",
        {"username": "sun", "role": "unit_handler", "unit": "", "password": "correct-horse-9"},
        "处置人员须选择所属单位",
    ),
    (
        "/console/admin/users",
        "user-form",
        {"username": "wang", "role": "viewer", "password": "correct-horse-9"},
        "用户名“wang”已存在",
    ),
    ("/console/admin/users/{admin}", "user-form", {"role": "viewer"}, "不能取消自己的管理员权限"),
)

# ASCII words a Chinese page may show, each for a reason:
ALLOWED_WORDS = frozenset(
    {
        "English",  # the language switch names each language in that language
        "JPEG",  # file formats: the photo hint, the dashboards' CSV download
        "PNG",
        "CSV",
        "Enter",  # keys named in the keyboard help (<kbd>): a key is called what is printed on it
        "Esc",
        "j/k",
        "WGS",  # the coordinate system's name: WGS 84
        "c",
        "x",
    }
)
# ... and the data's own codes, identifiers an admin types and reads as typed (:func:`_codes`): units'
# codes and kinds, places' kinds, cameras', zones' and detector types' codes, devices' and users' login
# names, the time zone's name.
WORD = re.compile(r"[A-Za-z][A-Za-z0-9]*(?:[-_./:][A-Za-z0-9]+)*")

# The text a person can read or hear on the page: visible text, text in closed <details> and dialogs,
# options, placeholders, labels for screen readers and messages scripts show (data-msg-*). Scripts and
# styles are not text; <code> and translate="no" mark an identifier shown as one (a zone code, a camera's
# code next to its name, a device's name), and lang="en" says on the page that a text is English (the
# daemon's stream error, an uncatalogued error's detail under "技术细节（英文）"). {name} placeholders in
# data-msg-* are filled by scripts.
PAGE_TEXT = """() => {
  const body = document.body.cloneNode(true);
  body.querySelectorAll('script, style, code, [translate="no"], [lang="en"]').forEach(el => el.remove());
  const parts = [document.title, body.textContent];
  for (const el of body.querySelectorAll('*')) {
    for (const attr of el.attributes) {
      if (['placeholder', 'aria-label', 'alt'].includes(attr.name) || attr.name.startsWith('data-msg')
          || attr.name === 'data-left' || attr.name === 'data-over') parts.push(attr.value);
      if (attr.name === 'title' && el.tagName !== 'TIME') parts.push(attr.value);
    }
  }
  const typed = document.querySelectorAll('input[type=text]:not([lang="en"]), textarea');
  for (const el of typed) parts.push(el.value);
  return parts.join('\\n').replace(/\\{[a-z_]+\\}/g, '');
}"""

SHANGHAI_NOTE = "times below are Asia/Shanghai wall times (UTC+08:00)"
CONFIRMED = dt.datetime(2026, 3, 2, 0, 15, 30, tzinfo=dt.UTC)  # 08:15:30 in Shanghai


def _report(console: ConsoleWorld, *, images: tuple[str, ...] = ("confirmation",), **overrides: Any) -> int:
    """A report as the edge box sends it (device key over HTTP), with its evidence images."""
    body = case_report(f"zh-{uuid.uuid4().hex}", **overrides)
    with httpx.Client(base_url=console.url, headers={"X-Device-Key": console.device_key}) as client:
        response = client.post("/api/v1/cases", json=body)
        response.raise_for_status()
        case_id: int = response.json()["case_id"]
        for seed, kind in enumerate(images):
            files = {"file": (f"{kind}.jpg", evidence_jpeg(seed + case_id, kind), "image/jpeg")}
            client.post(
                f"/api/v1/cases/{case_id}/evidence", files=files, data={"kind": kind}
            ).raise_for_status()
    return case_id


def test_cards_and_the_case_page_show_first_seen_and_confirmed_in_the_store_time_zone(
    console: ConsoleWorld, desktop: Any
) -> None:
    """The report says the object was first seen 30 s before its dwell confirmed it; the reviewer reads
    both, in Shanghai time, and not the time the store received the report."""
    first_seen = CONFIRMED - dt.timedelta(seconds=30)
    case_id = _report(
        console,
        first_seen_at=first_seen.isoformat(),
        confirmed_at=CONFIRMED.isoformat(),
        images=("first_seen", "confirmation", "crop"),
    )
    page = desktop
    login(page, console, "li")
    card = page.locator(f"#case-{case_id}")
    assert card.locator(".first-seen").inner_text() == "2026-03-02 08:15:00"
    assert card.locator(".confirmed").inner_text() == "2026-03-02 08:15:30"

    page.goto(f"{console.url}/console/cases/{case_id}")
    assert page.locator("#case-first-seen").inner_text() == "2026-03-02 08:15:00"
    assert page.locator("#case-confirmed").inner_text() == "2026-03-02 08:15:30"
    captions = page.locator("#evidence-before figcaption").all_inner_texts()
    assert captions == [
        "首次发现 · 2026-03-02 08:15:00",
        "确认画面 · 2026-03-02 08:15:30",
        "局部特写 · 2026-03-02 08:15:30",
    ], SHANGHAI_NOTE


@dataclass
class _Data:
    """The cases the crawl's pages show, by the names ZH_PAGES uses."""

    ids: dict[str, int | str]

    def path(self, template: str) -> str:
        return template.format(**self.ids)


def _as(console: ConsoleWorld, username: str) -> Actor:
    with console.store.sessions() as session:
        user = session.scalars(select(User).where(User.username == username)).one()
        return Actor(kind="user", id=user.id, name=user.username, role=Role(user.role), unit_id=user.unit_id)


def _act(console: ConsoleWorld, username: str, case_id: int, action: str, **fields: Any) -> None:
    actor = _as(console, username)
    with console.store.sessions.begin() as session:
        case = session.get_one(Case, case_id)
        if action == "resolve":
            photo = evidence_jpeg(7, "after")
            add_evidence(
                session,
                case_id,
                actor,
                data=photo,
                kind=EvidenceKind.HANDLING,
                settings=console.store.settings,
            )
        apply_action(session, case, action, actor, settings=console.store.settings, **fields)


def _city_in_chinese(console: ConsoleWorld) -> None:
    """Names as a Chinese city configures them (the shared fixture's places carry English test words)."""
    world = console.store.world
    with console.store.sessions.begin() as session:
        session.execute(update(Place).where(Place.key == world.place_key).values(name="东华门大街第一网格"))
        session.execute(update(Place).where(Place.key == SECOND_PLACE).values(name="王府井大街第二网格"))
        session.add(Place(key="110101001001003", name="无主地块"))  # no owner unit: nobody to route to
        session.execute(update(Camera).where(Camera.code == "cam-1").values(name="东华门路口"))
        session.execute(update(Camera).where(Camera.code == "cam-2").values(name="王府井路口"))
        camera = session.scalars(select(Camera).where(Camera.code == "cam-1")).one()
        weekdays = [{"days": [1, 2, 3, 4, 5], "start": "07:00", "end": "09:00"}]
        session.add(
            Zone(
                camera_id=camera.id,
                code="z-gate",
                place_id=world.place_id,
                polygon=[[0.1, 0.4], [0.9, 0.4], [0.9, 0.95], [0.1, 0.95]],
                rules={"illegal_parking": {"dwell_s": 60, "schedule": weekdays, "min_confidence": 0.3}},
            )
        )


def _clip(console: ConsoleWorld, case_id: int, video: Path) -> None:
    """An evidence clip as the edge box uploads it (device key, MP4 remuxed from the camera's video)."""
    with httpx.Client(base_url=console.url, headers={"X-Device-Key": console.device_key}) as client:
        files = {"file": ("clip.mp4", clip_bytes(video, 3.0), "video/mp4")}
        client.post(
            f"/api/v1/cases/{case_id}/evidence", files=files, data={"kind": "clip"}
        ).raise_for_status()


def _make_data(console: ConsoleWorld, video: Path | None = None) -> _Data:
    _city_in_chinese(console)
    world = console.store.world
    ids: dict[str, int | str] = {
        "pending": _report(console, violation_type="illegal_parking", camera="cam-2", zone="z-side"),
        "routed": _report(console, violation_type="exposed_garbage"),
        "unrouted": _report(console, violation_type="street_stall", place="110101001001003"),
        "overdue": _report(console, violation_type="illegal_parking", place=SECOND_PLACE),
        "recoded": _report(console, violation_type="street_stall", place=SECOND_PLACE),
        "voided": _report(console, violation_type="exposed_garbage", place=SECOND_PLACE),
    }
    with console.store.sessions.begin() as session:  # garbage: a photo, and 开始处置 before 反馈
        session.execute(
            update(ViolationType)
            .where(ViolationType.code == "0102")
            .values(photo_required_to_resolve=True, start_required_before_resolve=True)
        )
    _act(console, "li", ids["routed"], "file")  # routing rule -> 环卫所
    _act(console, "wang", ids["routed"], "start", note="已到现场")
    _act(console, "wang", ids["routed"], "resolve", note="垃圾已清运")
    _act(console, "li", ids["unrouted"], "file")  # no rule, no owner: stays filed, the note says why
    _act(console, "li", ids["overdue"], "file")  # -> 交通大队, then its deadline passes
    _act(console, "li", ids["recoded"], "recode", violation_code="0504")
    _act(console, "li", ids["voided"], "void", reason="false_positive", note="塑料袋")
    with console.store.sessions.begin() as session:
        session.execute(
            update(Case).where(Case.id == ids["overdue"]).values(deadline_at=utcnow() - dt.timedelta(hours=3))
        )
    check_overdue(console.store.sessions, console.store.settings)
    with console.store.sessions() as session:
        assert session.scalar(select(Suppression.id).limit(1)) is not None  # the void remembered it
        assert session.get_one(Case, ids["overdue"]).overdue
    if video is not None:
        images = ("first_seen", "confirmation")
        ids["clipped"] = _report(console, violation_type="exposed_garbage", images=images)
        _clip(console, int(ids["clipped"]), video)
    with console.store.sessions.begin() as session:  # a rule with history: changed, then turned off
        rule = session.scalars(select(RoutingRule).order_by(RoutingRule.id)).first()
        assert rule is not None
        ids["rule"] = rule.id
        admin = _as(console, "admin")
        update_routing_rule(session, admin, rule.id, RoutingRuleUpdate(priority=20, unit="district"))
        update_routing_rule(session, admin, rule.id, RoutingRuleUpdate(active=False))
    with console.store.sessions() as session:
        ids["user"] = session.scalars(select(User.id).where(User.username == "wang")).one()
        ids["admin"] = session.scalars(select(User.id).where(User.username == "admin")).one()
    ids["place"] = world.place_key
    return _Data(ids)


def _codes(console: ConsoleWorld) -> frozenset[str]:
    with console.store.sessions() as session:
        columns = (
            Unit.code,
            Unit.kind,
            Place.kind,
            Camera.code,
            Zone.code,
            ViolationType.pipeline_type,
            Device.name,
            User.username,
            CalendarSettings.timezone,
        )
        stored = {str(code) for column in columns for code in session.scalars(select(column))}
    kinds = {key.removeprefix("admin.kind.") for key in catalogue() if key.startswith("admin.kind.")}
    return frozenset(stored | kinds)  # the kinds the admin forms' hints name as examples


def _english_words(text: str, codes: frozenset[str] = frozenset()) -> list[str]:
    return sorted({w for w in WORD.findall(text) if w not in ALLOWED_WORDS and w not in codes})


@pytest.fixture
def open_as(console: ConsoleWorld, browser: Any) -> Any:
    """``open_as(username)``: a logged-in page for that user (one browser context per user, reused)."""
    contexts: dict[str, Any] = {}

    def open_page(username: str) -> Any:
        if username not in contexts:
            context = browser.new_context(viewport={"width": 1366, "height": 768}, locale="zh-CN")
            page = context.new_page()
            if username:
                login(page, console, username)
            contexts[username] = page
        return contexts[username]

    yield open_page
    for page in contexts.values():
        page.context.close()


def test_every_page_in_chinese_has_no_english(
    console: ConsoleWorld, open_as: Callable[[str], Any], car_video: Path
) -> None:
    data = _make_data(console, car_video)
    codes = _codes(console) | {DEFAULT_TIMEZONE}
    found: dict[str, list[str]] = {}
    for username, template in ZH_PAGES:
        page = open_as(username)
        response = page.goto(f"{console.url}{data.path(template)}")
        assert response is not None and response.status == 200, (
            username,
            template,
            response and response.status,
        )
        assert page.evaluate("document.documentElement.lang") == "zh-CN"
        words = _english_words(page.evaluate(PAGE_TEXT), codes)
        if words:
            found[f"{username or 'anonymous'} {template}"] = words
    assert not found, f"English on Chinese pages: {found}"
    page = open_as("wang")  # the crawl saw the handling rules' badges and the clip it was meant to see
    page.goto(f"{console.url}/console/cases/{data.ids['routed']}")
    assert page.locator("#rule-photo").is_visible() and page.locator("#rule-start").is_visible()
    page = open_as("zhang")
    page.goto(f"{console.url}/console/cases/{data.ids['clipped']}")
    assert page.locator("#evidence-clips video").count() == 1
    # The check sees English where there is some: the same page after switching to English.
    page = open_as("li")
    page.goto(f"{console.url}/console/lang/en?next=/console/review")
    assert {"Review", "queue"} <= set(_english_words(page.evaluate(PAGE_TEXT)))


def _fill(page: Any, form: str, fields: dict[str, str]) -> None:
    for name, value in fields.items():
        field = page.locator(f"#{form}-{name}")
        if field.evaluate("e => e.tagName") == "SELECT":
            field.select_option(value)
        else:
            field.fill(value)


def test_every_refused_admin_form_says_why_in_chinese(
    console: ConsoleWorld, open_as: Callable[[str], Any]
) -> None:
    data = _make_data(console)
    codes = _codes(console) | {DEFAULT_TIMEZONE}
    page = open_as("admin")
    found: dict[str, list[str]] = {}
    for path, form, fields, expected in ZH_REFUSALS:
        page.goto(f"{console.url}{data.path(path)}")
        _fill(page, form, fields)
        with page.expect_navigation() as navigation:
            page.click(f"#{form}-submit")
        assert navigation.value.status == 422, (path, fields)
        errors = page.locator(f"#{form}-errors").inner_text()
        assert expected in errors, (path, fields, errors)
        typed = {fields[name] for name in ("code", "username") if name in fields}  # new codes, as typed
        words = _english_words(page.evaluate(PAGE_TEXT), codes | typed)
        if words:
            found[f"{path} {fields}"] = words
    assert not found, f"English on refused Chinese forms: {found}"


def test_the_timeline_names_people_places_and_why_in_chinese(
    console: ConsoleWorld, open_as: Callable[[str], Any]
) -> None:
    data = _make_data(console)
    page = open_as("li")
    page.goto(f"{console.url}/console/cases/{data.ids['routed']}")
    timeline = page.locator("#timeline").inner_text()
    assert "王环卫" in timeline and "user:" not in timeline  # the unit handler by display name
    assert "边缘设备（东华门路口、王府井路口）" in timeline  # the box by its cameras' names
    assert "路由规则 #" in timeline and "东华门大街第一网格的暴露垃圾交由环卫所处置" in timeline
    assert page.locator("#case-place").inner_text() == "东华门大街第一网格 110101001001001"

    page.goto(f"{console.url}/console/cases/{data.ids['unrouted']}")
    assert (
        "无主地块的无照经营游商没有路由规则，该地点也没有属地单位" in page.locator("#timeline").inner_text()
    )

    page.goto(f"{console.url}/console/cases/{data.ids['overdue']}")
    assert "交通大队超过处置时限，已升级至东城区城管执法局" in page.locator("#timeline").inner_text()
    assert re.fullmatch(r"超期 3 小时( \d+ 分)?", page.locator("#countdown").inner_text())


def test_a_refused_action_says_why_in_chinese(console: ConsoleWorld, open_as: Callable[[str], Any]) -> None:
    """Dispatching a case nobody owns, by routing: the error names the place and the type in Chinese."""
    data = _make_data(console)
    page = open_as("zhang")
    page.goto(f"{console.url}/console/cases/{data.ids['unrouted']}")
    page.locator("#act-dispatch summary").click()
    page.locator("#submit-dispatch").click()
    error = page.locator("#action-error").inner_text()
    assert "无主地块的无照经营游商没有路由规则" in error and "请手动选择责任单位派遣" in error
    assert not _english_words(error)


def test_the_zone_editor_writes_schedules_with_chinese_day_names(
    console: ConsoleWorld, open_as: Callable[[str], Any]
) -> None:
    _city_in_chinese(console)
    page = open_as("admin")
    page.goto(f"{console.url}/console/cameras/cam-1/zones")
    assert page.locator("#editor-title").inner_text() == "区域编辑：东华门路口"
    page.select_option("#zone-select", "z-gate")
    schedule = page.locator("#schedule-illegal_parking")
    assert schedule.input_value() == "周一-周五 07:00-09:00"
    # a rule stored with an explicit 0.3 shows it (empty would mean the model's) and keeps it when saved
    assert page.input_value("#confidence-illegal_parking") == "0.3"
    assert "机动车乱停放" in page.locator(".rule[data-type=illegal_parking] label.check").inner_text()

    schedule.fill("周一至周五 07:00-09:00，周六 9:00-12:00")
    page.click("#save-zone")
    page.locator("#zone-message:not([hidden])").wait_for()
    with console.store.sessions() as session:
        zone = session.scalars(select(Zone).where(Zone.code == "z-gate")).one()
        assert zone.rules["illegal_parking"]["schedule"] == [
            {"days": [1, 2, 3, 4, 5], "start": "07:00", "end": "09:00"},
            {"days": [6], "start": "09:00", "end": "12:00"},
        ]
        assert zone.rules["illegal_parking"]["min_confidence"] == 0.3

    schedule.fill("工作日 07:00")
    page.click("#save-zone")
    message = page.locator("#zone-message")
    message.filter(has_text="生效时段").wait_for()
    assert message.inner_text().startswith("“机动车乱停放”的生效时段：")
    assert "无法识别“工作日 07:00”" in message.inner_text()

    # What the browser's own checks let through (a page open while the rules changed, a script) is refused
    # by the store in Chinese too, naming the rule by its type's name.
    token = page.locator('meta[name="csrf-token"]').get_attribute("content")
    zone = {
        "place": console.store.world.place_key,
        "polygon": [[0.1, 0.4], [0.9, 0.4], [0.9, 0.95], [0.1, 0.95]],
        "rules": {"illegal_parking": {"dwell_s": 0, "schedule": ""}},
    }
    url = f"{console.url}/console/cameras/cam-1/zones/z-gate"
    answer = page.request.post(url, form={"csrf_token": token, "zone": json.dumps(zone)})
    assert answer.status == 422
    assert answer.json()["detail"] == "“机动车乱停放”的停留（秒）：超出允许范围"
    zone["polygon"] = [[0.1, 0.1], [0.5, 0.5], [0.9, 0.9]]
    answer = page.request.post(url, form={"csrf_token": token, "zone": json.dumps(zone)})
    assert answer.json()["detail"] == "区域多边形：区域多边形没有面积：各点共线或重复"
