"""Cameras per box: K simulated cameras through the streetwatch daemon vs the naive loop users write today.

Each *camera* replays one real clip, re-encoded once with PyAV to 1080p25 H.264 (a keyframe every 2 s, no
B-frames, like most IP cameras) and cached in ``benchmarks/.cache``, at real time and looping. Each camera
should get one frame analysed per 2 s (``--target-fps 0.5``). For each system the benchmark finds the
largest K with **no backlog**: over a measurement window after a warm-up, every camera had at least
``--min-rate`` (95%) of its due frames analysed, and the p99 lag from a frame's stream time to its analysis
result was at most ``--max-lag-s`` (one sampling interval: a frame is analysed before its camera's next one
is due). K is searched by doubling, then bisection; the two systems' trials alternate, so load from other
jobs on the machine hits both alike.

* ``streetwatch``: :class:`pipeline.daemon.Daemon` itself with K file cameras (``realtime: true``,
  ``loop: true``, keyframe sampling, scene-change skip off so that every sample is analysed), one zone per
  camera and the real :class:`pipeline.incidents.RuleEngine`, outbox and evidence. Cameras start staggered
  over one sampling interval (real cameras are not in phase). A scripted parked car is added to every
  camera's detections inside its zone (random-weight models detect nothing), so each camera confirms one
  case after ``--dwell-s``: the frame-to-case latency is from the confirming frame's stream time until the
  case report is in the durable outbox.
* ``naive``: per camera a thread with ``cv2.VideoCapture`` decoding every frame, paced at real time,
  Ultralytics ``YOLO(onnx).predict`` on every 50th frame (the same 0.5 fps) and a supervision
  ``PolygonZone.trigger`` on the result; one YOLO model per thread, as Ultralytics' thread-safety guide
  advises. Same ONNX file, thresholds and input size.

Each trial runs in its own Python process (clean memory and CPU accounting): CPU is process CPU time /
wall time over the window (cores), memory per camera is (RSS during the window - RSS after loading the
model, before any camera) / K. Also measured: raw ONNX Runtime throughput of the same model on the same
input (``session.run`` on a prepared tensor, before and after the saturation trials), and the daemon's
analysed fps when inference-bound: ``--saturate-cameras`` realtime cameras (more than the detector can
serve) and the same number of files read as fast as the detector takes them (no realtime pacing).

Every sample is kept in the JSON document (one per run); one CSV row per trial is appended::

    .venv/bin/python -m benchmarks.bench_pipeline
    .venv/bin/python -m benchmarks.bench_pipeline --window-s 30 --budget-s 900
    .venv/bin/python -m benchmarks.bench_pipeline --model models/yolox-nano-coco.yaml --systems streetwatch

The default model is a yolo11n-size network at 640 exported with Ultralytics from ``yolo11n.yaml`` (random
weights: speed only) through :func:`detector.export.export_model`, cached in ``benchmarks/.cache/models``.
"""

from __future__ import annotations

import argparse
import csv
import datetime as dt
import gc
import json
import logging
import math
import os
import platform
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import asdict, dataclass, field
from fractions import Fraction
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt

from benchmarks.common import cpu_model, package_version, write_json

REPO = Path(__file__).resolve().parents[1]
DEFAULT_VIDEO = Path("/usr/share/doc/opencv-doc/examples/data/vtest.avi")
DEFAULT_CACHE = REPO / "benchmarks" / ".cache"
DEFAULT_ARCH = "yolo11n.yaml"  # exported once to <cache>/models/yolo11n-640.onnx (random weights)
PROG = "python -m benchmarks.bench_pipeline"
CSV_NAME = "bench_pipeline.csv"
SYSTEMS = ("streetwatch", "naive")
SATURATE_MODES = ("realtime", "files")
VIOLATION = "illegal_parking"
# vtest.avi's parked van (see tests/pipeline/test_daemon_e2e.py), in normalised x, y.
ZONE = ((0.82, 0.05), (1.0, 0.05), (1.0, 0.2), (0.82, 0.2))
SCRIPTED_BOX = (0.84, 0.07, 0.94, 0.18)  # normalised xyxy; its bottom centre (0.89, 0.18) lies in ZONE
SCRIPTED_CONFIDENCE = 0.9
TARGET_CAMERA_RATIO = 8.0  # the issue: at least 8x the naive loop's cameras
TARGET_RAW_SHARE = 0.90  # the issue: analysed fps at least 90% of raw ONNX Runtime fps, inference-bound
STARTUP_ALLOWANCE_S = 120.0  # a trial process may take this long beyond its warm-up, window and tail
RSS_EVERY_S = 0.25
START_MARGIN_S = 1.0  # cameras start this long after the trial's set-up began (the daemon is built by then)
CSV_FIELDS = (
    "timestamp",
    "system",
    "mode",
    "cameras",
    "passed",
    "reason",
    "model",
    "clip",
    "window_s",
    "rate_min",
    "lag_p50_ms",
    "lag_p90_ms",
    "lag_p99_ms",
    "lag_growth_s",
    "analysed_fps",
    "cpu_cores",
    "machine_busy_cores",
    "other_cores",
    "attempt",
    "disturbed",
    "rss_mb",
    "rss_per_camera_mb",
    "case_p50_ms",
    "case_p99_ms",
    "inference_busy",
    "loadavg_1m",
)

Frame = npt.NDArray[np.uint8]
log = logging.getLogger("bench_pipeline")


# --------------------------------------------------------------------------------------------------
# Inputs: the clip and the model
# --------------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class ClipSpec:
    """How the real clip is re-encoded: size, rate, keyframe interval, length, bit rate."""

    height: int = 1080
    fps: int = 25
    gop_s: float = 2.0
    seconds: float | None = None  # None: the whole source, cut to whole GOPs
    bit_rate: int = 4_000_000  # a typical 1080p25 camera stream

    @property
    def width(self) -> int:
        return round(self.height * 16 / 9) // 2 * 2

    @property
    def gop(self) -> int:
        return max(1, round(self.gop_s * self.fps))


def clip_path(source: Path, cache: Path, spec: ClipSpec) -> Path:
    length = "all" if spec.seconds is None else f"{spec.seconds:g}s"
    name = (
        f"{source.stem}_{spec.width}x{spec.height}p{spec.fps}_gop{spec.gop}_{spec.bit_rate // 1000}k_{length}"
    )
    return cache / "clips" / f"{name}.mp4"


def prepare_clip(source: Path, cache: Path, spec: ClipSpec) -> Path:
    """``source`` re-encoded to H.264 per ``spec`` (once; cached), as many whole GOPs as fit, so that a
    looping replay keeps a keyframe every ``gop_s`` across the loop."""
    target = clip_path(source, cache, spec)
    if target.exists():
        return target
    if not source.is_file():
        raise FileNotFoundError(f"{source}: the clip to re-encode is missing (apt-get install opencv-doc)")
    target.parent.mkdir(parents=True, exist_ok=True)
    scratch = target.with_suffix(".part.mp4")
    frames = _encode(source, scratch, spec)
    if frames < spec.gop:
        scratch.unlink(missing_ok=True)
        raise ValueError(f"{source}: too short for one {spec.gop_s:g} s GOP at {spec.fps} fps")
    scratch.replace(target)
    return target


def _source_frame_count(source: Path) -> tuple[int, float]:
    """(frames, fps) of ``source``'s first video stream, counting packets when the header does not say."""
    import av

    with av.open(str(source)) as container:
        stream = container.streams.video[0]
        rate = float(stream.average_rate or stream.guessed_rate or 25)
        count = stream.frames or sum(1 for p in container.demux(stream) if p.size)
    return count, rate


def _encode(source: Path, target: Path, spec: ClipSpec) -> int:
    """Encode; returns the frames written. Frames are repeated to reach ``spec.fps`` (vtest is 10 fps)."""
    import av
    from av.video.frame import PictureType

    count, source_fps = _source_frame_count(source)
    whole = math.floor(count / source_fps * spec.fps)
    if spec.seconds is not None:
        whole = min(whole, round(spec.seconds * spec.fps))
    limit = whole // spec.gop * spec.gop
    written = 0
    with av.open(str(source)) as src, av.open(str(target), "w", format="mp4") as dst:
        stream = dst.add_stream("libx264", rate=spec.fps)
        stream.width, stream.height, stream.pix_fmt = spec.width, spec.height, "yuv420p"
        stream.bit_rate = spec.bit_rate
        stream.options = {
            "preset": "veryfast",
            "g": str(spec.gop),
            "keyint_min": str(spec.gop),
            "bf": "0",
            "sc_threshold": "0",
        }
        for index, frame in enumerate(src.decode(video=0)):
            if written >= limit:
                break
            scaled = frame.reformat(width=spec.width, height=spec.height, format="yuv420p")
            scaled.pict_type = PictureType.NONE  # x264 would honour the source's I-frames: keep GOPs even
            while written < limit and written / spec.fps < (index + 1) / source_fps:
                scaled.pts, scaled.time_base = written, Fraction(1, spec.fps)
                dst.mux(stream.encode(scaled))
                written += 1
        dst.mux(stream.encode(None))
    return written


def first_frame(clip: Path) -> Frame:
    import av

    with av.open(str(clip)) as container:
        for frame in container.decode(video=0):
            return np.ascontiguousarray(frame.to_ndarray(format="bgr24"), dtype=np.uint8)
    raise ValueError(f"{clip}: no video frame")


def default_model(cache: Path) -> Path:
    """The yolo11n-size model at 640 (random weights), exported once with Ultralytics into the cache."""
    from detector.export import export_model

    card = cache / "models" / "yolo11n-640.yaml"
    if not card.exists():
        export_model(Path(DEFAULT_ARCH), out_dir=card.parent, imgsz=640, name=card.stem, overwrite=True)
    return card


@dataclass(frozen=True)
class ModelFacts:
    """What the trials need to know about the model, read once by the main process."""

    model: str  # the card or ONNX file given
    onnx: str
    name: str
    layout: str
    input_hw: tuple[int, int]
    fixed_batch: int | None
    confidence: float
    iou: float
    max_detections: int
    violation_class: str  # the class mapped to illegal_parking (and used for the scripted car)
    violation_class_id: int
    ultralytics: bool  # whether Ultralytics can run it (the naive loop)


def model_facts(model: Path) -> ModelFacts:
    from detector import Detector

    detector = Detector(model, warmup=False)
    names = detector.class_names
    class_id = names.index("car") if "car" in names else min(2, len(names) - 1)
    card = detector.card
    facts = ModelFacts(
        model=str(model),
        onnx=str(card.path),
        name=card.name,
        layout=card.layout.value,
        input_hw=(int(card.input.size_hw[0]), int(card.input.size_hw[1])),
        fixed_batch=detector.fixed_batch,
        confidence=detector.confidence,
        iou=detector.iou,
        max_detections=detector.max_detections,
        violation_class=names[class_id],
        violation_class_id=class_id,
        ultralytics=bool(detector.loaded.info.is_ultralytics),
    )
    del detector
    gc.collect()
    return facts


# --------------------------------------------------------------------------------------------------
# Raw ONNX Runtime throughput
# --------------------------------------------------------------------------------------------------


def measure_raw(
    model: str, frame: Frame, *, threads: int | None, batch: int, seconds: float
) -> dict[str, Any]:
    """``session.run`` on a tensor prepared once from ``frame`` (batch ``batch``), for ``seconds``."""
    from detector import Detector

    detector = Detector(model, intra_op_threads=threads)
    size = detector.fixed_batch or batch
    tensor, _ = detector.preprocessor([frame] * size, batch_size=detector.fixed_batch)
    feeds = {detector.input_name: tensor.copy()}  # the preprocessor reuses its buffer
    outputs = [detector.output_name]
    for _ in range(2):
        detector.session.run(outputs, feeds)
    samples: list[float] = []
    started, cpu_started = time.perf_counter(), time.process_time()
    while time.perf_counter() - started < seconds or len(samples) < 3:
        t = time.perf_counter()
        detector.session.run(outputs, feeds)
        samples.append((time.perf_counter() - t) * 1e3)
    cpu_ms = (time.process_time() - cpu_started) * 1e3
    del detector
    gc.collect()
    stats = percentiles_ms(samples)
    stats["batch"] = size
    stats["fps"] = 1e3 * size * len(samples) / sum(samples)
    stats["cpu_ms_per_frame"] = cpu_ms / (size * len(samples))  # all of ORT's threads, spinning included
    stats["samples_ms"] = [round(v, 3) for v in samples]
    return stats


def measure_sample_cpu(clip: Path, input_hw: tuple[int, int], samples: int = 24) -> dict[str, float]:
    """CPU ms to turn one keyframe of ``clip`` into what the daemon analyses: demux, decode, full-size BGR
    (evidence) and the detector-size copy, single-threaded as on a box busy with inference."""
    import av

    height, width = input_hw
    cpu: list[float] = []
    with av.open(str(clip)) as container:
        stream = container.streams.video[0]
        stream.codec_context.skip_frame = "NONKEY"
        stream.thread_type = "NONE"
        for packet in container.demux(stream):
            t = time.process_time()
            for frame in packet.decode():
                frame.to_ndarray(format="bgr24")
                scale = min(height / frame.height, width / frame.width, 1.0)
                frame.reformat(
                    width=round(frame.width * scale), height=round(frame.height * scale), format="bgr24"
                ).to_ndarray()
                cpu.append((time.process_time() - t) * 1e3)
                t = time.process_time()
            if len(cpu) >= samples:
                break
    return {"keyframes": len(cpu), "cpu_ms_per_sample": float(np.median(cpu)) if cpu else 0.0}


def ceilings(raw: dict[str, Any], sample: dict[str, float], target_fps: float) -> dict[str, Any]:
    """What no system can beat on this box when every sample is decoded and analysed: each analysed frame
    costs one inference's CPU plus one keyframe's decode and conversion, on ``os.cpu_count()`` cores."""
    per_frame = raw["cpu_ms_per_frame"] + sample["cpu_ms_per_sample"]
    fps = min(raw["fps"], (os.cpu_count() or 1) * 1e3 / per_frame) if per_frame else raw["fps"]
    return {
        **sample,
        "inference_cpu_ms_per_frame": raw["cpu_ms_per_frame"],
        "analysed_fps_max": fps,
        "raw_share_max": fps / raw["fps"] if raw["fps"] else None,
        "cameras_max": fps / target_fps,
    }


# --------------------------------------------------------------------------------------------------
# A trial (runs in its own process): K cameras of one system for warm-up + window + tail seconds
# --------------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class TrialSpec:
    system: str  # streetwatch | naive
    cameras: int
    facts: ModelFacts
    clip: str
    target_fps: float
    warmup_s: float
    window_s: float
    tail_s: float
    workdir: str
    realtime: bool = True  # False: files read as fast as the detector takes them (streetwatch only)
    threads: int | None = None
    batch_size: int = 8
    dwell_s: float = 10.0
    scripted_event: bool = True
    keyframes: bool = True  # the daemon decodes keyframes only (GOP = sampling interval); else fps sampling

    @property
    def mode(self) -> str:
        return "realtime" if self.realtime else "files"

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> TrialSpec:
        facts = dict(data["facts"])
        facts["input_hw"] = tuple(facts["input_hw"])
        return cls(**{**data, "facts": ModelFacts(**facts)})


@dataclass
class Recorder:
    """Every analysed frame, case and detector call of a trial (appends are atomic under the GIL)."""

    frames: list[tuple[int, float, float]] = field(default_factory=list)  # camera, stream t, result t
    cases: list[tuple[int, float, float]] = field(default_factory=list)  # camera, confirmed t, in outbox t
    batches: list[tuple[float, float, int]] = field(default_factory=list)  # start t, seconds, frames


@dataclass
class Window:
    """What the trial process saw of itself and the machine during the measurement window."""

    start: float
    end: float
    cpu_s: float
    machine_busy_s: float
    rss_mb: list[float]
    loadavg: tuple[float, float]


def camera_id(index: int) -> str:
    return f"cam-{index:03d}"


def camera_index(camera: str) -> int:
    return int(camera.rsplit("-", 1)[1])


def stagger_s(spec: TrialSpec, index: int) -> float:
    """Start offset of camera ``index``: phases spread evenly over one sampling interval."""
    return index / spec.cameras / spec.target_fps if spec.realtime else 0.0


def observe(spec: TrialSpec, started: float, stop_early: Callable[[], str | None]) -> Window:
    """Wait out the warm-up, measure the window (CPU time, machine CPU, RSS every 0.25 s), wait the tail."""
    import psutil

    proc = psutil.Process()
    _sleep_until(started + spec.warmup_s, stop_early)
    start, cpu0, busy0, load0 = time.time(), _cpu_s(proc), _machine_busy_s(), os.getloadavg()[0]
    rss: list[float] = []
    end = start + spec.window_s
    while time.time() < end and stop_early() is None:
        rss.append(proc.memory_info().rss / 2**20)
        time.sleep(min(RSS_EVERY_S, max(end - time.time(), 0.0)))
    end = time.time()
    window = Window(
        start=start,
        end=end,
        cpu_s=_cpu_s(proc) - cpu0,
        machine_busy_s=_machine_busy_s() - busy0,
        rss_mb=rss or [proc.memory_info().rss / 2**20],
        loadavg=(load0, os.getloadavg()[0]),
    )
    _sleep_until(end + spec.tail_s, stop_early)
    return window


def _sleep_until(deadline: float, stop_early: Callable[[], str | None]) -> None:
    while time.time() < deadline and stop_early() is None:
        time.sleep(min(0.1, max(deadline - time.time(), 0.0)))


def _cpu_s(proc: Any) -> float:
    times = proc.cpu_times()
    return float(times.user + times.system)


def _machine_busy_s() -> float:
    import psutil

    times = psutil.cpu_times()
    idle = float(times.idle) + float(getattr(times, "iowait", 0.0))
    return float(sum(float(t) for t in times)) - idle


def rss_now_mb() -> float:
    import psutil

    return float(psutil.Process().memory_info().rss / 2**20)


def trial_document(
    spec: TrialSpec, window: Window, recorder: Recorder, rss_base_mb: float, errors: list[str]
) -> dict[str, Any]:
    return {
        "spec": asdict(spec),
        "window": asdict(window),
        "rss_base_mb": rss_base_mb,
        "errors": errors,
        "frames": [[c, round(s, 4), round(d, 4)] for c, s, d in recorder.frames],
        "cases": [[c, round(s, 4), round(d, 4)] for c, s, d in recorder.cases],
        "batches": [[round(t, 4), round(s, 5), n] for t, s, n in recorder.batches],
    }


# --- the streetwatch side ---


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
        "realtime": spec.realtime,
        "loop": True,
        "sample": {"mode": "keyframes"} if spec.keyframes else {"mode": "fps", "fps": spec.target_fps},
        "skip_unchanged": False,  # every sample is analysed: the load the issue asks for
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
            "scheduler": {"drain_timeout_s": 0},
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

    def detect_batch(self, frames: Sequence[Frame]) -> list[Any]:
        started = time.time()
        t = time.perf_counter()
        results: list[Any] = self.inner.detect_batch(frames)
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

    def next_frame(self, timeout: float) -> Any:
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
    from pipeline.sources import CameraSource

    detector = Detector(spec.facts.model, intra_op_threads=spec.threads)
    rss_base = rss_now_mb()
    epoch = time.time() + START_MARGIN_S
    config = daemon_config(spec, epoch)
    recorder = Recorder()
    input_hw = spec.facts.input_hw

    def source(camera: Any) -> StaggeredSource:  # what the daemon builds, started with a phase offset
        inner = CameraSource(camera, input_hw=input_hw, queue_size=2 * spec.batch_size)
        return StaggeredSource(inner, epoch + stagger_s(spec, camera_index(camera.id)))

    scripted = spec.facts.violation_class_id if spec.scripted_event else None
    daemon = Daemon(
        config,
        detector=TimedDetector(detector, recorder),
        source_factory=source,
        rules=RecordingRules(RuleEngine(config, detector.class_names), recorder, scripted),
    )
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


# --- the naive loop ---


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


def trial_main(spec_path: Path, out_path: Path) -> int:
    """Entry point of a trial process: read the spec, run, write the result document."""
    logging.basicConfig(level=logging.WARNING, format="%(asctime)s %(name)s %(levelname)s %(message)s")
    os.environ.setdefault("YOLO_OFFLINE", "1")
    os.environ.setdefault("YOLO_VERBOSE", "False")
    spec = TrialSpec.from_json(json.loads(spec_path.read_text(encoding="utf-8")))
    document = run_streetwatch(spec) if spec.system == "streetwatch" else run_naive(spec)
    out_path.write_text(json.dumps(document), encoding="utf-8")
    return 0


# --------------------------------------------------------------------------------------------------
# Judging a trial
# --------------------------------------------------------------------------------------------------


def percentiles_ms(samples_ms: Sequence[float]) -> dict[str, Any]:
    if not samples_ms:
        return {"n": 0, "p50_ms": None, "p90_ms": None, "p99_ms": None, "max_ms": None, "mean_ms": None}
    values = np.asarray(samples_ms, dtype=np.float64)
    p50, p90, p99 = np.percentile(values, [50, 90, 99])
    return {
        "n": len(values),
        "p50_ms": float(p50),
        "p90_ms": float(p90),
        "p99_ms": float(p99),
        "max_ms": float(values.max()),
        "mean_ms": float(values.mean()),
    }


@dataclass(frozen=True)
class Criteria:
    min_rate: float
    max_lag_s: float


def judge(document: dict[str, Any], criteria: Criteria) -> dict[str, Any]:
    """The trial's figures and verdict: no backlog = every camera kept up, and the p99 lag stayed bounded."""
    spec, window = document["spec"], document["window"]
    start, end = window["start"], window["end"]
    span = end - start
    k = spec["cameras"]
    frames = np.asarray(document["frames"], dtype=np.float64).reshape(-1, 3)
    due = (frames[:, 1] >= start) & (frames[:, 1] < end)
    counts = np.bincount(frames[due, 0].astype(np.int64), minlength=k)[:k]
    expected = span * spec["target_fps"]
    rates = counts / expected if expected > 0 else np.zeros(k)
    # Files not paced run ahead of the wall clock: their stream times say nothing about lag.
    lags_ms = ((frames[due, 2] - frames[due, 1]) * 1e3).tolist() if spec["realtime"] else []
    done = (frames[:, 2] >= start) & (frames[:, 2] < end)
    summary: dict[str, Any] = {
        "system": spec["system"],
        "mode": "realtime" if spec["realtime"] else "files",
        "cameras": k,
        "window_s": span,
        "expected_per_camera": expected,
        "analysed_per_camera": counts.tolist(),
        "rate_min": float(rates.min()) if k else 0.0,
        "rate_mean": float(rates.mean()) if k else 0.0,
        "lag": percentiles_ms(lags_ms),
        "lag_growth_s": lag_growth_s(frames[due], start, span) if spec["realtime"] else None,
        "analysed_fps": float(done.sum() / span) if span > 0 else 0.0,
        **resource_figures(document, k, span),
        **case_figures(document, realtime=spec["realtime"]),
        **inference_figures(document, span),
        **stage_figures(document),
    }
    summary["passed"], summary["reason"] = verdict(summary, document["errors"], criteria, spec["realtime"])
    return summary


def lag_growth_s(frames: npt.NDArray[np.float64], start: float, span: float) -> float | None:
    """Mean lag of the window's last third minus its first third: > 0 while a backlog builds up, < 0 while
    one from the start is being worked off (reported, not judged)."""
    offset = frames[:, 1] - start
    lags = frames[:, 2] - frames[:, 1]
    first, last = lags[offset < span / 3], lags[offset >= 2 * span / 3]
    if not len(first) or not len(last):
        return None
    return float(last.mean() - first.mean())


def verdict(
    summary: dict[str, Any], errors: list[str], criteria: Criteria, realtime: bool
) -> tuple[bool, str]:
    if errors:
        return False, "error: " + "; ".join(errors)[:300]
    if not realtime:
        return True, "files read as fast as the detector takes them (throughput only)"
    problems = []
    if summary["rate_min"] < criteria.min_rate:
        problems.append(
            f"slowest camera got {summary['rate_min']:.0%} of its frames (< {criteria.min_rate:.0%})"
        )
    p99 = summary["lag"]["p99_ms"]
    if p99 is None or p99 > criteria.max_lag_s * 1e3:
        shown = "no frame" if p99 is None else f"{p99 / 1e3:.2f} s"
        problems.append(f"p99 lag {shown} (> {criteria.max_lag_s:g} s)")
    return (not problems), ("; ".join(problems) or "no backlog")


def resource_figures(document: dict[str, Any], cameras: int, span: float) -> dict[str, Any]:
    window = document["window"]
    rss = float(np.median(window["rss_mb"]))
    base = float(document["rss_base_mb"])
    return {
        "cpu_cores": window["cpu_s"] / span if span > 0 else 0.0,
        "machine_busy_cores": window["machine_busy_s"] / span if span > 0 else 0.0,
        "other_cores": (window["machine_busy_s"] - window["cpu_s"]) / span if span > 0 else 0.0,
        "rss_mb": rss,
        "rss_peak_mb": float(max(window["rss_mb"])),
        "rss_base_mb": base,
        "rss_per_camera_mb": (rss - base) / cameras if cameras else 0.0,
        "loadavg_1m": list(window["loadavg"]),
    }


def case_figures(document: dict[str, Any], *, realtime: bool) -> dict[str, Any]:
    cases = document["cases"]
    latencies = [(put - confirmed) * 1e3 for _, confirmed, put in cases] if realtime else []
    return {"cases": len(cases), "frame_to_case": percentiles_ms(latencies)}


def stage_figures(document: dict[str, Any]) -> dict[str, Any]:
    """The daemon's per-stage means (ms; batch_frames in frames) and skipped frames, whole trial."""
    stages = document.get("daemon_metrics")
    if not stages:
        return {}
    means = {
        stage: None if v["mean"] is None else v["mean"] * (1 if stage == "batch_frames" else 1e3)
        for stage, v in stages.items()
        if stage != "skipped"
    }
    return {"daemon_stage_means": means, "daemon_skipped": stages["skipped"]}


def inference_figures(document: dict[str, Any], span: float) -> dict[str, Any]:
    batches = document["batches"]
    if not batches:
        return {}
    start, end = document["window"]["start"], document["window"]["end"]
    inside = [(s, n) for t, s, n in batches if start <= t < end]
    busy = sum(s for s, _ in inside)
    return {
        "inference_busy": busy / span if span > 0 else 0.0,
        "batch_frames_mean": float(np.mean([n for _, n in inside])) if inside else 0.0,
        "inference_ms_per_frame": 1e3 * busy / max(sum(n for _, n in inside), 1),
    }


# --------------------------------------------------------------------------------------------------
# Searching K
# --------------------------------------------------------------------------------------------------


class KSearch:
    """Largest K that passes: double from ``start`` until a failure (or ``max_k``), then bisect."""

    def __init__(self, start: int, max_k: int) -> None:
        self.max_k = max(1, max_k)
        self.start = min(max(1, start), self.max_k)
        self.passed = 0  # largest K that passed
        self.failed: int | None = None  # smallest K that failed
        self.tried: dict[int, bool] = {}

    def next_k(self) -> int | None:
        """The next K to try, or None when the search is done."""
        if not self.tried:
            return self.start
        if self.failed is None:  # still doubling
            if self.passed >= self.max_k:
                return None
            return min(self.passed * 2, self.max_k)
        if self.failed - self.passed <= 1:
            return None
        return (self.passed + self.failed) // 2

    def record(self, k: int, passed: bool) -> None:
        self.tried[k] = passed
        if passed:
            self.passed = max(self.passed, k)
        else:
            self.failed = k if self.failed is None else min(self.failed, k)

    @property
    def done(self) -> bool:
        return self.next_k() is None

    def result(self) -> dict[str, Any]:
        return {
            "cameras": self.passed,
            "first_failure": self.failed,
            "exact": self.done,
            "tried": {str(k): v for k, v in sorted(self.tried.items())},
        }


# --------------------------------------------------------------------------------------------------
# The run
# --------------------------------------------------------------------------------------------------


def parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    p = argparse.ArgumentParser(prog="bench_pipeline", description=__doc__.split("\n")[0])
    p.add_argument("--model", type=Path, help="Model card or ONNX file (default: yolo11n at 640, exported).")
    p.add_argument("--video", type=Path, default=DEFAULT_VIDEO, help="Real clip to re-encode (vtest.avi).")
    p.add_argument("--clip-height", type=int, default=1080, help="Re-encoded height (16:9 width).")
    p.add_argument("--clip-fps", type=int, default=25, help="Re-encoded frame rate.")
    p.add_argument("--clip-seconds", type=float, help="Re-encoded length (default: the whole clip).")
    p.add_argument(
        "--gop-s",
        type=float,
        help="Keyframe interval of the re-encoded clip (default 1 / target fps: the daemon decodes keyframes "
        "only; any other value makes it sample at the target fps, decoding every frame).",
    )
    p.add_argument("--target-fps", type=float, default=0.5, help="Analysed frames per second per camera.")
    p.add_argument(
        "--warmup-s",
        type=float,
        default=15.0,
        help="Per trial, before the window (the daemon's sources probe each stream's GOP at start by "
        "decoding every frame of its first 2 s: a burst of K x 50 frames to absorb).",
    )
    p.add_argument("--window-s", type=float, default=20.0, help="Per trial, the measurement window.")
    p.add_argument("--min-rate", type=float, default=0.95, help="No backlog: share of due frames analysed.")
    p.add_argument("--max-lag-s", type=float, help="No backlog: p99 lag bound (default: 1 / target fps).")
    p.add_argument("--systems", default=",".join(SYSTEMS), help=f"Comma-separated subset of {SYSTEMS}.")
    p.add_argument("--start-cameras", type=int, help="First K (default: 1 naive, an estimate streetwatch).")
    p.add_argument("--max-cameras", type=int, default=128, help="Largest K tried.")
    p.add_argument("--budget-s", type=float, default=420.0, help="Time for the two K searches.")
    p.add_argument(
        "--saturate-cameras",
        type=int,
        help="Inference-bound trials' K (default 1.25 x raw fps / target; 0 = skip).",
    )
    p.add_argument(
        "--saturate-modes", default="realtime,files", help="Inference-bound trials: realtime and/or files."
    )
    p.add_argument("--raw-seconds", type=float, default=10.0, help="Raw ONNX Runtime measurement, each.")
    p.add_argument("--threads", type=int, help="ONNX Runtime intra-op threads (default: its own choice).")
    p.add_argument("--batch-size", type=int, default=8, help="The daemon's detector.batch_size.")
    p.add_argument("--dwell-s", type=float, default=10.0, help="The zone rule's dwell (frame-to-case).")
    p.add_argument("--no-scripted-event", action="store_true", help="Do not add the scripted parked car.")
    p.add_argument("--cache", type=Path, default=DEFAULT_CACHE, help="Clip and model cache folder.")
    p.add_argument("--out", type=Path, default=Path("benchmarks/results"), help="JSON and CSV folder.")
    p.add_argument(
        "--max-other-cores",
        type=float,
        help="Repeat a trial during which other processes used more CPU than this (cores); default: never.",
    )
    p.add_argument(
        "--retries", type=int, default=2, help="With --max-other-cores: repeats per trial, at most."
    )
    p.add_argument("--quiet", action="store_true", help="Do not print progress and the table.")
    args = p.parse_args(argv)
    args.systems = [s.strip() for s in args.systems.split(",") if s.strip()]
    if not args.systems or set(args.systems) - set(SYSTEMS):
        p.error(f"--systems: expected a comma-separated subset of {','.join(SYSTEMS)}")
    args.saturate_modes = [m.strip() for m in args.saturate_modes.split(",") if m.strip()]
    if set(args.saturate_modes) - set(SATURATE_MODES):
        p.error(f"--saturate-modes: expected a comma-separated subset of {','.join(SATURATE_MODES)}")
    _check_positive(p, args)
    if not 0 < args.min_rate <= 1:
        p.error("--min-rate must be in (0, 1]")
    args.max_lag_s = args.max_lag_s or 1.0 / args.target_fps
    interval = 1.0 / args.target_fps  # a window of whole sampling intervals: every camera owes the same count
    args.window_s = math.ceil(args.window_s / interval - 1e-9) * interval
    args.gop_s = args.gop_s or 1.0 / args.target_fps
    return args


def _check_positive(p: argparse.ArgumentParser, args: argparse.Namespace) -> None:
    for name in (
        "clip_height",
        "clip_fps",
        "gop_s",
        "target_fps",
        "window_s",
        "max_cameras",
        "batch_size",
        "dwell_s",
        "raw_seconds",
        "budget_s",
    ):
        value = getattr(args, name)
        if value is not None and value <= 0:
            p.error(f"--{name.replace('_', '-')} must be positive")
    for name in ("warmup_s", "saturate_cameras", "start_cameras", "threads", "clip_seconds", "retries"):
        value = getattr(args, name)
        if value is not None and value < 0:
            p.error(f"--{name.replace('_', '-')} must not be negative")


@dataclass
class Run:
    """State of one benchmark run."""

    args: argparse.Namespace
    facts: ModelFacts
    clip: Path
    criteria: Criteria
    say: Callable[[str], None]
    trials: list[dict[str, Any]] = field(default_factory=list)
    started: float = field(default_factory=time.monotonic)

    def spec(self, system: str, cameras: int, *, realtime: bool = True) -> dict[str, Any]:
        a = self.args
        return {
            "system": system,
            "cameras": cameras,
            "facts": asdict(self.facts),
            "clip": str(self.clip),
            "target_fps": a.target_fps,
            "warmup_s": a.warmup_s,
            "window_s": a.window_s,
            "tail_s": self.criteria.max_lag_s + 1.0,
            "realtime": realtime,
            "threads": a.threads,
            "batch_size": a.batch_size,
            "dwell_s": a.dwell_s,
            "scripted_event": not a.no_scripted_event,
            "keyframes": abs(a.gop_s * a.target_fps - 1.0) < 1e-6,
        }

    def trial(self, system: str, cameras: int, *, realtime: bool = True) -> dict[str, Any]:
        """Run one trial in a fresh process; return its summary (the raw documents are kept too).

        With ``--max-other-cores``, a trial during which other processes used more CPU than that is
        repeated (at most ``--retries`` times); every attempt is kept, the last one counts.
        """
        spec = self.spec(system, cameras, realtime=realtime)
        mode = "realtime" if realtime else "files"
        limit = self.args.max_other_cores
        for attempt in range(self.args.retries + 1):
            self.say(f"trial {system} {mode} K={cameras} (attempt {attempt + 1}) ...")
            document = run_trial_process(spec, spec["warmup_s"] + spec["window_s"] + spec["tail_s"])
            summary = judge(document, self.criteria)
            summary["attempt"] = attempt + 1
            summary["disturbed"] = limit is not None and summary["other_cores"] > limit
            self.trials.append({"summary": summary, "document": document})
            verdict = "pass" if summary["passed"] else "FAIL"
            self.say(f"  -> {verdict}: {summary['reason']}; {short(summary)}")
            if not summary["disturbed"]:
                break
            self.say(f"  other processes used {summary['other_cores']:.2f} cores (> {limit:g}): disturbed")
        return summary

    def trial_cost_s(self) -> float:
        a = self.args
        return float(a.warmup_s + a.window_s + self.criteria.max_lag_s + 1.0 + 8.0)


def short(summary: dict[str, Any]) -> str:
    lag = summary["lag"]
    p99 = "-" if lag["p99_ms"] is None else f"{lag['p99_ms']:.0f}"
    growth = "" if summary["lag_growth_s"] is None else f" (growth {summary['lag_growth_s']:+.2f} s)"
    return (
        f"rate min {summary['rate_min']:.2f}, lag p99 {p99} ms{growth}, "
        f"{summary['analysed_fps']:.2f} fps analysed, "
        f"CPU {summary['cpu_cores']:.2f} cores, others {summary['other_cores']:.2f} cores"
    )


def run_trial_process(spec: dict[str, Any], expected_s: float) -> dict[str, Any]:
    """Run a trial in ``python -m benchmarks.bench_pipeline _trial SPEC OUT`` and read its document."""
    with tempfile.TemporaryDirectory(prefix="bench-pipeline-") as scratch:
        work = Path(scratch)
        spec_path, out_path = work / "spec.json", work / "result.json"
        spec_path.write_text(json.dumps({**spec, "workdir": str(work)}), encoding="utf-8")
        env = {**os.environ, "YOLO_OFFLINE": "1", "YOLO_VERBOSE": "False"}
        command = [sys.executable, "-m", "benchmarks.bench_pipeline", "_trial", str(spec_path), str(out_path)]
        try:
            done = subprocess.run(
                command,
                cwd=REPO,
                env=env,
                capture_output=True,
                text=True,
                timeout=expected_s + STARTUP_ALLOWANCE_S,
            )
        except subprocess.TimeoutExpired as exc:
            return failed_document(spec, f"trial process timed out after {exc.timeout:.0f} s")
        if done.returncode or not out_path.exists():
            return failed_document(
                spec, f"trial process exited {done.returncode}: {done.stderr.strip()[-800:]}"
            )
        document: dict[str, Any] = json.loads(out_path.read_text(encoding="utf-8"))
        document["stderr_tail"] = done.stderr.strip()[-2000:]
        return document


def failed_document(spec: dict[str, Any], error: str) -> dict[str, Any]:
    now = time.time()
    window = {
        "start": now,
        "end": now + 1.0,
        "cpu_s": 0.0,
        "machine_busy_s": 0.0,
        "rss_mb": [0.0],
        "loadavg": [0.0, 0.0],
    }
    return {
        "spec": spec,
        "window": window,
        "rss_base_mb": 0.0,
        "errors": [error],
        "frames": [],
        "cases": [],
        "batches": [],
    }


def search(run: Run, systems: list[str], starts: dict[str, int]) -> dict[str, dict[str, Any]]:
    """Both K searches, their trials alternating, within ``--budget-s``."""
    searches = {s: KSearch(starts[s], run.args.max_cameras) for s in systems}
    deadline = run.started + run.args.budget_s
    while True:
        active = [s for s in systems if not searches[s].done]
        if not active:
            break
        for system in active:
            if time.monotonic() + run.trial_cost_s() > deadline:
                run.say(
                    f"budget spent: {system} search stops between {searches[system].passed} and "
                    f"{searches[system].failed or searches[system].next_k()}"
                )
                return {s: searches[s].result() for s in systems}
            k = searches[system].next_k()
            if k is not None:
                searches[system].record(k, run.trial(system, k)["passed"])
    return {s: searches[s].result() for s in systems}


def saturation_cameras(args: argparse.Namespace, raw_fps: float, first_failure: int | None) -> int:
    """K for the inference-bound trials: 25% past the first K that had a backlog (more than the detector can
    serve, without drowning the box in decoding), else 1.25 x what raw inference could serve."""
    if args.saturate_cameras is not None:
        return int(args.saturate_cameras)
    if first_failure:
        return max(first_failure + 1, math.ceil(1.25 * first_failure))
    return int(max(args.batch_size, math.ceil(1.25 * raw_fps / args.target_fps)))


def saturate(run: Run, frame: Frame, first_failure: int | None) -> dict[str, Any]:
    """The daemon's analysed fps when inference-bound (realtime and/or files), and raw ORT fps just before
    and just after those trials."""
    a = run.args
    if a.saturate_cameras == 0:
        return {"skipped": "--saturate-cameras 0"}
    before = measure_raw(run.facts.model, frame, threads=a.threads, batch=a.batch_size, seconds=a.raw_seconds)
    run.say(f"raw ONNX Runtime before the inference-bound trials: {before['fps']:.2f} fps")
    k = saturation_cameras(a, before["fps"], first_failure)
    results: dict[str, Any] = {
        "cameras": k,
        "modes": list(a.saturate_modes),
        "raw_before": before["fps"],
        "raw_before_samples_ms": before.pop("samples_ms"),
        "raw_before_stats": before,
    }
    for mode in a.saturate_modes:
        results[mode] = run.trial("streetwatch", k, realtime=mode == "realtime")["analysed_fps"]
    after = measure_raw(run.facts.model, frame, threads=a.threads, batch=a.batch_size, seconds=a.raw_seconds)
    run.say(f"raw ONNX Runtime after the inference-bound trials: {after['fps']:.2f} fps")
    results["raw_after"] = after["fps"]
    results["raw_after_samples_ms"] = after.pop("samples_ms")
    results["raw_after_stats"] = after
    results["raw_fps"] = (results["raw_before"] + after["fps"]) / 2
    results["share_of_raw"] = {mode: results[mode] / results["raw_fps"] for mode in a.saturate_modes}
    return results


def targets(searched: dict[str, dict[str, Any]], saturation: dict[str, Any]) -> dict[str, Any]:
    found: dict[str, Any] = {"camera_ratio_min": TARGET_CAMERA_RATIO, "raw_share_min": TARGET_RAW_SHARE}
    if "streetwatch" in searched and "naive" in searched:
        ours, theirs = searched["streetwatch"]["cameras"], searched["naive"]["cameras"]
        found["camera_ratio"] = ours / theirs if theirs else None
        found["camera_ratio_met"] = (ours / theirs >= TARGET_CAMERA_RATIO) if theirs else ours > 0
    if saturation.get("share_of_raw"):
        found["raw_share"] = saturation["share_of_raw"]
        found["raw_share_met"] = {m: share >= TARGET_RAW_SHARE for m, share in found["raw_share"].items()}
    return found


def first_starts(args: argparse.Namespace, raw_fps: float) -> dict[str, int]:
    if args.start_cameras:
        return dict.fromkeys(SYSTEMS, args.start_cameras)
    estimate = raw_fps / args.target_fps / 2  # half of what inference alone could serve
    return {"streetwatch": 2 ** max(0, int(math.log2(max(estimate, 1.0)))), "naive": 1}


def machine_info() -> dict[str, Any]:
    import cv2
    import onnxruntime

    return {
        "cpu_count": os.cpu_count(),
        "cpu_model": cpu_model(),
        "platform": platform.platform(),
        "python": platform.python_version(),
        "onnxruntime": onnxruntime.__version__,
        "opencv": cv2.__version__,
        "ultralytics": package_version("ultralytics"),
        "supervision": package_version("supervision"),
        "av": package_version("av"),
        "loadavg": list(os.getloadavg()),
    }


def prepare(args: argparse.Namespace, say: Callable[[str], None]) -> tuple[ModelFacts, Path]:
    model = args.model or default_model(args.cache)
    clip_spec = ClipSpec(
        height=args.clip_height, fps=args.clip_fps, gop_s=args.gop_s, seconds=args.clip_seconds
    )
    say(
        f"clip: re-encoding {args.video} to {clip_spec.width}x{clip_spec.height} {clip_spec.fps} fps (cached)"
    )
    clip = prepare_clip(args.video, args.cache, clip_spec)
    return model_facts(model), clip


def main(argv: list[str] | None = None) -> dict[str, Any]:
    """Run the benchmark, write JSON and CSV into ``--out``, print a table, return the JSON document."""
    args = parse_args(argv)
    say: Callable[[str], None] = (
        (lambda _: None) if args.quiet else (lambda m: print(m, file=sys.stderr, flush=True))
    )
    facts, clip = prepare(args, say)
    systems = list(args.systems)
    skipped: dict[str, str] = {}
    if "naive" in systems and not facts.ultralytics:
        systems.remove("naive")
        skipped["naive"] = (
            f"{facts.name} is not an Ultralytics export (layout {facts.layout}): predict can't run it"
        )
    frame = first_frame(clip)
    machine = machine_info()
    raw = measure_raw(
        facts.model, frame, threads=args.threads, batch=args.batch_size, seconds=args.raw_seconds
    )
    say(f"raw ONNX Runtime: {raw['fps']:.2f} fps (batch {raw['batch']}, p50 {raw['p50_ms']:.1f} ms)")
    ceiling = ceilings(raw, measure_sample_cpu(clip, facts.input_hw), args.target_fps)
    say(
        f"ceiling: {raw['cpu_ms_per_frame']:.0f} CPU ms per inference + "
        f"{ceiling['cpu_ms_per_sample']:.0f} per keyframe decoded -> at most "
        f"{ceiling['analysed_fps_max']:.2f} fps analysed "
        f"({ceiling['raw_share_max']:.0%} of raw), {ceiling['cameras_max']:.1f} cameras"
    )
    run = Run(args, facts, clip, Criteria(args.min_rate, args.max_lag_s), say)
    searched = search(run, systems, first_starts(args, raw["fps"])) if systems else {}
    failure = searched.get("streetwatch", {}).get("first_failure")
    saturation = saturate(run, frame, failure) if "streetwatch" in systems else {}
    document = {
        "benchmark": "bench_pipeline",
        "timestamp": dt.datetime.now(dt.UTC).isoformat(timespec="milliseconds"),
        "command": " ".join([PROG, *(sys.argv[1:] if argv is None else argv)]),
        "machine": {**machine, "loadavg_end": list(os.getloadavg())},
        "config": {
            **{k: (str(v) if isinstance(v, Path) else v) for k, v in vars(args).items()},
            "model_facts": asdict(facts),
            "clip": str(clip),
        },
        "raw": raw,
        "ceiling": ceiling,
        "search": searched,
        "saturation": saturation,
        "targets": targets(searched, saturation),
        "skipped": skipped,
        "trials": run.trials,
        "elapsed_s": time.monotonic() - run.started,
    }
    args.out.mkdir(parents=True, exist_ok=True)
    name = f"bench_pipeline_{facts.name}"
    document["json_path"] = str(write_json(args.out, name, document, indent=None))
    document["csv_path"] = str(append_csv(args.out, document))
    if not args.quiet:
        print(format_table(document))
    return document


# --------------------------------------------------------------------------------------------------
# Output
# --------------------------------------------------------------------------------------------------


def csv_rows(document: dict[str, Any]) -> Iterator[dict[str, Any]]:
    config = document["config"]
    for trial in document["trials"]:
        s = trial["summary"]
        yield {
            "timestamp": document["timestamp"],
            "system": s["system"],
            "mode": s["mode"],
            "cameras": s["cameras"],
            "passed": s["passed"],
            "reason": s["reason"],
            "model": config["model_facts"]["name"],
            "clip": Path(config["clip"]).name,
            "window_s": f"{s['window_s']:.1f}",
            "rate_min": f"{s['rate_min']:.3f}",
            "lag_p50_ms": _fmt(s["lag"]["p50_ms"]),
            "lag_p90_ms": _fmt(s["lag"]["p90_ms"]),
            "lag_p99_ms": _fmt(s["lag"]["p99_ms"]),
            "lag_growth_s": _fmt(s["lag_growth_s"], 3),
            "analysed_fps": f"{s['analysed_fps']:.3f}",
            "cpu_cores": f"{s['cpu_cores']:.3f}",
            "machine_busy_cores": f"{s['machine_busy_cores']:.3f}",
            "other_cores": f"{s['other_cores']:.3f}",
            "attempt": s.get("attempt", 1),
            "disturbed": s.get("disturbed", False),
            "rss_mb": f"{s['rss_mb']:.1f}",
            "rss_per_camera_mb": f"{s['rss_per_camera_mb']:.2f}",
            "case_p50_ms": _fmt(s["frame_to_case"]["p50_ms"]),
            "case_p99_ms": _fmt(s["frame_to_case"]["p99_ms"]),
            "inference_busy": _fmt(s.get("inference_busy"), 3),
            "loadavg_1m": f"{s['loadavg_1m'][0]:.2f}",
        }


def _ok(summary: dict[str, Any]) -> str:
    """yes / no, with * when other processes disturbed the trial (see --max-other-cores)."""
    return ("yes" if summary["passed"] else "no") + ("*" if summary.get("disturbed") else "")


def _fmt(value: float | None, digits: int = 1) -> str:
    return "" if value is None else f"{value:.{digits}f}"


def append_csv(out: Path, document: dict[str, Any]) -> Path:
    path = out / CSV_NAME
    new = not path.exists()
    with path.open("a", newline="", encoding="utf-8") as handle:
        writer = csv.DictWriter(handle, fieldnames=CSV_FIELDS)
        if new:
            writer.writeheader()
        writer.writerows(csv_rows(document))
    return path


def format_table(document: dict[str, Any]) -> str:
    facts = document["config"]["model_facts"]
    lines = [
        f"{facts['name']} ({facts['layout']}, input {facts['input_hw']}), "
        f"clip {Path(document['config']['clip']).name}, "
        f"{document['machine']['cpu_count']} CPUs, load {document['machine']['loadavg'][0]:.2f} -> "
        f"{document['machine']['loadavg_end'][0]:.2f}",
        f"{'system':<12}{'mode':<9}{'K':>4} {'ok':<5}{'rate':>6}{'lag p50':>9}{'lag p99':>9}{'fps':>7}"
        f"{'CPU':>6}{'other':>6}{'MB/cam':>8}{'case p50':>10}{'case p99':>10}",
    ]
    for trial in document["trials"]:
        s = trial["summary"]
        lines.append(
            f"{s['system']:<12}{s['mode']:<9}{s['cameras']:>4} {_ok(s):<5}"
            f"{s['rate_min']:>6.2f}{_fmt(s['lag']['p50_ms'], 0):>9}{_fmt(s['lag']['p99_ms'], 0):>9}"
            f"{s['analysed_fps']:>7.2f}{s['cpu_cores']:>6.2f}{s['other_cores']:>6.2f}"
            f"{s['rss_per_camera_mb']:>8.1f}{_fmt(s['frame_to_case']['p50_ms'], 0):>10}"
            f"{_fmt(s['frame_to_case']['p99_ms'], 0):>10}"
        )
    lines.append(f"raw ONNX Runtime: {document['raw']['fps']:.2f} fps (batch {document['raw']['batch']})")
    for system, found in document["search"].items():
        bound = "" if found["exact"] else f" (search stopped; first failure {found['first_failure']})"
        lines.append(f"cameras per box, {system}: {found['cameras']}{bound}")
    lines.extend(_target_lines(document))
    lines.extend(f"skipped {name}: {why}" for name, why in document["skipped"].items())
    return "\n".join(lines)


def _target_lines(document: dict[str, Any]) -> list[str]:
    t, sat, ceiling = document["targets"], document["saturation"], document["ceiling"]
    lines = [
        f"ceiling on this box (every sample decoded and analysed): {ceiling['analysed_fps_max']:.2f} fps = "
        f"{ceiling['raw_share_max']:.0%} of raw, {ceiling['cameras_max']:.1f} cameras"
    ]
    if "camera_ratio" in t:
        ratio = "n/a (naive: 0)" if t["camera_ratio"] is None else f"{t['camera_ratio']:.2f}x"
        lines.append(
            f"streetwatch / naive cameras: {ratio} (target >= {TARGET_CAMERA_RATIO:g}x: "
            f"{'met' if t['camera_ratio_met'] else 'NOT met'})"
        )
    if "raw_share" in t:
        lines.append(
            f"inference-bound, K={sat['cameras']}: raw ONNX Runtime {sat['raw_fps']:.2f} fps "
            f"({sat['raw_before']:.2f} before, {sat['raw_after']:.2f} after)"
        )
        lines.extend(
            f"  {mode}: {sat[mode]:.2f} fps analysed = {share:.0%} of raw "
            f"(target >= {TARGET_RAW_SHARE:.0%}: {'met' if t['raw_share_met'][mode] else 'NOT met'})"
            for mode, share in t["raw_share"].items()
        )
    return lines


if __name__ == "__main__":
    if len(sys.argv) == 4 and sys.argv[1] == "_trial":
        sys.exit(trial_main(Path(sys.argv[2]), Path(sys.argv[3])))
    main()
