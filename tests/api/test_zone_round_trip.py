"""A zone written in the daemon's YAML, saved in the store and synced back to the daemon judges the same:
every rule field survives (anchor, min_confidence, dwell, schedule), and the schedule is read in the
store's time zone, not the camera's."""

from __future__ import annotations

import datetime as dt
from zoneinfo import ZoneInfo

import numpy as np
from fastapi.testclient import TestClient

from api.models import Role
from contract.schedule import text_to_windows
from detector.detections import Detections
from pipeline.config import CameraConfig, ZoneConfig
from pipeline.zone_sync import zones_from_store
from pipeline.zones import CameraZones
from tests.api.builders import auth, make_device_key, make_operator, make_world
from tests.api.conftest import Store

YAML_ZONE = {
    "id": "gate",
    "polygon": [[0.1, 0.5], [0.9, 0.5], [0.9, 0.95], [0.1, 0.95]],
    "anchor": "center",
    "rules": {
        "illegal_parking": {"dwell_s": 45, "schedule": "mon-fri 07:00-08:30", "min_confidence": 0.55},
        "street_stall": {"dwell_s": 300, "min_confidence": 0.2},
    },
}


def test_yaml_zone_to_store_to_daemon_is_the_same_zone(client: TestClient, store: Store) -> None:
    world = make_world(store.sessions)
    admin = auth(make_operator(store.sessions, Role.ADMIN))
    device = {"X-Device-Key": make_device_key(store.sessions, "box-1")}
    local = ZoneConfig.model_validate({**YAML_ZONE, "place": world.place_key})
    camera = CameraConfig.model_validate(
        {"id": "cam-a", "url": "cam-a.mp4", "zones": [local], "timezone": "Europe/London"}
    )
    stored_rules = {
        name: {
            "dwell_s": rule.dwell_s,
            "schedule": text_to_windows(rule.schedule),
            "min_confidence": rule.min_confidence,
        }
        for name, rule in local.rules.items()
    }
    body = {
        "place": world.place_key,
        "polygon": YAML_ZONE["polygon"],
        "anchor": "center",
        "rules": stored_rules,
    }
    created = client.post("/api/v1/cameras", json={"code": "cam-a", "device": "box-1"}, headers=admin)
    assert created.status_code == 201, created.text
    saved = client.put("/api/v1/cameras/cam-a/zones/gate", json=body, headers=admin)
    assert saved.status_code == 200, saved.text
    assert saved.json()["anchor"] == "center"

    document = client.get("/api/v1/devices/me/config", headers=device).json()
    (synced,) = zones_from_store(document, [camera])["cam-a"]

    assert synced.model_dump(exclude={"timezone"}) == local.model_dump(exclude={"timezone"})
    assert synced.timezone == "Asia/Shanghai"  # the store's calendar, not the camera's Europe/London
    # Same judgement of the same boxes: a box whose centre is in the zone but whose bottom edge is below it.
    boxes = Detections(
        np.array([[400, 600, 500, 1070]], np.float32), np.array([0.9], np.float32), np.array([2], np.int64)
    )
    inside_local = CameraZones("cam-a", [local]).at((1080, 1920)).membership(boxes.xyxy)
    inside_synced = CameraZones("cam-a", [synced]).at((1080, 1920)).membership(boxes.xyxy)
    assert inside_local.tolist() == inside_synced.tolist() == [[True]]
    # 07:30 on a Monday in Shanghai is 23:30 on Sunday in London: only the store's time zone enforces it.
    monday_morning = dt.datetime(2026, 5, 11, 7, 30, tzinfo=ZoneInfo("Asia/Shanghai"))
    rule = synced.rules["illegal_parking"]
    assert rule.parsed_schedule.active(monday_morning, ZoneInfo(synced.timezone or camera.timezone))
    assert not rule.parsed_schedule.active(monday_morning, ZoneInfo(camera.timezone))
