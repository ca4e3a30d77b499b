"""Console answers for errors: a redirect to log in, or an HTML page instead of the API's JSON."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from urllib.parse import quote

from fastapi import FastAPI, Request
from fastapi.responses import RedirectResponse, Response

from api.actors import Actor
from api.console.deps import LoginRequired, _page
from api.console.rendering import render
from api.console.security import CsrfError
from api.deps import get_actor, get_operator
from api.errors import ApiError

CONSOLE_PREFIX = "/console"
_KEYS = {403: "error.forbidden", 404: "error.not_found"}

Handler = Callable[[Request, Exception], Awaitable[Response]]


def error_page(
    request: Request, status_code: int, message_key: str, error: ApiError | None = None
) -> Response:
    """An error page in the user's language, with their navigation when they are logged in; ``error``'s
    catalogued message as the detail (uncatalogued: its English sentence, marked as such, in Chinese)."""
    session = request.app.state.sessions()
    try:
        actor: Actor | None
        try:
            actor = get_operator(get_actor(request, session, None, None))
        except ApiError:
            actor = None
        page = _page(request, session, actor)
        detail = page.error_text(error) if error is not None else ""
        english = error.message if error is not None and error.msg is None and page.lang != "en" else ""
        return render(
            page,
            "error.html",
            status_code=status_code,
            message=page.t(message_key),
            detail="" if detail == page.t(message_key) else detail,
            detail_en=english,
        )
    finally:
        session.close()


def install_error_handlers(app: FastAPI) -> None:
    """Console paths get HTML errors; everything else keeps the API's JSON handler."""
    api_handler: Handler | None = app.exception_handlers.get(ApiError)  # type: ignore[assignment]

    async def on_login_required(request: Request, exc: Exception) -> Response:
        if not isinstance(exc, LoginRequired):  # registered for this type only
            raise exc
        return RedirectResponse(f"/console/login?next={quote(exc.next_path, safe='/')}", status_code=303)

    async def on_csrf(request: Request, exc: Exception) -> Response:
        return error_page(request, 403, "error.csrf")

    async def on_api_error(request: Request, exc: Exception) -> Response:
        if not isinstance(exc, ApiError):  # registered for this type only
            raise exc
        if request.url.path.startswith(CONSOLE_PREFIX) or api_handler is None:
            key = _KEYS.get(exc.status_code, "error.title")
            return error_page(request, exc.status_code, key, exc)
        return await api_handler(request, exc)

    app.add_exception_handler(LoginRequired, on_login_required)
    app.add_exception_handler(CsrfError, on_csrf)
    app.add_exception_handler(ApiError, on_api_error)
