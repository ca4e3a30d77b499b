"""Browser-facing hardening of the case store: security headers on every response, CSRF on API calls that
the console's cookie authenticates, Secure cookies over HTTPS, and the Open311 key in a header."""

from __future__ import annotations

import re
from collections.abc import Iterator

import pytest
from fastapi.testclient import TestClient

from api.app import create_app
from api.models import Role
from api.security_headers import CONTENT_SECURITY_POLICY
from tests.api.builders import auth, make_operator, make_pending_case, make_world
from tests.api.conftest import Store

pytestmark = pytest.mark.security

FOREIGN = "https://evil.example"
META_TOKEN = re.compile(r'name="csrf-token" content="([0-9a-f]+)"')
EXPECTED_HEADERS = {
    "content-security-policy": CONTENT_SECURITY_POLICY,
    "x-frame-options": "DENY",
    "x-content-type-options": "nosniff",
    "referrer-policy": "same-origin",
}


def _status(store: Store, case_id: int) -> str:
    from api.models import Case

    with store.sessions() as session:
        case = session.get(Case, case_id)
        assert case is not None
        return case.status


def _cookie_login(client: TestClient, username: str = "shift_leader-0") -> str:
    """Log in as a browser does, keep only the cookie; returns the console page's CSRF token."""
    response = client.post("/api/v1/auth/login", json={"username": username, "password": "correct-horse"})
    assert response.status_code == 200, response.text
    page = client.get("/console/review")
    assert page.status_code == 200, page.text
    match = META_TOKEN.search(page.text)
    assert match is not None
    return match.group(1)


@pytest.fixture
def case_id(store: Store) -> int:
    world = make_world(store.sessions)
    make_operator(store.sessions, Role.SHIFT_LEADER)
    return make_pending_case(store.sessions, place_id=world.place_id)


@pytest.mark.parametrize(
    "path", ["/console/login", "/healthz", "/api/v1/cases", "/no/such/path", "/console/static/console.js"]
)
def test_every_response_carries_the_security_headers(client: TestClient, path: str) -> None:
    response = client.get(path)

    for name, value in EXPECTED_HEADERS.items():
        assert response.headers.get(name) == value, (path, name, response.status_code)


@pytest.mark.parametrize("origin", [FOREIGN, None, "null"])
def test_a_cross_site_post_with_only_the_cookie_is_refused(
    client: TestClient, store: Store, case_id: int, origin: str | None
) -> None:
    _cookie_login(client)
    headers = {"Content-Type": "text/plain"} | ({"Origin": origin} if origin else {})

    response = client.post(f"/api/v1/cases/{case_id}/actions/file", content=b"", headers=headers)

    assert response.status_code == 403, response.text
    body = response.json()
    assert body["code"] == "csrf_rejected"
    assert "X-CSRF-Token" in body["detail"] and "session cookie" in body["detail"]
    assert _status(store, case_id) == "pending_review"


def test_a_wrong_csrf_header_is_refused(client: TestClient, store: Store, case_id: int) -> None:
    _cookie_login(client)

    response = client.post(
        f"/api/v1/cases/{case_id}/actions/file", headers={"X-CSRF-Token": "0" * 64, "Origin": FOREIGN}
    )

    assert response.status_code == 403
    assert "a wrong X-CSRF-Token" in response.json()["detail"]
    assert _status(store, case_id) == "pending_review"


def test_the_console_pages_token_in_the_header_lets_the_cookie_act(
    client: TestClient, store: Store, case_id: int
) -> None:
    token = _cookie_login(client)

    response = client.post(f"/api/v1/cases/{case_id}/actions/file", headers={"X-CSRF-Token": token})

    assert response.status_code == 200, response.text
    assert _status(store, case_id) != "pending_review"  # filed (and dispatched where a route matches)


def test_a_same_origin_request_with_the_cookie_is_accepted(
    client: TestClient, store: Store, case_id: int
) -> None:
    _cookie_login(client)

    response = client.post(f"/api/v1/cases/{case_id}/actions/file", headers={"Origin": "http://testserver"})

    assert response.status_code == 200, response.text
    assert _status(store, case_id) != "pending_review"  # filed (and dispatched where a route matches)


def test_reads_with_the_cookie_need_no_csrf_token(client: TestClient, case_id: int) -> None:
    _cookie_login(client)

    assert client.get(f"/api/v1/cases/{case_id}", headers={"Origin": FOREIGN}).status_code == 200


def test_bearer_requests_need_no_csrf_token(client: TestClient, store: Store, case_id: int) -> None:
    token = make_operator(store.sessions, Role.SHIFT_LEADER, username="li")
    client.cookies.clear()

    response = client.post(
        f"/api/v1/cases/{case_id}/actions/file", headers={**auth(token), "Origin": FOREIGN}
    )

    assert response.status_code == 200, response.text


def test_open311_post_with_only_the_cookie_is_refused_cross_site(
    client: TestClient, store: Store, case_id: int
) -> None:
    _cookie_login(client)

    response = client.post(
        "/open311/v2/requests.json", data={"service_code": "0102"}, headers={"Origin": FOREIGN}
    )

    assert response.status_code == 403
    assert "cross-site request refused" in response.json()[0]["description"]


def test_open311_takes_the_key_from_the_x_api_key_header(client: TestClient, store: Store) -> None:
    make_world(store.sessions)
    token = make_operator(store.sessions, Role.DISPATCHER)
    client.cookies.clear()

    accepted = client.get("/open311/v2/services.json", headers={"X-API-Key": token})
    refused = client.get("/open311/v2/services.json", headers={"X-API-Key": "swt_not-a-real-token"})

    assert accepted.status_code == 200, accepted.text
    assert {s["service_code"] for s in accepted.json()} >= {"0102", "0505"}
    assert refused.status_code == 403


def _set_cookies(response_headers: list[tuple[str, str]]) -> dict[str, str]:
    cookies = [value for name, value in response_headers if name.lower() == "set-cookie"]
    return {cookie.split("=", 1)[0]: cookie for cookie in cookies}


def _cookies_of_logins(client: TestClient) -> dict[str, str]:
    """The Set-Cookie headers of the console's login page and of an API login."""
    page = client.get("/console/login")
    login = client.post("/api/v1/auth/login", json={"username": "li", "password": "correct-horse"})
    assert login.status_code == 200, login.text
    return _set_cookies(page.headers.multi_items()) | _set_cookies(login.headers.multi_items())


@pytest.fixture
def https_client(store: Store) -> Iterator[TestClient]:
    with TestClient(create_app(store.settings, engine=store.engine), base_url="https://testserver") as c:
        yield c


def test_cookies_are_secure_over_https(https_client: TestClient, store: Store) -> None:
    make_operator(store.sessions, Role.SHIFT_LEADER, username="li")

    cookies = _cookies_of_logins(https_client)

    assert set(cookies) == {"streetwatch_csrf", "streetwatch_token"}
    for cookie in cookies.values():
        assert re.search(r";\s*Secure(;|$)", cookie, re.IGNORECASE), cookie
        assert cookie.lower().count("secure") == 1, cookie


def test_cookies_over_plain_http_are_not_secure_unless_forced(client: TestClient, store: Store) -> None:
    make_operator(store.sessions, Role.SHIFT_LEADER, username="li")
    plain = _cookies_of_logins(client)
    forced_settings = store.settings.model_copy(update={"cookie_secure": True})
    with TestClient(create_app(forced_settings, engine=store.engine)) as forced_client:
        forced = _cookies_of_logins(forced_client)

    assert set(plain) == set(forced) == {"streetwatch_csrf", "streetwatch_token"}
    assert not any("secure" in cookie.lower() for cookie in plain.values())
    assert all(cookie.lower().endswith("; secure") for cookie in forced.values())


@pytest.mark.parametrize(
    ("allow", "expected"), [(None, {"proxy_headers": False}), ("10.0.0.5", {"proxy_headers": True})]
)
def test_serve_trusts_forwarded_headers_only_from_configured_proxies(
    store: Store, monkeypatch: pytest.MonkeyPatch, allow: str | None, expected: dict[str, object]
) -> None:
    import uvicorn
    from typer.testing import CliRunner

    from streetwatch.cli import app as cli

    calls: list[dict[str, object]] = []
    monkeypatch.setattr(uvicorn, "run", lambda *args, **kwargs: calls.append(kwargs))
    if allow:
        monkeypatch.setenv("STREETWATCH_FORWARDED_ALLOW_IPS", allow)
    # through monkeypatch, which puts the environment back afterwards (the command writes these two)
    monkeypatch.setenv("STREETWATCH_DATA_DIR", str(store.settings.data_dir))
    if store.settings.database_url:
        monkeypatch.setenv("STREETWATCH_DATABASE_URL", store.settings.database_url)
    else:
        monkeypatch.delenv("STREETWATCH_DATABASE_URL", raising=False)

    result = CliRunner().invoke(cli, ["api", "serve"])

    assert result.exit_code == 0, result.output
    assert calls and calls[0]["proxy_headers"] == expected["proxy_headers"]
    assert calls[0]["forwarded_allow_ips"] == allow
