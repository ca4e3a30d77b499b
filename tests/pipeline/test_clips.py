"""The packet ring and the clip cutter (pipeline.clips) on real footage, without the daemon: bounded by
seconds and bytes, always from a keyframe; the window around first sight and confirmation, capped; an
MP4 remuxed from the camera's own packets; a codec MP4 cannot hold gets no clip, said once."""

from __future__ import annotations

import datetime as dt
import logging
from pathlib import Path
from typing import Any

import av
import pytest

from pipeline.clips import ClipRecorder, PacketRing, clip_window, remux, timestamps
from pipeline.config import CameraConfig, ClipsConfig
from pipeline.sources import CameraSource, iter_samples

START = dt.datetime(2026, 3, 2, 8, 0, tzinfo=dt.UTC)


def camera(url: Path, **clips: Any) -> CameraConfig:
    return CameraConfig.model_validate(
        {
            "id": "lot",
            "url": str(url),
            "sample": {"mode": "fps", "fps": 2},
            "start_time": START.isoformat(),
            "zones": [
                {
                    "id": "z",
                    "place": "110101001001003",
                    "polygon": [[0, 0], [1, 0], [1, 1]],
                    "rules": {"illegal_parking": {"dwell_s": 5}},
                }
            ],
            "clips": {"enabled": True, **clips},
        }
    )


def read_all(config: CameraConfig) -> CameraSource:
    source = CameraSource(config)
    source.start()
    for _ in iter_samples(source, timeout=30):
        pass
    source.stop()
    return source


def at(seconds: float) -> dt.datetime:
    return START + dt.timedelta(seconds=seconds)


def test_clips_are_off_unless_a_camera_turns_them_on(car_video: Path) -> None:
    config = camera(car_video).model_copy(update={"clips": ClipsConfig()})
    assert config.clips.enabled is False and CameraSource(config).packets is None


def test_the_ring_keeps_the_newest_seconds_from_a_keyframe(car_video: Path) -> None:
    # car-detection.mp4: 30 s at 12.5 fps. max_s 5 + the 10 s margin: the last ~15 s stay.
    ring = read_all(camera(car_video, max_s=5)).packets
    assert ring is not None and ring.finished
    newest = ring.newest_at()
    assert newest is not None and abs((newest - at(30)).total_seconds()) < 0.2
    cut = ring.cut(at(0), at(31))
    assert cut is not None and cut.packets[0].keyframe
    assert 15.0 - 5.0 <= (cut.end - cut.start).total_seconds() <= 15.1  # a keyframe every 4.8 s
    assert ring.buffered_bytes == sum(len(p.data) for p in cut.packets)


def test_the_ring_keeps_within_its_memory(car_video: Path) -> None:
    ring = read_all(camera(car_video, buffer_mb=0.5)).packets
    assert ring is not None and 0 < ring.buffered_bytes <= 0.5 * 1024 * 1024
    cut = ring.cut(at(0), at(31))
    assert cut is not None and cut.packets[0].keyframe


def test_a_clip_is_the_window_from_the_keyframe_before_and_decodes(car_video: Path, tmp_path: Path) -> None:
    ring = read_all(camera(car_video)).packets
    assert ring is not None
    cut = ring.cut(at(10.0), at(20.0))
    assert cut is not None and cut.packets[0].keyframe
    assert at(10.0) - dt.timedelta(seconds=5) < cut.start <= at(10.0)  # the keyframe at or before
    assert at(19.9) <= cut.end <= at(20.0)
    path = remux(cut, tmp_path)
    assert path.suffix == ".mp4" and path.parent.parent == tmp_path
    with av.open(str(path)) as container:
        stream = container.streams.video[0]
        assert stream.codec_context.name == "h264"
        assert sum(1 for _ in container.decode(stream)) == len(cut.packets)
    assert remux(cut, tmp_path) == path  # named by content: the same clip is one file


def test_the_window_is_capped_keeping_the_confirmation() -> None:
    config = ClipsConfig(enabled=True, pre_s=5, post_s=5, max_s=20)
    assert clip_window(at(100), at(108), config) == (at(95), at(113))
    assert clip_window(at(100), at(200), config) == (at(185), at(205))


def test_missing_timestamps_come_from_the_neighbours() -> None:
    from pipeline.clips import BufferedPacket

    def packet(pts: int | None) -> BufferedPacket:
        return BufferedPacket(b"", pts, pts, 9000, pts is None, 0.0)

    # The first packet of an RTSP connection has no timestamp; a repeated one must still increase.
    assert timestamps([packet(None), packet(8580), packet(18000), packet(18000)]) == [
        (-420, -420),
        (8580, 8580),
        (18000, 18000),
        (18001, 18001),
    ]


def test_a_codec_mp4_cannot_hold_gets_no_clip_and_says_why(
    vtest_path: Path, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    # vtest.avi is MS-MPEG4v3: remuxing it into MP4 is impossible without re-encoding.
    config = camera(vtest_path)
    caplog.set_level(logging.WARNING, "pipeline.clips")
    source = CameraSource(config)
    source.start()
    next(iter_samples(source, timeout=30))
    source.stop()
    ring = source.packets
    assert ring is not None and ring.unsupported is not None and "MP4" in ring.unsupported
    queued: list[tuple[str, Path]] = []
    recorder = ClipRecorder([config], {"lot": ring}, tmp_path, lambda key, path: queued.append((key, path)))
    recorder.request("incident-1", "lot", at(1), at(2))
    recorder.poll(final=True)
    assert queued == [] and "no evidence clip" in caplog.text


def test_the_recorder_waits_for_the_window_end(car_video: Path, tmp_path: Path) -> None:
    config = camera(car_video, pre_s=2, post_s=3)
    ring = PacketRing("lot", config.clips)
    queued: list[tuple[str, Path]] = []
    recorder = ClipRecorder([config], {"lot": ring}, tmp_path, lambda key, path: queued.append((key, path)))
    recorder.request("incident-1", "lot", at(5), at(9))
    recorder.poll()
    assert queued == [] and len(recorder.pending) == 1  # nothing buffered up to 12 s yet
    source = read_all(config)  # a source whose ring holds the whole file (and has ended)
    assert source.packets is not None
    recorder.rings["lot"] = source.packets
    recorder.poll()
    assert [key for key, _ in queued] == ["incident-1"] and recorder.pending == []
    with av.open(str(queued[0][1])) as container:
        assert container.duration is not None
        assert 9.0 <= container.duration / av.time_base <= 9.0 + 5.0  # 3 s to 12 s, from a keyframe


def test_clip_settings_are_checked(car_video: Path) -> None:
    from pydantic import ValidationError

    with pytest.raises(ValidationError, match="pre_s"):
        camera(car_video, pre_s=-1)
    with pytest.raises(ValidationError, match="Extra inputs"):
        camera(car_video, blur=True)  # a clip cannot be blurred: there is no such setting
