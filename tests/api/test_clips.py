"""Evidence clips in the store: a device uploads an MP4 (checked to be one, within clip_max_bytes); only
shift leaders, dispatchers and admins see or fetch it (it is unredacted video), each opening audited."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import select, update

from api.app import create_app
from api.models import AuditEvent, Case, Role
from tests.api.builders import (
    auth,
    device_auth,
    image_bytes,
    make_device_key,
    make_operators,
    make_world,
    post_report,
)
from tests.api.clip_builders import clip_bytes
from tests.api.conftest import Store


@pytest.fixture(scope="module")
def mp4(car_video: Path) -> bytes:
    return clip_bytes(car_video, 2.0)


def upload_clip(client: TestClient, case_id: int, data: bytes, headers: dict[str, str]) -> Any:
    return client.post(
        f"/api/v1/cases/{case_id}/evidence",
        files={"file": ("clip.mp4", data, "video/mp4")},
        data={"kind": "clip"},
        headers=headers,
    )


@pytest.fixture
def world(client: TestClient, store: Store) -> dict[str, Any]:
    world = make_world(store.sessions)
    key = make_device_key(store.sessions, "box-1")
    tokens = make_operators(
        store.sessions,
        [
            ("leader", Role.SHIFT_LEADER, None),
            ("dispatcher", Role.DISPATCHER, None),
            ("admin", Role.ADMIN, None),
            ("viewer", Role.VIEWER, None),
            ("handler", Role.UNIT_HANDLER, world.traffic_id),
        ],
    )
    case_id = post_report(client, key, "incident-clip-1")["case_id"]
    with store.sessions.begin() as session:  # the handler's unit has the case: it may see the case
        session.execute(update(Case).where(Case.id == case_id).values(unit_id=world.traffic_id))
    return {"key": key, "tokens": tokens, "case_id": case_id}


def test_a_device_uploads_a_clip_and_only_the_video_roles_see_it(
    client: TestClient, store: Store, world: dict[str, Any], mp4: bytes
) -> None:
    case_id, tokens = world["case_id"], world["tokens"]
    answer = upload_clip(client, case_id, mp4, device_auth(world["key"]))
    assert answer.status_code == 201, answer.text
    evidence = answer.json()
    assert (evidence["kind"], evidence["content_type"]) == ("clip", "video/mp4")
    assert (evidence["width"], evidence["height"]) == (768, 432)
    assert upload_clip(client, case_id, mp4, device_auth(world["key"])).status_code == 200  # a retry
    url = evidence["url"]
    for name in ("leader", "dispatcher", "admin"):
        detail = client.get(f"/api/v1/cases/{case_id}", headers=auth(tokens[name])).json()
        assert "clip" in [e["kind"] for e in detail["evidence"]], name
        fetched = client.get(url, headers=auth(tokens[name]))
        assert fetched.status_code == 200, (name, fetched.text)
        assert fetched.headers["content-type"] == "video/mp4" and fetched.content == mp4
    for name in ("viewer", "handler"):
        detail = client.get(f"/api/v1/cases/{case_id}", headers=auth(tokens[name]))
        assert detail.status_code == 200, name  # they see the case and its pictures ...
        assert "clip" not in [e["kind"] for e in detail.json()["evidence"]], name  # ... not the video
        refused = client.get(url, headers=auth(tokens[name]))
        assert refused.status_code == 403, (name, refused.text)
        assert "unredacted" in refused.json()["detail"]
    # Each opening is in the case's audit trail, by whom; a byte range further on is the same opening.
    ranged = client.get(url, headers={**auth(tokens["leader"]), "Range": "bytes=1000-"})
    assert ranged.status_code == 206
    with store.sessions() as session:
        viewed = session.scalars(
            select(AuditEvent.actor).where(AuditEvent.case_id == case_id, AuditEvent.action == "clip_viewed")
        ).all()
    assert sorted(viewed) == ["user:admin", "user:dispatcher", "user:leader"]


def test_only_a_whole_mp4_within_the_limit_is_accepted_and_only_from_a_device(
    client: TestClient, store: Store, world: dict[str, Any], mp4: bytes
) -> None:
    case_id, device = world["case_id"], device_auth(world["key"])
    jpeg = upload_clip(client, case_id, image_bytes(), device)
    assert jpeg.status_code == 422 and "not an MP4" in jpeg.json()["detail"]
    truncated = upload_clip(client, case_id, mp4[: len(mp4) // 3], device)
    assert truncated.status_code == 422, truncated.text
    store.settings.clip_max_bytes = len(mp4) - 1
    too_big = upload_clip(client, case_id, mp4, device)
    assert too_big.status_code == 413, too_big.text
    store.settings.clip_max_bytes = 32 * 1024 * 1024
    by_operator = upload_clip(client, case_id, mp4, auth(world["tokens"]["leader"]))
    assert by_operator.status_code == 403 and "edge boxes" in by_operator.json()["detail"]
    # An image is still held to the (smaller) image limit although the route reads up to the clip limit.
    store.settings.evidence_max_bytes = 1000
    big_image = client.post(
        f"/api/v1/cases/{case_id}/evidence",
        files={"file": ("a.jpg", image_bytes(width=400, height=300), "image/jpeg")},
        data={"kind": "confirmation"},
        headers=device,
    )
    assert big_image.status_code == 413, big_image.text


@pytest.mark.parametrize("store", ["postgresql"], indirect=True)
def test_a_clip_seeks_in_the_database_store(store: Store, mp4: bytes) -> None:
    """blob_store=database: a video element's ranges come from the chunks, the first one audited once."""
    settings = store.settings.model_copy(update={"blob_store": "database"})
    with TestClient(create_app(settings, engine=store.engine)) as client:
        key = make_device_key(store.sessions, "box-1")
        make_world(store.sessions)
        leader = auth(make_operators(store.sessions, [("leader", Role.SHIFT_LEADER, None)])["leader"])
        case_id = post_report(client, key, "incident-clip-db")["case_id"]
        url = upload_clip(client, case_id, mp4, device_auth(key)).json()["url"]
        first = client.get(url, headers={**leader, "Range": "bytes=0-"})
        assert first.status_code == 206 and first.content == mp4
        seek = client.get(url, headers={**leader, "Range": "bytes=1000-1999"})
        assert seek.status_code == 206 and seek.content == mp4[1000:2000]
        assert seek.headers["content-range"] == f"bytes 1000-1999/{len(mp4)}"
        tail = client.get(url, headers={**leader, "Range": f"bytes={len(mp4) - 10}-"})
        assert tail.status_code == 206 and tail.content == mp4[-10:]
    with store.sessions() as session:
        viewed = session.scalars(
            select(AuditEvent.actor).where(AuditEvent.case_id == case_id, AuditEvent.action == "clip_viewed")
        ).all()
    assert viewed == ["user:leader"]
    assert not (settings.data_dir / "evidence").exists()
