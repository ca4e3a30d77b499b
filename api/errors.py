"""Typed errors of the case store. Services raise these; the app turns them into HTTP responses."""

from __future__ import annotations

from typing import Any


class ApiError(Exception):
    status_code = 400
    code = "bad_request"
    headers: dict[str, str] | None = None  # sent with the answer, e.g. Retry-After

    def __init__(self, message: str, **details: Any) -> None:
        super().__init__(message)
        self.message = message
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
