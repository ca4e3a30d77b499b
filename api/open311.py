"""Open311 GeoReport v2 over the case store: services are violation types, requests are cases.

Field names and types follow http://wiki.open311.org/GeoReport_v2. Mapping:

- ``service_code`` = the violation's event code, ``service_request_id`` = the case id (a string);
- ``status``: ``closed`` for closed (结案) and voided (作废) cases, ``open`` for every other status;
  ``status_notes`` says which streetwatch status and, for a voided case, why;
- ``expected_datetime`` = the case deadline (set at dispatch, in working hours);
- ``agency_responsible`` = the assigned unit's name; ``address_id`` = the place key;
- ``media_url`` = the URL of the case's best evidence image (served to authorised users only), else the
  image URL the reporter sent.

A submitted request becomes a case in ``pending_review`` with source ``open311``, or a sighting of the
open case for the same place and violation (one open case per place and violation, as for cameras).
The place is ``address_id`` (a place key) or the nearest place with coordinates within
:data:`MAX_PLACE_DISTANCE_M` of ``lat``/``long``.
"""

from __future__ import annotations

import datetime as dt
import math
import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from pydantic import BaseModel, Field
from sqlalchemy import CursorResult, select, update
from sqlalchemy.orm import Session

from api.actors import Actor
from api.audit import record_event
from api.case_queries import get_visible_case, visibility_clause
from api.errors import Conflict, Forbidden, InvalidInput, NotFound
from api.evidence import evidence_url
from api.ingest import begin_write
from api.models import (
    Case,
    CaseStatus,
    DeadlineRule,
    Evidence,
    Place,
    Role,
    Sighting,
    Unit,
    ViolationType,
    utcnow,
)
from api.open_or_merge import find_open_case, open_or_merge, open_slot
from api.settings import Settings

SPECIFICATION = "http://wiki.open311.org/GeoReport_v2"
CHANGESET = dt.datetime(2026, 1, 1, tzinfo=dt.UTC)  # when this facade's service list format last changed
DEFAULT_WINDOW = dt.timedelta(days=90)  # the spec's default query window
MAX_RESULTS = 1000  # the spec's suggested maximum
MAX_PLACE_DISTANCE_M = 1000.0
CLOSED_STATUSES = frozenset({CaseStatus.CLOSED.value, CaseStatus.VOIDED.value})

STATUS_NOTES = {
    CaseStatus.PENDING_REVIEW.value: "received, awaiting review (待审核)",
    CaseStatus.FILED.value: "filed (立案), awaiting dispatch",
    CaseStatus.DISPATCHED.value: "dispatched (派遣) to the responsible unit",
    CaseStatus.IN_PROGRESS.value: "being handled by the responsible unit (处置中)",
    CaseStatus.RESOLVED.value: "reported done by the unit (处理反馈), awaiting verification",
    CaseStatus.VERIFIED.value: "verified on site (核查), awaiting closing",
    CaseStatus.CLOSED.value: "closed (结案)",
    CaseStatus.VOIDED.value: "voided (作废)",
    CaseStatus.RETURNED.value: "returned by the unit (回退), awaiting re-dispatch",
    CaseStatus.DEFERRED.value: "deferred (挂账)",
}


class Open311Error(BaseModel):
    code: int
    description: str


class Endpoint(BaseModel):
    specification: str
    url: str
    changeset: str
    type: str
    formats: list[str]


class Discovery(BaseModel):
    changeset: str
    contact: str
    key_service: str
    endpoints: list[Endpoint]


class Service(BaseModel):
    service_code: str
    service_name: str
    description: str
    metadata: bool
    type: str
    keywords: str
    group: str


class ServiceDefinition(BaseModel):
    service_code: str
    attributes: list[dict[str, Any]]


class ServiceRequest(BaseModel):
    """One request, with exactly the GeoReport v2 fields."""

    service_request_id: str
    status: str = Field(description="open or closed")
    status_notes: str | None
    service_name: str | None
    service_code: str
    description: str | None
    agency_responsible: str | None
    service_notice: str | None
    requested_datetime: str | None
    updated_datetime: str | None
    expected_datetime: str | None
    address: str | None
    address_id: str | None
    zipcode: str | None
    lat: float | None
    long: float | None
    media_url: str | None


class RequestCreated(BaseModel):
    service_request_id: str
    service_notice: str | None
    account_id: str | None = None


class Submission(BaseModel):
    """The form fields of ``POST requests.json`` (validated by the router)."""

    service_code: str
    lat: float | None = None
    long: float | None = None
    address_string: str | None = None
    address_id: str | None = None
    email: str | None = None
    first_name: str | None = None
    last_name: str | None = None
    phone: str | None = None
    description: str | None = None
    media_url: str | None = None


def w3c(moment: dt.datetime | None) -> str | None:
    return None if moment is None else moment.astimezone(dt.UTC).isoformat(timespec="seconds")


# ---------------------------------------------------------------------------------------------------------
# Services


def discovery(settings: Settings) -> Discovery:
    changeset = w3c(CHANGESET) or ""
    return Discovery(
        changeset=changeset,
        contact="The city management command centre operating this streetwatch case store.",
        key_service="Ask an administrator for an operator account (streetwatch api create-user) or a "
        "device key (streetwatch api create-device); send it in the X-API-Key header (or as a Bearer "
        "token, or as api_key).",
        endpoints=[
            Endpoint(
                specification=SPECIFICATION,
                url=f"{settings.public_url.rstrip('/')}/open311/v2",
                changeset=changeset,
                type="production",
                formats=["application/json"],
            )
        ],
    )


def service_of(violation: ViolationType) -> Service:
    keywords = [violation.pipeline_type, violation.name_en, violation.name]
    return Service(
        service_code=violation.code,
        service_name=violation.name,
        description=violation.description or violation.name_en or violation.name,
        metadata=False,
        type="realtime",
        keywords=", ".join(word for word in keywords if word),
        group=violation.category,
    )


def services(session: Session) -> list[Service]:
    rows = session.scalars(
        select(ViolationType).where(ViolationType.active.is_(True)).order_by(ViolationType.code)
    )
    return [service_of(row) for row in rows]


def active_violation(session: Session, code: str) -> ViolationType:
    violation = session.scalar(
        select(ViolationType).where(ViolationType.code == code, ViolationType.active.is_(True))
    )
    if violation is None:
        known = ", ".join(s.service_code for s in services(session)) or "none configured"
        raise InvalidInput(f"service_code {code!r} not found; services: {known}", field="service_code")
    return violation


def service_definition(session: Session, code: str) -> ServiceDefinition:
    """No service has extra attributes (``metadata`` is false for all), so the list is empty."""
    violation = session.scalar(
        select(ViolationType).where(ViolationType.code == code, ViolationType.active.is_(True))
    )
    if violation is None:
        raise NotFound(f"service_code {code!r} not found")
    return ServiceDefinition(service_code=violation.code, attributes=[])


# ---------------------------------------------------------------------------------------------------------
# Reading requests


class _Lookups:
    """Names, deadlines and evidence for a batch of cases, loaded once."""

    def __init__(self, session: Session, cases: Sequence[Case]) -> None:
        self.violations = {v.code: v for v in session.scalars(select(ViolationType))}
        self.deadlines = {d.violation_code: d.working_hours for d in session.scalars(select(DeadlineRule))}
        unit_ids = {c.unit_id for c in cases if c.unit_id is not None}
        place_ids = {c.place_id for c in cases}
        evidence_ids = {c.best_evidence_id for c in cases if c.best_evidence_id is not None}
        self.units = (
            {u.id: u for u in session.scalars(select(Unit).where(Unit.id.in_(unit_ids)))} if unit_ids else {}
        )
        self.places = {p.id: p for p in session.scalars(select(Place).where(Place.id.in_(place_ids)))}
        self.evidence = (
            {e.id: e for e in session.scalars(select(Evidence).where(Evidence.id.in_(evidence_ids)))}
            if evidence_ids
            else {}
        )


def _status_notes(case: Case) -> str:
    notes = STATUS_NOTES.get(case.status, case.status)
    if case.status == CaseStatus.VOIDED.value and case.void_reason:
        notes = f"{notes}: {case.void_reason}"
    if case.overdue and case.status not in CLOSED_STATUSES:
        notes = f"{notes}; overdue"
    return notes


def _media_url(case: Case, lookups: _Lookups, settings: Settings) -> str | None:
    evidence = lookups.evidence.get(case.best_evidence_id) if case.best_evidence_id is not None else None
    if evidence is not None:
        return f"{settings.public_url.rstrip('/')}{evidence_url(evidence.sha256)}"
    reported = (case.reporter or {}).get("media_url")
    return str(reported) if reported else None


def request_of(case: Case, lookups: _Lookups, settings: Settings) -> ServiceRequest:
    violation = lookups.violations.get(case.violation_code)
    place = lookups.places.get(case.place_id)
    unit = lookups.units.get(case.unit_id) if case.unit_id is not None else None
    hours = lookups.deadlines.get(case.violation_code)
    notice = f"to be handled within {hours:g} working hours of dispatch" if hours is not None else None
    lat = case.lat if case.lat is not None else (place.lat if place else None)
    lon = case.lon if case.lon is not None else (place.lon if place else None)
    return ServiceRequest(
        service_request_id=str(case.id),
        status="closed" if case.status in CLOSED_STATUSES else "open",
        status_notes=_status_notes(case),
        service_name=violation.name if violation else None,
        service_code=case.violation_code,
        description=case.description or None,
        agency_responsible=unit.name if unit else None,
        service_notice=notice,
        requested_datetime=w3c(case.created_at),
        updated_datetime=w3c(case.updated_at),
        expected_datetime=w3c(case.deadline_at),
        address=case.address or (place.name if place and place.name else None),
        address_id=place.key if place else None,
        zipcode=None,
        lat=lat,
        long=lon,
        media_url=_media_url(case, lookups, settings),
    )


def _parse_csv(value: str | None) -> list[str]:
    return [part.strip() for part in (value or "").split(",") if part.strip()]


def _parse_ids(value: str) -> list[int]:
    ids = []
    for part in _parse_csv(value):
        if not part.isdigit() or len(part) > 10:
            raise InvalidInput(f"service_request_id {part!r} is not a request id", field="service_request_id")
        ids.append(int(part))
    return ids


def _parse_statuses(value: str | None) -> set[str]:
    statuses = set(_parse_csv(value))
    unknown = statuses - {"open", "closed"}
    if unknown:
        raise InvalidInput(
            f"status {', '.join(sorted(unknown))} is not a GeoReport status: use open, closed or open,closed",
            field="status",
        )
    return statuses


def _require_reader(actor: Actor) -> None:
    if actor.is_device:
        raise Forbidden("a device key may submit requests but not read them: use an operator token")


def list_requests(
    session: Session,
    actor: Actor,
    settings: Settings,
    *,
    service_request_id: str | None = None,
    service_code: str | None = None,
    status: str | None = None,
    start_date: dt.datetime | None = None,
    end_date: dt.datetime | None = None,
    now: dt.datetime | None = None,
) -> list[ServiceRequest]:
    """The GeoReport query: ``service_request_id`` overrides the other filters; without dates the last
    90 days; at most 1000 requests, newest first. Unit handlers see their own unit's cases only."""
    _require_reader(actor)
    query = select(Case).where(visibility_clause(actor))
    if service_request_id:
        query = query.where(Case.id.in_(_parse_ids(service_request_id)))
    else:
        codes = _parse_csv(service_code)
        if codes:
            query = query.where(Case.violation_code.in_(codes))
        statuses = _parse_statuses(status)
        if statuses == {"open"}:
            query = query.where(Case.status.not_in(CLOSED_STATUSES))
        elif statuses == {"closed"}:
            query = query.where(Case.status.in_(CLOSED_STATUSES))
        if start_date and end_date and start_date > end_date:
            raise InvalidInput("start_date is after end_date", field="start_date")
        if start_date is None and end_date is None:
            start_date = (now or utcnow()) - DEFAULT_WINDOW
        if start_date is not None:
            query = query.where(Case.created_at >= start_date)
        if end_date is not None:
            query = query.where(Case.created_at <= end_date)
    cases = list(session.scalars(query.order_by(Case.created_at.desc(), Case.id.desc()).limit(MAX_RESULTS)))
    lookups = _Lookups(session, cases)
    return [request_of(case, lookups, settings) for case in cases]


def get_request(session: Session, actor: Actor, settings: Settings, request_id: int) -> ServiceRequest:
    _require_reader(actor)
    case = get_visible_case(session, actor, request_id)
    return request_of(case, _Lookups(session, [case]), settings)


# ---------------------------------------------------------------------------------------------------------
# Submitting requests


def _distance_m(lat1: float, lon1: float, lat2: float, lon2: float) -> float:
    """Great-circle distance (haversine) in metres."""
    p1, p2 = math.radians(lat1), math.radians(lat2)
    dp, dl = p2 - p1, math.radians(lon2 - lon1)
    a = math.sin(dp / 2) ** 2 + math.cos(p1) * math.cos(p2) * math.sin(dl / 2) ** 2
    return 2 * 6_371_000.0 * math.asin(min(1.0, math.sqrt(a)))


def nearest_place(
    session: Session, lat: float, lon: float, max_m: float = MAX_PLACE_DISTANCE_M
) -> Place | None:
    """The place with coordinates nearest to (lat, lon), if within ``max_m`` metres."""
    dlat = max_m / 111_000.0
    dlon = dlat / max(math.cos(math.radians(lat)), 0.01)
    candidates = session.scalars(
        select(Place).where(
            Place.lat.is_not(None),
            Place.lon.is_not(None),
            Place.lat.between(lat - dlat, lat + dlat),
            Place.lon.between(lon - dlon, lon + dlon),
        )
    )
    best: tuple[float, Place] | None = None
    for place in candidates:
        assert place.lat is not None and place.lon is not None  # filtered above
        distance = _distance_m(lat, lon, place.lat, place.lon)
        if distance <= max_m and (best is None or distance < best[0]):
            best = (distance, place)
    return best[1] if best else None


def resolve_place(session: Session, form: Submission) -> Place:
    if form.address_id:
        place = session.scalar(select(Place).where(Place.key == form.address_id))
        if place is None:
            raise InvalidInput(f"address_id {form.address_id!r} is not a known place key", field="address_id")
        return place
    if form.lat is None or form.long is None:
        raise InvalidInput(
            "a location is required: lat and long, or address_id (a place key); address_string alone "
            "cannot be placed",
            field="lat",
        )
    place = nearest_place(session, form.lat, form.long)
    if place is None:
        raise InvalidInput(
            f"no known place within {MAX_PLACE_DISTANCE_M:g} m of {form.lat}, {form.long}: send address_id "
            "(a place key) instead",
            field="lat",
        )
    return place


def _require_submitter(actor: Actor) -> None:
    if actor.kind == "user" and actor.role is Role.VIEWER:
        raise Forbidden("viewers are read-only: submitting a request needs another role or a device key")


def _reporter(form: Submission, actor: Actor) -> dict[str, Any]:
    fields = ("email", "first_name", "last_name", "phone", "media_url", "address_string")
    data: dict[str, Any] = {name: getattr(form, name) for name in fields if getattr(form, name)}
    data["submitted_by"] = actor.label
    return data


def _sighting(case_id: int, form: Submission, actor: Actor, now: dt.datetime) -> Sighting:
    return Sighting(
        case_id=case_id,
        idempotency_key=f"open311:{uuid.uuid4().hex}",
        device_id=actor.id if actor.is_device else None,
        boxes=[],
        first_seen_at=now,
        confirmed_at=now,
        received_at=now,
        payload={"source": "open311", "description": form.description, **_reporter(form, actor)},
    )


class _ClosedMeanwhile(Exception):
    """The open case was closed before the sighting was added."""


@dataclass(frozen=True)
class _Request:
    """A submitted request as the :class:`api.open_or_merge.ReportWriter` of :func:`open_or_merge`."""

    session: Session
    form: Submission
    actor: Actor
    place: Place
    violation_code: str
    now: dt.datetime

    def new_case(self) -> Case:
        form, place, now = self.form, self.place, self.now
        return Case(
            status=CaseStatus.PENDING_REVIEW.value,
            violation_code=self.violation_code,
            place_id=place.id,
            source="open311",
            description=form.description or "",
            address=form.address_string,
            lat=form.lat if form.lat is not None else place.lat,
            lon=form.long if form.long is not None else place.lon,
            reporter=_reporter(form, self.actor),
            sighting_count=1,
            first_seen_at=now,
            last_seen_at=now,
            created_at=now,
            updated_at=now,
        )

    def new_sighting(self, case_id: int) -> Sighting:
        return _sighting(case_id, self.form, self.actor, self.now)

    def opened(self, case: Case, sighting: Sighting, recurrence_of: int | None) -> tuple[Case, bool]:
        record_event(
            self.session,
            case,
            self.actor,
            "created",
            to_status=case.status,
            at=self.now,
            data={"source": "open311", "sighting_id": sighting.id, "recurrence_of": recurrence_of},
        )
        return case, True

    def merge(self, case_id: int, slot: str) -> tuple[Case, bool] | None:
        session, now = self.session, self.now
        try:
            with session.begin_nested():
                sighting = _sighting(case_id, self.form, self.actor, now)
                session.add(sighting)
                session.flush()
                result = session.execute(
                    update(Case)
                    .where(Case.id == case_id, Case.open_slot == slot)
                    .values(sighting_count=Case.sighting_count + 1, last_seen_at=now, updated_at=now)
                    .execution_options(synchronize_session=False)
                )
                if not isinstance(result, CursorResult) or result.rowcount != 1:
                    raise _ClosedMeanwhile  # rolls the sighting back with the savepoint
        except _ClosedMeanwhile:
            return None
        case = session.get_one(Case, case_id)
        session.expire(case)
        data = {"source": "open311", "sighting_id": sighting.id}
        record_event(session, case, self.actor, "sighting", at=now, data=data)
        return case, False

    def duplicate(self) -> None:
        return None  # each submission gets a fresh idempotency key: it cannot have been stored before


def submit_request(
    session: Session, actor: Actor, form: Submission, settings: Settings, *, now: dt.datetime | None = None
) -> tuple[Case, bool]:
    """Open a case for the report, or add it to the open case for its place and violation.

    Returns the case and whether it is new.
    """
    _require_submitter(actor)
    now = now or utcnow()
    begin_write(session)
    violation = active_violation(session, form.service_code)
    place = resolve_place(session, form)
    result = open_or_merge(
        session,
        _Request(session, form, actor, place, violation.code, now),
        place_id=place.id,
        violation_code=violation.code,
        seen_at=now,
        settings=settings,
        open_case_id=find_open_case(session, open_slot(place.id, violation.code)),
    )
    if result is None:
        raise Conflict(
            f"the open case for place {place.key!r} and violation {violation.code} kept changing; retry",
            retry=True,
        )
    return result


def created_of(case: Case, new: bool) -> RequestCreated:
    notice = (
        "received; it will be reviewed by the command centre"
        if new
        else f"added to the open request {case.id} for the same place and violation"
    )
    return RequestCreated(service_request_id=str(case.id), service_notice=notice)
