"""Statistics: every figure checked exactly on cases with known times, on SQLite and PostgreSQL.

The main data set is one week, Mon 2024-06-03 .. Sun 2024-06-09 in Asia/Shanghai (UTC+8), plus cases
just outside it. Case E is created at 00:30 local on the 6th, which is still the 5th in UTC, so
day buckets must be taken in the calendar's zone.
"""

from __future__ import annotations

import csv
import datetime as dt
import io
from typing import Any
from zoneinfo import ZoneInfo

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import event
from sqlalchemy.orm import Session, sessionmaker

from api.actors import SYSTEM
from api.errors import InvalidInput
from api.models import CalendarSettings, Case, Place, Role, Unit
from api.stats import PeriodKind, build_report, make_period
from tests.api.builders import World, auth, make_device_key, make_operator, make_world
from tests.api.conftest import Store

SH = ZoneInfo("Asia/Shanghai")
WEEK = {"period": "weekly", "date": "2024-06-05"}
REPORT, RANKING = "/api/v1/stats/report", "/api/v1/stats/ranking"


def at(text: str) -> dt.datetime:
    """'5 08:30' or '2 23:59:59': a local (Asia/Shanghai) time in June 2024."""
    day, clock = text.split()
    return dt.datetime.combine(dt.date(2024, 6, int(day)), dt.time.fromisoformat(clock), tzinfo=SH)


# Filed when created, except cases pending review. Extra: more columns ("4 10:00" strings are times).
CaseRow = tuple[
    str, str, str, str, str | None, str, str | None, str | None, str | None, str | None, dict[str, Any]
]
# fmt: off
WEEK_CASES: list[CaseRow] = [
    # case place code  status        unit   created    dispatched deadline   resolved   closed     extra
    ("A", "P1", "0102", "closed",      "san", "3 09:00", "3 09:30", "3 13:30", "3 11:00", "3 12:00", {}),
    # B: resolved and closed after the deadline
    ("B", "P2", "0102", "closed",      "san", "3 10:00", "3 11:00", "4 10:00", "4 11:00", "4 12:00", {}),
    # C: first dispatched at 10:00, reworked (re-dispatched at 16:00), resolved again and closed in time
    ("C", "P1", "0501", "closed",      "san", "4 09:00", "4 16:00", "5 10:00", "5 09:00", "5 09:30",
     {"rework_count": 1, "first_dispatched_at": "4 10:00"}),
    # D: in progress past its deadline
    ("D", "P3", "0505", "in_progress", "tra", "5 08:00", "5 08:30", "5 12:30", None, None, {"overdue": True}),
    # E: filed and voided before dispatch; 00:30 local is still the 5th in UTC
    ("E", "P3", "0505", "voided",      None,  "6 00:30", None, None, None, None,
     {"voided_at": "6 01:00", "void_reason": "false_positive"}),
    # F: awaiting review, late on the last day
    ("F", "P2", "0506", "pending_review", None, "9 23:30", None, None, None, None, {}),
    # G: recurs A (复发); returned once and re-dispatched, open past its deadline
    ("G", "P1", "0102", "dispatched",  "san", "8 10:00", "8 10:06", "8 14:06", None, None,
     {"return_count": 1, "recurrence_of": "A"}),
    # K: dispatched, then voided (not ours): not counted against the unit
    ("K", "P3", "0505", "voided",      "tra", "4 09:00", "4 09:10", "4 13:10", None, None,
     {"voided_at": "4 10:00", "void_reason": "not_our_responsibility"}),
    # H: created and dispatched the week before; deadline and closing (in time) in this week
    ("H", "P3", "0505", "closed",      "tra", "1 10:00", "1 10:00", "3 09:00", "3 07:00", "3 08:00", {}),
    # I: the first instant of the next week; J: the last second of the week before
    ("I", "P2", "0102", "dispatched",  "san", "10 00:00", "10 00:10", "10 04:00", None, None, {}),
    ("J", "P2", "0102", "pending_review", None, "2 23:59:59", None, None, None, None, {}),
]
# fmt: on

FIGURE_NAMES = [
    "created", "filed", "voided_after_filing", "dispatched", "resolved_on_time", "reworked", "returned",
    "due", "closed_on_time", "closed", "recurrences", "on_time_closure_rate", "on_time_handling_rate",
    "rework_rate", "accurate_filing_rate", "accurate_dispatch_rate", "mean_hours_to_dispatch",
    "mean_hours_to_close",
]  # fmt: skip
# Worked out by hand from WEEK_CASES for the week 2024-06-03 .. 2024-06-09.
# fmt: off
EXPECTED: dict[str | None, list[Any]] = {
    #             created filed voided disp on-time rework return due closed-on-time closed recur
    None:         [8, 7, 2, 5, 2, 1, 1, 6, 3, 4, 1, 0.5, 0.4, 0.2, 0.7143, 0.8, 0.62, 24.875],
    "sanitation": [4, 4, 0, 4, 2, 1, 1, 4, 2, 3, 1, 0.5, 0.5, 0.25, 1.0, 0.75, 0.65, 17.8333],
    "traffic":    [2, 2, 1, 1, 0, 0, 0, 2, 1, 1, 0, 0.5, 0.0, 0.0, 0.5, 1.0, 0.5, 46.0],
    "unassigned": [2, 1, 1, 0, 0, 0, 0, 0, 0, 0, 0, None, None, None, 0.0, None, None, None],
}
# fmt: on


def add_case(
    session: Session, *, place_id: int, violation: str, status: str, unit_id: int | None, **times: Any
) -> int:
    created = times.pop("created_at")
    case = Case(
        violation_code=violation, place_id=place_id, status=status, unit_id=unit_id, created_at=created,
        updated_at=created, **times,
    )  # fmt: skip
    session.add(case)
    session.flush()
    return case.id


def build_week(sessions: sessionmaker[Session]) -> World:
    """WEEK_CASES in the database."""
    world = make_world(sessions)
    ids: dict[str, int] = {}
    with sessions.begin() as s:
        p2, p3 = Place(key="P2", name="王府井 grid 2"), Place(key="P3", name="金鱼胡同")
        s.add_all([p2, p3])
        s.flush()
        places = {"P1": world.place_id, "P2": p2.id, "P3": p3.id}
        units = {"san": world.sanitation_id, "tra": world.traffic_id, None: None}
        for (
            name,
            place,
            code,
            status,
            unit,
            created,
            dispatched,
            deadline,
            resolved,
            closed,
            extra,
        ) in WEEK_CASES:
            columns = {k: at(v) if k.endswith("_at") else v for k, v in extra.items() if k != "recurrence_of"}
            if "recurrence_of" in extra:
                columns["recurrence_of_id"] = ids[extra["recurrence_of"]]
            times = {
                "dispatched_at": dispatched,
                "deadline_at": deadline,
                "resolved_at": resolved,
                "closed_at": closed,
            }
            columns.update({k: at(v) for k, v in times.items() if v is not None})
            filed = None if status == "pending_review" else at(created)
            ids[name] = add_case(
                s, place_id=places[place], violation=code, status=status, unit_id=units[unit],
                created_at=at(created), filed_at=filed, **columns,
            )  # fmt: skip
    return world


def figures(row: dict[str, Any]) -> list[Any]:
    return [row[name] for name in FIGURE_NAMES]


def get(client: TestClient, path: str, token: str, **params: str) -> Any:
    response = client.get(path, params=params, headers=auth(token))
    assert response.status_code == 200, response.text
    return response.json()


def test_weekly_report_figures(client: TestClient, store: Store) -> None:
    build_week(store.sessions)
    report = get(client, REPORT, make_operator(store.sessions, Role.VIEWER), **WEEK)
    assert report["period"] == {
        "kind": "weekly", "start": "2024-06-03", "end": "2024-06-09", "timezone": "Asia/Shanghai",
        "start_at": "2024-06-02T16:00:00Z", "end_at": "2024-06-09T16:00:00Z",
    }  # fmt: skip
    assert figures(report["totals"]) == EXPECTED[None]
    by_unit = {row["unit"] or "unassigned": figures(row) for row in report["by_unit"]}
    assert by_unit == {k: v for k, v in EXPECTED.items() if k is not None}
    assert [(s["status"], s["count"]) for s in report["by_status"]] == [
        ("closed", 3), ("voided", 2), ("dispatched", 1), ("in_progress", 1), ("pending_review", 1),
    ]  # fmt: skip
    assert [(v["violation_code"], v["name"], v["count"]) for v in report["by_violation"]] == [
        ("0102", "暴露垃圾", 3), ("0505", "机动车乱停放", 3), ("0501", "无照经营游商", 1),
        ("0506", "非机动车乱停放", 1),
    ]  # fmt: skip
    assert report["by_place"] == [
        {"place": "110101001001001", "place_name": "东华门大街 grid 1", "count": 3, "recurrences": 1},
        {"place": "P3", "place_name": "金鱼胡同", "count": 3, "recurrences": 0},
        {"place": "P2", "place_name": "王府井 grid 2", "count": 2, "recurrences": 0},
    ]
    assert report["recurrence_by_place"] == [report["by_place"][0]]
    # fmt: off
    assert [(d["day"], d["created"], d["dispatched"], d["closed"]) for d in report["by_day"]] == [
        ("2024-06-03", 2, 2, 2),
        ("2024-06-04", 2, 1, 1),  # K was voided: not counted as dispatched
        ("2024-06-05", 1, 1, 1),
        ("2024-06-06", 1, 0, 0),  # E: 00:30 local, still the 5th in UTC
        ("2024-06-07", 0, 0, 0),
        ("2024-06-08", 1, 1, 0),
        ("2024-06-09", 1, 0, 0),  # F: 23:30 local; I (00:00 on the 10th) is next week
    ]
    # fmt: on
    # Mid-week, D's and G's deadlines have not passed: not due yet. H, closed early, is due.
    with store.sessions() as session:
        midweek = build_report(
            session, SYSTEM, make_period("weekly", SH, day=dt.date(2024, 6, 5)), now=at("5 11:00")
        )
    assert (midweek.totals.due, midweek.totals.closed_on_time, midweek.totals.on_time_closure_rate) == (
        4,
        3,
        0.75,
    )


# fmt: off
PERIODS = [
    # query                                            created  first day     last day
    ({"period": "daily", "date": "2024-06-06"},        1,       "2024-06-06", "2024-06-06"),  # E only
    ({"period": "daily", "date": "2024-06-10"},        1,       "2024-06-10", "2024-06-10"),  # I
    ({"period": "weekly", "date": "2024-06-09"},       8,       "2024-06-03", "2024-06-09"),  # Sun ends it
    ({"period": "weekly", "date": "2024-06-10"},       1,       "2024-06-10", "2024-06-16"),
    ({"period": "monthly", "date": "2024-06-30"},      11,      "2024-06-01", "2024-06-30"),
    ({"period": "monthly", "date": "2024-05-31"},      0,       "2024-05-01", "2024-05-31"),
    ({"period": "custom", "from": "2024-06-02", "to": "2024-06-03"},
                                                       3,       "2024-06-02", "2024-06-03"),  # J, A, B
]
# fmt: on


def test_daily_weekly_monthly_and_custom_periods(client: TestClient, store: Store) -> None:
    build_week(store.sessions)
    token = make_operator(store.sessions, Role.DISPATCHER)
    for params, created, start, end in PERIODS:
        report = get(client, REPORT, token, **params)
        period = report["period"]
        assert (report["totals"]["created"], period["start"], period["end"]) == (created, start, end), params
        assert sum(d["created"] for d in report["by_day"]) == created, params


@pytest.mark.parametrize(
    ("kind", "day", "start", "end"),
    [
        ("daily", dt.date(2024, 6, 5), dt.date(2024, 6, 5), dt.date(2024, 6, 5)),
        ("weekly", dt.date(2024, 1, 3), dt.date(2024, 1, 1), dt.date(2024, 1, 7)),
        ("weekly", dt.date(2024, 12, 31), dt.date(2024, 12, 30), dt.date(2025, 1, 5)),
        ("monthly", dt.date(2024, 2, 10), dt.date(2024, 2, 1), dt.date(2024, 2, 29)),
        ("monthly", dt.date(2023, 2, 10), dt.date(2023, 2, 1), dt.date(2023, 2, 28)),
        ("monthly", dt.date(2024, 12, 31), dt.date(2024, 12, 1), dt.date(2024, 12, 31)),
    ],
)
def test_period_ranges(kind: PeriodKind, day: dt.date, start: dt.date, end: dt.date) -> None:
    period = make_period(kind, SH, day=day)
    assert (period.start, period.end) == (start, end)
    assert len(period.boundaries_utc) == (end - start).days + 2
    assert period.start_at == dt.datetime.combine(start, dt.time(), tzinfo=SH)


def test_day_boundaries_follow_daylight_saving() -> None:
    berlin = make_period("daily", ZoneInfo("Europe/Berlin"), day=dt.date(2024, 3, 31))
    assert (berlin.start_at.isoformat(), berlin.end_at.isoformat()) == (
        "2024-03-30T23:00:00+00:00", "2024-03-31T22:00:00+00:00",  # a 23-hour day
    )  # fmt: skip


def test_make_period_rejects_unknown_kind() -> None:
    with pytest.raises(InvalidInput, match="unknown period 'yearly'"):
        make_period("yearly", SH)  # type: ignore[arg-type]


BAD_PERIODS = [
    ({"period": "custom", "from": "2024-06-09", "to": "2024-06-03"}, "'to' (2024-06-03) is before 'from'"),
    ({"period": "custom", "from": "2024-01-01", "to": "2025-01-02"}, "at most 366 days"),
    ({"period": "custom", "from": "2024-01-01"}, "needs both 'from' and 'to'"),
    ({"period": "weekly", "from": "2024-01-01", "to": "2024-01-02"}, "go with period=custom"),
]


def test_bad_periods_and_callers_are_refused(client: TestClient, store: Store) -> None:
    token = make_operator(store.sessions, Role.VIEWER)
    for params, message in BAD_PERIODS:
        response = client.get(REPORT, params=params, headers=auth(token))
        assert response.status_code == 422, params
        assert message in response.json()["detail"]
    assert client.get(REPORT, params={"period": "yearly"}, headers=auth(token)).status_code == 422
    key = make_device_key(store.sessions)
    for path in (REPORT, RANKING):
        assert client.get(path).status_code == 401
        assert client.get(path, headers={"X-Device-Key": key}).status_code == 403


def test_days_are_taken_in_the_calendar_time_zone(client: TestClient, store: Store) -> None:
    """With the working calendar in UTC, E (the 5th at 16:30 UTC) falls on the 5th."""
    build_week(store.sessions)
    with store.sessions.begin() as s:
        s.add(CalendarSettings(timezone="UTC", periods=[["09:00", "17:00"]], workdays=[1, 2, 3, 4, 5]))
    report = get(client, REPORT, make_operator(store.sessions, Role.VIEWER), date="2024-06-05")
    assert (report["period"]["timezone"], report["period"]["start_at"]) == ("UTC", "2024-06-05T00:00:00Z")
    assert report["totals"]["created"] == 2  # D (08:00 local = 00:00 UTC) and E


def test_unit_scope(client: TestClient, store: Store) -> None:
    """Unit handlers see only their unit's figures; other operators may choose a unit."""
    world = build_week(store.sessions)
    handler = make_operator(store.sessions, Role.UNIT_HANDLER, unit_id=world.sanitation_id)
    report = get(client, REPORT, handler, **WEEK)
    assert report["unit"] == "sanitation"
    assert figures(report["totals"]) == EXPECTED["sanitation"]
    assert [row["unit"] for row in report["by_unit"]] == ["sanitation"]
    assert sum(s["count"] for s in report["by_status"]) == 4
    other = client.get(REPORT, params={**WEEK, "unit": "traffic"}, headers=auth(handler))
    assert other.status_code == 403
    assert "only their own unit's figures ('sanitation')" in other.json()["detail"]
    ranking = get(client, RANKING, handler, **WEEK)
    assert [r["unit"] for r in ranking["ranked"] + ranking["left_out"]] == ["sanitation"]

    leader = make_operator(store.sessions, Role.SHIFT_LEADER)
    assert figures(get(client, REPORT, leader, **WEEK, unit="traffic")["totals"]) == EXPECTED["traffic"]
    assert client.get(REPORT, params={**WEEK, "unit": "nope"}, headers=auth(leader)).status_code == 404


# fmt: off
P1 = ["110101001001001", "东华门大街 grid 1"]
CSV_SECTIONS = [
    ("days",       ["day", "created", "dispatched", "closed"],     ["2024-06-03", "2", "2", "2"]),
    ("places",     ["place", "place_name", "count", "recurrences"], [*P1, "3", "1"]),
    ("recurrence", ["place", "place_name", "count", "recurrences"], [*P1, "3", "1"]),
    ("violations", ["violation_code", "name", "count"],            ["0102", "暴露垃圾", "3"]),
    ("statuses",   ["status", "count"],                            ["closed", "3"]),
]
# fmt: on


def read_csv(response: Any) -> list[list[str]]:
    assert response.status_code == 200, response.text
    assert response.headers["content-type"] == "text/csv; charset=utf-8"
    assert response.content.startswith("\ufeff".encode())  # BOM, so that Excel reads UTF-8
    return list(csv.reader(io.StringIO(response.content.decode("utf-8-sig"))))


def test_report_csv(client: TestClient, store: Store) -> None:
    build_week(store.sessions)
    token = make_operator(store.sessions, Role.VIEWER)
    response = client.get(REPORT, params={**WEEK, "format": "csv"}, headers=auth(token))
    header, *rows = read_csv(response)
    assert response.headers["content-disposition"] == (
        'attachment; filename="streetwatch-report-weekly-2024-06-03_2024-06-09-units.csv"'
    )
    assert header == ["period_start", "period_end", "unit", "unit_name", *FIGURE_NAMES]
    by_unit = {row[2] or "unassigned": row for row in rows}
    assert list(by_unit) == ["sanitation", "traffic", "unassigned", "TOTAL"]
    assert by_unit["sanitation"][:4] == ["2024-06-03", "2024-06-09", "sanitation", "环卫所"]
    for unit, expected in [("TOTAL", EXPECTED[None]), ("unassigned", EXPECTED["unassigned"])]:
        assert by_unit[unit][4:] == ["" if v is None else str(v) for v in expected]  # no rate: empty, not 0

    for section, columns, first_row in CSV_SECTIONS:
        response = client.get(
            REPORT, params={**WEEK, "format": "csv", "section": section}, headers=auth(token)
        )
        header, first, *_ = read_csv(response)
        assert response.headers["content-disposition"].endswith(f'-{section}.csv"')
        assert header == ["period_start", "period_end", *columns]
        assert first == ["2024-06-03", "2024-06-09", *first_row]


# --- ranking ----------------------------------------------------------------------------------------

# unit code -> (due cases in the week, of which closed by the deadline)
RANKING_CASES = {"parks": (3, 3), "sanitation": (4, 2), "traffic": (2, 1), "district": (1, 1)}
# fmt: off
RANKINGS = [
    # min cases, ranked (rank, unit, due, on-time closure rate), left out
    (2, [(1, "parks", 3, 1.0), (2, "sanitation", 4, 0.5), (2, "traffic", 2, 0.5)], ["district", "idle"]),
    (3, [(1, "parks", 3, 1.0), (2, "sanitation", 4, 0.5)], ["district", "idle", "traffic"]),
    (5, [], ["district", "idle", "parks", "sanitation", "traffic"]),
]
# fmt: on


def build_ranking_cases(sessions: sessionmaker[Session]) -> None:
    world = make_world(sessions)
    with sessions.begin() as s:
        parks = Unit(code="parks", name="园林所", parent_id=world.district_id)
        s.add_all([parks, Unit(code="idle", name="无案件单位")])
        s.flush()
        ids = {"parks": parks.id, "sanitation": world.sanitation_id, "traffic": world.traffic_id}
        ids["district"] = world.district_id
        for code, (due, on_time) in RANKING_CASES.items():
            for i in range(due):
                closed = at("4 09:00") if i < on_time else at("4 15:00")
                add_case(
                    s, place_id=world.place_id, violation="0102", status="closed", unit_id=ids[code],
                    created_at=at("3 09:00"), filed_at=at("3 09:00"), dispatched_at=at("3 10:00"),
                    deadline_at=at("4 12:00"), resolved_at=closed, closed_at=closed,
                )  # fmt: skip


def test_ranking_leaves_out_units_below_the_minimum(client: TestClient, store: Store) -> None:
    build_ranking_cases(store.sessions)
    token = make_operator(store.sessions, Role.VIEWER)
    for min_cases, ranked, left_out in RANKINGS:
        store.settings.ranking_min_cases = min_cases
        ranking = get(client, RANKING, token, **WEEK)
        assert (ranking["min_cases"], ranking["ranked_units"]) == (min_cases, len(ranked))
        assert [
            (r["rank"], r["unit"], r["due"], r["on_time_closure_rate"]) for r in ranking["ranked"]
        ] == ranked
        assert [u["unit"] for u in ranking["left_out"]] == left_out
        district = next(u for u in ranking["left_out"] if u["unit"] == "district")
        assert district["reason"] == f"1 due case(s) in the period, fewer than the minimum of {min_cases}"

    store.settings.ranking_min_cases = 3
    response = client.get(RANKING, params={**WEEK, "format": "csv"}, headers=auth(token))
    header, *rows = read_csv(response)
    assert response.headers["content-disposition"] == (
        'attachment; filename="streetwatch-ranking-weekly-2024-06-03_2024-06-09.csv"'
    )
    assert header == [
        "period_start", "period_end", "rank", "unit", "unit_name", "due", "closed_on_time",
        "on_time_closure_rate", "on_time_handling_rate", "rework_rate", "dispatched", "left_out_reason",
    ]  # fmt: skip
    assert [(r[2], r[3], r[7]) for r in rows] == [
        ("1", "parks", "1.0"), ("2", "sanitation", "0.5"),
        ("", "district", ""), ("", "idle", ""), ("", "traffic", ""),
    ]  # fmt: skip
    assert rows[-1][-1] == "2 due case(s) in the period, fewer than the minimum of 3"


# --- scale ------------------------------------------------------------------------------------------


def test_query_count_does_not_grow_with_cases(store: Store) -> None:
    """All figures come from GROUP BY queries: more cases, same number of statements."""
    world = build_week(store.sessions)
    period = make_period("monthly", SH, day=dt.date(2024, 6, 1))
    statements: list[str] = []

    def count(*args: Any) -> None:
        statements.append(args[2])

    def report_statements() -> int:
        statements.clear()
        event.listen(store.engine, "before_cursor_execute", count)
        try:
            with store.sessions() as session:
                build_report(session, SYSTEM, period)
        finally:
            event.remove(store.engine, "before_cursor_execute", count)
        return len(statements)

    before = report_statements()
    with store.sessions.begin() as s:
        for minute in range(200):
            add_case(
                s, place_id=world.place_id, violation="0506", status="closed", unit_id=None,
                created_at=at("11 09:00") + dt.timedelta(minutes=minute), dispatched_at=at("11 10:00"),
                deadline_at=at("12 10:00"), closed_at=at("12 09:00"),
            )  # fmt: skip
    assert report_statements() == before <= 10
