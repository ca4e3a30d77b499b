"""CSRF tokens, and the check on API calls that a browser authenticates with the console's cookie.

The token is a double-submit token: a random, HttpOnly, SameSite=Strict cookie, and the HMAC of that
cookie under the installation's secret key, which the console puts in its pages (``<meta
name="csrf-token">``). Console forms post it as a field (:mod:`api.console.security`); scripts calling the
JSON API send it as the :data:`CSRF_HEADER` header.

A bearer token or a device key in a header is not sent by a browser on its own, so requests carrying one
need no CSRF check. The cookie is, so an unsafe request authenticated by the cookie alone must prove that
it comes from a page of this site: the header with the right token, or a same-origin ``Origin``.
"""

from __future__ import annotations

import hashlib
import hmac
from typing import Final
from urllib.parse import urlsplit

from fastapi import Request

from api.errors import Forbidden
from api.secret_key import installation_secret

CSRF_COOKIE: Final = "streetwatch_csrf"
CSRF_HEADER: Final = "X-CSRF-Token"
SAFE_METHODS: Final = frozenset({"GET", "HEAD", "OPTIONS"})


class CsrfRejected(Forbidden):
    code = "csrf_rejected"


def console_secret(request: Request) -> bytes:
    """The installation's secret key, read once per app (the environment or the database: every host of
    the installation has the same one, :mod:`api.secret_key`)."""
    state = request.app.state
    secret: bytes | None = getattr(state, "console_secret", None)
    if secret is None:
        secret = installation_secret(state.settings, state.engine)
        state.console_secret = secret
    return secret


def csrf_token(secret: bytes, cookie_value: str) -> str:
    return hmac.new(secret, f"csrf:{cookie_value}".encode(), hashlib.sha256).hexdigest()


def token_matches(request: Request, posted: str | None) -> bool:
    """Whether ``posted`` is the token of this request's CSRF cookie."""
    cookie = request.cookies.get(CSRF_COOKIE)
    if not cookie or not posted:
        return False
    return hmac.compare_digest(csrf_token(console_secret(request), cookie), posted)


def _origin(url: str) -> str:
    parts = urlsplit(url)
    return f"{parts.scheme}://{parts.netloc}".lower()


def same_origin(request: Request) -> bool:
    """Whether the request's ``Origin`` is this site: the address it was sent to, or ``public_url``."""
    origin = request.headers.get("origin")
    if not origin or origin == "null":
        return False
    own = {_origin(str(request.base_url)), _origin(request.app.state.settings.public_url)}
    return origin.lower().rstrip("/") in own


def check_cookie_request(request: Request) -> None:
    """Raise :class:`CsrfRejected` for an unsafe request that the cookie authenticates without proof that
    it comes from this site."""
    if request.method in SAFE_METHODS:
        return
    if token_matches(request, request.headers.get(CSRF_HEADER)) or same_origin(request):
        return
    origin = request.headers.get("origin")
    found = f"Origin {origin!r}" if origin else "no Origin header"
    raise CsrfRejected(
        f"cross-site request refused: a {request.method} authenticated by the session cookie needs the "
        f"{CSRF_HEADER} header of the console page or a same-origin Origin; found {found} and "
        f"{'a wrong' if request.headers.get(CSRF_HEADER) else 'no'} {CSRF_HEADER}. "
        "Scripts outside the console should send an Authorization: Bearer token instead."
    )
