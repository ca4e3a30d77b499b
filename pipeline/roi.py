"""Zone-ROI inference (``cameras[].zone_roi``): the detector sees the bounding crop of a camera's zones.

:func:`zone_roi` is the crop: the zones' bounding box grown by :data:`ROI_MARGIN` of the frame on each
side, or None when it would cover most of the frame anyway (nothing to gain). :func:`crop_to_fit` cuts it
from a decoded picture and scales it to fit the model's input (aspect kept, never enlarged beyond the
stream's own pixels), converting only the crop's pixels. The sample then carries ``small_box``, the crop in
the picture's pixels, and :func:`pipeline.scheduler.to_full_frame` maps boxes back by it.
:func:`crop_max_scale` says how large the detector may then make the crop (``zone_roi_scale``): at the
stream's own pixels a model of dynamic input size runs at the crop's size, and its cost falls with the
crop's area (a 96x160 input costs 0.17x a 384x640 one on the benchmark box).

What lies outside the crop is not detected: a car parked there, a person walking there. Zone rules only
judge objects anchored inside their zones, and the default redaction (``outside_violation``) blurs
everything outside the violation and the zone, so neither cases nor privacy depend on it; the
configuration refuses zone_roi with ``persons_only`` redaction.
"""

from __future__ import annotations

from collections.abc import Sequence

import cv2
import numpy as np
import numpy.typing as npt
from av.video.frame import VideoFrame

from pipeline.config import CameraConfig, ZoneConfig
from pipeline.protocols import FrameLike

ROI_MARGIN = 0.05  # of the frame's width / height, on each side of the zones' bounding box
ROI_MAX_AREA = 0.8  # a crop covering more of the frame than this is not worth it: the whole frame
Rect = tuple[float, float, float, float]  # normalised x0, y0, x1, y1
PLANAR_420 = frozenset({"yuv420p"})  # limited range, like OpenCV's I420 conversion


def zone_roi(zones: Sequence[ZoneConfig], margin: float = ROI_MARGIN) -> Rect | None:
    """The normalised crop holding every zone (plus ``margin``), or None: the whole frame."""
    points = [point for zone in zones for point in zone.polygon]
    if not points:
        return None
    xs, ys = [p[0] for p in points], [p[1] for p in points]
    x0, y0 = max(0.0, min(xs) - margin), max(0.0, min(ys) - margin)
    x1, y1 = min(1.0, max(xs) + margin), min(1.0, max(ys) + margin)
    if (x1 - x0) * (y1 - y0) > ROI_MAX_AREA or x1 <= x0 or y1 <= y0:
        return None
    return x0, y0, x1, y1


def crop_max_scale(camera: CameraConfig, frame: FrameLike, detector: object) -> float | None:
    """The most ``detector`` may enlarge ``frame``'s model copy: 1.0 for a zone-ROI crop shown at its own
    pixels (``zone_roi_scale`` native, or auto on a model of dynamic input size), None (fill the input)
    otherwise: a whole frame, ``fill``, or auto on a fixed-size model, whose input costs the same anyway."""
    if frame.small is None or frame.small_box is None or camera.zone_roi_scale == "fill":
        return None
    if camera.zone_roi_scale == "native":
        return 1.0
    preprocessor = getattr(detector, "preprocessor", None)
    dynamic = preprocessor is not None and bool(preprocessor.spec.dynamic)
    return 1.0 if dynamic else None


def pixel_box(rect: Rect, width: int, height: int) -> tuple[int, int, int, int]:
    """``rect`` in pixels of a ``width`` x ``height`` picture, on even coordinates (4:2:0 chroma), at least
    2 x 2 pixels."""
    x0 = min(int(rect[0] * width) // 2 * 2, max(width - 2, 0))
    y0 = min(int(rect[1] * height) // 2 * 2, max(height - 2, 0))
    x1, y1 = int(np.ceil(rect[2] * width)), int(np.ceil(rect[3] * height))
    x1, y1 = min(x1 + x1 % 2, width), min(y1 + y1 % 2, height)
    return x0, y0, max(x1, min(x0 + 2, width)), max(y1, min(y0 + 2, height))


def crop_to_fit(
    frame: VideoFrame, box: tuple[int, int, int, int], input_hw: tuple[int, int]
) -> npt.NDArray[np.uint8]:
    """The ``box`` (pixels) of ``frame`` as BGR, scaled to fit inside ``input_hw`` (never enlarged)."""
    x0, y0, x1, y1 = box
    width, height = x1 - x0, y1 - y0
    if frame.format.name in PLANAR_420 and x0 % 2 == 0 and y0 % 2 == 0 and width % 2 == 0 and height % 2 == 0:
        crop = _crop_i420(frame, box)
    else:  # other pixel formats: convert the whole picture, then cut (correct, slower)
        crop = np.asarray(frame.to_ndarray(format="bgr24"), np.uint8)[y0:y1, x0:x1]
    target_h, target_w = input_hw
    scale = min(target_h / height, target_w / width, 1.0)
    if scale >= 1.0:
        return np.ascontiguousarray(crop)
    size = (max(1, round(width * scale)), max(1, round(height * scale)))
    return np.ascontiguousarray(cv2.resize(crop, size, interpolation=cv2.INTER_AREA))


def _plane(frame: VideoFrame, index: int, rows: int, cols: int) -> npt.NDArray[np.uint8]:
    plane = frame.planes[index]
    data = np.frombuffer(memoryview(plane), np.uint8)
    return data.reshape(-1, plane.line_size)[:rows, :cols]


def _crop_i420(frame: VideoFrame, box: tuple[int, int, int, int]) -> npt.NDArray[np.uint8]:
    """Cut ``box`` out of the Y, U and V planes and convert only those pixels to BGR."""
    x0, y0, x1, y1 = box
    w, h = x1 - x0, y1 - y0
    y = _plane(frame, 0, frame.height, frame.width)[y0:y1, x0:x1]
    cw, ch = (frame.width + 1) // 2, (frame.height + 1) // 2
    u = _plane(frame, 1, ch, cw)[y0 // 2 : y1 // 2, x0 // 2 : x1 // 2]
    v = _plane(frame, 2, ch, cw)[y0 // 2 : y1 // 2, x0 // 2 : x1 // 2]
    i420 = np.empty((h * 3 // 2, w), np.uint8)
    i420[:h] = y
    i420[h:].reshape(-1)[: u.size] = u.reshape(-1)
    i420[h:].reshape(-1)[u.size :] = v.reshape(-1)
    return np.asarray(cv2.cvtColor(i420, cv2.COLOR_YUV2BGR_I420), np.uint8)
