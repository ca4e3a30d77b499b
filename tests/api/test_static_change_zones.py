"""Static change through the store: a zone's settings survive YAML -> store -> daemon, report_as must be a
known violation type, and an operator's empty reference (the camera's snapshot while the pavement is clean)
reaches the camera's own device and no other."""

from __future__ import annotations

import hashlib

import cv2
import numpy as np
from fastapi.testclient import TestClient

from api.models import Role
from pipeline.config import CameraConfig, ZoneConfig
from pipeline.zone_sync import references_from_store, zones_from_store
from tests.api.builders import auth, image_bytes, make_device_key, make_operator, make_world
from tests.api.conftest import Store

POLYGON = [[0.0, 0.5], [1.0, 0.5], [1.0, 1.0], [0.0, 1.0]]
STATIC = {"dwell_s": 90.0, "report_as": "exposed_garbage", "min_area": 0.004}


def _setup(client: TestClient, store: Store) -> tuple[str, dict[str, str], dict[str, str], dict[str, str]]:
    world = make_world(store.sessions)
    admin = auth(make_operator(store.sessions, Role.ADMIN))
    device = {"X-Device-Key": make_device_key(store.sessions, "box-1")}
    other = {"X-Device-Key": make_device_key(store.sessions, "box-2")}
    created = client.post("/api/v1/cameras", json={"code": "cam-a", "device": "box-1"}, headers=admin)
    assert created.status_code == 201, created.text
    return world.place_key, admin, device, other


def test_a_static_change_zone_round_trips_yaml_store_daemon(client: TestClient, store: Store) -> None:
    place, admin, device, _ = _setup(client, store)
    local = ZoneConfig.model_validate(
        {"id": "pavement", "place": place, "polygon": POLYGON, "static_change": STATIC}
    )
    camera = CameraConfig.model_validate({"id": "cam-a", "url": "cam-a.mp4", "zones": [local]})
    body = {"place": place, "polygon": POLYGON, "static_change": STATIC}  # no class rules at all
    saved = client.put("/api/v1/cameras/cam-a/zones/pavement", json=body, headers=admin)
    assert saved.status_code == 200, saved.text
    assert saved.json()["static_change"] == STATIC
    reloaded = client.get("/api/v1/cameras/cam-a/zones", headers=admin).json()
    assert reloaded[0]["static_change"] == STATIC

    document = client.get("/api/v1/devices/me/config", headers=device).json()
    (synced,) = zones_from_store(document, [camera])["cam-a"]
    assert synced.model_dump(exclude={"timezone"}) == local.model_dump(exclude={"timezone"})
    assert synced.effective_rules["exposed_garbage"].dwell_s == 90


def test_report_as_must_be_a_known_violation_type(client: TestClient, store: Store) -> None:
    place, admin, _, _ = _setup(client, store)
    body = {"place": place, "polygon": POLYGON, "static_change": {"report_as": "littering"}}
    refused = client.put("/api/v1/cameras/cam-a/zones/pavement", json=body, headers=admin)
    assert refused.status_code == 422
    assert "zone.static_change.report_as" in refused.text and "littering" in refused.text


def _frame_jpeg(value: int) -> bytes:
    image = np.full((48, 64, 3), value, np.uint8)
    ok, encoded = cv2.imencode(".jpg", image)
    assert ok
    return bytes(encoded.tobytes())


def test_the_operators_reference_reaches_the_cameras_device_only(client: TestClient, store: Store) -> None:
    place, admin, device, other = _setup(client, store)
    leader = auth(make_operator(store.sessions, Role.SHIFT_LEADER, username="leader"))
    zone_url = "/api/v1/cameras/cam-a/zones/pavement"
    body = {"place": place, "polygon": POLYGON, "rules": {}, "static_change": STATIC}
    assert client.put(zone_url, json=body, headers=admin).status_code == 200
    assert client.put(f"{zone_url}/reference", headers=leader).status_code == 404  # no snapshot yet

    clean = _frame_jpeg(90)
    uploaded = client.put(
        "/api/v1/devices/me/cameras/cam-a/snapshot",
        files={"file": ("cam-a.jpg", clean, "image/jpeg")},
        headers=device,
    )
    assert uploaded.status_code == 200, uploaded.text
    version_before = client.get("/api/v1/devices/me/config", headers=device).json()["version"]
    set_ = client.put(f"{zone_url}/reference", headers=leader)
    assert set_.status_code == 200, set_.text
    sha256 = hashlib.sha256(clean).hexdigest()
    assert set_.json()["reference_sha256"] == sha256

    # A later snapshot (a pile on the pavement) does not change the reference.
    client.put(
        "/api/v1/devices/me/cameras/cam-a/snapshot",
        files={"file": ("cam-a.jpg", image_bytes(seed=3), "image/jpeg")},
        headers=device,
    )
    document = client.get("/api/v1/devices/me/config", headers=device).json()
    assert document["version"] != version_before  # boxes see the change on their next poll
    assert references_from_store(document) == {("cam-a", "pavement"): sha256}
    got = client.get(f"/api/v1/devices/me/references/{sha256}", headers=device)
    assert got.status_code == 200 and got.content == clean
    assert client.get(f"/api/v1/devices/me/references/{sha256}", headers=other).status_code == 404
    assert client.get(f"/api/v1/devices/me/references/{'0' * 64}", headers=device).status_code == 404

    cleared = client.delete(f"{zone_url}/reference", headers=leader)
    assert cleared.status_code == 200 and cleared.json()["reference_sha256"] is None
    assert client.get(f"/api/v1/devices/me/references/{sha256}", headers=device).status_code == 404


def test_a_zone_without_static_change_takes_no_reference(client: TestClient, store: Store) -> None:
    place, admin, _, _ = _setup(client, store)
    body = {"place": place, "polygon": POLYGON, "rules": {"illegal_parking": {"dwell_s": 60}}}
    assert client.put("/api/v1/cameras/cam-a/zones/gate", json=body, headers=admin).status_code == 200
    refused = client.put("/api/v1/cameras/cam-a/zones/gate/reference", headers=admin)
    assert refused.status_code == 422 and "no static change" in refused.text
