"""/console/admin: the first area (units); the nav link points here."""

from __future__ import annotations

from fastapi import APIRouter
from fastapi.responses import RedirectResponse

from api.console.admin.forms import require_admin
from api.console.deps import PageDep

router = APIRouter(prefix="/console/admin", include_in_schema=False)


@router.get("")
def admin_index(page: PageDep) -> RedirectResponse:
    require_admin(page)
    return RedirectResponse("/console/admin/units", status_code=303)
