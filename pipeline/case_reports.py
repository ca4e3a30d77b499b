"""An incident's messages to the case store: the :class:`CaseReport` at confirmation, then
:class:`IncidentUpdate` for its later sightings (at most one per ``incidents.sighting_report_s`` of stream
time) and always one for its end, each with the event code of the object's class.

This module decides *what* to send and *which* pictures are worth sending; the daemon renders them and
puts everything in the outbox. Only confirmed incidents have a case, so only they get updates.
"""

from __future__ import annotations

import datetime as dt
import logging
from collections import OrderedDict
from collections.abc import Callable, Sequence
from dataclasses import dataclass

from contract.device_config import DeviceViolationType
from contract.reports import BEST_EVIDENCE_MARGIN, Box, CaseReport, IncidentUpdate
from detector.detections import Detections
from pipeline.config import DaemonConfig
from pipeline.protocols import EventLike

log = logging.getLogger(__name__)

MAX_REPORT_BOXES = 500  # CaseReport.boxes max_length
REPORTED_MEMORY = 4096  # confirmed incidents remembered for their updates (bounded; the oldest is forgotten)


class EventCodes:
    """Model class -> event code, as configured (``detector.classes``) and checked against the store.

    The store's violation types arrive with the device configuration; a code the store does not have, or
    has for another violation type, is logged and not sent (the store then files under the type's default
    code) until a later configuration has it. Read from the rules thread, replaced from the sync thread:
    the usable map is swapped as a whole.
    """

    def __init__(self, configured: dict[str, str], violation_of: dict[str, str]) -> None:
        self.configured = dict(configured)
        self.violation_of = dict(violation_of)
        self._usable = dict(configured)

    def code_for(self, class_name: str) -> str | None:
        return self._usable.get(class_name)

    def check(self, violation_types: Sequence[DeviceViolationType]) -> list[str]:
        """Keep the configured codes the store knows for the class's violation type; the problems."""
        known = {v.code: v.pipeline_type for v in violation_types}
        usable, problems = {}, []
        for name, code in self.configured.items():
            violation = self.violation_of.get(name)
            if code not in known:
                problems.append(
                    f"detector.classes.{name}: event code {code!r} is not an active violation type in the "
                    f"case store (it has: {', '.join(sorted(known)) or 'none'}); reports use the default code"
                )
            elif known[code] != violation:
                problems.append(
                    f"detector.classes.{name}: event code {code!r} is a {known[code]} code in the case "
                    f"store, not {violation}; reports use the default code"
                )
            else:
                usable[name] = code
        for problem in problems:
            log.error("%s", problem)
        self._usable = usable
        return problems


@dataclass(slots=True)
class _Reported:
    last_update_at: dt.datetime  # stream time of the report or of the last sighting sent
    best_score: float  # of the best picture sent so far


class CaseReporter:
    """Turns incident events into the store's messages. Not thread-safe: the rules thread calls it."""

    def __init__(
        self,
        config: DaemonConfig,
        class_names: Sequence[str],
        *,
        model_name: str,
        model_version: str,
        event_codes: EventCodes | None = None,
        identity: Callable[[], tuple[str, str]] | None = None,
    ) -> None:
        self.class_names = list(class_names)
        self.model_name = model_name
        self.model_version = model_version
        # the live model's (name, version) now: a model swapped in (pipeline.model_updates) reports as itself
        self.identity = identity
        self.sighting_report_s = config.incidents.sighting_report_s
        self.event_codes = event_codes or EventCodes(
            config.detector.event_codes, config.detector.violation_of
        )
        self._reported: OrderedDict[str, _Reported] = OrderedDict()

    # --- what to send ---

    def report(self, event: EventLike, score: float, frame_hw: tuple[int, int] | None = None) -> CaseReport:
        """The case report of a ``confirmed`` event; remembers the incident for its updates. ``frame_hw``
        (height, width of the analysed frame) lets the store normalise the boxes (false-alarm memory)."""
        confirmed_at = event.confirmed_at or event.at
        self._reported[event.incident_id] = _Reported(confirmed_at, score)
        while len(self._reported) > REPORTED_MEMORY:
            self._reported.popitem(last=False)
        model_name, model_version = (
            self.identity() if self.identity else (self.model_name, self.model_version)
        )
        return CaseReport(
            idempotency_key=event.incident_id,
            camera=event.camera_id,
            zone=event.zone_id,
            place=event.place,
            violation_type=event.violation_type,
            event_code=self.event_code(event.boxes),
            first_seen_at=min(event.first_seen_at, confirmed_at),
            confirmed_at=confirmed_at,
            confidence=_unit(event.confidence),
            boxes=self.boxes(event.boxes),
            model_name=model_name,
            model_version=model_version,
            sighting_count=max(int(event.sighting_count), 1),
            frame_wh=None if frame_hw is None else (int(frame_hw[1]), int(frame_hw[0])),
        )

    def sighting_due(self, event: EventLike) -> bool:
        """Whether this ``sighting`` event of a reported incident should go to the store now."""
        reported = self._reported.get(event.incident_id)
        if reported is None:
            return False
        return (event.at - reported.last_update_at).total_seconds() >= self.sighting_report_s

    def better_picture(self, event: EventLike, score: float) -> bool:
        """Whether a picture scoring ``score`` beats the incident's best one sent (worth uploading)."""
        reported = self._reported.get(event.incident_id)
        return reported is not None and score >= reported.best_score + BEST_EVIDENCE_MARGIN

    def sighting(self, event: EventLike, score: float | None) -> IncidentUpdate:
        """The update of a due ``sighting`` event; ``score`` when a better picture goes with it."""
        reported = self._reported[event.incident_id]
        reported.last_update_at = event.at
        if score is not None:
            reported.best_score = max(reported.best_score, score)
        return self._update(event, "sighting", event.at, f"s{int(event.sighting_count)}")

    def ended(self, event: EventLike) -> IncidentUpdate | None:
        """The update of an ``ended`` event, for a reported incident (``None`` for one never confirmed)."""
        if self._reported.pop(event.incident_id, None) is None and event.confirmed_at is None:
            return None
        last_seen = event.last_seen_at or event.at
        return self._update(event, "ended", last_seen, "end")

    def _update(self, event: EventLike, kind: str, at: dt.datetime, suffix: str) -> IncidentUpdate:
        return IncidentUpdate.model_validate(
            {
                "idempotency_key": f"{event.incident_id}:{suffix}",
                "incident_key": event.incident_id,
                "kind": kind,
                "at": at,
                "sighting_count": max(int(event.sighting_count), 1),
                "confidence": _unit(event.confidence) if len(event.boxes) else None,
                "boxes": self.boxes(event.boxes),
            }
        )

    # --- parts ---

    def class_name(self, class_id: int) -> str:
        names = self.class_names
        return names[class_id] if 0 <= class_id < len(names) else str(class_id)

    def event_code(self, boxes: Detections) -> str | None:
        """The event code of the most confident offending object's class (None: the store's default)."""
        if not len(boxes):
            return None
        best = int(boxes.confidence.argmax())
        return self.event_codes.code_for(self.class_name(int(boxes.class_id[best])))

    def boxes(self, boxes: Detections) -> list[Box]:
        n = min(len(boxes), MAX_REPORT_BOXES)
        return [
            Box(
                xyxy=(float(x1), float(y1), float(x2), float(y2)),
                confidence=_unit(confidence),
                class_name=self.class_name(int(cid)),
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


def _unit(value: float) -> float:
    return min(max(float(value), 0.0), 1.0)
