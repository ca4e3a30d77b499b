"""Each trial in its own Python process (clean memory and CPU accounting): the parent starts it and reads its
document back, the child (``python -m benchmarks.bench_pipeline _trial SPEC OUT``) runs it."""

from __future__ import annotations

import json
import logging
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from benchmarks.pipeline_bench.harness import TrialSpec
from benchmarks.pipeline_bench.naive import run_naive
from benchmarks.pipeline_bench.streetwatch import run_streetwatch

REPO = Path(__file__).resolve().parents[2]
STARTUP_ALLOWANCE_S = 120.0  # a trial process may take this long beyond its warm-up, window and tail


def trial_main(spec_path: Path, out_path: Path) -> int:
    """Entry point of a trial process: read the spec, run, write the result document."""
    logging.basicConfig(level=logging.WARNING, format="%(asctime)s %(name)s %(levelname)s %(message)s")
    os.environ.setdefault("YOLO_OFFLINE", "1")
    os.environ.setdefault("YOLO_VERBOSE", "False")
    spec = TrialSpec.from_json(json.loads(spec_path.read_text(encoding="utf-8")))
    document = run_naive(spec) if spec.system == "naive" else run_streetwatch(spec)
    out_path.write_text(json.dumps(document), encoding="utf-8")
    return 0


def run_trial_process(spec: dict[str, Any], expected_s: float) -> dict[str, Any]:
    """Run a trial in ``python -m benchmarks.bench_pipeline _trial SPEC OUT`` and read its document."""
    with tempfile.TemporaryDirectory(prefix="bench-pipeline-") as scratch:
        work = Path(scratch)
        spec_path, out_path = work / "spec.json", work / "result.json"
        spec_path.write_text(json.dumps({**spec, "workdir": str(work)}), encoding="utf-8")
        env = {**os.environ, "YOLO_OFFLINE": "1", "YOLO_VERBOSE": "False"}
        command = [sys.executable, "-m", "benchmarks.bench_pipeline", "_trial", str(spec_path), str(out_path)]
        try:
            done = subprocess.run(
                command,
                cwd=REPO,
                env=env,
                capture_output=True,
                text=True,
                timeout=expected_s + STARTUP_ALLOWANCE_S,
            )
        except subprocess.TimeoutExpired as exc:
            return failed_document(spec, f"trial process timed out after {exc.timeout:.0f} s")
        if done.returncode or not out_path.exists():
            return failed_document(
                spec, f"trial process exited {done.returncode}: {done.stderr.strip()[-800:]}"
            )
        document: dict[str, Any] = json.loads(out_path.read_text(encoding="utf-8"))
        document["stderr_tail"] = done.stderr.strip()[-2000:]
        return document


def failed_document(spec: dict[str, Any], error: str) -> dict[str, Any]:
    now = time.time()
    window = {
        "start": now,
        "end": now + 1.0,
        "cpu_s": 0.0,
        "machine_busy_s": 0.0,
        "rss_mb": [0.0],
        "loadavg": [0.0, 0.0],
    }
    return {
        "spec": spec,
        "window": window,
        "rss_base_mb": 0.0,
        "errors": [error],
        "frames": [],
        "cases": [],
        "batches": [],
    }
