"""A camera's health as its edge box reports it (``PUT`` :func:`paths.camera_health`)."""

from __future__ import annotations

from typing import Literal

from pydantic import AwareDatetime, BaseModel, ConfigDict, Field

CameraState = Literal["up", "reconnecting", "failed"]
CAMERA_STATES: tuple[CameraState, ...] = ("up", "reconnecting", "failed")


class CameraHealth(BaseModel):
    model_config = ConfigDict(extra="forbid")

    state: CameraState = Field(description="up, reconnecting or failed.")
    last_frame_at: AwareDatetime | None = None
    fps: float | None = Field(default=None, ge=0, le=1000)
    error: str | None = Field(default=None, max_length=500)
