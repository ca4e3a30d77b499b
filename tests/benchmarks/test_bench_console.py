"""Smoke run of benchmarks/bench_console.py: a real server over a few hundred cases, few requests; checks
that the pages answer, show cases, and that the JSON is written. Speed is measured by running the
benchmark, never asserted here (machines are noisy)."""

from __future__ import annotations

import json
import math
from pathlib import Path

import pytest

from benchmarks import bench_console
from tests.api.conftest import PG_ADMIN_URL, _pg_available


def test_smoke_run_writes_json(tmp_path: Path) -> None:
    backends = "sqlite,postgresql" if _pg_available() else "sqlite"
    small = ["--cases", "300", "--iterations", "3", "--warmup", "1", "--heavy-iterations", "2"]
    document = bench_console.main(
        ["--backends", backends, *small, "--pg-url", PG_ADMIN_URL, "--out", str(tmp_path), "--quiet"]
    )
    assert [run["backend"] for run in document["runs"]] == backends.split(",")
    for run in document["runs"]:
        seeded = run["seeded"]
        assert 100 < seeded["pending"] < 200  # half of 300, give or take the random mix
        assert seeded["deep_position"] == int(seeded["pending"] * 0.9)
        assert set(run["pages"]) == {
            "healthz",
            "auth_me",
            "queue_first",
            "queue_deep",
            "queue_filtered",
            "queue_suggest_camera",
            "case_page",
            "board",
            "search_first",
            "search_deep",
            "search_text",
            "api_search",
            "csv_filtered",
            "map_points",
            "map_page",
        }
        for name, page in run["pages"].items():
            expected = 2 if name in bench_console.HEAVY else 3
            assert page["requests"] == len(page["samples_ms"]) == expected
            assert 0 < page["p50_ms"] <= page["p95_ms"]
        shown = run["cards_shown"]
        assert shown["queue_first"] == 25  # a full first page
        assert 0 < shown["queue_deep"] <= 25  # the deep cursor lands inside the queue
        assert 0 < shown["queue_filtered"] <= 25
        assert shown["search_first"] == 50  # every state, a full page
        assert 0 < shown["search_deep"] <= 50  # the keyset cursor lands 90% down the list
        assert 0 < shown["search_text"] <= 50  # a street name matches a tenth of the places
        assert 0 < shown["csv_filtered"] < 300  # one violation type's cases, streamed
        assert shown["map_points"] == 300  # every case's place has coordinates
        assert run["ratio_p50_to_auth_me"]["auth_me"] == 1.0
        assert all(math.isfinite(r) and r > 0 for r in run["ratio_p50_to_auth_me"].values())
    saved = json.loads(Path(document["json_path"]).read_text(encoding="utf-8"))
    assert saved["config"]["cases"] == 300


def test_smoke_run_of_the_city_seeded_through_bulk_sql(tmp_path: Path) -> None:
    if not _pg_available():
        pytest.skip("the bulk SQL city needs PostgreSQL")
    city = ["--backend", "postgresql", "--seeder", "sql", "--cases", "200", "--days", "1"]
    small = ["--iterations", "2", "--heavy-iterations", "2", "--warmup", "0", "--pg-url", PG_ADMIN_URL]
    small += ["--out", str(tmp_path)]
    document = bench_console.main([*city, *small, "--quiet"])
    [run] = document["runs"]
    generated = run["seeded"]["generated"]
    assert generated["cases"] == 200
    assert 200 <= generated["sightings"] <= 600  # 1 to 3 per case
    assert generated["audit_events"] > 200  # one per workflow stage reached
    assert set(run["pages"]) == {page.name for page in bench_console.PAGES}  # the city measures them all
    for page in run["pages"].values():
        assert page["requests"] == 2 and page["p50_ms"] > 0
    assert run["cards_shown"]["queue_first"] > 0
    assert run["cards_shown"]["map_points"] == 200  # the city's places have positions
    assert run["cards_shown"]["search_text"] > 0  # and names: a tenth carry the searched street


def test_pages_chooses_what_is_timed_and_refuses_unknown_names(capsys: pytest.CaptureFixture[str]) -> None:
    args = bench_console.parse_args(["--pages", "search_first,map_points"])
    assert args.pages == {"search_first", "map_points", "healthz", "auth_me"}
    assert set(bench_console.pages({"filter": {}}, args.pages)) == {
        "search_first",
        "map_points",
        "healthz",
        "auth_me",
    }
    with pytest.raises(SystemExit) as exit_info:
        bench_console.parse_args(["--pages", "search_first,nope"])
    assert exit_info.value.code == 2
    assert "--pages: unknown ['nope']" in capsys.readouterr().err
