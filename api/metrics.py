"""The case store's Prometheus metrics and its ``/metrics`` endpoint (admins or the metrics token only).

Each app has its own :class:`StoreMetrics` with its own :class:`prometheus_client.CollectorRegistry`
(never the global one), so many apps in one process (tests, benchmarks) do not collide. Code that runs
outside a request handler's reach (ingest, notification delivery) reports to the app's metrics through a
context variable that the request middleware and the job runner set; with none set (a script calling
:func:`api.ingest.ingest_report` directly) nothing is counted.

Metric families (all prefixed ``streetwatch_store_``):

- ``http_requests_total{method, route, status}`` and ``http_request_seconds{method, route}``: ``route``
  is the route's template (``/api/v1/cases/{case_id}``), ``unmatched`` for a path no route serves, never
  the raw path (no ids, no unbounded label values);
- ``ingests_total{outcome, reason}``: ``created`` (a new case), ``merged`` (a sighting of the open case),
  ``duplicate`` (an idempotency key already stored), ``rejected`` with the error code as ``reason``
  (``forbidden``, ``invalid_input``, ``conflict``...); bodies that fail request validation never reach
  ingest and show as 422 in ``http_requests_total``;
- ``job_runs_total{job, outcome}`` (``ok`` / ``error``) and ``job_seconds{job}`` for the background jobs;
- ``notification_deliveries_total{channel, outcome}``: ``delivered``, ``retrying`` (an attempt failed and
  will be retried), ``failed`` (the last attempt failed; an admin must retry it);
- ``open_cases{unit}`` and ``overdue_cases{unit}`` (``unit="none"``: not yet assigned) and
  ``database_up``, read from the database when Prometheus scrapes (one grouped query).
"""

from __future__ import annotations

import functools
import hmac
import logging
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from contextvars import ContextVar
from typing import Annotated, ParamSpec

from fastapi import Depends, FastAPI, Request, Response
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer
from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, Counter, Histogram, generate_latest
from prometheus_client.core import GaugeMetricFamily, Metric
from prometheus_client.registry import Collector
from sqlalchemy import case as sql_case
from sqlalchemy import func, select
from sqlalchemy.exc import SQLAlchemyError
from sqlalchemy.orm import Session, sessionmaker
from starlette.routing import Mount
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from api.deps import SessionDep, get_actor
from api.errors import ApiError, Forbidden
from api.models import OPEN_STATUSES, Case, Role, Unit
from api.routers.responses import AUTHENTICATED
from contract.reports import IngestResult

log = logging.getLogger(__name__)

P = ParamSpec("P")
REQUEST_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0)
JOB_BUCKETS = (0.01, 0.05, 0.1, 0.5, 1.0, 5.0, 10.0, 30.0, 60.0, 300.0)
METHODS = frozenset({"GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS"})


class StoreMetrics:
    """All metrics of one case-store app, in their own registry."""

    def __init__(self, sessions: sessionmaker[Session]) -> None:
        self.registry = CollectorRegistry(auto_describe=True)
        r = self.registry
        self.requests = Counter(
            "streetwatch_store_http_requests",
            "HTTP requests answered, by route template and status.",
            ["method", "route", "status"],
            registry=r,
        )
        self.request_seconds = Histogram(
            "streetwatch_store_http_request_seconds",
            "Time to answer an HTTP request, by route template.",
            ["method", "route"],
            buckets=REQUEST_BUCKETS,
            registry=r,
        )
        self.ingests = Counter(
            "streetwatch_store_ingests",
            "Device case reports by what became of them.",
            ["outcome", "reason"],
            registry=r,
        )
        self.job_runs = Counter(
            "streetwatch_store_job_runs", "Background job runs by outcome.", ["job", "outcome"], registry=r
        )
        self.job_seconds = Histogram(
            "streetwatch_store_job_seconds",
            "Duration of a background job run.",
            ["job"],
            buckets=JOB_BUCKETS,
            registry=r,
        )
        self.deliveries = Counter(
            "streetwatch_store_notification_deliveries",
            "Notification delivery attempts (webhook, mqtt) by outcome.",
            ["channel", "outcome"],
            registry=r,
        )
        r.register(_OpenCasesCollector(sessions))

    def request(self, method: str, route: str, status: int, seconds: float) -> None:
        method = method if method in METHODS else "OTHER"
        self.requests.labels(method, route, str(status)).inc()
        self.request_seconds.labels(method, route).observe(seconds)

    def ingest(self, outcome: str, reason: str = "") -> None:
        self.ingests.labels(outcome, reason).inc()

    def job_run(self, job: str, ok: bool, seconds: float) -> None:
        self.job_runs.labels(job, "ok" if ok else "error").inc()
        self.job_seconds.labels(job).observe(seconds)

    def delivery(self, channel: str, outcome: str) -> None:
        self.deliveries.labels(channel, outcome).inc()

    def exposition(self) -> bytes:
        return generate_latest(self.registry)

    @contextmanager
    def current(self) -> Iterator[None]:
        """Make this the metrics that :func:`observe_delivery` and :func:`counts_ingest` report to, for
        code run in this context and in tasks and threads started from it."""
        token = _current.set(self)
        try:
            yield
        finally:
            _current.reset(token)


_current: ContextVar[StoreMetrics | None] = ContextVar("streetwatch_store_metrics", default=None)


class _OpenCasesCollector(Collector):
    """Open and overdue cases per unit, counted by the database at scrape time (one grouped query)."""

    def __init__(self, sessions: sessionmaker[Session]) -> None:
        self.sessions = sessions

    def collect(self) -> Iterator[Metric]:
        up = GaugeMetricFamily("streetwatch_store_database_up", "1 if the scrape's case query succeeded.")
        open_cases = GaugeMetricFamily(
            "streetwatch_store_open_cases", "Cases not closed or voided, by assigned unit.", labels=["unit"]
        )
        overdue = GaugeMetricFamily(
            "streetwatch_store_overdue_cases", "Open cases past their deadline, by unit.", labels=["unit"]
        )
        statement = (
            select(Unit.code, func.count(), func.sum(sql_case((Case.overdue.is_(True), 1), else_=0)))
            .select_from(Case)
            .outerjoin(Unit, Unit.id == Case.unit_id)
            .where(Case.status.in_([s.value for s in OPEN_STATUSES]))
            .group_by(Unit.code)
        )
        try:
            with self.sessions() as session:
                rows = session.execute(statement).all()
        except SQLAlchemyError as exc:
            log.warning("metrics: open cases could not be counted: %s", exc.__class__.__name__)
            up.add_metric([], 0)
            yield up
            return
        for unit, count, late in rows:
            open_cases.add_metric([unit or "none"], count)
            overdue.add_metric([unit or "none"], late or 0)
        up.add_metric([], 1)
        yield from (up, open_cases, overdue)


# --- hooks for code outside the request/response cycle -------------------------------------------------


def counts_ingest(ingest: Callable[P, IngestResult]) -> Callable[P, IngestResult]:
    """Decorate the ingest function: count each report as created, merged, duplicate or rejected."""

    @functools.wraps(ingest)
    def counted(*args: P.args, **kwargs: P.kwargs) -> IngestResult:
        metrics = _current.get()
        try:
            result = ingest(*args, **kwargs)
        except ApiError as exc:
            if metrics is not None:
                metrics.ingest("rejected", exc.code)
            raise
        if metrics is not None:
            outcome = "created" if result.created else "duplicate" if result.duplicate else "merged"
            metrics.ingest(outcome)
        return result

    return counted


def observe_delivery(channel: str, outcome: str) -> None:
    """One notification attempt's outcome: ``delivered``, ``retrying`` or ``failed``."""
    metrics = _current.get()
    if metrics is not None:
        metrics.delivery(channel, outcome)


# --- HTTP ----------------------------------------------------------------------------------------------


def route_label(scope: Scope) -> str:
    """The template of the route that served ``scope`` (``unmatched`` if none did): never the raw path."""
    route = scope.get("route")
    if isinstance(route, Mount):
        return f"{route.path}/{{path}}"
    path = getattr(route, "path", None)
    return path if isinstance(path, str) else "unmatched"


class MetricsMiddleware:
    """Pure ASGI middleware: counts and times every HTTP request, and makes ``metrics`` current for the
    handler (so ingest counts into this app)."""

    def __init__(self, app: ASGIApp, metrics: StoreMetrics) -> None:
        self.app, self.metrics = app, metrics

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        status = 500  # if the app raises before answering, the server answers 500
        started = time.perf_counter()

        async def send_with_status(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = int(message["status"])
            await send(message)

        try:
            with self.metrics.current():
                await self.app(scope, receive, send_with_status)
        finally:
            self.metrics.request(scope["method"], route_label(scope), status, time.perf_counter() - started)


_bearer = HTTPBearer(auto_error=False, description="Metrics token or an admin's operator token")


def _authorise(
    request: Request,
    session: SessionDep,
    bearer: Annotated[HTTPAuthorizationCredentials | None, Depends(_bearer)],
) -> None:
    """Let through the configured metrics token (constant-time compare) or a logged-in admin."""
    expected: str | None = request.app.state.metrics_token
    if expected and bearer and hmac.compare_digest(bearer.credentials.encode(), expected.encode()):
        return
    actor = get_actor(request, session, bearer, None)  # 401 without a valid credential
    if actor.role is not Role.ADMIN:
        raise Forbidden("/metrics is for admins and for the metrics token (STREETWATCH_METRICS_TOKEN)")


def install(app: FastAPI, metrics: StoreMetrics, token: str | None) -> None:
    """Count every request of ``app`` into ``metrics`` and serve them at ``/metrics`` (protected)."""
    app.state.metrics = metrics
    app.state.metrics_token = token
    app.add_middleware(MetricsMiddleware, metrics=metrics)

    @app.get(
        "/metrics",
        tags=["meta"],
        dependencies=[Depends(_authorise)],
        response_class=Response,
        responses={
            200: {"content": {CONTENT_TYPE_LATEST: {}}, "description": "Prometheus text format."},
            **AUTHENTICATED,
        },
    )
    def metrics_endpoint() -> Response:
        """Prometheus metrics of this worker (admins, or ``Authorization: Bearer <metrics token>``)."""
        return Response(metrics.exposition(), media_type=CONTENT_TYPE_LATEST)


__all__ = ["StoreMetrics", "counts_ingest", "install", "observe_delivery", "route_label"]
