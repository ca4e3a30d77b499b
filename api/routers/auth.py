"""Operator login, logout and identity."""

from __future__ import annotations

import datetime as dt
from typing import Annotated

from fastapi import APIRouter, Query, Request, Response
from pydantic import BaseModel, Field
from sqlalchemy import func, select

from api.auth import issue_token, sha256_hex
from api.deps import TOKEN_COOKIE, AdminDep, OperatorDep, SessionDep, SettingsDep, Unauthorized
from api.login_guard import client_address, guard_for, guarded_login
from api.models import ApiToken, AuthLockout, User
from api.routers.responses import AUTHENTICATED, INVALID, Responses, errors
from api.schemas import ErrorBody

router = APIRouter(prefix="/api/v1/auth", tags=["auth"])


class LoginRequest(BaseModel):
    username: str = Field(min_length=1, max_length=64)
    password: str = Field(min_length=1, max_length=200)


class UserPublic(BaseModel):
    id: int
    username: str
    display_name: str
    role: str
    unit_id: int | None


class TokenPublic(BaseModel):
    access_token: str
    token_type: str = "bearer"
    expires_at: dt.datetime
    user: UserPublic


def user_public(user: User) -> UserPublic:
    return UserPublic(
        id=user.id,
        username=user.username,
        display_name=user.display_name,
        role=user.role,
        unit_id=user.unit_id,
    )


_RETRY_AFTER = {"Retry-After": {"description": "Seconds to wait.", "schema": {"type": "integer"}}}
THROTTLED: Responses = {
    429: {
        "model": ErrorBody,
        "headers": _RETRY_AFTER,
        "description": "Too many failed attempts for this account or client address: wait `retry_after_s`.",
    },
    503: {
        "model": ErrorBody,
        "headers": _RETRY_AFTER,
        "description": "Every password-check slot is busy: wait `retry_after_s`.",
    },
}


class LockoutPublic(BaseModel):
    """A failed credential that locked an account or a client address (never the password)."""

    id: int
    at: dt.datetime
    scope: str = Field(description="account (a username), address (logins) or device (device keys).")
    subject: str = Field(description="The username or the client address that was locked.")
    address: str = Field(description="The client address the failure came from.")
    failures: int
    locked_until: dt.datetime


class LockoutsPublic(BaseModel):
    data: list[LockoutPublic]
    count: int


@router.post("/login", response_model=TokenPublic, responses={**errors(400, 401, 422), **THROTTLED})
def login_route(
    body: LoginRequest, request: Request, session: SessionDep, settings: SettingsDep, response: Response
) -> TokenPublic:
    user = guarded_login(
        guard_for(request),
        session,
        username=body.username,
        password=body.password,
        address=client_address(request),
    )
    if user is None:
        raise Unauthorized("wrong username or password")
    token, row = issue_token(session, user, settings.token_ttl_hours)
    response.set_cookie(
        TOKEN_COOKIE, token, httponly=True, samesite="strict", max_age=int(settings.token_ttl_hours * 3600)
    )
    return TokenPublic(access_token=token, expires_at=row.expires_at, user=user_public(user))


@router.post("/logout", status_code=204, responses=AUTHENTICATED)
def logout_route(actor: OperatorDep, session: SessionDep, response: Response) -> None:
    for row in session.scalars(
        select(ApiToken).where(ApiToken.user_id == actor.id, ApiToken.revoked.is_(False))
    ):
        row.revoked = True
    response.delete_cookie(TOKEN_COOKIE)


@router.get("/me", response_model=UserPublic, responses=AUTHENTICATED)
def me_route(actor: OperatorDep, session: SessionDep) -> UserPublic:
    user = session.get(User, actor.id)
    if user is None:  # deleted between token check and now
        raise Unauthorized("user no longer exists")
    return user_public(user)


@router.get("/lockouts", response_model=LockoutsPublic, responses={**AUTHENTICATED, **INVALID})
def lockouts_route(
    _admin: AdminDep,
    session: SessionDep,
    limit: Annotated[int, Query(ge=1, le=500)] = 100,
    offset: Annotated[int, Query(ge=0)] = 0,
) -> LockoutsPublic:
    """Accounts and client addresses locked after failed credentials, newest first."""
    rows = session.scalars(
        select(AuthLockout).order_by(AuthLockout.at.desc(), AuthLockout.id.desc()).limit(limit).offset(offset)
    )
    count = session.scalar(select(func.count()).select_from(AuthLockout)) or 0
    data = [LockoutPublic.model_validate(row, from_attributes=True) for row in rows]
    return LockoutsPublic(data=data, count=count)


__all__ = ["router", "sha256_hex"]
