"""Operator login, logout and identity."""

from __future__ import annotations

import datetime as dt

from fastapi import APIRouter, Response
from pydantic import BaseModel, Field
from sqlalchemy import select

from api.auth import issue_token, login, sha256_hex
from api.deps import TOKEN_COOKIE, OperatorDep, SessionDep, SettingsDep, Unauthorized
from api.models import ApiToken, User
from api.routers.responses import AUTHENTICATED, errors

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


@router.post("/login", response_model=TokenPublic, responses=errors(400, 401, 422))
def login_route(
    body: LoginRequest, session: SessionDep, settings: SettingsDep, response: Response
) -> TokenPublic:
    user = login(session, body.username, body.password)
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


__all__ = ["router", "sha256_hex"]
