"""The operators' case list (filters, newest first, pagination, counts) and case detail."""

from __future__ import annotations

import datetime as dt
import importlib.util
from collections.abc import Iterator
from contextlib import contextmanager, nullcontext
from dataclasses import dataclass
from typing import Any

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import event, update

from api import case_queries
from api.actors import Actor
from api.ingest import ingest_report
from api.models import Case, Role
from contract.reports import CaseReport
from tests.api.builders import (
    auth,
    case_report,
    device_auth,
    image_bytes,
    make_device,
    make_operator,
    make_operators,
    make_world,
    post_report,
)
from tests.api.conftest import Store

T = dt.datetime(2026, 5, 11, 0, 0, tzinfo=dt.UTC)
P1 = "110101001001001"  # the world's place
P2 = "grid-2"

# label: place, report fields, hours after T it was created, then what the workflow did to it
CASES: dict[str, tuple[str, dict[str, Any], int, dict[str, Any]]] = {
    "a": (P1, {"violation_type": "illegal_parking", "camera": "cam-1"}, 0, {}),
    "b": (
        P1,
        {"violation_type": "exposed_garbage", "camera": "cam-1"},
        1,
        {"status": "dispatched", "unit": "sanitation", "overdue": True},
    ),
    "c": (
        P1,
        {"violation_type": "street_stall", "camera": "cam-2"},
        2,
        {"status": "in_progress", "unit": "traffic"},
    ),
    "d": (
        P2,
        {"violation_type": "illegal_parking", "camera": "cam-3"},
        3,
        {"status": "closed", "unit": "traffic"},
    ),
    "e": (
        P2,
        {"violation_type": "exposed_garbage", "camera": "cam-3"},
        4,
        {"status": "dispatched", "unit": "sanitation", "source": "open311"},
    ),
    "f": (
        P2,
        {"violation_type": "illegal_parking", "event_code": "0506", "camera": "cam-3"},
        5,
        {"status": "filed"},
    ),
}


@dataclass
class City:
    ids: dict[str, int]  # label -> case id
    units: dict[str, int]
    leader: str

    def listed(self, client: TestClient, params: dict[str, Any], token: str | None = None) -> tuple[str, int]:
        """The labels of the cases listed, in order, and the count."""
        response = client.get("/api/v1/cases", params=params, headers=auth(token or self.leader))
        assert response.status_code == 200, response.text
        body = response.json()
        labels = {case_id: label for label, case_id in self.ids.items()}
        return "".join(labels[case["id"]] for case in body["data"]), body["count"]


@pytest.fixture
def city(store: Store) -> City:
    world = make_world(store.sessions)
    units = {"sanitation": world.sanitation_id, "traffic": world.traffic_id}
    device_id, _ = make_device(store.sessions, "box-1")
    device = Actor(kind="device", id=device_id, name="box-1")
    ids = {}
    for label, (place, fields, hours, workflow) in CASES.items():
        report = CaseReport.model_validate(case_report(f"incident-{label}", place=place, **fields))
        with store.sessions.begin() as session:
            now = T + dt.timedelta(hours=hours)
            case_id = ingest_report(session, report, device, store.settings, now=now).case_id
            changes: dict[str, Any] = {
                k: v for k, v in workflow.items() if k in {"status", "overdue", "source"}
            }
            if "unit" in workflow:
                changes["unit_id"] = units[workflow["unit"]]
            if workflow.get("status") == "closed":
                changes.update(open_slot=None, closed_at=now)
            if changes:
                session.execute(update(Case).where(Case.id == case_id).values(changes))
        ids[label] = case_id
    leader = make_operator(store.sessions, Role.SHIFT_LEADER)
    return City(ids, units, leader)


def at(hours: int) -> str:
    return (T + dt.timedelta(hours=hours)).isoformat()


FILTERS: list[tuple[dict[str, Any], str]] = [
    # query parameters, the cases listed (newest first)
    ({}, "fedcba"),
    ({"status": "dispatched"}, "eb"),
    ({"status": ["dispatched", "in_progress"]}, "ecb"),
    ({"violation": "0102"}, "eb"),
    ({"violation": ["0505", "0506"]}, "fda"),
    ({"unit": "sanitation"}, "eb"),
    ({"place": P1}, "cba"),
    ({"place": "no-such-place"}, ""),
    ({"camera": "cam-3"}, "fed"),
    ({"created_from": at(2)}, "fedc"),
    ({"created_to": at(2)}, "ba"),
    ({"created_from": at(1), "created_to": at(4)}, "dcb"),
    ({"overdue": "true"}, "b"),
    ({"overdue": "false"}, "fedca"),
    ({"source": "open311"}, "e"),
    ({"source": "camera", "status": ["dispatched", "filed"]}, "fb"),
    ({"status": "dispatched", "unit": "sanitation", "overdue": "true"}, "b"),
]


def test_filters_and_pagination(client: TestClient, store: Store, city: City) -> None:
    for params, expected in FILTERS:
        query = {k: (city.units[v] if k == "unit" else v) for k, v in params.items()}

        labels, count = city.listed(client, query)

        assert (labels, count) == (expected, len(expected)), params
    pages = [city.listed(client, {"limit": 2, "offset": offset}) for offset in (0, 2, 4, 6)]
    assert pages == [("fe", 6), ("dc", 6), ("ba", 6), ("", 6)]  # the count is of all matches, not the page
    filtered = [city.listed(client, {"limit": 1, "offset": o, "camera": "cam-3"}) for o in (0, 1, 2, 3)]
    assert filtered == [("f", 3), ("e", 3), ("d", 3), ("", 3)]


def test_keyset_pages_follow_next_cursor_and_survive_new_cases(
    client: TestClient, store: Store, city: City
) -> None:
    def page(params: dict[str, Any]) -> dict[str, Any]:
        response = client.get("/api/v1/cases", params=params, headers=auth(city.leader))
        assert response.status_code == 200, response.text
        return dict(response.json())

    labels = {case_id: label for label, case_id in city.ids.items()}
    seen, params = [], {"limit": 2}
    first = page(params)
    assert (first["count"], first["count_capped"]) == (6, False)
    body = first
    while True:
        seen.append("".join(labels[c["id"]] for c in body["data"]))
        if body["next_cursor"] is None:
            break
        if len(seen) == 1:  # a case arrives while someone pages: no row repeats or vanishes
            _, key = make_device(store.sessions, "box-2")
            post_report(client, key, "incident-new", place=P1)
        body = page({"limit": 2, "after": body["next_cursor"]})
    assert seen == ["fe", "dc", "ba"]
    deeper = page({"limit": 2, "camera": "cam-3", "after": first["next_cursor"]})
    assert deeper["data"][0]["id"] == city.ids["d"]


def test_count_is_capped_beyond_the_cap_and_says_so(
    client: TestClient, store: Store, city: City, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(case_queries, "COUNT_CAP", 4)

    capped = client.get("/api/v1/cases", params={"limit": 1}, headers=auth(city.leader)).json()
    small = client.get("/api/v1/cases", params={"camera": "cam-3"}, headers=auth(city.leader)).json()

    assert (capped["count"], capped["count_capped"], len(capped["data"])) == (4, True, 1)
    assert (small["count"], small["count_capped"], small["next_cursor"]) == (3, False, None)


def test_the_scene_scorer_reads_every_case_past_the_count_cap(
    client: TestClient, store: Store, city: City, monkeypatch: pytest.MonkeyPatch
) -> None:
    """datasets/scenes/score.py pages the list to the end by next_cursor, not until len == count."""
    from datasets.scenes import score

    make_operators(store.sessions, [("scorer", Role.VIEWER, None)])
    monkeypatch.setattr(case_queries, "COUNT_CAP", 2)
    monkeypatch.setattr(score, "CASE_PAGE", 2)
    monkeypatch.setattr(score, "case_events", lambda rows, codes, start: [row["id"] for row in rows])
    monkeypatch.setattr("httpx.Client", lambda **_: nullcontext(client))

    fetched: list[Any] = list(score.fetch_cases("http://store", "scorer", "correct-horse", T))

    assert sorted(fetched) == sorted(city.ids.values())


def test_unit_handlers_see_only_their_units_cases(client: TestClient, store: Store, city: City) -> None:
    sanitation = make_operator(store.sessions, Role.UNIT_HANDLER, unit_id=city.units["sanitation"])
    viewer = make_operator(store.sessions, Role.VIEWER)

    assert city.listed(client, {}, sanitation) == ("eb", 2)
    assert city.listed(client, {"unit": city.units["traffic"]}, sanitation) == ("", 0)
    assert city.listed(client, {}, viewer) == ("fedcba", 6)
    for label, status in [("b", 200), ("e", 200), ("c", 404), ("a", 404)]:
        response = client.get(f"/api/v1/cases/{city.ids[label]}", headers=auth(sanitation))
        assert response.status_code == status, label
    assert client.get(f"/api/v1/cases/{city.ids['c']}", headers=auth(sanitation)).json()["detail"] == (
        f"case {city.ids['c']} not found"
    )


INVALID_QUERIES = [
    ({"status": "lost"}, "status"),
    ({"created_from": "2026-05-11T00:00:00"}, "created_from"),  # naive: which zone?
    ({"created_from": at(3), "created_to": at(1)}, "created_from"),
    ({"created_to": "9999-12-31T23:00:00-23:00"}, "created_to"),  # not representable in UTC
    ({"limit": 0}, "limit"),
    ({"limit": 201}, "limit"),
    ({"offset": -1}, "offset"),
    ({"unit": 0}, "unit"),
    ({"overdue": "perhaps"}, "overdue"),
    ({"source": "email"}, "source"),
    ({"after": "fedcba"}, "after"),  # not a cursor of this list
    ({"after": "20260511T000000.000000Z_0"}, "after"),
    ({"after": "20260511T000000.000000Z_99999999999999999999"}, "after"),  # no such id, not a 500
    ({"after": "20260511T050000.000000Z_6", "offset": 2}, "after"),  # one way of paging at a time
]


def test_invalid_filters_are_422_naming_the_parameter(client: TestClient, store: Store) -> None:
    leader = make_operator(store.sessions, Role.SHIFT_LEADER)
    for params, name in INVALID_QUERIES:
        response = client.get("/api/v1/cases", params=params, headers=auth(leader))

        assert response.status_code == 422, params
        assert name in response.text, response.text


def test_detail_has_sightings_evidence_events_actions_and_recurrences(
    client: TestClient, store: Store
) -> None:
    make_world(store.sessions)
    _, key = make_device(store.sessions, "box-1")
    leader = make_operator(store.sessions, Role.SHIFT_LEADER)
    viewer = make_operator(store.sessions, Role.VIEWER)
    case_id = post_report(client, key, "incident-0001")["case_id"]
    post_report(client, key, "incident-0002", camera="cam-2")
    evidence = client.post(
        f"/api/v1/cases/{case_id}/evidence",
        files={"file": ("c.jpg", image_bytes(), "image/jpeg")},
        data={"kind": "confirmation"},
        headers=device_auth(key),
    ).json()
    with store.sessions.begin() as session:
        session.execute(
            update(Case).where(Case.id == case_id).values(status="closed", closed_at=T, open_slot=None)
        )
    recurrence = post_report(client, key, "incident-0003", first_seen_at=at(2), confirmed_at=at(3))["case_id"]

    detail = client.get(f"/api/v1/cases/{case_id}", headers=auth(leader)).json()

    assert [s["camera_code"] for s in detail["sightings"]] == ["cam-1", "cam-2"]
    assert [(e["id"], e["url"]) for e in detail["evidence"]] == [(evidence["id"], evidence["url"])]
    assert detail["best_evidence_id"] == evidence["id"]
    assert [e["action"] for e in detail["events"]] == ["created", "sighting", "evidence"]
    assert detail["recurrences"] == [recurrence]
    later = client.get(f"/api/v1/cases/{recurrence}", headers=auth(leader)).json()
    assert later["recurrence_of_id"] == case_id
    if importlib.util.find_spec("api.case_actions") is not None:  # the workflow module says what is next
        assert {"file", "void"} <= set(later["allowed_actions"])
    assert client.get(f"/api/v1/cases/{recurrence}", headers=auth(viewer)).json()["allowed_actions"] == []
    assert client.get("/api/v1/cases/999999", headers=auth(leader)).status_code == 404


@contextmanager
def counted_statements(store: Store) -> Iterator[list[str]]:
    statements: list[str] = []

    def record(_conn: Any, _cursor: Any, statement: str, *_args: Any) -> None:
        statements.append(statement)

    event.listen(store.engine, "before_cursor_execute", record)
    try:
        yield statements
    finally:
        event.remove(store.engine, "before_cursor_execute", record)


def test_queries_do_not_grow_with_the_data(client: TestClient, store: Store) -> None:
    """No N+1: the statements per list page and per detail do not depend on how much there is."""
    make_world(store.sessions)
    _, key = make_device(store.sessions, "box-1")
    leader = make_operator(store.sessions, Role.SHIFT_LEADER)
    small = post_report(client, key, "small-0001", place="grid-small")["case_id"]
    big = post_report(client, key, "big-0000001", place="grid-big")["case_id"]
    for i in range(2, 7):
        post_report(client, key, f"big-000000{i}", place="grid-big")
    for seed in range(3):
        client.post(
            f"/api/v1/cases/{big}/evidence",
            files={"file": ("c.jpg", image_bytes(seed=seed), "image/jpeg")},
            data={"kind": "crop"},
            headers=device_auth(key),
        )

    def statements_for(path: str, params: dict[str, Any] | None = None) -> int:
        with counted_statements(store) as statements:
            assert client.get(path, params=params, headers=auth(leader)).status_code == 200
        return len(statements)

    assert statements_for(f"/api/v1/cases/{small}") == statements_for(f"/api/v1/cases/{big}")
    assert statements_for("/api/v1/cases", {"limit": 1}) == statements_for("/api/v1/cases", {"limit": 50})
