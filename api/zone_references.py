"""A static-change zone's empty reference: the camera's stored snapshot, chosen by an operator while the
pavement is clean, kept content-addressed in the blob store (kind ``reference``, locally
``<data_dir>/references/<sha256>.jpg``: a later snapshot never changes it) and downloaded by the camera's
own device (DeviceZone.reference_sha256)."""

from __future__ import annotations

import hashlib
import re

from sqlalchemy import select
from sqlalchemy.orm import Session

from api.cameras import no_snapshot, open_snapshot
from api.errors import InvalidInput, NotFound
from api.models import Camera, Zone, utcnow
from api.reference.cameras import get_camera
from api.settings import Settings
from api.storage import BlobMissing, BlobRef, blobs_for, chunked, read_all

SHA256_PATTERN = r"^[0-9a-f]{64}$"


def reference_ref(sha256: str) -> BlobRef:
    return BlobRef("reference", f"{sha256}.jpg")


def _zone(session: Session, camera_code: str, zone_code: str) -> Zone:
    camera = get_camera(session, camera_code)
    zone = session.scalar(select(Zone).where(Zone.camera_id == camera.id, Zone.code == zone_code))
    if zone is None:
        raise NotFound(f"camera {camera_code!r} has no zone {zone_code!r}")
    return zone


def set_reference_from_snapshot(
    session: Session, settings: Settings, camera_code: str, zone_code: str
) -> Zone:
    """Make the camera's current snapshot the zone's empty reference (400 for a zone without static change:
    nothing would use it; 404 for no snapshot yet)."""
    zone = _zone(session, camera_code, zone_code)
    if zone.static_change is None:
        raise InvalidInput(
            f"zone {zone_code!r} has no static change: turn it on before setting its reference",
            field="static_change",
        )
    blobs = blobs_for(settings, session)
    try:  # one read: the device may replace the snapshot meanwhile (a frame is small: read whole)
        data = read_all(blobs, open_snapshot(session, camera_code))
    except BlobMissing:
        raise NotFound(no_snapshot(camera_code)) from None
    sha256 = hashlib.sha256(data).hexdigest()
    blobs.put(reference_ref(sha256), chunked(data), content_type="image/jpeg")
    zone.reference_sha256 = sha256
    zone.reference_at = utcnow()
    zone.updated_at = utcnow()  # the device configuration changes: boxes fetch it on their next poll
    session.flush()
    return zone


def clear_reference(session: Session, camera_code: str, zone_code: str) -> Zone:
    """Back to a reference the box learns itself."""
    zone = _zone(session, camera_code, zone_code)
    zone.reference_sha256 = None
    zone.reference_at = None
    zone.updated_at = utcnow()
    session.flush()
    return zone


def open_device_reference(session: Session, device_id: int, sha256: str) -> BlobRef:
    """The reference image ``sha256`` when it is set on a zone of one of the device's own cameras; 404
    otherwise (another box's references, like its cameras, are not this one's business)."""
    if not re.fullmatch(SHA256_PATTERN, sha256):
        raise NotFound("no such reference")
    owned = session.scalar(
        select(Zone.id)
        .join(Camera, Zone.camera_id == Camera.id)
        .where(Zone.reference_sha256 == sha256, Camera.device_id == device_id)
        .limit(1)
    )
    if owned is None:
        raise NotFound(NO_REFERENCE)
    return reference_ref(sha256)


NO_REFERENCE = "no such reference for this device's cameras"

__all__ = [
    "NO_REFERENCE",
    "clear_reference",
    "open_device_reference",
    "reference_ref",
    "set_reference_from_snapshot",
]
