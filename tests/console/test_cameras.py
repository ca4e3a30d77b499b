"""Cameras and zones in the browser: health on the camera list (stale highlighted), the zone editor drawing
with real mouse clicks on the camera's latest frame, field-named errors, and who may open it. The key test:
a zone drawn in the editor reaches a daemon running on vtest.avi and makes it report a case."""

from __future__ import annotations

import datetime as dt
import json
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from sqlalchemy import select

from api.models import Camera, Case, Zone
from pipeline.cli import check_config
from pipeline.daemon import Daemon
from tests.console.conftest import ConsoleWorld, assert_fits_phone, login, screenshot
from tests.pipeline.test_daemon_e2e import VAN_ZONE, WALKWAY_PLACE, WALKWAY_ZONE, wait_for

VAN_PLACE = "110101001001001"  # make_world's place: the van parks there


def upload_snapshot(console: ConsoleWorld, camera: str, data: bytes) -> None:
    with httpx.Client(base_url=console.url, headers={"X-Device-Key": console.device_key}) as client:
        response = client.put(
            f"/api/v1/devices/me/cameras/{camera}/snapshot", files={"file": ("f.jpg", data, "image/jpeg")}
        )
        response.raise_for_status()


def set_health(console: ConsoleWorld, camera: str, state: str, reported_ago: dt.timedelta) -> None:
    now = dt.datetime.now(dt.UTC)
    with console.store.sessions.begin() as session:
        row = session.scalars(select(Camera).where(Camera.code == camera)).one()
        row.health = {
            "state": state,
            "last_frame_at": (now - reported_ago).isoformat(),
            "fps": 2.0,
            "error": None,
        }
        row.health_at = now - reported_ago


def click_polygon(page: Any, polygon: list[list[float]]) -> None:
    """Click each corner on the editor's canvas (real mouse events), then the first one again to close."""
    page.locator("#canvas").scroll_into_view_if_needed()
    box = page.locator("#canvas").bounding_box()
    for x, y in [*polygon, polygon[0]]:
        page.mouse.click(box["x"] + x * box["width"], box["y"] + y * box["height"])


def flat(polygon: list[list[float]]) -> list[float]:
    return [c for point in polygon for c in point]


def zones_in_store(console: ConsoleWorld, camera: str) -> dict[str, Zone]:
    with console.store.sessions() as session:
        rows = session.scalars(select(Zone).join(Camera).where(Camera.code == camera))
        return {zone.code: zone for zone in rows}


@pytest.fixture
def frames(console: ConsoleWorld, vtest_frames: dict[int, Any]) -> None:
    """cam-1 is up with a fresh frame; cam-2's daemon last reported 10 minutes ago (failed)."""
    import cv2

    ok, encoded = cv2.imencode(".jpg", vtest_frames[0])
    assert ok
    upload_snapshot(console, "cam-1", bytes(encoded.tobytes()))
    set_health(console, "cam-1", "up", dt.timedelta(seconds=20))
    set_health(console, "cam-2", "failed", dt.timedelta(minutes=10))


@pytest.mark.parametrize("viewport", ["desktop", "phone"])
def test_camera_list_shows_health_and_highlights_stale_cameras(
    request: pytest.FixtureRequest, console: ConsoleWorld, frames: None, viewport: str
) -> None:
    page: Any = request.getfixturevalue(viewport)
    login(page, console, "li")
    page.goto(f"{console.url}/console/cameras")
    fresh, stale = page.locator('tr[data-camera="cam-1"]'), page.locator('tr[data-camera="cam-2"]')
    assert "stale" not in (fresh.get_attribute("class") or "")
    assert "stale" in (stale.get_attribute("class") or "")
    assert fresh.locator(".badge.health.up").inner_text() == "在线"
    assert stale.locator(".badge.health.failed").inner_text() == "故障"
    assert stale.locator(".stale-badge").is_visible()
    assert page.evaluate("document.querySelector('tr[data-camera=\"cam-1\"] img').naturalWidth") == 768
    assert fresh.locator(".last-frame time").get_attribute("datetime") is not None
    assert page.locator("#edit-cam-1").is_visible()
    size = page.viewport_size
    screenshot(page, f"cameras-{size['width']}x{size['height']}")
    if viewport == "phone":
        assert_fits_phone(page)


def test_only_config_editors_open_the_zone_editor(console: ConsoleWorld, desktop: Any) -> None:
    login(desktop, console, "wang")  # a unit handler
    for path in ("/console/cameras/cam-1/zones", "/console/cameras"):
        response = desktop.goto(f"{console.url}{path}")
        assert response.status == 403, path
        assert desktop.locator("#error-page").is_visible()
    desktop.context.clear_cookies()
    login(desktop, console, "zhang")  # a dispatcher sees the list, not the editor
    desktop.goto(f"{console.url}/console/cameras")
    assert desktop.locator("#cameras").is_visible() and desktop.locator("#edit-cam-1").count() == 0
    assert desktop.goto(f"{console.url}/console/cameras/cam-1/zones").status == 403
    # The save endpoint refuses too, whatever the page shows.
    token = desktop.locator('meta[name="csrf-token"]').get_attribute("content")
    answer = desktop.evaluate(
        """async (token) => {
            const body = new FormData(); body.append("csrf_token", token);
            const zone = {place: "110101001001001", polygon: [[0, 0], [1, 0], [1, 1]], rules: {}};
            body.append("zone", JSON.stringify(zone));
            const r = await fetch("/console/cameras/cam-1/zones/sneaky", {method: "POST", body});
            return r.status; }""",
        token,
    )
    assert answer == 403
    assert "sneaky" not in zones_in_store(console, "cam-1")


@pytest.mark.parametrize("viewport", ["desktop", "phone"])
def test_editor_draws_edits_and_names_invalid_fields(
    request: pytest.FixtureRequest, console: ConsoleWorld, frames: None, viewport: str
) -> None:
    page: Any = request.getfixturevalue(viewport)
    login(page, console, "li")
    page.goto(f"{console.url}/console/cameras/cam-1/zones")
    assert page.evaluate("document.getElementById('frame').naturalWidth") == 768
    page.fill("#zone-code", "gate")
    click_polygon(page, [[0.1, 0.5], [0.4, 0.5], [0.4, 0.9], [0.1, 0.9]])
    assert page.locator("#current-shape").evaluate("n => n.tagName") == "polygon"  # closed
    page.select_option("#zone-place", VAN_PLACE)
    page.check("#rule-illegal_parking")
    page.fill("#dwell-illegal_parking", "45")
    page.fill("#confidence-illegal_parking", "0.5")
    page.select_option("#zone-anchor", "center")
    page.fill("#schedule-illegal_parking", "someday 07:00-08:30")
    page.click("#save-zone")
    message = page.locator("#zone-message.error")
    message.wait_for()
    assert "生效时段" in message.inner_text() and "someday" in message.inner_text()  # the rule, in zh
    assert "invalid" in (page.locator("#schedule-illegal_parking").get_attribute("class") or "")
    assert zones_in_store(console, "cam-1") == {}

    page.fill("#schedule-illegal_parking", "mon-fri 07:00-08:30")
    page.click("#save-zone")
    page.locator("#zone-message.ok").wait_for()
    gate = zones_in_store(console, "cam-1")["gate"]
    assert flat(gate.polygon) == pytest.approx(
        flat([[0.1, 0.5], [0.4, 0.5], [0.4, 0.9], [0.1, 0.9]]), abs=0.01
    )
    assert gate.rules == {
        "illegal_parking": {
            "dwell_s": 45.0,
            "schedule": [{"days": [1, 2, 3, 4, 5], "start": "07:00", "end": "08:30"}],
            "min_confidence": 0.5,
        }
    }
    assert gate.anchor == "center"  # every rule field the daemon's YAML has, edited in the console
    size = page.viewport_size
    screenshot(page, f"zone-editor-{size['width']}x{size['height']}")
    if viewport == "phone":
        assert_fits_phone(page)

    # Drag the bottom-right corner to the right: the saved polygon follows the mouse.
    page.locator("#canvas").scroll_into_view_if_needed()
    box = page.locator("#canvas").bounding_box()
    page.mouse.move(box["x"] + 0.4 * box["width"], box["y"] + 0.9 * box["height"])
    page.mouse.down()
    page.mouse.move(box["x"] + 0.6 * box["width"], box["y"] + 0.9 * box["height"], steps=5)
    page.mouse.up()
    # The first save's "saved" message is still shown: wait for this save's answer instead.
    with page.expect_response(lambda r: "/zones/" in r.url and r.request.method == "POST"):
        page.click("#save-zone")
    moved = zones_in_store(console, "cam-1")["gate"]
    assert moved.polygon[2] == pytest.approx([0.6, 0.9], abs=0.01)
    assert moved.rules["illegal_parking"]["schedule"][0]["days"] == [1, 2, 3, 4, 5]  # reloaded as text, kept

    page.reload()  # the stored zone comes back in the editor, schedule as text
    # a zh page writes the days in Chinese; the English text the user typed reads back the same
    assert page.input_value("#schedule-illegal_parking") == "周一-周五 07:00-08:30"
    page.once("dialog", lambda dialog: dialog.accept())
    page.click("#delete-zone")
    page.locator("#zone-message.ok").wait_for()
    assert zones_in_store(console, "cam-1") == {}


def test_min_confidence_left_empty_is_the_models_and_a_typed_one_is_kept(
    console: ConsoleWorld, frames: None, desktop: Any
) -> None:
    """An empty min. confidence is stored as null (the daemon takes the model's working confidence), shown
    empty again, not as 0.3; a number typed in is stored as it is."""
    page = desktop
    login(page, console, "li")
    page.goto(f"{console.url}/console/cameras/cam-1/zones")
    page.fill("#zone-code", "kerb")
    click_polygon(page, [[0.1, 0.5], [0.4, 0.5], [0.4, 0.9], [0.1, 0.9]])
    page.select_option("#zone-place", VAN_PLACE)
    page.check("#rule-illegal_parking")
    confidence = page.locator("#confidence-illegal_parking")
    assert confidence.input_value() == ""
    assert confidence.get_attribute("placeholder") == "留空：使用模型的工作阈值"
    page.click("#save-zone")
    page.locator("#zone-message.ok").wait_for()
    assert zones_in_store(console, "cam-1")["kerb"].rules["illegal_parking"]["min_confidence"] is None

    page.reload()
    page.select_option("#zone-select", "kerb")
    assert page.is_checked("#rule-illegal_parking") and confidence.input_value() == ""
    confidence.fill("0.4")
    with page.expect_response(lambda r: "/zones/kerb" in r.url and r.request.method == "POST"):
        page.click("#save-zone")
    assert zones_in_store(console, "cam-1")["kerb"].rules["illegal_parking"]["min_confidence"] == 0.4
    page.reload()
    page.select_option("#zone-select", "kerb")
    assert confidence.input_value() == "0.4"


@pytest.fixture
def daemon_on_cam1(
    console: ConsoleWorld, tmp_path: Path, yolox_card: Path, vtest_path: Path
) -> Iterator[Daemon]:
    """A real daemon for box-1 on vtest.avi as camera cam-1 (paced at real time), with only a walkway zone
    in its YAML (which makes no case), polling the store's zones every second."""
    key_file = tmp_path / "box-1.key"
    key_file.write_text(console.device_key, encoding="utf-8")
    key_file.chmod(0o600)
    document = {
        "detector": {
            "model": str(yolox_card),
            "classes": {"car": "illegal_parking", "truck": "illegal_parking", "bus": "illegal_parking"},
            "batch_size": 4,
        },
        "store": {
            "url": console.url,
            "device_key_file": str(key_file),
            "outbox": str(tmp_path / "outbox.sqlite"),
            "timeout_s": 5,
            "retry_base_s": 0.2,
            "retry_max_s": 1.0,
            "zone_sync_s": 1,
            "snapshot_s": 5,
        },
        "cameras": [
            {
                "id": "cam-1",
                "url": str(vtest_path),
                "sample": {"mode": "fps", "fps": 2},
                "realtime": True,
                "zones": [
                    {
                        "id": "walkway",
                        "place": WALKWAY_PLACE,
                        "polygon": WALKWAY_ZONE,
                        "rules": {"illegal_parking": {"dwell_s": 8}},
                    }
                ],
            }
        ],
        "evidence": {"dir": str(tmp_path / "evidence")},
        "verification": {"enabled": False},
        "metrics": {"port": 0},
    }
    path = tmp_path / "daemon.yaml"
    path.write_text(json.dumps(document), encoding="utf-8")
    daemon = Daemon(check_config(path))
    runner = threading.Thread(target=daemon.run, daemon=True)
    runner.start()
    try:
        yield daemon
    finally:
        daemon.stop()
        runner.join(60)
    assert not runner.is_alive()


@pytest.mark.e2e
def test_a_zone_drawn_in_the_editor_makes_the_running_daemon_report(
    console: ConsoleWorld, daemon_on_cam1: Daemon, desktop: Any
) -> None:
    def cases() -> list[tuple[str | None, str | None]]:
        with console.store.sessions() as session:
            return [(c.camera_code, c.zone_code) for c in session.scalars(select(Case))]

    def snapshot_arrived() -> bool:
        with console.store.sessions() as session:
            return session.scalars(select(Camera.snapshot_at).where(Camera.code == "cam-1")).one() is not None

    wait_for(snapshot_arrived, 60, "the daemon's first frame in the store")
    login(desktop, console, "li")
    desktop.goto(f"{console.url}/console/cameras/cam-1/zones")
    assert desktop.evaluate("document.getElementById('frame').naturalWidth") == 768  # the daemon's frame
    assert cases() == [], "the walkway zone makes no case"

    desktop.fill("#zone-code", "van-road")
    # Around the van parked at the top right; corners clicked just inside the frame's edge snap onto it.
    click_polygon(desktop, [[min(x, 0.995), y] for x, y in VAN_ZONE])
    desktop.select_option("#zone-place", VAN_PLACE)
    desktop.check("#rule-illegal_parking")
    desktop.fill("#dwell-illegal_parking", "8")
    desktop.click("#save-zone")
    desktop.locator("#zone-message.ok").wait_for()
    screenshot(desktop, "zone-editor-drawn-1366x768")
    saved = zones_in_store(console, "cam-1")["van-road"]
    assert flat(saved.polygon) == pytest.approx(flat(VAN_ZONE), abs=0.01)

    wait_for(
        lambda: [z.id for z in daemon_on_cam1.zones("cam-1")] == ["van-road"], 15, "the zone in the daemon"
    )
    wait_for(lambda: cases() == [("cam-1", "van-road")], 45, "the daemon's case for the drawn zone")


def test_static_change_is_saved_reloaded_and_takes_the_frame_as_reference(
    console: ConsoleWorld, frames: None, desktop: Any
) -> None:
    page = desktop
    login(page, console, "li")
    page.goto(f"{console.url}/console/cameras/cam-1/zones")
    page.fill("#zone-code", "pavement")
    click_polygon(page, [[0.05, 0.6], [0.5, 0.6], [0.5, 0.95], [0.05, 0.95]])
    page.select_option("#zone-place", VAN_PLACE)
    assert page.locator("#set-reference").is_hidden()  # a new zone: nothing to set a reference on yet
    page.check("#static-on")
    page.fill("#static-dwell", "90")
    page.select_option("#static-report-as", "exposed_garbage")
    page.fill("#static-min-area", "0.004")
    page.click("#save-zone")
    page.wait_for_selector("#zone-message.ok")
    stored = zones_in_store(console, "cam-1")["pavement"]
    assert stored.static_change == {"dwell_s": 90.0, "report_as": "exposed_garbage", "min_area": 0.004}
    assert stored.rules == {}  # static change alone

    page.reload()
    page.select_option("#zone-select", "pavement")
    assert page.is_checked("#static-on")
    assert page.input_value("#static-dwell") == "90"
    assert page.input_value("#static-report-as") == "exposed_garbage"
    assert page.input_value("#static-min-area") == "0.004"
    assert page.locator("#reference-state").inner_text() == "尚未设定参考图：边缘设备自行学习空路面的样子。"
    page.click("#set-reference")
    page.wait_for_selector("#zone-message.ok")
    assert "参考图设定于" in page.locator("#reference-state").inner_text()
    with console.store.sessions() as session:
        camera = session.scalars(select(Camera).where(Camera.code == "cam-1")).one()
        snapshot_sha256 = camera.snapshot_sha256
    assert zones_in_store(console, "cam-1")["pavement"].reference_sha256 == snapshot_sha256

    # Unchecking static change and saving turns it off.
    page.uncheck("#static-on")
    page.evaluate("document.getElementById('zone-message').hidden = true")  # wait for the save's own message
    page.click("#save-zone")
    page.wait_for_selector("#zone-message.ok")
    assert zones_in_store(console, "cam-1")["pavement"].static_change is None


def test_the_camera_list_shows_zones_still_learning_their_reference(
    console: ConsoleWorld, frames: None, desktop: Any
) -> None:
    with console.store.sessions.begin() as session:
        row = session.scalars(select(Camera).where(Camera.code == "cam-1")).one()
        row.health = {**(row.health or {}), "references": {"pavement": "learning", "lawn": "set"}}
    login(desktop, console, "li")
    desktop.goto(f"{console.url}/console/cameras")
    row = desktop.locator('tr[data-camera="cam-1"]')
    assert row.locator('.reference[data-zone="pavement"]').inner_text() == "pavement: 参考图学习中"
    assert row.locator('.reference[data-zone="lawn"]').inner_text() == "lawn: 参考图已设定"
    assert "路面干净时" in (row.locator(".reference-learning").get_attribute("title") or "")
