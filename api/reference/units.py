"""Responsible units (departments, road chiefs, grid offices) and their escalation hierarchy."""

from __future__ import annotations

from typing import Annotated

from pydantic import AfterValidator, BaseModel, Field
from sqlalchemy import or_, select
from sqlalchemy.orm import Session

from api.errors import Conflict, InvalidInput, NotFound
from api.messages import Refusal, msg
from api.models import Case, Delivery, Place, RoutingRule, Unit, User
from api.reference.common import (
    Code,
    StrictModel,
    assign,
    flush,
    in_use,
    page,
    ref_unit,
    reject_nulls,
    unit_by_code,
)
from api.settings import is_email_address


def _email(value: str) -> str:
    if not is_email_address(value):
        raise Refusal(msg("ref.email", value=value))
    return value


Email = Annotated[
    str, Field(max_length=254, description="Where pushed reports are e-mailed."), AfterValidator(_email)
]


class UnitIn(StrictModel):
    """A responsible unit (department, road chief, grid office); ``parent`` is the unit escalated to."""

    code: Code
    name: str = Field(min_length=1, max_length=200)
    kind: str = Field(
        default="department", min_length=1, max_length=32, description="department, road_chief, grid..."
    )
    parent: Code | None = Field(
        default=None, description="Parent unit code (escalation when a case is overdue)."
    )
    active: bool = True
    email: Email | None = None


class UnitUpdate(StrictModel):
    name: str | None = Field(default=None, min_length=1, max_length=200)
    kind: str | None = Field(default=None, min_length=1, max_length=32)
    parent: Code | None = Field(default=None, description="Parent unit code; null removes the parent.")
    active: bool | None = None
    email: Email | None = Field(default=None, description="Null removes the address.")


class UnitPublic(BaseModel):
    id: int
    code: str
    name: str
    kind: str
    parent_id: int | None
    parent_code: str | None
    active: bool
    email: str | None = None


def unit_public(unit: Unit) -> UnitPublic:
    return UnitPublic(
        id=unit.id,
        code=unit.code,
        name=unit.name,
        kind=unit.kind,
        parent_id=unit.parent_id,
        parent_code=unit.parent.code if unit.parent else None,
        active=unit.active,
        email=unit.email,
    )


def get_unit(session: Session, code: str) -> Unit:
    unit = unit_by_code(session, code)
    if unit is None:
        raise NotFound(f"no unit with code {code!r}")
    return unit


def list_units(session: Session, *, limit: int, offset: int) -> tuple[list[Unit], int]:
    return page(session, select(Unit).order_by(Unit.code), limit, offset)


def _check_no_cycle(session: Session, unit: Unit, parent: Unit | None) -> None:
    seen: set[int] = set()
    node = parent
    while node is not None and node.id not in seen:
        if node.id == unit.id:
            loop = msg("ref.unit_loop", parent=parent.code if parent else "", unit=unit.code)
            raise InvalidInput(loop, field="parent")
        seen.add(node.id)
        node = session.get(Unit, node.parent_id) if node.parent_id is not None else None


def create_unit(session: Session, body: UnitIn) -> Unit:
    parent = ref_unit(session, body.parent, "parent") if body.parent else None
    unit = Unit(
        code=body.code,
        name=body.name,
        kind=body.kind,
        parent_id=parent.id if parent else None,
        active=body.active,
        email=body.email,
    )
    session.add(unit)
    flush(session, msg("ref.duplicate_unit", code=body.code))
    return unit


def update_unit(session: Session, code: str, body: UnitUpdate) -> Unit:
    unit = get_unit(session, code)
    values = body.model_dump(exclude_unset=True, exclude={"parent", "email"})
    reject_nulls(values)
    assign(unit, values)
    if "email" in body.model_fields_set:
        unit.email = body.email
    if "parent" in body.model_fields_set:
        parent = ref_unit(session, body.parent, "parent") if body.parent else None
        _check_no_cycle(session, unit, parent)
        unit.parent_id = parent.id if parent else None
    session.flush()
    session.refresh(unit)
    return unit


def delete_unit(session: Session, code: str) -> None:
    unit = get_unit(session, code)
    used = in_use(
        session,
        {
            "child units": Unit.parent_id == unit.id,
            "places": Place.owner_unit_id == unit.id,
            "routing rules": RoutingRule.unit_id == unit.id,
            "users": User.unit_id == unit.id,
            "cases": or_(Case.unit_id == unit.id, Case.escalated_to_unit_id == unit.id),
            "deliveries": Delivery.unit_id == unit.id,
        },
        {
            "child units": Unit,
            "places": Place,
            "routing rules": RoutingRule,
            "users": User,
            "cases": Case,
            "deliveries": Delivery,
        },
    )
    if used:
        raise Conflict(
            f"unit {code!r} is still referenced by {', '.join(used)}: reassign them, or set active=false"
        )
    session.delete(unit)
    flush(session, f"unit {code!r} is still referenced: set active=false instead")
