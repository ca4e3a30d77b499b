"""FastAPI dependencies: database session, settings and the authenticated actor."""

from __future__ import annotations

import datetime as dt
from collections.abc import AsyncIterator, Callable, Iterator
from typing import Annotated

from fastapi import Depends, Request
from fastapi.security import APIKeyHeader, HTTPAuthorizationCredentials, HTTPBearer
from sqlalchemy.orm import Session

from api.actors import Actor
from api.admin_audit import set_actor
from api.auth import DEVICE_KEY_PREFIX, TOKEN_PREFIX, authenticate_device, authenticate_token, touch_device
from api.csrf import check_cookie_request
from api.errors import ApiError, Forbidden
from api.login_guard import client_address, guard_for
from api.models import Role, utcnow
from api.session_slots import SessionSlots
from api.settings import Settings

TOKEN_COOKIE = "streetwatch_token"
CONSOLE_PREFIX = "/console"  # console pages check the CSRF field of their forms themselves
LAST_SEEN_RESOLUTION = dt.timedelta(minutes=1)


class Unauthorized(ApiError):
    status_code = 401
    code = "unauthorized"


def get_settings(request: Request) -> Settings:
    settings: Settings = request.app.state.settings
    return settings


async def session_slot(request: Request) -> AsyncIterator[None]:
    """Wait on the event loop for a slot before a session is opened (api.session_slots: why)."""
    slots: SessionSlots = request.app.state.session_slots
    async with slots.semaphore():
        yield


def get_session(
    request: Request, _slot: Annotated[None, Depends(session_slot, scope="function")]
) -> Iterator[Session]:
    """One session per request; committed when the handler returns, rolled back if it raises."""
    session: Session = request.app.state.sessions()
    try:
        yield session
        session.commit()
    except BaseException:
        session.rollback()
        raise
    finally:
        session.close()


SettingsDep = Annotated[Settings, Depends(get_settings)]
# scope="function": commit before the response is sent, so a client never sees 2xx for a lost write.
SessionDep = Annotated[Session, Depends(get_session, scope="function")]

_bearer = HTTPBearer(auto_error=False, description="Operator token (swt_...) or device key (swd_...)")
_device_header = APIKeyHeader(name="X-Device-Key", auto_error=False, description="Device API key (swd_...)")


def get_actor(
    request: Request,
    session: SessionDep,
    bearer: Annotated[HTTPAuthorizationCredentials | None, Depends(_bearer)],
    device_key: Annotated[str | None, Depends(_device_header)],
) -> Actor:
    """The caller: a device (X-Device-Key or Bearer swd_...) or an operator (Bearer swt_... or cookie)."""
    secret = device_key or (bearer.credentials if bearer else None)
    if not secret:
        secret = request.cookies.get(TOKEN_COOKIE)
        if secret and not request.url.path.startswith(CONSOLE_PREFIX):
            check_cookie_request(request)  # a browser sends the cookie on its own: refuse forged requests
    if not secret:
        raise Unauthorized("authentication required: an operator token or a device key")
    if secret.startswith(f"{DEVICE_KEY_PREFIX}_"):
        device = authenticate_device(session, secret)
        if device is None:
            # Failures only: a valid key is never slowed by the throttle (see api.login_guard).
            guard_for(request).device_key_failed(client_address(request))
            raise Unauthorized("invalid or disabled device key")
        now = utcnow()
        # Touch last_seen at most once a minute: the write row-locks the device until commit on PostgreSQL,
        # which would serialise every request from one box.
        if device.last_seen_at is None or now - device.last_seen_at > LAST_SEEN_RESOLUTION:
            touch_device(session, device.id, now)
        # End the check's transaction now: the route runs after a wait for a worker thread, and a
        # transaction left open across that wait holds a pooled connection (and, after the touch, the
        # device's row lock, which the box's other requests then queue on while holding threads). With a
        # fleet's concurrent requests every thread ended up waiting on one of them and the store stalled
        # until the pool's 30 s timeout (503s; benchmarks/README.md "Fleet").
        session.commit()
        actor = Actor(kind="device", id=device.id, name=device.name)
        set_actor(session, actor.label)
        return actor
    if secret.startswith(f"{TOKEN_PREFIX}_"):
        user = authenticate_token(session, secret)
        if user is None:
            raise Unauthorized("invalid, expired or revoked token: log in again")
        actor = Actor(kind="user", id=user.id, name=user.username, role=Role(user.role), unit_id=user.unit_id)
        set_actor(session, actor.label)  # who the admin audit trail names for this request's changes
        return actor
    raise Unauthorized(
        "unrecognised credential: expected an operator token (swt_...) or a device key (swd_...)"
    )


ActorDep = Annotated[Actor, Depends(get_actor)]


def get_operator(actor: ActorDep) -> Actor:
    if actor.kind != "user":
        raise Forbidden("devices may only submit cases and evidence and read their own configuration")
    return actor


def get_device(actor: ActorDep) -> Actor:
    if not actor.is_device:
        raise Forbidden("this endpoint is for devices (X-Device-Key)")
    return actor


OperatorDep = Annotated[Actor, Depends(get_operator)]
DeviceDep = Annotated[Actor, Depends(get_device)]


def require_roles(*roles: Role) -> Callable[[Actor], Actor]:
    """Dependency factory: the operator must have one of ``roles``."""

    def check(actor: OperatorDep) -> Actor:
        if actor.role not in roles:
            allowed = ", ".join(r.value for r in roles)
            raise Forbidden(f"role '{actor.role}' may not do this; allowed roles: {allowed}")
        return actor

    return check


AdminDep = Annotated[Actor, Depends(require_roles(Role.ADMIN))]
