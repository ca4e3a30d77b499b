"""Output decoders: one model output row-block in, candidate boxes in input-tensor pixels out.

Each decoder filters by confidence first (cheap, vectorised) and only then touches box coordinates,
so the work after the filter scales with the number of candidates, not with the anchor count.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from functools import lru_cache

import numpy as np
import numpy.typing as npt

from detector.card import Layout

F32 = npt.NDArray[np.float32]


@dataclass(frozen=True, slots=True)
class Candidates:
    """Boxes (xyxy, input pixels), scores and classes before NMS."""

    xyxy: F32
    confidence: F32
    class_id: npt.NDArray[np.int64]
    needs_nms: bool


def cxcywh_to_xyxy(cxcywh: F32) -> F32:
    xyxy = np.empty_like(cxcywh, dtype=np.float32)
    half_wh = cxcywh[:, 2:4] * 0.5
    np.subtract(cxcywh[:, :2], half_wh, out=xyxy[:, :2])
    np.add(cxcywh[:, :2], half_wh, out=xyxy[:, 2:])
    return xyxy


def decode_ultralytics(output: F32, confidence: float, **_: object) -> Candidates:
    """``output`` (4+nc, N): cx, cy, w, h, then per-class scores (sigmoid already applied)."""
    class_scores = output[4:]
    best = class_scores.max(axis=0)
    index = np.flatnonzero(best > confidence)
    class_id = class_scores[:, index].argmax(axis=0).astype(np.int64, copy=False)
    return Candidates(cxcywh_to_xyxy(output[:4, index].T), best[index], class_id, needs_nms=True)


def decode_end2end(output: F32, confidence: float, **_: object) -> Candidates:
    """``output`` (K, 6): x1, y1, x2, y2, score, class; already suppressed by the model."""
    keep = output[:, 4] > confidence
    rows = output[keep]
    return Candidates(
        np.ascontiguousarray(rows[:, :4], dtype=np.float32),
        rows[:, 4].astype(np.float32),
        rows[:, 5].astype(np.int64),
        needs_nms=False,
    )


@lru_cache(maxsize=16)
def yolox_grid(input_hw: tuple[int, int], strides: tuple[int, ...]) -> tuple[F32, F32]:
    """Per-anchor (x, y) grid cell and stride for YOLOX's flattened multi-level output."""
    grids, scales = [], []
    for stride in strides:
        h, w = input_hw[0] // stride, input_hw[1] // stride
        ys, xs = np.meshgrid(np.arange(h), np.arange(w), indexing="ij")
        grids.append(np.stack((xs, ys), axis=-1).reshape(-1, 2))
        scales.append(np.full((h * w, 1), stride))
    return np.concatenate(grids).astype(np.float32), np.concatenate(scales).astype(np.float32)


def decode_yolox(
    output: F32,
    confidence: float,
    *,
    input_hw: tuple[int, int] = (0, 0),
    strides: tuple[int, ...] = (8, 16, 32),
    **_: object,
) -> Candidates:
    """``output`` (N, 5+nc): raw x, y, log w, log h per grid cell, objectness, class scores."""
    grid, stride = yolox_grid(input_hw, strides)
    if len(grid) != len(output):
        raise ValueError(
            f"YOLOX output has {len(output)} rows but strides {list(strides)} "
            f"on input {input_hw} give {len(grid)}"
        )
    # score = objectness x best class score <= objectness, so filter on objectness first.
    index = np.flatnonzero(output[:, 4] > confidence)
    rows = output[index]
    class_scores = rows[:, 5:]
    score = rows[:, 4] * class_scores.max(axis=1)
    keep = np.flatnonzero(score > confidence)
    rows, index = rows[keep], index[keep]
    cell_stride = stride[index]
    centre = (rows[:, :2] + grid[index]) * cell_stride
    half_wh = np.exp(rows[:, 2:4]) * cell_stride * 0.5
    xyxy = np.concatenate((centre - half_wh, centre + half_wh), axis=1)
    class_id = class_scores[keep].argmax(axis=1).astype(np.int64, copy=False)
    return Candidates(xyxy, score[keep].astype(np.float32, copy=False), class_id, needs_nms=True)


Decoder = Callable[..., Candidates]

DECODERS: dict[Layout, Decoder] = {
    Layout.ULTRALYTICS: decode_ultralytics,
    Layout.END2END: decode_end2end,
    Layout.YOLOX: decode_yolox,
}


def expected_output_shape(layout: Layout, num_classes: int) -> str:
    return {
        Layout.ULTRALYTICS: f"[B, {4 + num_classes}, N]",
        Layout.END2END: "[B, K, 6]",
        Layout.YOLOX: f"[B, N, {5 + num_classes}]",
    }[layout]


def output_matches_layout(shape: tuple[int | str | None, ...], layout: Layout, num_classes: int) -> bool:
    """Whether a (possibly symbolic) output shape fits ``layout`` with ``num_classes`` classes."""
    if len(shape) != 3:
        return False
    axis = {Layout.ULTRALYTICS: 1, Layout.END2END: 2, Layout.YOLOX: 2}[layout]
    want = {Layout.ULTRALYTICS: 4 + num_classes, Layout.END2END: 6, Layout.YOLOX: 5 + num_classes}[layout]
    size = shape[axis]
    return not isinstance(size, int) or size == want
