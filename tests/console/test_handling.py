"""Issue 13 items 8, 9 and 11 in a real browser, in Chinese and English: the handling rules as a unit
meets them (start first, a photo to resolve, the refusal in the user's language), the case page's buttons
in workflow order and coloured by consequence, the board's sections with live countdowns, the review
queue's single flash message and its "queue empty" state, the favicon, and the dashboards' indicators with
a trend chart that fills its card. Screenshots at 1366x768 and 390x844, without horizontal overflow."""

from __future__ import annotations

import datetime as dt
from typing import Any

import httpx
import pytest
from sqlalchemy import select

from api.console.i18n import translate
from api.models import Case, CaseStatus, ViolationType
from tests.console.conftest import ConsoleWorld, assert_fits_phone, evidence_jpeg, login, screenshot

LANGS = ["zh", "en"]


def use_lang(page: Any, console: ConsoleWorld, lang: str) -> None:
    """Switch the console's language the way a user does (the link in the top bar)."""
    if lang == "en":
        page.click("#lang-en")
        page.locator("#lang-current").wait_for()
    assert page.locator("html").get_attribute("lang") == ("en" if lang == "en" else "zh-CN")


def set_rules(console: ConsoleWorld, code: str, *, photo: bool, start: bool) -> None:
    with console.store.sessions.begin() as session:
        violation = session.scalars(select(ViolationType).where(ViolationType.code == code)).one()
        violation.photo_required_to_resolve = photo
        violation.start_required_before_resolve = start


@pytest.mark.parametrize("lang", LANGS)
def test_a_unit_starts_then_resolves_with_a_photo(
    console: ConsoleWorld, desktop: Any, tmp_path: Any, lang: str
) -> None:
    set_rules(console, "0102", photo=True, start=True)
    case_id = console.report(violation_type="exposed_garbage")
    assert console.store.act(case_id, "file") == CaseStatus.DISPATCHED  # routed to sanitation (wang)
    page = desktop
    login(page, console, "wang")
    use_lang(page, console, lang)
    card = page.locator(f"#case-{case_id}")
    # start is required: no resolve form until the unit has started
    assert card.locator("button.start").is_visible()
    assert card.locator(".resolve-form").count() == 0
    card.locator("button.start").click()
    page.wait_for_url("**/console/board?done=start")

    card = page.locator(f"#case-{case_id}")
    card.locator(".resolve-form summary").click()
    photo_input = card.locator("input[name=photo]")
    assert photo_input.get_attribute("required") is not None  # the browser asks for the photo first
    assert translate(lang, "handling.photo_needed") in card.locator(".resolve-form").inner_text()
    # Without the browser's check (an old browser, a script), the store refuses and says why.
    photo_input.evaluate("el => el.removeAttribute('required')")
    card.locator(".resolve-form button[type=submit]").click()
    error = page.locator("#action-error")
    error.wait_for()
    assert translate(lang, "handling.photo_required_to_resolve") in error.inner_text()
    assert console.store.case(case_id).status == CaseStatus.IN_PROGRESS
    assert page.locator("#rule-photo").inner_text() == translate(lang, "handling.rule_photo")
    assert page.locator("#rule-start").inner_text() == translate(lang, "handling.rule_start")
    screenshot(page, f"handling-refused-{lang}-1366x768")

    photo = tmp_path / "after.jpg"
    photo.write_bytes(evidence_jpeg(7, "after"))
    page.locator("#act-resolve summary").click()
    page.locator("#resolve-photo").set_input_files(str(photo))
    page.click("#submit-resolve")
    page.wait_for_url(f"**/console/cases/{case_id}?done=resolve")
    assert console.store.case(case_id).status == CaseStatus.RESOLVED


def test_a_type_without_rules_resolves_from_the_board_without_a_photo(
    console: ConsoleWorld, desktop: Any
) -> None:
    case_id = console.report(violation_type="exposed_garbage")
    console.store.act(case_id, "file")
    login(desktop, console, "wang")
    card = desktop.locator(f"#case-{case_id}")
    card.locator(".resolve-form summary").click()
    assert card.locator("input[name=photo]").get_attribute("required") is None
    card.locator(".resolve-form button[type=submit]").click()
    desktop.wait_for_url("**/console/board?done=resolve")
    assert console.store.case(case_id).status == CaseStatus.RESOLVED


@pytest.mark.parametrize("lang", LANGS)
def test_case_buttons_follow_the_workflow_and_show_their_consequence(
    console: ConsoleWorld, desktop: Any, phone: Any, lang: str
) -> None:
    # 0501 at a place without an owner has no routing: filing leaves it filed, to dispatch, defer or void
    case_id = console.report(place="grid-unowned", violation_type="street_stall")
    assert console.store.act(case_id, "file") == CaseStatus.FILED
    for page, size in ((desktop, "1366x768"), (phone, "390x844")):
        login(page, console, "admin")
        use_lang(page, console, lang)
        page.goto(f"{console.url}/console/cases/{case_id}")
        forms = page.locator("#actions details.action-form")
        shown = forms.evaluate_all("fs => fs.map(f => [f.id.slice(4), f.dataset.style])")
        expected = [["dispatch", "primary"], ["recode", "neutral"], ["defer", "neutral"], ["void", "danger"]]
        assert shown == expected  # 派遣 first, 作废 last and red
        page.locator("#act-void summary").click()
        assert "danger" in (page.locator("#submit-void").get_attribute("class") or "")
        colour = page.locator("#submit-void").evaluate("b => getComputedStyle(b).backgroundColor")
        assert colour == "rgb(192, 57, 43)"  # --danger
        screenshot(page, f"case-actions-{lang}-{size}")
        if page is phone:
            assert_fits_phone(page)


@pytest.mark.parametrize("lang", LANGS)
def test_board_sections_with_live_countdowns(
    console: ConsoleWorld, desktop: Any, phone: Any, lang: str
) -> None:
    now = dt.datetime.now(dt.UTC)
    ids = {}
    for name, place in (("overdue", "grid-a"), ("due_soon", "grid-b"), ("in_progress", "grid-c")):
        ids[name] = console.report(place=place, violation_type="exposed_garbage")
        console.store.act(ids[name], "file")
    deadlines = {
        "overdue": now - dt.timedelta(minutes=30),
        "due_soon": now + dt.timedelta(minutes=70),
        "in_progress": now + dt.timedelta(days=2),
    }
    with console.store.sessions.begin() as session:
        for name, case_id in ids.items():
            case = session.get_one(Case, case_id)
            case.deadline_at = deadlines[name]
            case.overdue = name == "overdue"
    for page, size in ((desktop, "1366x768"), (phone, "390x844")):
        login(page, console, "zhang")  # the dispatcher's overview
        page.goto(console.url + "/console/board")
        use_lang(page, console, lang)
        for name, case_id in ids.items():
            section = page.locator(f"#section-{name}")
            assert translate(lang, f"board.section_{name}") in section.locator("h2").inner_text()
            row = section.locator(f"tr[data-case-id='{case_id}']")
            countdown = row.locator(".countdown")
            assert countdown.inner_text().strip(), name  # filled in by the page's script
            assert ("over" in (countdown.get_attribute("class") or "")) == (name == "overdue")
        screenshot(page, f"board-sections-{lang}-{size}")
        if page is phone:
            assert_fits_phone(page)
    # the unit sees the same sections on its own board
    login(desktop, console, "wang")
    assert desktop.locator(f"#section-overdue ~ #case-{ids['overdue']}").count() == 1
    assert desktop.locator(f"#case-{ids['due_soon']} .countdown").inner_text().strip()


@pytest.mark.parametrize("lang", LANGS)
def test_review_flash_replaces_and_the_queue_says_when_it_is_empty(
    console: ConsoleWorld, desktop: Any, phone: Any, lang: str
) -> None:
    for violation in ("exposed_garbage", "illegal_parking", "street_stall"):
        console.report(violation_type=violation)
    console.report(place="grid-unowned", violation_type="street_stall")
    page = desktop
    login(page, console, "li")
    use_lang(page, console, lang)
    first = page.locator(".case-card").first.get_attribute("data-case-id")
    page.keyboard.press("c")
    page.locator(f"#case-{first}").wait_for(state="detached")
    assert page.locator("#flash .flash").count() == 1
    second = page.locator(".case-card").first.get_attribute("data-case-id")
    page.keyboard.press("c")
    page.locator(f"#case-{second}").wait_for(state="detached")
    assert page.locator("#flash .flash").count() == 1  # replaced, not piled up
    assert f"#{second}" in page.locator("#flash .flash").inner_text()
    # the last two in bulk: one summary, then the empty state
    page.click("#select-all")
    page.click("#bulk-confirm")
    empty = page.locator("#queue-empty")
    empty.wait_for()
    assert empty.inner_text() == translate(lang, "review.empty")
    assert page.locator("#flash .flash").count() == 1
    assert page.locator("#flash .flash").inner_text() == translate(lang, "review.bulk_done", ok=2, failed=0)
    screenshot(page, f"review-empty-{lang}-1366x768")
    login(phone, console, "li")
    use_lang(phone, console, lang)
    assert phone.locator("#queue-empty").inner_text() == translate(lang, "review.empty")
    screenshot(phone, f"review-empty-{lang}-390x844")
    assert_fits_phone(phone)


def test_every_page_links_a_favicon_that_is_served(console: ConsoleWorld, desktop: Any) -> None:
    desktop.goto(console.url + "/console/login")
    href = desktop.locator("link[rel=icon]").get_attribute("href")
    response = httpx.get(console.url + href, timeout=10)
    assert response.status_code == 200 and response.headers["content-type"].startswith("image/svg+xml")
    assert b"<svg" in response.content


@pytest.mark.parametrize("lang", LANGS)
def test_dashboards_show_every_indicator_and_the_chart_fills_its_card(
    console: ConsoleWorld, desktop: Any, phone: Any, lang: str
) -> None:
    closed = console.report(violation_type="exposed_garbage")
    console.store.resolve(closed)
    for action in ("verify", "close"):
        console.store.act(closed, action)
    console.store.act(console.report(violation_type="illegal_parking"), "file")  # dispatched to traffic
    with httpx.Client(base_url=console.url, timeout=10) as client:  # the figures the API computes
        token = client.post("/api/v1/auth/login", json={"username": "li", "password": "correct-horse"})
        headers = {"Authorization": f"Bearer {token.json()['access_token']}"}
        totals = client.get("/api/v1/stats/report", params={"period": "monthly"}, headers=headers).json()[
            "totals"
        ]
    for page, size in ((desktop, "1366x768"), (phone, "390x844")):
        login(page, console, "li")
        use_lang(page, console, lang)
        for path in ("/console/dashboards", "/console/dashboards/report"):
            page.goto(console.url + path)
            for key, element in (
                ("dash.on_time_closure", "#total-on-time"),
                ("dash.on_time_handling", "#total-on-time-handling"),
                ("dash.accurate_filing", "#total-accurate-filing"),
                ("dash.accurate_dispatch", "#total-accurate-dispatch"),
                ("dash.mean_dispatch", "#total-mean-dispatch"),
                ("dash.mean_close", "#total-mean-close"),
                ("dash.voided_after_filing", "#total-voided-after-filing"),
                ("dash.voided", "#total-voided"),
            ):
                label = page.locator(element).locator("xpath=../dt").inner_text()
                assert label == translate(lang, key), element
            assert (
                page.locator("#total-accurate-filing").inner_text()
                == f"{totals['accurate_filing_rate'] * 100:.1f}%"
            )
            assert page.locator("#total-closed").inner_text() == str(totals["closed"])
            hours = totals["mean_hours_to_close"]
            assert page.locator("#total-mean-close").inner_text() == translate(
                lang, "dash.hours_value", hours=f"{hours:.1f}"
            )
            chart = page.locator("#trend-chart").bounding_box()
            card = page.locator("#trend-chart").locator("xpath=..").bounding_box()
            assert chart["width"] >= 0.95 * (card["width"] - 34), (path, size)  # less the card's padding
            name = "dashboards" if path.endswith("dashboards") else "monthly-report"
            screenshot(page, f"{name}-indicators-{lang}-{size}")
            if page is phone:
                assert_fits_phone(page)
