"""The GPU path in one command: ONNX Runtime's CUDA and TensorRT execution providers, batch sizes, PyAV
hardware decoding (NVDEC) and the pipeline benchmark's cameras per box, on an NVIDIA machine.

For each execution-provider setting (CPU as the baseline; CUDA; TensorRT fp32 and fp16, each with its
engine cache) it opens the detector's session the way the daemon does (``detector.providers`` with
options, no fallback, so a provider that cannot start is reported, not silently replaced by CPU), times
the session start twice (the second start reads the TensorRT engine cache) and raw ``session.run``
frames per second at each batch size, all in one run. Then it times decoding a 1080p H.264 clip with
PyAV on the CPU and with ``hwaccel=cuda`` (NVDEC) when the installed PyAV offers it, and, with
``--pipeline-budget-s``, runs ``benchmarks.bench_pipeline`` with its trial processes on the best GPU
provider (``STREETWATCH_ORT_PROVIDERS``). Results: one JSON and a PNG (batch size vs frames per second
per provider) in ``--out``.

    .venv/bin/python -m benchmarks.bench_gpu --model models/streetwatch-demo-n.yaml --pipeline-budget-s 300
    .venv/bin/python -m benchmarks.bench_gpu --dry-run      # on any machine: what would run, tiny numbers

``--dry-run`` measures CPU only with tiny durations and records why every GPU setting cannot start here
(the smoke test runs it on CPU).
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from collections.abc import Sequence
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import numpy as np

from benchmarks.common import cpu_model, package_version, pyplot, save_figure, write_json
from detector import Detector
from detector.errors import DetectorError
from detector.session import PROVIDERS_ENV, ProviderSpec, SessionSettings

REPO = Path(__file__).resolve().parents[1]
DEFAULT_MODEL = REPO / "models" / "streetwatch-demo-n.yaml"
DEFAULT_VIDEO = Path("/usr/share/doc/opencv-doc/examples/data/vtest.avi")
PROG = "python -m benchmarks.bench_gpu"


def provider_settings(device_id: int, cache: Path) -> dict[str, tuple[ProviderSpec, ...]]:
    """The settings compared, each as the daemon's ``detector.providers`` would list them."""
    trt = {
        "device_id": device_id,
        "trt_engine_cache_enable": True,
        "trt_engine_cache_path": str(cache),
        "trt_max_workspace_size": 2 << 30,
    }
    cuda = ProviderSpec("cuda", {"device_id": device_id})
    return {
        "cpu": (ProviderSpec("cpu"),),
        "cuda": (cuda,),
        "tensorrt-fp32": (ProviderSpec("tensorrt", trt), cuda),
        "tensorrt-fp16": (ProviderSpec("tensorrt", {**trt, "trt_fp16_enable": True}), cuda),
    }


def parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    p = argparse.ArgumentParser(prog="bench_gpu", description=__doc__.split("\n")[0])
    p.add_argument("--model", type=Path, default=DEFAULT_MODEL, help="Model card or ONNX file.")
    p.add_argument("--video", type=Path, default=DEFAULT_VIDEO, help="Real clip: frames, and the 1080p clip.")
    p.add_argument("--device-id", type=int, default=0, help="CUDA device of every GPU provider.")
    p.add_argument("--batches", default="1,2,4,8,16,32", help="Batch sizes.")
    p.add_argument("--seconds", type=float, default=5.0, help="Timed seconds per provider and batch size.")
    p.add_argument("--settings", default="cpu,cuda,tensorrt-fp32,tensorrt-fp16", help="Which settings.")
    p.add_argument("--engine-cache", type=Path, help="TensorRT engine cache folder (default: a scratch one).")
    p.add_argument("--decode-frames", type=int, default=300, help="1080p frames decoded per decoder.")
    p.add_argument("--pipeline-budget-s", type=float, help="Also run bench_pipeline on the best GPU setting.")
    p.add_argument(
        "--pipeline-max-cameras", type=int, default=256, help="Largest K the pipeline run tries (a GPU box)."
    )
    p.add_argument("--out", type=Path, default=Path("benchmarks/results"), help="JSON and PNG folder.")
    p.add_argument("--dry-run", action="store_true", help="Tiny durations; GPU settings report why not.")
    p.add_argument("--quiet", action="store_true")
    args = p.parse_args(argv)
    try:
        args.batches = [int(b) for b in args.batches.split(",") if b.strip()]
    except ValueError:
        p.error(f"--batches {args.batches!r}: expected integers like 1,2,4,8")
    if not args.batches or min(args.batches) < 1:
        p.error("--batches needs positive integers")
    args.settings = [s.strip() for s in args.settings.split(",") if s.strip()]
    known = sorted(provider_settings(0, Path()))
    unknown = sorted(set(args.settings) - set(known))
    if unknown:
        p.error(f"--settings: unknown {unknown}; expected some of {known}")
    if args.dry_run:
        args.seconds, args.decode_frames, args.batches = 0.2, 10, args.batches[:2]
    return args


def environment() -> dict[str, Any]:
    import onnxruntime as ort

    found: dict[str, Any] = {
        "onnxruntime": ort.__version__,
        "onnxruntime_device": ort.get_device(),
        "available_providers": ort.get_available_providers(),
        "pyav": package_version("av"),
        "cpu_model": cpu_model(),
        "cpu_count": os.cpu_count(),
        "loadavg_1m": os.getloadavg()[0],
    }
    smi = shutil.which("nvidia-smi")
    if smi:
        query = "--query-gpu=name,memory.total,driver_version"
        done = subprocess.run(
            [smi, query, "--format=csv,noheader"], capture_output=True, text=True, check=False
        )
        found["gpus"] = done.stdout.strip().splitlines() or done.stderr.strip()
    else:
        found["gpus"] = "no nvidia-smi on PATH"
    return found


def frames_of(video: Path, count: int) -> list[np.ndarray]:
    import av

    frames = []
    with av.open(str(video)) as container:
        for i, frame in enumerate(container.decode(video=0)):
            if i % 5 == 0:
                frames.append(frame.to_ndarray(format="bgr24"))
            if len(frames) == count:
                break
    return frames


def measure_setting(
    model: Path,
    providers: tuple[ProviderSpec, ...],
    frames: list[np.ndarray],
    batches: list[int],
    seconds: float,
) -> dict[str, Any]:
    """Session start (twice: the TensorRT engine cache) and fps per batch size; or why it cannot run."""
    settings = SessionSettings(providers=providers, fallback=False)
    starts = []
    try:
        for _ in range(2):
            t0 = time.perf_counter()
            detector = Detector(model, settings=settings, warmup=True)
            starts.append(time.perf_counter() - t0)
    except DetectorError as exc:
        return {"available": False, "reason": str(exc)}
    result: dict[str, Any] = {
        "available": True,
        "providers": detector.providers,
        "provider_options": detector.session.get_provider_options(),
        "start_s": starts,
        "fixed_batch": detector.fixed_batch,
        "rows": [],
    }
    for batch in batches if detector.fixed_batch is None else [detector.fixed_batch]:
        chosen = [frames[i % len(frames)] for i in range(batch)]
        tensor = detector.preprocessor(chosen, batch_size=batch)[0].copy()
        feeds, outputs = {detector.input_name: tensor}, [detector.output_name]
        detector.session.run(outputs, feeds)  # this shape's first run (TensorRT may build a profile)
        runs, t0 = 0, time.perf_counter()
        while runs == 0 or time.perf_counter() - t0 < seconds:
            detector.session.run(outputs, feeds)
            runs += 1
        wall = time.perf_counter() - t0
        result["rows"].append({"batch": batch, "fps": runs * batch / wall, "ms_per_run": 1e3 * wall / runs})
        full_t0 = time.perf_counter()
        detector.detect_batch(chosen)
        result["rows"][-1]["full_ms_per_run"] = 1e3 * (time.perf_counter() - full_t0)
    return result


def decode_1080p(video: Path, frames: int, scratch: Path, height: int = 1080) -> dict[str, Any]:
    """Decoding a 1080p25 H.264 re-encode of ``video``: CPU, and NVDEC through PyAV when it is offered."""
    import av
    import av.codec.hwaccel as hwaccel

    from benchmarks.pipeline_bench.clip import ClipSpec, prepare_clip

    clip = prepare_clip(video, scratch, ClipSpec(height=height, seconds=max(4.0, frames / 25)))
    found: dict[str, Any] = {"clip": str(clip), "pyav_hw_devices": list(hwaccel.hwdevices_available())}

    def run(accel: Any) -> dict[str, Any]:
        with av.open(str(clip), hwaccel=accel) if accel else av.open(str(clip)) as container:
            t0, n = time.perf_counter(), 0
            c0 = time.process_time()
            for frame in container.decode(video=0):
                frame.to_ndarray(format="bgr24")
                n += 1
                if n == frames:
                    break
            wall, cpu = time.perf_counter() - t0, time.process_time() - c0
        return {"frames": n, "fps": n / wall, "cpu_ms_per_frame": 1e3 * cpu / max(n, 1)}

    found["cpu"] = run(None)
    if "cuda" not in found["pyav_hw_devices"]:
        found["nvdec"] = {"available": False, "reason": "the installed PyAV/FFmpeg offers no cuda device"}
        return found
    try:
        found["nvdec"] = {
            "available": True,
            **run(hwaccel.HWAccel(device_type="cuda", allow_software_fallback=False)),
        }
    except Exception as exc:  # FFmpeg says why in any of several error types
        found["nvdec"] = {"available": False, "reason": f"{type(exc).__name__}: {exc}"}
    return found


def pipeline_on(
    providers: tuple[ProviderSpec, ...], args: argparse.Namespace, dry_run: bool
) -> dict[str, Any]:
    """``bench_pipeline`` with every trial process's session on ``providers`` (through the environment),
    on the same model and clip as the raw measurement."""
    value = json.dumps([{"name": p.name, "options": dict(p.options)} for p in providers])
    command = [sys.executable, "-m", "benchmarks.bench_pipeline", "--model", str(args.model)]
    command += ["--video", str(args.video), "--max-cameras", str(args.pipeline_max_cameras)]
    command += ["--budget-s", f"{args.pipeline_budget_s or 300:g}", "--out", str(args.out)]
    if dry_run:
        return {"ran": False, "reason": "dry run", "command": command, "env": {PROVIDERS_ENV: value}}
    done = subprocess.run(
        command, env={**os.environ, PROVIDERS_ENV: value}, capture_output=True, text=True, check=False
    )
    return {
        "ran": True,
        "returncode": done.returncode,
        "command": command,
        "env": {PROVIDERS_ENV: value},
        "output_tail": done.stdout[-4000:] + done.stderr[-2000:],
    }


def plot(document: dict[str, Any], path: Path) -> Path | None:
    plt = pyplot()
    if plt is None:
        return None
    figure, ax = plt.subplots(figsize=(6.5, 4.2))
    for name, result in document["settings"].items():
        if result.get("available") and result["rows"]:
            rows = result["rows"]
            ax.plot([r["batch"] for r in rows], [r["fps"] for r in rows], marker="o", label=name)
    ax.set(
        xlabel="batch size",
        ylabel="frames per second (raw session.run)",
        xscale="log",
        yscale="log",
        title=f"bench_gpu {document['config']['model_name']} {document['timestamp'][:16]}",
    )
    ax.legend(fontsize=8)
    return save_figure(plt, figure, path)


def format_table(document: dict[str, Any]) -> str:
    keys = ("onnxruntime", "available_providers", "gpus")
    lines = [f"environment: {json.dumps({k: document['environment'][k] for k in keys})}"]
    for name, result in document["settings"].items():
        if not result.get("available"):
            lines.append(f"{name:<14} not run: {result['reason']}")
            continue
        starts = ", ".join(f"{s:.2f}" for s in result["start_s"])
        rows = "  ".join(f"b{r['batch']}: {r['fps']:.1f} fps" for r in result["rows"])
        lines.append(f"{name:<14} start {starts} s | {rows}")
    cpu = document["decode"]["cpu"]
    lines.append(f"decode 1080p CPU: {cpu['fps']:.1f} fps, {cpu['cpu_ms_per_frame']:.1f} CPU ms/frame")
    nvdec = document["decode"]["nvdec"]
    lines.append(
        f"decode 1080p NVDEC: {nvdec['fps']:.1f} fps, {nvdec['cpu_ms_per_frame']:.1f} CPU ms/frame"
        if nvdec.get("available")
        else f"decode 1080p NVDEC: not run: {nvdec['reason']}"
    )
    pipe = document["pipeline"]
    lines.append(
        f"pipeline: {'ran, rc ' + str(pipe['returncode']) if pipe['ran'] else 'not run: ' + pipe['reason']}"
    )
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> dict[str, Any]:
    args = parse_args(argv)
    scratch = Path(tempfile.mkdtemp(prefix="bench-gpu-"))
    try:
        cache = args.engine_cache or scratch / "trt-cache"
        cache.mkdir(parents=True, exist_ok=True)
        frames = frames_of(args.video, 8)
        chosen = {k: v for k, v in provider_settings(args.device_id, cache).items() if k in args.settings}
        settings = {
            name: measure_setting(args.model, providers, frames, args.batches, args.seconds)
            for name, providers in chosen.items()
        }
        decode = decode_1080p(args.video, args.decode_frames, scratch, height=360 if args.dry_run else 1080)
        gpu = [n for n in ("tensorrt-fp16", "tensorrt-fp32", "cuda") if settings.get(n, {}).get("available")]
        best = max(gpu, key=lambda n: max(r["fps"] for r in settings[n]["rows"])) if gpu else None
        if args.pipeline_budget_s and best:
            pipeline = pipeline_on(chosen[best], args, args.dry_run)
        elif args.pipeline_budget_s or args.dry_run:
            pipeline = {
                "ran": False,
                "reason": "dry run" if args.dry_run else "no GPU setting could start",
                **(
                    {"command": pipeline_on(chosen.get("cuda", ()), args, True)["command"]}
                    if args.dry_run
                    else {}
                ),
            }
        else:
            pipeline = {"ran": False, "reason": "not asked for (--pipeline-budget-s)"}
    finally:
        shutil.rmtree(scratch, ignore_errors=True)
    document: dict[str, Any] = {
        "benchmark": "bench_gpu",
        "timestamp": datetime.now(UTC).isoformat(timespec="milliseconds"),
        "command": " ".join([PROG, *(sys.argv[1:] if argv is None else argv)]),
        "environment": environment(),
        "config": {
            "model": str(args.model),
            "model_name": Path(args.model).stem,
            "device_id": args.device_id,
            "batches": args.batches,
            "seconds": args.seconds,
            "dry_run": args.dry_run,
        },
        "settings": settings,
        "best_gpu_setting": best,
        "decode": decode,
        "pipeline": pipeline,
    }
    args.out.mkdir(parents=True, exist_ok=True)
    json_path = write_json(args.out, "bench_gpu", document)
    png = plot(document, json_path.with_suffix(".png"))
    document["json_path"], document["png_path"] = str(json_path), str(png) if png else None
    if not args.quiet:
        print(format_table(document))
        print(f"written: {json_path}" + (f", {png}" if png else " (no matplotlib: no PNG)"))
    return document


if __name__ == "__main__":
    main()
