"""The model download (ranged, resumable, sha256-checked) and the swap between batches, on small stand-ins;
the real store and daemon are in test_model_rollout_e2e.py."""

from __future__ import annotations

import hashlib
import re
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import httpx
import numpy as np
import pytest

from contract.device_config import DeviceModel
from detector.detections import Detections
from pipeline.model_updates import ModelIdentity, ModelUpdateError, SwappableDetector, download

DATA = bytes(range(256)) * 40  # 10 240 bytes


class RangedStore:
    """Answers Range requests from ``data``; after ``fail_after`` requests the link drops."""

    def __init__(self, data: bytes, fail_after: int | None = None) -> None:
        self.data = data
        self.fail_after = fail_after
        self.ranges: list[str] = []

    def request(self, method: str, path: str, **kwargs: Any) -> httpx.Response:
        if self.fail_after is not None and len(self.ranges) >= self.fail_after:
            raise httpx.ConnectError("the store went away")
        header = kwargs["headers"]["Range"]
        self.ranges.append(header)
        match = re.fullmatch(r"bytes=(\d+)-(\d+)", header)
        assert match is not None
        start, end = int(match.group(1)), int(match.group(2))
        return httpx.Response(206, content=self.data[start : end + 1])


def model(data: bytes, sha256: str | None = None) -> DeviceModel:
    return DeviceModel(
        version_id=7, name="m", version="1", sha256=sha256 or hashlib.sha256(data).hexdigest(),
        size=len(data), download_path="/api/v1/devices/me/models/7", card={}, role="live",
    )  # fmt: skip


def test_a_cut_download_resumes_where_the_part_file_ends(tmp_path: Path) -> None:
    cut = RangedStore(DATA, fail_after=2)
    with pytest.raises(httpx.ConnectError):
        download(cut, model(DATA), tmp_path, chunk=4096)
    assert (tmp_path / f"{model(DATA).sha256}.onnx.part").stat().st_size == 8192
    resumed = RangedStore(DATA)
    path = download(resumed, model(DATA), tmp_path, chunk=4096)
    assert resumed.ranges == ["bytes=8192-10239"] and path.read_bytes() == DATA
    assert download(RangedStore(b"", fail_after=0), model(DATA), tmp_path) == path  # already there


def test_a_wrong_sha256_deletes_the_file_and_says_so(tmp_path: Path) -> None:
    with pytest.raises(ModelUpdateError, match=r"has sha256 .* the store assigned 0{64}"):
        download(RangedStore(DATA), model(DATA, sha256="0" * 64), tmp_path)
    assert list(tmp_path.iterdir()) == []


class Fixed:
    """A detector stand-in that tags its detections with its own confidence."""

    card = None
    preprocessor = None

    def __init__(self, classes: list[str], tag: float) -> None:
        self.class_names = classes
        self.tag = tag

    def detect_batch(self, frames: Sequence[Any]) -> list[Detections]:
        one = Detections(
            xyxy=np.zeros((1, 4), np.float32),
            confidence=np.array([self.tag], np.float32),
            class_id=np.zeros(1, np.int64),
        )
        return [one for _ in frames]


def test_the_swap_happens_between_batches_and_refuses_other_classes() -> None:
    swapper = SwappableDetector(Fixed(["car"], 0.1), ModelIdentity("yaml", "1", None))
    frame = np.zeros((4, 4, 3), np.uint8)
    assert swapper.detect_batch([frame])[0].confidence[0] == pytest.approx(0.1)
    swapper.offer(Fixed(["car"], 0.2), ModelIdentity("city", "2", 9))
    assert swapper.identity.version_id is None  # not before the next batch
    batch = swapper.detect_batch([frame, frame])
    assert [d.confidence[0] for d in batch] == pytest.approx([0.2, 0.2]) and swapper.swaps == 1
    assert swapper.identity.report_version == "2 #9"
    with pytest.raises(ModelUpdateError, match="a different class list needs a restart"):
        swapper.offer(Fixed(["car", "stall"], 0.3), ModelIdentity("city", "3", 10))
