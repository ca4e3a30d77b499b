"""Cameras and zones: the camera list with the daemons' health reports (stale ones highlighted), and the
zone editor (the camera's latest frame, polygons drawn with the mouse, rules per violation type, schedules
and the place). Zones are saved through the same service as the API's PUT .../zones/{zone}; the editor
sends schedules as text (``mon-fri 07:00-08:30``), converted in :mod:`contract.schedule` like the daemon's.
"""

from __future__ import annotations

import json
from typing import Annotated, Any

from fastapi import APIRouter, Form, Path
from fastapi.responses import JSONResponse, Response
from pydantic import ValidationError
from sqlalchemy import select

from api.cameras import ZONE_EDITOR_ROLES, camera_health
from api.console.deps import Page, PageDep
from api.console.formatting import local_time
from api.console.names import violation_type_names
from api.console.refusals import refusal_text, validation_detail
from api.console.rendering import render
from api.console.security import CSRF_FIELD, check_csrf
from api.deps import SettingsDep
from api.errors import ApiError, Forbidden
from api.models import Camera, Device, Place, Role
from api.reference.cameras import ZoneBody, delete_zone, get_camera, put_zone
from api.reference.common import CODE_PATTERN
from api.zone_references import set_reference_from_snapshot
from contract.device_config import DEFAULT_ANCHOR
from contract.schedule import ScheduleError, text_to_windows, windows_to_text

router = APIRouter(prefix="/console/cameras", include_in_schema=False)

VIEWER_ROLES = (Role.ADMIN, Role.SHIFT_LEADER, Role.DISPATCHER, Role.VIEWER)
CodePath = Annotated[str, Path(min_length=1, max_length=64, pattern=CODE_PATTERN)]


def _require(page: Page, roles: tuple[Role, ...]) -> None:
    if page.operator.role not in roles:
        raise Forbidden(f"role '{page.operator.role}' may not open this page")


@router.get("")
def cameras_page(page: PageDep) -> Response:
    _require(page, VIEWER_ROLES)
    cameras = list(page.session.scalars(select(Camera).order_by(Camera.code)))
    devices = {d.id: d.name for d in page.session.scalars(select(Device))}
    rows = [
        {
            "camera": camera,
            "device": devices.get(camera.device_id) if camera.device_id else None,
            "health": camera_health(camera),
            "zones": len(camera.zones),
            # static-change zone -> reference state, as the daemon last reported it
            "references": dict((camera.health or {}).get("references") or {}),
        }
        for camera in cameras
    ]
    return render(page, "cameras/list.html", rows=rows, can_edit=page.operator.role in ZONE_EDITOR_ROLES)


def _editor_zone(page: Page, zone: Any) -> dict[str, Any]:
    """A stored zone for the editor's script: schedules as text in the reader's language (周一-周五 or
    mon-fri, both read back), times in the store's time zone."""
    return {
        "code": zone.code,
        "place": zone.place.key,
        "polygon": zone.polygon,
        "anchor": zone.anchor,
        "rules": {
            name: {
                "dwell_s": rule["dwell_s"],
                "schedule": windows_to_text(rule.get("schedule") or [], page.lang) or "",
                # null (or absent): the model's working confidence; the editor shows it empty
                "min_confidence": rule.get("min_confidence"),
            }
            for name, rule in zone.rules.items()
        },
        "static_change": zone.static_change,
        "reference_sha256": zone.reference_sha256,
        "reference_at": zone.reference_at.isoformat() if zone.reference_at else None,
        "reference_at_text": local_time(zone.reference_at, page.timezone) if zone.reference_at else None,
    }


@router.get("/{code}/zones")
def zone_editor_page(code: CodePath, page: PageDep) -> Response:
    _require(page, ZONE_EDITOR_ROLES)
    camera = get_camera(page.session, code)
    places = list(page.session.scalars(select(Place).order_by(Place.key)))
    type_names = violation_type_names(page.session, page.lang)
    zones = [_editor_zone(page, zone) for zone in sorted(camera.zones, key=lambda z: z.code)]
    return render(
        page,
        "cameras/editor.html",
        camera=camera,
        health=camera_health(camera),
        places=places,
        types=sorted(type_names),
        type_names=type_names,
        zones_json=json.dumps(zones, ensure_ascii=False).replace("</", "<\\/"),  # inside <script>
    )


def _error(status: int, message: str, field: str | None) -> JSONResponse:
    return JSONResponse({"detail": message, "field": field}, status_code=status)


# the zone editor's labels of a zone's fields, for refusals that name one
_ZONE_FIELDS = {
    "place": "zones.place",
    "polygon": "zones.field.polygon",
    "anchor": "zones.anchor",
    "dwell_s": "zones.dwell",
    "min_confidence": "zones.min_confidence",
    "schedule": "zones.schedule",
    "min_area": "zones.static_min_area",
    "report_as": "zones.static_report_as",
}


def _zone_problem(page: Page, error: Any, type_names: dict[str, str]) -> str:
    """A refused zone in Chinese: “机动车乱停放”的停留（秒）：超出允许范围 (the rule by its type's name)."""
    parts = [str(part) for part in error["loc"]]
    named = [part for part in parts if part in _ZONE_FIELDS]
    label = page.t(_ZONE_FIELDS[named[-1]]) if named else ""
    if parts[:1] == ["rules"] and len(parts) > 1:
        label = f"“{type_names.get(parts[1], parts[1])}”的{label}"
    elif parts[:1] == ["static_change"]:
        label = f"{page.t('zones.static_change')} · {label}" if label else page.t("zones.static_change")
    detail = validation_detail(page, error)
    return f"{label}：{detail}" if label else detail


def _zh_value_error(page: Page, exc: ValueError) -> str:
    """A refusal from the editor's own checks: catalogued, or (a malformed request) the generic phrase."""
    return refusal_text(page, exc) if hasattr(exc, "msg") else page.t("admin.error.invalid")


def _zone_body(data: Any, type_names: dict[str, str]) -> ZoneBody:
    """The editor's JSON as the API's zone body; schedule text becomes the store's windows."""
    if not isinstance(data, dict) or not isinstance(data.get("rules"), dict):
        raise ValueError("expected {place, polygon, rules}")
    rules = {}
    for name, rule in data["rules"].items():
        text = str((rule or {}).get("schedule") or "").strip()
        try:
            windows = text_to_windows(text or None)
        except ScheduleError as exc:
            raise exc.in_rule(name, type_names.get(name)) from None
        rules[name] = {
            "dwell_s": (rule or {}).get("dwell_s"),
            "schedule": windows,
            "min_confidence": (rule or {}).get("min_confidence"),  # null: the model's working confidence
        }
    return ZoneBody.model_validate(
        {
            "place": data.get("place"),
            "polygon": data.get("polygon"),
            "anchor": data.get("anchor") or DEFAULT_ANCHOR,
            "rules": rules,
            "static_change": data.get("static_change"),
        }
    )


@router.post("/{code}/zones/{zone_code}")
def save_zone(
    code: CodePath,
    zone_code: CodePath,
    page: PageDep,
    zone: Annotated[str, Form(max_length=100_000)],
    csrf_token: Annotated[str, Form(alias=CSRF_FIELD)] = "",
) -> Response:
    """Create or replace one zone; JSON answer (the editor's script shows errors next to the field)."""
    check_csrf(page.request, csrf_token)
    _require(page, ZONE_EDITOR_ROLES)
    try:
        body = _zone_body(json.loads(zone), violation_type_names(page.session, page.lang))
        saved = put_zone(page.session, code, zone_code, body)
    except ValidationError as exc:
        first = exc.errors()[0]
        field = ".".join(str(part) for part in first["loc"])
        if page.lang == "en":
            return _error(422, f"{field}: {first['msg']}", field)
        return _error(422, _zone_problem(page, first, violation_type_names(page.session, page.lang)), field)
    except ScheduleError as exc:
        return _error(422, exc.text(page.lang), str(exc).split(":", 1)[0])
    except ValueError as exc:
        return _error(422, refusal_text(page, exc) if page.lang == "en" else _zh_value_error(page, exc), None)
    except ApiError as exc:
        return _error(exc.status_code, page.error_text(exc), exc.details.get("field"))
    page.session.commit()
    return JSONResponse({"saved": _editor_zone(page, saved)})


@router.post("/{code}/zones/{zone_code}/reference")
def set_reference(
    code: CodePath,
    zone_code: CodePath,
    page: PageDep,
    settings: SettingsDep,
    csrf_token: Annotated[str, Form(alias=CSRF_FIELD)] = "",
) -> Response:
    """The camera's current frame becomes the zone's empty reference (the pavement is clean now)."""
    check_csrf(page.request, csrf_token)
    _require(page, ZONE_EDITOR_ROLES)
    try:
        saved = set_reference_from_snapshot(page.session, settings, code, zone_code)
    except ApiError as exc:
        return _error(exc.status_code, page.error_text(exc), exc.details.get("field"))
    page.session.commit()
    return JSONResponse({"saved": _editor_zone(page, saved)})


@router.post("/{code}/zones/{zone_code}/delete")
def remove_zone(
    code: CodePath,
    zone_code: CodePath,
    page: PageDep,
    csrf_token: Annotated[str, Form(alias=CSRF_FIELD)] = "",
) -> Response:
    check_csrf(page.request, csrf_token)
    _require(page, ZONE_EDITOR_ROLES)
    try:
        delete_zone(page.session, code, zone_code)
    except ApiError as exc:
        return _error(exc.status_code, page.error_text(exc), None)
    page.session.commit()
    return JSONResponse({"deleted": zone_code})
