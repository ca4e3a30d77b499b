"""/console/admin/audit: the admin audit trail (api.admin_audit), newest first, filtered by area and actor,
in keyset pages (``?before=<id>``: the next page starts below the last row shown)."""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Annotated, Any
from urllib.parse import urlencode

from fastapi import APIRouter, Query
from fastapi.responses import Response
from sqlalchemy import select

from api.admin_audit import AREAS, list_events
from api.console.admin.forms import require_admin
from api.console.admin.pages import Row, cell, local_time, render_admin
from api.console.deps import Page, PageDep
from api.console.rendering import actor_formatter
from api.models import AdminEvent

router = APIRouter(prefix="/console/admin/audit", include_in_schema=False)
PAGE_SIZE = 50
CHANGE_TEXT_LIMIT = 400  # a zone's polygon can be long: the cell shows its start


def _value(value: Any) -> str:
    return value if isinstance(value, str) else json.dumps(value, ensure_ascii=False)


def changes(before: dict[str, Any] | None, after: dict[str, Any] | None) -> str:
    """``field: old → new`` for an update, ``field: value`` for a creation or a deletion."""
    if before and after:
        parts = [f"{name}: {_value(before.get(name))} → {_value(value)}" for name, value in after.items()]
    else:
        parts = [f"{name}: {_value(value)}" for name, value in (after or before or {}).items()]
    text = "; ".join(parts)
    return text if len(text) <= CHANGE_TEXT_LIMIT else text[: CHANGE_TEXT_LIMIT - 1] + "…"


def _row(page: Page, event: AdminEvent, actor: Callable[[str], str]) -> Row:
    return Row(
        id=f"admin-event-{event.id}",
        cells=[
            cell(local_time(page, event.at)),
            cell(actor(event.actor)),
            cell(page.t(f"admin.audit.area.{event.area}")),
            cell(page.t(f"admin.audit.action.{event.action}")),
            cell(event.object_key, css="data"),
            cell(changes(event.before, event.after), css="admin-changes data"),
        ],
    )


@router.get("")
def audit_page(
    page: PageDep,
    area: Annotated[str, Query(max_length=32)] = "",
    actor: Annotated[str, Query(max_length=100)] = "",
    before: Annotated[int | None, Query(ge=1, le=2**63 - 1)] = None,
) -> Response:
    require_admin(page)
    area = area if area in AREAS else ""
    actor = actor.strip()
    events, next_before = list_events(page.session, area=area, actor=actor, before=before, limit=PAGE_SIZE)
    filters = {name: value for name, value in (("area", area), ("actor", actor)) if value}
    older = f"?{urlencode({**filters, 'before': next_before})}" if next_before else None
    actors = list(
        page.session.scalars(select(AdminEvent.actor).distinct().order_by(AdminEvent.actor).limit(500))
    )
    actor_names = actor_formatter(page)  # user:zhao -> 赵交通, as the timeline shows them
    return render_admin(
        page,
        "admin/audit.html",
        title="admin.audit.title",
        explain="admin.audit.explain",
        columns=[
            "admin.audit.at",
            "admin.audit.actor",
            "admin.audit.area",
            "admin.audit.action",
            "admin.audit.object",
            "admin.audit.changes",
        ],
        rows=[_row(page, event, actor_names) for event in events],
        areas=[(name, page.t(f"admin.audit.area.{name}")) for name in AREAS],
        actors=actors,
        area=area,
        chosen_actor=actor,
        older=older,
        first=f"?{urlencode(filters)}" if before is not None else None,
    )
