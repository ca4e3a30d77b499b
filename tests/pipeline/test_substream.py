"""Two streams per camera: detect on the substream, decode the main stream's keyframe only when asked.

Real footage (car-detection.mp4) served twice at two resolutions: as two files, and as two mount points of
the tests' GStreamer RTSP server.
"""

from __future__ import annotations

import datetime as dt
import os
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import av
import cv2
import numpy as np
import numpy.typing as npt
import pytest
from pydantic import ValidationError

from detector.detections import Detections
from pipeline.config import CameraConfig
from pipeline.sources import CameraSource, SampledFrame, iter_samples
from pipeline.substream import full_view, scale_detections, scaled_event
from tests.pipeline.rtsp_server import RtspServer, encode_clip, server_available

UTC = dt.UTC
ZONES = [
    {
        "id": "z",
        "place": "p",
        "polygon": [[0, 0], [1, 0], [1, 1]],
        "rules": {"illegal_parking": {"dwell_s": 30}},
    }
]
MAIN_HW, SUB_HW = (432, 768), (216, 384)


def camera(**fields: Any) -> CameraConfig:
    values: dict[str, Any] = {"id": "cam", "zones": ZONES, "skip_unchanged": False}
    values.update(fields)
    return CameraConfig.model_validate(values)


def encode(source: Path, target: Path, width: int, height: int, *, frames: int, gop: int) -> Path:
    with av.open(str(source)) as src, av.open(str(target), "w") as out:
        stream = out.add_stream("libx264", rate=src.streams.video[0].average_rate)
        stream.width, stream.height, stream.pix_fmt = width, height, "yuv420p"
        stream.options = {
            "preset": "ultrafast",
            "g": str(gop),
            "x264-params": f"keyint={gop}:min-keyint={gop}:scenecut=0",
        }
        for index, frame in enumerate(src.decode(video=0)):
            if index == frames:
                break
            picture = frame.reformat(width=width, height=height, format="yuv420p")
            picture.pict_type = av.video.frame.PictureType.NONE  # the source's I-frames: not forced here
            for packet in stream.encode(picture):
                out.mux(packet)
        for packet in stream.encode():
            out.mux(packet)
    return target


@pytest.fixture(scope="module")
def two_files(tmp_path_factory: pytest.TempPathFactory, car_video: Path) -> tuple[Path, Path]:
    """The first 8 s of car-detection.mp4 (12.5 fps, a keyframe every 2 s) as main stream and substream."""
    folder = tmp_path_factory.mktemp("substream")
    main = encode(car_video, folder / "main.mp4", MAIN_HW[1], MAIN_HW[0], frames=100, gop=25)
    sub = encode(car_video, folder / "sub.mp4", SUB_HW[1], SUB_HW[0], frames=100, gop=25)
    return main, sub


def difference(full: npt.NDArray[np.uint8], sub: npt.NDArray[np.uint8]) -> float:
    """Mean absolute gray difference of ``full`` scaled down to ``sub``."""
    small = cv2.resize(full, (sub.shape[1], sub.shape[0]), interpolation=cv2.INTER_AREA)
    return float(
        np.mean(cv2.absdiff(cv2.cvtColor(small, cv2.COLOR_BGR2GRAY), cv2.cvtColor(sub, cv2.COLOR_BGR2GRAY)))
    )


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


def test_detect_url_is_validated() -> None:
    with pytest.raises(ValidationError, match="same as url"):
        camera(url="rtsp://cam/main", detect_url="rtsp://cam/main")
    with pytest.raises(ValidationError, match="both be files or both be streams"):
        camera(url="rtsp://cam/main", detect_url="/data/sub.mp4")
    with pytest.raises(ValidationError, match="unsupported URL scheme"):
        camera(url="rtsp://cam/main", detect_url="ftp://cam/sub")
    assert camera(url="rtsp://cam/main").detect_url is None


def test_samples_come_from_the_substream_and_the_main_keyframe_decodes_on_demand(
    two_files: tuple[Path, Path], started: Callable[[CameraSource], CameraSource]
) -> None:
    main, sub = two_files
    config = camera(
        url=str(main),
        detect_url=str(sub),
        sample={"mode": "keyframes"},
        start_time=dt.datetime(2024, 5, 1, tzinfo=UTC),
    )
    source = started(CameraSource(config, input_hw=(640, 640)))
    frames: list[SampledFrame] = []
    fulls: list[npt.NDArray[np.uint8] | None] = []
    for frame in iter_samples(source, timeout=30):
        frames.append(frame)
        fulls.append(frame.full() if frame.full is not None and len(frames) % 2 else None)
    assert len(frames) == 4  # keyframes at 0, 2, 4, 6 s of the substream
    assert all(f.image.shape[:2] == SUB_HW and f.small is not None for f in frames)
    assert source.main is not None
    assert source.main.decodes == 2  # decoded only when asked (two of four samples), never per sample
    for frame, full in zip(frames, fulls, strict=True):
        if full is None:
            continue
        assert full.shape[:2] == MAIN_HW
        assert difference(full, frame.image) < 6  # the same moment of the same view, at full resolution
    for index, full in enumerate(fulls):  # the keyframe of the sample's own moment, not another one
        if full is not None:
            nearest = min(range(len(frames)), key=lambda k: difference(full, frames[k].image))
            assert nearest == index
    assert source.health.state == "ended"


def test_a_live_sample_keeps_the_main_keyframe_of_its_own_moment(
    two_files: tuple[Path, Path], started: Callable[[CameraSource], CameraSource]
) -> None:
    """Evidence may be written seconds after its sample (the events thread yields to detection): a live
    camera's sample still decodes the main keyframe it was taken with, not the one the stream holds later."""
    main, sub = two_files
    config = camera(url=str(main), detect_url=str(sub), sample={"mode": "keyframes"}, realtime=True)
    source = started(CameraSource(config))
    frames: list[SampledFrame] = []
    deadline = time.monotonic() + 9.0
    while time.monotonic() < deadline and len(frames) < 4:
        frame = source.next_frame(0.5)
        if frame is not None:
            frames.append(frame)  # full() not called yet: the main stream moves on meanwhile
    assert len(frames) == 4 and source.main is not None and source.main.keyframes >= 4  # 0, 2, 4, 6 s
    # now, all at once (the first sample may come before the main stream's first keyframe: skipped)
    fulls = [frame.full() if frame.full is not None else None for frame in frames[1:]]
    assert all(full is not None and full.shape[:2] == MAIN_HW for full in fulls)
    nearest = []
    for full in fulls:
        assert full is not None
        nearest.append(min(range(len(frames)), key=lambda k: difference(full, frames[k].image)))
    # each sample's own keyframe (or, where the main stream's reader was a moment behind the substream's,
    # the one before it), though later ones had arrived: never the stream's newest for all of them
    assert all(index - 1 <= near <= index for index, near in enumerate(nearest, start=1)), nearest
    assert nearest[0] < len(frames) - 1 and len(set(nearest)) >= 2
    # what a queued event holds: the compressed keyframe beside the substream's own picture
    sample = frames[-1]
    assert sample.full_bytes > 1000
    picture = SUB_HW[0] * SUB_HW[1] * 3 // 2  # the decoded 4:2:0 picture, not converted yet
    assert picture + sample.full_bytes <= sample.nbytes < picture + sample.full_bytes + 200_000


def test_boxes_and_zone_move_to_the_main_keyframe_by_resolution(
    two_files: tuple[Path, Path], started: Callable[[CameraSource], CameraSource]
) -> None:
    main, sub = two_files
    source = started(CameraSource(camera(url=str(main), detect_url=str(sub), sample={"mode": "keyframes"})))
    frame = next(iter_samples(source, timeout=30))
    box = Detections(
        xyxy=np.array([[100, 50, 200, 150]], np.float32),
        confidence=np.array([0.9], np.float32),
        class_id=np.array([2], np.int64),
    )
    view = full_view(frame.image, frame.full, box, np.array([[10, 10, 20, 40]], np.float32))
    assert view.scaled and view.image.shape[:2] == MAIN_HW
    np.testing.assert_allclose(view.detections.xyxy, [[200, 100, 400, 300]])
    assert view.persons_xyxy is not None
    np.testing.assert_allclose(view.persons_xyxy, [[20, 20, 40, 80]])

    class Event:
        kind, camera_id, zone_id, violation_type = "confirmed", "cam", "z", "illegal_parking"
        at = dt.datetime(2024, 5, 1, tzinfo=UTC)
        boxes = box
        polygon_px = np.array([[0, 0], [383, 0], [383, 215]], np.int32)
        zones_px = (polygon_px, np.array([[0, 100], [100, 100], [100, 200]], np.int32))

    moved = scaled_event(Event(), view)
    np.testing.assert_array_equal(moved.polygon_px, [[0, 0], [766, 0], [766, 430]])
    np.testing.assert_array_equal(moved.zones_px[1], [[0, 200], [200, 200], [200, 400]])
    np.testing.assert_allclose(moved.boxes.xyxy, view.detections.xyxy)
    one_stream = full_view(frame.image, None, box, None)
    assert not one_stream.scaled and one_stream.image is frame.image and one_stream.detections is box
    assert scale_detections(box, SUB_HW, SUB_HW) is box


def test_one_stream_camera_has_no_main_stream(
    two_files: tuple[Path, Path], started: Callable[[CameraSource], CameraSource]
) -> None:
    source = started(CameraSource(camera(url=str(two_files[0]), sample={"mode": "keyframes"})))
    frame = next(iter_samples(source, timeout=30))
    assert source.main is None and frame.full is None and frame.image.shape[:2] == MAIN_HW


@pytest.fixture(scope="module")
def rtsp(tmp_path_factory: pytest.TempPathFactory, car_video: Path) -> Iterator[RtspServer]:
    why = server_available()
    if why is not None:
        if os.environ.get("CI"):
            pytest.fail(why)
        pytest.skip(why)
    folder = tmp_path_factory.mktemp("rtsp-two")
    main = encode_clip(car_video, folder / "main.h264", gop=12, max_seconds=12)
    sub = encode_clip(car_video, folder / "sub.h264", gop=12, max_seconds=12, width=SUB_HW[1])
    with RtspServer({"main": main, "sub": sub}) as server:
        yield server


def test_rtsp_camera_with_main_stream_and_substream(
    rtsp: RtspServer, started: Callable[[CameraSource], CameraSource]
) -> None:
    config = camera(
        url=rtsp.url("main"), detect_url=rtsp.url("sub"), sample={"mode": "keyframes"}, timeout_s=2.0
    )
    source = started(CameraSource(config))
    received: list[tuple[SampledFrame, npt.NDArray[np.uint8] | None]] = []
    deadline = time.monotonic() + 3.5
    while time.monotonic() < deadline:
        frame = source.next_frame(0.5)
        if frame is not None and frame.full is not None:
            received.append((frame, frame.full()))
    assert len(received) >= 3
    assert all(frame.image.shape[:2] == SUB_HW for frame, _ in received)
    fulls = [full for _, full in received[1:] if full is not None]
    assert fulls and all(full.shape[:2] == MAIN_HW for full in fulls)
    # live: the main stream's newest keyframe is at most one GOP (0.96 s) from the sample
    assert min(difference(full, frame.image) for frame, full in received[1:] if full is not None) < 12
    assert source.main is not None and source.main.keyframes >= 3
    assert source.main.decodes <= len(received)


def test_validate_config_names_a_missing_substream_file(two_files: tuple[Path, Path], tmp_path: Path) -> None:
    from pipeline.config import DaemonConfig
    from pipeline.preflight import camera_file_problems

    config = DaemonConfig.model_validate(
        {
            "detector": {"model": str(tmp_path / "m.onnx"), "classes": {"car": "illegal_parking"}},
            "store": {"url": "http://127.0.0.1:9", "device_key_file": str(tmp_path / "key")},
            "cameras": [
                {
                    "id": "cam",
                    "url": str(two_files[0]),
                    "detect_url": str(tmp_path / "nope.mp4"),
                    "zones": ZONES,
                }
            ],
        }
    )
    problems = camera_file_problems(tmp_path / "c.yaml", config)
    assert len(problems) == 1 and "cameras.0.detect_url" in problems[0] and "nope.mp4" in problems[0]


def test_a_looping_file_keeps_the_main_keyframe_in_step(
    two_files: tuple[Path, Path], started: Callable[[CameraSource], CameraSource]
) -> None:
    """Offline analysis of a looping recording: the main stream continues its time line like the
    substream, so every pass finds the keyframe of the sample's moment, without waiting."""
    main, sub = two_files
    config = camera(url=str(main), detect_url=str(sub), sample={"mode": "keyframes"}, loop=True)
    source = started(CameraSource(config))
    checked = 0
    for _ in range(12):  # three passes of the 8 s clip, a keyframe every 2 s
        frame = source.next_frame(30)
        assert frame is not None and frame.full is not None
        asked = time.monotonic()
        full = frame.full()
        assert time.monotonic() - asked < 2.0  # never the reader's timeout
        assert full is not None and full.shape[:2] == MAIN_HW
        assert difference(full, frame.image) < 6
        checked += 1
    assert checked == 12 and source.health.loops >= 2
