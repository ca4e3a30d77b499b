"""Camera health to the case store: each camera's state PUT every ``store.health_report_s`` (best effort:
the operators' device list shows it; nothing depends on it reaching the store)."""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable, Mapping

from contract import paths
from contract.health import CAMERA_STATES, CameraHealth, ModelHealth
from pipeline.protocols import SourceLike
from pipeline.zone_sync import RequestLike

log = logging.getLogger(__name__)


class CameraHealthReporter:
    """The ``health-report`` thread's work (:meth:`run`), until ``stopping`` is set."""

    def __init__(
        self,
        client: RequestLike,
        sources: Mapping[str, SourceLike],
        stopping: threading.Event,
        *,
        every_s: float,
        references: Callable[[], Mapping[str, Mapping[str, str]]] = dict,
        model: Callable[[], ModelHealth | None] = lambda: None,
    ) -> None:
        self.model = model  # the box's model rollout (pipeline.model_updates), in every camera's report
        self.client = client
        self.references = references  # camera -> static-change zone -> reference state
        self.sources = sources
        self.stopping = stopping
        self.every_s = every_s
        self._unregistered: set[str] = set()  # cameras the store does not know as this device's

    def run(self) -> None:
        while not self.stopping.wait(self.every_s):
            for camera_id, source in self.sources.items():
                if self.stopping.is_set():
                    return
                if camera_id not in self._unregistered:
                    self.report(camera_id, source)

    def report(self, camera_id: str, source: SourceLike) -> None:
        health = source.health
        state = str(health.state)
        if state not in CAMERA_STATES:
            return  # e.g. a file that has ended: nothing the store's states describe
        body = CameraHealth.model_validate(
            {
                "state": state,
                "last_frame_at": health.last_frame_at,
                "fps": round(min(max(float(health.fps), 0.0), 1000.0), 3),
                "error": (health.last_error or None) and str(health.last_error)[:500],
                "references": dict(self.references().get(camera_id, {})),
                "model": self.model(),
            }
        )
        try:
            response = self.client.request(
                "PUT", paths.camera_health(camera_id), json=body.model_dump(mode="json")
            )
        except Exception as exc:  # the store is down: the outbox has the important part
            log.debug("camera %s: health report failed: %s", camera_id, exc)
            return
        if response.status_code == 404:
            self._unregistered.add(camera_id)
            log.info(
                "camera %s is not registered to this device in the case store: its health is not reported",
                camera_id,
            )
        elif response.status_code >= 400:
            log.debug("camera %s: health report answered %d", camera_id, response.status_code)
