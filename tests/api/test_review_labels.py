"""Boxes operators draw on a case's evidence image (missed objects), through the HTTP API on SQLite and
PostgreSQL: stored normalised with their type and author, audited on the case, listed, deleted by their
author or an admin only; bad boxes, foreign images and unknown codes are refused naming what is wrong."""

from __future__ import annotations

from typing import Any

from fastapi.testclient import TestClient
from sqlalchemy import select

from api.models import AuditEvent, ReviewLabel, Role
from tests.api.builders import auth, image_bytes, make_device_key, make_operators, make_world, post_report
from tests.api.conftest import Store


def _world(client: TestClient, store: Store) -> tuple[dict[str, str], int, int, int]:
    """Tokens, a case with one uploaded image (its evidence id) and a second case's image id."""
    world = make_world(store.sessions)
    key = make_device_key(store.sessions)
    tokens = make_operators(
        store.sessions,
        [
            ("li", Role.SHIFT_LEADER, None),
            ("zhang", Role.DISPATCHER, None),
            ("guest", Role.VIEWER, None),
            ("wang", Role.UNIT_HANDLER, world.sanitation_id),
            ("admin", Role.ADMIN, None),
        ],
    )
    case_id = post_report(client, key, "label-case-one-0001")["case_id"]
    other_id = post_report(client, key, "label-case-two-0002", violation_type="exposed_garbage")["case_id"]
    ids = []
    for seed, target in ((1, case_id), (2, other_id)):
        files = {"file": ("c.jpg", image_bytes(width=320, height=240, seed=seed), "image/jpeg")}
        response = client.post(
            f"/api/v1/cases/{target}/evidence",
            files=files,
            data={"kind": "confirmation"},
            headers={"X-Device-Key": key},
        )
        assert response.status_code == 201, response.text
        ids.append(response.json()["id"])
    return tokens, case_id, ids[0], ids[1]


def _draw(client: TestClient, token: str, case_id: int, **body: Any) -> Any:
    return client.post(f"/api/v1/cases/{case_id}/labels", json=body, headers=auth(token))


def test_a_drawn_box_is_stored_listed_audited_and_deleted(client: TestClient, store: Store) -> None:
    tokens, case_id, evidence_id, _ = _world(client, store)
    response = _draw(
        client, tokens["li"], case_id, evidence_id=evidence_id, box=[0.1, 0.2, 0.5, 0.9], event_code="0102"
    )
    assert response.status_code == 201, response.text
    label = response.json()
    assert label["box"] == [0.1, 0.2, 0.5, 0.9]
    assert (label["case_id"], label["evidence_id"], label["event_code"]) == (case_id, evidence_id, "0102")
    assert label["created_by"] == "user:li" and len(label["sha256"]) == 64

    listed = client.get(f"/api/v1/cases/{case_id}/labels", headers=auth(tokens["guest"]))
    assert listed.status_code == 200 and [item["id"] for item in listed.json()] == [label["id"]]

    # another reviewer may not delete li's box; the admin may
    path = f"/api/v1/cases/{case_id}/labels/{label['id']}"
    refused = client.delete(path, headers=auth(tokens["zhang"]))
    assert refused.status_code == 403 and "user:li" in refused.json()["detail"]
    assert client.delete(path, headers=auth(tokens["admin"])).status_code == 204
    assert client.get(f"/api/v1/cases/{case_id}/labels", headers=auth(tokens["li"])).json() == []
    with store.sessions() as session:
        actions = session.scalars(
            select(AuditEvent.action).where(AuditEvent.case_id == case_id).order_by(AuditEvent.id)
        ).all()
        assert session.scalars(select(ReviewLabel)).all() == []
    assert actions[-2:] == ["label_added", "label_deleted"]


def test_the_author_deletes_their_own_box(client: TestClient, store: Store) -> None:
    tokens, case_id, evidence_id, _ = _world(client, store)
    label = _draw(
        client, tokens["zhang"], case_id, evidence_id=evidence_id, box=[0, 0, 1, 1], event_code="0102"
    )
    assert label.status_code == 201
    path = f"/api/v1/cases/{case_id}/labels/{label.json()['id']}"
    assert client.delete(path, headers=auth(tokens["zhang"])).status_code == 204
    assert client.delete(path, headers=auth(tokens["zhang"])).status_code == 404


def test_bad_drawings_are_refused_naming_why(client: TestClient, store: Store) -> None:
    tokens, case_id, evidence_id, other_evidence = _world(client, store)
    li = tokens["li"]
    flipped = _draw(client, li, case_id, evidence_id=evidence_id, box=[0.5, 0.2, 0.1, 0.9], event_code="0102")
    assert flipped.status_code == 422 and "x1 < x2" in flipped.json()["detail"]
    outside = _draw(client, li, case_id, evidence_id=evidence_id, box=[0.1, 0.2, 1.5, 0.9], event_code="0102")
    assert outside.status_code == 422
    foreign = _draw(
        client, li, case_id, evidence_id=other_evidence, box=[0.1, 0.2, 0.5, 0.9], event_code="0102"
    )
    assert foreign.status_code == 404 and f"evidence {other_evidence}" in foreign.json()["detail"]
    code = _draw(client, li, case_id, evidence_id=evidence_id, box=[0.1, 0.2, 0.5, 0.9], event_code="7777")
    assert code.status_code == 422 and "7777" in code.json()["detail"]
    for viewer in ("guest", "wang"):
        denied = _draw(
            client,
            tokens[viewer],
            case_id,
            evidence_id=evidence_id,
            box=[0.1, 0.2, 0.5, 0.9],
            event_code="0102",
        )
        assert denied.status_code == 403
    with store.sessions() as session:
        assert session.scalars(select(ReviewLabel)).all() == []
