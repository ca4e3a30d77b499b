"""The daemon's Prometheus metrics and its ``/metrics`` and ``/healthz`` endpoints.

Each :class:`DaemonMetrics` owns its own :class:`prometheus_client.CollectorRegistry` (never the global
one), so several daemons in one process (tests, benchmarks) do not collide. Counters and histograms are
updated by the stages as they work; camera health and the outbox size are read when Prometheus scrapes
(a custom collector), so no stage has to push them.

Metric families (all prefixed ``streetwatch_``):

- per camera: ``camera_up``, ``camera_state{state}``, ``camera_decode_fps`` (decoded by the source),
  ``camera_analysed_fps`` (reached the detector, over the last minute), ``camera_reconnects``,
  ``camera_last_frame_age_seconds``, ``frames_analysed_total``, ``frames_skipped_total{reason}``
  (``unchanged``: the source's scene-change skip; ``behind``: dropped by the scheduler because the camera
  was behind, see :mod:`pipeline.daemon`), ``decode_seconds`` (histogram, when the source measures it)
- per batch: ``inference_seconds``, ``batch_frames``; per frame: ``rules_seconds``,
  ``frame_wait_seconds`` (from sampling to the detector), ``shadow_inference_seconds`` (a shadow model's
  call on its share of frames, :mod:`pipeline.shadow`)
- ``queue_depth{queue}``, ``outbox_items{state}``, ``incident_events_total{kind}``,
  ``events_paused_seconds_total`` (the events' thread leaving the CPU to detection that is behind),
  ``frame_to_outbox_seconds`` (sampling of the confirming frame to its report in the outbox),
  ``stage_errors_total{stage}``, ``detections_suppressed_total{camera,zone,violation}`` (false-alarm memory)

``/healthz`` answers 200 with ``{"status": "ok" | "degraded", ...}`` while the scheduler is alive
(``degraded``: some camera is not up) and 503 (``stalled``, ``stopping``) otherwise.
"""

from __future__ import annotations

import datetime as dt
import json
import logging
import threading
import time
from collections import deque
from collections.abc import Callable, Iterable, Iterator, Mapping
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any, Protocol

from prometheus_client import (
    CONTENT_TYPE_LATEST,
    CollectorRegistry,
    Counter,
    Histogram,
    generate_latest,
)
from prometheus_client.core import GaugeMetricFamily, Metric
from prometheus_client.registry import Collector

log = logging.getLogger(__name__)

CAMERA_STATES = ("connecting", "up", "reconnecting", "failed", "ended", "stopped")
REFERENCE_STATES = ("learning", "learned", "set", "relearning")  # contract.health.REFERENCE_STATES
# Seconds: decode of one frame and rules per frame are milliseconds; a CPU batch tens to hundreds.
FAST_BUCKETS = (0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0)
BATCH_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0)
LATENCY_BUCKETS = (0.01, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0)
RATE_WINDOW_S = 60.0


class HealthLike(Protocol):
    """What the metrics read from a camera source's health (``pipeline.sources.CameraHealth``)."""

    @property
    def state(self) -> str: ...
    @property
    def last_frame_at(self) -> dt.datetime | None: ...
    @property
    def fps(self) -> float: ...
    @property
    def reconnects(self) -> int: ...
    @property
    def last_error(self) -> str | None: ...


HealthProvider = Callable[[], Mapping[str, HealthLike]]
CountsProvider = Callable[[], Mapping[str, int]]
ReferencesProvider = Callable[[], Mapping[str, Mapping[str, str]]]


def health_record(health: HealthLike, now: dt.datetime) -> dict[str, Any]:
    """One camera's health as JSON-ready values (``/healthz``, and the store's camera health report)."""
    last = health.last_frame_at
    return {
        "state": str(health.state),
        "last_frame_at": last.isoformat() if last else None,
        "last_frame_age_s": round((now - last).total_seconds(), 3) if last else None,
        "fps": round(float(health.fps), 3),
        "reconnects": int(health.reconnects),
        "last_error": health.last_error,
    }


class _RateWindow:
    """Events per second over the last ``window_s`` seconds (monotonic clock); bounded (``deque(maxlen)``)."""

    def __init__(self, window_s: float = RATE_WINDOW_S, maxlen: int = 4096) -> None:
        self.window_s = window_s
        self._created = time.monotonic()
        self._times: deque[float] = deque(maxlen=maxlen)
        self._lock = threading.Lock()

    def add(self, at: float) -> None:
        with self._lock:
            self._times.append(at)

    def rate(self, now: float) -> float:
        with self._lock:
            while self._times and self._times[0] < now - self.window_s:
                self._times.popleft()
            elapsed = min(self.window_s, now - self._created)  # a daemon younger than the window
            return len(self._times) / elapsed if elapsed > 0 else 0.0


def _read(provider: Callable[[], Mapping[str, Any]], what: str) -> Mapping[str, Any]:
    """A provider's answer, or nothing when it fails (a scrape must never fail, e.g. after shutdown)."""
    try:
        return provider()
    except Exception as exc:
        log.debug("metrics: cannot read %s: %s", what, exc)
        return {}


class _ScrapeTimeCollector(Collector):
    """Camera health, analysed fps, queue depths and outbox size, read when Prometheus scrapes."""

    def __init__(self, metrics: DaemonMetrics) -> None:
        self._metrics = metrics

    def collect(self) -> Iterator[Metric]:
        m = self._metrics
        now = dt.datetime.now(dt.UTC)
        up = GaugeMetricFamily(
            "streetwatch_camera_up", "1 while the camera delivers frames.", labels=["camera"]
        )
        state = GaugeMetricFamily(
            "streetwatch_camera_state", "1 for the camera's current state.", labels=["camera", "state"]
        )
        fps = GaugeMetricFamily(
            "streetwatch_camera_decode_fps", "Frames per second decoded by the source.", labels=["camera"]
        )
        reconnects = GaugeMetricFamily(
            "streetwatch_camera_reconnects", "Reconnections since the daemon started.", labels=["camera"]
        )
        age = GaugeMetricFamily(
            "streetwatch_camera_last_frame_age_seconds", "Seconds since the last frame.", labels=["camera"]
        )
        for camera, health in _read(m.camera_health, "camera health").items():
            current = str(health.state)
            up.add_metric([camera], 1.0 if current == "up" else 0.0)
            for name in CAMERA_STATES:
                state.add_metric([camera, name], 1.0 if current == name else 0.0)
            fps.add_metric([camera], float(health.fps))
            reconnects.add_metric([camera], float(health.reconnects))
            if health.last_frame_at is not None:
                age.add_metric([camera], (now - health.last_frame_at).total_seconds())
        yield from (up, state, fps, reconnects, age)
        reference = GaugeMetricFamily(
            "streetwatch_static_reference_state",
            "1 for a static-change zone's reference state (learning: objects already there cannot be told "
            "yet; learned; set by an operator; relearning after a global change such as an IR switch).",
            labels=["camera", "zone", "state"],
        )
        for camera, zones in _read(m.static_references, "static-change references").items():
            for zone, current in zones.items():
                for name in REFERENCE_STATES:
                    reference.add_metric([camera, zone, name], 1.0 if current == name else 0.0)
        yield reference
        analysed = GaugeMetricFamily(
            "streetwatch_camera_analysed_fps",
            f"Frames per second that reached the detector, over the last {RATE_WINDOW_S:.0f} s.",
            labels=["camera"],
        )
        mono = time.monotonic()
        for camera, window in m.analysed_windows.items():
            analysed.add_metric([camera], window.rate(mono))
        yield analysed
        depth = GaugeMetricFamily(
            "streetwatch_queue_depth", "Items waiting in a stage's queue.", labels=["queue"]
        )
        for name, value in _read(m.queue_depths, "queue depths").items():
            depth.add_metric([name], float(value))
        yield depth
        outbox = GaugeMetricFamily(
            "streetwatch_outbox_items",
            "Outbox items by state (pending = not yet delivered).",
            labels=["state"],
        )
        for name, value in _read(m.outbox_counts, "the outbox").items():
            outbox.add_metric([name], float(value))
        yield outbox


class DaemonMetrics:
    """All metrics of one daemon, in their own registry.

    Args:
        camera_ids: the configured cameras (their series exist from the start, at zero).
        camera_health, queue_depths, outbox_counts: read at scrape time; set them once the parts exist.
    """

    def __init__(self, camera_ids: Iterable[str]) -> None:
        self.registry = CollectorRegistry(auto_describe=True)
        self.camera_ids = list(camera_ids)
        self.camera_health: HealthProvider = dict
        self.queue_depths: CountsProvider = dict
        self.outbox_counts: CountsProvider = dict
        self.static_references: ReferencesProvider = dict  # camera -> static-change zone -> state
        self.analysed_windows = {camera: _RateWindow() for camera in self.camera_ids}
        r = self.registry
        self.frames_analysed = Counter(
            "streetwatch_frames_analysed", "Frames run through the detector.", ["camera"], registry=r
        )
        self.frames_skipped = Counter(
            "streetwatch_frames_skipped",
            "Sampled frames not run through the detector: unchanged scene (source), camera behind (scheduler "
            "drop, or a keyframe skipped undecoded), carried (zone gating: last detections reused).",
            ["camera", "reason"],
            registry=r,
        )
        self.decode_seconds = Histogram(
            "streetwatch_decode_seconds",
            "Decode (and conversion) time of one sampled frame.",
            ["camera"],
            buckets=FAST_BUCKETS,
            registry=r,
        )
        self.frame_wait_seconds = Histogram(
            "streetwatch_frame_wait_seconds",
            "From a frame's sampling to the detector.",
            ["camera"],
            buckets=LATENCY_BUCKETS,
            registry=r,
        )
        self.inference_seconds = Histogram(
            "streetwatch_inference_seconds",
            "One detector call on a batch.",
            buckets=BATCH_BUCKETS,
            registry=r,
        )
        self.shadow_inference_seconds = Histogram(
            "streetwatch_shadow_inference_seconds",
            "One shadow-model call on a frame (pipeline.shadow): the cost of comparing a candidate model.",
            buckets=BATCH_BUCKETS,
            registry=r,
        )
        self.batch_frames = Histogram(
            "streetwatch_batch_frames",
            "Frames per detector call.",
            buckets=(1, 2, 4, 8, 16, 32, 64),
            registry=r,
        )
        self.rules_seconds = Histogram(
            "streetwatch_rules_seconds",
            "Rules (zones, tracker, incidents) on one frame.",
            buckets=FAST_BUCKETS,
            registry=r,
        )
        self.frame_to_outbox_seconds = Histogram(
            "streetwatch_frame_to_outbox_seconds",
            "From sampling the confirming frame to its case report in the outbox.",
            buckets=LATENCY_BUCKETS,
            registry=r,
        )
        self.static_change_seconds = Histogram(
            "streetwatch_static_change_seconds",
            "Static change (model-free new-object detection) on one frame of one camera.",
            buckets=FAST_BUCKETS,
            registry=r,
        )
        self.incident_events = Counter(
            "streetwatch_incident_events", "Incident events from the rules.", ["kind"], registry=r
        )
        self.events_paused_seconds = Counter(
            "streetwatch_events_paused_seconds",
            "Time the incident events' thread paused to leave the CPU to detection that was behind "
            "(scheduler.event_cpu_share).",
            registry=r,
        )
        self.detections_suppressed = Counter(
            "streetwatch_detections_suppressed",
            "Detections dropped before the rules as a remembered false alarm (pipeline.suppressions).",
            ["camera", "zone", "violation"],
            registry=r,
        )
        self.stage_errors = Counter(
            "streetwatch_stage_errors",
            "Exceptions caught in a stage (the item was skipped).",
            ["stage"],
            registry=r,
        )
        for camera in self.camera_ids:
            self.frames_analysed.labels(camera)
            for reason in ("unchanged", "behind", "carried"):
                self.frames_skipped.labels(camera, reason)
        for kind in ("first_seen", "confirmed", "sighting", "ended"):
            self.incident_events.labels(kind)
        self.registry.register(_ScrapeTimeCollector(self))

    def frame_analysed(self, camera_id: str, at: float | None = None) -> None:
        self.frames_analysed.labels(camera_id).inc()
        window = self.analysed_windows.get(camera_id)
        if window is not None:
            window.add(time.monotonic() if at is None else at)

    def frames_behind(self, camera_id: str, count: int = 1) -> None:
        """``count`` sampled frames of ``camera_id`` dropped because the camera was behind."""
        if count > 0:
            self.frames_skipped.labels(camera_id, "behind").inc(count)

    def frames_unchanged(self, camera_id: str, count: int) -> None:
        if count > 0:
            self.frames_skipped.labels(camera_id, "unchanged").inc(count)

    def value(self, name: str, labels: Mapping[str, str] | None = None) -> float | None:
        """A sample's current value (tests, benchmarks), e.g. ``streetwatch_frames_analysed_total``."""
        return self.registry.get_sample_value(name, dict(labels or {}))

    def exposition(self) -> bytes:
        return generate_latest(self.registry)


@dataclass(frozen=True)
class HealthStatus:
    """What ``/healthz`` answers: ``ok`` / ``degraded`` (HTTP 200), ``stalled`` / ``stopping`` (503)."""

    status: str
    body: dict[str, Any]

    @property
    def http_status(self) -> int:
        return 200 if self.status in ("ok", "degraded") else 503


HealthCheck = Callable[[], HealthStatus]


class MetricsServer:
    """``GET /metrics`` (Prometheus text format) and ``GET /healthz`` (JSON) on ``host:port``.

    ``port=0`` picks a free port (the daemon treats ``metrics.port: 0`` as "off" and never gets here);
    :attr:`port` is the bound port. A ThreadingHTTPServer in one daemon thread; :meth:`stop` shuts it down.
    """

    def __init__(self, metrics: DaemonMetrics, health: HealthCheck, *, host: str, port: int) -> None:
        self.metrics = metrics
        self.health = health
        handler = _make_handler(metrics, health)
        try:
            self._server = ThreadingHTTPServer((host, port), handler)
        except OSError as exc:
            from pipeline.errors import MetricsServerError

            raise MetricsServerError(
                f"cannot serve /metrics on {host}:{port} (metrics.host, metrics.port): {exc}"
            ) from exc
        self._server.daemon_threads = True
        self.host = host
        self.port = int(self._server.server_address[1])
        self._thread = threading.Thread(target=self._server.serve_forever, args=(0.25,), name="metrics-http")

    @property
    def url(self) -> str:
        return f"http://{self.host}:{self.port}"

    def start(self) -> None:
        self._thread.daemon = True
        self._thread.start()
        log.info("metrics on %s/metrics, health on %s/healthz", self.url, self.url)

    def stop(self) -> None:
        if self._thread.is_alive():
            self._server.shutdown()
            self._thread.join(timeout=5.0)
        self._server.server_close()


def _make_handler(metrics: DaemonMetrics, health: HealthCheck) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        server_version = "streetwatch-daemon"

        def do_GET(self) -> None:
            path = self.path.split("?", 1)[0]
            if path == "/metrics":
                self._send(200, CONTENT_TYPE_LATEST, metrics.exposition())
            elif path == "/healthz":
                status = health()
                body = json.dumps({"status": status.status, **status.body}, ensure_ascii=False).encode()
                self._send(status.http_status, "application/json", body)
            else:
                self._send(404, "text/plain; charset=utf-8", b"not found: try /metrics or /healthz\n")

        def _send(self, code: int, content_type: str, body: bytes) -> None:
            self.send_response(code)
            self.send_header("Content-Type", content_type)
            self.send_header("Content-Length", str(len(body)))
            self.send_header("Cache-Control", "no-store")
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, format: str, *args: Any) -> None:  # scrapes every few seconds: debug only
            log.debug("metrics http: " + format, *args)

    return Handler
