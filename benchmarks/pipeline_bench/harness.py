"""The trial harness, common to both systems: a trial's spec, what it records, the measurement window
(CPU, RSS, machine load) and the document a trial process writes."""

from __future__ import annotations

import os
import re
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from typing import Any

from benchmarks.pipeline_bench.model import ModelFacts

RSS_EVERY_S = 0.25


@dataclass(frozen=True)
class TrialSpec:
    system: str  # streetwatch | lean (the daemon with the lean options) | naive
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
    batch_size: int = 1
    dwell_s: float = 10.0
    scripted_event: bool = True
    keyframes: bool = True  # the daemon decodes keyframes only (GOP = sampling interval); else fps sampling
    detect_clip: str | None = None  # streetwatch: the substream the cameras detect on (``clip`` is the main)
    zone_roi: bool = False  # streetwatch: cameras[].zone_roi (the model runs on the zone's crop)
    zone_gating: bool = False  # streetwatch: cameras[].zone_gating (unchanged zones reuse detections)
    drop_before_decode: bool = True  # streetwatch: scheduler.drop_before_decode (the daemon's default)
    inference_workers: int = 1  # streetwatch: scheduler.inference_workers (detector calls at once)
    event_cpu_share: float | None = None  # streetwatch: scheduler.event_cpu_share (None: the daemon's)
    event_queue: int | None = None  # streetwatch: scheduler.event_queue (None: the daemon's)

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
    thread_cpu_s: dict[str, float] = field(default_factory=dict)  # CPU seconds per group of threads


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
    threads0 = thread_cpu_s(proc)
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
        thread_cpu_s=thread_groups(threads0, thread_cpu_s(proc)),
    )
    _sleep_until(end + spec.tail_s, stop_early)
    return window


def thread_cpu_s(proc: Any) -> dict[int, float]:
    """CPU seconds (user + system) of each of the process's OS threads, by thread id."""
    return {t.id: float(t.user_time + t.system_time) for t in proc.threads()}


def thread_group(name: str | None) -> str:
    """The breakdown's group of a thread: Python threads by role (one group for all camera threads, one
    for all main-stream readers), native threads (ONNX Runtime's pool, FFmpeg's) together."""
    if name is None:
        return "native (ONNX Runtime pool, codecs)"
    for prefix, group in (
        ("camera-", "camera threads"),
        ("main-", "main-stream threads"),
        ("inference-", "inference workers"),
    ):
        if name.startswith(prefix):
            return group
    return re.sub(r"\d+", "N", name)  # naive-N, Thread-N (...): one group per kind


def thread_groups(before: dict[int, float], after: dict[int, float]) -> dict[str, float]:
    """CPU seconds spent in the window per thread group (threads started in the window count from 0)."""
    import threading

    names = {t.native_id: t.name for t in threading.enumerate()}
    groups: dict[str, float] = {}
    for tid, cpu in after.items():
        group = thread_group(names.get(tid))
        groups[group] = groups.get(group, 0.0) + max(cpu - before.get(tid, 0.0), 0.0)
    return {g: round(v, 3) for g, v in sorted(groups.items(), key=lambda kv: -kv[1])}


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
