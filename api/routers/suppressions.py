"""The false-alarm memory (:mod:`api.suppressions`): a camera's suppressions for operators, and their
removal by an admin or a shift leader (the same people who void cases as false positives)."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Depends, Path, Response

from api import reference as ref
from api import suppressions
from api.actors import Actor
from api.deps import SessionDep, require_roles
from api.models import Role
from api.routers.responses import AUTHENTICATED, NOT_FOUND

router = APIRouter(prefix="/api/v1", tags=["suppressions"], responses=AUTHENTICATED)

READ_ROLES = (Role.ADMIN, Role.SHIFT_LEADER, Role.DISPATCHER, Role.VIEWER)
REMOVE_ROLES = (Role.ADMIN, Role.SHIFT_LEADER)
CameraCode = Annotated[str, Path(min_length=1, max_length=64, pattern=ref.CODE_PATTERN)]
Reader = Annotated[Actor, Depends(require_roles(*READ_ROLES))]
Remover = Annotated[Actor, Depends(require_roles(*REMOVE_ROLES))]


@router.get(
    "/cameras/{code}/suppressions",
    response_model=list[suppressions.SuppressionPublic],
    responses=NOT_FOUND,
    summary="A camera's remembered false alarms, newest first (expired ones marked)",
)
def camera_suppressions(
    code: CameraCode, _: Reader, session: SessionDep
) -> list[suppressions.SuppressionPublic]:
    """Any camera code a case named, registered or not (a camera may exist only in a daemon's YAML)."""
    return suppressions.for_camera(session, code)


@router.delete(
    "/suppressions/{suppression_id}",
    status_code=204,
    response_class=Response,
    responses=NOT_FOUND,
    summary="Forget a false alarm: the daemons judge detections there again (admin, shift leader)",
)
def remove_suppression(
    suppression_id: Annotated[int, Path(ge=1, le=2**31 - 1)], actor: Remover, session: SessionDep
) -> Response:
    """Audited on the case that caused it (``suppression_removed``); the devices' configuration changes."""
    suppressions.remove(session, suppression_id, actor)
    return Response(status_code=204)
