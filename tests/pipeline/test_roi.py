"""Zone-ROI inference: the detector sees the crop of the camera's zones, boxes come back to the frame.

Real footage: vtest.avi (the van parked at the top right) through the real YOLOX-nano detector.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import av
import numpy as np
import pytest
from pydantic import ValidationError

from detector.card import InputSpec
from detector.detections import Detections
from detector.preprocess import Preprocessor
from pipeline.config import CameraConfig, DaemonConfig, ZoneConfig
from pipeline.model_input import detector_frame
from pipeline.roi import crop_max_scale, crop_to_fit, pixel_box, zone_roi
from pipeline.scheduler import to_full_frame
from pipeline.sources import CameraSource, iter_samples

VAN_ZONE = [[0.82, 0.05], [1.0, 0.05], [1.0, 0.2], [0.82, 0.2]]


def zone(polygon: list[list[float]], zone_id: str = "z") -> ZoneConfig:
    return ZoneConfig.model_validate(
        {"id": zone_id, "place": "p", "polygon": polygon, "rules": {"illegal_parking": {"dwell_s": 30}}}
    )


def test_the_crop_holds_every_zone_plus_a_margin() -> None:
    rect = zone_roi([zone(VAN_ZONE), zone([[0.5, 0.1], [0.6, 0.1], [0.6, 0.3]], "b")])
    assert rect == pytest.approx((0.45, 0.0, 1.0, 0.35))
    assert zone_roi([zone([[0, 0], [1, 0], [1, 1], [0, 1]])]) is None  # the whole frame: nothing to gain
    assert zone_roi([zone([[0.0, 0.0], [0.9, 0.0], [0.9, 0.9]])]) is None  # most of it: neither
    assert pixel_box((0.45, 0.0, 1.0, 0.35), 768, 576) == (344, 0, 768, 202)
    x0, y0, x1, y1 = pixel_box((0.1001, 0.2001, 0.3001, 0.4001), 767, 575)
    assert x0 % 2 == y0 % 2 == 0 and x1 > x0 and y1 > y0 and x1 <= 767 and y1 <= 575


def test_crop_converts_only_the_crop_and_matches_a_full_conversion(vtest_path: Path) -> None:
    with av.open(str(vtest_path)) as container:
        frame = next(container.decode(video=0)).reformat(format="yuv420p")
    box = (344, 0, 768, 202)
    full = frame.to_ndarray(format="bgr24")
    crop = crop_to_fit(frame, box, (640, 640))
    assert crop.shape == (202, 424, 3)  # smaller than the input: never enlarged
    assert float(np.mean(np.abs(crop.astype(np.int16) - full[0:202, 344:768].astype(np.int16)))) < 3.0
    small = crop_to_fit(frame, box, (100, 100))
    assert small.shape[1] == 100 and small.shape[0] == round(202 * 100 / 424)


def camera(url: Path, **fields: Any) -> CameraConfig:
    values: dict[str, Any] = {
        "id": "vtest",
        "url": str(url),
        "zones": [
            {"id": "z", "place": "p", "polygon": VAN_ZONE, "rules": {"illegal_parking": {"dwell_s": 30}}}
        ],
        "skip_unchanged": False,
        "sample": {"mode": "fps", "fps": 0.5},
    }
    values.update(fields)
    return CameraConfig.model_validate(values)


def six_samples(*configs: CameraConfig, input_hw: tuple[int, int]) -> list[list[Any]]:
    """The first six samples of each camera, read side by side."""
    sources = [CameraSource(config, input_hw=input_hw) for config in configs]
    for source in sources:
        source.start()
    try:
        return [list(iter_samples(source, timeout=30))[:6] for source in sources]
    finally:
        for source in sources:
            source.stop()


def assert_van_found_alike(detector: Any, plain: list[Any], roi: list[Any], cap: float | None) -> None:
    """In at least four frames the whole frame shows the parked van, and wherever it does, the crop (shown
    to the model enlarged at most ``cap`` times) finds the same vehicle in frame pixels."""
    car_ids = [detector.class_names.index(name) for name in ("car", "truck", "bus")]
    found = 0
    for a, b in zip(plain, roi, strict=True):
        da = to_full_frame(detector.detect_batch([detector_frame(a)])[0], a)
        db = to_full_frame(detector.detect_batch([detector_frame(b)], max_scale=[cap])[0], b)
        van_a = vehicles_in(da, car_ids, (590, 0, 768, 144))
        van_b = vehicles_in(db, car_ids, (590, 0, 768, 144))
        if len(van_a):
            found += 1
            best = max(iou(box, other) for box in van_a for other in van_b) if len(van_b) else 0.0
            assert best > 0.6, (van_a, van_b)  # the same vehicle, in frame pixels, from the crop
    assert found >= 4


def test_the_van_is_found_in_the_crop_where_it_is_in_the_whole_frame(
    vtest_path: Path, yolox_card: Path
) -> None:
    from detector import Detector

    detector = Detector(yolox_card)
    input_hw = detector.card.input.size_hw if detector.card else (416, 416)
    plain, roi = six_samples(camera(vtest_path), camera(vtest_path, zone_roi=True), input_hw=input_hw)
    assert all(f.small_box is None for f in plain)
    assert all(f.small_box == (590, 0, 768, 144) for f in roi)  # the van zone + 5% of the frame each side
    assert all(f.small is not None and f.small.shape[:2] == (144, 178) for f in roi)  # at stream resolution
    assert_van_found_alike(detector, plain, roi, None)


def test_the_van_is_found_in_the_crop_shown_at_its_own_pixels(vtest_path: Path, yolox_card: Path) -> None:
    """zone_roi_scale native: the crop is not enlarged (what a model of dynamic input size then runs on,
    at a fraction of the cost); the fixed-size YOLOX pads it instead, and still finds the parked van where
    the whole frame shows it."""
    from detector import Detector

    detector = Detector(yolox_card)
    native = camera(vtest_path, zone_roi=True, zone_roi_scale="native")
    plain, roi = six_samples(camera(vtest_path), native, input_hw=(416, 416))
    assert all(crop_max_scale(native, b, detector) == 1.0 for b in roi)
    assert_van_found_alike(detector, plain, roi, 1.0)


class Sample:
    """A sample as the scheduler sees it: a zone-ROI crop (``small_box``) or a whole frame."""

    def __init__(self, small_box: tuple[int, int, int, int] | None) -> None:
        self.small = np.zeros((144, 178, 3), np.uint8)
        self.small_box = small_box


class WithInput:
    def __init__(self, dynamic: bool | None) -> None:
        self.preprocessor = (
            None if dynamic is None else Preprocessor(InputSpec(size_hw=(384, 640), dynamic=dynamic))
        )


@pytest.mark.parametrize(
    ("scale", "dynamic", "expected"),
    [
        ("auto", True, 1.0),  # a dynamic model runs the crop at its own size: cheaper
        ("auto", False, None),  # a fixed one fills its input: the same cost, objects larger
        ("auto", None, None),  # a stand-in without letterboxing
        ("native", False, 1.0),
        ("fill", True, None),
    ],
)
def test_how_large_a_crop_may_be_made(
    tmp_path: Path, scale: str, dynamic: bool | None, expected: float | None
) -> None:
    config = camera(tmp_path / "v.mp4", zone_roi=True, zone_roi_scale=scale)
    assert crop_max_scale(config, Sample((590, 0, 768, 144)), WithInput(dynamic)) == expected  # type: ignore[arg-type]
    assert crop_max_scale(config, Sample(None), WithInput(dynamic)) is None  # type: ignore[arg-type]


def vehicles_in(d: Detections, ids: list[int], box: tuple[int, int, int, int]) -> np.ndarray:
    x0, y0, x1, y1 = box
    keep = np.isin(d.class_id, ids)
    cx = (d.xyxy[:, 0] + d.xyxy[:, 2]) / 2
    cy = (d.xyxy[:, 1] + d.xyxy[:, 3]) / 2
    keep &= (cx > x0) & (cx < x1) & (cy > y0) & (cy < y1)
    return d.xyxy[keep]


def iou(a: np.ndarray, b: np.ndarray) -> float:
    w = max(0.0, min(a[2], b[2]) - max(a[0], b[0]))
    h = max(0.0, min(a[3], b[3]) - max(a[1], b[1]))
    inter = w * h
    union = (a[2] - a[0]) * (a[3] - a[1]) + (b[2] - b[0]) * (b[3] - b[1]) - inter
    return float(inter / union) if union > 0 else 0.0


def test_zone_roi_is_refused_where_only_detected_people_are_blurred(tmp_path: Path) -> None:
    document: dict[str, Any] = {
        "detector": {"model": str(tmp_path / "m.onnx"), "classes": {"car": "illegal_parking"}},
        "store": {"url": "http://127.0.0.1:9", "device_key_file": str(tmp_path / "key")},
        "cameras": [
            camera(tmp_path / "v.mp4", zone_roi=True, redaction={"mode": "persons_only"}).model_dump()
        ],
    }
    with pytest.raises(ValidationError, match=r"cameras.0.zone_roi: .*persons_only"):
        DaemonConfig.model_validate(document)
    document["cameras"][0]["redaction"] = None
    assert DaemonConfig.model_validate(document).cameras[0].zone_roi


def test_the_daemon_lets_a_dynamic_model_run_zone_crops_at_their_own_size(tmp_path: Path) -> None:
    """The scheduler hands the cap to the detector for crops only: whole frames still fill the input."""
    from pipeline.daemon import Daemon
    from tests.pipeline.test_daemon import FakeDetector, FileSource, make_config
    from tests.pipeline.test_daemon import camera as daemon_camera

    class DynamicDetector(FakeDetector):
        def __init__(self) -> None:
            super().__init__()
            self.preprocessor = Preprocessor(InputSpec(size_hw=(384, 640), dynamic=True))  # type: ignore[assignment]
            self.caps: list[list[float | None] | None] = []
            self.inputs: list[tuple[int, ...]] = []

        def detect_batch(  # type: ignore[override]
            self, frames: Any, max_scale: list[float | None] | None = None
        ) -> list[Detections]:
            self.caps.append(None if max_scale is None else list(max_scale))
            caps = list(max_scale) if max_scale is not None else [None] * len(frames)
            for frame, cap in zip(frames, caps, strict=True):  # the input the real preprocessing makes
                self.inputs.append(self.preprocessor([frame], max_scale=[cap])[0].shape)
            return super().detect_batch(frames)

    config = make_config(
        tmp_path,
        [daemon_camera("crop", zone_roi=True), daemon_camera("whole")],
        detector={"model": str(tmp_path / "m.onnx"), "classes": {"car": "illegal_parking"}, "batch_size": 1},
    )
    crop, whole = FileSource("crop", 3, hw=(360, 640)), FileSource("whole", 3, hw=(360, 640))
    for frame in crop.frames:
        frame.small, frame.small_box = frame.image[0:144, 460:638].copy(), (460, 0, 638, 144)
    sources = {"crop": crop, "whole": whole}
    detector = DynamicDetector()
    assert Daemon(config, detector=detector, source_factory=lambda c: sources[c.id]).run() == 0
    assert sorted(map(str, detector.caps)) == ["None"] * 3 + ["[1.0]"] * 3
    assert sorted(detector.inputs) == [(1, 3, 160, 192)] * 3 + [(1, 3, 384, 640)] * 3
