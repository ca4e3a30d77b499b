"""Operators and their roles: create (with a password), change role, unit and display name, deactivate,
reset the password. Deactivating or resetting revokes the user's open sessions (their tokens)."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Annotated, Any
from urllib.parse import quote

from fastapi import APIRouter, Path
from fastapi.responses import Response
from pydantic import Field as ModelField
from pydantic import model_validator
from sqlalchemy import select, update
from sqlalchemy.orm import Session

from api.auth import create_user, hash_password
from api.console.admin.forms import (
    Field,
    Form,
    FormDep,
    attempt,
    audit,
    checked,
    optional,
    posted,
    redirect,
    require_admin,
)
from api.console.admin.pages import Row, cell, error_status, render_admin, yes_no
from api.console.admin.units import unit_options
from api.console.deps import Page, PageDep
from api.errors import Conflict, InvalidInput, NotFound
from api.messages import Refusal, msg
from api.models import ApiToken, Role, User
from api.reference.common import Code, StrictModel, ref_unit

router = APIRouter(prefix="/console/admin/users", include_in_schema=False)
UserId = Annotated[int, Path(ge=1, le=2**31 - 1)]
BASE = "/console/admin/users"
USERNAME_PATTERN = r"^[A-Za-z0-9._\-]+$"


class UserChange(StrictModel):
    """Role, unit and display name; a unit handler needs a unit (the board shows them their unit's cases)."""

    role: Role
    unit: Code | None = None
    display_name: str = ModelField(default="", max_length=100)
    active: bool = True

    @model_validator(mode="after")
    def _handler_has_unit(self) -> UserChange:
        if self.role is Role.UNIT_HANDLER and self.unit is None:
            raise Refusal(msg("ref.handler_unit"))
        return self


class UserIn(UserChange):
    username: str = ModelField(min_length=1, max_length=64, pattern=USERNAME_PATTERN)
    password: str = ModelField(min_length=8, max_length=200)


class PasswordIn(StrictModel):
    password: str = ModelField(min_length=8, max_length=200)


def _role_options(page: Page) -> list[tuple[str, str]]:
    return [(role.value, page.t(f"role.{role.value}")) for role in Role]


def _fields(page: Page, values: Mapping[str, Any], *, new: bool) -> list[Field]:
    fields = [
        Field(
            "username",
            "admin.field.username",
            value=values.get("username", ""),
            required=True,
            readonly=not new,
        ),
        Field("display_name", "admin.field.display_name", value=values.get("display_name", "")),
        Field(
            "role",
            "admin.field.role",
            kind="select",
            value=values.get("role", Role.VIEWER.value),
            options=_role_options(page),
        ),
        Field(
            "unit",
            "admin.field.unit",
            kind="select",
            value=values.get("unit") or "",
            options=unit_options(page.session, page, blank="admin.users.no_unit"),
            hint="admin.users.unit_hint",
        ),
    ]
    if new:
        fields.append(
            Field(
                "password",
                "admin.field.password",
                kind="password",
                required=True,
                hint="admin.users.password_hint",
            )
        )
    else:
        fields.append(
            Field("active", "admin.field.active", kind="checkbox", value=values.get("active", True))
        )
    return fields


def _list(page: Page, values: Mapping[str, Any], errors: list[str]) -> Response:
    users = page.session.scalars(select(User).order_by(User.username))
    rows = [
        Row(
            id=f"user-{user.username}",
            cells=[
                cell(user.username, f"{BASE}/{user.id}"),
                cell(user.display_name),
                cell(page.t(f"role.{user.role}") if user.role in {r.value for r in Role} else user.role),
                cell(user.unit.name if user.unit else "—"),
                cell(yes_no(page, user.active)),
            ],
            muted=not user.active,
        )
        for user in users
    ]
    return render_admin(
        page,
        "admin/area.html",
        status_code=error_status(errors),
        title="admin.users.title",
        explain="admin.users.explain",
        table_id="users",
        columns=[
            "admin.field.username",
            "admin.field.display_name",
            "admin.field.role",
            "admin.field.unit",
            "admin.field.active",
        ],
        rows=rows,
        form=Form("user-form", BASE, _fields(page, values, new=True), "admin.create", errors),
        form_title="admin.users.new",
    )


def _unit_id(session: Session, code: str | None) -> int | None:
    return ref_unit(session, code, "unit").id if code else None


def _revoke_tokens(session: Session, user_id: int) -> None:
    session.execute(update(ApiToken).where(ApiToken.user_id == user_id).values(revoked=True))


@router.get("")
def users_page(page: PageDep) -> Response:
    require_admin(page)
    return _list(page, {}, [])


@router.post("")
def create_user_form(page: PageDep, form: FormDep) -> Response:
    values = posted(page, form)

    def change() -> User:
        body = UserIn.model_validate(
            {
                "username": values.get("username", ""),
                "display_name": values.get("display_name", ""),
                "role": values.get("role", ""),
                "unit": optional(values, "unit"),
                "password": form.get("password") if isinstance(form.get("password"), str) else "",
            }
        )
        if page.session.scalar(select(User.id).where(User.username == body.username)) is not None:
            raise Conflict(msg("ref.duplicate_user", username=body.username), field="username")
        return create_user(
            page.session,
            username=body.username,
            password=body.password,
            role=body.role,
            unit_id=_unit_id(page.session, body.unit),
            display_name=body.display_name,
        )

    user, errors = attempt(page, change)
    if user is None:
        return _list(page, {k: v for k, v in values.items() if k != "password"}, errors)
    audit(page, "user", "created", user.username)
    return redirect(f"{BASE}?saved={quote(user.username)}")


def _get(session: Session, user_id: int) -> User:
    user = session.get(User, user_id)
    if user is None:
        raise NotFound(f"no user {user_id}")
    return user


def _edit(
    page: Page, user: User, values: Mapping[str, Any], errors: list[str], password_errors: list[str]
) -> Response:
    password = Form(
        "password-form",
        f"{BASE}/{user.id}/password",
        [
            Field(
                "password",
                "admin.field.new_password",
                kind="password",
                required=True,
                hint="admin.users.password_hint",
            )
        ],
        "admin.users.reset_password",
        password_errors,
    )
    return render_admin(
        page,
        "admin/edit.html",
        status_code=error_status(errors + password_errors),
        heading=page.t("admin.users.edit", name=user.username),
        back=BASE,
        links=[],
        form=Form("user-form", f"{BASE}/{user.id}", _fields(page, values, new=False), "admin.save", errors),
        extras=[
            {"title": "admin.users.reset_password", "explain": "admin.users.reset_explain", "form": password}
        ],
        history=None,
    )


def _values(user: User) -> dict[str, Any]:
    return {
        "username": user.username,
        "display_name": user.display_name,
        "role": user.role,
        "unit": user.unit.code if user.unit else "",
        "active": user.active,
    }


@router.get("/{user_id}")
def user_page(user_id: UserId, page: PageDep) -> Response:
    require_admin(page)
    return _edit(page, _get(page.session, user_id), _values(_get(page.session, user_id)), [], [])


@router.post("/{user_id}")
def update_user(user_id: UserId, page: PageDep, form: FormDep) -> Response:
    values = posted(page, form)
    user = _get(page.session, user_id)

    def change() -> User:
        body = UserChange.model_validate(
            {
                "role": values.get("role", ""),
                "unit": optional(values, "unit"),
                "display_name": values.get("display_name", ""),
                "active": checked(values, "active"),
            }
        )
        if user.id == page.operator.id and (body.role is not Role.ADMIN or not body.active):
            raise InvalidInput(msg("ref.own_admin"), field="role")
        was_active = user.active
        user.role = body.role.value
        user.unit_id = _unit_id(page.session, body.unit)
        user.display_name = body.display_name or user.username
        user.active = body.active
        if was_active and not body.active:
            _revoke_tokens(page.session, user.id)
        return user

    saved, errors = attempt(page, change)
    if saved is None:
        user = _get(page.session, user_id)
        return _edit(
            page, user, {**values, "username": user.username, "active": checked(values, "active")}, errors, []
        )
    audit(page, "user", "updated", saved.username)
    return redirect(f"{BASE}?saved={quote(saved.username)}")


@router.post("/{user_id}/password")
def reset_password(user_id: UserId, page: PageDep, form: FormDep) -> Response:
    posted(page, form)
    user = _get(page.session, user_id)
    raw = form.get("password")

    def change() -> User:
        body = PasswordIn.model_validate({"password": raw if isinstance(raw, str) else ""})
        user.password_hash = hash_password(body.password)
        _revoke_tokens(page.session, user.id)  # whoever knew the old password is logged out
        return user

    saved, errors = attempt(page, change)
    if saved is None:
        user = _get(page.session, user_id)
        return _edit(page, user, _values(user), [], errors)
    audit(page, "user", "password_reset", saved.username)  # never the password
    return redirect(f"{BASE}?saved={quote(saved.username)}")
