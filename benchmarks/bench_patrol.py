"""Patrol mode (轮巡): how many cameras one box visits at a fixed revisit with every visit on time.

Hundreds of loopback snapshot cameras (``benchmarks/snapshot_server.py`` in a subprocess, so serving costs
nothing in the measured process) answer with one real frame: car-detection.mp4 from shared/data, scaled to
``--size`` (1920x1080 by default, a city camera's main stream) and JPEG-encoded. For each camera count of the
sweep, a fresh process runs the daemon's real :class:`pipeline.patrol.Patroller` (HTTP GET, JPEG decode,
the detector-sized copy) for ``--turns`` revisits of ``--every-s`` seconds, with a consumer that takes each
visit's frame as the scheduler does (and runs the real detector on it with ``--detect``).

Per camera count: visits on time (finished within ``--on-time-s`` of their due time, default a tenth of
the turn; a turn whose camera got no frame counts as late), visit latency p50/p99 (connect to picture),
lateness p99, CPU per visit, RSS per patrolled camera (peak RSS while patrolling minus the process's RSS
just before, over the camera count; and the slope between sweep points). The headline is the largest
count with >= 99 % of visits on time and every camera visited every turn. Targets: >= 600 cameras at a
60 s revisit, <= 1 MB per camera.

Baseline, in the same process just before each count: bare visits one after another (a plain HTTP GET and
a JPEG decode, nothing else). The CPU per patrol visit (the whole process: dispatcher, workers, the detector
copy, the consumer) is reported as a ratio to it, with the count at which the box's cores would be spent
at this revisit (cores x every_s / CPU per visit). A PNG of cameras vs on-time share sits beside the JSON::

    .venv/bin/python -m benchmarks.bench_patrol --cameras 300,600,900,1200 --every-s 60 --turns 2
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import resource
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Sequence
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import cv2
import numpy as np

from benchmarks.common import cpu_model, pyplot, save_figure, write_json

REPO = Path(__file__).resolve().parents[1]
SHARED_DATA = Path(os.environ.get("STREETWATCH_SHARED_DATA", REPO.parent / "shared" / "data"))
DEFAULT_VIDEO = SHARED_DATA / "videos" / "car-detection.mp4"
DEFAULT_MODEL = REPO / "models" / "yolox-nano-coco.yaml"
PROG = "python -m benchmarks.bench_patrol"
ON_TIME_SHARE = 0.99
TARGET_CAMERAS = 600
TARGET_MB_PER_CAMERA = 1.0
INPUT_HW = (640, 640)
BASELINE_VISITS = 25  # bare visits (twice over these cameras) before each camera count, same process


def parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="bench_patrol", description=__doc__.split("\n")[0])
    parser.add_argument("--cameras", default="150,300,600,900", help="Camera counts to sweep, e.g. 300,600.")
    parser.add_argument("--every-s", type=float, default=60.0, help="Revisit period of every camera.")
    parser.add_argument("--turns", type=int, default=2, help="Revisits measured per camera count.")
    parser.add_argument("--on-time-s", type=float, default=None, help="Default: every-s / 10.")
    parser.add_argument("--max-concurrent", type=int, default=16, help="patrol.max_concurrent")
    parser.add_argument("--visit-timeout-s", type=float, default=10.0, help="patrol.visit_timeout_s")
    parser.add_argument("--video", type=Path, default=DEFAULT_VIDEO, help="Real clip to take the frame from.")
    parser.add_argument("--size", default="1920x1080", help="Frame size served, WIDTHxHEIGHT.")
    parser.add_argument("--detect", action="store_true", help="Run the real detector on each visit's frame.")
    parser.add_argument("--model", type=Path, default=DEFAULT_MODEL, help="Model card for --detect.")
    parser.add_argument(
        "--rules",
        action="store_true",
        help="Also run each frame through the daemon's RuleEngine (one zone per camera), so its per-camera "
        "state (tracker, the zone mask at frame size) is in the memory per camera.",
    )
    parser.add_argument("--out", type=Path, default=Path("benchmarks/results"), help="JSON and PNG folder.")
    parser.add_argument("--quiet", action="store_true", help="Do not print the table.")
    parser.add_argument("--point", type=int, help=argparse.SUPPRESS)  # internal: one count, JSON on stdout
    parser.add_argument("--port", type=int, help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    try:
        args.camera_counts = [int(v) for v in str(args.cameras).split(",") if v.strip()]
    except ValueError:
        parser.error(f"--cameras {args.cameras!r}: expected counts separated by commas, e.g. 300,600")
    if not args.camera_counts or min(args.camera_counts) < 1:
        parser.error("--cameras: every count must be at least 1")
    if args.every_s < 1:
        parser.error("--every-s must be at least 1 (patrol's smallest turn)")
    if args.turns < 1:
        parser.error("--turns must be at least 1")
    if args.visit_timeout_s >= args.every_s:
        parser.error("--visit-timeout-s must be below --every-s")
    try:
        width, height = (int(v) for v in str(args.size).lower().split("x"))
    except ValueError:
        parser.error(f"--size {args.size!r}: expected WIDTHxHEIGHT, e.g. 1920x1080")
    args.size_wh = (width, height)
    if args.on_time_s is None:
        args.on_time_s = args.every_s / 10
    if args.point is None and not args.video.is_file():
        parser.error(f"--video {args.video}: no such file")
    if args.detect and not args.model.is_file():
        parser.error(f"--model {args.model}: no such file")
    return args


def rss_mb() -> float:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return float("nan")


def cpu_s() -> float:
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


def snapshot_jpeg(video: Path, size_wh: tuple[int, int], folder: Path) -> Path:
    """One real frame of ``video`` (a third of the way in), scaled to ``size_wh``, as a JPEG file."""
    import av

    with av.open(str(video)) as container:
        stream = container.streams.video[0]
        wanted = max(int((stream.frames or 90) / 3), 0)
        for index, frame in enumerate(container.decode(stream)):
            if index >= wanted:
                picture = np.asarray(frame.to_ndarray(format="bgr24"), dtype=np.uint8)
                break
        else:
            raise RuntimeError(f"{video}: no frame decoded")
    image = cv2.resize(picture, size_wh, interpolation=cv2.INTER_CUBIC)
    ok, data = cv2.imencode(".jpg", image, [cv2.IMWRITE_JPEG_QUALITY, 85])
    if not ok:
        raise RuntimeError("JPEG encoding failed")
    path = folder / "snapshot.jpg"
    path.write_bytes(data.tobytes())
    return path


def percentile(values: list[float], q: float) -> float | None:
    return float(np.percentile(values, q)) if values else None


# --- one camera count (in its own process) ---------------------------------------------------------------


def run_point(args: argparse.Namespace) -> dict[str, Any]:
    from detector.detections import Detections
    from pipeline.config import CameraConfig, PatrolConfig
    from pipeline.patrol import Patroller, VisitRecord, visit

    count, port = int(args.point), int(args.port)
    zone = {
        "id": "z",
        "place": "p",
        "polygon": [[0, 0], [1, 0], [1, 1]],
        "rules": {"illegal_parking": {"dwell_s": 120}},
    }
    cameras = [
        CameraConfig.model_validate(
            {
                "id": f"cam{i:05d}",
                "url": f"http://127.0.0.1:{port}/cam{i:05d}.jpg",
                "sample": {"mode": "patrol", "every_s": args.every_s},
                "zones": [zone],
            }
        )
        for i in range(count)
    ]
    rules = None
    if args.rules:
        from pipeline.config import DaemonConfig
        from pipeline.incidents import RuleEngine

        daemon_config = DaemonConfig.model_validate(
            {
                "detector": {"model": str(args.model), "classes": {"car": "illegal_parking"}},
                "store": {"url": "http://127.0.0.1:1", "device_key_file": "unused"},
                "cameras": [camera.model_dump(mode="json") for camera in cameras],
            }
        )
        rules = RuleEngine(daemon_config, ["person", "car"])
    detector = None
    if args.detect:
        from detector.detector import Detector

        detector = Detector(args.model)
    warm = visit(cameras[0], args.visit_timeout_s, INPUT_HW)  # codecs and sockets loaded before the baseline
    if detector is not None:
        detector.detect_batch([warm.small if warm.small is not None else warm.image])
    del warm
    baseline = bare_visits(cameras[: min(BASELINE_VISITS, count)] * 2, args.visit_timeout_s)
    records: list[VisitRecord] = []
    wake = threading.Event()
    stop = threading.Event()
    consumed = [0]
    settings = PatrolConfig(
        max_concurrent=args.max_concurrent,
        visit_timeout_s=args.visit_timeout_s,
        per_host_limit=args.max_concurrent,
    )
    base_rss = rss_mb()
    patroller = Patroller(
        cameras, settings, input_hw=INPUT_HW, on_frame=lambda _id: wake.set(), on_visit=records.append
    )
    sources = list(patroller.sources.values())

    def consume() -> None:  # the scheduler's intake: every source's latest frame, then the detector
        while not stop.is_set():
            wake.wait(0.25)
            wake.clear()
            for source in sources:
                frame = source.latest(-1)
                if frame is None:
                    continue
                consumed[0] += 1
                found = Detections.empty()
                if detector is not None:
                    picture = frame.small if frame.small is not None else frame.image
                    found = detector.detect_batch([picture])[0]
                if rules is not None:
                    rules.update(frame.camera_id, frame.stream_time, found, frame.image.shape[:2])

    consumer = threading.Thread(target=consume, name="consumer", daemon=True)
    consumer.start()
    cpu0, t0 = cpu_s(), time.monotonic()
    patroller.start()
    peak = base_rss
    end = t0 + args.turns * args.every_s + args.on_time_s
    while time.monotonic() < end:
        time.sleep(0.5)
        peak = max(peak, rss_mb())
    patroller.stop(timeout=args.visit_timeout_s + 1)
    wall, cpu = time.monotonic() - t0, cpu_s() - cpu0
    stop.set()
    consumer.join(5)
    measured = [r for r in records if r.due < t0 + args.turns * args.every_s]  # the turns measured
    ok = [r for r in measured if r.ok]
    on_time = [r for r in ok if r.late_s + r.duration_s <= args.on_time_s]
    per_camera: dict[str, int] = {}
    for r in on_time:
        per_camera[r.camera_id] = per_camera.get(r.camera_id, 0) + 1
    expected = count * args.turns
    every_turn = sum(1 for c in cameras if per_camera.get(c.id, 0) >= args.turns)
    return {
        "cameras": count,
        "visits": len(measured),
        "visits_ok": len(ok),
        "visits_failed": len(measured) - len(ok),
        "expected_visits": expected,
        "on_time": len(on_time),
        "on_time_share": len(on_time) / expected,
        "cameras_on_time_every_turn": every_turn,
        "visit_latency_p50_ms": percentile([r.duration_s * 1000 for r in ok], 50),
        "visit_latency_p99_ms": percentile([r.duration_s * 1000 for r in ok], 99),
        "late_p50_ms": percentile([r.late_s * 1000 for r in measured], 50),
        "late_p99_ms": percentile([r.late_s * 1000 for r in measured], 99),
        "late_turns": patroller.late_turns,
        "frames_consumed": consumed[0],
        "peak_concurrent": patroller.peak_running,
        "wall_s": wall,
        "cpu_s": cpu,
        "cpu_cores": cpu / wall if wall else None,
        "cpu_ms_per_visit": cpu / len(records) * 1000 if records else None,
        "baseline_cpu_ms_per_visit": baseline["cpu_ms"],
        "baseline_wall_ms_per_visit": baseline["wall_ms"],
        "cpu_ratio_to_baseline": (cpu / len(records) * 1000) / baseline["cpu_ms"] if records else None,
        "cameras_at_cpu_saturation": int(
            (os.cpu_count() or 1) * args.every_s * 1000 / (cpu / len(records) * 1000)
        )
        if records and cpu > 0
        else None,
        "rss_base_mb": base_rss,
        "rss_peak_mb": peak,
        "rss_mb_per_camera": (peak - base_rss) / count,
        "loadavg_1m_end": os.getloadavg()[0],
    }


def bare_visits(cameras: Sequence[Any], timeout_s: float) -> dict[str, float]:
    """The baseline, in the same process and run: one camera after another, a plain HTTP GET and a JPEG
    decode of its snapshot, nothing else (the least any patrol of these cameras pays per visit)."""
    import urllib.request

    cpu0, t0 = cpu_s(), time.monotonic()
    for camera in cameras:
        with urllib.request.urlopen(camera.url, timeout=timeout_s) as response:
            body = response.read()
        if cv2.imdecode(np.frombuffer(body, np.uint8), cv2.IMREAD_COLOR) is None:
            raise RuntimeError(f"{camera.url}: not a picture")
    n = max(len(cameras), 1)
    return {"cpu_ms": (cpu_s() - cpu0) * 1000 / n, "wall_ms": (time.monotonic() - t0) * 1000 / n}


# --- the sweep ----------------------------------------------------------------------------------------------


def start_server(jpeg: Path) -> tuple[subprocess.Popen[str], int]:
    import socket

    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = int(probe.getsockname()[1])
    server = subprocess.Popen(
        [sys.executable, "-m", "benchmarks.snapshot_server", "--port", str(port), "--image", str(jpeg)],
        cwd=REPO,
        stdout=subprocess.PIPE,
        text=True,
        env={**os.environ, "PYTHONPATH": str(REPO)},
    )
    assert server.stdout is not None
    line = server.stdout.readline()
    if line.strip() != "READY":
        server.kill()
        raise RuntimeError(f"the snapshot server did not start (said {line!r})")
    return server, port


def sweep_point(args: argparse.Namespace, count: int, port: int) -> dict[str, Any]:
    argv = [
        "--point", str(count), "--port", str(port), "--every-s", str(args.every_s),
        "--turns", str(args.turns),
        "--on-time-s", str(args.on_time_s), "--max-concurrent", str(args.max_concurrent),
        "--visit-timeout-s", str(args.visit_timeout_s), "--model", str(args.model),
    ]  # fmt: skip
    if args.detect:
        argv.append("--detect")
    if args.rules:
        argv.append("--rules")
    done = subprocess.run(
        [sys.executable, "-m", "benchmarks.bench_patrol", *argv],
        cwd=REPO,
        capture_output=True,
        text=True,
        env={**os.environ, "PYTHONPATH": str(REPO)},
        check=False,
    )
    if done.returncode:
        raise RuntimeError(f"the sweep point with {count} cameras failed:\n{done.stderr[-3000:]}")
    result: dict[str, Any] = json.loads(done.stdout.strip().splitlines()[-1])
    return result


def headline(steps: list[dict[str, Any]]) -> int:
    held = [
        s["cameras"]
        for s in steps
        if s["on_time_share"] >= ON_TIME_SHARE
        and s["cameras_on_time_every_turn"] >= ON_TIME_SHARE * s["cameras"]
    ]
    return max(held, default=0)


def slope_mb(steps: list[dict[str, Any]]) -> float | None:
    """RSS per additional camera between the smallest and the largest count (fixed costs cancel)."""
    if len(steps) < 2:
        return None
    low, high = steps[0], steps[-1]
    if high["cameras"] == low["cameras"]:
        return None
    return float((high["rss_peak_mb"] - low["rss_peak_mb"]) / (high["cameras"] - low["cameras"]))


def format_table(document: dict[str, Any]) -> str:
    config = document["config"]
    lines = [
        f"bench_patrol: revisit {config['every_s']:g} s, on time = within {config['on_time_s']:g} s, "
        f"{config['size']} JPEG, max_concurrent {config['max_concurrent']}, detect {config['detect']}, "
        f"load {document['machine']['loadavg_1m']:.2f}",
        f"{'cameras':>8} {'on time':>8} {'every turn':>10} {'p50 ms':>8} {'p99 ms':>8} {'late p99':>9} "
        f"{'CPU ms/visit':>12} {'x bare':>6} {'cores':>6} {'MB/camera':>9}",
    ]
    for s in document["steps"]:
        lines.append(
            f"{s['cameras']:>8} {s['on_time_share']:>8.1%} {s['cameras_on_time_every_turn']:>10} "
            f"{s['visit_latency_p50_ms'] or 0:>8.1f} {s['visit_latency_p99_ms'] or 0:>8.1f} "
            f"{s['late_p99_ms'] or 0:>9.1f} {s['cpu_ms_per_visit'] or 0:>12.1f} "
            f"{s['cpu_ratio_to_baseline'] or 0:>6.2f} {s['cpu_cores'] or 0:>6.2f} "
            f"{s['rss_mb_per_camera']:>9.3f}"
        )
    target = document["target"]
    lines.append(
        f"Largest count with >= {ON_TIME_SHARE:.0%} of visits on time: {target['cameras_on_time']} "
        f"(target >= {TARGET_CAMERAS}); RSS per camera at it {target['mb_per_camera']} MB, slope "
        f"{target['mb_per_camera_slope']} MB (target <= {TARGET_MB_PER_CAMERA})"
    )
    return "\n".join(lines)


def plot(document: dict[str, Any], path: Path) -> Path | None:
    plt = pyplot()
    if plt is None:
        return None
    steps = document["steps"]
    cameras = [s["cameras"] for s in steps]
    figure, left = plt.subplots(figsize=(7, 4.5))
    left.plot(cameras, [100 * s["on_time_share"] for s in steps], marker="o", label="visits on time (%)")
    left.axhline(100 * ON_TIME_SHARE, color="red", linestyle="--", linewidth=1)
    left.axvline(TARGET_CAMERAS, color="grey", linestyle=":", linewidth=1)
    left.set(xlabel="patrol cameras", ylabel="visits on time (%)", ylim=(0, 105))
    twin = left.twinx()
    twin.plot(cameras, [s["visit_latency_p99_ms"] or 0 for s in steps], color="tab:orange", marker="s")
    twin.set_ylabel("visit latency p99 (ms)", color="tab:orange")
    config = document["config"]
    left.set_title(
        f"bench_patrol: revisit {config['every_s']:g} s, {config['size']}, detect {config['detect']} "
        f"({document['machine']['cpu_count']} vCPUs, load {document['machine']['loadavg_1m']:.1f})",
        fontsize=9,
    )
    return save_figure(plt, figure, path)


def main(argv: list[str] | None = None) -> dict[str, Any]:
    """Run the sweep, write its JSON and PNG into ``--out``, print a table, return the document."""
    args = parse_args(argv)
    if args.point is not None:
        result = run_point(args)
        print(json.dumps(result))
        return result
    load_start = os.getloadavg()[0]
    with tempfile.TemporaryDirectory(prefix="sw-patrol-") as folder:
        jpeg = snapshot_jpeg(args.video, args.size_wh, Path(folder))
        jpeg_bytes = jpeg.stat().st_size
        server, port = start_server(jpeg)
        try:
            steps = [sweep_point(args, count, port) for count in sorted(args.camera_counts)]
        finally:
            server.terminate()
            server.wait(10)
    best = headline(steps)
    at_best = next((s for s in steps if s["cameras"] == best), None)
    slope = slope_mb(steps)
    document: dict[str, Any] = {
        "benchmark": "bench_patrol",
        "timestamp": datetime.now(UTC).isoformat(timespec="milliseconds"),
        "command": " ".join([PROG, *(sys.argv[1:] if argv is None else argv)]),
        "machine": {
            "cpu_count": os.cpu_count(),
            "cpu_model": cpu_model(),
            "platform": platform.platform(),
            "python": platform.python_version(),
            "loadavg_1m": load_start,
            "loadavg_1m_end": os.getloadavg()[0],
        },
        "config": {
            "every_s": args.every_s,
            "turns": args.turns,
            "on_time_s": args.on_time_s,
            "max_concurrent": args.max_concurrent,
            "visit_timeout_s": args.visit_timeout_s,
            "video": str(args.video),
            "size": args.size,
            "jpeg_bytes": jpeg_bytes,
            "detect": bool(args.detect),
            "rules": bool(args.rules),
            "model": str(args.model) if args.detect else None,
        },
        "steps": steps,
        "target": {
            "cameras": TARGET_CAMERAS,
            "cameras_on_time": best,
            "mb_per_camera": round(at_best["rss_mb_per_camera"], 3) if at_best else None,
            "mb_per_camera_slope": round(slope, 3) if slope is not None else None,
            "met": best >= TARGET_CAMERAS
            and at_best is not None
            and at_best["rss_mb_per_camera"] <= TARGET_MB_PER_CAMERA,
        },
    }
    args.out.mkdir(parents=True, exist_ok=True)
    json_path = write_json(args.out, "bench_patrol", document)
    document["json_path"] = str(json_path)
    png = plot(document, json_path.with_suffix(".png"))
    document["png_path"] = str(png) if png else None
    json_path.write_text(json.dumps(document, indent=1), encoding="utf-8")
    if not args.quiet:
        print(format_table(document))
        print(f"written: {json_path}" + (f", {png}" if png else " (no matplotlib: no PNG)"))
    return document


if __name__ == "__main__":
    main()
