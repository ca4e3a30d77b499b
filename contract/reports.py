"""An incident's life on the wire: the report that opens or joins a case, its later sightings and its end.

The edge box mints one idempotency key per incident (the :class:`CaseReport`'s) and one per update
(:class:`IncidentUpdate`); the store stores each key once, so a retry after a lost answer changes nothing.
"""

from __future__ import annotations

import datetime as dt
from enum import StrEnum
from typing import Annotated, Literal

from pydantic import (
    AwareDatetime,
    BaseModel,
    ConfigDict,
    Field,
    TypeAdapter,
    ValidationInfo,
    field_validator,
)

from contract.fields import Confidence, IdempotencyKey

MAX_BOXES = 500


class EvidenceKind(StrEnum):
    FIRST_SEEN = "first_seen"  # the first frame the pipeline saw the violation in
    CONFIRMATION = "confirmation"  # the frame at which the dwell time confirmed it
    SIGHTING = "sighting"  # a later view while the violation goes on (sent when it beats the best one)
    CROP = "crop"  # a close-up of the object
    # the confirmation frame redacted as the others but with nothing drawn on it, every zone of the camera
    # kept sharp: what the model saw, the picture operators draw missed objects on and training reads
    FRAME = "frame"
    AFTER = "after"  # verification: the place after handling
    HANDLING = "handling"  # a photo from the unit that handled it
    CLIP = "clip"  # an MP4 of the camera's own video around first sight and confirmation: NOT redacted


# Evidence quality, sent by the edge box with each image it offers as the case's best view (form field
# ``score``): the highest violation-box confidence times a sharpness factor, min(1, variance of the
# Laplacian of the box crop in gray levels² / SHARPNESS_FULL). A view replaces the case's best evidence
# when its score is higher by at least BEST_EVIDENCE_MARGIN (kinds first_seen, confirmation, sighting).
SHARPNESS_FULL = 150.0
BEST_EVIDENCE_MARGIN = 0.05


class Box(BaseModel):
    model_config = ConfigDict(extra="forbid")

    xyxy: tuple[float, float, float, float] = Field(description="Frame pixels: x1, y1, x2, y2.")
    confidence: Confidence
    class_name: str = Field(max_length=64)
    track_id: int | None = None


# What the edge box detected in a ``frame`` picture, sent with it (form field ``boxes``: a JSON list of
# Box in that picture's pixels: the detections of the classes it maps to a violation and static change's
# unknown_object): a training set labels the rest of the frame from them, not only the case's own objects.
FrameBoxes = Annotated[list[Box], Field(max_length=MAX_BOXES)]
FRAME_BOXES: TypeAdapter[list[Box]] = TypeAdapter(FrameBoxes)


class CaseReport(BaseModel):
    """A confirmed violation from an edge box (pipeline -> case store). The pipeline mints the key once."""

    model_config = ConfigDict(extra="forbid")

    idempotency_key: IdempotencyKey
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
    confidence: Confidence
    boxes: list[Box] = Field(default_factory=list, max_length=MAX_BOXES)
    model_name: str = Field(max_length=100)
    model_version: str = Field("", max_length=50)
    sighting_count: int = Field(
        1, ge=1, description="Analysed frames the object was seen in up to confirmation."
    )
    lat: float | None = Field(None, ge=-90, le=90)
    lon: float | None = Field(None, ge=-180, le=180)
    note: str = Field("", max_length=2000)
    frame_wh: (
        tuple[Annotated[int, Field(gt=0, le=100_000)], Annotated[int, Field(gt=0, le=100_000)]] | None
    ) = Field(None, description="Width and height of the analysed frame the boxes are in (pixels).")

    @field_validator("confirmed_at")
    @classmethod
    def _confirmed_after_first_seen(cls, value: dt.datetime, info: ValidationInfo) -> dt.datetime:
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


class IncidentUpdate(BaseModel):
    """A later sighting of a reported incident, or its end (pipeline -> case store).

    Sent at a bounded rate while the incident goes on and always once when it ends. Counts and times
    only move forward: an update older than what the store has changes nothing but its own record.
    """

    model_config = ConfigDict(extra="forbid")

    idempotency_key: IdempotencyKey
    incident_key: IdempotencyKey = Field(description="The idempotency key of the incident's CaseReport.")
    kind: Literal["sighting", "ended"]
    at: AwareDatetime = Field(description="Stream time of this sighting; for 'ended', when last seen.")
    sighting_count: int = Field(ge=1, description="Analysed frames the object was seen in so far.")
    confidence: Confidence | None = None
    boxes: list[Box] = Field(default_factory=list, max_length=MAX_BOXES)


class UpdateResult(BaseModel):
    case_id: int
    duplicate: bool = Field(description="This update's idempotency key was already received.")
    sighting_count: int = Field(description="The case's sighting count after this update.")
    last_seen_at: dt.datetime | None
    ended_at: dt.datetime | None = Field(description="When the violation was last seen, once it ended.")
