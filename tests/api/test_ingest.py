"""Ingest: device reports become cases exactly once, merge into the open case, and link recurrences."""

from __future__ import annotations

import datetime as dt
import importlib.util
import json
import math
import threading
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import httpx
import pytest
from fastapi.testclient import TestClient
from sqlalchemy import func, select, update

from api.actors import Actor
from api.ingest import ingest_report
from api.models import AuditEvent, Camera, Case, CaseStatus, Place, Role, Sighting, ViolationType
from contract.reports import CaseReport, IngestResult
from tests.api.builders import (
    REPORT_T0,
    auth,
    case_report,
    device_auth,
    make_device,
    make_device_key,
    make_operator,
    make_world,
    post_report,
)
from tests.api.conftest import Store
from tests.api.live_server import serve

CONCURRENT_POSTS = 20


def case_detail(client: TestClient, token: str, case_id: int) -> dict[str, Any]:
    response = client.get(f"/api/v1/cases/{case_id}", headers=auth(token))
    assert response.status_code == 200, response.text
    body: dict[str, Any] = response.json()
    return body


def count(store: Store, model: type[Any]) -> int:
    with store.sessions() as session:
        return session.scalar(select(func.count()).select_from(model)) or 0


def at(minutes: float) -> str:
    return (REPORT_T0 + dt.timedelta(minutes=minutes)).isoformat()


def test_a_new_report_opens_a_case_awaiting_review(client: TestClient, store: Store) -> None:
    world = make_world(store.sessions)
    key = make_device_key(store.sessions, "box-1")
    leader = make_operator(store.sessions, Role.SHIFT_LEADER)

    response = client.post("/api/v1/cases", json=case_report("incident-0001"), headers=device_auth(key))

    assert response.status_code == 201
    result = response.json()
    assert result["created"] is True and result["duplicate"] is False
    assert result["status"] == "pending_review"
    case = case_detail(client, leader, result["case_id"])
    assert case["violation_code"] == "0505"  # the default code of illegal_parking
    assert case["place_id"] == world.place_id
    assert (case["camera_code"], case["zone_code"], case["source"]) == ("cam-1", "z-gate", "camera")
    assert case["sighting_count"] == 1 and case["confidence"] == 0.8
    assert case["first_seen_at"].startswith("2026-05-11T01:00:00")
    assert case["last_seen_at"].startswith("2026-05-11T01:05:00")
    assert [s["id"] for s in case["sightings"]] == [result["sighting_id"]]
    assert case["sightings"][0]["boxes"][0]["class_name"] == "car"
    assert [(e["action"], e["actor"], e["to_status"]) for e in case["events"]] == [
        ("created", "device:box-1", "pending_review")
    ]
    assert case["recurrence_of_id"] is None


SHARING = [
    # second report (the first one is at place "grid-<row>", camera cam-1, illegal_parking), same case?
    ({}, True),  # same place and violation, a new incident key
    ({"camera": "cam-2", "zone": "z-corner"}, True),  # two cameras see one place: they share its case
    ({"event_code": "0505"}, True),  # explicit code = the type's default
    ({"violation_type": "street_stall"}, False),
    ({"event_code": "0506"}, False),  # same pipeline type, another event code (non-motor vehicles)
    ({"place": "grid-elsewhere"}, False),
]


def test_which_reports_share_the_open_case(client: TestClient, store: Store) -> None:
    make_world(store.sessions)
    key = make_device_key(store.sessions)
    for row, (second_report, same_case) in enumerate(SHARING):
        place = f"grid-{row}"
        first = post_report(client, key, f"incident-{row}-a", place=place)

        body = case_report(f"incident-{row}-b", **{"place": place, **second_report})
        response = client.post("/api/v1/cases", json=body, headers=device_auth(key))

        assert response.status_code == (200 if same_case else 201), second_report
        second = response.json()
        assert (second["case_id"] == first["case_id"]) is same_case, second_report
        assert second["created"] is not same_case and second["duplicate"] is False, second_report


def test_sightings_update_count_last_seen_and_confidence(client: TestClient, store: Store) -> None:
    make_world(store.sessions)
    key = make_device_key(store.sessions, "box-1")
    leader = make_operator(store.sessions, Role.SHIFT_LEADER)
    case_id = post_report(client, key, "incident-0001", confidence=0.6)["case_id"]

    later = post_report(
        client, key, "incident-0002", confidence=0.9, first_seen_at=at(30), confirmed_at=at(35)
    )
    # delivered late from an outbox, older and less sure: must not move last_seen back or lower confidence
    older = post_report(
        client, key, "incident-0003", confidence=0.5, first_seen_at=at(-20), confirmed_at=at(-15)
    )

    assert later["case_id"] == older["case_id"] == case_id
    case = case_detail(client, leader, case_id)
    assert case["sighting_count"] == 3 and len(case["sightings"]) == 3
    assert case["confidence"] == 0.9
    assert case["last_seen_at"].startswith("2026-05-11T01:35:00")
    assert case["first_seen_at"].startswith("2026-05-11T00:40:00")
    assert [(e["action"], e["actor"]) for e in case["events"]] == [
        ("created", "device:box-1"),
        ("sighting", "device:box-1"),
        ("sighting", "device:box-1"),
    ]


def test_the_same_key_returns_the_same_case_and_changes_nothing(client: TestClient, store: Store) -> None:
    make_world(store.sessions)
    key = make_device_key(store.sessions, "box-1")
    leader = make_operator(store.sessions, Role.SHIFT_LEADER)
    first = post_report(client, key, "incident-0001")

    again = client.post("/api/v1/cases", json=case_report("incident-0001"), headers=device_auth(key))
    # a retry whose body differs (re-encoded by the outbox) is still the same report
    changed = client.post(
        "/api/v1/cases", json=case_report("incident-0001", confidence=0.99), headers=device_auth(key)
    )

    for response in (again, changed):
        assert response.status_code == 200
        body = response.json()
        assert (body["case_id"], body["sighting_id"]) == (first["case_id"], first["sighting_id"])
        assert body["duplicate"] is True and body["created"] is False
    case = case_detail(client, leader, first["case_id"])
    assert case["sighting_count"] == 1 and case["confidence"] == 0.8 and len(case["events"]) == 1
    assert (count(store, Case), count(store, Sighting)) == (1, 1)
    # keys are minted per incident by one box: another box sending it is a bug, not a retry
    other_box = make_device_key(store.sessions, "box-2")
    stolen = client.post("/api/v1/cases", json=case_report("incident-0001"), headers=device_auth(other_box))
    assert stolen.status_code == 409
    assert stolen.json()["field"] == "idempotency_key"
    assert "already used by another device" in stolen.json()["detail"]


def _fields(body: dict[str, Any]) -> set[str]:
    """The fields a 422 names: FastAPI's validation errors (loc) or the service's ``field``."""
    if isinstance(body["detail"], list):
        return {str(error["loc"][-1]) for error in body["detail"]}
    return {body["field"]}


INVALID_REPORTS = [
    # overrides, the field the 422 names, words of its message
    ({"confidence": 1.5}, "confidence", "less than or equal to 1"),
    ({"idempotency_key": "short"}, "idempotency_key", "at least 8 characters"),
    ({"idempotency_key": "has space/and slash"}, "idempotency_key", "pattern"),
    ({"first_seen_at": "2026-05-11T01:00:00"}, "first_seen_at", "timezone"),
    ({"confirmed_at": at(-1)}, "confirmed_at", "confirmed_at is before first_seen_at"),
    ({"camera": ""}, "camera", "at least 1 character"),
    ({"colour": "red"}, "colour", "Extra inputs are not permitted"),
    ({"violation_type": "graffiti"}, "violation_type", "known types: exposed_garbage, illegal_parking"),
    (
        {"event_code": "9999"},
        "event_code",
        "unknown event_code '9999'; codes for 'illegal_parking': 0505, 0506",
    ),
    (
        {"event_code": "0102"},
        "event_code",
        "'0102' (暴露垃圾) is a 'exposed_garbage' code, not 'illegal_parking'",
    ),
    (
        {"first_seen_at": "1999-12-31T23:00:00Z"},
        "first_seen_at",
        "outside the years 2000-2099: check the device",
    ),
    (  # not even representable in UTC
        {"first_seen_at": "9999-12-31T23:00:00-23:00", "confirmed_at": "9999-12-31T23:30:00-23:00"},
        "first_seen_at",
        "outside the years 2000-2099",
    ),
    # site_dust has a code but no default one (added below)
    ({"violation_type": "site_dust"}, "event_code", "no default event code: send event_code, one of 0302"),
]


def test_invalid_reports_name_the_field(client: TestClient, store: Store) -> None:
    make_world(store.sessions)
    with store.sessions.begin() as session:
        session.add(ViolationType(code="0302", name="工地扬尘", pipeline_type="site_dust"))
    key = make_device_key(store.sessions)
    for overrides, field, message in INVALID_REPORTS:
        body = case_report("incident-0001", **overrides)

        response = client.post("/api/v1/cases", json=body, headers=device_auth(key))

        assert response.status_code == 422, overrides
        assert field in _fields(response.json()), response.text
        assert message in response.text, response.text
    # Python's JSON reader takes NaN, which no database JSON column can store
    raw = json.dumps(
        case_report(
            "incident-0001", boxes=[{"xyxy": [math.nan, 0, 9, 9], "confidence": 0.5, "class_name": "car"}]
        )
    )
    response = client.post(
        "/api/v1/cases", content=raw, headers={**device_auth(key), "Content-Type": "application/json"}
    )
    assert response.status_code == 422 and response.json()["field"] == "boxes", response.text
    assert count(store, Case) == 0


def test_an_unknown_place_is_created_and_the_case_kept(client: TestClient, store: Store) -> None:
    make_world(store.sessions)
    key = make_device_key(store.sessions)
    leader = make_operator(store.sessions, Role.SHIFT_LEADER)

    first = post_report(client, key, "incident-0001", place="road-section-77")
    second = post_report(client, key, "incident-0002", place="road-section-77")

    assert first["created"] and second["case_id"] == first["case_id"]
    with store.sessions() as session:
        places = session.scalars(select(Place).where(Place.key == "road-section-77")).all()
        assert [(p.name, p.owner_unit_id) for p in places] == [("road-section-77", None)]
    created = case_detail(client, leader, first["case_id"])["events"][0]
    assert created["action"] == "created"
    assert "place 'road-section-77' was not registered" in created["note"]


def test_a_camera_of_another_device_is_refused(client: TestClient, store: Store) -> None:
    make_world(store.sessions)
    _, my_key = make_device(store.sessions, "box-1")
    other_id, other_key = make_device(store.sessions, "box-2")
    with store.sessions.begin() as session:
        session.add(Camera(code="cam-9", device_id=other_id))

    refused = client.post(
        "/api/v1/cases", json=case_report("incident-0001", camera="cam-9"), headers=device_auth(my_key)
    )
    accepted = client.post(
        "/api/v1/cases", json=case_report("incident-0002", camera="cam-9"), headers=device_auth(other_key)
    )

    assert refused.status_code == 403
    assert refused.json()["field"] == "camera"
    assert "camera 'cam-9' is registered to another device" in refused.json()["detail"]
    assert accepted.status_code == 201


def _close_directly(store: Store, case_id: int, status: CaseStatus, at_time: dt.datetime) -> None:
    """End a case as the workflow does (status, timestamp, open slot freed), straight in the database."""
    stamp = {CaseStatus.CLOSED: "closed_at", CaseStatus.VOIDED: "voided_at"}[status]
    with store.sessions.begin() as session:
        session.execute(
            update(Case)
            .where(Case.id == case_id)
            .values({"status": status.value, stamp: at_time, "open_slot": None})
        )


RECURRENCES = [
    # how the first case ended, hours after that the violation is back, linked as a recurrence?
    (CaseStatus.CLOSED, 2, True),  # 复发: back two hours after closing (window: 72 h)
    (CaseStatus.CLOSED, 73, False),  # outside the window: a new problem, not a recurrence
    (CaseStatus.VOIDED, 2, False),  # a voided case was never a real violation
]


def test_recurrence_after_closing_links_the_new_case(client: TestClient, store: Store) -> None:
    make_world(store.sessions)
    key = make_device_key(store.sessions)
    leader = make_operator(store.sessions, Role.SHIFT_LEADER)
    for row, (ended_as, hours_later, linked) in enumerate(RECURRENCES):
        place = f"grid-{row}"
        old = post_report(client, key, f"incident-{row}-a", place=place)["case_id"]
        _close_directly(store, old, ended_as, REPORT_T0 + dt.timedelta(hours=1))

        seen = 60 + hours_later * 60
        new = post_report(
            client, key, f"incident-{row}-b", place=place, first_seen_at=at(seen), confirmed_at=at(seen + 5)
        )

        assert new["created"] is True and new["case_id"] != old
        assert case_detail(client, leader, new["case_id"])["recurrence_of_id"] == (old if linked else None), (
            row
        )
        assert case_detail(client, leader, old)["recurrences"] == ([new["case_id"]] if linked else []), row


@pytest.mark.skipif(
    importlib.util.find_spec("api.case_actions") is None,
    reason="the workflow module (api.case_actions) is not built",
)
def test_auto_filing_above_the_type_threshold(client: TestClient, store: Store) -> None:
    make_world(store.sessions)
    with store.sessions.begin() as session:
        session.execute(
            update(ViolationType)
            .where(ViolationType.code == "0505")
            .values(auto_file=True, auto_file_min_confidence=0.9)
        )
    key = make_device_key(store.sessions)
    leader = make_operator(store.sessions, Role.SHIFT_LEADER)
    for confidence, auto_filed in [(0.95, True), (0.9, True), (0.85, False)]:
        result = post_report(
            client, key, f"incident-{confidence}", place=f"grid-{confidence}", confidence=confidence
        )

        case = case_detail(client, leader, result["case_id"])
        assert result["status"] == case["status"]
        system_filed = [e for e in case["events"] if (e["actor"], e["action"]) == ("system", "file")]
        if auto_filed:
            assert case["status"] != "pending_review" and case["filed_at"] is not None, confidence
            assert len(system_filed) == 1, case["events"]
        else:
            assert case["status"] == "pending_review" and not system_filed, confidence


# --- concurrency: real threads against a real server, and straight against the service ---------------------


def run_together(tasks: list[Callable[[], Any]]) -> list[Any]:
    """Run the tasks in threads released at the same instant."""
    barrier = threading.Barrier(len(tasks))

    def run(task: Callable[[], Any]) -> Any:
        barrier.wait()
        return task()

    with ThreadPoolExecutor(max_workers=len(tasks)) as pool:
        return list(pool.map(run, tasks))


def test_concurrent_retries_with_one_key_store_one_case(store: Store) -> None:
    make_world(store.sessions)
    key = make_device_key(store.sessions)
    body = case_report("incident-0001")

    with serve(store) as url, httpx.Client(base_url=url, timeout=60) as http:

        def post() -> httpx.Response:
            return http.post("/api/v1/cases", json=body, headers=device_auth(key))

        responses = run_together([post] * CONCURRENT_POSTS)

    assert sorted(r.status_code for r in responses) == [200] * (CONCURRENT_POSTS - 1) + [201]
    results = [r.json() for r in responses]
    assert len({(r["case_id"], r["sighting_id"]) for r in results}) == 1
    assert sum(r["duplicate"] for r in results) == CONCURRENT_POSTS - 1
    assert (count(store, Case), count(store, Sighting), count(store, AuditEvent)) == (1, 1, 1)


def test_concurrent_reports_for_one_place_share_one_case(store: Store) -> None:
    make_world(store.sessions)
    # one box per report: requests of one device wait for each other on its last_seen row, those of
    # twenty devices race for real on PostgreSQL
    keys = [make_device(store.sessions, f"box-{i}")[1] for i in range(CONCURRENT_POSTS)]

    with serve(store) as url, httpx.Client(base_url=url, timeout=60) as http:

        def post(i: int) -> httpx.Response:
            body = case_report(f"incident-{i:04d}", camera=f"cam-{i}")
            return http.post("/api/v1/cases", json=body, headers=device_auth(keys[i]))

        responses = run_together([lambda i=i: post(i) for i in range(CONCURRENT_POSTS)])

    assert sorted(r.status_code for r in responses) == [200] * (CONCURRENT_POSTS - 1) + [201], [
        r.text for r in responses if r.status_code >= 300
    ]
    assert len({r.json()["case_id"] for r in responses}) == 1
    assert (count(store, Case), count(store, Sighting)) == (1, CONCURRENT_POSTS)
    with store.sessions() as session:
        case = session.scalars(select(Case)).one()
        assert case.sighting_count == CONCURRENT_POSTS
        actions = sorted(session.scalars(select(AuditEvent.action)))
        assert actions == ["created"] + ["sighting"] * (CONCURRENT_POSTS - 1)


def test_concurrent_ingest_service_calls(store: Store) -> None:
    """The service alone, twenty sessions racing: the unique constraints decide, not the request path."""
    make_world(store.sessions)
    device_id, _ = make_device(store.sessions, "box-1")
    device = Actor(kind="device", id=device_id, name="box-1")

    def ingest(key: str, place: str) -> IngestResult:
        report = CaseReport.model_validate(case_report(key, place=place))
        with store.sessions.begin() as session:
            return ingest_report(session, report, device, store.settings)

    one_key = run_together([lambda: ingest("incident-a-0000", "grid-a")] * CONCURRENT_POSTS)
    many_keys = run_together(
        [lambda i=i: ingest(f"incident-b-{i:04d}", "grid-b") for i in range(CONCURRENT_POSTS)]
    )

    for results, duplicates, sightings in [
        (one_key, CONCURRENT_POSTS - 1, 1),
        (many_keys, 0, CONCURRENT_POSTS),
    ]:
        assert sum(r.created for r in results) == 1
        assert len({r.case_id for r in results}) == 1
        assert sum(r.duplicate for r in results) == duplicates
        with store.sessions() as session:
            case = session.get_one(Case, results[0].case_id)
            assert (case.sighting_count, len(case.sightings)) == (sightings, sightings)
    assert count(store, Case) == 2


def test_a_failed_request_leaves_nothing_half_stored(store: Store) -> None:
    """SQLite savepoints must nest in the request's transaction: roll it back and nothing remains."""
    make_world(store.sessions)
    device_id, _ = make_device(store.sessions, "box-1")
    device = Actor(kind="device", id=device_id, name="box-1")
    report = CaseReport.model_validate(case_report("incident-0001", place="new-place-1"))

    with store.sessions() as session:
        ingest_report(session, report, device, store.settings)
        session.rollback()

    assert (count(store, Case), count(store, Sighting), count(store, Place)) == (0, 0, 1)  # the world's place
