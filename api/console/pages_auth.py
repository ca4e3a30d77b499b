"""Login, logout, the start page and the language switch."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Form, Query
from fastapi.responses import HTMLResponse, RedirectResponse, Response
from sqlalchemy import select

from api.auth import issue_token, sha256_hex
from api.console.deps import AnonymousPageDep, Page, PageDep
from api.console.i18n import parse_lang
from api.console.nav import home_for
from api.console.rendering import render
from api.console.security import CSRF_FIELD, check_csrf, safe_next, set_lang_cookie
from api.deps import TOKEN_COOKIE, SessionDep, SettingsDep
from api.login_guard import client_address, guard_for, guarded_login
from api.models import ApiToken, Role
from api.throttle import ServiceBusy, TooManyRequests

router = APIRouter(prefix="/console", include_in_schema=False)


@router.get("")
def console_root() -> RedirectResponse:
    return RedirectResponse("/console/", status_code=307)


@router.get("/")
def home(page: PageDep) -> RedirectResponse:
    return RedirectResponse(home_for(page.role), status_code=303)


@router.get("/login", response_class=HTMLResponse)
def login_form(
    page: AnonymousPageDep, next: Annotated[str | None, Query(max_length=2000)] = None
) -> Response:
    return render(page, "login.html", next=safe_next(next, ""), failed=False, refused="", username="")


@router.post("/login", response_class=HTMLResponse)
def login_submit(
    page: AnonymousPageDep,
    session: SessionDep,
    settings: SettingsDep,
    username: Annotated[str, Form(max_length=64)],
    password: Annotated[str, Form(max_length=200)],
    csrf_token: Annotated[str, Form(alias=CSRF_FIELD)] = "",
    next: Annotated[str, Form(max_length=2000)] = "",
) -> Response:
    check_csrf(page.request, csrf_token)
    try:
        user = guarded_login(
            guard_for(page.request),
            session,
            username=username,
            password=password,
            address=client_address(page.request),
        )
    except (TooManyRequests, ServiceBusy) as exc:
        return _refused(page, exc, next=next, username=username)
    if user is None:
        return render(
            page,
            "login.html",
            status_code=401,
            next=safe_next(next, ""),
            failed=True,
            refused="",
            username=username,
        )
    token, _row = issue_token(session, user, settings.token_ttl_hours)

    response = RedirectResponse(safe_next(next, home_for(Role(user.role))), status_code=303)
    # The API's own cookie: page auth and API auth are one and the same.
    response.set_cookie(
        TOKEN_COOKIE, token, httponly=True, samesite="strict", max_age=int(settings.token_ttl_hours * 3600)
    )
    return response


def _refused(page: Page, exc: TooManyRequests | ServiceBusy, *, next: str, username: str) -> Response:
    """The login form again, saying how long to wait (429 locked, 503 every password-check slot busy)."""
    seconds = exc.retry_after_s
    if isinstance(exc, TooManyRequests):
        message = page.t("login.throttled", seconds=seconds)
    else:
        message = page.t("login.busy", seconds=seconds)
    response = render(
        page,
        "login.html",
        status_code=exc.status_code,
        next=safe_next(next, ""),
        failed=False,
        refused=message,
        username=username,
    )
    response.headers["Retry-After"] = str(seconds)
    return response


@router.post("/logout")
def logout(
    page: PageDep, session: SessionDep, csrf_token: Annotated[str, Form(alias=CSRF_FIELD)] = ""
) -> RedirectResponse:
    check_csrf(page.request, csrf_token)
    token = page.request.cookies.get(TOKEN_COOKIE, "")
    row = session.scalar(select(ApiToken).where(ApiToken.token_hash == sha256_hex(token)))
    if row is not None:
        row.revoked = True  # this browser's session; the user's other sessions stay
    response = RedirectResponse("/console/login", status_code=303)
    response.delete_cookie(TOKEN_COOKIE)
    return response


@router.get("/lang/{lang}")
def switch_language(
    lang: str, next: Annotated[str | None, Query(max_length=2000)] = None
) -> RedirectResponse:
    response = RedirectResponse(safe_next(next), status_code=303)
    set_lang_cookie(response, parse_lang(lang))
    return response
