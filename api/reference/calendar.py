"""The working calendar (periods, workdays, time zone) and its day exceptions (holidays, make-up days)."""

from __future__ import annotations

import datetime as dt
import zoneinfo
from typing import Annotated, Any

from pydantic import AfterValidator, BaseModel, Field, field_validator
from sqlalchemy import select
from sqlalchemy.orm import Session

from api.daily_stats import follow_calendar
from api.errors import NotFound
from api.messages import Refusal, msg
from api.models import CalendarDay, CalendarSettings
from api.reference.common import IsoWeekday, Period, StrictModel, unique, upsert

DEFAULT_TIMEZONE = "Asia/Shanghai"
DEFAULT_PERIODS = [("08:30", "12:00"), ("13:30", "17:30")]
DEFAULT_WORKDAYS = [1, 2, 3, 4, 5]
DEFAULT_WORKING_HOURS = 24.0


def _minutes(hhmm: str) -> int:
    hours, minutes = hhmm.split(":")
    return int(hours) * 60 + int(minutes)


def _check_timezone(name: str) -> str:
    try:
        zoneinfo.ZoneInfo(name)
    except (zoneinfo.ZoneInfoNotFoundError, ValueError, OSError) as exc:
        raise Refusal(msg("ref.timezone", name=name)) from exc
    return name


class CalendarIn(StrictModel):
    """The working calendar: deadlines count working hours inside ``periods`` on ``workdays``."""

    timezone: Annotated[str, Field(min_length=1, max_length=64), AfterValidator(_check_timezone)] = (
        DEFAULT_TIMEZONE
    )
    periods: list[Period] = Field(
        default_factory=lambda: list(DEFAULT_PERIODS),
        min_length=1,
        max_length=8,
        description='Working periods of a working day, e.g. [["08:30", "12:00"], ["13:30", "17:30"]].',
    )
    workdays: list[IsoWeekday] = Field(
        default_factory=lambda: list(DEFAULT_WORKDAYS), min_length=1, max_length=7
    )
    default_working_hours: float = Field(
        default=DEFAULT_WORKING_HOURS,
        gt=0,
        le=10_000,
        description="Deadline for violations missing from the table.",
    )

    @field_validator("periods")
    @classmethod
    def _periods_ordered(cls, periods: list[tuple[str, str]]) -> list[tuple[str, str]]:
        previous_end = -1
        for start, end in periods:
            if _minutes(start) >= _minutes(end):
                raise Refusal(msg("ref.period_reversed", start=start, end=end))
            if _minutes(start) < previous_end:
                raise Refusal(msg("ref.period_order", start=start, end=end))
            previous_end = _minutes(end)
        return periods

    @field_validator("workdays")
    @classmethod
    def _workdays_unique(cls, workdays: list[int]) -> list[int]:
        unique(workdays, "weekday")
        return sorted(workdays)


class CalendarPublic(CalendarIn):
    configured: bool = Field(description="False: no calendar stored yet, these are the defaults.")


class CalendarDayIn(StrictModel):
    working: bool = Field(description="false: a holiday; true: a make-up working day (调休).")
    name: str = Field(default="", max_length=100)


class CalendarDayPublic(BaseModel):
    day: dt.date
    working: bool
    name: str


CALENDAR_ROW_ID = 1  # one calendar per installation: always row 1, so concurrent writers cannot add a second


def get_calendar(session: Session) -> CalendarPublic:
    row = session.get(CalendarSettings, CALENDAR_ROW_ID) or session.scalar(
        select(CalendarSettings).order_by(CalendarSettings.id).limit(1)
    )
    if row is None:
        return CalendarPublic(configured=False)
    return CalendarPublic(
        timezone=row.timezone,
        periods=[tuple(p) for p in row.periods],
        workdays=list(row.workdays),
        default_working_hours=row.default_working_hours,
        configured=True,
    )


def calendar_values(body: CalendarIn) -> dict[str, Any]:
    return {
        "id": CALENDAR_ROW_ID,
        "timezone": body.timezone,
        "periods": [list(period) for period in body.periods],
        "workdays": list(body.workdays),
        "default_working_hours": body.default_working_hours,
    }


def put_calendar(session: Session, body: CalendarIn) -> CalendarPublic:
    upsert(session, CalendarSettings, calendar_values(body), keys=("id",))
    follow_calendar(session.connection())  # a new time zone: the statistics' daily summary in its days
    session.expire_all()
    return get_calendar(session)


def list_calendar_days(
    session: Session, *, start: dt.date | None = None, end: dt.date | None = None
) -> list[CalendarDay]:
    query = select(CalendarDay).order_by(CalendarDay.day)
    if start is not None:
        query = query.where(CalendarDay.day >= start)
    if end is not None:
        query = query.where(CalendarDay.day <= end)
    return list(session.scalars(query))


def put_calendar_day(session: Session, day: dt.date, body: CalendarDayIn) -> CalendarDay:
    upsert(session, CalendarDay, {"day": day, "working": body.working, "name": body.name}, keys=("day",))
    row = session.scalar(
        select(CalendarDay).where(CalendarDay.day == day).execution_options(populate_existing=True)
    )
    assert row is not None  # just upserted in this transaction
    return row


def delete_calendar_day(session: Session, day: dt.date) -> None:
    row = session.scalar(select(CalendarDay).where(CalendarDay.day == day))
    if row is None:
        raise NotFound(f"{day.isoformat()} is not in the calendar's exceptions")
    session.delete(row)
    session.flush()
