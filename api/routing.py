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

from api.models import Place, RoutingRule, Unit


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


def _skipped(skipped: list[str]) -> str:
    return f" (skipped: {'; '.join(skipped)})" if skipped else ""


def route(session: Session, place: Place, violation_code: str) -> tuple[Unit | None, str]:
    """The unit for ``violation_code`` at ``place`` and a human-readable why; ``None`` if nobody owns it."""
    skipped: list[str] = []
    for rule in matching_rules(session, place, violation_code):
        unit = session.get(Unit, rule.unit_id)
        label = f"routing rule #{rule.id} ({_TIERS[_specificity(rule)]}, priority {rule.priority})"
        if unit is None or not unit.active:
            skipped.append(f"{label} names disabled unit #{rule.unit_id}")
            continue
        why = f"{label}: place {place.key} + violation {violation_code} -> {unit.code} ({unit.name})"
        return unit, why + _skipped(skipped)
    why_skipped = _skipped(skipped)
    owner = place.owner_unit
    if owner is not None and owner.active:
        return owner, (
            f"属地兜底: no routing rule for place {place.key} + violation {violation_code}{why_skipped}; "
            f"the place's owner {owner.code} ({owner.name}) takes it"
        )
    owner_state = "has no owner unit" if owner is None else f"is owned by disabled unit {owner.code}"
    return None, (
        f"no routing rule for place {place.key} + violation {violation_code}{why_skipped}, "
        f"and the place {owner_state}: dispatch it by hand with a unit_id"
    )
