"""The demo's store shows the whole chain: scripts/demo.sh imports configs/reference/demo-city.yaml (units,
places, routing) and the clip's store.yaml (its camera on the demo box, with the daemon's zones). Then a
confirmed case at a demo place is dispatched to the right unit with a deadline, the box's snapshot upload is
accepted, and the zones the box gets from the store are the ones in its YAML (zone sync changes nothing)."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml
from fastapi.testclient import TestClient

from api.actors import SYSTEM
from api.config_import import import_file, load_defaults_if_empty
from api.models import Role, Unit
from datasets.scenes import demo
from datasets.scenes.video import CAMERA_ID, DEMO_DEVICE, daemon_config, store_config
from pipeline.config import CameraConfig
from pipeline.zone_sync import zones_from_store
from tests.api.builders import auth, case_report, device_auth, image_bytes, make_device, make_operators
from tests.api.conftest import Store
from tests.conftest import REPO

DEMO_CITY = REPO / "configs" / "reference" / "demo-city.yaml"
# (demo zone, pipeline type, event code, unit code the demo city routes it to)
CHAIN = [
    ("no-parking-a", "illegal_parking", "0505", "demo-traffic"),
    ("pavement", "exposed_garbage", "0102", "demo-sanitation"),
    ("pavement", "street_stall", "0501", "demo-squad"),
]


@pytest.fixture
def demo_store(store: Store, tmp_path: Path) -> tuple[str, dict[str, str]]:
    """The store as scripts/demo.sh leaves it before the daemon runs: defaults, the demo box, the city and
    the camera imported the way the script does (the same files, the same import)."""
    load_defaults_if_empty(store.sessions)
    _, key = make_device(store.sessions, DEMO_DEVICE)
    camera_file = tmp_path / "store.yaml"
    camera_file.write_text(yaml.safe_dump(store_config(), allow_unicode=True), encoding="utf-8")
    for path in (DEMO_CITY, camera_file):
        with store.sessions.begin() as session:
            import_file(session, path, SYSTEM)
    tokens = make_operators(store.sessions, [("admin", Role.ADMIN, None)])
    return key, tokens


def _local_camera(tmp_path: Path) -> CameraConfig:
    config = daemon_config(
        video=tmp_path / "demo.mp4",
        model=tmp_path / "model.yaml",
        store_url="http://127.0.0.1:8765",
        device_key_file=tmp_path / "device.key",
        work_dir=tmp_path,
    )
    cameras = config["cameras"]
    assert isinstance(cameras, list)
    return CameraConfig.model_validate(cameras[0])


@pytest.mark.parametrize(("zone", "pipeline_type", "code", "unit"), CHAIN)
def test_a_confirmed_demo_case_is_dispatched_to_its_unit_with_a_deadline(
    client: TestClient,
    store: Store,
    demo_store: tuple[str, dict[str, str]],
    zone: str,
    pipeline_type: str,
    code: str,
    unit: str,
) -> None:
    key, tokens = demo_store
    place = next(z.place for z in demo.ZONES if z.id == zone)
    body = case_report(
        f"demo-{zone}-{pipeline_type}", camera=CAMERA_ID, zone=zone, place=place, violation_type=pipeline_type
    )
    response = client.post("/api/v1/cases", json=body, headers=device_auth(key))
    assert response.status_code in (200, 201), response.text
    case_id = response.json()["case_id"]
    filed = client.post(f"/api/v1/cases/{case_id}/actions/file", headers=auth(tokens["admin"]), json={})
    assert filed.status_code == 200, filed.text
    case = filed.json()
    assert case["violation_code"] == code
    assert case["status"] == "dispatched"
    assert case["deadline_at"] is not None
    with store.sessions() as session:
        assert session.get_one(Unit, case["unit_id"]).code == unit


def test_the_demo_box_uploads_its_snapshot_and_gets_its_own_zones_back(
    client: TestClient, demo_store: tuple[str, dict[str, str]], tmp_path: Path
) -> None:
    key, tokens = demo_store
    files = {"file": ("frame.jpg", image_bytes(width=640, height=360), "image/jpeg")}
    uploaded = client.put(
        f"/api/v1/devices/me/cameras/{CAMERA_ID}/snapshot", files=files, headers=device_auth(key)
    )
    assert uploaded.status_code == 200, uploaded.text  # 404 while the camera was not registered
    assert (
        client.get(f"/api/v1/cameras/{CAMERA_ID}/snapshot", headers=auth(tokens["admin"])).status_code == 200
    )

    document = client.get("/api/v1/devices/me/config", headers=device_auth(key)).json()
    local = _local_camera(tmp_path)
    synced = zones_from_store(document, [local])[CAMERA_ID]
    fields = ("id", "place", "polygon", "anchor", "rules", "static_change")
    assert [z.model_dump(include=set(fields)) for z in synced] == [
        z.model_dump(include=set(fields)) for z in sorted(local.zones, key=lambda z: z.id)
    ]
