"""What a refused input says, in the reader's language: pydantic's validation errors as short catalogued
phrases ("必填", "超出允许范围"), a catalogued refusal (:class:`api.messages.Refusal`) as its own message,
and nothing in English on a Chinese page (pydantic's own sentence only for English readers). Shared by the
admin forms and the zone editor's save."""

from __future__ import annotations

from typing import Any

from api.console.deps import Page
from common.messages import Message

# pydantic error types -> message key (api/console/i18n/admin.py)
_ERROR_KEYS = {
    "missing": "admin.error.required",
    "string_too_short": "admin.error.required",
    "string_too_long": "admin.error.too_long",
    "string_pattern_mismatch": "admin.error.pattern",
    "float_parsing": "admin.error.number",
    "int_parsing": "admin.error.number",
    "greater_than": "admin.error.range",
    "greater_than_equal": "admin.error.range",
    "less_than": "admin.error.range",
    "less_than_equal": "admin.error.range",
    "enum": "admin.error.choice",
    "literal_error": "admin.error.choice",
    "date_from_datetime_parsing": "admin.error.date",
    "date_parsing": "admin.error.date",
    "too_short": "admin.error.required",
    "too_long": "admin.error.too_many",
    "finite_number": "admin.error.number",
    "int_from_float": "admin.error.integer",
    "bool_parsing": "admin.error.choice",
}


def validation_detail(page: Page, error: Any) -> str:
    """One pydantic error (an item of ``ValidationError.errors()``) as the reader's short phrase."""
    ctx = error.get("ctx") or {}
    refusal = getattr(ctx.get("error"), "msg", None)
    if isinstance(refusal, Message):
        return page.say(refusal)
    if error["type"] == "string_too_short" and error.get("input"):
        return page.t("admin.error.too_short", min=ctx.get("min_length", ""))
    key = _ERROR_KEYS.get(error["type"])
    if key:
        return page.t(key)
    if page.lang == "en":
        return str(error["msg"]).removeprefix("Value error, ")
    return page.t("admin.error.invalid")


def refusal_text(page: Page, exc: ValueError) -> str:
    """A ValueError's text: its catalogued message when it is a Refusal, else as written."""
    refusal = getattr(exc, "msg", None)
    return page.say(refusal) if isinstance(refusal, Message) else str(exc)
