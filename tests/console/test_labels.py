"""Drawing missed objects on a case's evidence image in a real browser: a shift leader opens the drawing
page from the case page, draws a box with the mouse and saves it; on a phone a dispatcher draws one with a
finger (touch pointer events) — both boxes are then found through the JSON API, normalised to the image,
with their type and author. The page works under the console's CSP (the fixture fails on any JavaScript
error), is in Chinese and English, and a viewer sees the boxes but no drawing form; the author deletes."""

from __future__ import annotations

from typing import Any

import httpx
from sqlalchemy import select

from api.models import AuditEvent
from tests.console.conftest import PASSWORD, ConsoleWorld, assert_fits_phone, evidence_jpeg, login


def _api_labels(console: ConsoleWorld, case_id: int) -> list[dict[str, Any]]:
    with httpx.Client(base_url=console.url, timeout=10) as client:
        token = client.post("/api/v1/auth/login", json={"username": "admin", "password": PASSWORD}).json()[
            "access_token"
        ]
        response = client.get(f"/api/v1/cases/{case_id}/labels", headers={"Authorization": f"Bearer {token}"})
        response.raise_for_status()
        labels: list[dict[str, Any]] = response.json()
        return labels


def _stage_box(page: Any) -> dict[str, float]:
    box: dict[str, float] = page.locator("#label-canvas").bounding_box()
    return box


def test_a_box_drawn_with_the_mouse_is_a_label(console: ConsoleWorld, desktop: Any) -> None:
    case_id = console.report(violation_type="exposed_garbage")
    login(desktop, console, "li")
    desktop.goto(f"{console.url}/console/cases/{case_id}")
    desktop.locator(".label-link").first.click()
    desktop.wait_for_selector("#label-stage")
    assert "标注漏检目标" in desktop.locator("#labels-title").inner_text()
    desktop.locator("#label-image").evaluate("img => img.complete || new Promise(r => img.onload = r)")
    stage = _stage_box(desktop)
    x0, y0 = stage["x"] + stage["width"] * 0.20, stage["y"] + stage["height"] * 0.30
    x1, y1 = stage["x"] + stage["width"] * 0.60, stage["y"] + stage["height"] * 0.70
    desktop.mouse.move(x0, y0)
    desktop.mouse.down()
    desktop.mouse.move((x0 + x1) / 2, (y0 + y1) / 2, steps=4)
    desktop.mouse.move(x1, y1, steps=4)
    desktop.mouse.up()
    assert float(desktop.locator("#label-new").get_attribute("width") or 0) > 350  # drawn on screen
    desktop.select_option("#label-code", "0102")
    desktop.click("#label-save")
    desktop.wait_for_selector("#label-done")
    assert desktop.locator("rect.drawn-box").count() == 1

    (label,) = _api_labels(console, case_id)
    assert label["event_code"] == "0102" and label["created_by"] == "user:li"
    for got, want in zip(label["box"], [0.20, 0.30, 0.60, 0.70], strict=True):
        assert abs(got - want) < 0.01, label["box"]
    with console.store.sessions() as session:
        actions = session.scalars(select(AuditEvent.action).where(AuditEvent.case_id == case_id)).all()
    assert "label_added" in actions
    desktop.click("#labels-back")  # the case's timeline shows who drew it
    event = desktop.locator('li.event[data-action="label_added"]')
    assert "标注漏检目标" in event.first.inner_text()
    desktop.goto(f"{console.url}/console/cases/{case_id}/labels")

    # English, then the author deletes the box
    desktop.click("#lang-en")
    desktop.wait_for_selector("html[lang=en]")
    assert "Draw missed objects" in desktop.locator("#labels-title").inner_text()
    desktop.locator("#label-list button[type=submit]").click()
    desktop.wait_for_selector("#label-done")
    assert "Box deleted" in desktop.locator("#label-done").inner_text()
    assert _api_labels(console, case_id) == []


def test_a_box_drawn_with_a_finger_is_a_label(console: ConsoleWorld, phone: Any) -> None:
    case_id = console.report(violation_type="exposed_garbage")
    # the daemon's undrawn frame of the confirmation: the page offers it first (training reads it)
    frame_id = console.add_evidence(case_id, "frame", evidence_jpeg(99, ""))
    login(phone, console, "zhang")
    phone.goto(f"{console.url}/console/cases/{case_id}/labels")
    phone.locator("#label-image").evaluate("img => img.complete || new Promise(r => img.onload = r)")
    assert_fits_phone(phone)
    phone.locator("#label-canvas").scroll_into_view_if_needed()
    stage = _stage_box(phone)
    points = [(0.55, 0.15), (0.70, 0.30), (0.90, 0.45)]
    # a finger: touch pointer events, as a phone's browser sends them
    phone.locator("#label-canvas").evaluate(
        """(svg, [points, rect]) => {
            const at = ([fx, fy]) =>
                ({clientX: rect.x + rect.width * fx, clientY: rect.y + rect.height * fy});
            const send = (type, p) => svg.dispatchEvent(new PointerEvent(type, {
                pointerId: 7, pointerType: "touch", isPrimary: true, bubbles: true, cancelable: true,
                button: type === "pointermove" ? -1 : 0, ...at(p)}));
            send("pointerdown", points[0]);
            send("pointermove", points[1]);
            send("pointermove", points[2]);
            send("pointerup", points[2]);
        }""",
        [points, {"x": stage["x"], "y": stage["y"], "width": stage["width"], "height": stage["height"]}],
    )
    assert phone.locator("#label-stage").get_attribute("data-drawn") == "1"
    phone.select_option("#label-code", "0501")
    phone.click("#label-save")
    phone.wait_for_selector("#label-done")

    (label,) = _api_labels(console, case_id)
    assert label["event_code"] == "0501" and label["created_by"] == "user:zhang"
    assert label["evidence_id"] == frame_id
    for got, want in zip(label["box"], [0.55, 0.15, 0.90, 0.45], strict=True):
        assert abs(got - want) < 0.01, label["box"]


def test_a_viewer_sees_boxes_but_cannot_draw(console: ConsoleWorld, desktop: Any) -> None:
    case_id = console.report(violation_type="exposed_garbage")
    login(desktop, console, "guest")
    desktop.goto(f"{console.url}/console/cases/{case_id}")
    assert desktop.locator(".label-link").count() == 0
    desktop.goto(f"{console.url}/console/cases/{case_id}/labels")
    desktop.wait_for_selector("#label-stage")
    assert desktop.locator("#label-form").count() == 0
    assert "只有值班长、派遣员和管理员可以标注" in desktop.inner_text("body")
