"""The streetwatch side of a trial: K file cameras through :class:`pipeline.daemon.Daemon` with the real
rules, outbox and evidence and a scripted parked car per camera; every analysed frame and confirmed case
is recorded."""

from __future__ import annotations

import datetime as dt
import threading
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from benchmarks.pipeline_bench.clip import ZONE, Frame
from benchmarks.pipeline_bench.harness import (
    Recorder,
    TrialSpec,
    camera_id,
    camera_index,
    observe,
    rss_now_mb,
    stagger_s,
    trial_document,
)

VIOLATION = "illegal_parking"
SCRIPTED_BOX = (0.84, 0.07, 0.94, 0.18)  # normalised xyxy; its bottom centre (0.89, 0.18) lies in ZONE
SCRIPTED_CONFIDENCE = 0.9
START_MARGIN_S = 1.0  # cameras start this long after the trial's set-up began (the daemon is built by then)


def daemon_config(spec: TrialSpec, epoch: float) -> Any:
    """A :class:`pipeline.config.DaemonConfig` with K file cameras replayed like live ones.

    Realtime camera i starts filming at ``epoch`` + its stagger, and that is its ``start_time``: the stream
    time of its first frame, so lags are measured from when a frame was due, not from when it was decoded.
    """
    from pipeline.config import DaemonConfig

    work = Path(spec.workdir)
    key_file = work / "device.key"
    key_file.write_text("swd_benchmark\n", encoding="utf-8")
    key_file.chmod(0o600)
    camera = {
        "url": spec.clip,
        **({"detect_url": spec.detect_clip} if spec.detect_clip else {}),
        "realtime": spec.realtime,
        "loop": True,
        "sample": {"mode": "keyframes"} if spec.keyframes else {"mode": "fps", "fps": spec.target_fps},
        "skip_unchanged": False,  # every sample is analysed: the worst case, a scene that always changes
        "zone_roi": spec.zone_roi,
        "zone_gating": spec.zone_gating,
    }
    cameras = [
        {
            **camera,
            "id": camera_id(i),
            "start_time": dt.datetime.fromtimestamp(epoch + stagger_s(spec, i), dt.UTC),
            "zones": [
                {
                    "id": "no-parking",
                    "place": f"bench-{i:03d}",
                    "polygon": [list(p) for p in ZONE],
                    "rules": {VIOLATION: {"dwell_s": spec.dwell_s}},
                }
            ],
        }
        for i in range(spec.cameras)
    ]
    return DaemonConfig.model_validate(
        {
            "detector": {
                "model": spec.facts.model,
                "classes": {spec.facts.violation_class: VIOLATION},
                "threads": spec.threads,
                "batch_size": spec.batch_size,
            },
            # Nothing listens there: cases wait in the outbox (delivery is the case store's benchmark).
            "store": {
                "url": "http://127.0.0.1:9",
                "device_key_file": str(key_file),
                "outbox": str(work / "outbox.sqlite"),
                "retry_base_s": 60,
                "retry_max_s": 300,
                "health_report_s": 0,
            },
            "cameras": cameras,
            "evidence": {"dir": str(work / "evidence")},
            "verification": {"enabled": False},
            "metrics": {"port": 0},
            "scheduler": {
                "drain_timeout_s": 0,
                "drop_before_decode": spec.drop_before_decode,
                "inference_workers": spec.inference_workers,
                **({} if spec.event_cpu_share is None else {"event_cpu_share": spec.event_cpu_share}),
                **({} if spec.event_queue is None else {"event_queue": spec.event_queue}),
            },
        }
    )


class TimedDetector:
    """The real detector, with every ``detect_batch`` call recorded."""

    def __init__(self, inner: Any, recorder: Recorder) -> None:
        self.inner = inner
        self.recorder = recorder

    def __getattr__(self, name: str) -> Any:  # card, preprocessor, ... (what the daemon looks up)
        return getattr(self.inner, name)

    @property
    def class_names(self) -> list[str]:
        return list(self.inner.class_names)

    def detect_batch(
        self, frames: Sequence[Frame], max_scale: Sequence[float | None] | None = None
    ) -> list[Any]:
        started = time.time()
        t = time.perf_counter()
        results: list[Any] = self.inner.detect_batch(frames, max_scale=max_scale)
        self.recorder.batches.append((started, time.perf_counter() - t, len(frames)))
        return results


class RecordingRules:
    """The real :class:`pipeline.incidents.RuleEngine`; records when each frame's result is out, and adds
    the scripted parked car to each camera's detections when asked."""

    def __init__(self, inner: Any, recorder: Recorder, scripted_class_id: int | None) -> None:
        self.inner = inner
        self.recorder = recorder
        self.scripted_class_id = scripted_class_id

    def update(
        self, camera: str, stream_time: dt.datetime, detections: Any, frame_hw: tuple[int, int]
    ) -> Any:
        if self.scripted_class_id is not None:
            detections = with_scripted_car(detections, frame_hw, self.scripted_class_id)
        events = self.inner.update(camera, stream_time, detections, frame_hw)
        self.recorder.frames.append((camera_index(camera), stream_time.timestamp(), time.time()))
        return events

    def present(self, camera: str, zone_id: str, violation_type: str) -> bool:
        return bool(self.inner.present(camera, zone_id, violation_type))

    def expire(self, now: dt.datetime) -> Any:
        return self.inner.expire(now)

    def replace_zones(self, camera: str, zones: Any) -> Any:
        return self.inner.replace_zones(camera, zones)


def with_scripted_car(detections: Any, frame_hw: tuple[int, int], class_id: int) -> Any:
    from detector.detections import Detections

    h, w = frame_hw
    box = np.asarray(SCRIPTED_BOX, np.float32) * np.asarray([w, h, w, h], np.float32)
    return Detections(
        xyxy=np.concatenate([detections.xyxy, box[None]]),
        confidence=np.concatenate([detections.confidence, np.asarray([SCRIPTED_CONFIDENCE], np.float32)]),
        class_id=np.concatenate([detections.class_id, np.asarray([class_id], np.int64)]),
    )


def record_cases(outbox: Any, recorder: Recorder) -> None:
    """Record when each case report is in the durable outbox (the daemon's last step before delivery)."""
    put = outbox.put

    def recording_put(report: Any, images: Sequence[tuple[str, Path]] = ()) -> bool:
        stored = bool(put(report, images))
        recorder.cases.append((camera_index(report.camera), report.confirmed_at.timestamp(), time.time()))
        return stored

    outbox.put = recording_put


class StaggeredSource:
    """A real :class:`pipeline.sources.CameraSource` whose thread starts at wall time ``due`` (or at once if
    ``start()`` comes later; that lateness then counts in every lag, so it is never flattering)."""

    def __init__(self, inner: Any, due: float) -> None:
        self.inner = inner
        self.due = due
        self._timer: threading.Timer | None = None

    def __getattr__(self, name: str) -> Any:  # anything else the daemon asks of its source
        return getattr(self.inner, name)

    def start(self) -> None:
        self._timer = threading.Timer(max(self.due - time.time(), 0.0), self.inner.start)
        self._timer.daemon = True
        self._timer.start()

    def stop(self) -> object:
        if self._timer is not None:
            self._timer.cancel()
            self._timer.join(1.0)
        return self.inner.stop()

    def latest(self, after_seq: int) -> Any:
        return self.inner.latest(after_seq)

    def next_frame(self, timeout: float | None = None) -> Any:
        return self.inner.next_frame(timeout)

    @property
    def health(self) -> Any:
        return self.inner.health

    @property
    def ended(self) -> bool:
        return bool(self.inner.ended)


def run_streetwatch(spec: TrialSpec) -> dict[str, Any]:
    from detector import Detector
    from pipeline.daemon import Daemon
    from pipeline.incidents import RuleEngine

    # the session the daemon would build from its configuration (threads, spinning, providers)
    detector = Detector(spec.facts.model, settings=daemon_config(spec, 0.0).detector.session_settings())
    rss_base = rss_now_mb()
    epoch = time.time() + START_MARGIN_S
    config = daemon_config(spec, epoch)
    recorder = Recorder()
    scripted = spec.facts.violation_class_id if spec.scripted_event else None
    daemon = Daemon(
        config,
        detector=TimedDetector(detector, recorder),
        rules=RecordingRules(RuleEngine(config, detector.class_names), recorder, scripted),
    )
    # The sources the daemon built itself (waking the scheduler, skipping keyframes while behind, zone-ROI
    # and gating as configured), each started with its camera's phase offset.
    for cam in daemon.cameras:
        cam.source = StaggeredSource(cam.source, epoch + stagger_s(spec, camera_index(cam.id)))
    record_cases(daemon.outbox, recorder)
    daemon.start()
    try:
        window = observe(spec, epoch, lambda: "; ".join(daemon.failures) or None)
        stages = stage_means(daemon.metrics.registry)
    finally:
        daemon.shutdown()
    return {**trial_document(spec, window, recorder, rss_base, daemon.failures), "daemon_metrics": stages}


STAGE_HISTOGRAMS = ("decode", "frame_wait", "inference", "batch_frames", "rules", "frame_to_outbox")


def stage_means(registry: Any) -> dict[str, Any]:
    """The daemon's own Prometheus figures over the whole trial: mean per stage (decode and conversion of a
    sample, its wait for the detector, one detector call, rules) and frames skipped by reason."""
    totals: dict[str, float] = {}
    for metric in registry.collect():
        for sample in metric.samples:
            if sample.name.endswith(("_sum", "_count")) or sample.name == "streetwatch_frames_skipped_total":
                key = sample.name + (f":{sample.labels['reason']}" if "reason" in sample.labels else "")
                totals[key] = totals.get(key, 0.0) + float(sample.value)
    means: dict[str, Any] = {}
    for stage in STAGE_HISTOGRAMS:
        name = f"streetwatch_{stage}" + ("" if stage == "batch_frames" else "_seconds")
        count = totals.get(f"{name}_count", 0.0)
        means[stage] = {"count": count, "mean": totals.get(f"{name}_sum", 0.0) / count if count else None}
    means["skipped"] = {
        key.split(":", 1)[1]: value
        for key, value in totals.items()
        if key.startswith("streetwatch_frames_skip")
    }
    return means
