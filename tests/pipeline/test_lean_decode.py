"""Lean decoding in the camera thread, on real footage (car-detection.mp4): the full-resolution picture is
converted only when someone looks at it, and an overloaded live camera skips keyframes undecoded."""

from __future__ import annotations

import datetime as dt
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import av
import numpy as np
import pytest

from pipeline.config import CameraConfig
from pipeline.sources import CameraSource, iter_samples
from tests.conftest import read_frames

UTC = dt.UTC
ZONES = [
    {
        "id": "z",
        "place": "p",
        "polygon": [[0, 0], [1, 0], [1, 1]],
        "rules": {"illegal_parking": {"dwell_s": 30}},
    }
]


def camera(url: Path, **fields: Any) -> CameraConfig:
    values: dict[str, Any] = {"id": "cam", "url": str(url), "zones": ZONES, "skip_unchanged": False}
    values.update(fields)
    return CameraConfig.model_validate(values)


@pytest.fixture(scope="module")
def gop_clip(tmp_path_factory: pytest.TempPathFactory, car_video: Path) -> Path:
    """The first 4 s of car-detection.mp4 with a keyframe every 5 frames (0.4 s)."""
    path = tmp_path_factory.mktemp("lean") / "gop5.mp4"
    with av.open(str(car_video)) as source, av.open(str(path), "w") as out:
        stream = out.add_stream("libx264", rate=source.streams.video[0].average_rate)
        stream.width, stream.height, stream.pix_fmt = 768, 432, "yuv420p"
        stream.options = {"preset": "ultrafast", "x264-params": "keyint=5:min-keyint=5:scenecut=0"}
        for index, frame in enumerate(source.decode(video=0)):
            if index == 50:
                break
            picture = frame.reformat(format="yuv420p")
            picture.pict_type = av.video.frame.PictureType.NONE
            for packet in stream.encode(picture):
                out.mux(packet)
        for packet in stream.encode():
            out.mux(packet)
    return path


@pytest.fixture
def started() -> Iterator[Callable[[CameraSource], CameraSource]]:
    sources: list[CameraSource] = []

    def start(source: CameraSource) -> CameraSource:
        sources.append(source)
        source.start()
        return source

    yield start
    for source in sources:
        source.stop(1.0)


def test_full_picture_is_converted_only_when_looked_at_and_matches_the_decoder(
    car_video: Path, started: Callable[[CameraSource], CameraSource]
) -> None:
    source = started(CameraSource(camera(car_video, sample={"mode": "fps", "fps": 2.5}), input_hw=(640, 640)))
    frames = list(iter_samples(source, timeout=30))
    assert len(frames) == 76  # 30.16 s at 2.5 fps
    assert all(f.hw == (432, 768) and f.small is not None and f.small.shape == (360, 640, 3) for f in frames)
    assert all(f._image is None for f in frames)  # nobody looked: nothing converted
    expected = read_frames(car_video, [0, 5, 375])
    for index, frame in zip([0, 5, 375], [frames[0], frames[1], frames[75]], strict=True):
        image = frame.image
        assert image.shape == (432, 768, 3) and image.dtype == np.uint8
        assert frame.image is image  # converted once, then kept
        assert float(np.mean(np.abs(image.astype(np.int16) - expected[index].astype(np.int16)))) < 1.0


class CountingSource(CameraSource):
    """A camera source that counts the packets it gives the decoder."""

    decoded_packets = 0

    def _decode(self, ctx: Any, packet: Any, action: Any) -> list[Any]:
        if packet is not None:
            self.decoded_packets += 1
        return super()._decode(ctx, packet, action)


def test_a_short_gop_is_learnt_without_decoding_the_frames_between_its_keyframes(
    gop_clip: Path, started: Callable[[CameraSource], CameraSource]
) -> None:
    """The start-up GOP probe holds the packets after the first keyframe and drops them when the next
    keyframe comes in time: 10 keyframes in 50 frames, 10 packets decoded, 10 samples."""
    source = CountingSource(camera(gop_clip, sample={"mode": "keyframes"}))
    frames = list(iter_samples(started(source), timeout=30))
    assert [f.keyframe for f in frames] == [True] * 10
    assert source.decoded_packets == 10 and source.health.frames_in == 50
    assert source.health.sampling == "keyframes" and source.health.decode_errors == 0


def test_a_long_gop_probe_decodes_what_it_held_and_samples_like_fps_mode(
    gop_clip: Path, started: Callable[[CameraSource], CameraSource]
) -> None:
    """Keyframes 0.4 s apart against a 0.2 s limit: the probe's held packets are decoded in sequence, and the
    samples (times and pictures) are exactly those of fps mode at the fallback rate."""
    fallback = {"mode": "keyframes", "max_interval_s": 0.2, "fallback_fps": 5}
    probed = list(iter_samples(started(CameraSource(camera(gop_clip, sample=fallback))), timeout=30))
    plain = list(iter_samples(started(CameraSource(camera(gop_clip, sample={"mode": "fps", "fps": 5}))), 30))
    assert len(probed) == len(plain) == 20  # 50 frames at 12.5 fps, one per 0.2 s
    assert [f.stream_time - probed[0].stream_time for f in probed] == [
        f.stream_time - plain[0].stream_time for f in plain
    ]
    assert all(np.array_equal(a.image, b.image) for a, b in zip(probed, plain, strict=True))


def test_overloaded_live_camera_skips_keyframes_before_decoding(
    gop_clip: Path, started: Callable[[CameraSource], CameraSource]
) -> None:
    """While the consumer still holds an unanalysed sample (``busy``), keyframes are not decoded at all;
    once it is free and takes what comes, every keyframe is decoded and handed over again."""
    waiting = {"busy": False}
    config = camera(gop_clip, sample={"mode": "keyframes"}, realtime=True, loop=True)
    source = started(CameraSource(config, busy=lambda: waiting["busy"]))
    first = source.next_frame(5.0)
    assert first is not None
    deadline = time.monotonic() + 3.0
    while source.health.sampling != "keyframes" and time.monotonic() < deadline:
        source.next_frame(0.5)  # the GOP probe: the first keyframe, then the second decides
    assert source.health.sampling == "keyframes"
    waiting["busy"] = True
    sampled = source.health.sampled
    time.sleep(2.0)  # five keyframes due
    health = source.health
    assert health.skipped_busy >= 4
    assert health.sampled <= sampled + 1  # none decoded (one may have been in flight)
    waiting["busy"] = False
    seen = -1
    deadline = time.monotonic() + 1.5
    while time.monotonic() < deadline:  # a consumer that keeps up: every keyframe is decoded again
        frame = source.latest(seen)
        if frame is not None:
            seen = frame.seq
        time.sleep(0.05)
    after = source.health
    assert after.sampled >= health.sampled + 3 and after.skipped_busy <= health.skipped_busy + 1
    assert after.decode_errors == 0  # keyframes decode on their own: skipping them breaks nothing


def test_a_file_that_is_not_paced_never_skips_for_a_busy_consumer(
    gop_clip: Path, started: Callable[[CameraSource], CameraSource]
) -> None:
    source = started(CameraSource(camera(gop_clip, sample={"mode": "keyframes"}), busy=lambda: True))
    frames = list(iter_samples(source, timeout=30))
    assert len(frames) == 10 and source.health.skipped_busy == 0  # every keyframe: files are never dropped


def test_health_keeps_packet_times_without_per_packet_locks(
    gop_clip: Path, started: Callable[[CameraSource], CameraSource]
) -> None:
    source = started(CameraSource(camera(gop_clip, sample={"mode": "keyframes"}, realtime=True, loop=True)))
    time.sleep(1.5)
    health = source.health
    assert health.state == "up" and health.frames_in >= 15
    assert health.last_frame_at is not None
    assert abs((dt.datetime.now(UTC) - health.last_frame_at).total_seconds()) < 0.3
    assert health.fps == pytest.approx(12.5, abs=2.0)


@pytest.mark.parametrize("drop_before_decode", [True, False])
def test_daemon_with_a_slow_detector_drops_before_decoding(
    gop_clip: Path, tmp_path: Path, drop_before_decode: bool
) -> None:
    """The real source and scheduler wired by the daemon: while a camera's frame waits for a detector that
    takes 1 s per call, its keyframes (every 0.4 s) are skipped undecoded, and counted as behind."""
    from pipeline.daemon import Daemon
    from tests.pipeline.test_daemon import FakeDetector, camera, make_config

    config = make_config(
        tmp_path,
        [camera("cam", url=str(gop_clip), realtime=True, loop=True, sample={"mode": "keyframes"})],
        scheduler={"drain_timeout_s": 0.5, "drop_before_decode": drop_before_decode},
    )
    daemon = Daemon(config, detector=FakeDetector(delay_s=1.0))
    daemon.start()
    try:
        time.sleep(4.0)
        health = daemon.cameras[0].source.health
    finally:
        daemon.stop()
        daemon.shutdown()
    behind = daemon.metrics.value("streetwatch_frames_skipped_total", {"camera": "cam", "reason": "behind"})
    if drop_before_decode:
        assert health.skipped_busy >= 3 and behind is not None and behind >= 1
    else:
        assert health.skipped_busy == 0
