"""The review queue in a real browser: reject by keyboard with a reason, bulk confirm, filters, paging,
and the language switch."""

from __future__ import annotations

from typing import Any

from playwright.sync_api import expect
from sqlalchemy import select

from api.console.i18n import translate
from api.models import AuditEvent, Case, CaseStatus
from tests.console.conftest import SECOND_PLACE, ConsoleWorld, login


def _statuses(console: ConsoleWorld, ids: list[int]) -> dict[int, str]:
    with console.store.sessions() as session:
        rows = session.execute(select(Case.id, Case.status).where(Case.id.in_(ids)))
        return {case_id: status for case_id, status in rows}


def _queue_ids(page: Any) -> list[int]:
    return [int(x) for x in page.locator(".case-card").evaluate_all("cs => cs.map(c => c.dataset.caseId)")]


def test_reject_by_keyboard_with_a_reason(console: ConsoleWorld, desktop: Any) -> None:
    first = console.report(violation_type="exposed_garbage")
    second = console.report(violation_type="illegal_parking")
    login(desktop, console, "li")
    assert _queue_ids(desktop) == [second, first]
    desktop.keyboard.press("x")  # the current (first) card
    dialog = desktop.locator("#reject-dialog")
    dialog.wait_for(state="visible")
    desktop.keyboard.press("2")  # duplicate
    desktop.locator(f"#case-{second}").wait_for(state="detached")
    assert not dialog.is_visible()
    assert _statuses(console, [first, second]) == {first: "pending_review", second: "voided"}
    with console.store.sessions() as session:
        event = session.scalars(
            select(AuditEvent).where(AuditEvent.case_id == second, AuditEvent.action == "void")
        ).one()
    assert (event.reason, event.actor) == ("duplicate", "user:li")
    assert desktop.locator("#queue-count").get_attribute("data-count") == "1"
    assert desktop.locator(".case-card.current").get_attribute("data-case-id") == str(first)
    # Escape cancels a rejection: nothing changes.
    desktop.keyboard.press("x")
    dialog.wait_for(state="visible")
    desktop.keyboard.press("Escape")
    dialog.wait_for(state="hidden")
    assert _statuses(console, [first]) == {first: "pending_review"}


def test_bulk_confirm_files_every_selected_case(console: ConsoleWorld, desktop: Any) -> None:
    places = ["110101001001001", SECOND_PLACE]
    ids = [
        console.report(place=p, violation_type=v)
        for p in places
        for v in ("exposed_garbage", "illegal_parking")
    ]
    login(desktop, console, "li")
    cards = _queue_ids(desktop)
    assert sorted(cards) == sorted(ids)
    desktop.keyboard.press(" ")  # select the current card
    desktop.keyboard.press("j")
    desktop.keyboard.press(" ")
    desktop.keyboard.press("j")
    desktop.locator(f"#case-{cards[3]} .select").check()  # and one by mouse
    desktop.click("#bulk-confirm")
    for case_id in (cards[0], cards[1], cards[3]):
        desktop.locator(f"#case-{case_id}").wait_for(state="detached")
    statuses = _statuses(console, ids)
    assert {statuses[c] for c in (cards[0], cards[1], cards[3])} == {CaseStatus.DISPATCHED.value}
    assert statuses[cards[2]] == CaseStatus.PENDING_REVIEW.value
    assert _queue_ids(desktop) == [cards[2]]
    # one summary for the bulk action, not a message per case piling up
    assert desktop.locator("#flash .flash").count() == 1
    summary = translate("zh", "review.bulk_done", ok=3, failed=0)
    assert desktop.locator("#flash .flash.ok").inner_text() == summary


def test_filters_narrow_the_queue(console: ConsoleWorld, desktop: Any) -> None:
    garbage_1 = console.report(violation_type="exposed_garbage", camera="cam-1")
    parking_1 = console.report(violation_type="illegal_parking", camera="cam-1")
    garbage_2 = console.report(place=SECOND_PLACE, violation_type="exposed_garbage", camera="cam-2")
    login(desktop, console, "guest")  # a viewer sees the queue read-only
    assert desktop.locator("#read-only").is_visible()
    assert desktop.locator(".case-card button.confirm").count() == 0
    # Camera and place are type-ahead fields: typing fills their <datalist> with the matching ones.
    desktop.fill("#filter-camera", "cam")
    options = desktop.locator("#camera-suggestions option")
    expect(options).to_have_count(2)
    assert [options.nth(i).get_attribute("value") for i in range(2)] == ["cam-1", "cam-2"]
    desktop.fill("#filter-camera", "cam-2")
    expect(options).to_have_count(1)
    desktop.click("#filter-apply")
    desktop.wait_for_url("**camera=cam-2**")
    assert _queue_ids(desktop) == [garbage_2]
    desktop.click("#filter-clear")
    desktop.select_option("#filter-violation", "0102")
    desktop.fill("#filter-place", "110101001001001")
    desktop.click("#filter-apply")
    assert _queue_ids(desktop) == [garbage_1]
    desktop.click("#filter-clear")
    assert _queue_ids(desktop) == [garbage_2, parking_1, garbage_1]
    # A time range that ends before today holds nothing; one that includes today holds everything.
    desktop.fill("#filter-to", "2020-01-01")
    desktop.click("#filter-apply")
    assert _queue_ids(desktop) == []
    assert desktop.locator("#queue-empty").is_visible()
    desktop.fill("#filter-to", "")
    desktop.fill("#filter-from", "2020-01-01")
    desktop.click("#filter-apply")
    assert len(_queue_ids(desktop)) == 3


def test_pages_follow_the_keyset_cursor(console: ConsoleWorld, desktop: Any) -> None:
    ids = [console.report(place=f"grid-{i:03d}", with_image=False) for i in range(27)]  # page size 25
    login(desktop, console, "li")
    first_page = _queue_ids(desktop)
    assert first_page == ids[::-1][:25]
    desktop.click("#next-page")
    assert _queue_ids(desktop) == ids[::-1][25:]
    assert desktop.locator("#next-page").count() == 0
    desktop.click("#first-page")
    assert _queue_ids(desktop) == first_page


def test_language_switch_shows_english_then_chinese(console: ConsoleWorld, desktop: Any) -> None:
    console.report()
    login(desktop, console, "li")
    assert desktop.locator("h1").first.inner_text().startswith("审核队列")
    assert desktop.locator("html").get_attribute("lang") == "zh-CN"
    desktop.click("#lang-en")
    desktop.wait_for_url("**/console/review")
    assert desktop.locator("h1").first.inner_text().startswith("Review queue")
    assert desktop.locator("html").get_attribute("lang") == "en"
    assert "Confirm" in desktop.locator(".case-card button.confirm").inner_text()
    assert "exposed garbage" in desktop.locator(".case-card .violation").inner_text()
    desktop.click("a[href='/console/board']")  # the choice sticks across pages (a cookie)
    assert desktop.locator("h1").first.inner_text() == "Unit board"
    desktop.click("#lang-zh")
    assert desktop.locator("h1").first.inner_text() == "处置看板"
    assert "李值班" in desktop.locator("#whoami").inner_text()
