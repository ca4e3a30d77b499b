"""Camera-thread CPU per analysed frame (demux + decode + conversion), before and after lean decoding.

K file cameras (vtest.avi re-encoded to 1080p25 H.264, GOP 2 s, as the pipeline benchmark's clip; and the
same at 640x360 as a substream) are read once each, as fast as they go, keyframe sampling, the detector's
640x640 copy made for every sample. A consumer takes every sample and reads what the daemon reads of every
frame (the detector's copy and the frame size). The process CPU time (all threads) divided by the samples
is the figure. Variants, interleaved ``--repeats`` times so that load drift hits each alike:

- ``baseline``: ``pipeline/sources.py`` as it was at ``--baseline-ref`` (loaded from git): the full-size
  BGR picture converted for every sample;
- ``lean``: the current source (the full picture converted only when looked at; cheaper per-packet work);
- ``substream``: the current source with ``detect_url`` at 640x360 and ``url`` the 1080p main stream,
  only demuxed (its keyframe decoded on demand: timed separately, ``main keyframe decode``).

Start-up, baseline and lean (``run_startup``): the K cameras opened at once, process CPU per camera until
every source knows its GOP and has handed over its first sample (the baseline decodes the whole first GOP
to learn it; the current source holds those packets undecoded).

    .venv/bin/python -m benchmarks.bench_decode --cameras 4 --repeats 3
"""

from __future__ import annotations

import argparse
import importlib.util
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from types import ModuleType
from typing import Any

from benchmarks.pipeline_bench.clip import ClipSpec, prepare_clip

REPO = Path(__file__).resolve().parents[1]
VTEST = Path("/usr/share/doc/opencv-doc/examples/data/vtest.avi")
DEFAULT_CACHE = Path(__file__).resolve().parent / ".cache"
ZONES = [
    {
        "id": "z",
        "place": "p",
        "polygon": [[0, 0], [1, 0], [1, 1]],
        "rules": {"illegal_parking": {"dwell_s": 30}},
    }
]


def baseline_module(ref: str) -> ModuleType:
    """``pipeline/sources.py`` at git ``ref``, with the ``pipeline/sampling.py`` of that ref (how a source
    samples and probes its GOP), imported under other names beside the current ones."""
    folder = Path(tempfile.mkdtemp(prefix="bench-decode-"))
    sampling = _load(folder, "baseline_sampling", _source_at(ref, "pipeline/sampling.py"))
    text = _source_at(ref, "pipeline/sources.py").replace(
        "from pipeline.sampling import", f"from {sampling.__name__} import"
    )
    return _load(folder, "baseline_sources", text)


def _source_at(ref: str, path: str) -> str:
    try:
        return subprocess.run(
            ["git", "show", f"{ref}:{path}"], cwd=REPO, check=True, capture_output=True, text=True
        ).stdout
    except subprocess.CalledProcessError as exc:
        problem = exc.stderr.strip()
        raise SystemExit(f"--baseline-ref {ref}: cannot read {path} there: {problem}") from exc


def _load(folder: Path, name: str, text: str) -> ModuleType:
    path = folder / f"{name}.py"
    path.write_text(text, encoding="utf-8")
    spec = importlib.util.spec_from_file_location(name, path)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module
    spec.loader.exec_module(module)
    return module


def run_startup(source_class: Any, cameras: list[Any], input_hw: tuple[int, int]) -> dict[str, float]:
    """K cameras opened at once: process CPU ms per camera from the start until every source knows its
    GOP (sampling ``keyframes``) and has handed over its first sample: the start-up cost of a box."""
    started_cpu, started_wall = time.process_time(), time.perf_counter()
    sources = [source_class(camera, input_hw=input_hw, queue_size=4) for camera in cameras]
    for source in sources:
        source.start()
    first = [False] * len(sources)
    try:
        while not (all(first) and all(source.health.sampling == "keyframes" for source in sources)):
            for index, source in enumerate(sources):
                if source.next_frame(0.005) is not None:
                    first[index] = True
                elif source.ended:
                    raise SystemExit("a source ended before it learnt its GOP: is the clip's GOP 2 s?")
        cpu, wall = time.process_time() - started_cpu, time.perf_counter() - started_wall
    finally:
        for source in sources:
            source.stop(2.0)
    return {"cpu_ms_per_camera": 1000 * cpu / len(sources), "wall_s": wall}


def run_variant(source_class: Any, cameras: list[Any], input_hw: tuple[int, int]) -> dict[str, float]:
    """Every sample of every camera; process CPU ms and wall s per sample in the steady state: counted
    from when every source has finished its GOP probe (:func:`run_startup` measures that part) to the end
    of the files."""
    sources = [source_class(camera, input_hw=input_hw, queue_size=4) for camera in cameras]
    for source in sources:
        source.start()
    samples = 0
    live = list(sources)
    cpu0: float | None = None
    wall0 = 0.0
    while live:
        if cpu0 is None and all(source.health.sampling == "keyframes" for source in sources):
            cpu0, wall0, samples = time.process_time(), time.perf_counter(), 0
        for source in list(live):
            frame = source.next_frame(0.01)
            if frame is None:
                if source.ended:
                    live.remove(source)
                continue
            samples += 1
            assert frame.small is not None
            _ = frame.image.shape if not hasattr(frame, "hw") else frame.hw  # what the daemon reads
    if cpu0 is None:
        raise SystemExit("the sources never reached keyframe sampling: is the clip's GOP 2 s?")
    cpu, wall = time.process_time() - cpu0, time.perf_counter() - wall0
    for source in sources:
        source.stop(2.0)
    return {"samples": samples, "cpu_ms_per_sample": 1000 * cpu / max(samples, 1), "wall_s": wall}


def main_keyframe_decode_ms(main: Path, sub: Path, height: int, repeats: int = 5) -> float:
    """CPU ms to decode one main-stream keyframe on demand (what an event with evidence costs)."""
    from pipeline.config import CameraConfig
    from pipeline.substream import MainStream

    config = CameraConfig.model_validate(
        {"id": "m", "url": str(main), "detect_url": str(sub), "zones": ZONES}
    )
    stream = MainStream(config, follow=True)
    stream.start()
    try:
        times = []
        for index in range(repeats):
            stream.advance_to(2.0 * index)
            time.sleep(0.05)
            stream._decoded = None  # time a fresh decode each time
            t = time.process_time()
            image = stream.image()
            times.append(1000 * (time.process_time() - t))
            assert image is not None and image.shape[0] == height
        return statistics.median(times)
    finally:
        stream.stop()


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--cameras", type=int, default=4, help="File cameras read at once per variant.")
    p.add_argument("--repeats", type=int, default=3, help="Rounds of the three variants, interleaved.")
    p.add_argument("--baseline-ref", default="16d4253", help="Git ref of the baseline pipeline/sources.py.")
    p.add_argument("--cache", type=Path, default=DEFAULT_CACHE, help="Clip cache folder.")
    p.add_argument("--main-height", type=int, default=1080, help="Main stream height (16:9).")
    p.add_argument("--sub-height", type=int, default=360, help="Substream height (16:9).")
    p.add_argument("--clip-seconds", type=float, default=None, help="Clip length (default: all of vtest).")
    p.add_argument("--out", type=Path, default=None, help="Write the JSON here.")
    args = p.parse_args(argv)
    if args.cameras < 1 or args.repeats < 1:
        p.error("--cameras and --repeats must be at least 1")
    if not 0 < args.sub_height < args.main_height:
        p.error("--sub-height must be positive and below --main-height")
    return args


def main(argv: list[str] | None = None) -> dict[str, Any]:
    args = parse_args(argv)
    from pipeline.config import CameraConfig
    from pipeline.sources import CameraSource

    main_clip = prepare_clip(VTEST, args.cache, ClipSpec(height=args.main_height, seconds=args.clip_seconds))
    sub_rate = max(300_000, 4_000_000 * args.sub_height // 1080)
    sub_clip = prepare_clip(
        VTEST, args.cache, ClipSpec(height=args.sub_height, bit_rate=sub_rate, seconds=args.clip_seconds)
    )
    baseline = baseline_module(args.baseline_ref).CameraSource

    def cams(**extra: Any) -> list[Any]:
        return [
            CameraConfig.model_validate(
                {
                    "id": f"c{i}",
                    "sample": {"mode": "keyframes"},
                    "skip_unchanged": False,
                    "zones": ZONES,
                    **extra,
                }
            )
            for i in range(args.cameras)
        ]

    variants = {
        "baseline": (baseline, cams(url=str(main_clip))),
        "lean": (CameraSource, cams(url=str(main_clip))),
        "substream": (CameraSource, cams(url=str(main_clip), detect_url=str(sub_clip))),
    }
    results: dict[str, list[dict[str, float]]] = {name: [] for name in variants}
    startups: dict[str, list[dict[str, float]]] = {name: [] for name in ("baseline", "lean")}
    load = os.getloadavg()
    for _ in range(args.repeats):
        for name, (source_class, configs) in variants.items():
            results[name].append(run_variant(source_class, configs, (640, 640)))
        for name in startups:
            source_class, configs = variants[name]
            startups[name].append(run_startup(source_class, configs, (640, 640)))
    decode_ms = main_keyframe_decode_ms(main_clip, sub_clip, args.main_height)
    summary: dict[str, dict[str, Any]] = {
        name: {
            "cpu_ms_per_sample": statistics.median(r["cpu_ms_per_sample"] for r in runs),
            "samples": runs[0]["samples"],
            "runs": runs,
        }
        for name, runs in results.items()
    }
    base = float(summary["baseline"]["cpu_ms_per_sample"])
    print(
        f"load average at start {load[0]:.2f} {load[1]:.2f} {load[2]:.2f}; "
        f"{args.cameras} cameras, {args.repeats} rounds"
    )
    for name, row in summary.items():
        ms = float(row["cpu_ms_per_sample"])
        print(
            f"{name:10s} {ms:7.1f} CPU ms per analysed frame "
            f"({ms / base:.2f}x baseline, {row['samples']} samples)"
        )
    print(f"main keyframe decode on demand ({args.main_height}p): {decode_ms:.1f} CPU ms")
    startup_ms = {
        name: statistics.median(r["cpu_ms_per_camera"] for r in runs) for name, runs in startups.items()
    }
    startup = {name: {"cpu_ms_per_camera": startup_ms[name], "runs": runs} for name, runs in startups.items()}
    base_startup = startup_ms["baseline"]
    for name, ms in startup_ms.items():
        print(
            f"start-up {name:10s} {ms:7.1f} CPU ms per camera until it knows its GOP and has its first "
            f"sample ({ms / base_startup:.2f}x baseline)"
        )
    document = {
        "summary": summary,
        "startup": startup,
        "main_keyframe_decode_ms": decode_ms,
        "load_average": load,
        "load_average_end": os.getloadavg(),
        "args": {k: str(v) for k, v in vars(args).items()},
    }
    if args.out is not None:
        args.out.parent.mkdir(parents=True, exist_ok=True)
        args.out.write_text(json.dumps(document, indent=1), encoding="utf-8")
    return document


if __name__ == "__main__":
    main()
