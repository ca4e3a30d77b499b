"""The unit board's data: a unit's own queue, and for the command centre the units with their overdue cases.

Each list is one query with the names it shows joined in, capped at :data:`LIST_LIMIT` rows.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass

from sqlalchemy import ColumnElement, and_, case, func, select
from sqlalchemy.orm import Session, aliased

from api.models import OPEN_STATUSES, Case, CaseStatus, Evidence, Place, Unit, ViolationType
from api.workflow import HandlingRules

LIST_LIMIT = 100
S = CaseStatus


@dataclass(frozen=True)
class BoardRow:
    id: int
    status: str
    violation_name: str
    violation_name_en: str
    place_name: str
    unit_name: str | None
    deadline_at: dt.datetime | None
    overdue: bool
    evidence_sha256: str | None
    photo_required: bool = False  # the violation type's handling rules (api.workflow.HandlingRules)
    start_required: bool = False

    @property
    def rules(self) -> HandlingRules:
        return HandlingRules(self.photo_required, self.start_required)


def board_rows(session: Session, where: ColumnElement[bool], *, by_deadline: bool = True) -> list[BoardRow]:
    """Cases matching ``where``: overdue first, then earliest deadline (none last); else newest first."""
    # Overdue first as an expression, not the bare column: ordered by ``overdue`` itself, PostgreSQL walks
    # the boolean index ix_cases_overdue over all million cases to get that order for free and filters out
    # 98% of them (0.6 s); with the expression it reads the few handling cases by status and sorts them.
    order = (
        (case((Case.overdue.is_(True), 0), else_=1), Case.deadline_at.is_(None), Case.deadline_at, Case.id)
        if by_deadline
        else (Case.created_at.desc(), Case.id.desc())
    )
    # Deferred join: pick the page's ids on the cases table alone, then join the names to those rows only.
    page_ids = select(Case.id).where(where).order_by(*order).limit(LIST_LIMIT).subquery()
    query = (
        select(
            Case.id,
            Case.status,
            ViolationType.name,
            ViolationType.name_en,
            Case.violation_code,
            Place.name,
            Place.key,
            Unit.name,
            Case.deadline_at,
            Case.overdue,
            Evidence.sha256,
            ViolationType.photo_required_to_resolve,
            ViolationType.start_required_before_resolve,
        )
        .join(page_ids, page_ids.c.id == Case.id)
        .join(Place, Place.id == Case.place_id)
        .outerjoin(ViolationType, ViolationType.code == Case.violation_code)
        .outerjoin(Unit, Unit.id == Case.unit_id)
        .outerjoin(Evidence, Evidence.id == Case.best_evidence_id)
        .order_by(*order)
    )
    return [
        BoardRow(
            id=r[0],
            status=r[1],
            violation_name=r[2] or r[4],
            violation_name_en=r[3] or r[2] or r[4],
            place_name=r[5] or r[6],
            unit_name=r[7],
            deadline_at=r[8],
            overdue=bool(r[9]),
            evidence_sha256=r[10],
            photo_required=bool(r[11]),
            start_required=bool(r[12]),
        )
        for r in session.execute(query)
    ]


def unit_queue(session: Session, unit_id: int) -> tuple[list[BoardRow], list[BoardRow]]:
    """A unit's cases to work on (dispatched, in progress) and those it reported done (resolved)."""
    mine = Case.unit_id == unit_id
    todo = board_rows(session, and_(mine, Case.status.in_([S.DISPATCHED.value, S.IN_PROGRESS.value])))
    done = board_rows(session, and_(mine, Case.status == S.RESOLVED.value))
    return todo, done


@dataclass(frozen=True)
class UnitLoad:
    unit_id: int | None
    name: str | None
    open: int  # dispatched or in progress
    overdue: int
    resolved: int


def unit_loads(session: Session) -> list[UnitLoad]:
    """Per unit with open cases: how many are being handled, overdue, and waiting for verification."""
    handling = Case.status.in_([S.DISPATCHED.value, S.IN_PROGRESS.value])
    unit = aliased(Unit)
    query = (
        select(
            Case.unit_id,
            unit.name,
            func.sum(case((handling, 1), else_=0)),
            func.sum(case((and_(handling, Case.overdue.is_(True)), 1), else_=0)),
            func.sum(case((Case.status == S.RESOLVED.value, 1), else_=0)),
        )
        .outerjoin(unit, unit.id == Case.unit_id)
        .where(Case.unit_id.is_not(None), Case.status.in_([s.value for s in OPEN_STATUSES]))
        .group_by(Case.unit_id, unit.name)
    )
    loads = [
        UnitLoad(r[0], r[1], int(r[2] or 0), int(r[3] or 0), int(r[4] or 0)) for r in session.execute(query)
    ]
    return sorted(loads, key=lambda load: (-load.overdue, -load.open, load.name or ""))


def handling_cases(session: Session) -> list[BoardRow]:
    """Every unit's cases being handled, overdue ones first."""
    return board_rows(session, Case.status.in_([S.DISPATCHED.value, S.IN_PROGRESS.value]))


DUE_SOON = dt.timedelta(hours=2)  # "due soon": the deadline is this close (wall-clock time)


@dataclass(frozen=True)
class Sections:
    """Cases being handled, split the way a command centre reads them."""

    overdue: list[BoardRow]
    due_soon: list[BoardRow]
    in_progress: list[BoardRow]


def sections(rows: list[BoardRow], now: dt.datetime) -> Sections:
    """Overdue (flagged, or the deadline passed since the last overdue sweep), due within
    :data:`DUE_SOON`, and the rest; each keeps the rows' order (earliest deadline first)."""
    overdue, soon, rest = [], [], []
    for row in rows:
        if row.overdue or (row.deadline_at is not None and row.deadline_at <= now):
            overdue.append(row)
        elif row.deadline_at is not None and row.deadline_at <= now + DUE_SOON:
            soon.append(row)
        else:
            rest.append(row)
    return Sections(overdue, soon, rest)


def to_dispatch(session: Session) -> list[BoardRow]:
    return board_rows(
        session, Case.status.in_([S.FILED.value, S.RETURNED.value, S.DEFERRED.value]), by_deadline=False
    )


def to_verify(session: Session) -> list[BoardRow]:
    return board_rows(session, Case.status.in_([S.RESOLVED.value, S.VERIFIED.value]), by_deadline=False)
