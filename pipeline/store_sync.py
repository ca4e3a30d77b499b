"""The daemon's one thread for configuration traffic with the case store: it polls the zones
(:class:`pipeline.zone_sync.ZoneSync`) every ``store.zone_sync_s``, downloads the empty references operators
set for static-change zones when they change, and uploads each camera's latest frame, offered by the rules
thread at most every ``store.snapshot_s`` (the zone editor draws on it).

Best effort, like health reports: a store that is down costs a log line, never a frame or a case.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable

import cv2
import numpy as np
import numpy.typing as npt

from contract import paths
from pipeline.evidence import persons_pixelated
from pipeline.zone_sync import CameraZoneMap, ReferenceMap, RequestLike, ZoneSync

OnReference = Callable[[str, str, npt.NDArray[np.uint8]], None]  # (camera, zone, BGR image)

log = logging.getLogger(__name__)

TICK_S = 0.5  # how often the thread looks for work (snapshots waiting, a poll due, a stop)
SNAPSHOT_MAX_WIDTH = 1280  # the editor needs the scene, not every pixel; keeps uploads ~100-200 kB
SNAPSHOT_QUALITY = 80


def encode_snapshot(
    frame_bgr: npt.NDArray[np.uint8], persons_xyxy: npt.NDArray[np.float32], *, blur: bool
) -> bytes:
    """The frame as a JPEG for the zone editor: ``persons_xyxy`` pixelated (when ``blur``), at most 1280 px
    wide (see :mod:`pipeline.snapshots` for why snapshots are redacted "persons only")."""
    image = persons_pixelated(frame_bgr, persons_xyxy, blur=blur)
    height, width = image.shape[:2]
    if width > SNAPSHOT_MAX_WIDTH:
        size = (SNAPSHOT_MAX_WIDTH, max(1, round(height * SNAPSHOT_MAX_WIDTH / width)))
        image = np.asarray(cv2.resize(image, size, interpolation=cv2.INTER_AREA), np.uint8)
    ok, encoded = cv2.imencode(".jpg", image, [cv2.IMWRITE_JPEG_QUALITY, SNAPSHOT_QUALITY])
    if not ok:
        raise ValueError(f"OpenCV could not encode a {width}x{height} frame as JPEG")
    return bytes(encoded.tobytes())


class StoreSync:
    """Zone polls and snapshot uploads on one thread.

    Args:
        client: the device's store client (X-Device-Key).
        zone_sync: polls zones; ``None`` when zone sync is off.
        poll_s: seconds between zone polls (the first one is at start).
        on_zones: called from this thread with the zones of every camera after a changed, valid answer.
        on_reference: called from this thread with (camera, zone, BGR image) for each operator-set reference
            that is new or changed; ``None``: references are not fetched.
    """

    def __init__(
        self,
        client: RequestLike,
        zone_sync: ZoneSync | None,
        poll_s: float,
        on_zones: Callable[[CameraZoneMap], None],
        on_reference: OnReference | None = None,
    ) -> None:
        self.client = client
        self.on_reference = on_reference
        self._references: ReferenceMap = {}  # handed to on_reference already
        self.zone_sync = zone_sync
        self.poll_s = poll_s
        self.on_zones = on_zones
        self._snapshots: dict[str, bytes] = {}  # camera -> newest JPEG not yet uploaded
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._unregistered: set[str] = set()
        self.uploaded = 0

    def offer_snapshot(self, camera_id: str, jpeg: bytes) -> None:
        """Queue ``jpeg`` as the camera's latest frame; a newer offer replaces one not yet uploaded."""
        if camera_id in self._unregistered:
            return
        with self._lock:
            self._snapshots[camera_id] = jpeg

    def start(self) -> None:
        self._stop.clear()
        self._thread = threading.Thread(target=self._run, name="store-sync", daemon=True)
        self._thread.start()

    def stop(self, timeout_s: float) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout_s)

    def _run(self) -> None:
        next_poll = time.monotonic()
        while True:
            try:
                if self.zone_sync is not None and time.monotonic() >= next_poll:
                    next_poll = time.monotonic() + self.poll_s
                    zones = self.zone_sync.poll()
                    if zones is not None:
                        self.on_zones(zones)
                    self._fetch_references()
                self._upload_snapshots()
            except Exception:  # never let configuration traffic end the thread
                log.exception("store sync step failed; trying again")
            if self._stop.wait(TICK_S):
                return

    def _fetch_references(self) -> None:
        """Download the references set or changed since the last poll; a failed one is tried next poll."""
        if self.on_reference is None or self.zone_sync is None:
            return
        for (camera_id, zone_id), sha256 in self.zone_sync.references.items():
            if self._references.get((camera_id, zone_id)) == sha256 or self._stop.is_set():
                continue
            image = self._download_reference(camera_id, zone_id, sha256)
            if image is not None:
                self.on_reference(camera_id, zone_id, image)
                self._references[(camera_id, zone_id)] = sha256

    def _download_reference(self, camera_id: str, zone_id: str, sha256: str) -> npt.NDArray[np.uint8] | None:
        where = f"camera {camera_id} zone {zone_id}: reference {sha256[:12]}"
        try:
            response = self.client.request("GET", paths.device_reference(sha256))
        except Exception as exc:
            log.debug("%s not downloaded: %s", where, exc)
            return None
        if response.status_code != 200:
            log.warning("%s: the store answered %d", where, response.status_code)
            return None
        image = cv2.imdecode(np.frombuffer(response.content, np.uint8), cv2.IMREAD_COLOR)
        if image is None:
            log.warning("%s is not an image the box can decode", where)
            return None
        log.info("%s downloaded: the zone's empty look is now the operator's", where)
        return np.asarray(image, np.uint8)

    def _upload_snapshots(self) -> None:
        with self._lock:
            waiting, self._snapshots = self._snapshots, {}
        for camera_id, jpeg in waiting.items():
            if self._stop.is_set():
                return
            try:
                response = self.client.request(
                    "PUT",
                    paths.camera_snapshot(camera_id),
                    files={"file": (f"{camera_id}.jpg", jpeg, "image/jpeg")},
                )
            except Exception as exc:  # the store is down: the next frame will be offered again
                log.debug("camera %s: snapshot upload failed: %s", camera_id, exc)
                continue
            if response.status_code == 404:
                self._unregistered.add(camera_id)
                log.info("camera %s is not this device's in the case store: no snapshots sent", camera_id)
            elif response.status_code >= 400:
                log.warning(
                    "camera %s: snapshot refused (%d): %s",
                    camera_id,
                    response.status_code,
                    response.text[:200],
                )
            else:
                self.uploaded += 1
