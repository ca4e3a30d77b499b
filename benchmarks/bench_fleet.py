"""A fleet of simulated edge boxes against one case store: how many cameras one store holds.

Each simulated box (:mod:`benchmarks.fleet_box`) runs the daemon's own store code: the durable outbox and
its pusher (reports, incident updates, evidence uploads), zone/configuration polling with ETags and
snapshot uploads (StoreSync), camera health (CameraHealthReporter) and the verification poll, on one
StoreClient. An incident driver per simulator process stands in for the cameras and the detector: it puts
into the outboxes what the rules stage would, at the rates of :class:`CityModel` (real per-second rates,
never time-compressed). Evidence and snapshots are JPEGs rendered by the daemon's evidence code from real
CCTV frames (Debian's vtest.avi, or shared/data's parking-lot clip) scaled to 1080p.

Per step of the sweep (``--cameras``) the boxes start with staggered phases, first deliver the reports of
the incidents already going on (the steady state: their later sightings and ends fall in the window), then
the timed window runs for ``--duration`` seconds. Reported per step: requests/s, p50/p99 latency and
errors by kind, the store's CPU and memory (psutil on the ``api serve`` processes), PostgreSQL size growth
and evidence bytes per camera-day, and whether the outboxes kept up. The store is ``streetwatch api serve
--workers 2`` on a scratch PostgreSQL database with MQTT (127.0.0.1:1883) and webhooks (a local receiver)
on and its background jobs running. ``--restart store|postgres`` restarts the store (or a private
PostgreSQL the run starts itself) halfway through each window and then checks that every report and update
put into the outboxes reached the store exactly once::

    .venv/bin/python -m benchmarks.bench_fleet --cameras 1000,2000,5000,10000,20000 --duration 60
    .venv/bin/python -m benchmarks.bench_fleet --cameras 500 --duration 60 --restart store
"""

from __future__ import annotations

import argparse
import datetime as dt
import heapq
import http.server
import json
import math
import multiprocessing as mp
import os
import queue
import random
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from collections import Counter
from collections.abc import Iterator, Sequence
from contextlib import contextmanager, suppress
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path
from typing import Any

import psutil
from sqlalchemy import create_engine, text

from benchmarks.bench_api import free_port, percentile, scratch_database, wait_ready
from benchmarks.common import cpu_model, pyplot, save_figure, write_json
from benchmarks.fleet_box import KINDS, BoxSpec, Incident, Sample, SimBox

REPO = Path(__file__).resolve().parents[1]
PROG = "python -m benchmarks.bench_fleet"
DEFAULT_PG = os.environ.get("STREETWATCH_BENCH_PG", "postgresql+psycopg://postgres@127.0.0.1:5432/test")
VTEST = Path("/usr/share/doc/opencv-doc/examples/data/vtest.avi")
LOT_CLIP = REPO.parent / "shared" / "data" / "videos" / "car-detection.mp4"
P99_LIMIT_MS = 1000.0
RULES = {
    "illegal_parking": {"dwell_s": 300},
    "exposed_garbage": {"dwell_s": 600},
    "street_stall": {"dwell_s": 120},
}
INITDB_OPTIONS = ("--auth=trust", "-E", "UTF8", "--no-sync")
UNITS = 20
AUTO_FILED = ("0505", "0102", "0501")  # the default codes of the three types: filed and dispatched at once


def _daemon_default(model: type[Any], name: str) -> float:
    return float(model.model_fields[name].default)


@dataclass(frozen=True)
class CityModel:
    """One city camera's traffic to the store (the defaults are the daemon's own intervals)."""

    incidents_per_day: dict[str, float]  # pipeline violation type -> confirmed incidents per camera-day
    incident_minutes: float  # mean incident duration (exponential)
    sighting_report_s: float  # incidents.sighting_report_s
    sighting_picture_share: float  # share of sighting updates that carry a better view
    health_report_s: float  # store.health_report_s
    snapshot_s: float  # store.snapshot_s (how often the picture is looked at)
    snapshot_unchanged_s: float  # store.snapshot_unchanged_s (a still scene's upload interval)
    zone_sync_s: float  # store.zone_sync_s
    verification_s: float  # verification.poll_interval_s
    cameras_per_box: int
    old_protocol: bool = False  # health per camera, a snapshot every snapshot_s (before the batch route)

    @property
    def incidents_per_camera_s(self) -> float:
        return sum(self.incidents_per_day.values()) / 86400.0

    def per_camera_day(self) -> dict[str, float]:
        """Expected requests per camera-day by kind (the model written out)."""
        incidents = sum(self.incidents_per_day.values())
        sightings = incidents * (self.incident_minutes * 60 / self.sighting_report_s)  # while it goes on
        return {
            "report": incidents,
            "update": sightings + incidents,  # later sightings + the end
            "evidence": incidents * 3 + sightings * self.sighting_picture_share,
            "health": 86400 / self.health_report_s / (1 if self.old_protocol else self.cameras_per_box),
            # the cameras look at still scenes (see Driver): the policy sends one per snapshot_unchanged_s
            "snapshot": 86400
            / (self.snapshot_s if self.old_protocol else max(self.snapshot_s, self.snapshot_unchanged_s)),
            "config": 86400 / self.zone_sync_s / self.cameras_per_box,
            "verification": 86400 / self.verification_s / self.cameras_per_box,
        }


def default_model(args: argparse.Namespace) -> CityModel:
    from pipeline.config import IncidentConfig, StoreConfig, VerificationConfig

    weights = {}
    for item in args.incidents_per_day.split(","):
        name, _, value = item.partition("=")
        weights[name.strip()] = float(value)
    return CityModel(
        incidents_per_day=weights,
        incident_minutes=args.incident_minutes,
        sighting_report_s=args.sighting_s or _daemon_default(IncidentConfig, "sighting_report_s"),
        sighting_picture_share=args.sighting_picture_share,
        health_report_s=args.health_s or _daemon_default(StoreConfig, "health_report_s"),
        snapshot_s=args.snapshot_s or _daemon_default(StoreConfig, "snapshot_s"),
        snapshot_unchanged_s=args.snapshot_unchanged_s
        or _daemon_default(StoreConfig, "snapshot_unchanged_s"),
        zone_sync_s=args.zone_sync_s or _daemon_default(StoreConfig, "zone_sync_s"),
        verification_s=args.verification_s or _daemon_default(VerificationConfig, "poll_interval_s"),
        cameras_per_box=args.cameras_per_box,
        old_protocol=args.old_protocol,
    )


def parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="bench_fleet", description=(__doc__ or "").split("\n")[0])
    parser.add_argument(
        "--cameras", default="1000,2000,5000,10000,20000", help="Comma-separated fleet sizes."
    )
    parser.add_argument("--duration", type=float, default=60.0, help="Timed seconds per step.")
    parser.add_argument(
        "--prime-timeout", type=float, default=120.0, help="Most seconds to deliver the backlog."
    )
    parser.add_argument(
        "--cameras-per-box", type=int, default=24, help="Cameras per edge box (measured: 24)."
    )
    parser.add_argument(
        "--incidents-per-day",
        default="illegal_parking=8,exposed_garbage=2,street_stall=2",
        help="Confirmed incidents per camera-day by violation type.",
    )
    parser.add_argument("--incident-minutes", type=float, default=30.0, help="Mean incident duration.")
    parser.add_argument(
        "--sighting-s", type=float, default=0.0, help="Sighting report interval (0: daemon's)."
    )
    for name in (
        "health",
        "snapshot",
        "snapshot-unchanged",
        "zone-sync",
        "verification",
    ):  # smoke tests only: faster than real
        parser.add_argument(
            f"--{name}-s", type=float, default=0.0, help=f"{name} interval (0: the daemon's)."
        )
    parser.add_argument("--sighting-picture-share", type=float, default=0.25)
    parser.add_argument(
        "--compare-old",
        default="",
        help="Comma-separated fleet sizes also run first with --old-protocol (the same store and city).",
    )
    parser.add_argument(
        "--old-protocol",
        action="store_true",
        help="Boxes as before the batch route: health per camera, a snapshot every --snapshot-s.",
    )
    parser.add_argument(
        "--processes", type=int, default=2, help="Simulator processes (boxes split among them)."
    )
    parser.add_argument("--workers", type=int, default=2, help="api serve --workers.")
    parser.add_argument("--restart", choices=("none", "store", "postgres"), default="none")
    parser.add_argument(
        "--drain-timeout", type=float, default=120.0, help="With --restart: wait for outboxes."
    )
    parser.add_argument(
        "--store-log", type=Path, default=None, help="Keep the store's log here (default: a scratch file)."
    )
    parser.add_argument("--keep-going", action="store_true", help="Run larger steps after a failed one.")
    parser.add_argument(
        "--pg-url", default=DEFAULT_PG, help="PostgreSQL admin URL (a scratch DB is made there)."
    )
    parser.add_argument("--out", type=Path, default=Path("benchmarks/results"), help="JSON and PNG folder.")
    parser.add_argument("--quiet", action="store_true")
    args = parser.parse_args(argv)
    try:
        args.cameras = sorted(int(c) for c in args.cameras.split(",") if c.strip())
    except ValueError:
        parser.error(f"--cameras: expected comma-separated integers, got {args.cameras!r}")
    try:
        args.compare_old = {int(c) for c in args.compare_old.split(",") if c.strip()}
    except ValueError:
        parser.error(f"--compare-old: expected comma-separated integers, got {args.compare_old!r}")
    if not args.compare_old <= set(args.cameras):
        parser.error(f"--compare-old {sorted(args.compare_old)}: each must be one of --cameras")
    if not args.cameras or args.cameras[0] < 1 or args.cameras_per_box < 1 or args.processes < 1:
        parser.error("--cameras, --cameras-per-box and --processes must be positive")
    return args


# ---------------------------------------------------------------------------------------------------------
# Real pictures: evidence and snapshots rendered by the daemon's code from CCTV frames scaled to 1080p


def footage() -> Path:
    for path in (VTEST, LOT_CLIP):
        if path.is_file():
            return path
    raise FileNotFoundError(
        f"no footage for evidence images: install opencv-doc ({VTEST}) or provide {LOT_CLIP}"
    )


def picture_pool(workdir: Path, frames: int = 6) -> dict[str, list[bytes]]:
    """JPEG bytes by kind (first_seen, confirmation, crop, sighting, snapshot) from ``frames`` real frames."""
    import cv2
    import numpy as np

    from detector.detections import Detections
    from pipeline.config import EvidenceConfig
    from pipeline.evidence import render_evidence
    from pipeline.store_sync import encode_snapshot

    capture = cv2.VideoCapture(str(footage()))
    total = int(capture.get(cv2.CAP_PROP_FRAME_COUNT)) or 100
    pool: dict[str, list[bytes]] = {
        k: [] for k in ("first_seen", "confirmation", "crop", "frame", "sighting", "snapshot")
    }
    config = EvidenceConfig(dir=workdir / "pool")
    box = np.array([[1380.0, 90.0, 1760.0, 330.0]], np.float32)  # the parked van, top right
    boxes = Detections(xyxy=box, confidence=np.array([0.8], np.float32), class_id=np.array([2], np.int64))
    polygon = np.array([[1300, 60], [1900, 60], [1900, 420], [1300, 420]], np.int32)
    for index in range(frames):
        capture.set(cv2.CAP_PROP_POS_FRAMES, index * total // frames)
        ok, raw = capture.read()
        if not ok:
            continue
        frame = np.asarray(cv2.resize(raw, (1920, 1080), interpolation=cv2.INTER_LINEAR), np.uint8)
        for kind in ("first_seen", "confirmed"):
            event = _Event(kind, boxes, polygon)
            for written_kind, path in render_evidence(
                frame, event, boxes, ["person", "bicycle", "car"], config
            ):
                pool["sighting" if written_kind == "first_seen" and index % 2 else written_kind].append(
                    path.read_bytes()
                )
        pool["snapshot"].append(encode_snapshot(frame, np.zeros((0, 4), np.float32), blur=True))
    capture.release()
    pool["sighting"] = pool["sighting"] or pool["first_seen"]
    if not all(pool.values()):
        raise RuntimeError(f"could not render evidence from {footage()}")
    return pool


@dataclass(frozen=True)
class _Event:
    kind: str
    boxes: Any
    polygon_px: Any
    camera_id: str = "cam-00000"
    zone_id: str = "z1"
    violation_type: str = "illegal_parking"
    at: dt.datetime = dt.datetime(2026, 12, 1, 9, 30, tzinfo=dt.UTC)
    zones_px: tuple[Any, ...] = ()


# ---------------------------------------------------------------------------------------------------------
# The store: scratch database, city, devices, webhook receiver, api serve


def camera_code(index: int) -> str:
    return f"cam-{index:05d}"


def place_key(index: int) -> str:
    return f"pl-{index:05d}"


class City:
    """The store's city: the default reference data, units with webhooks, auto-filed violation types, and
    cameras added step by step (:meth:`grow`): one zone each on its own place, one device per
    ``per_box`` cameras (its key kept for the simulated box)."""

    def __init__(self, database_url: str, data_dir: Path, per_box: int, webhook: str) -> None:
        from sqlalchemy import update

        from api.actors import SYSTEM
        from api.config_import import DEFAULT_CONFIG, ReferenceConfig, import_config, import_file
        from api.db import make_engine, make_session_factory
        from api.migrate import upgrade
        from api.models import Unit, ViolationType
        from api.settings import Settings

        self.engine = make_engine(Settings(data_dir=data_dir, database_url=database_url, _env_file=None))
        upgrade(self.engine)
        self.sessions = make_session_factory(self.engine)
        self.per_box = per_box
        self.cameras = 0
        self.keys: list[str] = []
        units = [{"code": "district", "name": "Fleet district", "kind": "district"}] + [
            {
                "code": f"street-{u:02d}",
                "name": f"Street office {u}",
                "kind": "street_office",
                "parent": "district",
            }
            for u in range(UNITS)
        ]
        with self.sessions.begin() as session:
            import_file(session, DEFAULT_CONFIG, SYSTEM)
            import_config(
                session, ReferenceConfig.model_validate({"units": units}), SYSTEM, label="fleet units"
            )
            session.execute(update(Unit).values(webhook_url=webhook, webhook_secret="fleet-webhook-secret"))
            session.execute(
                update(ViolationType)
                .where(ViolationType.code.in_(AUTO_FILED))
                .values(auto_file=True, auto_file_min_confidence=0.5)
            )

    def grow(self, cameras: int) -> list[BoxSpec]:
        """Register cameras up to ``cameras`` (and their devices); the boxes of the first ``cameras``."""
        from api.actors import SYSTEM
        from api.auth import create_device
        from api.config_import import ReferenceConfig, import_config

        boxes = math.ceil(cameras / self.per_box)
        if cameras > self.cameras:
            polygon = [[0.6, 0.05], [0.99, 0.05], [0.99, 0.4], [0.6, 0.4]]
            new = range(self.cameras, cameras)
            with self.sessions.begin() as session:
                self.keys += [
                    create_device(session, f"box-{b:04d}").key for b in range(len(self.keys), boxes)
                ]
                city = ReferenceConfig.model_validate(
                    {
                        "places": [{"key": place_key(i), "owner": f"street-{i % UNITS:02d}"} for i in new],
                        "cameras": [
                            {
                                "code": camera_code(i),
                                "device": f"box-{i // self.per_box:04d}",
                                "zones": [
                                    {"code": "z1", "place": place_key(i), "polygon": polygon, "rules": RULES}
                                ],
                            }
                            for i in new
                        ],
                    }
                )
                import_config(session, city, SYSTEM, label=f"fleet cameras up to {cameras}")
            self.cameras = cameras
        specs = []
        for b in range(boxes):
            indices = range(b * self.per_box, min((b + 1) * self.per_box, cameras))
            specs.append(
                BoxSpec(
                    f"box-{b:04d}",
                    self.keys[b],
                    tuple(map(camera_code, indices)),
                    tuple(map(place_key, indices)),
                )
            )
        return specs

    def close(self) -> None:
        self.engine.dispose()


class WebhookReceiver:
    """The units' webhook endpoint: counts deliveries and answers 204."""

    def __init__(self) -> None:
        self.received = 0
        receiver = self

        class Handler(http.server.BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                self.rfile.read(int(self.headers.get("Content-Length", "0")))
                receiver.received += 1
                self.send_response(204)
                self.end_headers()

            def log_message(self, *_: Any) -> None:
                return

        self.server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}/hook"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


class Store:
    """``streetwatch api serve --workers N`` as a subprocess; restartable on the same port."""

    def __init__(self, env: dict[str, str], workers: int, log_path: Path) -> None:
        self.env = {**os.environ, **env}
        self.workers = workers
        self.log_path = log_path  # the store's stderr, appended across restarts
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.process: subprocess.Popen[bytes] | None = None
        self.repo = REPO  # the checkout whose store runs (benchmarks.fleet_cost measures an older one)

    def start(self) -> None:
        command = [sys.executable, "-m", "streetwatch", "api", "serve", "--host", "127.0.0.1"]
        command += ["--port", str(self.port), "--workers", str(self.workers)]
        # A file, not a pipe: nobody reads a pipe during the run, and once its 64 kB buffer is full
        # (a burst of error logs, e.g. while PostgreSQL restarts) every worker blocks in its next log
        # write and the store stops answering altogether.
        with self.log_path.open("ab") as log_file:
            self.process = subprocess.Popen(
                command, cwd=self.repo, env=self.env, stdout=subprocess.DEVNULL, stderr=log_file
            )
        try:
            wait_ready(self.process, self.url, 90.0)
        except RuntimeError as exc:
            tail = self.log_path.read_text(errors="replace")[-2000:]
            raise RuntimeError(f"{exc}; the store's log {self.log_path} ends with:\n{tail}") from exc

    def stop(self) -> None:
        if self.process is None:
            return
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGINT)
            try:
                self.process.wait(timeout=20)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
        self.process = None

    def processes(self) -> list[psutil.Process]:
        if self.process is None:
            return []
        try:
            parent = psutil.Process(self.process.pid)
            return [parent, *parent.children(recursive=True)]
        except psutil.NoSuchProcess:
            return []


def cpu_seconds(processes: Sequence[psutil.Process]) -> float:
    total = 0.0
    for process in processes:
        try:
            times = process.cpu_times()
            total += times.user + times.system
        except psutil.NoSuchProcess:
            pass
    return total


def rss_mb(processes: Sequence[psutil.Process]) -> float:
    total = 0
    for process in processes:
        with suppress(psutil.NoSuchProcess):
            total += process.memory_info().rss
    return total / 1e6


@contextmanager
def private_postgres(workdir: Path) -> Iterator[tuple[str, Path, Path]]:
    """A PostgreSQL of this run's own (never the shared one): yields its admin URL, bin dir and data dir."""
    bins = sorted(Path("/usr/lib/postgresql").glob("*/bin"), key=lambda p: float(p.parent.name))
    if not bins:
        raise RuntimeError("no PostgreSQL under /usr/lib/postgresql/*/bin (apt-get install postgresql)")
    pg_bin, data = bins[-1], workdir / "pg"
    data.mkdir()
    as_postgres = ["runuser", "-u", "postgres", "--"] if os.geteuid() == 0 else []
    if os.geteuid() == 0:
        shutil.chown(workdir, "postgres", "postgres")
        shutil.chown(data, "postgres", "postgres")
    port = free_port()
    subprocess.run(
        [*as_postgres, str(pg_bin / "initdb"), "-D", str(data / "data"), "-U", "postgres", *INITDB_OPTIONS],
        check=True,
        capture_output=True,
    )
    ctl = [*as_postgres, str(pg_bin / "pg_ctl"), "-D", str(data / "data"), "-l", str(data / "log"), "-w"]
    options = f"-p {port} -k /tmp -c listen_addresses=127.0.0.1"
    subprocess.run([*ctl, "-o", options, "start"], check=True, stdout=subprocess.DEVNULL)
    try:
        yield f"postgresql+psycopg://postgres@127.0.0.1:{port}/postgres", pg_bin, data / "data"
    finally:
        subprocess.run([*ctl, "-m", "fast", "stop"], check=False, stdout=subprocess.DEVNULL)


def restart_postgres(pg_bin: Path, data: Path) -> None:
    """``pg_ctl restart -m fast`` (its log to a file: a pipe would be held open by the new postmaster)."""
    as_postgres = ["runuser", "-u", "postgres", "--"] if os.geteuid() == 0 else []
    ctl = [*as_postgres, str(pg_bin / "pg_ctl"), "-D", str(data), "-l", str(data.parent / "log"), "-w"]
    subprocess.run(
        [*ctl, "-m", "fast", "restart"], check=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
    )


# ---------------------------------------------------------------------------------------------------------
# The simulator processes


@dataclass
class WorkerResult:
    samples: list[Sample] = field(default_factory=list)
    keys: list[str] = field(default_factory=list)  # reports and updates put in the timed window
    primed: int = 0  # reports of incidents already going on, delivered before the window
    pending_at_end: int = 0
    drain_s: float = 0.0  # after the window, until every outbox was empty (with a restart)
    failed_items: int = 0
    verification_errors: int = 0
    cpu_s: float = 0.0


def run_worker(
    specs: list[BoxSpec],
    url: str,
    model: CityModel,
    seed: int,
    ready: Any,
    go: Any,
    stop: Any,
    timeouts: tuple[float, float],
    results: Any,
) -> None:
    """One simulator process: its boxes, their backlog, then the live incident driver until ``stop``."""
    import logging

    logging.basicConfig(level=logging.ERROR)
    rng = random.Random(seed)
    prime_s, drain_s = timeouts
    workdir = Path(tempfile.mkdtemp(prefix="sw-fleet-"))
    result = WorkerResult()
    pool = picture_pool(workdir)
    boxes = [
        SimBox(
            spec,
            url,
            workdir,
            result.samples,
            zone_sync_s=model.zone_sync_s,
            health_s=model.health_report_s,
            verification_s=model.verification_s,
            snapshot_s=model.snapshot_s,
            snapshot_unchanged_s=model.snapshot_unchanged_s,
            rng=random.Random(rng.random()),
            old_protocol=model.old_protocol,
        )
        for spec in specs
    ]
    cameras = [
        (box, cam, place)
        for box in boxes
        for cam, place in zip(box.spec.cameras, box.spec.places, strict=True)
    ]
    run = uuid.uuid4().hex[:8]
    driver = Driver(cameras, model, pool, rng, run, result)
    for box in boxes:
        box.start()
    driver.prime()
    deadline = time.monotonic() + prime_s
    while time.monotonic() < deadline and pending(boxes):
        time.sleep(0.5)
    ready.put(pending(boxes))
    go.wait()
    result.samples.clear()  # only the window's (the parent also filters by time)
    began = time.process_time()
    driver.live(stop)
    if drain_s > 0:  # with a restart: wait until every outbox is empty (or the timeout)
        drain_began = time.monotonic()
        deadline = drain_began + drain_s
        while time.monotonic() < deadline and pending(boxes):
            time.sleep(0.5)
        result.drain_s = time.monotonic() - drain_began
    result.pending_at_end = pending(boxes)
    result.failed_items = sum(len(box.outbox.failed()) for box in boxes)
    result.verification_errors = sum(box.verification_errors for box in boxes)
    result.cpu_s = time.process_time() - began
    for box in boxes:
        box.stop()
    results.put(asdict(result))
    shutil.rmtree(workdir, ignore_errors=True)


def pending(boxes: Sequence[SimBox]) -> int:
    return sum(box.outbox.pending_count() for box in boxes)


class Driver:
    """Stands in for the cameras and the rules stage: incidents as a Poisson process over the cameras, each
    with its report (first_seen, confirmation, crop), sightings every ``sighting_report_s`` while it goes on
    and its end; snapshots offered to the store sync every ``snapshot_s`` per camera."""

    def __init__(
        self,
        cameras: list[tuple[SimBox, str, str]],
        model: CityModel,
        pool: dict[str, list[bytes]],
        rng: random.Random,
        run: str,
        result: WorkerResult,
    ) -> None:
        self.cameras, self.model, self.pool, self.rng, self.run, self.result = (
            cameras,
            model,
            pool,
            rng,
            run,
            result,
        )
        # what each camera sees when the daemon looks at it for a snapshot: the same street, other people
        # (real frames spread over the clip: their thumbnails differ by 4-8 grey levels, no change)
        self.frames = [_small(jpeg) for jpeg in pool["snapshot"]]
        self.looks = 0
        self.types = list(model.incidents_per_day)
        self.weights = [model.incidents_per_day[t] for t in self.types]
        self.heap: list[tuple[float, int, str, Any]] = []
        self.seq = 0
        self.ongoing: list[tuple[SimBox, Incident]] = []

    def _at(self, when: float, what: str, payload: Any) -> None:
        self.seq += 1
        heapq.heappush(self.heap, (when, self.seq, what, payload))

    def _incident(self, index: int) -> tuple[SimBox, Incident]:
        box, camera, place = self.cameras[index]
        self.seq += 1
        violation = self.rng.choices(self.types, self.weights)[0]
        return box, Incident(f"fleet-{self.run}-{camera}-{self.seq}", camera, place, violation)

    def prime(self) -> None:
        """The incidents going on when the window opens (Little's law: rate x mean duration per camera):
        their reports now, without pictures (those went earlier); sightings and ends in the window."""
        mean = self.model.incidents_per_camera_s * self.model.incident_minutes * 60 * len(self.cameras)
        for _ in range(_poisson(self.rng, mean)):
            box, incident = self._incident(self.rng.randrange(len(self.cameras)))
            box.report(incident, (), RULES[incident.violation]["dwell_s"])
            self.ongoing.append((box, incident))
        self.result.primed = len(self.ongoing)

    def _prime_snapshots(self, index: int, last_look: float, now: float) -> None:
        """A box that has been running: its policy sent the camera's last snapshot at a uniform phase of
        ``snapshot_unchanged_s`` before the window and last looked one look interval before the first
        look of the window (else every camera's first frame would be uploaded in the window: a start-up
        burst, not the steady state). Through the policy's own ``decide`` with past times."""
        box, camera, _ = self.cameras[index]
        frame = self.frames[index % len(self.frames)]
        sent = now - self.rng.uniform(0, max(self.model.snapshot_unchanged_s, self.model.snapshot_s))
        box.snapshots.decide(camera, frame, sent)
        if last_look >= sent + self.model.snapshot_s:
            box.snapshots.decide(camera, frame, last_look)  # the same picture: not sent, looked at

    def live(self, stop: Any) -> None:
        now = time.monotonic()
        for box, incident in self.ongoing:  # memoryless durations; a uniform phase for the next sighting
            end = now + self.rng.expovariate(1 / (self.model.incident_minutes * 60))
            self._at(end, "end", (box, incident))
            self._at(
                now + self.rng.uniform(0, self.model.sighting_report_s), "sighting", (box, incident, end)
            )
        look_s = self.model.snapshot_s
        for index in range(len(self.cameras)):
            first_look = now + self.rng.uniform(0, look_s)
            if not self.model.old_protocol:
                self._prime_snapshots(index, first_look - look_s, now)
            self._at(first_look, "snapshot", index)
        rate = self.model.incidents_per_camera_s * len(self.cameras)
        if rate > 0:
            self._at(now + self.rng.expovariate(rate), "new", None)
        while not stop.is_set():
            when, _, what, payload = heapq.heappop(self.heap)
            wait = when - time.monotonic()
            if wait > 0 and stop.wait(wait):
                return
            self._handle(what, payload, rate)

    def _handle(self, what: str, payload: Any, rate: float) -> None:
        now = time.monotonic()
        if what == "snapshot":  # the rules thread's pipeline.snapshots.Snapshots.maybe_offer
            box, camera, _ = self.cameras[payload]
            self.looks += 1
            index = (payload + self.looks) % len(self.frames)
            if box.snapshots.decide(camera, self.frames[index], now):
                box.store_sync.offer_snapshot(camera, self.pool["snapshot"][index])
            self._at(now + self.model.snapshot_s, "snapshot", payload)
        elif what == "new":
            self._at(now + self.rng.expovariate(rate), "new", None)
            box, incident = self._incident(self.rng.randrange(len(self.cameras)))
            frame = self.rng.randrange(len(self.pool["crop"]))
            images = [
                box.image(kind, self.pool[kind][frame % len(self.pool[kind])], incident.key, score)
                for kind, score in (
                    ("first_seen", 0.6),
                    ("confirmation", 0.7),
                    ("crop", None),
                    ("frame", None),
                )
            ]
            box.report(incident, images, RULES[incident.violation]["dwell_s"])
            self.result.keys.append(incident.key)
            end = now + self.rng.expovariate(1 / (self.model.incident_minutes * 60))
            self._at(end, "end", (box, incident))
            self._at(now + self.model.sighting_report_s, "sighting", (box, incident, end))
        elif what == "sighting":
            box, incident, end = payload
            if now >= end:
                return
            images = []
            if self.rng.random() < self.model.sighting_picture_share:
                tag = f"{incident.key}-s{incident.updates + 1}"
                images.append(box.image("sighting", self.rng.choice(self.pool["sighting"]), tag, 0.9))
            self.result.keys.append(box.update(incident, "sighting", images))
            self._at(now + self.model.sighting_report_s, "sighting", (box, incident, end))
        elif what == "end":
            box, incident = payload
            self.result.keys.append(box.update(incident, "ended"))


def _small(jpeg: bytes) -> Any:
    """A snapshot decoded at a quarter of its size: what the snapshot policy's thumbnail needs."""
    import cv2
    import numpy as np

    return np.asarray(cv2.imdecode(np.frombuffer(jpeg, np.uint8), cv2.IMREAD_REDUCED_COLOR_4), np.uint8)


def _poisson(rng: random.Random, mean: float) -> int:
    if mean > 50:  # normal approximation
        return max(0, round(rng.gauss(mean, math.sqrt(mean))))
    count, threshold, product = 0, math.exp(-mean), rng.random()
    while product > threshold:
        count += 1
        product *= rng.random()
    return count


# ---------------------------------------------------------------------------------------------------------
# One step and the sweep


def pg_size(database_url: str) -> int:
    engine = create_engine(database_url)
    try:
        with engine.connect() as connection:
            return int(connection.execute(text("SELECT pg_database_size(current_database())")).scalar_one())
    finally:
        engine.dispose()


def dir_bytes(path: Path) -> int:
    return sum(p.stat().st_size for p in path.rglob("*") if p.is_file())


def exactly_once(database_url: str, keys: Sequence[str]) -> dict[str, int]:
    """How many of the window's report and update keys the store holds (each key is unique there)."""
    engine = create_engine(database_url)
    found = 0
    try:
        with engine.connect() as connection:
            for start in range(0, len(keys), 1000):
                chunk = list(keys[start : start + 1000])
                found += int(
                    connection.execute(
                        text(
                            "SELECT (SELECT count(*) FROM sightings WHERE idempotency_key = ANY(:k))"
                            " + (SELECT count(*) FROM incident_updates WHERE idempotency_key = ANY(:k))"
                        ),
                        {"k": chunk},
                    ).scalar_one()
                )
    finally:
        engine.dispose()
    return {"put": len(keys), "stored": found, "missing": len(keys) - found}


def run_step(
    cameras: int,
    specs: list[BoxSpec],
    store: Store,
    database_url: str,
    data_dir: Path,
    model: CityModel,
    args: argparse.Namespace,
    restart: Any,
) -> dict[str, Any]:
    boxes = specs
    context = mp.get_context("spawn")
    ready, results = context.Queue(), context.Queue()
    go, stop = context.Event(), context.Event()
    processes = min(args.processes, len(boxes))
    drain_s = args.drain_timeout if args.restart != "none" else 0.0
    workers = [
        context.Process(
            target=run_worker,
            args=(
                boxes[p::processes],
                store.url,
                model,
                1000 * cameras + p,
                ready,
                go,
                stop,
                (args.prime_timeout, drain_s),
                results,
            ),
            daemon=True,
        )
        for p in range(processes)
    ]
    for worker in workers:
        worker.start()
    prime_began = time.monotonic()
    backlog = [from_workers(ready, workers, args.prime_timeout + 300) for _ in workers]
    prime_s = time.monotonic() - prime_began
    size0, evidence0 = pg_size(database_url), dir_bytes(data_dir)
    server = store.processes()
    cpu_used, cpu0, load0 = 0.0, cpu_seconds(server), os.getloadavg()
    t0 = time.time()
    go.set()
    peak_rss = rss_mb(server)
    restarted: dict[str, float] = {}
    while time.time() < t0 + args.duration:
        time.sleep(1.0)
        peak_rss = max(peak_rss, rss_mb(store.processes()))
        if restart is not None and not restarted and time.time() >= t0 + args.duration / 2:
            down, at_s = time.monotonic(), time.time() - t0
            cpu_used += cpu_seconds(store.processes()) - cpu0  # the old processes' share of the window
            restart()
            restarted = {"at_s": at_s, "down_s": time.monotonic() - down}
            cpu0 = cpu_seconds(store.processes())
    t1 = time.time()
    cpu_used += cpu_seconds(store.processes()) - cpu0
    load1 = os.getloadavg()
    size1, evidence1 = pg_size(database_url), dir_bytes(data_dir)
    stop.set()
    collected = [from_workers(results, workers, args.drain_timeout + 120) for _ in workers]
    for worker in workers:
        worker.join(30)
    window = t1 - t0
    samples = [s for r in collected for s in r["samples"] if t0 <= s[1] < t1]
    step = summarise_step(samples, window, cameras)
    scale = 86400 / window / cameras
    step.update(
        {
            "cameras": cameras,
            "boxes": len(boxes),
            "window_s": window,
            "prime_s": prime_s,
            "primed_incidents": sum(r["primed"] for r in collected),
            "backlog_at_start": sum(backlog),
            "pending_at_end": sum(r["pending_at_end"] for r in collected),
            "drain_after_window_s": max(r["drain_s"] for r in collected),
            "failed_items": sum(r["failed_items"] for r in collected),
            "store_cpu_cores": cpu_used / window,
            "store_rss_mb_peak": peak_rss,
            "simulator_cpu_cores": sum(r["cpu_s"] for r in collected) / window,
            "pg_growth_bytes": size1 - size0,
            "pg_bytes_per_camera_day": (size1 - size0) * scale,
            "store_files_bytes_per_camera_day": (evidence1 - evidence0) * scale,
            "loadavg_start": load0,
            "loadavg_end": load1,
            "restart": restarted or None,
        }
    )
    if args.restart != "none":
        step["delivery"] = exactly_once(database_url, [k for r in collected for k in r["keys"]])
        # the failed answers of the window by status (-1: a transport error), e.g. {"503": 40}
        statuses = Counter(str(s[3]) for s in samples if s[3] < 0 or s[3] >= 400)
        step["error_statuses"] = dict(sorted(statuses.items()))
        if restarted:  # from the end of the restart to the last outbox empty (0.5 s polls)
            back_s = restarted["at_s"] + restarted["down_s"]
            restarted["outboxes_empty_after_s"] = window - back_s + step["drain_after_window_s"]
    return step


def _jsonable(value: Any) -> Any:
    if isinstance(value, Path):
        return str(value)
    return sorted(value) if isinstance(value, set) else value


def model_protocol(model: CityModel) -> str:
    return "old" if model.old_protocol else "new"


def from_workers(answers: Any, workers: Sequence[Any], timeout_s: float) -> Any:
    """The next answer of a simulator process; RuntimeError when one died or none answers in time."""
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        try:
            return answers.get(timeout=1.0)
        except queue.Empty:
            dead = [w.exitcode for w in workers if w.exitcode not in (None, 0)]
            if dead:
                raise RuntimeError(
                    f"a simulator process failed (exit codes {dead}); see its traceback above"
                ) from None
    raise RuntimeError(f"no answer from the simulator processes in {timeout_s:.0f} s")


def summarise_step(samples: list[Sample], window: float, cameras: int) -> dict[str, Any]:
    by_kind: dict[str, dict[str, Any]] = {}
    ok_all: list[float] = []
    for kind in KINDS:
        rows = [s for s in samples if s[0] == kind]
        if not rows:
            continue
        statuses = Counter(s[3] for s in rows)
        ok = sorted(s[2] for s in rows if 200 <= s[3] < 400)
        ok_all.extend(ok)
        uploaded = sum(s[4] for s in rows if 200 <= s[3] < 300)
        by_kind[kind] = {
            "requests": len(rows),
            "rps": len(rows) / window,
            "p50_ms": percentile(ok, 50),
            "p99_ms": percentile(ok, 99),
            "errors": sum(n for status, n in statuses.items() if status < 200 or status >= 400),
            "throttled_429": statuses.get(429, 0),
            "statuses": {str(k): v for k, v in sorted(statuses.items())},
            "upload_bytes_per_camera_day": uploaded * 86400 / window / cameras,
        }
    ok_all.sort()
    errors = sum(k["errors"] for k in by_kind.values())
    worst = max((k["p99_ms"] for k in by_kind.values() if k["p99_ms"] == k["p99_ms"]), default=float("nan"))
    return {
        "kinds": by_kind,
        "rps": len(samples) / window,
        "p50_ms": percentile(ok_all, 50),
        "p99_ms": percentile(ok_all, 99),
        "worst_kind_p99_ms": worst,
        "errors": errors,
        "held": errors == 0 and worst < P99_LIMIT_MS,
    }


def format_table(document: dict[str, Any]) -> str:
    lines = [
        "| cameras | protocol | boxes | req/s | p99 ms (worst kind) | errors | store CPU cores "
        "| store CPU ms per camera-minute | store RSS MB "
        "| sim CPU | PG MB/camera-day | files MB/camera-day | load | held |",
        "|---:|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---|---|",
    ]
    for s in document["steps"]:
        cpu = f"{s['store_cpu_cores']:.2f}"
        lines.append(
            f"| {s['cameras']} | {s.get('protocol', 'new')} | {s['boxes']} | {s['rps']:.0f} | "
            f"{s['p99_ms']:.0f} ({s['worst_kind_p99_ms']:.0f}) | "
            f"{s['errors']} | {cpu} | {s['store_cpu_cores'] * 60000 / s['cameras']:.2f} | "
            f"{s['store_rss_mb_peak']:.0f} | {s['simulator_cpu_cores']:.2f} | "
            f"{s['pg_bytes_per_camera_day'] / 1e6:.2f} | {s['store_files_bytes_per_camera_day'] / 1e6:.1f} | "
            f"{s['loadavg_start'][0]:.1f}→{s['loadavg_end'][0]:.1f} | {'yes' if s['held'] else 'no'} |"
        )
    lines += [
        "",
        "| cameras | protocol | kind | req/s | p50 ms | p99 ms | errors | 429 |",
        "|---:|---|---|---:|---:|---:|---:|---:|",
    ]
    for s in document["steps"]:
        for kind, k in s["kinds"].items():
            lines.append(
                f"| {s['cameras']} | {s.get('protocol', 'new')} | {kind} | {k['rps']:.1f} | "
                f"{k['p50_ms']:.0f} | {k['p99_ms']:.0f} | "
                f"{k['errors']} | {k['throttled_429']} |"
            )
    for s in document["steps"]:
        if s.get("delivery"):
            d = s["delivery"]
            lines.append(
                f"{s['cameras']} cameras, restart {s['restart']}: {d['stored']}/{d['put']} reports+updates "
                f"stored exactly once, {d['missing']} missing, {s['pending_at_end']} still pending "
                f"(outboxes empty {s['drain_after_window_s']:.0f} s after the window, "
                f"{s['restart'].get('outboxes_empty_after_s', 0):.0f} s after the restart ended); "
                f"failed answers in the window by status: {s.get('error_statuses')}"
            )
    lines.append(
        f"Largest fleet held (p99 < {P99_LIMIT_MS:.0f} ms every kind, 0 errors): {document['headline']}"
    )
    return "\n".join(lines)


def plot(document: dict[str, Any], path: Path) -> Path | None:
    plt = pyplot()
    if plt is None:
        return None
    protocol = "old" if document["model"]["old_protocol"] else "new"
    old = [s for s in document["steps"] if s.get("protocol", protocol) != protocol]
    steps = [s for s in document["steps"] if s.get("protocol", protocol) == protocol]
    cameras = [s["cameras"] for s in steps]
    figure, (left, right) = plt.subplots(1, 2, figsize=(12, 4.5))
    for kind in KINDS:
        p99 = [s["kinds"].get(kind, {}).get("p99_ms", float("nan")) for s in steps]
        if any(v == v for v in p99):
            left.plot(cameras, p99, marker="o", label=kind)
    left.axhline(P99_LIMIT_MS, color="red", linestyle="--", linewidth=1)
    left.set(xlabel="cameras", ylabel="p99 latency (ms)", yscale="log", title="p99 by request kind")
    left.legend(fontsize=8)
    right.plot(cameras, [s["rps"] for s in steps], marker="o", label="requests/s")
    right.plot(cameras, [s["errors"] / s["window_s"] for s in steps], marker="x", label="errors/s")
    cpu = [s["store_cpu_cores"] for s in steps]
    twin = right.twinx()
    twin.plot(cameras, cpu, color="grey", linestyle=":", marker="s", label="store CPU cores")
    if old:
        twin.plot(
            [s["cameras"] for s in old],
            [s["store_cpu_cores"] for s in old],
            color="red",
            linestyle="",
            marker="x",
            label="store CPU cores, old protocol",
        )
        twin.legend(loc="lower right", fontsize=8)
    twin.set_ylabel("store CPU cores")
    right.set(xlabel="cameras", ylabel="per second", title="throughput and errors")
    right.legend(loc="upper left", fontsize=8)
    figure.suptitle(f"bench_fleet {document['timestamp'][:16]} ({document['machine']['cpu_count']} vCPUs)")
    return save_figure(plt, figure, path)


def main(argv: list[str] | None = None) -> dict[str, Any]:
    args = parse_args(argv)
    model = default_model(args)
    workdir = Path(tempfile.mkdtemp(prefix="sw-fleet-run-"))
    receiver = WebhookReceiver()
    steps: list[dict[str, Any]] = []
    began = time.monotonic()
    try:
        with (
            contextmanager_for_pg(args, workdir) as (admin_url, restart_pg),
            scratch_database("postgresql", admin_url) as (data_dir, database_url),
        ):
            assert database_url is not None
            city = City(database_url, data_dir, model.cameras_per_box, receiver.url)
            setup_s = 0.0
            env = {
                "STREETWATCH_DATA_DIR": str(data_dir),
                "STREETWATCH_DATABASE_URL": database_url,
                "STREETWATCH_MQTT_HOST": "127.0.0.1",
                "STREETWATCH_PUBLIC_URL": "http://127.0.0.1",
            }
            store = Store(env, args.workers, args.store_log or workdir / "store.log")
            store.start()
            restart = None
            if args.restart == "store":

                def restart() -> None:
                    store.stop()
                    store.start()

            elif args.restart == "postgres":
                restart = restart_pg
            try:
                for cameras in args.cameras:
                    setup = time.monotonic()
                    specs = city.grow(cameras)
                    setup_s += time.monotonic() - setup
                    # --compare-old: the same fleet with the old protocol first, on the same store
                    variants = [replace(model, old_protocol=True)] if cameras in args.compare_old else []
                    for variant in [*variants, model]:
                        step = run_step(cameras, specs, store, database_url, data_dir, variant, args, restart)
                        step["protocol"] = "old" if variant.old_protocol else "new"
                        steps.append(step)
                        if not args.quiet:
                            print(
                                f"{cameras} cameras ({step['protocol']} protocol): {step['rps']:.0f} req/s, "
                                f"p99 {step['p99_ms']:.0f} ms, {step['errors']} errors, "
                                f"store {step['store_cpu_cores']:.2f} cores, held: {step['held']}",
                                flush=True,
                            )
                    if not step["held"] and not args.keep_going:
                        break
                deliveries = delivery_counts(database_url)
            finally:
                store.stop()
                city.close()
    finally:
        receiver.close()
        shutil.rmtree(workdir, ignore_errors=True)
    held = [s["cameras"] for s in steps if s["held"] and s["protocol"] == model_protocol(model)]
    document: dict[str, Any] = {
        "benchmark": "bench_fleet",
        "timestamp": dt.datetime.now(dt.UTC).isoformat(timespec="milliseconds"),
        "command": " ".join([PROG, *(sys.argv[1:] if argv is None else argv)]),
        "machine": {
            "cpu_count": os.cpu_count(),
            "cpu": cpu_model(),
            "memory_gb": psutil.virtual_memory().total / 1e9,
        },
        "model": {**asdict(model), "requests_per_camera_day": model.per_camera_day()},
        "config": {k: _jsonable(v) for k, v in vars(args).items()},
        "setup_s": setup_s,
        "total_s": time.monotonic() - began,
        "steps": steps,
        "notifications": {**deliveries, "webhooks_received": receiver.received},
        "headline": max(held) if held else None,
    }
    args.out.mkdir(parents=True, exist_ok=True)
    json_path = write_json(args.out, "bench_fleet", document)
    document["json_path"] = str(json_path)
    png = plot(document, json_path.with_suffix(".png"))
    document["png_path"] = str(png) if png else None
    json_path.write_text(json.dumps(document, indent=1), encoding="utf-8")
    if not args.quiet:
        print(format_table(document))
        print(f"notifications: {document['notifications']}")
        print(f"written: {json_path}" + (f", {png}" if png else " (no matplotlib: no PNG)"))
    return document


@contextmanager
def contextmanager_for_pg(args: argparse.Namespace, workdir: Path) -> Iterator[tuple[str, Any]]:
    """The admin URL to make the scratch database at, and how to restart that PostgreSQL (a private one
    for ``--restart postgres``: the shared server is never restarted)."""
    if args.restart != "postgres":
        yield args.pg_url, None
        return
    with private_postgres(workdir) as (url, pg_bin, data):
        yield url, lambda: restart_postgres(pg_bin, data)


def delivery_counts(database_url: str) -> dict[str, int]:
    engine = create_engine(database_url)
    try:
        with engine.connect() as connection:
            rows = connection.execute(text("SELECT channel, status, count(*) FROM deliveries GROUP BY 1, 2"))
            return {f"{channel}_{status}": int(n) for channel, status, n in rows}
    finally:
        engine.dispose()


if __name__ == "__main__":
    main()
