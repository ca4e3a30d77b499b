"""Static change end to end, from the camera to the unit that cleans up: real footage with a real garbage
photo composited on the lawn (tests/pipeline/static_scenes.py), the REAL daemon (yolov8n for the people,
static change for the pile) reporting to a live case store, and a shift leader in a real browser who
re-codes the ``unknown_object`` case (9901, still to classify) to 0102 exposed garbage with a number key
and files it: the place's routing rule sends it to the sanitation unit."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import select

from api.models import AuditEvent, RoutingRule, Unit
from datasets.composite import ClipFiles
from tests.console.conftest import ConsoleWorld, login, screenshot
from tests.pipeline.static_scenes import (
    EdgeBox,
    assert_pile_case,
    bags_clip,  # noqa: F401 (a fixture)
)

pytestmark = pytest.mark.e2e


def test_a_pile_found_by_static_change_is_recoded_to_garbage_and_routed_to_sanitation(
    tmp_path: Path,
    console: ConsoleWorld,
    desktop: Any,
    yolov8_int8: Path,
    bags_clip: ClipFiles,  # noqa: F811
) -> None:
    store, world = console.store, console.store.world
    with store.sessions.begin() as session:  # exposed garbage on this place is sanitation's
        session.add(
            RoutingRule(
                place_id=world.place_id, violation_code="0102", unit_id=world.sanitation_id, priority=1
            )
        )
    before = store.case_count()
    EdgeBox(tmp_path / "edge", store, yolov8_int8, register=True).run(bags_clip.video)

    assert store.case_count() == before + 1
    case_id = before + 1
    assert_pile_case(store, case_id, bags_clip)
    kinds = sorted(kind for kind, _ in store.evidence(case_id))
    assert kinds == ["confirmation", "crop", "first_seen", "frame"]

    login(desktop, console, "li")
    card = desktop.locator(f"#case-{case_id}")
    assert card.get_attribute("data-violation-code") == "9901"
    picture = card.locator("img")  # the daemon's confirmation picture, served by the store
    picture.wait_for()
    assert picture.evaluate("img => img.complete && img.naturalWidth") > 0
    legend = desktop.locator("#recode-legend")
    assert legend.locator('.recode-key[data-key="1"]').get_attribute("data-code") == "0102"
    screenshot(desktop, "static-change-e2e-queue")

    desktop.keyboard.press("1")  # re-code to 0102 exposed garbage
    desktop.wait_for_selector(f'#case-{case_id}[data-violation-code="0102"]')
    desktop.keyboard.press("c")  # and file it
    card.wait_for(state="detached")

    case = store.case(case_id)
    with store.sessions() as session:
        unit = session.get_one(Unit, case.unit_id) if case.unit_id is not None else None
        recode = session.scalars(
            select(AuditEvent).where(AuditEvent.case_id == case_id, AuditEvent.action == "recode")
        ).one()
    assert (case.violation_code, case.status) == ("0102", "dispatched")
    assert unit is not None and unit.code == "sanitation"
    assert recode.actor == "user:li" and recode.data is not None
    assert (recode.data["from"], recode.data["to"], recode.data["unit"]) == ("9901", "0102", "sanitation")
