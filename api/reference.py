"""Reference data: units, places, violation types, cameras and zones, routing rules (with their
history), the deadline table and the working calendar.

The input models here are shared by the HTTP API and the YAML import (:mod:`api.config_import`):
references between objects are written as codes (unit code, place key, event code, device name), and
every model forbids unknown fields. Services take a ``Session`` (and an ``Actor`` where the change is
recorded); they raise the typed errors of :mod:`api.errors` with messages that name what is wrong.
"""

from __future__ import annotations

import datetime as dt
import zoneinfo
from collections.abc import Callable, Sequence
from typing import Annotated, Any

from pydantic import (
    AfterValidator,
    AwareDatetime,
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    StringConstraints,
    TypeAdapter,
    WithJsonSchema,
    field_validator,
    model_validator,
)
from sqlalchemy import ColumnElement, Select, func, or_, select
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from api.actors import Actor
from api.errors import Conflict, InvalidInput, NotFound
from api.models import (
    CalendarDay,
    CalendarSettings,
    Camera,
    Case,
    DeadlineRule,
    Delivery,
    Device,
    Place,
    RoutingRule,
    RoutingRuleHistory,
    Unit,
    User,
    ViolationType,
    Zone,
    utcnow,
)

# ---------------------------------------------------------------------------------------------------------
# Field types


def _quoted(what: str, example: str) -> Callable[[Any], Any]:
    """Reject numbers where a string is meant: YAML reads ``0505`` as 325 and ``13:30`` as 810."""

    def check(value: Any) -> Any:
        if isinstance(value, int | float) and not isinstance(value, bool):
            raise ValueError(
                f"{what} must be a string, got the number {value!r}: quote it in YAML ('{example}'), "
                f"unquoted values such as {example} are read as numbers"
            )
        return value

    return check


CODE_PATTERN = r"^[^\s/\\?#%]+$"
EVENT_CODE_PATTERN = r"^[0-9A-Za-z_.\-]+$"
Code = Annotated[
    str,
    StringConstraints(min_length=1, max_length=64, pattern=CODE_PATTERN),
    BeforeValidator(_quoted("a code", "110101001001001")),
    Field(description="A code or key: 1-64 characters, no spaces, '/', '\\', '?', '#' or '%'."),
]
EventCode = Annotated[
    str,
    StringConstraints(min_length=1, max_length=16, pattern=EVENT_CODE_PATTERN),
    BeforeValidator(_quoted("an event code", "0505")),
    Field(description="Event code of a violation type, e.g. 0505 (GB/T 30428 family; cities renumber)."),
]
PipelineType = Annotated[
    str,
    StringConstraints(min_length=1, max_length=64, pattern=r"^[a-z][a-z0-9_]*$"),
    Field(description="The pipeline's violation type, e.g. illegal_parking."),
]
HHMM = Annotated[
    str,
    StringConstraints(pattern=r"^([01][0-9]|2[0-3]):[0-5][0-9]$"),
    BeforeValidator(_quoted("a time", "13:30")),
    Field(description="Local time HH:MM (00:00-23:59)."),
]
# A working period [start, end]. Its schema says "two HH:MM strings" with items/minItems/maxItems instead of
# pydantic's prefixItems: as valid in OpenAPI 3.1, and read correctly by tools that mishandle prefixItems
# (schemathesis rejects it as an invalid Schema Object when validating responses).
Period = Annotated[
    tuple[HHMM, HHMM],
    WithJsonSchema({"type": "array", "items": TypeAdapter(HHMM).json_schema(), "minItems": 2, "maxItems": 2}),
]
IsoWeekday = Annotated[int, Field(ge=1, le=7, description="ISO weekday: 1 Monday ... 7 Sunday.")]
Coordinate = Annotated[float, Field(ge=0.0, le=1.0)]
Latitude = Annotated[float, Field(ge=-90.0, le=90.0)]
Longitude = Annotated[float, Field(ge=-180.0, le=180.0)]

DEFAULT_TIMEZONE = "Asia/Shanghai"
DEFAULT_PERIODS = [("08:30", "12:00"), ("13:30", "17:30")]
DEFAULT_WORKDAYS = [1, 2, 3, 4, 5]
DEFAULT_WORKING_HOURS = 24.0


class StrictModel(BaseModel):
    model_config = ConfigDict(extra="forbid")


def _unique(values: Sequence[Any], what: str) -> None:
    seen: set[Any] = set()
    for value in values:
        if value in seen:
            raise ValueError(f"{what} {value!r} appears twice")
        seen.add(value)


def _minutes(hhmm: str) -> int:
    hours, minutes = hhmm.split(":")
    return int(hours) * 60 + int(minutes)


# ---------------------------------------------------------------------------------------------------------
# Input and output models


class UnitIn(StrictModel):
    """A responsible unit (department, road chief, grid office); ``parent`` is the unit escalated to."""

    code: Code
    name: str = Field(min_length=1, max_length=200)
    kind: str = Field(
        default="department", min_length=1, max_length=32, description="department, road_chief, grid..."
    )
    parent: Code | None = Field(
        default=None, description="Parent unit code (escalation when a case is overdue)."
    )
    active: bool = True


class UnitUpdate(StrictModel):
    name: str | None = Field(default=None, min_length=1, max_length=200)
    kind: str | None = Field(default=None, min_length=1, max_length=32)
    parent: Code | None = Field(default=None, description="Parent unit code; null removes the parent.")
    active: bool | None = None


class UnitPublic(BaseModel):
    id: int
    code: str
    name: str
    kind: str
    parent_id: int | None
    parent_code: str | None
    active: bool


def _both_or_neither(lat: float | None, lon: float | None) -> None:
    if (lat is None) != (lon is None):
        raise ValueError("give both lat and lon, or neither")


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


class ViolationTypeIn(StrictModel):
    """A violation type with its event code; ``pipeline_type`` is what the edge pipeline detects."""

    code: EventCode
    name: str = Field(min_length=1, max_length=100, description="e.g. 机动车乱停放")
    name_en: str = Field(default="", max_length=100)
    pipeline_type: PipelineType
    default_for_type: bool = Field(
        default=False,
        description="The code used for a report of this pipeline type that names no event code.",
    )
    auto_file: bool = Field(
        default=False, description="File (立案) reports above auto_file_min_confidence at once."
    )
    auto_file_min_confidence: float = Field(default=0.9, ge=0.0, le=1.0)
    active: bool = True
    description: str = Field(default="", max_length=2000)
    category: str = Field(
        default="", max_length=64, description="Major class, e.g. '05 街面秩序' (Open311 group)."
    )


class ViolationTypeUpdate(StrictModel):
    name: str | None = Field(default=None, min_length=1, max_length=100)
    name_en: str | None = Field(default=None, max_length=100)
    pipeline_type: PipelineType | None = None
    default_for_type: bool | None = None
    auto_file: bool | None = None
    auto_file_min_confidence: float | None = Field(default=None, ge=0.0, le=1.0)
    active: bool | None = None
    description: str | None = Field(default=None, max_length=2000)
    category: str | None = Field(default=None, max_length=64)


class ViolationTypePublic(BaseModel):
    model_config = ConfigDict(from_attributes=True)

    id: int
    code: str
    name: str
    name_en: str
    pipeline_type: str
    default_for_type: bool
    auto_file: bool
    auto_file_min_confidence: float
    active: bool
    description: str
    category: str


class ScheduleWindow(StrictModel):
    """A weekly window in the calendar's time zone; ``end`` before ``start`` runs past midnight."""

    days: list[IsoWeekday] = Field(default_factory=lambda: [1, 2, 3, 4, 5, 6, 7], min_length=1, max_length=7)
    start: HHMM
    end: HHMM

    @model_validator(mode="after")
    def _check(self) -> ScheduleWindow:
        _unique(self.days, "weekday")
        if self.start == self.end:
            raise ValueError(f"schedule window starts and ends at {self.start}: it would be empty")
        return self


class ZoneRule(StrictModel):
    """How one violation type is judged in a zone."""

    dwell_s: float = Field(
        ge=1, le=86400, description="Seconds the object must stay before it is a violation."
    )
    schedule: list[ScheduleWindow] = Field(
        default_factory=list,
        max_length=20,
        description="When the rule is enforced (calendar time zone); empty: always.",
    )


def _polygon_area(points: Sequence[tuple[float, float]]) -> float:
    total = 0.0
    for (x1, y1), (x2, y2) in zip(points, [*points[1:], points[0]], strict=True):
        total += x1 * y2 - x2 * y1
    return abs(total) / 2


def _check_polygon(points: list[tuple[float, float]]) -> list[tuple[float, float]]:
    if _polygon_area(points) < 1e-6:
        raise ValueError("the zone polygon has no area: its points are collinear or repeated")
    return points


Polygon = Annotated[
    list[tuple[Coordinate, Coordinate]],
    Field(
        min_length=3,
        max_length=200,
        description="Normalised image coordinates [[x, y], ...], at least 3 points, each within 0..1.",
    ),
    AfterValidator(_check_polygon),
]
ZoneRules = Annotated[
    dict[PipelineType, ZoneRule],
    Field(
        description="Pipeline violation type -> {dwell_s, schedule}; types not listed are not judged here."
    ),
]


class ZoneBody(StrictModel):
    """A zone without its code (the code is in the URL)."""

    place: Code = Field(description="Key of the place (responsibility key) the zone looks at.")
    polygon: Polygon
    rules: ZoneRules = Field(default_factory=dict)


class ZoneIn(ZoneBody):
    code: Code


class ZonePublic(BaseModel):
    id: int
    code: str
    place_id: int
    place_key: str
    polygon: list[list[float]]
    rules: dict[str, Any]
    updated_at: dt.datetime


class CameraIn(StrictModel):
    code: Code
    name: str = Field(default="", max_length=200)
    device: str | None = Field(
        default=None, min_length=1, max_length=100, description="Name of the edge box."
    )
    zones: list[ZoneIn] = Field(default_factory=list, max_length=200)

    @field_validator("zones")
    @classmethod
    def _zone_codes_unique(cls, zones: list[ZoneIn]) -> list[ZoneIn]:
        _unique([zone.code for zone in zones], "zone code")
        return zones


class CameraUpdate(StrictModel):
    name: str | None = Field(default=None, max_length=200)
    device: str | None = Field(
        default=None, min_length=1, max_length=100, description="Edge box name; null unassigns."
    )


class CameraPublic(BaseModel):
    id: int
    code: str
    name: str
    device: str | None
    health: dict[str, Any] | None
    health_at: dt.datetime | None
    zones: list[ZonePublic]


class RoutingRuleIn(StrictModel):
    """place x violation -> unit. A missing place or violation matches any; lower priority wins."""

    place: Code | None = Field(default=None, description="Place key; null: any place.")
    violation: EventCode | None = Field(default=None, description="Event code; null: any violation.")
    unit: Code = Field(description="Code of the unit the case goes to.")
    priority: int = Field(default=100, ge=0, le=1_000_000)
    active: bool = True


class RoutingRuleUpdate(StrictModel):
    place: Code | None = None
    violation: EventCode | None = None
    unit: Code | None = None
    priority: int | None = Field(default=None, ge=0, le=1_000_000)
    active: bool | None = None


class RoutingRulePublic(BaseModel):
    id: int
    place_id: int | None
    place_key: str | None
    violation_code: str | None
    unit_id: int
    unit_code: str
    priority: int
    active: bool
    updated_at: dt.datetime


class RoutingRuleHistoryPublic(BaseModel):
    model_config = ConfigDict(from_attributes=True)

    id: int
    rule_id: int
    action: str
    snapshot: dict[str, Any]
    actor: str
    at: dt.datetime


class DeadlineIn(StrictModel):
    working_hours: float = Field(gt=0, le=10_000, description="Working hours allowed from dispatch.")


class DeadlinePublic(BaseModel):
    violation_code: str
    working_hours: float


def _check_timezone(name: str) -> str:
    try:
        zoneinfo.ZoneInfo(name)
    except (zoneinfo.ZoneInfoNotFoundError, ValueError, OSError) as exc:
        raise ValueError(f"unknown time zone {name!r}: use an IANA name such as Asia/Shanghai") from exc
    return name


class CalendarIn(StrictModel):
    """The working calendar: deadlines count working hours inside ``periods`` on ``workdays``."""

    timezone: Annotated[str, Field(min_length=1, max_length=64), AfterValidator(_check_timezone)] = (
        DEFAULT_TIMEZONE
    )
    periods: list[Period] = Field(
        default_factory=lambda: list(DEFAULT_PERIODS),
        min_length=1,
        max_length=8,
        description='Working periods of a working day, e.g. [["08:30", "12:00"], ["13:30", "17:30"]].',
    )
    workdays: list[IsoWeekday] = Field(
        default_factory=lambda: list(DEFAULT_WORKDAYS), min_length=1, max_length=7
    )
    default_working_hours: float = Field(
        default=DEFAULT_WORKING_HOURS,
        gt=0,
        le=10_000,
        description="Deadline for violations missing from the table.",
    )

    @field_validator("periods")
    @classmethod
    def _periods_ordered(cls, periods: list[tuple[str, str]]) -> list[tuple[str, str]]:
        previous_end = -1
        for start, end in periods:
            if _minutes(start) >= _minutes(end):
                raise ValueError(f"period {start}-{end} ends before it starts")
            if _minutes(start) < previous_end:
                raise ValueError(
                    f"period {start}-{end} overlaps or precedes the one before: list them in order"
                )
            previous_end = _minutes(end)
        return periods

    @field_validator("workdays")
    @classmethod
    def _workdays_unique(cls, workdays: list[int]) -> list[int]:
        _unique(workdays, "weekday")
        return sorted(workdays)


class CalendarPublic(CalendarIn):
    configured: bool = Field(description="False: no calendar stored yet, these are the defaults.")


class CalendarDayIn(StrictModel):
    working: bool = Field(description="false: a holiday; true: a make-up working day (调休).")
    name: str = Field(default="", max_length=100)


class CalendarDayPublic(BaseModel):
    day: dt.date
    working: bool
    name: str


class CameraHealthIn(StrictModel):
    state: str = Field(pattern=r"^(up|reconnecting|failed)$", description="up, reconnecting or failed.")
    last_frame_at: AwareDatetime | None = None
    fps: float | None = Field(default=None, ge=0, le=1000)
    error: str | None = Field(default=None, max_length=500)


# ---------------------------------------------------------------------------------------------------------
# Helpers


def _flush(session: Session, conflict_message: str) -> None:
    """Flush; a unique-constraint violation becomes a 409 with ``conflict_message``."""
    try:
        session.flush()
    except IntegrityError as exc:
        raise Conflict(conflict_message) from exc


def assign(obj: Any, values: dict[str, Any]) -> bool:
    """Set the attributes that differ; return whether anything changed."""
    changed = False
    for name, value in values.items():
        if getattr(obj, name) != value:
            setattr(obj, name, value)
            changed = True
    return changed


def _reject_nulls(values: dict[str, Any]) -> None:
    """PATCH bodies: a field may be left out, but only the documented ones may be set to null."""
    nulls = sorted(name for name, value in values.items() if value is None)
    if nulls:
        raise InvalidInput(
            f"{', '.join(nulls)} cannot be null: leave the field out to keep its value", field=nulls[0]
        )


def _page(session: Session, query: Select[Any], limit: int, offset: int) -> tuple[list[Any], int]:
    count = session.scalar(select(func.count()).select_from(query.order_by(None).subquery())) or 0
    rows = list(session.scalars(query.limit(limit).offset(offset)))
    return rows, count


def upsert(session: Session, model: type[Any], values: dict[str, Any], keys: Sequence[str]) -> None:
    """INSERT ... ON CONFLICT (keys) DO UPDATE: race-free on PostgreSQL and SQLite."""
    dialect = session.get_bind().dialect.name
    insert = postgresql.insert if dialect == "postgresql" else sqlite.insert
    statement = insert(model).values(**values)
    updates = {name: statement.excluded[name] for name in values if name not in keys}
    session.execute(statement.on_conflict_do_update(index_elements=list(keys), set_=updates))


def unit_by_code(session: Session, code: str) -> Unit | None:
    return session.scalar(select(Unit).where(Unit.code == code))


def place_by_key(session: Session, key: str) -> Place | None:
    return session.scalar(select(Place).where(Place.key == key))


def violation_by_code(session: Session, code: str) -> ViolationType | None:
    return session.scalar(select(ViolationType).where(ViolationType.code == code))


def camera_by_code(session: Session, code: str) -> Camera | None:
    return session.scalar(select(Camera).where(Camera.code == code))


def device_by_name(session: Session, name: str) -> Device | None:
    return session.scalar(select(Device).where(Device.name == name))


def _ref_unit(session: Session, code: str, field: str) -> Unit:
    unit = unit_by_code(session, code)
    if unit is None:
        raise InvalidInput(f"{field}: unknown unit code {code!r}", field=field)
    return unit


def _ref_place(session: Session, key: str, field: str) -> Place:
    place = place_by_key(session, key)
    if place is None:
        raise InvalidInput(f"{field}: unknown place key {key!r}", field=field)
    return place


def _ref_violation(session: Session, code: str, field: str) -> ViolationType:
    violation = violation_by_code(session, code)
    if violation is None:
        known = (
            ", ".join(session.scalars(select(ViolationType.code).order_by(ViolationType.code))) or "none yet"
        )
        raise InvalidInput(f"{field}: unknown violation event code {code!r} (known: {known})", field=field)
    return violation


def _ref_device(session: Session, name: str, field: str) -> Device:
    device = device_by_name(session, name)
    if device is None:
        raise InvalidInput(
            f"{field}: unknown device {name!r} (register it with `streetwatch api create-device`)",
            field=field,
        )
    return device


def _in_use(
    session: Session, checks: dict[str, ColumnElement[bool]], models: dict[str, type[Any]]
) -> list[str]:
    found = []
    for label, condition in checks.items():
        count = session.scalar(select(func.count()).select_from(models[label]).where(condition)) or 0
        if count:
            found.append(f"{count} {label}")
    return found


# ---------------------------------------------------------------------------------------------------------
# Units


def unit_public(unit: Unit) -> UnitPublic:
    return UnitPublic(
        id=unit.id,
        code=unit.code,
        name=unit.name,
        kind=unit.kind,
        parent_id=unit.parent_id,
        parent_code=unit.parent.code if unit.parent else None,
        active=unit.active,
    )


def get_unit(session: Session, code: str) -> Unit:
    unit = unit_by_code(session, code)
    if unit is None:
        raise NotFound(f"no unit with code {code!r}")
    return unit


def list_units(session: Session, *, limit: int, offset: int) -> tuple[list[Unit], int]:
    return _page(session, select(Unit).order_by(Unit.code), limit, offset)


def _check_no_cycle(session: Session, unit: Unit, parent: Unit | None) -> None:
    seen: set[int] = set()
    node = parent
    while node is not None and node.id not in seen:
        if node.id == unit.id:
            raise InvalidInput(
                f"parent: unit {parent.code if parent else ''!r} is {unit.code!r} itself or one of its "
                "descendants: the hierarchy would loop",
                field="parent",
            )
        seen.add(node.id)
        node = session.get(Unit, node.parent_id) if node.parent_id is not None else None


def create_unit(session: Session, body: UnitIn) -> Unit:
    parent = _ref_unit(session, body.parent, "parent") if body.parent else None
    unit = Unit(
        code=body.code,
        name=body.name,
        kind=body.kind,
        parent_id=parent.id if parent else None,
        active=body.active,
    )
    session.add(unit)
    _flush(session, f"a unit with code {body.code!r} already exists")
    return unit


def update_unit(session: Session, code: str, body: UnitUpdate) -> Unit:
    unit = get_unit(session, code)
    values = body.model_dump(exclude_unset=True, exclude={"parent"})
    _reject_nulls(values)
    assign(unit, values)
    if "parent" in body.model_fields_set:
        parent = _ref_unit(session, body.parent, "parent") if body.parent else None
        _check_no_cycle(session, unit, parent)
        unit.parent_id = parent.id if parent else None
    session.flush()
    session.refresh(unit)
    return unit


def delete_unit(session: Session, code: str) -> None:
    unit = get_unit(session, code)
    used = _in_use(
        session,
        {
            "child units": Unit.parent_id == unit.id,
            "places": Place.owner_unit_id == unit.id,
            "routing rules": RoutingRule.unit_id == unit.id,
            "users": User.unit_id == unit.id,
            "cases": or_(Case.unit_id == unit.id, Case.escalated_to_unit_id == unit.id),
            "deliveries": Delivery.unit_id == unit.id,
        },
        {
            "child units": Unit,
            "places": Place,
            "routing rules": RoutingRule,
            "users": User,
            "cases": Case,
            "deliveries": Delivery,
        },
    )
    if used:
        raise Conflict(
            f"unit {code!r} is still referenced by {', '.join(used)}: reassign them, or set active=false"
        )
    session.delete(unit)
    _flush(session, f"unit {code!r} is still referenced: set active=false instead")


# ---------------------------------------------------------------------------------------------------------
# Places


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
    return _page(session, query, limit, offset)


def create_place(session: Session, body: PlaceIn) -> Place:
    owner = _ref_unit(session, body.owner, "owner") if body.owner else None
    place = Place(
        key=body.key,
        name=body.name,
        kind=body.kind,
        lat=body.lat,
        lon=body.lon,
        owner_unit_id=owner.id if owner else None,
    )
    session.add(place)
    _flush(session, f"a place with key {body.key!r} already exists")
    return place


def update_place(session: Session, key: str, body: PlaceUpdate) -> Place:
    place = get_place(session, key)
    values = body.model_dump(exclude_unset=True, exclude={"owner", "lat", "lon"})
    _reject_nulls(values)
    values.update(body.model_dump(exclude_unset=True, include={"lat", "lon"}))
    lat, lon = values.get("lat", place.lat), values.get("lon", place.lon)
    if (lat is None) != (lon is None):
        raise InvalidInput("give both lat and lon, or neither", field="lat")
    assign(place, values)
    if "owner" in body.model_fields_set:
        owner = _ref_unit(session, body.owner, "owner") if body.owner else None
        place.owner_unit_id = owner.id if owner else None
    session.flush()
    session.refresh(place)
    return place


def delete_place(session: Session, key: str) -> None:
    place = get_place(session, key)
    used = _in_use(
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
    _flush(session, f"place {key!r} is still referenced")


# ---------------------------------------------------------------------------------------------------------
# Violation types


def get_violation_type(session: Session, code: str) -> ViolationType:
    violation = violation_by_code(session, code)
    if violation is None:
        raise NotFound(f"no violation type with event code {code!r}")
    return violation


def list_violation_types(session: Session) -> list[ViolationType]:
    return list(session.scalars(select(ViolationType).order_by(ViolationType.code)))


def clear_other_defaults(session: Session, violation: ViolationType) -> None:
    """Only one default code per pipeline type: making this one the default clears the others."""
    if not violation.default_for_type:
        return
    others = select(ViolationType).where(
        ViolationType.pipeline_type == violation.pipeline_type,
        ViolationType.default_for_type.is_(True),
        ViolationType.id != violation.id,
    )
    for other in session.scalars(others):
        other.default_for_type = False


def create_violation_type(session: Session, body: ViolationTypeIn) -> ViolationType:
    violation = ViolationType(**body.model_dump())
    session.add(violation)
    _flush(session, f"a violation type with event code {body.code!r} already exists")
    clear_other_defaults(session, violation)
    session.flush()
    return violation


def update_violation_type(session: Session, code: str, body: ViolationTypeUpdate) -> ViolationType:
    violation = get_violation_type(session, code)
    values = body.model_dump(exclude_unset=True)
    _reject_nulls(values)
    assign(violation, values)
    clear_other_defaults(session, violation)
    session.flush()
    return violation


def delete_violation_type(session: Session, code: str) -> None:
    violation = get_violation_type(session, code)
    used = _in_use(
        session,
        {
            "cases": Case.violation_code == code,
            "routing rules": RoutingRule.violation_code == code,
            "deadline rules": DeadlineRule.violation_code == code,
        },
        {"cases": Case, "routing rules": RoutingRule, "deadline rules": DeadlineRule},
    )
    if used:
        raise Conflict(
            f"violation type {code!r} is still referenced by {', '.join(used)}: set active=false instead"
        )
    session.delete(violation)
    session.flush()


def known_pipeline_types(session: Session) -> set[str]:
    return set(session.scalars(select(ViolationType.pipeline_type).distinct()))


# ---------------------------------------------------------------------------------------------------------
# Cameras and zones


def zone_public(zone: Zone) -> ZonePublic:
    return ZonePublic(
        id=zone.id,
        code=zone.code,
        place_id=zone.place_id,
        place_key=zone.place.key,
        polygon=[list(point) for point in zone.polygon],
        rules=zone.rules,
        updated_at=zone.updated_at,
    )


def camera_public(session: Session, camera: Camera) -> CameraPublic:
    device = session.get(Device, camera.device_id) if camera.device_id is not None else None
    zones = sorted(camera.zones, key=lambda zone: zone.code)
    return CameraPublic(
        id=camera.id,
        code=camera.code,
        name=camera.name,
        device=device.name if device else None,
        health=camera.health,
        health_at=camera.health_at,
        zones=[zone_public(zone) for zone in zones],
    )


def get_camera(session: Session, code: str) -> Camera:
    camera = camera_by_code(session, code)
    if camera is None:
        raise NotFound(f"no camera with code {code!r}")
    return camera


def list_cameras(
    session: Session, *, device: str | None = None, limit: int, offset: int
) -> tuple[list[Camera], int]:
    query = select(Camera).order_by(Camera.code)
    if device is not None:
        query = query.join(Device, Camera.device_id == Device.id).where(Device.name == device)
    return _page(session, query, limit, offset)


def check_zone_rules(known_types: set[str], rules: dict[str, ZoneRule], field: str) -> None:
    unknown = sorted(set(rules) - known_types)
    if unknown:
        raise InvalidInput(
            f"{field}: unknown violation type(s) {', '.join(unknown)} "
            f"(known pipeline types: {', '.join(sorted(known_types)) or 'none yet'})",
            field=field,
        )


def zone_values(camera_id: int, code: str, place_id: int, body: ZoneBody) -> dict[str, Any]:
    return {
        "camera_id": camera_id,
        "code": code,
        "place_id": place_id,
        "polygon": [list(point) for point in body.polygon],
        "rules": {name: rule.model_dump() for name, rule in body.rules.items()},
    }


def _write_zone(session: Session, camera: Camera, code: str, body: ZoneBody, field: str) -> None:
    place = _ref_place(session, body.place, f"{field}.place")
    check_zone_rules(known_pipeline_types(session), body.rules, f"{field}.rules")
    values = zone_values(camera.id, code, place.id, body)
    upsert(session, Zone, {**values, "updated_at": utcnow()}, keys=("camera_id", "code"))


def create_camera(session: Session, body: CameraIn) -> Camera:
    device = _ref_device(session, body.device, "device") if body.device else None
    camera = Camera(code=body.code, name=body.name, device_id=device.id if device else None)
    session.add(camera)
    _flush(session, f"a camera with code {body.code!r} already exists")
    for index, zone in enumerate(body.zones):
        _write_zone(session, camera, zone.code, zone, f"zones.{index}")
    session.refresh(camera)
    return camera


def update_camera(session: Session, code: str, body: CameraUpdate) -> Camera:
    camera = get_camera(session, code)
    if "name" in body.model_fields_set:
        if body.name is None:
            raise InvalidInput("name cannot be null", field="name")
        camera.name = body.name
    if "device" in body.model_fields_set:
        device = _ref_device(session, body.device, "device") if body.device else None
        camera.device_id = device.id if device else None
    session.flush()
    return camera


def delete_camera(session: Session, code: str) -> None:
    session.delete(get_camera(session, code))
    session.flush()


def put_zone(session: Session, camera_code: str, zone_code: str, body: ZoneBody) -> Zone:
    camera = get_camera(session, camera_code)
    _write_zone(session, camera, zone_code, body, "zone")
    zone = session.scalar(
        select(Zone)
        .where(Zone.camera_id == camera.id, Zone.code == zone_code)
        .execution_options(populate_existing=True)
    )
    assert zone is not None  # just upserted in this transaction
    return zone


def delete_zone(session: Session, camera_code: str, zone_code: str) -> None:
    camera = get_camera(session, camera_code)
    zone = session.scalar(select(Zone).where(Zone.camera_id == camera.id, Zone.code == zone_code))
    if zone is None:
        raise NotFound(f"camera {camera_code!r} has no zone {zone_code!r}")
    session.delete(zone)
    session.flush()


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


# ---------------------------------------------------------------------------------------------------------
# Routing rules and their history


def routing_public(session: Session, rule: RoutingRule) -> RoutingRulePublic:
    place = session.get(Place, rule.place_id) if rule.place_id is not None else None
    unit = session.get(Unit, rule.unit_id)
    return RoutingRulePublic(
        id=rule.id,
        place_id=rule.place_id,
        place_key=place.key if place else None,
        violation_code=rule.violation_code,
        unit_id=rule.unit_id,
        unit_code=unit.code if unit else "",
        priority=rule.priority,
        active=rule.active,
        updated_at=rule.updated_at,
    )


def _snapshot(session: Session, rule: RoutingRule) -> dict[str, Any]:
    return routing_public(session, rule).model_dump(mode="json")


def record_routing_change(
    session: Session,
    rule: RoutingRule,
    action: str,
    actor: Actor,
    changes: dict[str, Any] | None = None,
    *,
    extra: dict[str, Any] | None = None,
) -> None:
    """Append a history row: the rule as it is after ``action`` (before, for a deletion) and who did it."""
    snapshot = _snapshot(session, rule)
    if changes:
        snapshot["changes"] = changes
    snapshot.update(extra or {})
    session.add(RoutingRuleHistory(rule_id=rule.id, action=action, snapshot=snapshot, actor=actor.label))


def get_routing_rule(session: Session, rule_id: int) -> RoutingRule:
    rule = session.get(RoutingRule, rule_id)
    if rule is None:
        raise NotFound(f"no routing rule {rule_id}")
    return rule


def list_routing_rules(
    session: Session, *, place: str | None, violation: str | None, unit: str | None, limit: int, offset: int
) -> tuple[list[RoutingRule], int]:
    query = select(RoutingRule).order_by(RoutingRule.priority, RoutingRule.id)
    if place is not None:
        query = query.join(Place, RoutingRule.place_id == Place.id).where(Place.key == place)
    if violation is not None:
        query = query.where(RoutingRule.violation_code == violation)
    if unit is not None:
        query = query.join(Unit, RoutingRule.unit_id == Unit.id).where(Unit.code == unit)
    return _page(session, query, limit, offset)


def create_routing_rule(session: Session, actor: Actor, body: RoutingRuleIn) -> RoutingRule:
    place = _ref_place(session, body.place, "place") if body.place else None
    if body.violation:
        _ref_violation(session, body.violation, "violation")
    unit = _ref_unit(session, body.unit, "unit")
    rule = RoutingRule(
        place_id=place.id if place else None,
        violation_code=body.violation,
        unit_id=unit.id,
        priority=body.priority,
        active=body.active,
        updated_at=utcnow(),
    )
    session.add(rule)
    session.flush()
    record_routing_change(session, rule, "created", actor)
    session.flush()
    return rule


def _routing_values(session: Session, body: RoutingRuleUpdate) -> dict[str, Any]:
    fields = body.model_fields_set
    values: dict[str, Any] = {}
    if "place" in fields:
        values["place_id"] = _ref_place(session, body.place, "place").id if body.place else None
    if "violation" in fields:
        if body.violation:
            _ref_violation(session, body.violation, "violation")
        values["violation_code"] = body.violation
    for name in ("unit", "priority", "active"):
        if name in fields and getattr(body, name) is None:
            raise InvalidInput(f"{name} cannot be null", field=name)
    if "unit" in fields and body.unit is not None:
        values["unit_id"] = _ref_unit(session, body.unit, "unit").id
    if "priority" in fields:
        values["priority"] = body.priority
    if "active" in fields:
        values["active"] = body.active
    return values


def apply_routing_values(
    session: Session,
    actor: Actor,
    rule: RoutingRule,
    values: dict[str, Any],
    *,
    extra: dict[str, Any] | None = None,
) -> bool:
    """Change ``rule``; record the change in the history (nothing is recorded when nothing changed)."""
    before = _snapshot(session, rule)
    if not assign(rule, values):
        return False
    rule.updated_at = utcnow()
    session.flush()
    after = _snapshot(session, rule)
    changes = {
        name: [before[name], after[name]]
        for name in ("place_key", "violation_code", "unit_code", "priority", "active")
        if before[name] != after[name]
    }
    record_routing_change(session, rule, "updated", actor, changes, extra=extra)
    session.flush()
    return True


def update_routing_rule(session: Session, actor: Actor, rule_id: int, body: RoutingRuleUpdate) -> RoutingRule:
    rule = get_routing_rule(session, rule_id)
    apply_routing_values(session, actor, rule, _routing_values(session, body))
    return rule


def delete_routing_rule(session: Session, actor: Actor, rule_id: int) -> None:
    rule = get_routing_rule(session, rule_id)
    record_routing_change(session, rule, "deleted", actor)
    session.delete(rule)
    session.flush()


def routing_history(
    session: Session, *, rule_id: int | None, limit: int, offset: int
) -> tuple[list[RoutingRuleHistory], int]:
    query = select(RoutingRuleHistory).order_by(RoutingRuleHistory.id.desc())
    if rule_id is not None:
        query = query.where(RoutingRuleHistory.rule_id == rule_id)
    return _page(session, query, limit, offset)


# ---------------------------------------------------------------------------------------------------------
# Deadlines


def list_deadlines(session: Session) -> list[DeadlineRule]:
    return list(session.scalars(select(DeadlineRule).order_by(DeadlineRule.violation_code)))


def put_deadline(session: Session, violation_code: str, body: DeadlineIn) -> DeadlineRule:
    _ref_violation(session, violation_code, "violation_code")
    upsert(
        session,
        DeadlineRule,
        {"violation_code": violation_code, "working_hours": body.working_hours},
        keys=("violation_code",),
    )
    rule = session.scalar(
        select(DeadlineRule)
        .where(DeadlineRule.violation_code == violation_code)
        .execution_options(populate_existing=True)
    )
    assert rule is not None  # just upserted in this transaction
    return rule


def delete_deadline(session: Session, violation_code: str) -> None:
    rule = session.scalar(select(DeadlineRule).where(DeadlineRule.violation_code == violation_code))
    if rule is None:
        raise NotFound(f"no deadline for violation {violation_code!r} (the calendar's default applies)")
    session.delete(rule)
    session.flush()


# ---------------------------------------------------------------------------------------------------------
# Working calendar

CALENDAR_ROW_ID = 1  # one calendar per installation: always row 1, so concurrent writers cannot add a second


def get_calendar(session: Session) -> CalendarPublic:
    row = session.get(CalendarSettings, CALENDAR_ROW_ID) or session.scalar(
        select(CalendarSettings).order_by(CalendarSettings.id).limit(1)
    )
    if row is None:
        return CalendarPublic(configured=False)
    return CalendarPublic(
        timezone=row.timezone,
        periods=[tuple(p) for p in row.periods],
        workdays=list(row.workdays),
        default_working_hours=row.default_working_hours,
        configured=True,
    )


def calendar_values(body: CalendarIn) -> dict[str, Any]:
    return {
        "id": CALENDAR_ROW_ID,
        "timezone": body.timezone,
        "periods": [list(period) for period in body.periods],
        "workdays": list(body.workdays),
        "default_working_hours": body.default_working_hours,
    }


def put_calendar(session: Session, body: CalendarIn) -> CalendarPublic:
    upsert(session, CalendarSettings, calendar_values(body), keys=("id",))
    session.expire_all()
    return get_calendar(session)


def list_calendar_days(
    session: Session, *, start: dt.date | None = None, end: dt.date | None = None
) -> list[CalendarDay]:
    query = select(CalendarDay).order_by(CalendarDay.day)
    if start is not None:
        query = query.where(CalendarDay.day >= start)
    if end is not None:
        query = query.where(CalendarDay.day <= end)
    return list(session.scalars(query))


def put_calendar_day(session: Session, day: dt.date, body: CalendarDayIn) -> CalendarDay:
    upsert(session, CalendarDay, {"day": day, "working": body.working, "name": body.name}, keys=("day",))
    row = session.scalar(
        select(CalendarDay).where(CalendarDay.day == day).execution_options(populate_existing=True)
    )
    assert row is not None  # just upserted in this transaction
    return row


def delete_calendar_day(session: Session, day: dt.date) -> None:
    row = session.scalar(select(CalendarDay).where(CalendarDay.day == day))
    if row is None:
        raise NotFound(f"{day.isoformat()} is not in the calendar's exceptions")
    session.delete(row)
    session.flush()
