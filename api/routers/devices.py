"""Edge boxes: their own configuration (cameras, zones, violation types) and camera health reports,
the operators' device list, and a trivial ping used as the benchmark's baseline."""

from __future__ import annotations

import datetime as dt
import hashlib
import json
from typing import Annotated

from fastapi import APIRouter, Header, Path, Response
from fastapi.responses import FileResponse
from pydantic import BaseModel
from sqlalchemy import select
from sqlalchemy.orm import Session, selectinload

from api import model_registry, suppressions
from api import reference as ref
from api.deps import DeviceDep, OperatorDep, SessionDep, SettingsDep
from api.models import Camera, Device, ViolationType, Zone, utcnow
from api.routers.responses import AUTHENTICATED, INVALID, NOT_FOUND, errors
from api.storage import blobs_for
from api.storage.responses import RangeDep, blob_response
from api.zone_references import NO_REFERENCE, SHA256_PATTERN, open_device_reference
from contract.device_cases import DeviceCase
from contract.device_config import DeviceConfig, DeviceViolationType, DeviceZone
from contract.health import CameraHealthBatch, CameraHealthBatchResult

router = APIRouter(prefix="/api/v1", tags=["devices"])

CameraCode = Annotated[str, Path(min_length=1, max_length=64, pattern=ref.CODE_PATTERN)]


class CameraHealthPublic(BaseModel):
    camera: str
    health: dict[str, object]
    health_at: dt.datetime


class DevicePublic(BaseModel):
    id: int
    name: str
    active: bool
    created_at: dt.datetime
    last_seen_at: dt.datetime | None
    cameras: list[str]


class Ping(BaseModel):
    status: str = "ok"


def device_config(session: Session, device_id: int, device_name: str) -> DeviceConfig:
    """The configuration of one device; ``version`` is a hash of it, so a box can poll cheaply."""
    # zones and their places in two more queries, not two per camera (a box polls this every 30 s)
    cameras = session.scalars(
        select(Camera)
        .where(Camera.device_id == device_id)
        .order_by(Camera.code)
        .options(selectinload(Camera.zones).joinedload(Zone.place))
    )
    violations = session.scalars(
        select(ViolationType).where(ViolationType.active.is_(True)).order_by(ViolationType.code)
    )
    body = {
        "device": device_name,
        "timezone": ref.get_calendar(session).timezone,
        "cameras": [
            {
                "code": camera.code,
                "name": camera.name,
                "zones": [
                    DeviceZone(
                        code=zone.code,
                        place=zone.place.key,
                        polygon=zone.polygon,
                        anchor=zone.anchor,
                        rules=zone.rules,
                        static_change=zone.static_change,
                        reference_sha256=zone.reference_sha256,
                        updated_at=zone.updated_at,
                    ).model_dump(mode="json")
                    for zone in sorted(camera.zones, key=lambda z: z.code)
                ],
            }
            for camera in cameras
        ],
        "violation_types": [
            DeviceViolationType(
                code=v.code, pipeline_type=v.pipeline_type, default_for_type=v.default_for_type, name=v.name
            ).model_dump(mode="json")
            for v in violations
        ],
        # in the hash too: a new, removed or expired suppression changes the version
        "suppressions": [
            s.model_dump(mode="json") for s in suppressions.for_device(session, device_id, utcnow())
        ],
        # a new assignment (or rollback) changes the version: boxes learn of it at their next poll
        "models": [m.model_dump(mode="json") for m in model_registry.device_models(session, device_id)],
    }
    version = hashlib.sha256(json.dumps(body, sort_keys=True, ensure_ascii=False).encode()).hexdigest()[:16]
    return DeviceConfig.model_validate({**body, "version": version})


@router.get(
    "/devices/me/config",
    response_model=DeviceConfig,
    responses={
        304: {"description": "Unchanged since the version sent in If-None-Match."},
        **AUTHENTICATED,
        **INVALID,
    },
    summary="The calling device's cameras, zones and violation types (X-Device-Key)",
)
def my_config(
    device: DeviceDep,
    session: SessionDep,
    response: Response,
    if_none_match: Annotated[str | None, Header(max_length=200)] = None,
) -> DeviceConfig | Response:
    """Only the cameras assigned to this device. Poll with If-None-Match: 304 while nothing changed."""
    assert device.id is not None  # a device actor always has its row id
    config = device_config(session, device.id, device.name)
    etag = f'"{config.version}"'
    if if_none_match is not None and etag in {tag.strip() for tag in if_none_match.split(",")}:
        return Response(status_code=304, headers={"ETag": etag})
    response.headers["ETag"] = etag
    return config


@router.put(
    "/devices/me/cameras/{code}/health",
    response_model=CameraHealthPublic,
    responses={**AUTHENTICATED, **errors(400, 404, 422)},
    summary="Report the health of one of the calling device's cameras",
)
def report_health(
    code: CameraCode, body: ref.CameraHealthIn, device: DeviceDep, session: SessionDep
) -> CameraHealthPublic:
    """up / reconnecting / failed, last frame time and fps. 404 for a camera not assigned to this device."""
    assert device.id is not None
    camera = ref.record_camera_health(session, device.id, code, body)
    assert camera.health is not None and camera.health_at is not None  # just written
    return CameraHealthPublic(camera=camera.code, health=camera.health, health_at=camera.health_at)


@router.put(
    "/devices/me/cameras/health",
    response_model=CameraHealthBatchResult,
    responses={**AUTHENTICATED, **errors(400, 422)},
    summary="Report the health of many of the calling device's cameras in one request",
)
def report_health_batch(
    body: CameraHealthBatch, device: DeviceDep, session: SessionDep
) -> CameraHealthBatchResult:
    """One request per report interval for all of a box's cameras. Cameras not assigned to this device are
    not recorded and come back in ``unknown`` (the per-camera route answers 404 for them)."""
    assert device.id is not None
    recorded, unknown, at = ref.record_cameras_health(session, device.id, body.cameras)
    return CameraHealthBatchResult(recorded=recorded, unknown=unknown, health_at=at)


@router.get(
    "/devices/me/references/{sha256}",
    response_class=FileResponse,
    responses={200: {"content": {"image/jpeg": {}}}, **AUTHENTICATED, **NOT_FOUND},
    summary="An empty reference image set on a zone of one of the calling device's cameras",
)
def my_reference(
    sha256: Annotated[str, Path(pattern=SHA256_PATTERN)],
    device: DeviceDep,
    session: SessionDep,
    settings: SettingsDep,
    ranges: RangeDep,
) -> Response:
    """404 for a reference that is not set on a zone of this device's cameras."""
    assert device.id is not None
    return blob_response(
        blobs_for(settings, session),
        open_device_reference(session, device.id, sha256),
        media_type="image/jpeg",
        headers={"Cache-Control": "private, max-age=86400"},
        missing=NO_REFERENCE,
        ranges=ranges,
    )


@router.get(
    "/devices",
    response_model=list[DevicePublic],
    responses=AUTHENTICATED,
    summary="Edge boxes and their cameras (operators)",
)
def list_devices(_: OperatorDep, session: SessionDep) -> list[DevicePublic]:
    cameras: dict[int, list[str]] = {}
    for device_id, code in session.execute(
        select(Camera.device_id, Camera.code).where(Camera.device_id.is_not(None)).order_by(Camera.code)
    ):
        if device_id is not None:
            cameras.setdefault(device_id, []).append(code)
    return [
        DevicePublic(
            id=d.id,
            name=d.name,
            active=d.active,
            created_at=d.created_at,
            last_seen_at=d.last_seen_at,
            cameras=cameras.get(d.id, []),
        )
        for d in session.scalars(select(Device).order_by(Device.name))
    ]


@router.get("/ping", response_model=Ping, tags=["meta"], summary="Liveness without database or auth")
def ping() -> Ping:
    """A trivial endpoint: the API benchmark's baseline for what the framework alone costs."""
    return Ping()


# --- Verification by camera (edge daemon): the resolved cases on the calling device's own cameras -------

from typing import Literal  # noqa: E402

from fastapi import Query  # noqa: E402
from sqlalchemy import ColumnElement, and_, exists, func, or_  # noqa: E402

from api.models import Case, Place, Sighting  # noqa: E402
from api.schemas import Page  # noqa: E402


def own_camera_clause(device_id: int) -> ColumnElement[bool]:
    """The case's camera is this device's: registered to it, or registered to no device and reported by it
    from that camera. A case on another box's camera never shows, even if this box reported the place."""
    registered_here = exists().where(Camera.code == Case.camera_code, Camera.device_id == device_id)
    registered_elsewhere = exists().where(Camera.code == Case.camera_code, Camera.device_id.is_not(None))
    reported_here = exists().where(
        Sighting.case_id == Case.id, Sighting.device_id == device_id, Sighting.camera_code == Case.camera_code
    )
    return or_(registered_here, and_(~registered_elsewhere, reported_here))


@router.get(
    "/devices/me/cases",
    response_model=Page[DeviceCase],
    responses={**AUTHENTICATED, **INVALID},
    summary="Resolved (or verified) cases on the calling device's cameras, for verification by camera",
)
def my_cases(
    device: DeviceDep,
    session: SessionDep,
    status: Annotated[Literal["resolved", "verified"], Query(description="Case status.")] = "resolved",
    limit: Annotated[int, Query(ge=1, le=500)] = 100,
    offset: Annotated[int, Query(ge=0, le=10**9)] = 0,
) -> Page[DeviceCase]:
    """Oldest resolution first. Only cases whose camera is this device's (see ``own_camera_clause``)."""
    assert device.id is not None  # a device actor always has its row id
    where = and_(Case.status == status, Case.camera_code.is_not(None), own_camera_clause(device.id))
    count = session.scalar(select(func.count()).select_from(Case).where(where)) or 0
    rows = session.execute(
        select(
            Case.id,
            Case.status,
            Case.camera_code,
            Case.zone_code,
            Place.key,
            Case.violation_code,
            ViolationType.pipeline_type,
            Case.resolved_at,
            Case.rework_count,
        )
        .join(Place, Place.id == Case.place_id)
        .outerjoin(ViolationType, ViolationType.code == Case.violation_code)
        .where(where)
        .order_by(Case.resolved_at, Case.id)
        .limit(limit)
        .offset(offset)
    )
    data = [
        DeviceCase(
            id=case_id,
            status=case_status,
            camera=camera or "",
            zone=zone,
            place=place,
            violation_code=code,
            violation_type=pipeline_type,
            resolved_at=resolved_at,
            rework_count=rework_count,
        )
        for case_id, case_status, camera, zone, place, code, pipeline_type, resolved_at, rework_count in rows
    ]
    return Page[DeviceCase](data=data, count=count)
