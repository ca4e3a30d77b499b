"""Import reference data from YAML (``configs/reference/*.yaml``): units, places, violation types,
deadlines, the working calendar, cameras with their zones, and routing rules.

- Validated with the same strict models as the API (:mod:`api.reference`); every error names the file,
  the line and the field (``file:line: field: message``), and all errors are reported at once.
- Idempotent: objects are matched by their code (unit code, place key, event code, camera code, zone
  code within its camera, calendar day; a routing rule by its place and violation) and updated in
  place; re-importing the same file changes nothing and records nothing. For an object already stored,
  only the fields the file writes are changed; nothing is ever deleted by an import.
- All-or-nothing: the caller runs the import in one transaction, so an invalid file changes nothing.
"""

from __future__ import annotations

import datetime as dt
from collections import Counter
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

from pydantic import Field, ValidationError, model_validator
from sqlalchemy import select, text
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session, sessionmaker

from api.actors import SYSTEM, Actor
from api.admin_audit import set_actor
from api.models import (
    CalendarDay,
    CalendarSettings,
    Camera,
    DeadlineRule,
    Device,
    Place,
    RoutingRule,
    Unit,
    ViolationType,
    Zone,
    utcnow,
)
from api.reference.calendar import CALENDAR_ROW_ID, CalendarIn, calendar_values
from api.reference.cameras import CameraIn, ZoneIn, zone_values
from api.reference.common import EventCode, StrictModel, assign
from api.reference.places import PlaceIn
from api.reference.routing_rules import RoutingRuleIn, apply_routing_values, record_routing_change
from api.reference.units import UnitIn
from api.reference.violation_types import ViolationTypeIn, clear_other_defaults, photo_required_by_default
from detector.yaml_lines import LocatedYaml, YamlSyntaxError, load_located_yaml

DEFAULT_CONFIG = Path(__file__).resolve().parents[1] / "configs" / "reference" / "default.yaml"
MAX_RANGE_DAYS = 366
_PG_IMPORT_LOCK = 7_311_020_001  # pg_advisory_xact_lock key: one reference import at a time


class ConfigImportError(ValueError):
    """The file cannot be imported; the message has one ``file:line: field: message`` line per problem."""


# ---------------------------------------------------------------------------------------------------------
# The file format


class DeadlineEntry(StrictModel):
    violation: EventCode
    working_hours: float = Field(gt=0, le=10_000, description="Working hours allowed from dispatch.")


class CalendarDayEntry(StrictModel):
    """One exceptional day, or a range ``start``..``end`` (inclusive) with the same meaning."""

    day: dt.date | None = None
    start: dt.date | None = None
    end: dt.date | None = None
    working: bool = Field(description="false: holiday; true: make-up working day (调休).")
    name: str = Field(default="", max_length=100)

    @model_validator(mode="after")
    def _day_or_range(self) -> CalendarDayEntry:
        if (self.day is None) == (self.start is None and self.end is None):
            raise ValueError("give either day, or start and end")
        if self.day is None and (self.start is None or self.end is None):
            raise ValueError("a range needs both start and end")
        if self.start is not None and self.end is not None:
            if self.end < self.start:
                raise ValueError(f"end {self.end} is before start {self.start}")
            if (self.end - self.start).days >= MAX_RANGE_DAYS:
                raise ValueError(f"a range may span at most {MAX_RANGE_DAYS} days")
        return self

    def days(self) -> list[dt.date]:
        if self.day is not None:
            return [self.day]
        assert self.start is not None and self.end is not None  # checked by the validator
        return [self.start + dt.timedelta(days=n) for n in range((self.end - self.start).days + 1)]


class CalendarConfig(CalendarIn):
    days: list[CalendarDayEntry] = Field(default_factory=list, max_length=2000)


class ReferenceConfig(StrictModel):
    """A reference-data file. Every section is optional; references use codes."""

    version: Literal[1] = 1
    units: list[UnitIn] = Field(default_factory=list)
    places: list[PlaceIn] = Field(default_factory=list)
    violation_types: list[ViolationTypeIn] = Field(default_factory=list)
    deadlines: list[DeadlineEntry] = Field(default_factory=list)
    calendar: CalendarConfig | None = None
    cameras: list[CameraIn] = Field(default_factory=list)
    routing_rules: list[RoutingRuleIn] = Field(default_factory=list)


# ---------------------------------------------------------------------------------------------------------
# Loading and checking


Loc = tuple[str | int, ...]


@dataclass
class _Problems:
    """Errors found while checking a file, each with the location of the value at fault."""

    source: LocatedYaml | None
    label: str
    found: list[tuple[Loc, str]] = field(default_factory=list)

    def add(self, loc: Loc, message: str) -> None:
        self.found.append((loc, message))

    def raise_if_any(self) -> None:
        if not self.found:
            return
        lines = []
        for loc, message in self.found:
            line = self.source.line_of(loc) if self.source else None
            where = f"{self.label}:{line}" if line else self.label
            lines.append(f"{where}: {'.'.join(str(part) for part in loc)}: {message}")
        raise ConfigImportError("\n".join(lines))


def load_config(path: Path) -> tuple[ReferenceConfig, LocatedYaml]:
    """Parse and validate ``path``; raise :class:`ConfigImportError` naming file, line and field."""
    try:
        located = load_located_yaml(path)
    except YamlSyntaxError as exc:
        raise ConfigImportError(str(exc)) from exc
    except (OSError, UnicodeDecodeError) as exc:
        raise ConfigImportError(f"{path}: cannot read: {exc}") from exc
    data = located.data if located.data is not None else {}
    if not isinstance(data, dict):
        raise ConfigImportError(
            f"{path}:1: (top level): expected a mapping of sections, got {type(data).__name__}"
        )
    try:
        return ReferenceConfig.model_validate(data), located
    except ValidationError as exc:
        raise ConfigImportError(located.describe(exc)) from exc


def _duplicates(
    problems: _Problems, section: str, keys: Iterable[Any], what: str, sub: str | None = None
) -> None:
    first: dict[Any, int] = {}
    for index, key in enumerate(keys):
        if key in first:
            loc: Loc = (section, index, sub) if sub else (section, index)
            where = problems.source.line_of((section, first[key])) if problems.source else None
            problems.add(loc, f"{what} {key!r} is listed twice (first at line {where or '?'})")
        else:
            first[key] = index


@dataclass
class _Known:
    """Codes the file may refer to: those in the database plus those the file itself defines."""

    units: set[str]
    places: set[str]
    violations: set[str]
    pipeline_types: set[str]
    devices: set[str]
    unit_parents: dict[str, str | None]


def _known(session: Session, config: ReferenceConfig) -> _Known:
    parents: dict[str, str | None] = {}
    for unit in session.scalars(select(Unit)):
        parents[unit.code] = unit.parent.code if unit.parent else None
    for spec in config.units:
        if "parent" in spec.model_fields_set or spec.code not in parents:
            parents[spec.code] = spec.parent
    return _Known(
        units=set(parents),
        places=set(session.scalars(select(Place.key))) | {p.key for p in config.places},
        violations=set(session.scalars(select(ViolationType.code)))
        | {v.code for v in config.violation_types},
        pipeline_types=set(session.scalars(select(ViolationType.pipeline_type)))
        | {v.pipeline_type for v in config.violation_types},
        devices=set(session.scalars(select(Device.name))),
        unit_parents=parents,
    )


def _check_unit_cycles(problems: _Problems, config: ReferenceConfig, known: _Known) -> None:
    for index, spec in enumerate(config.units):
        seen = {spec.code}
        node = known.unit_parents.get(spec.code)
        while node is not None:
            if node in seen:
                problems.add(
                    ("units", index, "parent"), f"unit {spec.code!r}: the parent chain loops through {node!r}"
                )
                break
            seen.add(node)
            node = known.unit_parents.get(node)


def _check_references(problems: _Problems, config: ReferenceConfig, known: _Known) -> None:
    def need(value: str | None, pool: set[str], loc: Loc, what: str) -> None:
        if value is not None and value not in pool:
            problems.add(loc, f"unknown {what} {value!r}")

    for i, unit in enumerate(config.units):
        need(unit.parent, known.units, ("units", i, "parent"), "unit code")
    for i, place in enumerate(config.places):
        need(place.owner, known.units, ("places", i, "owner"), "unit code")
    for i, deadline in enumerate(config.deadlines):
        need(deadline.violation, known.violations, ("deadlines", i, "violation"), "violation event code")
    for i, camera in enumerate(config.cameras):
        if camera.device is not None and camera.device not in known.devices:
            problems.add(
                ("cameras", i, "device"),
                f"unknown device {camera.device!r} (register it first: streetwatch api create-device NAME)",
            )
        for j, zone in enumerate(camera.zones):
            need(zone.place, known.places, ("cameras", i, "zones", j, "place"), "place key")
            for name in zone.rules:
                need(name, known.pipeline_types, ("cameras", i, "zones", j, "rules", name), "violation type")
            if zone.static_change is not None:
                where = ("cameras", i, "zones", j, "static_change", "report_as")
                need(zone.static_change.report_as, known.pipeline_types, where, "violation type")
    for i, rule in enumerate(config.routing_rules):
        need(rule.place, known.places, ("routing_rules", i, "place"), "place key")
        need(rule.violation, known.violations, ("routing_rules", i, "violation"), "violation event code")
        need(rule.unit, known.units, ("routing_rules", i, "unit"), "unit code")


def _check_defaults(problems: _Problems, config: ReferenceConfig) -> None:
    defaults = Counter(v.pipeline_type for v in config.violation_types if v.default_for_type)
    for i, violation in enumerate(config.violation_types):
        if violation.default_for_type and defaults[violation.pipeline_type] > 1:
            problems.add(
                ("violation_types", i, "default_for_type"),
                f"more than one default event code for {violation.pipeline_type!r}: mark only one",
            )


def check_config(session: Session, config: ReferenceConfig, problems: _Problems) -> None:
    """Cross-object checks: duplicates within the file, unknown references, loops, double defaults."""
    _duplicates(problems, "units", (u.code for u in config.units), "unit code", "code")
    _duplicates(problems, "places", (p.key for p in config.places), "place key", "key")
    _duplicates(problems, "violation_types", (v.code for v in config.violation_types), "event code", "code")
    _duplicates(problems, "deadlines", (d.violation for d in config.deadlines), "violation", "violation")
    _duplicates(problems, "cameras", (c.code for c in config.cameras), "camera code", "code")
    _duplicates(
        problems, "routing_rules", ((r.place, r.violation) for r in config.routing_rules), "place x violation"
    )
    if config.calendar:
        days = [(i, day) for i, entry in enumerate(config.calendar.days) for day in entry.days()]
        seen: dict[dt.date, int] = {}
        for i, day in days:
            if day in seen and seen[day] != i:
                problems.add(("calendar", "days", i), f"{day} is already listed (calendar.days.{seen[day]})")
            seen.setdefault(day, i)
    known = _known(session, config)
    _check_references(problems, config, known)
    _check_unit_cycles(problems, config, known)
    _check_defaults(problems, config)


# ---------------------------------------------------------------------------------------------------------
# Applying


@dataclass
class SectionReport:
    created: int = 0
    updated: int = 0
    unchanged: int = 0

    def count(self, created: bool, changed: bool) -> None:
        if created:
            self.created += 1
        elif changed:
            self.updated += 1
        else:
            self.unchanged += 1


@dataclass
class ImportReport:
    sections: dict[str, SectionReport] = field(default_factory=dict)

    def section(self, name: str) -> SectionReport:
        return self.sections.setdefault(name, SectionReport())

    @property
    def changed(self) -> bool:
        return any(s.created or s.updated for s in self.sections.values())

    def summary(self) -> str:
        return "; ".join(
            f"{name}: {s.created} created, {s.updated} updated, {s.unchanged} unchanged"
            for name, s in self.sections.items()
        )


def _set_fields(obj: Any, spec: StrictModel, names: Iterable[str], created: bool) -> bool:
    """Copy ``names`` from ``spec``: all of them on a new row, only those the file wrote on an old one."""
    values = {name: getattr(spec, name) for name in names if created or name in spec.model_fields_set}
    return assign(obj, values)


def _by(session: Session, model: type[Any], column: Any, values: Iterable[Any]) -> dict[Any, Any]:
    wanted = list(values)
    if not wanted:
        return {}
    return {getattr(row, column.key): row for row in session.scalars(select(model).where(column.in_(wanted)))}


def _apply_units(session: Session, config: ReferenceConfig, report: ImportReport) -> None:
    existing = _by(session, Unit, Unit.code, (u.code for u in config.units))
    touched: dict[str, tuple[Unit, bool, bool]] = {}
    for spec in config.units:
        unit = existing.get(spec.code)
        created = unit is None
        if unit is None:
            unit = Unit(code=spec.code)
            session.add(unit)
        changed = _set_fields(unit, spec, ("name", "kind", "active", "email"), created)
        touched[spec.code] = (unit, created, changed)
    session.flush()
    codes = {u.code: u.id for u in session.scalars(select(Unit))}
    for spec in config.units:
        unit, created, changed = touched[spec.code]
        if created or "parent" in spec.model_fields_set:
            parent_id = codes[spec.parent] if spec.parent else None
            changed = assign(unit, {"parent_id": parent_id}) or changed
        report.section("units").count(created, changed)
    session.flush()


def _apply_places(session: Session, config: ReferenceConfig, report: ImportReport) -> None:
    existing = _by(session, Place, Place.key, (p.key for p in config.places))
    units = {u.code: u.id for u in session.scalars(select(Unit))}
    for spec in config.places:
        place = existing.get(spec.key)
        created = place is None
        if place is None:
            place = Place(key=spec.key)
            session.add(place)
        changed = _set_fields(place, spec, ("name", "kind", "lat", "lon"), created)
        if created or "owner" in spec.model_fields_set:
            changed = assign(place, {"owner_unit_id": units[spec.owner] if spec.owner else None}) or changed
        report.section("places").count(created, changed)
    session.flush()


VIOLATION_FIELDS = (
    "name",
    "name_en",
    "pipeline_type",
    "default_for_type",
    "auto_file",
    "auto_file_min_confidence",
    "active",
    "description",
    "category",
    "photo_required_to_resolve",
    "start_required_before_resolve",
)


def _apply_violation_types(session: Session, config: ReferenceConfig, report: ImportReport) -> None:
    existing = _by(session, ViolationType, ViolationType.code, (v.code for v in config.violation_types))
    for spec in config.violation_types:
        violation = existing.get(spec.code)
        created = violation is None
        if violation is None:
            violation = ViolationType(code=spec.code)
            session.add(violation)
        written = "photo_required_to_resolve" in spec.model_fields_set
        if spec.photo_required_to_resolve is None and (created or written):  # the pipeline type's default
            default = photo_required_by_default(spec.pipeline_type)
            spec = spec.model_copy(update={"photo_required_to_resolve": default})
        changed = _set_fields(violation, spec, VIOLATION_FIELDS, created)
        report.section("violation_types").count(created, changed)
    session.flush()
    for spec in config.violation_types:
        if spec.default_for_type:
            violation = session.scalar(select(ViolationType).where(ViolationType.code == spec.code))
            if violation is not None:
                clear_other_defaults(session, violation)
    session.flush()


def _apply_deadlines(session: Session, config: ReferenceConfig, report: ImportReport) -> None:
    existing = _by(
        session, DeadlineRule, DeadlineRule.violation_code, (d.violation for d in config.deadlines)
    )
    for spec in config.deadlines:
        rule = existing.get(spec.violation)
        created = rule is None
        if rule is None:
            rule = DeadlineRule(violation_code=spec.violation, working_hours=spec.working_hours)
            session.add(rule)
        changed = assign(rule, {"working_hours": spec.working_hours})
        report.section("deadlines").count(created, changed)
    session.flush()


def _apply_calendar(session: Session, calendar: CalendarConfig, report: ImportReport) -> None:
    row = session.get(CalendarSettings, CALENDAR_ROW_ID)
    created = row is None
    if row is None:
        row = CalendarSettings(id=CALENDAR_ROW_ID)
        session.add(row)
    values = calendar_values(calendar)
    values.pop("id")
    if not created:
        values = {name: value for name, value in values.items() if name in calendar.model_fields_set}
    report.section("calendar").count(created, assign(row, values))
    wanted = {day: entry for entry in calendar.days for day in entry.days()}
    existing = _by(session, CalendarDay, CalendarDay.day, wanted)
    for day, entry in sorted(wanted.items()):
        found = existing.get(day)
        day_created = found is None
        if found is None:
            found = CalendarDay(day=day)
            session.add(found)
        changed = assign(found, {"working": entry.working, "name": entry.name})
        report.section("calendar_days").count(day_created, changed)
    session.flush()


def _apply_cameras(session: Session, config: ReferenceConfig, report: ImportReport) -> None:
    existing = _by(session, Camera, Camera.code, (c.code for c in config.cameras))
    devices = {d.name: d.id for d in session.scalars(select(Device))}
    places = {p.key: p.id for p in session.scalars(select(Place))}
    for spec in config.cameras:
        camera = existing.get(spec.code)
        created = camera is None
        if camera is None:
            camera = Camera(code=spec.code)
            session.add(camera)
        changed = _set_fields(camera, spec, ("name",), created)
        if created or "device" in spec.model_fields_set:
            changed = assign(camera, {"device_id": devices[spec.device] if spec.device else None}) or changed
        report.section("cameras").count(created, changed)
        session.flush()
        zones = {zone.code: zone for zone in camera.zones}
        for zone_spec in spec.zones:
            _apply_zone(session, camera, zones.get(zone_spec.code), zone_spec, places, report)
    session.flush()


def _apply_zone(
    session: Session,
    camera: Camera,
    zone: Zone | None,
    spec: ZoneIn,
    places: dict[str, int],
    report: ImportReport,
) -> None:
    values = zone_values(camera.id, spec.code, places[spec.place], spec)
    created = zone is None
    if zone is None:
        zone = Zone(**values)
        camera.zones.append(zone)
        changed = True
    else:
        changed = assign(zone, values)
    if changed:
        zone.updated_at = utcnow()
    report.section("zones").count(created, changed)


def _apply_routing_rules(
    session: Session, config: ReferenceConfig, actor: Actor, source: str, report: ImportReport
) -> None:
    places = {p.key: p.id for p in session.scalars(select(Place))}
    units = {u.code: u.id for u in session.scalars(select(Unit))}
    for spec in config.routing_rules:
        place_id = places[spec.place] if spec.place else None
        rule = session.scalar(
            select(RoutingRule)
            .where(
                RoutingRule.place_id.is_(None) if place_id is None else RoutingRule.place_id == place_id,
                RoutingRule.violation_code.is_(None)
                if spec.violation is None
                else RoutingRule.violation_code == spec.violation,
            )
            .order_by(RoutingRule.id)
            .limit(1)
        )
        if rule is None:
            rule = RoutingRule(
                place_id=place_id,
                violation_code=spec.violation,
                unit_id=units[spec.unit],
                priority=spec.priority,
                active=spec.active,
                updated_at=utcnow(),
            )
            session.add(rule)
            session.flush()
            record_routing_change(session, rule, "created", actor, extra={"source": source})
            report.section("routing_rules").count(True, True)
            continue
        values: dict[str, Any] = {"unit_id": units[spec.unit]}
        values.update(
            {name: getattr(spec, name) for name in ("priority", "active") if name in spec.model_fields_set}
        )
        changed = apply_routing_values(session, actor, rule, values, extra={"source": source})
        report.section("routing_rules").count(False, changed)
    session.flush()


def _lock(session: Session) -> None:
    """One import at a time: SQLite takes its write lock now; PostgreSQL an advisory transaction lock."""
    from api.ingest import begin_write

    begin_write(session)
    if session.get_bind().dialect.name == "postgresql":
        session.execute(text("SELECT pg_advisory_xact_lock(:key)"), {"key": _PG_IMPORT_LOCK})


def import_config(
    session: Session,
    config: ReferenceConfig,
    actor: Actor,
    *,
    source: LocatedYaml | None = None,
    label: str = "",
) -> ImportReport:
    """Check ``config`` against the database and apply it in ``session``'s transaction.

    Raises :class:`ConfigImportError` (nothing applied) when a reference is unknown or a code is listed
    twice; the caller commits on success and rolls back on any error.
    """
    set_actor(session, actor.label)  # the admin audit trail names who imported
    label = label or (str(source.path) if source else "<config>")
    _lock(session)
    problems = _Problems(source, label)
    check_config(session, config, problems)
    problems.raise_if_any()
    report = ImportReport()
    try:
        _apply_units(session, config, report)
        _apply_places(session, config, report)
        _apply_violation_types(session, config, report)
        _apply_deadlines(session, config, report)
        if config.calendar is not None:
            _apply_calendar(session, config.calendar, report)
        _apply_cameras(session, config, report)
        _apply_routing_rules(session, config, actor, label, report)
    except IntegrityError as exc:
        raise ConfigImportError(
            f"{label}: the database changed while importing ({exc.orig}); nothing was imported, retry"
        ) from exc
    return report


def import_file(session: Session, path: Path, actor: Actor) -> ImportReport:
    """Load, check and apply ``path`` in ``session`` (the caller commits or rolls back)."""
    config, located = load_config(path)
    return import_config(session, config, actor, source=located, label=str(path))


def load_defaults_if_empty(
    sessions: sessionmaker[Session], path: Path = DEFAULT_CONFIG
) -> ImportReport | None:
    """Import ``path`` (the default reference data) when no violation type exists; ``None`` if skipped."""
    with sessions.begin() as session:
        _lock(session)
        if session.scalar(select(ViolationType.id).limit(1)) is not None:
            return None
        return import_file(session, path, SYSTEM)
