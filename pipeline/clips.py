"""Evidence clips: the camera's own compressed video around an incident, remuxed into an MP4 without
re-encoding (``cameras[].clips``, off by default).

Each camera with clips on keeps a :class:`PacketRing`: the compressed packets the source demuxed (before
any sampling), bounded by ``clips.max_s`` plus a margin of stream seconds and by ``clips.buffer_mb``, and
always starting at a keyframe. When an incident is confirmed, :class:`ClipRecorder` asks for the window
``[first seen - pre_s, confirmed + post_s]`` (at most ``max_s`` long; a longer window keeps its end, the
confirmation); once the buffer holds its end (or the source ended, or ``CLIP_WAIT_S`` passed) the packets
from the last keyframe at or before its start are written, timestamps shifted to start at 0, into
``<evidence.dir>/<ab>/<sha256>.mp4`` (``movflags=+faststart``: playable while it downloads). No frame is
decoded or encoded: the clip holds the camera's own bytes, so persons in it are NOT blurred. That is why
clips are opt-in per camera and why the store shows them only to the roles that may see unredacted video.

The MP4 travels through the outbox as an ``evidence`` item of the incident (kind ``clip``), delivered after
the incident's report, exactly once like the report's images.

A new connection (reconnect, a looping file starting again) starts a new segment with its own codec
parameters; a clip comes from one segment. The codec parameters are copied into a template stream of our
own, so the source may close its input container while a clip is still being cut. Codecs MP4 cannot hold
(MS-MPEG4 of some AVI files) get no clip; the reason is logged once.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import io
import logging
import os
import tempfile
import threading
import time
from collections import deque
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from fractions import Fraction
from pathlib import Path
from typing import Any

import av
from av.packet import Packet
from av.stream import Stream
from av.video.stream import VideoStream

from common.files import write_atomically
from pipeline.config import CameraConfig, ClipsConfig
from pipeline.errors import EvidenceError

log = logging.getLogger(__name__)

MARGIN_S = 10.0  # the ring holds max_s + this: a confirmation reaches the rules a little after its packets
CLIP_WAIT_S = 30.0  # cut with what there is when the window's end has not arrived this long after it was due
MB = 1024 * 1024


@dataclass(frozen=True, slots=True)
class BufferedPacket:
    data: bytes
    pts: int | None
    dts: int | None
    duration: int
    keyframe: bool
    media_s: float  # seconds on the source's media time line


@dataclass(eq=False)
class _Segment:
    """The packets of one connection and the codec parameters they need."""

    template: Stream
    keeper: Any  # the never-written output container that owns ``template``
    time_base: Fraction
    packets: deque[BufferedPacket] = field(default_factory=deque)
    anchor: tuple[float, dt.datetime] | None = None  # (media s, stream time) of the latest sample

    def at(self, packet: BufferedPacket) -> dt.datetime | None:
        if self.anchor is None:
            return None
        return self.anchor[1] + dt.timedelta(seconds=packet.media_s - self.anchor[0])


@dataclass(frozen=True, slots=True)
class Cut:
    """The packets of one clip (from a keyframe on) and what remuxing them needs."""

    template: Stream
    time_base: Fraction
    packets: tuple[BufferedPacket, ...]
    start: dt.datetime  # stream time of the first and last packet
    end: dt.datetime
    segment: _Segment  # keeps the template's container alive


class PacketRing:
    """A camera's recent compressed packets. The source thread adds; the rules thread cuts (locked)."""

    def __init__(self, camera_id: str, config: ClipsConfig) -> None:
        self.camera_id = camera_id
        self.max_s = config.max_s + MARGIN_S
        self.max_bytes = int(config.buffer_mb * MB)
        self._lock = threading.Lock()
        self._segments: deque[_Segment] = deque()
        self._current: _Segment | None = None
        self._bytes = 0
        self.unsupported: str | None = None  # why the stream cannot be remuxed into MP4
        self.finished = False  # the source will add nothing more

    # --- the source thread ---

    def begin(self, stream: VideoStream) -> None:
        """A new connection: its packets go into a new segment with ``stream``'s codec parameters."""
        keeper = av.open(io.BytesIO(), "w", format="mp4")
        try:
            template = keeper.add_stream_from_template(stream)
        except (ValueError, av.error.FFmpegError) as exc:
            self._current = None
            if self.unsupported is None:
                log.warning("camera %s: no evidence clips: %s", self.camera_id, exc)
            self.unsupported = f"the stream's codec cannot go into an MP4 without re-encoding: {exc}"
            return
        self.unsupported = None
        segment = _Segment(template, keeper, stream.time_base or Fraction(1, 90_000))
        with self._lock:
            self._current = segment
            self._segments.append(segment)

    def add(self, packet: Packet[VideoStream], media_s: float) -> None:
        segment = self._current
        if segment is None:
            return
        if not segment.packets and not packet.is_keyframe:
            return  # a segment starts at a keyframe
        data = bytes(packet)
        buffered = BufferedPacket(
            data, packet.pts, packet.dts, int(packet.duration or 0), bool(packet.is_keyframe), media_s
        )
        with self._lock:
            segment.packets.append(buffered)
            self._bytes += len(data)
            self._trim(segment)

    def anchor(self, media_s: float, stream_time: dt.datetime) -> None:
        """A sample at ``media_s`` got ``stream_time``: the current segment's packets are timed by it."""
        segment = self._current
        if segment is not None:
            with self._lock:
                segment.anchor = (media_s, stream_time)

    def close(self) -> None:
        """The source thread ended: cut pending clips with what there is."""
        with self._lock:
            self.finished = True

    def _trim(self, current: _Segment) -> None:
        """Bound by bytes and seconds; every segment keeps starting at a keyframe. Holds _lock."""
        new_end = current.at(current.packets[-1])
        while len(self._segments) > 1:  # older connections go whole
            oldest = self._segments[0]
            old_end = oldest.at(oldest.packets[-1]) if oldest.packets else None
            stale = old_end is None or (
                new_end is not None and (new_end - old_end).total_seconds() > self.max_s
            )
            if not stale and self._bytes <= self.max_bytes:
                break
            self._segments.popleft()
            self._bytes -= sum(len(packet.data) for packet in oldest.packets)
        newest = current.packets[-1].media_s
        while len(current.packets) > 1 and (
            newest - current.packets[0].media_s > self.max_s or self._bytes > self.max_bytes
        ):
            self._drop_first(current)

    def _drop_first(self, segment: _Segment) -> None:
        self._bytes -= len(segment.packets.popleft().data)
        while segment.packets and not segment.packets[0].keyframe:
            self._bytes -= len(segment.packets.popleft().data)

    # --- the rules thread ---

    def newest_at(self) -> dt.datetime | None:
        with self._lock:
            segment = self._segments[-1] if self._segments else None
            if segment is None or not segment.packets:
                return None
            return segment.at(segment.packets[-1])

    def cut(self, start: dt.datetime, end: dt.datetime) -> Cut | None:
        """The packets from the last keyframe at or before ``start`` (else the segment's first) to the last
        packet at or before ``end``, from the newest segment that reaches back to ``end``; None if none."""
        with self._lock:
            for segment in reversed(self._segments):
                packets = list(segment.packets)
                times = [segment.at(packet) for packet in packets]
                if not packets or times[0] is None or times[0] > end:
                    continue
                last = max(i for i, at in enumerate(times) if at is not None and at <= end)
                first = 0
                for i in range(last + 1):
                    at = times[i]
                    if packets[i].keyframe and at is not None and at <= start:
                        first = i
                chosen = packets[first : last + 1]
                first_at, last_at = times[first], times[last]
                assert first_at is not None and last_at is not None
                return Cut(segment.template, segment.time_base, tuple(chosen), first_at, last_at, segment)
        return None

    @property
    def buffered_bytes(self) -> int:
        return self._bytes


def remux(cut: Cut, directory: Path) -> Path:
    """Write ``cut`` as an MP4 (faststart, timestamps from 0) at ``<directory>/<ab>/<sha256>.mp4``,
    atomically and fsynced; no frame is decoded or encoded."""
    directory.mkdir(parents=True, exist_ok=True)
    fd, temp_name = tempfile.mkstemp(dir=directory, prefix=".clip-", suffix=".mp4")
    os.close(fd)
    temp = Path(temp_name)
    try:
        with av.open(str(temp), "w", format="mp4", options={"movflags": "+faststart"}) as output:
            stream = output.add_stream_from_template(cut.template)
            stream.time_base = cut.time_base
            stamps = timestamps(cut.packets)
            origin = stamps[0][1]
            for buffered, (pts, dts) in zip(cut.packets, stamps, strict=True):
                packet = Packet(buffered.data)
                packet.pts, packet.dts = pts - origin, dts - origin
                packet.duration = buffered.duration
                packet.time_base = cut.time_base
                packet.is_keyframe = buffered.keyframe
                packet.stream = stream
                output.mux(packet)
        data = temp.read_bytes()
    except (OSError, ValueError, av.error.FFmpegError) as exc:
        raise EvidenceError(f"cannot write an evidence clip under {directory}: {exc}") from exc
    finally:
        temp.unlink(missing_ok=True)
    sha256 = hashlib.sha256(data).hexdigest()
    path = directory / sha256[:2] / f"{sha256}.mp4"
    if not path.is_file():
        try:
            write_atomically(path, data, prefix=".evidence-")
        except OSError as exc:
            raise EvidenceError(f"cannot write evidence under evidence.dir {directory}: {exc}") from exc
    return path


def timestamps(packets: Sequence[BufferedPacket]) -> list[tuple[int, int]]:
    """(pts, dts) for each packet, as the MP4 muxer needs them: missing ones (the first packet of an RTSP
    connection has none) from their neighbours and durations, dts strictly increasing, pts >= dts."""
    known = [p.dts if p.dts is not None else p.pts for p in packets]
    first_known = next((i for i, ts in enumerate(known) if ts is not None), None)
    dts: list[int] = []
    for i, value in enumerate(known):
        if value is None:
            if dts:
                value = dts[-1] + max(packets[i - 1].duration, 1)
            elif first_known is not None:
                later = known[first_known]
                assert later is not None
                value = later - sum(max(p.duration, 1) for p in packets[i:first_known])
            else:
                value = sum(max(p.duration, 1) for p in packets[:i])
        if dts and value <= dts[-1]:
            value = dts[-1] + 1
        dts.append(value)
    return [(max(p.pts if p.pts is not None else d, d), d) for p, d in zip(packets, dts, strict=True)]


def clip_window(
    first_seen_at: dt.datetime, confirmed_at: dt.datetime, config: ClipsConfig
) -> tuple[dt.datetime, dt.datetime]:
    """``[first seen - pre_s, confirmed + post_s]``, at most ``max_s`` long (its end kept)."""
    end = confirmed_at + dt.timedelta(seconds=config.post_s)
    start = first_seen_at - dt.timedelta(seconds=config.pre_s)
    return max(start, end - dt.timedelta(seconds=config.max_s)), end


@dataclass(frozen=True, slots=True)
class PendingClip:
    incident_key: str
    camera_id: str
    start: dt.datetime
    end: dt.datetime
    give_up_at: float  # monotonic: cut with what there is after this


class ClipRecorder:
    """The rules thread's clips: requested at confirmation, cut once their window is buffered, handed to
    ``queue`` (incident key, path) for the outbox. Not thread-safe: the rules thread calls it (and the
    daemon after that thread has ended)."""

    def __init__(
        self,
        cameras: Sequence[CameraConfig],
        rings: Mapping[str, PacketRing],
        directory: Path,
        queue: Callable[[str, Path], None],
    ) -> None:
        self.configs = {camera.id: camera.clips for camera in cameras if camera.clips.enabled}
        self.rings = {camera_id: ring for camera_id, ring in rings.items() if camera_id in self.configs}
        self.directory = directory
        self.queue = queue
        self.pending: list[PendingClip] = []
        self.written = 0

    def request(
        self, incident_key: str, camera_id: str, first_seen_at: dt.datetime, confirmed_at: dt.datetime
    ) -> None:
        config, ring = self.configs.get(camera_id), self.rings.get(camera_id)
        if config is None or ring is None:
            return
        start, end = clip_window(first_seen_at, confirmed_at, config)
        give_up = time.monotonic() + config.post_s + CLIP_WAIT_S
        self.pending.append(PendingClip(incident_key, camera_id, start, end, give_up))

    def poll(self, *, final: bool = False) -> None:
        """Cut the clips whose window is buffered (all of them when ``final``: the daemon is stopping)."""
        if not self.pending:
            return
        now = time.monotonic()
        waiting: list[PendingClip] = []
        for clip in self.pending:
            ring = self.rings[clip.camera_id]
            newest = ring.newest_at()
            arrived = newest is not None and newest >= clip.end
            if final or arrived or ring.finished or now >= clip.give_up_at:
                self._write(clip, ring)
            else:
                waiting.append(clip)
        self.pending = waiting

    def _write(self, clip: PendingClip, ring: PacketRing) -> None:
        cut = ring.cut(clip.start, clip.end)
        if cut is None:
            why = ring.unsupported or "no buffered video covers its window"
            log.warning("incident %s: no evidence clip (%s): %s", clip.incident_key, clip.camera_id, why)
            return
        try:
            path = remux(cut, self.directory)
        except EvidenceError:
            log.exception("incident %s: the evidence clip could not be written", clip.incident_key)
            return
        self.written += 1
        log.info(
            "incident %s: evidence clip %s (%.1f s, %d packets)",
            clip.incident_key,
            path.name,
            (cut.end - cut.start).total_seconds(),
            len(cut.packets),
        )
        self.queue(clip.incident_key, path)
