"""``scheduler.inference_workers``: several detector calls at once on their own threads, with each camera's
frames still reaching the rules in order, nothing lost at the end, a failing detector still stopping the
daemon, and a preprocessor shared by the workers keeping each thread's buffers apart (real model)."""

from __future__ import annotations

import threading
import time
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import numpy.typing as npt
import pytest

from detector.detections import Detections
from pipeline.daemon import Daemon
from tests.pipeline.test_daemon import (
    CAR_BOX,
    FakeDetector,
    FileSource,
    RecordingRules,
    camera,
    finish,
    make_config,
    run_in_thread,
)


@dataclass
class OverlapDetector:
    """A slow detector that records how many calls ran at once, and which cameras' frames were in them
    (each frame's first pixel is its sequence number, as FileSource paints them)."""

    delay_s: float = 0.05
    class_names: list[str] = field(default_factory=lambda: ["person", "bicycle", "car"])
    card: None = None
    preprocessor: None = None
    running: int = 0
    most_at_once: int = 0
    lock: threading.Lock = field(default_factory=threading.Lock)

    def detect_batch(self, frames: Sequence[npt.NDArray[np.uint8]]) -> list[Detections]:
        with self.lock:
            self.running += 1
            self.most_at_once = max(self.most_at_once, self.running)
        time.sleep(self.delay_s)
        with self.lock:
            self.running -= 1
        n = len(CAR_BOX)
        return [
            Detections(CAR_BOX.copy(), np.full(n, 0.8, np.float32), np.full(n, 2, np.int64)) for _ in frames
        ]


@pytest.mark.parametrize("workers", [1, 2, 3])
def test_workers_run_calls_at_once_and_each_camera_stays_in_order(tmp_path: Path, workers: int) -> None:
    ids = [f"cam-{i}" for i in range(4)]
    config = make_config(
        tmp_path,
        [camera(i) for i in ids],
        detector={"model": str(tmp_path / "m.onnx"), "classes": {"car": "illegal_parking"}, "batch_size": 1},
        scheduler={"drain_timeout_s": 0.5, "inference_workers": workers},
    )
    sources = {i: FileSource(i, 12) for i in ids}
    detector, rules = OverlapDetector(), RecordingRules()
    daemon = Daemon(config, detector=detector, source_factory=lambda c: sources[c.id], rules=rules)
    started = time.monotonic()
    assert daemon.run() == 0
    took = time.monotonic() - started

    assert detector.most_at_once == workers  # never more calls at once than workers, and that many
    for i in ids:  # every frame analysed, each camera's in stream order
        assert len(rules.seen[i]) == 12
        assert rules.seen[i] == sorted(rules.seen[i])
    assert took < 48 * detector.delay_s / workers + 3.0  # the calls overlapped: wall time shrank


def test_one_camera_never_has_two_frames_in_the_detector(tmp_path: Path) -> None:
    config = make_config(
        tmp_path, [camera("solo")], scheduler={"drain_timeout_s": 0.5, "inference_workers": 4}
    )
    detector, rules = OverlapDetector(delay_s=0.01), RecordingRules()
    daemon = Daemon(config, detector=detector, source_factory=lambda c: FileSource("solo", 30), rules=rules)
    assert daemon.run() == 0
    assert detector.most_at_once == 1
    assert len(rules.seen["solo"]) == 30 and rules.seen["solo"] == sorted(rules.seen["solo"])


def test_a_failing_detector_on_a_worker_stops_the_daemon_with_code_1(tmp_path: Path) -> None:
    config = make_config(
        tmp_path, [camera("cam-a")], scheduler={"drain_timeout_s": 0.5, "inference_workers": 2}
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


def test_a_shared_preprocessor_gives_each_thread_its_own_buffers(yolox_card: Path, vtest_path: Path) -> None:
    """One real detector called from two threads at once finds in each frame what it finds alone."""
    import cv2

    from detector.detector import Detector

    detector = Detector(yolox_card, intra_op_threads=1)
    capture = cv2.VideoCapture(str(vtest_path))
    frames = []
    for index in (0, 200, 400, 600):
        capture.set(cv2.CAP_PROP_POS_FRAMES, index)
        ok, frame = capture.read()
        assert ok
        frames.append(np.asarray(frame, np.uint8))
    capture.release()
    alone = [detector(frame) for frame in frames]
    with ThreadPoolExecutor(2) as pool:
        together = list(pool.map(detector, frames * 6))
    for i, found in enumerate(together):
        expected = alone[i % len(frames)]
        np.testing.assert_allclose(found.xyxy, expected.xyxy, atol=1e-3)
        np.testing.assert_array_equal(found.class_id, expected.class_id)


def pin_cores(monkeypatch: pytest.MonkeyPatch, cores: int) -> None:
    """This process may run on ``cores`` CPUs (as a container's cpuset would say)."""
    monkeypatch.setattr("pipeline.config.os.sched_getaffinity", lambda _pid: set(range(cores)))


@pytest.mark.parametrize(
    ("cores", "detector", "workers", "threads"),
    [
        (2, {}, 2, 1),  # the 2-vCPU box: two single-threaded calls (1.4x one call on two threads)
        (1, {}, 1, None),  # one core: one call, ONNX Runtime's own thread count (one)
        (16, {}, 4, 4),  # a big box: at most 4 calls, the cores shared between them
        (4, {"intra_op_threads": 2}, 2, 2),  # a thread count asked for: as many calls as the cores hold
        (8, {"provider": "cuda"}, 1, None),  # an accelerator: one call, as measured on the GPU box
        (8, {"providers": [{"name": "tensorrt"}, {"name": "cpu"}]}, 1, None),
        (2, {"providers": [{"name": "CPUExecutionProvider"}]}, 2, 1),
    ],
)
def test_auto_inference_workers_follow_the_cores_and_the_provider(
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    cores: int,
    detector: dict[str, object],
    workers: int,
    threads: int | None,
) -> None:
    pin_cores(monkeypatch, cores)
    monkeypatch.delenv("STREETWATCH_ORT_PROVIDERS", raising=False)
    section = {"model": str(tmp_path / "m.onnx"), "classes": {"car": "illegal_parking"}, **detector}
    config = make_config(tmp_path, [camera("cam-a")], detector=section)
    assert config.scheduler.inference_workers == "auto"
    assert config.inference_workers == workers
    assert config.session_settings().intra_op_threads == threads


def test_configured_workers_share_the_cores_unless_threads_are_given(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    pin_cores(monkeypatch, 8)
    shared = make_config(
        tmp_path, [camera("cam-a")], scheduler={"drain_timeout_s": 0.5, "inference_workers": 2}
    )
    assert (shared.inference_workers, shared.session_settings().intra_op_threads) == (2, 4)
    given = make_config(
        tmp_path,
        [camera("cam-a")],
        detector={"model": str(tmp_path / "m.onnx"), "classes": {"car": "illegal_parking"}, "threads": 3},
        scheduler={"drain_timeout_s": 0.5, "inference_workers": 2},
    )
    assert (given.inference_workers, given.session_settings().intra_op_threads) == (2, 3)
    one = make_config(tmp_path, [camera("cam-a")], scheduler={"drain_timeout_s": 0.5, "inference_workers": 1})
    assert (one.inference_workers, one.session_settings().intra_op_threads) == (1, None)


def test_the_process_provider_override_counts_as_an_accelerator(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    pin_cores(monkeypatch, 8)
    monkeypatch.setenv("STREETWATCH_ORT_PROVIDERS", '[{"name": "cuda", "options": {"device_id": 0}}]')
    config = make_config(tmp_path, [camera("cam-a")])
    assert config.inference_workers == 1


def test_an_inference_workers_value_that_is_neither_a_count_nor_auto_is_refused(tmp_path: Path) -> None:
    for bad in (0, 17, "many"):
        with pytest.raises(ValueError, match="inference_workers"):
            make_config(tmp_path, [camera("cam-a")], scheduler={"inference_workers": bad})


def test_the_daemon_runs_and_logs_the_auto_choice(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    pin_cores(monkeypatch, 2)
    ids = ["cam-a", "cam-b", "cam-c"]
    config = make_config(
        tmp_path,
        [camera(i) for i in ids],
        detector={"model": str(tmp_path / "m.onnx"), "classes": {"car": "illegal_parking"}, "batch_size": 1},
    )
    detector, rules = OverlapDetector(delay_s=0.02), RecordingRules()
    sources = {i: FileSource(i, 10) for i in ids}
    with caplog.at_level("INFO", logger="pipeline.daemon"):
        daemon = Daemon(config, detector=detector, source_factory=lambda c: sources[c.id], rules=rules)
        assert daemon.run() == 0
    assert "detector: 2 call(s) at once (scheduler.inference_workers: auto on 2 usable cores)" in caplog.text
    assert "intra-op threads 1 each" in caplog.text
    assert detector.most_at_once == 2
    assert all(rules.seen[i] == sorted(rules.seen[i]) and len(rules.seen[i]) == 10 for i in ids)
