"""Routing rules (place x violation -> unit) and the history of their changes."""

from __future__ import annotations

import datetime as dt
from typing import Any

from pydantic import BaseModel, ConfigDict, Field
from sqlalchemy import select
from sqlalchemy.orm import Session

from api.actors import Actor
from api.errors import InvalidInput, NotFound
from api.messages import msg
from api.models import Place, RoutingRule, RoutingRuleHistory, Unit, utcnow
from api.reference.common import (
    Code,
    EventCode,
    StrictModel,
    assign,
    page,
    ref_place,
    ref_unit,
    ref_violation,
)


class RoutingRuleIn(StrictModel):
    """place x violation -> unit. A missing place or violation matches any; lower priority wins."""

    place: Code | None = Field(default=None, description="Place key; null: any place.")
    violation: EventCode | None = Field(default=None, description="Event code; null: any violation.")
    unit: Code = Field(description="Code of the unit the case goes to.")
    priority: int = Field(default=100, ge=0, le=1_000_000)
    active: bool = True


class RoutingRuleUpdate(StrictModel):
    place: Code | None = None
    violation: EventCode | None = None
    unit: Code | None = None
    priority: int | None = Field(default=None, ge=0, le=1_000_000)
    active: bool | None = None


class RoutingRulePublic(BaseModel):
    id: int
    place_id: int | None
    place_key: str | None
    violation_code: str | None
    unit_id: int
    unit_code: str
    priority: int
    active: bool
    updated_at: dt.datetime


class RoutingRuleHistoryPublic(BaseModel):
    model_config = ConfigDict(from_attributes=True)

    id: int
    rule_id: int
    action: str
    snapshot: dict[str, Any]
    actor: str
    at: dt.datetime


def routing_public(session: Session, rule: RoutingRule) -> RoutingRulePublic:
    place = session.get(Place, rule.place_id) if rule.place_id is not None else None
    unit = session.get(Unit, rule.unit_id)
    return RoutingRulePublic(
        id=rule.id,
        place_id=rule.place_id,
        place_key=place.key if place else None,
        violation_code=rule.violation_code,
        unit_id=rule.unit_id,
        unit_code=unit.code if unit else "",
        priority=rule.priority,
        active=rule.active,
        updated_at=rule.updated_at,
    )


def _snapshot(session: Session, rule: RoutingRule) -> dict[str, Any]:
    return routing_public(session, rule).model_dump(mode="json")


def record_routing_change(
    session: Session,
    rule: RoutingRule,
    action: str,
    actor: Actor,
    changes: dict[str, Any] | None = None,
    *,
    extra: dict[str, Any] | None = None,
) -> None:
    """Append a history row: the rule as it is after ``action`` (before, for a deletion) and who did it."""
    snapshot = _snapshot(session, rule)
    if changes:
        snapshot["changes"] = changes
    snapshot.update(extra or {})
    session.add(RoutingRuleHistory(rule_id=rule.id, action=action, snapshot=snapshot, actor=actor.label))


def get_routing_rule(session: Session, rule_id: int) -> RoutingRule:
    rule = session.get(RoutingRule, rule_id)
    if rule is None:
        raise NotFound(f"no routing rule {rule_id}")
    return rule


def list_routing_rules(
    session: Session, *, place: str | None, violation: str | None, unit: str | None, limit: int, offset: int
) -> tuple[list[RoutingRule], int]:
    query = select(RoutingRule).order_by(RoutingRule.priority, RoutingRule.id)
    if place is not None:
        query = query.join(Place, RoutingRule.place_id == Place.id).where(Place.key == place)
    if violation is not None:
        query = query.where(RoutingRule.violation_code == violation)
    if unit is not None:
        query = query.join(Unit, RoutingRule.unit_id == Unit.id).where(Unit.code == unit)
    return page(session, query, limit, offset)


def create_routing_rule(session: Session, actor: Actor, body: RoutingRuleIn) -> RoutingRule:
    place = ref_place(session, body.place, "place") if body.place else None
    if body.violation:
        ref_violation(session, body.violation, "violation")
    unit = ref_unit(session, body.unit, "unit")
    rule = RoutingRule(
        place_id=place.id if place else None,
        violation_code=body.violation,
        unit_id=unit.id,
        priority=body.priority,
        active=body.active,
        updated_at=utcnow(),
    )
    session.add(rule)
    session.flush()
    record_routing_change(session, rule, "created", actor)
    session.flush()
    return rule


def _routing_values(session: Session, body: RoutingRuleUpdate) -> dict[str, Any]:
    fields = body.model_fields_set
    values: dict[str, Any] = {}
    if "place" in fields:
        values["place_id"] = ref_place(session, body.place, "place").id if body.place else None
    if "violation" in fields:
        if body.violation:
            ref_violation(session, body.violation, "violation")
        values["violation_code"] = body.violation
    for name in ("unit", "priority", "active"):
        if name in fields and getattr(body, name) is None:
            raise InvalidInput(msg("ref.null", name=name), field=name)
    if "unit" in fields and body.unit is not None:
        values["unit_id"] = ref_unit(session, body.unit, "unit").id
    if "priority" in fields:
        values["priority"] = body.priority
    if "active" in fields:
        values["active"] = body.active
    return values


def apply_routing_values(
    session: Session,
    actor: Actor,
    rule: RoutingRule,
    values: dict[str, Any],
    *,
    extra: dict[str, Any] | None = None,
) -> bool:
    """Change ``rule``; record the change in the history (nothing is recorded when nothing changed)."""
    before = _snapshot(session, rule)
    if not assign(rule, values):
        return False
    rule.updated_at = utcnow()
    session.flush()
    after = _snapshot(session, rule)
    changes = {
        name: [before[name], after[name]]
        for name in ("place_key", "violation_code", "unit_code", "priority", "active")
        if before[name] != after[name]
    }
    record_routing_change(session, rule, "updated", actor, changes, extra=extra)
    session.flush()
    return True


def update_routing_rule(session: Session, actor: Actor, rule_id: int, body: RoutingRuleUpdate) -> RoutingRule:
    rule = get_routing_rule(session, rule_id)
    apply_routing_values(session, actor, rule, _routing_values(session, body))
    return rule


def delete_routing_rule(session: Session, actor: Actor, rule_id: int) -> None:
    rule = get_routing_rule(session, rule_id)
    record_routing_change(session, rule, "deleted", actor)
    session.delete(rule)
    session.flush()


def routing_history(
    session: Session, *, rule_id: int | None, limit: int, offset: int
) -> tuple[list[RoutingRuleHistory], int]:
    query = select(RoutingRuleHistory).order_by(RoutingRuleHistory.id.desc())
    if rule_id is not None:
        query = query.where(RoutingRuleHistory.rule_id == rule_id)
    return page(session, query, limit, offset)
