"""Workflow actions from the console: the API's own functions (api.case_actions), one case at a time.

Nothing here decides what is allowed: visibility is ``get_case_for`` (404 for another unit's case) and
every move is ``apply_action`` (the workflow table). A bulk action runs each case in its own SAVEPOINT, so
one case that may not move (already filed by a colleague, say) does not undo the others.
"""

from __future__ import annotations

from dataclasses import dataclass

from sqlalchemy import select
from sqlalchemy.orm import Session

from api.actors import Actor
from api.case_actions import apply_action, get_case_for
from api.errors import ApiError
from api.evidence import add_evidence
from api.ingest import begin_write
from api.models import Unit, ViolationType
from api.settings import Settings
from api.workflow import is_unclassified
from contract.reports import EvidenceKind


@dataclass(frozen=True)
class ActionRequest:
    action: str
    reason: str | None = None
    note: str | None = None
    unit_id: int | None = None
    hours: float | None = None
    photo: bytes | None = None  # the unit's photo of the handled place (evidence kind "handling")
    violation_code: str | None = None  # recode: the new event code


@dataclass(frozen=True)
class Outcome:
    case_id: int
    ok: bool
    status: str | None = None
    unit: str | None = None  # the assigned unit's name after the action
    error: str | None = None  # the API's English sentence (logs, scripts)
    failure: ApiError | None = None  # the refusal itself: Page.error_text words it for the reader
    http_status: int = 200
    rule: str | None = None  # the handling rule that refused it (api.workflow.check_handling), if any


def act(session: Session, actor: Actor, settings: Settings, case_id: int, request: ActionRequest) -> Outcome:
    """Take one action (after attaching the photo, if any) or report why not; never raises ApiError."""
    begin_write(session)  # SQLite: a SAVEPOINT outside a transaction would commit on its own
    try:
        with session.begin_nested():
            case = get_case_for(session, case_id, actor)
            if request.photo:
                add_evidence(
                    session, case.id, actor, data=request.photo, kind=EvidenceKind.HANDLING, settings=settings
                )
            case = apply_action(
                session,
                case,
                request.action,
                actor,
                settings=settings,
                reason=request.reason or None,
                note=request.note or None,
                unit_id=request.unit_id,
                hours=request.hours,
                violation_code=request.violation_code,
            )
            unit = session.get(Unit, case.unit_id) if case.unit_id is not None else None
            return Outcome(case.id, True, case.status, unit.name if unit else None)
    except ApiError as error:
        rule = error.details.get("rule")
        return Outcome(
            case_id,
            False,
            error=error.message,
            failure=error,
            http_status=error.status_code,
            rule=rule if isinstance(rule, str) else None,
        )


def act_on_many(
    session: Session, actor: Actor, settings: Settings, case_ids: list[int], request: ActionRequest
) -> list[Outcome]:
    return [act(session, actor, settings, case_id, request) for case_id in dict.fromkeys(case_ids)]


@dataclass(frozen=True)
class RecodeChoice:
    """An active violation type an operator may re-code to; ``key`` is its number key in the queue."""

    code: str
    name: str
    name_en: str
    key: int | None


RECODE_KEYS = 9  # number keys 1-9; codes past the ninth are on the case page's list only


def recode_choices(session: Session) -> list[RecodeChoice]:
    """Active codes by code; the to-classify ones get no number key (re-coding is to leave them)."""
    types = session.scalars(
        select(ViolationType).where(ViolationType.active.is_(True)).order_by(ViolationType.code)
    ).all()
    keyed = [v for v in types if not is_unclassified(v.pipeline_type)][:RECODE_KEYS]
    keys = {v.code: i for i, v in enumerate(keyed, start=1)}
    return [RecodeChoice(v.code, v.name, v.name_en or v.name, keys.get(v.code)) for v in types]
