"""The model registry page (admins, zh/en): versions, what is live and shadow, the shadow comparison per
device and class with crops, and the promote / shadow / rollback buttons (CSRF-checked) reaching the devices'
configuration; the case page names the model that made the case. Real store (uvicorn), httpx as the
browser."""

from __future__ import annotations

import base64
import json
import re
from collections.abc import Iterator
from contextlib import contextmanager

import httpx

from tests.api.builders import image_bytes
from tests.console.conftest import PASSWORD, ConsoleWorld

TOKEN = re.compile(r'name="csrf-token" content="([0-9a-f]+)"')
CARD = {
    "name": "stalls",
    "layout": "ultralytics",
    "input": {"size_hw": [320, 320]},
    "classes": ["car", "stall", "garbage"],
}


@contextmanager
def _console_client(console: ConsoleWorld, username: str) -> Iterator[tuple[httpx.Client, str]]:
    with httpx.Client(base_url=console.url, timeout=10) as client:
        token = TOKEN.search(client.get("/console/login").text)
        assert token is not None
        form = {"username": username, "password": PASSWORD, "csrf_token": token.group(1)}
        assert client.post("/console/login", data=form).status_code == 303
        page = TOKEN.search(client.get("/console/board").text)
        assert page is not None
        yield client, page.group(1)


def _publish(client: httpx.Client, data: bytes, version: str) -> int:
    login = client.post("/api/v1/auth/login", json={"username": "admin", "password": PASSWORD})
    bearer = {"Authorization": f"Bearer {login.json()['access_token']}"}
    files = {"file": ("m.onnx", data, "application/octet-stream")}
    form = {"card": json.dumps({**CARD, "version": version}), "dataset": "reviews december"}
    response = client.post("/api/v1/models", files=files, data=form, headers=bearer)
    assert response.status_code == 201, response.text
    version_id: int = response.json()["id"]
    return version_id


def _device_models(console: ConsoleWorld) -> list[tuple[str, int]]:
    with httpx.Client(base_url=console.url, timeout=10) as client:
        config = client.get("/api/v1/devices/me/config", headers={"X-Device-Key": console.device_key})
        return [(m["role"], m["version_id"]) for m in config.json()["models"]]


def test_promote_shadow_compare_and_roll_back_from_the_console(console: ConsoleWorld) -> None:
    with httpx.Client(base_url=console.url, timeout=10) as api:
        v1, v2 = _publish(api, b"first model", "1"), _publish(api, b"second model", "2")
    with _console_client(console, "admin") as (client, token):
        page = client.get("/console/models")
        assert page.status_code == 200 and "检测模型" in page.text and 'id="version-2"' in page.text
        assert "reviews december" in page.text and "car, stall, garbage" in page.text
        refused = client.post(f"/console/models/{v1}/promote", data={})
        assert refused.status_code == 403 and _device_models(console) == []

        done = client.post(f"/console/models/{v1}/promote", data={"csrf_token": token}, follow_redirects=True)
        assert f"版本 {v1} 已提升为在用" in done.text
        shadow = client.post(
            f"/console/models/{v2}/shadow", data={"csrf_token": token, "share": "0.3"}, follow_redirects=True
        )
        assert f"版本 {v2} 作为影子运行" in shadow.text
        assert _device_models(console) == [("live", v1), ("shadow", v2)]

        crop = image_bytes(width=40, height=30, seed=5)
        report = {
            "live_version_id": v1, "shadow_version_id": v2, "period_start": "2026-12-02T06:00:00Z",
            "period_end": "2026-12-02T07:00:00Z", "frames_live": 600, "frames_shadow": 180,
            "classes": {"stall": {"agree": 3, "shadow_only": 2}},
            "crops": [{"class_name": "stall", "side": "shadow_only", "camera": "cam-1",
                       "jpeg_base64": base64.b64encode(crop).decode()}],
        }  # fmt: skip
        uploaded = client.post(
            "/api/v1/devices/me/model-comparisons", json=report, headers={"X-Device-Key": console.device_key}
        )
        assert uploaded.status_code == 201, uploaded.text
        client.cookies.set("streetwatch_lang", "en")
        page = client.get("/console/models")
        assert "Shadow comparison: version" in page.text
        row = re.search(r'<tr data-device="box-1" data-class="stall">(.*?)</tr>', page.text, re.S)
        assert row is not None
        assert '"agree">3<' in row.group(1) and '"shadow-only">2<' in row.group(1)
        crop_src = re.search(r'src="(/api/v1/model-crops/[0-9a-f]{64})"', row.group(1))
        assert crop_src is not None and client.get(crop_src.group(1)).content == crop

        client.post(f"/console/models/{v2}/promote", data={"csrf_token": token})
        assert _device_models(console) == [("live", v2)]
        rolled = client.post("/console/models/rollback", data={"csrf_token": token}, follow_redirects=True)
        assert f"Rolled back to version {v1}" in rolled.text
        assert _device_models(console) == [("live", v1)]
    with _console_client(console, "li") as (client, token):
        assert client.get("/console/models").status_code == 403
        assert client.post("/console/models/rollback", data={"csrf_token": token}).status_code == 403


def test_the_case_page_names_the_model_that_made_the_case(console: ConsoleWorld) -> None:
    case_id = console.report()
    with _console_client(console, "li") as (client, _):
        page = client.get(f"/console/cases/{case_id}")
        model = re.search(r'<dd id="case-model"[^>]*>(.*?)</dd>', page.text, re.S)
        assert model is not None and "yolo11n-coco" in model.group(1) and ">1<" in model.group(1)
