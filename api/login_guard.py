"""The guard in front of every password and device-key check: refuses locked accounts and addresses before
any argon2 work, bounds the argon2 checks one process runs at once, and logs lockouts for the security log.

A login is counted as a failure *in advance* (before argon2), so that concurrent guesses cannot all pass the
check before the first one fails; a success then forgets the account's count and refunds the address's.
Invalid device keys count only when they fail: a valid key is never slowed by a throttled neighbour behind
the same address, and a 256-bit key cannot be guessed anyway, so the throttle only sheds the load.

The client address is ``request.client.host``. Behind a reverse proxy uvicorn sets it from X-Forwarded-For,
but only for the proxies listed in its ``--forwarded-allow-ips`` / ``FORWARDED_ALLOW_IPS`` (default
127.0.0.1), so a client elsewhere cannot pick its own address.
"""

from __future__ import annotations

import datetime as dt
import logging
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field

from fastapi import Request
from sqlalchemy.orm import Session, sessionmaker

from api import throttle as th
from api.auth import login
from api.models import User, utcnow
from api.settings import Settings

log = logging.getLogger(__name__)
REFUSAL_LOG_INTERVAL = dt.timedelta(minutes=1)  # per key and process: a flood logs a line a minute
REFUSAL_LOG_MAX_KEYS = 10_000
BUSY_RETRY_AFTER_S = 1


def client_address(request: Request) -> str:
    return request.client.host if request.client else "unknown"


@dataclass
class Admission:
    """A login attempt let through, with the failure counts taken for it in advance."""

    keys: list[th.Key]
    address: str
    at: dt.datetime
    counts: dict[th.Key, int] = field(default_factory=dict)


class _Locked(Exception):
    """A key turned out locked while counting (a concurrent failure locked it): undo the transaction."""


class LoginGuard:
    def __init__(
        self,
        sessions: sessionmaker[Session],
        rules: th.Rules,
        *,
        hash_slots: int,
        hash_wait_s: float,
        clock: Callable[[], dt.datetime] = utcnow,
    ) -> None:
        self.sessions = sessions
        self.rules = rules
        self.clock = clock  # tests replace it: no real sleeping
        self._hash_slots = threading.BoundedSemaphore(hash_slots)
        self._hash_wait_s = hash_wait_s
        self._last_refusal_log: dict[tuple[tuple[str, str], ...], dt.datetime] = {}
        self._log_lock = threading.Lock()

    @classmethod
    def from_settings(cls, sessions: sessionmaker[Session], settings: Settings) -> LoginGuard:
        return cls(
            sessions,
            th.Rules.from_settings(settings),
            hash_slots=settings.login_hash_concurrency,
            hash_wait_s=settings.login_hash_wait_s,
        )

    def login_keys(self, username: str, address: str) -> list[th.Key]:
        # Account first, then address: one lock order in every process, so two logins never deadlock.
        return [
            th.Key(th.ACCOUNT, username, self.rules.account_max_failures),
            th.Key(th.ADDRESS, address, self.rules.address_max_failures),
        ]

    def refuse_if_locked(self, keys: list[th.Key], address: str) -> None:
        """Raise TooManyRequests when a key is locked; a read only, so a flood of refusals writes nothing."""
        now = self.clock()
        with self.sessions() as session:
            wait = th.longest_lock(session, keys, now)
        if wait is not None:
            self._refuse(keys, address, wait)

    def admit(self, username: str, address: str) -> Admission:
        """Count the attempt as a failure in advance; raises TooManyRequests when the account or address is
        locked. Call inside :meth:`hashing`, so a login that finds no slot is not counted."""
        admission = Admission(self.login_keys(username, address), address, self.clock())
        try:
            with self.sessions.begin() as session:
                for key in admission.keys:
                    count = th.count_failure(session, key, admission.at, self.rules)
                    if count is None:
                        raise _Locked
                    admission.counts[key] = count
                    if key.scope == th.ACCOUNT and count == 1:
                        th.prune(session, admission.at)
        except _Locked:
            self.refuse_if_locked(admission.keys, address)
            raise th.TooManyRequests(  # the lock ran out between the two reads: try again at once
                "too many failed attempts; try again in 1 s", retry_after_s=1
            ) from None
        return admission

    def failed(self, admission: Admission) -> None:
        """The password was wrong: record (and log) each lock the advance count set."""
        with self.sessions.begin() as session:
            for key, count in admission.counts.items():
                if count >= key.max_failures:
                    self._lockout(session, key, count, admission.address, admission.at)

    def succeeded(self, admission: Admission) -> None:
        """The password was right: forget the account's failures, take back the address's advance count."""
        account, address = admission.keys
        with self.sessions.begin() as session:
            th.forget(session, account)
            th.refund_failure(session, address)

    @contextmanager
    def hashing(self) -> Iterator[None]:
        """One of this process's argon2 slots (each check takes 64 MiB and a core): wait briefly, else 503."""
        if not self._hash_slots.acquire(timeout=self._hash_wait_s):
            log.warning("login refused: every password-check slot is busy")
            raise th.ServiceBusy(
                f"too many logins are being checked; try again in {BUSY_RETRY_AFTER_S} s",
                retry_after_s=BUSY_RETRY_AFTER_S,
            )
        try:
            yield
        finally:
            self._hash_slots.release()

    def device_key_keys(self, address: str) -> list[th.Key]:
        return [th.Key(th.DEVICE, address, self.rules.device_max_failures)]

    def device_key_failed(self, address: str) -> None:
        """An invalid device key from ``address``: raise TooManyRequests when the address is locked, else
        count the failure (the caller answers 401)."""
        keys = self.device_key_keys(address)
        self.refuse_if_locked(keys, address)
        now = self.clock()
        with self.sessions.begin() as session:
            count = th.count_failure(session, keys[0], now, self.rules)
            if count is not None and count >= keys[0].max_failures:
                self._lockout(session, keys[0], count, address, now)

    def _lockout(self, session: Session, key: th.Key, count: int, address: str, now: dt.datetime) -> None:
        lockout = th.record_lockout(session, key, failures=count, address=address, now=now, rules=self.rules)
        # %r: a username is user input and must not forge log lines; the password is never logged.
        log.warning(
            "credential lockout: %s %r after %d failures, locked until %s (client address %s)",
            key.scope,
            key.subject,
            count,
            lockout.locked_until.isoformat(),
            address,
        )

    def _refuse(self, keys: list[th.Key], address: str, wait: dt.timedelta) -> None:
        seconds = th.retry_after_s(wait)
        self._log_refusal(keys, address, seconds)
        raise th.TooManyRequests(f"too many failed attempts; try again in {seconds} s", retry_after_s=seconds)

    def _log_refusal(self, keys: list[th.Key], address: str, seconds: int) -> None:
        now = self.clock()
        subject = tuple((key.scope, key.subject) for key in keys)
        with self._log_lock:
            last = self._last_refusal_log.get(subject)
            if last is not None and now - last < REFUSAL_LOG_INTERVAL:
                return
            if len(self._last_refusal_log) >= REFUSAL_LOG_MAX_KEYS:
                self._last_refusal_log.clear()  # bounded state: worst case a few extra log lines
            self._last_refusal_log[subject] = now
        log.warning(
            "credential refused while locked: %s from client address %s, %d s left (logged once a minute)",
            ", ".join(f"{key.scope} {key.subject!r}" for key in keys),
            address,
            seconds,
        )


def guarded_login(
    guard: LoginGuard, session: Session, *, username: str, password: str, address: str
) -> User | None:
    """:func:`api.auth.login` behind the guard: raises TooManyRequests or ServiceBusy before any argon2."""
    guard.refuse_if_locked(guard.login_keys(username, address), address)
    with guard.hashing():
        admission = guard.admit(username, address)
        user = login(session, username, password)
    if user is None:
        guard.failed(admission)
    else:
        guard.succeeded(admission)
    return user


_create_lock = threading.Lock()


def guard_for(request: Request) -> LoginGuard:
    """The app's guard, made on first use (one per process, so one set of argon2 slots per process)."""
    state = request.app.state
    guard: LoginGuard | None = getattr(state, "login_guard", None)
    if guard is None:
        with _create_lock:
            guard = getattr(state, "login_guard", None)
            if guard is None:
                guard = LoginGuard.from_settings(state.sessions, state.settings)
                state.login_guard = guard
    return guard
