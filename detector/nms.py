"""Class-aware non-maximum suppression and top-k, without per-box Python loops.

The greedy suppression itself runs in OpenCV's compiled ``NMSBoxesBatched`` (the same greedy rule as
torchvision's ``nms``: a box is dropped when its IoU with a kept, higher-scored box of the same class
exceeds the threshold), so results match Ultralytics box for box.
"""

from __future__ import annotations

import cv2
import numpy as np
import numpy.typing as npt

MAX_NMS_CANDIDATES = 30_000  # as Ultralytics: bound the work on degenerate, low-threshold outputs


def top_k_indices(scores: npt.NDArray[np.float32], k: int) -> npt.NDArray[np.intp]:
    """Indices of the ``k`` highest scores, best first (argpartition, then sort only those)."""
    if len(scores) <= k:
        return np.argsort(-scores, kind="stable")
    part = np.argpartition(-scores, k - 1)[:k]
    return part[np.argsort(-scores[part], kind="stable")]


def batched_nms(
    xyxy: npt.NDArray[np.float32],
    scores: npt.NDArray[np.float32],
    class_id: npt.NDArray[np.int64],
    *,
    iou_threshold: float,
    max_detections: int,
) -> npt.NDArray[np.intp]:
    """Indices kept by class-aware greedy NMS, best first, at most ``max_detections``."""
    if len(scores) == 0:
        return np.zeros((0,), np.intp)
    if len(scores) > MAX_NMS_CANDIDATES:
        keep = top_k_indices(scores, MAX_NMS_CANDIDATES)
        return keep[
            batched_nms(
                xyxy[keep],
                scores[keep],
                class_id[keep],
                iou_threshold=iou_threshold,
                max_detections=max_detections,
            )
        ]
    xywh = np.empty((len(xyxy), 4), np.float64)
    # OpenCV keeps classes apart by offsetting each by (largest coordinate + 1), which fails when a box starts
    # left of or above the input; translating all boxes so none is negative leaves every IoU unchanged.
    np.subtract(xyxy[:, :2], min(float(xyxy.min()), 0.0), out=xywh[:, :2])
    xywh[:, 2:] = xyxy[:, 2:] - xyxy[:, :2]
    # No top_k here: OpenCV's top_k cuts the candidates *before* suppression; Ultralytics cuts after it.
    kept = cv2.dnn.NMSBoxesBatched(  # the stubs say Sequence; OpenCV takes the arrays as they are
        xywh,  # type: ignore[arg-type]
        scores.astype(np.float32, copy=False),  # type: ignore[arg-type]
        class_id.astype(np.int32),  # type: ignore[arg-type]
        0.0,
        float(iou_threshold),
    )
    return np.asarray(kept, dtype=np.intp).reshape(-1)[:max_detections]
