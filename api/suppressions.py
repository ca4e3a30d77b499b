"""The false-alarm memory: a case voided as ``false_positive`` becomes one suppression per sighting (camera,
zone, violation type, class and the box normalised to the frame), sent to the daemons with their
configuration until it expires, so the same false alarm does not come back every day.

What each suppression holds comes from the sighting the edge box reported: the most confident box, the
type the daemon reported (``payload.violation_type``; a case re-coded later still matches the detections the
daemon makes), and the frame size (``payload.frame_wh``, else the size of the case's full-frame evidence,
which is rendered at the analysed frame's size). A sighting without camera, zone, boxes or frame size cannot
be matched again, so it leaves no suppression.
"""

from __future__ import annotations

import datetime as dt
import logging
import math
from collections.abc import Sequence
from typing import Any

from pydantic import BaseModel
from sqlalchemy import and_, exists, or_, select
from sqlalchemy.orm import Session

from api.actors import Actor
from api.audit import record_event
from api.errors import NotFound
from api.evidence import evidence_url
from api.models import Camera, Case, Sighting, Suppression, ViolationType, utcnow
from api.settings import Settings
from contract.device_config import Suppression as WireSuppression

log = logging.getLogger(__name__)

MAX_PER_CASE = 50  # a merged case can hold many sightings; each is one spot to remember, within reason
FULL_FRAME_KINDS = ("confirmation", "first_seen", "sighting")  # evidence rendered at the frame's size


class SuppressionPublic(BaseModel):
    id: int
    case_id: int
    camera: str
    zone: str
    violation_type: str
    class_name: str | None
    box: list[float]
    crop_url: str | None
    created_by: str
    created_at: dt.datetime
    expires_at: dt.datetime
    expired: bool


def normalised_box(xyxy: Sequence[float], frame_wh: Sequence[int]) -> tuple[float, float, float, float]:
    """``xyxy`` in frame pixels as shares of the frame, clipped to 0..1; ValueError for a degenerate box."""
    width, height = frame_wh
    if width <= 0 or height <= 0:
        raise ValueError(f"frame size {width}x{height} is not positive")
    x1, y1, x2, y2 = (float(v) for v in xyxy)
    if not all(math.isfinite(v) for v in (x1, y1, x2, y2)):
        raise ValueError(f"box {list(xyxy)} has a non-finite coordinate")
    box = (
        min(max(x1 / width, 0.0), 1.0),
        min(max(y1 / height, 0.0), 1.0),
        min(max(x2 / width, 0.0), 1.0),
        min(max(y2 / height, 0.0), 1.0),
    )
    if box[2] <= box[0] or box[3] <= box[1]:
        raise ValueError(f"box {list(xyxy)} is empty inside a {width}x{height} frame")
    return box


def _frame_wh(sighting: Sighting, case: Case) -> tuple[int, int] | None:
    reported = (sighting.payload or {}).get("frame_wh")
    if isinstance(reported, list | tuple) and len(reported) == 2:
        return int(reported[0]), int(reported[1])
    for evidence in case.evidence:  # older daemons send no frame size: the full-frame picture has it
        if evidence.kind in FULL_FRAME_KINDS:
            return evidence.width, evidence.height
    return None


def _best_box(boxes: list[Any]) -> dict[str, Any] | None:
    usable = [b for b in boxes if isinstance(b, dict) and isinstance(b.get("xyxy"), list)]
    return max(usable, key=lambda b: float(b.get("confidence") or 0.0), default=None)


def _expiry(settings: Settings, violation_type: str, now: dt.datetime) -> dt.datetime:
    days = settings.suppress_days_by_type.get(violation_type, settings.suppress_days)
    return now + dt.timedelta(days=days)


def record_false_alarm(
    session: Session, case: Case, actor: Actor, *, settings: Settings, now: dt.datetime
) -> list[Suppression]:
    """Remember each sighting of ``case`` (being voided as false_positive) as a suppression."""
    case_type = session.scalar(
        select(ViolationType.pipeline_type).where(ViolationType.code == case.violation_code)
    )
    crop = next((e.sha256 for e in case.evidence if e.kind == "crop"), None)
    made: list[Suppression] = []
    for sighting in case.sightings[:MAX_PER_CASE]:
        suppression = _from_sighting(sighting, case, case_type, crop)
        if suppression is None:
            continue
        suppression.created_by = actor.label
        suppression.created_at = now
        suppression.expires_at = _expiry(settings, suppression.violation_type, now)
        session.add(suppression)
        made.append(suppression)
    session.flush()
    return made


def _from_sighting(
    sighting: Sighting, case: Case, case_type: str | None, crop: str | None
) -> Suppression | None:
    camera = sighting.camera_code or case.camera_code
    zone = sighting.zone_code or case.zone_code
    violation = (sighting.payload or {}).get("violation_type") or case_type
    box = _best_box(sighting.boxes or [])
    frame_wh = _frame_wh(sighting, case)
    if not (camera and zone and violation and box and frame_wh):
        log.info("case %s sighting %s: not enough to remember as a false alarm", case.id, sighting.id)
        return None
    try:
        normalised = normalised_box(box["xyxy"], frame_wh)
    except ValueError as exc:
        log.info("case %s sighting %s: box not remembered: %s", case.id, sighting.id, exc)
        return None
    return Suppression(
        case_id=case.id,
        sighting_id=sighting.id,
        camera_code=camera,
        zone_code=zone,
        violation_type=str(violation),
        class_name=box.get("class_name"),
        box=[round(v, 5) for v in normalised],
        crop_sha256=crop,
    )


def for_device(session: Session, device_id: int, now: dt.datetime) -> list[WireSuppression]:
    """Unexpired suppressions on the device's cameras: those registered to it, and those registered to no
    box whose false alarm this device reported (cameras that exist only in its YAML)."""
    registered_here = exists().where(Camera.code == Suppression.camera_code, Camera.device_id == device_id)
    registered_elsewhere = exists().where(
        Camera.code == Suppression.camera_code, Camera.device_id.is_not(None)
    )
    reported_here = exists().where(Sighting.id == Suppression.sighting_id, Sighting.device_id == device_id)
    rows = session.scalars(
        select(Suppression)
        .where(
            Suppression.expires_at > now,
            or_(registered_here, and_(~registered_elsewhere, reported_here)),
        )
        .order_by(Suppression.id)
    )
    return [
        WireSuppression(
            id=row.id,
            camera=row.camera_code,
            zone=row.zone_code,
            violation_type=row.violation_type,
            class_name=row.class_name,
            box=(row.box[0], row.box[1], row.box[2], row.box[3]),
            expires_at=row.expires_at,
        )
        for row in rows
    ]


def for_camera(session: Session, camera_code: str, now: dt.datetime | None = None) -> list[SuppressionPublic]:
    """A camera's suppressions, newest first (expired ones too, marked: they explain past silences)."""
    now = now or utcnow()
    rows = session.scalars(
        select(Suppression)
        .where(Suppression.camera_code == camera_code)
        .order_by(Suppression.created_at.desc(), Suppression.id.desc())
    )
    return [public(row, now) for row in rows]


def public(row: Suppression, now: dt.datetime) -> SuppressionPublic:
    return SuppressionPublic(
        id=row.id,
        case_id=row.case_id,
        camera=row.camera_code,
        zone=row.zone_code,
        violation_type=row.violation_type,
        class_name=row.class_name,
        box=list(row.box),
        crop_url=evidence_url(row.crop_sha256) if row.crop_sha256 else None,
        created_by=row.created_by,
        created_at=row.created_at,
        expires_at=row.expires_at,
        expired=row.expires_at <= now,
    )


def remove(session: Session, suppression_id: int, actor: Actor, *, now: dt.datetime | None = None) -> None:
    """Forget a suppression (detections there are judged again); audited on the case that caused it."""
    row = session.get(Suppression, suppression_id)
    if row is None:
        raise NotFound(f"suppression {suppression_id} not found")
    case = session.get(Case, row.case_id)
    if case is not None:
        record_event(
            session,
            case,
            actor,
            "suppression_removed",
            data={
                "suppression_id": row.id,
                "camera": row.camera_code,
                "zone": row.zone_code,
                "violation_type": row.violation_type,
                "box": row.box,
            },
            at=now or utcnow(),
        )
    session.delete(row)
    session.flush()
