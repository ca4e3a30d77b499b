"""The benchmark's input: the real clip re-encoded once like an IP camera stream (cached), and the zone
around its parked van."""

from __future__ import annotations

import math
from dataclasses import dataclass
from fractions import Fraction
from pathlib import Path

import numpy as np
import numpy.typing as npt

# vtest.avi's parked van (see tests/pipeline/test_daemon_e2e.py), in normalised x, y.
ZONE = ((0.82, 0.05), (1.0, 0.05), (1.0, 0.2), (0.82, 0.2))
Frame = npt.NDArray[np.uint8]


@dataclass(frozen=True)
class ClipSpec:
    """How the real clip is re-encoded: size, rate, keyframe interval, length, bit rate."""

    height: int = 1080
    fps: int = 25
    gop_s: float = 2.0
    seconds: float | None = None  # None: the whole source, cut to whole GOPs
    bit_rate: int = 4_000_000  # a typical 1080p25 camera stream

    @property
    def width(self) -> int:
        return round(self.height * 16 / 9) // 2 * 2

    @property
    def gop(self) -> int:
        return max(1, round(self.gop_s * self.fps))


def clip_path(source: Path, cache: Path, spec: ClipSpec) -> Path:
    length = "all" if spec.seconds is None else f"{spec.seconds:g}s"
    name = (
        f"{source.stem}_{spec.width}x{spec.height}p{spec.fps}_gop{spec.gop}_{spec.bit_rate // 1000}k_{length}"
    )
    return cache / "clips" / f"{name}.mp4"


def prepare_clip(source: Path, cache: Path, spec: ClipSpec) -> Path:
    """``source`` re-encoded to H.264 per ``spec`` (once; cached), as many whole GOPs as fit, so that a
    looping replay keeps a keyframe every ``gop_s`` across the loop."""
    target = clip_path(source, cache, spec)
    if target.exists():
        return target
    if not source.is_file():
        raise FileNotFoundError(f"{source}: the clip to re-encode is missing (apt-get install opencv-doc)")
    target.parent.mkdir(parents=True, exist_ok=True)
    scratch = target.with_suffix(".part.mp4")
    frames = _encode(source, scratch, spec)
    if frames < spec.gop:
        scratch.unlink(missing_ok=True)
        raise ValueError(f"{source}: too short for one {spec.gop_s:g} s GOP at {spec.fps} fps")
    scratch.replace(target)
    return target


def _source_frame_count(source: Path) -> tuple[int, float]:
    """(frames, fps) of ``source``'s first video stream, counting packets when the header does not say."""
    import av

    with av.open(str(source)) as container:
        stream = container.streams.video[0]
        rate = float(stream.average_rate or stream.guessed_rate or 25)
        count = stream.frames or sum(1 for p in container.demux(stream) if p.size)
    return count, rate


def _encode(source: Path, target: Path, spec: ClipSpec) -> int:
    """Encode; returns the frames written. Frames are repeated to reach ``spec.fps`` (vtest is 10 fps)."""
    import av
    from av.video.frame import PictureType

    count, source_fps = _source_frame_count(source)
    whole = math.floor(count / source_fps * spec.fps)
    if spec.seconds is not None:
        whole = min(whole, round(spec.seconds * spec.fps))
    limit = whole // spec.gop * spec.gop
    written = 0
    with av.open(str(source)) as src, av.open(str(target), "w", format="mp4") as dst:
        stream = dst.add_stream("libx264", rate=spec.fps)
        stream.width, stream.height, stream.pix_fmt = spec.width, spec.height, "yuv420p"
        stream.bit_rate = spec.bit_rate
        stream.options = {
            "preset": "veryfast",
            "g": str(spec.gop),
            "keyint_min": str(spec.gop),
            "bf": "0",
            "sc_threshold": "0",
        }
        for index, frame in enumerate(src.decode(video=0)):
            if written >= limit:
                break
            scaled = frame.reformat(width=spec.width, height=spec.height, format="yuv420p")
            scaled.pict_type = PictureType.NONE  # x264 would honour the source's I-frames: keep GOPs even
            while written < limit and written / spec.fps < (index + 1) / source_fps:
                scaled.pts, scaled.time_base = written, Fraction(1, spec.fps)
                dst.mux(stream.encode(scaled))
                written += 1
        dst.mux(stream.encode(None))
    return written


def first_frame(clip: Path) -> Frame:
    import av

    with av.open(str(clip)) as container:
        for frame in container.decode(video=0):
            return np.ascontiguousarray(frame.to_ndarray(format="bgr24"), dtype=np.uint8)
    raise ValueError(f"{clip}: no video frame")


def zone_crop(frame: Frame) -> Frame:
    """The zone-ROI crop the daemon cuts from ``frame`` for the benchmark's zone (:data:`ZONE`, plus the
    ROI margin), at the frame's own pixels."""
    from types import SimpleNamespace

    from pipeline.roi import pixel_box, zone_roi

    rect = zone_roi([SimpleNamespace(polygon=ZONE)])  # type: ignore[list-item]  # only the polygon is read
    if rect is None:
        return frame
    x0, y0, x1, y1 = pixel_box(rect, frame.shape[1], frame.shape[0])
    return np.ascontiguousarray(frame[y0:y1, x0:x1])
