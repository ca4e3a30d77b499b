"""Zones from the case store, swapped into the rules between two frames: the store-sync thread queues what
every camera should run with, the rules thread applies the zones that changed before its next frame, so a
frame sees either the old zones or the new ones."""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING

from pipeline.config import CameraConfig, ZoneConfig
from pipeline.metrics import DaemonMetrics
from pipeline.protocols import EventLike, RulesLike
from pipeline.zone_sync import CameraZoneMap

if TYPE_CHECKING:
    from pipeline.static_changes import StaticChanges
    from pipeline.verification import Verifier

log = logging.getLogger(__name__)


def describe_zones(zones: Sequence[ZoneConfig]) -> str:
    return ", ".join(f"{z.id} ({z.place}: {', '.join(z.effective_rules)})" for z in zones) or "none"


class ZoneUpdates:
    """Pending and applied zones per camera (thread-safe)."""

    def __init__(
        self,
        cameras: Sequence[CameraConfig],
        rules: RulesLike,
        verifier: Verifier,
        metrics: DaemonMetrics,
        static: StaticChanges | None = None,
    ) -> None:
        self.rules = rules
        self.static = static
        self.verifier = verifier
        self.metrics = metrics
        self._lock = threading.Lock()
        self._pending: CameraZoneMap = {}  # written by the store-sync thread, applied by the rules
        self._applied: CameraZoneMap = {camera.id: tuple(camera.zones) for camera in cameras}

    def queue(self, zones: CameraZoneMap) -> None:
        """From the store-sync thread: the zones every camera should run with; :meth:`apply` applies the
        ones that differ."""
        with self._lock:
            for camera_id, camera_zones in zones.items():
                if self._applied.get(camera_id) != camera_zones:
                    self._pending[camera_id] = camera_zones
                else:
                    self._pending.pop(camera_id, None)

    def apply(self, on_ended: Callable[[EventLike], None]) -> None:
        """From the rules thread: replace the zones queued since the last call; the incidents that lost
        their zone end (``on_ended``). A camera whose new zones fail keeps its previous ones."""
        if not self._pending:
            return
        with self._lock:
            pending, self._pending = self._pending, {}
        for camera_id, zones in pending.items():
            try:
                events = self.rules.replace_zones(camera_id, zones)
            except Exception:
                self.metrics.stage_errors.labels("zones").inc()
                log.exception("camera %s: new zones not applied; the previous ones stay", camera_id)
                continue
            with self._lock:
                self._applied[camera_id] = zones
            self.verifier.set_zones(camera_id, zones)
            if self.static is not None:
                try:
                    self.static.replace_zones(camera_id, zones)
                except Exception:  # the rules have the new zones; static change keeps its previous ones
                    self.metrics.stage_errors.labels("zones").inc()
                    log.exception("camera %s: static-change zones not replaced", camera_id)
            for event in events:
                self.metrics.incident_events.labels(event.kind).inc()
                on_ended(event)
            log.info("camera %s: zones now %s", camera_id, describe_zones(zones))

    def zones(self, camera_id: str) -> tuple[ZoneConfig, ...]:
        """The zones ``camera_id`` runs with now."""
        with self._lock:
            return self._applied[camera_id]
