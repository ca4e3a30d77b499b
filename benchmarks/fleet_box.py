"""One simulated edge box of the fleet simulator (:mod:`benchmarks.bench_fleet`), built from the daemon's own
parts: the durable outbox and its pusher (reports, incident updates, evidence), the store-sync thread (zone
and configuration polling with ETags, snapshot uploads), the camera-health reporter and the verification
poll, all on one :class:`pipeline.pusher.StoreClient` as in :class:`pipeline.daemon.Daemon`. Only the
cameras and the detector are replaced: an incident driver puts what the rules stage would put.

Every request is timed by :class:`TimedClient` (a StoreClient that records kind, wall time, latency,
status and upload bytes), so the figures are those of the daemon's protocol code.
"""

from __future__ import annotations

import datetime as dt
import random
import struct
import threading
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, cast

import httpx

from contract import paths
from contract.reports import Box, CaseReport, IncidentUpdate
from pipeline.camera_health import CameraHealthReporter
from pipeline.config import StoreConfig
from pipeline.outbox import Outbox, QueuedImage
from pipeline.pusher import Pusher, StoreClient
from pipeline.snapshots import SnapshotPolicy
from pipeline.store_sync import StoreSync
from pipeline.verification import fetch_resolved
from pipeline.zone_sync import ZoneSync

if TYPE_CHECKING:
    from pipeline.protocols import SourceLike

# (kind, wall-clock start, latency ms, HTTP status or -1 for a transport error, request body bytes)
Sample = tuple[str, float, float, int, int]
KINDS = ("report", "update", "evidence", "action", "health", "snapshot", "config", "verification", "other")
FRAME_WH = (1920, 1080)


def request_kind(method: str, path: str) -> str:
    """The protocol message a request is (the fleet table's rows)."""
    if path == paths.CASES:
        return "report"
    if path == paths.INCIDENT_UPDATES:
        return "update"
    if path == paths.DEVICE_CONFIG:
        return "config"
    if path == paths.DEVICE_CASES:
        return "verification"
    if path.endswith("/evidence"):
        return "evidence"
    if "/actions/" in path:
        return "action"
    if path.endswith("/health"):  # paths.CAMERAS_HEALTH (a box's cameras) or one camera's
        return "health"
    if path.endswith("/snapshot"):
        return "snapshot"
    return "other"


class TimedClient(StoreClient):
    """The daemon's store client, recording every request into ``samples`` (list.append is atomic)."""

    def __init__(self, store: StoreConfig, samples: list[Sample]) -> None:
        super().__init__(store)
        self.samples = samples

    def request(self, method: str, path: str, **kwargs: Any) -> httpx.Response:
        kind = request_kind(method, path)
        upload = kwargs.get("files", {}).get("file")
        size = len(upload[1]) if upload else 0
        wall, began = time.time(), time.perf_counter()
        try:
            response = super().request(method, path, **kwargs)
        except httpx.TransportError:
            self.samples.append((kind, wall, (time.perf_counter() - began) * 1000, -1, size))
            raise
        self.samples.append((kind, wall, (time.perf_counter() - began) * 1000, response.status_code, size))
        return response


def unique_jpeg(data: bytes, tag: str) -> bytes:
    """``data`` with a JPEG comment segment after SOI: the same picture, distinct bytes (the store keeps
    one file per sha256, so shared bytes would understate its growth)."""
    text = tag.encode("ascii")
    return data[:2] + b"\xff\xfe" + struct.pack(">H", len(text) + 2) + text + data[2:]


@dataclass
class _Health:
    state: str = "up"
    fps: float = 0.5
    last_error: str | None = None
    last_frame_at: dt.datetime = field(default_factory=lambda: dt.datetime.now(dt.UTC))


class _LiveSource:
    """What the health reporter reads of a camera source: a live camera at one analysed frame per 2 s."""

    @property
    def health(self) -> _Health:
        return _Health()


LIVE = cast("SourceLike", _LiveSource())


@dataclass
class Incident:
    key: str
    camera: str
    place: str
    violation: str
    sightings: int = 1
    updates: int = 0


@dataclass(frozen=True)
class BoxSpec:
    name: str
    key: str
    cameras: tuple[str, ...]
    places: tuple[str, ...]  # each camera's place (its one zone looks at it)


class SimBox:
    """One edge box's store traffic; ``start`` staggers each periodic thread's phase as a fleet's would be."""

    def __init__(
        self,
        spec: BoxSpec,
        url: str,
        workdir: Path,
        samples: list[Sample],
        *,
        zone_sync_s: float,
        health_s: float,
        verification_s: float,
        snapshot_s: float,
        snapshot_unchanged_s: float,
        rng: random.Random,
        old_protocol: bool = False,
    ) -> None:
        self.spec = spec
        self.dir = workdir / spec.name
        self.dir.mkdir(parents=True, exist_ok=True)
        key_file = self.dir / "device.key"
        key_file.write_text(spec.key, encoding="utf-8")
        key_file.chmod(0o600)
        self.store = StoreConfig(url=url, device_key_file=key_file, outbox=self.dir / "outbox.sqlite")
        self.client = TimedClient(self.store, samples)
        self.outbox = Outbox(self.store.outbox)
        self.pusher = Pusher(self.outbox, self.store, client=self.client)
        self.zone_sync = ZoneSync(self.client, [], self.store.zone_cache_path)
        self.store_sync = StoreSync(self.client, self.zone_sync, zone_sync_s, on_zones=lambda _zones: None)
        self.stopping = threading.Event()
        self.health = CameraHealthReporter(
            self.client, dict.fromkeys(spec.cameras, LIVE), self.stopping, every_s=health_s
        )
        # the daemon's choice of frames (pipeline.snapshots); the old protocol: one every snapshot_s
        self.snapshots = SnapshotPolicy(snapshot_s, 0.0 if old_protocol else snapshot_unchanged_s)
        self.health.batch = not old_protocol  # the old protocol: one health request per camera
        self.health_s, self.zone_sync_s, self.verification_s = health_s, zone_sync_s, verification_s
        self.rng = rng
        self.evidence_dir = self.dir / "evidence"
        self.evidence_dir.mkdir(exist_ok=True)
        self.verification_errors = 0
        self._threads: list[threading.Thread] = []

    def start(self) -> None:
        self.pusher.start()
        for target in (self._zone_phase, self._health_phase, self._verification_phase):
            thread = threading.Thread(target=target, name=f"{self.spec.name}-{target.__name__}", daemon=True)
            thread.start()
            self._threads.append(thread)

    def _zone_phase(self) -> None:
        if not self.stopping.wait(self.rng.uniform(0, self.zone_sync_s)):
            self.store_sync.start()

    def _health_phase(self) -> None:
        if self.stopping.wait(self.rng.uniform(0, self.health_s)):
            return
        self.health.report_all()
        self.health.run()

    def _verification_phase(self) -> None:
        wait = self.rng.uniform(0, self.verification_s)
        while not self.stopping.wait(wait):
            wait = self.verification_s
            try:
                fetch_resolved(self.client)
            except (httpx.HTTPError, ValueError):
                self.verification_errors += 1

    def stop(self) -> None:
        self.stopping.set()
        self.store_sync.stop(2.0)
        stopped = self.pusher.stop(self.store.timeout_s + 1.0)
        for thread in self._threads:
            thread.join(2.0)
        if stopped:  # a pusher still in a request would write to a closed outbox
            self.outbox.close()

    # --- what the rules stage would put into the outbox ---

    def image(self, kind: str, data: bytes, tag: str, score: float | None) -> QueuedImage:
        path = self.evidence_dir / f"{tag}-{kind}.jpg"
        path.write_bytes(unique_jpeg(data, f"{tag}-{kind}"))
        return (kind, path, score)

    def report(self, incident: Incident, images: Sequence[QueuedImage], dwell_s: float) -> None:
        now = dt.datetime.now(dt.UTC)
        self.outbox.put(
            CaseReport(
                idempotency_key=incident.key,
                camera=incident.camera,
                zone="z1",
                place=incident.place,
                violation_type=incident.violation,
                first_seen_at=now - dt.timedelta(seconds=dwell_s),
                confirmed_at=now,
                confidence=0.8,
                boxes=[Box(xyxy=(1380.0, 90.0, 1760.0, 330.0), confidence=0.8, class_name="car")],
                model_name="fleet-sim",
                model_version="1",
                sighting_count=incident.sightings,
                frame_wh=FRAME_WH,
            ),
            images,
        )

    def update(self, incident: Incident, kind: str, images: Sequence[QueuedImage] = ()) -> str:
        incident.updates += 1
        incident.sightings += 150  # a sighting report every 300 s of frames every 2 s
        key = f"{incident.key}-u{incident.updates}"
        self.outbox.put_update(
            IncidentUpdate.model_validate(
                {
                    "idempotency_key": key,
                    "incident_key": incident.key,
                    "kind": kind,
                    "at": dt.datetime.now(dt.UTC),
                    "sighting_count": incident.sightings,
                    "confidence": 0.8,
                }
            ),
            images,
        )
        return key
