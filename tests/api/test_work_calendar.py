"""Working-hours deadlines: nights, lunch breaks, weekends, National Day, a make-up Saturday, DST."""

from __future__ import annotations

import datetime as dt
from zoneinfo import ZoneInfo

import pytest

from api.models import CalendarDay, CalendarSettings
from api.work_calendar import add_working_hours, load_calendar, make_calendar, working_hours_between
from tests.api.conftest import Store

SHANGHAI = ZoneInfo("Asia/Shanghai")
BERLIN = ZoneInfo("Europe/Berlin")
# 2026 National Day: Thursday 10-01 .. Wednesday 10-07 off; Saturday 10-10 worked instead (调休).
NATIONAL_DAY = [dt.date(2026, 10, day) for day in range(1, 8)]
MAKEUP_SATURDAY = dt.date(2026, 10, 10)
CALENDAR = make_calendar(holidays=NATIONAL_DAY, makeup_days=[MAKEUP_SATURDAY])


def local(
    year: int, month: int, day: int, hour: int, minute: int = 0, zone: ZoneInfo = SHANGHAI
) -> dt.datetime:
    return dt.datetime(year, month, day, hour, minute, tzinfo=zone)


# 2026-03-02 is a Monday.
@pytest.mark.parametrize(
    ("start", "hours", "due", "why"),
    [
        (local(2026, 3, 2, 9), 2, local(2026, 3, 2, 11), "inside the morning"),
        (local(2026, 3, 2, 11), 2, local(2026, 3, 2, 14, 30), "across the lunch break"),
        (local(2026, 3, 2, 12, 15), 1, local(2026, 3, 2, 14, 30), "starts in the lunch break"),
        (local(2026, 3, 2, 16, 30), 2, local(2026, 3, 3, 9, 30), "across the night"),
        (local(2026, 3, 6, 16, 30), 2, local(2026, 3, 9, 9, 30), "Friday afternoon over the weekend"),
        (local(2026, 3, 7, 10), 1, local(2026, 3, 9, 9, 30), "starts on a Saturday"),
        (local(2026, 3, 2, 7), 0.5, local(2026, 3, 2, 9), "starts before work"),
        (local(2026, 3, 2, 22), 1, local(2026, 3, 3, 9, 30), "starts at night"),
        (local(2026, 3, 2, 9), 1.25, local(2026, 3, 2, 10, 15), "fractional hours"),
        (
            local(2026, 3, 2, 8, 30),
            7.5,
            local(2026, 3, 2, 17, 30),
            "a full day ends at 17:30, not next morning",
        ),
        (local(2026, 3, 2, 8, 30), 3.5, local(2026, 3, 2, 12), "ends at the lunch break, not after it"),
        (local(2026, 3, 2, 9), 24, local(2026, 3, 5, 10, 30), "24 working hours: 7 + 7.5 + 7.5 + 2"),
        (local(2026, 3, 2, 9), 0, local(2026, 3, 2, 9), "zero hours"),
        (local(2026, 3, 7, 9), 0, local(2026, 3, 7, 9), "zero hours outside work stays put"),
        (local(2026, 9, 30, 16, 30), 2, local(2026, 10, 8, 9, 30), "over the National Day week"),
        (local(2026, 10, 3, 10), 1, local(2026, 10, 8, 9, 30), "starts inside the holiday"),
        (local(2026, 10, 9, 16, 30), 2, local(2026, 10, 10, 9, 30), "into the make-up Saturday"),
        (local(2026, 10, 10, 17), 1, local(2026, 10, 12, 9), "from the make-up Saturday to Monday"),
    ],
)
def test_add_working_hours(start: dt.datetime, hours: float, due: dt.datetime, why: str) -> None:
    result = add_working_hours(start, hours, CALENDAR)
    assert result == due, why
    assert result.tzinfo is dt.UTC


def test_input_in_any_zone_gives_the_same_answer() -> None:
    start = local(2026, 3, 2, 16, 30)
    assert add_working_hours(start.astimezone(BERLIN), 2, CALENDAR) == local(2026, 3, 3, 9, 30)


@pytest.mark.parametrize(
    ("a", "b", "hours"),
    [
        (local(2026, 3, 2, 9), local(2026, 3, 2, 11), 2.0),
        (local(2026, 3, 2, 11), local(2026, 3, 2, 14, 30), 2.0),
        (local(2026, 3, 6, 17), local(2026, 3, 9, 9), 1.0),
        (local(2026, 3, 7, 0), local(2026, 3, 8, 23), 0.0),
        (local(2026, 9, 30, 0), local(2026, 10, 10, 23), 7.5 + 7.5 * 2 + 7.5),
        (local(2026, 3, 2, 11), local(2026, 3, 2, 9), -2.0),
    ],
)
def test_working_hours_between(a: dt.datetime, b: dt.datetime, hours: float) -> None:
    assert working_hours_between(a, b, CALENDAR) == pytest.approx(hours)


def test_between_inverts_add_on_a_grid_of_starts() -> None:
    """From any start (working time or not), add h then measure back: h again."""
    start = local(2026, 9, 25, 0)
    for step in range(0, 21 * 24 * 60, 97):  # three weeks around the holiday, every 97 minutes
        moment = start + dt.timedelta(minutes=step)
        for hours in (0.25, 1, 3.5, 7.5, 16, 40):
            due = add_working_hours(moment, hours, CALENDAR)
            assert working_hours_between(moment, due, CALENDAR) == pytest.approx(hours), (moment, hours)


def test_daylight_saving_office_hours_follow_local_time() -> None:
    """Berlin switches to summer time on Sunday 2026-03-29: Monday's 08:30 is then 06:30 UTC, not 07:30."""
    berlin = make_calendar(timezone="Europe/Berlin", periods=[["08:00", "12:00"], ["13:00", "17:00"]])
    due = add_working_hours(local(2026, 3, 27, 16, zone=BERLIN), 2, berlin)
    assert due.astimezone(BERLIN) == local(2026, 3, 30, 9, zone=BERLIN)
    assert due == dt.datetime(2026, 3, 30, 7, tzinfo=dt.UTC)
    assert working_hours_between(local(2026, 3, 27, 16, zone=BERLIN), due, berlin) == pytest.approx(2)


def test_daylight_saving_round_the_clock_counts_real_hours() -> None:
    """A 24/7 unit: 24 working hours over the night the clocks jump are 24 real hours (25 on the wall)."""
    always = make_calendar(timezone="Europe/Berlin", periods=[["00:00", "24:00"]], workdays=range(1, 8))
    start = local(2026, 3, 28, 12, zone=BERLIN)
    due = add_working_hours(start, 24, always)
    assert due - start == dt.timedelta(hours=24)
    assert due.astimezone(BERLIN) == local(2026, 3, 29, 13, zone=BERLIN)
    autumn = local(2026, 10, 24, 12, zone=BERLIN)
    assert add_working_hours(autumn, 24, always).astimezone(BERLIN) == local(2026, 10, 25, 11, zone=BERLIN)


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        ({"timezone": "Mars/Olympus"}, "unknown time zone 'Mars/Olympus'"),
        ({"periods": [["12:00", "08:30"]]}, "the start must be before the end"),
        ({"periods": [["08:00", "12:00"], ["11:00", "13:00"]]}, "overlap at 11:00"),
        ({"periods": [["8h", "12:00"]]}, "expected HH:MM"),
        ({"periods": [["08:00", "24:30"]]}, "expected HH:MM"),
        ({"periods": [["08:00"]]}, r"expected \[start, end\]"),
        ({"workdays": [0, 1]}, "ISO weekdays 1 \\(Monday\\) .. 7"),
        ({"workdays": []}, "no working time"),
        ({"periods": []}, "no working time"),
        ({"default_working_hours": 0}, "must be > 0"),
        ({"holidays": [MAKEUP_SATURDAY], "makeup_days": [MAKEUP_SATURDAY]}, "both a holiday and a make-up"),
    ],
)
def test_bad_calendars_are_refused_with_a_reason(kwargs: dict[str, object], match: str) -> None:
    with pytest.raises(ValueError, match=match):
        make_calendar(**kwargs)  # type: ignore[arg-type]


def test_bad_arguments() -> None:
    with pytest.raises(ValueError, match="naive"):
        add_working_hours(dt.datetime(2026, 3, 2, 9), 1, CALENDAR)
    with pytest.raises(ValueError, match=">= 0"):
        add_working_hours(local(2026, 3, 2, 9), -1, CALENDAR)
    with pytest.raises(ValueError, match="naive"):
        working_hours_between(local(2026, 3, 2, 9), dt.datetime(2026, 3, 2, 10), CALENDAR)
    only_holidays = make_calendar(workdays=[6], holidays=[local(2026, 3, 7, 0).date()])
    with pytest.raises(ValueError, match="run past"):
        add_working_hours(local(2026, 3, 2, 9), 10**6, only_holidays)


def test_load_calendar_defaults(store: Store) -> None:
    with store.sessions() as session:
        calendar = load_calendar(session)
    assert calendar.timezone == SHANGHAI
    assert calendar.periods == ((8 * 60 + 30, 12 * 60), (13 * 60 + 30, 17 * 60 + 30))
    assert calendar.workdays == {1, 2, 3, 4, 5}
    assert calendar.default_working_hours == 24.0
    assert add_working_hours(local(2026, 3, 6, 16, 30), 2, calendar) == local(2026, 3, 9, 9, 30)


def test_load_calendar_from_settings_and_days(store: Store) -> None:
    with store.sessions.begin() as session:
        session.add(
            CalendarSettings(
                timezone="Europe/Berlin",
                periods=[["09:00", "17:00"]],
                workdays=[1, 2, 3, 4],
                default_working_hours=8,
            )
        )
        session.add_all(
            [CalendarDay(day=day, working=False, name="国庆节") for day in NATIONAL_DAY]
            + [CalendarDay(day=MAKEUP_SATURDAY, working=True, name="调休")]
        )
    with store.sessions() as session:
        calendar = load_calendar(session)
    assert calendar.timezone == BERLIN
    assert calendar.workdays == {1, 2, 3, 4}
    assert calendar.holidays == set(NATIONAL_DAY)
    assert calendar.makeup_days == {MAKEUP_SATURDAY}
    assert calendar.default_working_hours == 8
    # Thursday 16:00 + 2h: Friday is off in this calendar -> Monday 10:00 Berlin.
    assert add_working_hours(local(2026, 3, 5, 16, zone=BERLIN), 2, calendar) == local(
        2026, 3, 9, 10, zone=BERLIN
    )
    # Wednesday 2026-09-30 16:00 + 2h: over National Day to Thursday 10-08.
    due = add_working_hours(local(2026, 9, 30, 16, zone=BERLIN), 2, calendar)
    assert due == local(2026, 10, 8, 10, zone=BERLIN)
    # Thursday 10-08 16:00 + 2h: Friday is off, Saturday 10-10 is a make-up working day.
    due = add_working_hours(local(2026, 10, 8, 16, zone=BERLIN), 2, calendar)
    assert due == local(2026, 10, 10, 10, zone=BERLIN)
