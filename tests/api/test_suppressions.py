"""The false-alarm memory in the store: a false_positive void remembers the spot, the devices that watch it
get it with their configuration (also for a camera only their YAML has), it expires, and an admin or a
shift leader can remove it (audited)."""

from __future__ import annotations

import datetime as dt
from typing import Any

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import select

from api.models import AuditEvent, Role, Suppression
from api.suppressions import normalised_box
from tests.api.builders import (
    auth,
    device_auth,
    image_bytes,
    make_device,
    make_operator,
    make_world,
    post_report,
)
from tests.api.conftest import Store

CONFIG = "/api/v1/devices/me/config"
FRAME_WH = [1920, 1080]
BOX = [960, 540, 1440, 1080]  # a car in the bottom-right quarter of a 1080p frame


def _void(client: TestClient, case_id: int, token: str, reason: str = "false_positive") -> None:
    response = client.post(
        f"/api/v1/cases/{case_id}/actions/void", json={"reason": reason}, headers=auth(token)
    )
    assert response.status_code == 200, response.text


def _reported_case(client: TestClient, key: str, device_key: str, **overrides: Any) -> int:
    body = {"frame_wh": FRAME_WH, "boxes": [{"xyxy": BOX, "confidence": 0.8, "class_name": "car"}]}
    case_id: int = post_report(client, device_key, key, **{**body, **overrides})["case_id"]
    crop = client.post(
        f"/api/v1/cases/{case_id}/evidence",
        files={"file": ("crop.jpg", image_bytes(seed=len(key)), "image/jpeg")},
        data={"kind": "crop"},
        headers=device_auth(device_key),
    )
    assert crop.status_code == 201, crop.text
    return case_id


def _audit(store: Store, case_id: int, action: str) -> list[dict[str, Any] | None]:
    with store.sessions() as session:
        return list(
            session.scalars(
                select(AuditEvent.data).where(AuditEvent.case_id == case_id, AuditEvent.action == action)
            )
        )


def test_false_positive_void_is_remembered_and_reaches_the_reporting_device(
    client: TestClient, store: Store
) -> None:
    make_world(store.sessions)
    _, mine = make_device(store.sessions, "box-1")
    _, other = make_device(store.sessions, "box-2")
    leader = make_operator(store.sessions, Role.SHIFT_LEADER)
    before = client.get(CONFIG, headers=device_auth(mine))
    assert before.json()["suppressions"] == []

    # "cam-yaml" exists only in box-1's YAML: the store never registered it
    case_id = _reported_case(client, "incident-1", mine, camera="cam-yaml")
    _void(client, case_id, leader)

    after = client.get(CONFIG, headers={**device_auth(mine), "If-None-Match": before.headers["ETag"]})
    assert after.status_code == 200 and after.headers["ETag"] != before.headers["ETag"]
    [sent] = after.json()["suppressions"]
    assert (sent["camera"], sent["zone"], sent["violation_type"], sent["class_name"]) == (
        "cam-yaml",
        "z-gate",
        "illegal_parking",
        "car",
    )
    assert sent["box"] == [0.5, 0.5, 0.75, 1.0]
    expires = dt.datetime.fromisoformat(sent["expires_at"])
    assert dt.timedelta(days=29.9) < expires - dt.datetime.now(dt.UTC) <= dt.timedelta(days=30)
    assert client.get(CONFIG, headers=device_auth(other)).json()["suppressions"] == []  # not its camera

    viewer = make_operator(store.sessions, Role.VIEWER)
    [listed] = client.get("/api/v1/cameras/cam-yaml/suppressions", headers=auth(viewer)).json()
    assert listed["case_id"] == case_id and listed["created_by"].endswith("shift_leader-0")
    assert listed["crop_url"].startswith("/api/v1/evidence/") and listed["expired"] is False
    assert _audit(store, case_id, "void") == [{"suppressions": [listed["id"]]}]


def test_registered_cameras_suppressions_go_to_their_device_only(client: TestClient, store: Store) -> None:
    world = make_world(store.sessions)
    _, mine = make_device(store.sessions, "box-1")
    _, other = make_device(store.sessions, "box-2")
    admin = make_operator(store.sessions, Role.ADMIN)
    leader = make_operator(store.sessions, Role.SHIFT_LEADER)
    # box-1 reported on cam-2 while no box had it registered; then cam-2 is registered to box-2
    _void(client, _reported_case(client, "incident-2", mine, camera="cam-2"), leader)
    assert len(client.get(CONFIG, headers=device_auth(mine)).json()["suppressions"]) == 1
    zone = {"code": "z-gate", "place": world.place_key, "polygon": [[0, 0], [1, 0], [1, 1]], "rules": {}}
    body = {"code": "cam-2", "device": "box-2", "zones": [zone]}
    assert client.post("/api/v1/cameras", json=body, headers=auth(admin)).status_code == 201
    assert client.get(CONFIG, headers=device_auth(mine)).json()["suppressions"] == []
    [sent] = client.get(CONFIG, headers=device_auth(other)).json()["suppressions"]
    assert sent["camera"] == "cam-2"


@pytest.mark.parametrize("reason", ["duplicate", "not_our_responsibility"])
def test_other_void_reasons_remember_nothing(client: TestClient, store: Store, reason: str) -> None:
    make_world(store.sessions)
    _, mine = make_device(store.sessions, "box-1")
    leader = make_operator(store.sessions, Role.SHIFT_LEADER)
    _void(client, _reported_case(client, "incident-3", mine), leader, reason)
    assert client.get(CONFIG, headers=device_auth(mine)).json()["suppressions"] == []


def test_expired_suppressions_are_not_sent_and_expiry_is_per_type(client: TestClient, store: Store) -> None:
    make_world(store.sessions)
    _, mine = make_device(store.sessions, "box-1")
    leader = make_operator(store.sessions, Role.SHIFT_LEADER)
    store.settings.suppress_days_by_type["illegal_parking"] = 2.0
    _void(client, _reported_case(client, "incident-4", mine), leader)
    [sent] = client.get(CONFIG, headers=device_auth(mine)).json()["suppressions"]
    expires = dt.datetime.fromisoformat(sent["expires_at"])
    assert dt.timedelta(days=1.9) < expires - dt.datetime.now(dt.UTC) <= dt.timedelta(days=2)
    with store.sessions.begin() as session:
        row = session.get_one(Suppression, sent["id"])
        row.expires_at = dt.datetime.now(dt.UTC) - dt.timedelta(seconds=1)
    assert client.get(CONFIG, headers=device_auth(mine)).json()["suppressions"] == []
    [listed] = client.get("/api/v1/cameras/cam-1/suppressions", headers=auth(leader)).json()
    assert listed["expired"] is True  # still listed: it explains why nothing was reported


def test_without_frame_wh_the_frame_size_is_the_full_frame_evidences(
    client: TestClient, store: Store
) -> None:
    make_world(store.sessions)
    _, mine = make_device(store.sessions, "box-1")
    leader = make_operator(store.sessions, Role.SHIFT_LEADER)
    case_id = _reported_case(client, "incident-5", mine, frame_wh=None, boxes=[
        {"xyxy": [16, 12, 48, 36], "confidence": 0.9, "class_name": "car"},
        {"xyxy": [0, 0, 8, 8], "confidence": 0.2, "class_name": "truck"},
    ])  # fmt: skip
    frame = client.post(
        f"/api/v1/cases/{case_id}/evidence",
        files={"file": ("f.jpg", image_bytes(width=64, height=48, seed=9), "image/jpeg")},
        data={"kind": "confirmation"},
        headers=device_auth(mine),
    )
    assert frame.status_code == 201, frame.text
    _void(client, case_id, leader)
    [sent] = client.get(CONFIG, headers=device_auth(mine)).json()["suppressions"]
    assert sent["box"] == [0.25, 0.25, 0.75, 0.75] and sent["class_name"] == "car"  # the most confident


def test_removal_by_role_is_audited_and_changes_the_config(client: TestClient, store: Store) -> None:
    make_world(store.sessions)
    _, mine = make_device(store.sessions, "box-1")
    leader = make_operator(store.sessions, Role.SHIFT_LEADER)
    viewer = make_operator(store.sessions, Role.VIEWER)
    dispatcher = make_operator(store.sessions, Role.DISPATCHER)
    case_id = _reported_case(client, "incident-6", mine)
    _void(client, case_id, leader)
    before = client.get(CONFIG, headers=device_auth(mine))
    [sent] = before.json()["suppressions"]
    path = f"/api/v1/suppressions/{sent['id']}"
    assert client.delete(path, headers=auth(viewer)).status_code == 403
    assert client.delete(path, headers=auth(dispatcher)).status_code == 403
    assert client.delete(path, headers=device_auth(mine)).status_code == 403
    assert client.delete(path, headers=auth(leader)).status_code == 204
    assert client.delete(path, headers=auth(leader)).status_code == 404
    after = client.get(CONFIG, headers={**device_auth(mine), "If-None-Match": before.headers["ETag"]})
    assert after.status_code == 200 and after.json()["suppressions"] == []
    [removed] = _audit(store, case_id, "suppression_removed")
    assert removed is not None and (removed["suppression_id"], removed["camera"]) == (sent["id"], "cam-1")


@pytest.mark.parametrize(
    ("xyxy", "frame_wh", "expected"),
    [
        ([0, 0, 1920, 1080], (1920, 1080), (0.0, 0.0, 1.0, 1.0)),
        ([-10, 540, 2000, 1200], (1920, 1080), (0.0, 0.5, 1.0, 1.0)),  # clipped to the frame
        ([100, 100, 100, 200], (1920, 1080), ValueError),  # no width
        ([0, 0, 10, 10], (0, 1080), ValueError),
        ([0, 0, float("nan"), 10], (1920, 1080), ValueError),
    ],
)
def test_normalised_box(xyxy: list[float], frame_wh: tuple[int, int], expected: Any) -> None:
    if expected is ValueError:
        with pytest.raises(ValueError):
            normalised_box(xyxy, frame_wh)
    else:
        assert normalised_box(xyxy, frame_wh) == expected
