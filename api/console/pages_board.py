"""The unit board: a unit handler's own queue (start, resolve with a note and a photo); for the command
centre, all units' loads with overdue cases highlighted, and the cases awaiting dispatch or checking."""

from __future__ import annotations

from fastapi import APIRouter
from fastapi.responses import Response

from api.console import board
from api.console.deps import PageDep
from api.console.rendering import render
from api.errors import Forbidden
from api.models import Role, Unit, utcnow
from api.workflow import Action, allowed_actions

router = APIRouter(prefix="/console/board", include_in_schema=False)


@router.get("")
def board_page(page: PageDep) -> Response:
    actor = page.operator
    if actor.role is Role.UNIT_HANDLER:
        if actor.unit_id is None:
            raise Forbidden(f"unit handler '{actor.name}' has no unit")
        now = utcnow()
        sections, done = board.unit_queue(page.session, actor.unit_id, now, _cursors(page))
        todo = [*sections.overdue, *sections.due_soon, *sections.in_progress]
        unit = page.session.get(Unit, actor.unit_id)
        # Which buttons each row gets comes from the workflow table, as for every other action.
        # ... less a resolve the violation type's handling rules hold back (start first).
        moves = {
            row.id: [
                action
                for action in allowed_actions(
                    row.status, Role.UNIT_HANDLER.value, owns_case=True, extension_pending=False
                )
                if row.rules.allows(action, row.status)
            ]
            for row in todo
        }
        return render(
            page,
            "board/unit.html",
            unit=unit,
            todo=todo,
            sections=sections,
            done=done,
            moves=moves,
            START=Action.START,
            RESOLVE=Action.RESOLVE,
            limit=board.LIST_LIMIT,
        )
    sections, to_dispatch, to_verify = board.overview(page.session, utcnow(), _cursors(page))
    return render(
        page,
        "board/overview.html",
        loads=board.unit_loads(page.session),
        sections=sections,
        to_dispatch=to_dispatch,
        to_verify=to_verify,
        limit=board.LIST_LIMIT,
    )


PAGED_LISTS = (*board.SECTIONS, "to_dispatch", "to_verify", "resolved")  # not "done": the flash


def _cursors(page: PageDep) -> dict[str, str | None]:
    """Each list's page cursor, from its own query parameter (``?overdue=...&to_verify=...``)."""
    params = page.request.query_params
    return {name: params.get(name) or None for name in PAGED_LISTS}
