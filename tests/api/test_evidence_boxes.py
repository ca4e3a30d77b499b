"""The boxes a device detected in a ``frame`` picture: sent with it (form field ``boxes``), checked against
contract.reports.FRAME_BOXES, kept on the evidence row for datasets.reviewed and never shown to operators;
refused whole (422 naming the field and the bad box) so that nothing is stored."""

from __future__ import annotations

import json
from typing import Any

from alembic import command
from fastapi.testclient import TestClient
from sqlalchemy import Engine, func, inspect, select

from api.migrate import alembic_config, upgrade
from api.models import Evidence
from tests.api.builders import (
    device_auth,
    image_bytes,
)
from tests.api.conftest import Scene, Store
from tests.api.test_evidence import stored_files

BOXES: list[dict[str, Any]] = [
    {"xyxy": [10, 12.5, 40, 30], "confidence": 0.91, "class_name": "car", "track_id": 7},
    {"xyxy": [0, 0, 8, 8], "confidence": 0.4, "class_name": "unknown_object"},  # no track
]
STORED = [
    {"xyxy": [10.0, 12.5, 40.0, 30.0], "confidence": 0.91, "class_name": "car", "track_id": 7},
    {"xyxy": [0.0, 0.0, 8.0, 8.0], "confidence": 0.4, "class_name": "unknown_object"},
]


def upload(
    client: TestClient, scene: Scene, kind: str = "frame", boxes: str | None = None, seed: int = 0
) -> Any:
    form = {"kind": kind} if boxes is None else {"kind": kind, "boxes": boxes}
    return client.post(
        f"/api/v1/cases/{scene.case_id}/evidence",
        files={"file": ("frame.jpg", image_bytes(seed=seed), "image/jpeg")},
        data=form,
        headers=device_auth(scene.device_key),
    )


def stored_boxes(store: Store) -> list[Any]:
    with store.sessions() as session:
        return [row.boxes for row in session.scalars(select(Evidence).order_by(Evidence.id))]


def test_a_frame_keeps_the_boxes_detected_in_it(client: TestClient, store: Store, scene: Scene) -> None:
    first = upload(client, scene, boxes=json.dumps(BOXES))
    again = upload(client, scene, boxes=json.dumps(BOXES[:1]))  # a retried upload: the existing row
    without = upload(client, scene, seed=1)  # a frame without boxes (an older device)
    confirmation = upload(client, scene, kind="confirmation", seed=2)

    assert first.status_code == 201, first.text
    assert "boxes" not in first.json()  # operators are not shown them
    assert again.status_code == 200 and again.json()["id"] == first.json()["id"]
    assert without.status_code == 201 and confirmation.status_code == 201
    assert stored_boxes(store) == [STORED, None, None]


def test_an_empty_list_is_a_frame_without_detections(client: TestClient, store: Store, scene: Scene) -> None:
    assert upload(client, scene, boxes="[]").status_code == 201
    assert upload(client, scene, boxes="", seed=1).status_code == 201  # a blank form field: none sent
    assert stored_boxes(store) == [[], None]


BAD_BOXES = [
    # boxes, kind, words of the message, index of the bad box (None: the whole field)
    ('[{"xyxy": [1, 2, 3, 4]', "frame", "boxes is not valid JSON", None),
    (" ", "frame", "boxes is not valid JSON", None),
    ("null", "frame", "boxes must be a JSON list of boxes", None),
    ('{"xyxy": [1, 2, 3, 4]}', "frame", "boxes must be a JSON list of boxes", None),
    (
        json.dumps([BOXES[0], {"xyxy": [1, 2, 3], "confidence": 0.5, "class_name": "car"}]),
        "frame",
        "boxes[1].xyxy: expected 4 coordinates x1, y1, x2, y2",
        1,
    ),
    (json.dumps([{**BOXES[0], "confidence": 1.5}]), "frame", "boxes[0].confidence: Input should be less", 0),
    (
        json.dumps([{**BOXES[0], "colour": "red"}]),
        "frame",
        "boxes[0].colour: Extra inputs are not permitted",
        0,
    ),
    (json.dumps([BOXES[1]] * 501), "frame", "boxes: more than 500 boxes", None),
    (json.dumps(BOXES), "confirmation", "boxes come only with a picture of kind 'frame'", None),
]


def test_bad_boxes_are_refused_and_nothing_is_stored(client: TestClient, store: Store, scene: Scene) -> None:
    for boxes, kind, message, index in BAD_BOXES:
        response = upload(client, scene, kind=kind, boxes=boxes)

        assert response.status_code == 422, (boxes[:80], response.text)
        body = response.json()
        assert (body["code"], body["field"]) == ("invalid_input", "boxes"), body
        assert message in body["detail"], body
        assert body.get("index") == index, body
    assert stored_files(store) == []
    with store.sessions() as session:
        assert session.scalar(select(func.count()).select_from(Evidence)) == 0


def _downgrade(engine: Engine, revision: str) -> None:
    config = alembic_config(engine)
    with engine.begin() as connection:
        config.attributes["connection"] = connection
        command.downgrade(config, revision)


def _evidence_columns(engine: Engine) -> dict[str, Any]:
    return {column["name"]: column for column in inspect(engine).get_columns("evidence")}


def test_the_migration_adds_and_removes_the_column_keeping_the_evidence(
    client: TestClient, store: Store, scene: Scene
) -> None:
    assert upload(client, scene, boxes=json.dumps(BOXES)).status_code == 201
    assert upload(client, scene, kind="confirmation", seed=1).status_code == 201
    assert _evidence_columns(store.engine)["boxes"]["nullable"]

    _downgrade(store.engine, "0018_review_labels")
    assert "boxes" not in _evidence_columns(store.engine)
    upgrade(store.engine)

    assert stored_boxes(store) == [None, None]  # the rows survive both ways, without their boxes
    with store.sessions() as session:
        assert [e.kind for e in session.scalars(select(Evidence).order_by(Evidence.id))] == [
            "frame",
            "confirmation",
        ]
