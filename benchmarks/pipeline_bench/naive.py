"""The naive baseline loop of a trial: per camera a thread with ``cv2.VideoCapture`` decoding every frame at
real time, Ultralytics ``YOLO.predict`` on every due frame and a supervision ``PolygonZone`` on the result."""

from __future__ import annotations

import threading
import time
from pathlib import Path
from typing import Any

import numpy as np

from benchmarks.pipeline_bench.clip import ZONE, Frame, first_frame
from benchmarks.pipeline_bench.harness import (
    Recorder,
    TrialSpec,
    observe,
    rss_now_mb,
    stagger_s,
    trial_document,
)


class NaiveCamera(threading.Thread):
    """The loop users write today: decode every frame with OpenCV, ``predict`` every Nth, PolygonZone."""

    def __init__(self, spec: TrialSpec, index: int, recorder: Recorder, stop: threading.Event) -> None:
        super().__init__(name=f"naive-{index}", daemon=True)
        import supervision as sv
        from ultralytics.models.yolo.model import YOLO

        self.spec, self.index, self.recorder, self.stop = spec, index, recorder, stop
        self.start_at = 0.0  # set by begin()
        facts = spec.facts
        self.model: Any = YOLO(facts.onnx, task="detect")
        self.options: dict[str, Any] = {
            "conf": facts.confidence,
            "iou": facts.iou,
            "max_det": facts.max_detections,
            "imgsz": list(facts.input_hw),
            "rect": False,  # a fixed input size (a dynamic batch axis alone makes Ultralytics try rectangles)
            "device": "cpu",
            "verbose": False,
        }
        self.zone: Any = None
        self.sv = sv
        self.error: str | None = None

    def warm_up(self, frame: Frame) -> None:
        """Build the predictor (and its ONNX Runtime session) and the zone before the clock starts."""
        self.model.predict(frame, **self.options)
        h, w = frame.shape[:2]
        polygon = np.asarray([(round(x * w), round(y * h)) for x, y in ZONE], dtype=np.int64)
        self.zone = self.sv.PolygonZone(polygon=polygon)

    def begin(self, started: float) -> None:
        """Start filming: frame i of this camera is due at ``started`` + its stagger + i / fps."""
        self.start_at = started + stagger_s(self.spec, self.index)
        self.start()

    def run(self) -> None:
        import cv2

        try:
            capture = cv2.VideoCapture(self.spec.clip)
            fps = capture.get(cv2.CAP_PROP_FPS) or 25.0
            every = max(1, round(fps / self.spec.target_fps))
            index = 0
            while not self.stop.is_set():
                due = self.start_at + index / fps
                if due > time.time():  # a camera sends a frame when it is filmed, not before
                    self.stop.wait(due - time.time())
                ok, frame = capture.read()  # decodes every frame, as the loop must to get the next
                if not ok:  # end of the file: start again (the camera keeps filming)
                    capture.release()
                    capture = cv2.VideoCapture(self.spec.clip)
                    continue
                if index % every == 0:
                    self.analyse(np.asarray(frame, dtype=np.uint8), due)
                index += 1
            capture.release()
        except Exception as exc:  # reported in the trial's errors
            self.error = f"naive camera {self.index}: {exc.__class__.__name__}: {exc}"
            self.stop.set()

    def analyse(self, frame: Frame, stream_t: float) -> None:
        result = self.model.predict(frame, **self.options)[0]
        detections = self.sv.Detections.from_ultralytics(result)
        self.zone.trigger(detections)
        self.recorder.frames.append((self.index, stream_t, time.time()))


def run_naive(spec: TrialSpec) -> dict[str, Any]:
    import supervision  # noqa: F401  (imported before the memory baseline, like Ultralytics and PyTorch)
    import ultralytics.models.yolo.model  # noqa: F401

    frame = first_frame(Path(spec.clip))
    rss_base = rss_now_mb()
    recorder, stop = Recorder(), threading.Event()
    cameras = [NaiveCamera(spec, i, recorder, stop) for i in range(spec.cameras)]
    for camera in cameras:
        camera.warm_up(frame)
    started = time.time()
    for camera in cameras:
        camera.begin(started)

    def failed() -> str | None:
        return "; ".join(c.error for c in cameras if c.error) or None

    try:
        window = observe(spec, started, failed)
    finally:
        stop.set()
        for camera in cameras:
            camera.join(10.0)
    return trial_document(spec, window, recorder, rss_base, [e for c in cameras if (e := c.error)])
