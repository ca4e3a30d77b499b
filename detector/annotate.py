"""Drawing detections on frames for people to look at (not on the hot path)."""

from __future__ import annotations

from collections.abc import Sequence

import cv2
import numpy as np
import numpy.typing as npt

from detector.detections import Detections


def class_colour(class_id: int) -> tuple[int, int, int]:
    """A stable, distinct BGR colour per class."""
    hue = (class_id * 47) % 180
    hsv = np.array([[[hue, 200, 255]]], dtype=np.uint8)
    b, g, r = cv2.cvtColor(hsv, cv2.COLOR_HSV2BGR)[0, 0]
    return int(b), int(g), int(r)


def draw_detections(
    frame: npt.NDArray[np.uint8], detections: Detections, class_names: Sequence[str]
) -> npt.NDArray[np.uint8]:
    """A copy of ``frame`` with a labelled box per detection."""
    canvas = frame.copy()
    for (x1, y1, x2, y2), score, cid in zip(
        detections.xyxy.astype(int), detections.confidence, detections.class_id, strict=True
    ):
        colour = class_colour(int(cid))
        name = class_names[cid] if 0 <= cid < len(class_names) else str(cid)
        label = f"{name} {score:.2f}"
        cv2.rectangle(canvas, (x1, y1), (x2, y2), colour, 2)
        (tw, th), _ = cv2.getTextSize(label, cv2.FONT_HERSHEY_SIMPLEX, 0.5, 1)
        top = max(y1 - th - 4, 0)
        cv2.rectangle(canvas, (x1, top), (x1 + tw + 4, top + th + 4), colour, -1)
        cv2.putText(
            canvas, label, (x1 + 2, top + th + 1), cv2.FONT_HERSHEY_SIMPLEX, 0.5, (0, 0, 0), 1, cv2.LINE_AA
        )
    return canvas
