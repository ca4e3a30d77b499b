"""The rules stage: analysed frames from the results queue, in order, through the rules; incident events
become evidence, case reports and incident updates in the durable outbox; the verifier and the snapshots
see each frame.

Events: ``first_seen`` writes the first-sight evidence (kept until the incident is confirmed or ends);
``confirmed`` writes the confirmation evidence and puts a :class:`CaseReport` with all of it into the
outbox; a due ``sighting`` of a reported incident puts an :class:`IncidentUpdate` (with a picture when it
is a better view); ``ended`` puts the end of a reported incident, or deletes the first-sight evidence of a
never-confirmed one. What to send is :class:`pipeline.case_reports.CaseReporter`'s decision.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import functools
import logging
import queue
import time
from collections import OrderedDict, deque
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from contract.device_config import UNKNOWN_OBJECT
from contract.reports import FRAME_BOXES, CaseReport, IncidentUpdate
from pipeline.case_reports import CaseReporter
from pipeline.config import DaemonConfig, ZoneConfig
from pipeline.errors import OutboxError
from pipeline.event_writer import EventWriter
from pipeline.evidence import DEFAULT_STAMP_TIMEZONE, evidence_score
from pipeline.metrics import DaemonMetrics
from pipeline.model_input import model_input
from pipeline.protocols import DetectorLike, EventLike, RulesLike
from pipeline.scheduler import to_full_frame
from pipeline.snapshots import Snapshots
from pipeline.stages import END, QUEUE_POLL_S, Analysed, StageControl
from pipeline.substream import full_view, scaled_event
from pipeline.zone_updates import ZoneUpdates

if TYPE_CHECKING:
    from detector.detections import Detections
    from pipeline.clips import ClipRecorder
    from pipeline.outbox import Outbox, QueuedImage
    from pipeline.shadow import ShadowComparison
    from pipeline.static_changes import StaticChanges
    from pipeline.suppressions import SuppressionFilter
    from pipeline.verification import Verifier

log = logging.getLogger(__name__)

EXPIRE_EVERY_S = 5.0  # live cameras only: how often incidents are aged on the wall clock (see maybe_expire)
EVIDENCE_MEMORY = 1024  # open incidents whose first-sight pictures are remembered until confirmation
UNSAVED_MEMORY = 1000  # reports and updates waiting for a failed outbox write to be retried

Images = list["QueuedImage"]  # (kind, path[, score]) evidence pictures for the outbox


class Reporter:
    """The ``rules`` thread's work (:meth:`run`): until :data:`pipeline.stages.END`, or until the scheduler
    (``producer_ended``) is gone without sending it.

    ``expire_on_wall_clock``: incidents end on stream time, when frames come; with only live cameras,
    stream time follows the wall clock, so this stage also ends them while a camera sends nothing at all.
    """

    def __init__(
        self,
        config: DaemonConfig,
        rules: RulesLike,
        *,
        class_names: Sequence[str],
        case_reporter: CaseReporter,
        metrics: DaemonMetrics,
        outbox: Outbox,
        verifier: Verifier,
        zones: ZoneUpdates,
        snapshots: Snapshots,
        results: queue.Queue[object],
        control: StageControl,
        producer_ended: Callable[[], bool],
        expire_on_wall_clock: bool,
        suppressions: SuppressionFilter | None = None,
        static: StaticChanges | None = None,
        clips: ClipRecorder | None = None,
        shadow: ShadowComparison | None = None,
        event_queue: int = 0,
        detection_behind: Callable[[], bool] | None = None,
        event_cpu_share: float = 1.0,
        event_queue_bytes: int | None = None,
    ) -> None:
        self.shadow = shadow  # a shadow model's run beside the live one (pipeline.shadow)
        self.config = config
        self.static = static
        self.clips = clips  # evidence clips of the cameras that keep them (cut on this thread)
        self.rules = rules
        self.class_names = class_names
        self.case_reporter = case_reporter
        self.metrics = metrics
        self.outbox = outbox
        self.verifier = verifier
        self.zones = zones
        self.snapshots = snapshots
        self.results = results
        self.control = control
        self.producer_ended = producer_ended
        self.expire_on_wall_clock = expire_on_wall_clock
        self.suppressions = suppressions  # the false-alarm memory: matching detections never reach the rules
        self._next_expire = 0.0
        self._cameras = {camera.id: camera for camera in config.cameras}  # each camera's redaction
        self._first_sight: OrderedDict[str, Images] = OrderedDict()
        # camera -> incidents seen but not yet confirmed: zone gating runs the model for these cameras
        self._unconfirmed: dict[str, set[str]] = {}
        self._unsaved: deque[tuple[CaseReport | IncidentUpdate, Images]] = deque(maxlen=UNSAVED_MEMORY)
        # event_queue > 0: evidence and outbox writes on a thread of their own (pipeline.event_writer), so a
        # burst of confirmations never holds the rules; 0: the writer is never started and writes here,
        # each before the next frame
        self.writer = EventWriter(
            event_queue,
            control,
            on_idle=self._writer_idle,
            on_error=self._event_failed,
            behind=detection_behind,
            cpu_share=event_cpu_share,
            on_pause=metrics.events_paused_seconds.inc,
            capacity_bytes=event_queue_bytes,
        )

    def _stamp_timezone(self, camera_id: str) -> str:
        """The camera's time zone: evidence stamps show its local time."""
        camera = self._cameras.get(camera_id)
        return camera.timezone if camera is not None else DEFAULT_STAMP_TIMEZONE

    @property
    def unsaved_count(self) -> int:
        """Reports and updates not yet in the outbox (its writes failed; retried)."""
        return len(self._unsaved)

    def run(self) -> None:
        if self.writer.capacity > 0:
            self.writer.start()
        try:
            self._run()
        finally:  # a normal end writes every event first: nothing detected is lost
            self.writer.finish(drain=not self.control.abandon.is_set())

    def _run(self) -> None:
        try:
            while True:
                self.zones.apply(self.on_ended)  # between two frames: a frame sees old zones or new ones
                try:
                    item = self.results.get(timeout=QUEUE_POLL_S)
                except queue.Empty:
                    if self.control.abandon.is_set():
                        return
                    if self.producer_ended():
                        return  # the scheduler ended without its sentinel reaching us
                    if not self.writer.running:
                        self._writer_idle()
                    self.maybe_expire()
                    continue
                if item is END:
                    return
                assert isinstance(item, Analysed)
                self.analyse(item)
                self.maybe_expire()
                if not self.writer.running:
                    self.poll_clips()
        except BaseException as exc:
            self.control.fail("rules", exc)

    def analyse(self, item: Analysed) -> None:
        frame = item.frame
        item = self.with_static_changes(item)
        started = time.monotonic()
        frame_hw = frame.hw  # never converts the picture: most frames are never looked at
        try:
            detections = self.unsuppressed(item, frame_hw)
            events = self.rules.update(item.camera_id, frame.stream_time, detections, frame_hw)
        except Exception:
            self.metrics.stage_errors.labels("rules").inc()
            log.exception("rules failed on camera %s at %s; frame skipped", item.camera_id, frame.stream_time)
            return
        self.metrics.rules_seconds.observe(time.monotonic() - started)
        # the pictures, and the training frame's boxes, show what the rules saw: never a false alarm an
        # operator voided (a training set would label it again)
        seen = item if detections is item.detections else dataclasses.replace(item, detections=detections)
        for event in events:
            try:
                self.on_event(event, seen)
            except Exception:
                self.metrics.stage_errors.labels("events").inc()
                log.exception("incident event %s %s could not be handled", event.kind, event.incident_id)
        if self.config.verification.enabled and self.verifier.watches_camera(item.camera_id):
            try:
                self.verifier.observe(
                    item.camera_id, frame.stream_time, frame.image, item.detections, item.persons_xyxy
                )
            except Exception:
                self.metrics.stage_errors.labels("verification").inc()
                log.exception("verification failed on camera %s", item.camera_id)
        self.snapshots.maybe_offer(item)
        self.run_shadow(item, detections, events)

    def run_shadow(self, item: Analysed, live: Detections, events: Sequence[EventLike]) -> None:
        """The shadow model on its share of frames; its events are recorded there, never reported."""
        if self.shadow is None or self.shadow.version_id is None:
            return
        frame = item.frame

        def zones() -> tuple[ZoneConfig, ...]:
            return self.zones.zones(item.camera_id)

        def run(detector: DetectorLike) -> Detections:  # shown the frame as its own card asks
            return to_full_frame(detector.detect_batch([model_input(detector, frame, zones)])[0], frame)

        try:
            self.shadow.observe(item.camera_id, frame.stream_time, frame.image, events, run)
            self.shadow.maybe_upload()
        except Exception:
            self.metrics.stage_errors.labels("shadow").inc()
            log.exception("shadow model failed on camera %s; the live analysis goes on", item.camera_id)

    def unsuppressed(self, item: Analysed, frame_hw: tuple[int, int]) -> Detections:
        """The frame's detections less the remembered false alarms (all of them if the filter fails)."""
        if self.suppressions is None:
            return item.detections
        try:
            zones = self.zones.zones(item.camera_id)
            return self.suppressions.apply(item.camera_id, item.detections, frame_hw, zones)
        except Exception:
            self.metrics.stage_errors.labels("suppressions").inc()
            log.exception("false-alarm filter failed on camera %s; detections kept", item.camera_id)
            return item.detections

    def with_static_changes(self, item: Analysed) -> Analysed:
        """``item`` with the camera's static changes (``unknown_object``) added to its detections; as it is
        when static change is off, or fails (the model's detections still count)."""
        if self.static is None or not self.static.covers(item.camera_id):
            return item  # and the picture is never converted
        started = time.monotonic()
        try:
            detections = self.static.detect(
                item.camera_id, item.frame.image, item.frame.stream_time, item.detections
            )
        except Exception:
            self.metrics.stage_errors.labels("static_change").inc()
            log.exception("static change failed on camera %s at %s", item.camera_id, item.frame.stream_time)
            return item
        self.metrics.static_change_seconds.observe(time.monotonic() - started)
        return dataclasses.replace(item, detections=detections)

    def _writer_idle(self) -> None:
        """Between events, on the thread that writes them: outbox retries and evidence clips."""
        self.save_unsaved()
        self.poll_clips()

    def _event_failed(self) -> None:
        self.metrics.stage_errors.labels("events").inc()

    def on_event(self, event: EventLike, item: Analysed) -> None:
        """Bookkeeping the rules and the scheduler read (which incidents await confirmation) now; the
        pictures and the outbox write on the event writer, in order."""
        self.metrics.incident_events.labels(event.kind).inc()
        if event.kind == "ended":
            self.on_ended(event)
            return
        if event.kind == "first_seen":
            self._unconfirmed.setdefault(event.camera_id, set()).add(event.incident_id)
        elif event.kind == "confirmed":
            self._unconfirmed.get(event.camera_id, set()).discard(event.incident_id)
        self.writer.submit(functools.partial(self._write_event, event, item), nbytes=held_bytes(item.frame))

    def _write_event(self, event: EventLike, item: Analysed) -> None:
        reporter = self.case_reporter
        if event.kind == "first_seen":
            self._first_sight[event.incident_id] = self.evidence(event, item)
            while len(self._first_sight) > EVIDENCE_MEMORY:
                self._first_sight.popitem(last=False)
        elif event.kind == "confirmed":
            score = evidence_score(item.frame.image, event.boxes)
            images = self._first_sight.pop(event.incident_id, []) + self.evidence(event, item, score)
            frame_hw = item.frame.hw
            report = reporter.report(event, score, frame_hw)
            if self.clips is not None:
                self.clips.request(
                    report.idempotency_key, event.camera_id, report.first_seen_at, report.confirmed_at
                )
            if self.queue(report, images):
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
        elif event.kind == "sighting" and reporter.sighting_due(event):
            score = evidence_score(item.frame.image, event.boxes)
            images = self.evidence(event, item, score) if reporter.better_picture(event, score) else []
            self.queue(reporter.sighting(event, score if images else None), images)

    def queue(self, message: CaseReport | IncidentUpdate, images: Images) -> bool:
        """Put a report or an update in the outbox; kept in memory and retried when the outbox fails."""
        try:
            self._put(message, images)
        except OutboxError:
            log.exception("%s could not be written to the outbox; retrying", message.idempotency_key)
            self._unsaved.append((message, images))
            return False
        return True

    def _put(self, message: CaseReport | IncidentUpdate, images: Images) -> None:
        if isinstance(message, CaseReport):
            self.outbox.put(message, images)
        else:
            self.outbox.put_update(message, images)

    def needs_fresh(self, camera_id: str) -> bool:
        """Zone gating: whether ``camera_id``'s frames must go through the model even when its zones did not
        change: an incident there awaits confirmation, or a resolved case there is being verified.
        Called from the scheduler thread (reads only)."""
        if self._unconfirmed.get(camera_id):
            return True
        return bool(self.config.verification.enabled and self.verifier.watches_camera(camera_id))

    def on_ended(self, event: EventLike) -> None:
        self._unconfirmed.get(event.camera_id, set()).discard(event.incident_id)
        self.writer.submit(functools.partial(self._write_ended, event))

    def _write_ended(self, event: EventLike) -> None:
        for image in self._first_sight.pop(event.incident_id, []):  # never confirmed: not evidence
            Path(image[1]).unlink(missing_ok=True)
        update = self.case_reporter.ended(event)
        if update is not None:
            self.queue(update, [])
            log.info("incident %s ended: last seen %s", event.incident_id, update.at.isoformat())

    def maybe_expire(self) -> None:
        """Live cameras only: end incidents whose quiet period ran out while no frame came (a dead camera)."""
        now = time.monotonic()
        if not self.expire_on_wall_clock or now < self._next_expire:
            return
        self._next_expire = now + EXPIRE_EVERY_S
        try:
            events = self.rules.expire(dt.datetime.now(dt.UTC))
            for event in events:
                self.metrics.incident_events.labels(event.kind).inc()
                self.on_ended(event)
        except Exception:
            self.metrics.stage_errors.labels("rules").inc()
            log.exception("ending quiet incidents failed")

    def poll_clips(self, *, final: bool = False) -> None:
        """Write the evidence clips whose window is buffered (all of them when ``final``)."""
        if self.clips is None:
            return
        try:
            self.clips.poll(final=final)
        except Exception:
            self.metrics.stage_errors.labels("evidence").inc()
            log.exception("evidence clips failed")

    def evidence(self, event: EventLike, item: Analysed, score: float | None = None) -> Images:
        """The event's pictures; the full-frame view carries ``score`` (the crop is never the best view)."""
        from pipeline.evidence import render_evidence

        try:
            # a camera with a substream: its main stream's keyframe, decoded now (pipeline.substream)
            view = full_view(item.frame.image, item.frame.full, item.detections, item.persons_xyxy)
            written = render_evidence(
                view.image,
                scaled_event(event, view) if view.scaled else event,
                view.detections,
                self.class_names,
                self.config.evidence,
                policy=self.config.evidence.redaction_for(self._cameras.get(event.camera_id)),
                timezone=self._stamp_timezone(event.camera_id),
                persons_xyxy=view.persons_xyxy,
            )
        except Exception:  # a case without pictures is better than no case
            self.metrics.stage_errors.labels("evidence").inc()
            log.exception("evidence for incident %s (%s) failed", event.incident_id, event.kind)
            return []
        # neither the close-up nor the undrawn training frame is ever the case's best view; the training
        # frame carries everything detected in it, so a training set labels the whole frame
        return [
            (kind, path, None, self.frame_boxes(view.detections))
            if kind == "frame"
            else (kind, path, None if kind == "crop" else score)
            for kind, path in written
        ]

    def frame_boxes(self, detections: Detections) -> str:
        """The JSON (contract.reports.FrameBoxes) of a training frame's ``detections`` (in its pixels) of
        the classes this box maps to a violation and its static changes, the most confident first: the
        model's other classes (and people) are none of the store's business."""
        wanted = {*self.config.detector.classes, UNKNOWN_OBJECT}
        names = self.class_names
        mask = np.array(
            [0 <= c < len(names) and names[c] in wanted for c in detections.class_id.tolist()], bool
        ).reshape(-1)
        kept = detections[mask]
        order = np.argsort(-kept.confidence, kind="stable")
        return FRAME_BOXES.dump_json(self.case_reporter.boxes(kept[order]), exclude_none=True).decode()

    def save_unsaved(self) -> None:
        """Retry outbox writes that failed (a full disk that was cleared, a locked file)."""
        while self._unsaved:
            message, images = self._unsaved[0]
            try:
                self._put(message, images)
            except OutboxError as exc:
                log.warning("%d report(s) or update(s) still not in the outbox: %s", len(self._unsaved), exc)
                return
            self._unsaved.popleft()


def held_bytes(frame: object) -> int:
    """What a queued event's frame holds in memory (:attr:`pipeline.sources.SampledFrame.nbytes`; a frame
    without that figure: its picture's bytes)."""
    nbytes = getattr(frame, "nbytes", None)
    if isinstance(nbytes, int):
        return nbytes
    image = getattr(frame, "image", None)
    return int(image.nbytes) if isinstance(image, np.ndarray) else 0
