"""Model-free static-change detection: new objects that appear in a zone and stay (garbage, a stall).

Each zone keeps a long-term reference of its "empty" look, in gray at a working resolution (the frame
scaled to :data:`WORK_WIDTH` px wide), learned from the camera itself. Per analysed frame:

1. the frame is downscaled and registered to a slowly updated scene image by phase correlation (small
   camera shake, a few pixels);
2. pixels under the given person/vehicle/tracked boxes, or that changed since the previous analysed frame
   (short-term motion), are *busy* for :data:`MOTION_HOLD_S`: never evidence, never learned;
3. the zone's frame is fitted to its reference by a gain and offset over its unchanged pixels (global
   light: clouds, dusk, auto-exposure), and a pixel counts as changed when it differs by more than
   :data:`K_SIGMA` times its learned noise AND its local structure differs (zero-mean normalised
   cross-correlation over a small window: a shadow or a headlight scales a patch, an object replaces it);
4. a changed pixel accumulates evidence over time (held while it is busy: a pile stays found while people
   walk past it); pixels with :data:`EVIDENCE_S` of evidence form regions (connected components, closed
   over small gaps, at least ``min_area`` of the frame);
5. a region is reported, as an ``unknown_object`` detection, only while it keeps its box
   (:mod:`pipeline.static_change_regions`): the rules' dwell then decides whether it is a violation.

The reference is updated (slowly, time constant :data:`REFERENCE_TAU_S`) only where the pixel is
comparable, unchanged and holds no evidence, so an object that stays is never absorbed while it might
still become a case; a region that stays :data:`ABSORB_DWELLS` times the zone's dwell is absorbed
(it has been reported long since; a scene that changed for good must not alarm forever).

Until a reference is learned (state ``learning``: :data:`LEARN_S` seconds, most of the zone seen static
:data:`MIN_SEEN` times) nothing is reported; whatever stands in the zone then (a parked van) is part of
"empty". An operator can set the reference from a snapshot of the clean pavement (state ``set``). A global
jump (most of a zone changes at once: an IR day/night switch) re-learns (state ``relearning``) instead of
reporting the whole zone. References persist under ``reference_dir`` so a restart does not re-learn.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Literal, TypeVar

import cv2
import numpy as np
import numpy.typing as npt

from contract.device_config import StaticChangeConfig
from detector.detections import Detections
from pipeline.errors import RuleError
from pipeline.static_change_regions import BoxI, Region, components, iou, match_regions
from pipeline.static_change_store import ReferenceFile

log = logging.getLogger(__name__)

F32 = npt.NDArray[np.float32]
Mask = npt.NDArray[np.bool_]
Polygon = Sequence[Sequence[float]]
ZoneSpec = tuple[str, Polygon, StaticChangeConfig]
ScalarT = TypeVar("ScalarT", bound=np.generic)
State = Literal["learning", "learned", "set", "relearning"]

# Geometry
WORK_WIDTH = 320  # px: a 1080p frame's 6x6 blocks; a 0.2% min_area is still ~100 working pixels
REGISTER_WIDTH = 160  # px: phase correlation at half the working size (a quarter of its cost)
# Below MIN_SHIFT the estimate is mostly its own jitter: warping by it would make every edge "move".
MIN_SHIFT = 0.5  # working px
MAX_SHIFT = 4.0  # working px (~24 px at 1080p): larger "shifts" are a moved camera, not shake
# Motion and masking
MOTION_DIFF = 12.0  # gray levels between consecutive analysed frames: above compression noise at 320 px
MOTION_HOLD_S = 1.0  # a pixel stays busy this long after motion or a box: bridges detector flicker
BOX_PAD = 0.1  # share of a box's size added on each side: shadows and limbs just outside the box
# Change test
SIGMA_FLOOR = 3.0  # gray levels: no pixel is trusted to be quieter than this (8-bit + codec noise)
SIGMA_DEFAULT = 4.0  # gray levels: noise assumed for a reference that was set or loaded, not learned
K_SIGMA = 4.0  # changed when |frame - reference| > K_SIGMA noise sigmas ...
MIN_DIFF = 10.0  # ... and by at least this many gray levels (a quiet pixel's tiny drift is no object)
ZNCC_WINDOW = 7  # working px: the patch whose structure is compared (about one pavement slab)
ZNCC_MAX = 0.5  # structure differs below this correlation; a shadow keeps the patch's pattern (> 0.8)
FLAT_VAR = 9.0  # gray levels²: a patch flatter than sigma 3 has no structure to compare: intensity only
CLIPPED = 250  # gray levels: saturated pixels carry no comparable value
# Evidence, learning and updates (all in stream seconds, so independent of the analysed frame rate)
EVIDENCE_S = 1.5  # seconds of change before a pixel is part of a region
EVIDENCE_CAP_S = 3.0  # evidence saturates here; at DECAY_RATE a departed object is gone in ~1.5 s
DECAY_RATE = 2.0  # evidence lost per second where the pixel looks like the reference again
MERGE_PX = 5  # working px: parts of one pile closer than this are one region
LEARN_S = 10.0  # seconds of frames before a zone's reference may be used
LEARN_COVER = 0.5  # share of the zone seen static by then; the rest (a masked parked car) learns as it shows
MIN_SEEN = 5  # static samples before a pixel's reference and noise are trusted
SEEN_CAP = 1e4  # samples counted at most (the update weight is REFERENCE_TAU_S-bound long before)
REFERENCE_TAU_S = 60.0  # time constant of the reference's update where nothing changed
JUMP_SHARE = 0.5  # more than half of a zone's comparable pixels changed at once: a global jump
MIN_COMPARABLE = 0.2  # below this share of comparable pixels a frame is not judged (a bus in front)
ABSORB_DWELLS = 4.0  # a region older than this many dwells becomes part of the reference
SAVE_EVERY_S = 300.0  # seconds (the clock's) between saves of a learned reference
LOOKS_LIKE_SHARE = 0.2  # verification: a box with at most this share changed looks like the reference
MAX_DT_S = 2.0  # a gap in the stream longer than this counts as this much (no evidence from a gap)


class StaticChangeError(RuleError):
    """Static change was given something it cannot use: a bad frame, boxes or zone; names camera and zone."""


def downscale_gray(frame: npt.NDArray[np.uint8], work_hw: tuple[int, int]) -> F32:
    """Gray float32 image of ``frame`` at ``work_hw``.

    Bilinear to twice the working size, then 2x2 area: averages the pixels of each working cell almost as
    well as INTER_AREA at a third of its cost on 1080p (INTER_AREA's general path is slow).
    """
    h, w = work_hw
    if frame.shape[1] > 2 * w:
        frame = np.asarray(cv2.resize(frame, (2 * w, 2 * h), interpolation=cv2.INTER_LINEAR), np.uint8)
    small = cv2.resize(frame, (w, h), interpolation=cv2.INTER_AREA)
    return np.asarray(cv2.cvtColor(small, cv2.COLOR_BGR2GRAY), np.float32)


@dataclass(slots=True)
class ZoneModel:
    """One zone's reference, noise, evidence and regions, in working pixels over the zone's bounding box."""

    zone_id: str
    polygon: Polygon
    config: StaticChangeConfig
    box: BoxI  # the zone's bounding box on the working grid
    mask: Mask  # zone pixels within ``box``
    min_area_px: float
    file: ReferenceFile | None
    state: State = "learning"
    ref: F32 = field(init=False)
    var: F32 = field(init=False)
    seen: F32 = field(init=False)  # static samples taken into the reference, per pixel
    area: int = field(init=False)  # zone pixels
    evidence: F32 = field(init=False)
    regions: list[Region] = field(default_factory=list)
    learn_start_s: float | None = None
    last_norm: F32 | None = None  # the last frame, fitted to the reference (for absorb)
    saved_at: float = float("-inf")

    def __post_init__(self) -> None:
        shape = self.mask.shape
        self.ref = np.zeros(shape, np.float32)
        self.var = np.full(shape, SIGMA_DEFAULT**2, np.float32)
        self.seen = np.zeros(shape, np.float32)
        self.area = int(np.count_nonzero(self.mask))
        self.evidence = np.zeros(shape, np.float32)

    def crop(self, image: npt.NDArray[ScalarT]) -> npt.NDArray[ScalarT]:
        x0, y0, x1, y1 = self.box
        return image[y0:y1, x0:x1]

    def use_reference(self, reference: F32, state: State) -> None:
        self.ref = reference.astype(np.float32, copy=True)
        self.var.fill(SIGMA_DEFAULT**2)
        self.seen.fill(MIN_SEEN)
        self.evidence.fill(0)
        self.regions.clear()
        self.state = state

    def relearn(self, now_s: float) -> None:
        self.seen.fill(0)
        self.var.fill(SIGMA_DEFAULT**2)
        self.evidence.fill(0)
        self.regions.clear()
        self.state = "relearning"
        self.learn_start_s = now_s

    def save(self) -> None:
        if self.file is not None:
            self.file.save(self.ref, "set" if self.state == "set" else "learned")


@dataclass(frozen=True, slots=True)
class Change:
    """One frame's comparison of a zone with its reference."""

    norm: F32  # the frame fitted to the reference's light
    changed: Mask
    comparable: Mask
    score: F32  # |difference| in noise sigmas


class StaticChange:
    """Static-change detection for one camera; not thread-safe (the rules thread calls it).

    Args:
        camera_id: names the camera in logs, errors and the reference files.
        zones: (zone id, normalised polygon, its static-change settings) of each zone that has it.
        class_id: class id of the detections returned (``len(model class names)``: ``unknown_object``).
        reference_dir: where references are kept across restarts; None: in memory only.
        clock: seconds, for spacing saves (default :func:`time.monotonic`).
    """

    def __init__(
        self,
        camera_id: str,
        zones: Sequence[ZoneSpec],
        *,
        class_id: int,
        reference_dir: Path | None = None,
        clock: Callable[[], float] | None = None,
    ) -> None:
        self.camera_id = camera_id
        self.class_id = class_id
        self.reference_dir = reference_dir
        self._clock = clock or time.monotonic
        self._specs: list[ZoneSpec] = list(zones)
        self._frame_hw: tuple[int, int] | None = None
        self._work_hw = (0, 0)
        self._models: dict[str, ZoneModel] = {}
        self._scene: F32 | None = None  # slowly updated image the frames are registered to
        self._prev: F32 | None = None
        self._last_s: float | None = None
        self._last_motion: npt.NDArray[np.float64] | None = None  # stream seconds (float32 is too coarse)
        self._window: F32 | None = None

    # --- public interface -------------------------------------------------------------------------

    def update(
        self, frame_bgr: npt.NDArray[np.uint8], stream_time: datetime, moving_xyxy: npt.NDArray[np.float32]
    ) -> Detections:
        """Static-change detections of this frame (frame px), given the boxes of what moves or is tracked."""
        self._check_frame(frame_bgr)
        moving = np.asarray(moving_xyxy, np.float32).reshape(-1, 4) if len(moving_xyxy) else _NO_BOXES
        self._ensure_geometry(frame_bgr.shape[:2])
        now = stream_time.timestamp()
        dt = 0.0 if self._last_s is None else float(np.clip(now - self._last_s, 0.0, MAX_DT_S))
        gray = self._register(downscale_gray(frame_bgr, self._work_hw))
        busy = self._busy(gray, moving, now)
        self._prev, self._last_s = gray, now
        boxes: list[tuple[float, float, float, float]] = []
        scores: list[float] = []
        for model in self._models.values():
            for box, confidence in self._step(model, gray, busy, now, dt):
                boxes.append(box)
                scores.append(confidence)
        if not boxes:
            return Detections.empty()
        return Detections(
            xyxy=np.asarray(boxes, np.float32),
            confidence=np.asarray(scores, np.float32),
            class_id=np.full(len(boxes), self.class_id, np.int64),
        )

    def replace_zones(self, zones: Sequence[ZoneSpec]) -> None:
        """New zone settings; zones whose polygon is unchanged keep their reference and regions."""
        self._specs = list(zones)
        if self._frame_hw is not None:
            self._build_models(keep=self._models)

    def set_reference(self, zone_id: str, image_bgr: npt.NDArray[np.uint8]) -> None:
        """Make ``image_bgr`` (a whole frame of the clean scene) the zone's reference: state ``set``."""
        self._check_frame(image_bgr)
        self._ensure_geometry(image_bgr.shape[:2])
        model = self._model(zone_id)
        model.use_reference(model.crop(downscale_gray(image_bgr, self._work_hw)), "set")
        model.save()
        log.info("camera %s zone %s: reference set from a snapshot", self.camera_id, zone_id)

    def absorb(self, zone_id: str, box_xyxy_px: Sequence[float]) -> None:
        """Make what the zone shows now inside ``box_xyxy_px`` part of its reference (a false alarm)."""
        model = self._model(zone_id)
        if model.last_norm is None:
            log.info("camera %s zone %s: nothing seen yet to absorb", self.camera_id, zone_id)
            return
        box = self._zone_box(model, box_xyxy_px)
        self._absorb_box(model, box, model.last_norm)
        model.save()
        log.info("camera %s zone %s: region %s absorbed into the reference", self.camera_id, zone_id, box)

    def state(self) -> dict[str, str]:
        """zone id -> ``learning`` | ``learned`` | ``set`` | ``relearning`` (``learning`` before a frame)."""
        return {
            spec[0]: self._models[spec[0]].state if spec[0] in self._models else "learning"
            for spec in self._specs
        }

    def looks_like_reference(
        self, zone_id: str, box_xyxy_px: Sequence[float], frame_bgr: npt.NDArray[np.uint8]
    ) -> bool:
        """Whether the zone inside ``box_xyxy_px`` looks like its reference in ``frame_bgr`` (verification).

        False while the zone has no reference yet: nothing can be verified against it.
        """
        self._check_frame(frame_bgr)
        self._ensure_geometry(frame_bgr.shape[:2])
        model = self._model(zone_id)
        if model.state in ("learning", "relearning"):
            return False
        cur = model.crop(self._align(downscale_gray(frame_bgr, self._work_hw)))
        comparable = model.mask & (model.seen >= MIN_SEEN) & (cur < CLIPPED)
        change = self._compare(model, cur, comparable, fit=comparable & (model.evidence == 0))
        x0, y0, x1, y1 = self._zone_box(model, box_xyxy_px)
        inside = change.comparable[y0:y1, x0:x1]
        if not inside.any():
            return False
        share = float(change.changed[y0:y1, x0:x1][inside].mean())
        return share <= LOOKS_LIKE_SHARE

    # --- geometry ---------------------------------------------------------------------------------

    def _check_frame(self, frame: npt.NDArray[np.uint8]) -> None:
        if frame.ndim != 3 or frame.shape[2] != 3 or frame.dtype != np.uint8 or min(frame.shape[:2]) < 8:
            raise StaticChangeError(
                f"camera {self.camera_id!r}: expected an HxWx3 uint8 BGR frame, got shape {frame.shape} "
                f"dtype {frame.dtype}"
            )

    def _ensure_geometry(self, frame_hw: tuple[int, int]) -> None:
        if frame_hw == self._frame_hw:
            return
        h, w = frame_hw
        self._frame_hw = frame_hw
        self._work_hw = (max(8, round(h * WORK_WIDTH / w)), WORK_WIDTH)
        self._reset_scene()
        self._build_models(keep={})

    def _build_models(self, keep: dict[str, ZoneModel]) -> None:
        models: dict[str, ZoneModel] = {}
        for zone_id, polygon, config in self._specs:
            old = keep.get(zone_id)
            if old is not None and [list(p) for p in old.polygon] == [list(p) for p in polygon]:
                old.config = config
                old.min_area_px = config.min_area * self._work_hw[0] * self._work_hw[1]
                models[zone_id] = old
            else:
                models[zone_id] = self._new_model(zone_id, polygon, config)
        self._models = models

    def _new_model(self, zone_id: str, polygon: Polygon, config: StaticChangeConfig) -> ZoneModel:
        h, w = self._work_hw
        points = np.asarray(polygon, np.float64).reshape(-1, 2)
        if len(points) < 3:
            raise StaticChangeError(f"camera {self.camera_id!r} zone {zone_id!r}: a polygon needs 3 corners")
        px = np.rint(points * [w, h]).astype(np.int32)
        full = np.zeros((h, w), np.uint8)
        cv2.fillPoly(full, [px], 1)
        ys, xs = np.nonzero(full)
        if len(xs) == 0:
            raise StaticChangeError(
                f"camera {self.camera_id!r} zone {zone_id!r}: the polygon covers no pixel"
            )
        box = (int(xs.min()), int(ys.min()), int(xs.max()) + 1, int(ys.max()) + 1)
        file = None
        if self.reference_dir is not None:
            file = ReferenceFile.at(self.reference_dir, self.camera_id, zone_id, polygon, self._work_hw)
        model = ZoneModel(
            zone_id=zone_id,
            polygon=polygon,
            config=config,
            box=box,
            mask=full[box[1] : box[3], box[0] : box[2]].astype(np.bool_),
            min_area_px=config.min_area * h * w,
            file=file,
        )
        stored = file.load(model.mask.shape) if file is not None else None
        if stored is not None:
            model.use_reference(stored[0], "set" if stored[1] == "set" else "learned")
            log.info("camera %s zone %s: reference loaded from %s", self.camera_id, zone_id, file)
        return model

    def _model(self, zone_id: str) -> ZoneModel:
        model = self._models.get(zone_id)
        if model is None:
            known = [spec[0] for spec in self._specs]
            if zone_id in known:  # configured, but no frame has given the geometry yet
                raise StaticChangeError(
                    f"camera {self.camera_id!r} zone {zone_id!r}: no frame seen yet, its geometry is unknown"
                )
            raise StaticChangeError(
                f"camera {self.camera_id!r} has no static-change zone {zone_id!r} (it has {known})"
            )
        return model

    def _zone_box(self, model: ZoneModel, box_xyxy_px: Sequence[float]) -> BoxI:
        """A frame-px box as a box on the zone's working crop, clipped to it."""
        if len(box_xyxy_px) != 4:
            raise StaticChangeError(
                f"camera {self.camera_id!r} zone {model.zone_id!r}: a box is x1,y1,x2,y2, got {box_xyxy_px}"
            )
        assert self._frame_hw is not None  # set by _ensure_geometry before any model exists
        scale = self._work_hw[1] / self._frame_hw[1]
        x0, y0, _, _ = model.box
        bh, bw = model.mask.shape
        x1, y1, x2, y2 = (float(v) * scale for v in box_xyxy_px)
        return (
            int(np.clip(np.floor(x1) - x0, 0, bw)),
            int(np.clip(np.floor(y1) - y0, 0, bh)),
            int(np.clip(np.ceil(x2) - x0, 0, bw)),
            int(np.clip(np.ceil(y2) - y0, 0, bh)),
        )

    # --- per frame --------------------------------------------------------------------------------

    def _reset_scene(self) -> None:
        self._scene = self._prev = self._last_motion = self._window = None
        self._last_s = None

    def _align(self, gray: F32) -> F32:
        """``gray`` shifted onto the scene image (phase correlation at REGISTER_WIDTH), or as it is."""
        if self._scene is None:
            return gray
        h, w = gray.shape
        size = (REGISTER_WIDTH, max(8, round(h * REGISTER_WIDTH / w)))
        if self._window is None:
            self._window = np.asarray(cv2.createHanningWindow(size, cv2.CV_32F), np.float32)
        a = cv2.resize(self._scene, size, interpolation=cv2.INTER_AREA)
        b = cv2.resize(gray, size, interpolation=cv2.INTER_AREA)
        (dx, dy), _ = cv2.phaseCorrelate(a, b, self._window)
        factor = w / REGISTER_WIDTH
        dx, dy = dx * factor, dy * factor
        if max(abs(dx), abs(dy)) < MIN_SHIFT or max(abs(dx), abs(dy)) > MAX_SHIFT:
            return gray
        shift = np.array([[1, 0, -dx], [0, 1, -dy]], np.float32)
        moved = cv2.warpAffine(gray, shift, (w, h), flags=cv2.INTER_LINEAR, borderMode=cv2.BORDER_REPLICATE)
        return np.asarray(moved, np.float32)

    def _register(self, gray: F32) -> F32:
        aligned = self._align(gray)
        if self._scene is None:
            self._scene = aligned.copy()
        else:
            cv2.accumulateWeighted(aligned, self._scene, 0.1)  # ~10 frames: follows light, averages people
        return aligned

    def _busy(self, gray: F32, moving: F32, now: float) -> Mask:
        """Pixels that moved, or lay under a box, within the last MOTION_HOLD_S seconds."""
        if self._last_motion is None:
            self._last_motion = np.full(gray.shape, -np.inf, np.float64)
        last = self._last_motion
        if self._prev is not None:
            moved = (cv2.absdiff(gray, self._prev) > MOTION_DIFF).astype(np.uint8)
            last[np.asarray(cv2.dilate(moved, _DILATE), np.bool_)] = now
        assert self._frame_hw is not None
        h, w = gray.shape
        scale = w / self._frame_hw[1]
        for x1, y1, x2, y2 in moving:
            pad_x, pad_y = (x2 - x1) * BOX_PAD, (y2 - y1) * BOX_PAD
            c0, r0 = max(0, int((x1 - pad_x) * scale)), max(0, int((y1 - pad_y) * scale))
            c1, r1 = min(w, int((x2 + pad_x) * scale) + 1), min(h, int((y2 + pad_y) * scale) + 1)
            last[r0:r1, c0:c1] = now
        busy: Mask = (now - last) < MOTION_HOLD_S
        return busy

    def _compare(self, model: ZoneModel, cur: F32, comparable: Mask, *, fit: Mask) -> Change:
        """Fit ``cur`` to the reference's light over ``fit`` pixels and find the changed pixels."""
        ref = model.ref
        if np.count_nonzero(fit) < 50:
            fit = comparable
        gain, offset = 1.0, 0.0
        if fit.any():
            fit_u8 = fit.view(np.uint8)
            mean_c, std_c = (float(v[0, 0]) for v in cv2.meanStdDev(cur, mask=fit_u8))
            mean_r, std_r = (float(v[0, 0]) for v in cv2.meanStdDev(ref, mask=fit_u8))
            gain = std_c / std_r if std_r > 1.0 else (mean_c + 1.0) / (mean_r + 1.0)
            gain = max(gain, 0.05)
            offset = mean_c - gain * mean_r
        norm = (cur - np.float32(offset)) / np.float32(gain)
        diff = cv2.absdiff(norm, ref)
        sigma = np.maximum(np.sqrt(model.var), SIGMA_FLOOR)
        score = diff / sigma
        intensity = (score > K_SIGMA) & (diff > MIN_DIFF)
        structure_changed, flat = _structure(norm, ref)
        changed = intensity & (structure_changed | flat) & comparable
        return Change(norm.astype(np.float32), changed, comparable, score.astype(np.float32))

    def _step(
        self, model: ZoneModel, gray: F32, busy: Mask, now: float, dt: float
    ) -> list[tuple[tuple[float, float, float, float], float]]:
        cur = model.crop(gray)
        observable = model.mask & ~model.crop(busy) & (cur < CLIPPED)
        if model.state in ("learning", "relearning"):
            self._learn(model, cur, observable, now)
            return []
        comparable = observable & (model.seen >= MIN_SEEN)
        if np.count_nonzero(comparable) < MIN_COMPARABLE * model.area:
            return []  # the zone is hidden (a bus stands in front): judge nothing, keep everything
        quiet = model.evidence == 0
        change = self._compare(model, cur, comparable, fit=comparable & quiet)
        model.last_norm = change.norm
        fresh = np.count_nonzero(comparable & quiet)
        jumped = np.count_nonzero(change.changed & quiet) > JUMP_SHARE * fresh
        if fresh >= MIN_COMPARABLE * model.area and jumped:
            log.warning(
                "camera %s zone %s: the whole zone changed at once; re-learning",
                self.camera_id,
                model.zone_id,
            )
            model.relearn(now)
            self._scene = None
            return []
        self._accumulate(model, change, dt)
        candidate = self._regions(model, change, now)
        self._update_reference(model, change, candidate, observable, dt)
        self._absorb_old(model, change, now)
        self._save_now_and_then(model)
        return self._reports(model, now)

    def _learn(self, model: ZoneModel, cur: F32, observable: Mask, now: float) -> None:
        if model.learn_start_s is None:
            model.learn_start_s = now
        _blend(model, cur, (observable / (model.seen + 1.0)).astype(np.float32))  # running mean
        np.minimum(model.seen + observable, SEEN_CAP, out=model.seen)
        covered = np.count_nonzero(model.mask & (model.seen >= MIN_SEEN)) / model.area
        if now - model.learn_start_s >= LEARN_S and covered >= LEARN_COVER:
            model.state = "learned"
            model.learn_start_s = None
            model.save()
            model.saved_at = self._clock()
            log.info("camera %s zone %s: reference learned", self.camera_id, model.zone_id)

    def _accumulate(self, model: ZoneModel, change: Change, dt: float) -> None:
        """Changed pixels gain evidence, unchanged ones lose it; busy pixels keep theirs (occlusion)."""
        step = change.changed * np.float32(dt + DECAY_RATE * dt) - change.comparable * np.float32(
            DECAY_RATE * dt
        )
        np.clip(model.evidence + step, 0.0, EVIDENCE_CAP_S, out=model.evidence)

    def _regions(self, model: ZoneModel, change: Change, now: float) -> Mask:
        """Update the zone's regions from the pixels with enough evidence; return those pixels (closed)."""
        raw = ((model.evidence >= EVIDENCE_S) & model.mask).astype(np.uint8)
        if not raw.any():
            match_regions(model.regions, [], [], now)
            return raw.view(np.bool_)
        closed = np.asarray(cv2.morphologyEx(raw, cv2.MORPH_CLOSE, _MERGE), np.uint8)
        boxes, labels, kept = components(closed, model.min_area_px)
        strengths: list[float] = []
        if boxes:
            score = np.minimum(change.score, 4 * K_SIGMA) / np.float32(4 * K_SIGMA)
            sums = np.bincount(labels.ravel(), weights=score.ravel())
            counts = np.bincount(labels.ravel())
            strengths = [float(sums[k] / max(counts[k], 1)) for k in kept]
        match_regions(model.regions, boxes, strengths, now)
        candidate: Mask = closed.view(np.bool_)
        return candidate

    def _update_reference(
        self, model: ZoneModel, change: Change, candidate: Mask, observable: Mask, dt: float
    ) -> None:
        """Follow slow changes where nothing changed and nothing is a candidate; learn unseen pixels."""
        update = change.comparable & ~change.changed & (model.evidence == 0) & ~candidate
        # pixels hidden during learning keep learning, like in _learn
        unseen = observable & (model.seen < MIN_SEEN) & ~candidate
        target = update | unseen
        # Whole-array arithmetic with a 0/1 weight: cheaper than gathering and scattering the pixels.
        a = np.maximum(1.0 / (model.seen + 1.0), np.float32(dt / REFERENCE_TAU_S)) * target
        _blend(model, change.norm, a.astype(np.float32, copy=False))
        np.minimum(model.seen + target, SEEN_CAP, out=model.seen)

    def _absorb_old(self, model: ZoneModel, change: Change, now: float) -> None:
        limit = ABSORB_DWELLS * model.config.dwell_s
        for region in [r for r in model.regions if now - r.first_s > limit]:
            log.info(
                "camera %s zone %s: region %s stayed over %.0f s; absorbed into the reference",
                self.camera_id,
                model.zone_id,
                region.box,
                limit,
            )
            self._absorb_box(model, region.box, change.norm)

    def _absorb_box(self, model: ZoneModel, box: BoxI, norm: F32) -> None:
        x0, y0, x1, y1 = box
        inside = np.zeros(model.mask.shape, np.bool_)
        inside[y0:y1, x0:x1] = True
        inside &= model.mask
        model.ref[inside] = norm[inside]
        model.evidence[inside] = 0.0
        model.seen[inside] = np.maximum(model.seen[inside], MIN_SEEN)
        model.regions[:] = [r for r in model.regions if iou(r.box, box) < 0.3]

    def _save_now_and_then(self, model: ZoneModel) -> None:
        if model.file is not None and self._clock() - model.saved_at >= SAVE_EVERY_S:
            model.save()
            model.saved_at = self._clock()

    def _reports(self, model: ZoneModel, now: float) -> list[tuple[tuple[float, float, float, float], float]]:
        assert self._frame_hw is not None
        scale = self._frame_hw[1] / self._work_hw[1]
        x0, y0, _, _ = model.box
        found = []
        for region in model.regions:
            if region.last_s != now:
                continue
            stability = region.stability(now)
            if stability <= 0.0:
                continue
            bx0, by0, bx1, by1 = region.box
            box = ((bx0 + x0) * scale, (by0 + y0) * scale, (bx1 + x0) * scale, (by1 + y0) * scale)
            # at least 0.5 x STABLE_IOU = 0.3 for any stable region: above the rules' default min_confidence
            found.append((box, stability * (0.5 + 0.5 * region.strength)))
        return found


def _blend(model: ZoneModel, image: F32, weight: F32) -> None:
    """Exponentially weighted mean and variance of ``image`` into the reference, per-pixel ``weight``."""
    d = image - model.ref
    model.ref += weight * d
    model.var[...] = (1.0 - weight) * (model.var + weight * d * d)


def _structure(norm: F32, ref: F32) -> tuple[Mask, Mask]:
    """(structure differs, both patches flat): zero-mean normalised cross-correlation over a window."""
    k = (ZNCC_WINDOW, ZNCC_WINDOW)
    mc, mr = cv2.blur(norm, k), cv2.blur(ref, k)
    vc = cv2.blur(norm * norm, k) - mc * mc
    vr = cv2.blur(ref * ref, k) - mr * mr
    cov = cv2.blur(norm * ref, k) - mc * mr
    flat: Mask = (vc < FLAT_VAR) & (vr < FLAT_VAR)
    zncc = cov / np.sqrt(np.maximum(vc, 1e-3) * np.maximum(vr, 1e-3))
    differs: Mask = zncc < ZNCC_MAX
    return differs, flat


_NO_BOXES: F32 = np.zeros((0, 4), np.float32)
_DILATE = cv2.getStructuringElement(cv2.MORPH_ELLIPSE, (5, 5))
_MERGE = cv2.getStructuringElement(cv2.MORPH_RECT, (MERGE_PX, MERGE_PX))
