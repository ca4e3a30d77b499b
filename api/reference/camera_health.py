"""Camera health as an edge device reports it."""

from __future__ import annotations

import datetime as dt

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
    health = body.model_dump(mode="json")
    if health.get("model") is None:  # a box that reports no model rollout: nothing to keep
        health.pop("model", None)
    if body.last_frame_at is not None:  # stored in UTC like every other time
        health["last_frame_at"] = body.last_frame_at.astimezone(dt.UTC).isoformat()
    camera.health = health
    camera.health_at = utcnow()
    session.flush()
    return camera
