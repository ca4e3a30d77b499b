"""The daemon's wiring with stand-in sources and detectors: batching, the drop policy, and shutdown that
cannot deadlock, whatever stage raises. Real rules, evidence and outbox; the case store is unreachable here
(end-to-end runs through a real store are in test_daemon_e2e.py)."""

from __future__ import annotations

import datetime as dt
import json
import os
import signal
import threading
import time
import urllib.request
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt
import pytest

import pipeline.daemon as daemon_module
from contract.device_config import Suppression
from detector.detections import Detections
from pipeline.config import CameraConfig, DaemonConfig
from pipeline.daemon import Daemon
from pipeline.metrics import DaemonMetrics, HealthStatus, MetricsServer
from pipeline.outbox import Outbox
from pipeline.scheduler import hands_over_every_frame
from tests.pipeline.live_store import free_port

T0 = dt.datetime(2026, 5, 11, 1, 0, tzinfo=dt.UTC)
CLASSES = ["person", "bicycle", "car"]
CAR_BOX = np.array([[200.0, 20.0, 300.0, 80.0]], np.float32)  # bottom centre (250, 80) in a 320x240 frame


@dataclass
class Frame:
    camera_id: str
    seq: int
    stream_time: dt.datetime
    image: npt.NDArray[np.uint8]
    keyframe: bool = True
    small: npt.NDArray[np.uint8] | None = None  # no downscaled copy: the detector sees ``image``
    decode_s: float | None = None  # not measured
    full: Callable[[], npt.NDArray[np.uint8] | None] | None = None  # one stream
    small_box: tuple[int, int, int, int] | None = None  # no zone-ROI crop
    zones_unchanged: bool = False  # no zone gating

    @property
    def hw(self) -> tuple[int, int]:
        return int(self.image.shape[0]), int(self.image.shape[1])


@dataclass
class Health:
    state: str = "up"
    last_frame_at: dt.datetime | None = None
    fps: float = 0.0
    reconnects: int = 0
    last_error: str | None = None
    skipped_unchanged: int = 0
    skipped_busy: int = 0


class FileSource:
    """Every frame in order through next_frame(); ``ended`` after the last one."""

    def __init__(
        self, camera_id: str, n: int, *, hw: tuple[int, int] = (240, 320), step_s: float = 1.0
    ) -> None:
        self.frames = [
            Frame(camera_id, i, T0 + dt.timedelta(seconds=i * step_s), np.full((*hw, 3), i % 255, np.uint8))
            for i in range(n)
        ]
        self.ended = False
        self.started = self.stopped = False
        self.health = Health()

    def start(self) -> None:
        self.started = True

    def stop(self) -> None:
        self.stopped = True

    def next_frame(self, timeout: float) -> Frame | None:
        if not self.frames:
            self.ended = True
            return None
        return self.frames.pop(0)

    def latest(self, after_seq: int) -> Frame | None:
        raise AssertionError("a file that is not paced is read with next_frame()")


class LiveSource:
    """A camera producing a frame every ``period_s`` on its own thread; latest() gives the freshest."""

    def __init__(self, camera_id: str, period_s: float = 0.005, hw: tuple[int, int] = (240, 320)) -> None:
        self.camera_id, self.period_s, self.hw = camera_id, period_s, hw
        self._latest: Frame | None = None
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._produce, daemon=True)
        self.health = Health()
        self.ended = False  # a live camera never ends

    def _produce(self) -> None:
        seq = 0
        image = np.zeros((*self.hw, 3), np.uint8)
        while not self._stop.wait(self.period_s):
            self._latest = Frame(self.camera_id, seq, dt.datetime.now(dt.UTC), image)
            seq += 1

    def start(self) -> None:
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        self._thread.join(2)

    def latest(self, after_seq: int) -> Frame | None:
        frame = self._latest
        return frame if frame is not None and frame.seq > after_seq else None

    def next_frame(self, timeout: float) -> Frame | None:
        raise AssertionError("a live source is read with latest()")


@dataclass
class FakeDetector:
    """A car parked in every frame (or nothing); records each batch; can be slow or raise."""

    boxes: npt.NDArray[np.float32] = field(default_factory=lambda: CAR_BOX)
    delay_s: float = 0.0
    fail: Callable[[int], bool] = lambda call: False
    batches: list[list[tuple[int, int]]] = field(default_factory=list)
    class_names: list[str] = field(default_factory=lambda: list(CLASSES))
    card: None = None  # no model card: frames go in as they are
    preprocessor: None = None

    def detect_batch(self, frames: Sequence[npt.NDArray[np.uint8]]) -> list[Detections]:
        self.batches.append([f.shape[:2] for f in frames])
        if self.fail(len(self.batches)):
            raise RuntimeError("inference failed (test)")
        time.sleep(self.delay_s)
        n = len(self.boxes)
        return [
            Detections(self.boxes.copy(), np.full(n, 0.8, np.float32), np.full(n, 2, np.int64))
            for _ in frames
        ]


class RecordingRules:
    """Rules that find nothing and record the stream time of every frame per camera, as received."""

    def __init__(self) -> None:
        self.seen: dict[str, list[dt.datetime]] = {}

    def update(self, camera_id: str, stream_time: Any, detections: Any, frame_hw: Any) -> list[Any]:
        self.seen.setdefault(camera_id, []).append(stream_time)
        return []

    def present(self, *args: Any) -> bool:
        return False

    def expire(self, now: dt.datetime) -> list[Any]:
        return []

    def replace_zones(self, *args: Any) -> list[Any]:
        return []


def make_config(tmp_path: Path, cameras: list[dict[str, Any]], **sections: Any) -> DaemonConfig:
    key = tmp_path / "device.key"
    key.write_text("swd_test_secret\n", encoding="utf-8")
    key.chmod(0o600)
    model = tmp_path / "model.onnx"
    model.write_bytes(b"")  # never loaded: the tests give a detector
    data = {
        "detector": {"model": str(model), "classes": {"car": "illegal_parking"}, "batch_size": 4},
        "store": {
            "url": f"http://127.0.0.1:{free_port()}",  # nothing listens: the store is down
            "device_key_file": str(key),
            "outbox": str(tmp_path / "outbox.sqlite"),
            "timeout_s": 0.5,
        },
        "cameras": cameras,
        "evidence": {"dir": str(tmp_path / "evidence")},
        "verification": {"enabled": False},
        "metrics": {"port": 0},
        "scheduler": {"drain_timeout_s": 0.5},
    }
    data.update(sections)
    return DaemonConfig.model_validate(data)


def camera(
    camera_id: str, *, url: str = "/videos/x.mp4", dwell_s: float = 30, **extra: Any
) -> dict[str, Any]:
    return {
        "id": camera_id,
        "url": url,
        "zones": [
            {
                "id": "kerb",
                "place": f"place-{camera_id}",
                "polygon": [[0.5, 0.0], [1.0, 0.0], [1.0, 0.5], [0.5, 0.5]],
                "rules": {"illegal_parking": {"dwell_s": dwell_s}},
            }
        ],
        **extra,
    }


def run_in_thread(daemon: Daemon) -> tuple[threading.Thread, list[int]]:
    code: list[int] = []
    thread = threading.Thread(target=lambda: code.append(daemon.run()), daemon=True)
    thread.start()
    return thread, code


def finish(thread: threading.Thread, code: list[int], timeout_s: float = 20.0) -> int:
    thread.join(timeout_s)
    assert not thread.is_alive(), "the daemon did not stop: a deadlock"
    return code[0]


def reports(tmp_path: Path) -> list[dict[str, Any]]:
    outbox = Outbox(tmp_path / "outbox.sqlite")
    try:
        found = []
        for state in ("pending", "delivered", "failed"):
            rows = outbox._read("SELECT key, body FROM items WHERE state = ?", (state,))
            found.extend(json.loads(row["body"]) | {"_key": row["key"]} for row in rows)
        return found
    finally:
        outbox.close()


def test_a_parked_car_in_a_file_becomes_one_report_with_evidence(tmp_path: Path) -> None:
    config = make_config(tmp_path, [camera("cam-a", dwell_s=30)])
    source = FileSource("cam-a", 60)
    daemon = Daemon(config, detector=FakeDetector(), source_factory=lambda c: source)
    assert daemon.run() == 0  # the file ends, the daemon stops by itself
    assert source.started and source.stopped
    found = reports(tmp_path)
    assert len(found) == 1
    report = found[0]
    assert report["camera"] == "cam-a" and report["place"] == "place-cam-a"
    confirmed = dt.datetime.fromisoformat(report["confirmed_at"])
    first = dt.datetime.fromisoformat(report["first_seen_at"])
    assert 30 <= (confirmed - first).total_seconds() <= 31
    assert report["boxes"][0]["class_name"] == "car"
    outbox = Outbox(tmp_path / "outbox.sqlite")
    item = outbox.get(report["_key"])
    outbox.close()
    assert item is not None
    assert [image.kind for image in item.images] == ["first_seen", "confirmation", "crop", "frame"]
    assert all(image.path.is_file() for image in item.images)
    assert daemon.metrics.value("streetwatch_frames_analysed_total", {"camera": "cam-a"}) == 60
    assert daemon.metrics.value("streetwatch_incident_events_total", {"kind": "confirmed"}) == 1


@dataclass
class CarAndPassersDetector(FakeDetector):
    """The parked car, a bicycle passing outside the zone and a person: only the car's class is mapped."""

    def detect_batch(self, frames: Sequence[npt.NDArray[np.uint8]]) -> list[Detections]:
        self.batches.append([f.shape[:2] for f in frames])
        xyxy = np.array([CAR_BOX[0], [10.0, 150.0, 60.0, 200.0], [80.0, 100.0, 110.0, 190.0]], np.float32)
        return [
            Detections(xyxy.copy(), np.array([0.8, 0.9, 0.7], np.float32), np.array([2, 1, 0], np.int64))
            for _ in frames
        ]


def test_the_training_frame_carries_the_boxes_of_the_mapped_classes_detected_in_it(tmp_path: Path) -> None:
    """The undrawn frame goes with what was detected in it, so a training set labels the whole frame; only
    classes this box maps to a violation (and static change) leave it: not the passers-by."""
    config = make_config(tmp_path, [camera("cam-a", dwell_s=30)])
    daemon = Daemon(
        config, detector=CarAndPassersDetector(), source_factory=lambda c: FileSource("cam-a", 60)
    )
    assert daemon.run() == 0
    (report,) = reports(tmp_path)
    outbox = Outbox(tmp_path / "outbox.sqlite")
    item = outbox.get(report["_key"])
    outbox.close()
    assert item is not None
    carried = {image.kind: image.boxes for image in item.images}
    assert carried["first_seen"] is None and carried["confirmation"] is None and carried["crop"] is None
    assert json.loads(carried["frame"] or "null") == [
        {"xyxy": [200.0, 20.0, 300.0, 80.0], "confidence": pytest.approx(0.8), "class_name": "car"}
    ]


def test_a_remembered_false_alarm_is_not_in_the_training_frames_boxes(tmp_path: Path) -> None:
    """A sign read as a car, voided earlier as a false positive (the store's suppression), stands beside the
    parked car: the car's case goes out, and its training frame does not label the sign as a car again."""
    sign = [170.0, 30.0, 190.0, 100.0]  # bottom centre (180, 100): in the kerb zone
    detector = FakeDetector(boxes=np.array([CAR_BOX[0], sign], np.float32))
    config = make_config(tmp_path, [camera("cam-a", dwell_s=30)])
    daemon = Daemon(config, detector=detector, source_factory=lambda c: FileSource("cam-a", 60))
    voided = Suppression(
        id=1,
        camera="cam-a",
        zone="kerb",
        violation_type="illegal_parking",
        class_name="car",
        box=(sign[0] / 320, sign[1] / 240, sign[2] / 320, sign[3] / 240),
        expires_at=dt.datetime.now(dt.UTC) + dt.timedelta(days=1),
    )
    daemon.suppressions.replace([voided])
    assert daemon.run() == 0
    (report,) = reports(tmp_path)  # the sign opened no case
    outbox = Outbox(tmp_path / "outbox.sqlite")
    item = outbox.get(report["_key"])
    outbox.close()
    assert item is not None
    frame_boxes = next(image.boxes for image in item.images if image.kind == "frame")
    assert [box["xyxy"] for box in json.loads(frame_boxes or "null")] == [[200.0, 20.0, 300.0, 80.0]]


def test_batches_hold_frames_of_one_size_from_several_cameras(tmp_path: Path) -> None:
    cameras = [camera("small-1"), camera("small-2"), camera("large", dwell_s=5)]
    config = make_config(tmp_path, cameras)
    sources = {
        "small-1": FileSource("small-1", 10),
        "small-2": FileSource("small-2", 10),
        "large": FileSource("large", 10, hw=(480, 640)),
    }
    detector = FakeDetector()
    daemon = Daemon(config, detector=detector, source_factory=lambda c: sources[c.id])
    assert daemon.run() == 0
    assert sum(len(b) for b in detector.batches) == 30
    assert all(len(set(batch)) == 1 for batch in detector.batches), detector.batches
    assert max(len(b) for b in detector.batches) == 4  # detector.batch_size
    assert {(240, 320), (480, 640)} == {batch[0] for batch in detector.batches}


def test_a_live_camera_that_is_behind_drops_its_oldest_frames_and_counts_them(tmp_path: Path) -> None:
    config = make_config(tmp_path, [camera("live", url="rtsp://127.0.0.1:1/x")])
    rules = RecordingRules()
    source = LiveSource("live")
    detector = FakeDetector(delay_s=0.03)
    daemon = Daemon(config, detector=detector, source_factory=lambda c: source, rules=rules)
    seqs: list[int] = []
    original = daemon.scheduler.next_batch

    def spy() -> Any:
        batch = original()
        seqs.extend(w.frame.seq for _, w in batch)
        return batch

    daemon.scheduler.next_batch = spy  # type: ignore[method-assign]
    thread, code = run_in_thread(daemon)
    time.sleep(1.0)
    daemon.stop()
    assert finish(thread, code) == 0
    behind = daemon.metrics.value("streetwatch_frames_skipped_total", {"camera": "live", "reason": "behind"})
    assert behind is not None and behind > len(seqs)  # a frame every 5 ms, one analysed every 30 ms
    assert seqs == sorted(seqs) and len(set(seqs)) == len(seqs)  # freshest first, never out of order
    assert len(rules.seen["live"]) == len(seqs)  # every analysed frame reached the rules, the last batch too


def test_sigterm_finishes_the_in_flight_batch_and_stops(tmp_path: Path) -> None:
    config = make_config(tmp_path, [camera("live", url="rtsp://127.0.0.1:1/x")])
    detector = FakeDetector(delay_s=0.2)
    daemon = Daemon(config, detector=detector, source_factory=lambda c: LiveSource("live"))
    analysed: list[int] = []
    original = daemon.reporter.analyse
    daemon.reporter.analyse = lambda item: (analysed.append(1), original(item))[1]  # type: ignore[method-assign]
    timer = threading.Timer(0.5, lambda: os.kill(os.getpid(), signal.SIGTERM))
    timer.start()
    before = signal.getsignal(signal.SIGTERM)
    started = time.monotonic()
    assert daemon.run(install_signal_handlers=True) == 0
    assert time.monotonic() - started < 5
    assert signal.getsignal(signal.SIGTERM) is before  # handlers restored
    assert len(analysed) == sum(len(b) for b in detector.batches)  # the batch in flight was not lost


@pytest.mark.parametrize("results_queue", [1, 16])
def test_a_detector_that_keeps_failing_stops_the_daemon_with_code_1(
    tmp_path: Path, results_queue: int
) -> None:
    config = make_config(
        tmp_path, [camera("cam-a")], scheduler={"drain_timeout_s": 0.5, "results_queue": results_queue}
    )
    daemon = Daemon(
        config,
        detector=FakeDetector(fail=lambda call: True),
        source_factory=lambda c: FileSource("cam-a", 100),
    )
    thread, code = run_in_thread(daemon)
    assert finish(thread, code) == 1
    assert any("detector failed" in failure for failure in daemon.failures)
    assert daemon.metrics.value("streetwatch_stage_errors_total", {"stage": "detector"}) == 10


def test_one_failed_batch_is_skipped_and_the_rest_goes_on(tmp_path: Path) -> None:
    config = make_config(tmp_path, [camera("cam-a")])
    detector = FakeDetector(fail=lambda call: call == 2)
    daemon = Daemon(config, detector=detector, source_factory=lambda c: FileSource("cam-a", 40))
    assert daemon.run() == 0
    assert daemon.metrics.value("streetwatch_frames_analysed_total", {"camera": "cam-a"}) == 36
    assert len(reports(tmp_path)) == 1


def test_rules_raising_on_one_camera_do_not_stop_the_other(tmp_path: Path) -> None:
    config = make_config(tmp_path, [camera("bad"), camera("good")])
    sources = {"bad": FileSource("bad", 40), "good": FileSource("good", 40)}
    daemon = Daemon(config, detector=FakeDetector(), source_factory=lambda c: sources[c.id])
    real = daemon.rules.update

    def update(camera_id: str, *args: Any) -> Any:
        if camera_id == "bad":
            raise ValueError("broken rules (test)")
        return real(camera_id, *args)

    daemon.rules.update = update  # type: ignore[method-assign]
    assert daemon.run() == 0
    assert [r["camera"] for r in reports(tmp_path)] == ["good"]
    assert daemon.metrics.value("streetwatch_stage_errors_total", {"stage": "rules"}) == 40


def test_a_dead_rules_thread_cannot_deadlock_the_scheduler(tmp_path: Path) -> None:
    config = make_config(
        tmp_path, [camera("live", url="rtsp://127.0.0.1:1/x")], scheduler={"results_queue": 1}
    )
    daemon = Daemon(config, detector=FakeDetector(), source_factory=lambda c: LiveSource("live"))

    def bug(item: Any) -> None:
        raise KeyboardInterrupt  # not an Exception: escapes every per-item guard and kills the thread

    daemon.reporter.analyse = bug  # type: ignore[method-assign]
    thread, code = run_in_thread(daemon)
    assert finish(thread, code) == 1
    assert any(failure.startswith("rules:") for failure in daemon.failures)


def test_a_source_whose_stop_hangs_does_not_block_shutdown(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(daemon_module, "SOURCE_STOP_S", 0.3)
    config = make_config(tmp_path, [camera("live", url="rtsp://127.0.0.1:1/x")])
    source = LiveSource("live")
    release = threading.Event()
    real_stop = source.stop
    source.stop = lambda: (release.wait(30), real_stop())  # type: ignore[method-assign, func-returns-value]
    daemon = Daemon(config, detector=FakeDetector(), source_factory=lambda c: source)
    thread, code = run_in_thread(daemon)
    time.sleep(0.3)
    started = time.monotonic()
    daemon.stop()
    assert finish(thread, code, timeout_s=10) == 0
    assert time.monotonic() - started < 5
    release.set()


def test_undelivered_reports_stay_in_the_outbox_after_the_drain_timeout(tmp_path: Path) -> None:
    config = make_config(tmp_path, [camera("cam-a")])
    started = time.monotonic()
    daemon = Daemon(config, detector=FakeDetector(), source_factory=lambda c: FileSource("cam-a", 40))
    assert daemon.run() == 0
    assert time.monotonic() - started < 10
    outbox = Outbox(tmp_path / "outbox.sqlite")
    assert outbox.pending_count() == 1  # kept for the next start
    outbox.close()


def test_a_failure_while_starting_leaves_nothing_running(tmp_path: Path) -> None:
    config = make_config(tmp_path, [camera("a"), camera("b")])

    class Broken(FileSource):
        def start(self) -> None:
            raise OSError("no such device (test)")

    ok = FileSource("a", 5)
    daemon = Daemon(
        config, detector=FakeDetector(), source_factory=lambda c: ok if c.id == "a" else Broken("b", 5)
    )
    before = {t.name for t in threading.enumerate()}
    with pytest.raises(OSError, match="no such device"):
        daemon.run()
    assert ok.stopped
    time.sleep(0.5)
    leftover = {t.name for t in threading.enumerate()} - before
    assert not leftover & {"scheduler", "rules", "outbox-pusher", "metrics-http"}


def test_metrics_and_healthz_are_served(tmp_path: Path) -> None:
    port = free_port()
    config = make_config(tmp_path, [camera("live", url="rtsp://127.0.0.1:1/x")], metrics={"port": port})
    daemon = Daemon(config, detector=FakeDetector(), source_factory=lambda c: LiveSource("live"))
    thread, code = run_in_thread(daemon)
    try:
        deadline = time.monotonic() + 10
        while (daemon.metrics.value("streetwatch_frames_analysed_total", {"camera": "live"}) or 0) < 3:
            assert time.monotonic() < deadline
            time.sleep(0.05)
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=5) as response:
            text = response.read().decode()
        for name in (
            'streetwatch_frames_analysed_total{camera="live"}',
            'streetwatch_camera_up{camera="live"} 1.0',
            "streetwatch_inference_seconds_bucket",
            'streetwatch_queue_depth{queue="results"}',
            'streetwatch_outbox_items{state="pending"}',
            'streetwatch_frames_skipped_total{camera="live",reason="behind"}',
            'streetwatch_camera_analysed_fps{camera="live"}',
        ):
            assert name in text, name
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/healthz", timeout=5) as response:
            health = json.loads(response.read())
        assert health["status"] == "ok"
        assert health["cameras"]["live"]["state"] == "up"
    finally:
        daemon.stop()
        assert finish(thread, code) == 0


def test_healthz_is_503_when_not_healthy() -> None:
    metrics = DaemonMetrics(["a"])
    server = MetricsServer(
        metrics, lambda: HealthStatus("stalled", {"why": "test"}), host="127.0.0.1", port=0
    )
    server.start()
    try:
        with pytest.raises(urllib.error.HTTPError) as caught:
            urllib.request.urlopen(f"{server.url}/healthz", timeout=5)
        assert caught.value.code == 503
        assert json.loads(caught.value.read())["status"] == "stalled"
        with pytest.raises(urllib.error.HTTPError) as missing:
            urllib.request.urlopen(f"{server.url}/nothing", timeout=5)
        assert missing.value.code == 404
    finally:
        server.stop()


def test_camera_config_kinds() -> None:
    file = CameraConfig.model_validate(camera("f", url="/data/gate.mp4"))
    paced = CameraConfig.model_validate(camera("p", url="/data/gate.mp4", realtime=True))
    rtsp = CameraConfig.model_validate(camera("r", url="rtsp://h/x"))
    assert hands_over_every_frame(file)
    assert not hands_over_every_frame(paced)
    assert not hands_over_every_frame(rtsp)


def test_live_only_daemons_end_quiet_incidents_on_the_wall_clock(tmp_path: Path) -> None:
    config = make_config(tmp_path, [camera("live", url="rtsp://127.0.0.1:1/x")])
    calls: list[dt.datetime] = []

    class Rules:
        def update(self, *args: Any) -> list[Any]:
            return []

        def present(self, *args: Any) -> bool:
            return False

        def replace_zones(self, *args: Any) -> list[Any]:
            return []

        def expire(self, now: dt.datetime) -> list[Any]:
            calls.append(now)
            return []

    daemon = Daemon(
        config, detector=FakeDetector(), source_factory=lambda c: LiveSource("live"), rules=Rules()
    )
    thread, code = run_in_thread(daemon)
    time.sleep(0.5)
    daemon.stop()
    assert finish(thread, code) == 0
    assert calls and calls[0].tzinfo is not None
    assert abs((calls[0] - dt.datetime.now(dt.UTC)).total_seconds()) < 5


def test_file_cameras_are_never_aged_on_the_wall_clock(tmp_path: Path) -> None:
    config = make_config(tmp_path, [camera("file")])
    daemon = Daemon(config, detector=FakeDetector(), source_factory=lambda c: FileSource("file", 5))
    assert daemon.reporter.expire_on_wall_clock is False  # its stream time may be anywhere (start_time)


def test_a_stuck_rules_stage_is_abandoned_after_its_deadline(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(daemon_module, "SCHEDULER_JOIN_S", 1.0)
    monkeypatch.setattr(daemon_module, "RULES_JOIN_S", 1.0)
    config = make_config(
        tmp_path, [camera("live", url="rtsp://127.0.0.1:1/x")], scheduler={"results_queue": 1}
    )
    release = threading.Event()

    class StuckRules:
        def update(self, *args: Any) -> list[Any]:
            release.wait(60)  # e.g. a disk that hangs
            return []

        def present(self, *args: Any) -> bool:
            return False

        def expire(self, now: dt.datetime) -> list[Any]:
            return []

        def replace_zones(self, *args: Any) -> list[Any]:
            return []

    daemon = Daemon(
        config, detector=FakeDetector(), source_factory=lambda c: LiveSource("live"), rules=StuckRules()
    )
    thread, code = run_in_thread(daemon)
    time.sleep(0.5)
    started = time.monotonic()
    daemon.stop()
    assert finish(thread, code, timeout_s=15) == 1  # abandoned stages make a non-zero exit
    assert time.monotonic() - started < 8
    assert any("rules: did not stop" in failure for failure in daemon.failures)
    release.set()
