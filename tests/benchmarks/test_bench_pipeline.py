"""Smoke run of benchmarks/bench_pipeline.py (tiny clip, one camera, seconds-long windows) plus unit tests of
its K search and its verdict. Speed itself is measured by running the benchmark, never asserted here."""

from __future__ import annotations

import csv
import importlib.util
import json
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from benchmarks import bench_pipeline
from benchmarks.pipeline_bench.clip import ClipSpec, prepare_clip
from benchmarks.pipeline_bench.search import KSearch
from benchmarks.pipeline_bench.verdict import Criteria, judge, targets
from pipeline.config import inference_shape

HAS_NAIVE = all(importlib.util.find_spec(m) is not None for m in ("ultralytics", "supervision", "psutil"))


SMOKE_ARGS = (
    "--clip-height 180 --clip-seconds 3 --target-fps 1 --warmup-s 1.5 --window-s 4 --max-cameras 1 "
    "--saturate-cameras 2 --saturate-modes files --raw-seconds 0.3 --dwell-s 1 --threads 1 --quiet "
    "--lean-substream-height 90"
)


def test_smoke_run_writes_every_sample_to_json_and_csv(
    yolov8_int8: Path, vtest_path: Path, tmp_path: Path
) -> None:
    if not HAS_NAIVE:
        pytest.skip("the naive loop needs ultralytics and supervision (pip install -e '.[dev,train]')")
    paths = ["--model", str(yolov8_int8), "--video", str(vtest_path), "--cache", str(tmp_path / "cache")]
    document = bench_pipeline.main([*paths, "--out", str(tmp_path / "results"), *SMOKE_ARGS.split()])

    written = json.loads(Path(document["json_path"]).read_text(encoding="utf-8"))
    summaries = [trial["summary"] for trial in written["trials"]]
    assert [(s["system"], s["mode"], s["cameras"]) for s in summaries] == [
        ("streetwatch", "realtime", 1),
        ("lean", "realtime", 1),
        ("naive", "realtime", 1),
        ("streetwatch", "files", 2),
    ]
    for trial in written["trials"]:
        summary, raw = trial["summary"], trial["document"]
        assert not raw["errors"], raw["errors"]
        assert summary["analysed_fps"] > 0 and summary["cpu_cores"] > 0 and summary["rss_mb"] > 0
        assert len(raw["frames"]) >= summary["analysed_fps"] * summary["window_s"] > 0  # every frame kept
    for summary in summaries[:3]:  # realtime: lags from each frame's stream time
        lag = summary["lag"]
        assert lag["n"] == sum(summary["analysed_per_camera"]) > 0
        assert 0 < lag["p50_ms"] <= lag["p90_ms"] <= lag["p99_ms"]
    streetwatch = summaries[0]
    threads = streetwatch["thread_cores"]  # where the daemon's CPU went, per group of threads
    workers, _ = inference_shape("auto", 1, cpu_only=True)  # the plain daemon's, as the daemon resolves it
    detecting = "inference workers" if workers > 1 else "scheduler"  # the thread(s) that call the model
    assert threads[detecting] > 0 and threads["camera threads"] > 0
    assert sum(threads.values()) == pytest.approx(streetwatch["cpu_cores"], rel=0.25)
    assert summaries[2]["thread_cores"]["naive-N"] > 0
    assert streetwatch["cases"] == 1 and streetwatch["frame_to_case"]["p50_ms"] > 0  # the scripted car
    # raw ONNX Runtime is measured in the shape the plain daemon runs: its auto workers, one thread each
    assert written["raw"]["callers"] == workers and written["raw"]["fps"] > 0
    one_call = written["raw_one_call"]  # beside it, ORT's own shape for the ratio (none when the same)
    assert (one_call is None) == (workers == 1)
    assert one_call is None or (one_call["callers"] == 1 and one_call["fps"] > 0)
    assert written["lean"]["raw"]["callers"] == 2  # the lean system's two workers
    assert streetwatch["daemon_stage_means"]["inference"] > 0  # the daemon's own metrics, per stage
    assert streetwatch["daemon_skipped"] == {"unchanged": 0.0, "behind": 0.0, "carried": 0.0}
    lean_spec = written["trials"][1]["document"]["spec"]  # the daemon with the lean options on
    assert lean_spec["zone_roi"] and lean_spec["zone_gating"] and lean_spec["drop_before_decode"]
    assert lean_spec["detect_clip"] == written["lean"]["substream"] != written["config"]["clip"]
    assert written["lean"]["ceiling"]["cpu_ms_per_sample"] > 0 and written["lean"]["raw"]["fps"] > 0
    lean = summaries[1]
    assert lean["cases"] == 1 and lean["analysed_fps"] > 0
    carried = lean["daemon_skipped"]["carried"]  # gating: frames given the last detections
    assert lean["analysed_fps"] >= lean["inferred_fps"] and (carried > 0 or lean["inferred_fps"] > 0)
    assert summaries[3]["inference_busy"] > 0 and summaries[3]["lag"]["n"] == 0  # files: no lag
    assert written["raw"]["fps"] > 0 and len(written["raw"]["samples_ms"]) == written["raw"]["n"]
    ceiling = written["ceiling"]  # inference + keyframe decode CPU bound what any system can analyse
    assert ceiling["keyframes"] > 0 and ceiling["cpu_ms_per_sample"] > 0
    assert 0 < ceiling["raw_share_max"] <= 1 and ceiling["analysed_fps_max"] <= written["raw"]["fps"]
    assert set(written["search"]) == {"streetwatch", "lean", "naive"}
    assert set(written["targets"]) >= {"streetwatch", "lean", "raw_share"}  # judged against issue 12's
    assert written["saturation"]["share_of_raw"]["files"] > 0
    assert Path(written["config"]["clip"]).stat().st_size > 0
    assert Path(document["png_path"]).stat().st_size > 1000  # the sweep's picture beside the JSON

    with Path(document["csv_path"]).open(newline="", encoding="utf-8") as handle:
        rows = list(csv.DictReader(handle))
    assert [row["system"] for row in rows] == ["streetwatch", "lean", "naive", "streetwatch"]
    assert all(float(row["analysed_fps"]) > 0 for row in rows)


def test_clip_keeps_a_keyframe_every_gop_across_the_loop(vtest_path: Path, tmp_path: Path) -> None:
    import av

    spec = ClipSpec(height=180, fps=25, gop_s=1.0, seconds=3.5)
    clip = prepare_clip(vtest_path, tmp_path, spec)
    assert prepare_clip(vtest_path, tmp_path, spec) == clip  # cached
    with av.open(str(clip)) as container:
        stream = container.streams.video[0]
        keys = [float(p.pts * stream.time_base) for p in container.demux(stream) if p.size and p.is_keyframe]
        assert (stream.width, stream.height) == (320, 180)
    assert keys == [0.0, 1.0, 2.0]  # 3 whole GOPs of the 3.5 s asked for: the loop stays on the grid


def run_search(passes_up_to: int, start: int, max_k: int = 128) -> tuple[int, list[int]]:
    search = KSearch(start, max_k)
    tried = []
    while (k := search.next_k()) is not None:
        tried.append(k)
        search.record(k, k <= passes_up_to)
    return search.result()["cameras"], tried


def test_the_lean_raw_figure_runs_the_zone_crop_as_the_daemon_does(yolov8_int8: Path) -> None:
    """A zone-ROI crop of the benchmark's zone at the substream's pixels; the raw figure reports the input
    it ran (a fixed-size model: its whole input, the crop padded into it, not enlarged)."""
    from benchmarks.pipeline_bench.ceiling import measure_raw
    from benchmarks.pipeline_bench.clip import zone_crop

    crop = zone_crop(np.zeros((360, 640, 3), np.uint8))
    assert crop.shape == (90, 148, 3)  # the zone (x 0.82-1, y 0.05-0.2) plus 5% of the frame each side
    raw = measure_raw(str(yolov8_int8), crop, threads=1, batch=1, seconds=0.2, max_scale=1.0)
    assert raw["input_hw"] == [640, 640] and raw["fps"] > 0


@pytest.mark.parametrize(
    ("passes_up_to", "start", "max_k", "expected", "tried"),
    [
        (13, 1, 128, 13, [1, 2, 4, 8, 16, 12, 14, 13]),
        (13, 8, 128, 13, [8, 16, 12, 14, 13]),
        (5, 8, 128, 5, [8, 4, 6, 5]),
        (0, 1, 128, 0, [1]),
        (500, 4, 20, 20, [4, 8, 16, 20]),
        (1, 1, 128, 1, [1, 2]),
    ],
)
def test_k_search_doubles_then_bisects(
    passes_up_to: int, start: int, max_k: int, expected: int, tried: list[int]
) -> None:
    assert run_search(passes_up_to, start, max_k) == (expected, tried)


def trial_document(
    frames: list[list[float]], *, cameras: int = 2, errors: list[str] | None = None
) -> dict[str, Any]:
    spec = {"system": "streetwatch", "cameras": cameras, "target_fps": 0.5, "realtime": True}
    window = {
        "start": 100.0,
        "end": 110.0,
        "cpu_s": 5.0,
        "machine_busy_s": 12.0,
        "rss_mb": [300.0, 310.0],
        "loadavg": [1.0, 1.0],
    }
    return {
        "spec": spec,
        "window": window,
        "rss_base_mb": 200.0,
        "errors": errors or [],
        "frames": frames,
        "cases": [[0, 104.0, 104.5]],
        "batches": [[101.0, 0.1, 2], [103.0, 0.1, 1]],
    }


def every_frame(lag_s: float, cameras: int = 2, skip: tuple[int, float] | None = None) -> list[list[float]]:
    """Frames due every 2 s from t=100 on each camera, analysed ``lag_s`` later (minus one ``skip``)."""
    return [[c, t, t + lag_s] for c in range(cameras) for t in np.arange(100.0, 110.0, 2.0) if (c, t) != skip]


@pytest.mark.parametrize(
    ("frames", "errors", "passed", "reason"),
    [
        (every_frame(0.3), None, True, "no backlog"),
        (every_frame(2.5), None, False, "p99 lag 2.50 s"),
        (every_frame(0.3, skip=(1, 104.0)), None, False, "slowest camera got 80%"),
        (every_frame(0.3), ["naive camera 0: boom"], False, "error: naive camera 0: boom"),
        ([], None, False, "no frame"),
    ],
)
def test_judge_counts_due_frames_per_camera_and_bounds_the_lag(
    frames: list[list[float]], errors: list[str] | None, passed: bool, reason: str
) -> None:
    summary = judge(trial_document(frames, errors=errors), Criteria(min_rate=0.95, max_lag_s=2.0))
    assert summary["passed"] is passed
    assert reason in summary["reason"]
    if frames:
        assert summary["analysed_per_camera"][0] == 5
        assert summary["cpu_cores"] == pytest.approx(0.5) and summary["machine_busy_cores"] == pytest.approx(
            1.2
        )
        assert summary["other_cores"] == pytest.approx(0.7)  # what other processes used meanwhile
        assert summary["rss_per_camera_mb"] == pytest.approx(52.5)
        assert summary["frame_to_case"]["p50_ms"] == pytest.approx(500.0)
        assert summary["inference_busy"] == pytest.approx(0.02)


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["--systems", "streetwatch,gpu"], "--systems"),
        (["--window-s", "0"], "--window-s must be positive"),
        (["--min-rate", "1.5"], "--min-rate must be in (0, 1]"),
        (["--saturate-cameras", "-1"], "--saturate-cameras must not be negative"),
        (["--overload-pairs", "-1"], "--overload-pairs must not be negative"),
        (["--lean-options", "substream,int4"], "--lean-options"),
        (["--saturate-modes", "realtime,eager"], "--saturate-modes"),
        (["--event-cpu-share", "0"], "--event-cpu-share must be in (0, 1]"),
        (["--event-queue", "0"], "--event-queue must be positive"),
    ],
)
def test_bad_arguments_exit_with_a_message(
    argv: list[str], message: str, capsys: pytest.CaptureFixture[str]
) -> None:
    with pytest.raises(SystemExit) as exit_info:
        bench_pipeline.parse_args(argv)
    assert exit_info.value.code == 2
    assert message in capsys.readouterr().err


def summary_of(system: str, cameras: int, fps: float, cores: float, inferred_fps: float) -> dict[str, Any]:
    return {
        "summary": {
            "system": system,
            "mode": "realtime",
            "cameras": cameras,
            "passed": True,
            "analysed_fps": fps,
            "cpu_cores": cores,
            "inferred_fps": inferred_fps,
        }
    }


def test_targets_judge_cameras_ratio_overload_and_cpu_per_frame_against_its_parts() -> None:
    searched = {"streetwatch": {"cameras": 44}, "lean": {"cameras": 96}, "naive": {"cameras": 10}}
    trials = [
        summary_of("streetwatch", 44, fps=22.0, cores=1.98, inferred_fps=22.0),  # 90 CPU ms per frame
        summary_of("lean", 96, fps=48.0, cores=1.2, inferred_fps=24.0),  # 25 ms; half the frames carried
    ]
    ceiling = {"inference_cpu_ms_per_frame": 60.0, "cpu_ms_per_sample": 25.0}
    lean = type("Lean", (), {"ceiling": {"inference_cpu_ms_per_frame": 30.0, "cpu_ms_per_sample": 6.0}})()
    saturation = {
        "share_of_raw": {"files": 0.93},
        "realtime_share_of_best": 0.91,
        "late-drop_share_of_best": 0.7,
    }

    found = targets(searched, saturation, trials, ceiling, lean)

    assert found["streetwatch"]["met"] and found["streetwatch"]["camera_ratio"] == pytest.approx(4.4)
    assert found["streetwatch"]["cpu_overhead"]["ratio"] == pytest.approx(90 / 85)
    assert found["streetwatch"]["cpu_overhead_met"]
    assert not found["lean"]["met"]  # 96 < 100 cameras, although 9.6x is close
    assert found["lean"]["cpu_overhead"]["parts_cpu_ms_per_frame"] == pytest.approx(30 * 0.5 + 6)
    assert found["lean"]["cpu_overhead"]["ratio"] == pytest.approx(25 / 21)
    assert not found["lean"]["cpu_overhead_met"]
    assert found["raw_share_met"] == {"files": True}
    assert not found["overload_share_realtime_met"] and not found["overload_share_late-drop_met"]


def test_overload_is_judged_against_saturation_in_alternate_trials() -> None:
    ran: list[int] = []

    class FakeRun:
        def trial(self, system: str, k: int, *, realtime: bool) -> dict[str, Any]:
            assert system == "streetwatch" and realtime
            ran.append(k)
            fps = {40: 20.0, 52: 19.0}[k] - 0.5 * (len(ran) - 1)  # the box slows down as the run goes on
            return {"analysed_fps": fps, "cpu_cores": 1.9}

    paired = bench_pipeline.overload_pairs(FakeRun(), 40, 52, pairs=2)  # type: ignore[arg-type]

    assert ran == [40, 52, 40, 52]  # saturation and overload alternate
    assert paired["saturating_fps_each"] == [20.0, 19.0] and paired["overload_fps_each"] == [18.5, 17.5]
    assert paired["share"] == pytest.approx(18.0 / 19.5)
    assert paired["overload_cpu_ms_per_frame"] == pytest.approx((1.9e3 / 18.5 + 1.9e3 / 17.5) / 2)

    found = targets({}, {"realtime_share_of_best": 0.90, "paired": {"share": 0.96}})
    assert found["overload_share_realtime"] == 0.90  # against the search's best, still reported
    assert found["overload_share_paired"] == 0.96 and found["overload_share_realtime_met"]
    assert not targets({}, {"realtime_share_of_best": 0.99, "paired": {"share": 0.94}})[
        "overload_share_realtime_met"
    ]


def test_the_report_says_which_overload_share_is_judged() -> None:
    from benchmarks.pipeline_bench.report import _target_lines

    saturation = {
        "cameras": 42,
        "raw_fps": 24.5,
        "raw_before": 25.0,
        "raw_after": 24.0,
        "best_live_fps": 16.5,
        "realtime": 15.87,
        "share_of_raw": {"realtime": 15.87 / 24.5},
        "realtime_share_of_best": 15.87 / 16.5,
        "paired": {
            "share": 15.875 / 16.4,
            "saturating_cameras": 32,
            "saturating_fps_each": [16.3, 16.5],
            "overload_fps_each": [15.85, 15.9],
        },
    }
    document = {
        "targets": targets({}, saturation),
        "saturation": saturation,
        "ceiling": {"analysed_fps_max": 18.4, "raw_share_max": 0.77, "cameras_max": 36.8},
    }

    (line,) = [line for line in _target_lines(document) if line.strip().startswith("realtime:")]
    assert "96% of the best live trial" in line
    assert "97% of K=32 in alternate trials (16.30, 16.50 vs 15.85, 15.90 fps)" in line
    assert line.endswith("(target >= 95%: met)")
