"""Units (departments, road chiefs, grid offices) as a tree by parent: create, edit, deactivate."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Annotated, Any
from urllib.parse import quote

from fastapi import APIRouter, Path
from fastapi.responses import Response
from sqlalchemy import select
from sqlalchemy.orm import Session

from api import reference as ref
from api.console.admin.forms import (
    Field,
    Form,
    FormDep,
    attempt,
    audit,
    checked,
    optional,
    posted,
    redirect,
    require_admin,
)
from api.console.admin.pages import Row, cell, error_status, kind_label, render_admin, yes_no
from api.console.deps import Page, PageDep
from api.models import Unit

router = APIRouter(prefix="/console/admin/units", include_in_schema=False)
CodePath = Annotated[str, Path(min_length=1, max_length=64, pattern=ref.CODE_PATTERN)]
BASE = "/console/admin/units"
MAX_DEPTH = 4  # deeper levels are drawn at this indentation


def tree(session: Session) -> list[tuple[Unit, int]]:
    """Every unit in tree order (parents before their children, by code), with its depth."""
    units = list(session.scalars(select(Unit).order_by(Unit.code)))
    children: dict[int | None, list[Unit]] = {}
    ids = {unit.id for unit in units}
    for unit in units:
        parent = unit.parent_id if unit.parent_id in ids else None
        children.setdefault(parent, []).append(unit)
    ordered: list[tuple[Unit, int]] = []
    seen: set[int] = set()

    def walk(parent: int | None, depth: int) -> None:
        for unit in children.get(parent, []):
            if unit.id in seen:  # a loop stored by hand must not hang the page
                continue
            seen.add(unit.id)
            ordered.append((unit, depth))
            walk(unit.id, depth + 1)

    walk(None, 0)
    ordered.extend((unit, 0) for unit in units if unit.id not in seen)
    return ordered


def unit_options(session: Session, page: Page, *, blank: str) -> list[tuple[str, str]]:
    return [("", page.t(blank))] + [
        (unit.code, f"{'　' * min(depth, MAX_DEPTH)}{unit.name}")  # by name: its code is on the units page
        for unit, depth in tree(session)
    ]


def _fields(page: Page, values: Mapping[str, Any], *, new: bool) -> list[Field]:
    return [
        Field("code", "admin.field.code", value=values.get("code", ""), required=True, readonly=not new),
        Field("name", "admin.field.name", value=values.get("name", ""), required=True),
        Field(
            "kind", "admin.field.kind", value=values.get("kind", "department"), hint="admin.units.kind_hint"
        ),
        Field(
            "parent",
            "admin.field.parent",
            kind="select",
            value=values.get("parent") or "",
            options=unit_options(page.session, page, blank="admin.units.no_parent"),
        ),
        Field("active", "admin.field.active", kind="checkbox", value=values.get("active", True)),
    ]


def _list(page: Page, values: Mapping[str, Any], errors: list[str]) -> Response:
    rows = [
        Row(
            id=f"unit-{unit.code}",
            cells=[
                cell(unit.name, f"{BASE}/{quote(unit.code)}", f"depth-{min(depth, MAX_DEPTH)}"),
                cell(unit.code),
                cell(kind_label(page, unit.kind)),
                cell(unit.parent.name if unit.parent else "—"),
                cell(yes_no(page, unit.active)),
            ],
            muted=not unit.active,
        )
        for unit, depth in tree(page.session)
    ]
    form = Form("unit-form", BASE, _fields(page, values, new=True), "admin.create", errors)
    return render_admin(
        page,
        "admin/area.html",
        status_code=error_status(errors),
        title="admin.units.title",
        explain="admin.units.explain",
        table_id="units",
        columns=[
            "admin.field.name",
            "admin.field.code",
            "admin.field.kind",
            "admin.field.parent",
            "admin.field.active",
        ],
        rows=rows,
        form=form,
        form_title="admin.units.new",
    )


@router.get("")
def units_page(page: PageDep) -> Response:
    require_admin(page)
    return _list(page, {}, [])


@router.post("")
def create_unit(page: PageDep, form: FormDep) -> Response:
    values = posted(page, form)

    def change() -> Unit:
        body = ref.UnitIn(
            code=values.get("code", ""),
            name=values.get("name", ""),
            kind=values.get("kind") or "department",
            parent=optional(values, "parent"),
            active=checked(values, "active"),
        )
        return ref.create_unit(page.session, body)

    unit, errors = attempt(page, change)
    if unit is None:
        return _list(page, {**values, "active": checked(values, "active")}, errors)
    audit(page, "unit", "created", unit.code)
    return redirect(f"{BASE}?saved={quote(unit.name)}")


def _edit(page: Page, unit: Unit, values: Mapping[str, Any], errors: list[str]) -> Response:
    form = Form(
        "unit-form", f"{BASE}/{quote(unit.code)}", _fields(page, values, new=False), "admin.save", errors
    )
    return render_admin(
        page,
        "admin/edit.html",
        status_code=error_status(errors),
        heading=page.t("admin.units.edit", name=unit.name),
        back=BASE,
        links=[],
        form=form,
        extras=[],
        history=None,
    )


@router.get("/{code}")
def unit_page(code: CodePath, page: PageDep) -> Response:
    require_admin(page)
    unit = ref.get_unit(page.session, code)
    values = {
        "code": unit.code,
        "name": unit.name,
        "kind": unit.kind,
        "parent": unit.parent.code if unit.parent else "",
        "active": unit.active,
    }
    return _edit(page, unit, values, [])


@router.post("/{code}")
def update_unit(code: CodePath, page: PageDep, form: FormDep) -> Response:
    values = posted(page, form)
    ref.get_unit(page.session, code)  # 404 before anything else

    def change() -> Unit:
        body = ref.UnitUpdate(
            name=values.get("name", ""),
            kind=values.get("kind", ""),
            parent=optional(values, "parent"),
            active=checked(values, "active"),
        )
        return ref.update_unit(page.session, code, body)

    updated, errors = attempt(page, change)
    if updated is None:
        return _edit(
            page,
            ref.get_unit(page.session, code),
            {**values, "code": code, "active": checked(values, "active")},
            errors,
        )
    audit(page, "unit", "updated", code)
    return redirect(f"{BASE}?saved={quote(updated.name)}")
