"""Service skeleton: refuses unmigrated databases, logs operators in, tells devices from operators."""

from __future__ import annotations

from pathlib import Path

import pytest
from fastapi.testclient import TestClient

from api.app import create_app
from api.db import make_engine
from api.migrate import DatabaseNotMigratedError
from api.models import Role
from api.settings import Settings
from tests.api.builders import auth, make_device_key, make_operator
from tests.api.conftest import Store


def test_refuses_to_start_on_an_unmigrated_database(tmp_path: Path) -> None:
    settings = Settings(data_dir=tmp_path, run_jobs=False)
    with pytest.raises(DatabaseNotMigratedError, match=r"revision none .* run `streetwatch api migrate`"):
        create_app(settings, engine=make_engine(settings))


def test_login_me_logout(client: TestClient, store: Store) -> None:
    make_operator(store.sessions, Role.SHIFT_LEADER, username="li")
    assert (
        client.post("/api/v1/auth/login", json={"username": "li", "password": "wrong-pass"}).status_code
        == 401
    )
    response = client.post("/api/v1/auth/login", json={"username": "li", "password": "correct-horse"})
    assert response.status_code == 200
    token = response.json()["access_token"]
    client.cookies.clear()
    me = client.get("/api/v1/auth/me", headers=auth(token))
    assert me.json()["role"] == "shift_leader"
    assert client.post("/api/v1/auth/logout", headers=auth(token)).status_code == 204
    assert client.get("/api/v1/auth/me", headers=auth(token)).status_code == 401


def test_anonymous_and_device_cannot_act_as_operators(client: TestClient, store: Store) -> None:
    assert client.get("/api/v1/auth/me").status_code == 401
    key = make_device_key(store.sessions)
    assert client.get("/api/v1/auth/me", headers={"X-Device-Key": key}).status_code == 403
    assert client.get("/api/v1/auth/me", headers={"X-Device-Key": key[:-2] + "xx"}).status_code == 401
