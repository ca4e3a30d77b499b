"""Jinja2 templates of the console: one environment per process, autoescaped, strict about undefined names.

Templates get ``t(key, **values)`` (translate), ``label(prefix, value)`` (a data value's translation,
e.g. a status, falling back to the raw value), ``dt(moment)`` (local time), the logged-in user, the
navigation for their role and the CSRF token (``csrf_input()`` renders the hidden field).
"""

from __future__ import annotations

import datetime as dt
from functools import cache
from pathlib import Path
from typing import Any

from fastapi.responses import HTMLResponse
from jinja2 import Environment, FileSystemLoader, StrictUndefined, select_autoescape
from markupsafe import Markup, escape

from api.console.deps import Page
from api.console.i18n import LANGS, catalogue
from api.console.nav import nav_for
from api.console.security import CSRF_FIELD, set_csrf_cookie

TEMPLATES_DIR = Path(__file__).resolve().parent / "templates"


@cache
def environment() -> Environment:
    return Environment(
        loader=FileSystemLoader(TEMPLATES_DIR),
        autoescape=select_autoescape(["html"]),
        undefined=StrictUndefined,
        trim_blocks=True,
        lstrip_blocks=True,
    )


def _label(page: Page, prefix: str, value: str | None) -> str:
    if value is None:
        return ""
    key = f"{prefix}.{value}"
    return page.t(key) if key in catalogue() else value


def _format_dt(page: Page, moment: dt.datetime | None) -> str:
    local = page.local(moment)
    return local.strftime("%Y-%m-%d %H:%M") if local else "—"


def _time_tag(page: Page, moment: dt.datetime | None) -> Markup:
    """A ``<time>`` element: local time as text, the exact UTC instant for scripts and tooltips."""
    if moment is None:
        return Markup("—")
    iso = moment.astimezone(dt.UTC).isoformat()
    return Markup('<time datetime="{0}" title="{0}">{1}</time>').format(iso, _format_dt(page, moment))


def page_globals(page: Page) -> dict[str, Any]:
    return {
        "page": page,
        "lang": page.lang,
        "langs": LANGS,
        "user": page.actor,
        "role": page.role.value if page.role else None,
        "display_name": page.display_name,
        "nav": nav_for(page.role),
        "path": page.request.url.path,
        "full_path": page.request.url.path + (f"?{page.request.url.query}" if page.request.url.query else ""),
        "t": page.t,
        "label": lambda prefix, value: _label(page, prefix, value),
        "dt": lambda moment: _format_dt(page, moment),
        "time_tag": lambda moment: _time_tag(page, moment),
        "csrf_token": page.csrf_token,
        "csrf_input": lambda: Markup('<input type="hidden" name="{}" value="{}">').format(
            CSRF_FIELD, escape(page.csrf_token)
        ),
    }


def render(page: Page, template: str, status_code: int = 200, **context: Any) -> HTMLResponse:
    """Render ``template`` for ``page``; sets the CSRF cookie when this browser has none yet."""
    html = environment().get_template(template).render(**page_globals(page), **context)
    response = HTMLResponse(html, status_code=status_code)
    if page.csrf_cookie_is_new:
        set_csrf_cookie(response, page.csrf_cookie)
    return response
