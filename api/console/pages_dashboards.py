"""Dashboards: trends per day, counts by violation and by unit, on-time closure per unit, recurrence
hotspots and the unit ranking for a day, week or month (figures from :mod:`api.stats`, the same as the
statistics API; each table links to that API's CSV), and a monthly report page laid out for printing."""

from __future__ import annotations

import datetime as dt
from typing import Annotated, Any, Literal
from urllib.parse import urlencode

from fastapi import APIRouter, Query
from fastapi.responses import Response

from api.console.charts import share, trend_chart
from api.console.deps import Page, PageDep
from api.console.rendering import render
from api.errors import Forbidden
from api.models import Role
from api.settings import Settings
from api.stats import Period, calendar_timezone, make_period, report_and_ranking

router = APIRouter(prefix="/console/dashboards", include_in_schema=False)

OFFICE_ROLES = (Role.ADMIN, Role.SHIFT_LEADER, Role.DISPATCHER, Role.VIEWER)
Kind = Literal["daily", "weekly", "monthly"]


def _require_office(page: Page) -> None:
    if page.operator.role not in OFFICE_ROLES:
        raise Forbidden(f"role '{page.operator.role}' may not open the dashboards")


def _csv_links(period: Period) -> dict[str, str]:
    """The statistics API's CSV download of each table (the cookie logs the browser in there too)."""
    query = {"period": period.kind, "date": period.start.isoformat(), "format": "csv"}
    links = {
        section: "/api/v1/stats/report?" + urlencode({**query, "section": section})
        for section in ("days", "violations", "units", "recurrence", "places")
    }
    links["ranking"] = "/api/v1/stats/ranking?" + urlencode(query)
    return links


def _figures(page: Page, period: Period) -> dict[str, Any]:
    settings: Settings = page.request.app.state.settings
    report, ranking = report_and_ranking(
        page.session, page.operator, period, min_cases=settings.ranking_min_cases
    )
    return {
        "period": period,
        "report": report,
        "ranking": ranking,
        "chart": trend_chart(report.by_day),
        "share": share,
        "max_violation": max((v.count for v in report.by_violation), default=0),
        "max_unit_due": max((u.dispatched for u in report.by_unit), default=0),
        "csv": _csv_links(period),
    }


@router.get("")
def dashboards_page(
    page: PageDep,
    period: Annotated[Kind, Query()] = "monthly",
    date: Annotated[dt.date | None, Query()] = None,
) -> Response:
    _require_office(page)
    span = make_period(period, calendar_timezone(page.session), day=date)
    return render(page, "dashboards/index.html", kind=period, print_view=False, **_figures(page, span))


@router.get("/report")
def monthly_report_page(
    page: PageDep,
    month: Annotated[str | None, Query(pattern=r"^\d{4}-\d{2}$", description="YYYY-MM")] = None,
) -> Response:
    _require_office(page)
    day = dt.date.fromisoformat(f"{month}-01") if month else None
    span = make_period("monthly", calendar_timezone(page.session), day=day)
    return render(page, "dashboards/report.html", print_view=True, **_figures(page, span))
