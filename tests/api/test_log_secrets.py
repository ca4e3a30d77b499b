"""No credential reaches the logs: the redaction filter on its own, and a real uvicorn server's logs after
a day's worth of logins, device calls and Open311 calls with the key in the query string."""

from __future__ import annotations

import logging
import re
from collections.abc import Iterator
from contextlib import contextmanager

import httpx
import pytest
from uvicorn.logging import AccessFormatter

from api.log_redaction import REDACTED, RedactSecrets, redact
from api.models import Role
from tests.api.builders import case_report, make_device_key, make_operator, make_world
from tests.api.conftest import Store
from tests.api.live_server import serve

pytestmark = pytest.mark.security

DEVICE_KEY = "swd_0a1b2c3d4e5f_Zm9vYmFyLWJhei1xdXV4LTEyMzQ1Njc4OTAtYWJjZGVm"
TOKEN = "swt_AbCdEfGhIjKlMnOpQrStUvWxYz0123456789-_abcde"
META_TOKEN = re.compile(r'name="csrf-token" content="([0-9a-f]+)"')


@pytest.mark.parametrize(
    ("line", "kept", "secret"),
    [
        ("GET /open311/v2/requests.json?api_key=opaque-key-1&status=open", "status=open", "opaque-key-1"),
        ("GET /x?token=opaque-2&v=3", "v=3", "opaque-2"),
        ("GET /x?key=opaque-3", "GET /x?key=", "opaque-3"),
        ("POST /y?access_token=opaque-4", "access_token=", "opaque-4"),
        ("username=li&password=correct-horse&csrf_token=abc123", "username=li", "correct-horse"),
        ("username=li&password=correct-horse&csrf_token=abc123", "username=li", "abc123"),
        ("Authorization: Bearer opaque-5", "Authorization:", "opaque-5"),
        ("headers {'x-device-key': 'opaque-6'}", "x-device-key", "opaque-6"),
        ("cookie: streetwatch_token=opaque-7; streetwatch_lang=en", "cookie", "opaque-7"),
        (f"device {DEVICE_KEY} reported", "device ", DEVICE_KEY.split("_")[2]),
        (f"the token is {TOKEN}.", "the token is ", TOKEN[4:]),
    ],
)
def test_redact_blanks_the_secret_and_keeps_the_rest(line: str, kept: str, secret: str) -> None:
    redacted = redact(line)

    assert secret not in redacted
    assert kept in redacted and REDACTED in redacted


def test_redact_leaves_lines_without_secrets_alone() -> None:
    line = 'GET /console/cameras/cam-1?v=0f3a HTTP/1.1" 200 /api/v1/cases?status=filed&limit=50'

    assert redact(line) == line


def _record(msg: str, args: tuple[object, ...]) -> logging.LogRecord:
    return logging.LogRecord("uvicorn.access", logging.INFO, __file__, 1, msg, args, None)


def test_the_filter_keeps_uvicorn_access_lines_formattable() -> None:
    record = _record(
        '%s - "%s %s HTTP/%s" %d',
        ("127.0.0.1:5000", "GET", f"/open311/v2/services.json?api_key={TOKEN}", "1.1", 200),
    )

    assert RedactSecrets().filter(record)
    line = AccessFormatter("%(client_addr)s %(request_line)s %(status_code)s").format(record)

    assert line == f"127.0.0.1:5000 GET /open311/v2/services.json?api_key={REDACTED} HTTP/1.1 200 OK"


def test_the_filter_keeps_placeholders_of_a_message_with_arguments() -> None:
    record = _record("device key=%s token=%s", (DEVICE_KEY, TOKEN))

    RedactSecrets().filter(record)

    assert record.getMessage() == f"device key=swd_{REDACTED} token=swt_{REDACTED}"


# --- the real thing: uvicorn's own loggers, every secret a day issues -------------------------------------


class Capture(logging.Handler):
    def __init__(self) -> None:
        super().__init__(logging.DEBUG)
        self.lines: list[str] = []
        self.access = AccessFormatter('%(client_addr)s - "%(request_line)s" %(status_code)s')

    def emit(self, record: logging.LogRecord) -> None:
        formatter = self.access if record.name == "uvicorn.access" else logging.Formatter()
        self.lines.append(f"{record.name}: {formatter.format(record)}")


@contextmanager
def captured_logs(*names: str) -> Iterator[Capture]:
    """Every record of the named loggers (and their children) at DEBUG, as its handlers would write it."""
    capture = Capture()
    # Uvicorn's own logging config (applied by any earlier server in the run) stops uvicorn.access from
    # propagating: attach to the named loggers' existing children too, and enable them for the test.
    known = [n for n in logging.root.manager.loggerDict if any(n.startswith(f"{name}.") for name in names)]
    loggers = [logging.getLogger(name) for name in (*names, *known)]
    saved = [(logger.level, logger.disabled) for logger in loggers]
    for logger in loggers:
        logger.addHandler(capture)
        logger.setLevel(logging.DEBUG)
        logger.disabled = False
    try:
        yield capture
    finally:
        for logger, (level, disabled) in zip(loggers, saved, strict=True):
            logger.removeHandler(capture)
            logger.setLevel(level)
            logger.disabled = disabled


def _a_day_of_requests(url: str, store: Store) -> list[str]:
    """Log in (API and console), call the API with each credential; returns every secret issued."""
    make_world(store.sessions)
    seeded_token = make_operator(store.sessions, Role.SHIFT_LEADER, username="li")  # password correct-horse
    device_key = make_device_key(store.sessions)
    secrets = ["correct-horse", seeded_token, device_key, device_key.split("_", 2)[2]]
    with httpx.Client(base_url=url, timeout=10) as api:
        login = api.post("/api/v1/auth/login", json={"username": "li", "password": "correct-horse"})
        assert login.status_code == 200, login.text
        token = login.json()["access_token"]
        secrets += [token, api.cookies["streetwatch_token"]]
        bearer = {"Authorization": f"Bearer {token}"}
        api.cookies.clear()
        assert api.get("/api/v1/auth/me", headers=bearer).status_code == 200
        assert api.get("/api/v1/devices/me/config", headers={"X-Device-Key": device_key}).status_code == 200
        device_bearer = {"Authorization": f"Bearer {device_key}"}
        report = api.post("/api/v1/cases", json=case_report("log-report-1"), headers=device_bearer)
        assert report.status_code in (200, 201), report.text
        for key in (token, device_key):
            assert api.get("/open311/v2/services.json", params={"api_key": key}).status_code == 200
        assert (
            api.get("/open311/v2/requests.json", params={"api_key": token, "status": "open"}).status_code
            == 200
        )
        refused = api.get("/open311/v2/requests.json", params={"api_key": device_key, "key": device_key})
        assert refused.status_code == 403
        assert api.get("/no/such/page", params={"token": token}).status_code == 404
    with httpx.Client(base_url=url, timeout=10) as browser:
        page = browser.get("/console/login")
        form_token = META_TOKEN.search(page.text)
        assert form_token is not None
        secrets += [form_token.group(1), browser.cookies["streetwatch_csrf"]]
        form = {"username": "li", "password": "correct-horse", "csrf_token": form_token.group(1)}
        assert browser.post("/console/login", data=form).status_code == 303
        secrets.append(browser.cookies["streetwatch_token"])
        assert browser.get("/console/review").status_code == 200
    return secrets


def test_a_real_servers_logs_hold_none_of_the_secrets_it_issued(store: Store) -> None:
    with (
        captured_logs("uvicorn", "api") as logs,
        serve(store, log_config=None, log_level="debug", access_log=True) as url,
    ):
        secrets = _a_day_of_requests(url, store)

    text = "\n".join(logs.lines)
    assert 'GET /open311/v2/services.json?api_key=[REDACTED] HTTP/1.1" 200' in text  # the access log ran
    assert "POST /console/login HTTP/1.1" in text
    for secret in secrets:
        assert len(secret) >= 8
        assert secret not in text, f"a secret ({secret[:4]}...) is in the logs"
