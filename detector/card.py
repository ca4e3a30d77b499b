"""Model cards: everything needed to run a detector correctly, pinned next to the ONNX file.

A card is YAML (``models/<name>.yaml``). Fields the card leaves out are filled from the ONNX file
itself: Ultralytics exports carry ``names``, ``imgsz``, ``stride`` and ``end2end`` in their metadata, so
a bare Ultralytics ``.onnx`` needs no card at all.
"""

from __future__ import annotations

import hashlib
from enum import StrEnum
from pathlib import Path
from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator

from detector.errors import ModelCardError
from detector.yaml_lines import YamlSyntaxError, load_located_yaml

CARD_SUFFIXES = (".yaml", ".yml")


class Layout(StrEnum):
    """Output tensor layouts streetwatch decodes."""

    ULTRALYTICS = "ultralytics"  # [B, 4+nc, N]: cx, cy, w, h, class scores; needs NMS (YOLOv5u/v8/v9/11)
    END2END = "end2end"  # [B, K, 6]: x1, y1, x2, y2, score, class; NMS-free (YOLOv10, YOLO26)
    YOLOX = "yolox"  # [B, N, 5+nc]: raw grid offsets, objectness, class scores; grid/stride decode


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class InputSpec(_Strict):
    """How frames become the model's input tensor."""

    size_hw: tuple[Annotated[int, Field(gt=0)], Annotated[int, Field(gt=0)]] = Field(
        description="Input height and width in pixels (the letterbox target; the maximum when dynamic)."
    )
    dynamic: bool = Field(
        False, description="Height/width axes are dynamic: letterbox to a stride-multiple rectangle."
    )
    stride: int = Field(
        32, gt=0, description="Largest network stride; rectangular inputs are multiples of it."
    )
    channel_order: Literal["rgb", "bgr"] = "rgb"
    pixel_range: Literal["0-1", "0-255"] = "0-1"
    letterbox: Literal["center", "top_left"] = Field(
        "center", description="Where the resized image sits: Ultralytics centres it, YOLOX pads bottom/right."
    )
    pad_value: int = Field(114, ge=0, le=255)
    blur_outside_zones: float | None = Field(
        None,
        gt=0,
        le=0.25,
        description="The model learnt from pictures blurred outside the camera's zones (training frames "
        "redacted by evidence.redaction outside_violation) with this Gaussian sigma, as a share of the "
        "frame's shorter side: the daemon blurs each frame the same way outside the camera's zones before "
        "the model sees it. None: frames as they are.",
    )


class Thresholds(_Strict):
    confidence: float = Field(0.25, ge=0.0, le=1.0)
    iou: float = Field(
        0.45, gt=0.0, le=1.0, description="NMS IoU above which the lower-scored box is dropped."
    )
    max_detections: int = Field(300, ge=1, description="Top-k cap per frame; street scenes are dense.")
    classes: dict[str, Annotated[float, Field(ge=0.0, le=1.0)]] = Field(
        default_factory=dict,
        description="Class -> its working confidence, chosen on the training's validation split (where its "
        "F2 peaks): a zone rule that sets no min_confidence keeps that class's detections from there on. "
        "'confidence' above decides which boxes the detector returns at all (the lowest of the two).",
    )


class ModelCard(_Strict):
    """A fully resolved model description (card fields merged over ONNX metadata)."""

    name: str = Field(min_length=1)
    version: str = "0"
    path: Path = Field(description="ONNX file; relative paths are relative to the card's folder.")
    sha256: str | None = Field(None, pattern=r"^[0-9a-f]{64}$")
    layout: Layout
    input: InputSpec
    classes: list[str] = Field(min_length=1)
    strides: list[Annotated[int, Field(gt=0)]] = Field(
        default_factory=lambda: [8, 16, 32], description="Grid strides (YOLOX decode)."
    )
    thresholds: Thresholds = Thresholds()
    licence: str = "unknown"
    source: str | None = None
    description: str | None = None
    violations: dict[str, str] | None = Field(
        None,
        description="Class -> violation type the model was trained to report (e.g. stall: street_stall): "
        "a daemon that takes it from the store maps the classes its configuration does not.",
    )

    @model_validator(mode="after")
    def _known_threshold_classes(self) -> ModelCard:
        unknown = sorted(set(self.thresholds.classes) - set(self.classes))
        if unknown:
            raise ValueError(
                f"thresholds.classes names {', '.join(map(repr, unknown))}, not classes of the model "
                f"({', '.join(self.classes[:12])})"
            )
        return self


def sha256_of(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def is_card_path(path: Path) -> bool:
    return path.suffix.lower() in CARD_SUFFIXES


def read_card_fields(card_path: Path) -> dict[str, Any]:
    """Raw card fields with ``path`` made absolute; validation happens after metadata is merged."""
    try:
        located = load_located_yaml(card_path)
    except FileNotFoundError as exc:
        raise ModelCardError(card_path, "model card not found") from exc
    except (OSError, UnicodeDecodeError) as exc:
        raise ModelCardError(card_path, f"cannot read model card: {exc}") from exc
    except YamlSyntaxError as exc:
        raise ModelCardError(card_path, str(exc)) from exc
    if not isinstance(located.data, dict):
        raise ModelCardError(card_path, "a model card must be a YAML mapping of fields")
    fields = dict(located.data)
    if "path" not in fields:
        raise ModelCardError(card_path, "missing field 'path' (the ONNX file, relative to the card)")
    fields["path"] = (card_path.parent / str(fields["path"])).resolve()
    return fields


def merge_card(
    base: dict[str, Any], overrides: dict[str, Any], *, card_path: Path | None, source: Path
) -> ModelCard:
    """Validate ``overrides`` (a card) merged over ``base`` (from ONNX metadata)."""
    merged = dict(base)
    for key, value in overrides.items():
        if isinstance(value, dict) and isinstance(merged.get(key), dict):
            merged[key] = {**merged[key], **value}
        else:
            merged[key] = value
    try:
        return ModelCard.model_validate(merged)
    except ValidationError as exc:
        if card_path is not None:
            located = load_located_yaml(card_path)
            raise ModelCardError(card_path, "invalid model card:\n" + located.describe(exc)) from exc
        problems = "; ".join(f"{'.'.join(map(str, e['loc']))}: {e['msg']}" for e in exc.errors())
        raise ModelCardError(
            source, f"cannot describe this model without a card ({problems}); write a models/<name>.yaml card"
        ) from exc


def card_to_yaml_dict(card: ModelCard, *, relative_to: Path | None = None) -> dict[str, Any]:
    """A card as plain data for writing, with ``path`` relative to the card's folder."""
    data = card.model_dump(mode="json", exclude_none=True)
    if relative_to is not None:
        try:
            data["path"] = str(Path(card.path).resolve().relative_to(relative_to.resolve()))
        except ValueError:
            data["path"] = str(Path(card.path).resolve())
    data["input"]["size_hw"] = list(card.input.size_hw)
    return data
