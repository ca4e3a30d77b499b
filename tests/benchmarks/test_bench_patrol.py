"""Smoke run of benchmarks/bench_patrol.py: a few loopback snapshot cameras for two short turns; checks that
the sweep runs the real patrol, and that its JSON and PNG are written and sane.

Capacity itself is measured by running the benchmark, never asserted here (machines are noisy).
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from benchmarks import bench_patrol


def test_smoke_sweep_visits_every_camera_each_turn_and_writes_json_and_png(
    car_video: Path, tmp_path: Path
) -> None:
    argv = ["--video", str(car_video), "--cameras", "3,6", "--every-s", "2", "--turns", "2"]
    argv += ["--visit-timeout-s", "1.5", "--on-time-s", "1.9", "--size", "640x360", "--quiet"]
    document = bench_patrol.main([*argv, "--out", str(tmp_path)])

    written = json.loads(Path(document["json_path"]).read_text(encoding="utf-8"))
    assert [s["cameras"] for s in written["steps"]] == [3, 6]
    for step in written["steps"]:
        assert step["visits_ok"] == step["expected_visits"] == 2 * step["cameras"]  # all answered
        assert step["visits_failed"] == 0
        assert step["frames_consumed"] >= step["cameras"]  # frames reached the consumer (the scheduler)
        assert 0 < step["visit_latency_p50_ms"] <= step["visit_latency_p99_ms"] < 1900
        assert step["rss_peak_mb"] >= step["rss_base_mb"] > 0
        assert step["baseline_cpu_ms_per_visit"] > 0 and step["cpu_ratio_to_baseline"] > 0
    assert written["config"]["jpeg_bytes"] > 10_000  # a real frame, not a blank
    assert written["target"]["cameras"] == 600
    png = written["png_path"]
    if png is not None:
        assert Path(png).read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["--cameras", "0"], "every count must be at least 1"),
        (["--cameras", "a,b"], "expected counts separated by commas"),
        (["--every-s", "0.5"], "--every-s must be at least 1"),
        (["--every-s", "5", "--visit-timeout-s", "5"], "--visit-timeout-s must be below --every-s"),
        (["--size", "big"], "expected WIDTHxHEIGHT"),
        (["--video", "/nonexistent.mp4"], "--video /nonexistent.mp4: no such file"),
    ],
)
def test_bad_arguments_exit_with_a_message(
    argv: list[str], message: str, capsys: pytest.CaptureFixture[str]
) -> None:
    with pytest.raises(SystemExit) as exit_info:
        bench_patrol.parse_args(argv)
    assert exit_info.value.code == 2
    assert message in capsys.readouterr().err
