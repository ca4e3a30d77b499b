"""Typed errors of the case store. Services raise these; the app turns them into HTTP responses."""

from __future__ import annotations

from typing import Any

from common.messages import Message


class ApiError(Exception):
    """``message`` is the English detail the JSON API answers with; ``msg`` (or a :class:`Message` given
    as ``message``) the catalogued message (api.messages) the console shows in the reader's language."""

    status_code = 400
    code = "bad_request"
    headers: dict[str, str] | None = None  # sent with the answer, e.g. Retry-After

    def __init__(self, message: str | Message, *, msg: Message | None = None, **details: Any) -> None:
        if isinstance(message, Message):
            msg = msg or message
            message = str(message)
        super().__init__(message)
        self.message = message
        self.msg = msg
        self.details = details


class NotFound(ApiError):
    status_code = 404
    code = "not_found"


class Forbidden(ApiError):
    """The actor's role or unit does not allow this (403)."""

    status_code = 403
    code = "forbidden"


class Conflict(ApiError):
    """The resource's state does not allow this (409): e.g. a transition not allowed from the status."""

    status_code = 409
    code = "conflict"


class InvalidInput(ApiError):
    status_code = 422
    code = "invalid_input"


class PayloadTooLarge(ApiError):
    status_code = 413
    code = "payload_too_large"
