"""The model registry page (admins): versions, what is live and shadow where, the assignment history, the
shadow comparison per device and class with crops of disagreements, and the promote / shadow / rollback
buttons (plain form posts with the CSRF token; the page reloads with what was done)."""

from __future__ import annotations

from collections.abc import Callable
from typing import Annotated
from urllib.parse import quote

from fastapi import APIRouter, Form, Path
from fastapi.responses import RedirectResponse, Response
from sqlalchemy import select

from api import model_comparisons, model_registry
from api.console.deps import PageDep
from api.console.rendering import render
from api.console.security import CSRF_FIELD, check_csrf
from api.errors import ApiError, Forbidden
from api.model_registry import AssignmentIn, RollbackIn
from api.models import Device, ModelAssignment, Role
from contract.device_config import MAX_SHADOW_SHARE

router = APIRouter(prefix="/console/models", include_in_schema=False)
VersionPath = Annotated[int, Path(ge=1, le=2**31 - 1)]


def _admin(page: PageDep) -> None:
    if page.operator.role is not Role.ADMIN:
        raise Forbidden(f"role '{page.operator.role}' may not open the model registry")


@router.get("")
def models_page(
    page: PageDep,
    done: str | None = None,
    version: int | None = None,
    failed: str | None = None,
) -> Response:
    _admin(page)
    session = page.session
    devices = [(None, None), *session.execute(select(Device.id, Device.name).order_by(Device.name))]
    current = [
        (name, role, model_registry.current(session, role, device_id))
        for device_id, name in devices
        for role in model_registry.ROLES
    ]
    shadows = {
        row.version_id
        for _, role, row in current
        if role == "shadow" and row is not None and row.version_id is not None
    }
    comparisons = {v: model_comparisons.totals(session, v) for v in sorted(shadows)}
    return render(
        page,
        "models/index.html",
        versions=model_registry.list_versions(session),
        current=[(name, role, row) for name, role, row in current if row is not None],
        history=model_registry.assignments(session, limit=30),
        comparisons=comparisons,
        max_share=MAX_SHADOW_SHARE,
        done=done,
        done_version=version,
        failed=failed,
    )


def _act(
    page: PageDep,
    csrf_token: str,
    what: str,
    version_id: int | None,
    act: Callable[[], list[ModelAssignment]],
) -> Response:
    check_csrf(page.request, csrf_token)
    _admin(page)
    try:
        rows = act()
    except ApiError as exc:
        page.session.rollback()
        return RedirectResponse(f"/console/models?failed={quote(exc.message[:200])}", status_code=303)
    page.session.commit()
    shown = version_id if version_id is not None else (rows[0].version_id if rows else None)
    return RedirectResponse(f"/console/models?done={what}&version={shown}", status_code=303)


@router.post("/{version_id}/promote")
def promote(
    version_id: VersionPath, page: PageDep, csrf_token: Annotated[str, Form(alias=CSRF_FIELD)] = ""
) -> Response:
    return _act(
        page, csrf_token, "promoted", version_id,
        lambda: model_registry.promote(page.session, page.operator, version_id, RollbackIn()),
    )  # fmt: skip


@router.post("/{version_id}/shadow")
def shadow(
    version_id: VersionPath,
    page: PageDep,
    share: Annotated[float, Form(ge=0, le=MAX_SHADOW_SHARE)] = 0.1,
    csrf_token: Annotated[str, Form(alias=CSRF_FIELD)] = "",
) -> Response:
    body = AssignmentIn(role="shadow", shadow_share=share)
    return _act(
        page, csrf_token, "shadowed", version_id,
        lambda: model_registry.assign(page.session, page.operator, version_id, body),
    )  # fmt: skip


@router.post("/rollback")
def rollback(page: PageDep, csrf_token: Annotated[str, Form(alias=CSRF_FIELD)] = "") -> Response:
    return _act(
        page, csrf_token, "rolled_back", None,
        lambda: model_registry.rollback(page.session, page.operator, RollbackIn()),
    )  # fmt: skip
