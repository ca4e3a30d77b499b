"""Statistics for operators (viewer and up): the period report and the unit ranking, as JSON or CSV."""

from __future__ import annotations

import csv
import datetime as dt
import io
import re
from typing import Annotated, Any, Literal

from fastapi import APIRouter, Query, Response

from api.deps import OperatorDep, SessionDep, SettingsDep
from api.routers.responses import AUTHENTICATED, INVALID, errors
from api.stats import (
    Period,
    PeriodKind,
    Ranking,
    Report,
    ReportSection,
    build_ranking,
    build_report,
    calendar_timezone,
    make_period,
    ranking_rows,
    report_rows,
)

router = APIRouter(prefix="/api/v1/stats", tags=["statistics"], responses=AUTHENTICATED)

CSV_MEDIA_TYPE = "text/csv; charset=utf-8"

PeriodQuery = Annotated[
    PeriodKind,
    Query(
        description="daily: 'date'; weekly: the ISO week (Mon-Sun) of 'date'; monthly: its month; "
        "custom: from..to"
    ),
]
DateQuery = Annotated[
    dt.date | None, Query(description="A day in the period (calendar time zone); default today.")
]
FromQuery = Annotated[dt.date | None, Query(alias="from", description="period=custom: first day.")]
ToQuery = Annotated[dt.date | None, Query(alias="to", description="period=custom: last day (inclusive).")]
FormatQuery = Annotated[
    Literal["json", "csv"], Query(description="csv: a download (UTF-8 with BOM, for Excel).")
]


def _period(
    session: SessionDep, kind: PeriodKind, day: dt.date | None, start: dt.date | None, end: dt.date | None
) -> Period:
    return make_period(kind, calendar_timezone(session), day=day, start=start, end=end)


def csv_response(columns: list[str], rows: list[dict[str, Any]], filename: str) -> Response:
    buffer = io.StringIO()
    buffer.write("\ufeff")  # BOM: Excel then reads the UTF-8 (Chinese unit and place names) correctly
    writer = csv.DictWriter(buffer, fieldnames=columns, extrasaction="ignore", lineterminator="\r\n")
    writer.writeheader()
    writer.writerows(rows)
    return Response(
        content=buffer.getvalue().encode("utf-8"),
        media_type=CSV_MEDIA_TYPE,
        headers={"Content-Disposition": f'attachment; filename="{_safe_filename(filename)}"'},
    )


def _safe_filename(name: str) -> str:
    """ASCII letters, digits, '.', '_' and '-' only (a header value; unit codes may be anything)."""
    return re.sub(r"[^A-Za-z0-9._-]", "_", name)


def _stem(what: str, period: Period) -> str:
    return f"streetwatch-{what}-{period.kind}-{period.start.isoformat()}_{period.end.isoformat()}"


@router.get(
    "/report",
    response_model=Report,
    summary="Counts and rates for a period (JSON, or one section as CSV)",
    responses={200: {"content": {"text/csv": {}}}, **errors(404, 422)},
)
def report_route(
    actor: OperatorDep,
    session: SessionDep,
    period: PeriodQuery = "daily",
    date: DateQuery = None,
    from_: FromQuery = None,
    to: ToQuery = None,
    unit: Annotated[str | None, Query(max_length=64, description="Limit to one unit (code).")] = None,
    format: FormatQuery = "json",
    section: Annotated[ReportSection, Query(description="Which table the CSV holds.")] = "units",
) -> Report | Response:
    span = _period(session, period, date, from_, to)
    report = build_report(session, actor, span, unit_code=unit)
    if format == "csv":
        columns, rows = report_rows(report, section)
        scope = f"-{report.unit}" if report.unit else ""
        return csv_response(columns, rows, f"{_stem('report', span)}{scope}-{section}.csv")
    return report


@router.get(
    "/ranking",
    response_model=Ranking,
    summary="Units ranked by on-time closure rate (红黑榜), leaving out units below the minimum",
    responses={200: {"content": {"text/csv": {}}}, **INVALID},
)
def ranking_route(
    actor: OperatorDep,
    session: SessionDep,
    settings: SettingsDep,
    period: PeriodQuery = "weekly",
    date: DateQuery = None,
    from_: FromQuery = None,
    to: ToQuery = None,
    format: FormatQuery = "json",
) -> Ranking | Response:
    span = _period(session, period, date, from_, to)
    ranking = build_ranking(session, actor, span, min_cases=settings.ranking_min_cases)
    if format == "csv":
        columns, rows = ranking_rows(ranking)
        return csv_response(columns, rows, f"{_stem('ranking', span)}.csv")
    return ranking
