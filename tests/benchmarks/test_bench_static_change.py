"""Smoke run of benchmarks/bench_static_change.py: tiny numbers, checks that results are written and sane.

Speed itself is measured by running the benchmark, never asserted here (machines are noisy).
"""

from __future__ import annotations

import json
import math
from pathlib import Path

import pytest

from benchmarks import bench_static_change


def test_smoke_run_learns_then_times_both_modes_and_writes_json(vtest_path: Path, tmp_path: Path) -> None:
    argv = ["--video", str(vtest_path), "--frames", "3", "--frame-step", "4", "--learn-s", "12", "--quiet"]
    document = bench_static_change.main([*argv, "--out", str(tmp_path)])

    written = json.loads(Path(document["json_path"]).read_text(encoding="utf-8"))
    assert list(written["modes"]) == ["baseline", "static_change"]
    for stats in written["modes"].values():
        assert stats["n"] == len(stats["samples_ms"]) == 3
        assert all(math.isfinite(stats[k]) and stats[k] > 0 for k in ("p50_ms", "p90_ms", "p99_ms"))
        assert stats["p50_ms"] <= stats["p90_ms"] <= stats["p99_ms"]
    assert written["config"]["frame_wh"] == [1920, 1080]
    assert written["states"] == {"lawn": "learned", "van": "learned"}  # timed calls ran the full path
    assert written["target"]["ratio_p50"] > 0 and written["target"]["max_ms"] == 3.0


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["--frames", "0"], "--frames must be at least 1"),
        (["--learn-s", "-1"], "--learn-s must be at least 0"),
    ],
)
def test_bad_arguments_exit_with_a_message(
    argv: list[str], message: str, capsys: pytest.CaptureFixture[str]
) -> None:
    with pytest.raises(SystemExit) as exit_info:
        bench_static_change.parse_args(argv)
    assert exit_info.value.code == 2
    assert message in capsys.readouterr().err
