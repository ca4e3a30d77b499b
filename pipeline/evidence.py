"""Evidence images for cases: the frame at first sight and at confirmation with the offending boxes and
the zone drawn, a close-up crop of the object, and the "after" picture of verification by camera.

Privacy first: people in the frame (any detection of a person-like class) are pixelated before anything
is drawn or cropped, unless ``evidence.blur_persons`` is off. Only detected people can be blurred; a
person the detector missed stays visible, so the setting reduces, not removes, what a picture shows.

Files are JPEGs named by the sha256 of their bytes (``<evidence.dir>/<ab>/<sha256>.jpg``), written
atomically and fsynced before the path is handed to the outbox, so a queued report never points at a
half-written picture. This runs once per incident event, never per frame.
"""

from __future__ import annotations

import datetime as dt
import hashlib
from collections.abc import Sequence
from pathlib import Path
from typing import Any, Protocol

import cv2
import numpy as np
import numpy.typing as npt

from common.files import write_atomically
from contract.reports import SHARPNESS_FULL
from detector.detections import Detections
from pipeline.config import EvidenceConfig
from pipeline.errors import EvidenceError

Image = npt.NDArray[np.uint8]
PRIVACY_CLASSES = frozenset({"person", "pedestrian", "people", "face", "head"})
PIXELATE_BLOCKS = 6  # the longer side of a blurred region becomes this many blocks, then smoothed
BLUR_MARGIN = 0.08  # grow person boxes by this fraction of their size on each side
CROP_MARGIN = 0.25
CROP_MIN_PX = 96
ZONE_COLOUR = (0, 215, 255)  # BGR amber
BOX_COLOUR = (0, 0, 255)  # BGR red
TEXT_COLOUR = (255, 255, 255)


class EvidenceEvent(Protocol):
    """What rendering needs from an incident event (:class:`pipeline.incidents.IncidentEvent`)."""

    @property
    def kind(self) -> str: ...
    @property
    def camera_id(self) -> str: ...
    @property
    def zone_id(self) -> str: ...
    @property
    def violation_type(self) -> str: ...
    @property
    def at(self) -> dt.datetime: ...
    @property
    def boxes(self) -> Detections: ...
    @property
    def polygon_px(self) -> Any: ...


def render_evidence(
    frame_bgr: Image,
    event: EvidenceEvent,
    all_detections: Detections,
    class_names: Sequence[str],
    config: EvidenceConfig,
) -> list[tuple[str, Path]]:
    """Write the evidence of ``event`` and return ``(kind, path)`` pairs for the outbox:
    ``first_seen`` and ``sighting`` -> the annotated frame; ``confirmed`` -> the annotated frame
    (``confirmation``) and a crop of the most confident offending box (``crop``); ``ended`` -> nothing.

    ``frame_bgr`` is the full-resolution frame the event happened in (left unchanged), ``all_detections``
    everything detected in it (used to find the people to blur), ``class_names`` the model's classes.
    """
    if event.kind not in ("first_seen", "confirmed", "sighting"):
        return []
    base = private_copy(frame_bgr, all_detections, class_names, blur=config.blur_persons)
    caption = _caption(event.camera_id, event.zone_id, event.violation_type, event.at)
    annotated = annotate(base, event.polygon_px, event.boxes, class_names, caption)
    directory = Path(config.dir)
    if event.kind in ("first_seen", "sighting"):
        return [(event.kind, write_jpeg(annotated, directory, config.jpeg_quality))]
    written = [("confirmation", write_jpeg(annotated, directory, config.jpeg_quality))]
    if len(event.boxes):
        best = int(np.argmax(event.boxes.confidence))
        crop = crop_box(base, event.boxes.xyxy[best])
        written.append(("crop", write_jpeg(crop, directory, config.jpeg_quality)))
    return written


def evidence_score(frame_bgr: Image, boxes: Detections) -> float:
    """How well a frame shows its offending ``boxes`` (0..1), as :mod:`contract.reports` states it: the
    highest box confidence times min(1, variance of the Laplacian of that box's gray crop / SHARPNESS_FULL).
    A blurred, dark or half-hidden view scores lower than a sharp, confident one."""
    if not len(boxes):
        return 0.0
    best = int(np.argmax(boxes.confidence))
    height, width = frame_bgr.shape[:2]
    x1, y1, x2, y2 = (round(float(v)) for v in boxes.xyxy[best])
    x1, x2 = max(0, min(x1, width - 1)), max(1, min(x2, width))
    y1, y2 = max(0, min(y1, height - 1)), max(1, min(y2, height))
    if x2 - x1 < 3 or y2 - y1 < 3:
        return 0.0
    gray = cv2.cvtColor(frame_bgr[y1:y2, x1:x2], cv2.COLOR_BGR2GRAY)
    sharpness = float(cv2.Laplacian(gray, cv2.CV_64F).var())
    confidence = min(max(float(boxes.confidence[best]), 0.0), 1.0)
    return round(confidence * min(1.0, sharpness / SHARPNESS_FULL), 4)


def render_after(
    frame_bgr: Image,
    *,
    camera_id: str,
    zone_id: str,
    violation_type: str,
    at: dt.datetime,
    polygon_px: Any,
    boxes: Detections,
    all_detections: Detections,
    class_names: Sequence[str],
    config: EvidenceConfig,
    note: str = "",
) -> list[tuple[str, Path]]:
    """The "after" picture of verification by camera: the zone, and ``boxes`` (what is still there, if
    anything), people blurred. Returns ``[("after", path)]``."""
    base = private_copy(frame_bgr, all_detections, class_names, blur=config.blur_persons)
    caption = _caption(camera_id, zone_id, violation_type, at) + (f" | {note}" if note else "")
    annotated = annotate(base, polygon_px, boxes, class_names, caption)
    return [("after", write_jpeg(annotated, Path(config.dir), config.jpeg_quality))]


# --- privacy -------------------------------------------------------------------------------------------


def person_boxes(detections: Detections, class_names: Sequence[str]) -> npt.NDArray[np.float32]:
    """(K, 4) xyxy of the detections whose class is person-like (:data:`PRIVACY_CLASSES`)."""
    person_ids = [i for i, name in enumerate(class_names) if name.lower() in PRIVACY_CLASSES]
    if not person_ids or not len(detections):
        return np.zeros((0, 4), np.float32)
    return detections.xyxy[np.isin(detections.class_id, person_ids)]


def private_copy(
    frame_bgr: Image, detections: Detections, class_names: Sequence[str], *, blur: bool
) -> Image:
    """A copy of the frame with people pixelated (when ``blur``)."""
    image = frame_bgr.copy()
    if blur:
        pixelate(image, person_boxes(detections, class_names))
    return image


def pixelate(image: Image, xyxy: npt.NDArray[np.float32], margin: float = BLUR_MARGIN) -> None:
    """Pixelate each box of ``xyxy`` in ``image`` in place: area-average down to a few blocks (the
    information is gone, unlike a weak blur), then smooth the blocks so the result is not distracting."""
    height, width = image.shape[:2]
    for x1, y1, x2, y2 in _clip_boxes(_grow(xyxy, margin), width, height):
        roi = image[y1:y2, x1:x2]
        h, w = roi.shape[:2]
        scale = PIXELATE_BLOCKS / max(h, w)
        small = cv2.resize(
            roi, (max(1, round(w * scale)), max(1, round(h * scale))), interpolation=cv2.INTER_AREA
        )
        blocks = cv2.resize(small, (w, h), interpolation=cv2.INTER_NEAREST)
        k = max(3, (min(h, w) // PIXELATE_BLOCKS) | 1)
        image[y1:y2, x1:x2] = cv2.GaussianBlur(blocks, (k, k), 0)


def _grow(xyxy: npt.NDArray[np.float32], margin: float) -> npt.NDArray[np.float32]:
    boxes = np.asarray(xyxy, np.float32).reshape(-1, 4)
    size = np.concatenate([boxes[:, 2:] - boxes[:, :2]] * 2, axis=1)
    grown: npt.NDArray[np.float32] = boxes + size * np.array([-margin, -margin, margin, margin], np.float32)
    return grown


def _clip_boxes(xyxy: npt.NDArray[np.float32], width: int, height: int) -> list[tuple[int, int, int, int]]:
    """Integer boxes inside the frame, empty ones dropped."""
    boxes = np.round(xyxy).astype(np.int64)
    boxes[:, 0::2] = boxes[:, 0::2].clip(0, width)
    boxes[:, 1::2] = boxes[:, 1::2].clip(0, height)
    keep = (boxes[:, 2] > boxes[:, 0]) & (boxes[:, 3] > boxes[:, 1])
    return [(int(a), int(b), int(c), int(d)) for a, b, c, d in boxes[keep]]


# --- drawing -------------------------------------------------------------------------------------------


def polygon_points(polygon_px: Any) -> npt.NDArray[np.int32]:
    """The zone polygon as (K, 1, 2) int32 for OpenCV, from any (K, 2) sequence of pixel points."""
    points = np.asarray(polygon_px, dtype=np.float64).reshape(-1, 2)
    if len(points) < 3:
        raise EvidenceError(f"zone polygon needs at least 3 points, got {len(points)}")
    return np.round(points).astype(np.int32).reshape(-1, 1, 2)


def annotate(
    image: Image, polygon_px: Any, boxes: Detections, class_names: Sequence[str], caption: str
) -> Image:
    """A copy of ``image`` with the zone (outline and a light fill), the boxes and a caption bar."""
    canvas = image.copy()
    height, width = canvas.shape[:2]
    points = polygon_points(polygon_px)
    fill = canvas.copy()
    cv2.fillPoly(fill, [points], ZONE_COLOUR)
    cv2.addWeighted(fill, 0.2, canvas, 0.8, 0, dst=canvas)
    thickness = max(2, round(min(width, height) / 300))
    cv2.polylines(canvas, [points], isClosed=True, color=ZONE_COLOUR, thickness=thickness)
    for i in range(len(boxes)):  # a handful of boxes, once per event
        clipped = _clip_boxes(boxes.xyxy[i : i + 1], width, height)
        if not clipped:
            continue
        x1, y1, x2, y2 = clipped[0]
        cv2.rectangle(canvas, (x1, y1), (x2, y2), BOX_COLOUR, thickness + 1)
        class_id = int(boxes.class_id[i])
        name = class_names[class_id] if 0 <= class_id < len(class_names) else str(class_id)
        _label(canvas, f"{name} {float(boxes.confidence[i]):.2f}", (x1, max(y1 - 4, 14)))
    _caption_bar(canvas, caption)
    return canvas


def _label(canvas: Image, text: str, origin: tuple[int, int]) -> None:
    (tw, th), _ = cv2.getTextSize(text, cv2.FONT_HERSHEY_SIMPLEX, 0.5, 1)
    x, y = origin
    cv2.rectangle(canvas, (x, y - th - 4), (x + tw + 4, y + 2), BOX_COLOUR, -1)
    cv2.putText(canvas, text, (x + 2, y - 2), cv2.FONT_HERSHEY_SIMPLEX, 0.5, TEXT_COLOUR, 1, cv2.LINE_AA)


def _caption_bar(canvas: Image, caption: str) -> None:
    scale = max(0.45, canvas.shape[1] / 1600)
    (_, th), baseline = cv2.getTextSize(caption, cv2.FONT_HERSHEY_SIMPLEX, scale, 1)
    bar = th + baseline + 8
    canvas[:bar] = (canvas[:bar] * 0.35).astype(np.uint8)
    cv2.putText(canvas, caption, (6, th + 4), cv2.FONT_HERSHEY_SIMPLEX, scale, TEXT_COLOUR, 1, cv2.LINE_AA)


def _caption(camera_id: str, zone_id: str, violation_type: str, at: dt.datetime) -> str:
    when = at.astimezone(dt.UTC).strftime("%Y-%m-%d %H:%M:%S UTC")
    text = f"{camera_id} / {zone_id} | {violation_type} | {when}"
    return text.encode("ascii", "replace").decode("ascii")  # OpenCV's Hershey fonts are ASCII only


def crop_box(image: Image, xyxy: npt.NDArray[np.float32], margin: float = CROP_MARGIN) -> Image:
    """A close-up of one box with ``margin`` around it, at least :data:`CROP_MIN_PX` a side where the
    frame allows."""
    height, width = image.shape[:2]
    x1, y1, x2, y2 = (float(v) for v in xyxy)
    cx, cy = (x1 + x2) / 2, (y1 + y2) / 2
    half_w = max((x2 - x1) * (1 + 2 * margin), CROP_MIN_PX) / 2
    half_h = max((y2 - y1) * (1 + 2 * margin), CROP_MIN_PX) / 2
    box = np.array([[cx - half_w, cy - half_h, cx + half_w, cy + half_h]], np.float32)
    clipped = _clip_boxes(box, width, height)
    if not clipped:
        raise EvidenceError(
            f"box {[round(v) for v in (x1, y1, x2, y2)]} lies outside the {width}x{height} frame"
        )
    a, b, c, d = clipped[0]
    return image[b:d, a:c].copy()


# --- files ---------------------------------------------------------------------------------------------


def write_jpeg(image: Image, directory: Path, quality: int) -> Path:
    """Encode ``image`` as JPEG and store it as ``<directory>/<ab>/<sha256>.jpg`` (atomic, fsynced);
    the same picture twice is one file."""
    ok, encoded = cv2.imencode(".jpg", image, [cv2.IMWRITE_JPEG_QUALITY, int(quality)])
    if not ok:
        raise EvidenceError(f"OpenCV could not encode a {image.shape} image as JPEG")
    data = encoded.tobytes()
    sha256 = hashlib.sha256(data).hexdigest()
    path = directory / sha256[:2] / f"{sha256}.jpg"
    if path.is_file():
        return path
    try:
        write_atomically(path, data, prefix=".evidence-")
    except OSError as exc:
        raise EvidenceError(f"cannot write evidence under evidence.dir {directory}: {exc}") from exc
    return path
