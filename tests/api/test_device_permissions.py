"""Devices submit cases and evidence and nothing else; operators cannot pose as devices."""

from __future__ import annotations

from typing import Any

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import update

from api.models import Device, Role
from tests.api.builders import (
    auth,
    case_report,
    device_auth,
    image_bytes,
    make_device_key,
    make_operator,
    make_world,
    post_report,
)
from tests.api.conftest import Store

pytestmark = pytest.mark.security


def _setup(client: TestClient, store: Store) -> tuple[str, int, str]:
    """A device with one case of its own and one evidence image on it."""
    make_world(store.sessions)
    key = make_device_key(store.sessions, "box-1")
    case_id = post_report(client, key, "incident-0001")["case_id"]
    evidence = client.post(
        f"/api/v1/cases/{case_id}/evidence",
        files={"file": ("c.jpg", image_bytes(), "image/jpeg")},
        data={"kind": "confirmation"},
        headers=device_auth(key),
    )
    assert evidence.status_code == 201, evidence.text
    return key, case_id, evidence.json()["sha256"]


def test_a_device_key_cannot_read_cases_act_or_read_evidence(client: TestClient, store: Store) -> None:
    key, case_id, sha256 = _setup(client, store)
    refused: list[tuple[str, str, dict[str, Any]]] = [
        ("GET", "/api/v1/cases", {}),
        ("GET", "/api/v1/cases?camera=cam-1&limit=1", {}),
        ("GET", f"/api/v1/cases/{case_id}", {}),
        ("GET", f"/api/v1/evidence/{sha256}", {}),
        # workflow actions on its own case: a device may only verify or rework (verification by camera)
        ("POST", f"/api/v1/cases/{case_id}/actions/file", {}),
        ("POST", f"/api/v1/cases/{case_id}/actions/void", {"json": {"reason": "false_positive"}}),
        ("POST", f"/api/v1/cases/{case_id}/actions/dispatch", {}),
        ("POST", f"/api/v1/cases/{case_id}/actions/close", {}),
    ]
    # the same key as X-Device-Key or as a bearer token: still a device
    for headers in (device_auth(key), auth(key)):
        for method, path, extra in refused:
            response = client.request(method, path, headers=headers, **extra)

            assert response.status_code == 403, (method, path, response.text)
    assert (
        "devices may only submit cases and evidence"
        in client.get("/api/v1/cases", headers=device_auth(key)).text
    )


def test_what_a_device_may_do(client: TestClient, store: Store) -> None:
    key, case_id, _ = _setup(client, store)

    again = client.post(
        "/api/v1/cases", json=case_report("incident-0002"), headers=auth(key)
    )  # bearer works too
    evidence = client.post(
        f"/api/v1/cases/{case_id}/evidence",
        files={"file": ("h.png", image_bytes(".png"), "image/png")},
        data={"kind": "after"},
        headers=device_auth(key),
    )

    assert again.status_code == 200 and again.json()["case_id"] == case_id
    assert evidence.status_code == 201


def test_operators_cannot_post_case_reports(client: TestClient, store: Store) -> None:
    world = make_world(store.sessions)
    for role in Role:
        token = make_operator(
            store.sessions, role, unit_id=world.sanitation_id if role is Role.UNIT_HANDLER else None
        )

        response = client.post(
            "/api/v1/cases", json=case_report(f"incident-{role.value}"), headers=auth(token)
        )

        assert response.status_code == 403, role
        assert response.json()["detail"] == "this endpoint is for devices (X-Device-Key)"
    assert client.get("/api/v1/cases", headers=auth(token)).json()["count"] == 0  # nothing was stored


def test_bad_or_disabled_device_keys_are_401(client: TestClient, store: Store) -> None:
    make_world(store.sessions)
    key = make_device_key(store.sessions, "box-1")
    body = case_report("incident-0001")

    assert client.post("/api/v1/cases", json=body).status_code == 401
    assert client.post("/api/v1/cases", json=body, headers=device_auth(key[:-3] + "xyz")).status_code == 401
    with store.sessions.begin() as session:
        session.execute(update(Device).where(Device.name == "box-1").values(active=False))
    disabled = client.post("/api/v1/cases", json=body, headers=device_auth(key))
    assert disabled.status_code == 401
    assert disabled.json()["detail"] == "invalid or disabled device key"
