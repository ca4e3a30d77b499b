"""Sampling on real footage (keyframes vs a target fps, stream timestamps, the scene-change skip), and the
pure decisions behind it: the fps grid, the keyframe state machine, the stream clock and the lag meter."""

from __future__ import annotations

import datetime as dt
import itertools
from pathlib import Path
from typing import Any

import av
import cv2
import numpy as np
import numpy.typing as npt
import pytest

from pipeline.config import CameraConfig, FpsSampling, KeyframeSampling
from pipeline.sampling import (
    CLOCK_MAX_DRIFT_S,
    FrameSelector,
    LagMeter,
    PacketAction,
    RateSampler,
    SceneChangeGate,
    StreamClock,
    changed_fraction,
    thumbnail_size,
)
from pipeline.sources import CameraSource, SampledFrame, iter_samples
from tests.conftest import read_frames

UTC = dt.UTC
START = dt.datetime(2024, 5, 1, 8, 0, tzinfo=UTC)
ZONES = [
    {
        "id": "z",
        "place": "p",
        "polygon": [[0, 0], [1, 0], [1, 1]],
        "rules": {"illegal_parking": {"dwell_s": 30}},
    }
]
SKIP = PacketAction.SKIP
DECODE = PacketAction.DECODE
ALONE = PacketAction.DECODE_ALONE
AFRESH = PacketAction.DECODE_AFRESH
HOLD = PacketAction.HOLD
HELD = PacketAction.DECODE_HELD


def camera(url: Path | str, **fields: Any) -> CameraConfig:
    values: dict[str, Any] = {"id": "cam", "url": str(url), "zones": ZONES, "start_time": START}
    values.setdefault("skip_unchanged", False)
    values.update(fields)
    return CameraConfig.model_validate(values)


def all_samples(config: CameraConfig) -> list[SampledFrame]:
    source = CameraSource(config)
    source.start()
    try:
        return list(iter_samples(source, timeout=30))
    finally:
        source.stop()


def offsets(frames: list[SampledFrame]) -> list[float]:
    return [round((f.stream_time - START).total_seconds(), 3) for f in frames]


# --- real footage --------------------------------------------------------------------------------------


def test_car_detection_keyframes_are_its_gop(car_video: Path) -> None:
    """H.264, a keyframe every 60 frames (4.8 s at 12.5 fps): only those are decoded and sampled."""
    frames = all_samples(camera(car_video, sample={"mode": "keyframes"}))
    assert offsets(frames) == [0.0, 4.8, 9.6, 14.4, 19.2, 24.0, 28.8]
    assert all(f.keyframe for f in frames)
    assert [f.seq for f in frames] == list(range(7))
    assert frames[0].image.shape == (432, 768, 3) and frames[0].image.dtype == np.uint8


def test_car_detection_at_one_fps_samples_on_stream_time(car_video: Path) -> None:
    """1 fps on 12.5 fps footage: the first frame at or after each whole second (frames are 80 ms apart)."""
    frames = all_samples(camera(car_video, sample={"mode": "fps", "fps": 1}))
    times = offsets(frames)
    assert len(times) == 31  # 0 .. 30.08 s
    assert times[:4] == [0.0, 1.04, 2.0, 3.04]
    assert all(0 <= t - k < 0.08 + 1e-6 for k, t in enumerate(times))


def test_vtest_keyframes_fall_back_to_fps_when_the_gop_is_too_long(vtest_path: Path) -> None:
    """vtest.avi has a keyframe every 25 s: after max_interval_s without a second one, sample fallback_fps,
    from the start: the packets held while probing are decoded then, so the first 10 s are not skipped."""
    frames = all_samples(
        camera(vtest_path, sample={"mode": "keyframes", "max_interval_s": 10, "fallback_fps": 1})
    )
    times = offsets(frames)
    assert times == pytest.approx([float(k) for k in range(80)])  # 0 .. 79 s of 79.5 s
    assert frames[0].keyframe and not frames[1].keyframe
    expected = read_frames(vtest_path, [10, 90, 100, 250])  # 10 fps: inside the held GOP, past it, the next
    for index, frame in zip([10, 90, 100, 250], [frames[1], frames[9], frames[10], frames[25]], strict=True):
        difference = np.abs(frame.image.astype(np.int16) - expected[index].astype(np.int16))
        assert float(np.mean(difference)) < 1.0  # decoded in sequence from the held keyframe


def test_vtest_fps_sampling_and_time_of_a_file_without_start_time(vtest_path: Path) -> None:
    before = dt.datetime.now(UTC)
    config = camera(vtest_path, sample={"mode": "fps", "fps": 0.5}, start_time=None)
    frames = all_samples(config)
    assert len(frames) == 40  # 0, 2, ..., 78 s of 79.5 s
    first = frames[0].stream_time
    assert first.tzinfo is not None and before <= first <= dt.datetime.now(UTC)
    assert [(f.stream_time - first).total_seconds() for f in frames] == pytest.approx(
        [2.0 * k for k in range(40)]
    )


def test_only_samples_are_converted_and_small_fits_the_detector(car_video: Path) -> None:
    source = CameraSource(camera(car_video, sample={"mode": "keyframes"}), input_hw=(640, 640))
    source.start()
    frame = source.next_frame(30)
    source.stop()
    assert frame is not None and frame.small is not None
    assert frame.small.shape == (360, 640, 3)  # 768x432 scaled straight from YUV to fit 640x640
    reference = cv2.resize(frame.image, (640, 360), interpolation=cv2.INTER_AREA)
    assert np.abs(frame.small.astype(np.int16) - reference).mean() < 4


# --- the scene-change skip on real frames ---------------------------------------------------------------


@pytest.fixture(scope="module")
def still_then_scene(tmp_path_factory: pytest.TempPathFactory, vtest_path: Path) -> Path:
    """12 s of vtest's first frame with sensor noise (sigma 4, H.264 crf 28), then 8 s of vtest from 40 s."""
    path = tmp_path_factory.mktemp("scene") / "still-then-scene.mp4"
    frames = read_frames(vtest_path, [0, *range(400, 480)])
    rng = np.random.default_rng(7)
    noises = [
        rng.normal(0, 4, frames[0].shape).astype(np.int16) for _ in range(8)
    ]  # eight noise patterns in turn
    with av.open(str(path), "w") as out:
        stream = out.add_stream("libx264", rate=10)
        stream.width, stream.height, stream.pix_fmt = 768, 576, "yuv420p"
        stream.options = {"crf": "28", "g": "10", "preset": "ultrafast"}
        for index in range(200):
            image = frames[0] if index < 120 else frames[400 + index - 120]
            noisy = np.clip(image + noises[index % len(noises)], 0, 255).astype(np.uint8)
            for packet in stream.encode(av.VideoFrame.from_ndarray(noisy, format="bgr24")):
                out.mux(packet)
        for packet in stream.encode():
            out.mux(packet)
    return path


def test_scene_change_skip_on_a_still_then_a_busy_scene(still_then_scene: Path) -> None:
    config = camera(
        still_then_scene,
        sample={"mode": "fps", "fps": 2},
        skip_unchanged=True,
        max_skip_s=5,
        change_threshold=0.001,
    )
    source = CameraSource(config)
    source.start()
    frames = list(iter_samples(source, timeout=30))
    health = source.health
    source.stop()
    times = offsets(frames)
    still = [t for t in times if t < 12]
    assert still == [0.0, 5.0, 10.0]  # the still picture: analysed only every max_skip_s
    busy = [t for t in times if t >= 12]
    assert busy[0] == 12.0  # the scene changes: analysed at once
    assert len(busy) >= 12  # walking people: most of the 16 samples of 12..19.5 s change
    assert health.sampled == 40
    assert health.skipped_unchanged == 40 - len(frames)


def test_scene_change_thresholds_on_real_frames(vtest_frames: dict[int, npt.NDArray[np.uint8]]) -> None:
    def thumb(image: npt.NDArray[np.uint8]) -> npt.NDArray[np.uint8]:
        gray = cv2.cvtColor(image, cv2.COLOR_BGR2GRAY)
        return np.asarray(
            cv2.resize(gray, thumbnail_size(768, 576), interpolation=cv2.INTER_AREA), dtype=np.uint8
        )

    a, b = thumb(vtest_frames[200]), thumb(vtest_frames[400])
    noisy = vtest_frames[200].astype(np.int16) + np.random.default_rng(0).normal(
        0, 4, vtest_frames[200].shape
    )
    same = thumb(np.clip(noisy, 0, 255).astype(np.uint8))
    assert changed_fraction(a, same) == 0.0  # sensor noise averages out in the thumbnail
    assert changed_fraction(a, b) > 0.01  # 20 s later the pedestrians are elsewhere
    gate = SceneChangeGate(threshold=0.001, max_skip_s=5)
    assert gate.should_analyse(a, START)  # nothing analysed yet
    gate.mark_analysed(a, START)
    assert not gate.should_analyse(same, START + dt.timedelta(seconds=1))
    assert gate.should_analyse(b, START + dt.timedelta(seconds=1))
    assert gate.should_analyse(same, START + dt.timedelta(seconds=5))  # max_skip_s
    assert gate.should_analyse(same[:, :-1].copy(), START + dt.timedelta(seconds=1))  # new frame size
    assert SceneChangeGate(threshold=0.001, max_skip_s=5, enabled=False).should_analyse(same, START)


# --- the fps grid ---------------------------------------------------------------------------------------


def test_rate_sampler_keeps_its_grid_through_jitter_gaps_and_resets() -> None:
    rate = RateSampler(1.0)
    jittery = [k * 0.08 + (0.002 if k % 3 else -0.002) for k in range(40)]
    taken = [t for t in jittery if rate.take(t)]
    assert [round(t) for t in taken] == [0, 1, 2, 3]
    assert rate.take(10.0)  # a gap: take the first frame after it...
    assert not rate.take(10.5) and rate.take(11.0)  # ...and continue one second apart
    assert rate.take(0.0)  # time went back (a new connection): start again
    assert not rate.take(0.5)


# --- the keyframe state machine -------------------------------------------------------------------------


def feed(
    selector: FrameSelector, packets: list[tuple[float, bool]], behind: bool = False
) -> list[PacketAction]:
    return [selector.on_packet(t, key, behind=behind) for t, key in packets]


def gop(start: float, seconds: float, fps: float = 10) -> list[tuple[float, bool]]:
    count = round(seconds * fps)
    return [(start + i / fps, i == 0) for i in range(count)]


def test_short_gop_switches_to_keyframes_only_at_the_second_keyframe() -> None:
    selector = FrameSelector(KeyframeSampling(mode="keyframes", max_interval_s=10))
    assert feed(selector, [(0.0, False)]) == [SKIP]  # decoding starts at a keyframe
    first = feed(selector, gop(0.1, 2))  # the first keyframe is a sample; the rest of its GOP is held
    assert first == [ALONE] + [HOLD] * 19 and selector.phase == "probing" and selector.holding
    assert selector.take(0.1, True)
    second = feed(selector, gop(2.1, 2))  # the GOP is short: what was held is dropped undecoded
    assert second == [ALONE] + [SKIP] * 19 and selector.phase == "keyframes" and not selector.holding
    selector.restart()  # a reconnect: wait for a keyframe, which decodes alone at once
    assert feed(selector, [(50.0, False), (50.1, True), (50.2, False)]) == [SKIP, ALONE, SKIP]


def test_long_gop_falls_back_to_fps_at_max_interval() -> None:
    selector = FrameSelector(KeyframeSampling(mode="keyframes", max_interval_s=10, fallback_fps=1))
    actions = feed(selector, gop(0.0, 25))
    # Held until the GOP outgrows max_interval_s, then the held packets are decoded and so is the rest.
    assert actions == [ALONE] + [HOLD] * 100 + [HELD] + [DECODE] * 148
    assert selector.phase == "fallback" and not selector.holding
    taken = [t for t, _ in gop(0.0, 25) if selector.take(t, False)]
    assert taken == pytest.approx([float(k) for k in range(1, 25)])  # 0.0: the keyframe, taken when probing
    feed(selector, gop(25.0, 5) + gop(30.0, 5))  # the GOP shrinks to 5 s: keyframes only again
    assert selector.phase == "keyframes"


def test_probing_keyframes_too_far_apart_decode_the_held_gop_then_go_on() -> None:
    selector = FrameSelector(KeyframeSampling(mode="keyframes", max_interval_s=1, fallback_fps=1))
    assert feed(selector, [(0.0, True), (0.5, False)]) == [ALONE, HOLD]
    assert feed(selector, [(3.0, True)]) == [HELD] and selector.phase == "fallback"  # a gap in the stream
    assert not selector.take(0.0, True) and selector.take(1.0, False)  # the probe's keyframe: not twice


def test_probing_behind_drops_the_held_gop_and_waits_for_a_keyframe() -> None:
    selector = FrameSelector(KeyframeSampling(mode="keyframes", max_interval_s=10))
    assert feed(selector, [(0.0, True), (0.1, False)]) == [ALONE, HOLD]
    assert feed(selector, [(0.2, False)], behind=True) == [SKIP] and not selector.holding
    assert feed(selector, [(0.3, False), (2.0, True)]) == [SKIP, ALONE] and selector.phase == "keyframes"


def test_intra_only_streams_are_sampled_before_decoding() -> None:
    selector = FrameSelector(KeyframeSampling(mode="keyframes", fallback_fps=2), intra_only=True)
    actions = feed(selector, [(k * 0.1, True) for k in range(20)])
    assert [k * 0.1 for k, a in enumerate(actions) if a is ALONE] == pytest.approx([0.0, 0.5, 1.0, 1.5])
    assert set(actions) == {ALONE, SKIP}
    assert selector.take(0.0, True)  # chosen before decoding


def test_behind_skips_to_the_next_keyframe() -> None:
    selector = FrameSelector(FpsSampling(mode="fps", fps=1))
    assert feed(selector, gop(0.0, 1)) == [AFRESH] + [DECODE] * 9
    assert feed(selector, gop(1.0, 1), behind=True) == [DECODE] + [SKIP] * 9
    assert feed(selector, gop(2.0, 1)) == [AFRESH] + [DECODE] * 9  # drop frames held from before the skip
    # Caught up in the middle of a GOP: the skipped frames are references, so wait for the next keyframe.
    assert feed(selector, gop(3.0, 0.5), behind=True) == [DECODE] + [SKIP] * 4
    assert feed(selector, [(3.5 + k / 10, False) for k in range(5)]) == [SKIP] * 5
    assert feed(selector, gop(4.0, 0.2)) == [AFRESH, DECODE]


# --- the stream clock -----------------------------------------------------------------------------------


def test_file_clock_is_start_plus_media_offset() -> None:
    clock = StreamClock(
        live=False, start=dt.datetime(2024, 5, 1, 16, 0, tzinfo=dt.timezone(dt.timedelta(hours=8)))
    )
    now = dt.datetime(2030, 1, 1, tzinfo=UTC)  # irrelevant for files
    assert clock.to_utc(3.0, now) == START
    assert clock.to_utc(4.5, now) == START + dt.timedelta(seconds=1.5)
    assert clock.to_utc(4.5, now) == START + dt.timedelta(seconds=1.5, microseconds=1)  # strictly increasing
    with pytest.raises(ValueError, match="no time zone"):
        StreamClock(live=False, start=dt.datetime(2024, 5, 1))


def test_live_clock_survives_pts_resets_and_jumps() -> None:
    clock = StreamClock(live=True)
    wall = START
    assert clock.to_utc(1000.0, wall) == wall  # anchored at the wall clock of the first frame
    wall += dt.timedelta(seconds=1)
    assert clock.to_utc(1001.0, wall) == START + dt.timedelta(seconds=1)
    wall += dt.timedelta(seconds=1)
    reset = clock.to_utc(0.0, wall)  # the camera restarted its timestamps
    assert reset == START + dt.timedelta(seconds=2) and clock.reanchors == 1
    wall += dt.timedelta(seconds=1)
    jump = clock.to_utc(3600.0, wall)  # a jump an hour ahead (a wrap, a camera clock set)
    assert jump == START + dt.timedelta(seconds=3) and clock.reanchors == 2
    wall += dt.timedelta(seconds=0.5)
    assert clock.to_utc(3600.5, wall) == START + dt.timedelta(seconds=3.5)


def test_live_clock_reanchors_when_it_drifts_from_the_wall_clock() -> None:
    clock = StreamClock(live=True)
    clock.to_utc(0.0, START)
    walls = [START + dt.timedelta(seconds=1.4 * k) for k in range(1, 101)]  # a camera clock 40 % slow
    steps = [clock.to_utc(float(k), wall) for k, wall in zip(range(1, 101), walls, strict=True)]
    assert clock.reanchors == 1
    first = next(k for k, (step, wall) in enumerate(zip(steps, walls, strict=True)) if step == wall)
    assert (walls[first] - START).total_seconds() > CLOCK_MAX_DRIFT_S  # re-anchored once past the limit
    assert all(abs((s - w).total_seconds()) <= CLOCK_MAX_DRIFT_S for s, w in zip(steps, walls, strict=True))
    assert all(b > a for a, b in itertools.pairwise(steps))


def test_lag_meter_measures_a_backlog_and_forgives_clock_drift() -> None:
    meter = LagMeter()
    assert meter.update(0.0, 100.0) == 0.0
    assert meter.update(1.0, 101.0) == pytest.approx(0.0)
    assert meter.update(2.0, 105.0) == pytest.approx(3.0, abs=0.01)  # read 3 s late
    assert meter.update(3.0, 105.1) == pytest.approx(2.1, abs=0.01)  # catching up
    assert meter.update(5000.0, 105.2) == 0.0  # timestamps jumped: new baseline
    slow = LagMeter()
    lags = [slow.update(k * (1 - 5e-4), float(k)) for k in range(0, 3600, 10)]  # a camera 500 ppm slow
    assert max(lags) < 0.05


def test_thumbnail_size_keeps_the_aspect() -> None:
    assert thumbnail_size(1920, 1080) == (160, 90)
    assert thumbnail_size(768, 576) == (160, 120)
    assert thumbnail_size(100, 50) == (100, 50)
