"""The detector benchmark's sweeps: batch sizes, ONNX Runtime threads x spinning under the daemon's
pattern, and input-size variants; each measured in one run with interleaved rounds, plus the PNG.

* ``batch``: raw ``session.run`` on a ready tensor of B frames (B = 1, 2, 4, 8): frames per second and
  process CPU ms per frame (``getrusage``: every thread of the process).
* ``pattern``: what the daemon does between batches: a small batch, then a gap (``--gap-ms``) while a
  competing thread decodes video (PyAV, as a camera thread does). One session per setting (intra-op
  threads 1/2 x spinning on/off), all built up front; rounds rotate through them. The CPU of a setting
  is its own ONNX Runtime worker threads (told apart by the thread ids each session created, read from
  ``/proc/self/task``) plus the calling thread's time in ``run``; the decode thread's frames per second
  are reported beside it: CPU a spinning pool takes is CPU decoding does not get.
* ``variants``: raw ``session.run`` fps of the model at its own size and rewritten to other input sizes
  (e.g. 384x640 for 16:9 cameras, :mod:`detector.graph_edit`), and the full call on the same frames.
"""

from __future__ import annotations

import os
import resource
import shutil
import tempfile
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt

from benchmarks.common import pyplot, save_figure
from detector import Detector
from detector.session import SessionSettings

Frame = npt.NDArray[np.uint8]
CLOCK_TICK_S = 1.0 / os.sysconf("SC_CLK_TCK")


def process_cpu_s() -> float:
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


def thread_ids() -> set[int]:
    try:
        return {int(t.name) for t in Path("/proc/self/task").iterdir()}
    except OSError:
        return set()


def threads_cpu_s(tids: set[int]) -> float:
    """CPU seconds (user + system) of the given threads of this process, from /proc (10 ms ticks)."""
    total = 0
    for tid in tids:
        try:
            fields = Path(f"/proc/self/task/{tid}/stat").read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        total += int(fields[11]) + int(fields[12])  # utime, stime (fields 14, 15 of stat)
    return total * CLOCK_TICK_S


@contextmanager
def dynamic_batch_model(model: Path, detector: Detector) -> Iterator[tuple[Path, str | None]]:
    """``model`` itself if its batch axis is dynamic, else a checked rewrite in a scratch folder."""
    if detector.fixed_batch is None:
        yield model, None
        return
    from detector.graph_edit import rewrite_file

    with tempfile.TemporaryDirectory(prefix="bench-detector-") as scratch:
        target = Path(scratch) / f"{Path(detector.card.path).stem}-dynamic.onnx"
        rewrite_file(Path(detector.card.path), target, dynamic_batch=True)
        yield target, f"batch axis made dynamic for the sweep (streetwatch models reshape): {target.name}"


def _tensor(detector: Detector, frames: Sequence[Frame], batch: int) -> npt.NDArray[Any]:
    chosen = [frames[i % len(frames)] for i in range(batch)]
    tensor, _ = detector.preprocessor(chosen, batch_size=batch)
    return tensor.copy()


def batch_sweep(
    model: Path,
    frames: Sequence[Frame],
    batches: Sequence[int],
    *,
    settings: SessionSettings,
    rounds: int,
    min_s: float,
) -> dict[str, Any]:
    """fps and CPU ms per frame of raw ``session.run`` at each batch size, rounds interleaved."""
    probe = Detector(model, settings=settings, warmup=False)
    with dynamic_batch_model(model, probe) as (onnx_path, note):
        detector = Detector(onnx_path, settings=settings, warmup=False) if note else probe
        feeds = {b: {detector.input_name: _tensor(detector, frames, b)} for b in batches}
        outputs = [detector.output_name]
        for b in batches:  # warm-up: each batch shape once
            detector.session.run(outputs, feeds[b])
        wall = dict.fromkeys(batches, 0.0)
        cpu = dict.fromkeys(batches, 0.0)
        done = dict.fromkeys(batches, 0)
        for r in range(rounds):
            order = list(batches[r % len(batches) :]) + list(batches[: r % len(batches)])
            for b in order:
                c0, t0, n = process_cpu_s(), time.perf_counter(), 0
                while n == 0 or time.perf_counter() - t0 < min_s:
                    detector.session.run(outputs, feeds[b])
                    n += 1
                wall[b] += time.perf_counter() - t0
                cpu[b] += process_cpu_s() - c0
                done[b] += n * b
    rows = [
        {
            "batch": b,
            "frames": done[b],
            "fps": done[b] / wall[b],
            "ms_per_frame": 1e3 * wall[b] / done[b],
            "cpu_ms_per_frame": 1e3 * cpu[b] / done[b],
        }
        for b in batches
    ]
    best = max(rows, key=lambda row: row["fps"])
    return {
        "threads": settings.intra_op_threads,
        "spinning": settings.allow_spinning,
        "rounds": rounds,
        "model_note": note,
        "rows": rows,
        "best_batch": best["batch"],
        "fps_ratio_to_batch1": {str(row["batch"]): row["fps"] / rows[0]["fps"] for row in rows}
        if rows[0]["batch"] == 1
        else {},
    }


class DecodeCompetitor(threading.Thread):
    """Decodes ``video`` to BGR over and over, as a camera thread does, counting frames and its own CPU."""

    def __init__(self, video: Path) -> None:
        super().__init__(name="decode-competitor", daemon=True)
        self.video = video
        self.frames = 0
        self.stop = threading.Event()

    def run(self) -> None:
        import av

        while not self.stop.is_set():
            with av.open(str(self.video)) as container:
                for frame in container.decode(video=0):
                    frame.to_ndarray(format="bgr24")
                    self.frames += 1
                    if self.stop.is_set():
                        return


@dataclass
class PatternSetting:
    threads: int
    spinning: bool
    detector: Detector
    tids: set[int]
    cpu_s: float = 0.0
    run_wall_s: float = 0.0
    inferences: int = 0
    decoded: int = 0
    wall_s: float = 0.0

    @property
    def name(self) -> str:
        return f"threads {self.threads}, spinning {'on' if self.spinning else 'off'}"


def daemon_pattern(
    model: Path,
    frames: Sequence[Frame],
    video: Path,
    *,
    threads: Sequence[int] = (1, 2),
    spinning: Sequence[bool] = (True, False),
    batch: int = 1,
    gap_ms: float,
    rounds: int,
    per_round: int,
) -> dict[str, Any]:
    """CPU ms per inference for each threads x spinning setting under gaps and a competing decoder."""
    settings: list[PatternSetting] = []
    for t in threads:
        for spin in spinning:
            before = thread_ids()
            detector = Detector(
                model, settings=SessionSettings(intra_op_threads=t, allow_spinning=spin), warmup=True
            )
            settings.append(PatternSetting(t, spin, detector, thread_ids() - before))
    probe = settings[0].detector
    with dynamic_batch_model(model, probe) if batch > 1 and probe.fixed_batch else _same(model) as (onnx, _):
        if onnx != model:  # batch > 1 on a static model: rebuild the sessions on the dynamic rewrite
            for s in settings:
                before = thread_ids()
                s.detector = Detector(
                    onnx, settings=SessionSettings(intra_op_threads=s.threads, allow_spinning=s.spinning)
                )
                s.tids = thread_ids() - before
        feeds = [{s.detector.input_name: _tensor(s.detector, frames, batch)} for s in settings]
        competitor = DecodeCompetitor(video)
        competitor.start()
        time.sleep(0.5)
        try:
            for r in range(rounds):
                for i in [(r + k) % len(settings) for k in range(len(settings))]:
                    _pattern_round(settings[i], feeds[i], competitor, gap_ms / 1e3, per_round)
        finally:
            competitor.stop.set()
            competitor.join(timeout=10)
    rows: list[dict[str, Any]] = [
        {
            "setting": s.name,
            "threads": s.threads,
            "spinning": s.spinning,
            "inferences": s.inferences,
            "cpu_ms_per_inference": 1e3 * s.cpu_s / s.inferences,
            "run_ms_mean": 1e3 * s.run_wall_s / s.inferences,
            "decode_fps": s.decoded / s.wall_s,
        }
        for s in settings
    ]
    base = rows[0]["cpu_ms_per_inference"]
    for row in rows:
        row["cpu_ratio_to_first"] = row["cpu_ms_per_inference"] / base
    best = min(rows, key=lambda row: row["cpu_ms_per_inference"])
    return {
        "batch": batch,
        "gap_ms": gap_ms,
        "rounds": rounds,
        "per_round": per_round,
        "rows": rows,
        "lowest_cpu": best["setting"],
    }


@contextmanager
def _same(model: Path) -> Iterator[tuple[Path, None]]:
    yield model, None


def _pattern_round(
    s: PatternSetting, feeds: dict[str, Any], competitor: DecodeCompetitor, gap_s: float, count: int
) -> None:
    outputs = [s.detector.output_name]
    workers0, decoded0, start = threads_cpu_s(s.tids), competitor.frames, time.perf_counter()
    for _ in range(count):
        c0, t0 = time.thread_time(), time.perf_counter()
        s.detector.session.run(outputs, feeds)
        s.run_wall_s += time.perf_counter() - t0
        s.cpu_s += time.thread_time() - c0  # the calling thread is intra-op thread 0
        time.sleep(gap_s)  # the daemon waits for the next batch; a spinning pool keeps burning here
    s.wall_s += time.perf_counter() - start
    s.decoded += competitor.frames - decoded0
    s.cpu_s += threads_cpu_s(s.tids) - workers0
    s.inferences += count


def variants(
    model: Path,
    frames: Sequence[Frame],
    sizes: Sequence[tuple[int, int]],
    *,
    settings: SessionSettings,
    rounds: int,
    per_round: int,
    extra_models: Sequence[Path] = (),
) -> dict[str, Any]:
    """Raw and full ms per frame of the model at its size, rewritten to each of ``sizes`` (where the graph
    allows it) and of ``extra_models`` (e.g. the same weights exported at 384x640)."""
    from detector.graph_edit import GraphEditError, rewrite_file

    skipped: dict[str, str] = {}
    base = Detector(model, settings=settings)
    runs: dict[str, tuple[Callable[[], Any], Callable[[int], int]]] = {}
    with tempfile.TemporaryDirectory(prefix="bench-detector-") as scratch:
        detectors = {"x".join(map(str, base.card.input.size_hw)): base}
        for size in sizes:
            target = Path(scratch) / f"{base.card.name}-{size[0]}x{size[1]}.onnx"
            if base.card.input.dynamic:  # the graph runs at any size already: the same file, run at ``size``
                shutil.copyfile(base.card.path, target)
            else:
                try:
                    rewrite_file(
                        Path(base.card.path), target, dynamic_batch=base.fixed_batch is None, size_hw=size
                    )
                except GraphEditError as exc:
                    skipped[f"{size[0]}x{size[1]}"] = str(exc)
                    continue
            card = _card_like(base, target, size)
            detectors[f"{size[0]}x{size[1]}"] = Detector(card, settings=settings)
        for other in extra_models:
            detector = Detector(other, settings=settings)
            detectors[f"{'x'.join(map(str, detector.card.input.size_hw))} ({detector.card.name})"] = detector
        for name, det in detectors.items():
            runs[name] = _runners(det, frames)
        raw: dict[str, list[float]] = {n: [] for n in runs}
        full: dict[str, list[float]] = {n: [] for n in runs}
        found = {n: 0 for n in runs}
        names = list(runs)
        for step in range(rounds * per_round):  # every size once per step, rotating: paired under load
            shift = step % len(names)
            for name in names[shift:] + names[:shift]:
                run_raw, run_full = runs[name]
                t0 = time.perf_counter()
                run_raw()
                raw[name].append(time.perf_counter() - t0)
                t0 = time.perf_counter()
                found[name] += run_full(step)
                full[name].append(time.perf_counter() - t0)
    first = next(iter(runs))
    rows = [
        {
            "input_hw": name,
            "raw_p50_ms": 1e3 * float(np.median(raw[name])),
            "raw_fps": len(raw[name]) / sum(raw[name]),
            "full_p50_ms": 1e3 * float(np.median(full[name])),
            "detections_per_frame": found[name] / len(full[name]),
            "raw_p50_ratio_to_own_size": float(np.median(raw[name]) / np.median(raw[first])),
            "raw_paired_median_ratio": float(np.median(np.asarray(raw[name]) / np.asarray(raw[first]))),
        }
        for name in runs
    ]
    return {
        "threads": settings.intra_op_threads,
        "rounds": rounds,
        "per_round": per_round,
        "rows": rows,
        "skipped": skipped,
    }


def _runners(detector: Detector, frames: Sequence[Frame]) -> tuple[Callable[[], Any], Callable[[int], int]]:
    """Raw ``session.run`` on a ready tensor, and the full call on the i-th frame."""
    feeds = {detector.input_name: _tensor(detector, frames, 1)}
    outputs = [detector.output_name]

    def raw() -> Any:
        return detector.session.run(outputs, feeds)

    def full(i: int) -> int:
        return len(detector(frames[i % len(frames)]))

    return raw, full


def _card_like(base: Detector, onnx: Path, size: tuple[int, int]) -> Path:
    """A card for the rewritten file: the base card's fields with the new path, size and checksum."""
    from detector.card import card_to_yaml_dict, sha256_of
    from detector.export import write_card

    card = base.card.model_copy(
        update={
            "path": onnx,
            "sha256": sha256_of(onnx),
            "name": onnx.stem,
            "input": base.card.input.model_copy(update={"size_hw": size, "dynamic": False}),  # exactly that
        }
    )
    path = onnx.with_suffix(".yaml")
    write_card(card, path, command="benchmarks.detector_sweeps")
    assert card_to_yaml_dict(card)  # the card serialises
    return path


def plot(document: dict[str, Any], path: Path) -> Path | None:
    """Batch size vs fps (and CPU ms per frame); threads x spinning CPU per inference, when measured."""
    plt = pyplot()
    if plt is None:
        return None
    sweeps = document.get("sweeps", {})
    panels = [k for k in ("batch", "pattern", "variants") if k in sweeps]
    if not panels:
        return None
    figure, axes = plt.subplots(1, len(panels), figsize=(5.5 * len(panels), 4.2), squeeze=False)
    for ax, panel in zip(axes[0], panels, strict=True):
        data = sweeps[panel]
        if panel == "batch":
            b = [row["batch"] for row in data["rows"]]
            ax.plot(b, [row["fps"] for row in data["rows"]], marker="o", label="frames/s")
            ax.set(
                xlabel="batch size",
                ylabel="frames per second",
                xscale="log",
                xticks=b,
                title=f"raw session.run, {data['threads']} threads",
            )
            ax.set_xticklabels([str(v) for v in b])
            ax.minorticks_off()
            twin = ax.twinx()
            twin.plot(
                b,
                [row["cpu_ms_per_frame"] for row in data["rows"]],
                color="grey",
                linestyle=":",
                marker="s",
                label="CPU ms/frame",
            )
            twin.set_ylabel("CPU ms per frame")
            ax.legend(loc="upper left", fontsize=8)
            twin.legend(loc="lower right", fontsize=8)
        elif panel == "pattern":
            names = [row["setting"].replace(", ", "\n") for row in data["rows"]]
            ax.bar(names, [row["cpu_ms_per_inference"] for row in data["rows"]], color="tab:blue")
            ax.set(
                ylabel="CPU ms per inference",
                title=f"batch {data['batch']}, {data['gap_ms']:g} ms gaps, decoder beside",
            )
            twin = ax.twinx()
            twin.plot(names, [row["decode_fps"] for row in data["rows"]], color="tab:orange", marker="o")
            twin.set_ylabel("competing decoder, frames/s", color="tab:orange")
        else:
            names = [row["input_hw"] for row in data["rows"]]
            ax.bar(names, [row["raw_p50_ms"] for row in data["rows"]], label="raw p50")
            ax.plot(
                names,
                [row["full_p50_ms"] for row in data["rows"]],
                color="black",
                marker="o",
                label="full call p50",
            )
            ax.set(ylabel="ms per frame", title="input size")
            ax.legend(fontsize=8)
    config, machine = document["config"], document["machine"]
    figure.suptitle(
        f"bench_detector {config['model_name']} {document['timestamp'][:16]} "
        f"({machine['cpu_count']} CPUs, load {machine['loadavg_1m']:.1f})"
    )
    return save_figure(plt, figure, path)


def format_sweeps(found: dict[str, Any]) -> str:
    lines: list[str] = []
    if "batch" in found:
        data = found["batch"]
        lines.append(
            f"batch sweep (raw session.run, {data['threads']} threads, {data['rounds']} rounds)"
            + (f"; {data['model_note']}" if data["model_note"] else "")
        )
        lines.append(f"{'batch':>6}{'fps':>9}{'ms/frame':>10}{'CPU ms/frame':>14}{'fps/batch1':>12}")
        ratios = data["fps_ratio_to_batch1"]
        for row in data["rows"]:
            ratio = ratios.get(str(row["batch"]))
            lines.append(
                f"{row['batch']:>6}{row['fps']:>9.2f}{row['ms_per_frame']:>10.2f}{row['cpu_ms_per_frame']:>14.2f}"
                f"{'' if ratio is None else f'{ratio:.3f}':>12}"
            )
    if "pattern" in found:
        data = found["pattern"]
        lines.append(
            f"daemon pattern (batch {data['batch']}, {data['gap_ms']:g} ms gap after each run, a decode "
            f"thread beside it, {data['rounds']} rounds x {data['per_round']} runs)"
        )
        lines.append(f"{'setting':<28}{'CPU ms/inference':>17}{'ratio':>7}{'run ms':>8}{'decode fps':>11}")
        for row in data["rows"]:
            lines.append(
                f"{row['setting']:<28}{row['cpu_ms_per_inference']:>17.1f}{row['cpu_ratio_to_first']:>7.2f}"
                f"{row['run_ms_mean']:>8.1f}{row['decode_fps']:>11.1f}"
            )
    if "variants" in found:
        data = found["variants"]
        lines.append(
            f"input sizes ({data['threads']} threads, {data['rounds']} rounds x {data['per_round']})"
        )
        lines.extend(f"  not measured {size}: {why}" for size, why in data["skipped"].items())
        lines.append(
            f"{'input':<10}{'raw p50 ms':>11}{'raw fps':>9}{'full p50 ms':>12}{'dets/frame':>11}{'ratio':>7}"
        )
        for row in data["rows"]:
            lines.append(
                f"{row['input_hw']:<10}{row['raw_p50_ms']:>11.2f}{row['raw_fps']:>9.2f}{row['full_p50_ms']:>12.2f}"
                f"{row['detections_per_frame']:>11.2f}{row['raw_paired_median_ratio']:>7.3f}"
            )
    return "\n".join(lines)
