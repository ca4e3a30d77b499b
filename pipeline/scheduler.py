"""The scheduler stage: camera intake with the drop policy, batches of the freshest frames, one detector call
per batch (the policy itself is described in :mod:`pipeline.daemon`)."""

from __future__ import annotations

import logging
import queue
import threading
import time
from collections import deque
from collections.abc import Callable, Sequence
from dataclasses import dataclass

import numpy as np
import numpy.typing as npt

from detector.detections import Detections
from pipeline.config import CameraConfig, ZoneConfig
from pipeline.errors import StageError
from pipeline.metrics import DaemonMetrics
from pipeline.model_input import detector_frame, model_input
from pipeline.protocols import DetectorLike, FrameLike, SourceLike
from pipeline.redaction import PersonSplit
from pipeline.roi import crop_max_scale
from pipeline.stages import END, QUEUE_POLL_S, Analysed, StageControl

log = logging.getLogger(__name__)

IDLE_POLL_S = 0.01  # scheduler sleep when no frame waits, for sources that cannot wake it
IDLE_WAKE_S = 0.25  # sources that wake the scheduler (on_frame): the longest sleep between checks
SOURCE_STATS_EVERY_S = 1.0  # how often the scheduler copies the sources' counters into the metrics
MAX_DETECTOR_FAILURES = 10  # consecutive failed detector calls before the daemon gives up


@dataclass(slots=True)
class Waiting:
    frame: FrameLike
    received: float  # time.monotonic() when the scheduler took it from the source


class CameraSlot:
    """The scheduler's view of one camera: its source and the frames waiting for the detector."""

    def __init__(
        self,
        config: CameraConfig,
        source: SourceLike,
        *,
        every_frame: bool,
        capacity: int,
        zones: Callable[[], Sequence[ZoneConfig]] | None = None,
    ) -> None:
        self.id = config.id
        self.config = config
        self.source = source
        self.every_frame = every_frame  # a file not paced in real time: every sampled frame, back-pressure
        self.capacity = capacity
        self.waiting: deque[Waiting] = deque()  # bounded by ``capacity`` (checked on every append)
        self.last_seq = -1
        self.ended = False
        self.unchanged = 0  # the source's skipped_unchanged count already added to the metrics
        self.busy_skips = 0  # the source's skipped_busy count already added to the metrics
        self.in_flight = False  # a frame of this camera is in the detector call now
        self.zones = zones  # the zones it runs with now (a model shown frames blurred outside them)
        # zone gating: the last detections the model made on this camera (full-frame pixels), with the
        # people for redaction and the frame size they belong to
        self.last: tuple[Detections, npt.NDArray[np.float32] | None, tuple[int, int]] | None = None

    def busy(self) -> bool:
        """A frame of this camera still waits for the detector or is in it (read from the camera's
        thread)."""
        return bool(self.waiting) or self.in_flight


def is_file(camera: CameraConfig) -> bool:
    url = camera.url
    return ("://" not in url or url.startswith("file://")) and not url.startswith("/dev/video")


def hands_over_every_frame(camera: CameraConfig) -> bool:
    """A file not paced in real time: every sampled frame is analysed (the file waits for the detector)."""
    return is_file(camera) and not camera.realtime


def is_finite(camera: CameraConfig) -> bool:
    return is_file(camera) and not camera.loop


def camera_source(
    camera: CameraConfig,
    input_hw: tuple[int, int] | None,
    queue_size: int,
    wake: Callable[[str], None],
    busy: Callable[[], bool] | None = None,
    zones: Callable[[], Sequence[ZoneConfig]] | None = None,
) -> SourceLike:
    """A :class:`pipeline.sources.CameraSource` that also scales each sample to the detector's input size
    (``small``), so the detector gets a small frame and the full-resolution one stays for evidence, wakes
    the scheduler (``wake``) when a sample is ready instead of being polled, and (``busy``: the camera
    still has a frame waiting) skips keyframes undecoded while it is behind; ``zones``: the camera's current
    zones, for zone-ROI inference (:mod:`pipeline.roi`) and zone gating."""
    from pipeline.sources import CameraSource

    source: SourceLike = CameraSource(
        camera, input_hw=input_hw, queue_size=queue_size, on_frame=wake, busy=busy, zones=zones
    )
    return source


def to_full_frame(detections: Detections, frame: FrameLike) -> Detections:
    """Boxes found on the downscaled copy, in full-frame pixels (evidence, zones and the store use those)."""
    small = frame.small
    height, width = frame.hw
    box = frame.small_box
    if small is None or not len(detections) or (box is None and small.shape[:2] == (height, width)):
        return detections
    x0, y0, x1, y1 = box if box is not None else (0, 0, width, height)
    sy = (y1 - y0) / small.shape[0]
    sx = (x1 - x0) / small.shape[1]
    scale = np.array([sx, sy, sx, sy], np.float32)
    offset = np.array([x0, y0, x0, y0], np.float32)
    return Detections(
        xyxy=detections.xyxy * scale + offset,
        confidence=detections.confidence,
        class_id=detections.class_id,
        track_id=detections.track_id,
    )


class Scheduler:
    """The ``scheduler`` thread's work (:meth:`run`): take frames from every camera, batch them, detect, and
    put each analysed frame on ``results`` in order, then :data:`pipeline.stages.END`.

    ``frame_ready`` is set by the sources when a sample is ready (and by shutdown); ``consumer_alive`` says
    whether the rules stage still takes results, so a full queue is never waited on for ever.
    """

    def __init__(
        self,
        cameras: Sequence[CameraSlot],
        detector: DetectorLike,
        metrics: DaemonMetrics,
        results: queue.Queue[object],
        control: StageControl,
        *,
        batch_size: int,
        frame_ready: threading.Event,
        idle_wait_s: float,
        consumer_alive: Callable[[], bool],
        person_split: PersonSplit | None = None,
        needs_fresh: Callable[[str], bool] | None = None,
        inference_workers: int = 1,
    ) -> None:
        if inference_workers < 1:
            raise ValueError(f"inference_workers must be at least 1, got {inference_workers}")
        self.cameras = cameras
        # 1: batches run on this thread. More: that many ``inference-N`` threads run batches at once (one
        # session, concurrent runs), this thread only takes frames and hands batches out; a camera has at
        # most one batch in flight, so its frames still reach the rules in order.
        self.inference_workers = inference_workers
        self._work: queue.Queue[list[tuple[CameraSlot, Waiting]] | None] = queue.Queue()
        self._in_flight = 0  # batches handed out and not finished (this thread's count)
        self._finished: queue.SimpleQueue[int] = queue.SimpleQueue()  # workers report each batch done
        self._failures_lock = threading.Lock()
        self._worker_failed = threading.Event()  # a worker's detector gave up: hand out no more batches
        self.needs_fresh = needs_fresh or (lambda _camera_id: False)
        self.person_split = person_split
        self.detector = detector
        self.metrics = metrics
        self.results = results
        self.control = control
        self.batch_size = batch_size
        self.frame_ready = frame_ready
        self.idle_wait_s = idle_wait_s
        self.consumer_alive = consumer_alive
        self.heartbeat = time.monotonic()  # each loop: /healthz reports a scheduler that stalls
        self._detector_failures = 0

    def waiting_count(self) -> int:
        return sum(len(cam.waiting) for cam in self.cameras)

    def behind(self) -> bool:
        """More frames wait for the detector than its calls take at once (read from other threads: a
        deque's length is safe to read)."""
        return self.waiting_count() > self.inference_workers

    def run(self) -> None:
        next_stats = 0.0
        control = self.control
        workers = self._start_workers()
        try:
            while not control.stopping.is_set():
                self.heartbeat = now = time.monotonic()
                self.frame_ready.clear()  # a frame or a finished batch from now on wakes the wait
                self._collect_finished()
                if now >= next_stats:
                    self.source_stats()
                    next_stats = now + SOURCE_STATS_EVERY_S
                for cam in self.cameras:
                    self.intake(cam)
                    self.carry_forward(cam)
                batch = self.next_batch() if self._slot_free() else []
                if batch:
                    self.dispatch(batch)
                elif all(cam.ended for cam in self.cameras) and not self._in_flight:
                    control.streams_ended.set()
                    control.stop_requested.set()
                    break
                else:
                    self.frame_ready.wait(self.idle_wait_s)
        except BaseException as exc:
            control.fail("scheduler", exc)
        finally:
            self._stop_workers(workers)
            dropped = self.waiting_count()
            if dropped:
                log.info("shutdown: %d frame(s) waiting for the detector were not analysed", dropped)
            self.put(END)

    # ---- inference workers (inference_workers > 1) --------------------------------------------------------

    def _start_workers(self) -> list[threading.Thread]:
        if self.inference_workers == 1:
            return []
        workers = [
            threading.Thread(target=self._work_loop, name=f"inference-{i}", daemon=True)
            for i in range(self.inference_workers)
        ]
        for worker in workers:
            worker.start()
        return workers

    def _stop_workers(self, workers: list[threading.Thread]) -> None:
        """Let the batches in flight finish (their results go out before END), then end the workers."""
        for _ in workers:
            self._work.put(None)
        for worker in workers:
            worker.join()

    def _slot_free(self) -> bool:
        if self.inference_workers == 1:
            return True
        return not self._worker_failed.is_set() and self._in_flight < self.inference_workers

    def _collect_finished(self) -> None:
        while True:
            try:
                self._in_flight -= self._finished.get_nowait()
            except queue.Empty:
                return

    def dispatch(self, batch: list[tuple[CameraSlot, Waiting]]) -> None:
        """Run ``batch`` here, or hand it to a free inference worker."""
        if self.inference_workers == 1:
            self.run_batch(batch)
            return
        for cam, _ in batch:
            cam.in_flight = True  # before it leaves: this camera's next frame waits for the result
        self._in_flight += 1
        self._work.put(batch)

    def _work_loop(self) -> None:
        while True:
            batch = self._work.get()
            if batch is None:
                return
            try:
                self._detect_and_put(batch)  # dispatch marked the batch's cameras in flight
            except BaseException as exc:  # the detector gave up (StageError): the daemon stops
                # before the cameras are free again, so no other worker gets another batch to fail on
                self._worker_failed.set()
                self.control.fail("scheduler", exc)
            finally:
                for cam, _ in batch:
                    cam.in_flight = False
                self._finished.put(1)
                self.frame_ready.set()  # a slot is free: wake the scheduler

    def intake(self, cam: CameraSlot) -> None:
        """Take what ``cam``'s source has ready, without blocking; a failing source is contained."""
        if cam.ended:
            return
        try:
            if cam.every_frame:
                while len(cam.waiting) < cam.capacity:
                    frame = cam.source.next_frame(0.0)
                    if frame is None:
                        cam.ended = is_finite(cam.config) and cam.source.ended
                        return
                    self._observe_decode(cam.id, frame)
                    cam.waiting.append(Waiting(frame, time.monotonic()))
                return
            frame = cam.source.latest(cam.last_seq)
            if frame is None:
                cam.ended = is_finite(cam.config) and cam.source.ended
                return
            if cam.last_seq >= 0 and frame.seq > cam.last_seq + 1:
                self.metrics.frames_behind(cam.id, frame.seq - cam.last_seq - 1)  # replaced at the source
            cam.last_seq = frame.seq
            self._observe_decode(cam.id, frame)
            while len(cam.waiting) >= cam.capacity:
                cam.waiting.popleft()  # the drop policy: the oldest waiting frame of a camera that is behind
                self.metrics.frames_behind(cam.id)
            cam.waiting.append(Waiting(frame, time.monotonic()))
        except Exception as exc:
            self.metrics.stage_errors.labels("source").inc()
            log.warning("camera %s: taking a frame failed: %s", cam.id, exc, exc_info=True)

    def source_stats(self) -> None:
        """Scene-change skips happen inside the sources: copy their counts into the metrics."""
        for cam in self.cameras:
            try:
                health = cam.source.health
                count, busy = int(health.skipped_unchanged), int(health.skipped_busy)
            except Exception:
                continue
            if count > cam.unchanged:
                self.metrics.frames_unchanged(cam.id, count - cam.unchanged)
                cam.unchanged = count
            if busy > cam.busy_skips:  # dropped before decoding: behind, like the drops after it
                self.metrics.frames_behind(cam.id, busy - cam.busy_skips)
                cam.busy_skips = busy

    def _observe_decode(self, camera_id: str, frame: FrameLike) -> None:
        if frame.decode_s is not None:
            self.metrics.decode_seconds.labels(camera_id).observe(frame.decode_s)

    def batch_key(self, frame: FrameLike) -> tuple[int, int]:
        """Frames with the same key share a detector call: the model input size they letterbox to (one
        size for a fixed-size model; a stride-multiple rectangle per aspect ratio for a dynamic one)."""
        h, w = detector_frame(frame).shape[:2]
        preprocessor = self.detector.preprocessor
        if preprocessor is not None:
            return preprocessor.input_hw((h, w))
        return h, w

    def next_batch(self) -> list[tuple[CameraSlot, Waiting]]:
        """Up to batch_size waiting frames of one model input size (:meth:`batch_key`): the size of the
        oldest waiting frame, oldest first.

        Only each camera's leading run of frames of that size counts, so a camera whose resolution changed
        never has a later frame analysed before an earlier one.
        """
        heads = [cam for cam in self.cameras if cam.waiting and not cam.in_flight]
        if not heads:
            return []
        oldest = min(heads, key=lambda cam: cam.waiting[0].received)
        size = self.batch_key(oldest.waiting[0].frame)
        candidates: list[tuple[float, int, CameraSlot]] = []
        for index, cam in enumerate(heads):
            for waiting in cam.waiting:
                if self.batch_key(waiting.frame) != size:
                    break
                candidates.append((waiting.received, index, cam))
        candidates.sort(key=lambda c: (c[0], c[1]))
        batch = []
        for _, _, cam in candidates[: self.batch_size]:
            batch.append((cam, cam.waiting.popleft()))  # per camera, candidates come in waiting order
        return batch

    def carry_forward(self, cam: CameraSlot) -> None:
        """Zone gating: frames at the head of ``cam``'s queue in which nothing changed inside the zones go
        to the rules with the camera's last detections, without the model, unless the camera needs fresh
        ones (:meth:`pipeline.reporting.Reporter.needs_fresh`) or has none of this frame size yet."""
        while cam.waiting and cam.waiting[0].frame.zones_unchanged and cam.last is not None:
            if cam.in_flight:  # its previous frame is still in the detector: the rules get that first
                return
            detections, persons, hw = cam.last
            waiting = cam.waiting[0]
            if waiting.frame.hw != hw or self.needs_fresh(cam.id):
                return
            cam.waiting.popleft()
            self.metrics.frames_skipped.labels(cam.id, "carried").inc()
            self.put(Analysed(cam.id, waiting.frame, detections, waiting.received, persons, carried=True))

    def run_batch(self, batch: list[tuple[CameraSlot, Waiting]]) -> None:
        """Detect, then put each frame's result on the queue; the batch's cameras are in flight until
        then."""
        for cam, _ in batch:
            cam.in_flight = True
        try:
            self._detect_and_put(batch)
        finally:
            for cam, _ in batch:
                cam.in_flight = False

    def _detect_and_put(self, batch: list[tuple[CameraSlot, Waiting]]) -> None:
        # a model swapped in takes over at the start of this call: until then the current card says how
        # frames are shown to it (one batch at most sees the other model's input)
        images = [model_input(self.detector, waiting.frame, cam.zones) for cam, waiting in batch]
        caps = [crop_max_scale(cam.config, waiting.frame, self.detector) for cam, waiting in batch]
        started = time.monotonic()
        try:
            if any(cap is not None for cap in caps):
                results = self.detector.detect_batch(images, max_scale=caps)
            else:
                results = self.detector.detect_batch(images)
            if len(results) != len(images):
                raise StageError(f"detector returned {len(results)} results for {len(images)} frames")
            results = [to_full_frame(d, w.frame) for d, (_, w) in zip(results, batch, strict=True)]
        except Exception as exc:
            with self._failures_lock:
                self._detector_failures += 1
                failures = self._detector_failures
            self.metrics.stage_errors.labels("detector").inc()
            log.exception("detector failed on a batch of %d frame(s); the batch is skipped", len(images))
            if failures >= MAX_DETECTOR_FAILURES:
                raise StageError(f"the detector failed {failures} times in a row: {exc}") from exc
            return
        with self._failures_lock:
            self._detector_failures = 0
        self.metrics.inference_seconds.observe(time.monotonic() - started)
        self.metrics.batch_frames.observe(len(images))
        for (cam, waiting), detections in zip(batch, results, strict=True):
            self.metrics.frame_analysed(cam.id, started)
            self.metrics.frame_wait_seconds.labels(cam.id).observe(started - waiting.received)
            persons = None
            if self.person_split is not None:  # the detector ran lower for redaction: rules see the rest
                detections, persons = self.person_split(detections)
            cam.last = (detections, persons, waiting.frame.hw)
            self.put(Analysed(cam.id, waiting.frame, detections, waiting.received, persons))

    def put(self, item: object) -> bool:
        """Put on the results queue, waiting while it is full as long as the rules stage is alive."""
        while True:
            try:
                self.results.put(item, timeout=QUEUE_POLL_S)
                return True
            except queue.Full:
                if self.control.abandon.is_set() or not self.consumer_alive():
                    return False
