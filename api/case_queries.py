"""Who may see which cases, and the case list and detail queries operators run.

Unit handlers see only their own unit's cases; for them another unit's case does not exist (404, so
that case ids of other units do not leak). Devices read no cases at all.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass
from typing import Any

from sqlalchemy import ColumnElement, Select, func, select, true, tuple_
from sqlalchemy.orm import Session, selectinload

from api.actors import Actor
from api.errors import Forbidden, InvalidInput, NotFound
from api.models import Case, CaseStatus, Place, Role

DEVICES_READ_NO_CASES = "devices may only submit cases and evidence, not read cases"
# Counts stop here: "10,000+" (see capped_count).
COUNT_CAP = 10_000


@dataclass(frozen=True, kw_only=True)
class CaseFilter:
    """The filters of ``GET /api/v1/cases``; ``None`` or empty means "any"."""

    statuses: tuple[CaseStatus, ...] = ()
    violation_codes: tuple[str, ...] = ()
    unit_id: int | None = None
    place_key: str | None = None
    camera: str | None = None
    created_from: dt.datetime | None = None  # inclusive
    created_to: dt.datetime | None = None  # exclusive
    overdue: bool | None = None
    source: str | None = None


def visibility_clause(actor: Actor) -> ColumnElement[bool]:
    """The cases ``actor`` may see, as a WHERE clause. Raises Forbidden for devices."""
    if actor.kind == "system":
        return true()
    if actor.is_device:
        raise Forbidden(DEVICES_READ_NO_CASES)
    if actor.role is Role.UNIT_HANDLER:
        if actor.unit_id is None:  # create_user forbids this; a hand-edited row must not see everything
            raise Forbidden(f"unit handler '{actor.name}' has no unit and so sees no cases")
        return Case.unit_id == actor.unit_id
    return true()


def _utc(name: str, value: dt.datetime | None) -> dt.datetime | None:
    if value is None:
        return None
    try:
        return value.astimezone(dt.UTC)
    except OverflowError:
        raise InvalidInput(f"{name} {value.isoformat()} cannot be expressed in UTC", field=name) from None


def _filtered(actor: Actor, filters: CaseFilter) -> Select[Case]:
    created_from = _utc("created_from", filters.created_from)
    created_to = _utc("created_to", filters.created_to)
    if created_from and created_to and created_from >= created_to:
        raise InvalidInput(
            f"created_from ({created_from.isoformat()}) must be before created_to ({created_to.isoformat()})",
            field="created_from",
        )
    query = select(Case).where(visibility_clause(actor))
    if filters.statuses:
        query = query.where(Case.status.in_([s.value for s in filters.statuses]))
    if filters.violation_codes:
        query = query.where(Case.violation_code.in_(filters.violation_codes))
    if filters.unit_id is not None:
        query = query.where(Case.unit_id == filters.unit_id)
    if filters.place_key is not None:
        query = query.where(
            Case.place_id == select(Place.id).where(Place.key == filters.place_key).scalar_subquery()
        )
    if filters.camera is not None:
        query = query.where(Case.camera_code == filters.camera)
    if created_from is not None:
        query = query.where(Case.created_at >= created_from)
    if created_to is not None:
        query = query.where(Case.created_at < created_to)
    if filters.overdue is not None:
        query = query.where(Case.overdue.is_(filters.overdue))
    if filters.source is not None:
        query = query.where(Case.source == filters.source)
    return query


@dataclass(frozen=True)
class ListCursor:
    """Where the next page of ``GET /api/v1/cases`` starts: the last case shown (created_at, id)."""

    created_at: dt.datetime
    case_id: int

    def encode(self) -> str:
        return f"{self.created_at.astimezone(dt.UTC).strftime('%Y%m%dT%H%M%S.%fZ')}_{self.case_id}"

    @classmethod
    def decode(cls, text: str) -> ListCursor:
        try:
            moment, case_id = text.split("_")
            created_at = dt.datetime.strptime(moment, "%Y%m%dT%H%M%S.%fZ").replace(tzinfo=dt.UTC)
            cursor = cls(created_at, int(case_id))
        except ValueError:
            raise InvalidInput(f"bad page cursor {text[:40]!r}: open the first page", field="after") from None
        if not 1 <= cursor.case_id <= 2**31 - 1:  # an id, not something the database cannot compare
            raise InvalidInput(f"bad page cursor {text[:40]!r}: open the first page", field="after")
        return cursor


@dataclass(frozen=True)
class CaseListPage:
    cases: list[Case]
    count: int  # exact when not capped; else COUNT_CAP
    count_capped: bool  # more than ``count`` cases match
    next_cursor: ListCursor | None  # None on the last page


def list_cases(
    session: Session,
    actor: Actor,
    filters: CaseFilter,
    *,
    limit: int,
    offset: int = 0,
    after: ListCursor | None = None,
) -> CaseListPage:
    """One page of the cases ``actor`` may see, newest first, and how many match (up to COUNT_CAP).

    ``after`` (keyset) starts strictly after a case, an index range on (created_at, id) that costs what
    the first page costs at any depth; ``offset`` skips rows and costs what it skips. The count counts at
    most COUNT_CAP + 1 matches (an exact count(*) of a million cases is a quarter of a second)."""
    if after is not None and offset:
        raise InvalidInput("give either offset or after (a page cursor), not both", field="after")
    query = _filtered(actor, filters)
    count, capped = capped_count(session, query.with_only_columns(Case.id).order_by(None))
    if after is not None:
        query = query.where(tuple_(Case.created_at, Case.id) < (after.created_at, after.case_id))
    newest_first = query.order_by(Case.created_at.desc(), Case.id.desc())
    rows = list(session.scalars(newest_first.limit(limit + 1).offset(offset)))
    page = rows[:limit]
    more = len(rows) > limit
    next_cursor = ListCursor(page[-1].created_at, page[-1].id) if more and page else None
    return CaseListPage(page, count, capped, next_cursor)


def capped_count(session: Session, query: Select[Any], cap: int | None = None) -> tuple[int, bool]:
    """How many rows ``query`` returns, counting no further than ``cap``: (count, whether it stopped).

    An exact count over a million matching cases reads a million index entries on every page (hundreds
    of milliseconds); past ``cap`` the list says "10,000+" instead, which is what a person reads anyway.
    """
    cap = COUNT_CAP if cap is None else cap
    counted = session.scalar(select(func.count()).select_from(query.limit(cap + 1).subquery())) or 0
    return min(counted, cap), counted > cap


def get_visible_case(session: Session, actor: Actor, case_id: int, *, with_details: bool = False) -> Case:
    """The case if ``actor`` may see it; NotFound otherwise (also for other units' cases)."""
    query = select(Case).where(Case.id == case_id, visibility_clause(actor))
    if with_details:
        query = query.options(
            selectinload(Case.sightings), selectinload(Case.evidence), selectinload(Case.events)
        )
    case = session.scalar(query)
    if case is None:
        raise NotFound(f"case {case_id} not found")
    return case


def recurrence_ids(session: Session, case_id: int) -> list[int]:
    """Ids of the later cases that recur ``case_id`` (复发), oldest first."""
    return list(session.scalars(select(Case.id).where(Case.recurrence_of_id == case_id).order_by(Case.id)))
