"""An incident's later sightings and its end, from the device that reported it."""

from __future__ import annotations

from fastapi import APIRouter

from api.deps import DeviceDep, SessionDep
from api.incident_updates import apply_incident_update
from api.routers.responses import AUTHENTICATED, WITH_BODY, errors
from contract import paths
from contract.reports import IncidentUpdate, UpdateResult

router = APIRouter(tags=["cases"], responses=AUTHENTICATED)


@router.post(
    paths.INCIDENT_UPDATES,
    response_model=UpdateResult,
    responses={**WITH_BODY, **errors(404)},
    summary="A later sighting or the end of a reported incident (X-Device-Key)",
)
def post_incident_update(update: IncidentUpdate, device: DeviceDep, session: SessionDep) -> UpdateResult:
    """Moves the incident's case forward (sighting count, last seen, "gone at"); a repeated idempotency
    key changes nothing (``duplicate``). 404 until the incident's own report was received."""
    result = apply_incident_update(session, update, device)
    session.commit()  # before answering: a device drops the update from its outbox on a 2xx
    return result
