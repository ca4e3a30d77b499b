"""The case workflow through the HTTP API, with real operators of each role and real device keys,
on SQLite and PostgreSQL: the 7-step path, the side paths, the audit trail and the notifications."""

from __future__ import annotations

import datetime as dt
import threading
from dataclasses import dataclass
from typing import Any

import pytest
from fastapi.testclient import TestClient
from httpx import Response
from sqlalchemy import select

from api.actors import SYSTEM, Actor
from api.case_actions import apply_action
from api.errors import Conflict
from api.models import AuditEvent, Case, DeadlineRule, Delivery, Place, Role, RoutingRule, Unit
from api.work_calendar import add_working_hours, make_calendar, working_hours_between
from tests.api.builders import World, auth, make_device, make_operators, make_pending_case, make_world
from tests.api.conftest import Store

CALENDAR = make_calendar()  # what load_calendar gives when no calendar is configured
GARBAGE_HOURS = 4.0  # DeadlineRule for 0102 in this city


@dataclass
class City:
    world: World
    headers: dict[str, dict[str, str]]  # caller -> auth headers
    device_id: int
    case_id: int


def make_city(store: Store) -> City:
    """The tiny world, webhooks on every unit, 0102 at the grid routed to sanitation with 4 working hours,
    one operator of each role (and a handler in each department), two edge boxes and a case from box-1."""
    world = make_world(store.sessions)
    with store.sessions.begin() as session:
        for unit in session.scalars(select(Unit)):
            unit.webhook_url = f"http://127.0.0.1:9/{unit.code}"
        session.add(RoutingRule(place_id=world.place_id, violation_code="0102", unit_id=world.sanitation_id))
        session.add(DeadlineRule(violation_code="0102", working_hours=GARBAGE_HOURS))
    sessions = store.sessions
    tokens = make_operators(
        sessions,
        [
            ("admin", Role.ADMIN, None),
            ("li", Role.SHIFT_LEADER, None),
            ("wang", Role.DISPATCHER, None),
            ("zhao", Role.UNIT_HANDLER, world.sanitation_id),
            ("qian", Role.UNIT_HANDLER, world.traffic_id),
            ("sun", Role.VIEWER, None),
        ],
    )
    headers = {name: auth(token) for name, token in tokens.items()}
    device_id, key = make_device(sessions, "box-1")
    _, other_key = make_device(sessions, "box-2")
    headers["box-1"] = {"X-Device-Key": key}
    headers["box-2"] = {"X-Device-Key": other_key}
    case_id = make_pending_case(sessions, place_id=world.place_id, device_id=device_id)
    return City(world, headers, device_id, case_id)


def act(client: TestClient, city: City, who: str, action: str, **body: Any) -> Response:
    return client.post(
        f"/api/v1/cases/{city.case_id}/actions/{action}", json=body or None, headers=city.headers[who]
    )


def ok(response: Response) -> dict[str, Any]:
    assert response.status_code == 200, response.text
    data: dict[str, Any] = response.json()
    return data


def allowed(client: TestClient, city: City, who: str) -> list[str]:
    response = client.get(f"/api/v1/cases/{city.case_id}/actions", headers=city.headers[who])
    assert response.status_code == 200, response.text
    actions: list[str] = response.json()["allowed_actions"]
    return actions


def timeline(store: Store, case_id: int) -> list[tuple[str, str, str | None, str | None, str | None]]:
    with store.sessions() as session:
        events = session.scalars(
            select(AuditEvent).where(AuditEvent.case_id == case_id).order_by(AuditEvent.id)
        )
        return [(e.actor, e.action, e.from_status, e.to_status, e.reason) for e in events]


def deliveries(store: Store, case_id: int) -> list[tuple[str, str]]:
    with store.sessions() as session:
        rows = session.execute(
            select(Unit.code, Delivery.event)
            .join(Unit, Unit.id == Delivery.unit_id)
            .where(Delivery.case_id == case_id)
            .order_by(Delivery.id)
        )
        return [(code, event) for code, event in rows]


def load_case(store: Store, case_id: int) -> Case:
    with store.sessions() as session:
        return session.get_one(Case, case_id)


def when(value: str) -> dt.datetime:
    return dt.datetime.fromisoformat(value)


def test_the_seven_steps(client: TestClient, store: Store) -> None:
    city = make_city(store)
    assert allowed(client, city, "li") == ["file", "void", "recode"]
    assert allowed(client, city, "wang") == []
    assert allowed(client, city, "sun") == []

    filed = ok(act(client, city, "li", "file", note="confirmed on camera"))
    # filing routes and dispatches at once, and the deadline counts working hours from dispatch
    assert (filed["status"], filed["unit_id"]) == ("dispatched", city.world.sanitation_id)
    dispatched_at, deadline = when(filed["dispatched_at"]), when(filed["deadline_at"])
    assert when(filed["filed_at"]) == dispatched_at
    assert deadline == add_working_hours(dispatched_at, GARBAGE_HOURS, CALENDAR)
    assert working_hours_between(dispatched_at, deadline, CALENDAR) == pytest.approx(GARBAGE_HOURS)
    assert deliveries(store, city.case_id) == [("sanitation", "dispatched")]

    assert allowed(client, city, "zhao") == ["start", "return", "resolve", "request_extension"]
    assert ok(act(client, city, "zhao", "start"))["status"] == "in_progress"
    resolved = ok(act(client, city, "zhao", "resolve", note="stall moved on, pavement swept"))
    assert resolved["status"] == "resolved" and resolved["resolved_at"] is not None
    assert ok(act(client, city, "li", "verify", note="checked on camera"))["status"] == "verified"
    closed = ok(act(client, city, "li", "close"))
    assert closed["status"] == "closed" and closed["closed_at"] is not None
    assert allowed(client, city, "admin") == []

    case = load_case(store, city.case_id)
    assert case.open_slot is None  # the next report for this place and violation opens a new case
    assert case.verified_at is not None
    assert timeline(store, city.case_id) == [
        ("user:li", "file", "pending_review", "filed", None),
        ("system", "dispatch", "filed", "dispatched", "auto_dispatch"),
        ("user:zhao", "start", "dispatched", "in_progress", None),
        ("user:zhao", "resolve", "in_progress", "resolved", None),
        ("user:li", "verify", "resolved", "verified", None),
        ("user:li", "close", "verified", "closed", None),
    ]
    with store.sessions() as session:
        dispatch = session.scalars(select(AuditEvent).where(AuditEvent.action == "dispatch")).one()
        resolve = session.scalars(select(AuditEvent).where(AuditEvent.action == "resolve")).one()
    assert dispatch.note is not None and "routing rule #1 (place + violation" in dispatch.note
    assert dispatch.data is not None and dispatch.data["unit"] == "sanitation"
    assert dispatch.data["working_hours"] == GARBAGE_HOURS
    assert resolve.note == "stall moved on, pavement swept"


def test_refusals_name_the_status_the_moves_and_the_roles(client: TestClient, store: Store) -> None:
    city = make_city(store)
    ok(act(client, city, "li", "file"))

    conflict = act(client, city, "li", "close")
    assert conflict.status_code == 409
    body = conflict.json()
    assert body["code"] == "conflict" and body["status"] == "dispatched"
    assert "cannot close a case that is 'dispatched'" in body["detail"]
    assert "allowed moves from 'dispatched': reassign, start, return, resolve" in body["detail"]

    forbidden = act(client, city, "sun", "start")
    assert forbidden.status_code == 403
    assert (
        forbidden.json()["detail"]
        == "role 'viewer' may not start a case; roles that may: admin, unit_handler"
    )

    # another unit's handler does not learn that the case exists
    assert act(client, city, "qian", "start").status_code == 404
    assert (
        client.get(f"/api/v1/cases/{city.case_id}/actions", headers=city.headers["qian"]).status_code == 404
    )
    assert act(client, city, "zhao", "teleport").status_code == 422
    assert "unknown action 'teleport'" in act(client, city, "zhao", "teleport").json()["detail"]
    assert client.post(f"/api/v1/cases/{city.case_id}/actions/start").status_code == 401
    assert client.post("/api/v1/cases/999999/actions/start", headers=city.headers["admin"]).status_code == 404
    assert act(client, city, "zhao", "start", colour="red").status_code == 422  # unknown body field
    assert [e[1] for e in timeline(store, city.case_id)] == ["file", "dispatch"]  # refusals change nothing


def test_void_needs_a_reason_and_frees_the_slot(client: TestClient, store: Store) -> None:
    city = make_city(store)
    missing = act(client, city, "li", "void")
    assert missing.status_code == 422
    assert missing.json()["allowed"] == ["false_positive", "duplicate", "not_our_responsibility"]
    voided = ok(act(client, city, "li", "void", reason="false_positive", note="a parked delivery van"))
    assert (voided["status"], voided["void_reason"]) == ("voided", "false_positive")
    case = load_case(store, city.case_id)
    assert case.open_slot is None and case.voided_at is not None
    final = act(client, city, "admin", "file")
    assert final.status_code == 409 and "'voided' is final" in final.json()["detail"]
    assert timeline(store, city.case_id) == [
        ("user:li", "void", "pending_review", "voided", "false_positive")
    ]


def test_return_and_redispatch_and_reassign(client: TestClient, store: Store) -> None:
    city = make_city(store)
    ok(act(client, city, "li", "file"))
    assert act(client, city, "zhao", "return").status_code == 422  # a return needs a note
    returned = ok(act(client, city, "zhao", "return", note="this is a traffic matter"))
    assert (returned["status"], returned["return_count"]) == ("returned", 1)
    assert allowed(client, city, "wang") == ["dispatch", "defer"]
    assert allowed(client, city, "li") == ["void"]

    # routing would send it straight back to the unit that returned it
    again = act(client, city, "wang", "dispatch")
    assert again.status_code == 422 and "the unit that returned it" in again.json()["detail"]
    redispatched = ok(
        act(client, city, "wang", "dispatch", unit_id=city.world.traffic_id, note="traffic, please")
    )
    assert (redispatched["status"], redispatched["unit_id"]) == ("dispatched", city.world.traffic_id)
    assert act(client, city, "zhao", "start").status_code == 404  # no longer sanitation's case
    assert ok(act(client, city, "qian", "start"))["status"] == "in_progress"

    same = act(client, city, "wang", "reassign", unit_id=city.world.traffic_id)
    assert same.status_code == 422 and "already assigned to traffic" in same.json()["detail"]
    assert act(client, city, "wang", "reassign", unit_id=999).status_code == 422
    moved = ok(act(client, city, "wang", "reassign", unit_id=city.world.district_id))
    assert (moved["status"], moved["unit_id"]) == ("dispatched", city.world.district_id)
    assert deliveries(store, city.case_id) == [
        ("sanitation", "dispatched"),
        ("traffic", "dispatched"),
        ("district", "dispatched"),
        ("traffic", "withdrawn"),
    ]
    assert [(e[0], e[1], e[2], e[3]) for e in timeline(store, city.case_id)][2:] == [
        ("user:zhao", "return", "dispatched", "returned"),
        ("user:wang", "dispatch", "returned", "dispatched"),
        ("user:qian", "start", "dispatched", "in_progress"),
        ("user:wang", "reassign", "in_progress", "dispatched"),
    ]


def test_rework_and_verification_by_camera(client: TestClient, store: Store) -> None:
    city = make_city(store)
    first = ok(act(client, city, "li", "file"))
    ok(act(client, city, "zhao", "resolve"))
    # only the box whose camera reported the case may judge it; others do not see it at all
    assert allowed(client, city, "box-1") == ["verify", "rework"]
    assert act(client, city, "box-2", "verify").status_code == 404
    closing = act(client, city, "box-1", "close")
    assert closing.status_code == 403 and "roles that may: admin, shift_leader" in closing.json()["detail"]

    rework = ok(act(client, city, "box-1", "rework", note="stall still there 15 min later"))
    assert (rework["status"], rework["rework_count"], rework["resolved_at"]) == ("dispatched", 1, None)
    assert rework["unit_id"] == city.world.sanitation_id
    assert when(rework["dispatched_at"]) > when(first["dispatched_at"])
    assert when(rework["deadline_at"]) == add_working_hours(
        when(rework["dispatched_at"]), GARBAGE_HOURS, CALENDAR
    )
    assert deliveries(store, city.case_id) == [("sanitation", "dispatched"), ("sanitation", "rework")]

    ok(act(client, city, "zhao", "resolve"))
    assert ok(act(client, city, "box-1", "verify"))["status"] == "verified"
    assert [(e[0], e[1]) for e in timeline(store, city.case_id)][-3:] == [
        ("device:box-1", "rework"),
        ("user:zhao", "resolve"),
        ("device:box-1", "verify"),
    ]


def test_extension_request_and_decisions(client: TestClient, store: Store) -> None:
    city = make_city(store)
    filed = ok(act(client, city, "li", "file"))
    deadline = when(filed["deadline_at"])
    assert act(client, city, "zhao", "request_extension").status_code == 422  # hours are required
    requested = ok(act(client, city, "zhao", "request_extension", hours=8, note="needs a lorry"))
    assert requested["extension_requested_hours"] == 8 and requested["status"] == "dispatched"
    twice = act(client, city, "zhao", "request_extension", hours=2)
    assert twice.status_code == 409 and "already pending" in twice.json()["detail"]
    assert "approve_extension" in allowed(client, city, "wang")

    approved = ok(act(client, city, "wang", "approve_extension"))
    new_deadline = when(approved["deadline_at"])
    assert working_hours_between(deadline, new_deadline, CALENDAR) == pytest.approx(8)
    assert approved["extension_requested_hours"] is None
    none_left = act(client, city, "wang", "approve_extension")
    assert none_left.status_code == 409 and "no extension request is pending" in none_left.json()["detail"]

    ok(act(client, city, "zhao", "request_extension", hours=40))
    rejected = ok(act(client, city, "wang", "reject_extension", note="too long"))
    assert rejected["extension_requested_hours"] is None and when(rejected["deadline_at"]) == new_deadline
    assert deliveries(store, city.case_id)[1:] == [
        ("sanitation", "extension_approved"),
        ("sanitation", "extension_rejected"),
    ]
    assert [e[1] for e in timeline(store, city.case_id)][2:] == [
        "request_extension",
        "approve_extension",
        "request_extension",
        "reject_extension",
    ]


def test_defer_and_resume(client: TestClient, store: Store) -> None:
    city = make_city(store)
    ok(act(client, city, "li", "file"))
    ok(act(client, city, "zhao", "start"))
    deferred = ok(act(client, city, "wang", "defer", note="waits for the road works to end"))
    assert deferred["status"] == "deferred"
    assert allowed(client, city, "zhao") == []
    resumed = ok(act(client, city, "wang", "resume"))
    assert (resumed["status"], resumed["unit_id"]) == ("dispatched", city.world.sanitation_id)
    assert when(resumed["deadline_at"]) == add_working_hours(
        when(resumed["dispatched_at"]), GARBAGE_HOURS, CALENDAR
    )
    assert [e[1:4] for e in timeline(store, city.case_id)][2:] == [
        ("start", "dispatched", "in_progress"),
        ("defer", "in_progress", "deferred"),
        ("resume", "deferred", "dispatched"),
    ]


def test_filing_without_a_unit_stays_filed_and_says_why(client: TestClient, store: Store) -> None:
    city = make_city(store)
    with store.sessions.begin() as session:
        orphan = Place(key="orphan-road", name="nobody's road")
        session.add(orphan)
        session.flush()
        session.get_one(Case, city.case_id).place_id = orphan.id
    filed = ok(act(client, city, "li", "file"))
    assert (filed["status"], filed["unit_id"], filed["deadline_at"]) == ("filed", None, None)
    with store.sessions() as session:
        route_event = session.scalars(select(AuditEvent).where(AuditEvent.action == "route")).one()
    assert (route_event.actor, route_event.reason) == ("system", "no_unit")
    assert route_event.note is not None and "the place has no owner unit" in route_event.note
    hand = act(client, city, "wang", "dispatch")
    assert hand.status_code == 422 and "dispatch it by hand with a unit_id" in hand.json()["detail"]
    dispatched = ok(act(client, city, "wang", "dispatch", unit_id=city.world.district_id))
    assert dispatched["unit_id"] == city.world.district_id and dispatched["deadline_at"] is not None
    # no DeadlineRule for the place's violation -> the calendar's default (24 working hours)
    assert deliveries(store, city.case_id) == [("district", "dispatched")]


def test_system_files_and_dispatches_through_the_service(store: Store) -> None:
    """How the ingest auto-files: the service call, as the system actor, with an injected clock."""
    city = make_city(store)
    friday_afternoon = dt.datetime(2026, 3, 6, 16, 30, tzinfo=CALENDAR.timezone)
    with store.sessions.begin() as session:
        case = apply_action(
            session,
            session.get_one(Case, city.case_id),
            "file",
            SYSTEM,
            settings=store.settings,
            now=friday_afternoon,
        )
        assert case.status == "dispatched"
        assert case.deadline_at == dt.datetime(
            2026, 3, 9, 11, 30, tzinfo=CALENDAR.timezone
        )  # 1 h Fri + 3 h Mon
    assert [e[:2] for e in timeline(store, city.case_id)] == [("system", "file"), ("system", "dispatch")]


def test_two_operators_cannot_move_a_case_at_once(store: Store) -> None:
    """The first holds the case's row lock; the second waits, then sees the new status and gets 409."""
    city = make_city(store)
    with store.sessions.begin() as session:
        apply_action(session, session.get_one(Case, city.case_id), "file", SYSTEM, settings=store.settings)
    handler = Actor(
        kind="user", id=None, name="zhao", role=Role.UNIT_HANDLER, unit_id=city.world.sanitation_id
    )
    first_holds_lock = threading.Event()
    errors: list[Exception] = []

    def first() -> None:
        with store.sessions.begin() as session:
            apply_action(
                session, session.get_one(Case, city.case_id), "start", handler, settings=store.settings
            )
            first_holds_lock.set()
            threading.Event().wait(0.5)  # keep the lock while the second one tries

    def second() -> None:
        first_holds_lock.wait(10)
        try:
            with store.sessions.begin() as session:
                stale = session.get_one(Case, city.case_id)  # may still read "dispatched"
                apply_action(session, stale, "start", handler, settings=store.settings)
        except Exception as exc:
            errors.append(exc)

    threads = [threading.Thread(target=first), threading.Thread(target=second)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(30)
    assert len(errors) == 1 and isinstance(errors[0], Conflict), errors
    assert "'in_progress'" in errors[0].message
    assert [e[1] for e in timeline(store, city.case_id)].count("start") == 1
