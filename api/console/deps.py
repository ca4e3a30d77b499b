"""Who is looking at a console page: the same cookie and the same checks as the API (api.deps.get_actor).

A page handler takes :data:`PageDep`; without a valid login it redirects to the login page instead of
answering 401, and a device key gets 403 as in the API.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass
from typing import Annotated
from zoneinfo import ZoneInfo

from fastapi import Depends, Request
from sqlalchemy import select
from sqlalchemy.orm import Session

from api.actors import Actor
from api.console.i18n import Lang, catalogue, translate
from api.console.security import console_secret, csrf_cookie_value, csrf_token, request_lang
from api.deps import SessionDep, Unauthorized, get_actor, get_operator
from api.errors import ApiError
from api.models import CalendarSettings, Role, User
from api.work_calendar import DEFAULT_TIMEZONE
from common.messages import Message


class LoginRequired(Exception):
    """No valid login for a page: the console answers with a redirect to the login page."""

    def __init__(self, next_path: str) -> None:
        super().__init__(next_path)
        self.next_path = next_path


@dataclass
class Page:
    """Everything a page handler and its template need about the request."""

    request: Request
    session: Session
    actor: Actor | None  # None only on the login page
    display_name: str
    lang: Lang
    csrf_cookie: str
    csrf_cookie_is_new: bool
    csrf_token: str
    timezone: ZoneInfo

    def t(self, key: str, **values: object) -> str:
        return translate(self.lang, key, **values)

    def say(self, message: Message) -> str:
        """A catalogued message (api.messages) in this page's language."""
        from api.console.formatting import say  # formatting imports the catalogue this module also needs

        return say(message, self.lang)

    def error_text(self, error: ApiError) -> str:
        """What to tell this reader about ``error``: its catalogued message, else (in Chinese) what its
        kind of error means; English readers get the API's own sentence."""
        if error.msg is not None:
            return self.say(error.msg)
        if self.lang == "en":
            return error.message
        return self.t(f"error.generic.{error.code}") if f"error.generic.{error.code}" in catalogue() else ""

    @property
    def role(self) -> Role | None:
        return self.actor.role if self.actor else None

    @property
    def operator(self) -> Actor:
        """The logged-in operator (pages behind :data:`PageDep` always have one)."""
        if self.actor is None:
            raise LoginRequired(self.request.url.path)
        return self.actor

    def local(self, moment: dt.datetime | None) -> dt.datetime | None:
        return moment.astimezone(self.timezone) if moment else None


def _timezone(session: Session) -> ZoneInfo:
    """The working calendar's time zone: times on pages are the command centre's local times."""
    name = session.scalar(select(CalendarSettings.timezone).order_by(CalendarSettings.id).limit(1))
    try:
        return ZoneInfo(name or DEFAULT_TIMEZONE)
    except (KeyError, ValueError):  # a broken row must not take the console down
        return ZoneInfo(DEFAULT_TIMEZONE)


def _page(request: Request, session: Session, actor: Actor | None) -> Page:
    cookie, is_new = csrf_cookie_value(request)
    name = ""
    if actor is not None and actor.id is not None:
        user = session.get(User, actor.id)
        name = (user.display_name if user else "") or actor.name
    return Page(
        request=request,
        session=session,
        actor=actor,
        display_name=name,
        lang=request_lang(request),
        csrf_cookie=cookie,
        csrf_cookie_is_new=is_new,
        csrf_token=csrf_token(console_secret(request), cookie),
        timezone=_timezone(session),
    )


def get_page(request: Request, session: SessionDep) -> Page:
    """A page for a logged-in operator (the API's own authentication), else a redirect to log in."""
    try:
        actor = get_operator(get_actor(request, session, None, None))
    except Unauthorized:
        target = request.url.path + (f"?{request.url.query}" if request.url.query else "")
        raise LoginRequired(target) from None
    return _page(request, session, actor)


def get_anonymous_page(request: Request, session: SessionDep) -> Page:
    """A page anyone may open (the login page)."""
    return _page(request, session, None)


PageDep = Annotated[Page, Depends(get_page)]
AnonymousPageDep = Annotated[Page, Depends(get_anonymous_page)]
