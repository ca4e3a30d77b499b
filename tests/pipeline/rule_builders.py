"""Small builders for the zone, tracker and incident tests: configurations, detections and frame feeds."""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterable, Sequence
from typing import Any

import numpy as np

from detector.detections import Detections
from pipeline.config import DaemonConfig
from pipeline.incidents import IncidentEvent, RuleEngine

CLASS_NAMES = ["person", "car", "truck", "bus"]
PERSON, CAR, TRUCK, BUS = range(4)
CLASSES = {"car": "illegal_parking", "truck": "illegal_parking", "bus": "illegal_parking"}
FRAME_HW = (1080, 1920)
FULL = [[0.0, 0.0], [1.0, 0.0], [1.0, 1.0], [0.0, 1.0]]
#: Monday 2024-05-06 02:00 UTC = 10:00 in Asia/Shanghai (the default camera time zone).
T0 = dt.datetime(2024, 5, 6, 2, 0, tzinfo=dt.UTC)

Box = tuple[float, float, float, float]
PARKED: Box = (800.0, 500.0, 1000.0, 620.0)  # a car-sized box in a 1920x1080 frame


def zone(
    zone_id: str = "z1",
    *,
    place: str = "p1",
    polygon: Sequence[Sequence[float]] = FULL,
    rules: dict[str, dict[str, Any]] | None = None,
    **extra: Any,
) -> dict[str, Any]:
    return {
        "id": zone_id,
        "place": place,
        "polygon": [list(p) for p in polygon],
        "rules": rules if rules is not None else {"illegal_parking": {"dwell_s": 30}},
        **extra,
    }


def camera(
    camera_id: str = "cam", *, zones: list[dict[str, Any]] | None = None, **extra: Any
) -> dict[str, Any]:
    return {"id": camera_id, "url": f"{camera_id}.mp4", "zones": zones or [zone()], **extra}


def make_config(
    *,
    cameras: list[dict[str, Any]] | None = None,
    classes: dict[str, str] | None = None,
    **incidents: Any,
) -> DaemonConfig:
    return DaemonConfig.model_validate(
        {
            "detector": {"model": "models/yolox-nano-coco.yaml", "classes": classes or CLASSES},
            "store": {"url": "http://127.0.0.1:8000", "device_key_file": "secrets/device.key"},
            "cameras": cameras or [camera()],
            "incidents": incidents,
        }
    )


def make_engine(**kwargs: Any) -> RuleEngine:
    return RuleEngine(make_config(**kwargs), CLASS_NAMES)


def make_detections(
    boxes: Sequence[Box] = (), class_id: int | Sequence[int] = CAR, confidence: float | Sequence[float] = 0.9
) -> Detections:
    n = len(boxes)
    return Detections(
        xyxy=np.asarray(boxes, np.float32).reshape(n, 4),
        confidence=np.broadcast_to(np.asarray(confidence, np.float32), (n,)).copy(),
        class_id=np.broadcast_to(np.asarray(class_id, np.int64), (n,)).copy(),
    )


def at(seconds: float) -> dt.datetime:
    return T0 + dt.timedelta(seconds=seconds)


def feed(
    engine: RuleEngine,
    frames: Iterable[tuple[float, Detections]],
    *,
    camera_id: str = "cam",
    frame_hw: tuple[int, int] = FRAME_HW,
    start: dt.datetime = T0,
) -> list[IncidentEvent]:
    """Run ``(seconds after start, detections)`` frames through ``engine``; all events in order."""
    events: list[IncidentEvent] = []
    for seconds, detections in frames:
        events.extend(engine.update(camera_id, start + dt.timedelta(seconds=seconds), detections, frame_hw))
    return events


def parked(
    seconds: Iterable[float], box: Box = PARKED, class_id: int = CAR
) -> list[tuple[float, Detections]]:
    """A parked object seen at each of ``seconds``."""
    return [(s, make_detections([box], class_id)) for s in seconds]


def kinds(events: Iterable[IncidentEvent], kind: str) -> list[IncidentEvent]:
    return [e for e in events if e.kind == kind]


def offset_s(when: dt.datetime, start: dt.datetime = T0) -> float:
    return (when - start).total_seconds()
