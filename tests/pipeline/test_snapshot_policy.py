"""Which frames become zone-editor snapshots: a camera's first, one whose picture changed (looked at every
``snapshot_s``), or one ``snapshot_unchanged_s`` after the last; people walking by are not a change."""

from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np
import numpy.typing as npt
import pytest

from pipeline.snapshots import SnapshotPolicy

VTEST = Path("/usr/share/doc/opencv-doc/examples/data/vtest.avi")


def vtest(*indices: int) -> list[npt.NDArray[np.uint8]]:
    if not VTEST.is_file():
        pytest.skip(f"no {VTEST} (apt-get install opencv-doc)")
    capture = cv2.VideoCapture(str(VTEST))
    frames = []
    for index in indices:
        capture.set(cv2.CAP_PROP_POS_FRAMES, index)
        ok, frame = capture.read()
        assert ok, index
        frames.append(np.asarray(frame, np.uint8))
    capture.release()
    return frames


def test_people_walking_by_wait_for_the_long_interval_a_moved_camera_does_not() -> None:
    first, later, much_later = vtest(0, 300, 700)  # 30 s and 70 s later: the same street, other people
    moved = np.ascontiguousarray(np.roll(first, first.shape[1] // 3, axis=1))  # panned by a third
    policy = SnapshotPolicy(every_s=60, unchanged_s=600)

    assert policy.decide("cam-1", first, 0.0)  # the first frame
    assert not policy.decide("cam-1", later, 30.0)  # not looked at before 60 s
    assert not policy.decide("cam-1", later, 60.0)  # looked at: people moved, the scene did not
    assert not policy.decide("cam-1", much_later, 120.0)
    assert not policy.decide("cam-1", moved, 150.0)  # changed, but looked at again only at 180 s
    assert policy.decide("cam-1", moved, 180.0)
    assert not policy.decide("cam-1", moved, 240.0)
    assert policy.decide("cam-1", moved, 780.0)  # 600 s after the last one, unchanged or not
    assert policy.decide("cam-2", later, 780.0)  # each camera its own


def test_unchanged_interval_at_or_below_the_look_interval_sends_every_look() -> None:
    (frame,) = vtest(0)
    policy = SnapshotPolicy(every_s=60, unchanged_s=0)
    assert [policy.decide("cam-1", frame, t) for t in (0.0, 30.0, 60.0, 120.0)] == [True, False, True, True]
    off = SnapshotPolicy(every_s=0, unchanged_s=600)
    assert not off.decide("cam-1", frame, 0.0)
