"""Camera snapshots for the zone editor: now and then an analysed frame, people pixelated, offered to the
store-sync thread for upload as the camera's latest view.

Snapshots are redacted "persons only" whatever a camera's evidence redaction: the editor is for drawing
zones, which needs the whole scene sharp (kerbs, bays, pavement edges), and a snapshot is replaced every
``store.snapshot_s``, shown only to the operators who edit zones and never attached to a case. People are
taken at ``evidence.person_confidence`` (below the rules' threshold), so faint ones are pixelated too.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Sequence

from pipeline.metrics import DaemonMetrics
from pipeline.redaction import person_boxes
from pipeline.stages import Analysed
from pipeline.store_sync import StoreSync, encode_snapshot
from pipeline.substream import full_view

log = logging.getLogger(__name__)


class Snapshots:
    """At most one snapshot every ``every_s`` per camera (and one on its first frame); 0 turns them off."""

    def __init__(
        self,
        store_sync: StoreSync,
        class_names: Sequence[str],
        metrics: DaemonMetrics,
        *,
        every_s: float,
        blur_persons: bool,
    ) -> None:
        self.store_sync = store_sync
        self.class_names = class_names
        self.metrics = metrics
        self.every_s = every_s
        self.blur_persons = blur_persons
        self._next: dict[str, float] = {}

    def maybe_offer(self, item: Analysed) -> None:
        now = time.monotonic()
        if item.carried:  # zone gating: its people were found on an earlier frame; wait for a fresh one
            return
        if self.every_s <= 0 or now < self._next.get(item.camera_id, 0.0):
            return
        self._next[item.camera_id] = now + self.every_s
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
