"""The error answers routes document, one entry per status, so that every route says the same about the
same error and shows the body the app's handlers really send (:mod:`api.schemas`)."""

from __future__ import annotations

from typing import Any

from api.schemas import ErrorBody, ValidationErrorBody

Responses = dict[int | str, dict[str, Any]]

_ERRORS: Responses = {
    400: {"model": ErrorBody, "description": "The body could not be parsed (not JSON or not form data)."},
    401: {"model": ErrorBody, "description": "No credential, or an invalid, expired or revoked one."},
    403: {
        "model": ErrorBody,
        "description": "The caller may not do this: a device on an operator's route or the reverse, "
        "or a role or unit that does not allow it.",
    },
    404: {"model": ErrorBody, "description": "Not found, or not visible to the caller."},
    409: {"model": ErrorBody, "description": "The resource's state, or a unique key, does not allow this."},
    408: {"model": ErrorBody, "description": "The body arrived too slowly (api.body_limits)."},
    413: {"model": ErrorBody, "description": "The upload is larger than allowed."},
    416: {"model": ErrorBody, "description": "The byte range asked for (Range) starts after the file's end."},
    422: {"model": ValidationErrorBody, "description": "Invalid input."},
    429: {
        "model": ErrorBody,
        "description": "Too many uploads in progress with this credential or in all; see Retry-After.",
    },
}


def errors(*statuses: int) -> Responses:
    """The documented error answers for ``statuses``."""
    return {status: _ERRORS[status] for status in statuses}


# Any route with a caller: no or a bad credential, or the wrong kind of caller or role.
AUTHENTICATED = errors(401, 403)
# Routes with parameters (path, query, header) or a body: the request may not match them.
INVALID = errors(422)
WITH_BODY = errors(400, 422)
NOT_FOUND = errors(404, 422)  # a path parameter names the resource
