"""Open311 GeoReport v2 facade: field names and types per the spec, form-encoded POST with api_key,
status open/closed, expected_datetime = deadline, media_url = evidence, and credentials required."""

from __future__ import annotations

import datetime as dt
from typing import Any

from fastapi.testclient import TestClient
from sqlalchemy import select

from api.actors import SYSTEM
from api.config_import import DEFAULT_CONFIG, import_file
from api.models import Case, CaseStatus, Evidence, Place, Role
from tests.api.builders import World, auth, make_device_key, make_operator, make_world
from tests.api.conftest import Store

REQUEST_FIELDS = {
    "service_request_id": str,
    "status": str,
    "status_notes": (str, type(None)),
    "service_name": (str, type(None)),
    "service_code": str,
    "description": (str, type(None)),
    "agency_responsible": (str, type(None)),
    "service_notice": (str, type(None)),
    "requested_datetime": (str, type(None)),
    "updated_datetime": (str, type(None)),
    "expected_datetime": (str, type(None)),
    "address": (str, type(None)),
    "address_id": (str, type(None)),
    "zipcode": (str, type(None)),
    "lat": (float, type(None)),
    "long": (float, type(None)),
    "media_url": (str, type(None)),
}
SERVICE_FIELDS = {
    "service_code": str,
    "service_name": str,
    "description": str,
    "metadata": bool,
    "type": str,
    "keywords": str,
    "group": str,
}


def setup_city(store: Store) -> World:
    """The builders' tiny city plus the default violation types, deadlines and calendar."""
    world = make_world(store.sessions)  # violation types without descriptions...
    with store.sessions.begin() as session:  # ...which the default file then completes
        import_file(session, DEFAULT_CONFIG, SYSTEM)
        place = session.get(Place, world.place_id)
        assert place is not None
        place.lat, place.lon = 39.9139, 116.3972
    return world


def assert_fields(item: dict[str, Any], spec: dict[str, Any]) -> None:
    assert set(item) == set(spec), set(item) ^ set(spec)
    for name, kind in spec.items():
        assert isinstance(item[name], kind), (name, item[name])


def post(client: TestClient, key: str, **fields: Any) -> Any:
    return client.post("/open311/v2/requests.json", data={"api_key": key, **fields})


def test_discovery_is_public_services_need_a_key(client: TestClient, store: Store) -> None:
    setup_city(store)
    discovery = client.get("/open311/v2/discovery.json")
    assert discovery.status_code == 200
    endpoint = discovery.json()["endpoints"][0]
    assert endpoint["specification"] == "http://wiki.open311.org/GeoReport_v2"
    assert endpoint["url"].endswith("/open311/v2") and endpoint["formats"] == ["application/json"]

    denied = client.get("/open311/v2/services.json")
    assert denied.status_code == 403
    assert denied.json() == [{"code": 403, "description": denied.json()[0]["description"]}]
    assert "api_key" in denied.json()[0]["description"]

    token = make_operator(store.sessions, Role.VIEWER)
    services = client.get("/open311/v2/services.json", params={"api_key": token}).json()
    # 9901 too: a citizen may report "something is there" and the operator re-codes it at review
    assert [s["service_code"] for s in services] == ["0102", "0501", "0504", "0505", "0506", "9901"]
    for service in services:
        assert_fields(service, SERVICE_FIELDS)
        assert service["metadata"] is False and service["type"] == "realtime"
    parking = services[3]
    assert (parking["service_name"], parking["group"]) == ("机动车乱停放", "05 街面秩序")
    assert "illegal_parking" in parking["keywords"].split(", ")
    definition = client.get("/open311/v2/services/0505.json", headers=auth(token))
    assert definition.json() == {"service_code": "0505", "attributes": []}
    missing = client.get("/open311/v2/services/0999.json", headers=auth(token))
    assert missing.status_code == 404 and missing.json()[0]["code"] == 404


def test_post_form_encoded_creates_a_case_and_get_returns_spec_fields(
    client: TestClient, store: Store
) -> None:
    world = setup_city(store)
    token = make_operator(store.sessions, Role.SHIFT_LEADER)
    created = post(
        client,
        token,
        service_code="0505",
        lat="39.9140",
        long="116.3973",
        address_string="东华门大街 12 号",
        description="car parked on the pavement",
        email="citizen@example.org",
        first_name="Li",
        phone="12345",
        media_url="https://img.example.org/1.jpg",
    )
    assert created.status_code == 201, created.text
    [receipt] = created.json()
    assert set(receipt) == {"service_request_id", "service_notice", "account_id"}
    request_id = receipt["service_request_id"]
    assert isinstance(request_id, str) and request_id.isdigit()

    with store.sessions() as session:
        case = session.get(Case, int(request_id))
        assert case is not None
        assert (case.source, case.status, case.place_id) == ("open311", "pending_review", world.place_id)
        assert case.reporter is not None and case.reporter["email"] == "citizen@example.org"
        assert case.open_slot == f"{world.place_id}|0505"

    [request] = client.get(f"/open311/v2/requests/{request_id}.json", params={"api_key": token}).json()
    assert_fields(request, REQUEST_FIELDS)
    assert request["service_request_id"] == request_id and request["status"] == "open"
    assert (request["service_code"], request["service_name"]) == ("0505", "机动车乱停放")
    assert request["address_id"] == world.place_key and request["address"] == "东华门大街 12 号"
    assert (request["lat"], request["long"]) == (39.914, 116.3973)
    assert request["media_url"] == "https://img.example.org/1.jpg"  # no evidence image yet
    assert request["expected_datetime"] is None and request["agency_responsible"] is None
    assert dt.datetime.fromisoformat(request["requested_datetime"]).tzinfo is not None
    assert "email" not in str(request) and "12345" not in str(request)  # the reporter stays private


def test_reports_for_an_open_case_become_sightings(client: TestClient, store: Store) -> None:
    world = setup_city(store)
    device_key = make_device_key(store.sessions)
    token = make_operator(store.sessions, Role.DISPATCHER)
    first = post(client, device_key, service_code="0102", address_id=world.place_key)
    second = post(client, token, service_code="0102", lat="39.9141", long="116.3970")  # ~20 m away
    assert first.status_code == second.status_code == 201, second.text
    assert first.json()[0]["service_request_id"] == second.json()[0]["service_request_id"]
    assert "added to the open request" in second.json()[0]["service_notice"]
    with store.sessions() as session:
        case = session.scalars(select(Case)).one()
        assert case.sighting_count == 2 and len(case.sightings) == 2
        assert [e.action for e in case.events] == ["created", "sighting"]
        assert case.events[0].actor == "device:box-1"


def test_status_mapping_deadline_agency_and_filters(client: TestClient, store: Store) -> None:
    world = setup_city(store)
    token = make_operator(store.sessions, Role.ADMIN)
    ids = {}
    for code in ("0102", "0501", "0504", "0505"):
        response = post(client, token, service_code=code, address_id=world.place_key)
        ids[code] = int(response.json()[0]["service_request_id"])
    deadline = dt.datetime(2026, 3, 2, 9, 30, tzinfo=dt.UTC)
    with store.sessions.begin() as session:
        closed, voided, dispatched = (session.get(Case, ids[c]) for c in ("0102", "0501", "0504"))
        assert closed and voided and dispatched
        closed.status, closed.open_slot = CaseStatus.CLOSED.value, None
        voided.status, voided.void_reason, voided.open_slot = CaseStatus.VOIDED.value, "duplicate", None
        dispatched.status, dispatched.unit_id, dispatched.deadline_at = (
            "dispatched",
            world.traffic_id,
            deadline,
        )
        old = session.get(Case, ids["0505"])
        assert old is not None
        old.created_at = dt.datetime.now(dt.UTC) - dt.timedelta(days=100)

    def query(**params: Any) -> dict[int, dict[str, Any]]:
        response = client.get("/open311/v2/requests.json", params={"api_key": token, **params})
        assert response.status_code == 200, response.text
        return {int(r["service_request_id"]): r for r in response.json()}

    recent = query()  # the spec's default: the last 90 days
    assert set(recent) == {ids["0102"], ids["0501"], ids["0504"]}
    assert {i: r["status"] for i, r in recent.items()} == {
        ids["0102"]: "closed",
        ids["0501"]: "closed",
        ids["0504"]: "open",
    }
    assert recent[ids["0501"]]["status_notes"] == "voided (作废): duplicate"
    assert recent[ids["0504"]]["expected_datetime"] == "2026-03-02T09:30:00+00:00"
    assert recent[ids["0504"]]["agency_responsible"] == "交通大队"
    since = (dt.datetime.now(dt.UTC) - dt.timedelta(days=200)).isoformat()
    assert set(query(status="open", start_date=since)) == {ids["0504"], ids["0505"]}
    assert set(query(status="closed")) == {ids["0102"], ids["0501"]}
    assert set(query(status="open,closed", service_code="0102,0504")) == {ids["0102"], ids["0504"]}
    assert set(query(service_request_id=f"{ids['0505']},{ids['0102']}")) == {ids["0505"], ids["0102"]}
    until = (dt.datetime.now(dt.UTC) - dt.timedelta(days=50)).isoformat()
    assert set(query(end_date=until)) == {ids["0505"]}


def test_media_url_points_at_the_best_evidence(client: TestClient, store: Store) -> None:
    world = setup_city(store)
    token = make_operator(store.sessions, Role.ADMIN)
    request_id = post(client, token, service_code="0102", address_id=world.place_key).json()[0][
        "service_request_id"
    ]
    sha = "ab" * 32
    with store.sessions.begin() as session:
        evidence = Evidence(
            case_id=int(request_id),
            sha256=sha,
            kind="confirmation",
            content_type="image/jpeg",
            size=10,
            width=4,
            height=3,
            uploaded_by="device:box-1",
        )
        session.add(evidence)
        session.flush()
        case = session.get(Case, int(request_id))
        assert case is not None
        case.best_evidence_id = evidence.id
    [request] = client.get(f"/open311/v2/requests/{request_id}.json", headers=auth(token)).json()
    assert request["media_url"] == f"{store.settings.public_url}/api/v1/evidence/{sha}"


def test_credentials_roles_and_unit_visibility(client: TestClient, store: Store) -> None:
    world = setup_city(store)
    admin = make_operator(store.sessions, Role.ADMIN)
    viewer = make_operator(store.sessions, Role.VIEWER)
    handler = make_operator(store.sessions, Role.UNIT_HANDLER, unit_id=world.sanitation_id)
    device_key = make_device_key(store.sessions)
    mine = int(
        post(client, admin, service_code="0102", address_id=world.place_key).json()[0]["service_request_id"]
    )
    theirs = int(
        post(client, admin, service_code="0505", address_id=world.place_key).json()[0]["service_request_id"]
    )
    with store.sessions.begin() as session:
        for case_id, unit_id in ((mine, world.sanitation_id), (theirs, world.traffic_id)):
            case = session.get(Case, case_id)
            assert case is not None
            case.status, case.unit_id = "dispatched", unit_id

    def get(path: str, **params: Any) -> Any:
        return client.get(f"/open311/v2/{path}", params=params)

    cases = [
        (get("requests.json"), 403, "api_key required"),
        (get("requests.json", api_key="swt_forged"), 403, "invalid, expired or revoked token"),
        (get("requests.json", api_key=device_key), 403, "device key may submit requests but not read"),
        (get(f"requests/{theirs}.json", api_key=handler), 404, f"case {theirs} not found"),
        (post(client, viewer, service_code="0102", address_id=world.place_key), 403, "viewers are read-only"),
        (post(client, "", service_code="0102", address_id=world.place_key), 403, "api_key required"),
    ]
    for response, status, fragment in cases:
        assert response.status_code == status, response.text
        [error] = response.json()
        assert error["code"] == status and fragment in error["description"], error
    visible = get("requests.json", api_key=handler).json()
    assert [r["service_request_id"] for r in visible] == [str(mine)]


def test_invalid_submissions_get_open311_errors(client: TestClient, store: Store) -> None:
    world = setup_city(store)
    token = make_operator(store.sessions, Role.ADMIN)
    cases = [
        (
            {"service_code": "0999", "address_id": world.place_key},
            "service_code '0999' not found; services: 0102",
        ),
        ({"service_code": "0102"}, "a location is required"),
        ({"service_code": "0102", "address_string": "somewhere"}, "a location is required"),
        ({"service_code": "0102", "lat": "39.9"}, "both lat and long"),
        ({"service_code": "0102", "lat": "north", "long": "116.4"}, "lat"),
        ({"service_code": "0102", "lat": "95", "long": "116.4"}, "lat"),
        ({"service_code": "0102", "lat": "31.2", "long": "121.5"}, "no known place within 1000 m"),
        ({"service_code": "0102", "address_id": "nowhere"}, "address_id 'nowhere' is not a known place key"),
        (
            {"service_code": "0102", "address_id": world.place_key, "media_url": "file:///etc/passwd"},
            "media_url",
        ),
        ({"address_id": world.place_key}, "service_code"),
    ]
    for fields, fragment in cases:
        response = post(client, token, **fields)
        assert response.status_code == 400, (fields, response.text)
        [error] = response.json()
        assert error["code"] == 400 and fragment in error["description"], (fields, error)
    bad_status = client.get("/open311/v2/requests.json", params={"api_key": token, "status": "pending"})
    assert bad_status.status_code == 400 and "open, closed" in bad_status.json()[0]["description"]
    with store.sessions() as session:
        assert session.scalars(select(Case)).all() == []
