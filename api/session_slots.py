"""A bound on the requests of one worker that hold a database session at the same time.

Why: FastAPI runs a sync route, and the exit of its sync session dependency (the commit), on the worker's
thread pool (40 threads). Under a fleet's burst more requests than the engine's pool has connections open
a session; their threads then block in the pool's checkout while the requests that hold the connections
wait for a free thread to commit and give them back. Every thread ends up waiting on the pool and the
worker stalls until the pool's 30 s timeout (benchmarks/README.md "Fleet": 10,000 simulated cameras).
Waiting for a slot here happens on the event loop, before a session exists and without a thread, so a
request that has a slot always finds a connection: the stall cannot form, and excess requests queue.
"""

from __future__ import annotations

import asyncio
import weakref

from sqlalchemy import Engine

RESERVED_FOR_JOBS = 4  # connections left to the worker's background jobs (overdue marks, deliveries, ...)
FALLBACK_LIMIT = 8  # pools without a fixed size (SQLite in memory, NullPool)


def session_limit(engine: Engine) -> int:
    """Requests that may hold a session at once: the pool's connections less those kept for jobs."""
    pool = engine.pool
    size = getattr(pool, "size", None)
    overflow = getattr(pool, "_max_overflow", None)
    if not callable(size) or not isinstance(overflow, int) or overflow < 0:
        return FALLBACK_LIMIT
    capacity = int(size()) + overflow
    return max(1, capacity - RESERVED_FOR_JOBS)


class SessionSlots:
    """One semaphore per event loop (a worker has one loop; tests start several with one app)."""

    def __init__(self, limit: int) -> None:
        self.limit = limit
        self._by_loop: weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, asyncio.Semaphore] = (
            weakref.WeakKeyDictionary()
        )

    def semaphore(self) -> asyncio.Semaphore:
        loop = asyncio.get_running_loop()
        found = self._by_loop.get(loop)
        if found is None:
            found = self._by_loop[loop] = asyncio.Semaphore(self.limit)
        return found
