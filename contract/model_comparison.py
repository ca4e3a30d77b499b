"""A shadow model's comparison with the live one, as an edge box uploads it (``POST``
:data:`paths.MODEL_COMPARISONS`).

Per class, over a period: incidents both models would have made (agree), only the live one made, and only
the shadow one would have made; plus a few small crops of disagreements, so an operator promotes on
evidence. Compact on purpose: one JSON body, crops inline (base64 JPEG, a handful, each small).
"""

from __future__ import annotations

from typing import Annotated, Literal

from pydantic import AwareDatetime, BaseModel, ConfigDict, Field

MAX_CROPS = 16
MAX_CROP_BYTES = 48 * 1024  # base64 text of one crop


class ClassComparison(BaseModel):
    model_config = ConfigDict(extra="forbid")

    agree: int = Field(0, ge=0, description="Incidents both the live and the shadow model made.")
    live_only: int = Field(0, ge=0, description="Incidents only the live model made.")
    shadow_only: int = Field(0, ge=0, description="Incidents only the shadow model would have made.")


class DisagreementCrop(BaseModel):
    model_config = ConfigDict(extra="forbid")

    class_name: str = Field(max_length=64)
    side: Literal["live_only", "shadow_only"]
    camera: str = Field(max_length=64)
    jpeg_base64: Annotated[str, Field(max_length=MAX_CROP_BYTES)]


class ModelComparisonReport(BaseModel):
    model_config = ConfigDict(extra="forbid")

    live_version_id: int | None = Field(None, description="None: the YAML's model was live.")
    shadow_version_id: int
    period_start: AwareDatetime
    period_end: AwareDatetime
    frames_live: int = Field(ge=0, description="Frames the live model analysed in the period.")
    frames_shadow: int = Field(ge=0, description="Of those, frames the shadow model also ran on.")
    classes: dict[str, ClassComparison] = Field(max_length=100)
    crops: list[DisagreementCrop] = Field(default_factory=list, max_length=MAX_CROPS)
