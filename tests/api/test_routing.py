"""Routing: rules by priority and specificity, disabled rules and units, and the owner fallback (属地兜底).

The history of routing changes belongs to the reference-data API (tests/api/test_reference.py).
"""

from __future__ import annotations

from sqlalchemy import delete
from sqlalchemy.orm import Session

from api.models import Place, RoutingRule, Unit
from api.routing import route
from tests.api.builders import World, make_world
from tests.api.conftest import Store

# Rules are (place: "grid" | None, violation | None, unit: "sanitation" | "traffic" | "district", priority).
Rule = tuple[str | None, str | None, str, int]


def _add_rules(session: Session, world: World, rules: list[Rule], *, active: bool = True) -> None:
    units = {"sanitation": world.sanitation_id, "traffic": world.traffic_id, "district": world.district_id}
    for place, violation, unit, priority in rules:
        session.add(
            RoutingRule(
                place_id=world.place_id if place else None,
                violation_code=violation,
                unit_id=units[unit],
                priority=priority,
                active=active,
            )
        )


# (rules, the unit that gets a 0102 case at the grid, a part of the why)
TABLE: list[tuple[list[Rule], str, str]] = [
    ([], "district", "属地兜底"),
    ([(None, "0102", "sanitation", 100)], "sanitation", "violation, priority 100"),
    ([("grid", None, "traffic", 100)], "traffic", "(place, priority 100)"),
    ([("grid", "0102", "sanitation", 100)], "sanitation", "place + violation, priority 100"),
    ([(None, None, "traffic", 100)], "traffic", "catch-all"),
    # at equal priority the more specific rule wins, whatever the order they were made in
    ([(None, "0102", "traffic", 100), ("grid", None, "sanitation", 100)], "sanitation", "(place,"),
    (
        [("grid", None, "traffic", 100), ("grid", "0102", "sanitation", 100)],
        "sanitation",
        "place + violation",
    ),
    ([(None, None, "district", 100), (None, "0102", "traffic", 100)], "traffic", "violation"),
    # a lower priority number wins over specificity: "all garbage goes to sanitation, wherever"
    ([("grid", "0102", "traffic", 100), (None, "0102", "sanitation", 10)], "sanitation", "priority 10"),
    # at equal priority and specificity the older rule wins
    ([(None, "0102", "sanitation", 50), (None, "0102", "traffic", 50)], "sanitation", "violation"),
    # rules for other violations do not match
    ([(None, "0505", "traffic", 1), ("grid", "0505", "traffic", 1)], "district", "属地兜底"),
]


def test_route_table(store: Store) -> None:
    """One database per backend for the whole table (each row starts from no rules)."""
    world = make_world(store.sessions)
    for rules, unit, why in TABLE:
        with store.sessions.begin() as session:
            session.execute(delete(RoutingRule))
            _add_rules(session, world, rules)
        with store.sessions() as session:
            place = session.get_one(Place, world.place_id)
            found, message = route(session, place, "0102")
            reason = str(message)
        assert found is not None, rules
        assert (found.code, why in reason, place.key in reason) == (unit, True, True), (rules, reason)


def test_inactive_rules_and_disabled_units_are_skipped(store: Store) -> None:
    world = make_world(store.sessions)
    with store.sessions.begin() as session:
        _add_rules(session, world, [("grid", "0102", "traffic", 1)], active=False)
        _add_rules(session, world, [("grid", "0102", "sanitation", 5), (None, "0102", "traffic", 9)])
        session.get_one(Unit, world.sanitation_id).active = False
    with store.sessions() as session:
        found, why = route(session, session.get_one(Place, world.place_id), "0102")
    assert found is not None and found.code == "traffic"
    assert f"names disabled unit #{world.sanitation_id}" in str(why)


def test_no_rule_and_no_owner_gives_none_and_says_why(store: Store) -> None:
    make_world(store.sessions)
    with store.sessions.begin() as session:
        session.add(Place(key="orphan-road", name="nobody's road"))
    with store.sessions() as session:
        orphan = session.query(Place).filter_by(key="orphan-road").one()
        found, why = route(session, orphan, "0102")
    assert found is None
    assert str(why) == (
        "no routing rule for place orphan-road + violation 0102, and the place has no owner unit: "
        "dispatch it by hand with a unit_id"
    )


def test_disabled_owner_gives_none(store: Store) -> None:
    world = make_world(store.sessions)
    with store.sessions.begin() as session:
        session.get_one(Unit, world.district_id).active = False
    with store.sessions() as session:
        found, why = route(session, session.get_one(Place, world.place_id), "0505")
    assert found is None
    assert "owned by disabled unit district" in str(why)
