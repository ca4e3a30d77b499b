"""A shadow model beside the live one: it runs on a share of the analysed frames, its detections go through
rules of their own (the same zones and dwell times, a separate :class:`pipeline.incidents.RuleEngine`), and
its would-be incidents are recorded, never reported. Over each period the live and the shadow incidents
confirmed are compared per camera, zone and violation type (agree / live only / shadow only) and the
summary, with a few small crops of disagreements, is uploaded (:mod:`contract.model_comparison`).

Called from the rules thread only (:meth:`ShadowComparison.observe`), after the live rules saw the frame:
the shadow's inference cost lands there, bounded by the share (at most
:data:`contract.device_config.MAX_SHADOW_SHARE`), and is in ``streetwatch_shadow_inference_seconds``.
"""

from __future__ import annotations

import base64
import datetime as dt
import logging
import threading
import time
from collections import Counter
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

import cv2
import numpy as np
import numpy.typing as npt

from contract import paths
from contract.device_config import MAX_SHADOW_SHARE
from contract.model_comparison import MAX_CROPS, ModelComparisonReport
from pipeline.protocols import DetectorLike, EventLike, RulesLike
from pipeline.zone_sync import RequestLike

log = logging.getLogger(__name__)

CROP_MAX_SIDE = 160
CROP_QUALITY = 70
Key = tuple[str, str, str]  # camera, zone, violation type


@dataclass
class ShadowModel:
    detector: DetectorLike
    version_id: int
    share: float
    rules: RulesLike


@dataclass
class Period:
    start: dt.datetime
    frames_live: int = 0
    frames_shadow: int = 0
    live: Counter[Key] = field(default_factory=Counter)
    shadow: Counter[Key] = field(default_factory=Counter)
    crops: dict[tuple[Key, str], str] = field(default_factory=dict)  # (key, side) -> base64 JPEG


def crop_jpeg(image: npt.NDArray[np.uint8], xyxy: Sequence[float] | None) -> str:
    """A small JPEG (base64) of the box with some context, or of the frame when there is no box."""
    h, w = image.shape[:2]
    if xyxy is not None:
        x1, y1, x2, y2 = (float(v) for v in xyxy)
        pad_x, pad_y = (x2 - x1) * 0.25, (y2 - y1) * 0.25
        x1, y1 = max(int(x1 - pad_x), 0), max(int(y1 - pad_y), 0)
        x2, y2 = min(int(x2 + pad_x), w), min(int(y2 + pad_y), h)
        if x2 > x1 and y2 > y1:
            image = image[y1:y2, x1:x2]
    scale = CROP_MAX_SIDE / max(image.shape[:2])
    if scale < 1:
        size = (max(int(image.shape[1] * scale), 1), max(int(image.shape[0] * scale), 1))
        image = np.asarray(cv2.resize(image, size), dtype=np.uint8)
    ok, data = cv2.imencode(".jpg", image, [cv2.IMWRITE_JPEG_QUALITY, CROP_QUALITY])
    return base64.b64encode(data.tobytes()).decode() if ok else ""


def _box(event: EventLike) -> Sequence[float] | None:
    boxes = event.boxes
    return None if len(boxes) == 0 else boxes.xyxy[0].tolist()


class ShadowComparison:
    """The shadow model's run and its comparison with the live model (see the module docstring)."""

    def __init__(
        self,
        client: RequestLike,
        *,
        period_s: float,
        make_rules: Callable[[DetectorLike], RulesLike],
        observe_seconds: Callable[[float], None] = lambda _s: None,
        live_version: Callable[[], int | None] = lambda: None,
    ) -> None:
        self.client = client
        self.period_s = period_s
        self.make_rules = make_rules
        self.observe_seconds = observe_seconds  # the shadow's inference time, for the metrics
        self.live_version = live_version
        self._lock = threading.Lock()
        self._shadow: ShadowModel | None = None
        self._period: Period | None = None
        self._period_started = time.monotonic()
        self._credit = 0.0  # frames owed to the shadow: share per live frame, one shadow frame per unit
        self.uploaded = 0
        self.shadow_events = 0

    def set_shadow(self, detector: DetectorLike | None, version_id: int | None, share: float) -> None:
        """A new shadow model (or none); the period so far is uploaded first (from the rules thread)."""
        with self._lock:
            if detector is None or version_id is None:
                self._shadow = None
                return
            share = min(max(share, 0.0), MAX_SHADOW_SHARE)
            rules = self.make_rules(detector)  # the shadow's classes and working points may be new ones
            self._shadow = ShadowModel(detector, version_id, share, rules)
            self._period = None

    @property
    def version_id(self) -> int | None:
        shadow = self._shadow
        return None if shadow is None else shadow.version_id

    def observe(
        self,
        camera_id: str,
        stream_time: dt.datetime,
        image: npt.NDArray[np.uint8],
        live_events: Sequence[EventLike],
        run: Callable[[DetectorLike], object],
    ) -> list[EventLike]:
        """After the live rules saw a frame: count its live confirmations, run the shadow on its share of
        frames; returns the shadow's events (recorded here, never reported)."""
        with self._lock:
            shadow = self._shadow
        if shadow is None:
            return []
        period = self._current_period()
        period.frames_live += 1
        for event in live_events:
            if event.kind == "confirmed":
                key = (event.camera_id, event.zone_id, event.violation_type)
                period.live[key] += 1
                period.crops.setdefault((key, "live_only"), crop_jpeg(image, _box(event)))
        self._credit += shadow.share
        if self._credit < 1.0:
            return []
        self._credit -= 1.0
        started = time.monotonic()
        detections = run(shadow.detector)
        self.observe_seconds(time.monotonic() - started)
        period.frames_shadow += 1
        frame_hw = (int(image.shape[0]), int(image.shape[1]))
        events = list(shadow.rules.update(camera_id, stream_time, detections, frame_hw))  # type: ignore[arg-type]
        for event in events:
            if event.kind == "confirmed":
                key = (event.camera_id, event.zone_id, event.violation_type)
                period.shadow[key] += 1
                self.shadow_events += 1
                period.crops.setdefault((key, "shadow_only"), crop_jpeg(image, _box(event)))
        return events

    def _current_period(self) -> Period:
        if self._period is None:
            self._period = Period(start=dt.datetime.now(dt.UTC))
            self._period_started = time.monotonic()
        return self._period

    def maybe_upload(self, *, force: bool = False) -> bool:
        """Upload the period when it is over (or ``force``); True when the store took it."""
        period, shadow = self._period, self._shadow
        if period is None or shadow is None:
            return False
        if not force and time.monotonic() - self._period_started < self.period_s:
            return False
        report = summary(period, shadow.version_id, self.live_version(), dt.datetime.now(dt.UTC))
        self._period = None
        try:
            body = report.model_dump(mode="json")
            response = self.client.request("POST", paths.MODEL_COMPARISONS, json=body)
        except Exception as exc:  # best effort: the next period carries on
            log.warning("shadow comparison not uploaded: %s", exc)
            return False
        if response.status_code != 201:
            log.warning("shadow comparison refused (%d): %s", response.status_code, response.text[:200])
            return False
        self.uploaded += 1
        return True


def summary(period: Period, shadow_id: int, live_id: int | None, now: dt.datetime) -> ModelComparisonReport:
    """Per violation type: incidents in the same camera and zone that both made agree; the rest differ."""
    classes: dict[str, dict[str, int]] = {}
    crops: list[dict[str, str]] = []
    for key in sorted(set(period.live) | set(period.shadow)):
        live, shadow = period.live[key], period.shadow[key]
        counts = classes.setdefault(key[2], {"agree": 0, "live_only": 0, "shadow_only": 0})
        counts["agree"] += min(live, shadow)
        for side, extra in (("live_only", live - shadow), ("shadow_only", shadow - live)):
            if extra <= 0:
                continue
            counts[side] += extra
            crop = period.crops.get((key, side))
            if crop and len(crops) < MAX_CROPS:
                crops.append({"class_name": key[2], "side": side, "camera": key[0], "jpeg_base64": crop})
    return ModelComparisonReport.model_validate(
        {
            "live_version_id": live_id,
            "shadow_version_id": shadow_id,
            "period_start": period.start,
            "period_end": now,
            "frames_live": period.frames_live,
            "frames_shadow": period.frames_shadow,
            "classes": classes,
            "crops": crops,
        }
    )
