"""A camera's health as its edge box reports it (``PUT`` :func:`paths.camera_health`)."""

from __future__ import annotations

from typing import Literal

from pydantic import AwareDatetime, BaseModel, ConfigDict, Field

from contract.fields import Code

CameraState = Literal["up", "reconnecting", "failed"]
CAMERA_STATES: tuple[CameraState, ...] = ("up", "reconnecting", "failed")
# A static-change zone's reference (pipeline.static_change.StaticChange.state): learning until it has one.
ReferenceState = Literal["learning", "learned", "set", "relearning"]
REFERENCE_STATES: tuple[ReferenceState, ...] = ("learning", "learned", "set", "relearning")


ModelUpdateState = Literal["running", "downloading", "loading", "failed"]


class ModelHealth(BaseModel):
    """The box's model rollout (contract.device_config.DeviceModel): what runs and what went wrong."""

    model_config = ConfigDict(extra="forbid")

    live: str = Field(max_length=200, description="Name and version of the model analysing frames now.")
    live_version_id: int | None = Field(None, description="The registry's id; None: the YAML's model.")
    state: ModelUpdateState = Field(description="Of the newest assigned version: running when it is live.")
    target_version_id: int | None = Field(None, description="The newest version assigned as live.")
    shadow_version_id: int | None = None
    error: str | None = Field(
        None, max_length=500, description="Why the assigned version is not running (the old one stays)."
    )


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
    model: ModelHealth | None = Field(None, description="The box's model rollout; absent: not reported.")


HEALTH_BATCH_MAX = 256  # cameras in one batch (a box runs about 24); about 600 bytes each


class CameraHealthBatch(BaseModel):
    """Every camera of one box in one request (``PUT`` :data:`paths.CAMERAS_HEALTH`): one request per
    ``store.health_report_s`` per box instead of one per camera."""

    model_config = ConfigDict(extra="forbid")

    cameras: dict[Code, CameraHealth] = Field(
        min_length=1, max_length=HEALTH_BATCH_MAX, description="Camera code -> its health."
    )


class CameraHealthBatchResult(BaseModel):
    """What the store kept. A camera not registered to the calling device is not recorded (whoever owns
    it) and is named in ``unknown``, so the box stops reporting it, as a 404 tells it per camera."""

    recorded: list[str] = Field(description="Cameras whose health was recorded, in code order.")
    unknown: list[str] = Field(description="Cameras that are not this device's: nothing recorded.")
    health_at: AwareDatetime = Field(description="When the store recorded it.")
