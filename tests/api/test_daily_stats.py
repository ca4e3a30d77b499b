"""The statistics' daily summary (api.daily_stats) against the cases, on SQLite and PostgreSQL.

A random mix of workflow operations over two weeks (new cases, file, dispatch, start, return, resolve,
verify, rework, close, void, re-code and the merge it makes, extensions, defer/resume, overdue marking,
a case deleted, and old cases moved days after they were created); then every report, ranking and
dashboard figure added up from the summary must equal the same figure read straight from the cases (the
direct queries, kept as the oracle), for every day, week, the month and the whole span, for each unit
scope and for a "now" inside the span (due figures that depend on it) and after it. The summary kept
by the flush listener must also equal the one :func:`api.daily_stats.rebuild` makes in SQL.
"""

from __future__ import annotations

import datetime as dt
import random
from typing import Any
from zoneinfo import ZoneInfo

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import Connection, delete, select, text, update
from sqlalchemy.orm import Session

from api.actors import SYSTEM, Actor
from api.auth import create_user
from api.case_actions import apply_action
from api.daily_stats import rebuild
from api.errors import Conflict, Forbidden, InvalidInput, NotFound
from api.models import (
    DAILY_COUNTS,
    DAILY_PLACE_COUNTS,
    AuditEvent,
    CalendarSettings,
    Case,
    CaseStatus,
    DailyPlaceStats,
    DailyStats,
    Place,
    Role,
)
from api.overdue import check_overdue
from api.stats import build_ranking, build_report, make_period, report_and_ranking, uses_summary
from api.workflow import TABLE, allowed_actions
from tests.api.builders import World, make_operator, make_world
from tests.api.conftest import Store

SH = ZoneInfo("Asia/Shanghai")
T0 = dt.datetime(2024, 6, 2, 16, 0, tzinfo=dt.UTC)  # Mon 2024-06-03 00:00 in Shanghai
DAYS = 21
CODES = ["0102", "0501", "0505", "0506"]
STEPS = 400


def _summary_rows(connection: Connection) -> dict[str, dict[tuple[Any, ...], tuple[int, ...]]]:
    """Both tables, rows whose counts are all zero left out (the listener leaves such rows behind)."""
    rows: dict[str, dict[tuple[Any, ...], tuple[int, ...]]] = {}
    for table, keys, counts in (
        (DailyStats, ("day", "unit_id", "violation_code", "status"), DAILY_COUNTS),
        (DailyPlaceStats, ("day", "unit_id", "place_id"), DAILY_PLACE_COUNTS),
    ):
        columns = [getattr(table, name) for name in (*keys, *counts)]
        found = {}
        for row in connection.execute(select(*columns)):
            key, values = tuple(row[: len(keys)]), tuple(int(v) for v in row[len(keys) :])
            if any(values):
                found[key] = values
        rows[table.__tablename__] = found
    return rows


class Simulation:
    """The random operations, each in its own transaction at a simulated time."""

    def __init__(self, store: Store, seed: int) -> None:
        self.store, self.rng = store, random.Random(seed)
        self.world: World = make_world(store.sessions)
        with store.sessions.begin() as s:
            places = [
                Place(key=f"P{i}", name=f"grid {i}", owner_unit_id=self.world.district_id) for i in (2, 3)
            ]
            s.add_all(places)
            s.flush()
            self.places = [self.world.place_id, *(p.id for p in places)]
            admin = create_user(s, username="admin", password="correct-horse", role=Role.ADMIN)
            self.admin = Actor(kind="user", id=admin.id, name="admin", role=Role.ADMIN)
        self.units = [self.world.sanitation_id, self.world.traffic_id, self.world.district_id]
        self.now = T0
        self.done: dict[str, int] = {}

    def run(self, steps: int) -> None:
        for _ in range(steps):
            self.now += dt.timedelta(minutes=self.rng.choice([5, 15, 45, 90, 180]))
            roll = self.rng.random()
            if roll < 0.28:
                self.create()
            elif roll < 0.31:
                self.count("overdue", check_overdue(self.store.sessions, self.store.settings, self.now))
            elif roll < 0.32:
                self.delete_one()
            else:
                self.act()

    def count(self, what: str, n: int = 1) -> None:
        self.done[what] = self.done.get(what, 0) + n

    def create(self) -> None:
        place, code = self.rng.choice(self.places), self.rng.choice(CODES)
        slot = f"{place}|{code}"
        with self.store.sessions.begin() as s:
            if s.scalar(select(Case.id).where(Case.open_slot == slot)) is not None:
                return
            closed = s.scalars(
                select(Case.id).where(Case.status == CaseStatus.CLOSED.value, Case.place_id == place)
            ).all()
            s.add(
                Case(
                    violation_code=code,
                    place_id=place,
                    camera_code="cam-1",
                    open_slot=slot,
                    created_at=self.now,
                    updated_at=self.now,
                    recurrence_of_id=self.rng.choice(closed) if closed and self.rng.random() < 0.5 else None,
                )
            )
        self.count("created")

    def delete_one(self) -> None:
        """A case without a trail deleted through the ORM (no code path does; the listener counts it out)."""
        with self.store.sessions.begin() as s:
            trail = select(AuditEvent.case_id)
            case = s.scalars(select(Case).where(Case.id.not_in(trail)).limit(1)).first()
            if case is not None:
                s.delete(case)
                self.count("deleted")

    def act(self) -> None:
        with self.store.sessions() as s:
            ended = [CaseStatus.CLOSED.value, CaseStatus.VOIDED.value]
            ids = s.scalars(select(Case.id).where(Case.status.not_in(ended)).order_by(Case.id)).all()
            if not ids:
                return
            case = s.get_one(Case, self.rng.choice(ids))  # old cases too: changes days after creation
            pending = case.extension_requested_hours is not None
            actions = allowed_actions(case.status, "admin", owns_case=True, extension_pending=pending)
            if not actions:
                return
            action = self.rng.choice(actions)
            row = TABLE[action]
            fields: dict[str, Any] = {}
            if row.reason_choices:
                fields["reason"] = self.rng.choice([r for r in row.reason_choices if r != "false_positive"])
            if row.needs_note:
                fields["note"] = "not ours"
            if row.hours != "none":
                fields["hours"] = self.rng.choice([1.0, 4.0, 30.0])
            if row.takes_code:
                fields["violation_code"] = self.rng.choice(CODES)
            if row.takes_unit:
                fields["unit_id"] = self.rng.choice(self.units)
            try:
                apply_action(
                    s, case, action, self.admin, settings=self.store.settings, now=self.now, **fields
                )
                s.commit()
            except (Conflict, Forbidden, InvalidInput, NotFound):
                s.rollback()
                self.count("refused")
                return
            self.count(action.value)
            merged = s.scalar(
                select(AuditEvent.id).where(AuditEvent.action == "merge", AuditEvent.at == self.now)
            )
            if merged is not None:
                self.count("merge")


def _periods() -> list[tuple[str, dict[str, Any]]]:
    days = [T0.astimezone(SH).date() + dt.timedelta(days=i) for i in range(DAYS + 2)]
    periods: list[tuple[str, dict[str, Any]]] = [("daily", {"day": d}) for d in days]
    periods += [("weekly", {"day": days[i]}) for i in (0, 7, 14)]
    periods.append(("monthly", {"day": days[0]}))
    periods.append(("custom", {"start": days[0] - dt.timedelta(days=1), "end": days[-1]}))
    return periods


def _assert_same_figures(session: Session, nows: list[dt.datetime]) -> int:
    """Every report, ranking and dashboard from the summary equals the one from the cases; how many."""
    compared = 0
    for kind, where in _periods():
        period = make_period(kind, SH, **where)  # type: ignore[arg-type]
        assert uses_summary(session, period)
        for now in nows:
            for unit in (None, "sanitation", "traffic", "district"):
                summed, direct = (
                    build_report(
                        session, SYSTEM, period, unit_code=unit, now=now, summary=source
                    ).model_dump()
                    for source in (True, False)
                )
                assert summed == direct, (kind, where, now, unit)
                compared += 1
            summed_ranking, direct_ranking = (
                build_ranking(session, SYSTEM, period, min_cases=1, now=now, summary=source).model_dump()
                for source in (True, False)
            )
            assert summed_ranking == direct_ranking, (kind, where, now)
            dashboards = [
                tuple(
                    m.model_dump()
                    for m in report_and_ranking(session, SYSTEM, period, min_cases=2, now=now, summary=source)
                )
                for source in (True, False)
            ]
            assert dashboards[0] == dashboards[1], (kind, where, now)
            compared += 2
    return compared


@pytest.mark.parametrize("seed", [16])
def test_summary_equals_the_cases_after_random_workflows(store: Store, seed: int) -> None:
    simulation = Simulation(store, seed)
    simulation.run(STEPS // 2)
    middle = simulation.now
    simulation.run(STEPS - STEPS // 2)
    done = simulation.done
    # the mix did what it is meant to exercise
    for what in (
        "created", "file", "dispatch", "start", "resolve", "verify", "rework", "return", "close", "void",
        "recode", "merge", "overdue", "request_extension", "approve_extension", "deleted",
    ):  # fmt: skip
        assert done.get(what, 0) > 0, (what, sorted(done.items()))
    with store.sessions() as session:
        statuses = set(session.scalars(select(Case.status)))
        assert {"closed", "voided", "dispatched"} <= statuses, statuses
        assert T0 + dt.timedelta(days=8) < simulation.now < T0 + dt.timedelta(days=DAYS)
        nows = [T0 + dt.timedelta(days=3, hours=5), middle, simulation.now + dt.timedelta(days=30)]
        compared = _assert_same_figures(session, nows)
    assert compared > 100

    with store.engine.connect() as connection:
        kept = _summary_rows(connection)
        rebuild(connection)
        assert _summary_rows(connection) == kept  # the SQL fill agrees with the flush listener
        connection.rollback()
    assert kept["daily_stats"] and kept["daily_place_stats"]


def test_a_case_moved_days_later_leaves_its_old_rows(store: Store) -> None:
    """Created and filed (so dispatched to the place's owner) on day 1, reassigned on day 3, returned on
    day 5, voided on day 9: each report sees it where it now is, and the rows of its old unit and
    statuses are back to 0."""
    simulation = Simulation(store, 1)
    with store.sessions.begin() as s:
        s.add(Case(violation_code="0102", place_id=simulation.places[0], created_at=T0, updated_at=T0))
    with store.sessions() as s:
        case = s.scalars(select(Case)).one()
        for action, days, extra in (
            ("file", 0.1, {}),
            ("reassign", 2, {"unit_id": simulation.world.sanitation_id}),  # filing sent it to district
            ("return", 4, {"note": "not ours"}),
            ("void", 8, {"reason": "not_our_responsibility"}),
        ):
            apply_action(
                s,
                case,
                action,
                simulation.admin,
                settings=store.settings,
                now=T0 + dt.timedelta(days=days),
                **extra,
            )
            s.commit()
    with store.engine.connect() as connection:
        rows = _summary_rows(connection)["daily_stats"]
    # nothing left under pending_review, filed or dispatched, nor under the district
    assert {(key[1], key[3]) for key in rows} == {(simulation.world.sanitation_id, "voided")}
    with store.sessions() as s:
        week = make_period("weekly", SH, day=T0.astimezone(SH).date())
        report = build_report(s, SYSTEM, week, now=T0 + dt.timedelta(days=10))
        assert (report.totals.created, report.totals.filed, report.totals.voided_after_filing) == (1, 1, 1)
        assert report.totals.dispatched == 0  # voided: not counted as dispatched (as before)
        assert [(u.unit, u.created) for u in report.by_unit] == [("sanitation", 1)]
        assert [(s.status, s.count) for s in report.by_status] == [("voided", 1)]
        assert report == build_report(s, SYSTEM, week, now=T0 + dt.timedelta(days=10), summary=False)


def test_a_new_calendar_zone_rebuilds_the_summary(store: Store) -> None:
    """A case at 00:30 Shanghai time is on the 3rd there and the 2nd in UTC: after the calendar moves to
    UTC (through the ORM, as the config import does), the summary holds UTC days."""
    simulation = Simulation(store, 2)
    created = dt.datetime(2024, 6, 3, 0, 30, tzinfo=SH)
    with store.sessions.begin() as s:
        s.add(
            Case(violation_code="0102", place_id=simulation.places[0], created_at=created, updated_at=created)
        )
    with store.sessions.begin() as s:
        s.add(CalendarSettings(timezone="UTC", periods=[["09:00", "17:00"]], workdays=[1, 2, 3, 4, 5]))
    with store.engine.connect() as connection:
        days = {key[0] for key in _summary_rows(connection)["daily_stats"]}
        assert connection.scalar(text("SELECT timezone FROM daily_stats_state")) == "UTC"
    assert days == {dt.date(2024, 6, 2)}
    with store.sessions() as s:
        utc_day = make_period("daily", ZoneInfo("UTC"), day=dt.date(2024, 6, 2))
        assert uses_summary(s, utc_day)
        assert build_report(s, SYSTEM, utc_day).totals.created == 1
        shanghai_day = make_period("daily", SH, day=dt.date(2024, 6, 3))
        assert not uses_summary(s, shanghai_day)  # not the summary's zone: read from the cases
        assert build_report(s, SYSTEM, shanghai_day).totals.created == 1


def test_the_calendar_api_moves_the_summary_to_its_zone(client: TestClient, store: Store) -> None:
    """PUT /api/v1/calendar writes with an upsert (no ORM flush): it rebuilds the summary itself."""
    simulation = Simulation(store, 4)
    created = dt.datetime(2024, 6, 3, 0, 30, tzinfo=SH)  # the 2nd in UTC
    with store.sessions.begin() as s:
        s.add(
            Case(violation_code="0102", place_id=simulation.places[0], created_at=created, updated_at=created)
        )
    admin = {"Authorization": f"Bearer {make_operator(store.sessions, Role.ADMIN, username='cal-admin')}"}
    response = client.put("/api/v1/calendar", json={"timezone": "UTC"}, headers=admin)
    assert response.status_code == 200, response.text
    with store.engine.connect() as connection:
        assert connection.scalar(text("SELECT timezone FROM daily_stats_state")) == "UTC"
        assert {key[0] for key in _summary_rows(connection)["daily_stats"]} == {dt.date(2024, 6, 2)}
    report = client.get("/api/v1/stats/report", params={"date": "2024-06-02"}, headers=admin).json()
    assert report["period"]["timezone"] == "UTC" and report["totals"]["created"] == 1


def test_bulk_updates_and_deletes_keep_the_summary(store: Store) -> None:
    """``session.execute(update(Case)...)`` (tests and tools end cases so) and a bulk DELETE keep the
    summary as a flush does: it equals the SQL fill after each."""
    simulation = Simulation(store, 3)
    with store.sessions.begin() as s:
        for hours in range(6):
            at = T0 + dt.timedelta(hours=hours * 7)
            s.add(
                Case(
                    violation_code="0102", place_id=simulation.places[hours % 3], created_at=at, updated_at=at
                )
            )
    later = T0 + dt.timedelta(days=3)
    statements: list[Any] = [
        update(Case)
        .where(Case.id <= 3)
        .values(status="closed", closed_at=later, unit_id=simulation.units[0]),
        update(Case).values(status=Case.status),  # the SQLite row lock of lock_case: no change
        update(Case).values(overdue=True, updated_at=later),  # not counted: nothing to do
        delete(Case).where(Case.id == 6),
    ]
    for statement in statements:
        with store.sessions.begin() as s:
            s.execute(statement)
        with store.engine.connect() as connection:
            kept = _summary_rows(connection)
            rebuild(connection)
            assert _summary_rows(connection) == kept, statement
            connection.rollback()
    with store.sessions.begin() as s:  # by primary key, executemany
        s.execute(
            update(Case), [{"id": 4, "status": "voided", "voided_at": later}, {"id": 5, "unit_id": None}]
        )
    with store.engine.connect() as connection:
        kept = _summary_rows(connection)
        assert {key[3] for key in kept["daily_stats"]} == {"closed", "voided", "pending_review"}
        rebuild(connection)
        assert _summary_rows(connection) == kept
        connection.rollback()


def test_the_bulk_city_generator_leaves_the_summary_right(store: Store) -> None:
    """benchmarks.city_cases inserts cases with bulk SQL (no ORM), then fills the summary with the
    migration's SQL: the month's figures from it equal those read from the cases."""
    if store.backend != "postgresql":
        pytest.skip("the bulk SQL city is PostgreSQL's")
    from benchmarks.city_cases import generate

    make_world(store.sessions)
    now = dt.datetime(2024, 6, 20, 6, 0, tzinfo=dt.UTC)
    assert generate(store.engine, 400, days=12, now=now).cases == 400
    with store.sessions() as session:
        period = make_period("custom", SH, start=dt.date(2024, 6, 5), end=dt.date(2024, 6, 21))
        assert uses_summary(session, period)
        summed, direct = (
            build_report(session, SYSTEM, period, now=now, summary=source) for source in (True, False)
        )
        assert summed.totals.created > 300 and summed.totals.closed > 0 and summed.totals.due > 0
        assert summed == direct
