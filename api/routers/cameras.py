"""Each camera's latest frame: devices upload it (their own cameras only), operators see it in the zone
editor. Zone writes themselves are in :mod:`api.routers.reference` (PUT/DELETE .../zones/{zone})."""

from __future__ import annotations

import datetime as dt
from typing import Annotated

from fastapi import APIRouter, File, Path, Response, UploadFile
from fastapi.responses import FileResponse
from pydantic import BaseModel

from api import reference as ref
from api.cameras import no_snapshot, open_snapshot, store_snapshot
from api.deps import DeviceDep, OperatorDep, SessionDep, SettingsDep
from api.routers.responses import AUTHENTICATED, NOT_FOUND, errors
from api.storage import blobs_for
from api.storage.responses import RangeDep, blob_response

router = APIRouter(prefix="/api/v1", tags=["cameras"], responses=AUTHENTICATED)

CameraCode = Annotated[str, Path(min_length=1, max_length=64, pattern=ref.CODE_PATTERN)]


class SnapshotPublic(BaseModel):
    camera: str
    sha256: str
    width: int
    height: int
    at: dt.datetime


@router.put(
    "/devices/me/cameras/{code}/snapshot",
    response_model=SnapshotPublic,
    responses=errors(400, 404, 408, 413, 422, 429),
    summary="Upload the latest frame (JPEG) of one of the calling device's cameras",
)
def upload_snapshot(
    code: CameraCode,
    file: Annotated[UploadFile, File(description="A JPEG frame, at most evidence_max_bytes.")],
    device: DeviceDep,
    session: SessionDep,
    settings: SettingsDep,
) -> SnapshotPublic:
    """Replaces the camera's previous frame. 404 for a camera not assigned to this device."""
    assert device.id is not None  # a device actor always has its row id
    data = file.file.read(settings.evidence_max_bytes + 1)  # one byte more than allowed tells "too large"
    camera = store_snapshot(session, settings, device.id, code, data)
    assert camera.snapshot_sha256 and camera.snapshot_width and camera.snapshot_height and camera.snapshot_at
    return SnapshotPublic(
        camera=camera.code,
        sha256=camera.snapshot_sha256,
        width=camera.snapshot_width,
        height=camera.snapshot_height,
        at=camera.snapshot_at,
    )


@router.get(
    "/cameras/{code}/snapshot",
    response_class=FileResponse,
    responses={200: {"content": {"image/jpeg": {}}}, **NOT_FOUND},
    summary="The camera's latest frame (operators)",
)
def get_snapshot(
    code: CameraCode, _: OperatorDep, session: SessionDep, settings: SettingsDep, ranges: RangeDep
) -> Response:
    """404 for an unknown camera, or one that has sent no frame yet."""
    ref = open_snapshot(session, code)
    return blob_response(
        blobs_for(settings, session),
        ref,
        media_type="image/jpeg",
        headers={"Cache-Control": "no-store"},
        missing=no_snapshot(code),
        ranges=ranges,
    )
