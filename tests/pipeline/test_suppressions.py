"""The daemon's false-alarm filter: a detection that matches a suppression (same camera, zone, type and
class, IoU >= 0.5) never reaches the rules; another class, or the same class elsewhere in the zone, does."""

from __future__ import annotations

import datetime as dt
from typing import Any

import httpx
import numpy as np
import numpy.typing as npt
import pytest

from contract.device_config import Suppression
from pipeline.config import CameraConfig, ZoneConfig
from pipeline.metrics import DaemonMetrics
from pipeline.suppressions import SuppressionFilter
from pipeline.zone_sync import ZoneSync
from tests.pipeline.rule_builders import (
    CAR,
    CLASS_NAMES,
    CLASSES,
    FRAME_HW,
    PERSON,
    TRUCK,
    make_detections,
    zone,
)

NOW = dt.datetime(2026, 5, 11, 1, 0, tzinfo=dt.UTC)
LEFT = [[0.0, 0.0], [0.5, 0.0], [0.5, 1.0], [0.0, 1.0]]
RIGHT = [[0.5, 0.0], [1.0, 0.0], [1.0, 1.0], [0.5, 1.0]]
ZONES = (
    ZoneConfig.model_validate(zone("lot", polygon=LEFT)),
    ZoneConfig.model_validate(zone("road", polygon=RIGHT)),
)
SIGN_BOX = (0.1, 0.4, 0.2, 0.6)  # normalised: a sign box read as a car, voided as a false positive
SIGN_PX = (192.0, 432.0, 384.0, 648.0)  # the same box in a 1920x1080 frame
UNKNOWN = len(CLASS_NAMES)  # the static-change detector's class id (design decision 1)


def suppression(**overrides: Any) -> Suppression:
    values: dict[str, Any] = {
        "id": 1,
        "camera": "cam",
        "zone": "lot",
        "violation_type": "illegal_parking",
        "class_name": "car",
        "box": SIGN_BOX,
        "expires_at": NOW + dt.timedelta(days=30),
    }
    return Suppression.model_validate(values | overrides)


def make_filter(*rows: Suppression, **kwargs: Any) -> tuple[SuppressionFilter, DaemonMetrics]:
    metrics = DaemonMetrics(["cam"])
    suppressions = SuppressionFilter(CLASS_NAMES, CLASSES, metrics, clock=lambda: NOW, **kwargs)
    suppressions.replace(list(rows) or [suppression()])
    return suppressions, metrics


def kept(suppressions: SuppressionFilter, boxes: list[tuple[float, ...]], classes: list[int]) -> list[int]:
    """Class ids of the detections that reach the rules (in input order)."""
    detections = make_detections(boxes, classes)  # type: ignore[arg-type]
    out = suppressions.apply("cam", detections, FRAME_HW, ZONES)
    return [int(c) for c in out.class_id]


def test_drops_the_remembered_false_alarm_and_counts_it() -> None:
    suppressions, metrics = make_filter()
    shifted = (200.0, 440.0, 390.0, 650.0)  # the same sign, a few pixels off: IoU about 0.9
    assert kept(suppressions, [shifted], [CAR]) == []
    labels = {"camera": "cam", "zone": "lot", "violation": "illegal_parking"}
    assert metrics.value("streetwatch_detections_suppressed_total", labels) == 1


@pytest.mark.parametrize(
    ("box", "class_id", "why"),
    [
        (SIGN_PX, TRUCK, "another class of the same type: the suppression names the car class"),
        (SIGN_PX, PERSON, "another class without a violation type"),
        ((576.0, 432.0, 864.0, 648.0), CAR, "the same class elsewhere in the zone (IoU 0)"),
        ((292.0, 432.0, 484.0, 648.0), CAR, "the same class beside the sign, overlapping it (IoU 0.32)"),
        ((1152.0, 432.0, 1344.0, 648.0), CAR, "the same class in another zone"),
    ],
)
def test_never_hides_another_class_or_the_same_class_elsewhere(
    box: tuple[float, float, float, float], class_id: int, why: str
) -> None:
    suppressions, metrics = make_filter()
    iou = _iou(box, SIGN_PX)
    if class_id == CAR and iou >= 0.5:
        pytest.fail(f"test box overlaps too much ({iou:.2f}): {why}")
    assert kept(suppressions, [box, SIGN_PX], [class_id, CAR]) == [class_id], why
    assert metrics.value("streetwatch_detections_suppressed_total", {"camera": "cam", "zone": "lot",
                         "violation": "illegal_parking"}) == 1  # fmt: skip


def test_the_suppressed_spot_in_another_zone_or_camera_is_judged() -> None:
    # The same pixels, but the suppression was made in the road zone, or on another camera.
    for row in (suppression(zone="road"), suppression(camera="cam-2"), suppression(zone="gone")):
        suppressions, _ = make_filter(row)
        assert kept(suppressions, [SIGN_PX], [CAR]) == [CAR], row


def test_a_suppression_without_a_class_covers_every_class_of_its_type() -> None:
    suppressions, _ = make_filter(suppression(class_name=None))
    assert kept(suppressions, [SIGN_PX, SIGN_PX, SIGN_PX], [CAR, TRUCK, PERSON]) == [PERSON]


def test_expired_suppressions_hide_nothing() -> None:
    suppressions, _ = make_filter(suppression(expires_at=NOW))
    assert kept(suppressions, [SIGN_PX], [CAR]) == [CAR]


def test_iou_threshold_is_configurable() -> None:
    half = (288.0, 432.0, 480.0, 648.0)  # shifted by half a width: IoU 1/3
    assert _iou(half, SIGN_PX) == pytest.approx(1 / 3)
    assert kept(make_filter()[0], [half], [CAR]) == [CAR]
    assert kept(make_filter(iou_min=0.3)[0], [half], [CAR]) == []


def test_unknown_object_is_absorbed_into_the_reference_and_dropped() -> None:
    absorbed: list[tuple[str, str, list[float]]] = []

    def absorb(camera: str, zone_id: str, box: npt.NDArray[np.float32]) -> None:
        absorbed.append((camera, zone_id, box.tolist()))

    row = suppression(violation_type="unknown_object", class_name="unknown_object")
    suppressions, metrics = make_filter(row, absorb=absorb)
    assert kept(suppressions, [SIGN_PX, SIGN_PX], [UNKNOWN, CAR]) == [CAR]
    assert absorbed == [("cam", "lot", list(SIGN_PX))]
    labels = {"camera": "cam", "zone": "lot", "violation": "unknown_object"}
    assert metrics.value("streetwatch_detections_suppressed_total", labels) == 1


def test_no_suppressions_or_no_detections_return_the_input_unchanged() -> None:
    metrics = DaemonMetrics(["cam"])
    empty = SuppressionFilter(CLASS_NAMES, CLASSES, metrics, clock=lambda: NOW)
    detections = make_detections([SIGN_PX], CAR)
    assert empty.apply("cam", detections, FRAME_HW, ZONES) is detections
    none = make_detections([])
    assert make_filter()[0].apply("cam", none, FRAME_HW, ZONES) is none


class _Answer:
    def __init__(self, document: dict[str, Any]) -> None:
        self.document = document

    def request(self, method: str, path: str, **kwargs: Any) -> httpx.Response:
        return httpx.Response(200, json=self.document, headers={"ETag": '"v1"'})


def test_zone_sync_hands_the_stores_suppressions_to_the_filter() -> None:

    camera = CameraConfig.model_validate(
        {"id": "cam", "url": "cam.mp4", "zones": [zone("lot", polygon=LEFT)]}
    )
    row = suppression().model_dump(mode="json")
    document = {"device": "box-1", "timezone": "UTC", "cameras": [], "violation_types": [],
                "suppressions": [row], "version": "v1"}  # fmt: skip
    received: list[list[Suppression]] = []
    sync = ZoneSync(_Answer(document), [camera], None, on_suppressions=received.append)
    assert sync.poll() is not None
    assert [[s.id for s in rows] for rows in received] == [[1]] and sync.suppressions[0].box == SIGN_BOX


def _iou(a: tuple[float, ...], b: tuple[float, ...]) -> float:
    from detector.boxes import box_iou_batch

    return float(box_iou_batch([a], [b])[0, 0])
