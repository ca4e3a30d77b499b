"""Per-zone change gating: the model runs only when something changed inside a camera's zones (or an
incident needs it); otherwise the camera's last detections are carried forward.

Real footage: vtest.avi, where pedestrians cross the walkway all the time and the van stands still at the
top right.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import itertools
import queue
import threading
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from pipeline.config import CameraConfig, ZoneConfig
from pipeline.metrics import DaemonMetrics
from pipeline.sampling import ZoneGate
from pipeline.scheduler import CameraSlot, Scheduler
from pipeline.sources import CameraSource, iter_samples
from pipeline.stages import END, Analysed, StageControl
from tests.pipeline.test_daemon import T0, FakeDetector, FileSource

VAN_ZONE = [[0.82, 0.05], [1.0, 0.05], [1.0, 0.2], [0.82, 0.2]]
RULES = {"illegal_parking": {"dwell_s": 30}}
WALKWAY_ZONE = [[0.0, 0.28], [0.75, 0.28], [0.75, 0.6], [0.0, 0.6]]


def camera(url: Path, polygon: list[list[float]], **fields: Any) -> CameraConfig:
    values: dict[str, Any] = {
        "id": "vtest",
        "url": str(url),
        "zones": [
            {"id": "z", "place": "p", "polygon": polygon, "rules": {"illegal_parking": {"dwell_s": 30}}}
        ],
        "skip_unchanged": False,
        "zone_gating": True,
        "sample": {"mode": "fps", "fps": 2},
    }
    values.update(fields)
    return CameraConfig.model_validate(values)


def unchanged_share(url: Path, polygon: list[list[float]], **fields: Any) -> tuple[float, list[Any]]:
    source = CameraSource(camera(url, polygon, **fields), input_hw=(416, 416))
    source.start()
    try:
        frames = list(iter_samples(source, timeout=60))
    finally:
        source.stop()
    return sum(f.zones_unchanged for f in frames) / len(frames), frames


def test_a_still_zone_is_gated_and_a_busy_one_is_not(vtest_path: Path) -> None:
    van, frames = unchanged_share(vtest_path, VAN_ZONE)
    walkway, _ = unchanged_share(vtest_path, WALKWAY_ZONE)
    assert van >= 0.5, van  # the van stands still: most samples need no inference
    assert walkway <= 0.1, walkway  # people walk through it all the time
    assert not frames[0].zones_unchanged  # nothing to compare the first sample with
    # the model still runs at least every max_skip_s (5 s) of stream time
    ran = [f.stream_time for f in frames if not f.zones_unchanged]
    gaps = [(b - a).total_seconds() for a, b in itertools.pairwise(ran)]
    assert max(gaps) <= 5.0 + 0.5 + 1e-6


def test_zone_gate_ignores_change_outside_the_zones() -> None:
    zone = ZoneConfig.model_validate(
        {"id": "z", "place": "p", "polygon": [[0, 0], [0.3, 0], [0.3, 0.3]], "rules": RULES}
    )
    gate = ZoneGate(threshold=0.001, max_skip_s=5.0)
    thumb = np.full((90, 160), 100, np.uint8)
    assert not gate.unchanged(thumb, [zone], T0)  # the first one becomes the reference
    moved_outside = thumb.copy()
    moved_outside[60:90, 100:160] = 250
    assert gate.unchanged(moved_outside, [zone], T0 + dt.timedelta(seconds=1))
    moved_inside = thumb.copy()
    moved_inside[2:10, 2:10] = 250
    assert not gate.unchanged(moved_inside, [zone], T0 + dt.timedelta(seconds=2))
    assert gate.unchanged(moved_inside, [zone], T0 + dt.timedelta(seconds=3))
    assert not gate.unchanged(moved_inside, [zone], T0 + dt.timedelta(seconds=7.5))  # max_skip_s


def run_scheduler(frames_unchanged: list[bool], needs_fresh: bool) -> tuple[FakeDetector, list[Analysed]]:
    source = FileSource("cam", len(frames_unchanged))
    source.frames = [
        dataclasses.replace(frame, zones_unchanged=flag)
        for frame, flag in zip(source.frames, frames_unchanged, strict=True)
    ]
    config = CameraConfig.model_validate(
        {
            "id": "cam",
            "url": "/x.mp4",
            "zones": [{"id": "z", "place": "p", "polygon": VAN_ZONE, "rules": RULES}],
        }
    )
    slot = CameraSlot(config, source, every_frame=True, capacity=4)
    detector = FakeDetector()
    results: queue.Queue[object] = queue.Queue()
    scheduler = Scheduler(
        [slot],
        detector,
        DaemonMetrics(["cam"]),
        results,
        StageControl(),
        batch_size=1,
        frame_ready=threading.Event(),
        idle_wait_s=0.001,
        consumer_alive=lambda: True,
        needs_fresh=lambda _camera: needs_fresh,
    )
    scheduler.run()
    out = []
    while (item := results.get_nowait()) is not END:
        assert isinstance(item, Analysed)
        out.append(item)
    return detector, out


def test_unchanged_frames_carry_the_last_detections_forward_in_order() -> None:
    detector, analysed = run_scheduler([False, True, True, False, True], needs_fresh=False)
    assert len(detector.batches) == 2  # the model ran on the two frames whose zones changed
    assert [a.frame.seq for a in analysed] == [0, 1, 2, 3, 4]  # every frame reaches the rules, in order
    assert [a.carried for a in analysed] == [False, True, True, False, True]
    np.testing.assert_array_equal(analysed[1].detections.xyxy, analysed[0].detections.xyxy)


def test_an_incident_awaiting_confirmation_gets_fresh_detections() -> None:
    detector, analysed = run_scheduler([False, True, True], needs_fresh=True)
    assert len(detector.batches) == 3 and not any(a.carried for a in analysed)


@pytest.mark.parametrize("flags", [[True, True]])
def test_a_camera_without_earlier_detections_runs_the_model(flags: list[bool]) -> None:
    detector, analysed = run_scheduler(flags, needs_fresh=False)
    assert len(detector.batches) == 1 and [a.carried for a in analysed] == [False, True]


def test_zone_gating_is_refused_where_only_detected_people_are_blurred(tmp_path: Path) -> None:
    from pydantic import ValidationError

    from pipeline.config import DaemonConfig

    cam = camera(tmp_path / "v.mp4", VAN_ZONE, redaction={"mode": "persons_only"}).model_dump()
    document: dict[str, Any] = {
        "detector": {"model": str(tmp_path / "m.onnx"), "classes": {"car": "illegal_parking"}},
        "store": {"url": "http://127.0.0.1:9", "device_key_file": str(tmp_path / "key")},
        "cameras": [cam],
    }
    with pytest.raises(ValidationError, match=r"cameras.0.zone_gating: .*persons_only"):
        DaemonConfig.model_validate(document)
    document["cameras"][0]["zone_gating"] = False
    assert not DaemonConfig.model_validate(document).cameras[0].zone_gating
