"""Camera health to the case store: every camera's state every ``store.health_report_s`` in one request
(``PUT`` :data:`contract.paths.CAMERAS_HEALTH`), or one request per camera to a store that has no batch
route (older than it: 404 or 405). Best effort: the operators' device list shows it; nothing depends on it
reaching the store."""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable, Mapping

from contract import paths
from contract.health import (
    CAMERA_STATES,
    HEALTH_BATCH_MAX,
    CameraHealth,
    CameraHealthBatch,
    CameraHealthBatchResult,
    ModelHealth,
)
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
        self.batch = True  # False once the store has answered that it has no batch route

    def run(self) -> None:
        while not self.stopping.wait(self.every_s):
            self.report_all()

    def report_all(self) -> None:
        """Every registered camera's health: in batches when the store takes them, else one by one."""
        if self.batch:
            bodies = {}
            for camera_id, source in self.sources.items():
                body = None if camera_id in self._unregistered else self._body(camera_id, source)
                if body is not None:
                    bodies[camera_id] = body
            codes = list(bodies)
            for start in range(0, len(codes), HEALTH_BATCH_MAX):
                if self.stopping.is_set() or not self.batch:
                    break
                self._report_batch({code: bodies[code] for code in codes[start : start + HEALTH_BATCH_MAX]})
            if self.batch:
                return
        for camera_id, source in self.sources.items():
            if self.stopping.is_set():
                return
            if camera_id not in self._unregistered:
                self.report(camera_id, source)

    def _report_batch(self, bodies: dict[str, CameraHealth]) -> None:
        body = CameraHealthBatch(cameras=bodies)
        try:
            response = self.client.request("PUT", paths.CAMERAS_HEALTH, json=body.model_dump(mode="json"))
        except Exception as exc:  # the store is down: the outbox has the important part
            log.debug("health report of %d cameras failed: %s", len(bodies), exc)
            return
        if response.status_code in (404, 405):  # a store older than the batch route
            self.batch = False
            log.info("the case store takes camera health one camera at a time (no batch route)")
            return
        if response.status_code >= 400:
            log.debug("health report of %d cameras answered %d", len(bodies), response.status_code)
            return
        try:
            result = CameraHealthBatchResult.model_validate(response.json())
        except ValueError as exc:
            log.warning("health report: the store's answer is not a CameraHealthBatchResult: %s", exc)
            return
        for camera_id in result.unknown:
            if camera_id in bodies and camera_id not in self._unregistered:
                self._unregistered.add(camera_id)
                log.info(
                    "camera %s is not registered to this device in the case store: its health is not "
                    "reported",
                    camera_id,
                )

    def report(self, camera_id: str, source: SourceLike) -> None:
        """One camera's health in one request (a store without the batch route)."""
        body = self._body(camera_id, source)
        if body is None:
            return
        self._put_one(camera_id, body)

    def _body(self, camera_id: str, source: SourceLike) -> CameraHealth | None:
        health = source.health
        state = str(health.state)
        if state not in CAMERA_STATES:
            return None  # e.g. a file that has ended: nothing the store's states describe
        return CameraHealth.model_validate(
            {
                "state": state,
                "last_frame_at": health.last_frame_at,
                "fps": round(min(max(float(health.fps), 0.0), 1000.0), 3),
                "error": (health.last_error or None) and str(health.last_error)[:500],
                "references": dict(self.references().get(camera_id, {})),
                "model": self.model(),
            }
        )

    def _put_one(self, camera_id: str, body: CameraHealth) -> None:
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
