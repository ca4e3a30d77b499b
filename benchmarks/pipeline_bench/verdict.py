"""Judging a trial (no backlog: every camera's rate and the lag of its frames), the figures reported for it,
and the run against the targets."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import numpy.typing as npt

TARGET_CAMERA_RATIO = 8.0  # target: at least 8x the cameras of the naive loop on the same box
TARGET_RAW_SHARE = 0.90  # target: inference-bound, analysed fps at least 90% of raw ONNX Runtime fps


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
