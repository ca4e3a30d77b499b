"""An incident's later sightings and its end (:class:`contract.IncidentUpdate`) move its case, exactly once.

The incident is the sighting row its report created (``sightings.idempotency_key`` = the incident key);
each update's own key is unique in ``incident_updates``, so a retried update changes nothing. Counts and
times only move forward: the sighting keeps the highest count and the latest time seen, the case adds
the count's growth and keeps the latest time seen. ``ended_at`` on the case says "gone at": set by an end
that is the latest thing seen on the case, cleared by any later sighting or report.
"""

from __future__ import annotations

import datetime as dt
from typing import cast as typing_cast

from sqlalchemy import Float, Table, Update, bindparam, cast, or_, select, update
from sqlalchemy import case as sql_case
from sqlalchemy.dialects.postgresql import insert as postgresql_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert
from sqlalchemy.orm import Session

from api.actors import Actor
from api.audit import record_event
from api.errors import Forbidden, NotFound
from api.ingest import begin_write
from api.models import Case, IncidentUpdateRecord, Sighting, UTCDateTime, utcnow
from contract.reports import IncidentUpdate, UpdateResult

_UPDATES = typing_cast(Table, IncidentUpdateRecord.__table__)
_INSERT_UPDATE = (
    sqlite_insert(_UPDATES).on_conflict_do_nothing().returning(_UPDATES.c.id),
    postgresql_insert(_UPDATES).on_conflict_do_nothing().returning(_UPDATES.c.id),
)


def apply_incident_update(
    session: Session, update_in: IncidentUpdate, device: Actor, *, now: dt.datetime | None = None
) -> UpdateResult:
    """Record ``update_in`` from ``device`` and move the incident's case; a repeated key changes nothing.

    404 when the incident is not one this device reported (its report must be delivered first)."""
    if not device.is_device or device.id is None:
        raise Forbidden("only devices send incident updates (X-Device-Key)")
    now = now or utcnow()
    begin_write(session)
    sighting = session.scalar(
        select(Sighting)
        .where(Sighting.idempotency_key == update_in.incident_key, Sighting.device_id == device.id)
        .with_for_update()
    )
    if sighting is None:
        raise NotFound(
            f"incident {update_in.incident_key} was not reported by device '{device.name}': "
            "its case report must be delivered first"
        )
    inserted = session.connection().scalar(
        _INSERT_UPDATE[session.get_bind().dialect.name == "postgresql"],
        {
            "idempotency_key": update_in.idempotency_key,
            "sighting_id": sighting.id,
            "kind": update_in.kind,
            "at": update_in.at,
            "sighting_count": update_in.sighting_count,
            "received_at": now,
        },
    )
    case = session.get_one(Case, sighting.case_id)
    if inserted is None:  # this key was received before
        return _result(case, duplicate=True)
    growth = max(update_in.sighting_count - sighting.sighting_count, 0)
    sighting.sighting_count = max(sighting.sighting_count, update_in.sighting_count)
    sighting.last_seen_at = _latest(sighting.last_seen_at, update_in.at)
    if update_in.kind == "ended":
        sighting.ended_at = _latest(sighting.ended_at, update_in.at)
    session.flush()
    row = session.connection().execute(
        _CASE_UPDATE[update_in.kind],
        {
            "case_id": case.id,
            "growth": growth,
            "at": update_in.at,
            "confidence": update_in.confidence,
            "now": now,
        },
    )
    assert row.rowcount == 1  # the case row exists: the sighting points at it
    session.refresh(case)
    record_event(
        session,
        case,
        device,
        "still_there" if update_in.kind == "sighting" else "gone",
        at=now,
        data={
            "incident": update_in.incident_key,
            "seen_at": update_in.at.isoformat(),
            "sighting_count": update_in.sighting_count,
            "camera": sighting.camera_code,
        },
    )
    return _result(case, duplicate=False)


def _case_update(kind: str) -> Update:
    at = bindparam("at", type_=UTCDateTime())
    confidence = cast(bindparam("confidence"), Float())  # typed: PostgreSQL cannot infer a NULL
    later = or_(Case.last_seen_at.is_(None), Case.last_seen_at < at)
    if kind == "ended":  # gone, if nothing was seen on the case after this incident's last sight
        ended = sql_case((or_(Case.last_seen_at.is_(None), Case.last_seen_at <= at), at), else_=Case.ended_at)
    else:  # seen again after an end: it is back
        ended = sql_case((Case.ended_at < at, None), else_=Case.ended_at)
    return (
        update(Case)
        .where(Case.id == bindparam("case_id"))
        .values(
            sighting_count=Case.sighting_count + bindparam("growth"),
            last_seen_at=sql_case((later, at), else_=Case.last_seen_at),
            ended_at=ended,
            confidence=sql_case(
                (
                    confidence.is_not(None) & or_(Case.confidence.is_(None), Case.confidence < confidence),
                    confidence,
                ),
                else_=Case.confidence,
            ),
            updated_at=bindparam("now", type_=UTCDateTime()),
        )
        .execution_options(synchronize_session=False)
    )


_CASE_UPDATE = {kind: _case_update(kind) for kind in ("sighting", "ended")}


def _latest(current: dt.datetime | None, at: dt.datetime) -> dt.datetime:
    return at if current is None or current < at else current


def _result(case: Case, *, duplicate: bool) -> UpdateResult:
    return UpdateResult(
        case_id=case.id,
        duplicate=duplicate,
        sighting_count=case.sighting_count,
        last_seen_at=case.last_seen_at,
        ended_at=case.ended_at,
    )
