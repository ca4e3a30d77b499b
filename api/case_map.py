"""Points for the map: matching cases where they are (the case's own position, else its place's) and the
cameras (at the mean position of the places their zones watch).

Zones are polygons in image coordinates, not on the ground, so the map shows a camera as a point; there is
no geo-calibration to draw zone outlines with.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from sqlalchemy import Select, and_, func, or_, select
from sqlalchemy.orm import Session

from api import case_queries
from api.actors import Actor
from api.case_queries import capped_count
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
    total: int  # matching cases with a position; more than len(cases) when the limit cut the rest off
    unplaced: int  # matching cases with no position at all
    total_capped: bool = False  # counts stop at COUNT_CAP (api.case_queries.capped_count): "10,000+"
    unplaced_capped: bool = False


def case_points(session: Session, actor: Actor, search: CaseSearch, *, limit: int = MAP_LIMIT) -> MapPoints:
    """The first ``limit`` matching cases with a position (in ``search``'s order) and every placed camera.

    One query for the points (the search's index order, places joined, no per-row look-ups); the counts
    are capped, and run only when needed: fewer points than ``limit`` is already the exact total, and
    cases without a position can only be at places without coordinates (few, looked up first).
    """
    lat = func.coalesce(Case.lat, Place.lat)
    lon = func.coalesce(Case.lon, Place.lon)
    matching = matching_ids(session, actor, search)
    located = matching.join(Place, Place.id == Case.place_id).where(lat.is_not(None), lon.is_not(None))
    columns: Select[Any] = located.with_only_columns(  # type: ignore[assignment]  # 8 columns
        Case.id, lat, lon, Case.status, Case.overdue, Case.violation_code, Place.name, Place.key
    )
    rows: Any = session.execute(ordered(columns, search).limit(limit))
    cases = [CasePoint(r[0], float(r[1]), float(r[2]), r[3], bool(r[4]), r[5], r[6] or r[7]) for r in rows]
    # Fewer points than the limit: that is the exact total, no count needed.
    cap = max(case_queries.COUNT_CAP, limit)
    total, total_capped = capped_count(session, located, cap) if len(cases) == limit else (len(cases), False)
    unplaced, unplaced_capped = _unplaced(session, matching)
    return MapPoints(cases, camera_points(session), total, unplaced, total_capped, unplaced_capped)


def _unplaced(session: Session, matching: Select[Any]) -> tuple[int, bool]:
    """Matching cases with neither their own position nor their place's (capped, like the total)."""
    unlocated = session.execute(
        select(Place.id, Place.lat, Place.lon).where(or_(Place.lat.is_(None), Place.lon.is_(None)))
    ).all()
    if not unlocated:  # every place has coordinates: every case has a position
        return 0, False
    no_lat = [p.id for p in unlocated if p.lat is None]
    no_lon = [p.id for p in unlocated if p.lon is None]
    missing = [
        and_(Case.place_id.in_(ids), column.is_(None))
        for ids, column in ((no_lat, Case.lat), (no_lon, Case.lon))
        if ids
    ]
    return capped_count(session, matching.where(or_(*missing)))


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
