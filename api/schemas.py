"""Shared response shapes (per-resource schema families live beside their routers)."""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict


class Page[T](BaseModel):
    """A page of results and the total count matching the filters."""

    data: list[T]
    count: int


class ORMModel(BaseModel):
    model_config = ConfigDict(from_attributes=True)


class Message(BaseModel):
    detail: str
