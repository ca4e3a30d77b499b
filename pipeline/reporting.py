"""The rules stage: analysed frames from the results queue, in order, through the rules; incident events
become evidence and case reports in the durable outbox; the verifier and the snapshots see each frame.

Events: ``first_seen`` writes the first-sight evidence (kept until the incident is confirmed or ends);
``confirmed`` writes the confirmation evidence and puts a :class:`CaseReport` (:func:`case_report`) with
all of it into the outbox; ``ended`` of a never-confirmed incident deletes its first-sight evidence.
"""

from __future__ import annotations

import datetime as dt
import logging
import queue
import time
from collections import OrderedDict, deque
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import TYPE_CHECKING

from api.case_schemas import Box, CaseReport
from pipeline.config import DaemonConfig
from pipeline.errors import OutboxError
from pipeline.metrics import DaemonMetrics
from pipeline.protocols import EventLike, RulesLike
from pipeline.snapshots import Snapshots
from pipeline.stages import END, QUEUE_POLL_S, Analysed, StageControl
from pipeline.zone_updates import ZoneUpdates

if TYPE_CHECKING:
    from pipeline.outbox import Outbox
    from pipeline.verification import Verifier

log = logging.getLogger(__name__)

EXPIRE_EVERY_S = 5.0  # live cameras only: how often incidents are aged on the wall clock (see maybe_expire)
MAX_REPORT_BOXES = 500  # CaseReport.boxes max_length
EVIDENCE_MEMORY = 1024  # open incidents whose first-sight pictures are remembered until confirmation
UNSAVED_MEMORY = 1000  # confirmed reports waiting for a failed outbox write to be retried

Images = list[tuple[str, Path]]  # (kind, path) evidence pictures for the outbox


def case_report(
    event: EventLike, class_names: Sequence[str], model_name: str, model_version: str
) -> CaseReport:
    """The case report of a ``confirmed`` event (its idempotency key is the incident id)."""
    boxes = event.boxes
    n = min(len(boxes), MAX_REPORT_BOXES)
    names = class_names
    records = [
        Box(
            xyxy=(float(x1), float(y1), float(x2), float(y2)),
            confidence=min(max(float(confidence), 0.0), 1.0),
            class_name=names[int(cid)] if 0 <= int(cid) < len(names) else str(int(cid)),
            track_id=None if boxes.track_id is None else int(boxes.track_id[i]),
        )
        for i, ((x1, y1, x2, y2), confidence, cid) in enumerate(
            zip(
                boxes.xyxy[:n].tolist(),
                boxes.confidence[:n].tolist(),
                boxes.class_id[:n].tolist(),
                strict=True,
            )
        )
    ]
    confirmed_at = event.confirmed_at or event.at
    return CaseReport(
        idempotency_key=event.incident_id,
        camera=event.camera_id,
        zone=event.zone_id,
        place=event.place,
        violation_type=event.violation_type,
        first_seen_at=min(event.first_seen_at, confirmed_at),
        confirmed_at=confirmed_at,
        confidence=min(max(float(event.confidence), 0.0), 1.0),
        boxes=records,
        model_name=model_name,
        model_version=model_version,
        sighting_count=max(int(event.sighting_count), 1),
    )


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
        model_name: str,
        model_version: str,
        metrics: DaemonMetrics,
        outbox: Outbox,
        verifier: Verifier,
        zones: ZoneUpdates,
        snapshots: Snapshots,
        results: queue.Queue[object],
        control: StageControl,
        producer_ended: Callable[[], bool],
        expire_on_wall_clock: bool,
    ) -> None:
        self.config = config
        self.rules = rules
        self.class_names = class_names
        self.model_name = model_name
        self.model_version = model_version
        self.metrics = metrics
        self.outbox = outbox
        self.verifier = verifier
        self.zones = zones
        self.snapshots = snapshots
        self.results = results
        self.control = control
        self.producer_ended = producer_ended
        self.expire_on_wall_clock = expire_on_wall_clock
        self._next_expire = 0.0
        self._first_sight: OrderedDict[str, Images] = OrderedDict()
        self._unsaved: deque[tuple[CaseReport, Images]] = deque(maxlen=UNSAVED_MEMORY)

    @property
    def unsaved_count(self) -> int:
        """Confirmed reports not yet in the outbox (its writes failed; retried)."""
        return len(self._unsaved)

    def run(self) -> None:
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
                    self.save_unsaved()
                    self.maybe_expire()
                    continue
                if item is END:
                    return
                assert isinstance(item, Analysed)
                self.analyse(item)
                self.maybe_expire()
        except BaseException as exc:
            self.control.fail("rules", exc)

    def analyse(self, item: Analysed) -> None:
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
                self.on_event(event, item)
            except Exception:
                self.metrics.stage_errors.labels("events").inc()
                log.exception("incident event %s %s could not be handled", event.kind, event.incident_id)
        if self.config.verification.enabled:
            try:
                self.verifier.observe(item.camera_id, frame.stream_time, frame.image, item.detections)
            except Exception:
                self.metrics.stage_errors.labels("verification").inc()
                log.exception("verification failed on camera %s", item.camera_id)
        self.snapshots.maybe_offer(item)

    def on_event(self, event: EventLike, item: Analysed) -> None:
        self.metrics.incident_events.labels(event.kind).inc()
        if event.kind == "first_seen":
            self._first_sight[event.incident_id] = self.evidence(event, item)
            while len(self._first_sight) > EVIDENCE_MEMORY:
                self._first_sight.popitem(last=False)
        elif event.kind == "confirmed":
            images = self._first_sight.pop(event.incident_id, []) + self.evidence(event, item)
            report = case_report(event, self.class_names, self.model_name, self.model_version)
            try:
                self.outbox.put(report, images)
            except OutboxError:
                log.exception("case %s could not be written to the outbox; retrying", report.idempotency_key)
                self._unsaved.append((report, images))
                return
            self.metrics.frame_to_outbox_seconds.observe(time.monotonic() - item.received)
            log.info(
                "case queued: %s %s at %s/%s (place %s), first seen %s, confirmed %s",
                report.idempotency_key,
                report.violation_type,
                report.camera,
                report.zone,
                report.place,
                report.first_seen_at.isoformat(),
                report.confirmed_at.isoformat(),
            )
        elif event.kind == "ended":
            self.on_ended(event)

    def on_ended(self, event: EventLike) -> None:
        for _, path in self._first_sight.pop(event.incident_id, []):  # never confirmed: not evidence
            path.unlink(missing_ok=True)

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

    def evidence(self, event: EventLike, item: Analysed) -> Images:
        from pipeline.evidence import render_evidence

        try:
            return render_evidence(
                item.frame.image, event, item.detections, self.class_names, self.config.evidence
            )
        except Exception:  # a case without pictures is better than no case
            self.metrics.stage_errors.labels("evidence").inc()
            log.exception("evidence for incident %s (%s) failed", event.incident_id, event.kind)
            return []

    def save_unsaved(self) -> None:
        """Retry outbox writes that failed (a full disk that was cleared, a locked file)."""
        while self._unsaved:
            report, images = self._unsaved[0]
            try:
                self.outbox.put(report, images)
            except OutboxError as exc:
                log.warning("%d case(s) still not in the outbox: %s", len(self._unsaved), exc)
                return
            self._unsaved.popleft()
