"""The daemon's camera-health reporter: all of a box's cameras in one request to a real store, cameras the
store does not know as the box's dropped, and one request per camera to a store without the batch route."""

from __future__ import annotations

import datetime as dt
import threading
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, cast

import httpx
from sqlalchemy import select

from api.models import Camera
from contract import paths
from pipeline.camera_health import CameraHealthReporter
from pipeline.config import StoreConfig
from pipeline.protocols import SourceLike
from pipeline.pusher import StoreClient
from tests.pipeline.live_store import LiveStore


@dataclass
class Health:
    state: str = "up"
    fps: float = 2.0
    last_error: str | None = None
    last_frame_at: dt.datetime = field(default_factory=lambda: dt.datetime.now(dt.UTC))


@dataclass
class Source:
    health: Health


def source(state: str = "up", error: str | None = None) -> SourceLike:
    return cast("SourceLike", Source(Health(state=state, last_error=error)))


class Recording:
    """A client that records (method, path, json) and passes the request on to ``inner``."""

    def __init__(self, inner: Any) -> None:
        self.inner = inner
        self.sent: list[tuple[str, str, Any]] = []

    def request(self, method: str, path: str, **kwargs: Any) -> httpx.Response:
        self.sent.append((method, path, kwargs.get("json")))
        response: httpx.Response = self.inner.request(method, path, **kwargs)
        return response


def client_for(store: LiveStore, key: str, tmp_path: Path) -> StoreClient:
    key_file = tmp_path / "device.key"
    key_file.write_text(key, encoding="utf-8")
    key_file.chmod(0o600)
    return StoreClient(StoreConfig(url=store.url, device_key_file=key_file, outbox=tmp_path / "o.sqlite"))


def test_one_request_reports_every_camera_and_unknown_ones_are_dropped(
    store: LiveStore, tmp_path: Path
) -> None:
    _, key = store.add_device("box-1", ("cam-a", "cam-b"))
    store.add_device("box-2", ("cam-c",))
    client = Recording(client_for(store, key, tmp_path))
    sources = {
        "cam-a": source(),
        "cam-b": source("failed", "rtsp: connection refused"),
        "cam-c": source(),  # another box's camera, in this box's YAML by mistake
        "cam-f": source("ended"),  # a file that has ended: no state the store knows
    }
    reporter = CameraHealthReporter(client, sources, threading.Event(), every_s=60)

    reporter.report_all()

    [(method, path, body)] = client.sent
    assert (method, path) == ("PUT", paths.CAMERAS_HEALTH)
    assert set(body["cameras"]) == {"cam-a", "cam-b", "cam-c"}
    with store.sessions() as session:
        health = {c.code: c.health for c in session.scalars(select(Camera).order_by(Camera.code))}
    assert health["cam-a"] is not None and health["cam-a"]["state"] == "up"
    assert health["cam-b"] is not None and health["cam-b"]["error"] == "rtsp: connection refused"
    assert health["cam-c"] is None  # not box-1's: never written

    reporter.report_all()  # the next interval: cam-c is no longer sent

    [(_, path, body)] = client.sent[1:]
    assert path == paths.CAMERAS_HEALTH and set(body["cameras"]) == {"cam-a", "cam-b"}


class OldStore:
    """A store older than the batch route: 404 for it, 200 for each camera's own route."""

    def __init__(self) -> None:
        self.sent: list[str] = []

    def request(self, method: str, path: str, **kwargs: Any) -> httpx.Response:
        self.sent.append(path)
        status = 404 if path == paths.CAMERAS_HEALTH else 200
        return httpx.Response(status, json={"detail": "Not Found"} if status == 404 else {})


def test_a_store_without_the_batch_route_gets_one_request_per_camera() -> None:
    old = OldStore()
    reporter = CameraHealthReporter(
        old, {"cam-a": source(), "cam-b": source()}, threading.Event(), every_s=60
    )

    reporter.report_all()
    reporter.report_all()

    batch_then_each = [paths.CAMERAS_HEALTH, paths.camera_health("cam-a"), paths.camera_health("cam-b")]
    assert old.sent == batch_then_each + batch_then_each[1:]  # the batch route is tried once
