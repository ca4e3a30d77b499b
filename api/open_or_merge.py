"""One open case per place and violation: a report either merges into it or opens a new case.

Device reports (:mod:`api.ingest`) and Open311 requests (:mod:`api.open311`) decide the same way, here;
what they store differs and comes from a :class:`ReportWriter`. The guarantee rests on the unique
``cases.open_slot`` (``"<place_id>|<violation_code>"`` while the case is open), never on check-then-insert:
a new case is inserted in a SAVEPOINT, and when a concurrent report opened the slot first, the report is
merged into that case instead. A case closed within the recurrence window before the report was seen is
linked from the new case (``recurrence_of``).
"""

from __future__ import annotations

import datetime as dt
from typing import Protocol, TypeVar

from sqlalchemy import bindparam, select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from api.models import Case, CaseStatus, Sighting
from api.settings import Settings

MAX_ATTEMPTS = 4  # open-or-merge rounds; each lost race is followed by a merge, so 2 suffice in practice

Result_co = TypeVar("Result_co", covariant=True)


def open_slot(place_id: int, violation_code: str) -> str:
    """The value of ``Case.open_slot`` while a case for this place and violation is open."""
    return f"{place_id}|{violation_code}"


# Built once and run on the session's connection (Core): this read is on the device ingest hot path.
_OPEN_CASE = select(Case.id).where(Case.open_slot == bindparam("slot"))


def find_open_case(session: Session, slot: str) -> int | None:
    """The id of the open case holding ``slot``, if any."""
    case_id: int | None = session.connection().scalar(_OPEN_CASE, {"slot": slot})
    return case_id


class ReportWriter(Protocol[Result_co]):
    """What one kind of report stores; ``open_or_merge`` decides which of these runs."""

    def new_case(self) -> Case:
        """The case this report opens, not yet added (``open_slot`` and ``recurrence_of_id`` are set by
        :func:`open_or_merge`)."""
        ...

    def new_sighting(self, case_id: int) -> Sighting:
        """The report as the first sighting of the new case ``case_id``."""
        ...

    def opened(self, case: Case, sighting: Sighting, recurrence_of: int | None) -> Result_co:
        """After the new case and its sighting are stored: audit, follow-up actions, the result."""
        ...

    def merge(self, case_id: int, slot: str) -> Result_co | None:
        """The report as a sighting of the open case ``case_id``; ``None`` if that case was closed
        meanwhile and nothing was stored (the next round looks for the open case again)."""
        ...

    def duplicate(self) -> Result_co | None:
        """After losing the race to insert: the result if this very report was stored meanwhile."""
        ...


def open_or_merge(
    session: Session,
    writer: ReportWriter[Result_co],
    *,
    place_id: int,
    violation_code: str,
    seen_at: dt.datetime,
    settings: Settings,
    open_case_id: int | None,
    attempts: int = MAX_ATTEMPTS,
) -> Result_co | None:
    """Merge the report into the open case of its place and violation, or open one; ``None`` if the slot
    kept changing for ``attempts`` rounds.

    ``open_case_id`` is the open case as the caller read it (:func:`find_open_case`, or a query of its
    own that reads it along with other facts); later rounds read it again.
    """
    slot = open_slot(place_id, violation_code)
    case_id = open_case_id
    for attempt in range(attempts):
        if attempt:
            case_id = find_open_case(session, slot)
        if case_id is not None:
            result = writer.merge(case_id, slot)
        else:
            result = _open_case(session, writer, slot, place_id, violation_code, seen_at, settings)
        if result is not None:
            return result
    return None


def _open_case(
    session: Session,
    writer: ReportWriter[Result_co],
    slot: str,
    place_id: int,
    violation_code: str,
    seen_at: dt.datetime,
    settings: Settings,
) -> Result_co | None:
    """Open a case in a SAVEPOINT; ``None`` if a concurrent report opened the slot first (merge into it)."""
    recurrence = recurrence_of(session, place_id, violation_code, seen_at, settings)
    case = writer.new_case()
    case.open_slot = slot
    case.recurrence_of_id = recurrence
    try:
        with session.begin_nested():
            session.add(case)
            session.flush()
            sighting = writer.new_sighting(case.id)
            session.add(sighting)
            session.flush()
    except IntegrityError:
        known = writer.duplicate()
        if known is not None:
            return known
        if find_open_case(session, slot) is not None:
            return None
        raise
    return writer.opened(case, sighting, recurrence)


def recurrence_of(
    session: Session, place_id: int, violation_code: str, seen_at: dt.datetime, settings: Settings
) -> int | None:
    """The last case for this place and violation closed within the recurrence window before ``seen_at``."""
    if settings.recurrence_window_hours <= 0:
        return None
    since = seen_at - dt.timedelta(hours=settings.recurrence_window_hours)
    return session.scalar(
        select(Case.id)
        .where(
            Case.place_id == place_id,
            Case.violation_code == violation_code,
            Case.status == CaseStatus.CLOSED.value,
            Case.closed_at >= since,
        )
        .order_by(Case.closed_at.desc(), Case.id.desc())
        .limit(1)
    )
