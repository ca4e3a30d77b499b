"""The working calendar: time zone, working periods, workdays, the default deadline, and the exceptional
days (holidays, make-up working days). Deadlines count working hours in it."""

from __future__ import annotations

import datetime as dt
from collections.abc import Mapping
from typing import Any

from fastapi import APIRouter
from fastapi.responses import Response

from api import reference as ref
from api.console.admin.forms import (
    Field,
    Form,
    FormDep,
    attempt,
    audit,
    checked,
    number,
    posted,
    redirect,
    require_admin,
)
from api.console.admin.pages import Row, cell, error_status, render_admin
from api.console.deps import Page, PageDep
from api.errors import InvalidInput
from api.messages import msg

router = APIRouter(prefix="/console/admin/calendar", include_in_schema=False)
BASE = "/console/admin/calendar"
WEEKDAYS = range(1, 8)


def periods_text(periods: list[tuple[str, str]]) -> str:
    return ", ".join(f"{start}-{end}" for start, end in periods)


def parse_periods(text: str) -> list[list[str]]:
    """ "08:30-12:00, 13:30-17:30" as the model's periods; the model checks the times and their order."""
    periods = []
    for part in text.replace("，", ",").replace("～", "-").replace("–", "-").split(","):
        if not part.strip():
            continue
        start, sep, end = part.strip().partition("-")
        if not sep:
            raise InvalidInput(msg("ref.period_syntax", text=part.strip()), field="periods")
        periods.append([start.strip(), end.strip()])
    return periods


def _settings_fields(page: Page, values: Mapping[str, Any]) -> list[Field]:
    workdays = set(values.get("workdays", []))
    return [
        Field(
            "timezone",
            "admin.field.timezone",
            value=values.get("timezone", ""),
            required=True,
            hint="admin.calendar.timezone_hint",
        ),
        Field(
            "periods",
            "admin.field.periods",
            value=values.get("periods", ""),
            required=True,
            hint="admin.calendar.periods_hint",
        ),
        Field(
            "default_working_hours",
            "admin.field.default_working_hours",
            kind="number",
            step="any",
            value=values.get("default_working_hours", ""),
        ),
        *[
            Field(f"workday_{day}", f"admin.weekday.{day}", kind="checkbox", value=day in workdays)
            for day in WEEKDAYS
        ],
    ]


def _day_fields(values: Mapping[str, Any]) -> list[Field]:
    return [
        Field("day", "admin.field.day", kind="date", value=values.get("day", ""), required=True),
        Field("name", "admin.field.day_name", value=values.get("name", "")),
        Field(
            "working",
            "admin.field.working_day",
            kind="checkbox",
            value=values.get("working", False),
            hint="admin.calendar.working_hint",
        ),
    ]


def _page(
    page: Page,
    settings: dict[str, Any] | None = None,
    settings_errors: list[str] | None = None,
    day: dict[str, Any] | None = None,
    day_errors: list[str] | None = None,
) -> Response:
    if settings is None:
        calendar = ref.get_calendar(page.session)
        settings = {
            "timezone": calendar.timezone,
            "periods": periods_text(calendar.periods),
            "workdays": calendar.workdays,
            "default_working_hours": calendar.default_working_hours,
        }
    today = dt.datetime.now(page.timezone).date()
    days = ref.list_calendar_days(page.session, start=today - dt.timedelta(days=366))
    rows = [
        Row(
            id=f"day-{row.day.isoformat()}",
            cells=[
                cell(row.day.isoformat()),
                cell(row.name),
                cell(page.t("admin.calendar.working") if row.working else page.t("admin.calendar.holiday")),
            ],
        )
        for row in days
    ]
    errors = (settings_errors or []) + (day_errors or [])
    return render_admin(
        page,
        "admin/calendar.html",
        status_code=error_status(errors),
        settings_form=Form(
            "calendar-form", BASE, _settings_fields(page, settings), "admin.save", settings_errors or []
        ),
        day_form=Form(
            "day-form", f"{BASE}/days", _day_fields(day or {}), "admin.calendar.add_day", day_errors or []
        ),
        days=[(row, days[index].day.isoformat()) for index, row in enumerate(rows)],
        columns=["admin.field.day", "admin.field.day_name", "admin.field.kind"],
    )


@router.get("")
def calendar_page(page: PageDep) -> Response:
    require_admin(page)
    return _page(page)


@router.post("")
def save_calendar(page: PageDep, form: FormDep) -> Response:
    values = posted(page, form)
    workdays = [day for day in WEEKDAYS if checked(values, f"workday_{day}")]

    def change() -> ref.CalendarPublic:
        body = ref.CalendarIn.model_validate(
            {
                "timezone": values.get("timezone", ""),
                "periods": parse_periods(values.get("periods", "")),
                "workdays": workdays,
                "default_working_hours": number(values, "default_working_hours")
                or ref.CalendarIn().default_working_hours,
            }
        )
        return ref.put_calendar(page.session, body)

    saved, errors = attempt(page, change)
    if saved is None:
        return _page(page, settings={**values, "workdays": workdays}, settings_errors=errors)
    audit(page, "calendar", "updated", saved.timezone)
    return redirect(f"{BASE}?saved={page.t('admin.calendar.title')}")


@router.post("/days")
def save_day(page: PageDep, form: FormDep) -> Response:
    values = posted(page, form)

    def change() -> str:
        try:
            day = dt.date.fromisoformat(values.get("day", ""))
        except ValueError:
            raise InvalidInput(msg("ref.day"), field="day") from None
        body = ref.CalendarDayIn.model_validate(
            {"working": checked(values, "working"), "name": values.get("name", "")}
        )
        ref.put_calendar_day(page.session, day, body)
        return day.isoformat()

    day, errors = attempt(page, change)
    if day is None:
        return _page(page, day={**values, "working": checked(values, "working")}, day_errors=errors)
    audit(page, "calendar_day", "saved", day)
    return redirect(f"{BASE}?saved={day}")


@router.post("/days/{day}/delete")
def delete_day(day: dt.date, page: PageDep, form: FormDep) -> Response:
    posted(page, form)
    ref.delete_calendar_day(page.session, day)
    page.session.commit()
    audit(page, "calendar_day", "deleted", day.isoformat())
    return redirect(f"{BASE}?saved={day.isoformat()}")
