"""Working-hours arithmetic: deadlines count working hours on a working calendar, not wall-clock hours.

A :class:`WorkCalendar` is a time zone, the working periods of a working day (local wall-clock times,
e.g. 08:30-12:00 and 13:30-17:30), the ISO weekdays that are working days, and exceptions from
:class:`api.models.CalendarDay`: holidays (e.g. National Day 10-01..10-07) and make-up working days
(调休, e.g. a Saturday worked to bridge a holiday).

Periods are local times, so they follow daylight-saving changes; durations are real elapsed time
(all arithmetic is done in UTC), so a working hour is always 3600 seconds.
"""

from __future__ import annotations

import datetime as dt
import itertools
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from sqlalchemy import select
from sqlalchemy.orm import Session

from api.models import CalendarDay, CalendarSettings

DEFAULT_TIMEZONE = "Asia/Shanghai"
DEFAULT_PERIODS = (("08:30", "12:00"), ("13:30", "17:30"))
DEFAULT_WORKDAYS = (1, 2, 3, 4, 5)
DEFAULT_WORKING_HOURS = 24.0
MAX_SEARCH_DAYS = 3 * 366  # a deadline further than this is a configuration error
_DAY_MINUTES = 24 * 60


@dataclass(frozen=True)
class WorkCalendar:
    timezone: ZoneInfo
    periods: tuple[tuple[int, int], ...]  # minutes after local midnight, [start, end), sorted, disjoint
    workdays: frozenset[int]  # ISO weekdays 1 (Mon) .. 7 (Sun)
    holidays: frozenset[dt.date] = frozenset()
    makeup_days: frozenset[dt.date] = frozenset()
    default_working_hours: float = DEFAULT_WORKING_HOURS

    def is_working_day(self, day: dt.date) -> bool:
        if day in self.holidays:
            return False
        return day in self.makeup_days or day.isoweekday() in self.workdays

    def working_periods(self, day: dt.date) -> Iterator[tuple[dt.datetime, dt.datetime]]:
        """The working periods of the local ``day`` as UTC ``(start, end)`` pairs (none on a day off)."""
        if not self.is_working_day(day):
            return
        for start, end in self.periods:
            yield self._utc(day, start), self._utc(day, end)

    def _utc(self, day: dt.date, minute: int) -> dt.datetime:
        if minute == _DAY_MINUTES:  # "24:00": midnight at the end of the day
            day, minute = day + dt.timedelta(days=1), 0
        local = dt.datetime.combine(day, dt.time(minute // 60, minute % 60), tzinfo=self.timezone)
        return local.astimezone(dt.UTC)

    def local_date(self, moment: dt.datetime) -> dt.date:
        return moment.astimezone(self.timezone).date()


def make_calendar(
    *,
    timezone: str = DEFAULT_TIMEZONE,
    periods: Sequence[Sequence[str]] = DEFAULT_PERIODS,
    workdays: Iterable[int] = DEFAULT_WORKDAYS,
    holidays: Iterable[dt.date] = (),
    makeup_days: Iterable[dt.date] = (),
    default_working_hours: float = DEFAULT_WORKING_HOURS,
) -> WorkCalendar:
    """A validated calendar; raises ValueError naming the bad field and what is expected."""
    try:
        zone = ZoneInfo(timezone)
    except (ZoneInfoNotFoundError, ValueError):
        raise ValueError(
            f"unknown time zone {timezone!r}: expected an IANA name such as Asia/Shanghai"
        ) from None
    days = frozenset(workdays)
    if not days <= set(range(1, 8)):
        raise ValueError(f"workdays {sorted(days)}: expected ISO weekdays 1 (Monday) .. 7 (Sunday)")
    if default_working_hours <= 0:
        raise ValueError(f"default_working_hours must be > 0, got {default_working_hours}")
    holiday_set, makeup_set = frozenset(holidays), frozenset(makeup_days)
    if both := holiday_set & makeup_set:
        raise ValueError(f"{sorted(both)[0]} is both a holiday and a make-up working day")
    parsed = parse_periods(periods)
    if not parsed or not (days or makeup_set):
        raise ValueError("the calendar has no working time: give working periods and workdays")
    return WorkCalendar(zone, parsed, days, holiday_set, makeup_set, default_working_hours)


def parse_periods(periods: Sequence[Sequence[str]]) -> tuple[tuple[int, int], ...]:
    """``[["08:30", "12:00"], ...]`` -> minutes after midnight; sorted, each non-empty, none overlapping."""
    parsed = []
    for period in periods:
        if len(period) != 2:
            raise ValueError(
                f"working period {list(period)!r}: expected [start, end] such as ['08:30', '12:00']"
            )
        start, end = (_minutes(text) for text in period)
        if start >= end:
            raise ValueError(f"working period {period[0]}-{period[1]}: the start must be before the end")
        parsed.append((start, end))
    parsed.sort()
    for (_, end), (start, _) in itertools.pairwise(parsed):
        if start < end:
            raise ValueError(f"working periods overlap at {start // 60:02d}:{start % 60:02d}")
    return tuple(parsed)


def _minutes(text: str) -> int:
    try:
        hours, minutes = (int(part) for part in text.split(":"))
    except ValueError:
        raise ValueError(f"time {text!r}: expected HH:MM between 00:00 and 24:00") from None
    if not (0 <= hours <= 24 and 0 <= minutes < 60) or (hours == 24 and minutes):
        raise ValueError(f"time {text!r}: expected HH:MM between 00:00 and 24:00")
    return hours * 60 + minutes


def _require_aware(moment: dt.datetime, name: str) -> None:
    if moment.tzinfo is None or moment.utcoffset() is None:
        raise ValueError(f"{name} {moment!r} is naive: working-hours arithmetic needs timezone-aware times")


def _days_from(calendar: WorkCalendar, moment: dt.datetime) -> Iterator[dt.date]:
    # A period belongs to its local day and ends at the latest at the next local midnight, so no period
    # of an earlier day can still be open at ``moment``.
    first = calendar.local_date(moment)
    for offset in range(MAX_SEARCH_DAYS + 1):
        yield first + dt.timedelta(days=offset)


def add_working_hours(start: dt.datetime, hours: float, calendar: WorkCalendar) -> dt.datetime:
    """The moment ``hours`` working hours after ``start`` (UTC). Ends on a period's end rather than
    rolling over: 7.5 hours from Monday 08:30 is Monday 17:30, not Tuesday 08:30."""
    _require_aware(start, "start")
    if hours < 0:
        raise ValueError(f"hours must be >= 0, got {hours}")
    cursor = start.astimezone(dt.UTC)
    remaining = dt.timedelta(hours=hours)
    if not remaining:
        return cursor
    for day in _days_from(calendar, cursor):
        for period_start, period_end in calendar.working_periods(day):
            if period_end <= cursor:
                continue
            begin = max(cursor, period_start)
            available = period_end - begin
            if remaining <= available:
                return begin + remaining
            remaining -= available
            cursor = period_end
    raise ValueError(
        f"{hours} working hours from {start.isoformat()} run past {MAX_SEARCH_DAYS} days of calendar"
    )


def working_hours_between(a: dt.datetime, b: dt.datetime, calendar: WorkCalendar) -> float:
    """Working hours from ``a`` to ``b``; negative when ``b`` is before ``a``."""
    _require_aware(a, "a")
    _require_aware(b, "b")
    a, b = a.astimezone(dt.UTC), b.astimezone(dt.UTC)
    if b < a:
        return -working_hours_between(b, a, calendar)
    total = dt.timedelta()
    day, last = calendar.local_date(a), calendar.local_date(b)
    while day <= last:
        for period_start, period_end in calendar.working_periods(day):
            overlap = min(b, period_end) - max(a, period_start)
            if overlap > dt.timedelta():
                total += overlap
        day += dt.timedelta(days=1)
    return total / dt.timedelta(hours=1)


def load_calendar(session: Session) -> WorkCalendar:
    """The calendar from CalendarSettings (first row) and CalendarDay, or the defaults when not configured:
    Asia/Shanghai, 08:30-12:00 and 13:30-17:30, Monday to Friday, 24 working hours per case."""
    row = session.scalars(select(CalendarSettings).order_by(CalendarSettings.id).limit(1)).first()
    days = session.scalars(select(CalendarDay)).all()
    holidays = [d.day for d in days if not d.working]
    makeup = [d.day for d in days if d.working]
    if row is None:
        return make_calendar(holidays=holidays, makeup_days=makeup)
    return make_calendar(
        timezone=row.timezone or DEFAULT_TIMEZONE,
        periods=row.periods or DEFAULT_PERIODS,
        workdays=row.workdays or DEFAULT_WORKDAYS,
        holidays=holidays,
        makeup_days=makeup,
        default_working_hours=row.default_working_hours or DEFAULT_WORKING_HOURS,
    )
