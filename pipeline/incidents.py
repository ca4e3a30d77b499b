"""Zone and dwell rules to incidents: one open incident per (place, violation type), confirmed once.

Per frame of one camera, :meth:`RuleEngine.update`:

1. keeps the detections whose class maps to a violation type (``detector.classes``), pairs each with the zones
   its anchor lies in (:mod:`pipeline.zones`, a mask lookup), and keeps the pairs whose zone has a rule for
   that type with at least the rule's ``min_confidence`` (a rule that sets none: the model card's working
   confidence for the class, ``thresholds.classes``, else the contract's default);
2. matches the pairs with the camera's stationary tracks (:mod:`pipeline.tracker`, one block per
   zone x violation type); a track's *stay* starts when it was first seen at its anchor box, or when the
   rule's schedule last became active in the camera's time zone, whichever is later. A stay survives gaps
   between sightings up to ``incidents.gap_tolerance_s`` (stream time; a patrol camera's own, longer than a
   turn: :func:`pipeline.config.camera_gap_tolerance`) and counts only while the track is
   seen in at least ``incidents.min_seen_ratio`` of the camera's recent analysed frames;
3. updates the incidents of the places those zones belong to.

Incident lifecycle (stream time throughout, never frame counts):

* ``first_seen``: an object has stayed ``first_seen_after_s`` (at most the dwell) in a zone of a place with no
  open incident for that type. The incident id (uuid4 hex, the case's idempotency key) is minted here, once.
  Passing traffic never gets this far, so it writes no evidence.
* ``confirmed``: an object of the incident has stayed, stationary, for the rule's ``dwell_s``. Emitted once
  per incident; only this event leads to a case report.
* ``sighting``: after confirmation, an object that has stayed ``dwell_s`` is seen again; emitted at most every
  ``sighting_every_s`` per incident (the count is kept for every frame).
* ``ended``: a confirmed incident ends after ``quiet_period_s`` with no object staying ``dwell_s`` seen in the
  place; an unconfirmed one ends as soon as its objects are gone (no sighting for ``gap_tolerance_s``), so a
  car that stopped briefly does not hold the place open.

Two cameras (or two zones) whose zones share a ``place`` share the incident: the first to confirm confirms it,
the others' sightings update it.
"""

from __future__ import annotations

import datetime as dt
import logging
import uuid
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from types import MappingProxyType
from typing import Literal
from zoneinfo import ZoneInfo

import numpy as np
import numpy.typing as npt

from contract.device_config import DEFAULT_MIN_CONFIDENCE, UNKNOWN_OBJECT
from contract.schedule import Schedule
from detector.card import ModelCard
from detector.detections import Detections
from pipeline.config import CameraConfig, DaemonConfig, ZoneConfig, camera_gap_tolerance
from pipeline.errors import RuleConfigError, StreamTimeError, UnknownCameraError
from pipeline.tracker import StationaryTracker, TrackerStep, within_gap
from pipeline.zones import CameraZones, ZoneMasks

log = logging.getLogger(__name__)

_NO_WORKING_POINTS: Mapping[str, float] = MappingProxyType({})

EventKind = Literal["first_seen", "confirmed", "sighting", "ended"]

#: A static change whose box lies at least this much (share of its own area) inside a detection the zone has
#: a rule for is that object, seen by the model (a parked car's change region is the car's box, give or take
#: its shadow); half keeps a pile beside a car, which overlaps it only at an edge.
STATIC_COVERED_BY_RULED = 0.5

#: Time going backwards by more than this on one camera (a file restarted, a clock reset) resets its tracks.
CLOCK_SLACK_S = 1.0


@dataclass(frozen=True, slots=True)
class IncidentEvent:
    """Something that happened to an incident: evidence (first_seen, confirmed), case reports (confirmed).

    Attributes:
        kind: ``first_seen``, ``confirmed``, ``sighting`` or ``ended``.
        incident_id: uuid4 hex minted once per incident: the case report's idempotency key.
        camera_id, zone_id: where this event was seen (for ``ended``: where the incident was last seen).
        place: the zones' responsibility key; one open incident per (place, violation_type).
        violation_type: e.g. ``illegal_parking``.
        first_seen_at: when the offending object started staying (aware UTC, stream time).
        at: stream time of the frame this event comes from (aware UTC); for ``confirmed``, the confirmation.
        confidence: highest confidence among ``boxes`` (0 for ``ended``).
        boxes: the offending objects in frame pixels, with ``track_id`` set (empty for ``ended``).
        polygon_px: (K, 2) int32 polygon of ``zone_id`` in frame pixels, for drawing.
        sighting_count: frames in which the incident's objects were seen staying so far.
        confirmed_at: when the incident was confirmed, None until then.
        last_seen_at: stream time of the last frame its objects were seen staying in.
        zones_px: every zone polygon of the camera in frame pixels (the training frame keeps them sharp);
            empty for ``ended``.
    """

    kind: EventKind
    incident_id: str
    camera_id: str
    zone_id: str
    place: str
    violation_type: str
    first_seen_at: dt.datetime
    at: dt.datetime
    confidence: float
    boxes: Detections
    polygon_px: npt.NDArray[np.int32]
    sighting_count: int = 1
    confirmed_at: dt.datetime | None = None
    last_seen_at: dt.datetime | None = None
    zones_px: tuple[npt.NDArray[np.int32], ...] = ()


@dataclass(slots=True)
class _Incident:
    incident_id: str
    place: str
    violation_type: str
    first_seen_s: float
    # Last frame with an object that stayed first_seen_after_s (unconfirmed) or dwell_s (confirmed).
    last_seen_s: float
    camera_id: str
    zone_id: str
    polygon_px: npt.NDArray[np.int32]
    sighting_count: int = 0
    confirmed_s: float | None = None
    last_event_s: float = field(default=-np.inf)


@dataclass(frozen=True, slots=True)
class _Seen:
    """One frame of one camera: the tracks seen (rows of ``step``) with their zone, type and stay.

    ``stay_s`` is -inf where the rule's schedule is inactive; ``settled``/``staying``: stayed at least the
    first-seen time / the dwell; ``key``: place index x violation index, the incident key.
    """

    masks: ZoneMasks
    detections: Detections
    pair_detection: npt.NDArray[np.intp]
    step: TrackerStep
    zone: npt.NDArray[np.intp]
    violation: npt.NDArray[np.intp]
    stay_s: npt.NDArray[np.float64]
    settled: npt.NDArray[np.bool_]
    staying: npt.NDArray[np.bool_]
    key: npt.NDArray[np.int64]


def box_coverage(
    inner_xyxy: npt.NDArray[np.floating], outer_xyxy: npt.NDArray[np.floating]
) -> npt.NDArray[np.float64]:
    """(P, R) share of each ``inner`` box's area that lies inside each ``outer`` box (0 for empty boxes)."""
    a = inner_xyxy.astype(np.float64)[:, None, :]
    b = outer_xyxy.astype(np.float64)[None, :, :]
    w = np.clip(np.minimum(a[..., 2], b[..., 2]) - np.maximum(a[..., 0], b[..., 0]), 0, None)
    h = np.clip(np.minimum(a[..., 3], b[..., 3]) - np.maximum(a[..., 1], b[..., 1]), 0, None)
    area = (a[..., 2] - a[..., 0]) * (a[..., 3] - a[..., 1])
    share: npt.NDArray[np.float64] = np.divide(w * h, area, out=np.zeros_like(w * h), where=area > 0)
    return share


def working_points(card: ModelCard | None) -> Mapping[str, float]:
    """A model card's class -> working confidence (``thresholds.classes``); none for a detector without a
    card."""
    return card.thresholds.classes if card is not None else _NO_WORKING_POINTS


def class_confidence_table(
    class_names: Sequence[str], working: Mapping[str, float]
) -> npt.NDArray[np.float32]:
    """(n_classes,) the confidence a detection of each class needs where its rule sets none: its working
    confidence, else the contract's default."""
    table = np.full(len(class_names), DEFAULT_MIN_CONFIDENCE, np.float32)
    for index, name in enumerate(class_names):
        if name in working:
            table[index] = working[name]
    return table


def _utc(seconds: float) -> dt.datetime:
    return dt.datetime.fromtimestamp(seconds, dt.UTC)


def _class_violation(
    config: DaemonConfig, class_names: list[str], violations: list[str]
) -> npt.NDArray[np.intp]:
    """(n_classes,) violation index of each model class, -1 where ``detector.classes`` does not map it."""
    missing = sorted(set(config.detector.classes) - set(class_names))
    if missing:
        shown = ", ".join(class_names[:12]) + (", ..." if len(class_names) > 12 else "")
        raise RuleConfigError(
            f"detector.classes names {', '.join(map(repr, missing))}, which the model "
            f"{config.detector.model.name} does not have (its classes: {shown})"
        )
    table = np.full(len(class_names), -1, np.intp)
    for name, violation in config.detector.violation_of.items():
        table[class_names.index(name)] = violations.index(violation)
    return table


class _CameraRules:
    """Zones, rule tables and the stationary tracker of one camera. Arrays are indexed [zone, violation]."""

    def __init__(
        self,
        camera: CameraConfig,
        violations: list[str],
        place_index: dict[str, int],
        tracker: StationaryTracker,
        first_seen_after_s: float,
    ) -> None:
        self.camera = camera
        self.camera_id = camera.id
        self.zone_configs = tuple(camera.zones)
        self.tz = ZoneInfo(camera.timezone)
        self.zones = CameraZones(camera.id, camera.zones)
        n_zones, n_viol = len(camera.zones), len(violations)
        self.n_violations = n_viol
        self.has_rule = np.zeros((n_zones, n_viol), np.bool_)
        self.dwell_s = np.full((n_zones, n_viol), np.inf)
        # NaN: the rule sets none, the class's working confidence applies (RuleEngine.class_confidence).
        self.min_confidence = np.ones((n_zones, n_viol), np.float32)
        self.schedules: list[tuple[int, int, Schedule, ZoneInfo]] = []
        for z, zone in enumerate(camera.zones):
            zone_tz = ZoneInfo(zone.timezone) if zone.timezone else self.tz  # store zones: the store's
            for v_name, rule in zone.effective_rules.items():
                if v_name not in violations:
                    continue  # no detector class maps to it; config.unused_rules() already warned
                v = violations.index(v_name)
                self.has_rule[z, v] = True
                self.dwell_s[z, v] = rule.dwell_s
                self.min_confidence[z, v] = np.nan if rule.min_confidence is None else rule.min_confidence
                self.schedules.append((z, v, rule.parsed_schedule, zone_tz))
        # The violation index a static change in each zone reports as; -1: no static change there.
        self.static_violation = np.array(
            [violations.index(z.static_change.report_as) if z.static_change else -1 for z in camera.zones],
            np.intp,
        )
        self.first_seen_after_s = np.minimum(self.dwell_s, first_seen_after_s)
        self.zone_place = np.array([place_index[z.place] for z in camera.zones], np.int64)
        self.tracker = tracker
        self.active_since = np.full((n_zones, n_viol), np.nan)
        self._active_minute: int | None = None
        self._active = np.zeros((n_zones, n_viol), np.bool_)
        self.last_s: float | None = None

    def active(self, now_s: float, at: dt.datetime) -> npt.NDArray[np.bool_]:
        """(Z, V) rules active now; schedules have minute resolution, so this is recomputed once a minute."""
        minute = int(now_s // 60)
        if minute != self._active_minute:
            active = np.zeros_like(self.has_rule)
            for z, v, schedule, tz in self.schedules:
                active[z, v] = schedule.active(at, tz)
            self._active, self._active_minute = active, minute
        became = self._active & np.isnan(self.active_since)
        self.active_since[became] = now_s
        self.active_since[~self._active] = np.nan
        return self._active

    def reset(self) -> None:
        self.tracker.reset()
        self.active_since.fill(np.nan)
        self._active_minute = None


class RuleEngine:
    """Zones, stationary tracking, dwell, schedules and incidents for every camera of a daemon configuration.

    Args:
        config: the daemon configuration (cameras, zones, rules, ``detector.classes``, ``incidents``).
        class_names: the model's class names, index = class id.
        sighting_every_s: least stream time between two ``sighting`` events of one incident.
        max_tracks_per_camera: bound on each camera's tracker.
        working_confidence: the running model's class -> working confidence (its card's
            ``thresholds.classes``), asked on every frame so that a model swapped in brings its own; rules
            without a ``min_confidence`` use it, classes it does not name the contract's default.

    Raises:
        RuleConfigError: a class in ``detector.classes`` is not one of ``class_names``.

    Not thread-safe: call :meth:`update`, :meth:`expire` and :meth:`present` from one thread.
    """

    def __init__(
        self,
        config: DaemonConfig,
        class_names: list[str],
        *,
        sighting_every_s: float = 60.0,
        max_tracks_per_camera: int = 512,
        working_confidence: Callable[[], Mapping[str, float]] | None = None,
    ) -> None:
        self.config = config
        self.class_names = list(class_names)
        self._working_confidence = working_confidence or (lambda: _NO_WORKING_POINTS)
        self._working_seen: Mapping[str, float] | None = None
        self._class_confidence = np.full(len(self.class_names), DEFAULT_MIN_CONFIDENCE, np.float32)
        self.violations = sorted(config.reportable_types)
        # The static-change detector's class is appended after the model's (see contract UNKNOWN_OBJECT).
        self.unknown_class_id = (
            len(self.class_names) - 1 if self.class_names and self.class_names[-1] == UNKNOWN_OBJECT else -1
        )
        model_classes = self.class_names[: len(self.class_names) - (self.unknown_class_id >= 0)]
        self.class_violation = _class_violation(config, model_classes, self.violations)
        # Append-only (zones reloaded from the store may bring new places): incident keys stay valid.
        self.places = sorted({zone.place for camera in config.cameras for zone in camera.zones})
        place_index = {p: i for i, p in enumerate(self.places)}
        self._place_index = place_index
        self._first_seen_after_s = config.incidents.first_seen_after_s
        incidents = config.incidents
        self.quiet_period_s = incidents.quiet_period_s
        self.gap_tolerance_s = incidents.gap_tolerance_s
        self.sighting_every_s = sighting_every_s
        self.min_seen_ratio = incidents.min_seen_ratio
        self.cameras = {
            camera.id: _CameraRules(
                camera,
                self.violations,
                place_index,
                StationaryTracker(
                    stationary_iou=incidents.stationary_iou,
                    gap_tolerance_s=camera_gap_tolerance(camera, incidents),
                    max_tracks=max_tracks_per_camera,
                ),
                incidents.first_seen_after_s,
            )
            for camera in config.cameras
        }
        self._open: dict[tuple[int, int], _Incident] = {}  # (place index, violation index) -> incident
        # Patrol cameras are seen once a turn: their tracks and unconfirmed incidents outlive longer gaps.
        self._gap_tolerance = {c.id: camera_gap_tolerance(c, incidents) for c in config.cameras}

    # ---- public API -------------------------------------------------------------------------------------

    def class_confidence(self) -> npt.NDArray[np.float32]:
        """(n_classes,) the confidence a detection of each class needs where its rule sets none."""
        working = self._working_confidence()
        if working is not self._working_seen:  # a card's mapping is one object: rebuilt only on a swap
            self._class_confidence = class_confidence_table(self.class_names, working)
            self._working_seen = working
        return self._class_confidence

    def update(
        self, camera_id: str, stream_time: dt.datetime, detections: Detections, frame_hw: tuple[int, int]
    ) -> list[IncidentEvent]:
        """Feed one analysed frame of ``camera_id``; return the incident events it caused, ended ones first.

        Args:
            camera_id: a camera of the configuration.
            stream_time: the frame's stream time as an aware datetime (UTC).
            detections: the frame's detections in frame pixels (any classes; unmapped ones are ignored).
            frame_hw: (height, width) of the frame the boxes refer to.
        """
        cam = self._camera(camera_id)
        now_s = self._stream_seconds(cam, stream_time)
        events = self.expire(stream_time)
        active = cam.active(now_s, stream_time)
        masks = cam.zones.at((int(frame_hw[0]), int(frame_hw[1])))
        pairs, step = self._track(cam, masks, now_s, detections)
        if len(step):
            seen = self._classify(cam, masks, detections, pairs, step, now_s, active)
            events.extend(self._update_incidents(cam, seen, now_s, stream_time))
        cam.last_s = now_s
        return events

    def expire(self, now: dt.datetime) -> list[IncidentEvent]:
        """End the incidents whose quiet period (confirmed) or objects (unconfirmed) have run out by ``now``.

        :meth:`update` calls this; a daemon may also call it when no frames arrive at all.
        """
        if now.tzinfo is None:
            raise StreamTimeError(f"expire(): time {now.isoformat()} has no time zone")
        now_s = now.timestamp()
        events = []
        for key, incident in list(self._open.items()):
            gap = self._gap_tolerance.get(incident.camera_id, self.gap_tolerance_s)
            limit = max(self.quiet_period_s, gap) if incident.confirmed_s is not None else gap
            if not within_gap(now_s - incident.last_seen_s, limit):
                del self._open[key]
                events.append(self._event("ended", incident, now_s, Detections.empty()))
                log.info(
                    "incident %s (%s, %s) ended",
                    incident.incident_id,
                    incident.place,
                    incident.violation_type,
                )
        return events

    def present(
        self, camera_id: str, zone_id: str, violation_type: str, *, min_stay_s: float | None = None
    ) -> bool:
        """Whether ``camera_id`` currently sees an object of ``violation_type`` staying in ``zone_id``.

        "Staying" means a live track (seen within ``gap_tolerance_s`` of the camera's latest frame) that has
        stood still for at least ``min_stay_s`` (default: the ``first_seen`` time), so passing traffic does
        not count. Schedules are ignored: verification asks whether the object is there, not whether it is
        banned at this hour.
        """
        cam = self._camera(camera_id)
        try:
            z = cam.zones.index_of(zone_id)
        except ValueError:
            raise UnknownCameraError(
                f"camera {camera_id!r} has no zone {zone_id!r} (zones: {', '.join(cam.zones.zone_ids)})"
            ) from None
        if violation_type not in self.violations or cam.last_s is None:
            return False
        v = self.violations.index(violation_type)
        if not cam.has_rule[z, v]:
            return False
        stay = float(cam.first_seen_after_s[z, v]) if min_stay_s is None else min_stay_s
        return cam.tracker.staying_in_block(
            z * cam.n_violations + v, now_s=cam.last_s, min_stay_s=stay, min_seen_ratio=self.min_seen_ratio
        )

    @property
    def open_incidents(self) -> int:
        return len(self._open)

    def zones_of(self, camera_id: str) -> tuple[ZoneConfig, ...]:
        return self._camera(camera_id).zone_configs

    def replace_zones(self, camera_id: str, zones: Sequence[ZoneConfig]) -> list[IncidentEvent]:
        """Swap the zones and rules of ``camera_id`` between two frames; return the ``ended`` events.

        Tracks (and so the stay so far) are kept in every zone whose polygon and anchor are unchanged, also
        when its rules changed: the object has been there all along. The open incidents that point at a zone
        of this camera that is gone, moved to another place, or lost the incident's rule end now. Raises
        :class:`pipeline.errors.ZoneError` (more than 64 zones) and changes nothing then.
        """
        old = self._camera(camera_id)
        for zone in zones:
            if zone.place not in self._place_index:
                self._place_index[zone.place] = len(self.places)
                self.places.append(zone.place)
        camera = old.camera.model_copy(update={"zones": list(zones)})
        new = _CameraRules(camera, self.violations, self._place_index, old.tracker, self._first_seen_after_s)
        n_viol = len(self.violations)
        new_block = np.full(len(old.zone_configs) * n_viol, -1, np.int64)
        by_id = {zone.id: z for z, zone in enumerate(new.zone_configs)}
        for z_old, before in enumerate(old.zone_configs):
            z_new = by_id.get(before.id)
            if z_new is None:
                continue
            after = new.zone_configs[z_new]
            if (before.polygon, before.anchor) == (after.polygon, after.anchor):
                new_block[z_old * n_viol : (z_old + 1) * n_viol] = np.arange(n_viol) + z_new * n_viol
                rules_before, rules_after = before.effective_rules, after.effective_rules
                for v, name in enumerate(self.violations):  # same schedule: active since when it was
                    rule_before, rule_after = rules_before.get(name), rules_after.get(name)
                    if rule_before and rule_after and rule_before.schedule == rule_after.schedule:
                        new.active_since[z_new, v] = old.active_since[z_old, v]
        old.tracker.remap_blocks(new_block)
        new.last_s = old.last_s
        self.cameras[camera_id] = new
        return self._end_incidents_of_changed_zones(camera_id, old.zone_configs, by_id, new.zone_configs)

    def _end_incidents_of_changed_zones(
        self,
        camera_id: str,
        before: tuple[ZoneConfig, ...],
        by_id: dict[str, int],
        after: tuple[ZoneConfig, ...],
    ) -> list[IncidentEvent]:
        previous = {zone.id: zone for zone in before}
        events = []
        for key, incident in list(self._open.items()):
            if incident.camera_id != camera_id or incident.zone_id not in previous:
                continue
            z = by_id.get(incident.zone_id)
            zone = after[z] if z is not None else None
            if (
                zone is not None
                and zone.place == incident.place
                and incident.violation_type in zone.effective_rules
            ):
                continue
            del self._open[key]
            at_s = max(incident.last_seen_s, self.cameras[camera_id].last_s or incident.last_seen_s)
            events.append(self._event("ended", incident, at_s, Detections.empty()))
            log.info(
                "incident %s (%s, %s) ended: zone %s/%s was changed or removed",
                incident.incident_id,
                incident.place,
                incident.violation_type,
                camera_id,
                incident.zone_id,
            )
        return events

    # ---- one frame ----------------------------------------------------------------------------------------

    def _camera(self, camera_id: str) -> _CameraRules:
        try:
            return self.cameras[camera_id]
        except KeyError:
            raise UnknownCameraError(
                f"camera {camera_id!r} is not in the configuration (cameras: {', '.join(self.cameras)})"
            ) from None

    def _stream_seconds(self, cam: _CameraRules, stream_time: dt.datetime) -> float:
        if stream_time.tzinfo is None:
            raise StreamTimeError(
                f"camera {cam.camera_id!r}: stream time {stream_time.isoformat()} has no time zone "
                "(expected an aware UTC datetime)"
            )
        now_s = stream_time.timestamp()
        if cam.last_s is not None and now_s < cam.last_s - CLOCK_SLACK_S:
            log.warning(
                "camera %s: stream time went back %.1f s; its tracks start over",
                cam.camera_id,
                cam.last_s - now_s,
            )
            cam.reset()
        return now_s

    def _track(
        self,
        cam: _CameraRules,
        masks: ZoneMasks,
        now_s: float,
        detections: Detections,
    ) -> tuple[npt.NDArray[np.intp], TrackerStep]:
        """(detection index per pair, tracker step): pairs are (detection, zone) with a rule for its type."""
        class_id = detections.class_id
        known = (class_id >= 0) & (class_id < len(self.class_violation))
        violation = np.where(known, self.class_violation[np.where(known, class_id, 0)], -1)
        candidates = np.flatnonzero(violation >= 0)
        inside = masks.membership(detections.xyxy[candidates])  # (C, Z)
        v = violation[candidates]
        # Pairs count for tracking whenever the zone has a rule, active or not (presence for verification);
        # only active ones count towards incidents (see _classify).
        ruled = cam.min_confidence[:, v].T  # (C, Z), NaN where the rule follows the class's working point
        needed = np.where(np.isnan(ruled), self.class_confidence()[class_id[candidates], None], ruled)
        ok = inside & cam.has_rule[:, v].T & (detections.confidence[candidates, None] >= needed)
        cand_row, zone = np.nonzero(ok)
        det = candidates[cand_row]
        block = zone.astype(np.int64) * cam.n_violations + v[cand_row]
        static_det, static_zone = self._static_pairs(cam, masks, detections, det, zone)
        det = np.concatenate([det, static_det])
        block = np.concatenate(
            [block, static_zone.astype(np.int64) * cam.n_violations + cam.static_violation[static_zone]]
        )
        h, w = masks.frame_hw
        boxes = detections.xyxy[det].astype(np.float64) / np.array([w, h, w, h], np.float64)
        return det, cam.tracker.update(now_s, boxes, detections.confidence[det], block)

    def _static_pairs(
        self,
        cam: _CameraRules,
        masks: ZoneMasks,
        detections: Detections,
        ruled_det: npt.NDArray[np.intp],
        ruled_zone: npt.NDArray[np.intp],
    ) -> tuple[npt.NDArray[np.intp], npt.NDArray[np.intp]]:
        """(detection, zone) pairs of static-change detections in zones with static change, less those
        mostly covered by a detection the same zone already has a rule for (a parked car stays parking)."""
        empty = np.zeros(0, np.intp)
        if self.unknown_class_id < 0:
            return empty, empty
        unknown = np.flatnonzero(detections.class_id == self.unknown_class_id)
        if not len(unknown):
            return empty, empty
        # No confidence gate: the static-change detector reports only regions that are stable already; its
        # confidence ranks them and is not on the scale of a rule's min_confidence (set for the model).
        row, zone = np.nonzero(masks.membership(detections.xyxy[unknown]) & (cam.static_violation >= 0))
        det = unknown[row]
        if len(det) and len(ruled_det):
            covered = box_coverage(detections.xyxy[det], detections.xyxy[ruled_det])  # (P, R)
            same_zone = zone[:, None] == ruled_zone[None, :]
            keep = ~((covered >= STATIC_COVERED_BY_RULED) & same_zone).any(axis=1)
            det, zone = det[keep], zone[keep]
        return det.astype(np.intp), zone.astype(np.intp)

    def _classify(
        self,
        cam: _CameraRules,
        masks: ZoneMasks,
        detections: Detections,
        pair_detection: npt.NDArray[np.intp],
        step: TrackerStep,
        now_s: float,
        active: npt.NDArray[np.bool_],
    ) -> _Seen:
        zone = (step.block // cam.n_violations).astype(np.intp)
        violation = (step.block % cam.n_violations).astype(np.intp)
        counts = active[zone, violation]
        start = np.fmax(step.started, cam.active_since[zone, violation])  # NaN (inactive) -> started
        stay_s = np.where(counts, now_s - start, -np.inf)
        steady = step.seen_ratio >= self.min_seen_ratio
        return _Seen(
            masks=masks,
            detections=detections,
            pair_detection=pair_detection,
            step=step,
            zone=zone,
            violation=violation,
            stay_s=stay_s,
            settled=steady & (stay_s >= cam.first_seen_after_s[zone, violation]),
            staying=steady & (stay_s >= cam.dwell_s[zone, violation]),
            key=cam.zone_place[zone] * len(self.violations) + violation,
        )

    def _update_incidents(
        self, cam: _CameraRules, seen: _Seen, now_s: float, stream_time: dt.datetime
    ) -> list[IncidentEvent]:
        events: list[IncidentEvent] = []
        n_viol = len(self.violations)
        # One iteration per (place, violation) with a settled object in this frame: a handful, not per box.
        for key in np.unique(seen.key[seen.settled]):
            in_key = seen.key == key
            settled = np.flatnonzero(in_key & seen.settled)
            staying = np.flatnonzero(in_key & seen.staying)
            place_v = (int(key) // n_viol, int(key) % n_viol)
            incident = self._open.get(place_v)
            if incident is None:
                incident = self._open_incident(cam, seen, settled, place_v, now_s)
                events.append(self._frame_event("first_seen", incident, cam, seen, settled, now_s))
            confirmed_before = incident.confirmed_s is not None
            # Unconfirmed: a settled object keeps the incident open; confirmed: only one that stayed dwell_s.
            if (staying if confirmed_before else settled).size == 0:
                continue
            incident.last_seen_s = max(incident.last_seen_s, now_s)
            incident.sighting_count += 1
            if not confirmed_before and staying.size:
                self._locate(incident, cam, seen, staying)
                incident.first_seen_s = float(now_s - seen.stay_s[staying].max())
                incident.confirmed_s = now_s
                events.append(self._frame_event("confirmed", incident, cam, seen, staying, now_s))
                log.info(
                    "incident %s (%s, %s) confirmed on %s/%s at %s",
                    incident.incident_id,
                    incident.place,
                    incident.violation_type,
                    cam.camera_id,
                    incident.zone_id,
                    stream_time.isoformat(),
                )
            elif confirmed_before and now_s - incident.last_event_s >= self.sighting_every_s:
                self._locate(incident, cam, seen, staying)
                events.append(self._frame_event("sighting", incident, cam, seen, staying, now_s))
        return events

    # ---- incidents and events -----------------------------------------------------------------------------

    def _open_incident(
        self,
        cam: _CameraRules,
        seen: _Seen,
        settled: npt.NDArray[np.intp],
        place_v: tuple[int, int],
        now_s: float,
    ) -> _Incident:
        incident = _Incident(
            incident_id=uuid.uuid4().hex,
            place=self.places[place_v[0]],
            violation_type=self.violations[place_v[1]],
            first_seen_s=float(now_s - seen.stay_s[settled].max()),
            last_seen_s=now_s,
            camera_id=cam.camera_id,
            zone_id="",
            polygon_px=np.zeros((0, 2), np.int32),
        )
        self._locate(incident, cam, seen, settled)
        self._open[place_v] = incident
        log.info("incident %s (%s, %s) opened", incident.incident_id, incident.place, incident.violation_type)
        return incident

    @staticmethod
    def _locate(incident: _Incident, cam: _CameraRules, seen: _Seen, rows: npt.NDArray[np.intp]) -> None:
        """Point the incident at the zone of its longest-staying object in ``rows`` on this camera."""
        z = int(seen.zone[rows[np.argmax(seen.stay_s[rows])]])
        incident.camera_id = cam.camera_id
        incident.zone_id = cam.zones.zone_ids[z]
        incident.polygon_px = seen.masks.polygons_px[z]

    def _frame_event(
        self,
        kind: EventKind,
        incident: _Incident,
        cam: _CameraRules,
        seen: _Seen,
        rows: npt.NDArray[np.intp],
        now_s: float,
    ) -> IncidentEvent:
        """An event carrying the boxes of the tracks ``rows`` of ``seen`` in this frame."""
        boxes = seen.detections[seen.pair_detection[seen.step.row[rows]]]
        boxes = Detections(boxes.xyxy, boxes.confidence, boxes.class_id, seen.step.track_id[rows].copy())
        incident.last_event_s = now_s
        return self._event(kind, incident, now_s, boxes, seen.masks.polygons_px)

    @staticmethod
    def _event(
        kind: EventKind,
        incident: _Incident,
        at_s: float,
        boxes: Detections,
        zones_px: tuple[npt.NDArray[np.int32], ...] = (),
    ) -> IncidentEvent:
        return IncidentEvent(
            kind=kind,
            incident_id=incident.incident_id,
            camera_id=incident.camera_id,
            zone_id=incident.zone_id,
            place=incident.place,
            violation_type=incident.violation_type,
            first_seen_at=_utc(incident.first_seen_s),
            at=_utc(at_s),
            confidence=float(boxes.confidence.max()) if len(boxes) else 0.0,
            boxes=boxes,
            polygon_px=incident.polygon_px,
            sighting_count=max(incident.sighting_count, 1),
            confirmed_at=None if incident.confirmed_s is None else _utc(incident.confirmed_s),
            last_seen_at=_utc(incident.last_seen_s),
            zones_px=zones_px,
        )
