"""Workflow actions on a case: take one, or ask which ones the caller may take."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Path
from pydantic import BaseModel, ConfigDict, Field

from api.case_actions import allowed_actions_for, apply_action, get_case_for
from api.case_schemas import CasePublic
from api.deps import ActorDep, SessionDep, SettingsDep
from api.routers.responses import AUTHENTICATED, NOT_FOUND, errors
from api.workflow import REASON_MAX_CHARS, VOID_REASONS, Action
from contract.fields import EventCode

router = APIRouter(prefix="/api/v1/cases", tags=["workflow"], responses=AUTHENTICATED)
DB_INT_MAX = 2**31 - 1  # ids are 32-bit integers on PostgreSQL
CaseId = Annotated[int, Path(ge=1, le=DB_INT_MAX, description="The case id.")]
ActionName = Annotated[str, Path(max_length=32, description="One of: " + ", ".join(a.value for a in Action))]


class ActionRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")

    reason: str | None = Field(
        default=None,
        max_length=REASON_MAX_CHARS,
        description=f"A short reason code; void needs one of: {', '.join(VOID_REASONS)}.",
    )
    note: str | None = Field(default=None, max_length=4000, description="Free text; return needs one.")
    unit_id: int | None = Field(
        default=None,
        ge=1,
        le=DB_INT_MAX,
        description="dispatch / reassign / resume: the unit (default: routing).",
    )
    hours: float | None = Field(
        default=None, description="request_extension (required), approve_extension (optional)."
    )
    violation_code: EventCode | None = Field(
        default=None,
        description="recode (required): the active event code to change to, e.g. 0102. Re-coding re-routes "
        "the case and moves it to the new code's open slot, merging it into the open case there (it is then "
        "voided as duplicate) if one exists.",
    )


class AllowedActions(BaseModel):
    case_id: int
    status: str
    allowed_actions: list[str]


@router.post(
    "/{case_id}/actions/{action}",
    response_model=CasePublic,
    responses=errors(400, 404, 409, 422),
    summary="Take a workflow action",
    description="Actions: " + ", ".join(a.value for a in Action) + ". 409 names the status and the allowed "
    "moves; 403 names the roles that may; 409 also refuses to file or dispatch a case still to classify "
    "(unknown_object): re-code it first.",
)
def take_action(
    case_id: CaseId,
    action: ActionName,
    actor: ActorDep,
    session: SessionDep,
    settings: SettingsDep,
    body: ActionRequest | None = None,
) -> CasePublic:
    body = body or ActionRequest()
    case = get_case_for(session, case_id, actor)
    case = apply_action(
        session,
        case,
        action,
        actor,
        settings=settings,
        reason=body.reason,
        note=body.note,
        unit_id=body.unit_id,
        hours=body.hours,
        violation_code=body.violation_code,
    )
    return CasePublic.model_validate(case)


@router.get(
    "/{case_id}/actions",
    response_model=AllowedActions,
    responses=NOT_FOUND,
    summary="Actions the caller may take now",
)
def list_actions(case_id: CaseId, actor: ActorDep, session: SessionDep) -> AllowedActions:
    case = get_case_for(session, case_id, actor)
    return AllowedActions(
        case_id=case.id, status=case.status, allowed_actions=allowed_actions_for(case, actor)
    )
