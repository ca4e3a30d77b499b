"""The admin audit trail (api.admin_audit): every change to reference data, cameras, zones, devices and users
through the API leaves one admin_events row naming who, which object, and its values before and after,
in the same transaction as the change, and never a secret."""

from __future__ import annotations

import json
from pathlib import Path

from fastapi.testclient import TestClient
from sqlalchemy import select

from api.actors import Actor
from api.admin_audit import REDACTED
from api.auth import create_device
from api.config_import import import_file
from api.models import AdminEvent, Role
from tests.api.builders import World, auth, make_operator, make_world
from tests.api.conftest import Store

SQUARE = [[0.1, 0.1], [0.9, 0.1], [0.9, 0.9], [0.1, 0.9]]


def events(store: Store) -> list[AdminEvent]:
    with store.sessions() as session:
        return list(session.scalars(select(AdminEvent).order_by(AdminEvent.id)))


def test_api_changes_are_recorded_with_actor_before_and_after(client: TestClient, store: Store) -> None:
    world: World = make_world(store.sessions)
    admin = auth(make_operator(store.sessions, Role.ADMIN, username="root"))
    start = len(events(store))

    client.post("/api/v1/units", json={"code": "parks", "name": "园林科"}, headers=admin).raise_for_status()
    client.patch("/api/v1/units/parks", json={"name": "园林绿化科"}, headers=admin).raise_for_status()
    client.put("/api/v1/deadlines/0102", json={"working_hours": 3}, headers=admin).raise_for_status()
    client.put("/api/v1/deadlines/0102", json={"working_hours": 5}, headers=admin).raise_for_status()
    camera = {"code": "cam-9", "name": "路口东"}
    client.post("/api/v1/cameras", json=camera, headers=admin).raise_for_status()
    client.put(
        "/api/v1/cameras/cam-9/zones/z9",
        json={"place": world.place_key, "polygon": SQUARE, "rules": {}},
        headers=admin,
    ).raise_for_status()
    client.delete("/api/v1/units/parks", headers=admin).raise_for_status()

    new = [(e.actor, e.area, e.action, e.object_key) for e in events(store)[start:]]
    assert new == [
        ("user:root", "units", "created", "parks"),
        ("user:root", "units", "updated", "parks"),
        ("user:root", "deadlines", "created", "0102"),
        ("user:root", "deadlines", "updated", "0102"),
        ("user:root", "cameras", "created", "cam-9"),
        ("user:root", "zones", "created", "cam-9/z9"),
        ("user:root", "units", "deleted", "parks"),
    ]
    renamed = events(store)[start + 1]
    assert renamed.before == {"name": "园林科"} and renamed.after == {"name": "园林绿化科"}
    deadline = events(store)[start + 3]
    assert deadline.before == {"working_hours": 3.0} and deadline.after == {"working_hours": 5.0}
    assert events(store)[-1].after is None and events(store)[-1].before["name"] == "园林绿化科"


def test_refused_change_leaves_no_event(client: TestClient, store: Store) -> None:
    make_world(store.sessions)
    admin = auth(make_operator(store.sessions, Role.ADMIN))
    client.post("/api/v1/units", json={"code": "parks", "name": "园林科"}, headers=admin).raise_for_status()
    before = len(events(store))
    duplicate = client.post("/api/v1/units", json={"code": "parks", "name": "又一个"}, headers=admin)
    assert duplicate.status_code == 409
    assert len(events(store)) == before  # the event went with the rolled-back change


def test_secrets_never_enter_the_trail(client: TestClient, store: Store) -> None:
    make_world(store.sessions)
    make_operator(store.sessions, Role.ADMIN)  # a user with a password hash
    with store.sessions.begin() as session:
        key = create_device(session, "box-secret").key
    text = json.dumps([[e.before, e.after] for e in events(store)], ensure_ascii=False)
    assert key not in text and "argon2" not in text
    device = next(e for e in events(store) if e.area == "devices")
    assert device.after is not None and device.after["key_hash"] == REDACTED
    user = next(e for e in events(store) if e.area == "users")
    assert user.after is not None and user.after["password_hash"] == REDACTED


def test_device_heartbeat_is_not_an_admin_change(client: TestClient, store: Store) -> None:
    make_world(store.sessions)
    with store.sessions.begin() as session:
        key = create_device(session, "box-quiet").key
    before = len(events(store))
    client.get("/api/v1/devices/me/config", headers={"X-Device-Key": key})
    assert len(events(store)) == before  # last_seen_at moves on its own


def test_config_import_names_its_actor(store: Store, tmp_path: Path) -> None:
    make_world(store.sessions)
    config = tmp_path / "city.yaml"
    config.write_text("units:\n  - {code: parks, name: 园林科}\n", encoding="utf-8")
    with store.sessions.begin() as session:
        import_file(session, config, Actor(kind="cli", id=None, name="ops"))
    last = events(store)[-1]
    assert (last.actor, last.area, last.action, last.object_key) == ("cli:ops", "units", "created", "parks")


def test_the_api_lists_the_trail_newest_first_filtered_in_keyset_pages(
    client: TestClient, store: Store
) -> None:
    make_world(store.sessions)
    admin = auth(make_operator(store.sessions, Role.ADMIN, username="root"))
    for index in range(5):
        client.post("/api/v1/units", json={"code": f"u{index}", "name": f"单位{index}"}, headers=admin)
    first = client.get("/api/v1/admin-events", params={"actor": "user:root", "limit": 3}, headers=admin)
    assert first.status_code == 200, first.text
    page = first.json()
    assert [event["object_key"] for event in page["data"]] == ["u4", "u3", "u2"]
    params = {"actor": "user:root", "limit": 3, "before": page["next_before"]}
    rest = client.get("/api/v1/admin-events", params=params, headers=admin).json()
    assert [event["object_key"] for event in rest["data"]] == ["u1", "u0"] and rest["next_before"] is None
    users = client.get("/api/v1/admin-events", params={"area": "users"}, headers=admin).json()["data"]
    assert users and all(event["area"] == "users" for event in users)
    assert all(event["after"]["password_hash"] == REDACTED for event in users)
