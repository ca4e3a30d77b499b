"""Static change in the daemon: each camera's model-free detector (:mod:`pipeline.static_change`) run in the
rules thread before the rules, its ``unknown_object`` detections added to the model's, its zones kept in step
with the store's, the operators' empty references handed over from the store-sync thread, and its reference
states read for health.

The detector itself is imported only when a zone uses it, so a box without static change never loads it.
"""

from __future__ import annotations

import datetime as dt
import importlib
import logging
import threading
from collections.abc import Iterable, Sequence
from pathlib import Path

import numpy as np
import numpy.typing as npt

from detector.detections import Detections
from pipeline.config import CameraConfig, ZoneConfig
from pipeline.protocols import StaticChangeFactory, StaticChangeLike, StaticZone

log = logging.getLogger(__name__)

#: What moves on a street: people and vehicles (COCO names). Their boxes, and those of every class mapped
#: to a violation (tracked objects), are never evidence of a static change.
MOVING_CLASSES = frozenset({"person", "bicycle", "car", "motorcycle", "bus", "truck"})


def static_zones(zones: Iterable[ZoneConfig]) -> list[StaticZone]:
    return [(z.id, list(z.polygon), z.static_change) for z in zones if z.static_change is not None]


def default_factory(
    camera_id: str, zones: Sequence[StaticZone], class_id: int, reference_dir: Path | None
) -> StaticChangeLike:
    # Imported by name, only where a zone uses it; typed by the StaticChangeLike protocol.
    module = importlib.import_module("pipeline.static_change")
    detector: StaticChangeLike = module.StaticChange(
        camera_id, zones, class_id=class_id, reference_dir=reference_dir
    )
    return detector


class StaticChanges:
    """Every camera's static-change detector.

    Args:
        cameras: the configured cameras (their YAML zones to start with).
        class_names: the model's classes followed by ``unknown_object`` (its id is the last).
        violation_of: model class -> violation type (tracked classes count as moving).
        reference_dir: where detectors keep their learned references (``<outbox dir>/references``).
        factory: builds a camera's detector; tests pass a stand-in.

    :meth:`detect`, :meth:`replace_zones` and :meth:`looks_like_reference` run in the rules thread;
    :meth:`offer_reference` (store-sync thread) and :meth:`states` (metrics, health) from any thread.
    """

    def __init__(
        self,
        cameras: Sequence[CameraConfig],
        class_names: Sequence[str],
        violation_of: dict[str, str],
        reference_dir: Path | None,
        factory: StaticChangeFactory | None = None,
    ) -> None:
        self.class_id = len(class_names) - 1
        moving = MOVING_CLASSES | set(violation_of)
        self.moving_ids = np.array([i for i, n in enumerate(class_names[:-1]) if n in moving], np.int64)
        self.reference_dir = reference_dir
        self.factory = factory or default_factory
        self._detectors: dict[str, StaticChangeLike] = {}
        self._lock = threading.Lock()
        self._pending: dict[tuple[str, str], npt.NDArray[np.uint8]] = {}
        self._states: dict[str, dict[str, str]] = {}
        for camera in cameras:
            self.replace_zones(camera.id, camera.zones)

    def replace_zones(self, camera_id: str, zones: Iterable[ZoneConfig]) -> None:
        """The camera's zones now (rules thread): a detector is made when a first zone uses static change."""
        wanted = static_zones(zones)
        detector = self._detectors.get(camera_id)
        if detector is not None:
            detector.replace_zones(wanted)
        elif wanted:
            self._detectors[camera_id] = self.factory(camera_id, wanted, self.class_id, self.reference_dir)
        self._record_state(camera_id)

    def offer_reference(self, camera_id: str, zone_id: str, image_bgr: npt.NDArray[np.uint8]) -> None:
        """An operator's empty reference, from the store-sync thread: set before the camera's next frame."""
        with self._lock:
            self._pending[(camera_id, zone_id)] = image_bgr

    def covers(self, camera_id: str) -> bool:
        """Whether ``camera_id`` has static change (:meth:`detect` needs its picture)."""
        return camera_id in self._detectors

    def detect(
        self,
        camera_id: str,
        frame_bgr: npt.NDArray[np.uint8],
        stream_time: dt.datetime,
        detections: Detections,
    ) -> Detections:
        """The model's ``detections`` plus the camera's static changes in this frame."""
        detector = self._detectors.get(camera_id)
        if detector is None:
            return detections
        self._apply_references(camera_id, detector)
        moving = detections.xyxy[np.isin(detections.class_id, self.moving_ids)]
        found = detector.update(frame_bgr, stream_time, np.ascontiguousarray(moving, np.float32))
        self._record_state(camera_id)
        if not len(found):
            return detections
        return Detections(
            xyxy=np.concatenate([detections.xyxy, found.xyxy]).astype(np.float32, copy=False),
            confidence=np.concatenate([detections.confidence, found.confidence]).astype(
                np.float32, copy=False
            ),
            class_id=np.concatenate([detections.class_id, np.full(len(found), self.class_id, np.int64)]),
        )

    def looks_like_reference(
        self,
        camera_id: str,
        zone_id: str,
        box_xyxy_px: npt.NDArray[np.float32],
        frame_bgr: npt.NDArray[np.uint8],
    ) -> bool | None:
        """Whether the region looks like the zone's empty reference; ``None`` without static change there."""
        detector = self._detectors.get(camera_id)
        if detector is None or zone_id not in detector.state():
            return None
        return detector.looks_like_reference(zone_id, box_xyxy_px, frame_bgr)

    def absorb(self, camera_id: str, zone_id: str, box_xyxy_px: npt.NDArray[np.float32]) -> None:
        """A suppressed false alarm (rules thread): its region becomes part of the zone's empty look."""
        detector = self._detectors.get(camera_id)
        if detector is not None and zone_id in detector.state():
            detector.absorb(zone_id, box_xyxy_px)

    def states(self) -> dict[str, dict[str, str]]:
        """Camera -> zone -> reference state (learning, learned, set, relearning)."""
        with self._lock:
            return {camera: dict(zones) for camera, zones in self._states.items() if zones}

    def _apply_references(self, camera_id: str, detector: StaticChangeLike) -> None:
        if not self._pending:
            return
        with self._lock:
            mine = [key for key in self._pending if key[0] == camera_id]
            images = [(key[1], self._pending.pop(key)) for key in mine]
        for zone_id, image in images:
            try:
                detector.set_reference(zone_id, image)
            except Exception:  # a reference that does not fit (zone gone, odd size): keep learning
                log.exception("camera %s zone %s: the operator's reference was not set", camera_id, zone_id)

    def _record_state(self, camera_id: str) -> None:
        detector = self._detectors.get(camera_id)
        state = dict(detector.state()) if detector is not None else {}
        with self._lock:
            self._states[camera_id] = state
