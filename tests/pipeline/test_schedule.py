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


@pytest.mark.parametrize(
    ("text", "windows"),
    [
        ("周一-周五 07:00-09:00", [{"days": [1, 2, 3, 4, 5], "start": "07:00", "end": "09:00"}]),
        ("周一至周五 07:00-09:00", [{"days": [1, 2, 3, 4, 5], "start": "07:00", "end": "09:00"}]),
        ("星期六、星期天 9:00-12:00", [{"days": [6, 7], "start": "09:00", "end": "12:00"}]),
        (
            "周一、周三、周五-周日 18:00-02:00；周二 07:00-08:30",
            [
                {"days": [1, 3, 5, 6, 7], "start": "18:00", "end": "02:00"},
                {"days": [2], "start": "07:00", "end": "08:30"},
            ],
        ),
        ("周五-周一 22:00-06:00", [{"days": [1, 5, 6, 7], "start": "22:00", "end": "06:00"}]),
    ],
)
def test_chinese_day_names_read_as_the_english_notation(text: str, windows: list[dict[str, Any]]) -> None:
    assert text_to_windows(text) == windows


@pytest.mark.parametrize(
    ("windows", "zh", "en"),
    [
        (
            [
                {"days": [1, 2, 3, 4, 5], "start": "07:00", "end": "08:30"},
                {"days": [6], "start": "09:00", "end": "12:00"},
            ],
            "周一-周五 07:00-08:30，周六 09:00-12:00",
            "mon-fri 07:00-08:30, sat 09:00-12:00",
        ),
        (
            [{"days": [1, 3, 5, 6, 7], "start": "18:00", "end": "02:00"}],
            "周一、周三、周五-周日 18:00-02:00",
            "mon/wed/fri-sun 18:00-02:00",
        ),
    ],
)
def test_windows_write_in_either_language_and_read_back(
    windows: list[dict[str, Any]], zh: str, en: str
) -> None:
    """What the zone editor shows a zh user reads back to the same windows (the round trip of a save)."""
    assert windows_to_text(windows, "zh") == zh
    assert windows_to_text(windows, "en") == en
    assert text_to_windows(zh) == windows == text_to_windows(en)


@pytest.mark.parametrize(
    ("text", "zh", "en"),
    [
        ("周一-abc 07:00-08:00", "无法识别“mon-abc”中的星期", "unknown day in 'mon-abc'"),
        ("周八 07:00-08:00", "无法识别“周八 07:00-08:00”", "cannot read '周八 07:00-08:00'"),
        ("周一 25:00-26:00", "25:00 不是有效的时刻", "25:00 is not a time of day"),
        ("工作日 07:00", "无法识别“工作日 07:00”", "cannot read '工作日 07:00'"),
    ],
)
def test_schedule_errors_read_in_chinese_and_english(text: str, zh: str, en: str) -> None:
    with pytest.raises(ScheduleError) as caught:
        text_to_windows(text)
    assert zh in caught.value.text("zh")
    assert en in caught.value.text("en") and en in str(caught.value)
    placed = caught.value.in_rule("illegal_parking", "机动车乱停放")
    assert placed.text("zh").startswith("“机动车乱停放”的生效时段：")
    assert str(placed).startswith("rules.illegal_parking.schedule: ")
