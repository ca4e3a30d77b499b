"""Drawing missed objects on a case's evidence image (api.review_labels): the image with the boxes drawn so
far, a type to choose, and a box drawn with the mouse, a finger or a pen (pointer events; the four numbers
can also be typed). Each box is saved with a form post (CSRF), and deleted the same way by its author or
an admin. The boxes are SVG rectangles the server places, so the page shows them without script and under
the console's CSP (no inline script or style)."""

from __future__ import annotations

from typing import Annotated

from fastapi import Form, Path, Query
from fastapi.responses import RedirectResponse, Response
from fastapi.routing import APIRouter
from sqlalchemy import select

from api.case_actions import get_case_for
from api.clips import CLIP_CONTENT_TYPE
from api.console.acting import recode_choices
from api.console.deps import Page, PageDep
from api.console.pages_cases import BEFORE  # the case page's "before" gallery
from api.console.rendering import render
from api.console.security import CSRF_FIELD, check_csrf
from api.errors import ApiError
from api.models import ReviewLabel, Role
from api.review_labels import LABEL_ROLES, add_label, delete_label

router = APIRouter(prefix="/console/cases", include_in_schema=False)
CaseId = Annotated[int, Path(ge=1, le=2**31 - 1)]
Share = Annotated[float, Form(ge=0, le=1)]


def may_draw(page: Page) -> bool:
    return page.role in LABEL_ROLES


def render_labels(
    page: Page, case_id: int, evidence_id: int | None, *, error: str | None = None, status_code: int = 200
) -> Response:
    session = page.session
    case = get_case_for(session, case_id, page.operator)  # 404 for a case the operator may not see
    # the camera's pictures of the violation (not the unit's photos after handling, not clips)
    images = [e for e in case.evidence if e.kind in BEFORE and e.content_type != CLIP_CONTENT_TYPE]
    chosen = next((e for e in images if e.id == evidence_id), None)
    if chosen is None:
        best = [e for e in images if e.id == case.best_evidence_id]
        clean = [e for e in images if e.kind == "frame"]
        confirmation = [e for e in images if e.kind == "confirmation"]
        # the undrawn frame first (training reads it), else the confirmation frame: the export labels it,
        # the frame of the same moment and the close-up cut from it
        preferred = clean or confirmation or best or images
        chosen = preferred[0] if preferred else None
    labels = (
        list(
            session.scalars(
                select(ReviewLabel).where(ReviewLabel.evidence_id == chosen.id).order_by(ReviewLabel.id)
            )
        )
        if chosen is not None
        else []
    )
    operator = page.operator
    return render(
        page,
        "cases/labels.html",
        status_code=status_code,
        case=case,
        images=images,
        image=chosen,
        labels=labels,
        choices=recode_choices(session),
        may_draw=may_draw(page),
        may_delete=lambda label: (
            operator.role == Role.ADMIN
            or (label.created_by_user_id == operator.id if label.created_by_user_id else False)
        ),
        error=error,
        done=page.request.query_params.get("done"),
    )


@router.get("/{case_id}/labels")
def labels_page(
    case_id: CaseId, page: PageDep, evidence: Annotated[int | None, Query(ge=1, le=2**31 - 1)] = None
) -> Response:
    return render_labels(page, case_id, evidence)


@router.post("/{case_id}/labels")
def add_label_form(
    case_id: CaseId,
    page: PageDep,
    evidence_id: Annotated[int, Form(ge=1, le=2**31 - 1)],
    x1: Share,
    y1: Share,
    x2: Share,
    y2: Share,
    event_code: Annotated[str, Form(min_length=1, max_length=16)],
    csrf_token: Annotated[str, Form(alias=CSRF_FIELD)] = "",
) -> Response:
    check_csrf(page.request, csrf_token)
    try:
        add_label(page.session, page.operator, case_id, evidence_id, [x1, y1, x2, y2], event_code)
    except ApiError as error:
        page.session.rollback()
        return render_labels(
            page, case_id, evidence_id, error=page.error_text(error), status_code=error.status_code
        )
    page.session.commit()
    return RedirectResponse(
        f"/console/cases/{case_id}/labels?evidence={evidence_id}&done=added", status_code=303
    )


@router.post("/{case_id}/labels/{label_id}/delete")
def delete_label_form(
    case_id: CaseId,
    label_id: Annotated[int, Path(ge=1, le=2**31 - 1)],
    page: PageDep,
    evidence_id: Annotated[int, Form(ge=1, le=2**31 - 1)],
    csrf_token: Annotated[str, Form(alias=CSRF_FIELD)] = "",
) -> Response:
    check_csrf(page.request, csrf_token)
    try:
        delete_label(page.session, page.operator, case_id, label_id)
    except ApiError as error:
        page.session.rollback()
        return render_labels(
            page, case_id, evidence_id, error=page.error_text(error), status_code=error.status_code
        )
    page.session.commit()
    return RedirectResponse(
        f"/console/cases/{case_id}/labels?evidence={evidence_id}&done=deleted", status_code=303
    )
