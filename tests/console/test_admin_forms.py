"""The admin pages over HTTP: admins only, CSRF on every post, and bad input shown on the form with a
message naming the field, in zh and en, with nothing half-saved. The validation is the API's."""

from __future__ import annotations

import re
from collections.abc import Iterator

import httpx
import pytest
from sqlalchemy import func, select

from api.models import Device, Place, RoutingRule, RoutingRuleHistory, Unit, User
from tests.console.conftest import PASSWORD, ConsoleWorld

TOKEN = re.compile(r'name="csrf-token" content="([0-9a-f]+)"')


class Admin:
    def __init__(self, client: httpx.Client, token: str) -> None:
        self.client, self.token = client, token

    def post(self, path: str, **form: str) -> httpx.Response:
        return self.client.post(path, data={"csrf_token": self.token, **form})


def _login(client: httpx.Client, username: str) -> str:
    token = TOKEN.search(client.get("/console/login").text)
    assert token is not None
    data = {"username": username, "password": PASSWORD, "csrf_token": token.group(1)}
    assert client.post("/console/login", data=data).status_code == 303
    match = TOKEN.search(client.get("/console/board").text)
    assert match is not None
    return match.group(1)


@pytest.fixture
def admin(console: ConsoleWorld) -> Iterator[Admin]:
    with httpx.Client(base_url=console.url, timeout=10) as client:
        yield Admin(client, _login(client, "admin"))


def _count(console: ConsoleWorld, model: type) -> int:
    with console.store.sessions() as session:
        return session.scalar(select(func.count()).select_from(model)) or 0


def _errors(html: str) -> list[str]:
    block = re.search(r'class="flash error form-errors".*?</div>', html, re.S)
    assert block is not None, "no error block on the form"
    return re.findall(r"<li>(.*?)</li>", block.group(0))


def test_only_admins_open_or_post(console: ConsoleWorld) -> None:
    units = _count(console, Unit)
    for username in ("li", "zhang", "wang", "guest"):
        with httpx.Client(base_url=console.url, timeout=10) as client:
            token = _login(client, username)
            assert client.get("/console/admin/units").status_code == 403, username
            assert "/console/admin" not in client.get("/console/board").text  # no nav link either
            response = client.post(
                "/console/admin/units", data={"csrf_token": token, "code": "x", "name": "X"}
            )
            assert response.status_code == 403, username
    assert _count(console, Unit) == units


def test_posts_need_the_csrf_token(admin: Admin, console: ConsoleWorld) -> None:
    units = _count(console, Unit)
    response = admin.client.post("/console/admin/units", data={"code": "x", "name": "X", "active": "on"})
    assert response.status_code == 403
    assert _count(console, Unit) == units


def test_bad_unit_input_is_shown_on_the_form_in_both_languages(admin: Admin, console: ConsoleWorld) -> None:
    units = _count(console, Unit)
    response = admin.post("/console/admin/units", code="bad code", name="", active="on")
    assert response.status_code == 422
    errors = _errors(response.text)
    assert "编码: 含有不允许的字符（空格、/、\\、?、#、%）" in errors[0].replace("&#34;", '"')
    assert any(message.startswith("名称: 必填") for message in errors)
    assert 'value="bad code"' in response.text  # what was typed stays in the form
    admin.client.cookies.set("streetwatch_lang", "en")
    response = admin.post("/console/admin/units", code="bad code", name="", active="on")
    assert any(message.startswith("Name: required") for message in _errors(response.text))
    assert _count(console, Unit) == units


def test_a_duplicate_and_an_unknown_reference_change_nothing(admin: Admin, console: ConsoleWorld) -> None:
    places = _count(console, Place)
    assert admin.post("/console/admin/units", code="sanitation", name="again", active="on").status_code == 422
    response = admin.post("/console/admin/places", key="p-1", name="P", lat="31.2", lon="")
    assert response.status_code == 422
    assert _errors(response.text) == ["纬度和经度须同时填写，或都不填"]
    response = admin.post("/console/admin/places", key="p-1", name="P", lat="91", lon="121")
    assert _errors(response.text) == ["纬度: 超出允许范围"]
    admin.client.cookies.set("streetwatch_lang", "en")  # the API's own sentence in English
    response = admin.post("/console/admin/places", key="p-1", name="P", lat="31.2", lon="")
    assert _errors(response.text) == ["give both lat and lon, or neither"]
    assert _count(console, Place) == places


def test_a_bad_routing_rule_is_refused_and_a_good_one_is_in_the_history(
    admin: Admin, console: ConsoleWorld
) -> None:
    response = admin.post("/console/admin/routing", place="", violation="0102", unit="", priority="5")
    assert response.status_code == 422
    assert any(message.startswith("责任单位") for message in _errors(response.text))
    before = _count(console, RoutingRule)
    response = admin.post(
        "/console/admin/routing",
        place="110101001001002",
        violation="0102",
        unit="district",
        priority="5",
        active="on",
    )
    assert response.status_code == 303
    assert _count(console, RoutingRule) == before + 1
    with console.store.sessions() as session:
        history = session.scalars(select(RoutingRuleHistory).order_by(RoutingRuleHistory.id)).all()
        assert history[-1].action == "created" and history[-1].actor == "user:admin"
        rule_id = history[-1].rule_id
    assert admin.post(f"/console/admin/routing/{rule_id}/deactivate").status_code == 303
    page = admin.client.get(f"/console/admin/routing/{rule_id}")
    assert "启用: 是 → 否" in page.text and "管理员" in page.text and "user:admin" not in page.text
    admin.client.cookies.set("streetwatch_lang", "en")
    page = admin.client.get(f"/console/admin/routing/{rule_id}")
    assert "Active: yes → no" in page.text


def test_users_need_a_unit_when_handlers_and_a_long_password(admin: Admin, console: ConsoleWorld) -> None:
    users = _count(console, User)
    form = {
        "username": "sun",
        "display_name": "孙",
        "role": "unit_handler",
        "unit": "",
        "password": "long-enough",
    }
    response = admin.post("/console/admin/users", **form)
    assert response.status_code == 422
    assert _errors(response.text) == ["处置人员须选择所属单位"]
    assert "long-enough" not in response.text  # a password is never sent back
    response = admin.post("/console/admin/users", **{**form, "unit": "sanitation", "password": "short"})
    assert _errors(response.text) == ["密码: 太短（至少 8 个字符）"]
    assert _count(console, User) == users
    assert admin.post("/console/admin/users", **{**form, "unit": "sanitation"}).status_code == 303
    with httpx.Client(base_url=console.url, timeout=10) as client:  # the new user can log in
        login = client.post("/api/v1/auth/login", json={"username": "sun", "password": "long-enough"})
        assert login.status_code == 200 and login.json()["user"]["role"] == "unit_handler"


def test_an_admin_cannot_demote_or_deactivate_themselves(admin: Admin, console: ConsoleWorld) -> None:
    admin_id = console.user_ids["admin"]
    response = admin.post(f"/console/admin/users/{admin_id}", role="viewer", display_name="x", active="on")
    assert response.status_code == 422
    with console.store.sessions() as session:
        assert session.get_one(User, admin_id).role == "admin"


def test_a_device_name_must_be_new(admin: Admin, console: ConsoleWorld) -> None:
    response = admin.post("/console/admin/devices", name="box-1")
    assert response.status_code == 422
    assert "box-1" in _errors(response.text)[0]
    assert "swd_" not in response.text
    assert _count(console, Device) == 1


def test_bad_calendar_input_is_refused(admin: Admin, console: ConsoleWorld) -> None:
    response = admin.post(
        "/console/admin/calendar",
        timezone="Mars/Olympus",
        periods="12:00-08:30",
        default_working_hours="8",
        workday_1="on",
    )
    assert response.status_code == 422
    errors = _errors(response.text)
    assert any("Mars/Olympus" in message for message in errors)
    assert any("12:00-08:30" in message for message in errors)
    response = admin.post(
        "/console/admin/calendar",
        timezone="Asia/Shanghai",
        periods="09:00-12:00，14:00-18:00",
        default_working_hours="16",
        workday_1="on",
        workday_2="on",
    )
    assert response.status_code == 303
    page = admin.client.get("/console/admin/calendar").text
    assert 'value="09:00-12:00, 14:00-18:00"' in page


def test_a_new_device_key_is_shown_once_and_never_cached(admin: Admin, console: ConsoleWorld) -> None:
    response = admin.post("/console/admin/devices", name="box-7")
    assert response.status_code == 200
    assert response.headers["cache-control"] == "no-store"
    key = re.search(r'id="device-key">(swd_[^<]+)<', response.text)
    assert key is not None
    listing = admin.client.get("/console/admin/devices").text
    assert "box-7" in listing and key.group(1) not in listing
    with console.store.sessions() as session:  # only its hash is stored
        device = session.scalars(select(Device).where(Device.name == "box-7")).one()
        assert key.group(1).split("_", 2)[2] not in device.key_hash


def test_a_password_reset_logs_the_user_out(admin: Admin, console: ConsoleWorld) -> None:
    with httpx.Client(base_url=console.url, timeout=10) as client:
        token = client.post("/api/v1/auth/login", json={"username": "wang", "password": PASSWORD}).json()
        headers = {"Authorization": f"Bearer {token['access_token']}"}
        assert client.get("/api/v1/auth/me", headers=headers).status_code == 200
        user_id = console.user_ids["wang"]
        assert admin.post(f"/console/admin/users/{user_id}/password", password="short").status_code == 422
        assert client.get("/api/v1/auth/me", headers=headers).status_code == 200  # nothing changed
        assert (
            admin.post(f"/console/admin/users/{user_id}/password", password="new-secret-9").status_code == 303
        )
        assert client.get("/api/v1/auth/me", headers=headers).status_code == 401
        login = client.post("/api/v1/auth/login", json={"username": "wang", "password": "new-secret-9"})
        assert login.status_code == 200
