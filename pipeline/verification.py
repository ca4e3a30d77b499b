"""Verification by camera: when a unit reports a case done (status ``resolved``), look at the zone again.

A background thread asks the case store every ``verification.poll_interval_s`` which cases on this
box's cameras are resolved (``GET /api/v1/devices/me/cases?status=resolved``, answered only with the
calling device's cameras). The daemon calls :meth:`Verifier.observe` after each analysed frame, once
the rule engine has seen it; for every watched case on that camera the verifier asks
``RuleEngine.present(camera, zone, violation)`` and keeps the current run on stream time:

- absent in every look for ``verification.absent_s`` -> ``verify``, with an "after" picture;
- present in every look for ``verification.absent_s`` -> ``rework`` (still there), with the picture;
- a change (a car arrives, or leaves) starts the run again, so one passing vehicle neither confirms nor
  spoils a verification on its own.

The decision goes into the outbox as an action item keyed by (case, resolution time), so a crash, a
restart or the next poll never judges the same resolution twice; the pusher uploads the picture and then
posts the action. A case that the store no longer lists as resolved (an operator acted first) is
dropped from the watch list at the next poll.
"""

from __future__ import annotations

import datetime as dt
import logging
import threading
from collections import OrderedDict
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from typing import Literal

import cv2
import httpx
import numpy as np
import numpy.typing as npt

from contract import paths
from contract.device_cases import DeviceCase, DeviceCasesPage
from detector.detections import Detections
from pipeline.config import STATIC_OBJECT_TYPES, DaemonConfig, ZoneConfig
from pipeline.evidence import DEFAULT_STAMP_TIMEZONE, render_after
from pipeline.outbox import Outbox
from pipeline.pusher import StoreClient, describe
from pipeline.zone_sync import RequestLike

log = logging.getLogger(__name__)

Verdict = Literal["verify", "rework"]
Presence = Callable[[str, str, str], bool]  # RuleEngine.present(camera_id, zone_id, violation_type)
# StaticChanges.looks_like_reference(camera, zone, box_xyxy_px, frame): None without static change there.
LooksLikeReference = Callable[[str, str, npt.NDArray[np.float32], npt.NDArray[np.uint8]], "bool | None"]
PAGE_SIZE = 100
MAX_WATCHES = 1000  # resolved cases watched at once; the store lists the oldest resolutions first
DECIDED_MEMORY = 4096  # (case, resolution) pairs already judged, remembered so a poll does not re-add them


@dataclass(frozen=True, slots=True)
class ResolvedCase:
    """A resolved case on one of this box's cameras, as the store lists it."""

    case_id: int
    camera: str
    zone: str
    violation_type: str  # the pipeline's type (illegal_parking), not the event code
    resolved_at: dt.datetime | None

    @property
    def resolution_key(self) -> str:
        when = self.resolved_at.isoformat() if self.resolved_at else "unknown"
        return f"verification:case-{self.case_id}:resolved-{when}"


@dataclass(slots=True)
class _Watch:
    case: ResolvedCase
    zone: ZoneConfig
    present: bool | None = None  # what the current run has seen
    run_since: dt.datetime | None = None  # stream time of the run's first look


@dataclass(frozen=True, slots=True)
class Decision:
    case_id: int
    verdict: Verdict
    run_s: float  # how long (stream time) the zone looked the same
    queued: bool  # False when this resolution was already in the outbox


@dataclass
class _Watches:
    by_camera: dict[str, dict[int, _Watch]] = field(default_factory=dict)

    def __len__(self) -> int:
        return sum(len(watches) for watches in self.by_camera.values())


class Verifier:
    """Watches resolved cases on this box's cameras and queues ``verify`` / ``rework`` actions.

    ``present`` is ``RuleEngine.present``; ``class_names`` the detector's classes (for the picture).
    ``start()`` / ``stop()`` run the polling thread; ``poll_once()`` polls inline (tests, or a daemon
    that schedules it itself); ``observe()`` is called from the daemon's rule thread.
    """

    def __init__(
        self,
        config: DaemonConfig,
        outbox: Outbox,
        present: Presence,
        class_names: Sequence[str],
        *,
        client: StoreClient | None = None,
    ) -> None:
        self.config = config
        self.settings = config.verification
        self.outbox = outbox
        self._present = present
        self._class_names = list(class_names)
        self._cameras = {camera.id: camera for camera in config.cameras}  # each camera's redaction
        self._client = client
        self._owns_client = client is None
        self._zones = {(c.id, z.id): z for c in config.cameras for z in c.zones}
        self._lock = threading.Lock()
        self._watches = _Watches()
        self._decided: OrderedDict[str, Verdict] = OrderedDict()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._store_ok = True
        # Set by the daemon: a static object's case is also judged by whether the zone looks empty again.
        self.looks_like_reference: LooksLikeReference | None = None

    def _stamp_timezone(self, camera_id: str) -> str:
        """The camera's time zone: evidence stamps show its local time."""
        camera = self._cameras.get(camera_id)
        return camera.timezone if camera is not None else DEFAULT_STAMP_TIMEZONE

    def set_zones(self, camera_id: str, zones: Sequence[ZoneConfig]) -> None:
        """The camera's zones changed (store zone sync): watch new cases against these from now on."""
        with self._lock:
            kept = {key: zone for key, zone in self._zones.items() if key[0] != camera_id}
            self._zones = kept | {(camera_id, zone.id): zone for zone in zones}

    # --- lifecycle ---

    def start(self) -> None:
        if not self.settings.enabled or (self._thread is not None and self._thread.is_alive()):
            return
        if self._client is None:
            self._client = StoreClient(self.config.store)
        self._stop.clear()
        self._thread = threading.Thread(target=self._run, name="verification-poll", daemon=True)
        self._thread.start()

    def stop(self, timeout_s: float | None = None) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(self.config.store.timeout_s + 1.0 if timeout_s is None else timeout_s)
            if self._thread.is_alive():
                return  # still in a request; it is a daemon thread and ends on its own
            self._thread = None
        if self._owns_client and self._client is not None:
            self._client.close()

    def _run(self) -> None:
        while not self._stop.is_set():
            self.poll_once()
            self._stop.wait(self.settings.poll_interval_s)

    # --- asking the store ---

    def poll_once(self) -> int | None:
        """Fetch the resolved cases and watch them; the number watched, or None if the store did not
        answer (the watch list is then kept as it is)."""
        if self._client is None:
            self._client = StoreClient(self.config.store)
        try:
            cases = self._fetch(self._client)
        except (httpx.HTTPError, ValueError, KeyError) as exc:
            if self._store_ok:
                log.warning("verification: cannot list resolved cases from the case store: %s", exc)
            self._store_ok = False
            return None
        self._store_ok = True
        return self.set_resolved(cases)

    def _fetch(self, client: StoreClient) -> list[ResolvedCase]:
        return fetch_resolved(client)

    def set_resolved(self, cases: Iterable[ResolvedCase]) -> int:
        """Replace the watch list with ``cases`` (the store's current answer): new cases are watched from
        the next frame, cases no longer resolved are dropped, ongoing runs are kept."""
        with self._lock:
            old = {cid: w for watches in self._watches.by_camera.values() for cid, w in watches.items()}
            fresh = _Watches()
            for case in cases:
                zone = self._zones.get((case.camera, case.zone))
                if zone is None or not _judged_in(zone, case.violation_type):
                    log.debug(
                        "verification: case %d (%s/%s %s) is not in this box's configuration",
                        case.case_id,
                        case.camera,
                        case.zone,
                        case.violation_type,
                    )
                    continue
                if case.resolution_key in self._decided or self.outbox.contains(case.resolution_key):
                    continue  # judged already (maybe before a restart); the pusher is delivering it
                kept = old.get(case.case_id)
                watch = kept if kept is not None and kept.case == case else _Watch(case, zone)
                fresh.by_camera.setdefault(case.camera, {})[case.case_id] = watch
            self._watches = fresh
            return len(fresh)

    @property
    def watching(self) -> list[int]:
        """Ids of the cases being watched."""
        with self._lock:
            return sorted(cid for watches in self._watches.by_camera.values() for cid in watches)

    # --- looking at the zone ---

    def watches_camera(self, camera_id: str) -> bool:
        """Whether a resolved case is watched on ``camera_id`` (:meth:`observe` needs its frames)."""
        with self._lock:
            return bool(self._watches.by_camera.get(camera_id))

    def observe(
        self,
        camera_id: str,
        stream_time: dt.datetime,
        frame_bgr: npt.NDArray[np.uint8],
        detections: Detections,
        persons_xyxy: npt.NDArray[np.float32] | None = None,
    ) -> list[Decision]:
        """One analysed frame of ``camera_id``, after ``RuleEngine.update`` saw it. Cheap when no case is
        watched on the camera; renders a picture only when a case is decided. ``persons_xyxy``: the people
        to redact, found below the rules' threshold (default: the person-like ``detections``)."""
        with self._lock:
            watches = self._watches.by_camera.get(camera_id)
            if not watches:
                return []
            decided = [
                (watch, verdict, run_s)
                for watch in list(watches.values())
                for verdict, run_s in [self._look(watch, stream_time, frame_bgr)]
                if verdict is not None
            ]
            for watch, _, _ in decided:
                del watches[watch.case.case_id]
        return [
            self._decide(w, verdict, run_s, stream_time, frame_bgr, detections, persons_xyxy)
            for w, verdict, run_s in decided
        ]

    def _look(
        self, watch: _Watch, stream_time: dt.datetime, frame_bgr: npt.NDArray[np.uint8]
    ) -> tuple[Verdict | None, float]:
        case = watch.case
        present = bool(self._present(case.camera, case.zone, case.violation_type))
        if not present and self._static_object_case(watch):
            assert self.looks_like_reference is not None  # _static_object_case checked it
            height, width = frame_bgr.shape[:2]
            region = _zone_box_px(watch.zone, width, height)
            # A static object the model never knew: gone only when the zone looks like its empty self again.
            present = self.looks_like_reference(case.camera, case.zone, region, frame_bgr) is False
        if watch.present is not present or watch.run_since is None or stream_time < watch.run_since:
            watch.present, watch.run_since = present, stream_time
            return None, 0.0
        run_s = (stream_time - watch.run_since).total_seconds()
        if run_s < self.settings.absent_s:
            return None, run_s
        return ("rework" if present else "verify"), run_s

    def _static_object_case(self, watch: _Watch) -> bool:
        return (
            self.looks_like_reference is not None
            and watch.zone.static_change is not None
            and watch.case.violation_type in STATIC_OBJECT_TYPES
        )

    def _decide(
        self,
        watch: _Watch,
        verdict: Verdict,
        run_s: float,
        stream_time: dt.datetime,
        frame_bgr: npt.NDArray[np.uint8],
        detections: Detections,
        persons_xyxy: npt.NDArray[np.float32] | None,
    ) -> Decision:
        case = watch.case
        if verdict == "verify":
            note = f"camera check: zone {case.zone} clear of {case.violation_type} for {run_s:.0f} s"
        else:
            note = f"camera check: {case.violation_type} still in zone {case.zone} after {run_s:.0f} s"
        height, width = frame_bgr.shape[:2]
        polygon_px = np.asarray(watch.zone.polygon, np.float64) * (width, height)
        images = render_after(
            frame_bgr,
            camera_id=case.camera,
            zone_id=case.zone,
            violation_type=case.violation_type,
            at=stream_time,
            polygon_px=polygon_px,
            boxes=self._offending(detections, case.violation_type, polygon_px, watch.zone.anchor),
            all_detections=detections,
            class_names=self._class_names,
            config=self.config.evidence,
            note=verdict,
            policy=self.config.evidence.redaction_for(self._cameras.get(case.camera)),
            timezone=self._stamp_timezone(case.camera),
            persons_xyxy=persons_xyxy,
        )
        queued = self.outbox.put_action(
            key=case.resolution_key,
            case_id=case.case_id,
            action=verdict,
            images=images,
            reason="camera_check",
            note=note,
        )
        with self._lock:
            self._decided[case.resolution_key] = verdict
            while len(self._decided) > DECIDED_MEMORY:
                self._decided.popitem(last=False)
        log.info("verification: case %d %s (%s)", case.case_id, verdict, note)
        return Decision(case.case_id, verdict, run_s, queued)

    def _offending(
        self, detections: Detections, violation_type: str, polygon_px: npt.NDArray[np.float64], anchor: str
    ) -> Detections:
        """The detections of classes mapped to ``violation_type`` whose anchor is in the zone (to draw)."""
        mapped = [
            i
            for i, n in enumerate(self._class_names)
            if self.config.detector.violation_of.get(n) == violation_type
        ]
        candidates = detections[np.isin(detections.class_id, mapped)]
        if not len(candidates):
            return candidates
        xyxy = candidates.xyxy
        anchor_y = xyxy[:, 3] if anchor == "bottom_center" else (xyxy[:, 1] + xyxy[:, 3]) / 2
        anchors = np.stack([(xyxy[:, 0] + xyxy[:, 2]) / 2, anchor_y], axis=1)
        contour = polygon_px.astype(np.float32).reshape(-1, 1, 2)
        inside = np.array(
            [cv2.pointPolygonTest(contour, (float(x), float(y)), False) >= 0 for x, y in anchors]
        )
        return candidates[inside]


def fetch_resolved(client: RequestLike) -> list[ResolvedCase]:
    """The resolved cases on the calling device's cameras, oldest resolution first, at most MAX_WATCHES
    (the poll of the verification thread; the fleet simulator polls with it too). Raises ValueError for
    an answer other than 200, httpx.HTTPError when the store is unreachable."""
    cases: list[ResolvedCase] = []
    while len(cases) < MAX_WATCHES:
        response = client.request(
            "GET",
            paths.DEVICE_CASES,
            params={"status": "resolved", "limit": PAGE_SIZE, "offset": len(cases)},
        )
        if response.status_code != 200:
            raise ValueError(describe(response))
        page = DeviceCasesPage.model_validate_json(response.content)
        cases.extend(_resolved_case(row) for row in page.data)
        if not page.data or len(cases) >= page.count:
            break
    return cases[:MAX_WATCHES]


def _judged_in(zone: ZoneConfig, violation_type: str) -> bool:
    """Whether the zone judges ``violation_type``: a rule (static change's implicit one included), or a
    static object re-coded at review (an unknown_object that became exposed_garbage)."""
    if violation_type in zone.effective_rules:
        return True
    return zone.static_change is not None and violation_type in STATIC_OBJECT_TYPES


def _zone_box_px(zone: ZoneConfig, width: int, height: int) -> npt.NDArray[np.float32]:
    """The zone's bounding box in frame pixels: the region compared with its reference (the case does not
    carry its box; the zone is where the object stood)."""
    points = np.asarray(zone.polygon, np.float32) * np.array([width, height], np.float32)
    return np.array([*points.min(axis=0), *points.max(axis=0)], np.float32)


def _resolved_case(row: DeviceCase) -> ResolvedCase:
    resolved_at = row.resolved_at
    if resolved_at is not None and resolved_at.tzinfo is None:
        resolved_at = resolved_at.replace(tzinfo=dt.UTC)
    return ResolvedCase(
        case_id=row.id,
        camera=row.camera,
        zone=str(row.zone),
        violation_type=str(row.violation_type),
        resolved_at=resolved_at,
    )
