"""Routing: which unit gets a case for a place and a violation, and why.

Active rules match when their place is the case's place or empty (any place) and their violation code
is the case's code or empty (any violation). Among the matches the lowest ``priority`` wins; at equal
priority the more specific rule wins (place + violation, then place only, then violation only, then a
catch-all), then the older rule. Rules pointing at a disabled unit are skipped. When no rule matches,
the place's owner unit takes the case (属地兜底). Routing changes are kept in RoutingRuleHistory by the
reference-data API.
"""

from __future__ import annotations

from sqlalchemy import or_, select
from sqlalchemy.orm import Session

from api.messages import msg
from api.models import Place, RoutingRule, Unit, ViolationType
from common.messages import Message


def _specificity(rule: RoutingRule) -> int:
    """0 = place + violation, 1 = place only, 2 = violation only, 3 = catch-all."""
    return (0 if rule.place_id is not None else 2) + (0 if rule.violation_code is not None else 1)


_TIERS = ("place + violation", "place", "violation", "catch-all")


def matching_rules(session: Session, place: Place, violation_code: str) -> list[RoutingRule]:
    """Active rules that match, best first."""
    rules = session.scalars(
        select(RoutingRule).where(
            RoutingRule.active.is_(True),
            or_(RoutingRule.place_id == place.id, RoutingRule.place_id.is_(None)),
            or_(RoutingRule.violation_code == violation_code, RoutingRule.violation_code.is_(None)),
        )
    ).all()
    return sorted(rules, key=lambda r: (r.priority, _specificity(r), r.id))


def _violation_name(session: Session, violation_code: str) -> str:
    name = session.scalar(select(ViolationType.name).where(ViolationType.code == violation_code).limit(1))
    return name or violation_code


def route(session: Session, place: Place, violation_code: str) -> tuple[Unit | None, Message]:
    """The unit for ``violation_code`` at ``place`` and why (a catalogued message: ``str()`` is the English
    sentence); ``None`` if nobody owns it."""
    skipped: list[str] = []
    names = {
        "place": place.key,
        "place_name": place.name or place.key,
        "violation": violation_code,
        "violation_name": _violation_name(session, violation_code),
    }
    for rule in matching_rules(session, place, violation_code):
        unit = session.get(Unit, rule.unit_id)
        tier = _TIERS[_specificity(rule)]
        label = f"routing rule #{rule.id} ({tier}, priority {rule.priority})"
        if unit is None or not unit.active:
            skipped.append(f"{label} names disabled unit #{rule.unit_id}")
            continue
        return unit, msg(
            "route.rule",
            rule=rule.id,
            tier=tier,
            priority=rule.priority,
            unit=unit.code,
            unit_name=unit.name,
            **names,
            **_skipped(skipped),
        )
    owner = place.owner_unit
    if owner is not None and owner.active:
        return owner, msg("route.owner", unit=owner.code, unit_name=owner.name, **names, **_skipped(skipped))
    if owner is None:
        return None, msg("route.none_no_owner", **names, **_skipped(skipped))
    return None, msg(
        "route.none_owner_disabled", unit=owner.code, unit_name=owner.name, **names, **_skipped(skipped)
    )


def _skipped(skipped: list[str]) -> dict[str, str]:
    """The rules passed over for a disabled unit, as the ``skipped`` (en) and ``skipped_zh`` parameters."""
    if not skipped:
        return {"skipped": "", "skipped_zh": ""}
    note = msg("route.skipped", count=len(skipped), detail="; ".join(skipped))
    return {"skipped": note.text("en"), "skipped_zh": note.text("zh")}
