"""An incident's later sightings and its end move its case: count, last seen, "gone at", best evidence;
exactly once per update key, only from the device that reported the incident."""

from __future__ import annotations

import datetime as dt
from typing import Any

from fastapi.testclient import TestClient

from api.models import Role
from tests.api.builders import (
    REPORT_T0,
    auth,
    device_auth,
    image_bytes,
    make_device_key,
    make_operator,
    make_world,
    post_report,
)
from tests.api.conftest import Store

UPDATES = "/api/v1/cases/incident-updates"


def at(minutes: float) -> str:
    return (REPORT_T0 + dt.timedelta(minutes=minutes)).isoformat()


def update(incident: str, suffix: str, kind: str, minutes: float, count: int, **extra: Any) -> dict[str, Any]:
    return {
        "idempotency_key": f"{incident}:{suffix}",
        "incident_key": incident,
        "kind": kind,
        "at": at(minutes),
        "sighting_count": count,
        **extra,
    }


def send(client: TestClient, key: str, body: dict[str, Any]) -> dict[str, Any]:
    response = client.post(UPDATES, json=body, headers=device_auth(key))
    assert response.status_code == 200, response.text
    result: dict[str, Any] = response.json()
    return result


def case(client: TestClient, token: str, case_id: int) -> dict[str, Any]:
    response = client.get(f"/api/v1/cases/{case_id}", headers=auth(token))
    assert response.status_code == 200, response.text
    body: dict[str, Any] = response.json()
    return body


def test_sightings_move_the_case_and_its_end_says_gone(client: TestClient, store: Store) -> None:
    make_world(store.sessions)
    key = make_device_key(store.sessions, "box-1")
    leader = make_operator(store.sessions, Role.SHIFT_LEADER)
    case_id = post_report(client, key, "incident-0001", sighting_count=26)["case_id"]
    assert case(client, leader, case_id)["sighting_count"] == 26  # the report's own count, not 1

    still = send(client, key, update("incident-0001", "s80", "sighting", 20, 80, confidence=0.9))
    assert (still["case_id"], still["duplicate"], still["sighting_count"]) == (case_id, False, 80)
    assert still["ended_at"] is None
    gone = send(client, key, update("incident-0001", "end", "ended", 31, 110))

    detail = case(client, leader, case_id)
    assert detail["sighting_count"] == 110
    assert dt.datetime.fromisoformat(detail["last_seen_at"]) == REPORT_T0 + dt.timedelta(minutes=31)
    assert dt.datetime.fromisoformat(detail["ended_at"]) == REPORT_T0 + dt.timedelta(minutes=31)
    assert gone["ended_at"] is not None and detail["confidence"] == 0.9
    (sighting,) = detail["sightings"]
    assert (sighting["sighting_count"], sighting["ended_at"] is not None) == (110, True)
    actions = [event["action"] for event in detail["events"]]
    assert actions.count("still_there") == 1 and actions.count("gone") == 1


def test_a_repeated_update_changes_nothing(client: TestClient, store: Store) -> None:
    make_world(store.sessions)
    key = make_device_key(store.sessions, "box-1")
    leader = make_operator(store.sessions, Role.SHIFT_LEADER)
    case_id = post_report(client, key, "incident-0001")["case_id"]
    body = update("incident-0001", "s40", "sighting", 10, 40)

    first, again = send(client, key, body), send(client, key, body)

    assert (first["duplicate"], again["duplicate"]) == (False, True)
    detail = case(client, leader, case_id)
    assert detail["sighting_count"] == 40
    assert [e["action"] for e in detail["events"]].count("still_there") == 1


def test_an_old_update_arriving_late_never_moves_the_case_back(client: TestClient, store: Store) -> None:
    make_world(store.sessions)
    key = make_device_key(store.sessions, "box-1")
    leader = make_operator(store.sessions, Role.SHIFT_LEADER)
    case_id = post_report(client, key, "incident-0001")["case_id"]
    send(client, key, update("incident-0001", "s90", "sighting", 30, 90))
    send(client, key, update("incident-0001", "s50", "sighting", 15, 50))  # delivered late

    detail = case(client, leader, case_id)
    assert detail["sighting_count"] == 90
    assert dt.datetime.fromisoformat(detail["last_seen_at"]) == REPORT_T0 + dt.timedelta(minutes=30)


def test_a_new_incident_on_the_case_clears_gone(client: TestClient, store: Store) -> None:
    make_world(store.sessions)
    key = make_device_key(store.sessions, "box-1")
    leader = make_operator(store.sessions, Role.SHIFT_LEADER)
    case_id = post_report(client, key, "incident-0001")["case_id"]
    send(client, key, update("incident-0001", "end", "ended", 10, 30))
    assert case(client, leader, case_id)["ended_at"] is not None

    again = post_report(client, key, "incident-0002", confirmed_at=at(40), first_seen_at=at(35))

    assert again["case_id"] == case_id
    assert case(client, leader, case_id)["ended_at"] is None


def test_only_the_reporting_device_updates_its_incident(client: TestClient, store: Store) -> None:
    make_world(store.sessions)
    mine = make_device_key(store.sessions, "box-1")
    other = make_device_key(store.sessions, "box-2")
    post_report(client, mine, "incident-0001")

    stolen = client.post(
        UPDATES, json=update("incident-0001", "s9", "sighting", 5, 9), headers=device_auth(other)
    )
    unknown = client.post(
        UPDATES, json=update("incident-9999", "s9", "sighting", 5, 9), headers=device_auth(mine)
    )

    assert stolen.status_code == 404 and "was not reported by device 'box-2'" in stolen.text
    assert unknown.status_code == 404 and "must be delivered first" in unknown.text


def test_a_better_scored_view_becomes_the_best_evidence(client: TestClient, store: Store) -> None:
    make_world(store.sessions)
    key = make_device_key(store.sessions, "box-1")
    leader = make_operator(store.sessions, Role.SHIFT_LEADER)
    case_id = post_report(client, key, "incident-0001")["case_id"]

    def upload(kind: str, seed: int, score: float | None) -> int:
        form = {"kind": kind} | ({"score": str(score)} if score is not None else {})
        response = client.post(
            f"/api/v1/cases/{case_id}/evidence",
            files={"file": (f"{seed}.jpg", image_bytes(seed=seed), "image/jpeg")},
            data=form,
            headers=device_auth(key),
        )
        assert response.status_code == 201, response.text
        evidence_id: int = response.json()["id"]
        return evidence_id

    confirmation = upload("confirmation", 1, 0.50)
    assert case(client, leader, case_id)["best_evidence_id"] == confirmation
    upload("sighting", 2, 0.52)  # within the margin: not worth switching
    assert case(client, leader, case_id)["best_evidence_id"] == confirmation
    upload("crop", 3, None)  # a close-up never replaces a full view
    sharper = upload("sighting", 4, 0.80)
    assert case(client, leader, case_id)["best_evidence_id"] == sharper
