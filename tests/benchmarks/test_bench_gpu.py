"""Smoke run of benchmarks/bench_gpu.py on a CPU machine (``--dry-run``): the CPU baseline is measured,
every GPU setting says why it cannot start here, and the JSON and PNG are written."""

from __future__ import annotations

import json
from pathlib import Path

import onnxruntime as ort
import pytest

from benchmarks import bench_gpu


@pytest.mark.skipif("CUDAExecutionProvider" in ort.get_available_providers(), reason="a CUDA build")
def test_dry_run_on_cpu_measures_cpu_and_explains_every_gpu_setting(vtest_path: Path, tmp_path: Path) -> None:
    document = bench_gpu.main(["--dry-run", "--video", str(vtest_path), "--out", str(tmp_path), "--quiet"])

    written = json.loads(Path(document["json_path"]).read_text(encoding="utf-8"))
    cpu = written["settings"]["cpu"]
    assert cpu["available"] and cpu["providers"] == ["CPUExecutionProvider"]
    assert [row["batch"] for row in cpu["rows"]] == [1, 2]  # the bundled demo model takes any batch
    assert all(row["fps"] > 0 and row["full_ms_per_run"] > 0 for row in cpu["rows"])
    for name in ("cuda", "tensorrt-fp32", "tensorrt-fp16"):
        assert written["settings"][name]["available"] is False
        assert "is not in this ONNX Runtime build" in written["settings"][name]["reason"]
    assert written["best_gpu_setting"] is None
    assert written["decode"]["cpu"]["frames"] == 10 and written["decode"]["cpu"]["fps"] > 0
    assert "available" in written["decode"]["nvdec"]
    command = written["pipeline"]["command"]
    assert written["pipeline"]["ran"] is False and "benchmarks.bench_pipeline" in command
    # the pipeline runs the model and clip the raw figures were measured on
    assert command[command.index("--model") + 1] == str(bench_gpu.DEFAULT_MODEL)
    assert command[command.index("--video") + 1] == str(vtest_path)
    assert Path(document["png_path"]).stat().st_size > 1000


def test_gpu_settings_carry_device_fp16_and_engine_cache(tmp_path: Path) -> None:
    settings = bench_gpu.provider_settings(3, tmp_path)
    fp16 = settings["tensorrt-fp16"][0]
    assert fp16.ort_name == "TensorrtExecutionProvider"
    assert fp16.ort_options()["device_id"] == "3" and fp16.ort_options()["trt_fp16_enable"] == "True"
    assert fp16.ort_options()["trt_engine_cache_path"] == str(tmp_path)
    assert settings["cuda"][0].ort_options() == {"device_id": "3"}


def test_bad_arguments_exit_with_a_message(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exit_info:
        bench_gpu.parse_args(["--settings", "cuda,rocm"])
    assert exit_info.value.code == 2 and "unknown ['rocm']" in capsys.readouterr().err
