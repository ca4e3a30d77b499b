"""Smoke runs of benchmarks/bench_detector.py: tiny numbers, checks that results are written and sane.

Speed itself is measured by running the benchmark, never asserted here (machines are noisy).
"""

from __future__ import annotations

import csv
import importlib.util
import json
import math
from pathlib import Path
from typing import Any

import pytest

from benchmarks import bench_detector

HAS_ULTRALYTICS = importlib.util.find_spec("ultralytics") is not None
STATS = ("p50_ms", "p90_ms", "p99_ms", "mean_ms", "fps")


def run_smoke(model: Path, video: Path, out: Path, modes: str) -> dict[str, Any]:
    return bench_detector.main(
        [
            "--model",
            str(model),
            "--video",
            str(video),
            "--frames",
            "2",
            "--frame-step",
            "1",
            "--iterations",
            "3",
            "--warmup",
            "1",
            "--threads",
            "1",
            "--modes",
            modes,
            "--out",
            str(out),
            "--quiet",
        ]
    )


def check_stats(stats: dict[str, Any], iterations: int) -> None:
    for key in STATS:
        assert math.isfinite(stats[key]) and stats[key] > 0, (key, stats[key])
    assert stats["p50_ms"] <= stats["p90_ms"] <= stats["p99_ms"]
    assert len(stats["samples_ms"]) == stats["n"] == iterations


def read_csv_rows(path: Path) -> list[dict[str, str]]:
    with path.open(newline="", encoding="utf-8") as handle:
        return list(csv.DictReader(handle))


def test_smoke_yolov8_all_modes_write_json_and_csv(
    yolov8_int8: Path, vtest_path: Path, tmp_path: Path
) -> None:
    expected = ["raw", "full", "ultralytics"] if HAS_ULTRALYTICS else ["raw", "full"]
    document = run_smoke(yolov8_int8, vtest_path, tmp_path, "raw,full,ultralytics")

    assert list(document["modes"]) == expected
    written = json.loads(Path(document["json_path"]).read_text(encoding="utf-8"))
    for mode in expected:
        check_stats(written["modes"][mode], iterations=3)
    assert written["machine"]["cpu_count"] >= 1 and written["machine"]["onnxruntime"]
    assert written["config"]["frame_hw"] == [576, 768]
    assert written["ratios"]["full/raw"]["p50"] > 0
    if HAS_ULTRALYTICS:
        assert written["ratios"]["ultralytics/full"]["p50"] > 0
        # same ONNX, same thresholds: both decoders must find a similar number of boxes
        full, ultra = written["modes"]["full"], written["modes"]["ultralytics"]
        assert abs(full["detections_per_frame"] - ultra["detections_per_frame"]) <= 1
        target = written["target"]
        wins, rounds = map(int, target["ultralytics_slower_rounds"].split("/"))
        assert rounds == 3 and 0 <= wins <= 3
        # 3 rounds can never be significant at 1%: the claim needs a real run
        assert target["sign_test_p"] >= 0.125 and target["faster_than_ultralytics"] is False

    rows = read_csv_rows(Path(document["csv_path"]))
    assert [row["mode"] for row in rows] == expected
    assert all(float(row[key]) > 0 for row in rows for key in STATS)


def test_smoke_yolox_card_skips_ultralytics_and_appends_csv(
    yolox_card: Path, vtest_path: Path, tmp_path: Path
) -> None:
    run_smoke(yolox_card, vtest_path, tmp_path, "raw,full")
    document = run_smoke(yolox_card, vtest_path, tmp_path, "raw,full,ultralytics")

    assert list(document["modes"]) == ["raw", "full"]
    assert "ultralytics" in document["skipped"]  # YOLOX output is not an Ultralytics export
    for mode in ("raw", "full"):
        check_stats(document["modes"][mode], iterations=3)
    rows = read_csv_rows(Path(document["csv_path"]))
    assert [row["mode"] for row in rows] == ["raw", "full", "raw", "full"]  # appended, one header


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["--modes", "raw,gpu"], "unknown"),
        (["--iterations", "0"], "--iterations must be at least 1"),
        (["--warmup", "-1"], "--warmup must be at least 0"),
    ],
)
def test_bad_arguments_exit_with_a_message(
    argv: list[str], message: str, capsys: pytest.CaptureFixture[str]
) -> None:
    with pytest.raises(SystemExit) as exit_info:
        bench_detector.parse_args(argv)
    assert exit_info.value.code == 2
    assert message in capsys.readouterr().err


def test_sweeps_smoke_write_a_png_and_their_figures(
    yolov8_int8: Path, vtest_path: Path, tmp_path: Path
) -> None:
    document = bench_detector.main(
        [
            "--model",
            str(yolov8_int8),
            "--video",
            str(vtest_path),
            "--frames",
            "2",
            "--frame-step",
            "1",
            "--iterations",
            "2",
            "--warmup",
            "0",
            "--threads",
            "1",
            "--modes",
            "raw",
            "--out",
            str(tmp_path),
            "--quiet",
            "--sweeps",
            "batch,pattern,variants",
            "--batches",
            "1,2",
            "--sweep-rounds",
            "1",
            "--batch-seconds",
            "0.05",
            "--per-round",
            "1",
            "--gap-ms",
            "1",
            "--pattern-threads",
            "1,2",
        ]
    )
    sweeps = json.loads(Path(document["json_path"]).read_text(encoding="utf-8"))["sweeps"]
    assert [row["batch"] for row in sweeps["batch"]["rows"]] == [1, 2]
    assert "batch axis made dynamic" in sweeps["batch"]["model_note"]  # the shared model is batch 1
    assert all(row["fps"] > 0 and row["cpu_ms_per_frame"] > 0 for row in sweeps["batch"]["rows"])
    settings = [(row["threads"], row["spinning"]) for row in sweeps["pattern"]["rows"]]
    assert settings == [(1, True), (1, False), (2, True), (2, False)]
    assert all(row["cpu_ms_per_inference"] > 0 for row in sweeps["pattern"]["rows"])
    assert [row["input_hw"] for row in sweeps["variants"]["rows"]] == ["640x640", "384x640"]
    assert Path(document["png_path"]).stat().st_size > 1000


def test_sweep_arguments_are_checked(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit):
        bench_detector.parse_args(["--sweeps", "batch", "--sizes", "360x640"])
    assert "multiples of 32" in capsys.readouterr().err
