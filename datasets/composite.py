"""Clips for static change on real footage: a real photo of dumped garbage composited into a real video.

The pile is cut from the photo with a feathered ellipse (the photos show a pile in the middle, beside street
containers), scaled to a share of the frame width with its base on a chosen ground point, and relit to the
local background: each channel scaled so that its mean is that of a ring of pavement around it in the
clip's median background. Passers-by stay in front of it: the pixels of a moving blob (difference to the
median background, no model involved) whose lowest row is below the pile's base, i.e. nearer the camera,
keep the original frame's pixels. Scenarios: the pile appears and stays, appears briefly, or never appears
while the light ramps down and up and the camera shakes. Every clip gets a ``timeline.json`` ground truth.
"""

from __future__ import annotations

import datetime as dt
import json
from collections.abc import Iterator
from dataclasses import dataclass, field
from fractions import Fraction
from pathlib import Path

import av
import cv2
import numpy as np
import numpy.typing as npt

from datasets.errors import DatasetError

Image = npt.NDArray[np.uint8]
Mask = npt.NDArray[np.float32]
Box = tuple[float, float, float, float]
Polygon = tuple[tuple[float, float], ...]

START_TIME = dt.datetime(2026, 5, 4, 9, 0, tzinfo=dt.timezone(dt.timedelta(hours=8)))
CAMERA_ID = "composite"
ZONE_ID = "street"
SCENARIOS = ("stays", "brief", "never")
# Moving blobs: max-channel difference to the median background. People differ from pavement and grass by
# 60+ gray levels; compression noise of real CCTV stays under ~15, so 30 separates them with room both ways.
FOREGROUND_DIFF = 30
FRONT_MARGIN = 0.02  # feet this far (share of frame height) above the pile's base still pass in front of it
FEATHER = 0.08  # soft edge of the cut-out, share of its smaller side
RING = 0.5  # the lighting reference: a ring this wide (share of the pile's size) around the pile's box
MEDIAN_SAMPLES = 60  # frames spread over the clip for its median background (enough for a walker to vanish)
SHAKE_MAX_PX = 3.0  # the small camera shake: a random walk bounded to +-3 px
SHAKE_STEP_PX = 0.8  # per-frame step of that walk (s.d.): jitter a registration step must absorb
LIGHT_RAMP = ((0.0, 1.0), (0.5, 0.55), (1.0, 1.2))  # (share of the clip, global gain): dusk, then lights on


class CompositeError(DatasetError):
    """A composite clip cannot be built (unreadable photo or video, pile outside the frame...)."""


@dataclass(frozen=True)
class CompositeSpec:
    """What to build. Positions and sizes are normalised to the frame (x right, y down, 0..1)."""

    base: Path
    photo: Path
    scenario: str = "stays"
    seed: int = 0
    fps: float = 5.0
    width: int = 640
    duration_s: float | None = None  # default: the whole base video
    appear_s: float = 20.0  # the pile is in place from here ...
    brief_s: float = 20.0  # ... and, in the "brief" scenario, gone this much later (under a dwell)
    ground_xy: tuple[float, float] = (0.80, 0.56)  # the pile's bottom centre (vtest: a path people cross)
    pile_width: float = 0.1  # of the frame width: about 1.5 m on vtest's path (people there: ~75 px)
    crop: Box = (0.15, 0.15, 0.85, 0.85)  # the part of the photo holding the pile
    zone: Polygon = ((0.0, 0.3), (1.0, 0.3), (1.0, 1.0), (0.0, 1.0))  # vtest: lawn and paths, no parking
    dwell_s: float = 30.0
    ramp: bool | None = None  # default: on in "never" only
    shake: bool | None = None  # default: on in "never" only

    def __post_init__(self) -> None:
        if self.scenario not in SCENARIOS:
            raise CompositeError(f"scenario must be one of {', '.join(SCENARIOS)}, not {self.scenario!r}")
        if not (0 < self.pile_width < 1 and all(0 <= v <= 1 for v in self.ground_xy)):
            raise CompositeError(
                f"pile_width {self.pile_width} and ground_xy {self.ground_xy} must be in 0..1"
            )
        x0, y0, x1, y1 = self.crop
        if not (0 <= x0 < x1 <= 1 and 0 <= y0 < y1 <= 1):
            raise CompositeError(f"crop {self.crop}: expected x0 < x1 and y0 < y1 within 0..1")

    @property
    def ramps(self) -> bool:
        return self.scenario == "never" if self.ramp is None else self.ramp

    @property
    def shakes(self) -> bool:
        return self.scenario == "never" if self.shake is None else self.shake

    def pile_interval(self, duration_s: float) -> tuple[float, float] | None:
        if self.scenario == "never":
            return None
        end = duration_s if self.scenario == "stays" else min(self.appear_s + self.brief_s, duration_s)
        if self.appear_s >= end:
            raise CompositeError(f"appear_s {self.appear_s} is not before the clip's end {duration_s:.1f} s")
        return self.appear_s, end


@dataclass(frozen=True)
class Placed:
    """The relit pile in frame pixels: ``image`` (h, w, 3) float32 and ``alpha`` (h, w) at (x0, y0)."""

    x0: int
    y0: int
    image: npt.NDArray[np.float32]
    alpha: Mask

    def box(self, width: int, height: int) -> Box:
        ys, xs = np.nonzero(self.alpha >= 0.5)
        x0, x1 = self.x0 + int(xs.min()), self.x0 + int(xs.max()) + 1
        y0, y1 = self.y0 + int(ys.min()), self.y0 + int(ys.max()) + 1
        return (round(x0 / width, 4), round(y0 / height, 4), round(x1 / width, 4), round(y1 / height, 4))


@dataclass
class ClipFrame:
    index: int
    t: float
    base: Image  # the footage with the clip's light and shake, without the pile
    image: Image  # what is encoded
    in_front: Mask = field(repr=False)  # where passers-by were kept in front of the pile (0..1)


def cut_pile(photo: Path, crop: Box) -> tuple[npt.NDArray[np.float32], Mask]:
    """The pile from ``photo`` (EXIF rotation applied) inside ``crop``, with a feathered ellipse alpha."""
    image = cv2.imread(str(photo), cv2.IMREAD_COLOR)
    if image is None:
        raise CompositeError(f"{photo}: not a readable image")
    h, w = image.shape[:2]
    x0, y0, x1, y1 = (round(crop[0] * w), round(crop[1] * h), round(crop[2] * w), round(crop[3] * h))
    patch = image[y0:y1, x0:x1].astype(np.float32)
    ph, pw = patch.shape[:2]
    feather = max(1.0, FEATHER * min(ph, pw))
    alpha = np.zeros((ph, pw), np.float32)
    axes = (max(1, round(pw / 2 - feather)), max(1, round(ph / 2 - feather)))
    cv2.ellipse(alpha, (pw // 2, ph // 2), axes, 0, 0, 360, 1.0, -1)
    return patch, cv2.GaussianBlur(alpha, (0, 0), feather / 2).astype(np.float32, copy=False)


def match_lighting(patch: npt.NDArray[np.float32], alpha: Mask, reference: Image) -> npt.NDArray[np.float32]:
    """Give each channel of the pile the alpha-weighted mean of ``reference`` (the pavement around it).

    A per-channel gain, not a mean/spread transfer: light is multiplicative, so the pile keeps its own
    contrast (a transfer to smooth pavement's small spread would flatten it into a smudge)."""
    weights = (alpha / max(float(alpha.sum()), 1e-6))[:, :, None]
    target = reference.reshape(-1, 3).astype(np.float32).mean(axis=0)
    gain = np.ones(3, np.float32)
    relit: npt.NDArray[np.float32] = patch
    for _ in range(4):  # highlights clip at 255 and pull the mean down: raise the gain until it is met
        relit = np.clip(patch * gain, 0, 255).astype(np.float32)
        gain *= target / np.maximum((relit * weights).sum(axis=(0, 1)), 1.0)
    return relit


def place(spec: CompositeSpec, background: Image) -> Placed:
    """Scale the cut-out to ``pile_width``, stand it on ``ground_xy`` and relight it to the ground there."""
    height, width = background.shape[:2]
    patch, alpha = cut_pile(spec.photo, spec.crop)
    pw = max(4, round(spec.pile_width * width))
    ph = max(4, round(patch.shape[0] * pw / patch.shape[1]))
    patch = cv2.resize(patch, (pw, ph), interpolation=cv2.INTER_AREA).astype(np.float32, copy=False)
    alpha = cv2.resize(alpha, (pw, ph), interpolation=cv2.INTER_AREA).astype(np.float32, copy=False)
    x0 = round(spec.ground_xy[0] * width - pw / 2)
    y0 = round(spec.ground_xy[1] * height) - ph
    if x0 < 0 or y0 < 0 or x0 + pw > width or y0 + ph > height:
        raise CompositeError(
            f"a {pw}x{ph} px pile standing on {spec.ground_xy} does not fit the {width}x{height} frame"
        )
    ring = round(RING * max(pw, ph))
    outer = np.zeros((height, width), np.uint8)
    cv2.rectangle(outer, (x0 - ring, y0 - ring), (x0 + pw + ring, y0 + ph + ring), 1, -1)
    outer[y0 : y0 + ph, x0 : x0 + pw] = 0
    return Placed(x0, y0, match_lighting(patch, alpha, background[outer > 0]), alpha)


def passers_in_front(frame: Image, background: Image, ground_row: int) -> Mask:
    """Moving blobs whose lowest row is at or below the pile's base (nearer the camera), feathered."""
    diff = cv2.absdiff(frame, background).max(axis=2)
    moving = cv2.morphologyEx((diff > FOREGROUND_DIFF).astype(np.uint8), cv2.MORPH_OPEN, np.ones((3, 3)))
    count, labels, stats, _ = cv2.connectedComponentsWithStats(moving, connectivity=8)
    bottoms = stats[:, cv2.CC_STAT_TOP] + stats[:, cv2.CC_STAT_HEIGHT]
    margin = FRONT_MARGIN * frame.shape[0]
    front = [i for i in range(1, count) if bottoms[i] >= ground_row - margin]
    mask = np.isin(labels, front).astype(np.uint8)
    grown = cv2.dilate(mask, np.ones((5, 5), np.uint8)).astype(np.float32)  # the silhouette's soft edge
    return cv2.GaussianBlur(grown, (0, 0), 1.0).astype(np.float32, copy=False)


def light_gain(t: float, duration_s: float) -> float:
    shares, gains = zip(*LIGHT_RAMP, strict=True)
    return float(np.interp(t / duration_s, shares, gains))


def shake_path(frames: int, seed: int) -> npt.NDArray[np.float64]:
    """(frames, 2) translations in px: a seeded random walk kept within +-SHAKE_MAX_PX."""
    rng = np.random.default_rng(seed)
    steps = rng.normal(0.0, SHAKE_STEP_PX, (frames, 2))
    path = np.zeros((frames, 2))
    for i in range(1, frames):
        path[i] = np.clip(path[i - 1] + steps[i], -SHAKE_MAX_PX, SHAKE_MAX_PX)
    return path


class CompositeClip:
    """The clip for one spec: :meth:`frames` yields each frame with and without the pile."""

    def __init__(self, spec: CompositeSpec) -> None:
        self.spec = spec
        if not spec.base.is_file():
            raise CompositeError(f"{spec.base}: base video not found")
        self.base_fps, base_frames, (w, h) = _probe(spec.base)
        self.size = (spec.width, round(h * spec.width / w / 2) * 2)  # even: yuv420p
        available = base_frames / self.base_fps
        self.duration_s = min(spec.duration_s or available, available)
        self.count = int(self.duration_s * spec.fps + 1e-9)
        self.background = self._median()
        self.placed = place(spec, self.background)
        self.interval = spec.pile_interval(self.duration_s)
        self.shake = shake_path(self.count, spec.seed) if spec.shakes else np.zeros((self.count, 2))

    def footage(self) -> Iterator[tuple[int, Image]]:
        """(output index, resized base frame) for each output frame: the base frame nearest its time."""
        wanted = 0
        for i, frame in _decode(self.spec.base):
            if wanted >= self.count:
                return
            if i == round(wanted / self.spec.fps * self.base_fps):
                yield (
                    wanted,
                    cv2.resize(frame, self.size, interpolation=cv2.INTER_AREA).astype(np.uint8, copy=False),
                )
                wanted += 1

    def _median(self) -> Image:
        keep = set(np.linspace(0, self.count - 1, min(MEDIAN_SAMPLES, self.count)).round().astype(int))
        stack = np.stack([frame for index, frame in self.footage() if index in keep])
        median: Image = np.median(stack, axis=0).astype(np.uint8)
        return median

    def pile_on(self, t: float) -> bool:
        return self.interval is not None and self.interval[0] <= t < self.interval[1]

    def frames(self) -> Iterator[ClipFrame]:
        p = self.placed
        rows, cols = slice(p.y0, p.y0 + p.alpha.shape[0]), slice(p.x0, p.x0 + p.alpha.shape[1])
        ground_row = p.y0 + p.alpha.shape[0]
        for index, base in self.footage():
            t = index / self.spec.fps
            image = base.copy()
            front = np.zeros(p.alpha.shape, np.float32)
            if self.pile_on(t):
                front = passers_in_front(base[rows, cols], self.background[rows, cols], ground_row - p.y0)
                a = (p.alpha * (1.0 - front))[:, :, None]
                image[rows, cols] = np.round(base[rows, cols] * (1 - a) + p.image * a).astype(np.uint8)
            yield ClipFrame(index, t, self._camera(base, index), self._camera(image, index), front)

    def _camera(self, image: Image, index: int) -> Image:
        """What the camera adds on top of the scene: the global light ramp and the shake."""
        if self.spec.ramps:
            gain = light_gain(index / self.spec.fps, self.duration_s)
            image = cv2.convertScaleAbs(image, alpha=gain).astype(np.uint8, copy=False)
        dx, dy = self.shake[index]
        if dx or dy:
            matrix = np.array([[1, 0, dx], [0, 1, dy]], np.float32)
            moved = cv2.warpAffine(image, matrix, self.size, borderMode=cv2.BORDER_REPLICATE)
            image = moved.astype(np.uint8, copy=False)
        return image

    def timeline(self, video: Path) -> dict[str, object]:
        spec, (width, height) = self.spec, self.size
        piles = []
        if self.interval is not None:
            piles.append(
                {
                    "id": "pile-1",
                    "on_s": self.interval[0],
                    "off_s": round(self.interval[1], 3),
                    "box": list(self.placed.box(width, height)),
                    "photo": spec.photo.name,
                }
            )
        return {
            "video": video.name,
            "base": spec.base.name,
            "scenario": spec.scenario,
            "seed": spec.seed,
            "fps": spec.fps,
            "frames": self.count,
            "width": width,
            "height": height,
            "duration_s": round(self.duration_s, 3),
            "start_time": START_TIME.isoformat(),
            "camera": CAMERA_ID,
            "zone": {"id": ZONE_ID, "polygon": [list(point) for point in spec.zone]},
            "dwell_s": spec.dwell_s,
            "light_ramp": [list(point) for point in LIGHT_RAMP] if spec.ramps else None,
            "shake_px": SHAKE_MAX_PX if spec.shakes else 0.0,
            "piles": piles,
        }


def _probe(path: Path) -> tuple[float, int, tuple[int, int]]:
    try:
        with av.open(str(path)) as container:
            stream = container.streams.video[0]
            fps = float(stream.average_rate or stream.guessed_rate or 0)
            frames = stream.frames or sum(1 for _ in container.decode(video=0))
            size = (stream.codec_context.width, stream.codec_context.height)
    except (av.FFmpegError, IndexError) as exc:
        raise CompositeError(f"{path}: not a readable video ({exc})") from exc
    if fps <= 0:
        raise CompositeError(f"{path}: the video states no frame rate")
    return fps, frames, size


def _decode(path: Path) -> Iterator[tuple[int, Image]]:
    with av.open(str(path)) as container:
        for i, frame in enumerate(container.decode(video=0)):
            yield i, frame.to_ndarray(format="bgr24").astype(np.uint8, copy=False)


@dataclass(frozen=True)
class ClipFiles:
    video: Path
    timeline: Path


def write_clip(spec: CompositeSpec, out: Path, name: str = "clip") -> ClipFiles:
    """Encode ``OUT/NAME.mp4`` (H.264, one encoder thread so the bytes depend on the seed only) and
    ``OUT/timeline.json``."""
    out.mkdir(parents=True, exist_ok=True)
    clip = CompositeClip(spec)
    files = ClipFiles(out / f"{name}.mp4", out / "timeline.json")
    rate = Fraction(spec.fps).limit_denominator(1001)
    with av.open(str(files.video), "w") as container:
        stream = container.add_stream("libx264", rate=rate)
        stream.width, stream.height = clip.size
        stream.pix_fmt = "yuv420p"
        stream.options = {"crf": "20", "preset": "veryfast", "g": str(round(2 * spec.fps)), "threads": "1"}
        for frame in clip.frames():
            for packet in stream.encode(av.VideoFrame.from_ndarray(frame.image, format="bgr24")):
                container.mux(packet)
        for packet in stream.encode(None):
            container.mux(packet)
    files.timeline.write_text(json.dumps(clip.timeline(files.video), indent=2) + "\n", encoding="utf-8")
    return files
