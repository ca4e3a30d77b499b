"""The edge daemon: camera sources -> one batched detector -> rules -> evidence and outbox -> case store.

Threads (each named, so a stack dump reads like this list):

- one per camera (``pipeline.sources.CameraSource``): decode and sample; a live source keeps only its
  freshest sampled frame, a file that is not paced hands over every sampled frame through a bounded queue;
- ``scheduler``: woken by the sources when a sample is ready, takes it into the camera's small waiting
  slot, groups waiting frames that letterbox to the same model input size into a batch of at most
  ``detector.batch_size`` (the group holding the oldest waiting frame first, oldest frames first within
  it, never two frames of one camera out of order) and runs one ``Detector.detect_batch`` call on it; a
  batch is never held back to fill up (the frames that arrive during one inference make the next batch).
  The detector gets the copy the source scaled straight to the model's input size (``small``); boxes are
  scaled back to the full-resolution frame, which is kept for evidence;
- ``rules``: takes analysed frames from the bounded *results* queue in order, runs ``RuleEngine.update``,
  writes evidence for ``first_seen`` and ``confirmed`` events, puts a case report into the durable outbox
  for each ``confirmed`` one, and lets the verifier look at the frame;
- ``outbox-pusher`` (:mod:`pipeline.pusher`) and ``verification-poll`` (:mod:`pipeline.verification`);
- ``metrics-http`` (:mod:`pipeline.metrics`): ``/metrics`` and ``/healthz``.

Queues and the drop policy. Frames are dropped in one place only, on the way in, and only for live
cameras: a camera's slot holds ``scheduler.frames_per_camera`` frames (default 1); when a newer frame
arrives and the slot is full, the *oldest* waiting frame of that camera is dropped, and the frames the
source replaced before the scheduler picked one up are dropped too; both are counted in
``streetwatch_frames_skipped_total{reason="behind"}``. A camera that is behind therefore always gets its
freshest frame analysed, and one busy camera cannot crowd out another (each camera has its own slot).
Files that are not paced in real time are never dropped: their slot (``detector.batch_size`` frames) is
refilled only when there is room, so the file waits (back-pressure). After the detector nothing is
dropped: the results queue is bounded (``scheduler.results_queue``) and the scheduler waits while it is
full, so a slow rules stage slows intake, where the drop policy applies.

Shutdown (SIGTERM, SIGINT, :meth:`Daemon.stop`, or the end of every stream when all cameras are finite
files): sources are stopped, the in-flight batch is finished and its frames go through the rules, the
rules stage ends at an end-of-stream sentinel, the verifier stops, the pusher drains the outbox for at
most ``scheduler.drain_timeout_s`` (what is left stays on disk for the next start), then the metrics
server stops. Nothing waits without a timeout: every queue operation is bounded and re-checks whether the
other side is still alive, each join has a deadline, and a second signal abandons the drain. An exception
in a stage is contained: one frame or one event that fails is logged, counted in
``streetwatch_stage_errors_total{stage}`` and skipped; a stage thread that dies stops the daemon with
exit code 1 after the same orderly shutdown.
"""

from __future__ import annotations

import datetime as dt
import logging
import queue
import signal
import threading
import time
from collections import OrderedDict, deque
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from types import FrameType
from typing import Any, Protocol

import numpy as np
import numpy.typing as npt

from contract import paths
from contract.health import CAMERA_STATES, CameraHealth
from contract.reports import CaseReport, IncidentUpdate
from detector.detections import Detections
from pipeline.case_reports import CaseReporter
from pipeline.config import CameraConfig, DaemonConfig, ZoneConfig
from pipeline.errors import OutboxError, StageError
from pipeline.evidence import evidence_score
from pipeline.metrics import DaemonMetrics, HealthLike, HealthStatus, MetricsServer, health_record
from pipeline.outbox import QueuedImage
from pipeline.store_sync import StoreSync, encode_snapshot
from pipeline.zone_sync import CameraZoneMap, ZoneSync

log = logging.getLogger(__name__)

IDLE_POLL_S = 0.01  # scheduler sleep when no frame waits, for sources that cannot wake it
IDLE_WAKE_S = 0.25  # sources that wake the scheduler (on_frame): the longest sleep between checks
QUEUE_POLL_S = 0.25  # bounded waits on queues; each wake-up re-checks that the other side is alive
STALLED_AFTER_S = 60.0  # /healthz: a scheduler loop slower than this is reported as stalled
SCHEDULER_JOIN_S = 60.0  # shutdown: longest in-flight batch we wait for
RULES_JOIN_S = 30.0
SOURCE_STOP_S = 10.0
SOURCE_STATS_EVERY_S = 1.0  # how often the scheduler copies the sources' counters into the metrics
EXPIRE_EVERY_S = 5.0  # live cameras only: how often incidents are aged on the wall clock (see _maybe_expire)
MAX_DETECTOR_FAILURES = 10  # consecutive failed detector calls before the daemon gives up
EVIDENCE_MEMORY = 1024  # open incidents whose first-sight pictures are remembered until confirmation
UNSAVED_MEMORY = 1000  # confirmed reports waiting for a failed outbox write to be retried


# --- what the daemon needs from its parts (the real ones live in sources, detector, incidents, ...) ---


class FrameLike(Protocol):
    """A sampled frame (``pipeline.sources.SampledFrame``)."""

    @property
    def camera_id(self) -> str: ...
    @property
    def seq(self) -> int: ...
    @property
    def stream_time(self) -> dt.datetime: ...
    @property
    def image(self) -> npt.NDArray[np.uint8]: ...


class SourceLike(Protocol):
    """A camera source (``pipeline.sources.CameraSource``)."""

    def start(self) -> None: ...
    def stop(self) -> object: ...
    def latest(self, after_seq: int) -> Any: ...
    def next_frame(self, timeout: float) -> Any: ...
    @property
    def health(self) -> HealthLike: ...


class DetectorLike(Protocol):
    @property
    def class_names(self) -> list[str]: ...
    def detect_batch(self, frames: Sequence[npt.NDArray[np.uint8]]) -> list[Detections]: ...


class EventLike(Protocol):
    """An incident event (``pipeline.incidents.IncidentEvent``)."""

    @property
    def kind(self) -> str: ...
    @property
    def incident_id(self) -> str: ...
    @property
    def camera_id(self) -> str: ...
    @property
    def zone_id(self) -> str: ...
    @property
    def place(self) -> str: ...
    @property
    def violation_type(self) -> str: ...
    @property
    def first_seen_at(self) -> dt.datetime: ...
    @property
    def at(self) -> dt.datetime: ...
    @property
    def confidence(self) -> float: ...
    @property
    def boxes(self) -> Detections: ...
    @property
    def polygon_px(self) -> Any: ...
    @property
    def sighting_count(self) -> int: ...
    @property
    def confirmed_at(self) -> dt.datetime | None: ...
    @property
    def last_seen_at(self) -> dt.datetime | None: ...


class RulesLike(Protocol):
    def update(
        self, camera_id: str, stream_time: dt.datetime, detections: Detections, frame_hw: tuple[int, int]
    ) -> Sequence[EventLike]: ...
    def present(self, camera_id: str, zone_id: str, violation_type: str) -> bool: ...


SourceFactory = Callable[[CameraConfig], SourceLike]


# --- internal records ---


@dataclass(slots=True)
class _Waiting:
    frame: FrameLike
    received: float  # time.monotonic() when the scheduler took it from the source


@dataclass(slots=True)
class _Analysed:
    camera_id: str
    frame: FrameLike
    detections: Detections
    received: float


_END = object()  # end-of-stream sentinel on the results queue


class _Camera:
    """The scheduler's view of one camera: its source and the frames waiting for the detector."""

    def __init__(self, config: CameraConfig, source: SourceLike, *, every_frame: bool, capacity: int) -> None:
        self.id = config.id
        self.config = config
        self.source = source
        self.every_frame = every_frame  # a file not paced in real time: every sampled frame, back-pressure
        self.capacity = capacity
        self.waiting: deque[_Waiting] = deque()  # bounded by ``capacity`` (checked on every append)
        self.last_seq = -1
        self.ended = False
        self.unchanged = 0  # the source's skipped_unchanged count already added to the metrics


def _is_file(camera: CameraConfig) -> bool:
    url = camera.url
    return ("://" not in url or url.startswith("file://")) and not url.startswith("/dev/video")


def _hands_over_every_frame(camera: CameraConfig) -> bool:
    """A file not paced in real time: every sampled frame is analysed (the file waits for the detector)."""
    return _is_file(camera) and not camera.realtime


def _is_finite(camera: CameraConfig) -> bool:
    return _is_file(camera) and not camera.loop


def _real_source(
    camera: CameraConfig, input_hw: tuple[int, int] | None, queue_size: int, wake: Callable[[str], None]
) -> SourceLike:
    """A :class:`pipeline.sources.CameraSource` that also scales each sample to the detector's input size
    (``small``), so the detector gets a small frame and the full-resolution one stays for evidence, and
    wakes the scheduler (``wake``) when a sample is ready instead of being polled."""
    from pipeline.sources import CameraSource

    source: SourceLike = CameraSource(camera, input_hw=input_hw, queue_size=queue_size, on_frame=wake)
    return source


def _source_ended(source: SourceLike) -> bool:
    """Whether a finite source has handed over its last frame."""
    ended = getattr(source, "ended", None)
    if isinstance(ended, bool):
        return ended
    return str(source.health.state) == "ended"


def _describe_zones(zones: Sequence[ZoneConfig]) -> str:
    return ", ".join(f"{z.id} ({z.place}: {', '.join(z.rules)})" for z in zones) or "none"


def _detector_frame(frame: FrameLike) -> npt.NDArray[np.uint8]:
    """What the detector sees: the source's downscaled copy when it made one, else the full frame."""
    small = getattr(frame, "small", None)
    return small if isinstance(small, np.ndarray) else frame.image


def _to_full_frame(detections: Detections, frame: FrameLike) -> Detections:
    """Boxes found on the downscaled copy, in full-frame pixels (evidence, zones and the store use those)."""
    small = getattr(frame, "small", None)
    if not isinstance(small, np.ndarray) or small.shape[:2] == frame.image.shape[:2] or not len(detections):
        return detections
    sy = frame.image.shape[0] / small.shape[0]
    sx = frame.image.shape[1] / small.shape[1]
    scale = np.array([sx, sy, sx, sy], np.float32)
    return Detections(
        xyxy=detections.xyxy * scale,
        confidence=detections.confidence,
        class_id=detections.class_id,
        track_id=detections.track_id,
    )


class Daemon:
    """One edge box: every camera of ``config`` through one detector to the case store.

    ``run()`` starts everything, waits until :meth:`stop` (or a signal, or the end of every finite
    stream), shuts down in order and returns the exit code (0, or 1 when a stage failed). ``start()`` and
    ``shutdown()`` are the two halves, for callers that manage the wait themselves.

    Construction loads the model, checks the configuration against it, opens the outbox and reads the
    device key, but starts nothing: any error there (:class:`pipeline.errors.PipelineError`,
    :class:`detector.errors.DetectorError`) leaves no thread behind. ``detector``, ``source_factory``,
    ``rules`` and ``store_client`` replace the real parts in tests.
    """

    def __init__(
        self,
        config: DaemonConfig,
        *,
        detector: DetectorLike | None = None,
        source_factory: SourceFactory | None = None,
        rules: RulesLike | None = None,
        store_client: Any = None,
    ) -> None:
        from pipeline.incidents import RuleEngine
        from pipeline.outbox import Outbox
        from pipeline.pusher import Pusher
        from pipeline.verification import Verifier

        self.config = config
        self.detector: DetectorLike = detector or self._load_detector(config)
        self.class_names = list(self.detector.class_names)
        self.model_name, self.model_version = self._model_identity(self.detector, config)
        self.reporter = CaseReporter(
            config, self.class_names, model_name=self.model_name, model_version=self.model_version
        )
        self.rules: RulesLike = rules or RuleEngine(config, self.class_names)
        self.metrics = DaemonMetrics(camera.id for camera in config.cameras)
        self._frame_ready = threading.Event()  # set by the sources' on_frame: the scheduler has work
        self.outbox = Outbox(config.store.outbox)
        try:
            self.pusher = Pusher(self.outbox, config.store, client=store_client)
            self.verifier = Verifier(
                config, self.outbox, self.rules.present, self.class_names, client=store_client
            )
            batch = config.detector.batch_size
            input_hw = self._detector_input_hw(self.detector)
            if source_factory is None:
                factory: SourceFactory = lambda camera: _real_source(  # noqa: E731
                    camera, input_hw, 2 * batch, self._wake
                )
            else:
                factory = source_factory
            per_camera = config.scheduler.frames_per_camera
            self.cameras = [
                _Camera(
                    camera,
                    factory(camera),
                    every_frame=_hands_over_every_frame(camera),
                    capacity=batch if _hands_over_every_frame(camera) else per_camera,
                )
                for camera in config.cameras
            ]
        except BaseException:
            self.outbox.close()
            raise
        self._results: queue.Queue[object] = queue.Queue(maxsize=config.scheduler.results_queue)
        self._idle_wait_s = IDLE_WAKE_S if source_factory is None else IDLE_POLL_S
        self._stop_requested = threading.Event()  # run() should return (stop(), a signal, a failure)
        self._stopping = threading.Event()  # the scheduler should finish its batch and end
        self._abandon = threading.Event()  # give up waiting: a stage is stuck or a second signal came
        self._streams_ended = threading.Event()
        self._failures: list[str] = []
        self._failures_lock = threading.Lock()
        self._detector_failures = 0
        self._heartbeat = time.monotonic()
        self._started_at: float | None = None
        self._first_sight: OrderedDict[str, list[QueuedImage]] = OrderedDict()
        self._unsaved: deque[tuple[CaseReport | IncidentUpdate, list[QueuedImage]]] = deque(
            maxlen=UNSAVED_MEMORY
        )
        self._scheduler = threading.Thread(target=self._schedule_loop, name="scheduler", daemon=True)
        self._rules_thread = threading.Thread(target=self._rules_loop, name="rules", daemon=True)
        self._health_thread = threading.Thread(
            target=self._report_health_loop, name="health-report", daemon=True
        )
        self._unregistered: set[str] = set()  # cameras the store does not know as this device's
        self.metrics_server: MetricsServer | None = None
        self.metrics.camera_health = lambda: {cam.id: cam.source.health for cam in self.cameras}
        self.metrics.queue_depths = self._queue_depths
        self.metrics.outbox_counts = self.outbox.counts
        self._shutdown_done = False
        # Incidents end on stream time, when frames come. With only live cameras, stream time follows the
        # wall clock, so the rules thread can also end them while a camera sends nothing at all.
        self._expire_on_wall_clock = not any(_is_file(camera) for camera in config.cameras)
        self._next_expire = 0.0
        self._init_store_sync(config)

    def _init_store_sync(self, config: DaemonConfig) -> None:
        """Zones from the store (polled; the cache on disk first) and snapshots, on one thread."""
        store = config.store
        zone_sync = (
            ZoneSync(
                self.pusher.client,
                config.cameras,
                store.zone_cache_path,
                event_codes=self.reporter.event_codes,
            )
            if store.zone_sync_s > 0
            else None
        )
        self.store_sync = StoreSync(self.pusher.client, zone_sync, store.zone_sync_s, self._queue_zones)
        self._zones_lock = threading.Lock()
        self._pending_zones: CameraZoneMap = {}  # written by the store-sync thread, applied by the rules
        self._applied_zones: CameraZoneMap = {camera.id: tuple(camera.zones) for camera in config.cameras}
        self._next_snapshot: dict[str, float] = {}
        cached = zone_sync.cached() if zone_sync is not None else None
        if cached is not None:  # nothing runs yet: apply now, so the first frame sees them
            self._queue_zones(cached)
            self._apply_pending_zones()

    # --- construction helpers ---

    @staticmethod
    def _load_detector(config: DaemonConfig) -> DetectorLike:
        from detector.detector import Detector

        d = config.detector
        return Detector(
            d.model,
            provider=d.provider,
            confidence=d.confidence,
            iou=d.iou,
            max_detections=d.max_detections,
            intra_op_threads=d.threads,
        )

    @staticmethod
    def _detector_input_hw(detector: DetectorLike) -> tuple[int, int] | None:
        """The model's input size (the letterbox target) when the detector has a model card."""
        card = getattr(detector, "card", None)
        size = getattr(getattr(card, "input", None), "size_hw", None)
        return (int(size[0]), int(size[1])) if size is not None else None

    def _batch_key(self, frame: FrameLike) -> tuple[int, int]:
        """Frames with the same key share a detector call: the model input size they letterbox to (one
        size for a fixed-size model; a stride-multiple rectangle per aspect ratio for a dynamic one)."""
        h, w = _detector_frame(frame).shape[:2]
        preprocessor = getattr(self.detector, "preprocessor", None)
        if preprocessor is not None:
            key: tuple[int, int] = preprocessor.input_hw((h, w))
            return key
        return h, w

    @staticmethod
    def _model_identity(detector: DetectorLike, config: DaemonConfig) -> tuple[str, str]:
        card = getattr(detector, "card", None)
        if card is not None:
            return str(card.name)[:100], str(card.version)[:50]
        return config.detector.model.stem[:100], ""

    # --- lifecycle ---

    def start(self) -> None:
        """Start every part; on a failure, stop what was started and re-raise."""
        self._started_at = time.monotonic()
        started: list[Callable[[], object]] = []
        try:
            port = self.config.metrics.port
            if port:
                server = MetricsServer(self.metrics, self.health, host=self.config.metrics.host, port=port)
                server.start()
                self.metrics_server = server
                started.append(server.stop)
            self.pusher.start()
            started.append(lambda: self.pusher.stop(timeout_s=2.0))
            if self.config.verification.enabled:
                self.verifier.start()
                started.append(lambda: self.verifier.stop(timeout_s=2.0))
            self._rules_thread.start()
            self._scheduler.start()
            if self.config.store.health_report_s > 0:
                self._health_thread.start()
            if self.config.store.zone_sync_s > 0 or self.config.store.snapshot_s > 0:
                self.store_sync.start()
                started.append(lambda: self.store_sync.stop(timeout_s=2.0))
            for cam in self.cameras:
                cam.source.start()
                started.append(cam.source.stop)
        except BaseException:
            self._stopping.set()
            self._abandon.set()
            for undo in reversed(started):
                try:
                    undo()
                except Exception:
                    log.exception("while undoing a failed start")
            self.outbox.close()
            self._shutdown_done = True
            raise
        log.info(
            "daemon started: %d camera(s), model %s %s, batch %d, store %s",
            len(self.cameras),
            self.model_name,
            self.model_version,
            self.config.detector.batch_size,
            self.config.store.url,
        )

    def stop(self) -> None:
        """Ask :meth:`run` to shut down (thread-safe; a signal handler calls this)."""
        self._stop_requested.set()

    def _wake(self, camera_id: str) -> None:
        """A source has a sample ready (called from its thread)."""
        self._frame_ready.set()

    def run(self, *, install_signal_handlers: bool = False) -> int:
        """Run until stopped; 0 after a clean stop, 1 when a stage failed."""
        previous = self._install_signal_handlers() if install_signal_handlers else {}
        try:
            self.start()
            while not self._stop_requested.wait(0.2):
                if self._streams_ended.is_set():
                    log.info("every camera stream has ended")
                    break
                if self.failures or not (self._scheduler.is_alive() and self._rules_thread.is_alive()):
                    break
        finally:
            try:
                self.shutdown()
            finally:
                for signum, handler in previous.items():
                    signal.signal(signum, handler)
        if self.failures:
            log.error("daemon stopped after a failure: %s", "; ".join(self.failures))
            return 1
        return 0

    def shutdown(self) -> None:
        """Stop in order (see the module docstring); every step bounded. Safe to call twice."""
        if self._shutdown_done:
            return
        self._shutdown_done = True
        self._stop_requested.set()
        self._stopping.set()
        self._frame_ready.set()
        self._bounded_all([(f"stop source {cam.id}", cam.source.stop) for cam in self.cameras], SOURCE_STOP_S)
        self._join(self._scheduler, SCHEDULER_JOIN_S)
        self._join(self._rules_thread, RULES_JOIN_S)
        self._join(self._health_thread, self.config.store.timeout_s + 1.0)
        self.store_sync.stop(timeout_s=self.config.store.timeout_s + 1.0)
        self._save_unsaved()
        self._bounded("stop verification", lambda: self.verifier.stop(timeout_s=5.0), 10.0)
        self._drain()
        self._bounded("stop pusher", lambda: self.pusher.stop(timeout_s=5.0), 10.0)
        if self.metrics_server is not None:
            self._bounded("stop metrics server", self.metrics_server.stop, 5.0)
        self.outbox.close()
        log.info("daemon stopped")

    @property
    def failures(self) -> list[str]:
        with self._failures_lock:
            return list(self._failures)

    def _fail(self, stage: str, exc: BaseException) -> None:
        message = f"{stage}: {exc.__class__.__name__}: {exc}"
        with self._failures_lock:
            self._failures.append(message)
        log.error("stage %s failed, stopping the daemon", stage, exc_info=exc)
        self._stop_requested.set()

    def _install_signal_handlers(self) -> dict[int, Any]:
        if threading.current_thread() is not threading.main_thread():
            log.warning("signal handlers need the main thread; stop the daemon with Daemon.stop()")
            return {}
        previous: dict[int, Any] = {}

        def on_signal(signum: int, _frame: FrameType | None) -> None:
            if self._stop_requested.is_set():
                log.warning("second %s: abandoning the outbox drain", signal.Signals(signum).name)
                self._abandon.set()
            else:
                log.info("%s: shutting down", signal.Signals(signum).name)
                self._stop_requested.set()

        for signum in (signal.SIGTERM, signal.SIGINT):
            previous[signum] = signal.signal(signum, on_signal)
        return previous

    # --- bounded waiting ---

    def _join(self, thread: threading.Thread, timeout_s: float) -> None:
        if not thread.is_alive():
            return
        deadline = time.monotonic() + timeout_s
        while thread.is_alive() and time.monotonic() < deadline and not self._abandon.is_set():
            thread.join(QUEUE_POLL_S)
        if thread.is_alive():
            with self._failures_lock:
                self._failures.append(f"{thread.name}: did not stop within {timeout_s:.0f} s")
            log.error("thread %s did not end within %.0f s; abandoning it", thread.name, timeout_s)
            self._abandon.set()

    def _bounded(self, what: str, fn: Callable[[], object], timeout_s: float) -> None:
        self._bounded_all([(what, fn)], timeout_s)

    def _bounded_all(self, calls: Sequence[tuple[str, Callable[[], object]]], timeout_s: float) -> None:
        """Run ``calls`` in parallel helper threads; wait at most ``timeout_s`` in all; log failures."""

        def guarded(what: str, fn: Callable[[], object]) -> None:
            try:
                fn()
            except Exception:
                log.exception("%s failed", what)

        threads = [
            threading.Thread(target=guarded, args=(what, fn), name=f"shutdown: {what}", daemon=True)
            for what, fn in calls
        ]
        for thread in threads:
            thread.start()
        deadline = time.monotonic() + timeout_s
        for thread in threads:
            thread.join(max(deadline - time.monotonic(), 0.0))
            if thread.is_alive():
                log.error("%s did not finish within %.0f s; going on without it", thread.name, timeout_s)

    def _drain(self) -> None:
        timeout = self.config.scheduler.drain_timeout_s
        pending = self.outbox.pending_count()
        if pending == 0 or self._abandon.is_set():
            if pending:
                log.warning("%d outbox item(s) not delivered; kept for the next start", pending)
            return
        log.info("delivering %d outbox item(s) before exit (at most %.0f s)", pending, timeout)
        done: list[bool] = []
        helper = threading.Thread(
            target=lambda: done.append(self.pusher.drain(timeout)), name="drain", daemon=True
        )
        helper.start()
        deadline = time.monotonic() + timeout + 1.0
        while helper.is_alive() and not self._abandon.is_set() and time.monotonic() < deadline:
            helper.join(QUEUE_POLL_S)
        left = self.outbox.pending_count()
        if left:
            log.warning("%d outbox item(s) not delivered; kept for the next start", left)

    # --- the scheduler thread ---

    def _schedule_loop(self) -> None:
        next_stats = 0.0
        try:
            while not self._stopping.is_set():
                self._heartbeat = now = time.monotonic()
                self._frame_ready.clear()  # a frame arriving from here on wakes the wait below
                if now >= next_stats:
                    self._source_stats()
                    next_stats = now + SOURCE_STATS_EVERY_S
                for cam in self.cameras:
                    self._intake(cam)
                batch = self._next_batch()
                if batch:
                    self._run_batch(batch)
                elif all(cam.ended for cam in self.cameras):
                    self._streams_ended.set()
                    self._stop_requested.set()
                    break
                else:
                    self._frame_ready.wait(self._idle_wait_s)
        except BaseException as exc:
            self._fail("scheduler", exc)
        finally:
            dropped = sum(len(cam.waiting) for cam in self.cameras)
            if dropped:
                log.info("shutdown: %d frame(s) waiting for the detector were not analysed", dropped)
            self._put(_END)

    def _intake(self, cam: _Camera) -> None:
        """Take what ``cam``'s source has ready, without blocking; a failing source is contained."""
        if cam.ended:
            return
        try:
            if cam.every_frame:
                while len(cam.waiting) < cam.capacity:
                    frame = cam.source.next_frame(0.0)
                    if frame is None:
                        cam.ended = _is_finite(cam.config) and _source_ended(cam.source)
                        return
                    self._observe_decode(cam.id, frame)
                    cam.waiting.append(_Waiting(frame, time.monotonic()))
                return
            frame = cam.source.latest(cam.last_seq)
            if frame is None:
                cam.ended = _is_finite(cam.config) and _source_ended(cam.source)
                return
            if cam.last_seq >= 0 and frame.seq > cam.last_seq + 1:
                self.metrics.frames_behind(cam.id, frame.seq - cam.last_seq - 1)  # replaced at the source
            cam.last_seq = frame.seq
            self._observe_decode(cam.id, frame)
            while len(cam.waiting) >= cam.capacity:
                cam.waiting.popleft()  # the drop policy: the oldest waiting frame of a camera that is behind
                self.metrics.frames_behind(cam.id)
            cam.waiting.append(_Waiting(frame, time.monotonic()))
        except Exception as exc:
            self.metrics.stage_errors.labels("source").inc()
            log.warning("camera %s: taking a frame failed: %s", cam.id, exc, exc_info=True)

    def _source_stats(self) -> None:
        """Scene-change skips happen inside the sources: copy their counts into the metrics."""
        for cam in self.cameras:
            try:
                count = int(getattr(cam.source.health, "skipped_unchanged", 0))
            except Exception:
                continue
            if count > cam.unchanged:
                self.metrics.frames_unchanged(cam.id, count - cam.unchanged)
                cam.unchanged = count

    def _observe_decode(self, camera_id: str, frame: FrameLike) -> None:
        seconds = getattr(frame, "decode_s", None)
        if isinstance(seconds, float):
            self.metrics.decode_seconds.labels(camera_id).observe(seconds)

    def _next_batch(self) -> list[tuple[_Camera, _Waiting]]:
        """Up to batch_size waiting frames of one model input size (:meth:`_batch_key`): the size of the
        oldest waiting frame, oldest first.

        Only each camera's leading run of frames of that size counts, so a camera whose resolution changed
        never has a later frame analysed before an earlier one.
        """
        heads = [cam for cam in self.cameras if cam.waiting]
        if not heads:
            return []
        oldest = min(heads, key=lambda cam: cam.waiting[0].received)
        size = self._batch_key(oldest.waiting[0].frame)
        candidates: list[tuple[float, int, _Camera]] = []
        for index, cam in enumerate(heads):
            for waiting in cam.waiting:
                if self._batch_key(waiting.frame) != size:
                    break
                candidates.append((waiting.received, index, cam))
        candidates.sort(key=lambda c: (c[0], c[1]))
        batch = []
        for _, _, cam in candidates[: self.config.detector.batch_size]:
            batch.append((cam, cam.waiting.popleft()))  # per camera, candidates come in waiting order
        return batch

    def _run_batch(self, batch: list[tuple[_Camera, _Waiting]]) -> None:
        images = [_detector_frame(waiting.frame) for _, waiting in batch]
        started = time.monotonic()
        try:
            results = self.detector.detect_batch(images)
            if len(results) != len(images):
                raise StageError(f"detector returned {len(results)} results for {len(images)} frames")
            results = [_to_full_frame(d, w.frame) for d, (_, w) in zip(results, batch, strict=True)]
        except Exception as exc:
            self._detector_failures += 1
            self.metrics.stage_errors.labels("detector").inc()
            log.exception("detector failed on a batch of %d frame(s); the batch is skipped", len(images))
            if self._detector_failures >= MAX_DETECTOR_FAILURES:
                raise StageError(
                    f"the detector failed {self._detector_failures} times in a row: {exc}"
                ) from exc
            return
        self._detector_failures = 0
        self.metrics.inference_seconds.observe(time.monotonic() - started)
        self.metrics.batch_frames.observe(len(images))
        for (cam, waiting), detections in zip(batch, results, strict=True):
            self.metrics.frame_analysed(cam.id, started)
            self.metrics.frame_wait_seconds.labels(cam.id).observe(started - waiting.received)
            self._put(_Analysed(cam.id, waiting.frame, detections, waiting.received))

    def _put(self, item: object) -> bool:
        """Put on the results queue, waiting while it is full as long as the rules stage is alive."""
        while True:
            try:
                self._results.put(item, timeout=QUEUE_POLL_S)
                return True
            except queue.Full:
                if self._abandon.is_set() or not self._rules_thread.is_alive():
                    return False

    # --- the rules thread ---

    def _rules_loop(self) -> None:
        try:
            while True:
                self._apply_pending_zones()  # between two frames: a frame sees old zones or new ones
                try:
                    item = self._results.get(timeout=QUEUE_POLL_S)
                except queue.Empty:
                    if self._abandon.is_set():
                        return
                    if not self._scheduler.is_alive() and self._scheduler.ident is not None:
                        return  # the scheduler ended without its sentinel reaching us
                    self._save_unsaved()
                    self._maybe_expire()
                    continue
                if item is _END:
                    return
                assert isinstance(item, _Analysed)
                self._analyse(item)
                self._maybe_expire()
        except BaseException as exc:
            self._fail("rules", exc)

    def _analyse(self, item: _Analysed) -> None:
        frame = item.frame
        started = time.monotonic()
        try:
            events = self.rules.update(
                item.camera_id, frame.stream_time, item.detections, frame.image.shape[:2]
            )
        except Exception:
            self.metrics.stage_errors.labels("rules").inc()
            log.exception("rules failed on camera %s at %s; frame skipped", item.camera_id, frame.stream_time)
            return
        self.metrics.rules_seconds.observe(time.monotonic() - started)
        for event in events:
            try:
                self._on_event(event, item)
            except Exception:
                self.metrics.stage_errors.labels("events").inc()
                log.exception("incident event %s %s could not be handled", event.kind, event.incident_id)
        if self.config.verification.enabled:
            try:
                self.verifier.observe(item.camera_id, frame.stream_time, frame.image, item.detections)
            except Exception:
                self.metrics.stage_errors.labels("verification").inc()
                log.exception("verification failed on camera %s", item.camera_id)
        self._maybe_snapshot(item)

    # --- zones from the store, snapshots to it ---

    def _queue_zones(self, zones: CameraZoneMap) -> None:
        """From the store-sync thread: the zones every camera should run with; the rules thread applies
        the ones that differ before its next frame."""
        with self._zones_lock:
            for camera_id, camera_zones in zones.items():
                if self._applied_zones.get(camera_id) != camera_zones:
                    self._pending_zones[camera_id] = camera_zones
                else:
                    self._pending_zones.pop(camera_id, None)

    def _apply_pending_zones(self) -> None:
        if not self._pending_zones:
            return
        with self._zones_lock:
            pending, self._pending_zones = self._pending_zones, {}
        replace = getattr(self.rules, "replace_zones", None)
        for camera_id, zones in pending.items():
            try:
                if replace is None:
                    raise TypeError(f"{type(self.rules).__name__} cannot replace zones")
                events = replace(camera_id, zones)
            except Exception:
                self.metrics.stage_errors.labels("zones").inc()
                log.exception("camera %s: new zones not applied; the previous ones stay", camera_id)
                continue
            with self._zones_lock:
                self._applied_zones[camera_id] = zones
            self.verifier.set_zones(camera_id, zones)
            for event in events:
                self.metrics.incident_events.labels(event.kind).inc()
                self._on_ended(event)
            log.info("camera %s: zones now %s", camera_id, _describe_zones(zones))

    def zones(self, camera_id: str) -> tuple[ZoneConfig, ...]:
        """The zones ``camera_id`` runs with now (thread-safe)."""
        with self._zones_lock:
            return self._applied_zones[camera_id]

    def _maybe_snapshot(self, item: _Analysed) -> None:
        """At most every ``store.snapshot_s`` per camera (and on its first frame): offer the frame, people
        blurred, for upload as the camera's latest view."""
        every = self.config.store.snapshot_s
        now = time.monotonic()
        if every <= 0 or now < self._next_snapshot.get(item.camera_id, 0.0):
            return
        self._next_snapshot[item.camera_id] = now + every
        try:
            jpeg = encode_snapshot(
                item.frame.image, item.detections, self.class_names, blur=self.config.evidence.blur_persons
            )
        except Exception:
            self.metrics.stage_errors.labels("snapshot").inc()
            log.exception("camera %s: snapshot not encoded", item.camera_id)
            return
        self.store_sync.offer_snapshot(item.camera_id, jpeg)

    def _on_event(self, event: EventLike, item: _Analysed) -> None:
        self.metrics.incident_events.labels(event.kind).inc()
        if event.kind == "first_seen":
            self._first_sight[event.incident_id] = self._evidence(event, item)
            while len(self._first_sight) > EVIDENCE_MEMORY:
                self._first_sight.popitem(last=False)
        elif event.kind == "confirmed":
            score = evidence_score(item.frame.image, event.boxes)
            images = self._first_sight.pop(event.incident_id, []) + self._evidence(event, item, score)
            report = self.reporter.report(event, score)
            if self._queue(report, images):
                self.metrics.frame_to_outbox_seconds.observe(time.monotonic() - item.received)
                log.info(
                    "case queued: %s %s%s at %s/%s (place %s), first seen %s, confirmed %s",
                    report.idempotency_key,
                    report.violation_type,
                    f" ({report.event_code})" if report.event_code else "",
                    report.camera,
                    report.zone,
                    report.place,
                    report.first_seen_at.isoformat(),
                    report.confirmed_at.isoformat(),
                )
        elif event.kind == "sighting" and self.reporter.sighting_due(event):
            score = evidence_score(item.frame.image, event.boxes)
            better = self.reporter.better_picture(event, score)
            images = self._evidence(event, item, score) if better else []
            self._queue(self.reporter.sighting(event, score if images else None), images)
        elif event.kind == "ended":
            self._on_ended(event)

    def _queue(self, message: CaseReport | IncidentUpdate, images: list[QueuedImage]) -> bool:
        """Put a report or an update in the outbox; kept in memory and retried when the outbox fails."""
        try:
            if isinstance(message, CaseReport):
                self.outbox.put(message, images)
            else:
                self.outbox.put_update(message, images)
        except OutboxError:
            log.exception("%s could not be written to the outbox; retrying", message.idempotency_key)
            self._unsaved.append((message, images))
            return False
        return True

    def _on_ended(self, event: EventLike) -> None:
        for image in self._first_sight.pop(event.incident_id, []):  # never confirmed: not evidence
            image[1].unlink(missing_ok=True)
        update = self.reporter.ended(event)
        if update is not None:
            self._queue(update, [])
            log.info("incident %s ended: last seen %s", event.incident_id, update.at.isoformat())

    def _maybe_expire(self) -> None:
        """Live cameras only: end incidents whose quiet period ran out while no frame came (a dead camera)."""
        expire = getattr(self.rules, "expire", None)
        now = time.monotonic()
        if not self._expire_on_wall_clock or expire is None or now < self._next_expire:
            return
        self._next_expire = now + EXPIRE_EVERY_S
        try:
            events = expire(dt.datetime.now(dt.UTC))
            for event in events:
                self.metrics.incident_events.labels(event.kind).inc()
                self._on_ended(event)
        except Exception:
            self.metrics.stage_errors.labels("rules").inc()
            log.exception("ending quiet incidents failed")

    def _evidence(self, event: EventLike, item: _Analysed, score: float | None = None) -> list[QueuedImage]:
        """The event's pictures; the full-frame view carries ``score`` (the crop is never the best view)."""
        from pipeline.evidence import render_evidence

        try:
            written = render_evidence(
                item.frame.image, event, item.detections, self.class_names, self.config.evidence
            )
        except Exception:  # a case without pictures is better than no case
            self.metrics.stage_errors.labels("evidence").inc()
            log.exception("evidence for incident %s (%s) failed", event.incident_id, event.kind)
            return []
        return [(kind, path, None if kind == "crop" else score) for kind, path in written]

    def _save_unsaved(self) -> None:
        """Retry outbox writes that failed (a full disk that was cleared, a locked file)."""
        while self._unsaved:
            message, images = self._unsaved[0]
            try:
                if isinstance(message, CaseReport):
                    self.outbox.put(message, images)
                else:
                    self.outbox.put_update(message, images)
            except OutboxError as exc:
                log.warning("%d case(s) still not in the outbox: %s", len(self._unsaved), exc)
                return
            self._unsaved.popleft()

    # --- camera health to the case store ---

    def _report_health_loop(self) -> None:
        """PUT each camera's health to the store every ``store.health_report_s`` (best effort: the
        operators' device list shows it; nothing depends on it reaching the store)."""
        while not self._stopping.wait(self.config.store.health_report_s):
            for cam in self.cameras:
                if self._stopping.is_set():
                    return
                if cam.id not in self._unregistered:
                    self._report_health(cam)

    def _report_health(self, cam: _Camera) -> None:
        health = cam.source.health
        state = str(health.state)
        if state not in CAMERA_STATES:
            return  # e.g. a file that has ended: nothing the store's states describe
        body = CameraHealth.model_validate(
            {
                "state": state,
                "last_frame_at": health.last_frame_at,
                "fps": round(min(max(float(health.fps), 0.0), 1000.0), 3),
                "error": (health.last_error or None) and str(health.last_error)[:500],
            }
        )
        try:
            response = self.pusher.client.request(
                "PUT", paths.camera_health(cam.id), json=body.model_dump(mode="json")
            )
        except Exception as exc:  # the store is down: the outbox has the important part
            log.debug("camera %s: health report failed: %s", cam.id, exc)
            return
        if response.status_code == 404:
            self._unregistered.add(cam.id)
            log.info(
                "camera %s is not registered to this device in the case store: its health is not reported",
                cam.id,
            )
        elif response.status_code >= 400:
            log.debug("camera %s: health report answered %d", cam.id, response.status_code)

    # --- health ---

    def _queue_depths(self) -> dict[str, int]:
        return {
            "frames": sum(len(cam.waiting) for cam in self.cameras),
            "results": self._results.qsize(),
            "unsaved_reports": len(self._unsaved),
        }

    def health(self) -> HealthStatus:
        """The daemon's health for ``/healthz``."""
        now = dt.datetime.now(dt.UTC)
        cameras = {cam.id: health_record(cam.source.health, now) for cam in self.cameras}
        beat_age = time.monotonic() - self._heartbeat
        try:
            pending: int | None = self.outbox.pending_count()
        except OutboxError:
            pending = None
        body: dict[str, Any] = {
            "cameras": cameras,
            "scheduler_heartbeat_age_s": round(beat_age, 3),
            "queues": self._queue_depths(),
            "outbox_pending": pending,
            "uptime_s": round(time.monotonic() - self._started_at, 1) if self._started_at else 0.0,
            "failures": self.failures,
        }
        if self._stop_requested.is_set():
            status = "stopping"
        elif (
            not self._scheduler.is_alive() or beat_age > STALLED_AFTER_S or not self._rules_thread.is_alive()
        ):
            status = "stalled"
        elif any(record["state"] not in ("up", "ended") for record in cameras.values()):
            status = "degraded"
        else:
            status = "ok"
        return HealthStatus(status, body)
