"""Re-coding in a real browser: in the review queue a number key re-codes the current case (the legend
shows which key is which type) and, re-coded to 0102, confirming it routes it to sanitation; a re-code
into a place that has an open case of the new code merges into it; the case page has a re-code form."""

from __future__ import annotations

from typing import Any

from sqlalchemy import select

from api.models import AuditEvent, Case, Unit
from tests.console.conftest import ConsoleWorld, login


def _case(console: ConsoleWorld, case_id: int) -> Case:
    with console.store.sessions() as session:
        return session.get_one(Case, case_id)


def _recode_event(console: ConsoleWorld, case_id: int) -> AuditEvent:
    with console.store.sessions() as session:
        return session.scalars(
            select(AuditEvent).where(AuditEvent.case_id == case_id, AuditEvent.action == "recode")
        ).one()


def test_number_key_recodes_then_confirm_routes_to_sanitation(console: ConsoleWorld, desktop: Any) -> None:
    case_id = console.report(violation_type="unknown_object")
    assert _case(console, case_id).violation_code == "9901"
    login(desktop, console, "li")
    legend = desktop.locator("#recode-legend")
    assert legend.locator('.recode-key[data-key="1"]').get_attribute("data-code") == "0102"
    assert legend.locator('.recode-key[data-code="9901"]').count() == 0  # the type being left has no key
    card = desktop.locator(f"#case-{case_id}")
    assert card.get_attribute("data-violation-code") == "9901"

    desktop.keyboard.press("c")  # still to classify: confirming is refused with the reason
    desktop.locator("#flash .flash.error").wait_for()
    assert "请先改判类型再立案" in desktop.locator("#flash .flash.error").first.inner_text()

    desktop.keyboard.press("1")
    desktop.wait_for_selector(f'#case-{case_id}[data-violation-code="0102"]')
    assert "暴露垃圾" in card.locator(".violation").inner_text()
    event = _recode_event(console, case_id)
    assert event.actor == "user:li" and event.data is not None
    assert (event.data["from"], event.data["to"], event.data["unit"]) == ("9901", "0102", "sanitation")

    desktop.keyboard.press("c")
    card.wait_for(state="detached")
    case = _case(console, case_id)
    with console.store.sessions() as session:
        unit = session.get_one(Unit, case.unit_id) if case.unit_id else None
    assert (case.status, unit.code if unit else None) == ("dispatched", "sanitation")


def test_number_key_recode_into_an_open_case_merges_and_leaves_the_queue(
    console: ConsoleWorld, desktop: Any
) -> None:
    garbage = console.report(violation_type="exposed_garbage")
    pile = console.report(violation_type="unknown_object")
    login(desktop, console, "li")
    desktop.click("#lang-en")
    desktop.wait_for_selector("html[lang=en]")
    assert desktop.locator(".case-card.current").get_attribute("data-case-id") == str(pile)
    desktop.keyboard.press("1")
    desktop.locator(f"#case-{pile}").wait_for(state="detached")
    flash = desktop.locator("#flash .flash.ok").first.inner_text()
    assert f"merged into the open case #{garbage}" in flash, flash
    assert desktop.locator("#queue-count").get_attribute("data-count") == "1"
    assert (_case(console, pile).status, _case(console, garbage).sighting_count) == ("voided", 2)


def test_case_page_recode_form(console: ConsoleWorld, desktop: Any) -> None:
    case_id = console.report(violation_type="unknown_object")
    login(desktop, console, "li")
    desktop.goto(f"{console.url}/console/cases/{case_id}")
    assert desktop.locator("#act-file").count() == 0  # filing waits for the re-code
    desktop.locator("#act-recode summary").click()
    options = desktop.locator("#recode-code option").evaluate_all("os => os.map(o => o.value)")
    assert options == ["0102", "0501", "0504", "0505", "0506"]
    desktop.select_option("#recode-code", "0504")
    desktop.locator("#act-recode textarea[name=note]").fill("goods put out in front of the shop")
    desktop.click("#submit-recode")
    desktop.wait_for_selector("#action-done")
    assert "店外经营" in desktop.locator("#case-title").inner_text()
    assert "9901 → 0504" in desktop.locator('#timeline .event[data-action="recode"]').inner_text()
    assert _case(console, case_id).violation_code == "0504"
    assert desktop.locator("#act-file").count() == 1  # now it can be filed


def test_queue_recode_needs_the_csrf_token_and_names_a_bad_code(console: ConsoleWorld) -> None:
    from tests.console.test_csrf import _logged_in

    case_id = console.report(violation_type="unknown_object")
    with _logged_in(console) as (client, token):
        form = {"case_id": str(case_id), "violation_code": "0102"}
        assert client.post("/console/review/recode", data=form).status_code == 403
        refused = client.post(
            "/console/review/recode", data={**form, "violation_code": "0999", "csrf_token": token}
        )
        assert refused.status_code == 422 and "问题类型 0999 不存在或已停用" in refused.json()["detail"]
    assert _case(console, case_id).violation_code == "9901"
