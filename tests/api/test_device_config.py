"""A device reads only its own cameras and zones, polls them with ETags, and reports camera health."""

from __future__ import annotations

from typing import Any

from fastapi.testclient import TestClient

from api.models import Role
from tests.api.builders import auth, make_device_key, make_operator, make_world
from tests.api.conftest import Store

SQUARE = [[0.1, 0.1], [0.9, 0.1], [0.9, 0.9], [0.1, 0.9]]


def test_device_config_health_and_device_list(client: TestClient, store: Store) -> None:
    world = make_world(store.sessions)
    mine = {"X-Device-Key": make_device_key(store.sessions, "box-1")}
    other = {"X-Device-Key": make_device_key(store.sessions, "box-2")}
    admin = auth(make_operator(store.sessions, Role.ADMIN))
    rules = {
        "illegal_parking": {
            "dwell_s": 120,
            "schedule": [{"days": [1, 2, 3, 4, 5], "start": "07:00", "end": "08:30"}],
        }
    }
    zone = {"code": "gate", "place": world.place_key, "polygon": SQUARE, "rules": rules}
    for code, device in (("cam-a", "box-1"), ("cam-b", "box-2"), ("cam-c", None)):
        body = {"code": code, "device": device, "zones": [zone]}
        assert client.post("/api/v1/cameras", json=body, headers=admin).status_code == 201

    response = client.get("/api/v1/devices/me/config", headers=mine)
    assert response.status_code == 200, response.text
    config = response.json()
    assert config["device"] == "box-1" and config["timezone"] == "Asia/Shanghai"
    assert [c["code"] for c in config["cameras"]] == ["cam-a"]
    [gate] = config["cameras"][0]["zones"]
    assert (gate["code"], gate["place"], gate["polygon"]) == ("gate", world.place_key, SQUARE)
    assert gate["rules"]["illegal_parking"]["dwell_s"] == 120
    assert gate["rules"]["illegal_parking"]["schedule"][0]["start"] == "07:00"
    assert {(v["code"], v["pipeline_type"], v["default_for_type"]) for v in config["violation_types"]} >= {
        ("0505", "illegal_parking", True),
        ("0506", "illegal_parking", False),
    }
    etag = response.headers["ETag"]
    assert etag == f'"{config["version"]}"'
    unchanged = client.get("/api/v1/devices/me/config", headers={**mine, "If-None-Match": etag})
    assert unchanged.status_code == 304
    moved = {**zone, "polygon": [[0.0, 0.0], [1.0, 0.0], [0.5, 1.0]]}
    del moved["code"]
    assert client.put("/api/v1/cameras/cam-a/zones/gate", json=moved, headers=admin).status_code == 200
    changed = client.get("/api/v1/devices/me/config", headers={**mine, "If-None-Match": etag})
    assert changed.status_code == 200 and changed.headers["ETag"] != etag

    health = {"state": "reconnecting", "last_frame_at": "2026-03-02T08:00:00+08:00", "fps": 4.5}
    reported = client.put("/api/v1/devices/me/cameras/cam-a/health", json=health, headers=mine)
    assert reported.status_code == 200, reported.text
    assert reported.json()["health"]["state"] == "reconnecting"
    for camera, headers, status in (("cam-b", mine, 404), ("cam-c", mine, 404), ("cam-a", other, 404)):
        assert (
            client.put(
                f"/api/v1/devices/me/cameras/{camera}/health", json=health, headers=headers
            ).status_code
            == status
        )
    bad = client.put(
        "/api/v1/devices/me/cameras/cam-a/health", json={**health, "state": "on fire"}, headers=mine
    )
    assert bad.status_code == 422
    camera = client.get("/api/v1/cameras/cam-a", headers=admin).json()
    assert camera["health"] == {
        **health,
        "last_frame_at": "2026-03-02T00:00:00+00:00",
        "error": None,
        "references": {},
    }
    assert camera["health_at"] is not None

    assert client.get("/api/v1/devices/me/config", headers=admin).status_code == 403
    assert client.get("/api/v1/devices/me/config").status_code == 401
    devices = client.get("/api/v1/devices", headers=admin).json()
    assert [(d["name"], d["cameras"]) for d in devices] == [("box-1", ["cam-a"]), ("box-2", ["cam-b"])]
    assert devices[0]["last_seen_at"] is not None
    assert client.get("/api/v1/devices", headers=mine).status_code == 403
    assert client.get("/api/v1/ping").json() == {"status": "ok"}


def test_health_batch_records_only_the_calling_devices_own_cameras(client: TestClient, store: Store) -> None:
    """One request for all of a box's cameras; another box's camera (or one on no box) is not written,
    whatever the batch says, and comes back as unknown so the box stops sending it."""
    world = make_world(store.sessions)
    mine = {"X-Device-Key": make_device_key(store.sessions, "box-1")}
    admin = auth(make_operator(store.sessions, Role.ADMIN))
    make_device_key(store.sessions, "box-2")
    zone = {"code": "gate", "place": world.place_key, "polygon": SQUARE, "rules": {}}
    for code, device in (("cam-a", "box-1"), ("cam-d", "box-1"), ("cam-b", "box-2"), ("cam-c", None)):
        body = {"code": code, "device": device, "zones": [zone]}
        assert client.post("/api/v1/cameras", json=body, headers=admin).status_code == 201
    up = {"state": "up", "last_frame_at": "2026-03-02T08:00:00+08:00", "fps": 0.5}
    failed = {"state": "failed", "error": "rtsp: 401 Unauthorized"}

    response = client.put(
        "/api/v1/devices/me/cameras/health",
        json={"cameras": {"cam-a": up, "cam-d": failed, "cam-b": failed, "cam-c": failed, "cam-x": up}},
        headers=mine,
    )

    assert response.status_code == 200, response.text
    answer = response.json()
    assert answer["recorded"] == ["cam-a", "cam-d"]
    assert answer["unknown"] == ["cam-b", "cam-c", "cam-x"]
    cam_a = client.get("/api/v1/cameras/cam-a", headers=admin).json()
    assert cam_a["health"]["state"] == "up"
    assert cam_a["health"]["last_frame_at"] == "2026-03-02T00:00:00+00:00"  # kept in UTC as per camera
    assert client.get("/api/v1/cameras/cam-d", headers=admin).json()["health"]["error"] == failed["error"]
    for other in ("cam-b", "cam-c"):
        camera = client.get(f"/api/v1/cameras/{other}", headers=admin).json()
        assert camera["health"] is None and camera["health_at"] is None, other

    bad_batches: list[dict[str, Any]] = [
        {"cameras": {}},
        {"cameras": {"cam-a": {**up, "state": "on fire"}}},
        {"cameras": {"a/b": up}},
    ]
    for bad in bad_batches:
        assert client.put("/api/v1/devices/me/cameras/health", json=bad, headers=mine).status_code == 422
    assert client.put("/api/v1/devices/me/cameras/health", json={"cameras": {"cam-a": up}}).status_code == 401
    assert (
        client.put("/api/v1/devices/me/cameras/health", json={"cameras": {"cam-a": up}}, headers=admin)
    ).status_code == 403
