"""The false-alarm memory on the edge: detections that match a suppression from the store (an operator
voided the same thing at the same spot as a false positive) are dropped before the rules, so they never open
an incident.

A detection matches a suppression when all hold:

- same camera, and the detection's anchor lies in the suppression's zone (the zone's own polygon and anchor,
  the same mask lookup as the rules: :class:`pipeline.zones.CameraZones`);
- same violation type (the class's ``detector.classes`` mapping; for ``unknown_object``, the zone's
  ``static_change.report_as``), and the same class when the suppression names one;
- IoU with the suppression's box (normalised, scaled to the frame) >= ``iou_min`` (default 0.5, the
  ``incidents.suppression_iou`` setting): a box that overlaps less is another object, or the same kind of
  object elsewhere in the zone, and is judged as usual.

So a suppression never hides another class, nor the same class elsewhere in the zone. For ``unknown_object``
(the static-change detector's class) the region is also handed to ``absorb`` so the detector makes it part
of the zone's reference instead of reporting it every frame.

Thread safety: :meth:`SuppressionFilter.replace` is called from the store-sync thread, :meth:`apply` from the
rules thread; the per-camera table is swapped as a whole under a lock.
"""

from __future__ import annotations

import datetime as dt
import logging
import threading
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass

import numpy as np
import numpy.typing as npt

from contract.device_config import Suppression
from detector.boxes import box_iou_batch
from detector.detections import Detections
from pipeline.config import ZoneConfig
from pipeline.metrics import DaemonMetrics
from pipeline.zones import CameraZones

log = logging.getLogger(__name__)

UNKNOWN_OBJECT = "unknown_object"  # the static-change detector's class (design decision 1)
DEFAULT_IOU = 0.5

# (camera_id, zone_id, box_xyxy_px) -> None: the camera's static-change detector absorbs the region.
AbsorbHook = Callable[[str, str, npt.NDArray[np.float32]], None]


@dataclass(frozen=True, slots=True)
class _CameraTable:
    """One camera's unexpired suppressions as arrays (M rows)."""

    ids: tuple[int, ...]
    zone_ids: tuple[str, ...]
    violation_types: tuple[str, ...]
    class_names: tuple[str | None, ...]
    boxes: npt.NDArray[np.float64]  # (M, 4) normalised x1 y1 x2 y2
    expires_at: tuple[dt.datetime, ...]


def _table(rows: Sequence[Suppression]) -> _CameraTable:
    return _CameraTable(
        ids=tuple(r.id for r in rows),
        zone_ids=tuple(r.zone for r in rows),
        violation_types=tuple(r.violation_type for r in rows),
        class_names=tuple(r.class_name for r in rows),
        boxes=np.array([r.box for r in rows], np.float64).reshape(-1, 4),
        expires_at=tuple(r.expires_at for r in rows),
    )


class SuppressionFilter:
    """Drops detections that match a suppression; counts them per camera, zone and violation type.

    Args:
        class_names: the model's class names (class id = index); id ``len(class_names)`` is
            ``unknown_object`` when the list does not name it (design decision 1).
        violation_of: class name -> violation type (``detector.violation_of``).
        metrics: the daemon's metrics (``streetwatch_detections_suppressed_total``).
        iou_min: the least IoU with a suppression's box that makes a detection the same false alarm.
        absorb: called for each dropped ``unknown_object`` detection (the static-change detector's reference).
        clock: the wall clock (suppressions expire on the store's clock, not on a file's stream time).
    """

    def __init__(
        self,
        class_names: Sequence[str],
        violation_of: Mapping[str, str],
        metrics: DaemonMetrics,
        *,
        iou_min: float = DEFAULT_IOU,
        absorb: AbsorbHook | None = None,
        clock: Callable[[], dt.datetime] | None = None,
    ) -> None:
        names = list(class_names)
        if UNKNOWN_OBJECT not in names:
            names.append(UNKNOWN_OBJECT)
        self.class_names = tuple(names)
        self.violation_of = dict(violation_of)
        self.metrics = metrics
        self.iou_min = iou_min
        self.absorb = absorb
        self.clock = clock or (lambda: dt.datetime.now(dt.UTC))
        self._lock = threading.Lock()
        self._tables: dict[str, _CameraTable] = {}
        self._zones: dict[str, tuple[tuple[ZoneConfig, ...], CameraZones]] = {}  # rules thread only

    def replace(self, suppressions: Sequence[Suppression]) -> None:
        """From the store-sync thread: the store's current list (this box's cameras) replaces the old."""
        by_camera: dict[str, list[Suppression]] = {}
        for row in suppressions:
            by_camera.setdefault(row.camera, []).append(row)
        tables = {camera: _table(rows) for camera, rows in by_camera.items()}
        with self._lock:
            self._tables = tables
        log.info("false-alarm memory: %d suppression(s) on %d camera(s)", len(suppressions), len(tables))

    def count(self, camera_id: str) -> int:
        with self._lock:
            table = self._tables.get(camera_id)
        return 0 if table is None else len(table.ids)

    def apply(
        self,
        camera_id: str,
        detections: Detections,
        frame_hw: tuple[int, int],
        zones: Sequence[ZoneConfig],
    ) -> Detections:
        """``detections`` without those matching one of the camera's unexpired suppressions."""
        with self._lock:
            table = self._tables.get(camera_id)
        if table is None or not len(detections):
            return detections
        matched = self._matches(camera_id, table, detections, frame_hw, tuple(zones))
        if matched is None:
            return detections
        dropped: npt.NDArray[np.bool_] = np.asarray(matched.any(axis=1), np.bool_)
        if not dropped.any():
            return detections
        self._dropped(camera_id, table, detections, matched, dropped)
        return detections[~dropped]

    def _matches(
        self,
        camera_id: str,
        table: _CameraTable,
        detections: Detections,
        frame_hw: tuple[int, int],
        zones: tuple[ZoneConfig, ...],
    ) -> npt.NDArray[np.bool_] | None:
        """(N, M) bool: detection n is the false alarm of suppression m; None when none can apply."""
        now = self.clock()
        zone_index = {zone.id: i for i, zone in enumerate(zones)}
        live = [
            m for m in range(len(table.ids)) if table.expires_at[m] > now and table.zone_ids[m] in zone_index
        ]
        if not live:
            return None
        inside = self._camera_zones(camera_id, zones).at(frame_hw).membership(detections.xyxy)  # (N, Z)
        h, w = frame_hw
        boxes_px = table.boxes * np.array([w, h, w, h], np.float64)
        iou = box_iou_batch(detections.xyxy, boxes_px)  # (N, M)
        class_ids, row_class = np.unique(detections.class_id, return_inverse=True)
        names = [self._class_name(int(c)) for c in class_ids.tolist()]
        matched = np.zeros((len(detections), len(table.ids)), np.bool_)
        for m in live:
            z = zone_index[table.zone_ids[m]]
            kind = (table.violation_types[m], table.class_names[m])
            same_kind = np.array([self._same_kind(name, zones[z], *kind) for name in names], np.bool_)
            matched[:, m] = inside[:, z] & same_kind[row_class] & (iou[:, m] >= self.iou_min)
        return matched

    def _same_kind(self, name: str, zone: ZoneConfig, violation: str, class_name: str | None) -> bool:
        if class_name is not None and name != class_name:
            return False
        return self._violation(name, zone) == violation

    def _violation(self, name: str, zone: ZoneConfig) -> str | None:
        mapped = self.violation_of.get(name)
        if mapped is None and name == UNKNOWN_OBJECT:
            # the zone's implicit static-change rule: unknown_object reported as its report_as
            return zone.static_change.report_as if zone.static_change is not None else UNKNOWN_OBJECT
        return mapped

    def _class_name(self, class_id: int) -> str:
        names = self.class_names
        return names[class_id] if 0 <= class_id < len(names) else str(class_id)

    def _camera_zones(self, camera_id: str, zones: tuple[ZoneConfig, ...]) -> CameraZones:
        cached = self._zones.get(camera_id)
        if cached is None or cached[0] != zones:
            cached = (zones, CameraZones(camera_id, zones))
            self._zones[camera_id] = cached
        return cached[1]

    def _dropped(
        self,
        camera_id: str,
        table: _CameraTable,
        detections: Detections,
        matched: npt.NDArray[np.bool_],
        dropped: npt.NDArray[np.bool_],
    ) -> None:
        for n in np.flatnonzero(dropped).tolist():
            m = int(np.argmax(matched[n]))  # the first suppression it matches names the zone and type
            zone_id, violation = table.zone_ids[m], table.violation_types[m]
            self.metrics.detections_suppressed.labels(camera_id, zone_id, violation).inc()
            if self.absorb is not None and self._class_name(int(detections.class_id[n])) == UNKNOWN_OBJECT:
                try:
                    self.absorb(camera_id, zone_id, detections.xyxy[n].copy())
                except Exception:  # the detection is dropped either way
                    log.exception(
                        "camera %s zone %s: absorbing a suppressed region failed", camera_id, zone_id
                    )
