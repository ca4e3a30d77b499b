"""The case resource family as operators read it back (what devices send is in :mod:`contract.reports`)."""

from __future__ import annotations

import datetime as dt
from typing import Any

from pydantic import BaseModel, ConfigDict, Field


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
    sighting_count: int = 1
    last_seen_at: dt.datetime | None = None
    ended_at: dt.datetime | None = None


class EvidencePublic(BaseModel):
    model_config = ConfigDict(from_attributes=True)

    id: int
    sha256: str
    kind: str
    content_type: str
    size: int
    width: int
    height: int
    score: float | None = None
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
    ended_at: dt.datetime | None = Field(
        None, description="Gone at: when the violation was last seen, once its incidents ended."
    )
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
