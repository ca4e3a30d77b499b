"""More concurrent requests than the database pool has connections queue for a session; they do not stall
the worker (api.session_slots). Before the bound, a burst like this one left every thread of the worker's
pool waiting for a connection that only a thread could give back, and requests failed with 503 after the
pool's timeout (the fleet benchmark at 10,000 cameras)."""

from __future__ import annotations

import dataclasses
from concurrent.futures import ThreadPoolExecutor

import httpx
from sqlalchemy import create_engine

from api.session_slots import FALLBACK_LIMIT, RESERVED_FOR_JOBS, session_limit
from contract.paths import DEVICE_CONFIG
from tests.api.builders import make_device
from tests.api.conftest import Store
from tests.api.live_server import serve

BURST = 120  # more than the worker's 40 threads and many times the pool


def test_a_burst_larger_than_the_pool_is_served_without_a_stall(store: Store) -> None:
    _, key = make_device(store.sessions, "box-1")
    small = create_engine(store.engine.url, pool_size=2, max_overflow=1, pool_timeout=3)
    assert session_limit(small) == max(1, 3 - RESERVED_FOR_JOBS)
    try:
        with serve(dataclasses.replace(store, engine=small)) as url:

            def one(_: int) -> int:
                with httpx.Client(timeout=60) as client:
                    return client.get(url + DEVICE_CONFIG, headers={"X-Device-Key": key}).status_code

            with ThreadPoolExecutor(max_workers=BURST) as pool:
                statuses = list(pool.map(one, range(BURST)))
    finally:
        small.dispose()

    assert statuses.count(200) == BURST, {status: statuses.count(status) for status in set(statuses)}


def test_the_limit_leaves_connections_to_the_jobs(store: Store) -> None:
    pooled = create_engine(store.engine.url, pool_size=10, max_overflow=20)
    try:
        assert session_limit(pooled) == 30 - RESERVED_FOR_JOBS
    finally:
        pooled.dispose()
    assert FALLBACK_LIMIT > 0
