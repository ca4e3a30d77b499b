"""A city's worth of cases in PostgreSQL through bulk SQL (``INSERT ... SELECT generate_series``), not the
API: a million cases take minutes, not hours.

The model (a 10,000-camera city over ``--days`` days):

* cameras ``cam-00000`` .. ``cam-09999``, 24 per edge box; busy cameras make more cases (camera index
  drawn as ``floor(random()^1.6 * cameras)``); each camera sits in one place (grid cell), places belong
  to units round-robin;
* violation codes from the default table, a few of them common (index drawn as ``random()^2``);
* time: uniform over the period; a case moves one workflow stage (filed, dispatched, started, resolved,
  verified, closed) every ``10 h * (0.3 + u)`` (u uniform in 0..1), so old cases are closed and the
  recent ones spread over the open states; 10% are voided; a dispatched case is due 48 h later and
  overdue when that passed;
* per case: one confirmation image row (its best evidence), 1.35 sightings on average and one audit row
  per stage reached (``created``, ``file``, ``dispatch``, ``start``, ``resolve``, ``verify``,
  ``close`` or ``void``): 4-5 per case;
* at the end the statistics' daily summary is filled from the cases (:func:`api.daily_stats.rebuild`,
  the migration's SQL): the bulk INSERTs bypass the ORM listener that keeps it.

``python -m benchmarks.city_cases --cases 1000000 --database-url postgresql+psycopg://...`` fills an
already migrated database that holds the reference data (``bench_console --seeder sql`` does all of it).
"""

from __future__ import annotations

import argparse
import datetime as dt
import time
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from sqlalchemy import Connection, Engine, create_engine, select, text

CAMERAS = 10_000
PLACES = 5_000
UNITS = 20
CAMERAS_PER_BOX = 24
DAYS = 35
STAGES = ["pending_review", "filed", "dispatched", "in_progress", "resolved", "verified", "closed"]
ACTIONS = ["created", "file", "dispatch", "start", "resolve", "verify", "close"]

_CASES = """
WITH r AS (
    SELECT g AS id,
           CAST(:now AS timestamp) - make_interval(secs => random() * :span_s) AS created,
           floor(power(random(), 1.6) * :cameras)::int AS cam,
           random() AS u_step, random() AS u_void, random() AS u_code, random() AS u_conf
    FROM generate_series(CAST(:first AS int), CAST(:last AS int)) AS g
), s AS (
    SELECT r.*,
           make_interval(secs => 36000 * (0.3 + u_step)) AS step,
           CASE WHEN u_void < 0.10 THEN -1
                ELSE least(6, floor(extract(epoch FROM CAST(:now AS timestamp) - created)
                                    / (36000 * (0.3 + u_step))))::int END AS stage
    FROM r
), c AS (
    SELECT s.*,
           (CAST(:place_ids AS int[]))[1 + cam % :places] AS place_id,
           (CAST(:place_units AS int[]))[1 + cam % :places] AS owner_id,
           (CAST(:codes AS text[]))[1 + floor(power(u_code, 2) * :n_codes)::int] AS code,
           created + step * 2 + interval '48 hours' AS due
    FROM s
)
INSERT INTO cases (
    id, status, violation_code, place_id, camera_code, zone_code, unit_id, source, description,
    confidence, model_name, model_version, sighting_count, best_evidence_id, first_seen_at, last_seen_at,
    confirmed_at, created_at, updated_at, filed_at, dispatched_at, first_dispatched_at, deadline_at,
    resolved_at, verified_at, closed_at, voided_at, void_reason, overdue, rework_count, return_count,
    open_slot)
SELECT id,
       CASE WHEN stage < 0 THEN 'voided' ELSE (CAST(:stages AS text[]))[stage + 1] END,
       code, place_id, 'cam-' || lpad(cam::text, 5, '0'), 'z1',
       CASE WHEN stage >= 2 THEN owner_id END, 'camera', '',
       round((0.35 + 0.6 * u_conf)::numeric, 3), 'yolo11n-coco', '1', 1 + id % 4 / 3 + (id % 10 = 0)::int, id,
       created - interval '5 minutes', created, created, created,
       created + step * greatest(stage, 0),
       CASE WHEN stage >= 1 THEN created + step END,
       CASE WHEN stage >= 2 THEN created + step * 2 END,
       CASE WHEN stage >= 2 THEN created + step * 2 END,
       CASE WHEN stage >= 2 THEN due END,
       CASE WHEN stage >= 4 THEN created + step * 4 END,
       CASE WHEN stage >= 5 THEN created + step * 5 END,
       CASE WHEN stage = 6 THEN created + step * 6 END,
       CASE WHEN stage < 0 THEN created + step END,
       CASE WHEN stage < 0 THEN 'false_positive' END,
       stage IN (2, 3) AND due < CAST(:now AS timestamp), 0, 0,
       CASE WHEN stage BETWEEN 0 AND 5 THEN 'bench|' || id END
FROM c
"""

_EVIDENCE = """
INSERT INTO evidence (id, case_id, sha256, kind, content_type, size, width, height, score, uploaded_by,
                      created_at)
SELECT id, id, lpad(to_hex(id), 64, '0'), 'confirmation', 'image/jpeg', 90000 + id % 90000, 1920, 1080,
       confidence, 'device:box-' || (substr(camera_code, 5)::int / :per_box), created_at
FROM cases WHERE id BETWEEN :first AND :last
"""

_SIGHTINGS = """
INSERT INTO sightings (case_id, idempotency_key, camera_code, zone_code, confidence, boxes, first_seen_at,
                       confirmed_at, received_at, payload, sighting_count, last_seen_at)
SELECT c.id, 'bench-' || c.id || '-' || k, c.camera_code, 'z1', c.confidence, CAST('[]' AS json),
       c.first_seen_at + make_interval(mins => k * 20), c.confirmed_at + make_interval(mins => k * 20),
       c.confirmed_at + make_interval(mins => k * 20), CAST('{}' AS json), 1 + k,
       c.last_seen_at + make_interval(mins => k * 20)
FROM cases c CROSS JOIN LATERAL generate_series(0, c.sighting_count - 1) AS k
WHERE c.id BETWEEN :first AND :last
"""

_AUDIT = """
INSERT INTO audit_events (case_id, at, actor, action, from_status, to_status)
SELECT c.id,
       c.created_at + (c.updated_at - c.created_at) * k / greatest(n, 1),
       CASE WHEN k = 0 THEN 'device:bench' ELSE 'user:bench-leader' END,
       CASE WHEN c.status = 'voided' AND k = 1 THEN 'void' ELSE (CAST(:actions AS text[]))[k + 1] END,
       CASE WHEN k = 0 THEN NULL WHEN c.status = 'voided' THEN 'pending_review'
            ELSE (CAST(:stages AS text[]))[k] END,
       CASE WHEN c.status = 'voided' AND k = 1 THEN 'voided' ELSE (CAST(:stages AS text[]))[k + 1] END
FROM cases c
CROSS JOIN LATERAL (
    SELECT CASE WHEN c.status = 'voided' THEN 1
                ELSE array_position(CAST(:stages AS text[]), CAST(c.status AS text)) - 1 END AS n
) AS stage
CROSS JOIN LATERAL generate_series(0, stage.n) AS k
WHERE c.id BETWEEN :first AND :last
"""


@dataclass(frozen=True)
class Generated:
    cases: int
    sightings: int
    audit_events: int
    seconds: float
    seconds_by_table: dict[str, float]


def generate(
    engine: Engine, cases: int, *, days: float = DAYS, batch: int = 100_000, now: dt.datetime | None = None
) -> Generated:
    """Fill an empty, migrated PostgreSQL case store holding the reference data (places, units, violation
    types) with ``cases`` cases; batches of ``batch`` cases, one transaction each."""
    from api.daily_stats import rebuild
    from api.models import Place, ViolationType

    if engine.dialect.name != "postgresql":
        raise ValueError(f"the bulk SQL generator needs PostgreSQL, not {engine.dialect.name}")
    now = (now or dt.datetime.now(dt.UTC)).astimezone(dt.UTC).replace(tzinfo=None)
    with engine.connect() as conn:
        places = conn.execute(select(Place.id, Place.owner_unit_id).order_by(Place.id)).all()
        codes = list(conn.scalars(select(ViolationType.code).where(ViolationType.active.is_(True))))
    if not places or not codes:
        raise ValueError("load the reference data first: no places or no active violation types")
    params: dict[str, Any] = {
        "now": now,
        "span_s": days * 86400,
        "cameras": CAMERAS,
        "places": len(places),
        "place_ids": [p.id for p in places],
        "place_units": [p.owner_unit_id for p in places],
        "codes": codes,
        "n_codes": len(codes),
        "stages": STAGES,
        "actions": ACTIONS,
        "per_box": CAMERAS_PER_BOX,
    }
    timings = dict.fromkeys(("cases", "evidence", "sightings", "audit_events", "daily_stats", "analyze"), 0.0)
    began = time.perf_counter()
    for first in range(1, cases + 1, batch):
        bounds = {"first": first, "last": min(cases, first + batch - 1)}
        with engine.begin() as conn:
            for table, sql in (
                ("cases", _CASES),
                ("evidence", _EVIDENCE),
                ("sightings", _SIGHTINGS),
                ("audit_events", _AUDIT),
            ):
                started = time.perf_counter()
                conn.execute(text(sql), {**params, **bounds})
                timings[table] += time.perf_counter() - started
    started = time.perf_counter()
    with engine.begin() as conn:
        _after_explicit_ids(conn)
        rebuild(conn)  # the statistics' daily summary: the bulk INSERTs bypassed its flush listener
    timings["daily_stats"] = time.perf_counter() - started
    started = time.perf_counter()
    with engine.connect().execution_options(isolation_level="AUTOCOMMIT") as conn:
        conn.execute(text("VACUUM ANALYZE"))  # the visibility map too: index-only scans as in steady state
        counts = {t: conn.scalar(text(f"SELECT count(*) FROM {t}")) for t in ("sightings", "audit_events")}
    timings["analyze"] = time.perf_counter() - started
    return Generated(
        cases,
        int(counts["sightings"] or 0),
        int(counts["audit_events"] or 0),
        time.perf_counter() - began,
        {k: round(v, 2) for k, v in timings.items()},
    )


def _after_explicit_ids(conn: Connection) -> None:
    """Cases and evidence were inserted with explicit ids: move their sequences past them."""
    for table in ("cases", "evidence"):
        conn.execute(
            text(f"SELECT setval(pg_get_serial_sequence('{table}', 'id'), (SELECT max(id) FROM {table}))")
        )


def main(argv: Sequence[str] | None = None) -> Generated:
    parser = argparse.ArgumentParser(prog="city_cases", description=(__doc__ or "").split("\n")[0])
    parser.add_argument("--cases", type=int, default=1_000_000)
    parser.add_argument("--days", type=float, default=DAYS)
    parser.add_argument("--database-url", required=True, help="A migrated PostgreSQL case store.")
    args = parser.parse_args(argv)
    engine = create_engine(args.database_url)
    try:
        generated = generate(engine, args.cases, days=args.days)
    finally:
        engine.dispose()
    print(generated)
    return generated


if __name__ == "__main__":
    main()
