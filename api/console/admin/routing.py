"""Routing rules (place x violation -> unit, lowest priority first): create, edit, deactivate, with their
history. The services are the API's (:mod:`api.reference.routing_rules`): every change is written to the
routing history with the admin's name, as through the API."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Annotated, Any

from fastapi import APIRouter, Path
from fastapi.responses import Response
from sqlalchemy import select

from api import reference as ref
from api.actors import display_names
from api.console.admin.forms import (
    Field,
    Form,
    FormDep,
    attempt,
    audit,
    checked,
    number,
    optional,
    posted,
    redirect,
    require_admin,
)
from api.console.admin.pages import Row, cell, error_status, local_time, render_admin, yes_no
from api.console.admin.units import unit_options
from api.console.deps import Page, PageDep
from api.console.formatting import actor_text
from api.models import Place, RoutingRule, RoutingRuleHistory, Unit, ViolationType

router = APIRouter(prefix="/console/admin/routing", include_in_schema=False)
RuleId = Annotated[int, Path(ge=1, le=2**31 - 1)]
BASE = "/console/admin/routing"
HISTORY_ROWS = 50


def _place_options(page: Page) -> list[tuple[str, str]]:
    places = page.session.scalars(select(Place).order_by(Place.key))
    return [("", page.t("admin.routing.any_place"))] + [
        (place.key, f"{place.name} ({place.key})" if place.name else place.key) for place in places
    ]


def _violation_options(page: Page) -> list[tuple[str, str]]:
    return [("", page.t("admin.routing.any_violation"))] + [
        (v.code, f"{v.code} {v.name}") for v in ref.list_violation_types(page.session)
    ]


def _fields(page: Page, values: Mapping[str, Any]) -> list[Field]:
    return [
        Field(
            "place",
            "admin.field.place",
            kind="select",
            value=values.get("place") or "",
            options=_place_options(page),
        ),
        Field(
            "violation",
            "admin.field.violation",
            kind="select",
            value=values.get("violation") or "",
            options=_violation_options(page),
        ),
        Field(
            "unit",
            "admin.field.unit",
            kind="select",
            value=values.get("unit") or "",
            options=unit_options(page.session, page, blank="admin.routing.choose_unit"),
            required=True,
        ),
        Field(
            "priority",
            "admin.field.priority",
            kind="number",
            value=values.get("priority", 100),
            hint="admin.routing.priority_hint",
        ),
        Field("active", "admin.field.active", kind="checkbox", value=values.get("active", True)),
    ]


def _body(values: dict[str, str]) -> dict[str, Any]:
    return {
        "place": optional(values, "place"),
        "violation": optional(values, "violation"),
        "unit": values.get("unit", ""),
        "priority": number(values, "priority") or 100,
        "active": checked(values, "active"),
    }


def _names(page: Page) -> tuple[dict[int, Place], dict[int, Unit], dict[str, ViolationType]]:
    places = {p.id: p for p in page.session.scalars(select(Place))}
    units = {u.id: u for u in page.session.scalars(select(Unit))}
    violations = {v.code: v for v in page.session.scalars(select(ViolationType))}
    return places, units, violations


# a history snapshot's changed fields, by the form's labels
_CHANGED = {
    "place_key": "admin.field.place",
    "violation_code": "admin.field.violation",
    "unit_code": "admin.field.unit",
    "priority": "admin.field.priority",
    "active": "admin.field.active",
}


def _value(page: Page, value: Any) -> str:
    if isinstance(value, bool):
        return yes_no(page, value)
    return "—" if value is None else str(value)


def _change(page: Page, name: str, before: Any, after: Any) -> str:
    label = page.t(_CHANGED[name]) if name in _CHANGED else name
    return f"{label}: {_value(page, before)} → {_value(page, after)}"


def _history_rows(page: Page, rows: list[RoutingRuleHistory]) -> list[Row]:
    result = []
    names = display_names(page.session, {row.actor for row in rows})
    for row in rows:
        snapshot = row.snapshot
        changes = snapshot.get("changes") or {}
        what = "; ".join(_change(page, name, before, after) for name, (before, after) in changes.items())
        after = (
            f"{snapshot.get('place_key') or page.t('admin.routing.any_place')} · "
            f"{snapshot.get('violation_code') or page.t('admin.routing.any_violation')} → "
            f"{snapshot.get('unit_code')} ({snapshot.get('priority')})"
        )
        result.append(
            Row(
                id=f"history-{row.id}",
                cells=[
                    cell(local_time(page, row.at)),
                    cell(f"#{row.rule_id}", f"{BASE}/{row.rule_id}"),
                    cell(
                        page.t(f"admin.routing.action.{row.action}")
                        if row.action in {"created", "updated", "deleted"}
                        else row.action
                    ),
                    cell(what or after),
                    cell(actor_text(row.actor, names, page.lang)),
                ],
            )
        )
    return result


HISTORY_COLUMNS = [
    "admin.field.at",
    "admin.field.rule",
    "admin.field.change",
    "admin.field.detail",
    "admin.field.actor",
]


def _list(page: Page, values: Mapping[str, Any], errors: list[str]) -> Response:
    places, units, violations = _names(page)
    rules = page.session.scalars(select(RoutingRule).order_by(RoutingRule.priority, RoutingRule.id))
    rows = []
    for rule in rules:
        place = places.get(rule.place_id) if rule.place_id is not None else None
        violation = violations.get(rule.violation_code) if rule.violation_code else None
        unit = units.get(rule.unit_id)
        rows.append(
            Row(
                id=f"rule-{rule.id}",
                cells=[
                    cell(f"#{rule.id}", f"{BASE}/{rule.id}"),
                    cell(f"{place.name or place.key}" if place else page.t("admin.routing.any_place")),
                    cell(
                        f"{violation.code} {violation.name}"
                        if violation
                        else (rule.violation_code or page.t("admin.routing.any_violation"))
                    ),
                    cell(unit.name if unit else ""),
                    cell(rule.priority),
                    cell(yes_no(page, rule.active)),
                ],
                muted=not rule.active,
            )
        )
    history, _count = ref.routing_history(page.session, rule_id=None, limit=HISTORY_ROWS, offset=0)
    return render_admin(
        page,
        "admin/routing.html",
        status_code=error_status(errors),
        title="admin.routing.title",
        explain="admin.routing.explain",
        table_id="routing-rules",
        columns=[
            "admin.field.rule",
            "admin.field.place",
            "admin.field.violation",
            "admin.field.unit",
            "admin.field.priority",
            "admin.field.active",
        ],
        rows=rows,
        form=Form("rule-form", BASE, _fields(page, values), "admin.create", errors),
        form_title="admin.routing.new",
        history=_history_rows(page, history),
        history_columns=HISTORY_COLUMNS,
    )


@router.get("")
def routing_page(page: PageDep) -> Response:
    require_admin(page)
    return _list(page, {}, [])


@router.post("")
def create_rule(page: PageDep, form: FormDep) -> Response:
    values = posted(page, form)

    def change() -> RoutingRule:
        body = ref.RoutingRuleIn.model_validate(_body(values))
        return ref.create_routing_rule(page.session, page.operator, body)

    rule, errors = attempt(page, change)
    if rule is None:
        return _list(page, {**values, "active": checked(values, "active")}, errors)
    audit(page, "routing_rule", "created", str(rule.id))
    return redirect(f"{BASE}?saved=%23{rule.id}")


def _edit(page: Page, rule_id: int, values: Mapping[str, Any], errors: list[str]) -> Response:
    history, _count = ref.routing_history(page.session, rule_id=rule_id, limit=HISTORY_ROWS, offset=0)
    deactivate = Form(
        "deactivate-form", f"{BASE}/{rule_id}/deactivate", [], "admin.routing.deactivate", danger=True
    )
    return render_admin(
        page,
        "admin/edit.html",
        status_code=error_status(errors),
        heading=page.t("admin.routing.edit", id=rule_id),
        back=BASE,
        links=[],
        form=Form("rule-form", f"{BASE}/{rule_id}", _fields(page, values), "admin.save", errors),
        extras=[
            {
                "title": "admin.routing.deactivate",
                "explain": "admin.routing.deactivate_explain",
                "form": deactivate,
            }
        ]
        if values.get("active")
        else [],
        history=_history_rows(page, history),
        history_columns=HISTORY_COLUMNS,
    )


def _values(page: Page, rule: RoutingRule) -> dict[str, object]:
    public = ref.routing_public(page.session, rule)
    return {
        "place": public.place_key or "",
        "violation": public.violation_code or "",
        "unit": public.unit_code,
        "priority": public.priority,
        "active": public.active,
    }


@router.get("/{rule_id}")
def rule_page(rule_id: RuleId, page: PageDep) -> Response:
    require_admin(page)
    return _edit(page, rule_id, _values(page, ref.get_routing_rule(page.session, rule_id)), [])


@router.post("/{rule_id}")
def update_rule(rule_id: RuleId, page: PageDep, form: FormDep) -> Response:
    values = posted(page, form)
    ref.get_routing_rule(page.session, rule_id)  # 404 before anything else

    def change() -> RoutingRule:
        body = ref.RoutingRuleUpdate.model_validate(_body(values))
        return ref.update_routing_rule(page.session, page.operator, rule_id, body)

    rule, errors = attempt(page, change)
    if rule is None:
        return _edit(page, rule_id, {**values, "active": checked(values, "active")}, errors)
    audit(page, "routing_rule", "updated", str(rule_id))
    return redirect(f"{BASE}?saved=%23{rule_id}")


@router.post("/{rule_id}/deactivate")
def deactivate_rule(rule_id: RuleId, page: PageDep, form: FormDep) -> Response:
    posted(page, form)
    ref.update_routing_rule(page.session, page.operator, rule_id, ref.RoutingRuleUpdate(active=False))
    page.session.commit()
    audit(page, "routing_rule", "deactivated", str(rule_id))
    return redirect(f"{BASE}?saved=%23{rule_id}")
