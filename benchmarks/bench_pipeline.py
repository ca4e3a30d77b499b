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
serve) and the same number of files read as fast as the detector takes them (no realtime pacing). The
realtime overload is judged against saturation measured beside it: ``--overload-pairs`` times the first K
with a backlog, then 1.3x it, alternating (the search's best trial ran minutes to an hour earlier).

Every sample is kept in the JSON document (one per run); one CSV row per trial is appended::

    .venv/bin/python -m benchmarks.bench_pipeline
    .venv/bin/python -m benchmarks.bench_pipeline --window-s 30 --budget-s 900
    .venv/bin/python -m benchmarks.bench_pipeline --model models/yolox-nano-coco.yaml --systems streetwatch

The default model is a yolo11n-size network at 640 exported with Ultralytics from ``yolo11n.yaml`` (random
weights: speed only) through :func:`detector.export.export_model`, cached in ``benchmarks/.cache/models``.
"""

from __future__ import annotations

import argparse
import datetime as dt
import math
import os
import platform
import statistics
import sys
import time
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from benchmarks.common import cpu_model, package_version, write_json
from benchmarks.pipeline_bench.ceiling import ceilings, measure_raw, measure_sample_cpu
from benchmarks.pipeline_bench.clip import ClipSpec, Frame, first_frame, prepare_clip, zone_crop
from benchmarks.pipeline_bench.model import ModelFacts, default_model, model_facts
from benchmarks.pipeline_bench.process import run_trial_process, trial_main
from benchmarks.pipeline_bench.report import append_csv, format_table, plot
from benchmarks.pipeline_bench.search import KSearch
from benchmarks.pipeline_bench.verdict import Criteria, judge, targets
from pipeline.config import inference_shape, runs_on_cpu_only

DEFAULT_VIDEO = Path("/usr/share/doc/opencv-doc/examples/data/vtest.avi")
DEFAULT_CACHE = Path(__file__).resolve().parent / ".cache"
PROG = "python -m benchmarks.bench_pipeline"
SYSTEMS = ("streetwatch", "lean", "naive")
# realtime: the daemon as configured (a camera that is behind skips keyframes undecoded); late-drop: the
# same with scheduler.drop_before_decode off (decoded samples dropped); files: read as fast as taken.
SATURATE_MODES = ("realtime", "late-drop", "files")
LEAN_OPTIONS = ("substream", "roi", "gating", "workers")
OVERLOAD_FACTOR = 1.3  # the inference-bound trials run this many times the first K that had a backlog


def parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    p = argparse.ArgumentParser(prog="bench_pipeline", description=__doc__.split("\n")[0])
    p.add_argument("--model", type=Path, help="Model card or ONNX file (default: yolo11n at 640, exported).")
    p.add_argument("--video", type=Path, default=DEFAULT_VIDEO, help="Real clip to re-encode (vtest.avi).")
    p.add_argument("--clip-height", type=int, default=1080, help="Re-encoded height (16:9 width).")
    p.add_argument(
        "--substream-height",
        type=int,
        help="streetwatch cameras detect on a substream of this height (the clip re-encoded again; "
        "cameras[].detect_url) and keep the --clip-height stream as their main stream.",
    )
    p.add_argument(
        "--lean-model",
        type=Path,
        help="The lean system's model (default: --model, or without it yolo11n exported at 384x640, with "
        "dynamic height and width when the roi option is on).",
    )
    p.add_argument(
        "--lean-substream-height", type=int, default=360, help="The lean system's substream height."
    )
    p.add_argument(
        "--lean-options",
        default=",".join(LEAN_OPTIONS),
        help=f"The lean system's options, a comma-separated subset of {LEAN_OPTIONS}: detect on a substream, "
        "zone-ROI inference, per-zone change gating, two inference workers with one ONNX Runtime thread "
        "each (scheduler.inference_workers: 2, detector.intra_op_threads: 1).",
    )
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
        help="Per trial, before the window (start-up: K streams opened, each camera's GOP probed, and the "
        "backlog of the first samples worked off).",
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
        help="Inference-bound trials' K (default 1.3 x the first K with a backlog; 0 = skip).",
    )
    p.add_argument(
        "--overload-pairs",
        type=int,
        default=2,
        help="Realtime overload: this many pairs of trials, the first K with a backlog then 1.3x it, "
        "alternating, so that the overload share compares trials minutes apart, not the search's best "
        "trial from another hour (0 = one overload trial, judged against the best live trial).",
    )
    p.add_argument(
        "--saturate-modes",
        default=",".join(SATURATE_MODES),
        help=f"Inference-bound trials, a comma-separated subset of {SATURATE_MODES}.",
    )
    p.add_argument("--raw-seconds", type=float, default=10.0, help="Raw ONNX Runtime measurement, each.")
    p.add_argument(
        "--threads",
        type=int,
        help="ONNX Runtime intra-op threads (default: the daemon's, cores / inference workers).",
    )
    p.add_argument(
        "--inference-workers",
        type=int,
        help="The plain daemon's scheduler.inference_workers (default: the daemon's auto, one "
        "single-threaded detector call per core on the CPU).",
    )
    p.add_argument(
        "--batch-size", type=int, default=1, help="The daemon's detector.batch_size (its default: 1)."
    )
    p.add_argument(
        "--event-cpu-share",
        type=float,
        help="The daemon's scheduler.event_cpu_share (default: the daemon's; 1 = the event writer never "
        "yields to detection).",
    )
    p.add_argument(
        "--event-queue",
        type=int,
        help="The daemon's scheduler.event_queue (default: the daemon's): events waiting for their thread.",
    )
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
    args.systems = _subset(p, "--systems", args.systems, SYSTEMS, empty_ok=False)
    args.saturate_modes = _subset(p, "--saturate-modes", args.saturate_modes, SATURATE_MODES)
    args.lean_options = _subset(p, "--lean-options", args.lean_options, LEAN_OPTIONS)
    _check_positive(p, args)
    if args.event_cpu_share is not None and not 0 < args.event_cpu_share <= 1:
        p.error("--event-cpu-share must be in (0, 1]")
    if not 0 < args.min_rate <= 1:
        p.error("--min-rate must be in (0, 1]")
    args.max_lag_s = args.max_lag_s or 1.0 / args.target_fps
    interval = 1.0 / args.target_fps  # a window of whole sampling intervals: every camera owes the same count
    args.window_s = math.ceil(args.window_s / interval - 1e-9) * interval
    args.gop_s = args.gop_s or 1.0 / args.target_fps
    return args


def _subset(
    p: argparse.ArgumentParser, flag: str, value: str, allowed: Sequence[str], *, empty_ok: bool = True
) -> list[str]:
    """A comma-separated option's items, each one of ``allowed`` (else the parser's error, exit 2)."""
    items = [item.strip() for item in value.split(",") if item.strip()]
    if (not items and not empty_ok) or set(items) - set(allowed):
        p.error(f"{flag}: expected a comma-separated subset of {','.join(allowed)}")
    return items


def _check_positive(p: argparse.ArgumentParser, args: argparse.Namespace) -> None:
    for name in (
        "clip_height",
        "substream_height",
        "lean_substream_height",
        "clip_fps",
        "gop_s",
        "target_fps",
        "window_s",
        "max_cameras",
        "batch_size",
        "event_queue",
        "dwell_s",
        "raw_seconds",
        "budget_s",
    ):
        value = getattr(args, name)
        if value is not None and value <= 0:
            p.error(f"--{name.replace('_', '-')} must be positive")
    for name in (
        "warmup_s",
        "saturate_cameras",
        "start_cameras",
        "threads",
        "clip_seconds",
        "retries",
        "overload_pairs",
    ):
        value = getattr(args, name)
        if value is not None and value < 0:
            p.error(f"--{name.replace('_', '-')} must not be negative")


@dataclass(frozen=True)
class LeanSetup:
    """The lean system: its model (rectangular, INT8, ... as given), the substream its cameras detect on
    (None without the substream option), and the ceiling of that combination on this box."""

    facts: ModelFacts
    substream: Path | None
    raw: dict[str, Any]
    ceiling: dict[str, Any]


@dataclass
class Run:
    """State of one benchmark run."""

    args: argparse.Namespace
    facts: ModelFacts
    clip: Path
    criteria: Criteria
    substream: Path | None
    say: Callable[[str], None]
    lean: LeanSetup | None = None
    trials: list[dict[str, Any]] = field(default_factory=list)
    started: float = field(default_factory=time.monotonic)

    def spec(
        self, system: str, cameras: int, *, realtime: bool = True, drop_before_decode: bool = True
    ) -> dict[str, Any]:
        a = self.args
        lean = self.lean if system == "lean" else None
        threads, workers = system_inference(a, lean=lean is not None)
        facts = lean.facts if lean is not None else self.facts
        substream = lean.substream if lean is not None else self.substream
        return {
            "system": system,
            "cameras": cameras,
            "facts": asdict(facts),
            "clip": str(self.clip),
            "detect_clip": str(substream) if substream is not None else None,
            "zone_roi": lean is not None and "roi" in a.lean_options,
            "zone_gating": lean is not None and "gating" in a.lean_options,
            "drop_before_decode": drop_before_decode,
            "target_fps": a.target_fps,
            "warmup_s": a.warmup_s,
            "window_s": a.window_s,
            "tail_s": self.criteria.max_lag_s + 1.0,
            "realtime": realtime,
            "threads": threads,
            "inference_workers": workers,
            "batch_size": a.batch_size,
            "event_cpu_share": a.event_cpu_share,
            "event_queue": a.event_queue,
            "dwell_s": a.dwell_s,
            "scripted_event": not a.no_scripted_event,
            "keyframes": abs(a.gop_s * a.target_fps - 1.0) < 1e-6,
        }

    def trial(
        self, system: str, cameras: int, *, realtime: bool = True, drop_before_decode: bool = True
    ) -> dict[str, Any]:
        """Run one trial in a fresh process; return its summary (the raw documents are kept too).

        With ``--max-other-cores``, a trial during which other processes used more CPU than that is
        repeated (at most ``--retries`` times); every attempt is kept, the last one counts.
        """
        spec = self.spec(system, cameras, realtime=realtime, drop_before_decode=drop_before_decode)
        mode = "files" if not realtime else "realtime" if drop_before_decode else "late-drop"
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


def system_inference(args: argparse.Namespace, *, lean: bool) -> tuple[int | None, int]:
    """A system's ONNX Runtime intra-op threads and inference workers (detector calls at once): the plain
    daemon's are resolved as the daemon resolves its configuration (``auto`` unless given)."""
    if lean:
        return (1, 2) if "workers" in args.lean_options else (args.threads, 1)
    workers, threads = inference_shape(
        args.inference_workers or "auto", args.threads, cpu_only=runs_on_cpu_only(["cpu"])
    )
    return threads, workers


def raw_fps(
    args: argparse.Namespace, model: str, frame: Frame, *, lean: bool = False, max_scale: float | None = None
) -> dict[str, Any]:
    """Raw ``session.run`` throughput of ``model`` in the shape the system runs it (threads, workers)."""
    threads, workers = system_inference(args, lean=lean)
    return measure_raw(
        model,
        frame,
        threads=threads,
        batch=args.batch_size,
        seconds=args.raw_seconds,
        callers=workers,
        max_scale=max_scale,
    )


def one_call_raw(
    args: argparse.Namespace, model: str, frame: Frame, raw: dict[str, Any]
) -> dict[str, Any] | None:
    """Raw throughput as one call at a time on ONNX Runtime's own threads (its default shape), measured
    right after ``raw`` when the daemon's shape differs: the ratio is what the inference workers buy."""
    if raw["callers"] == 1:
        return None
    one = measure_raw(model, frame, threads=None, batch=args.batch_size, seconds=args.raw_seconds)
    return {k: v for k, v in one.items() if k != "samples_ms"}


def short(summary: dict[str, Any]) -> str:
    lag = summary["lag"]
    p99 = "-" if lag["p99_ms"] is None else f"{lag['p99_ms']:.0f}"
    growth = "" if summary["lag_growth_s"] is None else f" (growth {summary['lag_growth_s']:+.2f} s)"
    return (
        f"rate min {summary['rate_min']:.2f}, lag p99 {p99} ms{growth}, "
        f"{summary['analysed_fps']:.2f} fps analysed, "
        f"CPU {summary['cpu_cores']:.2f} cores, others {summary['other_cores']:.2f} cores"
    )


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
    """K for the inference-bound trials: 30% past the first K that had a backlog (sustained overload, the
    issue's 1.3x), else 1.3 x what raw inference could serve."""
    if args.saturate_cameras is not None:
        return int(args.saturate_cameras)
    if first_failure:
        return max(first_failure + 1, math.ceil(OVERLOAD_FACTOR * first_failure))
    return int(max(args.batch_size, math.ceil(OVERLOAD_FACTOR * raw_fps / args.target_fps)))


def saturate(run: Run, frame: Frame, first_failure: int | None) -> dict[str, Any]:
    """The daemon's analysed fps when inference-bound (realtime and/or files), and raw ORT fps just before
    and just after those trials."""
    a = run.args
    if a.saturate_cameras == 0:
        return {"skipped": "--saturate-cameras 0"}
    before = raw_fps(a, run.facts.model, frame)
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
        if mode == "realtime" and first_failure and a.overload_pairs:
            results["paired"] = overload_pairs(run, first_failure, k, a.overload_pairs)
            results[mode] = results["paired"]["overload_fps"]
            results[f"{mode}_cpu_ms_per_frame"] = results["paired"]["overload_cpu_ms_per_frame"]
            continue
        summary = run.trial(
            "streetwatch", k, realtime=mode != "files", drop_before_decode=mode != "late-drop"
        )
        results[mode] = summary["analysed_fps"]
        results[f"{mode}_cpu_ms_per_frame"] = cpu_ms_per_frame(summary)
    after = raw_fps(a, run.facts.model, frame)
    run.say(f"raw ONNX Runtime after the inference-bound trials: {after['fps']:.2f} fps")
    results["raw_after"] = after["fps"]
    results["raw_after_samples_ms"] = after.pop("samples_ms")
    results["raw_after_stats"] = after
    results["raw_fps"] = (results["raw_before"] + after["fps"]) / 2
    results["share_of_raw"] = {mode: results[mode] / results["raw_fps"] for mode in a.saturate_modes}
    live = [
        t["summary"]["analysed_fps"]
        for t in run.trials
        if t["summary"]["system"] == "streetwatch" and t["summary"]["mode"] == "realtime"
    ]
    results["best_live_fps"] = max(live, default=0.0)  # the best any live trial of the run analysed
    for mode in ("realtime", "late-drop"):
        if mode in a.saturate_modes and results["best_live_fps"]:
            results[f"{mode}_share_of_best"] = results[mode] / results["best_live_fps"]
    return results


def overload_pairs(run: Run, saturating: int, overloaded: int, pairs: int) -> dict[str, Any]:
    """Sustained overload against saturation measured minutes apart: ``pairs`` times the first K with a
    backlog, then ``overloaded`` cameras. The search's best trial ran up to twenty minutes earlier, when the
    box may have been faster or slower (raw inference drifts by a third over a day), and it is the maximum
    of several noisy trials: both bias a share against it."""
    fps: dict[str, list[float]] = {"saturating": [], "overload": []}
    cpu: list[float] = []
    for _ in range(pairs):
        for name, k in (("saturating", saturating), ("overload", overloaded)):
            summary = run.trial("streetwatch", k, realtime=True)
            fps[name].append(summary["analysed_fps"])
            if name == "overload" and (per_frame := cpu_ms_per_frame(summary)) is not None:
                cpu.append(per_frame)
    saturating_fps, overload_fps = statistics.fmean(fps["saturating"]), statistics.fmean(fps["overload"])
    return {
        "saturating_cameras": saturating,
        "overload_cameras": overloaded,
        "saturating_fps_each": fps["saturating"],
        "overload_fps_each": fps["overload"],
        "saturating_fps": saturating_fps,
        "overload_fps": overload_fps,
        "overload_cpu_ms_per_frame": statistics.fmean(cpu) if cpu else None,
        "share": overload_fps / saturating_fps if saturating_fps else None,
    }


def cpu_ms_per_frame(summary: dict[str, Any]) -> float | None:
    """The daemon process's CPU per analysed frame over a trial's window (all threads)."""
    fps = summary["analysed_fps"]
    return 1e3 * summary["cpu_cores"] / fps if fps else None


def first_starts(args: argparse.Namespace, raw_fps: float, lean_fps: float | None) -> dict[str, int]:
    if args.start_cameras:
        return dict.fromkeys(SYSTEMS, args.start_cameras)

    def half_of_inference(fps: float) -> int:  # half of what inference alone could serve, a power of 2
        return int(2 ** max(0, int(math.log2(max(fps / args.target_fps / 2, 1.0)))))

    return {
        "streetwatch": half_of_inference(raw_fps),
        "lean": half_of_inference(lean_fps or raw_fps),
        "naive": 1,
    }


def lean_document(lean: LeanSetup | None) -> dict[str, Any] | None:
    if lean is None:
        return None
    return {
        "model_facts": asdict(lean.facts),
        "substream": str(lean.substream) if lean.substream else None,
        "raw": lean.raw,
        "ceiling": lean.ceiling,
    }


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


def prepare_substream(args: argparse.Namespace, height: int, say: Callable[[str], None]) -> Path:
    """The clip re-encoded again at ``height`` (a camera's 子码流), at a substream's bit rate."""
    spec = ClipSpec(
        height=height,
        fps=args.clip_fps,
        gop_s=args.gop_s,
        seconds=args.clip_seconds,
        bit_rate=max(300_000, 4_000_000 * height // 1080),
    )
    say(f"substream: re-encoding {args.video} to {spec.width}x{spec.height} (cached)")
    return prepare_clip(args.video, args.cache, spec)


def prepare_lean(
    args: argparse.Namespace, facts: ModelFacts, clip: Path, frame: Frame, say: Callable[[str], None]
) -> LeanSetup:
    """The lean system's model, substream and ceiling (its raw ORT fps and CPU per analysed frame)."""
    roi = "roi" in args.lean_options  # zone crops run at their own size on a dynamic-input export
    model = args.lean_model or (
        Path(facts.model) if args.model else default_model(args.cache, (384, 640), dynamic=roi)
    )
    lean_facts = facts if str(model) == facts.model else model_facts(model)
    substream = (
        prepare_substream(args, args.lean_substream_height, say) if "substream" in args.lean_options else None
    )
    if roi and lean_facts.dynamic:  # the daemon runs the zone's crop at its own size
        raw = raw_fps(
            args, lean_facts.model, zone_crop(first_frame(substream or clip)), lean=True, max_scale=1.0
        )
    else:
        raw = raw_fps(args, lean_facts.model, frame, lean=True)
    ceiling = ceilings(raw, measure_sample_cpu(substream or clip, lean_facts.input_hw), args.target_fps)
    say(
        f"lean ({lean_facts.name}, input {tuple(raw['input_hw'])}, "
        f"{','.join(args.lean_options) or 'no options'}): raw {raw['fps']:.2f} fps; ceiling "
        f"{raw['cpu_ms_per_frame']:.0f} CPU ms per inference + "
        f"{ceiling['cpu_ms_per_sample']:.0f} per sample decoded -> {ceiling['cameras_max']:.1f} cameras "
        "(before gating)"
    )
    return LeanSetup(lean_facts, substream, {k: v for k, v in raw.items() if k != "samples_ms"}, ceiling)


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
    raw = raw_fps(args, facts.model, frame)
    say(
        f"raw ONNX Runtime: {raw['fps']:.2f} fps ({raw['callers']} call(s) at once, batch {raw['batch']}, "
        f"p50 {raw['p50_ms']:.1f} ms)"
    )
    one_call = one_call_raw(args, facts.model, frame, raw)
    if one_call is not None:
        say(
            f"raw ONNX Runtime as one call on ONNX Runtime's own threads: {one_call['fps']:.2f} fps "
            f"(the daemon's shape runs {raw['fps'] / one_call['fps']:.2f}x that)"
        )
    ceiling = ceilings(raw, measure_sample_cpu(clip, facts.input_hw), args.target_fps)
    say(
        f"ceiling: {raw['cpu_ms_per_frame']:.0f} CPU ms per inference + "
        f"{ceiling['cpu_ms_per_sample']:.0f} per keyframe decoded -> at most "
        f"{ceiling['analysed_fps_max']:.2f} fps analysed "
        f"({ceiling['raw_share_max']:.0%} of raw), {ceiling['cameras_max']:.1f} cameras"
    )
    substream = prepare_substream(args, args.substream_height, say) if args.substream_height else None
    lean = prepare_lean(args, facts, clip, frame, say) if "lean" in systems else None
    run = Run(args, facts, clip, Criteria(args.min_rate, args.max_lag_s), substream, say, lean)
    # the lean search starts from its ceiling (decoding included): a crop-sized inference alone would
    # suggest far more cameras than the box can decode
    lean_fps = lean.ceiling["analysed_fps_max"] if lean is not None else None
    searched = search(run, systems, first_starts(args, raw["fps"], lean_fps)) if systems else {}
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
        "raw_one_call": one_call,
        "ceiling": ceiling,
        "lean": lean_document(lean),
        "search": searched,
        "saturation": saturation,
        "targets": targets(searched, saturation, run.trials, ceiling, lean),
        "skipped": skipped,
        "trials": run.trials,
        "elapsed_s": time.monotonic() - run.started,
    }
    args.out.mkdir(parents=True, exist_ok=True)
    name = f"bench_pipeline_{facts.name}"
    json_path = write_json(args.out, name, document, indent=None)
    document["json_path"] = str(json_path)
    document["csv_path"] = str(append_csv(args.out, document))
    png = plot(document, json_path.with_suffix(".png"))
    document["png_path"] = str(png) if png else None
    if not args.quiet:
        print(format_table(document))
    return document


if __name__ == "__main__":
    if len(sys.argv) == 4 and sys.argv[1] == "_trial":
        sys.exit(trial_main(Path(sys.argv[2]), Path(sys.argv[3])))
    main()
