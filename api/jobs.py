"""Periodic jobs run inside the server process: overdue checks, notification delivery, retention and
pushed reports (daily digests, weekly checks, monthly bulletins, deadline warnings).

Each job is safe to run in several workers at once: its database updates are conditional
(``UPDATE ... WHERE overdue = false``), so a second worker finds nothing left to do.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Callable
from dataclasses import dataclass

from sqlalchemy.orm import Session, sessionmaker

from api.db_errors import database_unavailable
from api.settings import Settings

log = logging.getLogger(__name__)

JobFunction = Callable[[sessionmaker[Session], Settings], int]


@dataclass(frozen=True)
class Job:
    name: str
    interval_s: float
    run: JobFunction


def default_jobs(settings: Settings) -> list[Job]:
    from api.notify import deliver_pending
    from api.overdue import check_overdue
    from api.pushed_reports import run_pushed_reports
    from api.retention import run_retention

    jobs = [
        Job("overdue", settings.overdue_check_interval_s, check_overdue),
        Job("deliveries", settings.delivery_interval_s, deliver_pending),
        Job("retention", settings.retention_interval_s, run_retention),
    ]
    if settings.push_reports:
        jobs.append(Job("reports", settings.report_interval_s, run_pushed_reports))
    return jobs


# Called after each run with the job's name, whether it succeeded and its duration (metrics).
JobObserver = Callable[[str, bool, float], None]


async def _loop(
    job: Job, sessions: sessionmaker[Session], settings: Settings, observe: JobObserver | None
) -> None:
    while True:
        started, ok = time.perf_counter(), True
        try:
            done = await asyncio.to_thread(job.run, sessions, settings)
            if done:
                log.info("job %s: %d item(s)", job.name, done)
        except Exception as exc:  # a failing job must not kill the server; it is retried next interval
            ok = False
            if database_unavailable(exc):  # a PostgreSQL restart: one line, not a traceback per job
                log.warning(
                    "job %s: database unavailable, retried in %.0f s: %s",
                    job.name,
                    job.interval_s,
                    exc.__class__.__name__,
                )
            else:
                log.exception("job %s failed", job.name)
        if observe is not None:
            observe(job.name, ok, time.perf_counter() - started)
        await asyncio.sleep(job.interval_s)


class JobRunner:
    def __init__(
        self,
        jobs: list[Job],
        sessions: sessionmaker[Session],
        settings: Settings,
        *,
        observe: JobObserver | None = None,
    ) -> None:
        self.jobs, self.sessions, self.settings, self.observe = jobs, sessions, settings, observe
        self._tasks: list[asyncio.Task[None]] = []

    def start(self) -> None:
        self._tasks = [
            asyncio.create_task(_loop(j, self.sessions, self.settings, self.observe), name=j.name)
            for j in self.jobs
        ]

    async def stop(self) -> None:
        for task in self._tasks:
            task.cancel()
        for task in self._tasks:
            with contextlib.suppress(asyncio.CancelledError):
                await task
