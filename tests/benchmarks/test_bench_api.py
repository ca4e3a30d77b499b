"""Smoke run of benchmarks/bench_api.py: real servers, tiny numbers; checks that results are written and
sane. Speed itself is measured by running the benchmark, never asserted here (machines are noisy)."""

from __future__ import annotations

import csv
import json
import math
import os
from pathlib import Path

from sqlalchemy import create_engine, text

from benchmarks import bench_api
from tests.api.conftest import PG_ADMIN_URL, _pg_available


def test_smoke_run_writes_json_and_csv(tmp_path: Path) -> None:
    backends = "sqlite,postgresql" if _pg_available() else "sqlite"
    document = bench_api.main(
        [
            "--backends",
            backends,
            "--workers",
            "1",
            "--concurrency",
            "2",
            "--duration",
            "0.5",
            "--warmup",
            "0.2",
            "--max-requests",
            "40",
            "--slots",
            "6",
            "--pg-url",
            PG_ADMIN_URL,
            "--out",
            str(tmp_path),
            "--quiet",
        ]
    )
    runs = document["runs"]
    assert [(r["backend"], r["workers"]) for r in runs] == [(b, 1) for b in backends.split(",")]
    for run in runs:
        for phase in ("trivial", "ingest"):
            stats = run[phase]
            assert stats["requests"] > 0 and stats["errors"] == 0, (run["backend"], phase, stats["statuses"])
            assert len(stats["samples_ms"]) == stats["requests"] <= 40
            assert 0 < stats["p50_ms"] <= stats["p90_ms"] <= stats["p99_ms"]
            assert stats["rps"] > 0
        ingest = run["ingest"]
        assert ingest["new_cases"] == min(6, math.ceil(ingest["requests"] / 4))  # every 4th, 6 slots at most
        assert ingest["new_cases"] + ingest["sightings"] == ingest["requests"]
        assert math.isfinite(run["ratio"]) and run["ratio"] > 0
    assert set(document["target"]["postgresql"]) == ({"1"} if "postgresql" in backends else set())

    saved = json.loads(Path(document["json_path"]).read_text(encoding="utf-8"))
    assert saved["runs"][0]["ingest"]["requests"] == runs[0]["ingest"]["requests"]
    with Path(document["csv_path"]).open(newline="", encoding="utf-8") as handle:
        rows = list(csv.DictReader(handle))
    assert [(r["backend"], r["phase"]) for r in rows] == [
        (b, phase) for b in backends.split(",") for phase in ("trivial", "ingest")
    ]
    assert all(float(r["rps"]) > 0 for r in rows)
    if "postgresql" in backends:  # the scratch database is gone
        admin = create_engine(PG_ADMIN_URL)
        with admin.connect() as connection:
            left = connection.execute(text("SELECT datname FROM pg_database WHERE datname LIKE 'sw_bench_%'"))
            assert not [name for (name,) in left if name.startswith(f"sw_bench_{os.getpid()}_")]
        admin.dispose()
