"""Case search: one filter model and one query builder for the case list API, the console list, the CSV
export and the map.

Pages are keyset-paginated on (sort column, id): the cursor names the last row shown, and the next page
starts strictly after it, so page 200 costs what page 1 costs and a case created while someone pages never
makes a row repeat or vanish (OFFSET would do both). Sort columns that may be NULL (deadline, first seen)
put NULLs last in both directions; the cursor carries NULL as well.
"""

from __future__ import annotations

import base64
import binascii
import datetime as dt
import json
from dataclasses import dataclass
from typing import Any, Final, Literal

from pydantic import AwareDatetime, BaseModel, ConfigDict, Field, field_validator, model_validator
from sqlalchemy import ColumnElement, Select, func, or_, select, tuple_, union
from sqlalchemy.orm import InstrumentedAttribute, Session, aliased

from api.actors import Actor
from api.case_queries import capped_count, visibility_clause
from api.errors import InvalidInput
from api.models import AuditEvent, Case, CaseStatus, Place, Unit, ViolationType

SortKey = Literal["created", "updated", "deadline", "first_seen"]
SortDirection = Literal["desc", "asc"]
Source = Literal["camera", "open311", "operator"]

SORT_COLUMNS: Final[dict[str, InstrumentedAttribute[Any]]] = {
    "created": Case.created_at,
    "updated": Case.updated_at,
    "deadline": Case.deadline_at,
    "first_seen": Case.first_seen_at,
}
MAX_TEXT = 100


class CaseSearch(BaseModel):
    """What to look for; empty or ``None`` means "any". Times are aware; ``*_to`` bounds are exclusive."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    status: tuple[CaseStatus, ...] = ()
    violation: tuple[str, ...] = Field((), description="Event codes, e.g. 0505.")
    unit: int | None = Field(None, ge=1, le=2**31 - 1, description="Assigned unit id.")
    place: str | None = Field(None, max_length=64, description="Place responsibility key.")
    camera: str | None = Field(None, max_length=64, description="Camera code.")
    created_from: AwareDatetime | None = None
    created_to: AwareDatetime | None = None
    first_seen_from: AwareDatetime | None = None
    first_seen_to: AwareDatetime | None = None
    overdue: bool | None = None
    recurrence: bool | None = Field(None, description="True: only recurrences (复发) of a closed case.")
    min_place_cases: int | None = Field(
        None, ge=2, le=10_000, description="Only places with at least this many cases of the same type."
    )
    source: Source | None = None
    q: str | None = Field(
        None, max_length=MAX_TEXT, description="Free text: place name or key, case notes, case number (#12)."
    )
    sort: SortKey = "created"
    direction: SortDirection = "desc"

    @field_validator("q", "place", "camera")
    @classmethod
    def _blank_is_none(cls, value: str | None) -> str | None:
        return value.strip() or None if value is not None else None

    @model_validator(mode="after")
    def _ranges(self) -> CaseSearch:
        for name in ("created", "first_seen"):
            start, end = getattr(self, f"{name}_from"), getattr(self, f"{name}_to")
            if start is not None and end is not None and start >= end:
                raise ValueError(
                    f"{name}_from ({start.isoformat()}) must be before {name}_to ({end.isoformat()})"
                )
        return self


@dataclass(frozen=True)
class SearchCursor:
    """The last row of a page: its sort value (None for a NULL) and its id, and the order it was in."""

    sort: str
    direction: str
    value: dt.datetime | None
    case_id: int

    def encode(self) -> str:
        moment = self.value.astimezone(dt.UTC).isoformat() if self.value else None
        raw = json.dumps([self.sort, self.direction, moment, self.case_id], separators=(",", ":"))
        return base64.urlsafe_b64encode(raw.encode()).decode().rstrip("=")

    @classmethod
    def decode(cls, text: str, search: CaseSearch) -> SearchCursor:
        try:
            raw = base64.urlsafe_b64decode(text + "=" * (-len(text) % 4)).decode()
            sort, direction, moment, case_id = json.loads(raw)
            value = dt.datetime.fromisoformat(moment) if moment is not None else None
            if value is not None and value.tzinfo is None:
                raise ValueError("naive time")
            cursor = cls(str(sort), str(direction), value, int(case_id))
        except (ValueError, TypeError, binascii.Error, UnicodeDecodeError):
            raise InvalidInput(f"bad page cursor {text[:40]!r}: open the first page", field="after") from None
        if (cursor.sort, cursor.direction) != (search.sort, search.direction):
            raise InvalidInput(
                f"the page cursor is for sort {cursor.sort} {cursor.direction}, not {search.sort} "
                f"{search.direction}: open the first page",
                field="after",
            )
        return cursor


def _case_number(text: str) -> int | None:
    digits = text.removeprefix("#").strip()
    return int(digits) if digits.isdigit() and len(digits) <= 9 else None


def _text_clause(session: Session, text: str) -> ColumnElement[bool]:
    """Place name or key, the case's description and address, any note in its timeline, or its number.

    Built so that each part is one index lookup (pg_trgm GIN indexes on PostgreSQL, migration 0012): the
    places are few and resolved first into a list of ids (the cases' place index then finds their cases,
    and the planner sees how many); the texts on cases and notes are a UNION of ids. One OR over
    ``ILIKE`` on every row, as before, read all cases on every search.
    """
    escaped = text.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")
    pattern = f"%{escaped}%"
    place_ids = list(
        session.scalars(
            select(Place.id).where(
                or_(Place.name.ilike(pattern, escape="\\"), Place.key.ilike(pattern, escape="\\"))
            )
        )
    )
    texts: list[Select[Any]] = [
        # The partial index holds non-empty descriptions only: say so for the planner to use it.
        select(Case.id).where(Case.description != "", Case.description.ilike(pattern, escape="\\")),
        select(Case.id).where(Case.address.ilike(pattern, escape="\\")),
        select(AuditEvent.case_id).where(AuditEvent.note.ilike(pattern, escape="\\")),
    ]
    number = _case_number(text)
    if number is not None:
        texts.append(select(Case.id).where(Case.id == number))
    matched = Case.id.in_(union(*texts).scalar_subquery())
    return or_(Case.place_id.in_(place_ids), matched) if place_ids else matched


def _recurring_places(minimum: int) -> ColumnElement[bool]:
    """Cases whose place has ``minimum`` or more cases of the same violation (a place seen again)."""
    other = aliased(Case)
    count = (
        select(func.count())
        .where(other.place_id == Case.place_id, other.violation_code == Case.violation_code)
        .scalar_subquery()
    )
    return count >= minimum


def search_clauses(session: Session, search: CaseSearch) -> list[ColumnElement[bool]]:
    """The WHERE clauses of ``search`` (visibility not included); free text reads the places first."""
    clauses: list[ColumnElement[bool]] = []
    if search.status:
        clauses.append(Case.status.in_([s.value for s in search.status]))
    if search.violation:
        clauses.append(Case.violation_code.in_(search.violation))
    if search.unit is not None:
        clauses.append(Case.unit_id == search.unit)
    if search.place is not None:
        clauses.append(Case.place_id == select(Place.id).where(Place.key == search.place).scalar_subquery())
    if search.camera is not None:
        clauses.append(Case.camera_code == search.camera)
    for column, start, end in (
        (Case.created_at, search.created_from, search.created_to),
        (Case.first_seen_at, search.first_seen_from, search.first_seen_to),
    ):
        if start is not None:
            clauses.append(column >= start.astimezone(dt.UTC))
        if end is not None:
            clauses.append(column < end.astimezone(dt.UTC))
    if search.overdue is not None:
        clauses.append(Case.overdue.is_(search.overdue))
    if search.recurrence is not None:
        recurrent = Case.recurrence_of_id.is_not(None)
        clauses.append(recurrent if search.recurrence else Case.recurrence_of_id.is_(None))
    if search.min_place_cases is not None:
        clauses.append(_recurring_places(search.min_place_cases))
    if search.source is not None:
        clauses.append(Case.source == search.source)
    if search.q:
        clauses.append(_text_clause(session, search.q))
    return clauses


def matching_ids(session: Session, actor: Actor, search: CaseSearch) -> Select[Any]:
    """``SELECT cases.id`` of the cases ``actor`` may see that match ``search``, unordered."""
    return select(Case.id).where(visibility_clause(actor), *search_clauses(session, search))


# Sort columns that may be NULL: their NULLs come last, after the dated rows, in both directions.
NULLABLE_SORTS: Final = frozenset({"deadline", "first_seen"})


def _order(search: CaseSearch) -> list[ColumnElement[Any]]:
    """(sort column, id) in the search's direction, without NULLS FIRST/LAST: exactly what a forward or
    backward scan of the (column, id) index yields, so PostgreSQL reads a page off the index instead of
    sorting every match (a backward scan yields ``DESC NULLS FIRST``; ``NULLS LAST`` forced a sort, even
    on a NOT NULL column)."""
    column = SORT_COLUMNS[search.sort]
    if search.direction == "desc":
        return [column.desc(), Case.id.desc()]
    return [column.asc(), Case.id.asc()]


def _id_order(search: CaseSearch) -> ColumnElement[Any]:
    return Case.id.desc() if search.direction == "desc" else Case.id.asc()


def _beyond(search: CaseSearch, cursor: SearchCursor) -> ColumnElement[bool]:
    """Strictly after the cursor among the dated rows: one row comparison, an index range on (column, id)."""
    pair = tuple_(SORT_COLUMNS[search.sort], Case.id)
    mark = (cursor.value, cursor.case_id)
    return pair < mark if search.direction == "desc" else pair > mark


def ordered(query: Select[Any], search: CaseSearch) -> Select[Any]:
    """``query`` in the search's order, NULLs last (the map's points: one query over both parts)."""
    column = SORT_COLUMNS[search.sort]
    if search.sort not in NULLABLE_SORTS:
        return query.order_by(*_order(search))
    if search.direction == "desc":
        return query.order_by(column.desc().nulls_last(), Case.id.desc())
    return query.order_by(column.asc().nulls_last(), Case.id.asc())


@dataclass(frozen=True)
class CaseRow:
    """One line of the list: the case and the names a person reads, joined in the same query."""

    id: int
    status: str
    violation_code: str
    violation_name: str
    violation_name_en: str
    place_key: str
    place_name: str
    camera_code: str | None
    unit_id: int | None
    unit_name: str | None
    source: str
    overdue: bool
    recurrence_of_id: int | None
    created_at: dt.datetime
    updated_at: dt.datetime
    first_seen_at: dt.datetime | None
    confirmed_at: dt.datetime | None
    deadline_at: dt.datetime | None
    closed_at: dt.datetime | None
    description: str


@dataclass(frozen=True)
class SearchPage:
    rows: list[CaseRow]
    total: int  # at most COUNT_CAP; -1 when not counted
    next_cursor: SearchCursor | None
    total_capped: bool = False  # more than ``total`` cases match


ROW_COLUMNS: Final = (
    Case.id,
    Case.status,
    Case.violation_code,
    ViolationType.name,
    ViolationType.name_en,
    Place.key,
    Place.name,
    Case.camera_code,
    Case.unit_id,
    Unit.name,
    Case.source,
    Case.overdue,
    Case.recurrence_of_id,
    Case.created_at,
    Case.updated_at,
    Case.first_seen_at,
    Case.confirmed_at,
    Case.deadline_at,
    Case.closed_at,
    Case.description,
)


def _rows(session: Session, ids: Select[Any], order: list[ColumnElement[Any]]) -> list[CaseRow]:
    # Deferred join: choose the page's ids on the cases table alone, then join names to those rows only.
    page_ids = ids.order_by(*order).subquery()
    query = (
        select(*ROW_COLUMNS)
        .join(page_ids, page_ids.c.id == Case.id)
        .join(Place, Place.id == Case.place_id)
        .outerjoin(ViolationType, ViolationType.code == Case.violation_code)
        .outerjoin(Unit, Unit.id == Case.unit_id)
        .order_by(*order)
    )
    return [_row(r) for r in session.execute(query)]


def _page_rows(
    session: Session, ids: Select[Any], search: CaseSearch, after: SearchCursor | None, wanted: int
) -> list[CaseRow]:
    """Up to ``wanted`` rows after ``after``: the dated rows off the (column, id) index, then (nullable
    sorts) the NULL tail in id order. Two simple index scans instead of one OR no index can serve."""
    column = SORT_COLUMNS[search.sort]
    nullable = search.sort in NULLABLE_SORTS
    rows: list[CaseRow] = []
    if after is None or after.value is not None:
        dated = ids.where(column.is_not(None)) if nullable else ids
        if after is not None:
            dated = dated.where(_beyond(search, after))
        rows = _rows(session, dated.limit(wanted), _order(search))
    if nullable and len(rows) < wanted:
        tail = ids.where(column.is_(None))
        if after is not None and after.value is None:
            beyond_id = Case.id < after.case_id if search.direction == "desc" else Case.id > after.case_id
            tail = tail.where(beyond_id)
        rows += _rows(session, tail.limit(wanted - len(rows)), [_id_order(search)])
    return rows


def _row(r: Any) -> CaseRow:
    return CaseRow(
        id=r[0],
        status=r[1],
        violation_code=r[2],
        violation_name=r[3] or r[2],
        violation_name_en=r[4] or r[3] or r[2],
        place_key=r[5],
        place_name=r[6] or r[5],
        camera_code=r[7],
        unit_id=r[8],
        unit_name=r[9],
        source=r[10],
        overdue=bool(r[11]),
        recurrence_of_id=r[12],
        created_at=r[13],
        updated_at=r[14],
        first_seen_at=r[15],
        confirmed_at=r[16],
        deadline_at=r[17],
        closed_at=r[18],
        description=r[19] or "",
    )


def _sort_value(row: CaseRow, sort: str) -> dt.datetime | None:
    return {
        "created": row.created_at,
        "updated": row.updated_at,
        "deadline": row.deadline_at,
        "first_seen": row.first_seen_at,
    }[sort]


def search_cases(
    session: Session,
    actor: Actor,
    search: CaseSearch,
    *,
    after: SearchCursor | None = None,
    limit: int = 50,
    count: bool = True,
) -> SearchPage:
    """One page of matching cases ``actor`` may see, in ``search``'s order, starting after ``after``."""
    ids = matching_ids(session, actor, search)
    total, capped = capped_count(session, ids) if count else (-1, False)
    rows = _page_rows(session, ids, search, after, limit + 1)
    more = len(rows) > limit
    rows = rows[:limit]
    last = rows[-1] if rows else None
    next_cursor = (
        SearchCursor(search.sort, search.direction, _sort_value(last, search.sort), last.id)
        if more and last
        else None
    )
    return SearchPage(rows, total, next_cursor, capped)


def iter_rows(session: Session, actor: Actor, search: CaseSearch, *, batch: int = 1000) -> Any:
    """Every matching row in order, fetched a keyset page at a time (for the CSV export)."""
    after: SearchCursor | None = None
    while True:
        page = search_cases(session, actor, search, after=after, limit=batch, count=False)
        yield from page.rows
        if page.next_cursor is None:
            return
        after = page.next_cursor
