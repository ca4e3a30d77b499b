"""How the case page lists the workflow moves: the moves that take a case forward first, in the order a case
travels (立案, 派遣, 开始处置, 反馈, 核查, 结案), then the side moves, then those that send it back or discard
it; each coloured by its consequence (primary: forward, neutral: aside, danger: back or gone)."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from typing import Literal

from api.workflow import Action, Transition

Style = Literal["primary", "neutral", "danger"]

ORDER: tuple[tuple[Action, Style], ...] = (
    (Action.FILE, "primary"),
    (Action.DISPATCH, "primary"),
    (Action.RESUME, "primary"),
    (Action.START, "primary"),
    (Action.RESOLVE, "primary"),
    (Action.VERIFY, "primary"),
    (Action.CLOSE, "primary"),
    (Action.APPROVE_EXTENSION, "primary"),
    (Action.RECODE, "neutral"),
    (Action.REASSIGN, "neutral"),
    (Action.REQUEST_EXTENSION, "neutral"),
    (Action.DEFER, "neutral"),
    (Action.REJECT_EXTENSION, "danger"),
    (Action.RETURN, "danger"),
    (Action.REWORK, "danger"),
    (Action.VOID, "danger"),
)
_RANK = {action: (i, style) for i, (action, style) in enumerate(ORDER)}


@dataclass(frozen=True)
class Move:
    row: Transition
    style: Style


def ordered_moves(rows: Iterable[Transition]) -> list[Move]:
    """``rows`` in display order with their style."""
    return [Move(row, _RANK[row.action][1]) for row in sorted(rows, key=lambda r: _RANK[r.action][0])]
