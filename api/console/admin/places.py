"""Places: responsibility keys (grid codes, road sections, sites) with coordinates and their owner unit."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Annotated, Any
from urllib.parse import quote

from fastapi import APIRouter, Path
from fastapi.responses import Response
from sqlalchemy import select

from api import reference as ref
from api.console.admin.forms import (
    Field,
    Form,
    FormDep,
    attempt,
    audit,
    number,
    optional,
    posted,
    redirect,
    require_admin,
)
from api.console.admin.pages import Row, cell, error_status, kind_label, render_admin
from api.console.admin.units import unit_options
from api.console.deps import Page, PageDep
from api.models import Place

router = APIRouter(prefix="/console/admin/places", include_in_schema=False)
KeyPath = Annotated[str, Path(min_length=1, max_length=64, pattern=ref.CODE_PATTERN)]
BASE = "/console/admin/places"


def _fields(page: Page, values: Mapping[str, Any], *, new: bool) -> list[Field]:
    return [
        Field(
            "key",
            "admin.field.key",
            value=values.get("key", ""),
            required=True,
            readonly=not new,
            hint="admin.places.key_hint",
        ),
        Field("name", "admin.field.name", value=values.get("name", "")),
        Field("kind", "admin.field.kind", value=values.get("kind", "grid"), hint="admin.places.kind_hint"),
        Field("lat", "admin.field.lat", kind="number", step="any", value=values.get("lat")),
        Field("lon", "admin.field.lon", kind="number", step="any", value=values.get("lon")),
        Field(
            "owner",
            "admin.field.owner",
            kind="select",
            value=values.get("owner") or "",
            options=unit_options(page.session, page, blank="admin.places.no_owner"),
            hint="admin.places.owner_hint",
        ),
    ]


def _list(page: Page, values: Mapping[str, Any], errors: list[str]) -> Response:
    places = page.session.scalars(select(Place).order_by(Place.key))
    rows = [
        Row(
            id=f"place-{place.key}",
            cells=[
                cell(place.key, f"{BASE}/{quote(place.key)}"),
                cell(place.name),
                cell(kind_label(page, place.kind)),
                cell(
                    f"{place.lat:.5f}, {place.lon:.5f}"
                    if place.lat is not None and place.lon is not None
                    else "—"
                ),
                cell(place.owner_unit.name if place.owner_unit else "—"),
            ],
        )
        for place in places
    ]
    return render_admin(
        page,
        "admin/area.html",
        status_code=error_status(errors),
        title="admin.places.title",
        explain="admin.places.explain",
        table_id="places",
        columns=[
            "admin.field.key",
            "admin.field.name",
            "admin.field.kind",
            "admin.field.position",
            "admin.field.owner",
        ],
        rows=rows,
        form=Form("place-form", BASE, _fields(page, values, new=True), "admin.create", errors),
        form_title="admin.places.new",
    )


@router.get("")
def places_page(page: PageDep) -> Response:
    require_admin(page)
    return _list(page, {}, [])


@router.post("")
def create_place(page: PageDep, form: FormDep) -> Response:
    values = posted(page, form)

    def change() -> Place:
        body = ref.PlaceIn.model_validate(
            {
                "key": values.get("key", ""),
                "name": values.get("name", ""),
                "kind": values.get("kind") or "grid",
                "lat": number(values, "lat"),
                "lon": number(values, "lon"),
                "owner": optional(values, "owner"),
            }
        )
        return ref.create_place(page.session, body)

    place, errors = attempt(page, change)
    if place is None:
        return _list(page, values, errors)
    audit(page, "place", "created", place.key)
    return redirect(f"{BASE}?saved={quote(place.name or place.key)}")


def _edit(page: Page, key: str, values: Mapping[str, Any], errors: list[str]) -> Response:
    return render_admin(
        page,
        "admin/edit.html",
        status_code=error_status(errors),
        heading=page.t("admin.places.edit", place=key),
        back=BASE,
        links=[],
        form=Form(
            "place-form", f"{BASE}/{quote(key)}", _fields(page, values, new=False), "admin.save", errors
        ),
        extras=[],
        history=None,
    )


@router.get("/{key}")
def place_page(key: KeyPath, page: PageDep) -> Response:
    require_admin(page)
    place = ref.get_place(page.session, key)
    values = {
        "key": place.key,
        "name": place.name,
        "kind": place.kind,
        "lat": place.lat,
        "lon": place.lon,
        "owner": place.owner_unit.code if place.owner_unit else "",
    }
    return _edit(page, key, values, [])


@router.post("/{key}")
def update_place(key: KeyPath, page: PageDep, form: FormDep) -> Response:
    values = posted(page, form)
    ref.get_place(page.session, key)  # 404 before anything else

    def change() -> Place:
        body = ref.PlaceUpdate.model_validate(
            {
                "name": values.get("name", ""),
                "kind": values.get("kind", ""),
                "lat": number(values, "lat"),
                "lon": number(values, "lon"),
                "owner": optional(values, "owner"),
            }
        )
        return ref.update_place(page.session, key, body)

    place, errors = attempt(page, change)
    if place is None:
        return _edit(page, key, {**values, "key": key}, errors)
    audit(page, "place", "updated", key)
    return redirect(f"{BASE}?saved={quote(place.name or key)}")
