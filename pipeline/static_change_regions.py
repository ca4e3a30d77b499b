"""Change regions followed over time: a region is reported only once it holds its shape and position.

A brief stop (a car at a crossing, a person pausing) makes a change region too; what tells an object that
*stays* is that the same region is found, with the same box, frame after frame. Each region keeps the
boxes it had over the last :data:`STABLE_S` seconds (bounded deque) and is stable when it has been seen
that long and every one of those boxes overlaps its current box by :data:`STABLE_IOU`.
"""

from __future__ import annotations

from collections import deque
from dataclasses import dataclass, field

import numpy as np
import numpy.typing as npt

BoxI = tuple[int, int, int, int]  # x1, y1, x2, y2 in working pixels, x2/y2 exclusive

STABLE_S = 2.0  # seconds a region must keep its box: longer than a walking person stays in one place
STABLE_IOU = 0.6  # a box wobbling by a few working pixels at its edges still counts as the same shape
COVER = 0.75  # share of STABLE_S that the region's sightings must span (a frame or two may be skipped)
MATCH_IOU = 0.3  # a component continues a region when it overlaps it this much (greedy, best IoU first)
MISS_S = 1.5  # a region not found for this long is forgotten (its pixels went back to the reference)
HISTORY = 64  # boxes kept per region: bounded state, enough for STABLE_S at the daemon's frame rates


def iou(a: BoxI, b: BoxI) -> float:
    ix = max(0, min(a[2], b[2]) - max(a[0], b[0]))
    iy = max(0, min(a[3], b[3]) - max(a[1], b[1]))
    inter = ix * iy
    union = (a[2] - a[0]) * (a[3] - a[1]) + (b[2] - b[0]) * (b[3] - b[1]) - inter
    return inter / union if union > 0 else 0.0


@dataclass(slots=True)
class Region:
    """One change region of a zone, in working pixels; times are stream seconds."""

    box: BoxI
    first_s: float
    last_s: float
    strength: float  # mean normalised change (0..1) inside the region at its last sighting
    history: deque[tuple[float, BoxI]] = field(default_factory=lambda: deque(maxlen=HISTORY))

    def stability(self, now_s: float) -> float:
        """Mean IoU of the current box with its boxes of the last STABLE_S seconds; 0 until seen that long."""
        if now_s - self.first_s < STABLE_S:
            return 0.0
        recent = [(t, iou(self.box, b)) for t, b in self.history if now_s - t <= STABLE_S]
        # seen over most of the window, not just once after a gap (a zone hidden by a bus, a dark frame)
        if not recent or now_s - recent[0][0] < COVER * STABLE_S or min(o for _, o in recent) < STABLE_IOU:
            return 0.0
        return float(np.mean([o for _, o in recent]))


def match_regions(regions: list[Region], boxes: list[BoxI], strengths: list[float], now_s: float) -> None:
    """Continue ``regions`` with this frame's component ``boxes`` (in place); start new ones; forget old.

    Greedy matching by IoU, best pair first: regions of one zone are few and rarely overlap one another, so
    an optimal assignment would buy nothing.
    """
    pairs = sorted(
        ((iou(r.box, b), ri, bi) for ri, r in enumerate(regions) for bi, b in enumerate(boxes)),
        reverse=True,
    )
    used_r: set[int] = set()
    used_b: set[int] = set()
    for overlap, ri, bi in pairs:
        if overlap < MATCH_IOU:
            break
        if ri in used_r or bi in used_b:
            continue
        used_r.add(ri)
        used_b.add(bi)
        region = regions[ri]
        region.box, region.last_s, region.strength = boxes[bi], now_s, strengths[bi]
        region.history.append((now_s, boxes[bi]))
    for bi, box in enumerate(boxes):
        if bi not in used_b:
            region = Region(box, now_s, now_s, strengths[bi])
            region.history.append((now_s, box))
            regions.append(region)
    regions[:] = [r for r in regions if now_s - r.last_s <= MISS_S]


def components(
    candidate: npt.NDArray[np.uint8], min_area_px: float
) -> tuple[list[BoxI], npt.NDArray[np.int32], list[int]]:
    """Boxes of the connected components of ``candidate`` of at least ``min_area_px`` pixels.

    Returns the boxes, the label image and the label of each kept box.
    """
    import cv2

    count, labels, stats, _ = cv2.connectedComponentsWithStats(candidate, connectivity=8)
    boxes: list[BoxI] = []
    kept: list[int] = []
    for label in range(1, count):
        x, y, w, h, area = (int(v) for v in stats[label])
        if area >= min_area_px:
            boxes.append((x, y, x + w, y + h))
            kept.append(label)
    return boxes, np.asarray(labels, np.int32), kept
