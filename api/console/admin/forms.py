"""What every admin page shares: the admin-only guard, reading a posted form (CSRF first), a form's fields
for the generic templates, clear messages for bad input (zh/en, naming the field), all-or-nothing saving,
and the record of who changed what.

Validation is never copied here: the pages build the same input models as the API (:mod:`api.reference`)
and call the same services, so a form and a request to the API accept and refuse the same things. The
routing rules' services write their history (RoutingRuleHistory) exactly as the API does; every change
lands in the admin audit trail (api.admin_audit, from the session itself) and :func:`audit` logs a line.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Annotated, Any, TypeVar

from fastapi import Depends, Request
from fastapi.responses import RedirectResponse
from pydantic import ValidationError
from starlette.datastructures import FormData

from api.console.deps import Page
from api.console.refusals import refusal_text, validation_detail
from api.console.security import CSRF_FIELD, check_csrf
from api.errors import ApiError, Forbidden, NotFound
from api.models import Role

log = logging.getLogger("api.console.admin")

T = TypeVar("T")


def require_admin(page: Page) -> None:
    """Admin pages are for admins only: anyone else gets the console's 403 page."""
    if page.operator.role is not Role.ADMIN:
        raise Forbidden(f"role '{page.operator.role}' may not manage reference data")


async def _posted(request: Request) -> FormData:
    return await request.form()


FormDep = Annotated[FormData, Depends(_posted)]


def posted(page: Page, form: FormData) -> dict[str, str]:
    """The posted text fields after the CSRF check and the admin check (in that order, like every form)."""
    check_csrf(page.request, _text(form.get(CSRF_FIELD)))
    require_admin(page)
    return {key: _text(value) for key, value in form.items() if key != CSRF_FIELD}


def _text(value: Any) -> str:
    return value.strip() if isinstance(value, str) else ""


def optional(values: dict[str, str], name: str) -> str | None:
    """An optional text field: empty means "not given"."""
    return values.get(name) or None


def checked(values: dict[str, str], name: str) -> bool:
    return values.get(name) in {"on", "true", "1"}


def number(values: dict[str, str], name: str) -> str | None:
    """A number field as the model gets it (pydantic parses and range-checks it); empty is None."""
    return values.get(name) or None


def audit(page: Page, area: str, action: str, subject: str) -> None:
    """One log line per change (the admin_events row itself is written by api.admin_audit)."""
    log.info("admin change: %s %s %s by %s", area, action, subject, page.operator.label)


def redirect(url: str) -> RedirectResponse:
    return RedirectResponse(url, status_code=303)


# --- the fields of a form, rendered by templates/admin/_form.html ---


@dataclass
class Field:
    name: str
    label: str  # i18n key
    kind: str = "text"  # text, number, select, checkbox, password, date
    value: Any = ""
    options: Sequence[tuple[str, str]] = ()  # (value, shown text) for a select
    required: bool = False
    hint: str | None = None  # i18n key
    step: str | None = None
    readonly: bool = False
    lang: str | None = None  # a field in one language whatever the page's (the English name): lang="en"


@dataclass
class Form:
    id: str
    action: str
    fields: list[Field]
    submit: str  # i18n key
    errors: list[str] = field(default_factory=list)
    danger: bool = False  # the button of a form that takes something away (deactivate, revoke)


# --- messages for bad input ---


def field_label(page: Page, name: str) -> str:
    key = f"admin.field.{name}"
    try:
        return page.t(key)
    except KeyError:
        return name


def problems(page: Page, exc: Exception) -> list[str]:
    """Clear messages for a refused form, each naming the field in the user's language."""
    if isinstance(exc, ValidationError):
        messages = []
        for error in exc.errors():
            where = str(error["loc"][0]) if error["loc"] else ""
            detail = validation_detail(page, error)
            messages.append(f"{field_label(page, where)}: {detail}" if where else detail)
        return messages
    if isinstance(exc, ApiError):
        name = exc.details.get("field")
        prefix = f"{field_label(page, str(name).split('.')[-1])}: " if name else ""
        return [page.t("admin.error.refused", detail=prefix + (page.error_text(exc) or exc.message))]
    if isinstance(exc, ValueError):
        return [page.t("admin.error.refused", detail=refusal_text(page, exc))]
    raise exc


def attempt(page: Page, change: Callable[[], T]) -> tuple[T | None, list[str]]:
    """Run ``change`` all-or-nothing: on bad input nothing it wrote is kept, and the messages come back.
    Forbidden and not-found are not input problems: they propagate to the console's error page."""
    try:
        result = change()
        page.session.flush()
    except (ValidationError, ApiError, ValueError) as exc:
        page.session.rollback()
        if isinstance(exc, Forbidden) or (isinstance(exc, NotFound) and "field" not in exc.details):
            raise
        return None, problems(page, exc)
    page.session.commit()
    return result, []
