"""Evidence images for cases: the frame at first sight and at confirmation with the offending boxes and
the zone drawn, a close-up crop of the object, and the "after" picture of verification by camera.

Privacy first: every picture is redacted (:mod:`pipeline.redaction`) before anything is drawn or cropped,
unless ``evidence.blur_persons`` is off. By default only the violation and its zone stay sharp, so a
person the detector missed is blurred all the same. An unredacted copy is written only where a camera is
configured to keep one, and only on this box (``<evidence.dir>/unredacted/``): it never enters the outbox.

Files are JPEGs named by the sha256 of their bytes (``<evidence.dir>/<ab>/<sha256>.jpg``), written
atomically and fsynced before the path is handed to the outbox, so a queued report never points at a
half-written picture. This runs once per incident event, never per frame.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any, Protocol
from zoneinfo import ZoneInfo

import cv2
import numpy as np
import numpy.typing as npt

from common.files import write_atomically
from contract.reports import SHARPNESS_FULL
from detector.detections import Detections
from pipeline import redaction
from pipeline.config import EvidenceConfig, RedactionConfig
from pipeline.errors import EvidenceError
from pipeline.redaction import PRIVACY_CLASSES, clip_boxes, person_boxes

__all__ = ["PRIVACY_CLASSES", "person_boxes"]

Image = npt.NDArray[np.uint8]
BLUR_MARGIN = 0.15  # zone-editor snapshots: grow person boxes by this share on each side (as person_margin)
UNREDACTED_DIR = "unredacted"
# Where evidence stamps are read when no camera time zone is given: a camera's ``timezone`` default.
DEFAULT_STAMP_TIMEZONE = "Asia/Shanghai"
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
    @property
    def zones_px(self) -> Sequence[Any]: ...


def render_evidence(
    frame_bgr: Image,
    event: EvidenceEvent,
    all_detections: Detections,
    class_names: Sequence[str],
    config: EvidenceConfig,
    *,
    policy: RedactionConfig | None = None,
    persons_xyxy: npt.NDArray[np.float32] | None = None,
    timezone: str = DEFAULT_STAMP_TIMEZONE,
) -> list[tuple[str, Path]]:
    """Write the evidence of ``event`` and return ``(kind, path)`` pairs for the outbox:
    ``first_seen`` and ``sighting`` -> the annotated frame; ``confirmed`` -> the annotated frame
    (``confirmation``), a crop of the most confident offending box (``crop``) and, with
    ``evidence.training_frame``, the frame with nothing drawn on it (``frame``: every zone of
    ``event.zones_px`` kept sharp besides the case's own); ``ended`` -> nothing.

    ``frame_bgr`` is the full-resolution frame the event happened in (left unchanged), ``all_detections``
    everything detected in it, ``class_names`` the model's classes. ``policy`` is the camera's redaction
    (default ``config.redaction``); ``persons_xyxy`` the people to pixelate, found at
    ``evidence.person_confidence`` (default: the person-like boxes of ``all_detections``). The time burnt
    into the caption is the camera's local time (``timezone``, the camera's ``timezone`` setting).
    """
    if event.kind not in ("first_seen", "confirmed", "sighting"):
        return []
    policy = policy or config.redaction
    persons = person_boxes(all_detections, class_names) if persons_xyxy is None else persons_xyxy
    base = private_frame(
        frame_bgr, config, policy, persons, event.boxes, class_names, polygon_px=event.polygon_px
    )
    caption = _caption(event.camera_id, event.zone_id, event.violation_type, event.at, timezone)
    annotated = annotate(base, event.polygon_px, event.boxes, class_names, caption)
    directory = Path(config.dir)
    if policy.keep_unredacted:
        keep_unredacted(
            frame_bgr, event.polygon_px, event.boxes, class_names, caption, config, event.camera_id
        )
    if event.kind in ("first_seen", "sighting"):
        return [(event.kind, write_jpeg(annotated, directory, config.jpeg_quality))]
    written = [("confirmation", write_jpeg(annotated, directory, config.jpeg_quality))]
    if len(event.boxes):
        best = int(np.argmax(event.boxes.confidence))
        crop = crop_box(base, event.boxes.xyxy[best])
        written.append(("crop", write_jpeg(crop, directory, config.jpeg_quality)))
    if config.training_frame:
        clean = base
        others = [z for z in event.zones_px if not np.array_equal(z, event.polygon_px)]
        if others and config.blur_persons and policy.mode == "outside_violation":
            clean = redaction.redact(
                frame_bgr,
                policy,
                persons_xyxy=persons,
                violation=event.boxes,
                class_names=class_names,
                polygon_px=event.polygon_px,
                also_keep_px=others,
            )
        written.append(("frame", write_jpeg(clean, directory, config.jpeg_quality)))
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
    policy: RedactionConfig | None = None,
    persons_xyxy: npt.NDArray[np.float32] | None = None,
    timezone: str = DEFAULT_STAMP_TIMEZONE,
) -> list[tuple[str, Path]]:
    """The "after" picture of verification by camera: the zone, and ``boxes`` (what is still there, if
    anything), redacted as :func:`render_evidence` does (the zone and ``boxes`` kept sharp). Returns
    ``[("after", path)]``."""
    policy = policy or config.redaction
    persons = person_boxes(all_detections, class_names) if persons_xyxy is None else persons_xyxy
    base = private_frame(frame_bgr, config, policy, persons, boxes, class_names, polygon_px=polygon_px)
    caption = _caption(camera_id, zone_id, violation_type, at, timezone) + (f" | {note}" if note else "")
    annotated = annotate(base, polygon_px, boxes, class_names, caption)
    if policy.keep_unredacted:
        keep_unredacted(frame_bgr, polygon_px, boxes, class_names, caption, config, camera_id)
    return [("after", write_jpeg(annotated, Path(config.dir), config.jpeg_quality))]


# --- privacy -------------------------------------------------------------------------------------------


def private_frame(
    frame_bgr: Image,
    config: EvidenceConfig,
    policy: RedactionConfig,
    persons_xyxy: npt.NDArray[np.float32],
    violation: Detections,
    class_names: Sequence[str],
    *,
    polygon_px: Any,
) -> Image:
    """The frame as it may leave the box: redacted under ``policy``, or a plain copy when
    ``evidence.blur_persons`` is off."""
    if not config.blur_persons:
        return frame_bgr.copy()
    return redaction.redact(
        frame_bgr,
        policy,
        persons_xyxy=persons_xyxy,
        violation=violation,
        class_names=class_names,
        polygon_px=polygon_px,
    )


def private_copy(
    frame_bgr: Image, detections: Detections, class_names: Sequence[str], *, blur: bool
) -> Image:
    """A copy of the frame with the person-like ``detections`` pixelated (when ``blur``)."""
    return persons_pixelated(frame_bgr, person_boxes(detections, class_names), blur=blur)


def persons_pixelated(frame_bgr: Image, persons_xyxy: npt.NDArray[np.float32], *, blur: bool) -> Image:
    """A copy of the frame with ``persons_xyxy`` pixelated (when ``blur``): the zone-editor snapshot."""
    image = frame_bgr.copy()
    if blur:
        pixelate(image, persons_xyxy)
    return image


def pixelate(image: Image, xyxy: npt.NDArray[np.float32], margin: float = BLUR_MARGIN) -> None:
    """Pixelate each box of ``xyxy``, grown by ``margin``, in ``image`` in place."""
    redaction.pixelate(image, redaction.grow(xyxy, margin))


def keep_unredacted(
    frame_bgr: Image,
    polygon_px: Any,
    boxes: Detections,
    class_names: Sequence[str],
    caption: str,
    config: EvidenceConfig,
    camera_id: str,
) -> Path:
    """Write the unredacted, annotated frame under ``<evidence.dir>/unredacted/<camera>/`` (never queued
    for upload), after deleting the copies older than ``evidence.unredacted_keep_h``."""
    directory = Path(config.dir) / UNREDACTED_DIR / camera_id
    prune_older_than(directory, config.unredacted_keep_h * 3600)
    annotated = annotate(frame_bgr, polygon_px, boxes, class_names, caption)
    return write_jpeg(annotated, directory, config.jpeg_quality)


def prune_older_than(directory: Path, max_age_s: float) -> int:
    """Delete the JPEGs under ``directory`` last modified more than ``max_age_s`` ago; return how many."""
    if not directory.is_dir():
        return 0
    cutoff = time.time() - max_age_s
    removed = 0
    for path in directory.glob("*/*.jpg"):
        try:
            if path.stat().st_mtime < cutoff:
                path.unlink()
                removed += 1
        except FileNotFoundError:
            continue
    return removed


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
        clipped = clip_boxes(boxes.xyxy[i : i + 1], width, height)
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


def stamp_time(at: dt.datetime, timezone: str) -> str:
    """The time burnt into evidence: the camera's local wall time with its offset, as people on site read
    a clock (``2026-03-02 08:15:30 UTC+08:00``), not UTC."""
    local = at.astimezone(ZoneInfo(timezone))
    offset = local.strftime("%z")  # +0800
    return f"{local:%Y-%m-%d %H:%M:%S} UTC{offset[:3]}:{offset[3:]}"


def _caption(camera_id: str, zone_id: str, violation_type: str, at: dt.datetime, timezone: str) -> str:
    when = stamp_time(at, timezone)
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
    clipped = clip_boxes(box, width, height)
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
