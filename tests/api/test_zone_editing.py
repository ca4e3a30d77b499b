"""Operators edit zones through the API; every change shows in the device config's ETag; a device sees only
its own cameras; each camera's latest frame goes up with the device key and comes down to operators."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import inspect, select, text
from typer.testing import CliRunner

from api.db import make_engine
from api.migrate import check_migrated, current_revision, head_revision, upgrade
from api.models import Role, Zone
from api.settings import Settings
from streetwatch.cli import app as cli_app
from tests.api.builders import auth, image_bytes, make_device_key, make_operator, make_world
from tests.api.conftest import Store

SQUARE = [[0.1, 0.1], [0.9, 0.1], [0.9, 0.9], [0.1, 0.9]]


HEAD_REVISION = "0019_frame_boxes"  # the newest migration: update when one is added


def zone_body(default_place: str, **overrides: Any) -> dict[str, Any]:
    body: dict[str, Any] = {
        "place": default_place,
        "polygon": SQUARE,
        "rules": {
            "illegal_parking": {
                "dwell_s": 60,
                "schedule": [{"days": [1, 2, 3, 4, 5], "start": "07:00", "end": "08:30"}],
            }
        },
    }
    return {**body, **overrides}


@pytest.fixture
def cameras(client: TestClient, store: Store) -> dict[str, Any]:
    """cam-a on box-1, cam-b on box-2; an admin, a shift leader, a dispatcher and a unit handler."""
    world = make_world(store.sessions)
    admin = auth(make_operator(store.sessions, Role.ADMIN))
    keys = {name: make_device_key(store.sessions, name) for name in ("box-1", "box-2")}
    for code, device in (("cam-a", "box-1"), ("cam-b", "box-2")):
        response = client.post("/api/v1/cameras", json={"code": code, "device": device}, headers=admin)
        assert response.status_code == 201, response.text
    return {
        "place": world.place_key,
        "admin": admin,
        "leader": auth(make_operator(store.sessions, Role.SHIFT_LEADER)),
        "dispatcher": auth(make_operator(store.sessions, Role.DISPATCHER)),
        "handler": auth(make_operator(store.sessions, Role.UNIT_HANDLER, unit_id=world.traffic_id)),
        "box-1": {"X-Device-Key": keys["box-1"]},
        "box-2": {"X-Device-Key": keys["box-2"]},
    }


def config(client: TestClient, device: dict[str, str], etag: str | None = None) -> Any:
    headers = {**device, **({"If-None-Match": etag} if etag else {})}
    return client.get("/api/v1/devices/me/config", headers=headers)


def test_zone_edits_by_role_bump_the_config_etag(client: TestClient, cameras: dict[str, Any]) -> None:
    place, leader = cameras["place"], cameras["leader"]
    first = config(client, cameras["box-1"])
    etag = first.headers["ETag"]
    assert config(client, cameras["box-1"], etag).status_code == 304

    for role in ("handler", "dispatcher"):
        put = client.put("/api/v1/cameras/cam-a/zones/gate", json=zone_body(place), headers=cameras[role])
        assert put.status_code == 403, put.text
    created = client.put("/api/v1/cameras/cam-a/zones/gate", json=zone_body(place), headers=leader)
    assert created.status_code == 200, created.text
    after_create = config(client, cameras["box-1"], etag)
    assert after_create.status_code == 200 and after_create.headers["ETag"] != etag
    [zone] = after_create.json()["cameras"][0]["zones"]
    assert zone["rules"]["illegal_parking"]["schedule"] == [
        {"days": [1, 2, 3, 4, 5], "start": "07:00", "end": "08:30"}
    ]
    etag = after_create.headers["ETag"]
    assert config(client, cameras["box-1"], etag).status_code == 304
    # box-2 polls cam-b only: its config did not change with cam-a's zone.
    assert config(client, cameras["box-2"]).json()["cameras"] == [{"code": "cam-b", "name": "", "zones": []}]

    moved = zone_body(place, polygon=[[0.0, 0.5], [1.0, 0.5], [1.0, 1.0], [0.0, 1.0]])
    assert client.put("/api/v1/cameras/cam-a/zones/gate", json=moved, headers=leader).status_code == 200
    after_update = config(client, cameras["box-1"], etag)
    assert after_update.status_code == 200 and after_update.headers["ETag"] != etag
    assert after_update.json()["cameras"][0]["zones"][0]["polygon"] == moved["polygon"]
    etag = after_update.headers["ETag"]

    assert client.delete("/api/v1/cameras/cam-a/zones/gate", headers=cameras["handler"]).status_code == 403
    assert client.delete("/api/v1/cameras/cam-a/zones/gate", headers=leader).status_code == 204
    after_delete = config(client, cameras["box-1"], etag)
    assert after_delete.status_code == 200 and after_delete.json()["cameras"][0]["zones"] == []
    assert client.delete("/api/v1/cameras/cam-a/zones/gate", headers=leader).status_code == 404


def test_a_rule_without_min_confidence_is_stored_and_sent_as_null(
    client: TestClient, cameras: dict[str, Any], store: Store
) -> None:
    """No min_confidence: null in the store and the device config (the daemon takes the model's working
    confidence); a number is kept; a row stored with an explicit 0.3 (before null existed) keeps its 0.3."""
    rules = {"illegal_parking": {"dwell_s": 60}, "street_stall": {"dwell_s": 300, "min_confidence": 0.45}}
    saved = client.put(
        "/api/v1/cameras/cam-a/zones/gate",
        json=zone_body(cameras["place"], rules=rules),
        headers=cameras["leader"],
    )
    assert saved.status_code == 200, saved.text
    assert saved.json()["rules"] == {
        "illegal_parking": {"dwell_s": 60.0, "schedule": [], "min_confidence": None},
        "street_stall": {"dwell_s": 300.0, "schedule": [], "min_confidence": 0.45},
    }
    [zone] = config(client, cameras["box-1"]).json()["cameras"][0]["zones"]
    assert zone["rules"]["illegal_parking"]["min_confidence"] is None
    assert zone["rules"]["street_stall"]["min_confidence"] == 0.45

    with store.sessions.begin() as session:
        row = session.scalars(select(Zone).where(Zone.code == "gate")).one()
        row.rules = {"illegal_parking": {"dwell_s": 60, "schedule": [], "min_confidence": 0.3}}
    [zone] = config(client, cameras["box-1"]).json()["cameras"][0]["zones"]
    assert zone["rules"]["illegal_parking"]["min_confidence"] == 0.3


def _fields(response: Any) -> str:
    """Every field the error names, as text: pydantic's ``loc`` lists or the store's ``field``."""
    body = response.json()
    if isinstance(body["detail"], list):
        return " ".join(".".join(str(p) for p in error["loc"]) for error in body["detail"])
    return str(body.get("field"))


@pytest.mark.parametrize(
    ("overrides", "field"),
    [
        ({"polygon": [[0.1, 0.1], [0.9, 0.1]]}, "body.polygon"),
        ({"polygon": [[0.1, 0.1], [1.5, 0.1], [0.5, 0.9]]}, "body.polygon.1.0"),
        ({"polygon": [[0.1, 0.1], [0.5, 0.5], [0.9, 0.9]]}, "body.polygon"),  # collinear: no area
        ({"place": "no-such-place"}, "zone.place"),
        ({"rules": {"flying_saucer": {"dwell_s": 10}}}, "zone.rules"),
        ({"rules": {"illegal_parking": {"dwell_s": 0}}}, "body.rules.illegal_parking.dwell_s"),
        (
            {"rules": {"illegal_parking": {"dwell_s": 9, "min_confidence": 1.5}}},
            "body.rules.illegal_parking.min_confidence",
        ),
        (
            {"rules": {"illegal_parking": {"dwell_s": 9, "schedule": [{"start": "25:00", "end": "08:00"}]}}},
            "body.rules.illegal_parking.schedule.0.start",
        ),
        (
            {"rules": {"illegal_parking": {"dwell_s": 9, "schedule": [{"start": "08:00", "end": "08:00"}]}}},
            "body.rules.illegal_parking.schedule.0",
        ),
    ],
)
def test_invalid_zones_are_refused_naming_the_field(
    client: TestClient, cameras: dict[str, Any], overrides: dict[str, Any], field: str
) -> None:
    before = config(client, cameras["box-1"]).headers["ETag"]
    response = client.put(
        "/api/v1/cameras/cam-a/zones/gate",
        json=zone_body(cameras["place"], **overrides),
        headers=cameras["leader"],
    )
    assert response.status_code == 422, response.text
    assert field in _fields(response), response.text
    assert config(client, cameras["box-1"], before).status_code == 304  # nothing changed


def test_snapshot_upload_is_the_devices_own_and_served_to_operators(
    client: TestClient, cameras: dict[str, Any], store: Store
) -> None:
    frame = image_bytes(".jpg", width=320, height=180, seed=3)
    url = "/api/v1/devices/me/cameras/cam-a/snapshot"

    def upload(data: bytes, device: str = "box-1", path: str = url, kind: str = "image/jpeg") -> Any:
        return client.put(path, files={"file": ("frame.jpg", data, kind)}, headers=cameras[device])

    assert client.get("/api/v1/cameras/cam-a/snapshot", headers=cameras["handler"]).status_code == 404
    stored = upload(frame)
    assert stored.status_code == 200, stored.text
    assert (stored.json()["width"], stored.json()["height"]) == (320, 180)
    for viewer in ("handler", "leader"):
        shown = client.get("/api/v1/cameras/cam-a/snapshot", headers=cameras[viewer])
        assert shown.status_code == 200 and shown.content == frame
        assert shown.headers["content-type"] == "image/jpeg"
    newer = image_bytes(".jpg", width=320, height=180, seed=4)
    assert upload(newer).status_code == 200
    assert client.get("/api/v1/cameras/cam-a/snapshot", headers=cameras["leader"]).content == newer

    assert upload(frame, device="box-2").status_code == 404  # not box-2's camera
    assert upload(frame, path="/api/v1/devices/me/cameras/cam-b/snapshot").status_code == 404
    png = upload(image_bytes(".png"), kind="image/png")
    assert png.status_code == 422 and "JPEG" in png.json()["detail"]
    assert upload(newer[: len(newer) // 2]).status_code == 422  # truncated
    assert upload(b"GIF89a not a frame").status_code == 422
    big = store.settings.evidence_max_bytes + 1
    assert upload(b"\xff\xd8\xff" + bytes(big)).status_code == 413
    assert (
        client.put(url, files={"file": ("f.jpg", frame, "image/jpeg")}, headers=cameras["leader"]).status_code
        == 403
    )
    assert client.get("/api/v1/cameras/cam-a/snapshot", headers=cameras["leader"]).content == newer


def test_migrate_upgrades_a_0001_database_and_keeps_its_cameras(tmp_path: Path) -> None:
    settings = Settings(data_dir=tmp_path, run_jobs=False, _env_file=None)  # type: ignore[call-arg]
    engine = make_engine(settings)
    upgrade(engine, "0001")
    with engine.begin() as connection:
        connection.execute(text("INSERT INTO cameras (code, name) VALUES ('old-cam', 'kept')"))
        connection.execute(text("INSERT INTO places (key, name, kind) VALUES ('p-1', 'kept', 'grid')"))
        connection.execute(
            text(
                "INSERT INTO zones (camera_id, code, place_id, polygon, rules, updated_at) SELECT c.id, 'z', "
                "p.id, '[[0,0],[1,0],[1,1]]', '{}', '2026-01-01 00:00:00' FROM cameras c, places p"
            )
        )
    result = CliRunner().invoke(cli_app, ["api", "migrate", "--data-dir", str(tmp_path), "--no-defaults"])
    assert result.exit_code == 0, result.output
    assert current_revision(engine) == head_revision(engine) == HEAD_REVISION
    check_migrated(engine)  # the app's start-up check passes
    columns = {c["name"] for c in inspect(engine).get_columns("cameras")}
    assert {"snapshot_sha256", "snapshot_at", "snapshot_width", "snapshot_height"} <= columns
    with engine.connect() as connection:
        assert connection.execute(text("SELECT name, snapshot_at FROM cameras")).all() == [("kept", None)]
        # 0003: a zone saved before anchors were stored keeps the default the daemon used for it
        assert connection.execute(text("SELECT code, anchor FROM zones")).all() == [("z", "bottom_center")]
    engine.dispose()
