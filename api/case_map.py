"""Points for the map: matching cases where they are (the case's own position, else its place's) and the
cameras (at the mean position of the places their zones watch).

Zones are polygons in image coordinates, not on the ground, so the map shows a camera as a point; there is
no geo-calibration to draw zone outlines with.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from api.actors import Actor
from api.case_search import CaseSearch, matching_ids, ordered
from api.models import Camera, Case, Place, Zone

MAP_LIMIT = 5000


@dataclass(frozen=True)
class CasePoint:
    id: int
    lat: float
    lon: float
    status: str
    overdue: bool
    violation_code: str
    place_name: str


@dataclass(frozen=True)
class CameraPoint:
    code: str
    name: str
    lat: float
    lon: float
    zones: int


@dataclass(frozen=True)
class MapPoints:
    cases: list[CasePoint]
    cameras: list[CameraPoint]
    total: int  # matching cases with a position; more than len(cases) when the limit cut the newest off
    unplaced: int  # matching cases with no position at all


def case_points(session: Session, actor: Actor, search: CaseSearch, *, limit: int = MAP_LIMIT) -> MapPoints:
    """The first ``limit`` matching cases with a position (in ``search``'s order) and every placed camera."""
    lat = func.coalesce(Case.lat, Place.lat)
    lon = func.coalesce(Case.lon, Place.lon)
    located = (
        matching_ids(actor, search)
        .join(Place, Place.id == Case.place_id)
        .where(lat.is_not(None), lon.is_not(None))
    )
    total = session.scalar(select(func.count()).select_from(located.subquery())) or 0
    everything = session.scalar(select(func.count()).select_from(matching_ids(actor, search).subquery())) or 0
    page_ids = ordered(located, search).limit(limit).subquery()
    rows = session.execute(
        select(Case.id, lat, lon, Case.status, Case.overdue, Case.violation_code, Place.name, Place.key)
        .join(page_ids, page_ids.c.id == Case.id)
        .join(Place, Place.id == Case.place_id)
    )
    cases = [CasePoint(r[0], float(r[1]), float(r[2]), r[3], bool(r[4]), r[5], r[6] or r[7]) for r in rows]
    return MapPoints(cases, camera_points(session), total, everything - total)


def camera_points(session: Session) -> list[CameraPoint]:
    """Cameras whose zones watch a place with coordinates, at the mean of those places."""
    rows: Any = session.execute(
        select(Camera.code, Camera.name, func.avg(Place.lat), func.avg(Place.lon), func.count(Zone.id))
        .join(Zone, Zone.camera_id == Camera.id)
        .join(Place, Place.id == Zone.place_id)
        .where(Place.lat.is_not(None), Place.lon.is_not(None))
        .group_by(Camera.code, Camera.name)
        .order_by(Camera.code)
    )
    return [CameraPoint(r[0], r[1] or r[0], float(r[2]), float(r[3]), int(r[4])) for r in rows]
