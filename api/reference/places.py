"""Places: the responsibility keys (grid code, road section, site) cases are counted and routed by."""

from __future__ import annotations

from pydantic import BaseModel, Field, model_validator
from sqlalchemy import select
from sqlalchemy.orm import Session

from api.errors import Conflict, InvalidInput, NotFound
from api.messages import Refusal, msg
from api.models import Case, Place, RoutingRule, Unit, Zone
from api.reference.common import (
    Code,
    Latitude,
    Longitude,
    StrictModel,
    assign,
    flush,
    in_use,
    page,
    place_by_key,
    ref_unit,
    reject_nulls,
)


def _both_or_neither(lat: float | None, lon: float | None) -> None:
    if (lat is None) != (lon is None):
        raise Refusal(msg("ref.lat_lon"))


class PlaceIn(StrictModel):
    """A responsibility key (grid code, road section, site) and the unit that owns it (属地)."""

    key: Code
    name: str = Field(default="", max_length=200)
    kind: str = Field(default="grid", min_length=1, max_length=32, description="grid, road_section, site...")
    lat: Latitude | None = None
    lon: Longitude | None = None
    owner: Code | None = Field(
        default=None, description="Owner unit code: the fallback for routing (属地兜底)."
    )

    @model_validator(mode="after")
    def _position(self) -> PlaceIn:
        _both_or_neither(self.lat, self.lon)
        return self


class PlaceUpdate(StrictModel):
    name: str | None = Field(default=None, max_length=200)
    kind: str | None = Field(default=None, min_length=1, max_length=32)
    lat: Latitude | None = None
    lon: Longitude | None = None
    owner: Code | None = Field(default=None, description="Owner unit code; null removes the owner.")


class PlacePublic(BaseModel):
    id: int
    key: str
    name: str
    kind: str
    lat: float | None
    lon: float | None
    owner_unit_id: int | None
    owner_unit_code: str | None


def place_public(place: Place) -> PlacePublic:
    return PlacePublic(
        id=place.id,
        key=place.key,
        name=place.name,
        kind=place.kind,
        lat=place.lat,
        lon=place.lon,
        owner_unit_id=place.owner_unit_id,
        owner_unit_code=place.owner_unit.code if place.owner_unit else None,
    )


def get_place(session: Session, key: str) -> Place:
    place = place_by_key(session, key)
    if place is None:
        raise NotFound(f"no place with key {key!r}")
    return place


def list_places(
    session: Session, *, owner: str | None = None, limit: int, offset: int
) -> tuple[list[Place], int]:
    query = select(Place).order_by(Place.key)
    if owner is not None:
        query = query.join(Unit, Place.owner_unit_id == Unit.id).where(Unit.code == owner)
    return page(session, query, limit, offset)


def create_place(session: Session, body: PlaceIn) -> Place:
    owner = ref_unit(session, body.owner, "owner") if body.owner else None
    place = Place(
        key=body.key,
        name=body.name,
        kind=body.kind,
        lat=body.lat,
        lon=body.lon,
        owner_unit_id=owner.id if owner else None,
    )
    session.add(place)
    flush(session, msg("ref.duplicate_place", key=body.key))
    return place


def update_place(session: Session, key: str, body: PlaceUpdate) -> Place:
    place = get_place(session, key)
    values = body.model_dump(exclude_unset=True, exclude={"owner", "lat", "lon"})
    reject_nulls(values)
    values.update(body.model_dump(exclude_unset=True, include={"lat", "lon"}))
    lat, lon = values.get("lat", place.lat), values.get("lon", place.lon)
    if (lat is None) != (lon is None):
        raise InvalidInput(msg("ref.lat_lon"), field="lat")
    assign(place, values)
    if "owner" in body.model_fields_set:
        owner = ref_unit(session, body.owner, "owner") if body.owner else None
        place.owner_unit_id = owner.id if owner else None
    session.flush()
    session.refresh(place)
    return place


def delete_place(session: Session, key: str) -> None:
    place = get_place(session, key)
    used = in_use(
        session,
        {
            "zones": Zone.place_id == place.id,
            "routing rules": RoutingRule.place_id == place.id,
            "cases": Case.place_id == place.id,
        },
        {"zones": Zone, "routing rules": RoutingRule, "cases": Case},
    )
    if used:
        raise Conflict(f"place {key!r} is still referenced by {', '.join(used)}")
    session.delete(place)
    flush(session, f"place {key!r} is still referenced")
