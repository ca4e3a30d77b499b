"""Handling rules per violation type, through the HTTP API on SQLite and PostgreSQL: a resolve (处理反馈)
needs a handling photo taken since the last dispatch where the type requires one, and the unit must start
(开始处置) first where the type says so; both are set on the violation type (API and reference import)."""

from __future__ import annotations

from typing import Any

from fastapi.testclient import TestClient
from sqlalchemy import select

from api.actors import SYSTEM
from api.config_import import DEFAULT_CONFIG, import_file
from api.models import ViolationType
from tests.api.builders import image_bytes
from tests.api.conftest import Store
from tests.api.test_actions import City, act, allowed, make_city, ok


def set_rules(client: TestClient, city: City, code: str, **rules: bool) -> dict[str, Any]:
    response = client.patch(f"/api/v1/violation-types/{code}", json=rules, headers=city.headers["admin"])
    assert response.status_code == 200, response.text
    body: dict[str, Any] = response.json()
    return body


def upload_photo(client: TestClient, city: City, who: str, seed: int = 0) -> None:
    response = client.post(
        f"/api/v1/cases/{city.case_id}/evidence",
        files={"file": ("after.jpg", image_bytes(seed=seed), "image/jpeg")},
        data={"kind": "handling"},
        headers=city.headers[who],
    )
    assert response.status_code in (200, 201), response.text


def dispatched(client: TestClient, city: City) -> None:
    """File the 0102 case; routing dispatches it to sanitation, zhao's unit."""
    assert ok(act(client, city, "li", "file"))["status"] == "dispatched"


def test_garbage_needs_a_handling_photo_to_resolve(client: TestClient, store: Store) -> None:
    city = make_city(store)
    body = set_rules(client, city, "0102", photo_required_to_resolve=True)
    assert body["photo_required_to_resolve"] is True and body["start_required_before_resolve"] is False
    dispatched(client, city)
    ok(act(client, city, "zhao", "start"))

    refused = act(client, city, "zhao", "resolve", note="cleared")
    assert refused.status_code == 422, refused.text
    error = refused.json()
    assert error["rule"] == "photo_required_to_resolve" and error["field"] == "photo"
    assert "photo" in error["detail"] and "处置后现场照片" in error["detail"]
    # the case did not move, and a confirmation image is not a handling photo
    assert allowed(client, city, "zhao") == ["return", "resolve", "request_extension"]

    upload_photo(client, city, "zhao")
    assert ok(act(client, city, "zhao", "resolve", note="cleared"))["status"] == "resolved"


def test_a_rework_needs_a_new_photo(client: TestClient, store: Store) -> None:
    city = make_city(store)
    set_rules(client, city, "0102", photo_required_to_resolve=True)
    dispatched(client, city)
    upload_photo(client, city, "zhao")
    ok(act(client, city, "zhao", "resolve"))
    ok(act(client, city, "li", "rework", note="still there"))

    again = act(client, city, "zhao", "resolve")
    assert again.status_code == 422 and again.json()["rule"] == "photo_required_to_resolve"
    upload_photo(client, city, "zhao", seed=1)
    assert ok(act(client, city, "zhao", "resolve"))["status"] == "resolved"


def test_a_type_without_the_rule_resolves_without_a_photo(client: TestClient, store: Store) -> None:
    city = make_city(store)
    dispatched(client, city)
    assert ok(act(client, city, "zhao", "resolve", note="done"))["status"] == "resolved"


def test_start_required_refuses_resolve_straight_from_dispatched(client: TestClient, store: Store) -> None:
    city = make_city(store)
    set_rules(client, city, "0102", start_required_before_resolve=True)
    dispatched(client, city)
    # not offered, and refused when asked for anyway
    assert allowed(client, city, "zhao") == ["start", "return", "request_extension"]
    refused = act(client, city, "zhao", "resolve")
    assert refused.status_code == 409, refused.text
    assert refused.json()["rule"] == "start_required_before_resolve"
    assert "开始处置" in refused.json()["detail"]

    ok(act(client, city, "zhao", "start"))
    assert "resolve" in allowed(client, city, "zhao")
    assert ok(act(client, city, "zhao", "resolve"))["status"] == "resolved"


def test_the_rules_apply_to_admins_too(client: TestClient, store: Store) -> None:
    """They are facts about the handling, not permissions: an admin resolving for a unit obeys them."""
    city = make_city(store)
    set_rules(client, city, "0102", photo_required_to_resolve=True, start_required_before_resolve=True)
    dispatched(client, city)
    assert act(client, city, "admin", "resolve").status_code == 409
    ok(act(client, city, "admin", "start"))
    assert act(client, city, "admin", "resolve").status_code == 422


def test_the_reference_import_sets_the_rules_and_defaults_them_by_pipeline_type(store: Store) -> None:
    with store.sessions.begin() as session:
        import_file(session, DEFAULT_CONFIG, SYSTEM)
    with store.sessions() as session:
        rules = {
            v.code: (v.photo_required_to_resolve, v.start_required_before_resolve)
            for v in session.scalars(select(ViolationType))
        }
    assert rules == {
        "0102": (True, True),
        "0501": (True, True),
        "0504": (True, True),
        "0505": (False, False),
        "0506": (False, False),
        "9901": (False, False),
    }


def test_a_new_type_takes_its_pipeline_types_photo_default(client: TestClient, store: Store) -> None:
    city = make_city(store)
    base = {"name": "x", "category": "05"}
    for code, pipeline_type, photo in (("0599", "street_stall", True), ("0598", "illegal_parking", False)):
        response = client.post(
            "/api/v1/violation-types",
            json={**base, "code": code, "pipeline_type": pipeline_type},
            headers=city.headers["admin"],
        )
        assert response.status_code == 201, response.text
        assert response.json()["photo_required_to_resolve"] is photo
    explicit = client.post(
        "/api/v1/violation-types",
        json={**base, "code": "0597", "pipeline_type": "street_stall", "photo_required_to_resolve": False},
        headers=city.headers["admin"],
    )
    assert explicit.status_code == 201 and explicit.json()["photo_required_to_resolve"] is False
