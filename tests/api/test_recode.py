"""Re-coding at review through the HTTP API, on SQLite and PostgreSQL: a case still to classify
(9901 unknown_object) becomes 0102 and is routed to sanitation with 0102's deadline; a re-code into a place
whose new code already has an open case merges into it; re-coding after dispatch, to a bad code or by a
role that may not file is refused with an error naming why."""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass
from typing import Any

import pytest
from fastapi.testclient import TestClient
from httpx import Response
from sqlalchemy import select, update

from api import recoding
from api.models import (
    AuditEvent,
    Case,
    DeadlineRule,
    Evidence,
    Place,
    Role,
    RoutingRule,
    Sighting,
    ViolationType,
)
from api.open_or_merge import open_slot
from api.work_calendar import add_working_hours, make_calendar
from tests.api.builders import (
    World,
    auth,
    make_device_key,
    make_operators,
    make_pending_case,
    make_world,
    post_report,
)
from tests.api.conftest import Store

CALENDAR = make_calendar()  # no calendar configured in these tests
GARBAGE_HOURS = 4.0  # the city's DeadlineRule for 0102
PILE_BOX = {"xyxy": [410.0, 620.0, 530.0, 700.0], "class_name": "unknown_object", "confidence": 0.71}


@dataclass
class City:
    world: World
    headers: dict[str, dict[str, str]]


def make_city(store: Store) -> City:
    """0102 anywhere goes to sanitation (4 working hours); 0501 to traffic; one operator per role."""
    world = make_world(store.sessions)
    with store.sessions.begin() as session:
        session.add(RoutingRule(violation_code="0102", unit_id=world.sanitation_id))
        session.add(RoutingRule(violation_code="0501", unit_id=world.traffic_id))
        session.add(DeadlineRule(violation_code="0102", working_hours=GARBAGE_HOURS))
    tokens = make_operators(
        store.sessions,
        [
            ("admin", Role.ADMIN, None),
            ("li", Role.SHIFT_LEADER, None),
            ("wang", Role.DISPATCHER, None),
            ("sun", Role.VIEWER, None),
        ],
    )
    return City(world, {name: auth(token) for name, token in tokens.items()})


def unknown_object_case(store: Store, world: World) -> int:
    """A pending 9901 case whose report names one box (as the static-change detector reports it)."""
    case_id = make_pending_case(store.sessions, place_id=world.place_id, violation_code="9901")
    with store.sessions.begin() as session:
        session.execute(update(Sighting).where(Sighting.case_id == case_id).values(boxes=[PILE_BOX]))
    return case_id


def act(client: TestClient, city: City, case_id: int, who: str, action: str, **body: Any) -> Response:
    return client.post(
        f"/api/v1/cases/{case_id}/actions/{action}", json=body or None, headers=city.headers[who]
    )


def ok(response: Response) -> dict[str, Any]:
    assert response.status_code == 200, response.text
    data: dict[str, Any] = response.json()
    return data


def refused(response: Response, status: int, *parts: str) -> None:
    assert response.status_code == status, response.text
    message = response.json()["detail"]
    for part in parts:
        assert part in message, message


def events(store: Store, case_id: int, action: str) -> list[AuditEvent]:
    with store.sessions() as session:
        return list(
            session.scalars(
                select(AuditEvent).where(AuditEvent.case_id == case_id, AuditEvent.action == action)
            )
        )


def test_unknown_object_is_recoded_routed_to_sanitation_and_gets_its_deadline(
    client: TestClient, store: Store
) -> None:
    city = make_city(store)
    case_id = unknown_object_case(store, city.world)
    recoded = ok(act(client, city, case_id, "li", "recode", violation_code="0102"))
    assert (recoded["violation_code"], recoded["status"], recoded["unit_id"]) == (
        "0102",
        "pending_review",
        None,
    )

    (event,) = events(store, case_id, "recode")
    assert (event.actor, event.from_status, event.to_status) == (
        "user:li",
        "pending_review",
        "pending_review",
    )
    assert event.data is not None
    assert (event.data["from"], event.data["to"], event.data["unit"]) == ("9901", "0102", "sanitation")
    assert event.data["working_hours"] == GARBAGE_HOURS
    assert event.data["boxes"] == [{"sighting_id": event.data["boxes"][0]["sighting_id"], **PILE_BOX}]
    with store.sessions() as session:
        assert session.get_one(Case, case_id).open_slot == open_slot(city.world.place_id, "0102")

    # the 9901 slot is free again: the next static-change report at the place opens a new case
    assert unknown_object_case(store, city.world) != case_id
    filed = ok(act(client, city, case_id, "li", "file"))
    assert (filed["status"], filed["unit_id"]) == ("dispatched", city.world.sanitation_id)
    dispatched_at = dt.datetime.fromisoformat(filed["dispatched_at"])
    assert dt.datetime.fromisoformat(filed["deadline_at"]) == add_working_hours(
        dispatched_at, GARBAGE_HOURS, CALENDAR
    )


def test_a_case_still_to_classify_is_never_filed_or_dispatched(client: TestClient, store: Store) -> None:
    city = make_city(store)
    case_id = unknown_object_case(store, city.world)
    refused(
        act(client, city, case_id, "li", "file"), 409, "re-code before filing", "请先改判类型再立案", "9901"
    )
    refused(act(client, city, case_id, "admin", "file"), 409, "re-code before filing")
    listed = client.get(f"/api/v1/cases/{case_id}/actions", headers=city.headers["li"]).json()
    assert listed["allowed_actions"] == ["void", "recode"]
    # a filed case cannot be re-coded into "to classify": it would be stuck with no unit to go to
    other = make_pending_case(store.sessions, place_id=city.world.place_id, violation_code="0505")
    with store.sessions.begin() as session:
        session.get_one(Case, other).status = "filed"
    refused(act(client, city, other, "li", "recode", violation_code="9901"), 422, "9901", "filed case")


def test_recode_into_an_open_case_of_the_new_code_merges_into_it(client: TestClient, store: Store) -> None:
    city = make_city(store)
    garbage = make_pending_case(store.sessions, place_id=city.world.place_id, violation_code="0102")
    ok(act(client, city, garbage, "li", "file"))  # dispatched to sanitation: still the open 0102 case
    case_id = unknown_object_case(store, city.world)
    with store.sessions.begin() as session:
        session.add_all(
            Evidence(
                case_id=cid,
                sha256=sha * 64,
                kind="crop",
                content_type="image/jpeg",
                size=1,
                width=1,
                height=1,
                uploaded_by="device:box-1",
            )
            for cid, sha in ((case_id, "a"), (case_id, "b"), (garbage, "b"))
        )

    merged = ok(act(client, city, case_id, "li", "recode", violation_code="0102"))
    assert (merged["status"], merged["void_reason"], merged["violation_code"]) == (
        "voided",
        "duplicate",
        "0102",
    )
    with store.sessions() as session:
        target = session.get_one(Case, garbage)
        assert (target.status, target.sighting_count, len(target.sightings)) == ("dispatched", 2, 2)
        assert target.sightings[1].boxes == [PILE_BOX]  # the (box, chosen type) now sits on a 0102 case
        # the image both cases hold stays on the voided one (one row per case and image)
        assert sorted(e.sha256[0] for e in target.evidence) == ["a", "b"]
        assert session.get_one(Case, case_id).open_slot is None
    (recode,) = events(store, case_id, "recode")
    assert (recode.from_status, recode.to_status, recode.reason) == ("pending_review", "voided", "duplicate")
    assert recode.data is not None and recode.data["merged_into"] == garbage
    (merge,) = events(store, garbage, "merge")
    assert merge.actor == "user:li" and merge.data is not None and merge.data["merged_from"] == case_id


def test_a_recode_that_loses_the_race_for_the_slot_merges(
    client: TestClient, store: Store, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Another report opened the new code's slot between the look-up and the insert: the unique
    open_slot refuses the second holder and the re-code merges instead of making two open cases."""
    city = make_city(store)
    garbage = make_pending_case(store.sessions, place_id=city.world.place_id, violation_code="0102")
    case_id = unknown_object_case(store, city.world)
    real = recoding.find_open_case
    looks = iter([None])  # the first look-up misses the open case, as a concurrent insert would
    monkeypatch.setattr(recoding, "find_open_case", lambda s, slot: next(looks, real(s, slot)))
    merged = ok(act(client, city, case_id, "li", "recode", violation_code="0102"))
    assert merged["status"] == "voided"
    assert events(store, garbage, "merge")[0].data == {
        "merged_from": case_id,
        "sightings": 1,
        "evidence": 0,
        "sighting_count": 1,
    }


def test_a_filed_case_routed_nowhere_is_routed_again_with_the_new_codes_deadline(
    client: TestClient, store: Store
) -> None:
    city = make_city(store)
    with store.sessions.begin() as session:
        session.get_one(Place, city.world.place_id).owner_unit_id = None  # no fallback unit for 0505
    case_id = make_pending_case(store.sessions, place_id=city.world.place_id, violation_code="0505")
    assert ok(act(client, city, case_id, "li", "file"))["status"] == "filed"  # nobody takes 0505 here
    recoded = ok(act(client, city, case_id, "li", "recode", violation_code="0102", note="bags, not a car"))
    assert (recoded["status"], recoded["unit_id"]) == ("dispatched", city.world.sanitation_id)
    deadline = dt.datetime.fromisoformat(recoded["deadline_at"])
    assert deadline == add_working_hours(dt.datetime.fromisoformat(recoded["dispatched_at"]), 4.0, CALENDAR)
    assert events(store, case_id, "recode")[0].note == "bags, not a car"


def test_recode_after_dispatch_is_refused_naming_the_status(client: TestClient, store: Store) -> None:
    city = make_city(store)
    case_id = make_pending_case(store.sessions, place_id=city.world.place_id, violation_code="0102")
    ok(act(client, city, case_id, "li", "file"))
    refused(
        act(client, city, case_id, "li", "recode", violation_code="0501"), 409, "'dispatched'", "recode needs"
    )


@pytest.mark.parametrize(
    ("who", "body", "status", "parts"),
    [
        ("li", {"violation_code": "0999"}, 422, ("'0999' is not a violation type", "active codes: 0102")),
        ("li", {"violation_code": "0504"}, 422, ("'0504' is disabled",)),
        ("li", {"violation_code": "9901"}, 422, ("already 9901",)),
        ("li", {}, 422, ("recode needs violation_code",)),
        ("li", {"violation_code": "01 02"}, 422, ("violation_code",)),
        ("sun", {"violation_code": "0102"}, 403, ("role 'viewer' may not recode", "shift_leader")),
        ("wang", {"violation_code": "0102"}, 403, ("role 'dispatcher' may not recode",)),
    ],
)
def test_bad_recodes_are_refused(
    client: TestClient, store: Store, who: str, body: dict[str, str], status: int, parts: tuple[str, ...]
) -> None:
    city = make_city(store)
    with store.sessions.begin() as session:
        session.scalars(select(ViolationType).where(ViolationType.code == "0504")).one().active = False
    case_id = unknown_object_case(store, city.world)
    response = act(client, city, case_id, who, "recode", **body)
    assert response.status_code == status, response.text
    assert all(part in response.text for part in parts), response.text
    with store.sessions() as session:
        assert session.get_one(Case, case_id).violation_code == "9901"


def test_violation_code_is_only_for_recode(client: TestClient, store: Store) -> None:
    city = make_city(store)
    case_id = make_pending_case(store.sessions, place_id=city.world.place_id)
    refused(
        act(client, city, case_id, "li", "file", violation_code="0501"), 422, "file takes no violation_code"
    )


def test_an_unknown_object_report_waits_for_review_even_with_auto_file_on(
    client: TestClient, store: Store
) -> None:
    """A city that turns auto_file on for 9901 by mistake still gets the report in the review queue."""
    make_world(store.sessions)
    with store.sessions.begin() as session:
        session.execute(
            update(ViolationType)
            .where(ViolationType.code == "9901")
            .values(auto_file=True, auto_file_min_confidence=0)
        )
    key = make_device_key(store.sessions)
    result = post_report(
        client, key, "static-1", violation_type="unknown_object", boxes=[PILE_BOX], confidence=0.99
    )
    assert (result["created"], result["status"]) == (True, "pending_review")
    with store.sessions() as session:
        assert session.get_one(Case, result["case_id"]).violation_code == "9901"
