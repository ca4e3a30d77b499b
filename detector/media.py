"""Reading images and videos for the ``detect`` command, and writing annotated output (PyAV / OpenCV)."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from fractions import Fraction
from pathlib import Path
from types import TracebackType

import av
import cv2
import numpy as np
import numpy.typing as npt
from av.video.stream import VideoStream

TRUNCATION_TOLERANCE_S = 1.0  # a last frame this close to the declared end counts as the end
IMAGE_SUFFIXES = {".jpg", ".jpeg", ".png", ".bmp", ".webp", ".tif", ".tiff"}


class MediaError(ValueError):
    """A source cannot be read as an image or a video; the message names the file."""


@dataclass(frozen=True, slots=True)
class VideoFrame:
    index: int
    time_s: float
    bgr: npt.NDArray[np.uint8]


def is_image(path: Path) -> bool:
    return path.suffix.lower() in IMAGE_SUFFIXES


def read_image(path: Path) -> npt.NDArray[np.uint8]:
    image = cv2.imread(str(path), cv2.IMREAD_COLOR)
    if image is None:
        raise MediaError(f"{path}: cannot decode as an image (expected JPEG, PNG, BMP, WebP or TIFF)")
    return np.asarray(image, dtype=np.uint8)


def video_fps(path: Path) -> float:
    with _open(path) as container:
        stream = container.streams.video[0]
        rate = stream.average_rate or stream.guessed_rate or Fraction(25)
        return float(rate)


def _open(path: Path) -> av.container.InputContainer:
    try:
        container = av.open(str(path), mode="r")
    except (av.error.FFmpegError, OSError) as exc:
        raise MediaError(f"{path}: cannot open as video: {exc}") from exc
    if not container.streams.video:
        container.close()
        raise MediaError(f"{path}: no video stream")
    return container


def iter_video(path: Path, *, every: int = 1, max_frames: int | None = None) -> Iterator[VideoFrame]:
    """Decoded BGR frames of ``path``: every ``every``-th frame, at most ``max_frames`` of them.

    Raises :class:`MediaError` when decoding fails, or when it ends well before the length the file
    declares (a truncated file: FFmpeg then often just stops without an error)."""
    with _open(path) as container:
        stream = container.streams.video[0]
        stream.thread_type = "AUTO"
        yielded = 0
        last_s: float | None = None
        index = -1
        try:
            for index, frame in enumerate(container.decode(stream)):
                last_s = float(frame.time) if frame.time is not None else last_s
                if index % every:
                    continue
                time_s = (
                    float(frame.time) if frame.time is not None else index / float(stream.average_rate or 25)
                )
                yield VideoFrame(index, time_s, np.asarray(frame.to_ndarray(format="bgr24"), dtype=np.uint8))
                yielded += 1
                if max_frames is not None and yielded >= max_frames:
                    return
        except av.error.FFmpegError as exc:
            raise MediaError(f"{path}: decoding failed after {yielded} frames: {exc}") from exc
        problem = _truncation(path, stream, last_s, index, "decoding")
        if problem is not None:
            raise MediaError(problem)


def check_whole(path: Path) -> None:
    """Read every packet of ``path`` without decoding (fast); raise :class:`MediaError` when the file cannot
    be opened or its packets stop well before the length it declares (truncated)."""
    with _open(path) as container:
        stream = container.streams.video[0]
        last_pts: int | None = None
        index = -1
        try:
            for packet in container.demux(stream):
                if packet.size and packet.pts is not None:  # the last, empty packet only flushes
                    last_pts = packet.pts if last_pts is None else max(last_pts, packet.pts)
                    index += 1
        except av.error.FFmpegError:
            pass  # a damaged tail: how far the packets reached is what counts, and is checked below
        last_s = None if last_pts is None or stream.time_base is None else float(last_pts * stream.time_base)
        problem = _truncation(path, stream, last_s, index, "reading")
        if problem is not None:
            raise MediaError(problem)


def _declared_s(stream: VideoStream, rate: float) -> float | None:
    """The stream's length as its headers declare it: its duration, or its frame count (AVI keeps the
    count in its header while FFmpeg derives the duration from what is actually there)."""
    lengths = []
    if stream.duration is not None and stream.time_base is not None:
        lengths.append(float(stream.duration * stream.time_base))
    if stream.frames:
        lengths.append(stream.frames / rate)
    return max(lengths) if lengths else None


def _truncation(
    path: Path, stream: VideoStream, last_s: float | None, last_frame: int, verb: str
) -> str | None:
    """Why ``path`` counts as truncated when its last frame (index ``last_frame``, at ``last_s``) is well
    short of the declared end; None when it reached the end or nothing is declared to compare with."""
    rate = float(stream.average_rate or stream.guessed_rate or 25)
    declared = _declared_s(stream, rate)
    if declared is None or last_s is None:
        return None
    start = float((stream.start_time or 0) * stream.time_base) if stream.time_base is not None else 0.0
    read = last_s - start
    if declared - read <= max(TRUNCATION_TOLERANCE_S, 2.0 / rate):
        return None
    where = f"{read:.1f} s of {declared:.1f} s (frame {last_frame})"
    return f"{path}: {verb} stopped at {where}: truncated or corrupt"


class VideoWriter:
    """H.264 (MP4) writer for annotated frames; frames may be any size, they are encoded as given."""

    def __init__(self, path: Path, *, fps: float, width: int, height: int) -> None:
        self.path = path
        self._container = av.open(str(path), mode="w")
        rate = Fraction(fps).limit_denominator(1000)
        self._stream = self._container.add_stream("libx264", rate=rate)
        self._stream.width = width - width % 2
        self._stream.height = height - height % 2
        self._stream.pix_fmt = "yuv420p"
        self._stream.options = {"preset": "veryfast", "crf": "23"}

    def write(self, bgr: npt.NDArray[np.uint8]) -> None:
        even = bgr[: self._stream.height, : self._stream.width]
        frame = av.VideoFrame.from_ndarray(np.ascontiguousarray(even), format="bgr24")
        for packet in self._stream.encode(frame):
            self._container.mux(packet)

    def close(self) -> None:
        for packet in self._stream.encode():
            self._container.mux(packet)
        self._container.close()

    def __enter__(self) -> VideoWriter:
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.close()
