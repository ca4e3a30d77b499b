"""The review queue's query on SQLite and PostgreSQL: newest first, keyset pages that neither skip nor
repeat a case (also when many share a timestamp), filters, visibility."""

from __future__ import annotations

import datetime as dt
import uuid

import pytest

from api.actors import Actor
from api.console.queue import Cursor, QueueFilter, review_queue, suggest_cameras, suggest_places
from api.errors import InvalidInput
from api.models import Case, CaseStatus, Place, Role
from tests.api.builders import make_world
from tests.api.conftest import Store

T0 = dt.datetime(2026, 5, 11, 1, 0, tzinfo=dt.UTC)
LEADER = Actor(kind="user", id=1, name="li", role=Role.SHIFT_LEADER)


def _seed(store: Store) -> list[tuple[dt.datetime, int, str, str, str]]:
    """60 pending cases on 3 timestamps (ties), 2 cameras, 2 places, 2 violations; plus filed ones."""
    world = make_world(store.sessions)
    made = []
    with store.sessions.begin() as session:
        other = Place(key="grid-2", name="grid 2")
        session.add(other)
        session.flush()
        for i in range(66):
            place = world.place_id if i % 2 else other.id
            violation = "0102" if i % 3 else "0505"
            camera = f"cam-{i % 2 + 1}"
            created = T0 + dt.timedelta(minutes=i % 3)
            status = CaseStatus.FILED if i >= 60 else CaseStatus.PENDING_REVIEW
            case = Case(
                status=status.value,
                violation_code=violation,
                place_id=place,
                camera_code=camera,
                open_slot=uuid.uuid4().hex,
                created_at=created,
                sighting_count=1,
            )
            session.add(case)
            session.flush()
            if status is CaseStatus.PENDING_REVIEW:
                made.append((created, case.id, camera, violation, "110101001001001" if i % 2 else "grid-2"))
    return sorted(made, key=lambda m: (m[0], m[1]), reverse=True)


def _walk(store: Store, actor: Actor, filters: QueueFilter, limit: int) -> list[int]:
    seen: list[int] = []
    after: Cursor | None = None
    with store.sessions() as session:
        while True:
            page = review_queue(session, actor, filters, after=after, limit=limit)
            assert len(page.rows) <= limit
            seen.extend(row.id for row in page.rows)
            if page.next_cursor is None:
                return seen
            after = Cursor.decode(page.next_cursor.encode())  # as the browser carries it


def test_pages_cover_the_queue_newest_first_without_gaps(store: Store) -> None:
    made = _seed(store)
    assert _walk(store, LEADER, QueueFilter(), limit=7) == [m[1] for m in made]
    with store.sessions() as session:
        first = review_queue(session, LEADER, QueueFilter(), limit=7)
    assert first.total == 60
    assert [r.place_key for r in first.rows] == [m[4] for m in made[:7]]


@pytest.mark.parametrize(
    ("filters", "keep"),
    [
        (QueueFilter(camera="cam-2"), lambda m: m[2] == "cam-2"),
        (QueueFilter(violation="0505"), lambda m: m[3] == "0505"),
        (QueueFilter(place_key="grid-2"), lambda m: m[4] == "grid-2"),
        (
            QueueFilter(created_from=T0 + dt.timedelta(minutes=1)),
            lambda m: m[0] >= T0 + dt.timedelta(minutes=1),
        ),
        (QueueFilter(created_to=T0 + dt.timedelta(minutes=1)), lambda m: m[0] < T0 + dt.timedelta(minutes=1)),
        (
            QueueFilter(camera="cam-1", violation="0102", place_key="110101001001001"),
            lambda m: m[2:] == ("cam-1", "0102", "110101001001001"),
        ),
        (QueueFilter(place_key="no-such-place"), lambda m: False),
    ],
)
def test_filters(store: Store, filters: QueueFilter, keep: object) -> None:
    made = _seed(store)
    expected = [m[1] for m in made if keep(m)]  # type: ignore[operator]
    assert _walk(store, LEADER, filters, limit=9) == expected
    with store.sessions() as session:
        assert review_queue(session, LEADER, filters).total == len(expected)


def test_unit_handlers_see_no_unassigned_pending_cases(store: Store) -> None:
    _seed(store)
    handler = Actor(kind="user", id=2, name="wang", role=Role.UNIT_HANDLER, unit_id=1)
    with store.sessions() as session:
        assert review_queue(session, handler, QueueFilter()).total == 0


@pytest.mark.parametrize("cursor", ["", "bm9wZQ", "!!!", Cursor(T0, 3).encode()[:-3]])
def test_a_bad_cursor_is_a_clear_error(cursor: str) -> None:
    with pytest.raises(InvalidInput, match="bad page cursor"):
        Cursor.decode(cursor)


def test_suggestions_are_the_cameras_and_places_of_pending_cases_that_start_with_the_text(
    store: Store,
) -> None:
    _seed(store)
    with store.sessions.begin() as session:
        place = Place(key="grid-closed", name="only closed cases here")
        session.add(place)
        session.flush()
        session.add(Case(status="closed", violation_code="0102", place_id=place.id, camera_code="cam-closed"))

    with store.sessions() as session:
        assert suggest_cameras(session, LEADER, "") == ["cam-1", "cam-2"]  # not cam-closed
        assert suggest_cameras(session, LEADER, "cam-2") == ["cam-2"]
        assert suggest_cameras(session, LEADER, "cam-1", limit=1) == ["cam-1"]
        assert suggest_cameras(session, LEADER, "%") == []  # a LIKE wildcard is a plain character
        assert [key for key, _ in suggest_places(session, LEADER, "")] == ["110101001001001", "grid-2"]
        assert [key for key, _ in suggest_places(session, LEADER, "grid")] == ["grid-2"]  # not grid-closed
        assert suggest_places(session, LEADER, "grid 2") == [("grid-2", "grid 2")]  # by name too
        handler = Actor(kind="user", id=2, name="wang", role=Role.UNIT_HANDLER, unit_id=1)
        assert suggest_cameras(session, handler, "") == []  # only what the caller may see
        # the case search offers cameras and places of every case, closed ones too
        assert suggest_cameras(session, LEADER, "cam", pending_only=False) == ["cam-1", "cam-2", "cam-closed"]
        assert [k for k, _ in suggest_places(session, LEADER, "grid", pending_only=False)] == [
            "grid-2",
            "grid-closed",
        ]
