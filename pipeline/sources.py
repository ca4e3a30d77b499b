"""Camera sources: a thread per camera reads its stream with PyAV (FFmpeg), samples it, hands frames over.

URLs (``cameras[].url``): a file path (or ``file://``), ``rtsp://`` / ``rtsps://`` (``rtsp_transport`` tcp or
udp), ``http(s)://`` (MJPEG, HLS, or anything FFmpeg reads over HTTP), ``/dev/videoN`` or ``v4l2://``
(V4L2 capture), or any other URL FFmpeg opens (handled like a live stream).

Handing frames over:

* Live cameras, and files paced at real time (``realtime: true``, to simulate a camera; ``loop: true``
  starts again at the end): the source reads as fast as the stream arrives and keeps only its freshest
  sample. :meth:`CameraSource.latest` returns it when it is newer than the consumer's last one, so a slow
  consumer gets the newest frame, never a backlog (replaced samples are counted in ``dropped``). When
  reading falls behind the live edge by more than ``CATCH_UP_LAG_S`` (a slow CPU, a network hiccup) the
  source skips to the next keyframe instead of decoding the backlog (``catch_ups``).
* Files not paced (tests, benchmarks, batch runs): :meth:`CameraSource.next_frame` hands over *every*
  sample in order through a bounded queue; the reader waits while the queue is full.

Only samples are converted to BGR (and to the detector's size when ``input_hw`` is given); before that a
sample whose 160 px gray thumbnail matches the last analysed frame is skipped (``skipped_unchanged``; see
:class:`pipeline.sampling.SceneChangeGate`). Stream time: see :class:`pipeline.sampling.StreamClock`;
formats without timestamps (MJPEG over HTTP) are timed by arrival.

Failures: opening uses PyAV's open timeout and every read its read timeout (``timeout_s``), so a dead or
silent server cannot hang the thread. A live camera that fails is retried forever with exponential backoff
and jitter (``reconnect_min_s`` doubling up to ``reconnect_max_s``); its health says ``reconnecting``, then
``failed`` after ``failed_after`` failures in a row, and ``up`` again (``reconnects`` + 1) when frames flow.
A file that cannot be opened or read fails for good. Each camera has its own thread and PyAV releases the
GIL while it waits on the network or decodes, so a failing camera never stalls the others.

Stopping: :meth:`CameraSource.stop` sets a flag the thread checks between packets and in every wait
(backoff, pacing, a full queue); a read blocked on a silent stream returns within ``timeout_s`` through
PyAV's interrupt callback. The container is not closed from the stopping thread: the reader may be inside
``av_read_frame`` without the GIL at that moment, and closing the format context under it is a
use-after-free. The thread is a daemon thread, so an unfinished one never keeps the process alive.
"""

from __future__ import annotations

import datetime as dt
import enum
import logging
import queue
import random
import threading
import time
from collections import deque
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from fractions import Fraction
from typing import Literal
from urllib.parse import urlsplit, urlunsplit

import av
import av.error
import numpy as np
import numpy.typing as npt
from av.container import InputContainer
from av.packet import Packet
from av.video.codeccontext import VideoCodecContext
from av.video.frame import VideoFrame
from av.video.reformatter import VideoReformatter
from av.video.stream import VideoStream

from common.backoff import Backoff
from pipeline.clips import PacketRing
from pipeline.config import CameraConfig, ZoneConfig
from pipeline.errors import SourceError, SourceOpenError, SourceReadError
from pipeline.roi import crop_to_fit, pixel_box, zone_roi
from pipeline.sampling import (
    UTC,
    FrameSelector,
    LagMeter,
    PacketAction,
    SceneChangeGate,
    StreamClock,
    ZoneGate,
    thumbnail_size,
)
from pipeline.substream import MainStream

log = logging.getLogger(__name__)

SourceKind = Literal["file", "rtsp", "http", "v4l2", "stream"]
CameraState = Literal["connecting", "up", "reconnecting", "failed", "ended", "stopped"]

CATCH_UP_LAG_S = 2.0  # live: this far behind the live edge, skip to the next keyframe
FPS_WINDOW_S = 5.0  # health.fps: packets received per second over this window
RECENT_MAX = 256  # bounded windows of arrival times and decode durations
POLL_S = 0.1  # waits on the queue re-check the stop flag this often
DEFAULT_QUEUE_SIZE = 8
COUNTERS = (
    "frames_in",
    "sampled",
    "skipped_unchanged",
    "dropped",
    "delivered",
    "decode_errors",
    "catch_ups",
    "loops",
    "skipped_busy",
)
# The SDP of an RTSP session already describes the stream: probing it only delays the first frame (~2 s
# with GStreamer's server). UDP gets a larger socket buffer for keyframe bursts.
RTSP_OPTIONS = {"probesize": "32", "analyzeduration": "0"}
RTSP_UDP_OPTIONS = {"buffer_size": str(4 * 1024 * 1024)}
HLS_OPTIONS = {"live_start_index": "-1"}  # start at the newest segment: the freshest frames
AVFMT_NOTIMESTAMPS = 0x0080  # an input format whose packets carry no timestamps (FFmpeg invents them)


def source_kind(url: str) -> SourceKind:
    """What kind of source a camera URL names."""
    scheme = urlsplit(url).scheme.lower() if "://" in url else ""
    if scheme in ("rtsp", "rtsps"):
        return "rtsp"
    if scheme in ("http", "https"):
        return "http"
    if scheme == "v4l2" or url.startswith("/dev/video"):
        return "v4l2"
    if scheme in ("", "file"):
        return "file"
    return "stream"


def redact_url(url: str) -> str:
    """``url`` with any user name and password replaced by ``***`` (for logs, errors and health)."""
    if "://" not in url:
        return url
    parts = urlsplit(url)
    if "@" not in parts.netloc:
        return url
    host = parts.netloc.rsplit("@", 1)[1]
    return urlunsplit(parts._replace(netloc=f"***@{host}"))


def input_arguments(config: CameraConfig, url: str | None = None) -> tuple[str, str | None, dict[str, str]]:
    """(target, FFmpeg format or None, FFmpeg input options) for opening ``url`` (default ``config.url``)."""
    url = config.url if url is None else url
    kind = source_kind(url)
    options: dict[str, str] = {}
    fmt: str | None = None
    if kind == "file" and url.startswith("file://"):
        url = url[len("file://") :]
    elif kind == "rtsp":
        options = {"rtsp_transport": config.rtsp_transport, **RTSP_OPTIONS}
        if config.rtsp_transport == "udp":
            options.update(RTSP_UDP_OPTIONS)
    elif kind == "http" and urlsplit(url).path.lower().endswith(".m3u8"):
        options = dict(HLS_OPTIONS)
    elif kind == "v4l2":
        fmt = "video4linux2"
        url = url[len("v4l2://") :] if url.startswith("v4l2://") else url
    options.update(config.ffmpeg_options)
    return url, fmt, options


class SampledFrame:
    """A sample handed to the daemon.

    ``image``: HxWx3 uint8 BGR at the stream's resolution (evidence needs it), converted from the decoded
    picture on first access only (most analysed frames never need it: the detector reads ``small``), then
    kept; ``hw`` is its (height, width) without converting. ``small``: the same picture scaled straight from
    the decoded frame to fit inside the source's ``input_hw`` (aspect kept), or None when no ``input_hw``
    was given; boxes found on it scale to ``image`` by ``hw[1] / small.shape[1]``. ``small_box``: zone-ROI
    inference (``zone_roi``): ``small`` shows only this (x0, y0, x1, y1) crop of ``image`` (see
    :mod:`pipeline.roi`); None: the whole picture. ``zones_unchanged``: zone gating (``zone_gating``) saw
    no change inside the zones since the last sample the model ran on (:class:`pipeline.sampling.ZoneGate`).
    ``decode_s``: seconds spent decoding and converting this sample. ``thumb``: the scene-change thumbnail.
    ``full``: a camera that detects on its substream (``detect_url``): returns the main stream's keyframe
    of the sample's own moment decoded at full resolution (or None), while ``image`` is the substream's
    picture; see :mod:`pipeline.substream`. None for a camera with one stream. ``full_bytes``: the
    compressed keyframe that ``full`` holds (live streams), counted in :attr:`nbytes`.
    """

    __slots__ = (
        "_image",
        "_lock",
        "_picture",
        "camera_id",
        "decode_s",
        "full",
        "full_bytes",
        "hw",
        "keyframe",
        "seq",
        "small",
        "small_box",
        "stream_time",
        "thumb",
        "zones_unchanged",
    )

    def __init__(
        self,
        camera_id: str,
        seq: int,
        stream_time: dt.datetime,
        image: npt.NDArray[np.uint8] | VideoFrame,
        keyframe: bool,
        small: npt.NDArray[np.uint8] | None = None,
        decode_s: float = 0.0,
        thumb: npt.NDArray[np.uint8] | None = None,
        full: Callable[[], npt.NDArray[np.uint8] | None] | None = None,
        small_box: tuple[int, int, int, int] | None = None,
        zones_unchanged: bool = False,
        full_bytes: int = 0,
    ) -> None:
        self.camera_id = camera_id
        self.full_bytes = full_bytes
        self.zones_unchanged = zones_unchanged
        self.small_box = small_box
        self.seq = seq
        self.stream_time = stream_time
        self.keyframe = keyframe
        self.small = small
        self.decode_s = decode_s
        self.thumb = thumb
        self.full = full
        self._lock = threading.Lock()
        if isinstance(image, VideoFrame):
            self._picture: VideoFrame | None = image
            self._image: npt.NDArray[np.uint8] | None = None
            self.hw = (int(image.height), int(image.width))
        else:
            self._picture, self._image = None, image
            self.hw = (int(image.shape[0]), int(image.shape[1]))

    @property
    def image(self) -> npt.NDArray[np.uint8]:
        image = self._image
        if image is None:
            with self._lock:  # the rules, snapshot and evidence threads may ask at once
                image = self._image
                if image is None:
                    assert self._picture is not None
                    image = np.ascontiguousarray(self._picture.to_ndarray(format="bgr24"), dtype=np.uint8)
                    self._image, self._picture = image, None
        return image

    @property
    def nbytes(self) -> int:
        """Memory the sample holds: its picture (decoded, or converted to BGR), the detector's copy, the
        thumbnail and a live main stream's compressed keyframe (``full_bytes``)."""
        image, picture = self._image, self._picture
        held = self.full_bytes + (image.nbytes if image is not None else 0)
        if picture is not None:
            held += sum(plane.buffer_size for plane in picture.planes)
        for extra in (self.small, self.thumb):
            held += extra.nbytes if extra is not None else 0
        return held

    def __repr__(self) -> str:
        return (
            f"SampledFrame(camera_id={self.camera_id!r}, seq={self.seq}, stream_time={self.stream_time!r}, "
            f"hw={self.hw}, keyframe={self.keyframe}, decode_s={self.decode_s:.4f})"
        )


@dataclass(frozen=True, slots=True)
class CameraHealth:
    """A snapshot of one camera source (``CameraSource.health``)."""

    camera_id: str
    state: CameraState
    last_frame_at: dt.datetime | None  # wall clock (UTC) when the last packet arrived
    last_stream_time: dt.datetime | None  # stream time of the last sample
    fps: float  # packets (frames) received per second over the last FPS_WINDOW_S
    reconnects: int  # times the stream came back after it was lost
    last_error: str | None
    failures: int  # failed attempts in a row (0 while up)
    frames_in: int  # packets received
    sampled: int  # frames the sampler chose
    skipped_unchanged: int  # samples skipped by the scene-change gate
    dropped: int  # live: samples replaced before the consumer took them
    delivered: int  # samples handed to the consumer
    decode_errors: int  # packets the decoder rejected (skipped)
    catch_ups: int  # live: times the source skipped to a keyframe because it fell behind
    lag_s: float  # live: how far reading is behind the live edge
    decode_ms: float  # mean decode + conversion time of recent samples
    sampling: str  # the sampler's phase: keyframes, probing, fallback, fps, intra
    loops: int  # files: times the file started again
    skipped_busy: int = 0  # live, overloaded: keyframes skipped undecoded while a sample still waited

    @property
    def healthy(self) -> bool:
        return self.state == "up"


class _Outcome(enum.Enum):
    ENDED = "ended"  # a file reached its end
    LOOPED = "looped"  # a looping file reached its end: open it again at once
    LOST = "lost"  # a live stream failed or ended: reconnect after a backoff
    FATAL = "fatal"  # a file that cannot be opened or read: give up
    STOPPED = "stopped"


class _MediaTime:
    """Seconds on the source's media time line for packets and frames of one connection.

    Timestamps (pts, else dts, else the previous time plus one frame) plus the file's loop offset; formats
    without timestamps (MJPEG over HTTP: FFmpeg invents 25 fps) on live sources use the arrival time.
    """

    def __init__(
        self, *, by_arrival: bool, time_base: Fraction | None, origin: float, offset_s: float, frame_s: float
    ) -> None:
        self.by_arrival = by_arrival
        self.time_base = time_base
        self.origin = origin  # monotonic time of media second 0 for arrival timing
        self.offset_s = offset_s
        self.frame_s = frame_s
        self.first_raw: float | None = None
        self.last_raw: float | None = None
        self.packet_s = offset_s

    def packet(self, packet: Packet[VideoStream]) -> float:
        if self.by_arrival:
            self.packet_s = time.monotonic() - self.origin
            return self.packet_s
        stamp = packet.pts if packet.pts is not None else packet.dts
        if stamp is None or self.time_base is None:
            raw = (self.last_raw + self.frame_s) if self.last_raw is not None else 0.0
        else:
            raw = float(stamp * self.time_base)
        self._extend(raw)
        self.packet_s = raw + self.offset_s
        return self.packet_s

    def frame(self, frame: VideoFrame) -> float:
        # frame.pts in the stream's time base; not frame.time: a drained frame has no time base (NaN).
        if self.by_arrival or frame.pts is None or self.time_base is None:
            return self.packet_s
        raw = float(frame.pts * self.time_base)
        self._extend(raw)
        return raw + self.offset_s

    def _extend(self, raw: float) -> None:
        self.first_raw = raw if self.first_raw is None else min(self.first_raw, raw)
        self.last_raw = raw if self.last_raw is None else max(self.last_raw, raw)

    def next_loop_offset(self) -> float:
        """The offset for the next pass over a looping file: continue one frame after this pass's end."""
        if self.first_raw is None or self.last_raw is None:
            return self.offset_s + self.frame_s
        return self.offset_s + (self.last_raw - self.first_raw) + self.frame_s


class CameraSource:
    """One camera: a thread that opens, reads, samples and reconnects; see the module docstring.

    Args:
        config: the camera's configuration.
        input_hw: (height, width) of the detector input; when given, each sample also carries ``small``.
        queue_size: files not paced: samples that may wait for :meth:`next_frame`.
        on_frame: called with the camera id after each sample is ready, on the source thread: keep it
            quick (set an event to wake a consumer); a slow one delays reading, which then catches up.
        zones: the zones the camera runs with now (zone-ROI and zone gating; default: the configured ones).
        busy: live sources: whether the consumer still holds this camera's previous sample unanalysed;
            while it does, keyframes that would be decoded on their own are skipped undecoded (the
            consumer could not take them before the next one anyway: drop before decoding).
        rng: for the backoff jitter (tests pass a seeded one).
    """

    def __init__(
        self,
        config: CameraConfig,
        *,
        input_hw: tuple[int, int] | None = None,
        queue_size: int = DEFAULT_QUEUE_SIZE,
        on_frame: Callable[[str], None] | None = None,
        rng: random.Random | None = None,
        busy: Callable[[], bool] | None = None,
        zones: Callable[[], Sequence[ZoneConfig]] | None = None,
    ) -> None:
        self.config = config
        self.camera_id = config.id
        self.stream_url = config.detect_url or config.url  # the stream sampled and detected on
        self.kind = source_kind(self.stream_url)
        self.url = redact_url(self.stream_url)
        self.paced = self.kind == "file" and config.realtime
        self.live = self.kind != "file" or config.realtime
        self.input_hw = input_hw
        self._on_frame = on_frame
        self._busy = busy if self.live else None
        # zone-ROI and zone gating follow the zones the daemon runs with (else the configured ones)
        self._zones: Callable[[], Sequence[ZoneConfig]] = zones or (lambda: config.zones)
        self._zone_gate = (
            ZoneGate(threshold=config.change_threshold, max_skip_s=config.max_skip_s)
            if config.zone_gating
            else None
        )
        self.main: MainStream | None = (
            MainStream(config, follow=not self.live) if config.detect_url is not None else None
        )
        self._selector = FrameSelector(config.sample)
        self._clock = StreamClock(live=self.kind != "file", start=config.start_time)
        self._gate = SceneChangeGate(
            threshold=config.change_threshold, max_skip_s=config.max_skip_s, enabled=config.skip_unchanged
        )
        self._lag = LagMeter()
        self._backoff = Backoff(config.reconnect_min_s, config.reconnect_max_s, rng)
        self._queue: queue.Queue[SampledFrame] | None = (
            None if self.live else queue.Queue(maxsize=max(1, queue_size))
        )
        self._reformatters = {name: VideoReformatter() for name in ("small", "thumb")}
        # Evidence clips (cameras[].clips): every compressed packet, before sampling, in a bounded ring.
        self.packets = PacketRing(config.id, config.clips) if config.clips.enabled else None
        self._lock = threading.Condition()
        self._stop = threading.Event()
        self._finished = threading.Event()
        self._thread: threading.Thread | None = None
        self._origin = time.monotonic()
        self._loop_offset = 0.0
        self._pace_base: tuple[float, float] | None = None  # (monotonic, media s) for realtime files
        # Guarded by _lock: the freshest sample, what was handed over, and the health fields below.
        self._slot: SampledFrame | None = None
        self._handed_seq = -1
        self._state: CameraState = "connecting"
        self._last_error: str | None = None
        self._failures = 0
        self._reconnects = 0
        self._was_up = False
        self._arrivals: deque[float] = deque(maxlen=RECENT_MAX)
        self._decode_s: deque[float] = deque(maxlen=RECENT_MAX)
        self._last_frame_mono: float | None = None  # monotonic time of the last packet (health says UTC)
        self._last_stream_time: dt.datetime | None = None
        self._counts = dict.fromkeys(COUNTERS, 0)
        self._lag_s = 0.0
        self._last_packet = 0.0  # monotonic time of the last packet (or of the last open)
        self._behind = False
        self._seq = -1

    # --- the consumer's side ---

    def start(self) -> None:
        if self._thread is not None:
            raise RuntimeError(f"camera {self.camera_id}: source already started")
        if self.main is not None:
            self.main.start()
        self._thread = threading.Thread(target=self._run, name=f"camera-{self.camera_id}", daemon=True)
        self._thread.start()

    def stop(self, timeout: float = 5.0) -> bool:
        """Stop the thread; True when it ended within ``timeout`` (else it ends at its next read timeout)."""
        self._stop.set()
        with self._lock:
            if self._state != "ended":
                self._state = "stopped"
            self._lock.notify_all()
        if self.main is not None:
            self.main.stop(timeout)
        if self._thread is None or self._thread is threading.current_thread():
            return True
        self._thread.join(timeout)
        return not self._thread.is_alive()

    def latest(self, after_seq: int = -1) -> SampledFrame | None:
        """The freshest sample newer than ``after_seq``, or None. Never blocks.

        Files that are not paced hand over every sample in order instead (like ``next_frame(0)``).
        """
        if self._queue is not None:
            return self.next_frame(0.0)
        with self._lock:
            frame = self._slot
            if frame is None or frame.seq <= after_seq:
                return None
            self._hand_over(frame)
            return frame

    def next_frame(self, timeout: float | None = None) -> SampledFrame | None:
        """The next sample, waiting at most ``timeout`` seconds (None: until one comes or the stream ends).

        Files not paced: every sample in order. Live sources: the freshest sample newer than the last one
        handed over. None when the time is up or the source has finished (see :attr:`ended`).
        """
        deadline = None if timeout is None else time.monotonic() + timeout
        if self._queue is None:
            return self._wait_fresh(deadline)
        while True:
            wait = POLL_S if deadline is None else min(POLL_S, deadline - time.monotonic())
            try:
                frame = self._queue.get(timeout=wait) if wait > 0 else self._queue.get_nowait()
            except queue.Empty:
                if self._finished.is_set() or self._stop.is_set():
                    try:  # the reader may have put its last sample just before finishing
                        frame = self._queue.get_nowait()
                    except queue.Empty:
                        return None
                elif deadline is not None and time.monotonic() >= deadline:
                    return None
                else:
                    continue
            with self._lock:
                self._hand_over(frame)
            return frame

    def _wait_fresh(self, deadline: float | None) -> SampledFrame | None:
        with self._lock:
            while True:
                frame = self._slot
                if frame is not None and frame.seq > self._handed_seq:
                    self._hand_over(frame)
                    return frame
                if self._finished.is_set() or self._stop.is_set():
                    return None
                remaining = None if deadline is None else deadline - time.monotonic()
                if remaining is not None and remaining <= 0:
                    return None
                self._lock.wait(POLL_S if remaining is None else min(POLL_S, remaining))

    def _hand_over(self, frame: SampledFrame) -> None:
        """Record that ``frame`` goes to the consumer: it becomes the scene-change reference. Holds _lock."""
        if frame.seq > self._handed_seq:
            self._handed_seq = frame.seq
            self._counts["delivered"] += 1
            if self._queue is None:  # queued samples became the reference when they were queued
                self._gate.mark_analysed(frame.thumb, frame.stream_time)

    @property
    def ended(self) -> bool:
        """The source will hand over nothing more: its thread finished and everything was taken."""
        if not self._finished.is_set():
            return False
        if self._queue is not None:
            return self._queue.empty()
        with self._lock:
            return self._slot is None or self._slot.seq <= self._handed_seq

    @property
    def health(self) -> CameraHealth:
        now = time.monotonic()
        with self._lock:
            recent = [t for t in list(self._arrivals) if now - t <= FPS_WINDOW_S]
            last = self._last_frame_mono
            since = 0.0 if last is None else max(now - last, 0.0)
            last_frame_at = None if last is None else dt.datetime.now(UTC) - dt.timedelta(seconds=since)
            durations = list(self._decode_s)
            counts = dict(self._counts)
            return CameraHealth(
                camera_id=self.camera_id,
                state=self._state,
                last_frame_at=last_frame_at,
                last_stream_time=self._last_stream_time,
                fps=_rate(recent),
                reconnects=self._reconnects,
                last_error=self._last_error,
                failures=self._failures,
                frames_in=counts["frames_in"],
                sampled=counts["sampled"],
                skipped_unchanged=counts["skipped_unchanged"],
                dropped=counts["dropped"],
                delivered=counts["delivered"],
                decode_errors=counts["decode_errors"],
                catch_ups=counts["catch_ups"],
                lag_s=self._lag_s,
                decode_ms=1000.0 * sum(durations) / len(durations) if durations else 0.0,
                sampling=self._selector.phase,
                loops=counts["loops"],
                skipped_busy=counts["skipped_busy"],
            )

    # --- the source thread ---

    def _run(self) -> None:
        try:
            self._loop()
        except Exception as exc:  # a bug, not a stream problem: report it rather than die silently
            log.exception("camera %s (%s): source thread failed", self.camera_id, self.url)
            self._set_state("failed", f"camera {self.camera_id} ({self.url}): unexpected error: {exc!r}")
        finally:
            if self.packets is not None:
                self.packets.close()
            if self.main is not None:
                self.main.finish()
            self._finished.set()
            with self._lock:
                self._lock.notify_all()

    def _loop(self) -> None:
        while not self._stop.is_set():
            outcome = self._session()
            if outcome is _Outcome.LOOPED:
                self._count("loops")
                continue
            if outcome is not _Outcome.LOST:
                return
            delay = self._backoff.next_delay()
            log.info("camera %s: reconnecting in %.1f s", self.camera_id, delay)
            self._stop.wait(delay)

    def _session(self) -> _Outcome:
        """One connection: open, read to the end or to a failure."""
        try:
            container = self._open()
        except SourceOpenError as exc:
            return self._failed(exc, fatal=self.kind == "file")
        frames_before = self._counts["frames_in"]
        self._last_packet = time.monotonic()
        try:
            with container:
                return self._read(container)
        except (av.error.FFmpegError, OSError) as exc:
            problem = _timed_out(exc, time.monotonic() - self._last_packet, self.config.timeout_s, "no data")
            error = SourceReadError(self.camera_id, self.url, f"stream broke off: {problem}")
        except Exception as exc:  # not a stream problem (a bug?): keep the traceback, retry like a failure
            log.exception("camera %s (%s): reading failed unexpectedly", self.camera_id, self.url)
            error = SourceReadError(self.camera_id, self.url, f"unexpected error: {exc!r}")
        return self._failed(
            error, fatal=self.kind == "file", was_up=self._counts["frames_in"] > frames_before
        )

    def _open(self) -> InputContainer:
        target, fmt, options = input_arguments(self.config, self.stream_url)
        timeout = self.config.timeout_s
        started = time.monotonic()
        try:
            container = av.open(
                target, mode="r", format=fmt, container_options=options, timeout=(timeout, timeout)
            )
        except (av.error.FFmpegError, OSError) as exc:
            problem = _timed_out(exc, time.monotonic() - started, timeout, "no answer")
            raise SourceOpenError(self.camera_id, self.url, f"cannot open: {problem}") from exc
        if not container.streams.video:
            container.close()
            raise SourceOpenError(self.camera_id, self.url, "no video stream in it")
        return container

    def _read(self, container: InputContainer) -> _Outcome:
        stream = container.streams.video[0]
        stream.thread_type = "AUTO"
        ctx = stream.codec_context
        if self.packets is not None:
            self.packets.begin(stream)
        self._selector.restart(intra_only=ctx.codec.intra_only)
        self._clock.rebase()
        self._lag.reset()
        rate = stream.average_rate or stream.guessed_rate
        media = _MediaTime(
            by_arrival=self.live and not self.paced and _no_timestamps(container),
            time_base=stream.time_base,
            origin=self._origin,
            offset_s=self._loop_offset,
            frame_s=float(1 / rate) if rate else 0.04,
        )
        catch_up = self.live and container.format.name != "hls"  # HLS arrives in segment-long bursts
        held: list[Packet[VideoStream]] = []  # probing the GOP: its packets, undecoded (pipeline.sampling)
        for packet in container.demux(stream):
            if self._stop.is_set():
                return _Outcome.STOPPED
            if packet.size == 0:  # the demuxer's end-of-stream marker
                continue
            self._on_packet()
            t = media.packet(packet)
            if self.packets is not None:
                self.packets.add(packet, t)
            behind = self._pace(t) > CATCH_UP_LAG_S and catch_up
            if behind and not self._behind:
                self._count("catch_ups")
            self._behind = behind
            action = self._selector.on_packet(t, packet.is_keyframe, behind=behind)
            if action is PacketAction.DECODE_HELD:  # the GOP proved too long: decode what was held first
                started = time.perf_counter()
                for frame in self._decode_held(ctx, held):
                    self._consider(frame, media.frame(frame), started)
                action = PacketAction.DECODE
            if self._selector.holding:
                held.append(packet)
            elif held:
                held.clear()
            if action is PacketAction.SKIP or action is PacketAction.HOLD:
                continue
            if action is PacketAction.DECODE_ALONE and self._busy is not None and self._overloaded():
                self._counts["skipped_busy"] += 1  # overloaded: drop before decoding, not after
                continue
            started = time.perf_counter()
            for frame in self._decode(ctx, packet, action):
                self._consider(frame, media.frame(frame), started)
        started = time.perf_counter()
        for frame in self._decode(ctx, None, PacketAction.DECODE):  # drain the decoder
            self._consider(frame, media.frame(frame), started)
        return self._at_end(media)

    def _at_end(self, media: _MediaTime) -> _Outcome:
        if self._stop.is_set():
            return _Outcome.STOPPED
        if self.kind != "file":
            error = SourceReadError(self.camera_id, self.url, "the stream ended")
            return self._failed(error, fatal=False, was_up=True)
        if self.config.loop:
            self._loop_offset = media.next_loop_offset()
            return _Outcome.LOOPED
        self._set_state("ended")
        return _Outcome.ENDED

    def _pace(self, t: float) -> float:
        """Realtime files: wait until ``t`` is due. Returns (and records) how far reading lags the edge."""
        if self.paced:
            now = time.monotonic()
            if self._pace_base is None:
                self._pace_base = (now, t)
            due = self._pace_base[0] + (t - self._pace_base[1])
            if due > now:
                self._stop.wait(due - now)
        lag = self._lag.update(t, time.monotonic()) if self.live else 0.0
        self._lag_s = lag
        return lag

    def _decode(
        self, ctx: VideoCodecContext, packet: Packet[VideoStream] | None, action: PacketAction
    ) -> list[VideoFrame]:
        if action is PacketAction.DECODE_AFRESH:
            ctx.flush_buffers()  # frames still held from before the skipped packets are stale
        try:
            frames = ctx.decode(packet)
            if action is PacketAction.DECODE_ALONE:
                frames += ctx.decode(None)  # drain now: the sample leaves without waiting for later frames
        except av.error.FFmpegError as exc:  # a damaged packet: skip it, keep the stream
            self._count("decode_errors")
            log.debug("camera %s: decoding failed: %s", self.camera_id, exc)
            frames = []
        if action is PacketAction.DECODE_ALONE:
            ctx.flush_buffers()  # reopen the drained decoder for the next keyframe
        return frames

    def _decode_held(self, ctx: VideoCodecContext, held: Sequence[Packet[VideoStream]]) -> list[VideoFrame]:
        """The packets held while probing, decoded in sequence from their keyframe (afresh)."""
        frames: list[VideoFrame] = []
        for index, packet in enumerate(held):
            action = PacketAction.DECODE_AFRESH if index == 0 else PacketAction.DECODE
            frames += self._decode(ctx, packet, action)
        return frames

    def _consider(self, frame: VideoFrame, t: float, started: float) -> None:
        if not self._selector.take(t, frame.key_frame):
            return
        self._count("sampled")
        if self.main is not None:
            self.main.advance_to(t)
        stream_time = self._clock.to_utc(t, dt.datetime.now(UTC))
        if self.packets is not None:
            self.packets.anchor(t, stream_time)
        gated = self._gate.enabled or self._zone_gate is not None
        thumb = self._thumbnail(frame) if gated else None
        with self._lock:
            self._last_stream_time = stream_time
            if not self._gate.should_analyse(thumb, stream_time):
                self._counts["skipped_unchanged"] += 1
                return
        self._seq += 1
        small, small_box = self._small(frame)
        full, full_bytes = self._full_at(t)
        unchanged = (
            self._zone_gate is not None
            and thumb is not None
            and self._zone_gate.unchanged(thumb, self._zones(), stream_time)
        )
        sample = SampledFrame(
            camera_id=self.camera_id,
            seq=self._seq,
            stream_time=stream_time,
            image=frame,  # converted to BGR only if someone looks at it (SampledFrame.image)
            keyframe=frame.key_frame,
            small=small,
            small_box=small_box,
            zones_unchanged=unchanged,
            decode_s=time.perf_counter() - started,
            thumb=thumb,
            full=full,
            full_bytes=full_bytes,
        )
        with self._lock:
            self._decode_s.append(sample.decode_s)
        self._publish(sample)

    def _full_at(self, t: float) -> tuple[Callable[[], npt.NDArray[np.uint8] | None] | None, int]:
        """The sample's way to its main-stream keyframe, and the bytes it holds: the keyframe of its own
        time for a file that is not paced (samples are queued ahead; the reader keeps recent keyframes),
        the one the live stream holds at the sample's moment otherwise (held by the sample)."""
        main = self.main
        if main is None:
            return None, 0
        if main.follow:
            return (lambda: main.image(t)), 0
        return main.current()

    def _overloaded(self) -> bool:
        """Drop before decoding: the consumer still holds this camera's previous sample unanalysed, or has
        not even taken the one waiting here (decoding another would only replace it)."""
        if self._busy is not None and self._busy():
            return True
        with self._lock:
            return self._slot is not None and self._slot.seq > self._handed_seq

    def _thumbnail(self, frame: VideoFrame) -> npt.NDArray[np.uint8]:
        width, height = thumbnail_size(frame.width, frame.height)
        gray = self._reformatters["thumb"].reformat(
            frame, width=width, height=height, format="gray", interpolation="AREA"
        )
        return np.ascontiguousarray(gray.to_ndarray(), dtype=np.uint8)

    def _small(
        self, frame: VideoFrame
    ) -> tuple[npt.NDArray[np.uint8] | None, tuple[int, int, int, int] | None]:
        """The detector's copy, and the crop of the picture it shows (None: all of it)."""
        if self.input_hw is None:
            return None, None
        rect = zone_roi(self._zones()) if self.config.zone_roi else None
        if rect is not None:
            box = pixel_box(rect, frame.width, frame.height)
            return crop_to_fit(frame, box, self.input_hw), box
        target_h, target_w = self.input_hw
        scale = min(target_h / frame.height, target_w / frame.width, 1.0)
        width, height = max(1, round(frame.width * scale)), max(1, round(frame.height * scale))
        small = self._reformatters["small"].reformat(
            frame, width=width, height=height, format="bgr24", interpolation="BILINEAR"
        )
        return np.ascontiguousarray(small.to_ndarray(), dtype=np.uint8), None

    def _publish(self, sample: SampledFrame) -> None:
        if self._queue is not None:
            with self._lock:
                self._gate.mark_analysed(sample.thumb, sample.stream_time)  # every queued sample is analysed
            while not self._stop.is_set():
                try:
                    self._queue.put(sample, timeout=POLL_S)
                    break
                except queue.Full:
                    continue
        else:
            with self._lock:
                if self._slot is not None and self._slot.seq > self._handed_seq:
                    self._counts["dropped"] += 1
                self._slot = sample
                self._lock.notify_all()
        if self._on_frame is not None:
            self._on_frame(self.camera_id)

    # --- health bookkeeping ---

    def _on_packet(self) -> None:
        """Per packet: kept cheap (no lock, no datetime) while the camera is up. Only this thread writes
        these fields; :attr:`health` reads them (a count one packet behind at worst)."""
        now = time.monotonic()
        self._counts["frames_in"] += 1
        self._last_packet = now
        self._arrivals.append(now)
        self._last_frame_mono = now
        if self._state != "up":
            self._maybe_came_up()

    def _maybe_came_up(self) -> None:
        with self._lock:
            if self._state != "up" and not self._stop.is_set():
                self._came_up()

    def _came_up(self) -> None:
        """Frames flow (again). Holds _lock."""
        if self._was_up and self._state in ("reconnecting", "failed"):
            self._reconnects += 1
            log.info("camera %s (%s): reconnected", self.camera_id, self.url)
        self._was_up = True
        self._state = "up"
        self._failures = 0
        self._backoff.reset()

    def _failed(self, error: SourceError, *, fatal: bool, was_up: bool = False) -> _Outcome:
        if self._stop.is_set():
            return _Outcome.STOPPED
        with self._lock:
            self._failures = 1 if was_up else self._failures + 1
            self._last_error = str(error)
            state: CameraState = (
                "failed" if fatal or self._failures >= self.config.failed_after else "reconnecting"
            )
            self._state = state
        log.warning("%s (%s, attempt %d)", error, state, self._failures)
        return _Outcome.FATAL if fatal else _Outcome.LOST

    def _set_state(self, state: CameraState, error: str | None = None) -> None:
        with self._lock:
            if self._state != "stopped":
                self._state = state
            if error is not None:
                self._last_error = error

    def _count(self, name: str) -> None:
        with self._lock:
            self._counts[name] += 1


def _timed_out(error: Exception, waited_s: float, timeout_s: float, what: str) -> str:
    """FFmpeg reports an interrupted wait as some other error ("Invalid data", "Immediate exit"): say so."""
    if waited_s >= 0.95 * timeout_s:
        return f"{what} within timeout_s={timeout_s:g} s ({error})"
    return str(error)


def _no_timestamps(container: InputContainer) -> bool:
    return bool(container.format.flags & AVFMT_NOTIMESTAMPS)


def _rate(times: list[float]) -> float:
    if len(times) < 2 or times[-1] <= times[0]:
        return 0.0
    return (len(times) - 1) / (times[-1] - times[0])


def iter_samples(source: CameraSource, timeout: float | None = None) -> Iterator[SampledFrame]:
    """Every sample of a started source until it ends (or no sample comes within ``timeout``)."""
    while (frame := source.next_frame(timeout)) is not None:
        yield frame
