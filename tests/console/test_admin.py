"""The admin pages in the browser, acting as an admin running a city's reference data without the CLI:
a unit under its parent, a place with coordinates, a violation type with its deadline, a routing rule (in
the history), a camera on its box (linked to the zone editor), a device whose key is shown once, a user;
anyone else is refused. Screenshots of every admin page at 1366x768 and 390x844, no horizontal overflow."""

from __future__ import annotations

from typing import Any

import httpx
import pytest

from tests.console.conftest import ConsoleWorld, assert_fits_phone, login, screenshot


def _submit(page: Any, form: str, **fields: str) -> None:
    for name, value in fields.items():
        locator = page.locator(f"#{form}-{name}")
        if locator.evaluate("e => e.tagName") == "SELECT":
            locator.select_option(value)
        elif locator.get_attribute("type") == "checkbox":
            locator.set_checked(value == "on")
        else:
            locator.fill(value)
    page.click(f"#{form}-submit")
    page.wait_for_load_state("load")


def test_an_admin_sets_up_a_unit_a_place_a_type_a_rule_a_camera_a_device_and_a_user(
    console: ConsoleWorld, desktop: Any
) -> None:
    page = desktop
    login(page, console, "admin")
    page.click("nav.mainnav >> text=系统管理")
    page.wait_for_url("**/console/admin/units")

    _submit(page, "unit-form", code="grid-office", name="东华门网格工作站", kind="grid", parent="district")
    assert page.locator("#saved").is_visible()
    row = page.locator("#unit-grid-office")
    assert row.is_visible() and "depth-1" in (row.locator("td").first.get_attribute("class") or "")

    page.click("#admin-nav >> text=地点")
    _submit(
        page,
        "place-form",
        key="110101009009001",
        name="东华门 网格9",
        lat="39.914",
        lon="116.401",
        owner="grid-office",
    )
    assert "39.91400, 116.40100" in page.locator("#place-110101009009001").inner_text()

    page.click("#admin-nav >> text=问题类型")
    _submit(
        page,
        "violation-form",
        code="0601",
        name="占道堆物",
        name_en="goods piled on the street",
        pipeline_type="exposed_garbage",
        working_hours="6",
    )
    assert "6 工作小时" in page.locator("#violation-0601").inner_text()

    page.click("#admin-nav >> text=派遣规则")
    _submit(page, "rule-form", place="110101009009001", violation="0601", unit="grid-office", priority="5")
    rule_row = page.locator("#routing-rules tbody tr", has_text="占道堆物")
    assert "东华门网格工作站" in rule_row.inner_text()
    assert page.locator("#history tbody tr").first.inner_text().endswith("管理员")  # by display name

    page.click("#admin-nav >> text=摄像头登记")
    _submit(page, "camera-form", code="cam-9", name="东华门路口", device="box-1")
    assert "box-1" in page.locator("#camera-cam-9").inner_text()
    page.locator("#camera-cam-9 a", has_text="编辑").click()
    page.wait_for_url("**/console/cameras/cam-9/zones")

    page.goto(f"{console.url}/console/admin/devices")
    _submit(page, "device-form", name="box-9")
    key = page.locator("#device-key").inner_text().strip()
    assert key.startswith("swd_")
    with httpx.Client(base_url=console.url, timeout=10) as client:
        assert client.get("/api/v1/devices/me/config", headers={"X-Device-Key": key}).status_code == 200
        page.goto(f"{console.url}/console/admin/devices")  # shown once: never again
        assert page.locator("#device-box-9").is_visible() and key not in page.content()
        page.click("#revoke-box-9")
        page.wait_for_load_state("load")
        assert client.get("/api/v1/devices/me/config", headers={"X-Device-Key": key}).status_code == 401

    page.click("#admin-nav >> text=用户与角色")
    _submit(
        page,
        "user-form",
        username="sun",
        display_name="孙网格",
        role="unit_handler",
        unit="grid-office",
        password="grid-office-9",
    )
    assert "孙网格" in page.locator("#user-sun").inner_text()
    page.click("#logout")
    login(page, console, "sun", password="grid-office-9")
    page.wait_for_url("**/console/board")  # a unit handler lands on their board


@pytest.mark.parametrize("username", ["li", "zhang", "wang", "guest"])
def test_anyone_but_an_admin_is_refused(console: ConsoleWorld, desktop: Any, username: str) -> None:
    login(desktop, console, username)
    assert desktop.locator("nav.mainnav a[href='/console/admin']").count() == 0
    for path in ("/console/admin/units", "/console/admin/devices", "/console/admin/users"):
        response = desktop.goto(f"{console.url}{path}")
        assert response.status == 403, path
        assert desktop.locator("#error-page").is_visible()


ADMIN_PAGES = [
    ("admin-units", "/console/admin/units", ["#units", "#unit-form-submit"]),
    ("admin-places", "/console/admin/places", ["#places", "#place-form-submit"]),
    (
        "admin-violation-types",
        "/console/admin/violation-types",
        ["#violation-types", "#violation-form-submit"],
    ),
    ("admin-routing", "/console/admin/routing", ["#routing-rules", "#rule-form-submit", "#history"]),
    ("admin-rule", "/console/admin/routing/1", ["#rule-form-submit", "#deactivate-form-submit", "#history"]),
    ("admin-calendar", "/console/admin/calendar", ["#calendar-form-submit", "#day-form-submit"]),
    ("admin-cameras", "/console/admin/cameras", ["#cameras", "#camera-form-submit"]),
    ("admin-devices", "/console/admin/devices", ["#devices", "#device-form-submit", "#revoke-box-1"]),
    ("admin-users", "/console/admin/users", ["#users", "#user-form-submit"]),
    ("admin-user", "/console/admin/users/{user}", ["#user-form-submit", "#password-form-submit"]),
    ("admin-audit", "/console/admin/audit", ["#audit-filter", "#admin-events"]),
]


@pytest.mark.parametrize("viewport", ["desktop", "phone"])
@pytest.mark.parametrize(("name", "path", "visible"), ADMIN_PAGES, ids=[p[0] for p in ADMIN_PAGES])
def test_admin_page_looks_right(
    request: pytest.FixtureRequest,
    console: ConsoleWorld,
    viewport: str,
    name: str,
    path: str,
    visible: list[str],
) -> None:
    page: Any = request.getfixturevalue(viewport)
    login(page, console, "admin")
    page.goto(console.url + path.format(user=console.user_ids["wang"]))
    page.wait_for_load_state("load")
    for selector in visible:
        assert page.locator(selector).first.is_visible(), f"{name}: {selector} not visible"
    size = page.viewport_size
    screenshot(page, f"{name}-{size['width']}x{size['height']}")
    if viewport == "phone":
        assert_fits_phone(page)
