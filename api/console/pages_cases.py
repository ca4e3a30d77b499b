"""The case page: evidence before and after, sightings, the audit timeline, the deadline, recurrences,
and a form for exactly the moves the workflow allows this user (api.case_actions.allowed_actions_for)."""

from __future__ import annotations

import datetime as dt
from typing import Annotated

from fastapi import APIRouter, File, Form, Path, UploadFile
from fastapi.responses import RedirectResponse, Response
from sqlalchemy import select

from api.case_actions import allowed_actions_for, get_case_for, handling_rules, has_handling_photo
from api.case_queries import recurrence_ids
from api.clips import may_see_clips
from api.console.acting import ActionRequest, act, recode_choices
from api.console.action_styles import ordered_moves
from api.console.deps import Page, PageDep
from api.console.names import camera_names
from api.console.rendering import render
from api.console.security import CSRF_FIELD, check_csrf, safe_next
from api.deps import SettingsDep
from api.messages import msg
from api.models import CLOCK_STATUSES, Camera, Case, Evidence, Unit, ViolationType
from api.review_labels import LABEL_ROLES
from api.workflow import TABLE, Action
from contract.reports import EvidenceKind

router = APIRouter(prefix="/console/cases", include_in_schema=False)
CaseId = Annotated[int, Path(ge=1, le=2**31 - 1)]
BEFORE = (
    EvidenceKind.FIRST_SEEN,
    EvidenceKind.CONFIRMATION,
    EvidenceKind.SIGHTING,
    EvidenceKind.CROP,
    EvidenceKind.FRAME,
)
AFTER = (EvidenceKind.AFTER, EvidenceKind.HANDLING)


def _evidence(case: Case, kinds: tuple[EvidenceKind, ...]) -> list[Evidence]:
    wanted = {k.value for k in kinds}
    return [e for e in case.evidence if e.kind in wanted]


def evidence_moment(case: Case, evidence: Evidence) -> tuple[dt.datetime, bool]:
    """When the picture shows, and whether that is the scene's own time (from the device's report) rather
    than when the store received the file: the first-seen frame at first sight, the confirmation frame and
    its close-up at confirmation; other pictures at their upload."""
    kind = evidence.kind
    if kind == EvidenceKind.FIRST_SEEN and case.first_seen_at is not None:
        return case.first_seen_at, True
    if kind in (EvidenceKind.CONFIRMATION, EvidenceKind.CROP) and case.confirmed_at is not None:
        return case.confirmed_at, True
    return evidence.created_at, False


def render_case(page: Page, case_id: int, *, error: str | None = None, status_code: int = 200) -> Response:
    session = page.session
    actor = page.operator
    case = get_case_for(session, case_id, actor)  # 404 for another unit's case, as in the API
    violation = session.scalar(select(ViolationType).where(ViolationType.code == case.violation_code))
    camera = session.scalar(select(Camera).where(Camera.code == (case.camera_code or "")))
    # The timeline names units by code in its data; people read their names.
    unit_codes = {str(ev.data["unit"]) for ev in case.events if ev.data and ev.data.get("unit")}
    named = session.execute(select(Unit.code, Unit.name).where(Unit.code.in_(unit_codes)))
    unit_names: dict[str, str] = {code: name for code, name in named}
    escalated = session.get(Unit, case.escalated_to_unit_id) if case.escalated_to_unit_id else None
    allowed = [TABLE[Action(name)] for name in allowed_actions_for(case, actor)]
    rules = handling_rules(session, case.violation_code)
    needs_units = any(row.takes_unit for row in allowed)
    units = (
        session.scalars(select(Unit).where(Unit.active.is_(True)).order_by(Unit.name)).all()
        if needs_units
        else []
    )
    return render(
        page,
        "cases/case.html",
        status_code=status_code,
        case=case,
        violation=violation,
        camera=camera,
        camera_names=camera_names(session, [s.camera_code for s in case.sightings if s.camera_code]),
        unit_names=unit_names,
        evidence_moment=lambda e: evidence_moment(case, e),
        escalated=escalated,
        before=_evidence(case, BEFORE),
        after=_evidence(case, AFTER),
        moves=ordered_moves(allowed),
        # unredacted video: only for the roles of api.clips (the others are not told there is one)
        clips=_evidence(case, (EvidenceKind.CLIP,)) if may_see_clips(actor) else [],
        units=units,
        recode_choices=[c for c in recode_choices(session) if c.code != case.violation_code]
        if any(row.takes_code for row in allowed)
        else [],
        recurrences=recurrence_ids(session, case.id),
        rules=rules,
        photo_needed=rules.photo_required_to_resolve and not has_handling_photo(session, case),
        clock_running=case.status in CLOCK_STATUSES,
        error=error,
        done=page.request.query_params.get("done"),
        may_label=actor.role in LABEL_ROLES,  # draw missed objects (api.console.pages_labels)
    )


@router.get("/{case_id}")
def case_page(case_id: CaseId, page: PageDep) -> Response:
    return render_case(page, case_id)


@router.post("/{case_id}/act")
def case_action(
    case_id: CaseId,
    page: PageDep,
    settings: SettingsDep,
    action: Annotated[str, Form(max_length=32)],
    note: Annotated[str | None, Form(max_length=4000)] = None,
    reason: Annotated[str | None, Form(max_length=64)] = None,
    unit_id: Annotated[str | None, Form(max_length=12)] = None,
    hours: Annotated[str | None, Form(max_length=12)] = None,
    violation_code: Annotated[str | None, Form(max_length=16)] = None,
    photo: Annotated[UploadFile | None, File()] = None,
    csrf_token: Annotated[str, Form(alias=CSRF_FIELD)] = "",
    next: Annotated[str, Form(max_length=2000)] = "",
) -> Response:
    """Take one workflow action; on success back to ``next`` (this page), else this page with the error."""
    check_csrf(page.request, csrf_token)
    data = photo.file.read(settings.evidence_max_bytes + 1) if photo is not None and photo.filename else None
    try:
        request = ActionRequest(
            action,
            reason=reason or None,
            note=note or None,
            unit_id=int(unit_id) if unit_id else None,
            hours=float(hours) if hours else None,
            photo=data or None,
            violation_code=violation_code or None,
        )
    except ValueError:
        return render_case(page, case_id, error=page.say(msg("error.number")), status_code=422)
    outcome = act(page.session, page.operator, settings, case_id, request)
    if not outcome.ok:
        # a handling rule refused it: say so in the user's language, not the API's mixed message
        error: str | None = page.t(f"handling.{outcome.rule}") if outcome.rule else None
        if error is None:
            error = page.error_text(outcome.failure) if outcome.failure else outcome.error
        return render_case(page, case_id, error=error, status_code=outcome.http_status)
    target = safe_next(next, f"/console/cases/{case_id}")
    separator = "&" if "?" in target else "?"
    return RedirectResponse(f"{target}{separator}done={action}", status_code=303)
