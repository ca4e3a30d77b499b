"""Case search and the map in Chromium, as a dispatcher would use them: filter and free text, keyset pages,
CSV export, bulk dispatch with a case that may not move; the map's points without tiles, clustered where
dense; both languages, desktop and phone without horizontal overflow."""

from __future__ import annotations

import datetime as dt
import uuid
from pathlib import Path
from typing import Any

import pytest
from pydantic import ValidationError

from api.console.pages_search import map_csp
from api.models import Case, CaseStatus, Place, Zone
from api.settings import Settings
from tests.console.conftest import SECOND_PLACE, ConsoleWorld, assert_fits_phone, login, screenshot

T0 = dt.datetime(2026, 5, 11, 1, 0, tzinfo=dt.UTC)
FIRST_PLACE = "110101001001001"


def _seed(console: ConsoleWorld, *, dense: int = 52) -> dict[str, list[int]]:
    """``dense`` filed cases at the first place (more than a page), three pending at the second, places
    with coordinates and camera cam-1 watching the first place."""
    ids: dict[str, list[int]] = {"dense": [], "second": []}
    with console.store.sessions.begin() as session:
        first = session.query(Place).filter_by(key=FIRST_PLACE).one()
        second = session.query(Place).filter_by(key=SECOND_PLACE).one()
        first.lat, first.lon = 39.9149, 116.4039
        second.lat, second.lon = 39.9139, 116.4109
        camera_id = (
            session.execute(
                Case.metadata.tables["cameras"]
                .select()
                .where(Case.metadata.tables["cameras"].c.code == "cam-1")
            )
            .one()
            .id
        )
        session.add(
            Zone(camera_id=camera_id, code="z-gate", place_id=first.id, polygon=[[0, 0], [1, 0], [1, 1]])
        )
        for i in range(dense):
            at = T0 + dt.timedelta(minutes=i)
            case = Case(
                status=CaseStatus.FILED.value,
                violation_code="0102",
                place_id=first.id,
                camera_code="cam-1",
                created_at=at,
                updated_at=at,
                first_seen_at=at,
                confirmed_at=at,
                sighting_count=1,
                open_slot=uuid.uuid4().hex,
            )
            session.add(case)
            session.flush()
            ids["dense"].append(case.id)
        for i in range(3):
            at = T0 + dt.timedelta(hours=2, minutes=i)
            case = Case(
                status=CaseStatus.PENDING_REVIEW.value,
                violation_code="0505",
                place_id=second.id,
                camera_code="cam-2",
                created_at=at,
                updated_at=at,
                sighting_count=1,
                open_slot=uuid.uuid4().hex,
                description=f"违停车辆 {i}",
            )
            session.add(case)
            session.flush()
            ids["second"].append(case.id)
    return ids


def _row_ids(page: Any) -> list[int]:
    return [
        int(x)
        for x in page.eval_on_selector_all(
            "#results tbody tr[data-case-id]", "rows => rows.map(r => r.dataset.caseId)"
        )
    ]


def test_dispatcher_searches_pages_exports_and_dispatches_in_bulk(
    console: ConsoleWorld, desktop: Any
) -> None:
    ids = _seed(console)
    login(desktop, console, "zhang")
    desktop.click("nav.mainnav >> text=案件查询")
    desktop.wait_for_selector("#results")
    assert desktop.inner_text("#search-count") == "共 55 件"
    first_page = _row_ids(desktop)
    assert len(first_page) == 50 and first_page[:3] == ids["second"][::-1]

    desktop.click("#next-page")
    desktop.wait_for_selector("#first-page")
    second_page = _row_ids(desktop)
    assert sorted(first_page + second_page) == sorted(
        ids["dense"] + ids["second"]
    )  # nothing repeated or skipped

    desktop.goto(f"{console.url}/console/search")
    desktop.fill("#filter-q", "违停")
    desktop.click("#filter-apply")
    desktop.wait_for_selector("#filter-clear")
    assert _row_ids(desktop) == ids["second"][::-1]
    assert "q=%E8%BF%9D%E5%81%9C" in desktop.get_attribute("#export-csv", "href")

    with desktop.expect_download() as download_info:
        desktop.click("#export-csv")
    data = Path(download_info.value.path()).read_bytes()
    assert data.startswith(b"\xef\xbb\xbf")
    lines = data.decode("utf-8-sig").strip().splitlines()
    assert len(lines) == 1 + 3 and lines[0].startswith("案件编号 id,")
    assert "2026-05-11 11:02:00" in lines[1]  # 03:02 UTC in the store's time zone

    # Bulk: two filed cases dispatch to the chosen unit; the pending one may not be dispatched and says so.
    desktop.goto(f"{console.url}/console/search?place={FIRST_PLACE}")
    chosen = _row_ids(desktop)[:2]
    for case_id in chosen:
        desktop.check(f"#row-{case_id} input.select")
    desktop.select_option("#bulk-unit", label="环卫所")
    desktop.click("#bulk-dispatch")
    desktop.wait_for_selector("#bulk-outcomes")
    desktop.wait_for_selector("#bulk-outcomes h2")
    assert "成功 2 件，未处理 0 件" in desktop.inner_text("#bulk-outcomes")
    assert desktop.url.endswith(f"/console/search?place={FIRST_PLACE}")  # still on the list
    for case_id in chosen:
        assert desktop.inner_text(f"#row-{case_id} .status-badge") == "已派遣"
        assert desktop.inner_text(f"#row-{case_id} .unit-cell") == "环卫所"

    desktop.goto(f"{console.url}/console/search")
    desktop.check(f"#row-{ids['second'][0]} input.select")
    desktop.check(f"#row-{ids['dense'][-3]} input.select")
    desktop.click("#bulk-dispatch")
    desktop.wait_for_selector("#bulk-outcomes h2")
    outcomes = desktop.inner_text("#bulk-outcomes")
    assert "成功 1 件，未处理 1 件" in outcomes
    assert f"案件 #{ids['second'][0]} 未处理" in outcomes
    with console.store.sessions() as session:
        statuses = {
            c.id: c.status for c in session.query(Case).filter(Case.id.in_([*chosen, ids["second"][0]]))
        }
    assert statuses == {chosen[0]: "dispatched", chosen[1]: "dispatched", ids["second"][0]: "pending_review"}


def test_unit_handler_lists_only_their_units_cases_and_cannot_bulk(
    console: ConsoleWorld, desktop: Any
) -> None:
    ids = _seed(console, dense=3)
    with console.store.sessions.begin() as session:
        case = session.get(Case, ids["dense"][0])
        assert case is not None
        case.status, case.unit_id = CaseStatus.DISPATCHED.value, console.store.world.sanitation_id
    login(desktop, console, "wang")
    desktop.goto(f"{console.url}/console/search")
    assert _row_ids(desktop) == [ids["dense"][0]]
    assert desktop.query_selector("#bulkbar") is None


@pytest.mark.parametrize("lang", ["zh", "en"])
def test_map_draws_points_without_tiles_and_clusters_dense_ones(
    console: ConsoleWorld, desktop: Any, lang: str
) -> None:
    ids = _seed(console)
    login(desktop, console, "zhang")
    desktop.goto(f"{console.url}/console/lang/{lang}?next=/console/map")
    desktop.wait_for_selector("#map[data-loaded=true]")
    assert desktop.query_selector("img.leaflet-tile") is None  # no tile server configured
    note = desktop.inner_text("#map-note")
    assert note == (
        "未配置底图服务，案件点绘制在空白底图上。"
        if lang == "zh"
        else "No map tile server is configured: the points are drawn on a plain background."
    )
    # The 52 cases at one place are one cluster; the three at the other place cluster or show as points.
    counts = [
        int(t)
        for t in desktop.eval_on_selector_all(".marker-cluster span", "els => els.map(e => e.textContent)")
    ]
    singles = desktop.eval_on_selector_all(".case-dot", "els => els.map(e => e.dataset.caseId)")
    assert 52 in counts
    assert sum(counts) + len(singles) == 55
    assert desktop.query_selector(".camera-dot[data-camera=cam-1]") is not None
    assert desktop.inner_text("#map-count") == (
        "地图上 55 件，无坐标 0 件" if lang == "zh" else "55 on the map, 0 without a position"
    )

    # Filtered like the list: only the pending cases, in the pending colour once their cluster opens.
    desktop.goto(f"{console.url}/console/map?status=pending_review")
    desktop.wait_for_selector("#map[data-loaded=true]")
    desktop.click(".marker-cluster")  # three cases at one spot: the cluster spreads them out
    desktop.wait_for_selector(".case-dot")
    dots = desktop.eval_on_selector_all(".case-dot", "els => els.map(e => [e.dataset.caseId, e.className])")
    assert sorted(int(i) for i, _ in dots) == sorted(ids["second"])
    assert all("dot-pending" in cls for _, cls in dots)


@pytest.mark.parametrize("lang", ["zh", "en"])
def test_screenshots_fit_desktop_and_phone(
    console: ConsoleWorld, desktop: Any, phone: Any, lang: str
) -> None:
    _seed(console, dense=12)
    for device, name in ((desktop, "desktop"), (phone, "phone")):
        login(device, console, "zhang")
        for path in ("/console/search", "/console/map"):
            device.goto(f"{console.url}/console/lang/{lang}?next={path}")
            if path == "/console/map":
                device.wait_for_selector("#map[data-loaded=true]")
            else:
                device.wait_for_selector("#results")
            assert_fits_phone(device)
            screenshot(device, f"{path.rsplit('/', 1)[1]}-{lang}-{name}")


def test_bulk_without_javascript_shows_the_outcomes_above_the_list(
    console: ConsoleWorld, browser: Any
) -> None:
    ids = _seed(console, dense=2)
    context = browser.new_context(viewport={"width": 1366, "height": 768}, java_script_enabled=False)
    page = context.new_page()
    try:
        login(page, console, "zhang")
        page.goto(f"{console.url}/console/lang/en?next=/console/search")
        page.check(f"#row-{ids['dense'][0]} input.select")
        page.check(f"#row-{ids['second'][0]} input.select")
        page.click("#bulk-dispatch")
        outcomes = page.inner_text("#bulk-outcomes")
        assert "1 moved, 1 not changed" in outcomes
        assert f"Case #{ids['second'][0]} not changed" in outcomes
        assert page.query_selector("#results") is not None
    finally:
        context.close()


def test_a_tile_server_is_allowed_for_images_only() -> None:
    policy = map_csp("https://tiles.example.gov.cn")
    directives = dict(d.strip().split(" ", 1) for d in policy.split(";"))
    assert directives["img-src"] == "'self' data: https://tiles.example.gov.cn"
    assert directives["script-src"] == "'self'" and directives["default-src"] == "'self'"


@pytest.mark.parametrize(
    "url",
    ["javascript:alert(1)", "https://tiles.example.gov.cn/tile.png", "tiles.example.gov.cn/{z}/{x}/{y}"],
)
def test_a_tile_url_must_be_http_with_a_zoom_placeholder(url: str) -> None:
    with pytest.raises(ValidationError, match="map_tile_url"):
        Settings(map_tile_url=url, _env_file=None)
