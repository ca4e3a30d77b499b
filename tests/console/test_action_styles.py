"""The case page's order and colours of the workflow moves, and the board's sections (pure functions)."""

from __future__ import annotations

import datetime as dt

from api.console.action_styles import ORDER, ordered_moves
from api.console.board import DUE_SOON, BoardRow, sections
from api.workflow import TABLE, Action


def test_every_action_has_one_place_and_one_style() -> None:
    assert sorted(a for a, _ in ORDER) == sorted(Action)


def test_forward_moves_come_first_and_discarding_last() -> None:
    rows = [TABLE[a] for a in (Action.VOID, Action.DEFER, Action.DISPATCH, Action.RECODE)]  # table order
    moves = [(m.row.action, m.style) for m in ordered_moves(rows)]
    assert moves == [
        (Action.DISPATCH, "primary"),
        (Action.RECODE, "neutral"),
        (Action.DEFER, "neutral"),
        (Action.VOID, "danger"),
    ]
    styles = {m.row.action: m.style for m in ordered_moves(TABLE.values())}
    assert styles[Action.REWORK] == styles[Action.RETURN] == "danger"
    assert styles[Action.CLOSE] == styles[Action.START] == "primary"


def _row(case_id: int, deadline: dt.datetime | None, overdue: bool = False) -> BoardRow:
    return BoardRow(
        case_id, "dispatched", "暴露垃圾", "exposed garbage", "grid", "环卫所", deadline, overdue, None
    )


def test_board_sections_split_by_deadline() -> None:
    now = dt.datetime(2026, 5, 11, 2, 0, tzinfo=dt.UTC)
    rows = [
        _row(1, now - dt.timedelta(minutes=1)),  # passed, not yet flagged by the sweep
        _row(2, now + dt.timedelta(days=1), overdue=True),  # flagged (e.g. before an extension)
        _row(3, now + DUE_SOON),
        _row(4, now + DUE_SOON + dt.timedelta(seconds=1)),
        _row(5, None),
    ]
    split = sections(rows, now)
    assert [r.id for r in split.overdue] == [1, 2]
    assert [r.id for r in split.due_soon] == [3]
    assert [r.id for r in split.in_progress] == [4, 5]
