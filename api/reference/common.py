"""What every reference resource shares: the field types (codes, event codes, times, coordinates), the
strict base model, and the session helpers (flush with a 409 on conflict, PATCH assignment, paging, upsert,
look-ups by code and the references between objects that name a field when the code is unknown)."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Annotated, Any

from pydantic import BaseModel, ConfigDict, Field, TypeAdapter, WithJsonSchema
from sqlalchemy import ColumnElement, Select, func, select
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from api import admin_audit
from api.errors import Conflict, InvalidInput
from api.messages import WHAT_ZH, Refusal, msg
from api.models import Camera, Device, Place, Unit, ViolationType
from common.messages import Message
from contract.fields import (
    CODE_PATTERN,
    EVENT_CODE_PATTERN,
    HHMM,
    Code,
    Coordinate,
    EventCode,
    IsoWeekday,
    PipelineType,
)

__all__ = [  # the field types are the contract's (contract.fields): one definition for both sides
    "CODE_PATTERN",
    "EVENT_CODE_PATTERN",
    "HHMM",
    "Code",
    "Coordinate",
    "EventCode",
    "IsoWeekday",
    "PipelineType",
]


# A working period [start, end]. Its schema says "two HH:MM strings" with items/minItems/maxItems instead of
# pydantic's prefixItems: as valid in OpenAPI 3.1, and read correctly by tools that mishandle prefixItems
# (schemathesis rejects it as an invalid Schema Object when validating responses).
Period = Annotated[
    tuple[HHMM, HHMM],
    WithJsonSchema({"type": "array", "items": TypeAdapter(HHMM).json_schema(), "minItems": 2, "maxItems": 2}),
]
Latitude = Annotated[float, Field(ge=-90.0, le=90.0)]
Longitude = Annotated[float, Field(ge=-180.0, le=180.0)]


class StrictModel(BaseModel):
    model_config = ConfigDict(extra="forbid")


def unique(values: Sequence[Any], what: str) -> None:
    seen: set[Any] = set()
    for value in values:
        if value in seen:
            raise Refusal(msg("ref.twice", what=what, what_zh=WHAT_ZH.get(what, what), value=value))
        seen.add(value)


# --- session helpers ---


def flush(session: Session, conflict_message: str | Message) -> None:
    """Flush; a unique-constraint violation becomes a 409 with ``conflict_message``."""
    try:
        session.flush()
    except IntegrityError as exc:
        raise Conflict(conflict_message) from exc


def assign(obj: Any, values: dict[str, Any]) -> bool:
    """Set the attributes that differ; return whether anything changed."""
    changed = False
    for name, value in values.items():
        if getattr(obj, name) != value:
            setattr(obj, name, value)
            changed = True
    return changed


def reject_nulls(values: dict[str, Any]) -> None:
    """PATCH bodies: a field may be left out, but only the documented ones may be set to null."""
    nulls = sorted(name for name, value in values.items() if value is None)
    if nulls:
        raise InvalidInput(msg("ref.not_null", names=", ".join(nulls)), field=nulls[0])


def page(session: Session, query: Select[Any], limit: int, offset: int) -> tuple[list[Any], int]:
    count = session.scalar(select(func.count()).select_from(query.order_by(None).subquery())) or 0
    rows = list(session.scalars(query.limit(limit).offset(offset)))
    return rows, count


def upsert(session: Session, model: type[Any], values: dict[str, Any], keys: Sequence[str]) -> None:
    """INSERT ... ON CONFLICT (keys) DO UPDATE: race-free on PostgreSQL and SQLite; recorded in the admin
    audit trail like an ORM change."""
    before = admin_audit.existing_row(session, model, values, keys)
    dialect = session.get_bind().dialect.name
    insert = postgresql.insert if dialect == "postgresql" else sqlite.insert
    statement = insert(model).values(**values)
    updates = {name: statement.excluded[name] for name in values if name not in keys}
    session.execute(statement.on_conflict_do_update(index_elements=list(keys), set_=updates))
    admin_audit.record_upsert(session, model, before, values)


def unit_by_code(session: Session, code: str) -> Unit | None:
    return session.scalar(select(Unit).where(Unit.code == code))


def place_by_key(session: Session, key: str) -> Place | None:
    return session.scalar(select(Place).where(Place.key == key))


def violation_by_code(session: Session, code: str) -> ViolationType | None:
    return session.scalar(select(ViolationType).where(ViolationType.code == code))


def camera_by_code(session: Session, code: str) -> Camera | None:
    return session.scalar(select(Camera).where(Camera.code == code))


def device_by_name(session: Session, name: str) -> Device | None:
    return session.scalar(select(Device).where(Device.name == name))


def ref_unit(session: Session, code: str, field: str) -> Unit:
    unit = unit_by_code(session, code)
    if unit is None:
        raise InvalidInput(msg("ref.unknown_unit", field=field, code=code), field=field)
    return unit


def ref_place(session: Session, key: str, field: str) -> Place:
    place = place_by_key(session, key)
    if place is None:
        raise InvalidInput(msg("ref.unknown_place", field=field, key=key), field=field)
    return place


def ref_violation(session: Session, code: str, field: str) -> ViolationType:
    violation = violation_by_code(session, code)
    if violation is None:
        known = ", ".join(session.scalars(select(ViolationType.code).order_by(ViolationType.code)))
        refusal = msg(
            "ref.unknown_violation", field=field, code=code, known=known or "none yet", known_zh=known or "无"
        )
        raise InvalidInput(refusal, field=field)
    return violation


def ref_device(session: Session, name: str, field: str) -> Device:
    device = device_by_name(session, name)
    if device is None:
        raise InvalidInput(msg("ref.unknown_device", field=field, name=name), field=field)
    return device


def in_use(
    session: Session, checks: dict[str, ColumnElement[bool]], models: dict[str, type[Any]]
) -> list[str]:
    found = []
    for label, condition in checks.items():
        count = session.scalar(select(func.count()).select_from(models[label]).where(condition)) or 0
        if count:
            found.append(f"{count} {label}")
    return found
