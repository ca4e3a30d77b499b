"""Every console page of this area at 1366x768 and at phone width (390x844): screenshots as artifacts,
no horizontal overflow on the phone, and the elements people use are visible."""

from __future__ import annotations

from typing import Any

import pytest

from api.models import Case
from tests.console.conftest import ConsoleWorld, assert_fits_phone, login, screenshot

# (name, user, path template, elements that must be visible); {case} is a dispatched case's id.
PAGES = [
    ("login", None, "/console/login", ["#username", "#password", "#login-submit", "#lang-en"]),
    (
        "review-queue",
        "li",
        "/console/review",
        ["#filters", ".case-card.current img", "#bulk-confirm", "#logout"],
    ),
    (
        "case",
        "li",
        "/console/cases/{case}",
        ["#case-title", "#evidence-before img", "#timeline", "#countdown"],
    ),
    (
        "board-overview",
        "zhang",
        "/console/board",
        ["#unit-loads", "#handling-overdue tr.overdue", "#to-dispatch"],
    ),
    (
        "board-unit",
        "wang",
        "/console/board",
        ["#unit-queue .case-card", ".resolve-form summary", "button.start"],
    ),
    ("not-found", "wang", "/console/cases/999999", ["#error-page"]),
]


@pytest.fixture
def seeded(console: ConsoleWorld) -> dict[str, int]:
    """Cases in several states: pending ones in the queue, a dispatched one of which is overdue."""
    for violation in ("exposed_garbage", "illegal_parking"):
        console.report(violation_type=violation)
    dispatched = console.report(place="110101001001002", violation_type="exposed_garbage")
    console.store.act(dispatched, "file")
    overdue = console.report(place="grid-overdue", violation_type="exposed_garbage", camera="cam-2")
    console.store.act(overdue, "file")  # a new place without owner: the 0102 rule routes it
    with console.store.sessions.begin() as session:
        session.get_one(Case, overdue).overdue = True
    return {"case": dispatched}


@pytest.mark.parametrize("viewport", ["desktop", "phone"])
@pytest.mark.parametrize(("name", "user", "path", "visible"), PAGES, ids=[p[0] for p in PAGES])
def test_page_looks_right(
    request: pytest.FixtureRequest,
    console: ConsoleWorld,
    seeded: dict[str, int],
    viewport: str,
    name: str,
    user: str | None,
    path: str,
    visible: list[str],
) -> None:
    page: Any = request.getfixturevalue(viewport)
    if user:
        login(page, console, user)
    page.goto(console.url + path.format(**seeded))
    page.wait_for_load_state("load")
    for selector in visible:
        assert page.locator(selector).first.is_visible(), f"{name}: {selector} not visible"
    size = page.viewport_size
    screenshot(page, f"{name}-{size['width']}x{size['height']}")
    if viewport == "phone":
        assert_fits_phone(page)
