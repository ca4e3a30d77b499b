"""The database out of reach answers 503 with Retry-After, never 500.

A PostgreSQL restart (or failover) breaks every pooled connection and refuses new ones for a moment; the
requests caught in it raise ``OperationalError`` (connection refused, server closed the connection,
administrator shutdown). That is the store being briefly unavailable, not a bug: a 503 with
``Retry-After`` tells edge boxes to hold their outbox and come back (see pipeline.pusher), and the log gets
one line instead of a traceback per request. SQLAlchemy has already invalidated the broken connections, so
the next request after the database is back gets a fresh one (``pool_pre_ping`` catches the rest).
"""

from __future__ import annotations

import logging

from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse
from sqlalchemy.exc import DBAPIError, OperationalError
from sqlalchemy.exc import TimeoutError as PoolTimeout

log = logging.getLogger(__name__)

RETRY_AFTER_S = 1


def database_unavailable(exc: BaseException) -> bool:
    """Whether ``exc`` means the database cannot be reached right now (as opposed to a bad statement).
    SQLite's "database is locked" is an OperationalError too: also transient, also worth a retry."""
    if isinstance(exc, PoolTimeout | OperationalError):
        return True
    return isinstance(exc, DBAPIError) and exc.connection_invalidated


def _first_line(exc: BaseException) -> str:
    orig = getattr(exc, "orig", None) or exc
    text = str(orig).strip().splitlines()
    return f"{type(orig).__name__}: {text[0] if text else ''}"[:300]


def register(app: FastAPI) -> None:
    async def unavailable(request: Request, exc: Exception) -> JSONResponse:
        if not database_unavailable(exc):
            raise exc  # a real error: the server's 500 and its traceback
        log.warning(
            "database unavailable, answered 503: %s %s: %s",
            request.method,
            request.url.path,
            _first_line(exc),
        )
        return JSONResponse(
            status_code=503,
            content={
                "detail": "the database is unavailable; try again shortly",
                "code": "database_unavailable",
            },
            headers={"Retry-After": str(RETRY_AFTER_S)},
        )

    app.add_exception_handler(DBAPIError, unavailable)
    app.add_exception_handler(PoolTimeout, unavailable)
