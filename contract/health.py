"""A camera's health as its edge box reports it (``PUT`` :func:`paths.camera_health`)."""

from __future__ import annotations

from typing import Literal

from pydantic import AwareDatetime, BaseModel, ConfigDict, Field

CameraState = Literal["up", "reconnecting", "failed"]
CAMERA_STATES: tuple[CameraState, ...] = ("up", "reconnecting", "failed")
# A static-change zone's reference (pipeline.static_change.StaticChange.state): learning until it has one.
ReferenceState = Literal["learning", "learned", "set", "relearning"]
REFERENCE_STATES: tuple[ReferenceState, ...] = ("learning", "learned", "set", "relearning")


class CameraHealth(BaseModel):
    model_config = ConfigDict(extra="forbid")

    state: CameraState = Field(description="up, reconnecting or failed.")
    last_frame_at: AwareDatetime | None = None
    fps: float | None = Field(default=None, ge=0, le=1000)
    error: str | None = Field(default=None, max_length=500)
    references: dict[str, ReferenceState] = Field(
        default_factory=dict,
        max_length=64,
        description="Static-change zone -> state of its empty reference; learning: cases of objects "
        "already there when it started cannot be told yet.",
    )
