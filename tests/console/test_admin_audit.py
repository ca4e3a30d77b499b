"""In the browser: an admin sets a violation type's handling rules on its form (zh and en), and finds that
change, and the API's, in the change log (变更记录) with who made it, filtered by area and actor, newest
first, in keyset pages."""

from __future__ import annotations

from typing import Any

import httpx
from sqlalchemy import select

from api.admin_audit import set_actor
from api.models import Unit, ViolationType
from tests.console.conftest import PASSWORD, ConsoleWorld, login


def _violation(console: ConsoleWorld, code: str) -> ViolationType:
    with console.store.sessions() as session:
        found = session.scalar(select(ViolationType).where(ViolationType.code == code))
        assert found is not None
        return found


def test_handling_rules_on_the_violation_type_form_and_in_the_change_log(
    console: ConsoleWorld, desktop: Any
) -> None:
    page = desktop
    login(page, console, "admin")
    page.goto(f"{console.url}/console/admin/violation-types/0102")
    photo = page.locator("#violation-form-photo_required_to_resolve")
    start = page.locator("#violation-form-start_required_before_resolve")
    assert page.get_by_label("反馈须上传处置照片").is_visible()
    assert page.get_by_label("反馈前须先开始处置").is_visible()
    photo_before = _violation(console, "0102").photo_required_to_resolve
    assert photo.is_checked() == photo_before
    photo.set_checked(not photo_before)
    start.set_checked(True)
    page.click("#violation-form-submit")
    page.wait_for_url("**/console/admin/violation-types?saved=*")
    saved = _violation(console, "0102")
    assert saved.photo_required_to_resolve is (not photo_before)
    assert saved.start_required_before_resolve is True
    assert "反馈前须先开始处置" in page.locator("#violation-0102").inner_text()

    page.goto(f"{console.url}/console/admin/violation-types/0102")  # the form shows what was saved
    assert start.is_checked() and photo.is_checked() == (not photo_before)

    page.click("#admin-nav >> text=变更记录")
    page.wait_for_url("**/console/admin/audit")
    newest = page.locator("#admin-events tbody tr").first.inner_text()
    assert "管理员" in newest and "问题类型" in newest and "修改" in newest and "0102" in newest
    assert "start_required_before_resolve: false → true" in newest

    # a change through the API by another admin is in the same log; the filters find each
    with httpx.Client(base_url=console.url, timeout=10) as client:
        token = client.post("/api/v1/auth/login", json={"username": "admin", "password": PASSWORD})
        headers = {"Authorization": f"Bearer {token.json()['access_token']}"}
        client.post(
            "/api/v1/units", json={"code": "parks", "name": "园林科"}, headers=headers
        ).raise_for_status()
    page.reload()
    page.select_option("#audit-area", "units")
    page.click("#audit-filter button[type=submit]")
    page.wait_for_url("**/console/admin/audit?area=units*")
    rows = page.locator("#admin-events tbody tr")
    assert "parks" in rows.first.inner_text() and "新建" in rows.first.inner_text()
    assert "0102" not in page.locator("#admin-events").inner_text()

    # the same page in English
    page.goto(f"{console.url}/console/admin/violation-types/0102")
    page.click("#lang-en")
    page.wait_for_selector("html[lang=en]")
    assert page.get_by_label("Photo required to resolve").is_visible()
    assert page.get_by_label("Start required before resolve").is_visible()
    page.goto(f"{console.url}/console/admin/audit")
    assert page.locator("#admin-title").inner_text() == "Change log"
    assert "updated" in page.locator("#admin-events").inner_text()


def test_change_log_pages_newest_first_and_filters_by_actor(console: ConsoleWorld, desktop: Any) -> None:
    with console.store.sessions.begin() as session:
        for index in range(60):
            set_actor(session, "user:ops" if index % 2 else "cli:deploy")
            session.add(Unit(code=f"unit-{index:02d}", name=f"单位{index:02d}"))
            session.flush()
    page = desktop
    login(page, console, "admin")
    page.goto(f"{console.url}/console/admin/audit?area=units")
    first = page.locator("#admin-events tbody tr")
    assert first.count() == 50 and "unit-59" in first.first.inner_text()
    page.click("#audit-older")
    page.wait_for_url("**/console/admin/audit?area=units&before=*")
    rest = page.locator("#admin-events tbody tr").all_inner_texts()
    ours = [text.split("unit-")[1][:2] for text in rest if "unit-" in text]
    assert ours == [f"{index:02d}" for index in range(9, -1, -1)]  # the next ten, no repeats, no gaps
    assert page.locator("#audit-older").count() == 0  # the city's own units end the log
    page.click("#audit-newest")
    assert "unit-59" in page.locator("#admin-events tbody tr").first.inner_text()

    page.goto(f"{console.url}/console/admin/audit")
    page.select_option("#audit-actor", "cli:deploy")
    page.click("#audit-filter button[type=submit]")
    texts = page.locator("#admin-events tbody tr").all_inner_texts()
    assert len(texts) == 30 and all("命令行（deploy）" in text for text in texts)  # actors by display name
