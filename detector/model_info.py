"""What an ONNX file says about itself: tensors, metadata, and the card fields they imply."""

from __future__ import annotations

import ast
import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from detector.card import Layout
from detector.errors import ModelInputError, UnknownLayoutError

Dim = int | str | None


@dataclass(frozen=True)
class TensorInfo:
    name: str
    shape: tuple[Dim, ...]
    dtype: str  # ONNX Runtime type string, e.g. "tensor(float)"

    @property
    def static_shape(self) -> bool:
        return all(isinstance(d, int) for d in self.shape)


@dataclass(frozen=True)
class ModelInfo:
    path: Path
    inputs: tuple[TensorInfo, ...]
    outputs: tuple[TensorInfo, ...]
    metadata: dict[str, str] = field(default_factory=dict)
    producer: str = ""

    @property
    def is_ultralytics(self) -> bool:
        return "names" in self.metadata and ("imgsz" in self.metadata or "stride" in self.metadata)


SUPPORTED_INPUT_TYPES = {"tensor(float)": "float32", "tensor(float16)": "float16"}


def model_info_from_session(path: Path, session: Any) -> ModelInfo:
    meta = session.get_modelmeta()

    def tensors(items: list[Any]) -> tuple[TensorInfo, ...]:
        return tuple(TensorInfo(i.name, tuple(i.shape), i.type) for i in items)

    return ModelInfo(
        path=path,
        inputs=tensors(session.get_inputs()),
        outputs=tensors(session.get_outputs()),
        metadata=dict(meta.custom_metadata_map),
        producer=f"{meta.producer_name}".strip(),
    )


def check_image_input(info: ModelInfo) -> TensorInfo:
    """The single NCHW float image input, or a :class:`ModelInputError` saying what is wrong."""
    if len(info.inputs) != 1:
        names = ", ".join(t.name for t in info.inputs)
        raise ModelInputError(
            info.path, f"expected exactly one input (an image batch), found {len(info.inputs)}: {names}"
        )
    tensor = info.inputs[0]
    if tensor.dtype not in SUPPORTED_INPUT_TYPES:
        raise ModelInputError(
            info.path,
            f"input '{tensor.name}' has type {tensor.dtype}, expected tensor(float) or tensor(float16)",
        )
    if len(tensor.shape) != 4:
        raise ModelInputError(
            info.path,
            f"input '{tensor.name}' has shape {list(tensor.shape)}, "
            "expected 4 axes [batch, 3, height, width]",
        )
    channels = tensor.shape[1]
    if isinstance(channels, int) and channels != 3:
        raise ModelInputError(
            info.path,
            f"input '{tensor.name}' has {channels} channels (shape {list(tensor.shape)}), "
            "expected 3 (colour)",
        )
    return tensor


def yolox_grid_size(size_hw: tuple[int, int], strides: list[int]) -> int:
    return sum((size_hw[0] // s) * (size_hw[1] // s) for s in strides)


def infer_layout(info: ModelInfo, size_hw: tuple[int, int] | None, strides: list[int]) -> Layout:
    """Layout from metadata, else from the output shape when that is unambiguous."""
    if info.metadata.get("end2end", "").lower() == "true":
        return Layout.END2END
    if len(info.outputs) != 1 or len(info.outputs[0].shape) != 3:
        shapes = ", ".join(f"{t.name} {list(t.shape)}" for t in info.outputs)
        raise UnknownLayoutError(
            info.path,
            f"unknown output layout: outputs {shapes}; expected one output of 3 axes "
            "([B,4+nc,N] ultralytics, [B,K,6] end2end or [B,N,5+nc] yolox)",
        )
    shape = info.outputs[0].shape
    rows, cols = shape[1], shape[2]
    if info.is_ultralytics:
        return Layout.ULTRALYTICS
    if isinstance(rows, int) and isinstance(cols, int):
        if rows < cols:
            return Layout.ULTRALYTICS
        if size_hw is not None and rows == yolox_grid_size(size_hw, strides):
            return Layout.YOLOX
        if cols == 6:
            return Layout.END2END
    elif isinstance(rows, int) and not isinstance(cols, int):
        return Layout.ULTRALYTICS  # [B, 4+nc, anchors] from a dynamic export
    raise UnknownLayoutError(
        info.path,
        f"cannot tell the output layout from shape {list(shape)} without metadata; "
        "write a model card with 'layout: ultralytics | end2end | yolox'",
    )


def _parse_literal(text: str) -> Any:
    try:
        return ast.literal_eval(text)
    except (ValueError, SyntaxError):
        try:
            return json.loads(text)
        except ValueError:
            return None


def base_card_fields(info: ModelInfo) -> dict[str, Any]:
    """Card fields implied by the ONNX file: metadata first, tensor shapes second."""
    image = check_image_input(info)
    meta = info.metadata
    fields: dict[str, Any] = {"name": info.path.stem, "path": info.path}
    height, width = image.shape[2], image.shape[3]
    dynamic = not (isinstance(height, int) and isinstance(width, int))
    imgsz = _parse_literal(meta["imgsz"]) if "imgsz" in meta else None
    size_hw: tuple[int, int] | None = None
    if isinstance(imgsz, list | tuple) and len(imgsz) == 2:
        size_hw = (int(imgsz[0]), int(imgsz[1]))
    elif isinstance(height, int) and isinstance(width, int):
        size_hw = (height, width)
    input_fields: dict[str, Any] = {"dynamic": dynamic}
    if size_hw is not None:
        input_fields["size_hw"] = size_hw
    if "stride" in meta and meta["stride"].isdigit():
        input_fields["stride"] = int(meta["stride"])
    fields["input"] = input_fields

    names = _parse_literal(meta["names"]) if "names" in meta else None
    if isinstance(names, dict):
        fields["classes"] = [str(names[k]) for k in sorted(names)]
    elif isinstance(names, list):
        fields["classes"] = [str(n) for n in names]
    else:
        count = _class_count_from_shape(info)
        if count:
            fields["classes"] = [f"class{i}" for i in range(count)]

    try:
        layout = infer_layout(info, size_hw, [8, 16, 32])
    except UnknownLayoutError:
        layout = None  # a card may still name it
    if layout is not None:
        fields["layout"] = layout.value
    if info.is_ultralytics:
        fields["thresholds"] = {"iou": 0.7}  # Ultralytics' predict default
        fields["licence"] = meta.get("license", "unknown")
        fields["description"] = meta.get("description")
        fields["version"] = meta.get("version", "0")
    return fields


def _class_count_from_shape(info: ModelInfo) -> int | None:
    if len(info.outputs) != 1 or len(info.outputs[0].shape) != 3:
        return None
    rows, cols = info.outputs[0].shape[1], info.outputs[0].shape[2]
    if isinstance(rows, int) and isinstance(cols, int) and cols > 6 and rows > cols:
        return cols - 5  # yolox: 4 box + objectness
    if isinstance(rows, int) and (not isinstance(cols, int) or rows < cols):
        return rows - 4
    return None


def layout_input_defaults(layout: str | None) -> dict[str, str]:
    """Each family's own preprocessing, used where a card does not say otherwise."""
    if layout == Layout.YOLOX.value:
        return {"channel_order": "bgr", "pixel_range": "0-255", "letterbox": "top_left"}
    return {"channel_order": "rgb", "pixel_range": "0-1", "letterbox": "center"}
