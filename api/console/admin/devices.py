"""Edge boxes: register one (its key is shown once, on the answer to the form, and never again: only its
hash is stored) and revoke one (its key stops working at once; the row stays for the cases it reported)."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Annotated, Any

from fastapi import APIRouter, Path
from fastapi.responses import Response
from pydantic import Field as ModelField
from sqlalchemy import select

from api.auth import IssuedDeviceKey, create_device
from api.console.admin.forms import Field, Form, FormDep, attempt, audit, posted, redirect, require_admin
from api.console.admin.pages import Row, cell, error_status, local_time, render_admin, yes_no
from api.console.deps import Page, PageDep
from api.errors import Conflict, NotFound
from api.messages import msg
from api.models import Camera, Device
from api.reference.common import CODE_PATTERN, StrictModel, device_by_name

router = APIRouter(prefix="/console/admin/devices", include_in_schema=False)
DeviceId = Annotated[int, Path(ge=1, le=2**31 - 1)]
BASE = "/console/admin/devices"


class DeviceIn(StrictModel):
    """A device name as cameras and the CLI name it (no spaces or slashes)."""

    name: str = ModelField(min_length=1, max_length=100, pattern=CODE_PATTERN)


def _list(page: Page, values: Mapping[str, Any], errors: list[str]) -> Response:
    cameras: dict[int, list[str]] = {}
    for device_id, code in page.session.execute(select(Camera.device_id, Camera.code).order_by(Camera.code)):
        if device_id is not None:
            cameras.setdefault(device_id, []).append(code)
    rows = []
    for device in page.session.scalars(select(Device).order_by(Device.name)):
        rows.append(
            Row(
                id=f"device-{device.name}",
                cells=[
                    cell(device.name),
                    cell(", ".join(cameras.get(device.id, [])) or "—"),
                    cell(local_time(page, device.last_seen_at)),
                    cell(yes_no(page, device.active)),
                ],
                muted=not device.active,
            )
        )
    active = [
        d for d in page.session.scalars(select(Device).where(Device.active.is_(True)).order_by(Device.name))
    ]
    return render_admin(
        page,
        "admin/devices.html",
        status_code=error_status(errors),
        title="admin.devices.title",
        explain="admin.devices.explain",
        table_id="devices",
        columns=["admin.field.name", "admin.field.cameras", "admin.field.last_seen", "admin.field.active"],
        rows=rows,
        form=Form(
            "device-form",
            BASE,
            [Field("name", "admin.field.name", value=values.get("name", ""), required=True)],
            "admin.devices.create",
            errors,
        ),
        form_title="admin.devices.new",
        active_devices=active,
    )


@router.get("")
def devices_page(page: PageDep) -> Response:
    require_admin(page)
    return _list(page, {}, [])


@router.post("")
def register_device(page: PageDep, form: FormDep) -> Response:
    values = posted(page, form)

    def change() -> IssuedDeviceKey:
        body = DeviceIn.model_validate({"name": values.get("name", "")})
        if device_by_name(page.session, body.name) is not None:
            raise Conflict(msg("ref.duplicate_device", name=body.name), field="name")
        return create_device(page.session, body.name)

    issued, errors = attempt(page, change)
    if issued is None:
        return _list(page, values, errors)
    audit(page, "device", "created", issued.device.name)  # the name only: never the key
    response = render_admin(page, "admin/device_key.html", name=issued.device.name, key=issued.key)
    response.headers["Cache-Control"] = "no-store"  # the key must not stay in a cache or the history
    return response


@router.post("/{device_id}/revoke")
def revoke_device(device_id: DeviceId, page: PageDep, form: FormDep) -> Response:
    posted(page, form)
    device = page.session.get(Device, device_id)
    if device is None:
        raise NotFound(f"no device {device_id}")
    device.active = False
    page.session.commit()
    audit(page, "device", "revoked", device.name)
    return redirect(f"{BASE}?saved={device.name}")
