"""The unit board's lists on SQLite and PostgreSQL: the sections of the cases being handled (overdue,
due soon, the rest) and the newest-first lists, each paged by its own keyset cursor that neither skips nor
repeats a case (also when many share a deadline or a creation time), with each section's size."""

from __future__ import annotations

import datetime as dt
import uuid

import pytest
from sqlalchemy import true

from api.console import board
from api.errors import InvalidInput
from api.models import Case, CaseStatus
from tests.api.builders import make_world
from tests.api.conftest import Store

NOW = dt.datetime(2026, 5, 11, 2, 0, tzinfo=dt.UTC)
S = CaseStatus


def _case(session: object, place_id: int, status: S, **fields: object) -> int:
    case = Case(
        status=status.value,
        violation_code="0102",
        place_id=place_id,
        open_slot=uuid.uuid4().hex,
        sighting_count=1,
        **fields,
    )
    session.add(case)  # type: ignore[attr-defined]
    session.flush()  # type: ignore[attr-defined]
    return case.id


def _walk(page: object, read: object) -> list[int]:
    seen: list[int] = []
    after = None
    while True:
        listed = read(after)  # type: ignore[operator]
        seen.extend(row.id for row in listed)
        if listed.next_cursor is None:
            return seen
        assert len(listed) == 4
        after = listed.next_cursor


def test_sections_split_by_deadline_page_and_count(store: Store, monkeypatch: pytest.MonkeyPatch) -> None:
    world = make_world(store.sessions)
    with store.sessions.begin() as session:
        ids = {
            "passed": _case(
                session,
                world.place_id,
                S.DISPATCHED,
                deadline_at=NOW - dt.timedelta(minutes=1),
                unit_id=world.sanitation_id,
            ),
            "flagged": _case(
                session, world.place_id, S.IN_PROGRESS, deadline_at=NOW + dt.timedelta(days=1), overdue=True
            ),
            "soon": _case(
                session,
                world.place_id,
                S.DISPATCHED,
                deadline_at=NOW + board.DUE_SOON,
                unit_id=world.sanitation_id,
            ),
            "later": _case(
                session,
                world.place_id,
                S.DISPATCHED,
                deadline_at=NOW + board.DUE_SOON + dt.timedelta(seconds=1),
            ),
            "none": _case(session, world.place_id, S.IN_PROGRESS, deadline_at=None),
        }
        # not being handled: on no section, whatever their deadline
        _case(session, world.place_id, S.RESOLVED, deadline_at=NOW - dt.timedelta(days=1), overdue=True)
        _case(session, world.place_id, S.CLOSED, deadline_at=NOW + dt.timedelta(minutes=5))
        # ten more overdue ones on one deadline (ties) and ten without a deadline: pages of four
        tied = [
            _case(
                session, world.place_id, S.DISPATCHED, deadline_at=NOW - dt.timedelta(hours=1), overdue=True
            )
            for _ in range(10)
        ]
        open_ended = [_case(session, world.place_id, S.DISPATCHED, deadline_at=None) for _ in range(10)]

    with store.sessions() as session:
        split, _ = board.sections(session, true(), NOW, {})
        assert [r.id for r in split.overdue] == [*tied, ids["passed"], ids["flagged"]]
        assert [r.id for r in split.due_soon] == [ids["soon"]]
        assert [r.id for r in split.in_progress] == [ids["later"], ids["none"], *open_ended]
        assert dict(split.counts) == {"overdue": 12, "due_soon": 1, "in_progress": 12}
        loads = board.unit_loads(session)
        assert [(load.unit_id, load.open, load.overdue) for load in loads] == [(world.sanitation_id, 2, 0)]
        mine, _ = board.sections(session, Case.unit_id == world.sanitation_id, NOW, {})
        assert dict(mine.counts) == {"overdue": 1, "due_soon": 1, "in_progress": 0}

        monkeypatch.setattr(board, "LIST_LIMIT", 4)
        overdue = _walk(
            split,
            lambda after: board.by_deadline(session, "overdue", board.section_clauses(NOW)["overdue"], after),
        )
        assert overdue == [*tied, ids["passed"], ids["flagged"]]
        rest = _walk(
            split,
            lambda after: board.by_deadline(
                session, "in_progress", board.section_clauses(NOW)["in_progress"], after
            ),
        )
        assert rest == [ids["later"], ids["none"], *open_ended]  # the cursor crosses into the NULL tail
        first, _ = board.sections(session, true(), NOW, {})
        assert first.overdue.after is None and first.overdue.next_cursor is not None
        later, _ = board.sections(session, true(), NOW, {"overdue": first.overdue.next_cursor})
        assert later.overdue.after == first.overdue.next_cursor
        assert [r.id for r in later.overdue] == tied[4:8]
        assert [r.id for r in later.in_progress] == [
            r.id for r in first.in_progress
        ]  # the others keep their page


def test_newest_first_lists_merge_statuses_and_page_through_ties(
    store: Store, monkeypatch: pytest.MonkeyPatch
) -> None:
    world = make_world(store.sessions)
    made = []
    with store.sessions.begin() as session:
        for i in range(15):
            status = (S.RESOLVED, S.VERIFIED, S.FILED)[i % 3]
            created = NOW - dt.timedelta(minutes=i // 4)  # four cases share each minute
            made.append((created, _case(session, world.place_id, status, created_at=created), status))
    expected = [case_id for _, case_id, status in sorted(made, reverse=True) if status is not S.FILED]
    monkeypatch.setattr(board, "LIST_LIMIT", 4)
    with store.sessions() as session:
        assert _walk(None, lambda after: board.to_verify(session, after)) == expected
        assert [r.id for r in board.to_dispatch(session)] == [
            case_id for _, case_id, status in sorted(made, reverse=True) if status is S.FILED
        ][:4]
        # the overview reads these and the sections in one statement: the same pages
        _, dispatch, verify = board.overview(
            session, NOW, {"to_verify": board.to_verify(session).next_cursor}
        )
        assert [r.id for r in verify] == expected[4:8]
        assert [r.id for r in dispatch] == [r.id for r in board.to_dispatch(session)]
        with pytest.raises(InvalidInput, match="to_verify"):
            board.to_verify(session, "yesterday")
