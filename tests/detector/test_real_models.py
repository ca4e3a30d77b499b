"""The detector on real footage with real models: what a user of a city camera relies on."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import numpy as np
import numpy.typing as npt
import pytest

from detector import Detections, Detector
from detector.boxes import box_iou_batch
from tests.conftest import read_frames

PERSON, CAR, BUS, TRUCK = 0, 2, 5, 7
VEHICLES = [CAR, BUS, TRUCK]
# The white van parked at the top right of vtest.avi for the whole clip (frame pixels, x1 y1 x2 y2).
VTEST_VAN = np.array([652, 44, 722, 100], np.float32)


@contextmanager
def at_confidence(value: float, *detectors: Detector) -> Iterator[None]:
    """Lower the threshold of shared (module-scoped) detectors for one test only."""
    saved = [d.confidence for d in detectors]
    for d in detectors:
        d.confidence = value
    try:
        yield
    finally:
        for d, old in zip(detectors, saved, strict=True):
            d.confidence = old


@pytest.fixture(scope="module")
def yolov8(yolov8_int8: Path) -> Detector:
    return Detector(yolov8_int8)


@pytest.fixture(scope="module")
def yolox(yolox_card: Path) -> Detector:
    return Detector(yolox_card)


@pytest.fixture(params=["yolov8", "yolox"])
def any_detector(request: pytest.FixtureRequest) -> Detector:
    detector: Detector = request.getfixturevalue(request.param)
    return detector


def test_vtest_parked_van_found_as_car_or_truck(
    any_detector: Detector, vtest_frames: dict[int, np.ndarray]
) -> None:
    for index, frame in vtest_frames.items():
        found = any_detector(frame)
        vehicles = found[np.isin(found.class_id, [CAR, TRUCK])]
        best = box_iou_batch(VTEST_VAN[None], vehicles.xyxy).max(initial=0.0)
        assert best >= 0.8, f"frame {index}: parked van not found (best IoU {best:.2f})"


def test_vtest_several_persons_on_the_road(
    any_detector: Detector, vtest_frames: dict[int, np.ndarray]
) -> None:
    for index, frame in vtest_frames.items():
        found = any_detector(frame)
        persons = found[found.class_id == PERSON]
        # Pedestrians' feet are on the road/pavement band, below the car park and the buildings.
        on_road = persons[(persons.xyxy[:, 3] > 180) & (persons.xyxy[:, 3] < 520)]
        assert len(on_road) >= 3, f"frame {index}: {len(on_road)} persons on the road"
        heights = on_road.xyxy[:, 3] - on_road.xyxy[:, 1]
        assert np.all((heights > 40) & (heights < 160)), "person boxes have a pedestrian's size"


def vehicle_frames(detector: Detector, frames: dict[int, np.ndarray]) -> set[int]:
    return {i for i, f in frames.items() if np.isin(detector(f).class_id, VEHICLES).any()}


@pytest.fixture(scope="module")
def car_frames(car_video: Path) -> dict[int, np.ndarray]:
    """Every third frame of car-detection.mp4 (12.5 fps, 375 frames)."""
    return read_frames(car_video, list(range(0, 375, 3)))


# Frame ranges of car-detection.mp4, checked by eye: a car drives through the view in each passage;
# the empty stretches show only the car park's tarmac and markings.
CAR_PASSAGES = [(60, 102), (183, 234), (336, 348)]
EMPTY_STRETCHES = [(0, 50), (126, 175), (252, 315)]


def test_car_detection_cars_found_when_in_view(
    any_detector: Detector, car_frames: dict[int, np.ndarray]
) -> None:
    with at_confidence(0.2, any_detector):
        hits = vehicle_frames(any_detector, car_frames)
    for first, last in CAR_PASSAGES:
        assert any(first <= i <= last for i in hits), (
            f"no vehicle found while a car passes (frames {first}-{last})"
        )
    for first, last in EMPTY_STRETCHES:
        wrong = sorted(i for i in hits if first <= i <= last)
        assert not wrong, f"vehicles reported on an empty car park at frames {wrong}"


def matched(a: Detections, b: Detections, group: dict[int, int]) -> npt.NDArray[np.bool_]:
    """Which boxes of ``a`` have a box of ``b`` in the same class group with IoU >= 0.5."""
    if len(a) == 0:
        return np.zeros(0, bool)
    if len(b) == 0:
        return np.zeros(len(a), bool)
    same = np.array([[group.get(int(x), x) == group.get(int(y), y) for y in b.class_id] for x in a.class_id])
    return ((box_iou_batch(a.xyxy, b.xyxy) >= 0.5) & same).any(axis=1)


def test_yolox_finds_the_same_objects_as_yolov8(
    yolov8: Detector, yolox: Detector, vtest_frames: dict[int, np.ndarray]
) -> None:
    group = {CAR: CAR, TRUCK: CAR, BUS: CAR}  # a van is "car" to one model and "truck" to the other
    # Each model's confident boxes (>= 0.6) must be among the other model's boxes above 0.05:
    # the two models agree on the objects, not on exact scores.
    for index, frame in vtest_frames.items():
        with at_confidence(0.05, yolov8, yolox):
            a, b = yolov8(frame), yolox(frame)
        a, b = a[np.isin(a.class_id, [PERSON, *VEHICLES])], b[np.isin(b.class_id, [PERSON, *VEHICLES])]
        confident_a, confident_b = a[a.confidence >= 0.6], b[b.confidence >= 0.6]
        assert matched(confident_a, b, group).all(), f"frame {index}: YOLOX missed a confident YOLOv8 box"
        assert matched(confident_b, a, group).all(), f"frame {index}: YOLOv8 missed a confident YOLOX box"
        assert len(confident_a) >= 3 and len(confident_b) >= 3


def test_batch_call_equals_single_calls_on_real_frames(
    yolox: Detector, vtest_frames: dict[int, np.ndarray]
) -> None:
    frames = list(vtest_frames.values())[:3]
    for single, batched in zip((yolox(f) for f in frames), yolox.detect_batch(frames), strict=True):
        np.testing.assert_array_equal(single.xyxy, batched.xyxy)
        np.testing.assert_array_equal(single.class_id, batched.class_id)
