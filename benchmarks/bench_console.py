"""Operator console: server time of review-queue pages with many cases, against trivial requests on the
same server in the same run.

For each backend (SQLite in a scratch data directory; PostgreSQL in a scratch database, created and
dropped by the run) a migrated case store is filled by bulk INSERTs with ``--cases`` cases in a
realistic mix (``--pending-share`` awaiting review, the rest dispatched, in progress, resolved, closed
or voided) over 30 days, 40 cameras, 300 places and the default violation types, each case with one
sighting and one confirmation image row. A real uvicorn server (``api.app:create_app``, one worker) then
answers one logged-in shift leader's requests, one at a time (``--iterations`` timed after ``--warmup``):

* baselines: ``GET /healthz`` (no database, no login) and ``GET /api/v1/auth/me`` (login + one row);
* ``queue_first``: ``/console/review``, the newest page (25 cases with names and image joined, the total);
* ``queue_deep``: the page at 90% of the queue depth, through the keyset cursor a browser would carry;
* ``queue_filtered``: one camera and one violation type;
* ``case_page``: ``/console/cases/{id}`` of a dispatched case; ``board``: the command centre's unit board;
* with ``--seeder sql``: the API's case list (first page, filtered, a later page), the dashboards and the
  statistics endpoints over the last 30 days (:data:`PAGES` lists every measured page, one line each).

``--seeder sql`` (the default on PostgreSQL from 100,000 cases) fills the store through bulk SQL with a
10,000-camera city (:mod:`benchmarks.city_cases`: sightings and audit rows too), so a million cases take
minutes; ``orm`` is the 40-camera mix above, inserted through SQLAlchemy.
* case search (api.case_search): ``search_first`` (``/console/search``, 50 cases of every state with the
  total), ``search_deep`` (its page at 90% of all cases, through the keyset cursor), ``search_text``
  (free text: a street name that matches a tenth of the places), ``api_search`` (the JSON list),
  ``csv_filtered`` (the CSV export of one violation type, every matching case streamed), ``map_points``
  (``/api/v1/case-search/map``: the newest 5,000 cases with positions and the cameras) and ``map_page``
  (``/console/map``'s HTML). The CSV and map points run ``--heavy-iterations`` times.

Latency is measured by the client on loopback (``time.perf_counter`` around each request; every sample
kept): with one request in flight it is the server's time plus a loopback round trip. p50/p95 and the
ratio of each page's p50 to ``/api/v1/auth/me``'s p50 are reported, and written to one JSON file::

    .venv/bin/python -m benchmarks.bench_console                       # 10,000 cases on SQLite
    .venv/bin/python -m benchmarks.bench_console --backends sqlite,postgresql --iterations 300
    .venv/bin/python -m benchmarks.bench_console --cases 1000000 --backend postgresql --iterations 50
    .venv/bin/python -m benchmarks.bench_console --backends sqlite,postgresql --cases 100000 \
        --iterations 100 --heavy-iterations 10                      # the README's case-search table
"""

from __future__ import annotations

import argparse
import datetime as dt
import os
import random
import re
import statistics
import sys
import tempfile
import time
import uuid
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import quote

import httpx
from sqlalchemy import insert, select, update

from benchmarks import city_cases
from benchmarks.bench_api import DEFAULT_PG, Target, machine_info, percentile, scratch_database, server
from benchmarks.common import write_json

PROG = "python -m benchmarks.bench_console"
PASSWORD = "bench-password"
CAMERAS = 40
PLACES = 300
DAYS = 30
# status -> share of the cases that are not pending review
SETTLED_MIX = {
    "dispatched": 0.15,
    "in_progress": 0.10,
    "resolved": 0.05,
    "closed": 0.60,
    "voided": 0.10,
}
_OPEN = {"pending_review", "dispatched", "in_progress", "resolved"}
# Place names: "search_text" looks for the first, which names a tenth of the places.
STREETS = ("东华门大街", "王府井大街", "南河沿大街", "北池子大街", "灯市口大街", "金鱼胡同", "东单北大街",
           "朝阳门内大街", "美术馆后街", "五四大街")  # fmt: skip
NOTES = ("", "", "", "占道经营，已劝离", "市民来电反映", "夜间多次出现")


def parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="bench_console", description=(__doc__ or "").split("\n")[0])
    parser.add_argument(
        "--backends", "--backend", default="sqlite", help="Comma-separated: sqlite, postgresql."
    )
    parser.add_argument(
        "--seeder",
        choices=["auto", "orm", "sql"],
        default="auto",
        help="orm: 40 cameras through SQLAlchemy; sql: a 10,000-camera city through bulk SQL (PostgreSQL); "
        "auto: sql on PostgreSQL from 100,000 cases.",
    )
    parser.add_argument("--cases", type=int, default=10_000, help="Cases in the database.")
    parser.add_argument("--pending-share", type=float, default=0.5, help="Share awaiting review.")
    parser.add_argument("--iterations", type=int, default=200, help="Timed requests per page.")
    parser.add_argument("--warmup", type=int, default=10, help="Untimed requests per page first.")
    parser.add_argument(
        "--heavy-iterations", type=int, default=20, help="Timed requests of the CSV export and map points."
    )
    parser.add_argument("--seed", type=int, default=7, help="Random seed of the case mix.")
    parser.add_argument(
        "--pg-url", default=DEFAULT_PG, help="PostgreSQL admin URL (a scratch DB is made there)."
    )
    parser.add_argument(
        "--days", type=float, default=city_cases.DAYS, help="--seeder sql: days of cases up to now."
    )
    parser.add_argument(
        "--keep-database",
        default=None,
        help="PostgreSQL database name (on --pg-url's server) to seed once and keep: a later run with the "
        "same name migrates it and measures again without generating (indexes before/after).",
    )
    parser.add_argument(
        "--pages",
        default=None,
        help="Comma-separated page names to time (default: all of PAGES); healthz and auth_me always run.",
    )
    parser.add_argument("--startup-timeout", type=float, default=60.0, help="Seconds to wait for the server.")
    parser.add_argument("--out", type=Path, default=Path("benchmarks/results"), help="JSON folder.")
    parser.add_argument("--quiet", action="store_true", help="Do not print the table.")
    args = parser.parse_args(argv)
    args.backends = [b.strip() for b in args.backends.split(",") if b.strip()]
    if args.pages is not None:
        chosen = {p.strip() for p in args.pages.split(",") if p.strip()}
        unknown_pages = chosen - {page.name for page in PAGES}
        if unknown_pages or not chosen:
            parser.error(f"--pages: unknown {sorted(unknown_pages)}; names are those of PAGES")
        args.pages = chosen | {"healthz", "auth_me"}
    unknown = set(args.backends) - {"sqlite", "postgresql"}
    if unknown or not args.backends:
        parser.error(f"--backends: unknown {sorted(unknown)}; use sqlite and/or postgresql")
    if args.seeder == "sql" and args.backends != ["postgresql"]:
        parser.error("--seeder sql needs --backend postgresql (bulk SQL is PostgreSQL's)")
    if args.heavy_iterations < 1:
        parser.error("need --heavy-iterations >= 1")
    if args.cases < 30 or args.iterations < 1 or args.warmup < 0 or not 0 < args.pending_share <= 1:
        parser.error("need --cases >= 30, --iterations >= 1, --warmup >= 0 and 0 < --pending-share <= 1")
    return args


# ---------------------------------------------------------------------------------------------------------
# Seeding


def _status(rng: random.Random, pending_share: float) -> str:
    if rng.random() < pending_share:
        return "pending_review"
    return rng.choices(list(SETTLED_MIX), weights=list(SETTLED_MIX.values()))[0]


def _case_rows(
    args: argparse.Namespace, place_ids: list[int], unit_ids: list[int], codes: list[str]
) -> list[dict[str, Any]]:
    rng = random.Random(args.seed)
    now = dt.datetime.now(dt.UTC)
    rows = []
    for i in range(args.cases):
        status = _status(rng, args.pending_share)
        created = now - dt.timedelta(seconds=rng.uniform(0, DAYS * 86400))
        handled = status not in ("pending_review", "voided")
        place_id = rng.choice(place_ids)
        code = rng.choice(codes)
        rows.append(
            {
                "status": status,
                "violation_code": code,
                "place_id": place_id,
                "camera_code": f"cam-{rng.randrange(CAMERAS):03d}",
                "zone_code": "z1",
                "unit_id": rng.choice(unit_ids) if handled else None,
                "confidence": round(rng.uniform(0.35, 0.98), 3),
                "sighting_count": rng.randint(1, 6),
                "first_seen_at": created - dt.timedelta(minutes=5),
                "last_seen_at": created,
                "confirmed_at": created,
                "created_at": created,
                "updated_at": created,
                "filed_at": created if handled else None,
                "dispatched_at": created if handled else None,
                "deadline_at": created + dt.timedelta(days=2) if handled else None,
                "overdue": handled and status in ("dispatched", "in_progress") and rng.random() < 0.2,
                # one open case per place and violation is the rule; bench cases get unique slots
                "open_slot": f"bench|{i}" if status in _OPEN else None,
                "description": rng.choice(NOTES),
            }
        )
    return rows


def seed(data_dir: Path, database_url: str | None, args: argparse.Namespace) -> dict[str, Any]:
    """Migrate, load reference data and the cases; returns what the requests need (ids, a cursor)."""
    from api.actors import SYSTEM
    from api.auth import create_user
    from api.case_search import SearchCursor
    from api.config_import import DEFAULT_CONFIG, ReferenceConfig, import_config, import_file
    from api.console.queue import Cursor
    from api.daily_stats import rebuild
    from api.db import make_engine, make_session_factory
    from api.migrate import upgrade
    from api.models import Case, CaseStatus, Evidence, Place, Role, Sighting, Unit, ViolationType
    from api.settings import Settings

    settings = Settings(data_dir=data_dir, database_url=database_url, _env_file=None)
    engine = make_engine(settings)
    upgrade(engine)
    city = ReferenceConfig.model_validate(
        {
            "units": [{"code": f"unit-{u}", "name": f"Unit {u}"} for u in range(8)],
            "places": [
                {
                    "key": f"grid-{p:04d}",
                    "name": f"{STREETS[p % len(STREETS)]} 网格 {p:04d}",
                    "lat": 39.85 + (p % 20) * 0.01,
                    "lon": 116.30 + (p // 20) * 0.01,
                    "owner": f"unit-{p % 8}",
                }
                for p in range(PLACES)
            ],
        }
    )
    began = time.perf_counter()
    with make_session_factory(engine).begin() as session:
        import_file(session, DEFAULT_CONFIG, SYSTEM)
        import_config(session, city, SYSTEM, label="bench console")
        create_user(session, username="bench-leader", password=PASSWORD, role=Role.SHIFT_LEADER)
        place_ids = list(session.scalars(select(Place.id)))
        unit_ids = list(session.scalars(select(Unit.id)))
        codes = list(session.scalars(select(ViolationType.code).where(ViolationType.active.is_(True))))
        session.execute(insert(Case), _case_rows(args, place_ids, unit_ids, codes))
        rebuild(session.connection())  # bulk INSERT bypasses the daily summary's flush listener
        cases = session.execute(select(Case.id, Case.created_at, Case.camera_code)).all()
        session.execute(
            insert(Sighting),
            [
                {"case_id": c.id, "idempotency_key": uuid.uuid4().hex, "camera_code": c.camera_code}
                for c in cases
            ],
        )
        session.execute(
            insert(Evidence),
            [
                {
                    "case_id": c.id,
                    "sha256": f"{c.id:064x}",
                    "kind": "confirmation",
                    "content_type": "image/jpeg",
                    "size": 150_000,
                    "width": 1280,
                    "height": 720,
                    "uploaded_by": "device:bench",
                    "created_at": c.created_at,
                }
                for c in cases
            ],
        )
        evidence = {r[0]: r[1] for r in session.execute(select(Evidence.case_id, Evidence.id))}
        session.execute(
            update(Case), [{"id": case_id, "best_evidence_id": e} for case_id, e in evidence.items()]
        )
        pending = session.execute(
            select(Case.id, Case.created_at)
            .where(Case.status == CaseStatus.PENDING_REVIEW.value)
            .order_by(Case.created_at.desc(), Case.id.desc())
        ).all()
        deep_index = int(len(pending) * 0.9)
        everything = session.execute(
            select(Case.id, Case.created_at).order_by(Case.created_at.desc(), Case.id.desc())
        ).all()
        search_deep = everything[int(len(everything) * 0.9)]
        dispatched = session.scalar(select(Case.id).where(Case.status == "dispatched").limit(1))
        camera, code = session.execute(
            select(Case.camera_code, Case.violation_code).where(Case.status == "pending_review").limit(1)
        ).one()
    seeded_s = time.perf_counter() - began
    engine.dispose()
    return {
        "seeder": "orm",
        "seed_s": seeded_s,
        "pending": len(pending),
        "deep_position": deep_index,
        "deep_cursor": Cursor(pending[deep_index].created_at, pending[deep_index].id).encode(),
        "dispatched_case": dispatched,
        "search_deep_cursor": SearchCursor(
            "created", "desc", search_deep.created_at, search_deep.id
        ).encode(),
        "filter": {"camera": camera, "violation": code},
        **_month(),
    }


def _month() -> dict[str, str]:
    """The statistics pages' period: the last 30 whole days."""
    today = dt.datetime.now(dt.UTC).date()
    return {
        "from": (today - dt.timedelta(days=30)).isoformat(),
        "to": (today - dt.timedelta(days=1)).isoformat(),
    }


def seed_sql(data_dir: Path, database_url: str | None, args: argparse.Namespace) -> dict[str, Any]:
    """Migrate, load a 10,000-camera city's reference data and fill it through bulk SQL
    (:mod:`benchmarks.city_cases`); returns what the requests need, like :func:`seed`."""
    from sqlalchemy import func

    from api.actors import SYSTEM
    from api.auth import create_user
    from api.case_search import SearchCursor
    from api.config_import import DEFAULT_CONFIG, ReferenceConfig, import_config, import_file
    from api.console.queue import Cursor
    from api.db import make_engine, make_session_factory
    from api.migrate import upgrade
    from api.models import Case, Role
    from api.settings import Settings

    settings = Settings(data_dir=data_dir, database_url=database_url, _env_file=None)
    engine = make_engine(settings)
    upgrade(engine)
    units = city_cases.UNITS
    city = ReferenceConfig.model_validate(
        {
            "units": [{"code": f"unit-{u}", "name": f"Unit {u}"} for u in range(units)],
            # Named and placed like a city's grid (search_text finds a tenth of them; the map has points).
            "places": [
                {
                    "key": f"grid-{p:05d}",
                    "owner": f"unit-{p % units}",
                    "name": f"{STREETS[p % len(STREETS)]} 网格 {p:05d}",
                    "lat": round(39.80 + (p % 50) * 0.004, 6),
                    "lon": round(116.20 + (p // 50) * 0.004, 6),
                }
                for p in range(city_cases.PLACES)
            ],
        }
    )
    began = time.perf_counter()
    with make_session_factory(engine)() as session:
        kept = session.scalar(select(func.count()).select_from(Case)) or 0
    generated = None
    with make_session_factory(engine).begin() as session:
        if not kept:
            import_file(session, DEFAULT_CONFIG, SYSTEM)
        # Again on a kept database: one kept before places had names and positions gets them (an upsert).
        import_config(session, city, SYSTEM, label="bench console city")
        if not kept:
            create_user(session, username="bench-leader", password=PASSWORD, role=Role.SHIFT_LEADER)
    reference_s = time.perf_counter() - began
    if not kept:
        generated = city_cases.generate(engine, args.cases, days=args.days)
    pending_q = select(Case.id, Case.created_at).where(Case.status == "pending_review")
    with make_session_factory(engine)() as session:
        pending = session.scalar(select(func.count()).select_from(pending_q.subquery())) or 0
        deep_index = int(pending * 0.9)
        deep = session.execute(
            pending_q.order_by(Case.created_at.desc(), Case.id.desc()).offset(deep_index).limit(1)
        ).one()
        dispatched = session.scalar(select(Case.id).where(Case.status == "dispatched").limit(1))
        camera, code = session.execute(
            select(Case.camera_code, Case.violation_code).where(Case.status == "pending_review").limit(1)
        ).one()
        total = session.scalar(select(func.count()).select_from(Case)) or 0
        search_deep = session.execute(
            select(Case.id, Case.created_at)
            .order_by(Case.created_at.desc(), Case.id.desc())
            .offset(int(total * 0.9))
            .limit(1)
        ).one()
    engine.dispose()
    return {
        "seeder": "sql",
        "search_deep_cursor": SearchCursor(
            "created", "desc", search_deep.created_at, search_deep.id
        ).encode(),
        "seed_s": reference_s + (generated.seconds if generated else 0),
        "reference_s": reference_s,
        "kept_cases": kept,  # a kept database measured again: nothing generated this run
        "generated": None
        if generated is None
        else {
            "cases": generated.cases,
            "sightings": generated.sightings,
            "audit_events": generated.audit_events,
            "seconds": generated.seconds,
            "seconds_by_table": generated.seconds_by_table,
        },
        "pending": pending,
        "deep_position": deep_index,
        "deep_cursor": Cursor(deep.created_at, deep.id).encode(),
        "dispatched_case": dispatched,
        "filter": {"camera": camera, "violation": code},
        **_month(),
    }


def use_sql_seeder(backend: str, args: argparse.Namespace) -> bool:
    if args.seeder == "auto":
        return backend == "postgresql" and args.cases >= 100_000
    return bool(args.seeder == "sql")


# ---------------------------------------------------------------------------------------------------------
# Measuring


def time_get(client: httpx.Client, path: str, iterations: int, warmup: int) -> dict[str, Any]:
    """``iterations`` sequential GETs after ``warmup`` untimed ones; every sample kept, in milliseconds."""
    for _ in range(warmup):
        client.get(path).raise_for_status()
    samples: list[float] = []
    size = 0
    for _ in range(iterations):
        began = time.perf_counter()
        response = client.get(path)
        samples.append((time.perf_counter() - began) * 1000)
        response.raise_for_status()
        size = len(response.content)
    ordered = sorted(samples)
    return {
        "path": path,
        "requests": len(samples),
        "bytes": size,
        "p50_ms": percentile(ordered, 50),
        "p95_ms": percentile(ordered, 95),
        "p99_ms": percentile(ordered, 99),
        "mean_ms": statistics.fmean(samples),
        "samples_ms": [round(s, 3) for s in samples],
    }


@dataclass(frozen=True)
class PageSpec:
    """One measured page: its name in the table, its group and its path from what the seeding returned."""

    name: str
    group: str  # baseline | console | api | stats
    path: Callable[[dict[str, Any]], str]
    city: bool = False  # only with the bulk SQL city (--seeder sql): keeps the 10k-case runs comparable


def _month_query(s: dict[str, Any]) -> str:
    return f"period=custom&from={s['from']}&to={s['to']}"


# Every page the benchmark times, one line each (new console pages and API endpoints: add a line).
PAGES = [
    PageSpec("healthz", "baseline", lambda s: "/healthz"),
    PageSpec("auth_me", "baseline", lambda s: "/api/v1/auth/me"),
    PageSpec("queue_first", "console", lambda s: "/console/review"),
    PageSpec("queue_deep", "console", lambda s: f"/console/review?after={s['deep_cursor']}"),
    PageSpec(
        "queue_filtered",
        "console",
        lambda s: f"/console/review?camera={s['filter']['camera']}&violation={s['filter']['violation']}",
    ),
    PageSpec(
        "queue_suggest_camera",
        "console",
        lambda s: f"/console/review/suggest?field=camera&q={s['filter']['camera'][:5]}",
    ),
    PageSpec("case_page", "console", lambda s: f"/console/cases/{s['dispatched_case']}"),
    PageSpec("board", "console", lambda s: "/console/board"),
    PageSpec(
        "dashboards", "console", lambda s: f"/console/dashboards?period=monthly&date={s['from']}", city=True
    ),
    PageSpec("api_cases", "api", lambda s: "/api/v1/cases", city=True),
    PageSpec(
        "api_cases_open", "api", lambda s: "/api/v1/cases?status=dispatched&status=in_progress", city=True
    ),
    PageSpec("api_cases_camera", "api", lambda s: f"/api/v1/cases?camera={s['filter']['camera']}", city=True),
    PageSpec("api_cases_offset_1000", "api", lambda s: "/api/v1/cases?offset=1000", city=True),
    PageSpec("stats_report_30d", "stats", lambda s: f"/api/v1/stats/report?{_month_query(s)}", city=True),
    PageSpec("stats_ranking_30d", "stats", lambda s: f"/api/v1/stats/ranking?{_month_query(s)}", city=True),
    PageSpec("search_first", "search", lambda s: "/console/search"),
    PageSpec("search_deep", "search", lambda s: f"/console/search?after={s['search_deep_cursor']}"),
    PageSpec("search_text", "search", lambda s: f"/console/search?q={quote(STREETS[0])}"),
    PageSpec("api_search", "search", lambda s: "/api/v1/case-search?limit=50"),
    PageSpec(
        "csv_filtered",
        "search",
        lambda s: f"/api/v1/case-search/export.csv?violation={s['filter']['violation']}",
    ),
    PageSpec("map_points", "search", lambda s: "/api/v1/case-search/map"),
    PageSpec("map_page", "search", lambda s: "/console/map"),
]


def _type(seeded: dict[str, Any]) -> str:
    return str(seeded["filter"]["violation"])


def pages(seeded: dict[str, Any], chosen: set[str] | None = None) -> dict[str, str]:
    city = seeded.get("seeder") == "sql"
    return {
        page.name: page.path(seeded)
        for page in PAGES
        if (city or not page.city) and (chosen is None or page.name in chosen)
    }


HEAVY = frozenset({"csv_filtered", "map_points"})
ROW = re.compile(r'<tr id="row-')


CARD = re.compile(r'class="case-card"')


@contextmanager
def kept_database(pg_url: str, name: str) -> Iterator[tuple[Path, str | None]]:
    """A named PostgreSQL database, created if missing and never dropped (see --keep-database)."""
    from sqlalchemy import create_engine, text

    admin = create_engine(pg_url, isolation_level="AUTOCOMMIT")
    with admin.connect() as connection:
        if not connection.scalar(text("SELECT 1 FROM pg_database WHERE datname = :n"), {"n": name}):
            connection.execute(text(f'CREATE DATABASE "{name}"'))
    admin.dispose()
    yield Path(tempfile.mkdtemp(prefix="sw-bench-")), pg_url.rsplit("/", 1)[0] + f"/{name}"


def run_backend(backend: str, args: argparse.Namespace) -> dict[str, Any]:
    database = (
        kept_database(args.pg_url, args.keep_database)
        if args.keep_database and backend == "postgresql"
        else scratch_database(backend, args.pg_url)
    )
    with database as (data_dir, database_url):
        seeder = seed_sql if use_sql_seeder(backend, args) else seed
        seeded = seeder(data_dir, database_url, args)
        env = {"STREETWATCH_DATA_DIR": str(data_dir), "STREETWATCH_RUN_JOBS": "false"}
        if database_url:
            env["STREETWATCH_DATABASE_URL"] = database_url
        target = Target(backend, env, [], [])
        with (
            server(target, 1, args.startup_timeout) as base,
            httpx.Client(base_url=base, timeout=30) as client,
        ):
            login = client.post("/api/v1/auth/login", json={"username": "bench-leader", "password": PASSWORD})
            login.raise_for_status()
            results = {
                name: time_get(
                    client,
                    path,
                    args.heavy_iterations if name in HEAVY else args.iterations,
                    min(args.warmup, 2) if name in HEAVY else args.warmup,
                )
                for name, path in pages(seeded, args.pages).items()
            }
            cards: dict[str, int] = {
                name: len(CARD.findall(client.get(results[name]["path"]).text))
                for name in ("queue_first", "queue_deep", "queue_filtered")
                if name in results
            }
            cards |= {
                name: len(ROW.findall(client.get(results[name]["path"]).text))
                for name in ("search_first", "search_deep", "search_text")
                if name in results
            }
            if "csv_filtered" in results:
                csv_text = client.get(results["csv_filtered"]["path"]).content.decode("utf-8-sig")
                cards["csv_filtered"] = len(csv_text.splitlines()) - 1
            if "map_points" in results:
                cards["map_points"] = len(client.get(results["map_points"]["path"]).json()["cases"])
    baseline = results["auth_me"]["p50_ms"]
    ratios = {name: r["p50_ms"] / baseline for name, r in results.items()}
    return {
        "backend": backend,
        "seeded": seeded,
        "pages": results,
        "cards_shown": cards,
        "ratio_p50_to_auth_me": ratios,
    }


def format_table(document: dict[str, Any]) -> str:
    header = f"{'backend':<11}{'page':<20}{'p50 ms':>9}{'p95 ms':>9}{'p99 ms':>9}{'x auth/me':>11}{'KiB':>7}"
    lines = [header]
    for run in document["runs"]:
        for name, r in run["pages"].items():
            ratio = run["ratio_p50_to_auth_me"][name]
            timings = f"{r['p50_ms']:>9.2f}{r['p95_ms']:>9.2f}{r['p99_ms']:>9.2f}{ratio:>11.2f}"
            lines.append(f"{run['backend']:<11}{name:<20}{timings}{r['bytes'] / 1024:>7.1f}")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> dict[str, Any]:
    """Run the benchmark, write JSON into ``--out``, print a table, return the JSON document."""
    args = parse_args(argv)
    machine = machine_info()
    runs = [run_backend(backend, args) for backend in args.backends]
    document: dict[str, Any] = {
        "benchmark": "bench_console",
        "timestamp": dt.datetime.now(dt.UTC).isoformat(timespec="milliseconds"),
        "command": " ".join([PROG, *(sys.argv[1:] if argv is None else argv)]),
        "machine": {**machine, "loadavg_1m_end": os.getloadavg()[0]},
        "config": {
            "backends": args.backends,
            "cases": args.cases,
            "pending_share": args.pending_share,
            "iterations": args.iterations,
            "warmup": args.warmup,
            "heavy_iterations": args.heavy_iterations,
            "pages": sorted(args.pages) if args.pages else "all",
            "seed": args.seed,
            "mix": {
                "pending_review": args.pending_share,
                **{k: v * (1 - args.pending_share) for k, v in SETTLED_MIX.items()},
            },
        },
        "runs": runs,
    }
    args.out.mkdir(parents=True, exist_ok=True)
    path = write_json(args.out, "bench_console", document)
    document["json_path"] = str(path)
    if not args.quiet:
        print(format_table(document))
        print(f"JSON: {path}")
    return document


if __name__ == "__main__":
    main()
