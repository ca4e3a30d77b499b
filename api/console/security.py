"""CSRF protection for the console's form posts and the language cookie.

The auth cookie is the API's own (``SameSite=Strict``, HttpOnly), so a cross-site form already arrives
without it; the CSRF token is the second lock. It is a double-submit token (:mod:`api.csrf`): a random,
HttpOnly, SameSite=Strict cookie, and in every form the HMAC of that cookie under the installation's
secret key. A request is accepted only when the posted token matches the cookie it came with. The login
form is protected the same way, before anyone is logged in.
"""

from __future__ import annotations

import secrets
from typing import Final

from fastapi import Request, Response

from api.console.i18n import Lang, parse_lang
from api.csrf import CSRF_COOKIE as CSRF_COOKIE  # re-exported: the console's modules import them here
from api.csrf import console_secret as console_secret
from api.csrf import csrf_token as csrf_token
from api.csrf import token_matches

CSRF_FIELD: Final = "csrf_token"
LANG_COOKIE: Final = "streetwatch_lang"
ONE_YEAR_S: Final = 365 * 24 * 3600


class CsrfError(Exception):
    """A form post whose CSRF token is missing or does not match its cookie."""


def csrf_cookie_value(request: Request) -> tuple[str, bool]:
    """The browser's CSRF cookie, or a fresh one; the flag says whether it must be set on the response."""
    value = request.cookies.get(CSRF_COOKIE)
    if value and 16 <= len(value) <= 128:
        return value, False
    return secrets.token_urlsafe(24), True


def check_csrf(request: Request, posted: str | None) -> None:
    """Raise :class:`CsrfError` unless ``posted`` is the token of this request's CSRF cookie."""
    if not request.cookies.get(CSRF_COOKIE) or not posted:
        raise CsrfError("missing CSRF cookie or token")
    if not token_matches(request, posted):
        raise CsrfError("CSRF token does not match its cookie")


def set_csrf_cookie(response: Response, value: str) -> None:
    response.set_cookie(CSRF_COOKIE, value, httponly=True, samesite="strict", path="/")


def request_lang(request: Request) -> Lang:
    return parse_lang(request.cookies.get(LANG_COOKIE))


def set_lang_cookie(response: Response, lang: Lang) -> None:
    response.set_cookie(LANG_COOKIE, lang, max_age=ONE_YEAR_S, samesite="lax", path="/")


def safe_next(target: str | None, default: str = "/console/") -> str:
    """Only same-site console paths may be redirect targets (no open redirect to another host)."""
    if target and target.startswith("/console") and not target.startswith("//") and "\\" not in target:
        return target
    return default
