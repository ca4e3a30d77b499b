"""The audit trail: one event per action on a case."""

from __future__ import annotations

import datetime as dt
from typing import Any

from sqlalchemy.orm import Session

from api.actors import Actor
from api.models import AuditEvent, Case, utcnow


def record_event(
    session: Session,
    case: Case,
    actor: Actor,
    action: str,
    *,
    from_status: str | None = None,
    to_status: str | None = None,
    reason: str | None = None,
    note: str | None = None,
    data: dict[str, Any] | None = None,
    at: dt.datetime | None = None,
) -> AuditEvent:
    event = AuditEvent(
        case_id=case.id,
        at=at or utcnow(),
        actor=actor.label,
        action=action,
        from_status=from_status,
        to_status=to_status,
        reason=reason,
        note=note,
        data=data,
    )
    session.add(event)
    return event
