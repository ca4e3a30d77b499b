"""The console's formatting helpers (api.console.formatting): local times, durations as people say them,
catalogued messages and actors in the reader's language."""

from __future__ import annotations

import datetime as dt
from types import SimpleNamespace
from zoneinfo import ZoneInfo

import pytest

from api.console.formatting import (
    actor_text,
    countdown_text,
    duration,
    event_note,
    local_time,
    note_of,
    say,
)
from api.messages import NOTE_KEY, msg

SHANGHAI = ZoneInfo("Asia/Shanghai")
T0 = dt.datetime(2026, 3, 2, 0, 15, 30, tzinfo=dt.UTC)


@pytest.mark.parametrize(
    ("seconds", "zh", "en"),
    [
        (0, "0 分", "0 min"),
        (59, "0 分", "0 min"),
        (60 * 45, "45 分", "45 min"),
        (3600, "1 小时", "1 h"),
        (3600 + 59 * 60 + 30, "1 小时 59 分", "1 h 59 min"),
        (-3 * 3600, "3 小时", "3 h"),
        (2 * 86400 + 3 * 3600 + 10 * 60, "2 天 3 小时", "2 d 3 h"),
        (86400 + 5 * 60, "1 天", "1 d"),
    ],
)
def test_durations_read_as_people_say_them(seconds: float, zh: str, en: str) -> None:
    assert duration(seconds, "zh") == zh
    assert duration(seconds, "en") == en


def test_countdowns_say_left_or_overdue() -> None:
    deadline = T0 + dt.timedelta(hours=1, minutes=59, seconds=20)
    assert countdown_text(deadline, T0, "zh") == "剩余 1 小时 59 分"
    assert countdown_text(T0, T0 + dt.timedelta(hours=3), "zh") == "超期 3 小时"
    assert countdown_text(T0, T0 + dt.timedelta(hours=3), "en") == "3 h overdue"


def test_times_are_the_store_time_zone_wall_time() -> None:
    assert local_time(T0, SHANGHAI) == "2026-03-02 08:15"
    assert local_time(T0, SHANGHAI, seconds=True) == "2026-03-02 08:15:30"
    assert local_time(T0, ZoneInfo("Europe/Berlin"), seconds=True) == "2026-03-02 01:15:30"
    assert local_time(None, SHANGHAI) == "—"


def test_messages_fill_chinese_words_for_statuses_actions_and_fields() -> None:
    wrong = msg("error.wrong_status", action="dispatch", status="closed")
    assert say(wrong, "zh") == "案件当前为“已结案”，不能派遣"
    assert say(wrong, "en") == "cannot dispatch a case that is 'closed'"
    assert say(msg("error.no_field", action="file", field="hours"), "zh") == "立案不需要工作小时"


def test_notes_render_the_catalogued_message_and_keep_old_english_rows() -> None:
    routed = msg(
        "route.owner",
        place="110101001001001",
        place_name="东华门大街",
        violation="0102",
        violation_name="暴露垃圾",
        unit="district",
        unit_name="东城区城管执法局",
        skipped="",
        skipped_zh="",
    )
    assert note_of({NOTE_KEY: routed.as_data()}, str(routed), "zh") == (
        "属地兜底：东华门大街的暴露垃圾没有路由规则，由属地单位东城区城管执法局处置"
    )
    old = "no routing rule for place 1 + violation 0102"  # an event from before catalogued notes
    assert note_of({"unit": None}, old, "zh") == old
    assert note_of(None, None, "zh") is None


def test_actors_by_the_names_people_know() -> None:
    names = {"user:zhao": "赵交通", "device:demo-box": "人民路口东"}
    assert actor_text("user:zhao", names, "zh") == "赵交通"
    assert actor_text("device:demo-box", names, "zh") == "边缘设备（人民路口东）"
    assert actor_text("device:demo-box", names, "en") == "Edge box (人民路口东)"
    assert actor_text("system", names, "zh") == "系统"
    assert actor_text("user:gone", names, "zh") == "gone"  # a deleted user: the name in the trail


def test_a_camera_check_note_from_the_edge_reads_in_chinese() -> None:
    """The edge box words its verification note in English; the zh timeline says what the check found."""
    check = SimpleNamespace(
        action="verify",
        reason="camera_check",
        note="camera check: zone z-gate clear of illegal_parking for 120 s",
        data=None,
    )
    assert event_note(check, "zh") == "摄像头复核：区域内已无此违规，持续时间达到要求。"
    assert event_note(check, "en") == check.note
    typed = SimpleNamespace(action="resolve", reason=None, note="垃圾已清运", data=None)
    assert event_note(typed, "zh") == "垃圾已清运"
