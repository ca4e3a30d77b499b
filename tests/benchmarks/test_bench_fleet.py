"""Smoke runs of benchmarks/bench_fleet.py against a real store (``api serve`` on a scratch PostgreSQL
database, MQTT and webhooks on): a few simulated cameras for a few seconds, with intervals shortened so
that every kind of request shows up. Speed itself is never asserted here."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from benchmarks import bench_fleet
from tests.api.conftest import PG_ADMIN_URL, _pg_available

pytestmark = pytest.mark.skipif(not _pg_available(), reason=f"no PostgreSQL at {PG_ADMIN_URL}")

# Outboxes empty this soon after a PostgreSQL restart ends (measured 15.7 s: see benchmarks/README.md).
RECOVERY_S = 30.0

FAST = [
    "--cameras-per-box", "3", "--processes", "1", "--incidents-per-day", "illegal_parking=20000",
    "--incident-minutes", "0.2", "--sighting-s", "2", "--health-s", "2", "--snapshot-s", "2",
    "--snapshot-unchanged-s", "2", "--zone-sync-s", "2", "--verification-s", "2", "--pg-url", PG_ADMIN_URL,
    "--quiet",
]  # fmt: skip


def test_smoke_run_speaks_every_kind_of_the_protocol(tmp_path: Path) -> None:
    document = bench_fleet.main(["--cameras", "6", "--duration", "6", "--out", str(tmp_path), *FAST])

    (step,) = document["steps"]
    assert step["cameras"] == 6 and step["boxes"] == 2
    for kind in ("report", "update", "evidence", "health", "snapshot", "config", "verification"):
        assert step["kinds"][kind]["requests"] > 0, kind
    assert step["errors"] == 0, step["kinds"]
    assert step["kinds"]["evidence"]["upload_bytes_per_camera_day"] > 0
    assert (
        step["kinds"]["snapshot"]["statuses"].get("204", 0)
        + step["kinds"]["snapshot"]["statuses"].get("200", 0)
        > 0
    )
    assert step["pg_growth_bytes"] >= 0 and step["store_rss_mb_peak"] > 0
    saved = json.loads(Path(document["json_path"]).read_text(encoding="utf-8"))
    assert saved["steps"][0]["cameras"] == 6
    assert saved["model"]["requests_per_camera_day"]["health"] == 86400 / 2 / 3  # one batch per box
    # one health request per box per 2-s interval (one per camera would be three times as many)
    assert step["kinds"]["health"]["requests"] <= step["boxes"] * (step["window_s"] / 2 + 2)
    assert document["png_path"] is None or Path(document["png_path"]).stat().st_size > 0


def test_store_restart_under_the_simulator_delivers_every_report_once(tmp_path: Path) -> None:
    """The store is stopped and started again halfway through the window while the boxes send: the
    outboxes wait and retry, and every report and update put in the window is stored, each once."""
    document = bench_fleet.main(
        ["--cameras", "6", "--duration", "8", "--restart", "store", "--drain-timeout", "300", "--out",
         str(tmp_path), *FAST]
    )  # fmt: skip

    (step,) = document["steps"]
    assert step["restart"] is not None and step["restart"]["down_s"] > 0
    delivery = step["delivery"]
    assert delivery["put"] > 0
    assert delivery["missing"] == 0, delivery
    assert step["pending_at_end"] == 0 and step["failed_items"] == 0


def test_postgres_restart_under_the_simulator_delivers_every_report_once_within_seconds(
    tmp_path: Path,
) -> None:
    """A private PostgreSQL (never the shared one) is restarted halfway through the window: the store
    answers 503 + Retry-After while it is down (never 500), the boxes hold their outboxes, and once it
    is back every report and update is stored, each once, and the outboxes are empty within seconds."""
    document = bench_fleet.main(
        ["--cameras", "6", "--duration", "8", "--restart", "postgres", "--drain-timeout", "120",
         "--out", str(tmp_path), "--store-log", str(tmp_path / "store.log"), *FAST]
    )  # fmt: skip

    (step,) = document["steps"]
    assert step["restart"] is not None
    delivery = step["delivery"]
    assert delivery["put"] > 0
    assert delivery["missing"] == 0, delivery
    assert step["pending_at_end"] == 0 and step["failed_items"] == 0
    assert "500" not in step["error_statuses"], step["error_statuses"]
    assert step["restart"]["outboxes_empty_after_s"] < RECOVERY_S, step["restart"]
    assert "Traceback" not in (tmp_path / "store.log").read_text(errors="replace")
