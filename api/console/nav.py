"""The navigation bar: which areas each role sees. An area's pages check the role again themselves."""

from __future__ import annotations

from dataclasses import dataclass

from api.models import Role


@dataclass(frozen=True)
class NavItem:
    key: str  # i18n key of the label
    href: str
    roles: frozenset[Role]


_ALL = frozenset(Role)
_OFFICE = frozenset({Role.ADMIN, Role.SHIFT_LEADER, Role.DISPATCHER, Role.VIEWER})

NAV: tuple[NavItem, ...] = (
    NavItem("nav.review", "/console/review", _OFFICE),
    NavItem("nav.board", "/console/board", _ALL),
    NavItem("nav.search", "/console/search", _ALL),
    NavItem("nav.map", "/console/map", _ALL),
    NavItem("nav.cameras", "/console/cameras", frozenset({Role.ADMIN, Role.SHIFT_LEADER, Role.DISPATCHER})),
    NavItem("nav.dashboards", "/console/dashboards", _OFFICE),
    NavItem("nav.admin", "/console/admin", frozenset({Role.ADMIN})),
    NavItem("nav.models", "/console/models", frozenset({Role.ADMIN})),
)


def nav_for(role: Role | None) -> list[NavItem]:
    return [item for item in NAV if role in item.roles]


def home_for(role: Role | None) -> str:
    """Where a user lands after logging in: unit handlers on their board, everyone else on the queue."""
    return "/console/board" if role is Role.UNIT_HANDLER else "/console/review"
