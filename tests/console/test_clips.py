"""The case page in Chromium: the evidence clip plays in a <video> for the roles that may see unredacted
video (a viewer gets neither the player nor the file), and evidence images open in a lightbox that zooms
(buttons, wheel, keys, two fingers) and closes on Esc, instead of leaving the page for the raw JPEG."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.api.clip_builders import clip_bytes
from tests.console.conftest import ConsoleWorld, assert_fits_phone, login, screenshot
from tests.console.test_csp import _violations, _watch


@pytest.fixture
def case_with_clip(console: ConsoleWorld, car_video: Path) -> int:
    case_id = console.report()
    with httpx.Client(
        base_url=console.url, headers={"X-Device-Key": console.device_key}, timeout=10
    ) as client:
        files = {"file": ("clip.mp4", clip_bytes(car_video, 3.0), "video/mp4")}
        client.post(
            f"/api/v1/cases/{case_id}/evidence", files=files, data={"kind": "clip"}
        ).raise_for_status()
    return case_id


PLAYED = """async (video) => {
  video.muted = true;
  await video.play();
  await new Promise((done) => {
    const tick = () => (video.currentTime > 0.3 ? done() : setTimeout(tick, 50));
    tick();
  });
  video.pause();
  return {ready: video.readyState, duration: video.duration, time: video.currentTime, error: video.error};
}"""


def test_the_clip_plays_and_images_zoom_in_a_lightbox_in_chinese_and_english(
    console: ConsoleWorld, desktop: Any, case_with_clip: int
) -> None:
    csp = _watch(desktop)
    login(desktop, console, "li")
    case_url = f"{console.url}/console/cases/{case_with_clip}"
    desktop.goto(case_url)
    assert "现场视频" in desktop.locator("#evidence-clips").inner_text()
    assert "仅供值班长、派遣员和管理员查看" in desktop.locator("#clip-unredacted").inner_text()
    video = desktop.locator("#evidence-clips video")
    played = video.evaluate(PLAYED)
    assert played["error"] is None and played["ready"] >= 2, played
    assert 2.5 <= played["duration"] <= 3.5 and played["time"] > 0.3, played

    # The image opens in the lightbox, on this page; + zooms, the wheel zooms, Esc closes.
    desktop.locator("#evidence-before a[data-lightbox]").first.click()
    dialog = desktop.locator("#lightbox")
    dialog.wait_for(state="visible")
    assert desktop.url == case_url
    assert desktop.locator("#lightbox-image").evaluate("(img) => img.complete && img.naturalWidth > 0")
    assert desktop.locator("[data-zoom=in]").get_attribute("aria-label") == "放大"
    desktop.click("[data-zoom=in]")
    assert dialog.get_attribute("data-scale") == "1.250"
    assert desktop.locator("#lightbox-scale").inner_text() == "125%"
    desktop.locator(".lightbox-stage").hover()
    desktop.mouse.wheel(0, -100)
    desktop.wait_for_function("document.getElementById('lightbox').dataset.scale === '1.563'")
    desktop.keyboard.press("0")
    assert dialog.get_attribute("data-scale") == "1.000"
    desktop.keyboard.press("Escape")
    dialog.wait_for(state="hidden")
    assert desktop.url == case_url
    screenshot(desktop, "case-clip-desktop")
    assert _violations(desktop, csp) == []  # the player and the lightbox live under the CSP

    desktop.click("#lang-en")
    desktop.wait_for_selector("html[lang=en]")
    assert "Video clip" in desktop.locator("#evidence-clips").inner_text()
    assert desktop.locator("#evidence-clips video").evaluate(PLAYED)["ready"] >= 2
    desktop.locator("#evidence-before a[data-lightbox]").first.click()
    dialog.wait_for(state="visible")
    assert desktop.locator("[data-zoom=in]").get_attribute("aria-label") == "Zoom in"
    assert desktop.locator("[data-zoom=close]").inner_text() == "Close"
    desktop.click("[data-zoom=close]")
    dialog.wait_for(state="hidden")

    actions = [(actor, action) for actor, action in console.store.events(case_with_clip)]
    assert ("user:li", "clip_viewed") in actions  # every opening of the clip is audited


def test_a_viewer_gets_no_clip_and_the_lightbox_pinches_on_a_phone(
    console: ConsoleWorld, phone: Any, case_with_clip: int
) -> None:
    login(phone, console, "guest")
    phone.goto(f"{console.url}/console/cases/{case_with_clip}")
    assert phone.locator("#evidence-clips").count() == 0
    detail = phone.request.get(f"{console.url}/api/v1/cases/{case_with_clip}").json()
    assert "clip" not in [e["kind"] for e in detail["evidence"]]
    assert_fits_phone(phone)
    phone.locator("#evidence-before a[data-lightbox]").first.click()
    dialog = phone.locator("#lightbox")
    dialog.wait_for(state="visible")
    assert_fits_phone(phone)
    # Two fingers moving apart: twice the distance, twice the size.
    phone.locator(".lightbox-stage").evaluate(
        """(stage) => {
          const box = stage.getBoundingClientRect();
          const cx = box.left + box.width / 2, cy = box.top + box.height / 2;
          const send = (type, id, dx) => stage.dispatchEvent(new PointerEvent(type, {
            pointerId: id, pointerType: "touch", isPrimary: id === 1, bubbles: true,
            clientX: cx + dx, clientY: cy }));
          send("pointerdown", 1, -40); send("pointerdown", 2, 40);
          send("pointermove", 1, -80); send("pointermove", 2, 80);
          send("pointerup", 1, -80); send("pointerup", 2, 80);
        }"""
    )
    assert dialog.get_attribute("data-scale") == "2.000"
    screenshot(phone, "case-lightbox-phone")
    phone.locator("[data-zoom=close]").click()
    dialog.wait_for(state="hidden")
