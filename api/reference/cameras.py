"""Cameras and their zones: polygons in normalised image coordinates, a place, and per-type rules."""

from __future__ import annotations

import datetime as dt
from collections.abc import Sequence
from typing import Annotated, Any

from pydantic import AfterValidator, BaseModel, ConfigDict, Field, field_validator
from sqlalchemy import select
from sqlalchemy.orm import Session

from api.errors import InvalidInput, NotFound
from api.messages import Refusal, msg
from api.models import Camera, Device, Zone, utcnow
from api.reference.common import (
    Code,
    Coordinate,
    PipelineType,
    StrictModel,
    camera_by_code,
    flush,
    page,
    ref_device,
    ref_place,
    unique,
    upsert,
)
from api.reference.violation_types import known_pipeline_types
from contract import device_config as contract_zone
from contract.device_config import DEFAULT_ANCHOR, Anchor, StaticChangeConfig


class ZoneRule(contract_zone.ZoneRule):
    """How one violation type is judged in a zone (the contract's rule; unknown fields refused on input)."""

    model_config = ConfigDict(extra="forbid")


def _polygon_area(points: Sequence[tuple[float, float]]) -> float:
    total = 0.0
    for (x1, y1), (x2, y2) in zip(points, [*points[1:], points[0]], strict=True):
        total += x1 * y2 - x2 * y1
    return abs(total) / 2


def _check_polygon(points: list[tuple[float, float]]) -> list[tuple[float, float]]:
    if _polygon_area(points) < 1e-6:
        raise Refusal(msg("ref.polygon_area"))
    return points


Polygon = Annotated[
    list[tuple[Coordinate, Coordinate]],
    Field(
        min_length=3,
        max_length=200,
        description="Normalised image coordinates [[x, y], ...], at least 3 points, each within 0..1.",
    ),
    AfterValidator(_check_polygon),
]
ZoneRules = Annotated[
    dict[PipelineType, ZoneRule],
    Field(
        description="Pipeline violation type -> {dwell_s, schedule, min_confidence}; min_confidence null or "
        "absent: the running model's working confidence for the class. Types not listed are not judged here."
    ),
]


class ZoneBody(StrictModel):
    """A zone without its code (the code is in the URL)."""

    place: Code = Field(description="Key of the place (responsibility key) the zone looks at.")
    polygon: Polygon
    anchor: Anchor = Field(
        DEFAULT_ANCHOR, description="The point of a box that must be in the polygon: bottom_center or center."
    )
    rules: ZoneRules = Field(default_factory=dict)
    static_change: StaticChangeConfig | None = Field(
        None,
        description="New objects that appear in the zone and stay, found without a model: "
        "{dwell_s, report_as, min_area}; null: off.",
    )


class ZoneIn(ZoneBody):
    code: Code


class ZonePublic(BaseModel):
    id: int
    code: str
    place_id: int
    place_key: str
    polygon: list[list[float]]
    anchor: str
    rules: dict[str, Any]
    static_change: StaticChangeConfig | None
    reference_sha256: str | None = Field(description="The empty reference image set by an operator.")
    reference_at: dt.datetime | None
    updated_at: dt.datetime


class CameraIn(StrictModel):
    code: Code
    name: str = Field(default="", max_length=200)
    device: str | None = Field(
        default=None, min_length=1, max_length=100, description="Name of the edge box."
    )
    zones: list[ZoneIn] = Field(default_factory=list, max_length=200)

    @field_validator("zones")
    @classmethod
    def _zone_codes_unique(cls, zones: list[ZoneIn]) -> list[ZoneIn]:
        unique([zone.code for zone in zones], "zone code")
        return zones


class CameraUpdate(StrictModel):
    name: str | None = Field(default=None, max_length=200)
    device: str | None = Field(
        default=None, min_length=1, max_length=100, description="Edge box name; null unassigns."
    )


class CameraPublic(BaseModel):
    id: int
    code: str
    name: str
    device: str | None
    health: dict[str, Any] | None
    health_at: dt.datetime | None
    zones: list[ZonePublic]


def zone_public(zone: Zone) -> ZonePublic:
    return ZonePublic(
        id=zone.id,
        code=zone.code,
        place_id=zone.place_id,
        place_key=zone.place.key,
        polygon=[list(point) for point in zone.polygon],
        anchor=zone.anchor,
        rules=zone.rules,
        static_change=zone.static_change,
        reference_sha256=zone.reference_sha256,
        reference_at=zone.reference_at,
        updated_at=zone.updated_at,
    )


def camera_public(session: Session, camera: Camera) -> CameraPublic:
    device = session.get(Device, camera.device_id) if camera.device_id is not None else None
    zones = sorted(camera.zones, key=lambda zone: zone.code)
    return CameraPublic(
        id=camera.id,
        code=camera.code,
        name=camera.name,
        device=device.name if device else None,
        health=camera.health,
        health_at=camera.health_at,
        zones=[zone_public(zone) for zone in zones],
    )


def get_camera(session: Session, code: str) -> Camera:
    camera = camera_by_code(session, code)
    if camera is None:
        raise NotFound(f"no camera with code {code!r}")
    return camera


def list_cameras(
    session: Session, *, device: str | None = None, limit: int, offset: int
) -> tuple[list[Camera], int]:
    query = select(Camera).order_by(Camera.code)
    if device is not None:
        query = query.join(Device, Camera.device_id == Device.id).where(Device.name == device)
    return page(session, query, limit, offset)


def check_zone_rules(known_types: set[str], rules: dict[str, ZoneRule], field: str) -> None:
    unknown = sorted(set(rules) - known_types)
    if unknown:
        known = ", ".join(sorted(known_types))
        refusal = msg(
            "ref.unknown_pipeline_types",
            field=field,
            types=", ".join(unknown),
            known=known or "none yet",
            known_zh=known or "无",
        )
        raise InvalidInput(refusal, field=field)


def zone_values(camera_id: int, code: str, place_id: int, body: ZoneBody) -> dict[str, Any]:
    return {
        "camera_id": camera_id,
        "code": code,
        "place_id": place_id,
        "polygon": [list(point) for point in body.polygon],
        "anchor": body.anchor,
        "rules": {name: rule.model_dump() for name, rule in body.rules.items()},
        "static_change": body.static_change.model_dump() if body.static_change else None,
    }


def _write_zone(session: Session, camera: Camera, code: str, body: ZoneBody, field: str) -> None:
    place = ref_place(session, body.place, f"{field}.place")
    known = known_pipeline_types(session)
    check_zone_rules(known, body.rules, f"{field}.rules")
    if body.static_change is not None and body.static_change.report_as not in known:
        where = f"{field}.static_change.report_as"
        names = ", ".join(sorted(known))
        refusal = msg(
            "ref.unknown_report_as",
            field=where,
            type=body.static_change.report_as,
            known=names or "none yet",
            known_zh=names or "无",
        )
        raise InvalidInput(refusal, field=where)
    values = zone_values(camera.id, code, place.id, body)
    upsert(session, Zone, {**values, "updated_at": utcnow()}, keys=("camera_id", "code"))


def create_camera(session: Session, body: CameraIn) -> Camera:
    device = ref_device(session, body.device, "device") if body.device else None
    camera = Camera(code=body.code, name=body.name, device_id=device.id if device else None)
    session.add(camera)
    flush(session, msg("ref.duplicate_camera", code=body.code))
    for index, zone in enumerate(body.zones):
        _write_zone(session, camera, zone.code, zone, f"zones.{index}")
    session.refresh(camera)
    return camera


def update_camera(session: Session, code: str, body: CameraUpdate) -> Camera:
    camera = get_camera(session, code)
    if "name" in body.model_fields_set:
        if body.name is None:
            raise InvalidInput(msg("ref.null", name="name"), field="name")
        camera.name = body.name
    if "device" in body.model_fields_set:
        device = ref_device(session, body.device, "device") if body.device else None
        camera.device_id = device.id if device else None
    session.flush()
    return camera


def delete_camera(session: Session, code: str) -> None:
    session.delete(get_camera(session, code))
    session.flush()


def put_zone(session: Session, camera_code: str, zone_code: str, body: ZoneBody) -> Zone:
    camera = get_camera(session, camera_code)
    _write_zone(session, camera, zone_code, body, "zone")
    zone = session.scalar(
        select(Zone)
        .where(Zone.camera_id == camera.id, Zone.code == zone_code)
        .execution_options(populate_existing=True)
    )
    assert zone is not None  # just upserted in this transaction
    return zone


def delete_zone(session: Session, camera_code: str, zone_code: str) -> None:
    camera = get_camera(session, camera_code)
    zone = session.scalar(select(Zone).where(Zone.camera_id == camera.id, Zone.code == zone_code))
    if zone is None:
        raise NotFound(f"camera {camera_code!r} has no zone {zone_code!r}")
    session.delete(zone)
    session.flush()
