"""Jinja2 templates of the console: one environment per process, autoescaped, strict about undefined names.

Templates get ``t(key, **values)`` (translate), ``label(prefix, value)`` (a data value's translation,
e.g. a status, falling back to the raw value), the formatting helpers of :mod:`api.console.formatting`
(``dt(moment)`` and ``time_tag(moment)`` in the store's time zone, ``seconds=True`` for incident times;
``duration(seconds)``, ``countdown(deadline)``, ``say(message)``, ``note_of(event)``, ``actor(label)``),
the logged-in user, the navigation for their role and the CSRF token (``csrf_input()`` renders the
hidden field).
"""

from __future__ import annotations

from collections.abc import Callable
from functools import cache
from pathlib import Path
from typing import Any

from fastapi.responses import HTMLResponse
from jinja2 import Environment, FileSystemLoader, StrictUndefined, select_autoescape
from markupsafe import Markup, escape

from api.actors import display_names
from api.console.deps import Page
from api.console.formatting import (
    actor_text,
    countdown_text,
    duration,
    event_note,
    local_time,
    say,
    time_tag,
)
from api.console.i18n import LANGS, catalogue
from api.console.nav import nav_for
from api.console.security import CSRF_FIELD, set_csrf_cookie
from api.models import utcnow

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


def actor_formatter(page: Page) -> Callable[[str], str]:
    """``actor(label)`` for templates: display names looked up once per label per page."""
    names: dict[str, str] = {}

    def actor(label: str | None) -> str:
        if not label:
            return "—"
        if label not in names and ":" in label:
            names.update(display_names(page.session, [label]))
        return actor_text(label, names, page.lang)

    return actor


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
        "dt": lambda moment, seconds=False: local_time(moment, page.timezone, seconds=seconds),
        "time_tag": lambda moment, seconds=False: time_tag(moment, page.timezone, seconds=seconds),
        "duration": lambda seconds: duration(seconds, page.lang),
        "countdown": lambda deadline: countdown_text(deadline, utcnow(), page.lang),
        "say": lambda message: say(message, page.lang),
        "note_of": lambda event: event_note(event, page.lang),
        "actor": actor_formatter(page),
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
