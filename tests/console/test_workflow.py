"""A case through the console in a real browser: confirmed from the review queue by keyboard,
dispatched by routing, resolved by the unit with a photo, verified and closed by the shift leader."""

from __future__ import annotations

from typing import Any

from sqlalchemy import select

from api.models import AuditEvent, Case, CaseStatus, Evidence
from tests.console.conftest import ConsoleWorld, evidence_jpeg, login, screenshot

TIMELINE = ["created", "evidence", "file", "dispatch", "start", "evidence", "resolve", "verify", "close"]


def _case(console: ConsoleWorld, case_id: int) -> Case:
    return console.store.case(case_id)


def _logout(page: Any) -> None:
    page.click("#logout")
    page.wait_for_url("**/console/login")


def test_a_case_from_review_to_closed(console: ConsoleWorld, desktop: Any, tmp_path: Any) -> None:
    garbage = console.report(violation_type="exposed_garbage")  # routed to sanitation (wang)
    parking = console.report(violation_type="illegal_parking", camera="cam-2")  # newer: first in the queue
    page = desktop

    # The shift leader confirms the second case of the queue with the keyboard.
    login(page, console, "li")
    assert page.url.endswith("/console/review")
    cards = page.locator(".case-card")
    assert [int(x) for x in cards.evaluate_all("cs => cs.map(c => c.dataset.caseId)")] == [parking, garbage]
    page.keyboard.press("j")
    assert page.locator(".case-card.current").get_attribute("data-case-id") == str(garbage)
    page.keyboard.press("c")
    page.locator(f"#case-{garbage}").wait_for(state="detached")
    assert "环卫所" in page.locator("#flash .flash.ok").first.inner_text()
    case = _case(console, garbage)
    assert (case.status, case.unit_id) == (CaseStatus.DISPATCHED, console.store.world.sanitation_id)
    assert _case(console, parking).status == CaseStatus.PENDING_REVIEW
    _logout(page)

    # The sanitation unit's handler starts it and reports it done with a note and a photo.
    login(page, console, "wang")
    assert page.url.endswith("/console/board")
    card = page.locator(f"#case-{garbage}")
    card.locator(".start-note").fill("已到现场")
    card.locator("button.start").click()
    page.wait_for_url("**/console/board?done=start")
    assert _case(console, garbage).status == CaseStatus.IN_PROGRESS
    card = page.locator(f"#case-{garbage}")
    card.locator(".resolve-form summary").click()
    card.locator("textarea[name=note]").fill("垃圾已清运")
    photo = tmp_path / "after.jpg"
    photo.write_bytes(evidence_jpeg(99, "after"))
    card.locator("input[name=photo]").set_input_files(str(photo))
    card.locator(".resolve-form button[type=submit]").click()
    page.wait_for_url("**/console/board?done=resolve")
    assert _case(console, garbage).status == CaseStatus.RESOLVED
    with console.store.sessions() as session:
        kinds = session.scalars(select(Evidence.kind).where(Evidence.case_id == garbage)).all()
    assert sorted(kinds) == ["confirmation", "handling"]
    _logout(page)

    # The shift leader verifies and closes it on the case page.
    login(page, console, "li")
    page.goto(f"{console.url}/console/cases/{garbage}")
    assert page.locator("#evidence-after img").count() == 1
    for action in ("verify", "close"):
        page.locator(f"#act-{action} summary").click()
        page.locator(f"#act-{action} textarea[name=note]").fill(f"{action} ok")
        page.click(f"#submit-{action}")
        page.wait_for_url(f"**/console/cases/{garbage}?done={action}")
    assert page.locator("#case-status").get_attribute("data-status") == "closed"
    assert page.locator("#no-actions").is_visible()

    # The audit timeline in the browser shows every step, as stored.
    shown = page.locator("#timeline .event").evaluate_all("es => es.map(e => e.dataset.action)")
    assert shown == TIMELINE
    with console.store.sessions() as session:
        stored = session.scalars(
            select(AuditEvent.action).where(AuditEvent.case_id == garbage).order_by(AuditEvent.id)
        ).all()
    assert list(stored) == TIMELINE
    timeline_text = page.locator("#timeline").inner_text()
    for word in ("立案", "派遣", "开始处置", "已到现场", "处理反馈", "核查通过", "结案", "垃圾已清运"):
        assert word in timeline_text
    screenshot(page, "case-closed-1366x768")
