"""Verification by camera: the resolved cases on a device's cameras and the device's verdict on each."""

from __future__ import annotations

import datetime as dt
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field

DeviceAction = Literal["verify", "rework"]
DEVICE_ACTIONS: tuple[DeviceAction, ...] = ("verify", "rework")


class DeviceCase(BaseModel):
    """Only what a box needs to look at a zone again; devices read no other case data."""

    id: int
    status: str
    camera: str
    zone: str | None
    place: str
    violation_code: str
    violation_type: str | None = Field(description="The pipeline's type (illegal_parking) of the event code.")
    resolved_at: dt.datetime | None
    rework_count: int


class DeviceCasesPage(BaseModel):
    data: list[DeviceCase]
    count: int


class DeviceActionBody(BaseModel):
    """The body of ``POST`` :func:`paths.case_action` from a device (all optional)."""

    model_config = ConfigDict(extra="forbid")

    reason: str | None = Field(None, max_length=200)
    note: str | None = Field(None, max_length=2000)
