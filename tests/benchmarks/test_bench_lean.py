"""Smoke runs of benchmarks/bench_decode.py (camera-thread CPU per analysed frame: the previous sources,
the lean ones, a substream camera) and benchmarks/bench_lean.py (zone-ROI and zone gating on real clips).
Speed itself is measured by running the benchmarks, never asserted here."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from benchmarks import bench_decode, bench_lean


def test_decode_benchmark_compares_three_sources_in_one_run(vtest_path: Path, tmp_path: Path) -> None:
    out = tmp_path / "decode.json"
    document = bench_decode.main(
        [
            "--cameras", "1", "--repeats", "1", "--main-height", "360", "--sub-height", "180",
            "--clip-seconds", "8", "--cache", str(tmp_path / "cache"), "--out", str(out),
        ]
    )  # fmt: skip
    assert json.loads(out.read_text(encoding="utf-8"))["summary"].keys() == {"baseline", "lean", "substream"}
    for row in document["summary"].values():
        assert row["samples"] >= 2 and row["cpu_ms_per_sample"] > 0
    assert document["main_keyframe_decode_ms"] > 0
    assert document["startup"].keys() == {"baseline", "lean"}
    assert all(row["cpu_ms_per_camera"] > 0 for row in document["startup"].values())


def test_decode_benchmark_refuses_a_substream_larger_than_the_main_stream() -> None:
    with pytest.raises(SystemExit):
        bench_decode.main(["--main-height", "360", "--sub-height", "720"])


def test_lean_benchmark_runs_every_variant_on_a_real_clip(car_video: Path, tmp_path: Path) -> None:
    out = tmp_path / "lean.json"
    assert bench_lean.main(["--scenes", "car-detection", "--out", str(out)]) == 0
    results = json.loads(out.read_text(encoding="utf-8"))["results"]["car-detection"]
    assert set(results) == {"plain", "zone_roi", "zone_roi native", "zone_gating", "both"}
    for runs in results.values():
        assert runs[0]["exit"] == 0 and runs[0]["inferences"] > 0
    assert results["plain"][0]["carried"] == 0  # only gating carries detections forward
