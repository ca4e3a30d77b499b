"""The overdue job: cases whose deadline passed while a unit had them are marked overdue, escalated to
the unit's parent, audited and notified.

Safe with several workers: each case is claimed by a conditional ``UPDATE ... WHERE overdue = false``
in its own short transaction; a worker whose UPDATE changes no row leaves the case to the one that did.
"""

from __future__ import annotations

import datetime as dt
from typing import Any, cast

from sqlalchemy import CursorResult, select, update
from sqlalchemy.orm import Session, sessionmaker

from api.actors import SYSTEM
from api.audit import record_event
from api.messages import NOTE_KEY, msg
from api.models import CLOCK_STATUSES, Case, Unit, utcnow
from api.notify import enqueue_case_event
from api.settings import Settings

BATCH = 500  # cases per run; the next run picks up the rest


def _due(now: dt.datetime) -> list[Any]:
    return [
        Case.status.in_([s.value for s in CLOCK_STATUSES]),
        Case.overdue.is_(False),
        Case.deadline_at.is_not(None),
        Case.deadline_at < now,
    ]


def check_overdue(sessions: sessionmaker[Session], settings: Settings, now: dt.datetime | None = None) -> int:
    """Mark overdue cases; returns how many this call marked (0 when another worker got there first)."""
    now = now or utcnow()
    with sessions() as session:
        case_ids = session.scalars(
            select(Case.id).where(*_due(now)).order_by(Case.deadline_at).limit(BATCH)
        ).all()
    return sum(_mark_one(sessions, case_id, settings, now) for case_id in case_ids)


def _mark_one(sessions: sessionmaker[Session], case_id: int, settings: Settings, now: dt.datetime) -> int:
    with sessions.begin() as session:
        claimed = cast(
            CursorResult[Any],
            session.execute(
                update(Case).where(Case.id == case_id, *_due(now)).values(overdue=True, updated_at=now),
                execution_options={"synchronize_session": False},
            ),
        )
        if claimed.rowcount != 1:
            return 0
        case = session.get_one(Case, case_id)
        unit = session.get(Unit, case.unit_id) if case.unit_id is not None else None
        parent = unit.parent if unit is not None else None
        case.escalated_to_unit_id = parent.id if parent is not None else None
        deadline = case.deadline_at.isoformat() if case.deadline_at else "?"
        unit_name = unit.code if unit else "no unit"
        escalation = (
            f"escalated to {parent.code}" if parent else f"{unit_name} has no parent unit to escalate to"
        )
        names = {
            "deadline": deadline,
            "unit": unit_name,
            "unit_name": unit.name if unit else unit_name,
        }
        note = (
            msg("overdue.escalated", parent=parent.code, parent_name=parent.name, **names)
            if parent
            else msg("overdue.no_parent", **names)
        )
        record_event(
            session,
            case,
            SYSTEM,
            "overdue",
            from_status=case.status,
            to_status=case.status,
            reason="deadline_passed",
            note=f"deadline {deadline} passed while with {unit_name}; {escalation}",
            data={
                "deadline_at": deadline,
                "unit": unit.code if unit else None,
                "escalated_to": parent.code if parent else None,
                NOTE_KEY: note.as_data(),
            },
            at=now,
        )
        if unit is not None:
            enqueue_case_event(session, case, unit, "overdue", settings)
        if parent is not None:
            enqueue_case_event(session, case, parent, "escalated", settings)
        return 1
