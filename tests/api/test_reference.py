"""Reference data API: units, places, violation types, cameras and zones, routing rules with history,
deadlines and the working calendar. Reads for any operator, writes for admins (and dispatchers for
routing rules); clear 409/422 errors that name the code at fault."""

from __future__ import annotations

from typing import Any

import pytest
from fastapi.testclient import TestClient

from api.models import Role
from tests.api.builders import World, auth, make_device_key, make_operator, make_world
from tests.api.conftest import Store

SQUARE = [[0.1, 0.1], [0.9, 0.1], [0.9, 0.9], [0.1, 0.9]]


@pytest.fixture
def world(store: Store) -> World:
    return make_world(store.sessions)


@pytest.fixture
def admin(store: Store) -> dict[str, str]:
    return auth(make_operator(store.sessions, Role.ADMIN))


def check(response: Any, status: int, *fragments: str) -> Any:
    assert response.status_code == status, response.text
    for fragment in fragments:
        assert fragment in response.text, (fragment, response.text)
    return response.json() if response.content else None


# --- permissions ----

PERMISSIONS = [
    # role, method, path, body, expected status (in order: the admin's deadline is set before later checks)
    (Role.VIEWER, "GET", "/api/v1/units", None, 200),
    (Role.UNIT_HANDLER, "GET", "/api/v1/routing-rules", None, 200),
    (Role.VIEWER, "POST", "/api/v1/units", {"code": "x", "name": "X"}, 403),
    (Role.DISPATCHER, "POST", "/api/v1/units", {"code": "x", "name": "X"}, 403),
    (Role.SHIFT_LEADER, "PUT", "/api/v1/deadlines/0102", {"working_hours": 3}, 403),
    (Role.ADMIN, "PUT", "/api/v1/deadlines/0102", {"working_hours": 3}, 200),
    (Role.DISPATCHER, "POST", "/api/v1/routing-rules", {"violation": "0102", "unit": "sanitation"}, 201),
    (Role.SHIFT_LEADER, "POST", "/api/v1/routing-rules", {"violation": "0102", "unit": "sanitation"}, 403),
    (Role.VIEWER, "PUT", "/api/v1/calendar", {"timezone": "Asia/Shanghai"}, 403),
]


def test_reads_for_operators_writes_for_admins(client: TestClient, store: Store, world: World) -> None:
    for role, method, path, body, expected in PERMISSIONS:
        unit_id = world.sanitation_id if role is Role.UNIT_HANDLER else None
        token = make_operator(store.sessions, role, unit_id=unit_id, username=f"{role.value}-{method}-{path}")
        response = client.request(method, path, json=body, headers=auth(token))
        assert response.status_code == expected, (role, method, path, response.text)


def test_devices_and_anonymous_cannot_read_reference_data(
    client: TestClient, store: Store, world: World
) -> None:
    key = make_device_key(store.sessions)
    check(client.get("/api/v1/places", headers={"X-Device-Key": key}), 403, "devices may only")
    check(client.get("/api/v1/places"), 401)


# --- units ----


def test_unit_hierarchy_duplicates_loops_and_deletion(client: TestClient, admin: dict[str, str]) -> None:
    check(client.post("/api/v1/units", json={"code": "city", "name": "市城管局"}, headers=admin), 201)
    child = check(
        client.post(
            "/api/v1/units", json={"code": "grid-1", "name": "网格1", "parent": "city"}, headers=admin
        ),
        201,
    )
    assert (child["parent_code"], child["kind"], child["active"]) == ("city", "department", True)
    check(client.post("/api/v1/units", json={"code": "city", "name": "again"}, headers=admin), 409, "'city'")
    check(
        client.post("/api/v1/units", json={"code": "g2", "name": "G", "parent": "nope"}, headers=admin),
        422,
        "unknown unit code 'nope'",
    )
    check(client.patch("/api/v1/units/city", json={"parent": "grid-1"}, headers=admin), 422, "loop")
    check(client.patch("/api/v1/units/city", json={"name": None}, headers=admin), 422, "cannot be null")
    check(client.delete("/api/v1/units/city", headers=admin), 409, "1 child units")
    moved = check(
        client.patch("/api/v1/units/grid-1", json={"parent": None, "kind": "grid"}, headers=admin), 200
    )
    assert (moved["parent_code"], moved["kind"]) == (None, "grid")
    check(client.delete("/api/v1/units/city", headers=admin), 204)
    check(client.get("/api/v1/units/city", headers=admin), 404, "no unit with code 'city'")
    listing = check(client.get("/api/v1/units", headers=admin), 200)
    assert listing["count"] == 1 and [u["code"] for u in listing["data"]] == ["grid-1"]


def test_unit_in_use_by_a_place_cannot_be_deleted(
    client: TestClient, world: World, admin: dict[str, str]
) -> None:
    check(client.delete("/api/v1/units/district", headers=admin), 409, "2 child units", "1 places")


# --- places ----


def test_places_with_owner_and_position(client: TestClient, world: World, admin: dict[str, str]) -> None:
    body = {
        "key": "road-07",
        "name": "东长安街7段",
        "kind": "road_section",
        "owner": "traffic",
        "lat": 39.9,
        "lon": 116.4,
    }
    place = check(client.post("/api/v1/places", json=body, headers=admin), 201)
    assert (place["owner_unit_code"], place["owner_unit_id"], place["lat"]) == (
        "traffic",
        world.traffic_id,
        39.9,
    )
    check(client.post("/api/v1/places", json=body, headers=admin), 409, "road-07")
    check(
        client.post("/api/v1/places", json={"key": "p2", "lat": 39.9}, headers=admin), 422, "both lat and lon"
    )
    check(client.post("/api/v1/places", json={"key": "p3", "owner": "ghost"}, headers=admin), 422, "'ghost'")
    check(client.post("/api/v1/places", json={"key": "a/b"}, headers=admin), 422)
    check(client.post("/api/v1/places", json={"key": "p4", "colour": "red"}, headers=admin), 422, "colour")
    updated = check(client.patch("/api/v1/places/road-07", json={"owner": None}, headers=admin), 200)
    assert updated["owner_unit_code"] is None
    listing = check(client.get("/api/v1/places", params={"owner": "district"}, headers=admin), 200)
    assert [p["key"] for p in listing["data"]] == [world.place_key]


# --- violation types ----


def test_violation_types_one_default_per_pipeline_type(
    client: TestClient, world: World, admin: dict[str, str]
) -> None:
    body = {"code": "0599", "name": "占道经营", "pipeline_type": "street_stall", "default_for_type": True}
    check(client.post("/api/v1/violation-types", json=body, headers=admin), 201)
    listing = check(client.get("/api/v1/violation-types", headers=admin), 200)
    defaults = {
        v["code"] for v in listing["data"] if v["pipeline_type"] == "street_stall" and v["default_for_type"]
    }
    assert defaults == {"0599"}
    check(client.post("/api/v1/violation-types", json=body, headers=admin), 409, "'0599'")
    check(client.post("/api/v1/violation-types", json={**body, "code": 505}, headers=admin), 422, "quote it")
    check(
        client.patch("/api/v1/violation-types/0599", json={"auto_file_min_confidence": 2}, headers=admin), 422
    )
    check(client.put("/api/v1/deadlines/0599", json={"working_hours": 8}, headers=admin), 200)
    check(
        client.delete("/api/v1/violation-types/0599", headers=admin), 409, "1 deadline rules", "active=false"
    )
    check(client.patch("/api/v1/violation-types/0599", json={"active": False}, headers=admin), 200)


# --- cameras and zones ----

ZONES = [
    # polygon, rules, expected status, fragment of the error
    (SQUARE, {"illegal_parking": {"dwell_s": 300}}, 200, ""),
    ([[0.1, 0.1], [0.9, 0.1]], {}, 422, "at least 3"),
    ([[0.1, 0.1], [1.5, 0.1], [0.9, 0.9]], {}, 422, "less than or equal to 1"),
    ([[0.1, 0.1], [0.5, 0.5], [0.9, 0.9]], {}, 422, "no area"),
    (SQUARE, {"jaywalking": {"dwell_s": 10}}, 422, "unknown violation type(s) jaywalking"),
    (SQUARE, {"illegal_parking": {"dwell_s": 0}}, 422, "greater than or equal to 1"),
    (
        SQUARE,
        {"illegal_parking": {"dwell_s": 60, "schedule": [{"start": "07:00", "end": "07:00"}]}},
        422,
        "empty",
    ),
    (
        SQUARE,
        {"illegal_parking": {"dwell_s": 60, "schedule": [{"start": "7:00", "end": "08:30"}]}},
        422,
        "pattern",
    ),
    (SQUARE, {"street_stall": {"dwell_s": 60, "schedule": [{"start": "23:00", "end": "18:00"}]}}, 200, ""),
]


def test_zone_validation(client: TestClient, world: World, admin: dict[str, str]) -> None:
    check(client.post("/api/v1/cameras", json={"code": "cam-1"}, headers=admin), 201)
    for index, (polygon, rules, expected, fragment) in enumerate(ZONES):
        body = {"place": world.place_key, "polygon": polygon, "rules": rules}
        response = client.put(f"/api/v1/cameras/cam-1/zones/z{index}", json=body, headers=admin)
        assert response.status_code == expected and fragment in response.text, (index, response.text)
        if expected == 200:
            zone = response.json()
            assert zone["polygon"] == polygon and zone["place_key"] == world.place_key
            assert set(zone["rules"]) == set(rules)
    zones = check(client.get("/api/v1/cameras/cam-1/zones", headers=admin), 200)
    assert [z["code"] for z in zones] == [f"z{i}" for i, zone in enumerate(ZONES) if zone[2] == 200]


def test_camera_with_zones_device_assignment_and_zone_replacement(
    client: TestClient, store: Store, world: World, admin: dict[str, str]
) -> None:
    make_device_key(store.sessions, "box-7")
    body = {
        "code": "cam-9",
        "name": "路口东",
        "device": "box-7",
        "zones": [{"code": "z1", "place": world.place_key, "polygon": SQUARE, "rules": {}}],
    }
    camera = check(client.post("/api/v1/cameras", json=body, headers=admin), 201)
    assert camera["device"] == "box-7" and [z["code"] for z in camera["zones"]] == ["z1"]
    check(
        client.post("/api/v1/cameras", json={**body, "code": "cam-10", "device": "box-0"}, headers=admin),
        422,
        "box-0",
    )
    check(client.post("/api/v1/cameras", json=body, headers=admin), 409, "cam-9")
    triangle = [[0.0, 0.0], [1.0, 0.0], [0.5, 1.0]]
    rules = {"exposed_garbage": {"dwell_s": 600}}
    replaced = {"place": world.place_key, "polygon": triangle, "rules": rules}
    check(client.put("/api/v1/cameras/cam-9/zones/z1", json=replaced, headers=admin), 200)
    zones = check(client.get("/api/v1/cameras/cam-9/zones", headers=admin), 200)
    assert (
        len(zones) == 1
        and zones[0]["polygon"] == triangle
        and zones[0]["rules"]["exposed_garbage"]["dwell_s"] == 600
    )
    check(
        client.put("/api/v1/cameras/cam-9/zones/z2", json={**replaced, "place": "nowhere"}, headers=admin),
        422,
    )
    assert (
        check(client.patch("/api/v1/cameras/cam-9", json={"device": None}, headers=admin), 200)["device"]
        is None
    )
    check(client.delete("/api/v1/cameras/cam-9/zones/z1", headers=admin), 204)
    check(client.delete("/api/v1/cameras/cam-9/zones/z1", headers=admin), 404, "no zone 'z1'")
    check(client.delete("/api/v1/cameras/cam-9", headers=admin), 204)


# --- routing rules and history ----


def test_every_routing_change_is_in_the_history_with_its_actor(
    client: TestClient, store: Store, world: World
) -> None:
    dispatcher = auth(make_operator(store.sessions, Role.DISPATCHER, username="wang"))
    body = {"place": world.place_key, "violation": "0505", "unit": "traffic", "priority": 10}
    rule = check(client.post("/api/v1/routing-rules", json=body, headers=dispatcher), 201)
    assert (rule["place_key"], rule["violation_code"], rule["unit_code"]) == (
        world.place_key,
        "0505",
        "traffic",
    )
    rule_id = rule["id"]
    check(
        client.patch(f"/api/v1/routing-rules/{rule_id}", json={"unit": "sanitation"}, headers=dispatcher), 200
    )
    check(
        client.patch(f"/api/v1/routing-rules/{rule_id}", json={"unit": "sanitation"}, headers=dispatcher), 200
    )
    check(client.delete(f"/api/v1/routing-rules/{rule_id}", headers=dispatcher), 204)
    history = check(client.get("/api/v1/routing-rules/history", headers=dispatcher), 200)
    assert history["count"] == 3  # the second, identical update changed nothing
    newest_first = history["data"]
    assert [h["action"] for h in newest_first] == ["deleted", "updated", "created"]
    assert {h["actor"] for h in newest_first} == {"user:wang"}
    assert {h["rule_id"] for h in newest_first} == {rule_id}
    assert newest_first[1]["snapshot"]["changes"] == {"unit_code": ["traffic", "sanitation"]}
    assert newest_first[0]["snapshot"]["unit_code"] == "sanitation"
    only = check(
        client.get("/api/v1/routing-rules/history", params={"rule_id": rule_id + 1}, headers=dispatcher), 200
    )
    assert only == {"data": [], "count": 0}
    check(client.get(f"/api/v1/routing-rules/{rule_id}", headers=dispatcher), 404)


ROUTING_ERRORS = [
    ({"unit": "nobody"}, "unknown unit code 'nobody'"),
    ({"unit": "traffic", "place": "atlantis"}, "unknown place key 'atlantis'"),
    ({"unit": "traffic", "violation": "9999"}, "unknown violation event code '9999'"),
    ({"unit": "traffic", "priority": -1}, "greater than or equal to 0"),
]


def test_routing_rule_errors_name_the_reference(
    client: TestClient, world: World, admin: dict[str, str]
) -> None:
    for body, fragment in ROUTING_ERRORS:
        check(client.post("/api/v1/routing-rules", json=body, headers=admin), 422, fragment)
    assert check(client.get("/api/v1/routing-rules", headers=admin), 200)["count"] == 0
    assert check(client.get("/api/v1/routing-rules/history", headers=admin), 200)["count"] == 0


# --- deadlines and calendar ----


def test_deadline_table(client: TestClient, world: World, admin: dict[str, str]) -> None:
    check(client.put("/api/v1/deadlines/0102", json={"working_hours": 4}, headers=admin), 200)
    check(client.put("/api/v1/deadlines/0102", json={"working_hours": 6.5}, headers=admin), 200)
    check(client.put("/api/v1/deadlines/0777", json={"working_hours": 4}, headers=admin), 422, "'0777'")
    check(client.put("/api/v1/deadlines/0505", json={"working_hours": 0}, headers=admin), 422)
    assert check(client.get("/api/v1/deadlines", headers=admin), 200) == [
        {"violation_code": "0102", "working_hours": 6.5}
    ]
    check(client.delete("/api/v1/deadlines/0102", headers=admin), 204)
    check(client.delete("/api/v1/deadlines/0102", headers=admin), 404, "default applies")


CALENDARS = [
    ({"timezone": "Mars/Olympus"}, 422, "unknown time zone"),
    ({"periods": [["13:30", "17:30"], ["08:30", "12:00"]]}, 422, "in order"),
    ({"periods": [["12:00", "08:30"]]}, 422, "ends before it starts"),
    ({"periods": [["08:30", 1230]]}, 422, "quote it"),
    ({"workdays": [1, 1, 2]}, 422, "twice"),
    ({"workdays": [0]}, 422, "greater than or equal to 1"),
    ({"timezone": "Asia/Urumqi", "periods": [["10:00", "14:00"]], "workdays": [6, 1]}, 200, ""),
]


def test_calendar_validation(client: TestClient, admin: dict[str, str]) -> None:
    current = check(client.get("/api/v1/calendar", headers=admin), 200)
    assert current["configured"] is False and current["timezone"] == "Asia/Shanghai"
    for body, expected, fragment in CALENDARS:
        response = client.put("/api/v1/calendar", json=body, headers=admin)
        assert response.status_code == expected and fragment in response.text, (body, response.text)
        if expected == 200:
            current = {**current, **body, "workdays": sorted(body["workdays"]), "configured": True}
            assert response.json() == current
        assert check(client.get("/api/v1/calendar", headers=admin), 200) == current


def test_calendar_days_holidays_and_make_up_days(client: TestClient, admin: dict[str, str]) -> None:
    check(
        client.put(
            "/api/v1/calendar/days/2026-10-01", json={"working": False, "name": "国庆节"}, headers=admin
        ),
        200,
    )
    check(
        client.put("/api/v1/calendar/days/2026-10-10", json={"working": True, "name": "调休"}, headers=admin),
        200,
    )
    check(
        client.put(
            "/api/v1/calendar/days/2026-10-01", json={"working": False, "name": "National Day"}, headers=admin
        ),
        200,
    )
    check(client.put("/api/v1/calendar/days/2026-13-01", json={"working": False}, headers=admin), 422)
    days = check(client.get("/api/v1/calendar/days", params={"start": "2026-10-01"}, headers=admin), 200)
    assert days == [
        {"day": "2026-10-01", "working": False, "name": "National Day"},
        {"day": "2026-10-10", "working": True, "name": "调休"},
    ]
    assert (
        check(client.get("/api/v1/calendar/days", params={"end": "2026-10-05"}, headers=admin), 200)
        == days[:1]
    )
    check(client.delete("/api/v1/calendar/days/2026-10-10", headers=admin), 204)
    check(client.delete("/api/v1/calendar/days/2026-10-10", headers=admin), 404)
