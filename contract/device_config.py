"""The device configuration: what an edge box learns from the store (``GET`` :data:`paths.DEVICE_CONFIG`).

Polled with ``If-None-Match``; ``version`` (also the ETag) changes whenever anything in it does. Stream
URLs stay on the box. A zone carries every rule field the daemon's YAML has, so a zone edited in the
store judges exactly like the same zone written in the YAML.
"""

from __future__ import annotations

import datetime as dt
from typing import Annotated, Literal

from pydantic import BaseModel, ConfigDict, Field, WithJsonSchema

from contract.fields import Code, Coordinate, EventCode, PipelineType, Point
from contract.schedule import ScheduleWindow

Anchor = Literal["bottom_center", "center"]
DEFAULT_ANCHOR: Anchor = "bottom_center"
#: A rule's min_confidence where neither the rule nor the model's card sets one.
DEFAULT_MIN_CONFIDENCE = 0.3
MAX_DWELL_S = 86_400
#: The class (and default violation type) of what the static-change detector finds: appended after the
#: model's classes, class id = len(model class names).
UNKNOWN_OBJECT = "unknown_object"

#: A rule's least confidence, in the store's zones and the daemon's YAML alike.
MinConfidence = Annotated[
    float | None,
    Field(
        ge=0,
        le=1,
        description="Detections below this confidence are ignored; unset (null): the running model's "
        f"working confidence for the class (its card's thresholds.classes), else {DEFAULT_MIN_CONFIDENCE}.",
    ),
]


class ZoneRule(BaseModel):
    """How one violation type is judged in a zone."""

    dwell_s: float = Field(
        ge=1, le=MAX_DWELL_S, description="Seconds the object must stay, stationary, to confirm."
    )
    schedule: list[ScheduleWindow] = Field(
        default_factory=list,
        max_length=20,
        description="When the rule is enforced (the configuration's time zone); empty: always.",
    )
    min_confidence: MinConfidence = None


class StaticChangeConfig(BaseModel):
    """A zone's model-free detector: new objects that appear in the zone and stay (pipeline.static_change)."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    dwell_s: float = Field(
        120.0, ge=1, le=MAX_DWELL_S, description="Seconds a new object must stay, unmoved, to confirm."
    )
    report_as: PipelineType = Field(
        UNKNOWN_OBJECT,
        description="Violation type its cases are reported as; unknown_object waits in the review queue "
        "to be re-coded.",
    )
    min_area: float = Field(
        0.002, gt=0, lt=1, description="Smallest change region reported, as a share of the frame area."
    )


class DeviceZone(BaseModel):
    code: Code
    place: Code = Field(description="Responsibility key to report cases for.")
    polygon: list[Point] = Field(min_length=3, description="Normalised [[x, y], ...].")
    anchor: Anchor = Field(
        DEFAULT_ANCHOR,
        description="The point of a box that must lie in the polygon: its bottom centre "
        "(where a vehicle or stall stands) or its centre.",
    )
    rules: dict[PipelineType, ZoneRule] = Field(
        description="Pipeline violation type -> rule; types not listed are not judged here."
    )
    static_change: StaticChangeConfig | None = Field(
        None, description="New objects that appear and stay (no model needed); absent: off."
    )
    reference_sha256: str | None = Field(
        None,
        description="The operator's empty-pavement reference image of this zone: download it from "
        "paths.device_reference(sha256); absent: the box learns the reference itself.",
    )
    updated_at: dt.datetime


class DeviceCamera(BaseModel):
    code: Code
    name: str
    zones: list[DeviceZone]


class DeviceViolationType(BaseModel):
    code: EventCode
    pipeline_type: PipelineType
    default_for_type: bool
    name: str


# A tuple on the Python side; in the schema an array of four (prefixItems trips response validators).
NormalisedBox = Annotated[
    tuple[Coordinate, Coordinate, Coordinate, Coordinate],
    WithJsonSchema(
        {
            "type": "array",
            "items": {"type": "number", "minimum": 0, "maximum": 1},
            "minItems": 4,
            "maxItems": 4,
        }
    ),
]


class Suppression(BaseModel):
    """A remembered false alarm: an operator voided a case as ``false_positive``, so detections of the same
    kind at the same spot (same camera, zone and type, overlapping box) are dropped until ``expires_at``.

    ``camera`` and ``zone`` are the codes the voided case named: they may exist only in the daemon's YAML.
    """

    id: int
    camera: Code
    zone: Code
    violation_type: PipelineType
    class_name: str | None = Field(
        None, max_length=64, description="The detector class of the voided box; None: any class of the type."
    )
    box: NormalisedBox = Field(description="x1, y1, x2, y2 as shares of the frame's width and height.")
    expires_at: dt.datetime


ModelRole = Literal["live", "shadow"]
#: The largest share of analysed frames a shadow model may run on: live analysis is never starved.
MAX_SHADOW_SHARE = 0.5


class DeviceModel(BaseModel):
    """A model version the store assigned to this device (the registry, api.model_registry)."""

    version_id: int = Field(description="The registry's id; reports name it as model_version.")
    name: str
    version: str
    sha256: str = Field(pattern=r"^[0-9a-f]{64}$", description="Of the ONNX file: checked after download.")
    size: int = Field(gt=0, description="Bytes of the ONNX file.")
    download_path: str = Field(description="GET it (X-Device-Key, HTTP Range to resume): paths.device_model.")
    card: dict[str, object] = Field(description="The model card (classes, input, thresholds) as uploaded.")
    role: ModelRole
    shadow_share: float = Field(
        0.0, ge=0, le=MAX_SHADOW_SHARE, description="Share of analysed frames a shadow model also runs on."
    )


class DeviceConfig(BaseModel):
    """Everything an edge box needs from the case store.

    The models of what the store sends ignore fields they do not know, so that a newer store can add to
    the configuration without stopping older boxes (what a box sends is strict: see contract.reports).
    """

    device: str
    timezone: str = Field(description="Time zone of the zones' schedules (the working calendar's).")
    cameras: list[DeviceCamera]
    violation_types: list[DeviceViolationType] = Field(description="Active types: which event codes exist.")
    suppressions: list[Suppression] = Field(
        default_factory=list,
        description="Unexpired false alarms on this box's cameras (registered, or named by its own reports).",
    )
    models: list[DeviceModel] = Field(
        default_factory=list,
        max_length=2,
        description="The live and the shadow model assigned to this box; absent: run the YAML's model.",
    )
    version: str = Field(description="Changes whenever the configuration does; also sent as the ETag.")
