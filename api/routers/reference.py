"""Reference data API: units, places, violation types, cameras and zones, routing rules, deadlines and
the working calendar. Any operator reads; admins write (dispatchers may also edit routing rules, shift
leaders zones)."""

from __future__ import annotations

import datetime as dt
from typing import Annotated, Any

from fastapi import APIRouter, Depends, Path, Query, Response
from pydantic import BaseModel, ConfigDict, Field

from api import admin_audit
from api import reference as ref
from api.actors import Actor
from api.cameras import ZONE_EDITOR_ROLES
from api.deps import AdminDep, OperatorDep, SessionDep, SettingsDep, require_roles
from api.models import Role
from api.routers.responses import AUTHENTICATED, INVALID, NOT_FOUND, errors
from api.schemas import Page
from api.zone_references import clear_reference, set_reference_from_snapshot

router = APIRouter(prefix="/api/v1", tags=["reference"], responses=AUTHENTICATED)

RoutingEditorDep = Annotated[Actor, Depends(require_roles(Role.ADMIN, Role.DISPATCHER))]
ZoneEditorDep = Annotated[Actor, Depends(require_roles(*ZONE_EDITOR_ROLES))]
Limit = Annotated[int, Query(ge=1, le=5000, description="Page size.")]
Offset = Annotated[int, Query(ge=0, le=10_000_000, description="Rows to skip.")]
CodePath = Annotated[str, Path(min_length=1, max_length=64, pattern=ref.CODE_PATTERN)]
EventCodePath = Annotated[str, Path(min_length=1, max_length=16, pattern=ref.EVENT_CODE_PATTERN)]
RuleId = Annotated[int, Path(ge=1, le=2**31 - 1)]


def no_content() -> Response:
    return Response(status_code=204)


# --- units ----


@router.get("/units", response_model=Page[ref.UnitPublic], responses=INVALID)
def list_units(
    _: OperatorDep, session: SessionDep, limit: Limit = 1000, offset: Offset = 0
) -> Page[ref.UnitPublic]:
    units, count = ref.list_units(session, limit=limit, offset=offset)
    return Page(data=[ref.unit_public(unit) for unit in units], count=count)


@router.post("/units", status_code=201, response_model=ref.UnitPublic, responses=errors(400, 409, 422))
def create_unit(body: ref.UnitIn, _: AdminDep, session: SessionDep) -> ref.UnitPublic:
    return ref.unit_public(ref.create_unit(session, body))


@router.get("/units/{code}", response_model=ref.UnitPublic, responses=NOT_FOUND)
def get_unit(code: CodePath, _: OperatorDep, session: SessionDep) -> ref.UnitPublic:
    return ref.unit_public(ref.get_unit(session, code))


@router.patch("/units/{code}", response_model=ref.UnitPublic, responses=errors(400, 404, 422))
def update_unit(code: CodePath, body: ref.UnitUpdate, _: AdminDep, session: SessionDep) -> ref.UnitPublic:
    return ref.unit_public(ref.update_unit(session, code, body))


@router.delete("/units/{code}", status_code=204, response_class=Response, responses=errors(404, 409, 422))
def delete_unit(code: CodePath, _: AdminDep, session: SessionDep) -> Response:
    ref.delete_unit(session, code)
    return no_content()


# --- places ----


@router.get("/places", response_model=Page[ref.PlacePublic], responses=INVALID)
def list_places(
    _: OperatorDep,
    session: SessionDep,
    owner: Annotated[str | None, Query(max_length=64, description="Owner unit code.")] = None,
    limit: Limit = 1000,
    offset: Offset = 0,
) -> Page[ref.PlacePublic]:
    places, count = ref.list_places(session, owner=owner, limit=limit, offset=offset)
    return Page(data=[ref.place_public(place) for place in places], count=count)


@router.post("/places", status_code=201, response_model=ref.PlacePublic, responses=errors(400, 409, 422))
def create_place(body: ref.PlaceIn, _: AdminDep, session: SessionDep) -> ref.PlacePublic:
    return ref.place_public(ref.create_place(session, body))


@router.get("/places/{key}", response_model=ref.PlacePublic, responses=NOT_FOUND)
def get_place(key: CodePath, _: OperatorDep, session: SessionDep) -> ref.PlacePublic:
    return ref.place_public(ref.get_place(session, key))


@router.patch("/places/{key}", response_model=ref.PlacePublic, responses=errors(400, 404, 422))
def update_place(key: CodePath, body: ref.PlaceUpdate, _: AdminDep, session: SessionDep) -> ref.PlacePublic:
    return ref.place_public(ref.update_place(session, key, body))


@router.delete("/places/{key}", status_code=204, response_class=Response, responses=errors(404, 409, 422))
def delete_place(key: CodePath, _: AdminDep, session: SessionDep) -> Response:
    ref.delete_place(session, key)
    return no_content()


# --- violation types ----


@router.get("/violation-types", response_model=Page[ref.ViolationTypePublic])
def list_violation_types(_: OperatorDep, session: SessionDep) -> Page[ref.ViolationTypePublic]:
    rows = ref.list_violation_types(session)
    return Page(data=[ref.ViolationTypePublic.model_validate(row) for row in rows], count=len(rows))


@router.post(
    "/violation-types",
    status_code=201,
    response_model=ref.ViolationTypePublic,
    responses=errors(400, 409, 422),
)
def create_violation_type(
    body: ref.ViolationTypeIn, _: AdminDep, session: SessionDep
) -> ref.ViolationTypePublic:
    return ref.ViolationTypePublic.model_validate(ref.create_violation_type(session, body))


@router.get("/violation-types/{code}", response_model=ref.ViolationTypePublic, responses=NOT_FOUND)
def get_violation_type(code: EventCodePath, _: OperatorDep, session: SessionDep) -> ref.ViolationTypePublic:
    return ref.ViolationTypePublic.model_validate(ref.get_violation_type(session, code))


@router.patch(
    "/violation-types/{code}", response_model=ref.ViolationTypePublic, responses=errors(400, 404, 422)
)
def update_violation_type(
    code: EventCodePath, body: ref.ViolationTypeUpdate, _: AdminDep, session: SessionDep
) -> ref.ViolationTypePublic:
    return ref.ViolationTypePublic.model_validate(ref.update_violation_type(session, code, body))


@router.delete(
    "/violation-types/{code}", status_code=204, response_class=Response, responses=errors(404, 409, 422)
)
def delete_violation_type(code: EventCodePath, _: AdminDep, session: SessionDep) -> Response:
    ref.delete_violation_type(session, code)
    return no_content()


# --- cameras and zones ----


@router.get("/cameras", response_model=Page[ref.CameraPublic], responses=INVALID)
def list_cameras(
    _: OperatorDep,
    session: SessionDep,
    device: Annotated[str | None, Query(max_length=100, description="Edge box name.")] = None,
    limit: Limit = 1000,
    offset: Offset = 0,
) -> Page[ref.CameraPublic]:
    cameras, count = ref.list_cameras(session, device=device, limit=limit, offset=offset)
    return Page(data=[ref.camera_public(session, camera) for camera in cameras], count=count)


@router.post("/cameras", status_code=201, response_model=ref.CameraPublic, responses=errors(400, 409, 422))
def create_camera(body: ref.CameraIn, _: AdminDep, session: SessionDep) -> ref.CameraPublic:
    return ref.camera_public(session, ref.create_camera(session, body))


@router.get("/cameras/{code}", response_model=ref.CameraPublic, responses=NOT_FOUND)
def get_camera(code: CodePath, _: OperatorDep, session: SessionDep) -> ref.CameraPublic:
    return ref.camera_public(session, ref.get_camera(session, code))


@router.patch("/cameras/{code}", response_model=ref.CameraPublic, responses=errors(400, 404, 422))
def update_camera(
    code: CodePath, body: ref.CameraUpdate, _: AdminDep, session: SessionDep
) -> ref.CameraPublic:
    return ref.camera_public(session, ref.update_camera(session, code, body))


@router.delete("/cameras/{code}", status_code=204, response_class=Response, responses=NOT_FOUND)
def delete_camera(code: CodePath, _: AdminDep, session: SessionDep) -> Response:
    ref.delete_camera(session, code)
    return no_content()


@router.get("/cameras/{code}/zones", response_model=list[ref.ZonePublic], responses=NOT_FOUND)
def list_zones(code: CodePath, _: OperatorDep, session: SessionDep) -> list[ref.ZonePublic]:
    return ref.camera_public(session, ref.get_camera(session, code)).zones


@router.put(
    "/cameras/{code}/zones/{zone_code}", response_model=ref.ZonePublic, responses=errors(400, 404, 422)
)
def put_zone(
    code: CodePath, zone_code: CodePath, body: ref.ZoneBody, _: ZoneEditorDep, session: SessionDep
) -> ref.ZonePublic:
    """Create or replace a zone: polygon in normalised image coordinates, rules per violation type."""
    return ref.zone_public(ref.put_zone(session, code, zone_code, body))


@router.put(
    "/cameras/{code}/zones/{zone_code}/reference",
    response_model=ref.ZonePublic,
    responses=errors(400, 404, 422),
)
def set_zone_reference(
    code: CodePath, zone_code: CodePath, _: ZoneEditorDep, session: SessionDep, settings: SettingsDep
) -> ref.ZonePublic:
    """Use the camera's current snapshot as the static-change zone's empty reference (take it while the
    pavement is clean): what was already there when the box started is then found too."""
    return ref.zone_public(set_reference_from_snapshot(session, settings, code, zone_code))


@router.delete(
    "/cameras/{code}/zones/{zone_code}/reference", response_model=ref.ZonePublic, responses=NOT_FOUND
)
def delete_zone_reference(
    code: CodePath, zone_code: CodePath, _: ZoneEditorDep, session: SessionDep
) -> ref.ZonePublic:
    """Forget the operator's reference: the box learns the zone's empty look itself again."""
    return ref.zone_public(clear_reference(session, code, zone_code))


@router.delete(
    "/cameras/{code}/zones/{zone_code}", status_code=204, response_class=Response, responses=NOT_FOUND
)
def delete_zone(code: CodePath, zone_code: CodePath, _: ZoneEditorDep, session: SessionDep) -> Response:
    ref.delete_zone(session, code, zone_code)
    return no_content()


# --- routing rules ----


@router.get("/routing-rules", response_model=Page[ref.RoutingRulePublic], responses=INVALID)
def list_routing_rules(
    _: OperatorDep,
    session: SessionDep,
    place: Annotated[str | None, Query(max_length=64, description="Place key.")] = None,
    violation: Annotated[str | None, Query(max_length=16, description="Event code.")] = None,
    unit: Annotated[str | None, Query(max_length=64, description="Unit code.")] = None,
    limit: Limit = 1000,
    offset: Offset = 0,
) -> Page[ref.RoutingRulePublic]:
    rules, count = ref.list_routing_rules(
        session, place=place, violation=violation, unit=unit, limit=limit, offset=offset
    )
    return Page(data=[ref.routing_public(session, rule) for rule in rules], count=count)


@router.get("/routing-rules/history", response_model=Page[ref.RoutingRuleHistoryPublic], responses=INVALID)
def routing_history(
    _: OperatorDep,
    session: SessionDep,
    rule_id: Annotated[int | None, Query(ge=1, le=2**31 - 1, description="Only this rule's changes.")] = None,
    limit: Limit = 100,
    offset: Offset = 0,
) -> Page[ref.RoutingRuleHistoryPublic]:
    """Every change to the routing rules, newest first: what changed, the rule after it, and who did it."""
    rows, count = ref.routing_history(session, rule_id=rule_id, limit=limit, offset=offset)
    return Page(data=[ref.RoutingRuleHistoryPublic.model_validate(row) for row in rows], count=count)


class AdminEventPublic(BaseModel):
    model_config = ConfigDict(from_attributes=True)

    id: int
    at: dt.datetime
    actor: str = Field(description="user:<name>, device:<name>, cli:<login> or system")
    area: str = Field(description=f"One of: {', '.join(admin_audit.AREAS)}")
    action: str = Field(description="created, updated or deleted")
    object_key: str
    before: dict[str, Any] | None = Field(description="Changed values before (secrets as [redacted])")
    after: dict[str, Any] | None = Field(description="Values after (secrets as [redacted])")


class AdminEventPage(BaseModel):
    data: list[AdminEventPublic]
    next_before: int | None = Field(description="Pass as ``before`` for the next (older) page; null: none.")


@router.get("/admin-events", response_model=AdminEventPage, responses=INVALID)
def list_admin_events(
    _: AdminDep,
    session: SessionDep,
    area: Annotated[str | None, Query(max_length=32, description="Only this area.")] = None,
    actor: Annotated[str | None, Query(max_length=100, description="Only this actor.")] = None,
    before: Annotated[int | None, Query(ge=1, le=2**63 - 1, description="Events older than this id.")] = None,
    limit: Annotated[int, Query(ge=1, le=500, description="Page size.")] = 100,
) -> AdminEventPage:
    """The admin audit trail: every change to reference data, cameras, zones, devices and users, newest
    first (admins only)."""
    events, next_before = admin_audit.list_events(session, area=area, actor=actor, before=before, limit=limit)
    return AdminEventPage(
        data=[AdminEventPublic.model_validate(event) for event in events], next_before=next_before
    )


@router.post(
    "/routing-rules", status_code=201, response_model=ref.RoutingRulePublic, responses=errors(400, 422)
)
def create_routing_rule(
    body: ref.RoutingRuleIn, actor: RoutingEditorDep, session: SessionDep
) -> ref.RoutingRulePublic:
    return ref.routing_public(session, ref.create_routing_rule(session, actor, body))


@router.get("/routing-rules/{rule_id}", response_model=ref.RoutingRulePublic, responses=NOT_FOUND)
def get_routing_rule(rule_id: RuleId, _: OperatorDep, session: SessionDep) -> ref.RoutingRulePublic:
    return ref.routing_public(session, ref.get_routing_rule(session, rule_id))


@router.patch(
    "/routing-rules/{rule_id}", response_model=ref.RoutingRulePublic, responses=errors(400, 404, 422)
)
def update_routing_rule(
    rule_id: RuleId, body: ref.RoutingRuleUpdate, actor: RoutingEditorDep, session: SessionDep
) -> ref.RoutingRulePublic:
    return ref.routing_public(session, ref.update_routing_rule(session, actor, rule_id, body))


@router.delete("/routing-rules/{rule_id}", status_code=204, response_class=Response, responses=NOT_FOUND)
def delete_routing_rule(rule_id: RuleId, actor: RoutingEditorDep, session: SessionDep) -> Response:
    ref.delete_routing_rule(session, actor, rule_id)
    return no_content()


# --- deadlines ----


@router.get("/deadlines", response_model=list[ref.DeadlinePublic])
def list_deadlines(_: OperatorDep, session: SessionDep) -> list[ref.DeadlinePublic]:
    return [
        ref.DeadlinePublic(violation_code=row.violation_code, working_hours=row.working_hours)
        for row in ref.list_deadlines(session)
    ]


@router.put("/deadlines/{violation_code}", response_model=ref.DeadlinePublic, responses=errors(400, 422))
def put_deadline(
    violation_code: EventCodePath, body: ref.DeadlineIn, _: AdminDep, session: SessionDep
) -> ref.DeadlinePublic:
    row = ref.put_deadline(session, violation_code, body)
    return ref.DeadlinePublic(violation_code=row.violation_code, working_hours=row.working_hours)


@router.delete("/deadlines/{violation_code}", status_code=204, response_class=Response, responses=NOT_FOUND)
def delete_deadline(violation_code: EventCodePath, _: AdminDep, session: SessionDep) -> Response:
    ref.delete_deadline(session, violation_code)
    return no_content()


# --- working calendar ----


@router.get("/calendar", response_model=ref.CalendarPublic)
def get_calendar(_: OperatorDep, session: SessionDep) -> ref.CalendarPublic:
    return ref.get_calendar(session)


@router.put("/calendar", response_model=ref.CalendarPublic, responses=errors(400, 422))
def put_calendar(body: ref.CalendarIn, _: AdminDep, session: SessionDep) -> ref.CalendarPublic:
    return ref.put_calendar(session, body)


@router.get("/calendar/days", response_model=list[ref.CalendarDayPublic], responses=INVALID)
def list_calendar_days(
    _: OperatorDep,
    session: SessionDep,
    start: Annotated[dt.date | None, Query(description="First day (inclusive).")] = None,
    end: Annotated[dt.date | None, Query(description="Last day (inclusive).")] = None,
) -> list[ref.CalendarDayPublic]:
    rows = ref.list_calendar_days(session, start=start, end=end)
    return [ref.CalendarDayPublic(day=row.day, working=row.working, name=row.name) for row in rows]


@router.put("/calendar/days/{day}", response_model=ref.CalendarDayPublic, responses=errors(400, 422))
def put_calendar_day(
    day: dt.date, body: ref.CalendarDayIn, _: AdminDep, session: SessionDep
) -> ref.CalendarDayPublic:
    """Mark a holiday (working=false) or a make-up working day (working=true, 调休)."""
    row = ref.put_calendar_day(session, day, body)
    return ref.CalendarDayPublic(day=row.day, working=row.working, name=row.name)


@router.delete("/calendar/days/{day}", status_code=204, response_class=Response, responses=NOT_FOUND)
def delete_calendar_day(day: dt.date, _: AdminDep, session: SessionDep) -> Response:
    ref.delete_calendar_day(session, day)
    return no_content()
