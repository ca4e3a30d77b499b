"""Device reports become cases, exactly once.

Two unique constraints carry the guarantees, on SQLite and PostgreSQL alike (STYLE 11: never
check-then-insert):

- ``sightings.idempotency_key``: the pipeline mints one key per incident and retries with it; a key
  already stored returns the case it created (``duplicate=True``), however many retries race.
- ``cases.open_slot`` (``"<place_id>|<violation_code>"`` while a case is open): at most one open case per
  place and violation; a report for a place+violation with an open case becomes a sighting of it
  (:func:`api.open_or_merge.open_or_merge` decides, as for Open311 requests).

A new case is inserted in a SAVEPOINT; on IntegrityError the savepoint is rolled back and the report is
re-read as a duplicate or merged into the case that won. A sighting of an open case is inserted with
``ON CONFLICT DO NOTHING`` instead (no SAVEPOINT on the common path).
"""

from __future__ import annotations

import datetime as dt
import math
from dataclasses import dataclass
from functools import cached_property
from typing import Any, NamedTuple, NoReturn
from typing import cast as typing_cast

from sqlalchemy import (
    Float,
    Select,
    String,
    Table,
    Update,
    bindparam,
    cast,
    insert,
    literal,
    or_,
    select,
    update,
)
from sqlalchemy import case as sql_case
from sqlalchemy.dialects.postgresql import insert as postgresql_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from api.actors import SYSTEM, Actor
from api.audit import record_event
from api.errors import Conflict, Forbidden, InvalidInput
from api.messages import NOTE_KEY, msg
from api.metrics import counts_ingest
from api.models import (
    AuditEvent,
    Camera,
    Case,
    CaseStatus,
    Place,
    Sighting,
    UTCDateTime,
    ViolationType,
    utcnow,
)
from api.open_or_merge import open_or_merge
from api.settings import Settings
from api.workflow import is_unclassified
from contract.reports import CaseReport, IngestResult

MAX_ATTEMPTS = 4  # whole attempts: each starts over after the open case closed under a merge


class _StartOver(Exception):
    """The attempt lost a race it cannot repair in place (the open case closed meanwhile): roll it back."""


@counts_ingest
def ingest_report(
    session: Session, report: CaseReport, device: Actor, settings: Settings, *, now: dt.datetime | None = None
) -> IngestResult:
    """Store ``report`` from ``device`` as a new case or a sighting of the open one; exactly once per key.

    The common path (a sighting of an open case) is six statements with the device lookup and the commit:
    the facts the report refers to, its open case included, are read in one query (:func:`_lookup`), the
    sighting is inserted with ``ON CONFLICT DO NOTHING`` instead of inside a SAVEPOINT, and the rare race
    in which the case closes between its lookup and its update rolls the whole attempt back and starts over.
    """
    if not device.is_device or device.id is None:
        raise Forbidden("only devices submit case reports (X-Device-Key)")
    now = now or utcnow()
    _check_values(report)
    for _ in range(MAX_ATTEMPTS):
        try:
            result = _ingest_once(session, report, device, settings, now)
        except _StartOver:
            session.rollback()
            continue
        if result is not None:
            return result
    raise Conflict(
        f"could not store report {report.idempotency_key}: the open case for place '{report.place}' and "
        f"violation '{report.event_code or report.violation_type}' kept changing; retry later",
        retry=True,
    )


def _ingest_once(
    session: Session, report: CaseReport, device: Actor, settings: Settings, now: dt.datetime
) -> IngestResult | None:
    begin_write(session)
    facts = _lookup(session, report)
    if facts.sighting_id is not None:
        return _duplicate(session, session.get_one(Sighting, facts.sighting_id), device)
    if facts.violation_id is None or facts.violation_code is None:
        resolve_violation(session, report)  # raises the error that names the known types and codes
        return None  # it was added meanwhile: read again
    if facts.camera_owner is not None and facts.camera_owner != device.id:
        _camera_forbidden(report.camera, device)
    place_id, place_created = facts.place_id, False
    if place_id is None:
        place, place_created = _get_or_create_place(session, report.place)
        place_id = place.id
    writer = _DeviceReport(
        session, report, device, settings, now, facts.violation_id, place_id, place_created
    )
    return open_or_merge(
        session,
        writer,
        place_id=place_id,
        violation_code=facts.violation_code,
        seen_at=report.first_seen_at,
        settings=settings,
        open_case_id=facts.open_case_id,
    )


class _Facts(NamedTuple):
    sighting_id: int | None  # a sighting already stored under the report's idempotency key
    violation_id: int | None
    violation_code: str | None
    camera_owner: int | None  # the device the camera is registered to
    place_id: int | None
    open_case_id: int | None  # the open case for this place and violation, if both exist


def _lookup_statement(*, by_event_code: bool) -> Select[tuple[Any, ...]]:
    violation = select(ViolationType.id, ViolationType.code).where(ViolationType.active.is_(True))
    if by_event_code:
        violation = violation.where(
            ViolationType.code == bindparam("event_code"), ViolationType.pipeline_type == bindparam("type")
        )
    else:
        violation = violation.where(
            ViolationType.pipeline_type == bindparam("type"), ViolationType.default_for_type.is_(True)
        )
    violation = violation.order_by(ViolationType.id).limit(1)
    violation_code = violation.with_only_columns(ViolationType.code).scalar_subquery()
    place_id = select(Place.id).where(Place.key == bindparam("place")).scalar_subquery()
    slot = cast(place_id, String) + literal("|") + violation_code  # as api.open_or_merge.open_slot writes it
    return select(
        select(Sighting.id).where(Sighting.idempotency_key == bindparam("key")).scalar_subquery(),
        violation.with_only_columns(ViolationType.id).scalar_subquery(),
        violation_code,
        select(Camera.device_id).where(Camera.code == bindparam("camera")).scalar_subquery(),
        place_id,
        select(Case.id).where(Case.open_slot == slot).scalar_subquery(),
    )


# Built once: constructing these statements per request cost more Python time than running them; they run
# on the session's connection (Core), which skips the ORM's per-statement bookkeeping.
_LOOKUP_BY_TYPE = _lookup_statement(by_event_code=False)
_LOOKUP_BY_EVENT_CODE = _lookup_statement(by_event_code=True)


def _lookup(session: Session, report: CaseReport) -> _Facts:
    """Everything the report refers to, in one round trip (scalar subqueries; NULL where not found)."""
    statement = _LOOKUP_BY_EVENT_CODE if report.event_code else _LOOKUP_BY_TYPE
    params = {
        "key": report.idempotency_key,
        "type": report.violation_type,
        "camera": report.camera,
        "place": report.place,
    }
    if report.event_code:
        params["event_code"] = report.event_code
    return _Facts(*session.connection().execute(statement, params).one())


EARLIEST = dt.datetime(2000, 1, 1, tzinfo=dt.UTC)
LATEST = dt.datetime(2100, 1, 1, tzinfo=dt.UTC)


def _check_values(report: CaseReport) -> None:
    """What the schema lets through but the store cannot keep: times far out of range, NaN boxes."""
    for name in ("first_seen_at", "confirmed_at"):
        value: dt.datetime = getattr(report, name)
        try:
            in_range = EARLIEST <= value.astimezone(dt.UTC) < LATEST
        except OverflowError:
            in_range = False
        if not in_range:
            raise InvalidInput(
                f"{name} {value.isoformat()} is outside the years {EARLIEST.year}-{LATEST.year - 1}: "
                "check the device clock",
                field=name,
            )
    for index, box in enumerate(report.boxes):
        if not all(math.isfinite(v) for v in box.xyxy):
            raise InvalidInput(f"boxes[{index}].xyxy has a non-finite coordinate: {box.xyxy}", field="boxes")


def resolve_violation(session: Session, report: CaseReport) -> ViolationType:
    """The violation type: ``event_code`` if given, else the default code of ``violation_type``."""
    if report.event_code:
        violation = session.scalar(select(ViolationType).where(ViolationType.code == report.event_code))
        if violation is None or not violation.active:
            raise InvalidInput(
                f"unknown event_code '{report.event_code}'; codes for '{report.violation_type}': "
                f"{_codes_for(session, report.violation_type) or 'none'}",
                field="event_code",
            )
        if violation.pipeline_type != report.violation_type:
            raise InvalidInput(
                f"event_code '{violation.code}' ({violation.name}) is a '{violation.pipeline_type}' code, "
                f"not '{report.violation_type}'",
                field="event_code",
            )
        return violation
    violation = session.scalar(
        select(ViolationType)
        .where(
            ViolationType.pipeline_type == report.violation_type,
            ViolationType.default_for_type.is_(True),
            ViolationType.active.is_(True),
        )
        .order_by(ViolationType.id)
        .limit(1)
    )
    if violation is not None:
        return violation
    codes = _codes_for(session, report.violation_type)
    if codes:
        raise InvalidInput(
            f"violation_type '{report.violation_type}' has no default event code: "
            f"send event_code, one of {codes}",
            field="event_code",
        )
    known = sorted(
        set(session.scalars(select(ViolationType.pipeline_type).where(ViolationType.active.is_(True))))
    )
    raise InvalidInput(
        f"unknown violation_type '{report.violation_type}'; "
        f"known types: {', '.join(known) or 'none configured'}",
        field="violation_type",
        known=known,
    )


def _codes_for(session: Session, pipeline_type: str) -> str:
    codes = session.scalars(
        select(ViolationType.code)
        .where(ViolationType.pipeline_type == pipeline_type, ViolationType.active.is_(True))
        .order_by(ViolationType.code)
    )
    return ", ".join(codes)


def begin_write(session: Session) -> None:
    """On SQLite, take the write lock now (``BEGIN IMMEDIATE``).

    pysqlite opens a transaction only at the first INSERT/UPDATE, so a SAVEPOINT issued before that would
    become the outermost transaction and its RELEASE would commit half an ingest. Taking the lock up front
    also makes the reads below see the state the writes apply to; SQLite has one writer at a time anyway.
    PostgreSQL needs nothing here: its unique indexes make concurrent inserts wait and then fail.
    """
    connection = session.connection()
    if connection.dialect.name != "sqlite":
        return
    raw = connection.connection.dbapi_connection
    if raw is not None and not raw.in_transaction:
        connection.exec_driver_sql("BEGIN IMMEDIATE")


def _find_sighting(session: Session, key: str) -> Sighting | None:
    return session.scalar(select(Sighting).where(Sighting.idempotency_key == key))


def _duplicate(session: Session, sighting: Sighting, device: Actor) -> IngestResult:
    if sighting.device_id is not None and sighting.device_id != device.id:
        raise Conflict(
            f"idempotency key {sighting.idempotency_key} was already used by another device; "
            "keys are minted once per incident by the reporting device",
            field="idempotency_key",
        )
    status = session.scalar(select(Case.status).where(Case.id == sighting.case_id))
    return IngestResult(
        case_id=sighting.case_id, sighting_id=sighting.id, created=False, duplicate=True, status=str(status)
    )


def _camera_forbidden(camera_code: str, device: Actor) -> NoReturn:
    raise Forbidden(
        f"camera '{camera_code}' is registered to another device; device '{device.name}' may report "
        "only its own cameras and unregistered ones",
        field="camera",
    )


def _get_or_create_place(session: Session, key: str) -> tuple[Place, bool]:
    """The place with responsibility key ``key``; an unknown key is created without an owner unit.

    Losing a camera's case is worse than an unregistered place: the case is kept and its audit event
    says that the place has to be registered (an owner unit) before it can be routed by place.
    """
    place = session.scalar(select(Place).where(Place.key == key))
    if place is not None:
        return place, False
    try:
        with session.begin_nested():
            place = Place(key=key, name=key)
            session.add(place)
            session.flush()
        return place, True
    except IntegrityError:  # another report created it first
        place = session.scalar(select(Place).where(Place.key == key))
        if place is None:
            raise
        return place, False


@dataclass(frozen=True)
class _DeviceReport:
    """A device's report as the :class:`api.open_or_merge.ReportWriter` of :func:`open_or_merge`."""

    session: Session
    report: CaseReport
    device: Actor
    settings: Settings
    now: dt.datetime
    violation_id: int
    place_id: int
    place_created: bool

    @cached_property
    def violation(self) -> ViolationType:
        """Loaded on the open path only, and held: the session's identity map keeps no strong reference."""
        return self.session.get_one(ViolationType, self.violation_id)

    def new_case(self) -> Case:
        report, place = self.report, self.session.get_one(Place, self.place_id)
        return Case(
            status=CaseStatus.PENDING_REVIEW.value,
            violation_code=self.violation.code,
            place_id=place.id,
            camera_code=report.camera,
            zone_code=report.zone,
            source="camera",
            description=report.note,
            lat=report.lat if report.lat is not None else place.lat,
            lon=report.lon if report.lon is not None else place.lon,
            confidence=report.confidence,
            model_name=report.model_name,
            model_version=report.model_version or None,
            sighting_count=report.sighting_count,
            first_seen_at=report.first_seen_at,
            last_seen_at=report.confirmed_at,
            confirmed_at=report.confirmed_at,
            created_at=self.now,
            updated_at=self.now,
        )

    def new_sighting(self, case_id: int) -> Sighting:
        return Sighting(**_sighting_values(case_id, self.report, self.device, self.now))

    def opened(self, case: Case, sighting: Sighting, recurrence_of: int | None) -> IngestResult:
        note = msg("ingest.place_created", place=self.report.place) if self.place_created else None
        record_event(
            self.session,
            case,
            self.device,
            "created",
            to_status=case.status,
            note=str(note) if note else None,
            at=self.now,
            data={
                **_sighting_data(self.report, sighting.id),
                "place_created": self.place_created,
                "recurrence_of": recurrence_of,
                **({NOTE_KEY: note.as_data()} if note else {}),
            },
        )
        _auto_file(self.session, case, self.violation, self.report.confidence, self.settings)
        return IngestResult(
            case_id=case.id, sighting_id=sighting.id, created=True, duplicate=False, status=case.status
        )

    def merge(self, case_id: int, slot: str) -> IngestResult:
        return _add_sighting(self.session, case_id, slot, self.report, self.device, self.now)

    def duplicate(self) -> IngestResult | None:
        known = _find_sighting(self.session, self.report.idempotency_key)
        return None if known is None else _duplicate(self.session, known, self.device)


def _sighting_values(case_id: int, report: CaseReport, device: Actor, now: dt.datetime) -> dict[str, Any]:
    return {
        "case_id": case_id,
        "idempotency_key": report.idempotency_key,
        "device_id": device.id,
        "camera_code": report.camera,
        "zone_code": report.zone,
        "confidence": report.confidence,
        "boxes": [box.model_dump(mode="json") for box in report.boxes],
        "first_seen_at": report.first_seen_at,
        "confirmed_at": report.confirmed_at,
        "sighting_count": report.sighting_count,
        "last_seen_at": report.confirmed_at,
        "received_at": now,
        "payload": report.model_dump(mode="json", exclude={"boxes"}),
    }


def _add_sighting(
    session: Session, case_id: int, slot: str, report: CaseReport, device: Actor, now: dt.datetime
) -> IngestResult:
    """The report as a sighting of the open case ``case_id``: sighting, audit event, then the case row.

    The case row is updated last: its row lock is then held only until the commit that follows, not
    across the other statements, so merges into one busy case do not queue behind each other.
    """
    insert_sighting = _INSERT_SIGHTING[session.get_bind().dialect.name == "postgresql"]
    connection = session.connection()  # Core statements: no ORM state to flush or load on this path
    sighting_id = connection.scalar(insert_sighting, _sighting_values(case_id, report, device, now))
    if sighting_id is None:  # the same key was stored by a concurrent retry, which has committed
        known = _find_sighting(session, report.idempotency_key)
        if known is None:
            raise _StartOver
        return _duplicate(session, known, device)
    connection.execute(
        _INSERT_EVENT,
        {
            "case_id": case_id,
            "at": now,
            "actor": device.label,
            "action": "sighting",
            "data": _sighting_data(report, sighting_id),
        },
    )
    status = _merge_into_case(session, case_id, slot, report, now)
    return IngestResult(
        case_id=case_id, sighting_id=sighting_id, created=False, duplicate=False, status=status
    )


# ``INSERT ... ON CONFLICT DO NOTHING RETURNING id`` on the table (Core, not the ORM bulk insert),
# indexed by "is PostgreSQL"; SQLite (3.35+) has the same clause.
_SIGHTINGS = typing_cast(Table, Sighting.__table__)
_INSERT_SIGHTING = (
    sqlite_insert(_SIGHTINGS).on_conflict_do_nothing().returning(_SIGHTINGS.c.id),
    postgresql_insert(_SIGHTINGS).on_conflict_do_nothing().returning(_SIGHTINGS.c.id),
)
_INSERT_EVENT = insert(typing_cast(Table, AuditEvent.__table__))


def _merge_statement() -> Update:
    first_seen = bindparam("first_seen", type_=UTCDateTime())
    last_seen = bindparam("last_seen", type_=UTCDateTime())
    confidence = bindparam("confidence", type_=Float())
    return (
        update(Case)
        .where(Case.id == bindparam("case_id"), Case.open_slot == bindparam("slot"))
        .values(
            sighting_count=Case.sighting_count + bindparam("count"),
            ended_at=None,  # a new incident on the case: the violation is there again
            first_seen_at=sql_case(
                (or_(Case.first_seen_at.is_(None), Case.first_seen_at > first_seen), first_seen),
                else_=Case.first_seen_at,
            ),
            last_seen_at=sql_case(
                (or_(Case.last_seen_at.is_(None), Case.last_seen_at < last_seen), last_seen),
                else_=Case.last_seen_at,
            ),
            confidence=sql_case(
                (or_(Case.confidence.is_(None), Case.confidence < confidence), confidence),
                else_=Case.confidence,
            ),
            updated_at=bindparam("now", type_=UTCDateTime()),
        )
        .returning(Case.status)
        .execution_options(synchronize_session=False)
    )


_MERGE = _merge_statement()


def _merge_into_case(session: Session, case_id: int, slot: str, report: CaseReport, now: dt.datetime) -> str:
    """Count the sighting on the case in one conditional UPDATE, so concurrent merges add up; its status.

    No row: the case was closed since it was looked up, so the attempt starts over (and opens a new case).
    """
    row = (
        session.connection()
        .execute(
            _MERGE,
            {
                "case_id": case_id,
                "slot": slot,
                "first_seen": report.first_seen_at,
                "last_seen": report.confirmed_at,
                "confidence": report.confidence,
                "count": report.sighting_count,
                "now": now,
            },
        )
        .first()
    )
    if row is None:
        raise _StartOver
    return str(row[0])


def _sighting_data(report: CaseReport, sighting_id: int) -> dict[str, Any]:
    return {
        "sighting_id": sighting_id,
        "idempotency_key": report.idempotency_key,
        "camera": report.camera,
        "zone": report.zone,
        "confidence": report.confidence,
    }


def _auto_file(
    session: Session, case: Case, violation: ViolationType, confidence: float, settings: Settings
) -> None:
    """File a new case as the system actor if its violation type says so and the detection is sure enough."""
    if not violation.auto_file or confidence < violation.auto_file_min_confidence:
        return
    if is_unclassified(violation.pipeline_type):  # waits for re-coding, whatever its auto_file says
        return
    from api.case_actions import apply_action  # the workflow module; imported late to keep ingest importable

    apply_action(session, case, "file", SYSTEM, settings=settings)
