"""Camera health as an edge device reports it."""

from __future__ import annotations

import datetime as dt

from pydantic import AwareDatetime, Field
from sqlalchemy.orm import Session

from api.errors import NotFound
from api.models import Camera, utcnow
from api.reference.common import StrictModel, camera_by_code


class CameraHealthIn(StrictModel):
    state: str = Field(pattern=r"^(up|reconnecting|failed)$", description="up, reconnecting or failed.")
    last_frame_at: AwareDatetime | None = None
    fps: float | None = Field(default=None, ge=0, le=1000)
    error: str | None = Field(default=None, max_length=500)


def record_camera_health(session: Session, device_id: int, camera_code: str, body: CameraHealthIn) -> Camera:
    """A device reports the health of one of its own cameras (404 for any other camera)."""
    camera = camera_by_code(session, camera_code)
    if camera is None or camera.device_id != device_id:
        raise NotFound(f"this device has no camera {camera_code!r}")
    health = body.model_dump(mode="json")
    if body.last_frame_at is not None:  # stored in UTC like every other time
        health["last_frame_at"] = body.last_frame_at.astimezone(dt.UTC).isoformat()
    camera.health = health
    camera.health_at = utcnow()
    session.flush()
    return camera
