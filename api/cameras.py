"""Cameras beyond reference data: who may edit zones, each camera's latest frame (uploaded by its device,
shown in the zone editor) and how fresh its health report is."""

from __future__ import annotations

import datetime as dt
import hashlib
from dataclasses import dataclass

from sqlalchemy.orm import Session

from api.errors import InvalidInput, NotFound
from api.evidence import check_image
from api.models import Camera, Role, utcnow
from api.reference.cameras import get_camera
from api.reference.common import camera_by_code
from api.settings import Settings
from api.storage import BlobRef, blobs_for, chunked

# Zones decide what becomes a case, so only the people who own the configuration change them.
ZONE_EDITOR_ROLES = (Role.ADMIN, Role.SHIFT_LEADER)
# A camera whose daemon has not reported for this long (3 missed reports at the default 60 s) is stale.
STALE_AFTER = dt.timedelta(minutes=3)


def snapshot_ref(camera_code: str) -> BlobRef:
    """The camera's latest frame in the blob store (locally ``<data_dir>/snapshots/<code>.jpg``)."""
    return BlobRef("snapshot", f"{camera_code}.jpg")


def snapshot_camera(ref: BlobRef) -> str:
    return ref.name.removesuffix(".jpg")


def store_snapshot(
    session: Session, settings: Settings, device_id: int, camera_code: str, data: bytes
) -> Camera:
    """Keep ``data`` as the latest frame of one of the device's own cameras (404 for any other camera).

    Only a whole JPEG within ``evidence_max_bytes`` is accepted (checked like evidence).
    """
    camera = camera_by_code(session, camera_code)
    if camera is None or camera.device_id != device_id:
        raise NotFound(f"this device has no camera {camera_code!r}")
    checked = check_image(
        data,
        settings.evidence_max_bytes,
        max_pixels=settings.image_max_pixels,
        max_decodes=settings.image_decodes_max,
    )
    if checked.content_type != "image/jpeg":
        raise InvalidInput(f"a snapshot must be a JPEG image, got {checked.content_type}", field="file")
    # readers see the old frame or the new one, never half of one; a lost frame is replaced a minute later
    blobs_for(settings, session).put(
        snapshot_ref(camera.code), chunked(data), content_type="image/jpeg", replace=True
    )
    camera.snapshot_sha256 = hashlib.sha256(data).hexdigest()
    camera.snapshot_width, camera.snapshot_height = checked.width, checked.height
    camera.snapshot_at = utcnow()
    session.flush()
    return camera


def open_snapshot(session: Session, camera_code: str) -> BlobRef:
    """The camera's latest frame; NotFound (with :func:`no_snapshot`'s message) before its first one."""
    camera = get_camera(session, camera_code)
    if camera.snapshot_at is None:
        raise NotFound(no_snapshot(camera_code))
    return snapshot_ref(camera.code)


def no_snapshot(camera_code: str) -> str:
    return f"camera {camera_code!r} has sent no frame yet"


@dataclass(frozen=True)
class CameraHealth:
    """What the camera list shows: the daemon's last report and whether it is too old to trust."""

    state: str  # up | reconnecting | failed | unknown (never reported)
    last_frame_at: dt.datetime | None
    reported_at: dt.datetime | None
    fps: float | None
    error: str | None
    stale: bool


def camera_health(camera: Camera, now: dt.datetime | None = None) -> CameraHealth:
    now = now or utcnow()
    health = camera.health or {}
    last_frame = health.get("last_frame_at")
    fps = health.get("fps")
    reported = camera.health_at
    return CameraHealth(
        state=str(health.get("state", "unknown")),
        last_frame_at=dt.datetime.fromisoformat(last_frame) if isinstance(last_frame, str) else None,
        reported_at=reported,
        fps=float(fps) if isinstance(fps, int | float) else None,
        error=str(health["error"]) if health.get("error") else None,
        stale=reported is None or now - reported > STALE_AFTER,
    )
