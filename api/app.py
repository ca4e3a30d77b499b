"""The case store's app factory: nothing is created at import time."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from http import HTTPStatus

from fastapi import FastAPI, Request
from fastapi.encoders import jsonable_encoder
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse, Response
from sqlalchemy import Engine
from starlette.exceptions import HTTPException

from api import body_limits, console, db_errors, log_redaction
from api.db import make_engine, make_session_factory
from api.errors import ApiError
from api.jobs import JobRunner, default_jobs
from api.metrics import StoreMetrics
from api.metrics import install as install_metrics
from api.migrate import check_migrated
from api.routers import (
    actions,
    auth,
    cases,
    devices,
    incident_updates,
    notifications,
    open311,
    reference,
    stats,
)
from api.routers import cameras as camera_routes
from api.routers import case_search as case_search_routes
from api.routers import labels as label_routes
from api.routers import models as model_routes
from api.routers import suppressions as suppression_routes
from api.security_headers import SecurityHeaders
from api.session_slots import SessionSlots, session_limit
from api.settings import Settings


def create_app(settings: Settings | None = None, *, engine: Engine | None = None) -> FastAPI:
    """Build the app. Raises :class:`api.migrate.DatabaseNotMigratedError` on an unmigrated database."""
    settings = settings or Settings()
    engine = engine or make_engine(settings)
    check_migrated(engine)  # refuse to serve a database the code does not match
    sessions = make_session_factory(engine)
    metrics = StoreMetrics(sessions)

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        jobs = default_jobs(settings)
        runner = JobRunner(jobs, sessions, settings, observe=metrics.job_run) if settings.run_jobs else None
        if runner:
            with metrics.current():  # deliveries made by the jobs count into this app's metrics
                runner.start()
        try:
            yield
        finally:
            if runner:
                await runner.stop()

    app = FastAPI(
        title="streetwatch case store",
        version="0.1.0",
        description=(
            "Cases from city cameras: review, dispatch with deadlines, handling, verification, closing."
        ),
        lifespan=lifespan,
    )
    app.state.settings = settings
    app.state.engine = engine
    app.state.sessions = sessions
    app.state.session_slots = SessionSlots(session_limit(engine))

    @app.exception_handler(ApiError)
    async def api_error(_request: Request, exc: ApiError) -> JSONResponse:
        return JSONResponse(
            status_code=exc.status_code,
            content={"detail": exc.message, "code": exc.code, **exc.details},
            headers=exc.headers,
        )

    @app.exception_handler(HTTPException)
    async def http_error(_request: Request, exc: HTTPException) -> Response:
        # The framework's own errors (an unparsable body, an unknown path or method) in the API's error
        # shape, so that a client reads one shape for every error.
        if exc.status_code in (204, 304):  # no body allowed
            return Response(status_code=exc.status_code, headers=exc.headers)
        return JSONResponse(
            status_code=exc.status_code,
            content={"detail": exc.detail, "code": _status_code_name(exc.status_code)},
            headers=exc.headers,
        )

    @app.exception_handler(RequestValidationError)
    async def invalid_request(_request: Request, exc: RequestValidationError) -> JSONResponse:
        # FastAPI's default echoes the rejected input, which may be a password or a webhook secret.
        errors = [{k: v for k, v in e.items() if k not in ("input", "ctx", "url")} for e in exc.errors()]
        return JSONResponse(
            status_code=422, content={"detail": jsonable_encoder(errors), "code": "invalid_input"}
        )

    db_errors.register(app)  # the database out of reach (a PostgreSQL restart): 503 + Retry-After

    @app.get("/healthz", tags=["meta"])
    def healthz() -> dict[str, str]:
        return {"status": "ok"}

    for module in (auth, incident_updates, cases, actions, stats, notifications, reference, open311, devices):
        app.include_router(module.router)
    app.include_router(camera_routes.router)
    app.include_router(suppression_routes.router)
    app.include_router(case_search_routes.router)
    app.include_router(model_routes.router)
    app.include_router(label_routes.router)
    console.register(app)  # the operator console's pages under /console
    install_metrics(app, metrics, settings.metrics_bearer())
    body_limits.install(app, settings)  # after the routes: upload routes are found by their File parameters
    # added after the body limits, so it wraps (and adds its headers to) their refusals too
    app.add_middleware(SecurityHeaders, force_secure_cookies=settings.cookie_secure)
    log_redaction.install()  # here, not in the serve command: it holds however the app is served
    return app


def _status_code_name(status: int) -> str:
    """405 -> method_not_allowed: the ``code`` of an error the framework raised."""
    try:
        return HTTPStatus(status).phrase.lower().replace(" ", "_").replace("-", "_")
    except ValueError:
        return "http_error"
