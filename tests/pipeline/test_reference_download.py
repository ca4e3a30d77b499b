"""The store-sync thread downloads an operator's empty reference once per change and hands it over decoded;
a failed download is tried again at the next poll."""

from __future__ import annotations

import datetime as dt
from typing import Any

import cv2
import httpx
import numpy as np
import numpy.typing as npt

from contract import paths
from pipeline.config import CameraConfig
from pipeline.store_sync import StoreSync
from pipeline.zone_sync import ZoneSync

SHA_A, SHA_B = "a" * 64, "b" * 64


def _jpeg(value: int) -> bytes:
    ok, encoded = cv2.imencode(".jpg", np.full((24, 32, 3), value, np.uint8))
    assert ok
    return bytes(encoded.tobytes())


class FakeStore:
    def __init__(self) -> None:
        self.reference: str | None = SHA_A
        self.images = {SHA_A: _jpeg(60), SHA_B: _jpeg(200)}
        self.down = False
        self.downloads: list[str] = []

    def config(self) -> dict[str, Any]:
        zone = {
            "code": "pavement",
            "place": "p1",
            "polygon": [[0, 0.5], [1, 0.5], [1, 1], [0, 1]],
            "rules": {},
            "static_change": {"dwell_s": 60},
            "reference_sha256": self.reference,
            "updated_at": dt.datetime(2026, 5, 1, tzinfo=dt.UTC).isoformat(),
        }
        return {
            "device": "box-1",
            "timezone": "Asia/Shanghai",
            "cameras": [{"code": "cam-a", "name": "", "zones": [zone]}],
            "violation_types": [],
            "version": f"v-{self.reference}",
        }

    def request(self, method: str, path: str, **kwargs: Any) -> httpx.Response:
        if path == paths.DEVICE_CONFIG:
            return httpx.Response(200, json=self.config(), headers={"ETag": f'"{self.reference}"'})
        sha256 = path.rsplit("/", 1)[1]
        assert path == paths.device_reference(sha256)
        self.downloads.append(sha256)
        if self.down:
            raise httpx.ConnectError("down (test)")
        return httpx.Response(200, content=self.images[sha256])


def test_references_are_downloaded_once_per_change_and_retried_after_a_failure() -> None:
    store = FakeStore()
    camera = CameraConfig.model_validate(
        {
            "id": "cam-a",
            "url": "cam-a.mp4",
            "zones": [
                {"id": "z", "place": "p", "polygon": [[0, 0], [1, 0], [1, 1]], "rules": {"x": {"dwell_s": 5}}}
            ],
        }
    )
    got: list[tuple[str, str, npt.NDArray[np.uint8]]] = []
    sync = StoreSync(
        store,
        ZoneSync(store, [camera], None),
        30,
        lambda zones: None,
        on_reference=lambda c, z, i: got.append((c, z, i)),
    )

    def poll() -> None:
        assert sync.zone_sync is not None
        sync.zone_sync.poll()
        sync._fetch_references()

    store.down = True
    poll()
    assert got == [] and store.downloads == [SHA_A]
    store.down = False
    poll()
    poll()  # unchanged: not downloaded again
    assert store.downloads == [SHA_A, SHA_A]
    ((camera_id, zone_id, image),) = got
    assert (camera_id, zone_id, image.shape) == ("cam-a", "pavement", (24, 32, 3))
    assert abs(int(image.mean()) - 60) <= 2
    store.reference = SHA_B  # the operator set a new one
    poll()
    assert store.downloads[-1] == SHA_B and abs(int(got[-1][2].mean()) - 200) <= 2
