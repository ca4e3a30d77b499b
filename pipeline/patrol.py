"""Patrol mode (轮巡): cameras visited in turn instead of held open.

Shared city cameras often cannot be pulled all at once (the video platform caps concurrent pulls), and a
camera watched for parked vehicles or piles of rubbish need not be decoded continuously. A camera with
``sample: {mode: patrol, every_s: 60}`` is *visited* every ``every_s``: connect (RTSP, HTTP-FLV or HLS through
PyAV, or an HTTP snapshot URL answering with a JPEG/PNG), take the first keyframe (or the snapshot),
disconnect. The visit's frame goes through the same stages as any sampled frame (scheduler and detector,
rules, incidents, evidence, outbox): :class:`PatrolSource` is the camera's ``SourceLike`` and hands the
frame of its latest visit to the scheduler.

Threads: ``patrol`` (the dispatcher) and ``patrol.max_concurrent`` workers (``patrol-visit-N``).

* Turns. Camera ``i`` of ``n`` is first due ``i / n`` of its turn after the start (the first turn is spread,
  not a burst); each next turn is due one ``every_s`` after the previous *due* time (a grid, so visits do not
  drift later and later), or now when a whole turn was missed. A camera is never visited twice at once.
* Bounded concurrency. At most ``patrol.max_concurrent`` visits run at once, and at most
  ``patrol.per_host_limit`` to one upstream host (the URL's host name): a due camera whose host is at its
  limit waits while due cameras of other hosts go ahead.
* Timeouts. A visit that has no frame within ``patrol.visit_timeout_s`` is abandoned (every socket
  operation is bounded by the same timeout, and the whole visit by a deadline); the camera's health turns
  ``reconnecting``, then ``failed`` after ``failed_after`` failed visits in a row (the store's camera states,
  contract.health), and it is tried again on its next turn. Other cameras are never held up by it beyond
  the worker it occupies.
* Dwell across visits. Frames carry the wall-clock time of the visit as their stream time, and a patrol
  camera's tracks survive gaps up to its ``gap_tolerance_s`` (default 2.5 turns,
  :func:`pipeline.config.camera_gap_tolerance`): a pile seen on three visits 60 s apart has stood 120 s.

State per camera is a few counters and the frame of the latest visit until the scheduler takes it (the
source keeps no reference after that), so hundreds of patrol cameras cost well under a megabyte each.
"""

from __future__ import annotations

import datetime as dt
import heapq
import logging
import queue
import threading
import time
import urllib.error
import urllib.request
from collections import deque
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Literal
from urllib.parse import urlsplit

import numpy as np
import numpy.typing as npt

from pipeline.config import CameraConfig, PatrolConfig, PatrolSampling
from pipeline.sources import CameraHealth, SampledFrame, input_arguments, redact_url

log = logging.getLogger(__name__)

UTC = dt.UTC
SNAPSHOT_MAX_BYTES = 32 * 1024 * 1024  # a snapshot larger than this is not a picture
SNAPSHOT_CHUNK = 256 * 1024
IMAGE_TYPES = ("image/jpeg", "image/jpg", "image/png", "image/bmp", "image/webp")
MAX_VISIT_PACKETS = 2000  # a stream without a keyframe in this many packets gives nothing
RECENT_VISITS = 4096  # bounded window of visit statistics (lateness, duration) across all cameras
STOP_POLL_S = 0.2
TIMEOUT_SLACK_S = 0.05  # a socket timeout ends this close to the visit's deadline

VisitKind = Literal["snapshot", "stream"]


class VisitError(Exception):
    """A visit that gave no frame; the message says why (for the camera's health)."""


@dataclass(frozen=True, slots=True)
class VisitFrame:
    """What one visit brought back: the picture (BGR) at full resolution, and its copy for the detector."""

    image: npt.NDArray[np.uint8]
    small: npt.NDArray[np.uint8] | None
    kind: VisitKind
    decode_s: float


@dataclass(frozen=True, slots=True)
class VisitRecord:
    """One finished visit (for metrics and the benchmark): how late it started, how long it took."""

    camera_id: str
    due: float  # time.monotonic() the visit was due
    late_s: float  # start - due time (>= 0)
    duration_s: float  # start -> frame or failure
    ok: bool


VisitFn = Callable[[CameraConfig, float, "tuple[int, int] | None"], VisitFrame]


def upstream_host(url: str) -> str:
    """The host whose connections ``patrol.per_host_limit`` caps: the URL's host name, lower case."""
    return (urlsplit(url).hostname or url).lower()


def small_size(height: int, width: int, input_hw: tuple[int, int] | None) -> tuple[int, int] | None:
    """(height, width) scaled to fit inside ``input_hw`` (aspect kept, never enlarged), as sources do."""
    if input_hw is None:
        return None
    scale = min(input_hw[0] / height, input_hw[1] / width, 1.0)
    return max(1, round(height * scale)), max(1, round(width * scale))


def visit(camera: CameraConfig, timeout_s: float, input_hw: tuple[int, int] | None) -> VisitFrame:
    """Connect to ``camera``, take one picture, disconnect; :class:`VisitError` within about ``timeout_s``.

    http(s) URLs are asked once: an ``image/*`` answer is a snapshot, anything else (HTTP-FLV, HLS) is
    closed and opened again as a stream. rtsp(s) URLs are streams.
    """
    deadline = time.monotonic() + timeout_s
    scheme = urlsplit(camera.url).scheme.lower()
    try:
        if scheme in ("http", "https"):
            picture = _snapshot(camera, deadline, input_hw)
            if picture is not None:
                return picture
        return _first_keyframe(camera, deadline, input_hw)
    except VisitError as exc:
        if time.monotonic() >= deadline - TIMEOUT_SLACK_S and "visit timeout" not in str(exc):
            raise VisitError(f"no picture within the visit timeout ({timeout_s:g} s): {exc}") from exc
        raise


def _left(deadline: float, what: str) -> float:
    left = deadline - time.monotonic()
    if left <= 0:
        raise VisitError(f"no picture within the visit timeout ({what})")
    return left


def _snapshot(camera: CameraConfig, deadline: float, input_hw: tuple[int, int] | None) -> VisitFrame | None:
    """The picture of an HTTP snapshot URL; None when the URL answers with something else (a stream)."""
    import cv2

    request = urllib.request.Request(camera.url, headers={"User-Agent": "streetwatch-patrol"})
    try:
        with urllib.request.urlopen(request, timeout=_left(deadline, "connecting")) as response:
            content_type = (response.headers.get_content_type() or "").lower()
            if content_type not in IMAGE_TYPES:
                return None
            chunks, size = [], 0
            while True:
                _left(deadline, "reading the snapshot")
                chunk = response.read(SNAPSHOT_CHUNK)
                if not chunk:
                    break
                size += len(chunk)
                if size > SNAPSHOT_MAX_BYTES:
                    raise VisitError(f"snapshot larger than {SNAPSHOT_MAX_BYTES // 2**20} MiB")
                chunks.append(chunk)
    except urllib.error.HTTPError as exc:
        raise VisitError(f"snapshot answered HTTP {exc.code}") from exc
    except (urllib.error.URLError, OSError) as exc:
        reason = getattr(exc, "reason", exc)
        raise VisitError(f"no answer: {reason}") from exc
    started = time.perf_counter()
    data = np.frombuffer(b"".join(chunks), np.uint8)
    image = cv2.imdecode(data, cv2.IMREAD_COLOR)
    if image is None:
        raise VisitError(f"snapshot ({content_type}, {size} bytes) is not a readable picture")
    full: npt.NDArray[np.uint8] = np.ascontiguousarray(image, dtype=np.uint8)
    small: npt.NDArray[np.uint8] | None = None
    target = small_size(full.shape[0], full.shape[1], input_hw)
    if target is not None and target != full.shape[:2]:
        resized = cv2.resize(full, (target[1], target[0]), interpolation=cv2.INTER_AREA)
        small = np.ascontiguousarray(resized, dtype=np.uint8)
    elif target is not None:
        small = full
    return VisitFrame(full, small, "snapshot", time.perf_counter() - started)


def _first_keyframe(camera: CameraConfig, deadline: float, input_hw: tuple[int, int] | None) -> VisitFrame:
    """Open the stream, decode from its first keyframe until one picture comes out, close it."""
    import av

    target, fmt, options = input_arguments(camera)
    timeout = _left(deadline, "connecting")
    try:
        container = av.open(
            target, mode="r", format=fmt, container_options=options, timeout=(timeout, timeout)
        )
    except (av.error.FFmpegError, OSError) as exc:
        raise VisitError(f"cannot open the stream: {exc}") from exc
    try:
        if not container.streams.video:
            raise VisitError("no video stream in it")
        stream = container.streams.video[0]
        stream.thread_type = "NONE"  # one picture: threads would only add start-up cost
        seen_key = False
        packets = 0
        for packet in container.demux(stream):
            _left(deadline, "waiting for a keyframe" if not seen_key else "decoding the keyframe")
            packets += 1
            if packets > MAX_VISIT_PACKETS:
                raise VisitError(f"no decodable keyframe in the first {MAX_VISIT_PACKETS} packets")
            if packet.size == 0:
                continue
            if not seen_key and not packet.is_keyframe:
                continue
            seen_key = True
            started = time.perf_counter()
            try:
                frames = packet.decode()
            except av.error.FFmpegError:
                continue
            for frame in frames:
                image = np.ascontiguousarray(frame.to_ndarray(format="bgr24"), dtype=np.uint8)
                size = small_size(frame.height, frame.width, input_hw)
                small = None
                if size is not None:
                    scaled = frame.reformat(
                        width=size[1], height=size[0], format="bgr24", interpolation="BILINEAR"
                    )
                    small = np.ascontiguousarray(scaled.to_ndarray(), dtype=np.uint8)
                return VisitFrame(image, small, "stream", time.perf_counter() - started)
        raise VisitError("the stream ended before a keyframe")
    except (av.error.FFmpegError, OSError) as exc:
        raise VisitError(f"reading the stream failed: {exc}") from exc
    finally:
        container.close()


class PatrolSource:
    """One patrol camera as the scheduler sees it (``SourceLike``): the frame of its latest visit.

    :meth:`start` and :meth:`stop` do nothing: the :class:`Patroller` visits. Thread-safe.
    """

    def __init__(self, camera: CameraConfig) -> None:
        sample = camera.sample
        if not isinstance(sample, PatrolSampling):
            raise ValueError(f"camera {camera.id!r} is not a patrol camera (sample.mode {sample.mode!r})")
        self.camera = camera
        self.camera_id = camera.id
        self.every_s = sample.every_s
        self.url = redact_url(camera.url)
        self._lock = threading.Lock()
        self._frame: SampledFrame | None = None
        self._seq = 0
        self._handed_seq = 0
        self.state: Literal["up", "reconnecting", "failed"] = "reconnecting"
        self.last_error: str | None = None
        self.last_frame_at: dt.datetime | None = None
        self.failures = 0  # failed visits in a row
        self.visits = 0
        self.failed_visits = 0
        self.recoveries = 0  # times a failing camera answered again
        self.dropped = 0  # visits whose frame was replaced before the scheduler took it
        self.last_decode_ms = 0.0
        self.last_kind: VisitKind | None = None

    # --- SourceLike ---

    def start(self) -> None:
        return None

    def stop(self) -> bool:
        return True

    def latest(self, after_seq: int = -1) -> SampledFrame | None:
        """The latest visit's frame when newer than ``after_seq``; the source lets go of it."""
        with self._lock:
            frame = self._frame
            if frame is None or frame.seq <= after_seq:
                return None
            self._frame = None
            self._handed_seq = frame.seq
            return frame

    def next_frame(self, timeout: float) -> SampledFrame | None:
        return self.latest(-1)

    @property
    def ended(self) -> bool:
        return False

    @property
    def health(self) -> CameraHealth:
        with self._lock:
            up = self.state == "up"
            return CameraHealth(
                camera_id=self.camera_id,
                state=self.state,
                last_frame_at=self.last_frame_at,
                last_stream_time=self.last_frame_at,
                fps=1.0 / self.every_s if up else 0.0,
                reconnects=self.recoveries,
                last_error=self.last_error,
                failures=self.failures,
                frames_in=self.visits - self.failed_visits,
                sampled=self.visits - self.failed_visits,
                skipped_unchanged=0,
                dropped=self.dropped,
                delivered=self._handed_seq,
                decode_errors=0,
                catch_ups=0,
                lag_s=0.0,
                decode_ms=self.last_decode_ms,
                sampling="patrol",
                loops=0,
            )

    # --- called by the Patroller ---

    def visited(self, picture: VisitFrame, at: dt.datetime) -> SampledFrame:
        with self._lock:
            self._seq += 1
            if self._frame is not None:
                self.dropped += 1
            frame = SampledFrame(
                camera_id=self.camera_id,
                seq=self._seq,
                stream_time=at,
                image=picture.image,
                keyframe=True,
                small=picture.small,
                decode_s=picture.decode_s,
            )
            self._frame = frame
            if self.state != "up" and self.visits:
                self.recoveries += 1
            self.visits += 1
            self.state = "up"
            self.failures = 0
            self.last_error = None
            self.last_frame_at = at
            self.last_decode_ms = picture.decode_s * 1000
            self.last_kind = picture.kind
            return frame

    def visit_failed(self, error: str) -> None:
        with self._lock:
            self.visits += 1
            self.failed_visits += 1
            self.failures += 1
            self.last_error = f"{self.url}: {error}"[:500]
            self.state = "failed" if self.failures >= self.camera.failed_after else "reconnecting"


@dataclass(order=True, slots=True)
class _Turn:
    due: float
    index: int  # the camera's position: ties go in configuration order
    camera_id: str


class Patroller:
    """Visits the patrol cameras in turn (see the module docstring); ``sources`` are their ``SourceLike``.

    ``on_frame(camera_id)`` is called after each successful visit (the daemon wakes its scheduler);
    ``visit_fn`` replaces :func:`visit` in tests; ``clock`` is ``time.monotonic``.
    """

    def __init__(
        self,
        cameras: Sequence[CameraConfig],
        settings: PatrolConfig,
        *,
        input_hw: tuple[int, int] | None = None,
        on_frame: Callable[[str], None] | None = None,
        visit_fn: VisitFn = visit,
        on_visit: Callable[[VisitRecord], None] | None = None,
    ) -> None:
        self.settings = settings
        self.input_hw = input_hw
        self.on_frame = on_frame
        self.on_visit = on_visit
        self.visit_fn = visit_fn
        self.sources = {camera.id: PatrolSource(camera) for camera in cameras}
        self.cameras = {camera.id: camera for camera in cameras}
        self._hosts = {camera.id: upstream_host(camera.url) for camera in cameras}
        self._order = {camera.id: index for index, camera in enumerate(cameras)}
        self._lock = threading.Condition()
        self._heap: list[_Turn] = []
        self._in_flight: dict[str, int] = {}  # host -> visits running
        self._running = 0
        self.peak_running = 0
        self.peak_per_host = 0
        self._work: queue.Queue[_Turn | None] = queue.Queue()
        self._stop = threading.Event()
        self._threads: list[threading.Thread] = []
        self.recent: deque[VisitRecord] = deque(maxlen=RECENT_VISITS)
        self.late_turns = 0  # turns skipped because a whole turn was missed

    def start(self) -> None:
        if not self.sources or self._threads:
            return
        now = time.monotonic()
        n = len(self.sources)
        with self._lock:
            for camera_id, index in self._order.items():
                every = self.sources[camera_id].every_s
                heapq.heappush(self._heap, _Turn(now + every * index / n, index, camera_id))
        workers = min(self.settings.max_concurrent, n)
        self._threads = [threading.Thread(target=self._dispatch, name="patrol", daemon=True)]
        self._threads += [
            threading.Thread(target=self._worker, name=f"patrol-visit-{i}", daemon=True)
            for i in range(workers)
        ]
        for thread in self._threads:
            thread.start()
        log.info(
            "patrol: %d camera(s), at most %d visit(s) at once, %d per host, visit timeout %.0f s",
            n,
            self.settings.max_concurrent,
            self.settings.per_host_limit,
            self.settings.visit_timeout_s,
        )

    def stop(self, timeout: float = 5.0) -> bool:
        """Stop dispatching; wait up to ``timeout`` for the visits in progress. True when all ended."""
        self._stop.set()
        with self._lock:
            self._lock.notify_all()
        for _ in self._threads:
            self._work.put(None)
        deadline = time.monotonic() + timeout
        for thread in self._threads:
            thread.join(max(deadline - time.monotonic(), 0.0))
        alive = [thread.name for thread in self._threads if thread.is_alive()]
        if alive:
            log.warning("patrol: %d visit(s) still running at shutdown (abandoned)", len(alive))
        return not alive

    @property
    def running(self) -> int:
        with self._lock:
            return self._running

    # --- dispatcher ---

    def _dispatch(self) -> None:
        limit_all, limit_host = self.settings.max_concurrent, self.settings.per_host_limit
        with self._lock:
            while not self._stop.is_set():
                now = time.monotonic()
                held: list[_Turn] = []  # due, but their host is at its limit
                while self._heap and self._heap[0].due <= now and self._running < limit_all:
                    turn = heapq.heappop(self._heap)
                    host = self._hosts[turn.camera_id]
                    if self._in_flight.get(host, 0) >= limit_host:
                        held.append(turn)
                        continue
                    self._in_flight[host] = self._in_flight.get(host, 0) + 1
                    self._running += 1
                    self.peak_running = max(self.peak_running, self._running)
                    self.peak_per_host = max(self.peak_per_host, self._in_flight[host])
                    self._work.put(turn)
                for turn in held:
                    heapq.heappush(self._heap, turn)
                if self._heap and self._heap[0].due > now and self._running < limit_all and not held:
                    wait = min(self._heap[0].due - now, STOP_POLL_S)
                else:
                    wait = STOP_POLL_S  # a visit ending (notify) frees a slot sooner
                self._lock.wait(wait)

    # --- workers ---

    def _worker(self) -> None:
        while True:
            turn = self._work.get()
            if turn is None or self._stop.is_set():
                return
            self._visit(turn)

    def _visit(self, turn: _Turn) -> None:
        camera = self.cameras[turn.camera_id]
        source = self.sources[turn.camera_id]
        started = time.monotonic()
        ok = False
        try:
            picture = self.visit_fn(camera, self.settings.visit_timeout_s, self.input_hw)
            if time.monotonic() - started > self.settings.visit_timeout_s:
                raise VisitError(f"no picture within the visit timeout ({self.settings.visit_timeout_s:g} s)")
            source.visited(picture, dt.datetime.now(UTC))
            ok = True
        except VisitError as exc:
            source.visit_failed(str(exc))
            log.info("patrol: camera %s: visit failed: %s", camera.id, exc)
        except Exception as exc:  # a bug in one visit must not end the patrol
            source.visit_failed(f"visit failed: {exc!r}")
            log.exception("patrol: camera %s: visit failed", camera.id)
        finished = time.monotonic()
        record = VisitRecord(camera.id, turn.due, max(started - turn.due, 0.0), finished - started, ok)
        self.recent.append(record)
        if ok and self.on_frame is not None:
            self.on_frame(camera.id)
        if self.on_visit is not None:
            self.on_visit(record)
        with self._lock:
            host = self._hosts[camera.id]
            self._in_flight[host] -= 1
            self._running -= 1
            due = turn.due + source.every_s
            if due < finished:  # a whole turn was missed: the next one is now, not in the past
                self.late_turns += 1
                due = finished
            heapq.heappush(self._heap, _Turn(due, turn.index, turn.camera_id))
            self._lock.notify_all()
