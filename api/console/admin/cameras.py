"""Cameras with their edge box: create, rename, assign to a device; the zones are drawn in the existing
zone editor (/console/cameras/<code>/zones), linked from here."""

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
    optional,
    posted,
    redirect,
    require_admin,
)
from api.console.admin.pages import Row, cell, error_status, render_admin
from api.console.deps import Page, PageDep
from api.models import Camera, Device

router = APIRouter(prefix="/console/admin/cameras", include_in_schema=False)
CodePath = Annotated[str, Path(min_length=1, max_length=64, pattern=ref.CODE_PATTERN)]
BASE = "/console/admin/cameras"


def _device_options(page: Page) -> list[tuple[str, str]]:
    devices = page.session.scalars(select(Device).order_by(Device.name))
    return [("", page.t("admin.cameras.no_device"))] + [
        (device.name, device.name if device.active else f"{device.name} ({page.t('admin.devices.revoked')})")
        for device in devices
    ]


def _fields(page: Page, values: Mapping[str, Any], *, new: bool) -> list[Field]:
    return [
        Field("code", "admin.field.code", value=values.get("code", ""), required=True, readonly=not new),
        Field("name", "admin.field.name", value=values.get("name", "")),
        Field(
            "device",
            "admin.field.device",
            kind="select",
            value=values.get("device") or "",
            options=_device_options(page),
            hint="admin.cameras.device_hint",
        ),
    ]


def zones_href(code: str) -> str:
    return f"/console/cameras/{quote(code)}/zones"


def _list(page: Page, values: Mapping[str, Any], errors: list[str]) -> Response:
    devices = {d.id: d.name for d in page.session.scalars(select(Device))}
    cameras = page.session.scalars(select(Camera).order_by(Camera.code))
    rows = [
        Row(
            id=f"camera-{camera.code}",
            cells=[
                cell(camera.code, f"{BASE}/{quote(camera.code)}"),
                cell(camera.name),
                cell(devices.get(camera.device_id, "—") if camera.device_id else "—"),
                cell(page.t("admin.cameras.zones", count=len(camera.zones)), zones_href(camera.code)),
            ],
        )
        for camera in cameras
    ]
    return render_admin(
        page,
        "admin/area.html",
        status_code=error_status(errors),
        title="admin.cameras.title",
        explain="admin.cameras.explain",
        table_id="cameras",
        columns=["admin.field.code", "admin.field.name", "admin.field.device", "admin.field.zones"],
        rows=rows,
        form=Form("camera-form", BASE, _fields(page, values, new=True), "admin.create", errors),
        form_title="admin.cameras.new",
    )


@router.get("")
def cameras_page(page: PageDep) -> Response:
    require_admin(page)
    return _list(page, {}, [])


@router.post("")
def create_camera(page: PageDep, form: FormDep) -> Response:
    values = posted(page, form)

    def change() -> Camera:
        body = ref.CameraIn.model_validate(
            {
                "code": values.get("code", ""),
                "name": values.get("name", ""),
                "device": optional(values, "device"),
            }
        )
        return ref.create_camera(page.session, body)

    camera, errors = attempt(page, change)
    if camera is None:
        return _list(page, values, errors)
    audit(page, "camera", "created", camera.code)
    return redirect(f"{BASE}?saved={quote(camera.code)}")


def _edit(page: Page, code: str, values: Mapping[str, Any], errors: list[str]) -> Response:
    return render_admin(
        page,
        "admin/edit.html",
        status_code=error_status(errors),
        heading=page.t("admin.cameras.edit", code=code),
        back=BASE,
        links=[(page.t("admin.cameras.edit_zones"), zones_href(code))],
        form=Form(
            "camera-form", f"{BASE}/{quote(code)}", _fields(page, values, new=False), "admin.save", errors
        ),
        extras=[],
        history=None,
    )


@router.get("/{code}")
def camera_page(code: CodePath, page: PageDep) -> Response:
    require_admin(page)
    public = ref.camera_public(page.session, ref.get_camera(page.session, code))
    return _edit(page, code, {"code": public.code, "name": public.name, "device": public.device or ""}, [])


@router.post("/{code}")
def update_camera(code: CodePath, page: PageDep, form: FormDep) -> Response:
    values = posted(page, form)
    ref.get_camera(page.session, code)  # 404 before anything else

    def change() -> Camera:
        body = ref.CameraUpdate.model_validate(
            {"name": values.get("name", ""), "device": optional(values, "device")}
        )
        return ref.update_camera(page.session, code, body)

    camera, errors = attempt(page, change)
    if camera is None:
        return _edit(page, code, {**values, "code": code}, errors)
    audit(page, "camera", "updated", code)
    return redirect(f"{BASE}?saved={quote(code)}")
