"""Box geometry on ``xyxy`` arrays (x1, y1, x2, y2 in pixels): intersection over union.

One formula for the tracker (a detection against its track's anchor), the INT8 drift report (float
against INT8 detections) and the dataset metrics (predictions against labels). Computed in float64
whatever the input dtype, so float32 detections and float64 labels give the same IoU. Boxes that do not
overlap, or whose union is empty (zero-area or inverted boxes), have IoU 0.
"""

from __future__ import annotations

import numpy as np
import numpy.typing as npt

F64 = npt.NDArray[np.float64]


def _as_xyxy(boxes: npt.ArrayLike) -> F64:
    return np.asarray(boxes, np.float64).reshape(-1, 4)


def _iou(a: F64, b: F64) -> F64:
    """IoU of ``a`` and ``b`` broadcast against each other (trailing axis: x1, y1, x2, y2)."""
    inter_wh = np.clip(np.minimum(a[..., 2:], b[..., 2:]) - np.maximum(a[..., :2], b[..., :2]), 0, None)
    inter = inter_wh[..., 0] * inter_wh[..., 1]
    area_a = (a[..., 2] - a[..., 0]) * (a[..., 3] - a[..., 1])
    area_b = (b[..., 2] - b[..., 0]) * (b[..., 3] - b[..., 1])
    union = area_a + area_b - inter
    iou: F64 = np.divide(inter, union, out=np.zeros_like(inter), where=union > 0)
    return iou


def box_iou_batch(a_xyxy: npt.ArrayLike, b_xyxy: npt.ArrayLike) -> F64:
    """(N, M) IoU of every box of ``a_xyxy`` (N, 4) with every box of ``b_xyxy`` (M, 4)."""
    return _iou(_as_xyxy(a_xyxy)[:, None, :], _as_xyxy(b_xyxy)[None, :, :])


def box_iou_pairs(a_xyxy: npt.ArrayLike, b_xyxy: npt.ArrayLike) -> F64:
    """(K,) IoU of row k of ``a_xyxy`` (K, 4) with row k of ``b_xyxy`` (K, 4): the diagonal of
    :func:`box_iou_batch` without the K x K matrix (the tracker's block-sparse candidate pairs)."""
    return _iou(_as_xyxy(a_xyxy), _as_xyxy(b_xyxy))


def box_inside_batch(a_xyxy: npt.ArrayLike, b_xyxy: npt.ArrayLike) -> F64:
    """(N, M) share of each box of ``a_xyxy``'s area that lies inside each box of ``b_xyxy`` (0 for an
    empty box): 1 when a box is wholly enclosed by another, whatever their sizes (an IoU would be small)."""
    a, b = _as_xyxy(a_xyxy)[:, None, :], _as_xyxy(b_xyxy)[None, :, :]
    inter_wh = np.clip(np.minimum(a[..., 2:], b[..., 2:]) - np.maximum(a[..., :2], b[..., :2]), 0, None)
    inter = inter_wh[..., 0] * inter_wh[..., 1]
    area_a = np.broadcast_to((a[..., 2] - a[..., 0]) * (a[..., 3] - a[..., 1]), inter.shape)
    share: F64 = np.divide(inter, area_a, out=np.zeros_like(inter), where=area_a > 0)
    return share
