"""Zone rule schedules: the one wire form and its text notation.

On the wire (device configuration, the store's zones) a schedule is a list of :class:`ScheduleWindow`
(``[{"days": [1..7 ISO], "start": "HH:MM", "end": "HH:MM"}]``, empty: always). People write the text
notation: ``"mon-sun 06:00-22:00"`` or ``"mon-fri 07:00-08:30, sat 09:00-12:00"`` (the daemon's YAML, the
zone editor). :func:`text_to_windows` and :func:`windows_to_text` are the one place where the two meet.

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

from contract.fields import HHMM, IsoWeekday

DAYS = ("mon", "tue", "wed", "thu", "fri", "sat", "sun")
_WINDOW = re.compile(
    r"^\s*(?P<days>[a-z]{3}(?:-[a-z]{3})?(?:\s*/\s*[a-z]{3}(?:-[a-z]{3})?)*)\s+"
    r"(?P<start>\d{2}:\d{2})-(?P<end>\d{2}:\d{2})\s*$"
)


class ScheduleError(ValueError):
    """A schedule string that cannot be parsed; the message shows the expected form."""


def _minutes(text: str, source: str) -> int:
    hours, minutes = int(text[:2]), int(text[3:])
    if hours > 24 or minutes > 59 or (hours == 24 and minutes):
        raise ScheduleError(f"{source!r}: {text} is not a time of day (HH:MM, 00:00-24:00)")
    return hours * 60 + minutes


def _days(text: str, source: str) -> frozenset[int]:
    days: set[int] = set()
    for part in text.split("/"):
        part = part.strip()
        first, _, last = part.partition("-")
        if first not in DAYS or (last and last not in DAYS):
            raise ScheduleError(f"{source!r}: unknown day in {part!r}; days are {', '.join(DAYS)}")
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
        for part in text.lower().split(","):
            match = _WINDOW.match(part)
            if match is None:
                raise ScheduleError(
                    f"{text!r}: cannot read {part.strip()!r}; "
                    "expected e.g. 'mon-fri 07:00-08:30, sat 09:00-12:00'"
                )
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


def _day_runs(iso_days: Sequence[int]) -> str:
    """ISO weekdays (1 = Monday) as the text form: runs of consecutive days become ``mon-fri``."""
    days = sorted({int(d) - 1 for d in iso_days})
    runs: list[list[int]] = []
    for day in days:
        if runs and day == runs[-1][-1] + 1:
            runs[-1].append(day)
        else:
            runs.append([day])
    return "/".join(DAYS[r[0]] if len(r) == 1 else f"{DAYS[r[0]]}-{DAYS[r[-1]]}" for r in runs)


def windows_to_text(windows: Sequence[Mapping[str, Any]]) -> str | None:
    """The store's windows as a schedule string (``None`` for no windows: always active).

    Raises :class:`ScheduleError` naming the window when one is malformed.
    """
    parts = []
    for index, window in enumerate(windows):
        try:
            days, start, end = window["days"], str(window["start"]), str(window["end"])
            if not days or any(not 1 <= int(d) <= 7 for d in days):
                raise ValueError(f"days {days!r} are not ISO weekdays 1..7")
        except (KeyError, TypeError, ValueError) as exc:
            raise ScheduleError(f"schedule window {index}: {exc} (expected {{days, start, end}})") from exc
        parts.append(f"{_day_runs(days)} {start}-{end}")
    if not parts:
        return None
    text = ", ".join(parts)
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
