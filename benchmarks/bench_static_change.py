"""CPU cost of static-change detection per analysed 1080p frame per camera, against a baseline run alongside.

Real frames of Debian's vtest.avi, upscaled to 1920x1080, two zones (lawn and paths: 70% of the frame; the
parked van's corner). The detector first learns its references (``--learn-s`` seconds of stream time, not
timed), so every timed call runs the full path: downscale, registration, motion, light fit, comparison,
evidence, regions. Modes, interleaved per round so machine noise hits both alike:

* ``baseline``: ``cv2.resize`` of the frame to 320 px wide with INTER_AREA, the least any detector working
  at that resolution must pay;
* ``static_change``: ``StaticChange.update`` on the same frame.

Every sample is kept (``time.perf_counter``); p50/p90/p99 and the ratio to the baseline are reported; the
target is p50 <= 3 ms per frame::

    .venv/bin/python -m benchmarks.bench_static_change --frames 200
"""

from __future__ import annotations

import argparse
import gc
import os
import platform
import sys
import time
from collections.abc import Callable, Sequence
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import cv2
import numpy as np
import numpy.typing as npt

from benchmarks.common import cpu_model, write_json
from contract.device_config import StaticChangeConfig
from pipeline.static_change import WORK_WIDTH, StaticChange

DEFAULT_VIDEO = Path("/usr/share/doc/opencv-doc/examples/data/vtest.avi")
FRAME_WH = (1920, 1080)
TARGET_MS = 3.0
FRAME_STEP_S = 0.4  # stream seconds between analysed frames (2.5 fps, the daemon's sampling)
ZONES = [
    ("lawn", [[0.0, 0.3], [1.0, 0.3], [1.0, 1.0], [0.0, 1.0]], StaticChangeConfig()),
    ("van", [[0.7, 0.0], [1.0, 0.0], [1.0, 0.3], [0.7, 0.3]], StaticChangeConfig()),
]
PROG = "python -m benchmarks.bench_static_change"
Frame = npt.NDArray[np.uint8]


def parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="bench_static_change", description=__doc__.split("\n")[0])
    parser.add_argument("--video", type=Path, default=DEFAULT_VIDEO, help="Video to take the frames from.")
    parser.add_argument("--frames", type=int, default=100, help="Timed frames (each mode), after learning.")
    parser.add_argument("--frame-step", type=int, default=4, help="Keep every N-th video frame.")
    parser.add_argument("--learn-s", type=float, default=12.0, help="Untimed stream seconds of learning.")
    parser.add_argument("--out", type=Path, default=Path("benchmarks/results"), help="JSON folder.")
    parser.add_argument("--quiet", action="store_true", help="Do not print the table.")
    args = parser.parse_args(argv)
    for name in ("frames", "frame_step"):
        if getattr(args, name) < 1:
            parser.error(f"--{name.replace('_', '-')} must be at least 1")
    if args.learn_s < 0:
        parser.error("--learn-s must be at least 0")
    return args


def decode_frames(video: Path, count: int, step: int) -> list[Frame]:
    """``count`` BGR frames (every ``step``-th, cycling the clip) upscaled to 1080p, decoded before timing."""
    import av

    frames: list[Frame] = []
    while len(frames) < count:
        before = len(frames)
        with av.open(str(video)) as container:
            for index, frame in enumerate(container.decode(video=0)):
                if index % step == 0:
                    image = frame.to_ndarray(format="bgr24")
                    frames.append(np.asarray(cv2.resize(image, FRAME_WH, interpolation=cv2.INTER_LINEAR)))
                if len(frames) == count:
                    break
        if len(frames) == before:
            raise ValueError(f"{video}: no decodable video frames")
    return frames


def measure(frames: list[Frame], timed: int, learn_s: float) -> tuple[dict[str, list[float]], StaticChange]:
    static = StaticChange("bench", ZONES, class_id=80)
    none = np.zeros((0, 4), np.float32)
    start = datetime(2026, 1, 1, tzinfo=UTC)
    learn_frames = int(learn_s / FRAME_STEP_S) + 1
    for i in range(learn_frames):
        static.update(frames[i % len(frames)], start + timedelta(seconds=i * FRAME_STEP_S), none)
    work_wh = (WORK_WIDTH, round(FRAME_WH[1] * WORK_WIDTH / FRAME_WH[0]))

    def baseline(frame: Frame, _: datetime) -> object:
        return cv2.resize(frame, work_wh, interpolation=cv2.INTER_AREA)

    def detect(frame: Frame, when: datetime) -> object:
        return static.update(frame, when, none)

    modes: dict[str, Callable[[Frame, datetime], object]] = {"baseline": baseline, "static_change": detect}
    samples: dict[str, list[float]] = {name: [] for name in modes}
    names = list(modes)
    gc.collect()
    for i, frame in enumerate(frames[:timed]):
        when = start + timedelta(seconds=(learn_frames + i) * FRAME_STEP_S)
        for name in names[i % 2 :] + names[: i % 2]:  # alternate which mode goes first
            t0 = time.perf_counter()
            modes[name](frame, when)
            samples[name].append((time.perf_counter() - t0) * 1e3)
    return samples, static


def summarise(samples_ms: list[float]) -> dict[str, Any]:
    values = np.asarray(samples_ms)
    p50, p90, p99 = np.percentile(values, [50, 90, 99])
    return {
        "n": len(values),
        "p50_ms": float(p50),
        "p90_ms": float(p90),
        "p99_ms": float(p99),
        "mean_ms": float(values.mean()),
        "samples_ms": [round(v, 4) for v in samples_ms],
    }


def format_table(document: dict[str, Any]) -> str:
    config = document["config"]
    lines = [
        f"{config['frames']} frames {config['frame_wh']} of {Path(config['video']).name}, "
        f"{len(config['zones'])} zones, {document['machine']['cpu_count']} CPUs, "
        f"load {document['machine']['loadavg_1m']:.1f}",
        f"{'mode':<15}{'p50 ms':>9}{'p90 ms':>9}{'p99 ms':>9}{'mean ms':>9}",
    ]
    for mode, s in document["modes"].items():
        lines.append(
            f"{mode:<15}{s['p50_ms']:>9.2f}{s['p90_ms']:>9.2f}{s['p99_ms']:>9.2f}{s['mean_ms']:>9.2f}"
        )
    target = document["target"]
    verdict = "met" if target["met"] else "NOT met"
    lines.append(
        f"static_change/baseline: p50 {target['ratio_p50']:.2f}, paired median {target['ratio_paired']:.2f}; "
        f"p50 {target['p50_ms']:.2f} ms (target <= {TARGET_MS} ms: {verdict})"
    )
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> dict[str, Any]:
    """Run the benchmark, write its JSON into ``--out``, print a table, return the document."""
    args = parse_args(argv)
    cv2.setNumThreads(1)  # one camera's share: the daemon runs the rules on one thread
    learn_count = int(args.learn_s / FRAME_STEP_S) + 1
    frames = decode_frames(args.video, max(args.frames, learn_count), args.frame_step)
    load_start = os.getloadavg()[0]
    samples, static = measure(frames, args.frames, args.learn_s)
    stats = {mode: summarise(values) for mode, values in samples.items()}
    paired = np.median(np.asarray(samples["static_change"]) / np.asarray(samples["baseline"]))
    document: dict[str, Any] = {
        "benchmark": "bench_static_change",
        "timestamp": datetime.now(UTC).isoformat(timespec="milliseconds"),
        "command": " ".join([PROG, *(sys.argv[1:] if argv is None else argv)]),
        "machine": {
            "cpu_count": os.cpu_count(),
            "cpu_model": cpu_model(),
            "platform": platform.platform(),
            "python": platform.python_version(),
            "numpy": np.__version__,
            "opencv": cv2.__version__,
            "loadavg_1m": load_start,
            "loadavg_1m_end": os.getloadavg()[0],
        },
        "config": {
            "video": str(args.video),
            "frame_wh": list(FRAME_WH),
            "frames": len(samples["baseline"]),
            "frame_step": args.frame_step,
            "learn_s": args.learn_s,
            "zones": [zone_id for zone_id, _, _ in ZONES],
            "opencv_threads": 1,
        },
        "states": static.state(),
        "modes": stats,
        "target": {
            "max_ms": TARGET_MS,
            "p50_ms": stats["static_change"]["p50_ms"],
            "ratio_p50": stats["static_change"]["p50_ms"] / stats["baseline"]["p50_ms"],
            "ratio_paired": float(paired),
            "met": stats["static_change"]["p50_ms"] <= TARGET_MS,
        },
    }
    args.out.mkdir(parents=True, exist_ok=True)
    document["json_path"] = str(write_json(args.out, "bench_static_change", document))
    if not args.quiet:
        print(format_table(document))
    return document


if __name__ == "__main__":
    main()
