"""The stationary matcher: anchor-box IoU per block, gaps in stream time, seen ratio, bounded state."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from pipeline.tracker import (
    SEEN_WINDOW,
    StationaryTracker,
    TrackerStep,
    popcount64,
    same_block_pairs,
)

BOX = np.array([[0.40, 0.40, 0.50, 0.50]])
GAP = 20.0


def tracker(**kwargs: float) -> StationaryTracker:
    options = {"stationary_iou": 0.6, "gap_tolerance_s": GAP, **kwargs}
    return StationaryTracker(
        stationary_iou=options["stationary_iou"],
        gap_tolerance_s=options["gap_tolerance_s"],
        max_tracks=int(options.get("max_tracks", 512)),
    )


def step(t: StationaryTracker, now: float, boxes: np.ndarray, block: int | list[int] = 0) -> TrackerStep:
    n = len(boxes)
    blocks = np.broadcast_to(np.asarray(block, np.int64), (n,)).copy()
    return t.update(now, boxes, np.full(n, 0.9), blocks)


def shifted(dx: float) -> np.ndarray:
    moved: np.ndarray = BOX + np.array([dx, 0, dx, 0])
    return moved


@settings(max_examples=100, deadline=None)
@given(
    rows=st.lists(st.integers(0, 4), max_size=12),
    tracks=st.lists(st.integers(0, 4), max_size=12),
)
def test_same_block_pairs_lists_exactly_the_same_block_entries(rows: list[int], tracks: list[int]) -> None:
    got_rows, got_tracks = same_block_pairs(np.array(rows, np.int64), np.array(tracks, np.int64))
    expected = sorted((r, t) for r in range(len(rows)) for t in range(len(tracks)) if rows[r] == tracks[t])
    assert sorted(zip(got_rows.tolist(), got_tracks.tolist(), strict=True)) == expected
    assert list(got_rows) == sorted(got_rows)  # grouped by row


@settings(max_examples=100, deadline=None)
@given(st.lists(st.integers(0, 2**64 - 1), max_size=20))
def test_popcount64(values: list[int]) -> None:
    assert popcount64(np.array(values, np.uint64)).tolist() == [bin(v).count("1") for v in values]


def test_a_still_object_keeps_one_track_and_its_start() -> None:
    t = tracker()
    ids = {int(step(t, s, BOX).track_id[0]) for s in range(30)}
    assert len(ids) == 1
    assert step(t, 30, BOX).started.tolist() == [0.0]


def test_jitter_within_the_threshold_continues_a_move_beyond_it_starts_over() -> None:
    t = tracker()
    first = step(t, 0, BOX).track_id[0]
    assert step(t, 1, shifted(0.01)).track_id[0] == first  # IoU 0.82 with the anchor
    moved = step(t, 2, shifted(0.03))  # IoU 0.54: a new anchor, a new stay
    assert moved.track_id[0] != first
    assert moved.started.tolist() == [2.0]


def test_a_creeping_object_is_judged_against_its_anchor_not_its_last_box() -> None:
    t = tracker()
    first = step(t, 0, BOX).track_id[0]
    ids = [int(step(t, s, shifted(0.008 * s)).track_id[0]) for s in range(1, 6)]
    # Each step overlaps the previous box by IoU > 0.8, but by the fourth it has left its anchor.
    assert ids[:2] == [first, first]
    assert first not in ids[3:]


def test_blocks_never_match_each_other() -> None:
    t = tracker()
    a = step(t, 0, BOX, block=0).track_id[0]
    b = step(t, 1, BOX, block=1).track_id[0]
    assert a != b
    assert len(t) == 2


def test_duplicate_boxes_of_one_object_share_one_track() -> None:
    """A detector reports the van as both truck and car (one block): one track, refreshed by both."""
    t = tracker()
    boxes = np.concatenate([BOX, shifted(0.002)])
    first = step(t, 0, boxes)
    assert len(first) == 1 and len(t) == 1
    again = step(t, 1, boxes)
    assert again.track_id.tolist() == first.track_id.tolist()


def test_representative_row_is_the_most_confident() -> None:
    t = tracker()
    s = t.update(0, np.concatenate([BOX, BOX]), np.array([0.5, 0.8]), np.zeros(2, np.int64))
    assert s.row.tolist() == [1]


@pytest.mark.parametrize(("gap", "same"), [(5.0, True), (GAP, True), (GAP + 0.5, False), (100.0, False)])
def test_gap_tolerance_on_stream_time(gap: float, same: bool) -> None:
    t = tracker()
    first = step(t, 0, BOX).track_id[0]
    later = step(t, gap, BOX)
    assert bool(later.track_id[0] == first) == same
    assert later.started.tolist() == [0.0 if same else gap]


def test_a_gap_of_exactly_the_tolerance_survives_float_rounding() -> None:
    """30.59 + 20.0 - 30.59 is 20.000000000000004 in floats: the track must still continue."""
    t = tracker()
    first = step(t, 30.59, BOX).track_id[0]
    later = step(t, 30.59 + GAP, BOX)
    assert later.track_id[0] == first
    assert later.started[0] == 30.59


@settings(max_examples=50, deadline=None)
@given(gaps=st.lists(st.floats(0.1, GAP), min_size=1, max_size=30))
def test_sightings_closer_than_the_tolerance_keep_the_start(gaps: list[float]) -> None:
    """No frames in between (dropped, skipped): any gap up to the tolerance keeps the track and its start."""
    t = tracker()
    now = 0.0
    first = step(t, now, BOX).track_id[0]
    for gap in gaps:
        now += gap
        s = step(t, now, BOX)
        assert s.track_id[0] == first
        assert s.started[0] == 0.0
        assert s.seen_ratio[0] == 1.0


def test_empty_frames_count_for_the_seen_ratio() -> None:
    t = tracker()
    for s in range(20):
        if s % 2 == 0:
            step(t, s, BOX)
        else:
            step(t, s, np.zeros((0, 4)))
    assert step(t, 20, BOX).seen_ratio[0] == pytest.approx(11 / 21)


def test_seen_ratio_window_is_bounded() -> None:
    """Only the last SEEN_WINDOW analysed frames count: a long history does not outweigh a recent absence."""
    t = tracker(gap_tolerance_s=1000)
    for s in range(200):
        step(t, s, BOX)
    missed = SEEN_WINDOW // 2
    for s in range(200, 200 + missed):
        step(t, s, np.zeros((0, 4)))
    ratio = step(t, 200 + missed, BOX).seen_ratio[0]
    assert ratio == pytest.approx((SEEN_WINDOW - missed) / SEEN_WINDOW)


def test_state_is_bounded_by_ttl_and_max_tracks() -> None:
    t = tracker(max_tracks=50)
    rng = np.random.default_rng(1)
    for s in range(100):
        xy = rng.uniform(0, 0.9, (20, 2))
        step(t, s, np.concatenate([xy, xy + 0.05], axis=1))
        assert len(t) <= 50
    step(t, 100 + GAP + 1, np.zeros((0, 4)))
    assert len(t) == 0


def test_the_newest_tracks_survive_the_bound() -> None:
    t = tracker(max_tracks=3)
    step(t, 0, BOX)
    kept = step(t, 1, np.array([[0.0, 0.0, 0.1, 0.1], [0.2, 0.2, 0.3, 0.3], [0.6, 0.6, 0.7, 0.7]]))
    assert sorted(t.tracks.track_id.tolist()) == sorted(kept.track_id.tolist())


def test_staying_in_block() -> None:
    t = tracker()
    for s in range(10):
        step(t, s, BOX, block=3)
    assert t.staying_in_block(3, now_s=9, min_stay_s=5, min_seen_ratio=0.6)
    assert not t.staying_in_block(3, now_s=9, min_stay_s=15, min_seen_ratio=0.6)
    assert not t.staying_in_block(2, now_s=9, min_stay_s=0, min_seen_ratio=0.6)
    assert not t.staying_in_block(3, now_s=9 + GAP + 1, min_stay_s=5, min_seen_ratio=0.6)


def test_bad_arguments() -> None:
    with pytest.raises(ValueError, match="stationary_iou"):
        tracker(stationary_iou=0)
    with pytest.raises(ValueError, match="max_tracks"):
        tracker(max_tracks=0)
