"""Who may call what: one table of every API route against every kind of caller, on both backends.

Each row is a route and the status each caller kind gets with a request that is otherwise harmless (an
empty body, an unknown id where the route would delete): 401 anonymous, 403 a role or key that may not,
404 a case or object the caller may not see, anything else is the route's own answer to an allowed caller.
The table must cover every route of the OpenAPI document plus /metrics, so a new route without a row
fails here. Logout comes last: it revokes the caller's token. A change to who may do what shows as a row
whose statuses differ: change the row only when the new rule is meant.
"""

from __future__ import annotations

import hashlib
from typing import Any

import pytest
from fastapi.testclient import TestClient
from sqlalchemy.orm import Session, sessionmaker

from api.evidence import store_image
from api.models import Camera, Case, Delivery, Evidence, Role, RoutingRule, Zone
from api.storage import blobs_for
from tests.api.builders import (
    auth,
    device_auth,
    image_bytes,
    make_device,
    make_operators,
    make_pending_case,
    make_world,
)
from tests.api.conftest import Store

pytestmark = pytest.mark.security

CALLERS = (
    "anonymous",
    "device",
    "other_device",
    "viewer",
    "dispatcher",
    "shift_leader",
    "unit_handler",
    "other_unit_handler",
    "admin",
)


# fmt: off
MATRIX: list[tuple[str, str, str]] = [
    # method, route, then the status for each of CALLERS: anonymous, device, other device, viewer,
    # dispatcher, shift leader, unit handler, other unit's handler, admin
    ("GET", "/healthz", "200 200 200 200 200 200 200 200 200"),
    ("POST", "/api/v1/auth/login", "422 422 422 422 422 422 422 422 422"),
    ("GET", "/api/v1/auth/me", "401 403 403 200 200 200 200 200 200"),
    ("GET", "/api/v1/auth/lockouts", "401 403 403 403 403 403 403 403 200"),
    ("POST", "/api/v1/cases/incident-updates", "401 422 422 403 403 403 403 403 403"),
    ("POST", "/api/v1/cases", "401 422 422 403 403 403 403 403 403"),
    ("GET", "/api/v1/cases", "401 403 403 200 200 200 200 200 200"),
    ("GET", "/api/v1/cases/{case_id}", "401 403 403 200 200 200 200 404 200"),
    ("POST", "/api/v1/cases/{case_id}/evidence", "401 201 404 403 200 200 200 404 200"),
    ("GET", "/api/v1/evidence/{sha256}", "401 403 403 200 200 200 200 404 200"),
    ("POST", "/api/v1/cases/{case_id}/actions/{action}", "401 403 404 403 403 409 403 404 409"),
    ("GET", "/api/v1/cases/{case_id}/actions", "401 200 404 200 200 200 200 404 200"),
    ("GET", "/api/v1/stats/report", "401 403 403 200 200 200 200 200 200"),
    ("GET", "/api/v1/stats/ranking", "401 403 403 200 200 200 200 200 200"),
    ("GET", "/api/v1/deliveries", "401 403 403 403 200 403 403 403 200"),
    ("POST", "/api/v1/deliveries/{delivery_id}/retry", "401 403 403 403 403 403 403 403 200"),
    ("GET", "/api/v1/units/{code}/channels", "401 403 403 403 403 403 403 403 200"),
    ("PUT", "/api/v1/units/{code}/channels", "401 403 403 403 403 403 403 403 200"),
    ("GET", "/api/v1/units", "401 403 403 200 200 200 200 200 200"),
    ("POST", "/api/v1/units", "401 403 403 403 403 403 403 403 422"),
    ("GET", "/api/v1/units/{code}", "401 403 403 200 200 200 200 200 200"),
    ("PATCH", "/api/v1/units/{code}", "401 403 403 403 403 403 403 403 200"),
    ("DELETE", "/api/v1/units/{code}", "401 403 403 403 403 403 403 403 404"),
    ("GET", "/api/v1/places", "401 403 403 200 200 200 200 200 200"),
    ("POST", "/api/v1/places", "401 403 403 403 403 403 403 403 422"),
    ("GET", "/api/v1/places/{key}", "401 403 403 200 200 200 200 200 200"),
    ("PATCH", "/api/v1/places/{key}", "401 403 403 403 403 403 403 403 200"),
    ("DELETE", "/api/v1/places/{key}", "401 403 403 403 403 403 403 403 404"),
    ("GET", "/api/v1/violation-types", "401 403 403 200 200 200 200 200 200"),
    ("POST", "/api/v1/violation-types", "401 403 403 403 403 403 403 403 422"),
    ("GET", "/api/v1/violation-types/{code}", "401 403 403 200 200 200 200 200 200"),
    ("PATCH", "/api/v1/violation-types/{code}", "401 403 403 403 403 403 403 403 200"),
    ("DELETE", "/api/v1/violation-types/{code}", "401 403 403 403 403 403 403 403 404"),
    ("GET", "/api/v1/cameras", "401 403 403 200 200 200 200 200 200"),
    ("POST", "/api/v1/cameras", "401 403 403 403 403 403 403 403 422"),
    ("GET", "/api/v1/cameras/{code}", "401 403 403 200 200 200 200 200 200"),
    ("PATCH", "/api/v1/cameras/{code}", "401 403 403 403 403 403 403 403 200"),
    ("DELETE", "/api/v1/cameras/{code}", "401 403 403 403 403 403 403 403 404"),
    ("GET", "/api/v1/cameras/{code}/zones", "401 403 403 200 200 200 200 200 200"),
    ("PUT", "/api/v1/cameras/{code}/zones/{zone_code}", "401 403 403 403 403 422 403 403 422"),
    ("DELETE", "/api/v1/cameras/{code}/zones/{zone_code}", "401 403 403 403 403 404 403 403 404"),
    ("PUT", "/api/v1/cameras/{code}/zones/{zone_code}/reference", "401 403 403 403 403 422 403 403 422"),
    ("DELETE", "/api/v1/cameras/{code}/zones/{zone_code}/reference", "401 403 403 403 403 404 403 403 404"),
    ("GET", "/api/v1/routing-rules", "401 403 403 200 200 200 200 200 200"),
    ("POST", "/api/v1/routing-rules", "401 403 403 403 422 403 403 403 422"),
    ("GET", "/api/v1/routing-rules/history", "401 403 403 200 200 200 200 200 200"),
    ("GET", "/api/v1/admin-events", "401 403 403 403 403 403 403 403 200"),
    ("GET", "/api/v1/routing-rules/{rule_id}", "401 403 403 200 200 200 200 200 200"),
    ("PATCH", "/api/v1/routing-rules/{rule_id}", "401 403 403 403 200 403 403 403 200"),
    ("DELETE", "/api/v1/routing-rules/{rule_id}", "401 403 403 403 404 403 403 403 404"),
    ("GET", "/api/v1/deadlines", "401 403 403 200 200 200 200 200 200"),
    ("PUT", "/api/v1/deadlines/{violation_code}", "401 403 403 403 403 403 403 403 422"),
    ("DELETE", "/api/v1/deadlines/{violation_code}", "401 403 403 403 403 403 403 403 404"),
    ("GET", "/api/v1/calendar", "401 403 403 200 200 200 200 200 200"),
    ("PUT", "/api/v1/calendar", "401 403 403 403 403 403 403 403 200"),
    ("GET", "/api/v1/calendar/days", "401 403 403 200 200 200 200 200 200"),
    ("PUT", "/api/v1/calendar/days/{day}", "401 403 403 403 403 403 403 403 422"),
    ("DELETE", "/api/v1/calendar/days/{day}", "401 403 403 403 403 403 403 403 404"),
    ("GET", "/open311/v2/discovery.json", "200 200 200 200 200 200 200 200 200"),
    ("GET", "/open311/v2/services.json", "403 200 200 200 200 200 200 200 200"),
    ("GET", "/open311/v2/services/{service_code}.json", "403 200 200 200 200 200 200 200 200"),
    ("GET", "/open311/v2/requests.json", "403 403 403 200 200 200 200 200 200"),
    ("POST", "/open311/v2/requests.json", "403 400 400 400 400 400 400 400 400"),
    ("GET", "/open311/v2/requests/{service_request_id}.json", "403 403 403 200 200 200 200 404 200"),
    ("GET", "/api/v1/devices/me/config", "401 200 200 403 403 403 403 403 403"),
    ("PUT", "/api/v1/devices/me/cameras/{code}/health", "401 422 422 403 403 403 403 403 403"),
    ("PUT", "/api/v1/devices/me/cameras/health", "401 422 422 403 403 403 403 403 403"),
    ("GET", "/api/v1/devices", "401 403 403 200 200 200 200 200 200"),
    ("GET", "/api/v1/ping", "200 200 200 200 200 200 200 200 200"),
    ("GET", "/api/v1/devices/me/cases", "401 200 200 403 403 403 403 403 403"),
    ("GET", "/api/v1/devices/me/references/{sha256}", "401 404 404 403 403 403 403 403 403"),
    ("PUT", "/api/v1/devices/me/cameras/{code}/snapshot", "401 422 422 403 403 403 403 403 403"),
    ("GET", "/api/v1/cameras/{code}/snapshot", "401 403 403 404 404 404 404 404 404"),
    ("GET", "/api/v1/cameras/{code}/suppressions", "401 403 403 200 200 200 403 403 200"),
    ("DELETE", "/api/v1/suppressions/{suppression_id}", "401 403 403 403 403 404 403 403 404"),
    ("GET", "/api/v1/case-search", "401 403 403 200 200 200 200 200 200"),
    ("GET", "/api/v1/case-search/export.csv", "401 403 403 200 200 200 200 200 200"),
    ("GET", "/api/v1/case-search/map", "401 403 403 200 200 200 200 200 200"),
    ("POST", "/api/v1/case-search/bulk", "401 403 403 403 422 403 403 403 422"),
    ("POST", "/api/v1/models", "401 403 403 403 403 403 403 403 422"),
    ("GET", "/api/v1/models", "401 403 403 403 403 403 403 403 200"),
    ("GET", "/api/v1/models/assignments", "401 403 403 403 403 403 403 403 200"),
    ("POST", "/api/v1/models/rollback", "401 403 403 403 403 403 403 403 409"),
    ("GET", "/api/v1/models/{version_id}", "401 403 403 403 403 403 403 403 404"),
    ("POST", "/api/v1/models/{version_id}/assignments", "401 403 403 403 403 403 403 403 422"),
    ("POST", "/api/v1/models/{version_id}/promote", "401 403 403 403 403 403 403 403 404"),
    ("GET", "/api/v1/model-crops/{sha256}", "401 403 403 403 403 403 403 403 404"),
    ("GET", "/api/v1/devices/me/models/{version_id}", "401 404 404 403 403 403 403 403 403"),
    ("POST", "/api/v1/devices/me/model-comparisons", "401 422 422 403 403 403 403 403 403"),
    ("POST", "/api/v1/cases/{case_id}/labels", "401 403 403 403 422 422 403 403 422"),
    ("GET", "/api/v1/cases/{case_id}/labels", "401 403 403 200 200 200 200 404 200"),
    ("DELETE", "/api/v1/cases/{case_id}/labels/{label_id}", "401 403 403 403 404 404 403 403 404"),
    ("GET", "/metrics", "401 401 401 403 403 403 403 403 200"),
    ("POST", "/api/v1/auth/logout", "401 403 403 204 204 204 204 204 204"),
]
# fmt: on
# The request path where the route's own parameters need a value (an unknown one where it would delete);
# {case_id}, {sha256}, {rule_id} and {delivery_id} are filled from the objects _world makes.
PATHS: dict[tuple[str, str], str] = {
    ("POST", "/api/v1/cases/{case_id}/actions/{action}"): "/api/v1/cases/{case_id}/actions/close",
    ("GET", "/api/v1/units/{code}/channels"): "/api/v1/units/sanitation/channels",
    ("PUT", "/api/v1/units/{code}/channels"): "/api/v1/units/sanitation/channels",
    ("GET", "/api/v1/units/{code}"): "/api/v1/units/sanitation",
    ("PATCH", "/api/v1/units/{code}"): "/api/v1/units/sanitation",
    ("DELETE", "/api/v1/units/{code}"): "/api/v1/units/nope",
    ("GET", "/api/v1/places/{key}"): "/api/v1/places/{place}",
    ("PATCH", "/api/v1/places/{key}"): "/api/v1/places/{place}",
    ("DELETE", "/api/v1/places/{key}"): "/api/v1/places/nope",
    ("GET", "/api/v1/violation-types/{code}"): "/api/v1/violation-types/0102",
    ("PATCH", "/api/v1/violation-types/{code}"): "/api/v1/violation-types/0102",
    ("DELETE", "/api/v1/violation-types/{code}"): "/api/v1/violation-types/nope",
    ("GET", "/api/v1/cameras/{code}"): "/api/v1/cameras/cam-1",
    ("PATCH", "/api/v1/cameras/{code}"): "/api/v1/cameras/cam-1",
    ("DELETE", "/api/v1/cameras/{code}"): "/api/v1/cameras/nope",
    ("GET", "/api/v1/cameras/{code}/zones"): "/api/v1/cameras/cam-1/zones",
    ("PUT", "/api/v1/cameras/{code}/zones/{zone_code}"): "/api/v1/cameras/cam-1/zones/z1",
    ("DELETE", "/api/v1/cameras/{code}/zones/{zone_code}"): "/api/v1/cameras/cam-1/zones/nope",
    ("PUT", "/api/v1/cameras/{code}/zones/{zone_code}/reference"): "/api/v1/cameras/cam-1/zones/z1/reference",
    (
        "DELETE",
        "/api/v1/cameras/{code}/zones/{zone_code}/reference",
    ): "/api/v1/cameras/cam-1/zones/nope/reference",
    ("DELETE", "/api/v1/routing-rules/{rule_id}"): "/api/v1/routing-rules/999",
    ("PUT", "/api/v1/deadlines/{violation_code}"): "/api/v1/deadlines/0102",
    ("DELETE", "/api/v1/deadlines/{violation_code}"): "/api/v1/deadlines/9999",
    ("PUT", "/api/v1/calendar/days/{day}"): "/api/v1/calendar/days/2030-01-01",
    ("DELETE", "/api/v1/calendar/days/{day}"): "/api/v1/calendar/days/2030-01-01",
    ("GET", "/open311/v2/services/{service_code}.json"): "/open311/v2/services/0102.json",
    ("GET", "/open311/v2/requests/{service_request_id}.json"): "/open311/v2/requests/{case_id}.json",
    ("PUT", "/api/v1/devices/me/cameras/{code}/health"): "/api/v1/devices/me/cameras/cam-1/health",
    ("PUT", "/api/v1/devices/me/cameras/{code}/snapshot"): "/api/v1/devices/me/cameras/cam-1/snapshot",
    ("GET", "/api/v1/cameras/{code}/snapshot"): "/api/v1/cameras/cam-1/snapshot",
    ("GET", "/api/v1/cameras/{code}/suppressions"): "/api/v1/cameras/cam-1/suppressions",
    ("DELETE", "/api/v1/suppressions/{suppression_id}"): "/api/v1/suppressions/999999",
    ("GET", "/api/v1/models/{version_id}"): "/api/v1/models/999999",
    ("POST", "/api/v1/models/{version_id}/assignments"): "/api/v1/models/999999/assignments",
    ("POST", "/api/v1/models/{version_id}/promote"): "/api/v1/models/999999/promote",
    ("GET", "/api/v1/devices/me/models/{version_id}"): "/api/v1/devices/me/models/999999",
    ("DELETE", "/api/v1/cases/{case_id}/labels/{label_id}"): "/api/v1/cases/{case_id}/labels/999999",
}


def _world(store: Store) -> tuple[dict[str, dict[str, str]], dict[str, str]]:
    """Callers' headers and the path parameters of the objects the table's requests name."""
    world = make_world(store.sessions)
    device_id, key = make_device(store.sessions, "box-1")
    _, other_key = make_device(store.sessions, "box-2")
    tokens = make_operators(
        store.sessions,
        [
            ("viewer", Role.VIEWER, None),
            ("dispatcher", Role.DISPATCHER, None),
            ("shift_leader", Role.SHIFT_LEADER, None),
            ("unit_handler", Role.UNIT_HANDLER, world.sanitation_id),
            ("other_unit_handler", Role.UNIT_HANDLER, world.traffic_id),
            ("admin", Role.ADMIN, None),
        ],
    )
    case_id = make_pending_case(store.sessions, place_id=world.place_id, device_id=device_id)
    data = image_bytes()
    sha256 = hashlib.sha256(data).hexdigest()
    store_image(blobs_for(store.settings, store.engine), sha256, "image/jpeg", data)
    rule_id, delivery_id = _rows(
        store.sessions, world.place_id, world.sanitation_id, case_id, device_id, sha256, len(data)
    )
    headers = {name: auth(token) for name, token in tokens.items()}
    headers |= {"anonymous": {}, "device": device_auth(key), "other_device": device_auth(other_key)}
    params = {
        "case_id": str(case_id),
        "sha256": sha256,
        "place": world.place_key,
        "rule_id": str(rule_id),
        "delivery_id": str(delivery_id),
    }
    return headers, params


def _rows(
    sessions: sessionmaker[Session],
    place_id: int,
    unit_id: int,
    case_id: int,
    device_id: int,
    sha256: str,
    size: int,
) -> tuple[int, int]:
    with sessions.begin() as session:
        camera = Camera(code="cam-1", name="gate", device_id=device_id)
        session.add(camera)
        session.flush()
        session.add(Zone(camera_id=camera.id, code="z1", place_id=place_id, polygon=[[0, 0], [1, 0], [1, 1]]))

        session.get_one(Case, case_id).unit_id = unit_id
        session.add(
            Evidence(
                case_id=case_id, sha256=sha256, kind="confirmation", content_type="image/jpeg", size=size,
                width=64, height=48, uploaded_by="device:box-1",
            )
        )  # fmt: skip
        rule = RoutingRule(place_id=place_id, violation_code="0102", unit_id=unit_id)
        delivery = Delivery(
            unit_id=unit_id, case_id=case_id, channel="webhook", event="dispatched", payload={}
        )
        session.add_all([rule, delivery])
        session.flush()
        return rule.id, delivery.id


def _call(client: TestClient, method: str, path: str, headers: dict[str, str]) -> int:
    if path.endswith("/evidence"):  # a real upload: the role is checked once the form is valid
        files = {"file": ("e.jpg", image_bytes(seed=1), "image/jpeg")}
        return client.post(path, files=files, data={"kind": "confirmation"}, headers=headers).status_code
    body: dict[str, Any] | None = {} if method in ("POST", "PUT", "PATCH") else None
    return client.request(method, path, json=body, headers=headers).status_code


def test_every_route_answers_every_caller_as_the_table_says(client: TestClient, store: Store) -> None:
    headers, params = _world(store)
    wrong = []
    for method, route, statuses in MATRIX:
        path = PATHS.get((method, route), route).format(**params)
        got = " ".join(str(_call(client, method, path, headers[caller])) for caller in CALLERS)
        if got != statuses:
            wrong.append(f"{method} {route}: got {got}, the table says {statuses}")
    assert not wrong, "\n".join(wrong)


def test_the_table_covers_every_route(client: TestClient) -> None:
    schema = client.get("/openapi.json").json()
    routes = {(method.upper(), path) for path, operations in schema["paths"].items() for method in operations}
    routes.add(("GET", "/metrics"))  # served outside the OpenAPI document
    in_table = [(method, route) for method, route, *_ in MATRIX]
    assert len(in_table) == len(set(in_table)), "a route has two rows"
    assert routes - set(in_table) == set(), "routes without a row in MATRIX"
    assert set(in_table) - routes == set(), "rows for routes that do not exist"
