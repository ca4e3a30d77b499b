"""Camera snapshots for the zone editor: now and then an analysed frame, people pixelated, offered to the
store-sync thread for upload as the camera's latest view.

Snapshots are redacted "persons only" whatever a camera's evidence redaction: the editor is for drawing
zones, which needs the whole scene sharp (kerbs, bays, pavement edges), and a snapshot is replaced every
``store.snapshot_s``, shown only to the operators who edit zones and never attached to a case. People are
taken at ``evidence.person_confidence`` (below the rules' threshold), so faint ones are pixelated too.

When a snapshot is sent (:class:`SnapshotPolicy`): on a camera's first frame; then every ``store.snapshot_s``
the frame is compared with the last one sent (a 32x18 grey thumbnail), and a new one goes when the picture
changed (the camera was moved or refocused, a scene cut: a mean difference of at least
:data:`CHANGE_LEVELS` grey levels), or ``store.snapshot_unchanged_s`` after the last one whatever the
picture. People and traffic passing a fixed camera change the thumbnail by 4-8 levels (measured on
frames spread over vtest.avi's 80 s), a moved camera by 35-60 (the car-detection clip's cuts): a still
scene costs the store one upload per ``snapshot_unchanged_s``, not one a minute, and the zone editor's
frame is never older than that (it shows its time).
"""

from __future__ import annotations

import logging
import time
from collections.abc import Sequence
from dataclasses import dataclass

import cv2
import numpy as np
import numpy.typing as npt

from pipeline.metrics import DaemonMetrics
from pipeline.redaction import person_boxes
from pipeline.stages import Analysed
from pipeline.store_sync import StoreSync, encode_snapshot
from pipeline.substream import full_view

log = logging.getLogger(__name__)

CHANGE_LEVELS = 12.0  # mean absolute difference of the grey thumbnails (0-255) that counts as a new picture
THUMB_WH = (32, 18)


def thumbnail(frame_bgr: npt.NDArray[np.uint8]) -> npt.NDArray[np.int16]:
    """The picture at 32x18 in grey: enough to tell a moved camera from people walking by."""
    grey = frame_bgr if frame_bgr.ndim == 2 else cv2.cvtColor(frame_bgr, cv2.COLOR_BGR2GRAY)
    return np.asarray(cv2.resize(grey, THUMB_WH, interpolation=cv2.INTER_AREA), np.int16)


@dataclass
class _Sent:
    at: float  # monotonic time of the last snapshot sent
    thumb: npt.NDArray[np.int16]
    checked: float  # when the picture was last compared with it


class SnapshotPolicy:
    """Which frames become snapshots (see the module docstring): a camera's first; then, looked at every
    ``every_s``, one whose picture changed or that comes ``unchanged_s`` after the last one sent.
    ``every_s`` 0 turns snapshots off; ``unchanged_s`` at or below ``every_s`` sends one every ``every_s``."""

    def __init__(self, every_s: float, unchanged_s: float, change_levels: float = CHANGE_LEVELS) -> None:
        self.every_s = every_s
        self.unchanged_s = unchanged_s
        self.change_levels = change_levels
        self._sent: dict[str, _Sent] = {}

    def due(self, camera_id: str, now: float) -> bool:
        """Whether a frame of this camera is to be looked at now (cheap: no pixels)."""
        if self.every_s <= 0:
            return False
        sent = self._sent.get(camera_id)
        return sent is None or now >= sent.checked + self.every_s

    def decide(self, camera_id: str, frame_bgr: npt.NDArray[np.uint8], now: float) -> bool:
        """Whether this frame is to be sent (and then it counts as sent); call when :meth:`due`."""
        if not self.due(camera_id, now):
            return False
        sent = self._sent.get(camera_id)
        if sent is not None and now < sent.at + self.unchanged_s:
            sent.checked = now
            thumb = thumbnail(frame_bgr)
            if float(np.abs(thumb - sent.thumb).mean()) < self.change_levels:
                return False
            self._sent[camera_id] = _Sent(now, thumb, now)
            return True
        self._sent[camera_id] = _Sent(now, thumbnail(frame_bgr), now)
        return True


class Snapshots:
    """The rules thread's snapshots: :class:`SnapshotPolicy` picks the frames; 0 turns them off."""

    def __init__(
        self,
        store_sync: StoreSync,
        class_names: Sequence[str],
        metrics: DaemonMetrics,
        *,
        every_s: float,
        blur_persons: bool,
        unchanged_s: float = 0.0,
    ) -> None:
        self.store_sync = store_sync
        self.class_names = class_names
        self.metrics = metrics
        self.policy = SnapshotPolicy(every_s, unchanged_s)
        self.blur_persons = blur_persons

    def maybe_offer(self, item: Analysed) -> None:
        if item.carried:  # zone gating: its people were found on an earlier frame; wait for a fresh one
            return
        if not self.policy.decide(item.camera_id, item.frame.image, time.monotonic()):
            return
        try:
            persons = item.persons_xyxy
            if persons is None:
                persons = person_boxes(item.detections, self.class_names)
            view = full_view(item.frame.image, item.frame.full, item.detections, persons)
            shown = view.persons_xyxy if view.persons_xyxy is not None else persons
            jpeg = encode_snapshot(view.image, shown, blur=self.blur_persons)
        except Exception:
            self.metrics.stage_errors.labels("snapshot").inc()
            log.exception("camera %s: snapshot not encoded", item.camera_id)
            return
        self.store_sync.offer_snapshot(item.camera_id, jpeg)
