"""Rendering the admin pages: the areas' sub-navigation, a list's rows, the "saved" confirmation."""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass, field
from typing import Any

from fastapi.responses import HTMLResponse

from api.console.deps import Page
from api.console.rendering import render

# (i18n key, path) of each area, in the order of the sub-navigation
AREAS: tuple[tuple[str, str], ...] = (
    ("admin.units.title", "/console/admin/units"),
    ("admin.places.title", "/console/admin/places"),
    ("admin.violation_types.title", "/console/admin/violation-types"),
    ("admin.routing.title", "/console/admin/routing"),
    ("admin.calendar.title", "/console/admin/calendar"),
    ("admin.cameras.title", "/console/admin/cameras"),
    ("admin.devices.title", "/console/admin/devices"),
    ("admin.users.title", "/console/admin/users"),
    ("admin.audit.title", "/console/admin/audit"),
)

Cell = tuple[str, str | None, str]  # text, link or None, css class


@dataclass
class Row:
    id: str
    cells: list[Cell] = field(default_factory=list)
    muted: bool = False


def cell(text: object, href: str | None = None, css: str = "") -> Cell:
    return ("" if text is None else str(text), href, css)


def local_time(page: Page, moment: dt.datetime | None) -> str:
    local = page.local(moment)
    return local.strftime("%Y-%m-%d %H:%M") if local else "—"


def yes_no(page: Page, value: bool) -> str:
    return page.t("admin.yes") if value else page.t("admin.no")


def kind_label(page: Page, kind: str) -> str:
    """A unit's or place's kind as the lists show it: its label when the catalogue has one, else as typed."""
    try:
        return page.t(f"admin.kind.{kind}")
    except KeyError:
        return kind


def render_admin(page: Page, template: str, status_code: int = 200, **context: Any) -> HTMLResponse:
    saved = page.request.query_params.get("saved")
    context.setdefault("saved", saved[:200] if saved else None)
    return render(page, template, status_code=status_code, admin_areas=AREAS, **context)


def error_status(errors: list[str]) -> int:
    """A form shown again with its problems answers 422 (the API's status for bad input)."""
    return 422 if errors else 200
