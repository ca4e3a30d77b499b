"""Zone rule schedules such as ``"mon-sun 06:00-22:00"`` or ``"mon-fri 07:00-08:30, sat 09:00-12:00"``.

A schedule is a list of (weekdays, start, end) windows in the camera's time zone. A window whose end is
before its start runs past midnight (``fri-sat 22:00-02:00`` covers Saturday 01:00).
"""

from __future__ import annotations

import datetime as dt
import re
from dataclasses import dataclass
from zoneinfo import ZoneInfo

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
