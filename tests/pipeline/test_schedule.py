"""Schedules in both forms: the daemon's text (``mon-fri 07:00-08:30``) and the case store's windows
(``[{days, start, end}]``), converted in contract.schedule and back without changing when a rule applies."""

from __future__ import annotations

import datetime as dt
from typing import Any
from zoneinfo import ZoneInfo

import pytest

from api.reference.cameras import ZoneRule
from contract.schedule import Schedule, ScheduleError, text_to_windows, windows_to_text

SHANGHAI = ZoneInfo("Asia/Shanghai")


@pytest.mark.parametrize(
    ("text", "windows"),
    [
        ("mon-fri 07:00-08:30", [{"days": [1, 2, 3, 4, 5], "start": "07:00", "end": "08:30"}]),
        (
            "mon/wed/fri-sun 18:00-02:00",
            [{"days": [1, 3, 5, 6, 7], "start": "18:00", "end": "02:00"}],
        ),
        (
            "mon-fri 07:00-08:30, sat 09:00-12:00",
            [
                {"days": [1, 2, 3, 4, 5], "start": "07:00", "end": "08:30"},
                {"days": [6], "start": "09:00", "end": "12:00"},
            ],
        ),
    ],
)
def test_text_and_windows_convert_both_ways(text: str, windows: list[dict[str, Any]]) -> None:
    assert text_to_windows(text) == windows
    assert windows_to_text(windows) == text
    ZoneRule.model_validate({"dwell_s": 60, "schedule": windows})  # the store accepts what we produce


def test_no_schedule_is_always_in_both_forms() -> None:
    assert text_to_windows(None) == []
    assert windows_to_text([]) is None


def _minutes_of_week() -> list[dt.datetime]:
    monday = dt.datetime(2026, 3, 2, tzinfo=SHANGHAI)  # a Monday
    return [monday + dt.timedelta(minutes=m) for m in range(0, 7 * 24 * 60, 10)]


@pytest.mark.parametrize(
    "text",
    ["sun-tue 22:00-06:30", "fri-sat 22:00-24:00", "mon 00:00-24:00, thu 12:00-13:00", "sat-sun 06:00-22:00"],
)
def test_the_round_trip_keeps_every_minute_of_the_week(text: str) -> None:
    """Text -> store windows -> text is active at exactly the same minutes (24:00 is stored as 00:00)."""
    windows = text_to_windows(text)
    ZoneRule.model_validate({"dwell_s": 60, "schedule": windows})
    back = windows_to_text(windows)
    assert back is not None
    before, after = Schedule.parse(text), Schedule.parse(back)
    for at in _minutes_of_week():
        assert before.active(at, SHANGHAI) == after.active(at, SHANGHAI), (text, back, at)


@pytest.mark.parametrize(
    ("windows", "message"),
    [
        ([{"days": [0], "start": "07:00", "end": "08:00"}], "window 0: days"),
        ([{"days": [], "start": "07:00", "end": "08:00"}], "window 0: days"),
        ([{"days": [1], "start": "07:00"}], "window 0: 'end'"),
        ([{"days": [1], "start": "7am", "end": "08:00"}], "cannot read"),
    ],
)
def test_malformed_store_windows_are_named(windows: list[dict[str, Any]], message: str) -> None:
    with pytest.raises(ScheduleError, match=message):
        windows_to_text(windows)
