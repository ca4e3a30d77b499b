"""Two streams per camera (主码流/子码流): detect on the substream, keep the main stream's latest keyframe.

A camera with ``detect_url`` is sampled and detected on that stream (:class:`pipeline.sources.CameraSource`
opens it instead of ``url``). ``url``, the main stream, is read by a :class:`MainStream`: a thread that only
demuxes it and keeps its latest keyframe *packet*, never decoding anything. When an event needs
full-resolution evidence or a snapshot, that one packet is decoded (about 27 ms for a 1080p H.264 keyframe,
instead of paying that for every analysed frame; a live stream's sample keeps the packet of its own moment,
:meth:`MainStream.current`; a followed file's asks :meth:`MainStream.image` for its time) and
:func:`scale_detections` maps boxes found on the substream to it by the ratio of the two resolutions (both
streams show the same view).

Timing: a live main stream is read as it arrives, so its keyframe is the newest one (at most a GOP older
than the substream sample). A file that is not paced in real time (tests, offline analysis) is read only up
to the media time the camera source has reached (:meth:`MainStream.advance_to`), keeping its last
:data:`RECENT_KEYFRAMES` keyframes, and each sample asks for the latest one at or before its own time
(a looping file continues its time line like the source); a realtime file is paced like the source. A
keyframe older than ``max_age_s`` (the main stream is down or lagging) is not used: evidence then comes
from the substream. Failures: a live main stream reconnects with the camera's backoff; a file that
cannot be opened leaves evidence on the substream. Neither ever stops detection.
"""

from __future__ import annotations

import datetime as dt
import logging
import math
import threading
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, cast

import av
import av.error
import numpy as np
import numpy.typing as npt
from av.packet import Packet
from av.video.codeccontext import VideoCodecContext
from av.video.stream import VideoStream

from common.backoff import Backoff
from detector.detections import Detections
from pipeline.config import CameraConfig

if TYPE_CHECKING:
    from pipeline.evidence import EvidenceEvent as EvidenceLike

log = logging.getLogger(__name__)

POLL_S = 0.1
RECENT_KEYFRAMES = 32  # a followed file's reader may run ahead of the sample analysed by the queued ones


@dataclass(frozen=True, slots=True)
class _Keyframe:
    packet: Packet[VideoStream]
    media_s: float
    received: float  # monotonic
    serial: int


class MainStream:
    """The main stream of a camera that detects on its substream: see the module docstring.

    ``follow``: an unpaced file, read only as far as :meth:`advance_to` allows.
    """

    def __init__(self, config: CameraConfig, *, follow: bool, max_age_s: float = 30.0) -> None:
        from pipeline.sources import input_arguments, redact_url, source_kind

        self.config = config
        self.camera_id = config.id
        self.target, self.format, self.options = input_arguments(config, config.url)
        self.url = redact_url(config.url)
        self.kind = source_kind(config.url)
        self.follow = follow
        self.paced = self.kind == "file" and config.realtime
        self.max_age_s = max_age_s
        self._lock = threading.Condition()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._keyframe: _Keyframe | None = None
        self._codec: tuple[str, bytes | None] | None = None
        self._until = -math.inf
        self._recent: deque[_Keyframe] = deque(maxlen=RECENT_KEYFRAMES)  # followed files: read ahead
        self._offset = 0.0  # a looping file: media seconds of the passes before this one
        self._blocked_at = -math.inf  # follow mode: media time of the keyframe the reader waits to keep
        self._ended = False
        self._decoded: tuple[int, npt.NDArray[np.uint8]] | None = None
        self._decode_lock = threading.Lock()
        self._backoff = Backoff(config.reconnect_min_s, config.reconnect_max_s)
        self.keyframes = 0  # keyframe packets kept (each replaces the previous one)
        self.decodes = 0  # keyframes decoded on demand

    def start(self) -> None:
        self._thread = threading.Thread(target=self._run, name=f"main-{self.camera_id}", daemon=True)
        self._thread.start()

    def stop(self, timeout: float = 5.0) -> None:
        self._stop.set()
        with self._lock:
            self._lock.notify_all()
        if self._thread is not None:
            self._thread.join(timeout)

    def advance_to(self, media_s: float) -> None:
        """The camera source reached ``media_s`` (media seconds): a followed file may be read up to it."""
        with self._lock:
            if media_s > self._until:
                self._until = media_s
                self._lock.notify_all()

    def finish(self) -> None:
        """The camera source ended: a followed file may be read to its end."""
        self.advance_to(math.inf)

    @property
    def keyframe_time(self) -> float | None:
        """Media seconds of the kept keyframe (None: none yet)."""
        with self._lock:
            return None if self._keyframe is None else self._keyframe.media_s

    def current(self) -> tuple[Callable[[], npt.NDArray[np.uint8] | None], int]:
        """A live stream's way to the keyframe it holds *now* (a sample's own moment), decoded only when
        called, and the bytes of that compressed packet: evidence written seconds later (the events thread
        yields to detection, a burst of confirmations queues) shows the moment of its sample, not a later
        one. A keyframe already older than ``max_age_s`` (the main stream down) gives None."""
        with self._lock:
            key, codec = self._keyframe, self._codec
        if key is None or codec is None or time.monotonic() - key.received > self.max_age_s:
            return _no_picture, 0
        return (lambda: self._decoded_once(key, codec)), int(key.packet.size)

    def image(self, at_s: float | None = None) -> npt.NDArray[np.uint8] | None:
        """The main stream's keyframe decoded to BGR, or None (none yet, too old, undecodable): a live
        stream's current one (:meth:`current`), or (a followed file) the latest, at or before media second
        ``at_s`` when given, the sample's own time (the camera source may have queued later samples, and so
        moved the reader on, since).

        Decoded once per keyframe (later calls for the same keyframe return the same array: do not write
        to it). Thread-safe; runs on the caller's thread.
        """
        if self.live:
            return self.current()[0]()
        with self._lock:
            key, codec = self._keyframe, self._codec
            if at_s is not None:  # let the reader reach the sample's time first
                deadline = time.monotonic() + self.config.timeout_s
                while not self._ended and self._blocked_at <= at_s + 1e-3 and not self._stop.is_set():
                    if time.monotonic() >= deadline:
                        break
                    self._lock.wait(POLL_S)
                earlier = [k for k in self._recent if k.media_s <= at_s + 1e-3]
                key, codec = (earlier[-1] if earlier else self._keyframe), self._codec
        if key is None or codec is None:
            return None
        return self._decoded_once(key, codec)

    def _decoded_once(self, key: _Keyframe, codec: tuple[str, bytes | None]) -> npt.NDArray[np.uint8] | None:
        with self._decode_lock:
            if self._decoded is not None and self._decoded[0] == key.serial:
                return self._decoded[1]
            image = self._decode(key.packet, codec)
            if image is not None:
                self._decoded = (key.serial, image)
                self.decodes += 1
            return image

    @property
    def live(self) -> bool:
        return not self.follow

    def _decode(
        self, packet: Packet[VideoStream], codec: tuple[str, bytes | None]
    ) -> npt.NDArray[np.uint8] | None:
        name, extradata = codec
        try:
            ctx = cast(VideoCodecContext, av.CodecContext.create(name, "r"))
            if extradata:
                ctx.extradata = extradata
            frames = list(ctx.decode(packet)) + list(ctx.decode(None))
        except av.error.FFmpegError as exc:
            log.warning("camera %s: main stream keyframe not decoded: %s", self.camera_id, exc)
            return None
        if not frames:
            return None
        frame = frames[-1]
        return np.ascontiguousarray(frame.to_ndarray(format="bgr24"), dtype=np.uint8)

    # --- the reading thread ---

    def _run(self) -> None:
        try:
            self._read_forever()
        finally:
            with self._lock:
                self._ended = True
                self._lock.notify_all()

    def _read_forever(self) -> None:
        while not self._stop.is_set():
            looped = False
            try:
                ended = self._session()
                looped = not ended and self.kind == "file"  # a looping file: open it again at once
            except Exception as exc:  # the main stream is an extra: it never takes detection down
                log.warning("camera %s: main stream %s: %s", self.camera_id, self.url, exc)
                ended = self.kind == "file"
            if ended:
                return
            if not looped:
                self._stop.wait(self._backoff.next_delay())

    def _session(self) -> bool:
        """One connection; True when there is nothing more to read (a file's end, a stop)."""
        timeout = self.config.timeout_s
        container = av.open(
            self.target,
            mode="r",
            format=self.format,
            container_options=self.options,
            timeout=(timeout, timeout),
        )
        with container:
            if not container.streams.video:
                log.warning("camera %s: main stream %s has no video", self.camera_id, self.url)
                return True
            stream = container.streams.video[0]
            ctx = stream.codec_context
            with self._lock:
                self._codec = (ctx.name, bytes(ctx.extradata) if ctx.extradata else None)
            time_base = stream.time_base
            rate = stream.average_rate or stream.guessed_rate
            frame_s = float(1 / rate) if rate else 0.04
            pace: tuple[float, float] | None = None
            first: float | None = None
            last = 0.0
            for packet in container.demux(stream):
                if self._stop.is_set():
                    return True
                if packet.size == 0:
                    continue
                stamp = packet.pts if packet.pts is not None else packet.dts
                raw = float(stamp * time_base) if stamp is not None and time_base is not None else last
                first = raw if first is None else min(first, raw)
                last = max(last, raw)
                if not packet.is_keyframe:
                    continue
                media_s = raw + self._offset  # a looping file continues its time line, as the source does
                if self.follow and not self._wait_for(media_s):
                    return True
                if self.paced:
                    now = time.monotonic()
                    pace = pace or (now, media_s)
                    due = pace[0] + media_s - pace[1]
                    if due > now and self._stop.wait(due - now):
                        return True
                self._backoff.reset()
                with self._lock:
                    serial = self._keyframe.serial + 1 if self._keyframe is not None else 0
                    self._keyframe = _Keyframe(packet, media_s, time.monotonic(), serial)
                    if self.follow:
                        self._recent.append(self._keyframe)
                    self.keyframes += 1
                    self._lock.notify_all()
        if first is not None:
            self._offset += (last - first) + frame_s  # as pipeline.sources._MediaTime.next_loop_offset
        return self.kind == "file" and not self.config.loop

    def _wait_for(self, media_s: float) -> bool:
        """Follow mode: wait until the camera source reached ``media_s``; False when stopped."""
        with self._lock:
            self._blocked_at = media_s
            self._lock.notify_all()
            while media_s > self._until + 1e-3:
                if self._stop.is_set():
                    return False
                self._lock.wait(POLL_S)
        return not self._stop.is_set()


def _no_picture() -> None:
    return None


def scale_detections(detections: Detections, from_hw: tuple[int, int], to_hw: tuple[int, int]) -> Detections:
    """Boxes in a ``from_hw`` picture mapped to a ``to_hw`` picture of the same view."""
    if from_hw == to_hw or not len(detections):
        return detections
    sx, sy = to_hw[1] / from_hw[1], to_hw[0] / from_hw[0]
    return Detections(
        xyxy=detections.xyxy * np.array([sx, sy, sx, sy], np.float32),
        confidence=detections.confidence,
        class_id=detections.class_id,
        track_id=detections.track_id,
    )


def scale_points(
    points: npt.NDArray[np.float32], from_hw: tuple[int, int], to_hw: tuple[int, int]
) -> npt.NDArray[np.float32]:
    """Pixel coordinates (…, 2) or boxes (…, 4) of a ``from_hw`` picture in a ``to_hw`` picture."""
    sx, sy = to_hw[1] / from_hw[1], to_hw[0] / from_hw[0]
    reps = points.shape[-1] // 2
    return (points * np.array([sx, sy] * reps, np.float32)).astype(np.float32)


@dataclass(frozen=True, slots=True)
class FullView:
    """An analysed frame at the resolution evidence uses: the main stream's keyframe when the camera has a
    substream and it decodes, else the analysed picture itself (``scaled`` False)."""

    image: npt.NDArray[np.uint8]
    detections: Detections
    persons_xyxy: npt.NDArray[np.float32] | None
    from_hw: tuple[int, int]
    scaled: bool

    def boxes(self, detections: Detections) -> Detections:
        return scale_detections(detections, self.from_hw, _hw(self.image))

    def polygon(self, polygon_px: npt.NDArray[np.int32]) -> npt.NDArray[np.int32]:
        if not self.scaled:
            return polygon_px
        scaled = scale_points(polygon_px.astype(np.float32), self.from_hw, _hw(self.image))
        return cast("npt.NDArray[np.int32]", np.rint(scaled).astype(np.int32))


def full_view(
    image: npt.NDArray[np.uint8],
    full: Callable[[], npt.NDArray[np.uint8] | None] | None,
    detections: Detections,
    persons_xyxy: npt.NDArray[np.float32] | None,
) -> FullView:
    """``image`` (the analysed picture) and its boxes, moved to the main stream's keyframe if there is one."""
    from_hw = _hw(image)
    big = full() if full is not None else None
    if big is None:
        return FullView(image, detections, persons_xyxy, from_hw, scaled=False)
    to_hw = _hw(big)
    persons = None if persons_xyxy is None else scale_points(persons_xyxy, from_hw, to_hw).astype(np.float32)
    return FullView(big, scale_detections(detections, from_hw, to_hw), persons, from_hw, scaled=True)


def _hw(image: npt.NDArray[np.uint8]) -> tuple[int, int]:
    return int(image.shape[0]), int(image.shape[1])


@dataclass(frozen=True, slots=True)
class ScaledEvent:
    """An incident event's drawing fields moved to a :class:`FullView` (what evidence rendering reads)."""

    kind: str
    camera_id: str
    zone_id: str
    violation_type: str
    at: dt.datetime
    boxes: Detections
    polygon_px: npt.NDArray[np.int32]
    zones_px: tuple[npt.NDArray[np.int32], ...]


def scaled_event(event: EvidenceLike, view: FullView) -> ScaledEvent:
    return ScaledEvent(
        kind=event.kind,
        camera_id=event.camera_id,
        zone_id=event.zone_id,
        violation_type=event.violation_type,
        at=event.at,
        boxes=view.boxes(event.boxes),
        polygon_px=view.polygon(np.asarray(event.polygon_px, np.int32)),
        zones_px=tuple(view.polygon(np.asarray(z, np.int32)) for z in event.zones_px),
    )
