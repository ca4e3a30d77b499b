"""What each kind of device request costs the store in CPU: ``api serve`` on a scratch PostgreSQL database
(one box's worth of cameras registered as :mod:`benchmarks.bench_fleet` does), then for each kind ``--n``
requests one after another through the daemon's own :class:`pipeline.pusher.StoreClient`, and the store's
CPU time (psutil, the ``api serve`` process tree) over them, less what the idle store spends in the same
time (its background jobs), divided by the number of requests::

    .venv/bin/python -m benchmarks.fleet_cost --n 200
    .venv/bin/python -m benchmarks.fleet_cost --n 200 --store-repo ../main   # the same, an older store

``--store-repo`` runs another checkout's store (the "before" of a change) against the same kinds of
request; a kind the store does not have (404/405) is reported as missing.
"""

from __future__ import annotations

import argparse
import datetime as dt
import os
import shutil
import sys
import tempfile
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import httpx

from benchmarks.bench_api import scratch_database
from benchmarks.bench_fleet import DEFAULT_PG, City, Store, cpu_seconds, picture_pool
from contract import paths
from contract.health import CameraHealth

REPO = Path(__file__).resolve().parents[1]


def parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="fleet_cost", description=(__doc__ or "").split("\n")[0])
    parser.add_argument("--n", type=int, default=200, help="Requests per kind.")
    parser.add_argument("--cameras-per-box", type=int, default=24)
    parser.add_argument("--workers", type=int, default=1, help="api serve --workers.")
    parser.add_argument("--store-repo", type=Path, default=REPO, help="Checkout whose store runs.")
    parser.add_argument("--pg-url", default=DEFAULT_PG)
    args = parser.parse_args(argv)
    if args.n < 1 or args.cameras_per_box < 1:
        parser.error("--n and --cameras-per-box must be positive")
    if not (args.store_repo / "api").is_dir():
        parser.error(f"--store-repo {args.store_repo}: no api/ package there")
    return args


def health_body() -> dict[str, Any]:
    return CameraHealth(state="up", last_frame_at=dt.datetime.now(dt.UTC), fps=0.5).model_dump(mode="json")


def main(argv: Sequence[str] | None = None) -> dict[str, dict[str, float]]:
    from pipeline.config import StoreConfig
    from pipeline.pusher import StoreClient

    args = parse_args(argv)
    workdir = Path(tempfile.mkdtemp(prefix="sw-fleet-cost-"))
    results: dict[str, dict[str, float]] = {}
    with scratch_database("postgresql", args.pg_url) as (data_dir, url):
        assert url is not None
        city = City(url, data_dir, args.cameras_per_box, "http://127.0.0.1:9/hook")
        spec = city.grow(args.cameras_per_box)[0]
        city.close()
        pool = picture_pool(workdir)["snapshot"]
        env = {
            "STREETWATCH_DATA_DIR": str(data_dir),
            "STREETWATCH_DATABASE_URL": url,
            "STREETWATCH_MQTT_HOST": "127.0.0.1",
            "STREETWATCH_PUBLIC_URL": "http://127.0.0.1",
            "PYTHONPATH": str(args.store_repo.resolve()),
        }
        store = Store(env, args.workers, workdir / "store.log")
        store.repo = args.store_repo.resolve()
        store.start()
        key_file = workdir / "device.key"
        key_file.write_text(spec.key, encoding="utf-8")
        key_file.chmod(0o600)
        config = StoreConfig(url=store.url, device_key_file=key_file, outbox=workdir / "outbox.sqlite")
        client = StoreClient(config)
        cameras = spec.cameras
        etag = client.request("GET", paths.DEVICE_CONFIG).headers.get("ETag", "")
        batch = {"cameras": {camera: health_body() for camera in cameras}}
        kinds: dict[str, Callable[[int], httpx.Response]] = {
            "ping": lambda i: client.request("GET", f"{paths.API}/ping"),
            "health (one camera)": lambda i: client.request(
                "PUT", paths.camera_health(cameras[i % len(cameras)]), json=health_body()
            ),
            f"health batch ({len(cameras)} cameras)": lambda i: client.request(
                "PUT", getattr(paths, "CAMERAS_HEALTH", f"{paths.API}/devices/me/cameras/health"), json=batch
            ),
            "snapshot": lambda i: client.request(
                "PUT",
                paths.camera_snapshot(cameras[i % len(cameras)]),
                files={"file": ("s.jpg", pool[i % len(pool)], "image/jpeg")},
            ),
            "config (304)": lambda i: client.request(
                "GET", paths.DEVICE_CONFIG, headers={"If-None-Match": etag}
            ),
            "config (200)": lambda i: client.request("GET", paths.DEVICE_CONFIG),
            "verification": lambda i: client.request(
                "GET", paths.DEVICE_CASES, params={"status": "resolved"}
            ),
        }
        try:
            time.sleep(3.0)  # the store's start-up jobs
            processes = store.processes()
            idle0, began = cpu_seconds(processes), time.monotonic()
            time.sleep(5.0)
            idle_cores = (cpu_seconds(processes) - idle0) / (time.monotonic() - began)
            for name, send in kinds.items():
                status = send(0).status_code
                if status in (404, 405):
                    print(f"{name}: the store has no such route ({status})", flush=True)
                    continue
                if status >= 400:
                    raise RuntimeError(f"{name}: the store answered {status}")
                cpu0, wall0 = cpu_seconds(processes), time.monotonic()
                for i in range(args.n):
                    send(i)
                wall = time.monotonic() - wall0
                cpu_ms = (cpu_seconds(processes) - cpu0 - idle_cores * wall) * 1000 / args.n
                results[name] = {"cpu_ms": cpu_ms, "wall_ms": wall * 1000 / args.n}
                print(f"{name}: {cpu_ms:.2f} store CPU ms, {wall * 1000 / args.n:.2f} ms wall", flush=True)
        finally:
            client.close()
            store.stop()
            shutil.rmtree(workdir, ignore_errors=True)
    print(f"idle store: {idle_cores:.3f} cores; load average {os.getloadavg()}; store {args.store_repo}")
    return results


if __name__ == "__main__":
    sys.exit(0 if main() else 1)
