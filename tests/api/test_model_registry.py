"""The model registry through the real API: publish, assign live/shadow, the device's configuration and its
scoped, resumable download (from either blob store), rollback, promote and shadow comparisons."""

from __future__ import annotations

import base64
import hashlib
import json
from pathlib import Path
from typing import Any

import httpx
import pytest
import yaml
from fastapi.testclient import TestClient
from sqlalchemy import func, select

from api.app import create_app
from api.models import Blob, BlobChunk, Role
from api.storage import CHUNK_BYTES
from contract.device_config import DeviceConfig
from pipeline.model_updates import download
from tests.api.builders import auth, device_auth, image_bytes, make_device, make_operators
from tests.api.conftest import Store

MODELS = Path(__file__).resolve().parents[2] / "models"
DEMO_ONNX = MODELS / "streetwatch-demo-n.onnx"


def demo_card(**overrides: Any) -> dict[str, Any]:
    card = yaml.safe_load((MODELS / "streetwatch-demo-n.yaml").read_text())
    card.pop("path")
    return {**card, **overrides}


def publish(
    client: TestClient, headers: dict[str, str], data: bytes, card: dict[str, Any], **form: str
) -> Any:
    files = {"file": ("model.onnx", data, "application/octet-stream")}
    form = {"card": json.dumps(card), **form}
    return client.post("/api/v1/models", files=files, data=form, headers=headers)


@pytest.fixture
def world(store: Store) -> dict[str, dict[str, str]]:
    tokens = make_operators(
        store.sessions, [("admin", Role.ADMIN, None), ("leader", Role.SHIFT_LEADER, None)]
    )
    _, key1 = make_device(store.sessions, "box-1")
    _, key2 = make_device(store.sessions, "box-2")
    return {
        "admin": auth(tokens["admin"]),
        "leader": auth(tokens["leader"]),
        "box-1": device_auth(key1),
        "box-2": device_auth(key2),
    }


def config(client: TestClient, headers: dict[str, str]) -> DeviceConfig:
    response = client.get("/api/v1/devices/me/config", headers=headers)
    assert response.status_code == 200
    return DeviceConfig.model_validate(response.json())


def test_publish_keeps_file_card_and_provenance(client: TestClient, world: dict[str, dict[str, str]]) -> None:
    data = DEMO_ONNX.read_bytes()
    evaluation = {"mAP50": 0.41}
    response = publish(
        client,
        world["admin"],
        data,
        demo_card(),
        dataset="reviews-2026-12",
        training_command="streetwatch train",
        evaluation=json.dumps(evaluation),
    )
    assert response.status_code == 201, response.text
    version = response.json()
    assert version["sha256"] == hashlib.sha256(data).hexdigest() and version["size"] == len(data)
    assert version["card"]["classes"][-2:] == ["stall", "garbage"]
    assert version["dataset"] == "reviews-2026-12" and version["evaluation"] == evaluation
    assert version["uploaded_by"] == "user:admin"
    listed = client.get("/api/v1/models", headers=world["admin"]).json()
    assert [v["id"] for v in listed] == [version["id"]]
    assert client.get(f"/api/v1/models/{version['id']}", headers=world["admin"]).json() == version
    again = publish(client, world["admin"], data, demo_card())
    assert again.status_code == 409 and str(version["id"]) in again.json()["detail"]
    assert publish(client, world["leader"], data, demo_card()).status_code == 403


@pytest.mark.parametrize(
    ("card", "form", "needle"),
    [
        ({"sha256": "0" * 64}, {}, "the card says sha256 " + "0" * 64),
        ({"classes": []}, {}, "card.classes"),
        ({"layout": "nope"}, {}, "card.layout"),
        ({}, {"evaluation": "{not json"}, "evaluation is not JSON"),
    ],
)
def test_publish_refuses_a_bad_card_naming_the_field(
    client: TestClient,
    world: dict[str, dict[str, str]],
    card: dict[str, Any],
    form: dict[str, str],
    needle: str,
) -> None:
    response = publish(client, world["admin"], b"onnx bytes", demo_card(**{"sha256": None, **card}), **form)
    assert response.status_code == 422 and needle in response.json()["detail"], response.text


def test_assignment_reaches_the_device_config_and_only_its_download(
    client: TestClient, world: dict[str, dict[str, str]]
) -> None:
    first = config(client, world["box-1"])
    assert first.models == []
    data = b"model one " * 1000
    version = publish(client, world["admin"], data, demo_card(sha256=None)).json()
    url = f"/api/v1/devices/me/models/{version['id']}"
    assert client.get(url, headers=world["box-1"]).status_code == 404  # not assigned yet
    assigned = client.post(
        f"/api/v1/models/{version['id']}/assignments", json={"role": "live", "devices": ["box-1"]},
        headers=world["admin"],
    )  # fmt: skip
    assert assigned.status_code == 201 and assigned.json()[0]["device"] == "box-1"
    after = config(client, world["box-1"])
    assert after.version != first.version
    (model,) = after.models
    assert (model.version_id, model.role, model.sha256, model.size) == (
        version["id"], "live", hashlib.sha256(data).hexdigest(), len(data),
    )  # fmt: skip
    assert model.download_path == url and model.card["classes"] == version["card"]["classes"]
    assert client.get(url, headers=world["box-1"]).content == data
    resumed = client.get(url, headers={**world["box-1"], "Range": "bytes=4000-"})
    assert resumed.status_code == 206 and resumed.content == data[4000:]
    # box-2 was not named: it neither sees the model nor may download it
    assert config(client, world["box-2"]).models == []
    assert client.get(url, headers=world["box-2"]).status_code == 404
    unknown = client.post(
        f"/api/v1/models/{version['id']}/assignments", json={"role": "live", "devices": ["box-9"]},
        headers=world["admin"],
    )  # fmt: skip
    assert unknown.status_code == 422 and "box-9" in unknown.json()["detail"]


def test_rollback_is_one_action_and_audited(client: TestClient, world: dict[str, dict[str, str]]) -> None:
    admin = world["admin"]
    v1 = publish(client, admin, b"version one", demo_card(sha256=None, version="1")).json()["id"]
    v2 = publish(client, admin, b"version two", demo_card(sha256=None, version="2")).json()["id"]
    nothing = client.post("/api/v1/models/rollback", json={}, headers=admin)
    assert nothing.status_code == 409
    client.post(f"/api/v1/models/{v1}/assignments", json={"role": "live"}, headers=admin)
    assert client.post("/api/v1/models/rollback", json={}, headers=admin).status_code == 409  # first live
    client.post(f"/api/v1/models/{v2}/assignments", json={"role": "live"}, headers=admin)
    assert [m.version_id for m in config(client, world["box-2"]).models] == [v2]
    rolled = client.post("/api/v1/models/rollback", json={}, headers=admin)
    assert rolled.status_code == 200 and rolled.json()[0]["version_id"] == v1
    assert [m.version_id for m in config(client, world["box-2"]).models] == [v1]
    history = client.get("/api/v1/models/assignments", headers=admin).json()
    assert [(h["version_id"], h["action"], h["assigned_by"]) for h in history] == [
        (v1, "rollback", "user:admin"), (v2, "assign", "user:admin"), (v1, "assign", "user:admin"),
    ]  # fmt: skip


def test_shadow_share_is_capped_and_promote_ends_the_shadow(
    client: TestClient, world: dict[str, dict[str, str]]
) -> None:
    admin = world["admin"]
    v1 = publish(client, admin, b"version one", demo_card(sha256=None)).json()["id"]
    v2 = publish(client, admin, b"version two", demo_card(sha256=None)).json()["id"]
    client.post(f"/api/v1/models/{v1}/assignments", json={"role": "live"}, headers=admin)
    greedy = client.post(
        f"/api/v1/models/{v2}/assignments", json={"role": "shadow", "shadow_share": 0.8}, headers=admin
    )
    assert greedy.status_code == 422
    shadow = {"role": "shadow", "shadow_share": 0.3}
    client.post(f"/api/v1/models/{v2}/assignments", json=shadow, headers=admin)
    models = {m.role: m for m in config(client, world["box-1"]).models}
    assert models["live"].version_id == v1 and models["shadow"].version_id == v2
    assert models["shadow"].shadow_share == 0.3
    assert client.get(f"/api/v1/devices/me/models/{v2}", headers=world["box-1"]).content == b"version two"
    assert client.post(f"/api/v1/models/{v2}/promote", json={}, headers=admin).status_code == 200
    assert [(m.role, m.version_id) for m in config(client, world["box-1"]).models] == [("live", v2)]


def test_device_uploads_a_shadow_comparison_with_crops(
    client: TestClient, world: dict[str, dict[str, str]]
) -> None:
    admin = world["admin"]
    v1 = publish(client, admin, b"version one", demo_card(sha256=None)).json()["id"]
    crop = image_bytes(width=32, height=24)
    report = {
        "live_version_id": None,
        "shadow_version_id": v1,
        "period_start": "2026-12-02T06:00:00Z",
        "period_end": "2026-12-02T07:00:00Z",
        "frames_live": 100,
        "frames_shadow": 20,
        "classes": {"stall": {"agree": 3, "shadow_only": 1}, "garbage": {"live_only": 2}},
        "crops": [
            {"class_name": "stall", "side": "shadow_only", "camera": "cam-1",
             "jpeg_base64": base64.b64encode(crop).decode()},
        ],
    }  # fmt: skip
    url = "/api/v1/devices/me/model-comparisons"
    refused = client.post(url, json=report, headers=world["box-1"])
    assert refused.status_code == 422 and "not this device's shadow model" in refused.json()["detail"]
    client.post(f"/api/v1/models/{v1}/assignments", json={"role": "shadow"}, headers=admin)
    recorded = client.post(url, json=report, headers=world["box-1"])
    assert recorded.status_code == 201 and recorded.json()["crops"] == 1
    sha256 = hashlib.sha256(crop).hexdigest()
    assert client.get(f"/api/v1/model-crops/{sha256}", headers=admin).content == crop
    assert client.get(f"/api/v1/model-crops/{sha256}", headers=world["leader"]).status_code == 403


def test_a_model_over_the_limit_is_refused_with_413(
    client: TestClient, store: Store, world: dict[str, dict[str, str]]
) -> None:
    """The demo model (7 MB) is over the evidence limit (5 MB) and was taken above: models have their own."""
    store.settings.model_max_bytes = 20_000
    response = publish(client, world["admin"], b"x" * 30_000, demo_card(sha256=None))
    assert response.status_code == 413 and response.json()["max_bytes"] in (20_000, 20_000 + 65_536)
    assert client.get("/api/v1/models", headers=world["admin"]).json() == []


class CutAfter:
    """The device's link to the store (``pipeline.model_updates.download``'s client), dropped after
    ``requests`` ranged requests; the Range headers it sent."""

    def __init__(self, client: Any, headers: dict[str, str], requests: int | None = None) -> None:
        self.client, self.headers, self.requests = client, headers, requests
        self.ranges: list[str] = []

    def request(self, method: str, path: str, **kwargs: Any) -> httpx.Response:
        if self.requests is not None and len(self.ranges) >= self.requests:
            raise httpx.ConnectError("the link dropped")
        headers = {**self.headers, **kwargs.pop("headers", {})}
        self.ranges.append(headers["Range"])
        response: httpx.Response = self.client.request(method, path, headers=headers, **kwargs)
        return response


def resumed_download(link: Any, headers: dict[str, str], model: Any, folder: Path) -> list[str]:
    """Download ``model`` through ``link`` cut after two requests, then resume it; the resumed ranges."""
    cut = CutAfter(link, headers, requests=2)
    with pytest.raises(httpx.ConnectError):
        download(cut, model, folder, chunk=300_000)  # not a multiple of the store's 256 KiB chunks
    assert (folder / f"{model.sha256}.onnx.part").stat().st_size == 600_000
    resumed = CutAfter(link, headers)
    assert download(resumed, model, folder, chunk=300_000).read_bytes() == MODEL
    return resumed.ranges


MODEL = hashlib.shake_256(b"a city's model").digest(4 * CHUNK_BYTES + 4321)


@pytest.mark.parametrize("store", ["postgresql"], indirect=True)
def test_a_device_resumes_its_download_from_the_database_store(
    store: Store, world: dict[str, dict[str, str]], tmp_path: Path
) -> None:
    """blob_store=database: the file and the crops are chunks in PostgreSQL, nothing in the data directory."""
    settings = store.settings.model_copy(update={"blob_store": "database"})
    with TestClient(create_app(settings, engine=store.engine)) as client:
        admin = world["admin"]
        version = publish(client, admin, MODEL, demo_card(sha256=None)).json()
        body = {"role": "shadow", "devices": ["box-1"]}
        assert client.post(f"/api/v1/models/{version['id']}/assignments", json=body, headers=admin).is_success
        (model,) = config(client, world["box-1"]).models

        ranges = resumed_download(client, world["box-1"], model, tmp_path / "box")

        assert ranges == ["bytes=600000-899999", f"bytes=900000-{len(MODEL) - 1}"]  # from where it was cut
        crop = image_bytes(width=32, height=24, seed=5)
        report = {
            "live_version_id": None, "shadow_version_id": version["id"],
            "period_start": "2026-12-02T06:00:00Z", "period_end": "2026-12-02T07:00:00Z",
            "frames_live": 10, "frames_shadow": 2, "classes": {},
            "crops": [{"class_name": "stall", "side": "shadow_only", "camera": "cam-1",
                       "jpeg_base64": base64.b64encode(crop).decode()}],
        }  # fmt: skip
        recorded = client.post("/api/v1/devices/me/model-comparisons", json=report, headers=world["box-1"])
        assert recorded.status_code == 201, recorded.text
        shown = client.get(f"/api/v1/model-crops/{hashlib.sha256(crop).hexdigest()}", headers=admin)
        assert shown.status_code == 200 and shown.content == crop
    assert list(settings.data_dir.iterdir()) == []  # the model and the crop are in the database only


@pytest.mark.parametrize("store", ["postgresql"], indirect=True)
def test_a_refused_upload_leaves_nothing_in_the_database_store(
    store: Store, world: dict[str, dict[str, str]]
) -> None:
    limit = 2 * CHUNK_BYTES
    settings = store.settings.model_copy(update={"blob_store": "database", "model_max_bytes": limit})
    with TestClient(create_app(settings, engine=store.engine)) as client:
        too_big = publish(client, world["admin"], MODEL, demo_card(sha256=None))
        wrong = publish(client, world["admin"], MODEL[:1000], demo_card(sha256="0" * 64))
    assert too_big.status_code == 413 and wrong.status_code == 422, (too_big.text, wrong.text)
    with store.sessions() as session:
        assert session.scalar(select(func.count()).select_from(Blob)) == 0
        assert session.scalar(select(func.count()).select_from(BlobChunk)) == 0
