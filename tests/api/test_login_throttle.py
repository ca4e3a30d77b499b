"""Failed logins and invalid device keys back off and lock, per account and per client address, in the
database (so every worker shares it), before any argon2 work; a success forgets the account's failures.

Time is a fake clock on the app's guard: no test sleeps.
"""

from __future__ import annotations

import datetime as dt
import logging
import re
import threading
from typing import Any

import pytest
from fastapi.testclient import TestClient

import api.auth
from api.app import create_app
from api.login_guard import LoginGuard
from api.models import Role
from api.throttle import Rules, TooManyRequests
from tests.api.builders import auth, make_device_key, make_operator
from tests.api.conftest import Store

pytestmark = pytest.mark.security

LOGIN = "/api/v1/auth/login"
PASSWORD = "correct-horse"  # the builders' password
RULES = Rules(
    account_max_failures=3,
    address_max_failures=6,
    device_max_failures=4,
    window=dt.timedelta(minutes=15),
    max_lockout=dt.timedelta(seconds=60),
)


class FakeClock:
    def __init__(self) -> None:
        self.now = dt.datetime(2026, 12, 9, 8, 0, tzinfo=dt.UTC)

    def __call__(self) -> dt.datetime:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += dt.timedelta(seconds=seconds)


class CountingHasher:
    """The argon2 hasher, counting the expensive calls (verify, and the unknown-user equaliser's hash)."""

    def __init__(self, inner: Any) -> None:
        self.inner = inner
        self.calls = 0

    def verify(self, password_hash: str, password: str) -> bool:
        self.calls += 1
        result: bool = self.inner.verify(password_hash, password)
        return result

    def hash(self, password: str) -> str:
        self.calls += 1
        result: str = self.inner.hash(password)
        return result


def make_guard(
    client: TestClient, clock: FakeClock, *, hash_slots: int = 2, hash_wait_s: float = 1.0
) -> LoginGuard:
    guard = LoginGuard(
        client.app.state.sessions,  # type: ignore[attr-defined]
        RULES,
        hash_slots=hash_slots,
        hash_wait_s=hash_wait_s,
        clock=clock,
    )
    client.app.state.login_guard = guard  # type: ignore[attr-defined]
    return guard


@pytest.fixture
def clock(client: TestClient) -> FakeClock:
    clock = FakeClock()
    make_guard(client, clock)
    return clock


@pytest.fixture
def hasher(monkeypatch: pytest.MonkeyPatch) -> CountingHasher:
    counting = CountingHasher(api.auth._hasher)
    monkeypatch.setattr(api.auth, "_hasher", counting)
    return counting


def log_in(client: TestClient, username: str, password: str) -> Any:
    return client.post(LOGIN, json={"username": username, "password": password})


def assert_throttled(response: Any, seconds: int) -> None:
    assert response.status_code == 429, response.text
    assert response.headers["Retry-After"] == str(seconds)
    body = response.json()
    assert body["code"] == "too_many_requests"
    assert body["retry_after_s"] == seconds
    assert f"{seconds} s" in body["detail"]


def test_failures_back_off_exponentially_and_lock_out_the_right_password(
    client: TestClient, store: Store, clock: FakeClock
) -> None:
    make_operator(store.sessions, Role.DISPATCHER, username="li")
    for _ in range(RULES.account_max_failures):
        assert log_in(client, "li", "wrong-pass").status_code == 401
    assert_throttled(log_in(client, "li", PASSWORD), 1)  # the right password too: 2^0 s
    clock.advance(1)
    assert log_in(client, "li", "wrong-pass").status_code == 401
    assert_throttled(log_in(client, "li", PASSWORD), 2)  # 2^1 s
    clock.advance(1.5)
    assert_throttled(log_in(client, "li", PASSWORD), 1)  # counts down, rounded up
    clock.advance(0.5)
    response = log_in(client, "li", PASSWORD)
    assert response.status_code == 200, response.text
    assert client.get("/api/v1/auth/me", headers=auth(response.json()["access_token"])).status_code == 200


def test_the_wait_doubles_up_to_the_cap(client: TestClient, store: Store, clock: FakeClock) -> None:
    admin = make_operator(store.sessions, Role.ADMIN, username="admin")
    make_operator(store.sessions, Role.DISPATCHER, username="li")
    for _ in range(RULES.account_max_failures + 8):
        assert log_in(client, "li", "wrong-pass").status_code == 401
        clock.advance(RULES.max_lockout.total_seconds())  # every lock has run out; the window has not
    lockouts = client.get("/api/v1/auth/lockouts", params={"limit": 500}, headers=auth(admin)).json()["data"]
    waits = [
        (dt.datetime.fromisoformat(x["locked_until"]) - dt.datetime.fromisoformat(x["at"])).total_seconds()
        for x in reversed(lockouts)
        if x["scope"] == "account"
    ]
    assert waits == [1, 2, 4, 8, 16, 32, 60, 60, 60]


def test_a_success_resets_the_accounts_count(client: TestClient, store: Store, clock: FakeClock) -> None:
    make_operator(store.sessions, Role.DISPATCHER, username="li")
    for _ in range(RULES.account_max_failures - 1):
        assert log_in(client, "li", "wrong-pass").status_code == 401
    assert log_in(client, "li", PASSWORD).status_code == 200
    for _ in range(RULES.account_max_failures - 1):
        assert log_in(client, "li", "wrong-pass").status_code == 401
    assert log_in(client, "li", PASSWORD).status_code == 200  # not locked: the count started over


def test_failures_are_forgotten_after_the_window(client: TestClient, store: Store, clock: FakeClock) -> None:
    make_operator(store.sessions, Role.DISPATCHER, username="li")
    for _ in range(RULES.account_max_failures - 1):
        assert log_in(client, "li", "wrong-pass").status_code == 401
    clock.advance(RULES.window.total_seconds() + 1)
    for _ in range(RULES.account_max_failures - 1):
        assert log_in(client, "li", "wrong-pass").status_code == 401
    assert log_in(client, "li", PASSWORD).status_code == 200


def test_argon2_is_not_run_while_locked(
    client: TestClient, store: Store, clock: FakeClock, hasher: CountingHasher
) -> None:
    make_operator(store.sessions, Role.DISPATCHER, username="li")
    hasher.calls = 0  # creating the user hashed its password
    for _ in range(RULES.account_max_failures):
        assert log_in(client, "li", "wrong-pass").status_code == 401
    # An unknown user costs an argon2 hash too (the timing equaliser).
    assert log_in(client, "nobody", "wrong-pass").status_code == 401
    calls = hasher.calls
    assert calls == RULES.account_max_failures + 1
    for _ in range(20):
        assert log_in(client, "li", PASSWORD).status_code == 429
    assert hasher.calls == calls


def test_the_count_is_per_account(client: TestClient, store: Store, clock: FakeClock) -> None:
    make_operator(store.sessions, Role.DISPATCHER, username="li")
    make_operator(store.sessions, Role.VIEWER, username="wang")
    for _ in range(RULES.account_max_failures):
        assert log_in(client, "li", "wrong-pass").status_code == 401
    assert log_in(client, "li", PASSWORD).status_code == 429
    assert log_in(client, "wang", "wrong-pass").status_code == 401  # another account from the same address
    assert log_in(client, "wang", PASSWORD).status_code == 200


def test_the_count_is_per_address(client: TestClient, store: Store, clock: FakeClock) -> None:
    make_operator(store.sessions, Role.DISPATCHER, username="li")
    # One address guessing at many accounts, none reaching its own limit, locks the address.
    for n in range(RULES.address_max_failures):
        assert log_in(client, f"guess-{n}", "wrong-pass").status_code == 401
    assert_throttled(log_in(client, "li", PASSWORD), 1)
    elsewhere = TestClient(client.app, client=("203.0.113.7", 40000))
    assert log_in(elsewhere, "li", PASSWORD).status_code == 200  # the account itself is not locked


def test_a_success_does_not_count_against_its_address(
    client: TestClient, store: Store, clock: FakeClock
) -> None:
    # An office behind one address: many good logins never lock it.
    make_operator(store.sessions, Role.DISPATCHER, username="li")
    for _ in range(RULES.address_max_failures * 2):
        assert log_in(client, "li", PASSWORD).status_code == 200


def test_lockouts_are_logged_and_listed_for_admins(
    client: TestClient, store: Store, clock: FakeClock, caplog: pytest.LogCaptureFixture
) -> None:
    admin = make_operator(store.sessions, Role.ADMIN, username="admin")
    viewer = make_operator(store.sessions, Role.VIEWER, username="viewer")
    make_operator(store.sessions, Role.DISPATCHER, username="li")
    with caplog.at_level(logging.WARNING, logger="api.login_guard"):
        for _ in range(RULES.account_max_failures):
            assert log_in(client, "li", "secret-guess").status_code == 401
        for _ in range(5):
            assert log_in(client, "li", "secret-guess").status_code == 429
    lockout_lines = [r.getMessage() for r in caplog.records if "lockout" in r.getMessage()]
    refusal_lines = [r.getMessage() for r in caplog.records if "refused while locked" in r.getMessage()]
    assert len(lockout_lines) == 1 and "'li'" in lockout_lines[0] and "testclient" in lockout_lines[0]
    assert len(refusal_lines) == 1  # rate-limited: five refusals, one line
    assert "secret-guess" not in caplog.text

    response = client.get("/api/v1/auth/lockouts", headers=auth(admin))
    assert response.status_code == 200, response.text
    body = response.json()
    assert body["count"] == 1
    (lockout,) = body["data"]
    assert (lockout["scope"], lockout["subject"], lockout["address"]) == ("account", "li", "testclient")
    assert lockout["failures"] == RULES.account_max_failures
    assert dt.datetime.fromisoformat(lockout["locked_until"]) == clock.now + dt.timedelta(seconds=1)
    assert "secret-guess" not in response.text
    assert client.get("/api/v1/auth/lockouts", headers=auth(viewer)).status_code == 403


def test_concurrent_guesses_cannot_pass_the_limit(client: TestClient, store: Store, clock: FakeClock) -> None:
    guard: LoginGuard = client.app.state.login_guard  # type: ignore[attr-defined]
    admitted: list[int] = []
    refused: list[int] = []
    start = threading.Barrier(8)

    def guess() -> None:
        start.wait()
        try:
            admission = guard.admit("li", "198.51.100.1")
        except TooManyRequests as exc:
            refused.append(exc.retry_after_s)
            return
        admitted.append(admission.counts[admission.keys[0]])

    threads = [threading.Thread(target=guess) for _ in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert sorted(admitted) == list(range(1, RULES.account_max_failures + 1))
    assert refused == [1] * (8 - RULES.account_max_failures)


def test_busy_password_checks_answer_503_and_count_nothing(
    client: TestClient, store: Store, hasher: CountingHasher
) -> None:
    clock = FakeClock()
    guard = make_guard(client, clock, hash_slots=1, hash_wait_s=0.0)
    make_operator(store.sessions, Role.DISPATCHER, username="li")
    hasher.calls = 0  # creating the user hashed its password
    assert guard._hash_slots.acquire()  # another login holds the only slot
    try:
        for _ in range(RULES.account_max_failures + 1):
            response = log_in(client, "li", PASSWORD)
            assert response.status_code == 503, response.text
            assert response.headers["Retry-After"] == "1"
            assert response.json()["code"] == "service_unavailable"
    finally:
        guard._hash_slots.release()
    assert hasher.calls == 0
    assert log_in(client, "li", PASSWORD).status_code == 200  # the refusals were not counted as failures


def test_invalid_device_keys_are_throttled_per_address_but_valid_keys_pass(
    client: TestClient, store: Store, clock: FakeClock
) -> None:
    key = make_device_key(store.sessions)
    config = "/api/v1/devices/me/config"
    wrong = {"X-Device-Key": key[:-4] + "AAAA"}
    for _ in range(RULES.device_max_failures):
        assert client.get(config, headers=wrong).status_code == 401
    response = client.get(config, headers=wrong)
    assert_throttled(response, 1)
    assert client.get(config, headers={"X-Device-Key": key}).status_code == 200  # failures only
    elsewhere = TestClient(client.app, client=("203.0.113.7", 40000))
    assert elsewhere.get(config, headers=wrong).status_code == 401
    clock.advance(1)
    assert client.get(config, headers=wrong).status_code == 401
    assert_throttled(client.get(config, headers=wrong), 2)


def test_the_setting_defaults_reach_the_guard(store: Store) -> None:
    with TestClient(create_app(store.settings, engine=store.engine)) as fresh:
        make_operator(store.sessions, Role.DISPATCHER, username="li")
        for _ in range(store.settings.login_max_failures):
            assert log_in(fresh, "li", "wrong-pass").status_code == 401
        response = log_in(fresh, "li", PASSWORD)
    assert response.status_code == 429
    assert 1 <= int(response.headers["Retry-After"]) <= 2


def csrf_of(html: str) -> str:
    match = re.search(r'name="csrf_token" value="([^"]+)"', html)
    assert match, html
    return match.group(1)


@pytest.mark.parametrize(
    ("lang", "message"),
    [("zh", "登录尝试过多，请在 1 秒后重试"), ("en", "Too many attempts; try again in 1 s")],
)
def test_the_console_login_page_shows_the_wait(
    client: TestClient, store: Store, clock: FakeClock, lang: str, message: str
) -> None:
    make_operator(store.sessions, Role.DISPATCHER, username="li")
    client.cookies.set("streetwatch_lang", lang)
    token = csrf_of(client.get("/console/login").text)
    form = {"username": "li", "password": "wrong-pass", "csrf_token": token}
    for _ in range(RULES.account_max_failures):
        assert client.post("/console/login", data=form, follow_redirects=False).status_code == 401
    response = client.post("/console/login", data={**form, "password": PASSWORD}, follow_redirects=False)
    assert response.status_code == 429
    assert response.headers["Retry-After"] == "1"
    assert message in response.text
    clock.advance(1)
    response = client.post("/console/login", data={**form, "password": PASSWORD}, follow_redirects=False)
    assert response.status_code == 303
