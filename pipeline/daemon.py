"""The edge daemon: camera sources -> one batched detector -> rules -> evidence and outbox -> case store.

Threads (each named, so a stack dump reads like this list):

- one per camera (``pipeline.sources.CameraSource``): decode and sample; a live source keeps only its
  freshest sampled frame, a file that is not paced hands over every sampled frame through a bounded queue;
- ``patrol`` and ``patrol-visit-N`` (:mod:`pipeline.patrol`), when cameras have ``sample.mode: patrol``:
  each such camera is visited in turn (connect, one keyframe or snapshot, disconnect), and the visit's frame
  waits in the camera's source like a live sample;
- ``scheduler``: woken by the sources when a sample is ready, takes it into the camera's small waiting
  slot, groups waiting frames that letterbox to the same model input size into a batch of at most
  ``detector.batch_size`` (the group holding the oldest waiting frame first, oldest frames first within
  it, never two frames of one camera out of order) and runs one ``Detector.detect_batch`` call on it; a
  batch is never held back to fill up (the frames that arrive during one inference make the next batch).
  The detector gets the copy the source scaled straight to the model's input size (``small``); boxes are
  scaled back to the full-resolution frame, which is kept for evidence;
- ``inference-N`` when ``scheduler.inference_workers`` > 1: the scheduler hands batches to that many
  threads, which call the one model session at once (on a small CPU, two single-threaded calls keep the
  cores busier than one call on two threads); a camera with a frame in flight gets no other until its
  result is on the results queue, so each camera's frames still reach the rules in order;
- ``rules``: takes analysed frames from the bounded *results* queue in order, runs ``RuleEngine.update``,
  hands each incident event to ``events`` and lets the verifier look at the frame;
- ``events`` (:mod:`pipeline.event_writer`): in the order the events happened, writes evidence for
  ``first_seen`` and ``confirmed`` events and puts a case report into the durable outbox for each
  ``confirmed`` one (updates and ends after it); a bounded queue (``scheduler.event_queue``) between the
  two, so many confirmations at once do not hold the rules (0: the rules thread writes them itself);
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
full, so a slow rules stage slows intake, where the drop policy applies; likewise the rules wait while
the event queue is full.

Shutdown (SIGTERM, SIGINT, :meth:`Daemon.stop`, or the end of every stream when all cameras are finite
files): sources are stopped, the in-flight batch is finished and its frames go through the rules, the
rules stage ends at an end-of-stream sentinel after the events it handed on are written, the verifier
stops, the pusher drains the outbox for at
most ``scheduler.drain_timeout_s`` (what is left stays on disk for the next start), then the metrics
server stops. Nothing waits without a timeout: every queue operation is bounded and re-checks whether the
other side is still alive, each join has a deadline, and a second signal abandons the drain. An exception
in a stage is contained: one frame or one event that fails is logged, counted in
``streetwatch_stage_errors_total{stage}`` and skipped; a stage thread that dies stops the daemon with
exit code 1 after the same orderly shutdown.

Modules: :mod:`pipeline.scheduler` (intake, drop policy, batching), :mod:`pipeline.reporting` (the rules
stage: events, evidence, case reports), :mod:`pipeline.event_writer` (their writes on a thread of their own),
:mod:`pipeline.zone_updates` (zones from the store applied between frames), :mod:`pipeline.snapshots`,
:mod:`pipeline.camera_health` (camera health to the store), :mod:`pipeline.stages` (stop signals and the
results queue they share), :mod:`pipeline.patrol` (cameras visited in turn: their visits' frames enter the
scheduler like any source's), :mod:`pipeline.protocols` (what the daemon needs from sources, detector and
rules). This module wires them and owns the lifecycle.
"""

from __future__ import annotations

import datetime as dt
import functools
import logging
import queue
import signal
import threading
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from types import FrameType
from typing import TYPE_CHECKING, Any

from contract.device_config import UNKNOWN_OBJECT
from pipeline.camera_health import CameraHealthReporter
from pipeline.case_reports import CaseReporter
from pipeline.clips import ClipRecorder
from pipeline.config import CameraConfig, DaemonConfig, ZoneConfig, usable_cores
from pipeline.errors import OutboxError
from pipeline.metrics import DaemonMetrics, HealthStatus, MetricsServer, health_record
from pipeline.model_updates import (
    ModelIdentity,
    ModelUpdater,
    StagedModel,
    SwappableDetector,
    load_detector,
    read_staged,
)
from pipeline.patrol import Patroller
from pipeline.protocols import DetectorLike, RulesLike, SourceFactory, SourceLike, StaticChangeFactory
from pipeline.redaction import PersonSplit
from pipeline.reporting import Reporter
from pipeline.scheduler import (
    IDLE_POLL_S,
    IDLE_WAKE_S,
    CameraSlot,
    Scheduler,
    camera_source,
    hands_over_every_frame,
    is_file,
)
from pipeline.shadow import ShadowComparison
from pipeline.snapshots import Snapshots
from pipeline.stages import QUEUE_POLL_S, StageControl
from pipeline.static_changes import StaticChanges
from pipeline.store_sync import StoreSync
from pipeline.suppressions import SuppressionFilter
from pipeline.zone_sync import ZoneSync
from pipeline.zone_updates import ZoneUpdates

if TYPE_CHECKING:
    from detector.detector import Detector

log = logging.getLogger(__name__)

STALLED_AFTER_S = 60.0  # /healthz: a scheduler loop slower than this is reported as stalled
SCHEDULER_JOIN_S = 60.0  # shutdown: longest in-flight batch we wait for
RULES_JOIN_S = 30.0
SOURCE_STOP_S = 10.0
RESTART_EXIT = 75  # run(): a model with another class list is staged; build the daemon again (EX_TEMPFAIL)


def config_for_staged(config: DaemonConfig, staged: StagedModel) -> DaemonConfig:
    """``config`` running the staged model: ``detector.classes`` keeps the classes the model has and maps its
    other classes with the card's ``violations``; the configuration's thresholds give way to the card's."""
    classes: dict[str, Any] = {n: r for n, r in config.detector.classes.items() if n in staged.classes}
    for name, violation in staged.violations.items():
        if name in staged.classes and name not in classes:
            classes[name] = violation
    dropped = sorted(set(config.detector.classes) - set(classes))
    if dropped:
        log.warning("the staged model has no class %s: not detected any more", ", ".join(dropped))
    detector = config.detector.model_copy(
        update={"model": staged.card, "classes": classes, "confidence": None, "iou": None}
    )
    return config.model_copy(update={"detector": detector})


class Daemon:
    """One edge box: every camera of ``config`` through one detector to the case store.

    ``run()`` starts everything, waits until :meth:`stop` (or a signal, or the end of every finite
    stream), shuts down in order and returns the exit code (0, or 1 when a stage failed). ``start()`` and
    ``shutdown()`` are the two halves, for callers that manage the wait themselves.

    Construction loads the model, checks the configuration against it, opens the outbox and reads the
    device key, but starts nothing: any error there (:class:`pipeline.errors.PipelineError`,
    :class:`detector.errors.DetectorError`) leaves no thread behind. ``detector``, ``source_factory``,
    ``rules``, ``store_client`` and ``static_factory`` (each camera's static-change detector) replace the
    real parts in tests.
    """

    def __init__(
        self,
        config: DaemonConfig,
        *,
        detector: DetectorLike | None = None,
        source_factory: SourceFactory | None = None,
        rules: RulesLike | None = None,
        store_client: Any = None,
        static_factory: StaticChangeFactory | None = None,
    ) -> None:
        from pipeline.incidents import RuleEngine, working_points
        from pipeline.outbox import Outbox
        from pipeline.pusher import Pusher
        from pipeline.verification import Verifier

        staged = read_staged(config.store.outbox.parent / "models") if detector is None else None
        if staged is not None:  # the store's live model with another class list (pipeline.model_updates)
            config = config_for_staged(config, staged)
        self.config = config
        self.restart_requested = False
        self.person_split: PersonSplit | None = None
        if detector is None:
            loaded = self._load_detector(config)
            self.person_split = self._persons_for_redaction(loaded, config)
            detector = loaded
        # Static change's class follows the model's: its detections flow through the same rules.
        self.class_names = [*detector.class_names, UNKNOWN_OBJECT]
        self.model_name, self.model_version = self._model_identity(detector, config)
        # the store may assign another model: swapped in between batches (pipeline.model_updates)
        identity = ModelIdentity(self.model_name, self.model_version, None)
        if staged is not None:
            identity = staged.identity
            log.info("the staged model %s runs (classes %s)", identity.label, ", ".join(staged.classes))
        self.swapper = SwappableDetector(detector, identity, person_split=self.person_split)
        self.detector: DetectorLike = self.swapper
        self.case_reporter = CaseReporter(
            config,
            self.class_names,
            model_name=self.model_name,
            model_version=self.model_version,
            identity=lambda: (self.swapper.identity.name, self.swapper.identity.report_version),
        )
        # Sighting events only feed the store's "still there": emitted as often as they may be reported.
        self.rules: RulesLike = rules or RuleEngine(
            config,
            self.class_names,
            sighting_every_s=config.incidents.sighting_report_s,
            working_confidence=lambda: working_points(self.swapper.card),  # a model swapped in brings its own
        )
        self.metrics = DaemonMetrics(camera.id for camera in config.cameras)
        self.control = StageControl()
        self._frame_ready = threading.Event()  # set by the sources' on_frame: the scheduler has work
        self.outbox = Outbox(config.store.outbox)
        try:
            self.pusher = Pusher(self.outbox, config.store, client=store_client)
            self.verifier = Verifier(
                config, self.outbox, self.rules.present, self.class_names, client=store_client
            )
            self.patroller = self._patroller(config)
            cameras = self._camera_slots(config, source_factory)
            self.static = StaticChanges(
                config.cameras,
                self.class_names,
                config.detector.violation_of,
                config.store.outbox.parent / "references",
                factory=static_factory,
            )
        except BaseException:
            self.outbox.close()
            raise
        self._results: queue.Queue[object] = queue.Queue(maxsize=config.scheduler.results_queue)
        self._started_at: float | None = None
        self.scheduler = Scheduler(
            cameras,
            self.detector,
            self.metrics,
            self._results,
            self.control,
            batch_size=config.detector.batch_size,
            frame_ready=self._frame_ready,
            idle_wait_s=IDLE_WAKE_S if source_factory is None else IDLE_POLL_S,
            consumer_alive=lambda: self._rules_thread.is_alive(),
            person_split=self.person_split,
            needs_fresh=lambda camera_id: self.reporter.needs_fresh(camera_id),
            inference_workers=config.inference_workers,
        )
        log.info(
            "detector: %d call(s) at once (scheduler.inference_workers: %s on %d usable cores), "
            "intra-op threads %s each",
            config.inference_workers,
            config.scheduler.inference_workers,
            usable_cores(),
            config.session_settings().intra_op_threads or "default",
        )
        self.cameras = cameras
        self.zone_updates = ZoneUpdates(config.cameras, self.rules, self.verifier, self.metrics, self.static)
        self.verifier.looks_like_reference = self.static.looks_like_reference
        self.suppressions = SuppressionFilter(
            self.class_names,
            config.detector.violation_of,
            self.metrics,
            iou_min=config.incidents.suppression_iou,
        )  # the false-alarm memory: a suppressed unknown_object becomes part of the zone's reference
        self.suppressions.absorb = self.static.absorb
        zone_sync = (
            ZoneSync(
                self.pusher.client,
                config.cameras,
                config.store.zone_cache_path,
                event_codes=self.case_reporter.event_codes,
                on_suppressions=self.suppressions.replace,
                on_models=lambda models: self.model_updater.assign(models),
            )
            if config.store.zone_sync_s > 0
            else None
        )  # zones from the store (polled; the cache on disk first) and snapshots, on one thread
        self.store_sync = StoreSync(
            self.pusher.client,
            zone_sync,
            config.store.zone_sync_s,
            self.zone_updates.queue,
            on_reference=self.static.offer_reference,
        )
        self.shadow = ShadowComparison(
            self.pusher.client,
            period_s=config.store.shadow_period_s,
            make_rules=self._shadow_rules,
            observe_seconds=self.metrics.shadow_inference_seconds.observe,
            live_version=lambda: self.swapper.identity.version_id,
        )
        self.reporter = Reporter(
            config,
            self.rules,
            class_names=self.class_names,
            case_reporter=self.case_reporter,
            metrics=self.metrics,
            outbox=self.outbox,
            verifier=self.verifier,
            zones=self.zone_updates,
            snapshots=Snapshots(
                self.store_sync,
                self.class_names,
                self.metrics,
                every_s=config.store.snapshot_s,
                unchanged_s=config.store.snapshot_unchanged_s,
                blur_persons=config.evidence.blur_persons,
            ),
            results=self._results,
            control=self.control,
            producer_ended=lambda: not self._scheduler.is_alive() and self._scheduler.ident is not None,
            # incidents end on stream time; only live cameras' stream time follows the wall clock
            expire_on_wall_clock=not any(is_file(camera) for camera in config.cameras),
            suppressions=self.suppressions,
            static=self.static,
            clips=self._clip_recorder(config, cameras),
            shadow=self.shadow,
            event_queue=config.scheduler.event_queue,
            detection_behind=self.scheduler.behind,
            event_cpu_share=config.scheduler.event_cpu_share,
            event_queue_bytes=round(config.scheduler.event_queue_mb * 2**20),
        )
        self.model_updater = ModelUpdater(
            self.pusher.client,
            config.store.outbox.parent / "models",
            self.swapper,
            self.control.stopping,
            loader=functools.partial(load_detector, settings=config.session_settings()),
            on_shadow=self.shadow.set_shadow,
            on_new_classes=self._restart_for,
            mapped_classes=frozenset(config.detector.classes),
        )
        self._model_thread = threading.Thread(target=self.model_updater.run, name="model-update", daemon=True)
        self.health_reporter = CameraHealthReporter(
            self.pusher.client,
            {cam.id: cam.source for cam in cameras},
            self.control.stopping,
            every_s=config.store.health_report_s,
            references=self.static.states,
            model=self.model_updater.health if zone_sync is not None else lambda: None,
        )
        self._scheduler = threading.Thread(target=self.scheduler.run, name="scheduler", daemon=True)
        self._rules_thread = threading.Thread(target=self.reporter.run, name="rules", daemon=True)
        self._health_thread = threading.Thread(
            target=self.health_reporter.run, name="health-report", daemon=True
        )
        self.metrics_server: MetricsServer | None = None
        self.metrics.camera_health = lambda: {cam.id: cam.source.health for cam in self.cameras}
        self.metrics.queue_depths = self._queue_depths
        self.metrics.outbox_counts = self.outbox.counts
        self.metrics.static_references = self.static.states
        self._shutdown_done = False
        cached = zone_sync.cached() if zone_sync is not None else None
        if cached is not None:  # nothing runs yet: apply now, so the first frame sees them
            self.zone_updates.queue(cached)
            self.zone_updates.apply(self.reporter.on_ended)

    # --- construction helpers ---

    def _patroller(self, config: DaemonConfig) -> Patroller | None:
        """The patrol cameras' visits (pipeline.patrol); None when every camera is held open."""
        patrol = config.patrol_cameras
        if not patrol:
            return None
        input_hw = self._detector_input_hw(self.detector)
        return Patroller(patrol, config.patrol, input_hw=input_hw, on_frame=self._wake)

    def _camera_slots(self, config: DaemonConfig, source_factory: SourceFactory | None) -> list[CameraSlot]:
        batch = config.detector.batch_size
        slots: dict[str, CameraSlot] = {}  # filled below, before any source starts

        def busy_of(camera_id: str) -> Callable[[], bool] | None:
            if not config.scheduler.drop_before_decode:
                return None
            return lambda: slots[camera_id].busy()

        if source_factory is None:
            input_hw = self._detector_input_hw(self.detector)
            factory: SourceFactory = lambda camera: camera_source(  # noqa: E731
                camera, input_hw, 2 * batch, self._wake, busy_of(camera.id), self._zones_of(camera)
            )
        else:
            factory = source_factory
        if self.patroller is not None:  # patrol cameras are visited, whatever makes the other sources
            factory = self._with_patrol(self.patroller, factory)
        per_camera = config.scheduler.frames_per_camera
        for camera in config.cameras:
            slots[camera.id] = CameraSlot(
                camera,
                factory(camera),
                every_frame=hands_over_every_frame(camera),
                capacity=batch if hands_over_every_frame(camera) else per_camera,
                zones=self._zones_of(camera),
            )
        return list(slots.values())

    def _zones_of(self, camera: CameraConfig) -> Callable[[], Sequence[ZoneConfig]]:
        """The zones ``camera`` runs with now, zones from the store included (zone-ROI, zone gating)."""
        return lambda: self.zone_updates.zones(camera.id)

    @staticmethod
    def _with_patrol(patroller: Patroller, inner: SourceFactory) -> SourceFactory:
        def factory(camera: CameraConfig) -> SourceLike:
            found = patroller.sources.get(camera.id)
            return found if found is not None else inner(camera)

        return factory

    def _clip_recorder(self, config: DaemonConfig, cameras: Sequence[CameraSlot]) -> ClipRecorder | None:
        """Evidence clips for the cameras that keep them (sources with a packet ring); None when none do."""
        found = {cam.id: getattr(cam.source, "packets", None) for cam in cameras}
        rings = {camera_id: ring for camera_id, ring in found.items() if ring is not None}
        if not rings:
            return None

        def queue_clip(incident_key: str, path: Path) -> None:
            try:
                self.outbox.put_evidence(incident_key=incident_key, images=[("clip", path)])
            except OutboxError:
                log.exception("the evidence clip of incident %s could not be queued", incident_key)

        return ClipRecorder(config.cameras, rings, Path(config.evidence.dir), queue_clip)

    @staticmethod
    def _load_detector(config: DaemonConfig) -> Detector:
        from detector.detector import Detector

        d = config.detector
        return Detector(
            d.model,
            provider=d.provider,
            confidence=d.confidence,
            iou=d.iou,
            max_detections=d.max_detections,
            settings=config.session_settings(),
        )

    @staticmethod
    def _persons_for_redaction(detector: Detector, config: DaemonConfig) -> PersonSplit | None:
        """Where evidence.person_confidence is below the working threshold, run the detector at it and
        split its output: the rules see what they saw before, redaction gets the fainter people too."""
        working, low = float(detector.confidence), config.evidence.person_confidence
        if not config.evidence.blur_persons or low >= working:
            return None
        split = PersonSplit(detector.class_names, working_confidence=working, person_confidence=low)
        if not split.person_ids:
            return None
        detector.confidence = low
        return split

    @staticmethod
    def _detector_input_hw(detector: DetectorLike) -> tuple[int, int] | None:
        """The model's input size (the letterbox target) when the detector has a model card."""
        card = detector.card
        if card is None:
            return None
        size = card.input.size_hw
        return int(size[0]), int(size[1])

    @staticmethod
    def _model_identity(detector: DetectorLike, config: DaemonConfig) -> tuple[str, str]:
        card = detector.card
        if card is not None:
            return str(card.name)[:100], str(card.version)[:50]
        return config.detector.model.stem[:100], ""

    def _shadow_rules(self, detector: DetectorLike) -> RulesLike:
        """Rules of their own for a shadow model (its classes and working points), with the zones each
        camera runs with now."""
        from pipeline.incidents import RuleEngine, working_points

        card = detector.card
        rules = RuleEngine(
            self.config,
            list(detector.class_names),
            sighting_every_s=self.config.incidents.sighting_report_s,
            working_confidence=lambda: working_points(card),
        )
        for camera in self.config.cameras:
            rules.replace_zones(camera.id, self.zone_updates.zones(camera.id))
        return rules

    def _wake(self, camera_id: str) -> None:
        """A source has a sample ready (called from its thread)."""
        self._frame_ready.set()

    def zones(self, camera_id: str) -> tuple[ZoneConfig, ...]:
        """The zones ``camera_id`` runs with now (thread-safe)."""
        return self.zone_updates.zones(camera_id)

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
            if self.store_sync.zone_sync is not None:
                self._model_thread.start()
            if self.config.store.zone_sync_s > 0 or self.config.store.snapshot_s > 0:
                self.store_sync.start()
                started.append(lambda: self.store_sync.stop(timeout_s=2.0))
            for cam in self.cameras:
                cam.source.start()
                started.append(cam.source.stop)
            if self.patroller is not None:
                self.patroller.start()
                started.append(self.patroller.stop)
        except BaseException:
            self.control.stopping.set()
            self.control.abandon.set()
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
        self.control.stop_requested.set()

    def _restart_for(self, staged: StagedModel) -> None:
        """A live model with another class list is staged: stop in order; :meth:`run` returns
        :data:`RESTART_EXIT` and the next daemon built from the same configuration loads it."""
        log.warning("restarting for model %s (classes %s)", staged.identity.label, ", ".join(staged.classes))
        self.restart_requested = True
        self.stop()

    def run(self, *, install_signal_handlers: bool = False) -> int:
        """Run until stopped; 0 after a clean stop, 1 when a stage failed, :data:`RESTART_EXIT` when the store
        made a model with another class list live (build the daemon again: it loads that model)."""
        previous = self._install_signal_handlers() if install_signal_handlers else {}
        try:
            self.start()
            while not self.control.stop_requested.wait(0.2):
                if self.control.streams_ended.is_set():
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
        return RESTART_EXIT if self.restart_requested else 0

    def shutdown(self) -> None:
        """Stop in order (see the module docstring); every step bounded. Safe to call twice."""
        if self._shutdown_done:
            return
        self._shutdown_done = True
        self.control.stop_requested.set()
        self.control.stopping.set()
        self._frame_ready.set()
        stops = [(f"stop source {cam.id}", cam.source.stop) for cam in self.cameras]
        if self.patroller is not None:
            stops.append(("stop patrol", self.patroller.stop))
        self._bounded_all(stops, SOURCE_STOP_S)
        self._join(self._scheduler, SCHEDULER_JOIN_S)
        self._join(self._rules_thread, RULES_JOIN_S)
        if not self._rules_thread.is_alive():
            self.reporter.poll_clips(final=True)  # what is buffered of the clips still waiting for their end
        self._join(self._health_thread, self.config.store.timeout_s + 1.0)
        self.store_sync.stop(timeout_s=self.config.store.timeout_s + 1.0)
        self.model_updater.wake()
        if self._model_thread.is_alive():  # a load in progress holds no state to save: not waited for long
            self._model_thread.join(self.config.store.timeout_s + 1.0)
        self.reporter.save_unsaved()
        self._bounded("upload the shadow comparison", lambda: self.shadow.maybe_upload(force=True), 10.0)
        self._bounded("stop verification", lambda: self.verifier.stop(timeout_s=5.0), 10.0)
        self._drain()
        self._bounded("stop pusher", lambda: self.pusher.stop(timeout_s=5.0), 10.0)
        if self.metrics_server is not None:
            self._bounded("stop metrics server", self.metrics_server.stop, 5.0)
        self.outbox.close()
        log.info("daemon stopped")

    @property
    def failures(self) -> list[str]:
        return self.control.failures

    def _install_signal_handlers(self) -> dict[int, Any]:
        if threading.current_thread() is not threading.main_thread():
            log.warning("signal handlers need the main thread; stop the daemon with Daemon.stop()")
            return {}
        previous: dict[int, Any] = {}

        def on_signal(signum: int, _frame: FrameType | None) -> None:
            if self.control.stop_requested.is_set():
                log.warning("second %s: abandoning the outbox drain", signal.Signals(signum).name)
                self.control.abandon.set()
            else:
                log.info("%s: shutting down", signal.Signals(signum).name)
                self.control.stop_requested.set()

        for signum in (signal.SIGTERM, signal.SIGINT):
            previous[signum] = signal.signal(signum, on_signal)
        return previous

    # --- bounded waiting ---

    def _join(self, thread: threading.Thread, timeout_s: float) -> None:
        if not thread.is_alive():
            return
        deadline = time.monotonic() + timeout_s
        while thread.is_alive() and time.monotonic() < deadline and not self.control.abandon.is_set():
            thread.join(QUEUE_POLL_S)
        if thread.is_alive():
            self.control.add_failure(f"{thread.name}: did not stop within {timeout_s:.0f} s")
            log.error("thread %s did not end within %.0f s; abandoning it", thread.name, timeout_s)
            self.control.abandon.set()

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
        if pending == 0 or self.control.abandon.is_set():
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
        while helper.is_alive() and not self.control.abandon.is_set() and time.monotonic() < deadline:
            helper.join(QUEUE_POLL_S)
        left = self.outbox.pending_count()
        if left:
            log.warning("%d outbox item(s) not delivered; kept for the next start", left)

    # --- health ---

    def _queue_depths(self) -> dict[str, int]:
        return {
            "frames": self.scheduler.waiting_count(),
            "results": self._results.qsize(),
            "events": self.reporter.writer.queued,
            "unsaved_reports": self.reporter.unsaved_count,
        }

    def health(self) -> HealthStatus:
        """The daemon's health for ``/healthz``."""
        now = dt.datetime.now(dt.UTC)
        cameras = {cam.id: health_record(cam.source.health, now) for cam in self.cameras}
        for camera_id, references in self.static.states().items():
            if camera_id in cameras:  # until set or learned, objects already there cannot be told
                cameras[camera_id]["references"] = references
        beat_age = time.monotonic() - self.scheduler.heartbeat
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
        if self.control.stop_requested.is_set():
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
