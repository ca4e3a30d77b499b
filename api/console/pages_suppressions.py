"""A camera's false-alarm memory: the suppressions made by voiding its cases as false positives (with the
crop that caused each, who, when, until when), and their removal by an admin or a shift leader (a plain
form post with the CSRF token; the page reloads with a confirmation)."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Form, Path
from fastapi.responses import RedirectResponse, Response

from api import suppressions
from api.console.deps import PageDep
from api.console.names import camera_names, violation_type_names
from api.console.pages_cameras import VIEWER_ROLES, CodePath
from api.console.rendering import render
from api.console.security import CSRF_FIELD, check_csrf
from api.errors import Forbidden
from api.routers.suppressions import REMOVE_ROLES

router = APIRouter(prefix="/console/cameras", include_in_schema=False)


@router.get("/{code}/suppressions")
def suppressions_page(code: CodePath, page: PageDep, removed: int | None = None) -> Response:
    """Any camera code a case named: a camera only a daemon's YAML has gets its list too."""
    if page.operator.role not in VIEWER_ROLES:
        raise Forbidden(f"role '{page.operator.role}' may not open this page")
    return render(
        page,
        "cameras/suppressions.html",
        camera=code,
        camera_name=camera_names(page.session, [code])[code],
        type_names=violation_type_names(page.session, page.lang),
        rows=suppressions.for_camera(page.session, code),
        can_remove=page.operator.role in REMOVE_ROLES,
        removed=removed,
    )


@router.post("/{code}/suppressions/{suppression_id}/delete")
def remove_suppression(
    code: CodePath,
    suppression_id: Annotated[int, Path(ge=1, le=2**31 - 1)],
    page: PageDep,
    csrf_token: Annotated[str, Form(alias=CSRF_FIELD)] = "",
) -> Response:
    check_csrf(page.request, csrf_token)
    if page.operator.role not in REMOVE_ROLES:
        raise Forbidden(f"role '{page.operator.role}' may not remove a suppression")
    suppressions.remove(page.session, suppression_id, page.operator)
    page.session.commit()
    return RedirectResponse(f"/console/cameras/{code}/suppressions?removed={suppression_id}", status_code=303)
