"""The review queue's data: pending cases newest first, one query per page however deep.

Pages are keyset-paginated on (created_at, id), the order of the index ``ix_cases_status_created``
(status, created_at), so page 200 costs what page 1 costs; OFFSET would read and drop every earlier row.
Each row carries what the reviewer looks at (place and violation names, the best evidence image), joined
in the same query instead of one query per case.
"""

from __future__ import annotations

import base64
import binascii
import datetime as dt
from dataclasses import dataclass
from typing import Any

from sqlalchemy import ColumnElement, Select, and_, func, or_, select, tuple_
from sqlalchemy.orm import Session

from api.actors import Actor
from api.case_queries import visibility_clause
from api.errors import InvalidInput
from api.messages import msg
from api.models import Camera, Case, CaseStatus, Evidence, Place, ViolationType

PAGE_SIZE = 25


@dataclass(frozen=True, kw_only=True)
class QueueFilter:
    """Reviewer filters; ``None`` means any. Times are UTC, ``created_to`` exclusive."""

    camera: str | None = None
    place_key: str | None = None
    violation: str | None = None
    created_from: dt.datetime | None = None
    created_to: dt.datetime | None = None


@dataclass(frozen=True)
class Cursor:
    """Where a page starts: strictly older than this case in (created_at, id) order."""

    created_at: dt.datetime
    case_id: int

    def encode(self) -> str:
        raw = f"{self.created_at.astimezone(dt.UTC).isoformat()}|{self.case_id}"
        return base64.urlsafe_b64encode(raw.encode()).decode().rstrip("=")

    @classmethod
    def decode(cls, text: str) -> Cursor:
        try:
            raw = base64.urlsafe_b64decode(text + "=" * (-len(text) % 4)).decode()
            moment, case_id = raw.split("|")
            created_at = dt.datetime.fromisoformat(moment)
            if created_at.tzinfo is None:
                raise ValueError("naive time")
            return cls(created_at, int(case_id))
        except (ValueError, binascii.Error, UnicodeDecodeError):
            raise InvalidInput(
                f"bad page cursor {text[:40]!r}: open the first page",
                msg=msg("error.bad_cursor"),
                field="after",
            ) from None


@dataclass(frozen=True)
class QueueRow:
    id: int
    created_at: dt.datetime
    camera_code: str | None
    camera_name: str | None
    zone_code: str | None
    place_key: str
    place_name: str
    violation_code: str
    violation_name: str
    violation_name_en: str
    confidence: float | None
    sighting_count: int
    evidence_sha256: str | None
    evidence_width: int | None
    evidence_height: int | None
    first_seen_at: dt.datetime | None  # from the device's report: when the object was first seen
    confirmed_at: dt.datetime | None  # and when its dwell confirmed the violation


@dataclass(frozen=True)
class QueuePage:
    rows: list[QueueRow]
    total: int  # pending cases matching the filters, on every page
    next_cursor: Cursor | None


def _pending(actor: Actor, filters: QueueFilter) -> Select[Any]:
    query = select(Case.id).where(Case.status == CaseStatus.PENDING_REVIEW.value, visibility_clause(actor))
    if filters.camera:
        query = query.where(Case.camera_code == filters.camera)
    if filters.place_key:
        place_id = select(Place.id).where(Place.key == filters.place_key).scalar_subquery()
        query = query.where(Case.place_id == place_id)
    if filters.violation:
        query = query.where(Case.violation_code == filters.violation)
    if filters.created_from is not None:
        query = query.where(Case.created_at >= filters.created_from)
    if filters.created_to is not None:
        query = query.where(Case.created_at < filters.created_to)
    return query


def review_queue(
    session: Session,
    actor: Actor,
    filters: QueueFilter,
    *,
    after: Cursor | None = None,
    limit: int = PAGE_SIZE,
) -> QueuePage:
    """One page of pending cases ``actor`` may see, newest first, starting after ``after``."""
    base = _pending(actor, filters)
    total = session.scalar(select(func.count()).select_from(base.subquery())) or 0
    page = base.order_by(Case.created_at.desc(), Case.id.desc()).limit(limit + 1)  # +1: is there more?
    if after is not None:
        # One row comparison: a range of (status, created_at, id), so a page deep in the queue reads its
        # 26 index entries; spelled as created_at < v OR (created_at = v AND id < i) it was a filter over
        # every entry before the cursor (7,741 of them at 90% depth of a million-case city).
        page = page.where(tuple_(Case.created_at, Case.id) < (after.created_at, after.case_id))
    # Deferred join: pick the page's ids on the cases table alone, then join names and images to those
    # few rows only (joining first makes the database join every matching case before it sorts).
    page_ids = page.subquery()
    query = (
        select(
            Case.id,
            Case.created_at,
            Case.camera_code,
            Case.zone_code,
            Place.key,
            Place.name,
            Case.violation_code,
            ViolationType.name,
            ViolationType.name_en,
            Case.confidence,
            Case.sighting_count,
            Evidence.sha256,
            Evidence.width,
            Evidence.height,
            Case.first_seen_at,
            Case.confirmed_at,
            Camera.name,
        )
        .join(page_ids, page_ids.c.id == Case.id)
        .join(Place, Place.id == Case.place_id)
        .outerjoin(ViolationType, ViolationType.code == Case.violation_code)
        .outerjoin(Evidence, Evidence.id == Case.best_evidence_id)
        .outerjoin(Camera, Camera.code == Case.camera_code)
        .order_by(Case.created_at.desc(), Case.id.desc())
    )
    rows = [
        QueueRow(
            id=r[0],
            created_at=r[1],
            camera_code=r[2],
            camera_name=r[16] or r[2],
            zone_code=r[3],
            place_key=r[4],
            place_name=r[5] or r[4],
            violation_code=r[6],
            violation_name=r[7] or r[6],
            violation_name_en=r[8] or r[7] or r[6],
            confidence=r[9],
            sighting_count=r[10],
            evidence_sha256=r[11],
            evidence_width=r[12],
            evidence_height=r[13],
            first_seen_at=r[14],
            confirmed_at=r[15],
        )
        for r in session.execute(query)
    ]
    more = len(rows) > limit
    rows = rows[:limit]
    next_cursor = Cursor(rows[-1].created_at, rows[-1].id) if more else None
    return QueuePage(rows, total, next_cursor)


SUGGESTIONS = 20


def _visible(actor: Actor, pending_only: bool) -> ColumnElement[bool]:
    if pending_only:
        return and_(Case.status == CaseStatus.PENDING_REVIEW.value, visibility_clause(actor))
    return visibility_clause(actor)


def suggest_cameras(
    session: Session, actor: Actor, prefix: str, limit: int = SUGGESTIONS, *, pending_only: bool = True
) -> list[str]:
    """Up to ``limit`` cameras, by code, starting with ``prefix`` that have cases awaiting review that the
    actor may see: the queue's camera filter as a type-ahead instead of a list of every camera (a
    10,000-camera city has ~5,000 of them pending, 200 KiB of ``<option>``s on every queue page).
    ``pending_only=False``: cameras with any case the actor may see (the case search's filter)."""
    visible = _visible(actor, pending_only)
    query = (
        select(Case.camera_code)
        .where(visible, Case.camera_code.is_not(None), Case.camera_code.startswith(prefix, autoescape=True))
        .distinct()
        .order_by(Case.camera_code)
        .limit(limit)
    )
    return [c for c in session.scalars(query) if c]


def suggest_places(
    session: Session, actor: Actor, prefix: str, limit: int = SUGGESTIONS, *, pending_only: bool = True
) -> list[tuple[str, str]]:
    """Up to ``limit`` places (key, name) whose key or name starts with ``prefix`` and that have cases
    awaiting review (``pending_only``; else any case) that the actor may see, by key."""
    visible = _visible(actor, pending_only)
    pending_here = select(Case.id).where(visible, Case.place_id == Place.id).exists()
    matches = or_(
        Place.key.startswith(prefix, autoescape=True), Place.name.startswith(prefix, autoescape=True)
    )
    query = select(Place.key, Place.name).where(matches, pending_here).order_by(Place.key).limit(limit)
    return [(key, name or key) for key, name in session.execute(query)]


def violation_options(session: Session) -> list[tuple[str, str, str]]:
    """Every active violation type (code, name, name_en): a handful, so a plain drop-down."""
    rows = session.execute(
        select(ViolationType.code, ViolationType.name, ViolationType.name_en)
        .where(ViolationType.active.is_(True))
        .order_by(ViolationType.code)
    )
    return [(code, name, name_en or name) for code, name, name_en in rows]
