"""Which frames of a stream the daemon analyses, and when they were taken. No I/O: pure decisions.

* :class:`FrameSelector` decides per packet whether to decode it at all, and per decoded frame whether it
  is a sample. ``keyframes`` mode decodes keyframes only where the stream's GOP allows it (keyframes at
  most ``max_interval_s`` apart); otherwise, and for intra-only codecs such as MJPEG where every frame is a
  keyframe, it samples at ``fallback_fps``. ``fps`` mode samples a target rate on stream time.
* :class:`StreamClock` maps media seconds (pts x time base) to aware UTC datetimes: a live stream is
  anchored to the wall clock at its first frame and re-anchored when its timestamps jump or reset; a file
  starts at a configured time (or now).
* :class:`SceneChangeGate` skips a sample whose downscaled grayscale picture hardly differs from the last
  *analysed* one, but never for longer than ``max_skip_s`` of stream time.

Learning the GOP costs no decoding: while probing, the first keyframe is decoded on its own (it is the
first sample) and the packets after it are only held (:attr:`PacketAction.HOLD`). When the next keyframe
comes within ``max_interval_s`` they are dropped undecoded; when the GOP proves longer, the held packets
are decoded in sequence from their keyframe (:attr:`PacketAction.DECODE_HELD`) and sampling falls back to
``fallback_fps`` without losing that first GOP. A camera with a 2 s GOP thus decodes one frame at start,
not fifty; the source holds at most ``max_interval_s`` of compressed packets, once per connection.

Keyframes-only decoding: non-key packets are not given to the decoder at all (cheaper than decoding them
with ``skip_frame="NONKEY"``), and each keyframe is decoded on its own and drained at once
(:attr:`PacketAction.DECODE_ALONE`): with B-frames or frame threading a decoder otherwise holds a keyframe
back until later frames arrive (two GOPs of latency, measured on an H.264 clip with B-frames). We do not
also set ``skip_frame="NONKEY"``: the non-key packets never reach the decoder anyway, and H.264's decoder
would then discard a packet the container marks as a keyframe that is neither an IDR nor a recovery point
(an open-GOP I-frame), leaving nothing to sample.
"""

from __future__ import annotations

import datetime as dt
import enum
from collections.abc import Sequence
from typing import Literal

import cv2
import numpy as np
import numpy.typing as npt

from pipeline.config import FpsSampling, KeyframeSampling, PatrolSampling, ZoneConfig

UTC = dt.UTC
TIME_EPSILON_S = 1e-3  # timestamps within a millisecond of a sampling slot count as on it
CLOCK_JUMP_S = 5.0  # live: media time running this much ahead of the wall clock between two frames = a jump
CLOCK_MAX_DRIFT_S = 30.0  # live: stream time this far from the wall clock is re-anchored to it
THUMB_WIDTH = 160  # scene-change thumbnails: 160 px wide (90 px high at 16:9): ~0.5 ms from 1080p
PIXEL_DELTA = 20  # a thumbnail pixel "changed" when its gray level moved more than this (noise stays < 8)


class PacketAction(enum.Enum):
    SKIP = "skip"  # not decoded at all
    DECODE = "decode"  # decoded in sequence: the decoder keeps its reference frames
    DECODE_ALONE = "decode_alone"  # decoded on its own and drained at once: keyframe-only decoding
    # Resuming at a keyframe after skipped packets: drop the frames the decoder still holds (they are from
    # before the skip), then decode in sequence.
    DECODE_AFRESH = "decode_afresh"
    HOLD = "hold"  # probing the GOP: kept undecoded, dropped if the next keyframe comes in time
    # The GOP proved too long while probing: decode the held packets in sequence from their keyframe
    # (afresh), then this packet.
    DECODE_HELD = "decode_held"


Phase = Literal["probing", "keyframes", "fallback", "fps", "intra"]


class RateSampler:
    """Take one frame per ``1/fps`` seconds of stream time, on a grid that survives jitter and gaps."""

    def __init__(self, fps: float) -> None:
        self.interval_s = 1.0 / fps
        self._next_s: float | None = None

    def reset(self) -> None:
        self._next_s = None

    def take(self, time_s: float) -> bool:
        next_s = self._next_s
        if next_s is None or time_s < next_s - 2 * self.interval_s - 1.0:  # first frame, or time went back
            self._next_s = time_s + self.interval_s
            return True
        if time_s < next_s - TIME_EPSILON_S:
            return False
        next_s += self.interval_s
        self._next_s = next_s if next_s > time_s + TIME_EPSILON_S else time_s + self.interval_s
        return True


class FrameSelector:
    """Packet- and frame-level sampling decisions for one camera (see the module docstring).

    Call :meth:`restart` whenever a new decoder starts (a new connection, a file loop): decoding then
    starts at the next keyframe. ``behind=True`` (the source lags the live edge) skips non-key packets
    until the next keyframe, which is how a live source catches up instead of building a backlog.
    """

    def __init__(
        self, sample: KeyframeSampling | FpsSampling | PatrolSampling, *, intra_only: bool = False
    ) -> None:
        if isinstance(sample, PatrolSampling):
            raise ValueError("a patrol camera is visited by pipeline.patrol, not sampled from an open stream")
        self.sample = sample
        if isinstance(sample, KeyframeSampling):
            self.max_interval_s: float | None = sample.max_interval_s
            self._rate = RateSampler(sample.fallback_fps)
        else:
            self.max_interval_s = None
            self._rate = RateSampler(sample.fps)
        self._intra_only = intra_only
        self.phase: Phase = self._initial_phase()
        self._last_key_s: float | None = None
        self._need_key = True

    def _initial_phase(self) -> Phase:
        if self._intra_only:
            return "intra"
        return "fps" if self.max_interval_s is None else "probing"

    def restart(self, *, intra_only: bool | None = None) -> None:
        """A new decoder: wait for a keyframe. What is known of the GOP is kept unless the codec changed."""
        if intra_only is not None and intra_only != self._intra_only:
            self._intra_only = intra_only
            self.phase = self._initial_phase()
        self._last_key_s = None  # the new decoder's timestamps may start afresh
        self._need_key = True

    @property
    def holding(self) -> bool:
        """Probing after a keyframe: the source keeps this GOP's packets, the keyframe's included."""
        return self.phase == "probing" and self._last_key_s is not None and not self._need_key

    def on_packet(self, time_s: float, keyframe: bool, *, behind: bool = False) -> PacketAction:
        """What to do with a packet of the sampled stream."""
        resuming = self._need_key
        if resuming:
            if not keyframe:
                return PacketAction.SKIP
            self._need_key = False
        if self.phase == "intra":  # every packet decodes alone: decide before decoding
            return PacketAction.DECODE_ALONE if self._rate.take(time_s) else PacketAction.SKIP
        if keyframe:
            action = self._on_keyframe(time_s)
            return PacketAction.DECODE_AFRESH if resuming and action is PacketAction.DECODE else action
        if self.phase == "keyframes":
            return PacketAction.SKIP
        if behind:  # catching up: the decoder has lost its references until the next keyframe
            self._need_key = True
            return PacketAction.SKIP
        last_key, limit = self._last_key_s, self.max_interval_s
        if self.phase == "probing" and last_key is not None and limit is not None:
            if time_s - last_key <= limit:
                return PacketAction.HOLD
            self._enter_fallback(sampled_s=last_key)  # no second keyframe in time: the GOP is too long
            return PacketAction.DECODE_HELD
        return PacketAction.DECODE

    def _on_keyframe(self, time_s: float) -> PacketAction:
        if self.max_interval_s is None:  # fps mode
            return PacketAction.DECODE
        previous, self._last_key_s = self._last_key_s, time_s
        if previous is None:  # the first keyframe of this decoder
            alone = self.phase in ("keyframes", "probing")  # probing: the first sample, at once
            return PacketAction.DECODE_ALONE if alone else PacketAction.DECODE
        if 0 <= time_s - previous <= self.max_interval_s + TIME_EPSILON_S:
            self.phase = "keyframes"
            return PacketAction.DECODE_ALONE
        if self.phase == "probing":  # keyframes too far apart: decode the held GOP, then on from here
            self._enter_fallback(sampled_s=previous)
            return PacketAction.DECODE_HELD
        if self.phase != "fallback":
            self._enter_fallback()  # keyframes too far apart: decode everything from this keyframe on
        return PacketAction.DECODE

    def _enter_fallback(self, sampled_s: float | None = None) -> None:
        """Sample at the fallback rate from now on; ``sampled_s``: a keyframe already taken as a sample
        (decoded again with the held packets, it is not taken twice)."""
        self.phase = "fallback"
        self._rate.reset()
        if sampled_s is not None:
            self._rate.take(sampled_s)

    def take(self, time_s: float, keyframe: bool) -> bool:
        """Whether a decoded frame (at media time ``time_s``) is a sample."""
        if self.phase == "intra":
            return True  # chosen before decoding
        if self.phase in ("keyframes", "probing"):
            return keyframe
        return self._rate.take(time_s)


class StreamClock:
    """Media seconds -> aware UTC stream time, strictly increasing.

    Live (``live=True``): the first frame is stamped with the wall clock, later ones with that plus their
    media offset. When the media time steps back, or runs ahead of the wall clock by more than
    ``CLOCK_JUMP_S`` between two frames (a pts reset, wrap or jump), the clock continues from the previous
    stream time plus the wall-clock time elapsed; when stream time drifts more than ``CLOCK_MAX_DRIFT_S``
    from the wall clock (a camera clock running fast or slow for hours) it is re-anchored to the wall clock.
    Files: ``start`` (or the wall clock at the first frame) plus the media offset.
    """

    def __init__(self, *, live: bool, start: dt.datetime | None = None) -> None:
        if start is not None and start.utcoffset() is None:
            raise ValueError(f"stream start time {start} has no time zone; expected an aware datetime")
        self.live = live
        self.start = start.astimezone(UTC) if start is not None else None
        self.reanchors = 0
        self._base: tuple[dt.datetime, float] | None = None  # (stream time, media seconds) of the anchor
        self._last: tuple[dt.datetime, float, dt.datetime] | None = None  # (stream time, media s, wall)

    def rebase(self) -> None:
        """A new connection of a live stream: its timestamps start afresh (stream time stays increasing)."""
        if self.live:
            self._base = None

    def to_utc(self, media_s: float, now: dt.datetime) -> dt.datetime:
        last = self._last
        if self._base is None:
            self._base = (now if self.live or self.start is None else self.start, media_s)
        elif self.live and last is not None and self._jumped(media_s, now, last):
            wall_step = max((now - last[2]).total_seconds(), 0.0)
            self._base = (last[0] + dt.timedelta(seconds=wall_step), media_s)
            self.reanchors += 1
        base_time, base_media = self._base
        stamp = base_time + dt.timedelta(seconds=media_s - base_media)
        if self.live and abs((stamp - now).total_seconds()) > CLOCK_MAX_DRIFT_S:
            self._base, stamp = (now, media_s), now
            self.reanchors += 1
        if last is not None and stamp <= last[0]:
            stamp = last[0] + dt.timedelta(microseconds=1)
        self._last = (stamp, media_s, now)
        return stamp

    @staticmethod
    def _jumped(media_s: float, now: dt.datetime, last: tuple[dt.datetime, float, dt.datetime]) -> bool:
        step = media_s - last[1]
        wall_step = max((now - last[2]).total_seconds(), 0.0)
        return step < -TIME_EPSILON_S or step > wall_step + CLOCK_JUMP_S


class LagMeter:
    """How far behind the live edge a stream is read, in seconds.

    The offset ``arrival - media time`` is smallest for packets read the moment they arrive; the meter keeps
    that minimum as the baseline and reports how much later the current packet is read. The baseline creeps
    up by ``drift_per_s`` (1 ms per second: a camera clock 1000 ppm slow is not mistaken for a backlog), and a
    jump of more than ``CLOCK_MAX_DRIFT_S`` (timestamps reset) starts a new baseline.
    """

    def __init__(self, drift_per_s: float = 1e-3) -> None:
        self.drift_per_s = drift_per_s
        self._base: float | None = None
        self._at = 0.0

    def reset(self) -> None:
        self._base = None

    def update(self, media_s: float, now_s: float) -> float:
        """Lag of a packet with media time ``media_s`` read at monotonic ``now_s``."""
        offset = now_s - media_s
        base = self._base
        if base is None or abs(offset - base) > CLOCK_MAX_DRIFT_S:
            self._base, self._at = offset, now_s
            return 0.0
        base = min(base + self.drift_per_s * max(now_s - self._at, 0.0), offset)
        self._base, self._at = base, now_s
        return offset - base


def thumbnail_size(width: int, height: int) -> tuple[int, int]:
    """(width, height) of the scene-change thumbnail of a ``width`` x ``height`` frame."""
    thumb_w = min(THUMB_WIDTH, width)
    return thumb_w, max(1, round(height * thumb_w / width))


def changed_fraction(thumb: npt.NDArray[np.uint8], reference: npt.NDArray[np.uint8]) -> float:
    """Share of thumbnail pixels whose gray level moved more than ``PIXEL_DELTA``."""
    diff = cv2.absdiff(thumb, reference)
    return float(np.count_nonzero(diff > PIXEL_DELTA)) / diff.size


class SceneChangeGate:
    """Skip samples that look like the last analysed frame; analyse at least every ``max_skip_s``.

    ``threshold`` is the share of thumbnail pixels (gray, :data:`THUMB_WIDTH` wide) that must change by more
    than :data:`PIXEL_DELTA` levels. On real footage: sensor and compression noise changes none at all
    (a still picture with noise sigma 4, H.264 crf 28); one walking pedestrian in vtest.avi changes ~0.5 %;
    the default 0.1 % is about a 40 x 40 pixel patch of a 1080p frame.
    """

    def __init__(self, *, threshold: float, max_skip_s: float, enabled: bool = True) -> None:
        self.threshold = threshold
        self.max_skip_s = max_skip_s
        self.enabled = enabled
        self._reference: npt.NDArray[np.uint8] | None = None
        self._reference_time: dt.datetime | None = None

    def should_analyse(self, thumb: npt.NDArray[np.uint8] | None, stream_time: dt.datetime) -> bool:
        reference, since = self._reference, self._reference_time
        if not self.enabled or thumb is None or reference is None or since is None:
            return True
        if thumb.shape != reference.shape or (stream_time - since).total_seconds() >= self.max_skip_s:
            return True
        return changed_fraction(thumb, reference) >= self.threshold

    def mark_analysed(self, thumb: npt.NDArray[np.uint8] | None, stream_time: dt.datetime) -> None:
        if thumb is not None:
            self._reference, self._reference_time = thumb, stream_time

    def reset(self) -> None:
        self._reference = self._reference_time = None


class ZoneGate:
    """Per-zone change gating (``cameras[].zone_gating``): whether anything changed *inside the zones* since
    the last sample the model ran on.

    The zones' polygons are drawn on the scene-change thumbnail (grown by 2 px) and the sample counts as
    unchanged when fewer than ``threshold`` of those pixels moved by more than :data:`PIXEL_DELTA` gray
    levels against the reference, and the reference is less than ``max_skip_s`` old. A changed sample
    becomes the reference (the model will run on it); an unchanged one never does, so slow drift adds up
    until it counts. Movement outside the zones (traffic, passers-by) does not count at all.
    """

    def __init__(self, *, threshold: float, max_skip_s: float) -> None:
        self.threshold = threshold
        self.max_skip_s = max_skip_s
        self._reference: npt.NDArray[np.uint8] | None = None
        self._reference_time: dt.datetime | None = None
        self._mask_key: tuple[object, ...] | None = None
        self._mask: npt.NDArray[np.bool_] | None = None

    def unchanged(
        self, thumb: npt.NDArray[np.uint8], zones: Sequence[ZoneConfig], stream_time: dt.datetime
    ) -> bool:
        mask = self._zone_mask(zones, thumb.shape[:2])
        reference, since = self._reference, self._reference_time
        fresh = (
            reference is not None
            and since is not None
            and reference.shape == thumb.shape
            and (stream_time - since).total_seconds() < self.max_skip_s
        )
        if fresh and mask is not None and reference is not None:
            moved = cv2.absdiff(thumb, reference)[mask] > PIXEL_DELTA
            if np.count_nonzero(moved) < self.threshold * moved.size:
                return True
        self._reference, self._reference_time = thumb, stream_time
        return False

    def _zone_mask(self, zones: Sequence[ZoneConfig], shape: tuple[int, ...]) -> npt.NDArray[np.bool_] | None:
        key = (shape, *(tuple(map(tuple, zone.polygon)) for zone in zones))
        if key != self._mask_key:
            height, width = int(shape[0]), int(shape[1])
            canvas = np.zeros((height, width), np.uint8)
            for zone in zones:
                points = np.array([[x * (width - 1), y * (height - 1)] for x, y in zone.polygon], np.float32)
                cv2.fillPoly(canvas, [np.rint(points).astype(np.int32)], 255)
            grown = np.asarray(cv2.dilate(canvas, np.ones((5, 5), np.uint8)))
            self._mask = grown > 0 if grown.any() else None
            self._mask_key = key
        return self._mask
