"""The box's ceiling before any trial: raw ONNX Runtime throughput of the model, the CPU cost of decoding a
sample, and the analysed fps and cameras they allow at most."""

from __future__ import annotations

import gc
import os
import threading
import time
from pathlib import Path
from typing import Any

import numpy as np

from benchmarks.pipeline_bench.clip import Frame
from benchmarks.pipeline_bench.verdict import percentiles_ms


def measure_raw(
    model: str,
    frame: Frame,
    *,
    threads: int | None,
    batch: int,
    seconds: float,
    callers: int = 1,
    max_scale: float | None = None,
) -> dict[str, Any]:
    """``session.run`` on a tensor prepared once from ``frame`` (batch ``batch``), for ``seconds``, with the
    session settings the daemon builds from its default detector configuration (spinning off: its CPU per
    inference is what the daemon pays), from ``callers`` threads at once as the daemon's
    ``scheduler.inference_workers`` call it (two single-threaded calls at once run 1.4x the frames of one
    call on two threads on the 2-vCPU box: raw is measured in the shape the daemon runs). ``max_scale``:
    as the daemon passes it for a zone-ROI crop (a model of dynamic input size runs it at its own size)."""
    from detector import Detector
    from pipeline.config import DetectorConfig

    defaults = DetectorConfig(model=Path(model), classes={"any": "any"}, intra_op_threads=threads)
    detector = Detector(model, settings=defaults.session_settings())
    size = detector.fixed_batch or batch
    tensor, _ = detector.preprocessor(
        [frame] * size, batch_size=detector.fixed_batch, max_scale=[max_scale] * size
    )
    feeds = {detector.input_name: tensor.copy()}  # the preprocessor reuses its buffer
    outputs = [detector.output_name]
    for _ in range(2):
        detector.session.run(outputs, feeds)
    cpu_started = time.process_time()
    samples, wall_ms = _run_at_once(detector.session, outputs, feeds, callers=callers, seconds=seconds)
    cpu_ms = (time.process_time() - cpu_started) * 1e3
    del detector
    gc.collect()
    stats = percentiles_ms(samples)
    stats["batch"] = size
    stats["input_hw"] = [int(tensor.shape[2]), int(tensor.shape[3])]
    stats["callers"] = callers
    stats["fps"] = 1e3 * size * len(samples) / wall_ms
    stats["cpu_ms_per_frame"] = cpu_ms / (size * len(samples))  # all of ORT's threads, spinning included
    stats["samples_ms"] = [round(v, 3) for v in samples]
    return stats


def _run_at_once(
    session: Any, outputs: list[str], feeds: dict[str, Any], *, callers: int, seconds: float
) -> tuple[list[float], float]:
    """``session.run`` from ``callers`` threads at once for ``seconds``: each call's ms, and the wall ms."""
    samples: list[float] = []  # list.append is atomic: the callers share it
    started = time.perf_counter()

    def call() -> None:
        while time.perf_counter() - started < seconds or len(samples) < 3:
            t = time.perf_counter()
            session.run(outputs, feeds)
            samples.append((time.perf_counter() - t) * 1e3)

    running = [threading.Thread(target=call, name=f"raw-{i}") for i in range(callers)]
    for thread in running:
        thread.start()
    for thread in running:
        thread.join()
    return samples, (time.perf_counter() - started) * 1e3


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
