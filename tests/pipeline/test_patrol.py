"""Patrol mode (轮巡, pipeline.patrol): configuration, dwell across visits, visits of real snapshot and RTSP
servers on loopback, an unreachable camera that blocks no one, and the per-host cap."""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Any

import cv2
import numpy as np
import numpy.typing as npt
import pytest

from benchmarks.snapshot_server import SnapshotServer
from pipeline.config import CameraConfig, ConfigError, PatrolConfig, PatrolSampling, load_config
from pipeline.patrol import Patroller, PatrolSource, VisitError, visit
from tests.pipeline.rule_builders import (
    camera,
    feed,
    kinds,
    make_config,
    make_detections,
    make_engine,
    offset_s,
    parked,
)


def jpeg(image: npt.NDArray[np.uint8]) -> bytes:
    ok, data = cv2.imencode(".jpg", image, [cv2.IMWRITE_JPEG_QUALITY, 90])
    assert ok
    return data.tobytes()


def patrol_camera(camera_id: str, url: str, every_s: float = 60, **extra: Any) -> CameraConfig:
    return CameraConfig.model_validate(
        {
            "id": camera_id,
            "url": url,
            "sample": {"mode": "patrol", "every_s": every_s},
            "zones": [
                {
                    "id": "z",
                    "place": "p",
                    "polygon": [[0, 0], [1, 0], [1, 1]],
                    "rules": {"illegal_parking": {"dwell_s": 30}},
                }
            ],
            **extra,
        }
    )


def wait_for(condition: Any, timeout_s: float, what: str) -> None:
    deadline = time.monotonic() + timeout_s
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout_s:.0f} s waiting for {what}")
        time.sleep(0.05)


# --- configuration -----------------------------------------------------------------------------------------


def write_yaml(tmp_path: Path, text: str) -> Path:
    model = tmp_path / "model.onnx"
    model.write_bytes(b"")
    path = tmp_path / "daemon.yaml"
    path.write_text(text.replace("MODEL", str(model)), encoding="utf-8")
    return path


BASE = """detector:
  model: MODEL
  classes: {car: illegal_parking}
store: {url: "http://127.0.0.1:8000", device_key_file: key}
"""
ZONES = (
    "    zones: [{id: z, place: p, polygon: [[0, 0], [1, 0], [1, 1]],"
    " rules: {illegal_parking: {dwell_s: 120}}}]\n"
)


def test_patrol_sample_and_the_default_for_cameras_without_their_own(tmp_path: Path) -> None:
    path = write_yaml(
        tmp_path,
        BASE
        + "patrol: {max_concurrent: 32, visit_timeout_s: 8, per_host_limit: 2}\n"
        + "camera_defaults:\n  sample: {mode: patrol, every_s: 60}\n"
        + "cameras:\n"
        + "  - id: a\n    url: rtsp://10.0.0.1/a\n"
        + ZONES
        + "  - id: b\n    url: http://10.0.0.2/snap.jpg\n    sample: {mode: patrol, every_s: 120}\n"
        + ZONES
        + "  - id: c\n    url: rtsp://10.0.0.3/c\n    sample: {mode: fps, fps: 1}\n"
        + ZONES,
    )
    config = load_config(path)
    samples = {c.id: c.sample for c in config.cameras}
    assert samples["a"] == PatrolSampling(mode="patrol", every_s=60)  # from camera_defaults
    assert samples["b"] == PatrolSampling(mode="patrol", every_s=120)  # its own
    assert samples["c"].mode == "fps"
    assert [c.id for c in config.patrol_cameras] == ["a", "b"]
    assert config.patrol == PatrolConfig(max_concurrent=32, visit_timeout_s=8, per_host_limit=2)


@pytest.mark.parametrize(
    ("camera_yaml", "patrol_yaml", "expected"),
    [
        (
            "  - id: a\n    url: /videos/a.mp4\n    sample: {mode: patrol}\n",
            "",
            ":7: cameras.0.url: patrol visits network cameras",
        ),
        (
            "  - id: a\n    url: rtsp://h/a\n    sample: {mode: patrol, every_s: 5}\n",
            "patrol: {visit_timeout_s: 10}\n",
            ":9: cameras.0.sample: every_s (5) must exceed patrol.visit_timeout_s (10)",
        ),
        (
            "  - id: a\n    url: rtsp://h/a\n    sample: {mode: patrol, every_s: 60, gap_tolerance_s: 30}\n",
            "",
            "gap_tolerance_s (30) must exceed every_s (60)",
        ),
        (
            "  - id: a\n    url: rtsp://h/a\n    sample: {mode: patrol, every_s: 0.1}\n",
            "",
            "cameras.0.sample.patrol.every_s",
        ),
        ("  - id: a\n    url: rtsp://h/a\n", "patrol: {per_host_limit: 0}\n", "patrol.per_host_limit"),
    ],
)
def test_bad_patrol_settings_name_file_line_and_field(
    tmp_path: Path, camera_yaml: str, patrol_yaml: str, expected: str
) -> None:
    path = write_yaml(tmp_path, BASE + patrol_yaml + "cameras:\n" + camera_yaml + ZONES)
    with pytest.raises(ConfigError) as caught:
        load_config(path)
    message = str(caught.value)
    assert str(path) in message and expected in message, message


# --- dwell across visits ----------------------------------------------------------------------------------


def test_a_pile_seen_on_three_visits_60_s_apart_has_stood_120_s() -> None:
    events = feed(make_engine_with_dwell(120), parked([0, 60, 120]))
    (confirmed,) = kinds(events, "confirmed")
    assert offset_s(confirmed.at) == 120 and offset_s(confirmed.first_seen_at) == 0
    assert [offset_s(e.at) for e in kinds(events, "first_seen")] == [60]
    # the same visits on a camera held open: 60 s without a frame resets every stay (gap tolerance 20 s)
    held_open = make_engine(cameras=[camera(zones=None)])
    assert not kinds(feed(held_open, parked([0, 60, 120, 180])), "confirmed")


def make_engine_with_dwell(dwell_s: float, every_s: float = 60, **sample: Any) -> Any:
    zone = {
        "id": "z1",
        "place": "p1",
        "polygon": [[0, 0], [1, 0], [1, 1], [0, 1]],
        "rules": {"illegal_parking": {"dwell_s": dwell_s}},
    }
    cam = camera(zones=[zone], url="rtsp://h/cam", sample={"mode": "patrol", "every_s": every_s, **sample})
    return make_engine(cameras=[cam])


def test_one_missed_visit_keeps_the_stay_two_do_not() -> None:
    # 0, 60, (120 missed), 180: a 120 s gap is within 2.5 turns; the stay started at 0 counts
    engine = make_engine_with_dwell(180)
    (confirmed,) = kinds(feed(engine, parked([0, 60, 180])), "confirmed")
    assert offset_s(confirmed.first_seen_at) == 0 and offset_s(confirmed.at) == 180
    # 0, 60, (120 and 180 missed), 240: gone for 180 s > 150 s, the stay starts again at 240
    engine = make_engine_with_dwell(180)
    events = feed(engine, parked([0, 60, 240, 300, 360, 420]))
    (confirmed,) = kinds(events, "confirmed")
    assert offset_s(confirmed.first_seen_at) == 240 and offset_s(confirmed.at) == 420


def test_verification_sees_an_object_still_there_between_visits_and_gone_after_two_missed() -> None:
    # the verifier asks RuleEngine.present whether the object still stands in the zone
    engine = make_engine_with_dwell(120)
    feed(engine, parked([0, 60, 120]))
    assert engine.present("cam", "z1", "illegal_parking")  # seen on the last visit, 60 s apart
    feed(engine, [(180, make_detections([]))])
    assert engine.present("cam", "z1", "illegal_parking")  # one empty visit: within 2.5 turns of the last
    feed(engine, [(240, make_detections([])), (300, make_detections([]))])
    assert not engine.present("cam", "z1", "illegal_parking")  # 180 s unseen: gone


def test_a_confirmed_patrol_incident_outlives_the_quiet_period_between_long_turns() -> None:
    # every 10 min: the 5 min quiet period alone would end the case between two visits
    engine = make_engine_with_dwell(600, every_s=600)
    events = feed(engine, parked([0, 600, 1200, 1800]))
    assert len(kinds(events, "confirmed")) == 1 and not kinds(events, "ended")
    assert len({e.incident_id for e in events}) == 1


def test_a_patrol_camera_is_not_sampled_from_an_open_stream() -> None:
    from pipeline.sampling import FrameSelector

    with pytest.raises(ValueError, match="patrol"):
        FrameSelector(
            make_config(cameras=[camera(sample={"mode": "patrol"}, url="rtsp://h/c")]).cameras[0].sample
        )


# --- visits on loopback ---------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def vtest_jpegs(vtest_frames: dict[int, npt.NDArray[np.uint8]]) -> list[bytes]:
    return [jpeg(vtest_frames[i]) for i in sorted(vtest_frames)]


def test_a_snapshot_visit_brings_the_real_picture_and_its_detector_copy(
    vtest_jpegs: list[bytes], vtest_frames: dict[int, npt.NDArray[np.uint8]]
) -> None:
    with SnapshotServer(vtest_jpegs[:1]) as server:
        picture = visit(patrol_camera("a", server.url("a")), 5.0, (640, 640))
    assert picture.kind == "snapshot"
    assert picture.image.shape == vtest_frames[0].shape  # 576 x 768
    assert picture.small is not None and picture.small.shape == (480, 640, 3)
    diff = np.abs(picture.image.astype(np.int16) - vtest_frames[0].astype(np.int16)).mean()
    assert diff < 3  # the same picture, through JPEG


def test_a_snapshot_url_that_fails_says_why() -> None:
    with SnapshotServer(lambda camera, n: None) as server, pytest.raises(VisitError, match="HTTP 404"):
        visit(patrol_camera("a", server.url("a")), 3.0, None)


def test_unreachable_camera_is_marked_and_retried_and_blocks_no_one(vtest_jpegs: list[bytes]) -> None:
    hung = {"dead1", "dead2"}
    ids = [f"cam{i}" for i in range(6)] + sorted(hung)
    with SnapshotServer(vtest_jpegs, hang=frozenset(hung), hang_s=5.0) as server:
        cameras = [patrol_camera(i, server.url(i), every_s=1.5, failed_after=2) for i in ids]
        woken: list[str] = []
        patroller = Patroller(
            cameras,
            PatrolConfig(max_concurrent=4, visit_timeout_s=1.0, per_host_limit=4),
            input_hw=(640, 640),
            on_frame=woken.append,
        )
        patroller.start()
        try:
            time.sleep(6.5)
        finally:
            assert patroller.stop(timeout=6.0)
    sources = patroller.sources
    for camera_id in hung:
        health = sources[camera_id].health
        assert health.state == "failed", health  # two turns without an answer (failed_after: 2)
        assert health.last_error is not None and "timeout" in health.last_error
        assert sources[camera_id].visits >= 3  # tried again on each turn
        assert sources[camera_id].latest() is None
    for camera_id in set(ids) - hung:
        health = sources[camera_id].health
        assert health.state == "up" and health.last_error is None
        # 6.5 s at one visit per 1.5 s: every turn came, although two of four workers were stuck
        assert sources[camera_id].visits >= 4, (camera_id, sources[camera_id].visits)
        frame = sources[camera_id].latest()
        assert frame is not None and frame.image.shape == (576, 768, 3) and frame.small is not None
        assert sources[camera_id].latest(frame.seq) is None  # handed over once, then let go
    assert set(woken) == set(ids) - hung
    on_time = [r for r in patroller.recent if r.ok]
    assert max(r.late_s for r in on_time) < 1.0


def test_per_host_cap_is_respected_while_other_hosts_go_ahead(vtest_jpegs: list[bytes]) -> None:
    with SnapshotServer(vtest_jpegs[:1], delay_s=0.3) as server:
        cameras = [patrol_camera(f"a{i}", server.url(f"a{i}", "127.0.0.1"), every_s=2) for i in range(8)]
        cameras += [patrol_camera(f"b{i}", server.url(f"b{i}", "localhost"), every_s=2) for i in range(8)]
        patroller = Patroller(cameras, PatrolConfig(max_concurrent=8, visit_timeout_s=1.5, per_host_limit=2))
        patroller.start()
        try:
            wait_for(lambda: all(s.visits >= 2 for s in patroller.sources.values()), 20, "two turns each")
        finally:
            patroller.stop()
    assert server.peak_per_host["127.0.0.1"] == 2 and server.peak_per_host["localhost"] == 2
    assert server.peak >= 3  # both hosts at once: a host at its cap holds up no other host
    assert patroller.peak_per_host == 2
    assert all(s.health.state == "up" for s in patroller.sources.values())


def test_a_patrol_visit_takes_the_first_keyframe_of_a_real_rtsp_stream(
    tmp_path_factory: pytest.TempPathFactory, vtest_path: Path
) -> None:
    from tests.pipeline.rtsp_server import RtspServer, encode_clip, server_available

    why = server_available()
    if why:
        pytest.skip(why)
    clip = encode_clip(
        vtest_path, tmp_path_factory.mktemp("patrol-rtsp") / "vtest.h264", gop=10, max_seconds=8
    )
    with RtspServer({"a": clip, "b": clip}) as rtsp:
        cameras = [patrol_camera(i, f"{rtsp.url(i)}", every_s=2) for i in ("a", "b")]
        patroller = Patroller(
            cameras,
            PatrolConfig(max_concurrent=2, visit_timeout_s=1.9, per_host_limit=2),
            input_hw=(640, 640),
        )
        patroller.start()
        try:
            wait_for(
                lambda: all(s.visits - s.failed_visits >= 2 for s in patroller.sources.values()), 30, "visits"
            )
        finally:
            patroller.stop()
    for source in patroller.sources.values():
        assert source.last_kind == "stream" and source.health.state == "up"
        frame = source.latest()
        assert frame is not None and frame.image.shape == (576, 768, 3) and frame.image.std() > 20


def test_patrol_source_rejects_a_camera_that_is_not_a_patrol_camera() -> None:
    held = CameraConfig.model_validate(json.loads(json.dumps({**camera(), "url": "rtsp://h/c"})))
    with pytest.raises(ValueError, match="not a patrol camera"):
        PatrolSource(held)
