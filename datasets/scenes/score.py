"""Event-level precision and recall of the cases a daemon made against a demo clip's incident timeline.

A case matches an incident when it has the same violation type and zone, and both its first sighting and
its confirmation fall inside the incident's interval widened by a tolerance. Each incident matches at
most one case and each case at most one incident.
"""

from __future__ import annotations

import datetime as dt
import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Generic, TypeVar

DEFAULT_TOLERANCE_S = 10.0


class TimelineError(ValueError):
    """A timeline file that cannot be read; the message names the file and the field."""


@dataclass(frozen=True)
class Incident:
    violation_type: str
    zone: str
    start_s: float
    end_s: float
    what: str = ""


@dataclass(frozen=True)
class CaseEvent:
    """A case as the scorer sees it: times in seconds from the clip's start."""

    case_id: int
    violation_type: str
    zone: str
    first_seen_s: float
    confirmed_s: float


@dataclass(frozen=True)
class Timeline:
    start_time: dt.datetime
    incidents: tuple[Incident, ...]


Expected = TypeVar("Expected")  # what a case should match: an incident of the demo, a composite's pile


@dataclass(frozen=True)
class Score(Generic[Expected]):
    """Cases matched to what was expected, what was missed, and cases that match nothing."""

    matches: tuple[tuple[Expected, CaseEvent], ...]
    missed: tuple[Expected, ...]
    false_cases: tuple[CaseEvent, ...]

    @property
    def precision(self) -> float:
        total = len(self.matches) + len(self.false_cases)
        return len(self.matches) / total if total else 1.0

    @property
    def recall(self) -> float:
        total = len(self.matches) + len(self.missed)
        return len(self.matches) / total if total else 1.0


def timeline_field(data: dict[str, Any], key: str, kind: type, where: str) -> Any:
    if key not in data:
        raise TimelineError(f"{where}: missing field {key!r}")
    value = data[key]
    if kind is float and isinstance(value, int | float) and not isinstance(value, bool):
        return float(value)
    if not isinstance(value, kind):
        raise TimelineError(f"{where}: field {key!r} must be {kind.__name__}, got {value!r}")
    return value


def read_timeline_object(path: Path, holds: str) -> tuple[dict[str, Any], dt.datetime]:
    """A timeline file's JSON object and its ``start_time``; errors name the file (and the line) and say
    what the object ``holds``."""
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError as exc:
        raise TimelineError(f"{path}: timeline file not found") from exc
    except json.JSONDecodeError as exc:
        raise TimelineError(f"{path}:{exc.lineno}: not valid JSON ({exc.msg})") from exc
    if not isinstance(data, dict):
        raise TimelineError(f"{path}: expected a JSON object with {holds}")
    try:
        start = dt.datetime.fromisoformat(timeline_field(data, "start_time", str, str(path)))
    except ValueError as exc:
        raise TimelineError(f"{path}: start_time: {exc}") from exc
    return data, start


def load_timeline(path: Path) -> Timeline:
    data, start = read_timeline_object(path, "start_time and incidents")
    if start.tzinfo is None:
        raise TimelineError(f"{path}: start_time must carry a UTC offset, got {data['start_time']!r}")
    incidents = []
    for index, item in enumerate(timeline_field(data, "incidents", list, str(path))):
        where = f"{path}: incidents[{index}]"
        if not isinstance(item, dict):
            raise TimelineError(f"{where}: expected an object")
        incident = Incident(
            timeline_field(item, "violation_type", str, where),
            timeline_field(item, "zone", str, where),
            timeline_field(item, "start_s", float, where),
            timeline_field(item, "end_s", float, where),
            str(item.get("what", "")),
        )
        if incident.end_s < incident.start_s:
            raise TimelineError(f"{where}: end_s {incident.end_s} is before start_s {incident.start_s}")
        incidents.append(incident)
    return Timeline(start, tuple(incidents))


def _within(incident: Incident, seconds: float, tolerance_s: float) -> bool:
    return incident.start_s - tolerance_s <= seconds <= incident.end_s + tolerance_s


def score(
    incidents: tuple[Incident, ...] | list[Incident],
    cases: list[CaseEvent],
    tolerance_s: float = DEFAULT_TOLERANCE_S,
) -> Score[Incident]:
    """Match cases to incidents (earliest case first, each to the eligible incident that started nearest)."""
    free = list(incidents)
    matches, false_cases = [], []
    for case in sorted(cases, key=lambda c: (c.first_seen_s, c.case_id)):
        eligible = [
            i
            for i in free
            if i.violation_type == case.violation_type
            and i.zone == case.zone
            and _within(i, case.first_seen_s, tolerance_s)
            and _within(i, case.confirmed_s, tolerance_s)
        ]
        if not eligible:
            false_cases.append(case)
            continue
        best = min(eligible, key=lambda i: abs(i.start_s - case.first_seen_s))
        free.remove(best)
        matches.append((best, case))
    return Score(tuple(matches), tuple(free), tuple(false_cases))


def _aware(value: str) -> dt.datetime:
    parsed = dt.datetime.fromisoformat(value)
    return parsed if parsed.tzinfo else parsed.replace(tzinfo=dt.UTC)  # SQLite drops the offset: UTC


def case_events(cases: list[dict[str, Any]], codes: dict[str, str], start: dt.datetime) -> list[CaseEvent]:
    """Cases from the store's API (``CasePublic``) with event codes mapped back to violation types."""
    events = []
    for case in cases:
        first, confirmed = case.get("first_seen_at"), case.get("confirmed_at")
        if first is None or confirmed is None:
            continue  # not a camera case
        events.append(
            CaseEvent(
                int(case["id"]),
                codes.get(case["violation_code"], case["violation_code"]),
                str(case.get("zone_code") or ""),
                (_aware(first) - start).total_seconds(),
                (_aware(confirmed) - start).total_seconds(),
            )
        )
    return events


CASE_PAGE = 200  # cases per request of fetch_cases


def fetch_cases(base_url: str, username: str, password: str, start: dt.datetime) -> list[CaseEvent]:
    """Every case in the store, through its API as an operator sees them."""
    import httpx

    with httpx.Client(base_url=base_url, timeout=30) as client:
        login = client.post("/api/v1/auth/login", json={"username": username, "password": password})
        login.raise_for_status()
        headers = {"Authorization": f"Bearer {login.json()['access_token']}"}
        types = client.get("/api/v1/violation-types", params={"limit": 500}, headers=headers)
        types.raise_for_status()
        codes = {t["code"]: t["pipeline_type"] for t in types.json()["data"]}
        rows: list[dict[str, Any]] = []
        params: dict[str, Any] = {"limit": CASE_PAGE}
        while True:  # keyset pages: the count stops at 10,000 (count_capped), next_cursor does not
            page = client.get("/api/v1/cases", params=params, headers=headers)
            page.raise_for_status()
            body = page.json()
            rows.extend(body["data"])
            if body["next_cursor"] is None:
                return case_events(rows, codes, start)
            params = {"limit": CASE_PAGE, "after": body["next_cursor"]}


def report(result: Score[Incident]) -> str:
    lines = []
    for incident, case in result.matches:
        lines.append(
            f"  hit   case {case.case_id}: {case.violation_type} in {case.zone}, "
            f"seen {case.first_seen_s:.0f} s, "
            f"confirmed {case.confirmed_s:.0f} s  <- {incident.what or incident.violation_type} "
            f"({incident.start_s:.0f}-{incident.end_s:.0f} s)"
        )
    for incident in result.missed:
        lines.append(
            f"  miss  {incident.what or incident.violation_type} in {incident.zone} "
            f"({incident.start_s:.0f}-{incident.end_s:.0f} s): no case"
        )
    for case in result.false_cases:
        lines.append(
            f"  false case {case.case_id}: {case.violation_type} in {case.zone}, "
            f"seen {case.first_seen_s:.0f} s, "
            f"confirmed {case.confirmed_s:.0f} s: no such incident"
        )
    lines.append(
        f"event-level precision {result.precision:.2f} ({len(result.matches)}/"
        f"{len(result.matches) + len(result.false_cases)} cases), recall {result.recall:.2f} "
        f"({len(result.matches)}/{len(result.matches) + len(result.missed)} incidents)"
    )
    return "\n".join(lines)
