"""A small matcher for objects that stay put: each track is an anchor box; a detection that overlaps it enough
(IoU >= ``stationary_iou``) in the same block is the same object, still standing there.

Why this matcher and not a general multi-object tracker (ByteTrack, norfair, SORT)
-------------------------------------------------------------------------------
The rules ask one question: has *this spot* held an object of this violation type, without moving, for the
dwell time? General trackers answer a different one (where did each object go) and get in the way here:

* **Moving objects must not associate.** Kalman/motion models exist to follow a car driving past; following it
  is exactly what must not accumulate dwell. Matching against the *anchor box* (where the track was first
  seen) instead of a predicted position makes "stationary" and "same object" one test: a car that creeps
  forward drops below the IoU threshold and starts over.
* **Sparse sampling.** The daemon analyses one frame per second or only keyframes; motion models and
  appearance embeddings assume dense frames and degrade badly at 0.5-1 fps. IoU against a fixed box does not
  care how far apart the frames are; only stream time matters (gaps are judged in seconds).
* **Occlusion and flicker.** A pedestrian walking in front of a parked van hides or shrinks its box for a
  frame or two. The van's track simply is not seen in those frames and survives as long as the gap is below
  ``gap_tolerance_s``; a shrunken box that no longer overlaps enough starts a short-lived track of its own
  that expires, and never steals the van's dwell. Detectors also flicker between classes (the van in
  ``vtest.avi`` is reported as both ``truck`` and ``car`` in the same frame); matching is per *block*
  (zone x violation type), not per class, and many detections may refresh one track, so both boxes keep the
  same track alive and no duplicate track is started.
* **No assignment problem worth solving.** Within a block, anchors of live tracks overlap each other by less
  than the threshold (duplicates are suppressed when tracks are created), so a detection overlapping an
  anchor by >= 0.5-0.6 IoU has at most a couple of candidates; taking the best one (argmax) is what Hungarian
  matching would choose in all but contrived layouts, and it is one vectorised call.
* **Sporadic sightings are not a stay.** Gaps alone cannot tell a van that a pedestrian hides now and then
  from a spot that pedestrians cross every few seconds (on ``vtest.avi`` such a chain of passers-by kept one
  anchor alive for 30 s). Each track therefore keeps one bit per analysed frame of the camera (the last
  :data:`SEEN_WINDOW`), and the rules count a stay only while it was seen in at least
  ``incidents.min_seen_ratio`` of them: the van is seen in ~100 % of frames, the chain in ~10-20 %.

Matching is a distance matrix filled by block, in block-sparse form: the (detection, zone) pairs of a frame
are listed against the live tracks of the *same* block only (``same_block_pairs``: sum of P_b x T_b IoUs
instead of P x T, no Python loop over blocks), then the best IoU per pair above the threshold wins. New
tracks are deduplicated with class-aware NMS keyed by block. State is bounded: tracks unseen for longer than
``gap_tolerance_s`` are evicted on every update (TTL), and at most ``max_tracks`` are kept (the least
recently seen go first).
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import overload

import numpy as np
import numpy.typing as npt

from detector.boxes import box_iou_pairs
from detector.nms import batched_nms

log = logging.getLogger(__name__)

#: Analysed frames over which a track's seen ratio is measured (one bit each in a uint64).
SEEN_WINDOW = 64

#: Slack on stream-time gaps: stream times are float epoch seconds, and a gap of exactly a tolerance
#: must not be lost to their rounding (a few ulps: ~0.25 us each at today's epoch seconds).
_TIME_SLACK_S = 1e-6

FloatArray = npt.NDArray[np.float64]
IntArray = npt.NDArray[np.int64]
BoolArray = npt.NDArray[np.bool_]


@overload
def within_gap(elapsed_s: float, tolerance_s: float) -> bool: ...
@overload
def within_gap(elapsed_s: FloatArray, tolerance_s: float) -> BoolArray: ...
def within_gap(elapsed_s: float | FloatArray, tolerance_s: float) -> bool | BoolArray:
    """Whether a gap of ``elapsed_s`` since the last sighting is at most ``tolerance_s`` (plus rounding
    slack): the one test for a track staying alive and for an incident not ending, so the two agree."""
    return elapsed_s <= tolerance_s + _TIME_SLACK_S


def same_block_pairs(
    row_block: IntArray, track_block: IntArray
) -> tuple[npt.NDArray[np.intp], npt.NDArray[np.intp]]:
    """All (row, track) index pairs whose blocks are equal, grouped by row in row order.

    The block-sparse form of the distance matrix: instead of a (P, T) matrix with the cross-block entries set
    to "no match", only the entries inside each block are listed (sum of P_b x T_b), without a Python loop.
    """
    order = np.argsort(track_block, kind="stable")
    sorted_blocks = track_block[order]
    lo = np.searchsorted(sorted_blocks, row_block, side="left")
    counts = np.searchsorted(sorted_blocks, row_block, side="right") - lo
    segment_start = np.cumsum(counts) - counts
    rows = np.repeat(np.arange(len(row_block)), counts)
    tracks = order[np.arange(int(counts.sum())) + np.repeat(lo - segment_start, counts)]
    return rows, tracks


def popcount64(bits: npt.NDArray[np.uint64]) -> IntArray:
    """Set bits of each uint64 (works on every NumPy; ``np.bitwise_count`` needs 2.0)."""
    as_bytes = np.ascontiguousarray(bits, dtype="<u8").view(np.uint8).reshape(-1, 8)
    counts: IntArray = np.unpackbits(as_bytes, axis=1).sum(axis=1, dtype=np.int64)
    return counts


@dataclass(frozen=True, slots=True)
class TrackerStep:
    """The tracks seen in one update, one row per track (struct of arrays).

    Attributes:
        track_id: (S,) ids, unique per tracker, never reused.
        block: (S,) the block (zone x violation type) of each track.
        started: (S,) stream seconds when each track was first seen at its anchor.
        seen_ratio: (S,) share of the camera's last analysed frames (up to :data:`SEEN_WINDOW`, since the
            track started) in which the track was seen.
        row: (S,) index of the input row that represents the track in this frame: the most confident of the
            rows that matched it.
    """

    track_id: IntArray
    block: IntArray
    started: FloatArray
    seen_ratio: FloatArray
    row: npt.NDArray[np.intp]

    @classmethod
    def empty(cls) -> TrackerStep:
        return cls(
            np.zeros(0, np.int64), np.zeros(0, np.int64), np.zeros(0), np.zeros(0), np.zeros(0, np.intp)
        )

    def __len__(self) -> int:
        return len(self.track_id)


@dataclass(slots=True)
class _Tracks:
    """Live tracks as parallel arrays (T rows)."""

    anchor: FloatArray  # (T, 4) the box where the track was first seen
    block: IntArray
    track_id: IntArray
    started: FloatArray  # stream seconds of the first sighting
    last_seen: FloatArray
    first_frame: IntArray  # the camera's frame number at the first sighting
    seen_bits: npt.NDArray[np.uint64]  # bit k: seen k analysed frames ago

    @classmethod
    def empty(cls) -> _Tracks:
        return cls(
            np.zeros((0, 4)),
            np.zeros(0, np.int64),
            np.zeros(0, np.int64),
            np.zeros(0),
            np.zeros(0),
            np.zeros(0, np.int64),
            np.zeros(0, np.uint64),
        )

    def __len__(self) -> int:
        return len(self.track_id)

    def select(self, keep: npt.NDArray[np.bool_]) -> _Tracks:
        return _Tracks(
            self.anchor[keep],
            self.block[keep],
            self.track_id[keep],
            self.started[keep],
            self.last_seen[keep],
            self.first_frame[keep],
            self.seen_bits[keep],
        )

    def extend(self, other: _Tracks) -> _Tracks:
        return _Tracks(
            np.concatenate([self.anchor, other.anchor]),
            np.concatenate([self.block, other.block]),
            np.concatenate([self.track_id, other.track_id]),
            np.concatenate([self.started, other.started]),
            np.concatenate([self.last_seen, other.last_seen]),
            np.concatenate([self.first_frame, other.first_frame]),
            np.concatenate([self.seen_bits, other.seen_bits]),
        )


class StationaryTracker:
    """Tracks of stationary objects for one camera, keyed by integer blocks; times are stream seconds.

    Call :meth:`update` once per analysed frame of the camera, also when it has no boxes: the seen ratio
    counts analysed frames.

    Args:
        stationary_iou: a detection continues a track when its IoU with the track's anchor box is at least
            this.
        gap_tolerance_s: a track unseen for longer than this (stream time between sightings) is dropped, and
            its dwell with it; shorter gaps (missed detections, occlusion, flicker) keep it.
        max_tracks: bound on live tracks; beyond it the least recently seen are dropped.
    """

    def __init__(self, *, stationary_iou: float, gap_tolerance_s: float, max_tracks: int = 512) -> None:
        if not 0 < stationary_iou <= 1:
            raise ValueError(f"stationary_iou must be in (0, 1], got {stationary_iou}")
        if max_tracks < 1:
            raise ValueError(f"max_tracks must be at least 1, got {max_tracks}")
        self.stationary_iou = stationary_iou
        self.gap_tolerance_s = gap_tolerance_s
        self.max_tracks = max_tracks
        self._next_id = 1
        self.frame = 0
        self.tracks = _Tracks.empty()
        self._warned_full = False

    def __len__(self) -> int:
        return len(self.tracks)

    def reset(self) -> None:
        """Forget every track (the camera's clock went back, or its view changed)."""
        self.tracks = _Tracks.empty()

    def remap_blocks(self, new_block: IntArray) -> None:
        """Renumber blocks after a configuration change: block ``b`` becomes ``new_block[b]``; tracks whose
        block maps to -1 (or lies outside ``new_block``) are dropped with their stay."""
        tracks = self.tracks
        known = (tracks.block >= 0) & (tracks.block < len(new_block))
        mapped = np.where(known, new_block[np.where(known, tracks.block, 0)], -1)
        tracks.block = mapped
        self.tracks = tracks.select(mapped >= 0)

    def evict(self, now_s: float) -> None:
        """Drop the tracks whose gap since their last sighting exceeds ``gap_tolerance_s`` (TTL)."""
        if len(self.tracks):
            self.tracks = self.tracks.select(within_gap(now_s - self.tracks.last_seen, self.gap_tolerance_s))

    def seen_ratio(self) -> FloatArray:
        """(T,) share of the recent analysed frames (at most :data:`SEEN_WINDOW`) in which each was seen."""
        tracks = self.tracks
        alive = np.minimum(self.frame - tracks.first_frame + 1, SEEN_WINDOW).astype(np.uint64)
        window = np.where(
            alive >= SEEN_WINDOW,
            np.uint64(2**64 - 1),
            (np.uint64(1) << np.minimum(alive, SEEN_WINDOW - 1)) - np.uint64(1),
        )
        ratio: FloatArray = popcount64(tracks.seen_bits & window) / np.maximum(alive, 1).astype(np.float64)
        return ratio

    def staying_in_block(self, block: int, *, now_s: float, min_stay_s: float, min_seen_ratio: float) -> bool:
        """Whether a live track of ``block`` has stayed ``min_stay_s`` by ``now_s`` and is seen steadily."""
        tracks = self.tracks
        found = (
            (tracks.block == block)
            & within_gap(now_s - tracks.last_seen, self.gap_tolerance_s)
            & (tracks.last_seen - tracks.started >= min_stay_s)
            & (self.seen_ratio() >= min_seen_ratio)
        )
        return bool(found.any())

    def update(
        self,
        now_s: float,
        xyxy: npt.NDArray[np.floating],
        confidence: npt.NDArray[np.floating],
        block: IntArray,
    ) -> TrackerStep:
        """Match one frame's boxes (P, 4) with their confidences and blocks; return the tracks seen.

        Boxes may be in any coordinates as long as they are the same on every call (the rule engine passes
        normalised ones, so a change of stream resolution keeps the tracks).
        """
        self.evict(now_s)
        self.frame += 1
        self.tracks.seen_bits <<= np.uint64(1)
        if len(xyxy) == 0:
            return TrackerStep.empty()
        row_slot = self._match(xyxy, block)
        unmatched = np.flatnonzero(row_slot < 0)
        if unmatched.size:
            first_new = len(self.tracks)
            started_rows = self._add(now_s, xyxy, confidence, block, unmatched)
            row_slot[started_rows] = np.arange(first_new, len(self.tracks), dtype=np.intp)
        step = self._seen(now_s, row_slot, confidence)
        if len(self.tracks) > self.max_tracks:
            self._shrink(step.track_id)
        return step

    def _match(self, xyxy: npt.NDArray[np.floating], block: IntArray) -> npt.NDArray[np.intp]:
        """Per row the slot of the track it continues (best IoU in its block, >= the threshold), or -1."""
        row_slot = np.full(len(xyxy), -1, np.intp)
        rows, slots = same_block_pairs(block, self.tracks.block)
        if rows.size == 0:
            return row_slot
        iou = box_iou_pairs(xyxy[rows], self.tracks.anchor[slots])
        good = iou >= self.stationary_iou
        rows, slots, iou = rows[good], slots[good], iou[good]
        # Best per row: sort by (row, -iou) and take the first of each row.
        best = np.lexsort((-iou, rows))
        first = np.unique(rows[best], return_index=True)[1]
        row_slot[rows[best[first]]] = slots[best[first]]
        return row_slot

    def _add(
        self,
        now_s: float,
        xyxy: npt.NDArray[np.floating],
        confidence: npt.NDArray[np.floating],
        block: IntArray,
        unmatched: npt.NDArray[np.intp],
    ) -> npt.NDArray[np.intp]:
        """Start tracks for unmatched rows, one per object (NMS by block); return the rows that did."""
        keep = batched_nms(
            xyxy[unmatched].astype(np.float32),
            confidence[unmatched].astype(np.float32),
            block[unmatched],
            iou_threshold=self.stationary_iou,
            max_detections=len(unmatched),
        )
        rows = np.sort(unmatched[keep])
        n = len(rows)
        new = _Tracks(
            anchor=xyxy[rows].astype(np.float64),
            block=block[rows],
            track_id=np.arange(self._next_id, self._next_id + n, dtype=np.int64),
            started=np.full(n, now_s),
            last_seen=np.full(n, now_s),
            first_frame=np.full(n, self.frame, np.int64),
            seen_bits=np.zeros(n, np.uint64),
        )
        self._next_id += n
        self.tracks = self.tracks.extend(new)
        return rows

    def _seen(
        self, now_s: float, row_slot: npt.NDArray[np.intp], confidence: npt.NDArray[np.floating]
    ) -> TrackerStep:
        assigned = np.flatnonzero(row_slot >= 0)
        # The representative row of each track: its most confident row (sort by confidence, first per slot).
        order = assigned[np.argsort(-confidence[assigned], kind="stable")]
        slots, first = np.unique(row_slot[order], return_index=True)
        tracks = self.tracks
        tracks.last_seen[slots] = now_s
        tracks.seen_bits[slots] |= np.uint64(1)
        return TrackerStep(
            track_id=tracks.track_id[slots].copy(),
            block=tracks.block[slots].copy(),
            started=tracks.started[slots].copy(),
            seen_ratio=self.seen_ratio()[slots],
            row=order[first],
        )

    def _shrink(self, protected_ids: IntArray) -> None:
        """Keep ``max_tracks``: drop the least recently seen, never those seen in this update if avoidable."""
        tracks = self.tracks
        seen_now = np.isin(tracks.track_id, protected_ids)
        order = np.lexsort((tracks.started, tracks.last_seen, seen_now))  # oldest sightings first
        dropped = len(tracks) - self.max_tracks
        keep = np.ones(len(tracks), np.bool_)
        keep[order[:dropped]] = False
        level = logging.DEBUG if self._warned_full else logging.WARNING
        self._warned_full = True
        log.log(
            level,
            "tracker holds more than %d tracks; dropped the %d least recently seen",
            self.max_tracks,
            dropped,
        )
        self.tracks = tracks.select(keep)
