"""Permissions in the browser: the console enforces the API's visibility and role rules."""

from __future__ import annotations

from typing import Any

from tests.console.conftest import ConsoleWorld, login


def _file(console: ConsoleWorld, case_id: int) -> None:
    console.store.act(case_id, "file")  # routing dispatches it (0102 sanitation, 0505 traffic)


def test_unit_handler_cannot_open_another_units_case(console: ConsoleWorld, desktop: Any) -> None:
    garbage = console.report(violation_type="exposed_garbage")
    parking = console.report(violation_type="illegal_parking")
    _file(console, garbage)
    _file(console, parking)
    login(desktop, console, "wang")  # sanitation
    response = desktop.goto(f"{console.url}/console/cases/{garbage}")
    assert response.status == 200
    assert desktop.locator("#act-start").is_visible()
    response = desktop.goto(f"{console.url}/console/cases/{parking}")  # traffic's case
    assert response.status == 404
    assert desktop.locator("#error-page").is_visible()
    assert desktop.locator("#case-title").count() == 0
    # Nor through the API with the same cookie.
    response = desktop.goto(f"{console.url}/api/v1/cases/{parking}")
    assert response.status == 404
    # The board lists only their own unit's cases.
    desktop.goto(f"{console.url}/console/board")
    assert desktop.locator(f"#case-{garbage}").is_visible()
    assert desktop.locator(f"#case-{parking}").count() == 0
    # Nor by posting the action form by hand.
    status = desktop.evaluate(
        """async (id) => {
            const body = new FormData();
            body.append("csrf_token", document.querySelector('meta[name="csrf-token"]').content);
            body.append("action", "start");
            const r = await fetch(`/console/cases/${id}/act`, {method: "POST", body});
            return r.status;
        }""",
        parking,
    )
    assert status == 404
    assert console.store.case(parking).status == "dispatched"
    # The review queue is not theirs.
    response = desktop.goto(f"{console.url}/console/review")
    assert response.status == 403
    # Nor its camera and place type-ahead.
    assert desktop.request.get(f"{console.url}/console/review/suggest?field=camera&q=cam").status == 403


def test_pages_need_a_login(console: ConsoleWorld, desktop: Any) -> None:
    case_id = console.report()
    desktop.goto(f"{console.url}/console/cases/{case_id}")
    desktop.wait_for_url(f"**/console/login?next=/console/cases/{case_id}")
    desktop.fill("#username", "li")
    desktop.fill("#password", "wrong-password")
    desktop.click("#login-submit")
    assert desktop.locator("#login-error").is_visible()
    desktop.fill("#password", "correct-horse")
    desktop.click("#login-submit")
    desktop.wait_for_url(f"**/console/cases/{case_id}")  # back where they wanted to go
    assert desktop.locator("#act-file").is_visible()


def test_only_the_allowed_actions_are_offered(console: ConsoleWorld, desktop: Any) -> None:
    case_id = console.report(violation_type="exposed_garbage")
    _file(console, case_id)  # dispatched to sanitation
    offered = {
        "zhang": ["reassign", "defer"],  # the dispatcher
        "li": [],  # the shift leader: nothing until it is resolved
        "wang": ["start", "resolve", "request_extension", "return"],  # workflow order, going back last
        "guest": [],
    }
    for username, actions in offered.items():
        login(desktop, console, username)
        desktop.goto(f"{console.url}/console/cases/{case_id}")
        shown = desktop.locator("#actions details").evaluate_all("ds => ds.map(d => d.id.slice(4))")
        assert shown == actions, username
        desktop.click("#logout")
        desktop.wait_for_url("**/console/login")
