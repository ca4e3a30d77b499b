"""Camera health as an edge device reports it."""

from __future__ import annotations

import datetime as dt
from collections.abc import Mapping
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from api.errors import NotFound
from api.models import Camera, utcnow
from api.reference.common import camera_by_code
from contract.health import CameraHealth

CameraHealthIn = CameraHealth  # the wire model (contract.health) is the input model


def record_camera_health(session: Session, device_id: int, camera_code: str, body: CameraHealthIn) -> Camera:
    """A device reports the health of one of its own cameras (404 for any other camera)."""
    camera = camera_by_code(session, camera_code)
    if camera is None or camera.device_id != device_id:
        raise NotFound(f"this device has no camera {camera_code!r}")
    camera.health = _stored(body)
    camera.health_at = utcnow()
    session.flush()
    return camera


def record_cameras_health(
    session: Session, device_id: int, bodies: Mapping[str, CameraHealthIn]
) -> tuple[list[str], list[str], dt.datetime]:
    """A device reports the health of many of its cameras at once, in one query and one flush: the codes
    recorded, those that are not this device's (nothing written for them, whoever owns them), and when."""
    cameras = session.scalars(
        select(Camera).where(Camera.device_id == device_id, Camera.code.in_(list(bodies)))
    ).all()
    now = utcnow()
    for camera in cameras:
        camera.health = _stored(bodies[camera.code])
        camera.health_at = now
    session.flush()
    recorded = sorted(camera.code for camera in cameras)
    return recorded, sorted(set(bodies) - set(recorded)), now


def _stored(body: CameraHealthIn) -> dict[str, Any]:
    health = body.model_dump(mode="json")
    if health.get("model") is None:  # a box that reports no model rollout: nothing to keep
        health.pop("model", None)
    if body.last_frame_at is not None:  # stored in UTC like every other time
        health["last_frame_at"] = body.last_frame_at.astimezone(dt.UTC).isoformat()
    return health
