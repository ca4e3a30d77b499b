"""The console works under its Content-Security-Policy: no page trips it (no inline script, handler or
style), and what used to be inline still happens (bar widths, the zone stage's aspect, printing)."""

from __future__ import annotations

from typing import Any

import pytest

from api.security_headers import CONTENT_SECURITY_POLICY
from tests.console.conftest import ConsoleWorld, login

pytestmark = pytest.mark.security

# Collects every violation the browser reports, from before the page's first script runs.
LISTEN = """
window.__cspViolations = [];
document.addEventListener("securitypolicyviolation", (event) => {
  const where = `${event.sourceFile}:${event.lineNumber}`;
  window.__cspViolations.push(`${event.violatedDirective} ${event.blockedURI} ${where}`);
});
"""
PAGES = [
    "/console/review",
    "/console/board",
    "/console/cases/{case_id}",
    "/console/cameras",
    "/console/cameras/cam-1/zones",
    "/console/cameras/cam-1/suppressions",
    "/console/dashboards",
    "/console/dashboards/report",
    "/console/search",
    "/console/map",
]


def _watch(page: Any) -> list[str]:
    """Console messages about the policy (Chromium logs each refusal), plus the events' reports."""
    messages: list[str] = []
    page.add_init_script(LISTEN)
    page.on(
        "console",
        lambda message: messages.append(message.text) if "Content Security Policy" in message.text else None,
    )
    return messages


def _violations(page: Any, messages: list[str]) -> list[str]:
    page.wait_for_load_state("load")
    reported: list[str] = page.evaluate("window.__cspViolations || []")
    return messages + reported


def test_no_console_page_violates_the_policy(console: ConsoleWorld, desktop: Any) -> None:
    case_id = console.report()
    console.store.act(case_id, "file")  # dispatched by the routing rule: the unit figures have a row
    messages = _watch(desktop)
    desktop.goto(f"{console.url}/console/login")
    assert _violations(desktop, messages) == [], "login page"
    login(desktop, console, "admin")

    for path in PAGES:
        url = console.url + path.format(case_id=case_id)
        response = desktop.goto(url)
        assert response is not None and response.status == 200, (path, response and response.status)
        assert response.headers["content-security-policy"] == CONTENT_SECURITY_POLICY
        assert _violations(desktop, messages) == [], path


def test_the_policy_is_enforced_so_the_watch_can_fail(console: ConsoleWorld, desktop: Any) -> None:
    messages = _watch(desktop)
    desktop.goto(f"{console.url}/console/login")

    desktop.evaluate(
        """() => { const s = document.createElement("script"); s.textContent = "window.ran = 1";
                   document.body.append(s); }"""
    )

    assert desktop.evaluate("window.ran") is None
    assert any("script-src" in violation for violation in _violations(desktop, messages))


def test_sizes_from_data_attributes_are_applied(console: ConsoleWorld, desktop: Any) -> None:
    case_id = console.report()
    console.store.act(case_id, "file")
    login(desktop, console, "admin")

    desktop.goto(f"{console.url}/console/dashboards")
    bar = desktop.locator("#by-violation .hbar").first
    assert bar.evaluate("el => el.style.width") == f"{float(bar.get_attribute('data-width')):g}%"
    assert bar.evaluate("el => el.getBoundingClientRect().width") > 0
    fill = desktop.locator("#by-unit .rate-bar").first
    assert fill.evaluate("el => el.style.getPropertyValue('--w')").endswith("%")

    desktop.goto(f"{console.url}/console/cameras/cam-1/zones")
    stage = desktop.locator("#stage")
    assert stage.evaluate("el => el.style.aspectRatio") == stage.get_attribute("data-aspect")


def test_the_print_button_prints_without_an_inline_handler(console: ConsoleWorld, desktop: Any) -> None:
    login(desktop, console, "admin")
    desktop.goto(f"{console.url}/console/dashboards/report")
    desktop.evaluate("() => { window.printed = 0; window.print = () => { window.printed += 1; }; }")

    desktop.click("#print-button")

    assert desktop.evaluate("window.printed") == 1
    assert desktop.locator("#print-button").get_attribute("onclick") is None
