"""The run's output: one CSV row per trial and the table printed at the end."""

from __future__ import annotations

import csv
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from benchmarks.common import pyplot, save_figure
from benchmarks.pipeline_bench.verdict import (
    TARGET_CAMERA_RATIO,
    TARGET_CAMERAS,
    TARGET_CPU_OVERHEAD,
    TARGET_OVERLOAD_SHARE,
    TARGET_RAW_SHARE,
)

CSV_NAME = "bench_pipeline.csv"
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
    raw, one_call = document["raw"], document.get("raw_one_call")
    lines.append(
        f"raw ONNX Runtime: {raw['fps']:.2f} fps "
        f"({raw.get('callers', 1)} call(s) at once, batch {raw['batch']})"
        + (f"; one call on ONNX Runtime's own threads: {one_call['fps']:.2f} fps" if one_call else "")
    )
    for system, found in document["search"].items():
        bound = "" if found["exact"] else f" (search stopped; first failure {found['first_failure']})"
        lines.append(f"cameras per box, {system}: {found['cameras']}{bound}")
    lines.extend(_target_lines(document))
    lines.extend(f"skipped {name}: {why}" for name, why in document["skipped"].items())
    return "\n".join(lines)


def _met(met: bool) -> str:
    return "met" if met else "NOT met"


def _target_lines(document: dict[str, Any]) -> list[str]:
    t, sat, ceiling = document["targets"], document["saturation"], document["ceiling"]
    lines = [
        f"ceiling on this box (every sample decoded and analysed): {ceiling['analysed_fps_max']:.2f} fps = "
        f"{ceiling['raw_share_max']:.0%} of raw, {ceiling['cameras_max']:.1f} cameras"
    ]
    lean = document.get("lean")
    if lean:
        facts, bound = lean["model_facts"], lean["ceiling"]
        shown = lean["raw"].get("input_hw", facts["input_hw"])  # a dynamic model: the zone crop's input
        lines.append(
            f"lean ceiling ({facts['name']}, input {tuple(shown)}, before gating): "
            f"{bound['analysed_fps_max']:.2f} fps, {bound['cameras_max']:.1f} cameras"
        )
    for system in ("streetwatch", "lean"):
        if system not in t:
            continue
        found = t[system]
        ratio = "n/a (no naive figure)" if found["camera_ratio"] is None else f"{found['camera_ratio']:.2f}x"
        lines.append(
            f"{system}: {found['cameras']} cameras, {ratio} the naive loop (target >= "
            f"{TARGET_CAMERAS[system]} and >= {TARGET_CAMERA_RATIO[system]:g}x: {_met(found['met'])})"
        )
        if "cpu_overhead" in found:
            o = found["cpu_overhead"]
            lines.append(
                f"  CPU per analysed frame at K={o['cameras']}: {o['cpu_ms_per_frame']:.1f} ms = "
                f"{o['ratio']:.2f}x inference x {o['inference_share']:.2f} + decode "
                f"({o['parts_cpu_ms_per_frame']:.1f} ms; target <= {TARGET_CPU_OVERHEAD:g}x: "
                f"{_met(found['cpu_overhead_met'])})"
            )
            if o.get("thread_cores"):
                lines.append(
                    "  cores by thread: "
                    + ", ".join(f"{group} {cores:.2f}" for group, cores in o["thread_cores"].items())
                )
    if "raw_share" in t:
        lines.append(
            f"inference-bound, K={sat['cameras']}: raw ONNX Runtime {sat['raw_fps']:.2f} fps "
            f"({sat['raw_before']:.2f} before, {sat['raw_after']:.2f} after); best live trial "
            f"{sat.get('best_live_fps', 0.0):.2f} fps"
        )
        for mode, share in t["raw_share"].items():
            line = f"  {mode}: {sat[mode]:.2f} fps analysed = {share:.0%} of raw"
            if mode == "files":
                line += f" (target >= {TARGET_RAW_SHARE:.0%}: {_met(t['raw_share_met'][mode])})"
            else:
                best = t.get(f"overload_share_{mode}")
                if best is not None:
                    line += f", {best:.0%} of the best live trial"
                paired = sat.get("paired") if mode == "realtime" else None
                if paired and paired["share"] is not None:
                    line += (
                        f", {paired['share']:.0%} of K={paired['saturating_cameras']} in alternate trials ("
                        + ", ".join(f"{fps:.2f}" for fps in paired["saturating_fps_each"])
                        + " vs "
                        + ", ".join(f"{fps:.2f}" for fps in paired["overload_fps_each"])
                        + " fps)"
                    )
                if mode == "realtime" and "overload_share_realtime_met" in t:
                    met = _met(t["overload_share_realtime_met"])
                    line += f" (target >= {TARGET_OVERLOAD_SHARE:.0%}: {met})"
            lines.append(line)
    return lines


def plot(document: dict[str, Any], path: Path) -> Path | None:
    """Cameras vs share of due frames analysed (worst camera) and p99 lag, one line per system and mode;
    the no-backlog bounds dashed. None when matplotlib is not installed."""
    plt = pyplot()
    if plt is None:
        return None
    series: dict[str, list[dict[str, Any]]] = {}
    for trial in document["trials"]:
        s = trial["summary"]
        series.setdefault(f"{s['system']} ({s['mode']})", []).append(s)
    figure, (share, lag) = plt.subplots(1, 2, figsize=(12, 4.5))
    for name, summaries in series.items():
        summaries.sort(key=lambda s: s["cameras"])
        cameras = [s["cameras"] for s in summaries]
        share.plot(cameras, [s["rate_min"] for s in summaries], marker="o", label=name)
        lags = [s["lag"]["p99_ms"] for s in summaries]
        if any(v is not None for v in lags):
            lag.plot(cameras, [float("nan") if v is None else v / 1e3 for v in lags], marker="o", label=name)
    config = document.get("config", {})
    if config.get("min_rate"):
        share.axhline(config["min_rate"], color="red", linestyle="--", linewidth=1)
    if config.get("max_lag_s"):
        lag.axhline(config["max_lag_s"], color="red", linestyle="--", linewidth=1)
    share.set(xlabel="cameras", ylabel="share of due frames analysed (worst camera)", ylim=(0, 1.05),
              title="frames analysed")  # fmt: skip
    lag.set(xlabel="cameras", ylabel="p99 lag (s)", yscale="log", title="lag, live cameras")
    share.legend(fontsize=8)
    lag.legend(fontsize=8)
    machine = document["machine"]
    figure.suptitle(f"bench_pipeline {document['timestamp'][:16]} ({machine['cpu_count']} CPUs, "
                    f"load {machine['loadavg'][0]:.1f} -> {machine['loadavg_end'][0]:.1f})")  # fmt: skip
    return save_figure(plt, figure, path)
