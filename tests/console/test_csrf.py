"""Form posts without the CSRF token of their own cookie are refused, and change nothing."""

from __future__ import annotations

import re
from collections.abc import Iterator
from contextlib import contextmanager

import httpx
import pytest

from tests.console.conftest import PASSWORD, ConsoleWorld

pytestmark = pytest.mark.security

TOKEN = re.compile(r'name="csrf-token" content="([0-9a-f]+)"')


@contextmanager
def _logged_in(console: ConsoleWorld) -> Iterator[tuple[httpx.Client, str]]:
    """A client logged in as the shift leader through the login form, and its page's CSRF token."""
    with httpx.Client(base_url=console.url, timeout=10) as client:
        yield client, _login(client)


def _login(client: httpx.Client) -> str:
    token = TOKEN.search(client.get("/console/login").text)
    assert token is not None
    response = client.post(
        "/console/login", data={"username": "li", "password": PASSWORD, "csrf_token": token.group(1)}
    )
    assert response.status_code == 303, response.text
    page = client.get("/console/review")
    match = TOKEN.search(page.text)
    assert match is not None
    return match.group(1)


def test_decisions_need_the_token_of_their_cookie(console: ConsoleWorld) -> None:
    case_id = console.report()
    with _logged_in(console) as (client, token):
        form = {"decision": "file", "case_id": str(case_id)}
        assert client.post("/console/review/decide", data=form).status_code == 403
        assert client.post("/console/review/decide", data={**form, "csrf_token": "0" * 64}).status_code == 403
        other_cookie = {"streetwatch_csrf": "another-browsers-cookie"}
        client.cookies.update(other_cookie)  # a token minted for another cookie does not fit this one
        assert client.post("/console/review/decide", data={**form, "csrf_token": token}).status_code == 403
        assert console.store.case(case_id).status == "pending_review"


def test_login_needs_the_token_too(console: ConsoleWorld) -> None:
    with httpx.Client(base_url=console.url, timeout=10) as client:
        response = client.post("/console/login", data={"username": "li", "password": PASSWORD})
        assert response.status_code == 403
        assert "streetwatch_token" not in response.cookies


def test_with_the_token_the_decision_is_taken(console: ConsoleWorld) -> None:
    case_id = console.report()
    with _logged_in(console) as (client, token):
        response = client.post(
            "/console/review/decide",
            data={"decision": "file", "case_id": str(case_id), "csrf_token": token},
            headers={"Accept": "application/json"},
        )
        assert response.status_code == 200
        assert response.json()["results"][0]["ok"] is True
    assert console.store.case(case_id).status == "dispatched"
