"""The overdue job: past-deadline cases are marked, escalated to the parent unit, audited and notified,
exactly once even with several workers."""

from __future__ import annotations

import datetime as dt
import threading

from sqlalchemy import select

from api.actors import SYSTEM, Actor
from api.case_actions import apply_action
from api.models import AuditEvent, Case, Delivery, Role, RoutingRule, Unit
from api.overdue import check_overdue
from api.work_calendar import make_calendar
from tests.api.builders import World, make_pending_case, make_world
from tests.api.conftest import Store

SHANGHAI = make_calendar().timezone
MONDAY_9 = dt.datetime(2026, 3, 2, 9, tzinfo=SHANGHAI)  # 24 working hours (default) -> Thursday 10:30


def _dispatched_case(store: Store, world: World, violation: str = "0102") -> int:
    case_id = make_pending_case(store.sessions, place_id=world.place_id, violation_code=violation)
    with store.sessions.begin() as session:
        apply_action(
            session, session.get_one(Case, case_id), "file", SYSTEM, settings=store.settings, now=MONDAY_9
        )
    return case_id


def _city(store: Store) -> World:
    world = make_world(store.sessions)
    with store.sessions.begin() as session:
        for unit in session.scalars(select(Unit)):
            unit.webhook_url = f"http://127.0.0.1:9/{unit.code}"
        session.add(RoutingRule(place_id=world.place_id, violation_code="0102", unit_id=world.sanitation_id))
    return world


def test_past_deadline_is_marked_escalated_and_notified_once(store: Store) -> None:
    world = _city(store)
    late = _dispatched_case(store, world)  # sanitation, whose parent is the district
    resolved = _dispatched_case(store, world, violation="0505")  # the district owns it; no parent
    handler = Actor(kind="user", id=None, name="zhao", role=Role.UNIT_HANDLER, unit_id=world.district_id)
    with store.sessions.begin() as session:
        apply_action(session, session.get_one(Case, resolved), "resolve", handler, settings=store.settings)
    with store.sessions() as session:
        deadline = session.get_one(Case, late).deadline_at
    assert deadline == dt.datetime(2026, 3, 5, 10, 30, tzinfo=SHANGHAI)

    assert check_overdue(store.sessions, store.settings, now=deadline) == 0  # due, not yet past
    after = deadline + dt.timedelta(minutes=1)
    assert check_overdue(store.sessions, store.settings, now=after) == 1
    assert check_overdue(store.sessions, store.settings, now=after + dt.timedelta(hours=1)) == 0

    with store.sessions() as session:
        case = session.get_one(Case, late)
        assert (case.overdue, case.escalated_to_unit_id, case.status) == (
            True,
            world.district_id,
            "dispatched",
        )
        assert session.get_one(Case, resolved).overdue is False  # resolved cases are off the clock
        events = session.scalars(select(AuditEvent).where(AuditEvent.action == "overdue")).all()
        assert [(e.case_id, e.actor, e.reason, e.from_status, e.to_status) for e in events] == [
            (late, "system", "deadline_passed", "dispatched", "dispatched")
        ]
        assert events[0].note is not None and "escalated to district" in events[0].note
        assert events[0].at == after
        queued = session.execute(
            select(Unit.code, Delivery.event, Delivery.status)
            .join(Unit, Unit.id == Delivery.unit_id)
            .where(Delivery.case_id == late, Delivery.event.in_(["overdue", "escalated"]))
            .order_by(Delivery.id)
        ).all()
    assert [tuple(row) for row in queued] == [
        ("sanitation", "overdue", "pending"),
        ("district", "escalated", "pending"),
    ]


def test_unit_without_parent_is_marked_but_not_escalated(store: Store) -> None:
    world = _city(store)
    case_id = _dispatched_case(store, world, violation="0505")  # falls back to the district, the top unit
    assert check_overdue(store.sessions, store.settings, now=MONDAY_9 + dt.timedelta(days=30)) == 1
    with store.sessions() as session:
        case = session.get_one(Case, case_id)
        assert (case.overdue, case.escalated_to_unit_id) == (True, None)
        event = session.scalars(select(AuditEvent).where(AuditEvent.action == "overdue")).one()
        assert event.note is not None and "district has no parent unit to escalate to" in event.note
        events = session.scalars(select(Delivery.event).where(Delivery.case_id == case_id)).all()
    assert events == ["dispatched", "overdue"]


def test_workers_racing_mark_each_case_once(store: Store) -> None:
    world = _city(store)
    case_ids = [_dispatched_case(store, world, violation=code) for code in ("0102", "0501", "0504")]
    later = MONDAY_9 + dt.timedelta(days=30)
    counts: list[int] = []
    start = threading.Barrier(3)

    def worker() -> None:
        start.wait(10)
        counts.append(check_overdue(store.sessions, store.settings, now=later))

    threads = [threading.Thread(target=worker) for _ in range(3)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(60)
    assert len(counts) == 3 and sum(counts) == len(case_ids)  # each case marked by exactly one worker
    with store.sessions() as session:
        events = session.scalars(select(AuditEvent.case_id).where(AuditEvent.action == "overdue")).all()
    assert sorted(events) == sorted(case_ids)


def test_an_approved_extension_clears_overdue_and_the_clock_runs_again(store: Store) -> None:
    world = _city(store)
    case_id = _dispatched_case(store, world)
    friday = dt.datetime(2026, 3, 6, 9, tzinfo=SHANGHAI)
    assert check_overdue(store.sessions, store.settings, now=friday) == 1
    handler = Actor(kind="user", id=None, name="zhao", role=Role.UNIT_HANDLER, unit_id=world.sanitation_id)
    dispatcher = Actor(kind="user", id=None, name="wang", role=Role.DISPATCHER)
    with store.sessions.begin() as session:
        case = session.get_one(Case, case_id)
        apply_action(
            session, case, "request_extension", handler, settings=store.settings, hours=16, now=friday
        )
        apply_action(session, case, "approve_extension", dispatcher, settings=store.settings, now=friday)
        # Thursday 10:30 + 16 working hours = Monday 11:30
        assert case.deadline_at == dt.datetime(2026, 3, 9, 11, 30, tzinfo=SHANGHAI)
        assert (case.overdue, case.escalated_to_unit_id) == (False, None)
    assert check_overdue(store.sessions, store.settings, now=friday + dt.timedelta(hours=1)) == 0
    assert (
        check_overdue(store.sessions, store.settings, now=dt.datetime(2026, 3, 9, 12, tzinfo=SHANGHAI)) == 1
    )
