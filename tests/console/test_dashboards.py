"""Dashboards in the browser: the numbers on the page are the seeded cases' (counted here with SQL), each
table's CSV download holds the same rows, and the monthly report prints without the console's chrome."""

from __future__ import annotations

import csv
import io
from collections import Counter
from typing import Any

import pytest
from sqlalchemy import select

from api.models import Case, Place
from tests.console.conftest import ARTIFACTS, SECOND_PLACE, ConsoleWorld, assert_fits_phone, login, screenshot

FIRST_PLACE = "110101001001001"


@pytest.fixture
def seeded(console: ConsoleWorld) -> None:
    """Garbage at the first place closed and back again (a recurrence), parking at both places, garbage at
    the second place dispatched."""
    closed = console.report(place=FIRST_PLACE, violation_type="exposed_garbage")
    console.store.resolve(closed)
    for action in ("verify", "close"):
        console.store.act(closed, action)
    console.report(place=FIRST_PLACE, violation_type="exposed_garbage")  # 复发
    console.report(place=FIRST_PLACE, violation_type="illegal_parking")
    console.report(place=SECOND_PLACE, violation_type="illegal_parking")
    console.store.act(console.report(place=SECOND_PLACE, violation_type="exposed_garbage"), "file")


def cases(console: ConsoleWorld) -> list[Case]:
    with console.store.sessions() as session:
        return list(session.scalars(select(Case)))


def table(page: Any, selector: str, columns: tuple[str, ...]) -> dict[str, str]:
    """{data-key: text of the column} for each row of a dashboard table."""
    rows = page.locator(f"{selector} tbody tr[data-{columns[0]}]")
    return {
        rows.nth(i).get_attribute(f"data-{columns[0]}"): rows.nth(i).locator(columns[1]).inner_text()
        for i in range(rows.count())
    }


def download_csv(page: Any, link: str) -> list[dict[str, str]]:
    with page.expect_download() as info:
        page.click(link)
    text = info.value.path().read_text(encoding="utf-8-sig")
    return list(csv.DictReader(io.StringIO(text)))


def test_dashboard_numbers_match_the_seeded_cases_and_their_csv(
    console: ConsoleWorld, seeded: None, desktop: Any
) -> None:
    seeded_cases = cases(console)
    login(desktop, console, "li")
    desktop.goto(f"{console.url}/console/dashboards")
    assert desktop.inner_text("#total-created") == str(len(seeded_cases))
    assert desktop.inner_text("#total-closed") == str(sum(c.status == "closed" for c in seeded_cases))
    recurrences = [c for c in seeded_cases if c.recurrence_of_id is not None]
    assert len(recurrences) == 1 and desktop.inner_text("#total-recurrences") == "1"

    by_violation = Counter(c.violation_code for c in seeded_cases)
    assert table(desktop, "#by-violation", ("code", ".count")) == {k: str(v) for k, v in by_violation.items()}
    with console.store.sessions() as session:
        place_key = session.get_one(Place, recurrences[0].place_id).key
    assert table(desktop, "#hotspots", ("place", ".recurrences")) == {place_key: "1"}
    # The trend chart: one bar per day and series; today's "created" bar carries every case.
    created_bars = desktop.locator("#trend-chart rect.bar.created")
    assert sum(
        int(created_bars.nth(i).get_attribute("data-value")) for i in range(created_bars.count())
    ) == len(seeded_cases)

    rows = download_csv(desktop, "#csv-violations")
    assert {r["violation_code"]: r["count"] for r in rows} == {k: str(v) for k, v in by_violation.items()}
    units = download_csv(desktop, "#csv-units")
    page_units = table(desktop, "#by-unit", ("unit", ".dispatched"))
    assert {r["unit"]: r["dispatched"] for r in units if r["unit"] != "TOTAL"} == page_units
    hotspots = download_csv(desktop, "#csv-recurrence")
    assert [(r["place"], r["recurrences"]) for r in hotspots] == [(place_key, "1")]
    assert download_csv(desktop, "#csv-ranking")[0].keys() >= {"rank", "unit", "on_time_closure_rate"}
    days = download_csv(desktop, "#csv-days")
    assert sum(int(r["created"]) for r in days) == len(seeded_cases)
    screenshot(desktop, "dashboards-1366x768")


def test_unit_handlers_get_no_dashboards(console: ConsoleWorld, desktop: Any) -> None:
    login(desktop, console, "wang")
    assert desktop.goto(f"{console.url}/console/dashboards").status == 403
    assert desktop.goto(f"{console.url}/console/dashboards/report").status == 403


def test_monthly_report_prints_cleanly(console: ConsoleWorld, seeded: None, desktop: Any) -> None:
    login(desktop, console, "zhang")
    desktop.goto(f"{console.url}/console/dashboards")
    desktop.click("#report-link")
    desktop.wait_for_url("**/console/dashboards/report?month=*")
    assert desktop.inner_text("#total-created") == str(len(cases(console)))
    assert desktop.locator("#print-button").is_visible() and desktop.locator(".topbar").is_visible()
    desktop.emulate_media(media="print")
    assert not desktop.locator(".topbar").is_visible(), "no navigation on paper"
    assert not desktop.locator("#print-button").is_visible()
    for section in ("#totals", "#by-unit", "#by-violation", "#hotspots", "#ranking", "#by-day"):
        assert desktop.locator(section).is_visible(), section
    width = desktop.evaluate("[document.scrollingElement.scrollWidth, window.innerWidth]")
    assert width[0] <= width[1]
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    pdf = ARTIFACTS / "monthly-report.pdf"
    desktop.pdf(path=str(pdf), format="A4")
    assert pdf.read_bytes().startswith(b"%PDF") and pdf.stat().st_size > 5000


@pytest.mark.parametrize("viewport", ["desktop", "phone"])
@pytest.mark.parametrize("path", ["/console/dashboards", "/console/dashboards/report"])
def test_dashboard_pages_fit_every_screen(
    request: pytest.FixtureRequest, console: ConsoleWorld, seeded: None, viewport: str, path: str
) -> None:
    page: Any = request.getfixturevalue(viewport)
    login(page, console, "li")
    page.goto(console.url + path)
    assert page.locator("#totals").is_visible()
    size = page.viewport_size
    name = "dashboards" if path.endswith("dashboards") else "monthly-report"
    screenshot(page, f"{name}-{size['width']}x{size['height']}")
    if viewport == "phone":
        assert_fits_phone(page)
