"""Case-store throughput and latency: case ingestion against a trivial endpoint on the same real server.

For each backend (SQLite in a scratch data directory; PostgreSQL in a scratch database on 127.0.0.1,
created and dropped by the run) and each worker count, a real uvicorn server is started as a
subprocess (``uvicorn api.app:create_app --factory --workers N``) on a migrated database holding the
default reference data, the benchmark's places and a device. Concurrent clients (httpx AsyncClient,
loopback only) then drive, in the same run and on the same server:

* ``trivial``: ``GET /api/v1/ping`` (no database, no auth): what the framework alone costs;
* ``ingest``: ``POST /api/v1/cases`` with device keys, each report with a distinct idempotency key;
  every ``--new-every``-th report opens a case for a fresh place x violation pair, the others are
  sightings of cases opened earlier (the counts of each are reported).

Each phase is bounded by ``--duration`` seconds and ``--max-requests``. Every latency sample is kept
(``time.perf_counter`` around each request); req/s, p50/p90/p99 and the ingest/trivial ratio of req/s
are reported per configuration. The target: ingestion reaches at least 40% of the trivial endpoint's
req/s on PostgreSQL. Results go to one JSON file per run and one CSV row per phase::

    .venv/bin/python -m benchmarks.bench_api --duration 10 --concurrency 16
    .venv/bin/python -m benchmarks.bench_api --backends postgresql --workers 1,2,4 --duration 20

The client runs on the same machine as the server: on a small box they compete for the CPUs, which
caps the trivial endpoint (the baseline) more than ingestion. ``cpu_count`` and the load are recorded.
"""

from __future__ import annotations

import argparse
import asyncio
import csv
import datetime as dt
import os
import platform
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from collections import Counter
from collections.abc import Awaitable, Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
from sqlalchemy import create_engine, text

from benchmarks.common import write_json

REPO = Path(__file__).resolve().parents[1]
PROG = "python -m benchmarks.bench_api"
CSV_NAME = "bench_api.csv"
TARGET_RATIO = 0.40  # on PostgreSQL: ingest req/s at least 40% of the trivial endpoint's
DEFAULT_PG = os.environ.get("STREETWATCH_BENCH_PG", "postgresql+psycopg://postgres@127.0.0.1:5432/test")
VIOLATION_TYPES = ("illegal_parking", "exposed_garbage")
CSV_FIELDS = (
    "timestamp",
    "backend",
    "workers",
    "phase",
    "concurrency",
    "duration_s",
    "requests",
    "errors",
    "rps",
    "p50_ms",
    "p90_ms",
    "p99_ms",
    "mean_ms",
    "ratio_to_trivial",
    "new_cases",
    "sightings",
    "cpu_count",
)


def parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="bench_api", description=(__doc__ or "").split("\n")[0])
    parser.add_argument(
        "--backends", default="sqlite,postgresql", help="Comma-separated: sqlite, postgresql."
    )
    parser.add_argument("--workers", default="1,2", help="Comma-separated uvicorn worker counts.")
    parser.add_argument(
        "--concurrency", type=int, default=16, help="Concurrent clients (in-flight requests)."
    )
    parser.add_argument("--duration", type=float, default=10.0, help="Seconds per timed phase.")
    parser.add_argument("--max-requests", type=int, default=100_000, help="Request cap per timed phase.")
    parser.add_argument("--warmup", type=float, default=1.0, help="Untimed seconds per phase before timing.")
    parser.add_argument(
        "--slots", type=int, default=1000, help="Fresh place x violation pairs per phase (new cases at most)."
    )
    parser.add_argument(
        "--new-every",
        type=int,
        default=4,
        help="Every N-th report opens a new case; the others are sightings.",
    )
    parser.add_argument(
        "--devices",
        type=int,
        default=0,
        help="Reporting devices, one per client loop in turn (0: one per client).",
    )
    parser.add_argument(
        "--pg-url", default=DEFAULT_PG, help="PostgreSQL admin URL (a scratch DB is made there)."
    )
    parser.add_argument("--startup-timeout", type=float, default=60.0, help="Seconds to wait for the server.")
    parser.add_argument("--out", type=Path, default=Path("benchmarks/results"), help="JSON and CSV folder.")
    parser.add_argument("--quiet", action="store_true", help="Do not print the table.")
    args = parser.parse_args(argv)
    args.backends = [b.strip() for b in args.backends.split(",") if b.strip()]
    args.workers = [int(w) for w in args.workers.split(",") if w.strip()]
    unknown = set(args.backends) - {"sqlite", "postgresql"}
    if unknown or not args.backends:
        parser.error(f"--backends: unknown {sorted(unknown)}; use sqlite and/or postgresql")
    if not args.workers or min(args.workers) < 1 or min(args.concurrency, args.slots, args.new_every) < 1:
        parser.error("--workers, --concurrency, --slots and --new-every must be positive")
    return args


# ---------------------------------------------------------------------------------------------------------
# Database and server set-up


def places_per_block(slots: int) -> int:
    return (slots + len(VIOLATION_TYPES) - 1) // len(VIOLATION_TYPES)


@dataclass
class Target:
    """A prepared case store: where it lives and the device key that reports to it."""

    backend: str
    env: dict[str, str]
    device_keys: list[str]
    place_keys: list[str]


@contextmanager
def scratch_database(backend: str, pg_url: str) -> Iterator[tuple[Path, str | None]]:
    """A data directory, plus for PostgreSQL a scratch database (dropped afterwards, also on error)."""
    data_dir = Path(tempfile.mkdtemp(prefix="sw-bench-"))
    if backend == "sqlite":
        try:
            yield data_dir, None
        finally:
            shutil.rmtree(data_dir, ignore_errors=True)
        return
    name = f"sw_bench_{os.getpid()}_{uuid.uuid4().hex[:8]}"
    admin = create_engine(pg_url, isolation_level="AUTOCOMMIT", pool_pre_ping=True)  # survives a restart
    with admin.connect() as connection:
        connection.execute(text(f'CREATE DATABASE "{name}"'))
    try:
        yield data_dir, pg_url.rsplit("/", 1)[0] + f"/{name}"
    finally:
        with admin.connect() as connection:
            connection.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
        admin.dispose()
        shutil.rmtree(data_dir, ignore_errors=True)


def prepare(backend: str, data_dir: Path, database_url: str | None, places: int, devices: int) -> Target:
    """Migrate, load the default reference data and the benchmark's places, register the devices."""
    from api.actors import SYSTEM
    from api.auth import create_device
    from api.config_import import DEFAULT_CONFIG, ReferenceConfig, import_config, import_file
    from api.db import make_engine, make_session_factory
    from api.migrate import upgrade
    from api.settings import Settings

    settings = Settings(data_dir=data_dir, database_url=database_url, _env_file=None)
    engine = make_engine(settings)
    upgrade(engine)
    place_keys = [f"bench-{i:05d}" for i in range(places)]
    city = ReferenceConfig.model_validate(
        {
            "units": [{"code": "bench-district", "name": "Benchmark district"}],
            "places": [{"key": key, "owner": "bench-district"} for key in place_keys],
        }
    )
    with make_session_factory(engine).begin() as session:
        import_file(session, DEFAULT_CONFIG, SYSTEM)
        import_config(session, city, SYSTEM, label="bench places")
        keys = [create_device(session, f"bench-box-{i:03d}").key for i in range(devices)]
    engine.dispose()
    env = {"STREETWATCH_DATA_DIR": str(data_dir), "STREETWATCH_PUBLIC_URL": "http://127.0.0.1"}
    if database_url:
        env["STREETWATCH_DATABASE_URL"] = database_url
    return Target(backend, env, keys, place_keys)


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


@contextmanager
def server(target: Target, workers: int, startup_timeout: float) -> Iterator[str]:
    """A uvicorn server on a free loopback port; yields its base URL; stopped (SIGINT, then kill) after."""
    port = free_port()
    env = {**os.environ, **target.env}
    if "STREETWATCH_DATABASE_URL" not in target.env:  # SQLite: never a URL inherited from the caller
        env.pop("STREETWATCH_DATABASE_URL", None)
    command = [
        sys.executable,
        "-m",
        "uvicorn",
        "api.app:create_app",
        "--factory",
        "--host",
        "127.0.0.1",
        "--port",
        str(port),
        "--workers",
        str(workers),
        "--no-access-log",
        "--log-level",
        "warning",
    ]
    process = subprocess.Popen(command, cwd=REPO, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    base = f"http://127.0.0.1:{port}"
    try:
        wait_ready(process, base, startup_timeout)
        yield base
    finally:
        stop(process)


def wait_ready(process: subprocess.Popen[bytes], base: str, timeout: float) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if process.poll() is not None:
            stderr = process.stderr.read().decode(errors="replace") if process.stderr else ""
            raise RuntimeError(f"server exited with {process.returncode}: {stderr[-2000:]}")
        try:
            if httpx.get(f"{base}/healthz", timeout=1.0).status_code == 200:
                return
        except httpx.HTTPError:
            pass
        time.sleep(0.2)
    raise RuntimeError(f"server at {base} not ready after {timeout:.0f} s")


def stop(process: subprocess.Popen[bytes]) -> None:
    if process.poll() is None:
        process.send_signal(signal.SIGINT)
        try:
            process.wait(timeout=15)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()
    if process.stderr:
        process.stderr.close()


# ---------------------------------------------------------------------------------------------------------
# Load generation

# (client, request sequence number, client loop index) -> response
Request = Callable[[httpx.AsyncClient, int, int], Awaitable[httpx.Response]]


@dataclass
class PhaseResult:
    latencies_ms: list[float] = field(default_factory=list)
    statuses: Counter[int] = field(default_factory=Counter)
    errors: list[str] = field(default_factory=list)
    new_cases: int = 0
    sightings: int = 0
    elapsed_s: float = 0.0


def trivial_request() -> Request:
    async def call(client: httpx.AsyncClient, _: int, __: int) -> httpx.Response:
        return await client.get("/api/v1/ping")

    return call


def pick_slot(sequence: int, new_every: int, slots: int, lag: int) -> int:
    """The place x violation slot of report ``sequence``: every ``new_every``-th report opens the next
    fresh slot (while any is left), the others are sightings spread over slots opened at least ``lag``
    groups earlier (so that their case is already stored, not still being created)."""
    group = sequence // new_every
    if sequence % new_every == 0 and group < slots:
        return group
    settled = min(group - lag, slots)
    return 0 if settled <= 0 else (sequence * 7919) % settled


def ingest_request(target: Target, run_id: str, args: argparse.Namespace, block: int) -> Request:
    """Reports on the fresh places of block ``block``, a mix of new cases and sightings (:func:`pick_slot`),
    each with its own idempotency key, from the devices in turn."""
    places = target.place_keys[block * places_per_block(args.slots) :]
    pairs = [
        (places[i // len(VIOLATION_TYPES)], VIOLATION_TYPES[i % len(VIOLATION_TYPES)])
        for i in range(args.slots)
    ]
    headers = [{"X-Device-Key": key} for key in target.device_keys]

    async def call(client: httpx.AsyncClient, sequence: int, loop: int) -> httpx.Response:
        place, violation = pairs[pick_slot(sequence, args.new_every, args.slots, lag=args.concurrency)]
        now = dt.datetime.now(dt.UTC)
        report = {
            "idempotency_key": f"bench-{run_id}-{sequence:08d}",
            "camera": "bench-cam-1",
            "zone": f"zone-{place}",
            "place": place,
            "violation_type": violation,
            "first_seen_at": (now - dt.timedelta(seconds=90)).isoformat(),
            "confirmed_at": now.isoformat(),
            "confidence": 0.8,
            "boxes": [{"xyxy": [100.0, 200.0, 300.0, 400.0], "confidence": 0.8, "class_name": "car"}],
            "model_name": "bench",
            "model_version": "1",
        }
        return await client.post("/api/v1/cases", json=report, headers=headers[loop % len(headers)])

    return call


async def drive(base: str, request: Request, *, concurrency: int, duration: float, limit: int) -> PhaseResult:
    """``concurrency`` loops issuing requests until ``duration`` seconds or ``limit`` requests."""
    result = PhaseResult()
    counter = iter(range(limit))
    limits = httpx.Limits(max_connections=concurrency, max_keepalive_connections=concurrency)
    async with httpx.AsyncClient(base_url=base, limits=limits, timeout=30.0) as client:
        began = time.perf_counter()
        deadline = began + duration

        async def loop(index: int) -> None:
            for sequence in counter:
                if time.perf_counter() >= deadline:
                    return
                t0 = time.perf_counter()
                try:
                    response = await request(client, sequence, index)
                except httpx.HTTPError as exc:
                    result.errors.append(f"{type(exc).__name__}: {exc}")
                    continue
                result.latencies_ms.append((time.perf_counter() - t0) * 1000)
                result.statuses[response.status_code] += 1
                if response.status_code == 201:
                    result.new_cases += 1
                elif response.status_code == 200 and response.request.method == "POST":
                    result.sightings += 1

        await asyncio.gather(*(loop(index) for index in range(concurrency)))
        result.elapsed_s = time.perf_counter() - began
    return result


def percentile(sorted_ms: list[float], q: float) -> float:
    if not sorted_ms:
        return float("nan")
    index = min(len(sorted_ms) - 1, max(0, round(q / 100 * (len(sorted_ms) - 1))))
    return sorted_ms[index]


def summarise(result: PhaseResult) -> dict[str, Any]:
    ok = sum(n for status, n in result.statuses.items() if 200 <= status < 300)
    samples = sorted(result.latencies_ms)
    return {
        "requests": ok,
        "errors": len(result.errors) + sum(n for status, n in result.statuses.items() if status >= 300),
        "statuses": {str(k): v for k, v in sorted(result.statuses.items())},
        "error_examples": result.errors[:5],
        "duration_s": result.elapsed_s,
        "rps": ok / result.elapsed_s if result.elapsed_s > 0 else 0.0,
        "p50_ms": percentile(samples, 50),
        "p90_ms": percentile(samples, 90),
        "p99_ms": percentile(samples, 99),
        "mean_ms": statistics.fmean(samples) if samples else float("nan"),
        "new_cases": result.new_cases,
        "sightings": result.sightings,
        "samples_ms": [round(s, 3) for s in result.latencies_ms],
    }


def run_phase(base: str, warmup: Request, timed: Request, args: argparse.Namespace) -> dict[str, Any]:
    if args.warmup > 0:
        asyncio.run(drive(base, warmup, concurrency=args.concurrency, duration=args.warmup, limit=10**9))
    result = asyncio.run(
        drive(base, timed, concurrency=args.concurrency, duration=args.duration, limit=args.max_requests)
    )
    return summarise(result)


def run_configuration(target: Target, workers: int, index: int, args: argparse.Namespace) -> dict[str, Any]:
    """One server: the trivial phase, then the ingest phase, on the same server process. Configuration
    ``index`` reports on its own place blocks (2 * index for the warm-up, 2 * index + 1 timed)."""
    run_id = uuid.uuid4().hex[:8]
    warm_ingest = ingest_request(target, f"{run_id}w", args, block=2 * index)
    timed_ingest = ingest_request(target, run_id, args, block=2 * index + 1)
    with server(target, workers, args.startup_timeout) as base:
        trivial = run_phase(base, trivial_request(), trivial_request(), args)
        ingest = run_phase(base, warm_ingest, timed_ingest, args)
    ratio = ingest["rps"] / trivial["rps"] if trivial["rps"] else float("nan")
    return {
        "backend": target.backend,
        "workers": workers,
        "trivial": trivial,
        "ingest": ingest,
        "ratio": ratio,
    }


# ---------------------------------------------------------------------------------------------------------
# Report


def machine_info() -> dict[str, Any]:
    return {
        "cpu_count": os.cpu_count(),
        "platform": platform.platform(),
        "python": platform.python_version(),
        "loadavg_1m_start": os.getloadavg()[0],
    }


def target_check(runs: list[dict[str, Any]]) -> dict[str, Any]:
    postgres = [r for r in runs if r["backend"] == "postgresql"]
    return {
        "target_ratio": TARGET_RATIO,
        "postgresql": {
            str(r["workers"]): {"ratio": r["ratio"], "met": r["ratio"] >= TARGET_RATIO} for r in postgres
        },
    }


def append_csv(out: Path, document: dict[str, Any]) -> Path:
    path = out / CSV_NAME
    new = not path.exists()
    config = document["config"]
    with path.open("a", newline="", encoding="utf-8") as handle:
        writer = csv.DictWriter(handle, fieldnames=CSV_FIELDS)
        if new:
            writer.writeheader()
        for run in document["runs"]:
            for phase in ("trivial", "ingest"):
                s = run[phase]
                writer.writerow(
                    {
                        "timestamp": document["timestamp"],
                        "backend": run["backend"],
                        "workers": run["workers"],
                        "phase": phase,
                        "concurrency": config["concurrency"],
                        "duration_s": f"{s['duration_s']:.2f}",
                        "requests": s["requests"],
                        "errors": s["errors"],
                        "rps": f"{s['rps']:.1f}",
                        "p50_ms": f"{s['p50_ms']:.2f}",
                        "p90_ms": f"{s['p90_ms']:.2f}",
                        "p99_ms": f"{s['p99_ms']:.2f}",
                        "mean_ms": f"{s['mean_ms']:.2f}",
                        "ratio_to_trivial": f"{run['ratio']:.3f}" if phase == "ingest" else "",
                        "new_cases": s["new_cases"],
                        "sightings": s["sightings"],
                        "cpu_count": document["machine"]["cpu_count"],
                    }
                )
    return path


def format_table(document: dict[str, Any]) -> str:
    config, machine = document["config"], document["machine"]
    lines = [
        f"{config['concurrency']} concurrent clients, {config['duration_s']:g} s per phase, "
        f"{machine['cpu_count']} CPUs (client and server share them)",
        "| backend | workers | endpoint | req/s | p50 ms | p99 ms | errors | ingest/trivial | new/sighting |",
        "|---|---:|---|---:|---:|---:|---:|---:|---|",
    ]
    for run in document["runs"]:
        for phase in ("trivial", "ingest"):
            s = run[phase]
            ratio = f"{run['ratio']:.2f}" if phase == "ingest" else ""
            mix = f"{s['new_cases']} / {s['sightings']}" if phase == "ingest" else ""
            lines.append(
                f"| {run['backend']} | {run['workers']} | {phase} | {s['rps']:.0f} | {s['p50_ms']:.1f} | "
                f"{s['p99_ms']:.1f} | {s['errors']} | {ratio} | {mix} |"
            )
    for workers, verdict in document["target"]["postgresql"].items():
        met = "met" if verdict["met"] else "NOT met"
        lines.append(
            f"PostgreSQL, {workers} worker(s): ingest/trivial {verdict['ratio']:.2f} "
            f"(target >= {TARGET_RATIO:.2f}: {met})"
        )
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> dict[str, Any]:
    """Run the benchmark, write JSON and CSV into ``--out``, print a table, return the JSON document."""
    args = parse_args(argv)
    machine = machine_info()
    places = places_per_block(args.slots) * 2 * len(args.workers)
    runs = []
    for backend in args.backends:
        with scratch_database(backend, args.pg_url) as (data_dir, database_url):
            target = prepare(backend, data_dir, database_url, places, args.devices or args.concurrency)
            for index, workers in enumerate(args.workers):
                runs.append(run_configuration(target, workers, index, args))
    document: dict[str, Any] = {
        "benchmark": "bench_api",
        "timestamp": dt.datetime.now(dt.UTC).isoformat(timespec="milliseconds"),
        "command": " ".join([PROG, *(sys.argv[1:] if argv is None else argv)]),
        "machine": {**machine, "loadavg_1m_end": os.getloadavg()[0]},
        "config": {
            "backends": args.backends,
            "workers": args.workers,
            "concurrency": args.concurrency,
            "duration_s": args.duration,
            "max_requests": args.max_requests,
            "warmup_s": args.warmup,
            "slots": args.slots,
            "new_every": args.new_every,
            "devices": args.devices or args.concurrency,
            "trivial": "GET /api/v1/ping",
            "ingest": "POST /api/v1/cases",
        },
        "runs": runs,
        "target": target_check(runs),
    }
    args.out.mkdir(parents=True, exist_ok=True)
    document["json_path"] = str(write_json(args.out, "bench_api", document))
    document["csv_path"] = str(append_csv(args.out, document))
    if not args.quiet:
        print(format_table(document))
    return document


if __name__ == "__main__":
    main()
