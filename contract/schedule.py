"""Zone rule schedules: the one wire form and its text notation.

On the wire (device configuration, the store's zones) a schedule is a list of :class:`ScheduleWindow`
(``[{"days": [1..7 ISO], "start": "HH:MM", "end": "HH:MM"}]``, empty: always). People write the text
notation: ``"mon-sun 06:00-22:00"`` or ``"mon-fri 07:00-08:30, sat 09:00-12:00"`` (the daemon's YAML, the
zone editor), or with Chinese day names: ``"周一-周五 07:00-08:30，周六 09:00-12:00"`` (also 星期一…星期日,
周天/星期天 for Sunday, 至 for a range, 、 between days). :func:`text_to_windows` and
:func:`windows_to_text` are the one place where the two meet; the latter writes either language.

A window whose end is before its start runs past midnight (``fri-sat 22:00-02:00`` covers Saturday 01:00);
windows are read in the camera's time zone.
"""

from __future__ import annotations

import datetime as dt
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any
from zoneinfo import ZoneInfo

from pydantic import BaseModel, ConfigDict, Field, model_validator

from common.messages import Lang, Message
from contract.fields import HHMM, IsoWeekday

DAYS = ("mon", "tue", "wed", "thu", "fri", "sat", "sun")
DAYS_ZH = ("周一", "周二", "周三", "周四", "周五", "周六", "周日")
# Chinese spellings read as the English day codes; longer names first so 星期一 is not read as 期一.
_ZH_DAY_NAMES = {
    **{f"星期{d}": DAYS[i] for i, d in enumerate("一二三四五六日")},
    "星期天": "sun",
    **{f"周{d}": DAYS[i] for i, d in enumerate("一二三四五六日")},
    "周天": "sun",
}
# Chinese punctuation as the notation's own: ， ； between windows, 、 between days, 至 ～ for ranges.
_ZH_PUNCTUATION = str.maketrans({"，": ",", "；": ",", ";": ",", "、": "/", "至": "-", "～": "-", "~": "-"})
_WINDOW = re.compile(
    r"^\s*(?P<days>[a-z]{3}(?:\s*-\s*[a-z]{3})?(?:\s*/\s*[a-z]{3}(?:\s*-\s*[a-z]{3})?)*)\s*"
    r"(?P<start>\d{1,2}:\d{2})\s*-\s*(?P<end>\d{1,2}:\d{2})\s*$"
)

MESSAGES: dict[str, tuple[str, str]] = {
    "schedule.bad_time": (
        "“{source}”：{time} 不是有效的时刻（HH:MM，00:00-24:00）",
        "'{source}': {time} is not a time of day (HH:MM, 00:00-24:00)",
    ),
    "schedule.unknown_day": (
        "“{source}”：无法识别“{part}”中的星期；可写周一至周日或 mon-sun",
        "'{source}': unknown day in '{part}'; days are mon-sun (or 周一-周日)",
    ),
    "schedule.unreadable": (
        "“{source}”：无法识别“{part}”；应写作如“周一-周五 07:00-08:30，周六 09:00-12:00”",
        "'{source}': cannot read '{part}'; expected e.g. 'mon-fri 07:00-08:30, sat 09:00-12:00'",
    ),
    "schedule.bad_window": (
        "第 {index} 个时段有误：{problem}（应为 {{days, start, end}}）",
        "schedule window {index}: {problem} (expected {{days, start, end}})",
    ),
    "schedule.in_rule": ("“{rule}”的生效时段：{detail}", "rules.{rule}.schedule: {detail}"),
}


class ScheduleError(ValueError):
    """A schedule string that cannot be parsed; the message shows the expected form, in zh or en."""

    def __init__(self, code: str, **params: str | int | None) -> None:
        self.message = Message(code, params, MESSAGES)
        self.rule: tuple[str, str] | None = None  # (rule, its display name) once placed in a zone rule
        super().__init__(str(self.message))

    def in_rule(self, rule: str, display_name: str | None = None) -> ScheduleError:
        """This error placed in zone rule ``rule`` (``rules.<rule>.schedule: …``; zh names the rule)."""
        self.rule = (rule, display_name or rule)
        self.args = (self.text("en"),)
        return self

    def text(self, lang: Lang) -> str:
        detail = self.message.text(lang)
        if self.rule is None:
            return detail
        rule = self.rule[1] if lang == "zh" else self.rule[0]
        return Message("schedule.in_rule", {"rule": rule, "detail": detail}, MESSAGES).text(lang)


def _normalise(text: str) -> str:
    """Chinese day names and punctuation as the English notation; everything lower case."""
    text = text.translate(_ZH_PUNCTUATION)
    for name, code in _ZH_DAY_NAMES.items():
        text = text.replace(name, code)
    return text.lower()


def _minutes(text: str, source: str) -> int:
    hours, minutes = (int(part) for part in text.split(":"))
    if hours > 24 or minutes > 59 or (hours == 24 and minutes):
        raise ScheduleError("schedule.bad_time", source=source, time=text)
    return hours * 60 + minutes


def _days(text: str, source: str) -> frozenset[int]:
    days: set[int] = set()
    for part in text.split("/"):
        first, _, last = (piece.strip() for piece in part.partition("-"))
        if first not in DAYS or (last and last not in DAYS):
            raise ScheduleError("schedule.unknown_day", source=source, part=part.strip())
        a, b = DAYS.index(first), DAYS.index(last or first)
        days.update(range(a, b + 1) if a <= b else [*range(a, 7), *range(0, b + 1)])
    return frozenset(days)


@dataclass(frozen=True)
class Window:
    weekdays: frozenset[int]  # 0 = Monday
    start_min: int
    end_min: int

    def contains(self, weekday: int, minute: int) -> bool:
        if self.start_min <= self.end_min:
            return weekday in self.weekdays and self.start_min <= minute < self.end_min
        # Past midnight: the evening part belongs to the listed day, the morning part to the next day.
        evening = weekday in self.weekdays and minute >= self.start_min
        morning = (weekday - 1) % 7 in self.weekdays and minute < self.end_min
        return evening or morning


@dataclass(frozen=True)
class Schedule:
    """When a zone rule is active. ``Schedule.always()`` when no schedule is given."""

    windows: tuple[Window, ...]
    text: str = "always"

    @classmethod
    def always(cls) -> Schedule:
        return cls((Window(frozenset(range(7)), 0, 24 * 60),))

    @classmethod
    def parse(cls, text: str) -> Schedule:
        windows = []
        for part in _normalise(text).split(","):
            match = _WINDOW.match(part)
            if match is None:
                raise ScheduleError("schedule.unreadable", source=text, part=part.strip())
            windows.append(
                Window(
                    _days(match["days"], text), _minutes(match["start"], text), _minutes(match["end"], text)
                )
            )
        return cls(tuple(windows), text)

    def active(self, at: dt.datetime, tz: ZoneInfo) -> bool:
        """Whether the rule applies at the aware instant ``at``, read in the camera's time zone ``tz``."""
        local = at.astimezone(tz)
        minute = local.hour * 60 + local.minute
        return any(w.contains(local.weekday(), minute) for w in self.windows)


# --- the wire form: [{"days": [1..7 ISO], "start": "HH:MM", "end": "HH:MM"}, ...] ------------------------


class ScheduleWindow(BaseModel):
    """A weekly window in the camera's (store: the calendar's) time zone; ``end`` before ``start`` runs
    past midnight."""

    model_config = ConfigDict(extra="forbid")

    days: list[IsoWeekday] = Field(default_factory=lambda: [1, 2, 3, 4, 5, 6, 7], min_length=1, max_length=7)
    start: HHMM
    end: HHMM

    @model_validator(mode="after")
    def _check(self) -> ScheduleWindow:
        repeated = [day for i, day in enumerate(self.days) if day in self.days[:i]]
        if repeated:
            raise ValueError(f"weekday {repeated[0]!r} appears twice")
        if self.start == self.end:
            raise ValueError(f"schedule window starts and ends at {self.start}: it would be empty")
        return self


def schedule_of(windows: Sequence[ScheduleWindow]) -> Schedule:
    """The evaluable schedule of wire windows (always active when there are none)."""
    text = windows_to_text([w.model_dump() for w in windows])
    return Schedule.parse(text) if text else Schedule.always()


def _day_runs(iso_days: Sequence[int], lang: Lang = "en") -> str:
    """ISO weekdays (1 = Monday) as the text form: runs of consecutive days become ``mon-fri``
    (``周一-周五`` in Chinese, days apart joined with 、)."""
    names = DAYS_ZH if lang == "zh" else DAYS
    days = sorted({int(d) - 1 for d in iso_days})
    runs: list[list[int]] = []
    for day in days:
        if runs and day == runs[-1][-1] + 1:
            runs[-1].append(day)
        else:
            runs.append([day])
    joiner = "、" if lang == "zh" else "/"
    return joiner.join(names[r[0]] if len(r) == 1 else f"{names[r[0]]}-{names[r[-1]]}" for r in runs)


def windows_to_text(windows: Sequence[Mapping[str, Any]], lang: Lang = "en") -> str | None:
    """The store's windows as a schedule string (``None`` for no windows: always active), in the English
    notation or with Chinese day names (``lang="zh"``); both read back to the same windows.

    Raises :class:`ScheduleError` naming the window when one is malformed.
    """
    parts = []
    for index, window in enumerate(windows):
        try:
            days, start, end = window["days"], str(window["start"]), str(window["end"])
            if not days or any(not 1 <= int(d) <= 7 for d in days):
                raise ValueError(f"days {days!r} are not ISO weekdays 1..7")
        except (KeyError, TypeError, ValueError) as exc:
            raise ScheduleError("schedule.bad_window", index=index, problem=str(exc)) from exc
        parts.append(f"{_day_runs(days, lang)} {start}-{end}")
    if not parts:
        return None
    text = ("，" if lang == "zh" else ", ").join(parts)
    Schedule.parse(text)  # the text must read back; raises ScheduleError naming the bad part
    return text


def text_to_windows(text: str | None) -> list[dict[str, Any]]:
    """A schedule string as the store's windows (``[]`` for ``None``: always active).

    The store keeps times as HH:MM up to 23:59, so an end of ``24:00`` becomes ``00:00`` (the same window:
    an end before the start runs to midnight), and a whole day (``00:00-24:00``), which the store cannot
    write as one window, becomes two halves.
    """
    if text is None:
        return []
    windows = []
    for window in Schedule.parse(text).windows:
        days = [d + 1 for d in sorted(window.weekdays)]
        start, end = window.start_min, window.end_min % (24 * 60)
        halves = [(start, 12 * 60), (12 * 60, end)] if start == end == 0 else [(start, end)]
        for a, b in halves:
            windows.append(
                {"days": days, "start": f"{a // 60:02d}:{a % 60:02d}", "end": f"{b // 60:02d}:{b % 60:02d}"}
            )
    return windows
