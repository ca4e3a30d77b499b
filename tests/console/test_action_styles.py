"""The case page's order and colours of the workflow moves (pure functions; the board's sections are SQL now:
tests/console/test_board_lists.py)."""

from __future__ import annotations

from api.console.action_styles import ORDER, ordered_moves
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
