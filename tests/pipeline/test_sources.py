"""Camera sources against real things: real footage, a real RTSP server (GStreamer, killed and restarted),
an HTTP MJPEG stream and an HLS playlist from local HTTP servers, dead and silent servers, a missing device.

V4L2 capture cannot be exercised here (no camera device): only its open path is, up to the device error.
"""

from __future__ import annotations

import datetime as dt
import functools
import itertools
import os
import random
import socket
import threading
import time
from collections.abc import Callable, Iterator
from http.server import BaseHTTPRequestHandler, SimpleHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import av
import cv2
import numpy as np
import pytest

from common.backoff import Backoff
from pipeline.config import CameraConfig
from pipeline.errors import SourceError
from pipeline.sources import (
    CATCH_UP_LAG_S,
    CameraSource,
    SampledFrame,
    input_arguments,
    iter_samples,
    redact_url,
    source_kind,
)
from tests.conftest import read_frames
from tests.pipeline.rtsp_server import RtspServer, encode_clip, free_port, server_available

UTC = dt.UTC
ZONES = [
    {
        "id": "z",
        "place": "p",
        "polygon": [[0, 0], [1, 0], [1, 1]],
        "rules": {"illegal_parking": {"dwell_s": 30}},
    }
]
FAST_RETRY = {"reconnect_min_s": 0.1, "reconnect_max_s": 0.5, "timeout_s": 2.0}


def camera(url: Path | str, camera_id: str = "cam", **fields: Any) -> CameraConfig:
    values: dict[str, Any] = {"id": camera_id, "url": str(url), "zones": ZONES, "skip_unchanged": False}
    values.update(fields)
    return CameraConfig.model_validate(values)


def now() -> dt.datetime:
    return dt.datetime.now(UTC)


def wait_for(condition: Callable[[], bool], timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout} s waiting for {what}")
        time.sleep(0.02)


@pytest.fixture
def started() -> Iterator[Callable[[CameraSource], CameraSource]]:
    """Start sources and always stop them, whatever the test does."""
    sources: list[CameraSource] = []

    def start(source: CameraSource) -> CameraSource:
        sources.append(source)
        source.start()
        return source

    yield start
    for source in sources:
        source.stop(1.0)


# --- URLs, options, backoff ---------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("url", "kind"),
    [
        ("/data/videos/gate.mp4", "file"),
        ("file:///data/videos/gate.mp4", "file"),
        ("rtsp://10.0.0.5:554/stream1", "rtsp"),
        ("RTSPS://10.0.0.5/stream1", "rtsp"),
        ("http://10.0.0.5/mjpg/video.mjpg", "http"),
        ("https://cdn.example/live/index.m3u8", "http"),
        ("/dev/video0", "v4l2"),
        ("v4l2:///dev/video2", "v4l2"),
        ("srt://10.0.0.5:9000", "stream"),
    ],
)
def test_url_kinds(url: str, kind: str) -> None:
    assert source_kind(url) == kind


def test_credentials_never_reach_logs_or_health() -> None:
    assert redact_url("rtsp://admin:s3cret@10.0.0.5:554/s1") == "rtsp://***@10.0.0.5:554/s1"
    assert redact_url("http://10.0.0.5/video.mjpg") == "http://10.0.0.5/video.mjpg"
    source = CameraSource(camera("rtsp://admin:s3cret@10.0.0.5:554/s1"))
    assert "s3cret" not in source.url
    assert "s3cret" not in str(SourceError("cam", source.url, "cannot open"))


@pytest.mark.parametrize(
    ("fields", "expected"),
    [
        ({"url": "/v/gate.mp4"}, ("/v/gate.mp4", None, {})),
        ({"url": "file:///v/gate.mp4"}, ("/v/gate.mp4", None, {})),
        (
            {"url": "rtsp://h/s"},
            ("rtsp://h/s", None, {"rtsp_transport": "tcp", "probesize": "32", "analyzeduration": "0"}),
        ),
        (
            {"url": "rtsp://h/s", "rtsp_transport": "udp"},
            (
                "rtsp://h/s",
                None,
                {
                    "rtsp_transport": "udp",
                    "probesize": "32",
                    "analyzeduration": "0",
                    "buffer_size": "4194304",
                },
            ),
        ),
        (
            {"url": "https://h/live/index.m3u8"},
            ("https://h/live/index.m3u8", None, {"live_start_index": "-1"}),
        ),
        ({"url": "http://h/video.mjpg"}, ("http://h/video.mjpg", None, {})),
        (
            {"url": "/dev/video0", "ffmpeg_options": {"video_size": "1280x720", "input_format": "mjpeg"}},
            ("/dev/video0", "video4linux2", {"video_size": "1280x720", "input_format": "mjpeg"}),
        ),
        ({"url": "v4l2:///dev/video2"}, ("/dev/video2", "video4linux2", {})),
        (
            {"url": "rtsp://h/s", "ffmpeg_options": {"probesize": "5000000"}},  # the user's options win
            ("rtsp://h/s", None, {"rtsp_transport": "tcp", "probesize": "5000000", "analyzeduration": "0"}),
        ),
    ],
)
def test_ffmpeg_input_arguments(
    fields: dict[str, Any], expected: tuple[str, str | None, dict[str, str]]
) -> None:
    assert input_arguments(camera(**fields)) == expected


def test_backoff_doubles_with_jitter_up_to_the_cap() -> None:
    backoff = Backoff(0.5, 8.0, random.Random(1))
    delays = [backoff.next_delay() for _ in range(8)]
    ceilings = [0.5, 1, 2, 4, 8, 8, 8, 8]
    assert all(c / 2 <= d <= c for d, c in zip(delays, ceilings, strict=True))
    assert len({round(d, 6) for d in delays[4:]}) == 4  # jittered: cameras do not retry in lock-step
    backoff.reset()
    assert backoff.next_delay() <= 0.5


def test_backoff_order_is_validated() -> None:
    with pytest.raises(ValueError, match="reconnect_max_s"):
        camera("rtsp://h/s", reconnect_min_s=10, reconnect_max_s=1)


# --- files ---------------------------------------------------------------------------------------------


def test_file_hands_over_every_sample_in_order_through_a_bounded_queue(
    car_video: Path, started: Callable[[CameraSource], CameraSource]
) -> None:
    start = dt.datetime(2024, 5, 1, tzinfo=UTC)
    source = started(
        CameraSource(camera(car_video, sample={"mode": "fps", "fps": 12.5}, start_time=start), queue_size=2)
    )
    time.sleep(0.5)
    assert source.health.sampled <= 2 + 2  # the reader waits for the consumer: the queue is bounded
    assert source.latest() is not None  # latest() on such a source is next_frame(0): in order, nothing lost
    frames = list(iter_samples(source, timeout=30))
    assert len(frames) == 376  # with the one taken above: all 377 frames of the clip
    assert [f.seq for f in frames] == list(range(1, 377))
    steps = {round((b.stream_time - a.stream_time).total_seconds(), 3) for a, b in itertools.pairwise(frames)}
    assert steps == {0.08}
    health = source.health
    assert health.state == "ended" and source.ended and health.dropped == 0 and health.delivered == 377
    assert source.next_frame(0.1) is None


def test_realtime_file_keeps_stream_time_on_the_wall_clock(
    car_video: Path, started: Callable[[CameraSource], CameraSource]
) -> None:
    source = started(CameraSource(camera(car_video, sample={"mode": "fps", "fps": 5}, realtime=True)))
    received: list[tuple[dt.datetime, SampledFrame]] = []
    deadline = time.monotonic() + 3.0
    while time.monotonic() < deadline:
        frame = source.next_frame(1.0)
        if frame is not None:
            received.append((now(), frame))
    assert len(received) >= 13  # 5 per second for 3 s
    for at, frame in received:
        assert abs((at - frame.stream_time).total_seconds()) < 0.3
    span = (received[-1][1].stream_time - received[0][1].stream_time).total_seconds()
    wall = (received[-1][0] - received[0][0]).total_seconds()
    assert span == pytest.approx(wall, abs=0.3)
    assert source.health.state == "up" and source.health.lag_s < 0.5


@pytest.fixture(scope="module")
def short_clip(tmp_path_factory: pytest.TempPathFactory, car_video: Path) -> Path:
    """The first 2 s of car-detection.mp4 (25 frames at 12.5 fps), re-encoded with PyAV."""
    path = tmp_path_factory.mktemp("clips") / "two-seconds.mp4"
    with av.open(str(car_video)) as source, av.open(str(path), "w") as out:
        stream = out.add_stream("libx264", rate=source.streams.video[0].average_rate)
        stream.width, stream.height, stream.pix_fmt = 768, 432, "yuv420p"
        stream.options = {"preset": "ultrafast", "g": "5"}
        for index, frame in enumerate(source.decode(video=0)):
            if index == 25:
                break
            for packet in stream.encode(frame.reformat(format="yuv420p")):
                out.mux(packet)
        for packet in stream.encode():
            out.mux(packet)
    return path


def test_looping_file_continues_stream_time_across_passes(
    short_clip: Path, started: Callable[[CameraSource], CameraSource]
) -> None:
    start = dt.datetime(2024, 5, 1, tzinfo=UTC)
    source = started(
        CameraSource(camera(short_clip, sample={"mode": "fps", "fps": 5}, loop=True, start_time=start))
    )
    frames = [source.next_frame(10) for _ in range(31)]
    times = [round((f.stream_time - start).total_seconds(), 3) for f in frames if f is not None]
    assert times == pytest.approx([0.2 * k for k in range(31)], abs=0.041)  # three passes, no seam
    assert source.health.loops >= 2 and source.health.reconnects == 0


def test_slow_consumer_gets_the_freshest_frame_not_a_backlog(
    car_video: Path, started: Callable[[CameraSource], CameraSource]
) -> None:
    source = started(CameraSource(camera(car_video, sample={"mode": "fps", "fps": 12.5}, realtime=True)))
    wait_for(lambda: source.health.delivered == 0 and source.health.sampled > 0, 5, "a first sample")
    seen: list[SampledFrame] = []
    for _ in range(4):
        time.sleep(0.6)  # a consumer far slower than 12.5 fps
        frame = source.latest(seen[-1].seq if seen else -1)
        assert frame is not None
        assert (now() - frame.stream_time).total_seconds() < 0.25  # the newest frame, not an old one
        seen.append(frame)
    assert all(b.seq - a.seq >= 5 for a, b in itertools.pairwise(seen))
    health = source.health
    assert health.dropped >= 15 and health.delivered >= 4


def test_a_source_that_falls_behind_skips_to_keyframes_instead_of_a_backlog(
    car_video: Path, started: Callable[[CameraSource], CameraSource]
) -> None:
    """The reader is slowed down (0.3 s per sample, 12.5 samples due per second): without catching up it
    would be 4 s behind after 6 s; it skips to the next keyframe instead and stays about CATCH_UP_LAG_S."""
    config = camera(car_video, sample={"mode": "fps", "fps": 12.5}, realtime=True)
    source = started(CameraSource(config, on_frame=lambda _camera: time.sleep(0.3)))
    worst = 0.0
    deadline = time.monotonic() + 6.0
    while time.monotonic() < deadline:
        frame = source.next_frame(0.5)
        if frame is not None:
            worst = max(worst, (now() - frame.stream_time).total_seconds())
    health = source.health
    assert health.catch_ups >= 1
    assert worst < CATCH_UP_LAG_S + 1.0 and health.lag_s < CATCH_UP_LAG_S + 1.0
    assert health.decode_errors == 0  # decoding restarted at a keyframe, never from a missing reference


# --- a real RTSP server --------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def rtsp_clip(tmp_path_factory: pytest.TempPathFactory, car_video: Path) -> Path:
    why = server_available()
    if why is not None:
        if os.environ.get("CI"):
            pytest.fail(why)
        pytest.skip(why)
    folder = tmp_path_factory.mktemp("rtsp")
    return encode_clip(car_video, folder / "cars.h264", gop=12, max_seconds=12)  # a keyframe every 0.96 s


@pytest.fixture(scope="module")
def rtsp(rtsp_clip: Path) -> Iterator[RtspServer]:
    with RtspServer({"cars": rtsp_clip}) as server:
        yield server


@pytest.mark.parametrize("transport", ["tcp", "udp"])
def test_rtsp_delivers_keyframes_on_the_wall_clock(
    rtsp: RtspServer, transport: str, started: Callable[[CameraSource], CameraSource]
) -> None:
    config = camera(rtsp.url("cars"), sample={"mode": "keyframes"}, rtsp_transport=transport, **FAST_RETRY)
    source = started(CameraSource(config))
    received: list[tuple[dt.datetime, SampledFrame]] = []
    deadline = time.monotonic() + 3.5
    while time.monotonic() < deadline:
        frame = source.next_frame(0.5)
        if frame is not None:
            received.append((now(), frame))
    assert len(received) >= 3  # a keyframe every 0.96 s
    assert all(f.keyframe and f.image.shape == (432, 768, 3) for _, f in received)
    for at, frame in received:
        assert -0.05 < (at - frame.stream_time).total_seconds() < 0.5  # on the wall clock, no backlog
    gaps = [
        (b.stream_time - a.stream_time).total_seconds() for (_, a), (_, b) in itertools.pairwise(received)
    ]
    assert all(gap == pytest.approx(0.96, abs=0.1) for gap in gaps[1:])
    health = source.health
    assert health.state == "up" and health.sampling == "keyframes"
    assert health.fps == pytest.approx(12.5, abs=2.0)
    assert health.frames_in >= 35 and health.sampled <= 6  # only keyframes were decoded
    stopping = time.monotonic()
    assert source.stop(2.0) and time.monotonic() - stopping < 0.5


def test_rtsp_server_killed_and_restarted_reconnects(
    rtsp_clip: Path, started: Callable[[CameraSource], CameraSource]
) -> None:
    server = RtspServer({"cars": rtsp_clip})
    server.start()
    try:
        sources = [
            started(
                CameraSource(
                    camera(
                        server.url("cars"),
                        t,
                        sample={"mode": "fps", "fps": 2},
                        rtsp_transport=t,
                        failed_after=50,
                        **FAST_RETRY,
                    )
                )
            )
            for t in ("tcp", "udp")
        ]
        wait_for(lambda: all(s.health.state == "up" for s in sources), 10, "both transports up")
        before = [s.next_frame(5) for s in sources]
        states: list[set[str]] = [set(), set()]

        def watch(seconds: float) -> None:
            deadline = time.monotonic() + seconds
            while time.monotonic() < deadline:
                for seen, source in zip(states, sources, strict=True):
                    seen.add(source.health.state)
                time.sleep(0.02)

        server.kill()
        watch(2.5)
        assert all("reconnecting" in seen for seen in states), states
        assert all(s.health.last_error and "rtsp://127.0.0.1" in s.health.last_error for s in sources)
        server.start()
        restarted = now()
        wait_for(lambda: all(s.health.state == "up" for s in sources), 15, "both transports up again")
        for source, old in zip(sources, before, strict=True):
            assert source.health.reconnects == 1
            # The slot may still hold the last sample from before the kill (correctly stamped); then new ones.
            frame = source.next_frame(5)
            while frame is not None and frame.stream_time < restarted:
                frame = source.next_frame(5)
            assert frame is not None and old is not None and frame.seq > old.seq
            assert (now() - frame.stream_time).total_seconds() < 0.6
    finally:
        server.kill()


# --- failures do not spread ----------------------------------------------------------------------------


class SilentServer:
    """Accepts TCP connections and never answers: an RTSP camera that hangs."""

    def __init__(self) -> None:
        self.sock = socket.create_server(("127.0.0.1", 0))
        self.port = self.sock.getsockname()[1]
        self.held: list[socket.socket] = []
        self._thread = threading.Thread(target=self._accept, daemon=True)
        self._thread.start()

    def _accept(self) -> None:
        try:
            while True:
                connection, _ = self.sock.accept()
                self.held.append(connection)
        except OSError:
            return

    def close(self) -> None:
        self.sock.close()
        for connection in self.held:
            connection.close()


@pytest.fixture
def silent_server() -> Iterator[SilentServer]:
    server = SilentServer()
    yield server
    server.close()


def test_failing_cameras_never_stall_a_working_one(
    car_video: Path,
    tmp_path: Path,
    silent_server: SilentServer,
    started: Callable[[CameraSource], CameraSource],
) -> None:
    retry = {**FAST_RETRY, "timeout_s": 1.0, "failed_after": 2}
    refused = started(CameraSource(camera(f"rtsp://127.0.0.1:{free_port()}/none", "refused", **retry)))
    silent = started(CameraSource(camera(f"rtsp://127.0.0.1:{silent_server.port}/cam", "silent", **retry)))
    missing = started(CameraSource(camera(tmp_path / "missing.mp4", "missing", **retry)))
    good = started(CameraSource(camera(car_video, "good", sample={"mode": "fps", "fps": 5}, realtime=True)))
    arrivals: list[float] = []
    deadline = time.monotonic() + 4.0
    while time.monotonic() < deadline:
        if good.next_frame(1.0) is not None:
            arrivals.append(time.monotonic())
    assert len(arrivals) >= 17 and max(np.diff(arrivals)) < 0.45  # 5 per second, never held up
    for source in (refused, silent):
        health = source.health
        assert health.state == "failed" and health.failures >= 2, health
        assert (
            health.last_error is not None
            and f"camera {source.camera_id} (rtsp://127.0.0.1:" in health.last_error
        )
    assert "cannot open: no answer within timeout_s=1 s" in str(silent.health.last_error)
    assert missing.health.state == "failed" and missing.ended  # a missing file is not retried
    assert "missing.mp4" in str(missing.health.last_error)


def test_stop_returns_promptly_while_a_silent_server_holds_the_open(
    silent_server: SilentServer, started: Callable[[CameraSource], CameraSource]
) -> None:
    source = started(CameraSource(camera(f"rtsp://127.0.0.1:{silent_server.port}/cam", timeout_s=1.5)))
    wait_for(lambda: len(silent_server.held) == 1, 5, "the source to connect")
    stopping = time.monotonic()
    assert source.stop(3.0)
    assert time.monotonic() - stopping < 2.0  # bounded by the open timeout, not by the dead server
    assert source.health.state == "stopped" and source.ended
    assert source.next_frame(0.5) is None


def test_v4l2_path_reports_a_missing_device(started: Callable[[CameraSource], CameraSource]) -> None:
    """The V4L2 path opens /dev/videoN with FFmpeg's video4linux2 input; with no device it fails cleanly."""
    source = started(CameraSource(camera("/dev/video97", failed_after=1, **FAST_RETRY)))
    wait_for(lambda: source.health.state == "failed", 5, "the missing device to fail")
    assert "camera cam (/dev/video97): cannot open" in str(source.health.last_error)


# --- HTTP: MJPEG and HLS -------------------------------------------------------------------------------


class MjpegServer:
    """``multipart/x-mixed-replace`` JPEGs at ``fps`` from a local ThreadingHTTPServer, like an IP camera."""

    def __init__(self, jpegs: list[bytes], fps: float) -> None:
        stop = self.stop_event = threading.Event()

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:
                self.send_response(200)
                self.send_header("Content-Type", "multipart/x-mixed-replace; boundary=frame")
                self.end_headers()
                index, next_due = 0, time.monotonic()
                try:
                    while not stop.is_set():
                        jpeg = jpegs[index % len(jpegs)]
                        head = f"--frame\r\nContent-Type: image/jpeg\r\nContent-Length: {len(jpeg)}\r\n\r\n"
                        self.wfile.write(head.encode() + jpeg + b"\r\n")
                        index += 1
                        next_due += 1 / fps
                        stop.wait(max(0.0, next_due - time.monotonic()))
                except (BrokenPipeError, ConnectionResetError):
                    return

            def log_message(self, *args: Any) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}/video.mjpg"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def close(self) -> None:
        self.stop_event.set()
        self.server.shutdown()
        self.server.server_close()


def test_http_mjpeg_camera_is_sampled_before_decoding(
    vtest_path: Path, started: Callable[[CameraSource], CameraSource]
) -> None:
    frames = read_frames(vtest_path, list(range(0, 100, 5)))
    jpegs = [cv2.imencode(".jpg", frames[i])[1].tobytes() for i in sorted(frames)]
    server = MjpegServer(jpegs, fps=10)
    try:
        config = camera(server.url, sample={"mode": "keyframes", "fallback_fps": 2}, **FAST_RETRY)
        source = started(CameraSource(config))
        received: list[tuple[dt.datetime, SampledFrame]] = []
        first = source.next_frame(10.0)  # connecting is not what is measured: the 3 s count from here
        assert first is not None, "no frame within 10 s of starting"
        received.append((now(), first))
        deadline = time.monotonic() + 3.0
        while time.monotonic() < deadline:
            frame = source.next_frame(0.5)
            if frame is not None:
                received.append((now(), frame))
        health = source.health
    finally:
        server.close()
    assert health.sampling == "intra"  # every JPEG is a keyframe: sampled at fallback_fps before decoding
    assert 6 <= len(received) <= 8 and health.sampled <= 8 < health.frames_in
    assert health.fps == pytest.approx(10, abs=2)
    for at, frame in received:
        assert frame.image.shape == (576, 768, 3)
        assert -0.05 < (at - frame.stream_time).total_seconds() < 0.3  # MJPEG has no timestamps: arrival
    gaps = [
        (b.stream_time - a.stream_time).total_seconds() for (_, a), (_, b) in itertools.pairwise(received)
    ]
    assert all(gap == pytest.approx(0.5, abs=0.12) for gap in gaps)


class QuietFiles(SimpleHTTPRequestHandler):
    def log_message(self, *args: Any) -> None:
        pass


def test_http_hls_camera(
    short_clip: Path, tmp_path: Path, started: Callable[[CameraSource], CameraSource]
) -> None:
    """An HLS playlist (written by FFmpeg's hls muxer through PyAV) served over HTTP."""
    playlist = tmp_path / "index.m3u8"
    with (
        av.open(str(short_clip)) as source,
        av.open(str(playlist), "w", format="hls", options={"hls_time": "1"}) as out,
    ):
        stream = out.add_stream_from_template(source.streams.video[0])
        for packet in source.demux(source.streams.video[0]):
            if packet.dts is not None:
                packet.stream = stream
                out.mux(packet)
    server = ThreadingHTTPServer(("127.0.0.1", 0), functools.partial(QuietFiles, directory=str(tmp_path)))
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        url = f"http://127.0.0.1:{server.server_address[1]}/index.m3u8"
        hls = started(CameraSource(camera(url, sample={"mode": "fps", "fps": 5}, **FAST_RETRY)))
        frames = [hls.next_frame(5) for _ in range(8)]
        assert all(f is not None and f.image.shape == (432, 768, 3) for f in frames)
        stamps = [f.stream_time for f in frames if f is not None]
        assert all(b > a for a, b in itertools.pairwise(stamps))
        assert hls.health.frames_in >= 10
    finally:
        server.shutdown()
        server.server_close()
