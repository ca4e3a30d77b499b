"""The case resource family: the device report (CaseReport) and what operators read back."""

from __future__ import annotations

import datetime as dt
from typing import Any

from pydantic import AwareDatetime, BaseModel, ConfigDict, Field, field_validator


class Box(BaseModel):
    model_config = ConfigDict(extra="forbid")

    xyxy: tuple[float, float, float, float] = Field(description="Frame pixels: x1, y1, x2, y2.")
    confidence: float = Field(ge=0, le=1)
    class_name: str = Field(max_length=64)
    track_id: int | None = None


class CaseReport(BaseModel):
    """A confirmed violation from an edge box (pipeline -> case store). The pipeline mints the key once."""

    model_config = ConfigDict(extra="forbid")

    idempotency_key: str = Field(min_length=8, max_length=128, pattern=r"^[A-Za-z0-9_.:\-]+$")
    camera: str = Field(min_length=1, max_length=64)
    zone: str = Field(min_length=1, max_length=64)
    place: str = Field(
        min_length=1, max_length=64, description="Responsibility key (grid code / road section)."
    )
    violation_type: str = Field(min_length=1, max_length=64, description="e.g. illegal_parking")
    event_code: str | None = Field(
        None, max_length=16, description="e.g. 0505; default: the type's default code"
    )
    first_seen_at: AwareDatetime
    confirmed_at: AwareDatetime
    confidence: float = Field(ge=0, le=1)
    boxes: list[Box] = Field(default_factory=list, max_length=500)
    model_name: str = Field(max_length=100)
    model_version: str = Field("", max_length=50)
    sighting_count: int = Field(1, ge=1)
    lat: float | None = Field(None, ge=-90, le=90)
    lon: float | None = Field(None, ge=-180, le=180)
    note: str = Field("", max_length=2000)

    @field_validator("confirmed_at")
    @classmethod
    def _confirmed_after_first_seen(cls, value: dt.datetime, info: Any) -> dt.datetime:
        first = info.data.get("first_seen_at")
        if first is not None and value < first:
            raise ValueError("confirmed_at is before first_seen_at")
        return value


class IngestResult(BaseModel):
    case_id: int
    sighting_id: int
    created: bool = Field(description="A new case was opened by this report.")
    duplicate: bool = Field(description="This idempotency key was already received; nothing changed.")
    status: str


class SightingPublic(BaseModel):
    model_config = ConfigDict(from_attributes=True)

    id: int
    camera_code: str | None
    zone_code: str | None
    confidence: float | None
    boxes: list[Any]
    first_seen_at: dt.datetime | None
    confirmed_at: dt.datetime | None
    received_at: dt.datetime


class EvidencePublic(BaseModel):
    model_config = ConfigDict(from_attributes=True)

    id: int
    sha256: str
    kind: str
    content_type: str
    size: int
    width: int
    height: int
    created_at: dt.datetime
    url: str = ""


class AuditEventPublic(BaseModel):
    model_config = ConfigDict(from_attributes=True)

    id: int
    at: dt.datetime
    actor: str
    action: str
    from_status: str | None
    to_status: str | None
    reason: str | None
    note: str | None


class CasePublic(BaseModel):
    model_config = ConfigDict(from_attributes=True)

    id: int
    status: str
    violation_code: str
    place_id: int
    camera_code: str | None
    zone_code: str | None
    unit_id: int | None
    source: str
    description: str
    confidence: float | None
    sighting_count: int
    best_evidence_id: int | None
    first_seen_at: dt.datetime | None
    last_seen_at: dt.datetime | None
    confirmed_at: dt.datetime | None
    created_at: dt.datetime
    filed_at: dt.datetime | None
    dispatched_at: dt.datetime | None
    deadline_at: dt.datetime | None
    resolved_at: dt.datetime | None
    closed_at: dt.datetime | None
    overdue: bool
    escalated_to_unit_id: int | None
    extension_requested_hours: float | None
    rework_count: int
    return_count: int
    recurrence_of_id: int | None
    void_reason: str | None


class CaseDetail(CasePublic):
    sightings: list[SightingPublic]
    evidence: list[EvidencePublic]
    events: list[AuditEventPublic]
    allowed_actions: list[str] = Field(default_factory=list, description="What the caller may do next.")
    recurrences: list[int] = Field(default_factory=list, description="Later cases that recur this one.")
