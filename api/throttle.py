"""Failed-credential counters per account and per client address, kept in the database (one row per key)
so that every worker process shares them, with exponential back-off once a key reaches its limit.

Counting is one atomic upsert per key: PostgreSQL row-locks and SQLite write-locks the row until the
transaction commits, so concurrent failures get distinct counts and none slips past a lock a concurrent
one has just set. A locked key is not counted further: the lock runs out on time.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from sqlalchemy import and_, case, delete, or_, select, update
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.orm import Session

from api.errors import ApiError
from api.models import AuthLockout, AuthThrottle
from api.settings import Settings

ACCOUNT = "account"  # failed logins of one username
ADDRESS = "address"  # failed logins from one client address, any username
DEVICE = "device"  # invalid device keys from one client address
PRUNE_BATCH = 100


class TooManyRequests(ApiError):
    """The account or address is locked after repeated failures (429, with Retry-After)."""

    status_code = 429
    code = "too_many_requests"

    def __init__(self, message: str, retry_after_s: int) -> None:
        super().__init__(message, retry_after_s=retry_after_s)
        self.retry_after_s = retry_after_s
        self.headers = {"Retry-After": str(retry_after_s)}


class ServiceBusy(ApiError):
    """Every password-check slot of this process is taken (503, with Retry-After)."""

    status_code = 503
    code = "service_unavailable"

    def __init__(self, message: str, retry_after_s: int) -> None:
        super().__init__(message, retry_after_s=retry_after_s)
        self.retry_after_s = retry_after_s
        self.headers = {"Retry-After": str(retry_after_s)}


@dataclass(frozen=True)
class Key:
    """What is counted (scope and subject) and after how many failures it backs off."""

    scope: str
    subject: str
    max_failures: int


@dataclass(frozen=True)
class Rules:
    account_max_failures: int = 5
    address_max_failures: int = 20
    device_max_failures: int = 10
    window: dt.timedelta = dt.timedelta(minutes=15)
    max_lockout: dt.timedelta = dt.timedelta(minutes=15)

    @classmethod
    def from_settings(cls, settings: Settings) -> Rules:
        return cls(
            account_max_failures=settings.login_max_failures,
            address_max_failures=settings.login_address_max_failures,
            device_max_failures=settings.device_key_max_failures,
            window=dt.timedelta(seconds=settings.login_failure_window_s),
            max_lockout=dt.timedelta(seconds=settings.login_max_lockout_s),
        )

    def backoff(self, failures: int, max_failures: int) -> dt.timedelta:
        """The wait after the ``failures``-th failure: none below the limit, then 1 s, 2 s, 4 s... capped."""
        if failures < max_failures:
            return dt.timedelta(0)
        exponent = failures - max_failures
        if exponent >= 31:  # 2^31 s is far beyond any sensible cap
            return self.max_lockout
        return min(dt.timedelta(seconds=2**exponent), self.max_lockout)


def retry_after_s(wait: dt.timedelta) -> int:
    """Whole seconds for Retry-After, rounded up and at least 1."""
    return max(1, -int(-wait.total_seconds() // 1))


def longest_lock(session: Session, keys: Sequence[Key], now: dt.datetime) -> dt.timedelta | None:
    """How long the longest lock among ``keys`` still runs at ``now``; None when none is locked."""
    matches = [and_(AuthThrottle.scope == key.scope, AuthThrottle.subject == key.subject) for key in keys]
    until = session.scalar(
        select(AuthThrottle.locked_until)
        .where(or_(*matches), AuthThrottle.locked_until > now)
        .order_by(AuthThrottle.locked_until.desc())
        .limit(1)
    )
    return None if until is None else until - now


def _upsert(session: Session) -> Any:
    """The dialect's INSERT with ON CONFLICT support (PostgreSQL and SQLite share the API)."""
    return postgresql.insert if session.get_bind().dialect.name == "postgresql" else sqlite.insert


def count_failure(session: Session, key: Key, now: dt.datetime, rules: Rules) -> int | None:
    """Count one failure of ``key`` and set the lock it earns; the new count, or None when the key is
    locked (nothing counted). The row stays locked until ``session`` commits."""
    stale = AuthThrottle.reset_at <= now
    statement = (
        _upsert(session)(AuthThrottle)
        .values(scope=key.scope, subject=key.subject, failures=1, reset_at=now + rules.window)
        .on_conflict_do_update(
            index_elements=["scope", "subject"],
            set_={
                "failures": case((stale, 1), else_=AuthThrottle.failures + 1),
                "locked_until": case((stale, None), else_=AuthThrottle.locked_until),
                "reset_at": now + rules.window,
            },
            where=or_(AuthThrottle.locked_until.is_(None), AuthThrottle.locked_until <= now),
        )
        .returning(AuthThrottle.failures)
    )
    failures: int | None = session.execute(statement).scalar_one_or_none()
    if failures is None:
        return None
    wait = rules.backoff(failures, key.max_failures)
    if wait:
        session.execute(
            update(AuthThrottle)
            .where(AuthThrottle.scope == key.scope, AuthThrottle.subject == key.subject)
            .values(locked_until=now + wait, reset_at=now + wait + rules.window)
        )
    return failures


def refund_failure(session: Session, key: Key) -> None:
    """Take back one failure counted in advance (the attempt succeeded), and the lock if it drops below."""
    below = AuthThrottle.failures - 1 < key.max_failures
    session.execute(
        update(AuthThrottle)
        .where(AuthThrottle.scope == key.scope, AuthThrottle.subject == key.subject)
        .where(AuthThrottle.failures > 0)
        .values(
            failures=AuthThrottle.failures - 1,
            locked_until=case((below, None), else_=AuthThrottle.locked_until),
        )
    )


def forget(session: Session, key: Key) -> None:
    session.execute(
        delete(AuthThrottle).where(AuthThrottle.scope == key.scope, AuthThrottle.subject == key.subject)
    )


def prune(session: Session, now: dt.datetime) -> None:
    """Delete up to a batch of stale rows (guesses at random usernames must not grow the table forever);
    rows another transaction holds are skipped, so pruning never waits on or deadlocks with a login."""
    stale_ids = (
        select(AuthThrottle.id)
        .where(AuthThrottle.reset_at <= now)
        .limit(PRUNE_BATCH)
        .with_for_update(skip_locked=True)
    )
    session.execute(delete(AuthThrottle).where(AuthThrottle.id.in_(stale_ids)))


def record_lockout(
    session: Session, key: Key, *, failures: int, address: str, now: dt.datetime, rules: Rules
) -> AuthLockout:
    lockout = AuthLockout(
        at=now,
        scope=key.scope,
        subject=key.subject,
        address=address,
        failures=failures,
        locked_until=now + rules.backoff(failures, key.max_failures),
    )
    session.add(lockout)
    return lockout
