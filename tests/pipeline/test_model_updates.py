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
from pipeline.redaction import PersonSplit

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


class Thresholded(Fixed):
    """A stand-in with a decode threshold, as :class:`detector.Detector` has."""

    def __init__(self, classes: list[str], confidence: float) -> None:
        super().__init__(classes, confidence)
        self.confidence = confidence


def test_a_swapped_in_model_brings_its_own_threshold_and_redaction_still_sees_faint_people() -> None:
    """The old model ran at 0.1 for redaction with the rules kept at its 0.25; the new one's own threshold
    (its lowest working point, 0.15) is what the rules see of it, and it too runs at 0.1 for the people."""
    split = PersonSplit(["person", "car"], working_confidence=0.25, person_confidence=0.1)
    old = Thresholded(["person", "car"], 0.1)
    swapper = SwappableDetector(old, ModelIdentity("yaml", "1", None), person_split=split)
    new = Thresholded(["person", "car"], 0.15)
    swapper.offer(new, ModelIdentity("city", "2", 9))
    assert split.working_confidence == 0.25, "not before the swap"
    swapper.detect_batch([np.zeros((4, 4, 3), np.uint8)])
    assert (new.confidence, split.working_confidence) == (0.1, 0.15)

    alone = SwappableDetector(Thresholded(["car"], 0.25), ModelIdentity("yaml", "1", None))
    own = Thresholded(["car"], 0.4)
    alone.offer(own, ModelIdentity("city", "3", 10))
    assert own.confidence == 0.4, "no redaction split: the new model keeps its own threshold"


def test_a_live_model_with_other_classes_is_staged_and_the_daemon_asked_to_restart(tmp_path: Path) -> None:
    """The city's first stall model: not swapped in (the rules are built on the class list) but staged for
    the next start, with the card's class -> violation mapping; the running model keeps analysing."""
    import threading

    from pipeline.model_updates import ModelUpdater, read_staged

    data = b"stand-in onnx" * 10
    target = model(data).model_copy(
        update={"card": {"name": "city", "version": "2", "violations": {"stall": "street_stall"}}}
    )
    swapper = SwappableDetector(Fixed(["car"], 0.1), ModelIdentity("yaml", "1", None))
    restarts: list[Any] = []
    updater = ModelUpdater(
        RangedStore(data), tmp_path, swapper, threading.Event(),
        loader=lambda card: Fixed(["car", "stall"], 0.2), on_new_classes=restarts.append,
    )  # fmt: skip
    updater.assign([target])
    assert updater.step() is False
    assert len(restarts) == 1 and swapper.swaps == 0
    frame = np.zeros((4, 4, 3), np.uint8)
    assert swapper.detect_batch([frame])[0].confidence[0] == pytest.approx(0.1), "the old model still runs"
    staged = read_staged(tmp_path)
    assert staged is not None and staged == restarts[0]
    assert staged.classes == ["car", "stall"] and staged.violations == {"stall": "street_stall"}
    assert staged.identity == ModelIdentity("m", "1", 7) and staged.card.is_file()
    assert updater.step() is False and len(restarts) == 1, "staged once, not again on every check"
    # without a restart hook (tests, tools): refused and reported, as before
    plain = ModelUpdater(
        RangedStore(data), tmp_path / "plain", swapper, threading.Event(),
        loader=lambda card: Fixed(["car", "stall"], 0.2),
    )  # fmt: skip
    plain.assign([target])
    plain.step()
    assert plain.health().state == "failed" and "needs a restart" in (plain.health().error or "")
    assert read_staged(tmp_path / "plain") is None


ZONE = {
    "id": "z",
    "place": "310101001001001",
    "polygon": [[0, 0], [1, 0], [1, 1]],
    "rules": {"illegal_parking": {"dwell_s": 30}},
}


def test_a_model_whose_card_maps_classes_the_rules_do_not_is_staged_too(tmp_path: Path) -> None:
    """The same class list (the demo model restricted by detector.classes to its vehicles), but the new
    card maps stall: a swap would leave stalls unmapped, so it is staged for a restart."""
    import threading

    from pipeline.model_updates import ModelUpdater, read_staged

    data = b"stand-in onnx" * 10
    classes = ["car", "stall"]
    swapper = SwappableDetector(Fixed(classes, 0.1), ModelIdentity("yaml", "1", None))
    restarts: list[Any] = []

    def updater(folder: Path, violations: dict[str, str]) -> ModelUpdater:
        target = model(data).model_copy(update={"card": {"violations": violations}})
        found = ModelUpdater(
            RangedStore(data), folder, swapper, threading.Event(), loader=lambda card: Fixed(classes, 0.2),
            on_new_classes=restarts.append, mapped_classes=frozenset({"car"}),
        )  # fmt: skip
        found.assign([target])
        found.step()
        return found

    updater(tmp_path / "a", {"car": "illegal_parking", "stall": "street_stall"})
    assert len(restarts) == 1 and read_staged(tmp_path / "a") is not None and swapper.swaps == 0
    updater(tmp_path / "b", {"car": "illegal_parking"})  # nothing new mapped: an ordinary hot swap
    assert len(restarts) == 1 and read_staged(tmp_path / "b") is None
    swapper.detect_batch([np.zeros((4, 4, 3), np.uint8)])
    assert swapper.swaps == 1


def test_the_staged_model_maps_its_new_classes_with_its_card(tmp_path: Path) -> None:
    from pipeline.config import DaemonConfig
    from pipeline.daemon import config_for_staged
    from pipeline.model_updates import StagedModel

    card = tmp_path / "m.yaml"
    card.write_text("name: m\n", encoding="utf-8")
    config = DaemonConfig.model_validate(
        {
            "detector": {
                "model": str(card),
                "classes": {"car": "illegal_parking", "dog": "illegal_parking"},
                "confidence": 0.4,
            },
            "store": {"url": "http://store", "device_key_file": str(tmp_path / "key")},
            "cameras": [{"id": "c", "url": "x.mp4", "sample": {"mode": "fps", "fps": 2}, "zones": [ZONE]}],
        }
    )
    staged = StagedModel(
        card, ModelIdentity("m", "2", 5), ["car", "stall", "garbage"],
        {"stall": "street_stall", "garbage": "exposed_garbage", "car": "ignored: configured"},
    )  # fmt: skip
    mapped = config_for_staged(config, staged).detector
    assert mapped.violation_of == {
        "car": "illegal_parking",
        "stall": "street_stall",
        "garbage": "exposed_garbage",
    }
    assert mapped.model == card and mapped.confidence is None
