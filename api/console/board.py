"""The unit board's data: a unit's own queue, and for the command centre the units with their overdue cases.

Every list is paged (:data:`LIST_LIMIT` rows) by a keyset cursor on its own order, so a page costs the same
at any depth and reads only its rows' index entries: the cases being handled from the partial index of
those cases in deadline order (``ix_cases_handling_deadline``), the newest-first lists one
(status, created_at, id) index range per status, merged. The names are joined to the page's ids only.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Final

from sqlalchemy import (
    ColumnElement,
    Select,
    String,
    and_,
    case,
    func,
    literal,
    literal_column,
    or_,
    select,
    true,
    tuple_,
    union_all,
)
from sqlalchemy.orm import Session

from api.errors import InvalidInput
from api.models import OPEN_STATUSES, Case, CaseStatus, Evidence, Place, Unit, ViolationType
from api.workflow import HandlingRules

LIST_LIMIT = 25
S = CaseStatus
HANDLING_STATUSES: Final = (S.DISPATCHED.value, S.IN_PROGRESS.value)
# As literals, not bound parameters: the partial index's predicate is proved from them in every plan.
HANDLING: Final = Case.status.in_([literal_column(f"'{status}'") for status in HANDLING_STATUSES])
_MOMENT = "%Y%m%dT%H%M%S.%fZ"


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
    created_at: dt.datetime | None = None

    @property
    def rules(self) -> HandlingRules:
        return HandlingRules(self.photo_required, self.start_required)


@dataclass(frozen=True)
class Cursor:
    """The last row of a page: its sort value (deadline or creation; None for no deadline) and id."""

    value: dt.datetime | None
    case_id: int

    def encode(self) -> str:
        moment = self.value.astimezone(dt.UTC).strftime(_MOMENT) if self.value is not None else "none"
        return f"{moment}_{self.case_id}"

    @classmethod
    def decode(cls, name: str, text: str) -> Cursor:
        try:
            moment, case_id = text.split("_")
            value = None if moment == "none" else dt.datetime.strptime(moment, _MOMENT).replace(tzinfo=dt.UTC)
            cursor = cls(value, int(case_id))
        except ValueError:
            cursor = cls(None, 0)
        if not 1 <= cursor.case_id <= 2**31 - 1:
            raise InvalidInput(
                f"bad page cursor {text[:40]!r} for the list {name!r}: open the board again", field=name
            )
        return cursor


@dataclass(frozen=True)
class BoardList:
    """One page of a board list: its rows, where the next page starts (None on the last) and whether this
    is a later page (``after`` is set)."""

    name: str  # the query parameter that pages it
    rows: list[BoardRow]
    next_cursor: str | None = None
    after: str | None = None

    def __iter__(self) -> Any:
        return iter(self.rows)

    def __len__(self) -> int:
        return len(self.rows)

    def __bool__(self) -> bool:
        return bool(self.rows)


@dataclass(frozen=True)
class ListQuery:
    """One list of the board: the ids of its page (one more than a page: is there a next?) and its order."""

    name: str
    ids: Select[Any]  # SELECT id, ordered and limited
    by_deadline: bool  # earliest deadline first (none last), else newest first
    after: str | None


_COLUMNS: Final = (
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
    Case.created_at,
)


def _row(r: Any) -> BoardRow:
    return BoardRow(
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
        created_at=r[13],
    )


def _deadline_key(row: BoardRow) -> tuple[bool, dt.datetime, int]:
    return (row.deadline_at is None, row.deadline_at or dt.datetime.min.replace(tzinfo=dt.UTC), row.id)


def _newest_key(row: BoardRow) -> tuple[dt.datetime, int]:
    return (row.created_at or dt.datetime.min.replace(tzinfo=dt.UTC), row.id)


def lists(session: Session, queries: Sequence[ListQuery], limit: int | None = None) -> dict[str, BoardList]:
    """The pages of several lists in one statement: each list picks its page's ids on the cases table
    alone (an index range), the ids are tagged with their list and joined to the names once (deferred
    join). One round trip instead of one per list: on a busy database host each costs more than its plan."""
    limit = LIST_LIMIT if limit is None else limit
    parts = [
        select(literal(q.name, String).label("list"), page.c.id)
        for q in queries
        for page in [q.ids.subquery()]
    ]
    tagged = union_all(*parts).subquery() if len(parts) > 1 else parts[0].subquery()
    query = (
        select(tagged.c.list, *_COLUMNS)
        .join(tagged, tagged.c.id == Case.id)
        .join(Place, Place.id == Case.place_id)
        .outerjoin(ViolationType, ViolationType.code == Case.violation_code)
        .outerjoin(Unit, Unit.id == Case.unit_id)
        .outerjoin(Evidence, Evidence.id == Case.best_evidence_id)
    )
    found: dict[str, list[BoardRow]] = {q.name: [] for q in queries}
    for r in session.execute(query):
        found[r[0]].append(_row(r[1:]))
    pages = {}
    for q in queries:
        rows = found[q.name]
        if q.by_deadline:
            rows.sort(key=_deadline_key)
        else:
            rows.sort(key=_newest_key, reverse=True)
        pages[q.name] = _page(q.name, rows, q.after, limit, "deadline_at" if q.by_deadline else "created_at")
    return pages


def _page(name: str, rows: list[BoardRow], after: str | None, limit: int, key: str) -> BoardList:
    """``rows`` holds one row more than a page when there is a next page."""
    shown = rows[:limit]
    more = len(rows) > limit and shown
    value = getattr(shown[-1], key) if more else None
    return BoardList(name, shown, Cursor(value, shown[-1].id).encode() if more else None, after)


def deadline_list(
    name: str, where: ColumnElement[bool], after: str | None = None, limit: int | None = None
) -> ListQuery:
    """Cases being handled matching ``where``, earliest deadline first (none last), then by id: a range
    of the partial index ``ix_cases_handling_deadline`` in its own order."""
    limit = LIST_LIMIT if limit is None else limit
    ids = select(Case.id).where(HANDLING, where)
    if after is not None:
        cursor = Cursor.decode(name, after)
        if cursor.value is None:
            ids = ids.where(Case.deadline_at.is_(None), Case.id > cursor.case_id)
        else:
            ids = ids.where(
                or_(
                    tuple_(Case.deadline_at, Case.id) > (cursor.value, cursor.case_id),
                    Case.deadline_at.is_(None),
                )
            )
    ordered = ids.order_by(Case.deadline_at.asc().nulls_last(), Case.id.asc()).limit(limit + 1)
    return ListQuery(name, ordered, True, after)


def newest_list(
    name: str,
    statuses: Sequence[str],
    where: ColumnElement[bool] | None = None,
    after: str | None = None,
    limit: int | None = None,
) -> ListQuery:
    """Cases in any of ``statuses`` (and ``where``), newest first: one (status, created_at, id) index
    range per status, each cut to the page, then merged (with one IN over the statuses, PostgreSQL read
    the whole creation-time index backwards, filtering)."""
    limit = LIST_LIMIT if limit is None else limit
    cursor = Cursor.decode(name, after) if after is not None else None
    parts = []
    for status in statuses:
        part = select(Case.id, Case.created_at).where(
            Case.status == status, true() if where is None else where
        )
        if cursor is not None and cursor.value is not None:
            part = part.where(tuple_(Case.created_at, Case.id) < (cursor.value, cursor.case_id))
        parts.append(
            select(part.order_by(Case.created_at.desc(), Case.id.desc()).limit(limit + 1).subquery())
        )
    merged = union_all(*parts).subquery()
    ids = select(merged.c.id).order_by(merged.c.created_at.desc(), merged.c.id.desc()).limit(limit + 1)
    return ListQuery(name, ids, False, after)


def by_deadline(
    session: Session, name: str, where: ColumnElement[bool], after: str | None = None
) -> BoardList:
    return lists(session, [deadline_list(name, where, after)])[name]


def newest_first(
    session: Session,
    name: str,
    statuses: Sequence[str],
    where: ColumnElement[bool] | None = None,
    after: str | None = None,
) -> BoardList:
    return lists(session, [newest_list(name, statuses, where, after)])[name]


DUE_SOON = dt.timedelta(hours=2)  # "due soon": the deadline is this close (wall-clock time)
SECTIONS: Final = ("overdue", "due_soon", "in_progress")


def section_clauses(now: dt.datetime) -> dict[str, ColumnElement[bool]]:
    """Overdue (flagged, or the deadline passed since the last overdue sweep), due within
    :data:`DUE_SOON`, and the rest: the three sections of the cases being handled."""
    soon = now + DUE_SOON
    return {
        "overdue": or_(Case.overdue.is_(True), Case.deadline_at <= now),
        "due_soon": and_(Case.overdue.is_(False), Case.deadline_at > now, Case.deadline_at <= soon),
        "in_progress": and_(
            Case.overdue.is_(False), or_(Case.deadline_at > soon, Case.deadline_at.is_(None))
        ),
    }


@dataclass(frozen=True)
class Sections:
    """Cases being handled, split the way a command centre reads them; each a page of its own, and how
    many cases each section holds in all."""

    overdue: BoardList
    due_soon: BoardList
    in_progress: BoardList
    counts: Mapping[str, int]

    @property
    def total(self) -> int:
        return sum(self.counts.values())


def section_counts(session: Session, where: ColumnElement[bool], now: dt.datetime) -> dict[str, int]:
    """How many cases being handled (and ``where``) each section holds: one pass over the partial index."""
    clauses = section_clauses(now)
    row = session.execute(
        select(*(func.count(case((clauses[name], 1))) for name in SECTIONS)).where(HANDLING, where)
    ).one()
    return {name: int(count or 0) for name, count in zip(SECTIONS, row, strict=True)}


def sections(
    session: Session,
    where: ColumnElement[bool],
    now: dt.datetime,
    cursors: Mapping[str, str | None],
    also: Sequence[ListQuery] = (),
) -> tuple[Sections, dict[str, BoardList]]:
    """The three sections of the cases being handled (and ``where``), and the lists ``also`` asks for,
    read in one statement; plus the sections' sizes."""
    clauses = section_clauses(now)
    queries = [deadline_list(name, and_(where, clauses[name]), cursors.get(name)) for name in SECTIONS]
    pages = lists(session, [*queries, *also])
    split = Sections(
        pages["overdue"], pages["due_soon"], pages["in_progress"], section_counts(session, where, now)
    )
    return split, {q.name: pages[q.name] for q in also}


def unit_queue(
    session: Session, unit_id: int, now: dt.datetime, cursors: Mapping[str, str | None]
) -> tuple[Sections, BoardList]:
    """A unit's cases to work on (dispatched, in progress) in sections, and those it reported done."""
    mine = Case.unit_id == unit_id
    done = newest_list("resolved", [S.RESOLVED.value], mine, cursors.get("resolved"))
    split, also = sections(session, mine, now, cursors, [done])
    return split, also["resolved"]


@dataclass(frozen=True)
class UnitLoad:
    unit_id: int | None
    name: str | None
    open: int  # dispatched or in progress
    overdue: int
    resolved: int


def unit_loads(session: Session) -> list[UnitLoad]:
    """Per unit with open cases: how many are being handled, overdue, and waiting for verification.

    Counted per (status, unit), the order of ``ix_cases_board``, and added up here: half the time of one
    aggregate with a CASE per tally per row (34,000 open cases with a unit at a million)."""
    grouped = (
        select(
            Case.status,
            Case.unit_id,
            func.count().label("n"),
            func.count().filter(Case.overdue.is_(True)).label("overdue"),
        )
        .where(Case.unit_id.is_not(None), Case.status.in_([s.value for s in OPEN_STATUSES]))
        .group_by(Case.status, Case.unit_id)
        .subquery()
    )
    query = select(grouped.c.status, grouped.c.unit_id, grouped.c.n, grouped.c.overdue, Unit.name).outerjoin(
        Unit, Unit.id == grouped.c.unit_id
    )
    tallies: dict[int | None, list[int]] = {}
    names: dict[int | None, str] = {}
    for status, unit_id, count, overdue, name in session.execute(query):
        names[unit_id] = name
        tally = tallies.setdefault(unit_id, [0, 0, 0])
        if status in HANDLING_STATUSES:
            tally[0] += count
            tally[1] += overdue
        elif status == S.RESOLVED.value:
            tally[2] += count
    loads = [UnitLoad(unit_id, names.get(unit_id), *tally) for unit_id, tally in tallies.items()]
    return sorted(loads, key=lambda load: (-load.overdue, -load.open, load.name or ""))


TO_DISPATCH: Final = (S.FILED.value, S.RETURNED.value, S.DEFERRED.value)
TO_VERIFY: Final = (S.RESOLVED.value, S.VERIFIED.value)


def overview(
    session: Session, now: dt.datetime, cursors: Mapping[str, str | None]
) -> tuple[Sections, BoardList, BoardList]:
    """The command centre's lists: every unit's cases being handled in sections, overdue ones first; the
    cases to dispatch and those to verify or close, newest first."""
    split, also = sections(
        session,
        true(),
        now,
        cursors,
        [
            newest_list("to_dispatch", TO_DISPATCH, after=cursors.get("to_dispatch")),
            newest_list("to_verify", TO_VERIFY, after=cursors.get("to_verify")),
        ],
    )
    return split, also["to_dispatch"], also["to_verify"]


def to_dispatch(session: Session, after: str | None = None) -> BoardList:
    return newest_first(session, "to_dispatch", TO_DISPATCH, after=after)


def to_verify(session: Session, after: str | None = None) -> BoardList:
    return newest_first(session, "to_verify", TO_VERIFY, after=after)
