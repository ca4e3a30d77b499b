"""The operator console: server-rendered pages (Jinja2, a little vanilla JS) served by the case store.

How to add an area (one module per area):

1. ``api/console/pages_<area>.py`` with
   ``router = APIRouter(prefix="/console/<area>", include_in_schema=False)``;
   handlers take :data:`api.console.deps.PageDep` (login, language, CSRF token, time zone) and return
   :func:`api.console.rendering.render` (page, "<area>/<name>.html", **context).
2. Templates in ``api/console/templates/<area>/`` extending ``base.html`` (blocks ``title``, ``content``,
   ``scripts``); every visible string through ``t("<area>.key")``.
3. Messages in ``api/console/i18n/<area>.py`` as ``MESSAGES = {"<area>.key": ("中文", "English")}``.
4. Form posts carry ``{{ csrf_input() }}`` and the handler calls
   :func:`api.console.security.check_csrf` first.
5. Add the module to :data:`PAGE_MODULES` below and, if it needs one, a link in :mod:`api.console.nav`.
6. Chinese first: times through ``time_tag``/``dt`` (the store's time zone; :mod:`api.console.formatting`
   also for CSV and reports), spans through ``duration``, people through ``actor(label)``, cameras and
   violation types through :mod:`api.console.names`, refusals through ``page.error_text(error)``;
   an identifier shown as one in ``<code>``. Add the page to ``ZH_PAGES`` in
   ``tests/console/test_zh.py`` (one line): the crawl fails on English on a zh page.
"""

from __future__ import annotations

from pathlib import Path

from fastapi import FastAPI
from fastapi.staticfiles import StaticFiles

from api.console import (
    admin,
    pages_auth,
    pages_board,
    pages_cameras,
    pages_cases,
    pages_dashboards,
    pages_labels,
    pages_models,
    pages_review,
    pages_search,
    pages_suppressions,
)
from api.console.errors import install_error_handlers

STATIC_DIR = Path(__file__).resolve().parent / "static"
PAGE_MODULES = (
    pages_auth,
    pages_review,
    pages_cases,
    pages_labels,
    pages_board,
    pages_cameras,
    pages_suppressions,
    pages_dashboards,
    *admin.MODULES,
    pages_search,
    pages_models,
)


def register(app: FastAPI) -> None:
    """Mount the console on ``app``: its pages under /console, static files, HTML error handling."""
    for module in PAGE_MODULES:
        app.include_router(module.router)
    app.mount("/console/static", StaticFiles(directory=STATIC_DIR), name="console-static")
    install_error_handlers(app)
