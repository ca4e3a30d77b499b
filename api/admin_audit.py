"""The admin audit trail: one ``admin_events`` row per change to reference data, cameras, zones, devices and
users, whoever makes it (console admin pages, the reference API, config import, the CLI).

One place writes it: a flush listener on every ORM session (:func:`_after_flush`) and
:func:`record_upsert` for the few services that write with INSERT ... ON CONFLICT. Both insert on the
session's own connection, so an event is committed or rolled back with its change. The actor is the one
authenticated for the request (``session.info["actor"]``, set by :func:`set_actor`); without one, "system".

Secrets never enter the trail: password hashes, device key hashes and webhook secrets appear only as
"[redacted]" (so a reset is visible, its value is not). Columns that move on their own (a device's
last-seen time, camera health, snapshots, zone reference images) are not changes an admin makes and are
left out; an update that touches only those writes no event.
"""

from __future__ import annotations

import datetime as dt
import enum
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from sqlalchemy import ColumnElement, event, insert, inspect, select
from sqlalchemy.orm import Session, UOWTransaction

from api.models import (
    AdminEvent,
    CalendarDay,
    CalendarSettings,
    Camera,
    DeadlineRule,
    Device,
    Place,
    RoutingRule,
    Unit,
    User,
    ViolationType,
    Zone,
    utcnow,
)

REDACTED = "[redacted]"
SYSTEM_ACTOR = "system"
ACTIONS = ("created", "updated", "deleted")

Values = Mapping[str, Any]


@dataclass(frozen=True)
class Audited:
    area: str
    key: Callable[[Session, Values], str]  # the object's key as people know it, from its column values
    secret: frozenset[str] = frozenset()
    ignored: frozenset[str] = frozenset()


def _column(name: str) -> Callable[[Session, Values], str]:
    return lambda _session, values: str(values.get(name, ""))


def _zone_key(session: Session, values: Values) -> str:
    camera = session.connection().scalar(select(Camera.code).where(Camera.id == values.get("camera_id")))
    return f"{camera or values.get('camera_id')}/{values.get('code', '')}"


AUDITED: dict[type[Any], Audited] = {
    Unit: Audited("units", _column("code"), secret=frozenset({"webhook_secret"})),
    Place: Audited("places", _column("key")),
    ViolationType: Audited("violation_types", _column("code")),
    RoutingRule: Audited("routing_rules", _column("id"), ignored=frozenset({"updated_at"})),
    DeadlineRule: Audited("deadlines", _column("violation_code")),
    CalendarSettings: Audited("calendar", lambda _s, _v: "settings"),
    CalendarDay: Audited("calendar", _column("day")),
    Camera: Audited(
        "cameras",
        _column("code"),
        ignored=frozenset(
            {"health", "health_at", "snapshot_sha256", "snapshot_width", "snapshot_height", "snapshot_at"}
        ),
    ),
    Zone: Audited("zones", _zone_key, ignored=frozenset({"reference_sha256", "reference_at", "updated_at"})),
    Device: Audited(
        "devices", _column("name"), secret=frozenset({"key_hash"}), ignored=frozenset({"last_seen_at"})
    ),
    User: Audited("users", _column("username"), secret=frozenset({"password_hash"})),
}
AREAS: tuple[str, ...] = tuple(dict.fromkeys(audited.area for audited in AUDITED.values()))


def set_actor(session: Session, label: str) -> None:
    """Name who the session's changes are made by (an Actor's label, or "cli")."""
    session.info["actor"] = label


def _json(value: Any) -> Any:
    if isinstance(value, dt.datetime | dt.date | dt.time):
        return value.isoformat()
    if isinstance(value, enum.Enum):
        return value.value
    return value


def _visible(audited: Audited, values: Values) -> dict[str, Any]:
    """Values as the trail shows them: secrets redacted, self-moving columns dropped."""
    return {
        name: (REDACTED if value is not None else None) if name in audited.secret else _json(value)
        for name, value in values.items()
        if name not in audited.ignored
    }


def _write(
    session: Session,
    audited: Audited,
    action: str,
    key: str,
    before: dict[str, Any] | None,
    after: dict[str, Any] | None,
) -> None:
    session.connection().execute(
        insert(AdminEvent).values(
            at=utcnow(),
            actor=str(session.info.get("actor", SYSTEM_ACTOR))[:100],
            area=audited.area,
            action=action,
            object_key=key[:200],
            before=before,
            after=after,
        )
    )


# --- changes made through the ORM ---


def _columns(obj: Any) -> dict[str, Any]:
    state = inspect(obj)
    return {attr.key: getattr(obj, attr.key) for attr in state.mapper.column_attrs}


def _changes(obj: Any) -> tuple[dict[str, Any], dict[str, Any]]:
    """The columns an update changed: their old and new values (history is still there in after_flush)."""
    before: dict[str, Any] = {}
    after: dict[str, Any] = {}
    state = inspect(obj)
    for attr in state.mapper.column_attrs:
        history = state.attrs[attr.key].history
        if history.added or history.deleted:
            old = history.deleted[0] if history.deleted else None
            new = history.added[0] if history.added else None
            if old != new:
                before[attr.key], after[attr.key] = old, new
    return before, after


def _after_flush(session: Session, _context: UOWTransaction) -> None:
    for obj in list(session.new):
        audited = AUDITED.get(type(obj))
        if audited is not None:
            values = _columns(obj)
            _write(session, audited, "created", audited.key(session, values), None, _visible(audited, values))
    for obj in list(session.dirty):
        audited = AUDITED.get(type(obj))
        if audited is None or not session.is_modified(obj, include_collections=False):
            continue
        before, after = _changes(obj)
        if not _visible(audited, after):
            continue  # only self-moving columns changed
        key = audited.key(session, _columns(obj))
        _write(session, audited, "updated", key, _visible(audited, before), _visible(audited, after))
    for obj in list(session.deleted):
        audited = AUDITED.get(type(obj))
        if audited is not None:
            values = _columns(obj)
            _write(session, audited, "deleted", audited.key(session, values), _visible(audited, values), None)


event.listen(Session, "after_flush", _after_flush)


# --- changes made with INSERT ... ON CONFLICT (api.reference.common.upsert) ---


def existing_row(
    session: Session, model: type[Any], values: Values, keys: Sequence[str]
) -> dict[str, Any] | None:
    """The row an upsert is about to replace, as column values (None: it will insert)."""
    if model not in AUDITED:
        return None
    table = inspect(model).local_table
    where: list[ColumnElement[bool]] = [table.c[name] == values[name] for name in keys]
    row = session.connection().execute(select(table).where(*where)).mappings().first()
    return dict(row) if row is not None else None


def record_upsert(session: Session, model: type[Any], before: dict[str, Any] | None, values: Values) -> None:
    """The event of an upsert, given the row before (:func:`existing_row`) and the values written."""
    audited = AUDITED.get(model)
    if audited is None:
        return
    if before is None:
        _write(session, audited, "created", audited.key(session, values), None, _visible(audited, values))
        return
    changed = {name: value for name, value in values.items() if before.get(name) != value}
    shown_after = _visible(audited, changed)
    if shown_after:
        shown_before = _visible(audited, {name: before.get(name) for name in changed})
        _write(
            session, audited, "updated", audited.key(session, {**before, **values}), shown_before, shown_after
        )


# --- reading the trail (the console's change log and GET /api/v1/admin-events) ---


def list_events(
    session: Session, *, area: str | None, actor: str | None, before: int | None, limit: int
) -> tuple[list[AdminEvent], int | None]:
    """Newest first, filtered; keyset pages: the second value is the ``before`` of the next page (None: no
    more)."""
    query = select(AdminEvent).order_by(AdminEvent.id.desc()).limit(limit + 1)
    if area:
        query = query.where(AdminEvent.area == area)
    if actor:
        query = query.where(AdminEvent.actor == actor)
    if before is not None:
        query = query.where(AdminEvent.id < before)
    events = list(session.scalars(query))
    more = len(events) > limit
    events = events[:limit]
    return events, (events[-1].id if more else None)
