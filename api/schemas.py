"""Shared response shapes (per-resource schema families live beside their routers)."""

from __future__ import annotations

from typing import Generic, Literal, TypeVar

from pydantic import BaseModel, ConfigDict, Field

T = TypeVar("T")


class Page(BaseModel, Generic[T]):
    """A page of results and the total count matching the filters."""

    data: list[T]
    count: int


class ORMModel(BaseModel):
    model_config = ConfigDict(from_attributes=True)


class Message(BaseModel):
    detail: str


class ErrorBody(BaseModel):
    """The body of an error answer (see api/app.py's handlers): a message for a person and a code for a
    program. Some errors add context beside ``field``, e.g. ``allowed``, ``roles`` or ``retry``."""

    model_config = ConfigDict(extra="allow")

    detail: str = Field(description="What is wrong and where.")
    code: str = Field(
        description="unauthorized, forbidden, not_found, conflict, payload_too_large, invalid_input, "
        "bad_request, method_not_allowed, ..."
    )
    field: str | None = Field(default=None, description="The input at fault, where there is one.")


class ValidationIssue(BaseModel):
    """One way the request does not match its schema (the rejected input is never echoed back)."""

    type: str = Field(description="Pydantic's error type, e.g. missing, string_too_long.")
    loc: list[str | int] = Field(description='Where: e.g. ["body", "periods", 0, 1] or ["query", "limit"].')
    msg: str


class ValidationErrorBody(BaseModel):
    """422: ``detail`` lists each problem when the request does not match the schema, or is one message
    when a check beyond the schema (an unknown code, a rule between fields) rejects a value."""

    model_config = ConfigDict(extra="allow")

    detail: str | list[ValidationIssue] = Field(description="The problems, or one message naming the value.")
    code: Literal["invalid_input"]
    field: str | None = Field(default=None, description="The input at fault, where there is one.")
