"""Evidence images: checked to be real JPEG or PNG, size-limited, stored once by sha256, and served only
to operators who may see a case that has them. Evidence clips (MP4, kind ``clip``) likewise, from devices
only and served only to the roles of :mod:`api.clips`, each opening audited.

Evidence images and clips are blobs of kind ``evidence`` named ``<sha256>.<jpg|png|mp4>`` in the blob store
(:mod:`api.storage`; locally ``<evidence_dir>/<first two hex digits>/<sha256>.<ext>``). The name is the
content's hash, never anything a client sent, and reads accept only 64 lowercase hex digits, so no request
can name anything outside the store.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import re
import threading
from dataclasses import dataclass
from functools import cache
from pathlib import Path
from typing import Any

import cv2
import numpy as np
from pydantic import ValidationError
from sqlalchemy import exists, select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from api.actors import Actor
from api.audit import record_event
from api.case_queries import get_visible_case, visibility_clause
from api.clips import CLIP_CONTENT_TYPE, check_clip, require_clip_role
from api.errors import Forbidden, InvalidInput, NotFound, PayloadTooLarge
from api.ingest import begin_write
from api.messages import msg
from api.models import Camera, Case, Evidence, Role, Sighting, utcnow
from api.settings import IMAGE_DECODES_MAX, IMAGE_MAX_PIXELS, Settings
from api.storage import BlobRef, BlobStore, blobs_for, chunked
from contract.reports import BEST_EVIDENCE_MARGIN, FRAME_BOXES, MAX_BOXES, EvidenceKind

_FULL_VIEW_RANK = 2  # first_seen and better: whole frames, comparable by their scores

SHA256_PATTERN = r"^[0-9a-f]{64}$"
_SHA256 = re.compile(SHA256_PATTERN)
_JPEG_MAGIC = b"\xff\xd8\xff"
_JPEG_END = b"\xff\xd9"
_PNG_MAGIC = b"\x89PNG\r\n\x1a\n"
_PNG_END = b"IEND\xaeB`\x82"
# Which image best shows the violation; "after" and "handling" images never become the case's best evidence.
_BEST_RANK = {
    EvidenceKind.CONFIRMATION: 3,
    EvidenceKind.SIGHTING: 3,
    EvidenceKind.FIRST_SEEN: 2,
    EvidenceKind.CROP: 1,
}
_EXTENSIONS = {"image/jpeg": "jpg", "image/png": "png", CLIP_CONTENT_TYPE: "mp4"}


@dataclass(frozen=True)
class CheckedImage:
    content_type: str  # image/jpeg | image/png
    width: int
    height: int


def evidence_url(sha256: str) -> str:
    return f"/api/v1/evidence/{sha256}"


def check_image(
    data: bytes,
    max_bytes: int,
    *,
    max_pixels: int = IMAGE_MAX_PIXELS,
    max_decodes: int = IMAGE_DECODES_MAX,
) -> CheckedImage:
    """Accept ``data`` only if it is a whole JPEG or PNG that decodes; raise InvalidInput/PayloadTooLarge.

    The size in the header is checked against ``max_pixels`` before decoding (a small file can announce a
    huge image), and at most ``max_decodes`` images decode at once in this process, so memory for decoding
    stays under about ``max_decodes * max_pixels * 3`` bytes however many uploads arrive together."""
    if len(data) > max_bytes:
        raise PayloadTooLarge(
            f"evidence image is larger than the limit of {max_bytes} bytes",
            msg=msg("error.photo_too_large", limit_mb=f"{max_bytes / 1_000_000:g}"),
            field="file",
            max_bytes=max_bytes,
        )
    content_type, width, height = _header(data)
    kind = content_type.removeprefix("image/").upper()
    if width * height > max_pixels:
        raise PayloadTooLarge(
            f"{kind} is {width}x{height} pixels, more than the limit of {max_pixels}",
            msg=msg("error.photo_too_many_pixels", width=width, height=height, limit=max_pixels),
            field="file",
            max_pixels=max_pixels,
        )
    with _decode_slots(max_decodes):
        image = cv2.imdecode(np.frombuffer(data, np.uint8), cv2.IMREAD_COLOR)
    if image is None:
        raise InvalidInput(
            f"file has a {kind} signature but does not decode: corrupt or truncated",
            msg=msg("error.photo_corrupt"),
            field="file",
        )
    height, width = image.shape[:2]  # as decoded: EXIF orientation may swap the header's sides
    return CheckedImage(content_type, int(width), int(height))


def _checked(data: bytes, kind: EvidenceKind, actor: Actor, settings: Settings) -> CheckedImage:
    """An image for every kind but ``clip``: an MP4 from an edge box (operators add photos, not video)."""
    if kind is not EvidenceKind.CLIP:
        if len(data) > settings.evidence_max_bytes:  # the route reads up to the larger clip limit
            raise PayloadTooLarge(
                f"evidence image is larger than the limit of {settings.evidence_max_bytes} bytes",
                field="file",
                max_bytes=settings.evidence_max_bytes,
            )
        return check_image(
            data,
            settings.evidence_max_bytes,
            max_pixels=settings.image_max_pixels,
            max_decodes=settings.image_decodes_max,
        )
    if not actor.is_device:
        raise Forbidden("evidence clips come from edge boxes: operators add photos", field="kind")
    with _decode_slots(settings.image_decodes_max):
        clip = check_clip(
            data, settings.clip_max_bytes, max_pixels=settings.image_max_pixels, max_s=settings.clip_max_s
        )
    return CheckedImage(clip.content_type, clip.width, clip.height)


@cache
def _decode_slots(max_decodes: int) -> threading.BoundedSemaphore:
    """One process-wide bound per configured number (routes run in worker threads)."""
    return threading.BoundedSemaphore(max_decodes)


def _header(data: bytes) -> tuple[str, int, int]:
    """Content type, width and height from a whole JPEG's or PNG's header, without decoding."""
    if not data:
        raise InvalidInput(
            "evidence file is empty: expected a JPEG or PNG image",
            msg=msg("error.photo_missing"),
            field="file",
        )
    if data.startswith(_JPEG_MAGIC):
        content_type, size = "image/jpeg", _jpeg_size(data)
        if not data.rstrip(b"\x00").endswith(_JPEG_END):
            raise InvalidInput(
                "JPEG has no end-of-image marker (FFD9): truncated upload?",
                msg=msg("error.photo_corrupt"),
                field="file",
            )
    elif data.startswith(_PNG_MAGIC):
        content_type, size = "image/png", _png_size(data)
        if not data.endswith(_PNG_END):
            raise InvalidInput(
                "PNG does not end with its IEND chunk: truncated upload?",
                msg=msg("error.photo_corrupt"),
                field="file",
            )
    else:
        raise InvalidInput(
            f"not a JPEG or PNG image (the file starts with {data[:8].hex()}); evidence must be JPEG or PNG",
            msg=msg("error.photo_missing"),
            field="file",
        )
    if size is None:
        kind = content_type.removeprefix("image/").upper()
        raise InvalidInput(
            f"{kind} header has no image size: corrupt file", msg=msg("error.photo_corrupt"), field="file"
        )
    return content_type, size[0], size[1]


def _png_size(data: bytes) -> tuple[int, int] | None:
    if len(data) < 24 or data[12:16] != b"IHDR":
        return None
    return int.from_bytes(data[16:20], "big"), int.from_bytes(data[20:24], "big")


_JPEG_SOF = frozenset(range(0xC0, 0xD0)) - {
    0xC4,
    0xC8,
    0xCC,
}  # start-of-frame markers (DHT, JPG, DAC are not)


def _jpeg_size(data: bytes) -> tuple[int, int] | None:
    """Width and height from the JPEG start-of-frame segment, without decoding."""
    i = 2
    while i + 4 <= len(data):
        if data[i] != 0xFF:
            return None
        marker = data[i + 1]
        if marker == 0xFF:  # fill byte
            i += 1
            continue
        if marker == 0x01 or 0xD0 <= marker <= 0xD8:  # markers without a length
            i += 2
            continue
        if marker in _JPEG_SOF:
            if i + 9 > len(data):
                return None
            return int.from_bytes(data[i + 7 : i + 9], "big"), int.from_bytes(data[i + 5 : i + 7], "big")
        if marker == 0xDA:  # scan data before any frame header
            return None
        i += 2 + int.from_bytes(data[i + 2 : i + 4], "big")
    return None


def evidence_ref(sha256: str, content_type: str) -> BlobRef:
    if not _SHA256.fullmatch(sha256):
        raise InvalidInput(
            f"'{sha256[:80]}' is not a sha256: expected 64 lowercase hex digits", field="sha256"
        )
    return BlobRef("evidence", f"{sha256}.{_EXTENSIONS[content_type]}")


def evidence_path(evidence_dir: Path, sha256: str, content_type: str) -> Path:
    """Where the local blob store keeps an image (the dataset export reads the files themselves)."""
    return evidence_dir / sha256[:2] / evidence_ref(sha256, content_type).name


def store_image(blobs: BlobStore, sha256: str, content_type: str, data: bytes) -> BlobRef:
    """Store ``data`` under its hash, whole or not at all; the same bytes are stored once."""
    ref = evidence_ref(sha256, content_type)
    blobs.put(ref, chunked(data), content_type=content_type)
    return ref


def _kind(kind: str) -> EvidenceKind:
    try:
        return EvidenceKind(kind)
    except ValueError:
        allowed = ", ".join(k.value for k in EvidenceKind)
        raise InvalidInput(f"unknown evidence kind '{kind[:40]}'; allowed: {allowed}", field="kind") from None


_BOX_PROBLEMS_SHOWN = 3  # a list of 500 bad boxes names the first few, not all


def frame_boxes(boxes: str | None, kind: EvidenceKind) -> list[dict[str, Any]] | None:
    """The device's detections sent with a ``frame`` picture (form field ``boxes``, a JSON list of
    contract.reports.Box) as stored on its evidence row; None without them. InvalidInput naming the field,
    and the index of the first bad box, when they are not valid JSON, not valid boxes or not on a frame."""
    if boxes is None:
        return None
    if kind is not EvidenceKind.FRAME:
        raise InvalidInput(
            f"boxes come only with a picture of kind '{EvidenceKind.FRAME.value}' (the device's detections "
            f"in it), not with kind '{kind.value}'",
            field="boxes",
        )
    try:
        checked = FRAME_BOXES.validate_json(boxes)
    except ValidationError as exc:
        raise _invalid_boxes(exc) from None
    return [box.model_dump(mode="json", exclude_none=True) for box in checked]


def _invalid_boxes(exc: ValidationError) -> InvalidInput:
    errors = exc.errors(include_url=False, include_input=False)
    first = errors[0]
    if first["type"] == "json_invalid":
        reason = str(first["msg"]).removeprefix("Invalid JSON: ")
        return InvalidInput(f"boxes is not valid JSON: {reason}", field="boxes")
    if first["type"] == "too_long" and not first["loc"]:
        return InvalidInput(f"boxes: more than {MAX_BOXES} boxes", field="boxes", max_boxes=MAX_BOXES)
    if not first["loc"] or not isinstance(first["loc"][0], int):  # not a list at all
        return InvalidInput(f"boxes must be a JSON list of boxes: {first['msg']}", field="boxes")
    problems = [_box_problem(e["loc"], e["type"], e["msg"]) for e in errors[:_BOX_PROBLEMS_SHOWN]]
    more = len(errors) - _BOX_PROBLEMS_SHOWN
    if more > 0:
        problems.append(f"and {more} more")
    return InvalidInput(f"invalid boxes: {'; '.join(problems)}", field="boxes", index=first["loc"][0])


def _box_problem(loc: tuple[int | str, ...], error_type: str, message: str) -> str:
    """``boxes[0].confidence: ...`` for pydantic's ``(0, 'confidence')``; a missing coordinate (pydantic's
    ``(0, 'xyxy', 3)``, "Field required") as what ``xyxy`` must be."""
    if error_type == "missing" and len(loc) == 3 and loc[1] == "xyxy":
        loc, message = loc[:2], "expected 4 coordinates x1, y1, x2, y2"
    path = "".join(f"[{part}]" if isinstance(part, int) else f".{part}" for part in loc)
    return f"boxes{path}: {message}"


def _case_for_upload(session: Session, case_id: int, actor: Actor) -> Case:
    """The case ``actor`` may add evidence to: a device, cases it reported or that are on its cameras;
    an operator, cases they may see and act on (viewers are read-only)."""
    if actor.is_device:
        reported = exists().where(Sighting.case_id == Case.id, Sighting.device_id == actor.id)
        own_camera = exists().where(Camera.code == Case.camera_code, Camera.device_id == actor.id)
        case = session.scalar(select(Case).where(Case.id == case_id, reported | own_camera))
        if case is None:
            raise NotFound(f"case {case_id} not found among the cases of device '{actor.name}'")
        return case
    case = get_visible_case(session, actor, case_id)
    if actor.role is Role.VIEWER:
        raise Forbidden("viewers are read-only: adding evidence needs another role")
    return case


def add_evidence(
    session: Session,
    case_id: int,
    actor: Actor,
    *,
    data: bytes,
    kind: str,
    settings: Settings,
    score: float | None = None,
    boxes: str | None = None,
    now: dt.datetime | None = None,
) -> tuple[Evidence, bool]:
    """Check, store and attach an image to a case; returns the evidence and whether it is new to the case.
    ``boxes``: the device's detections in a ``frame`` picture, JSON as sent (:func:`frame_boxes`).

    The same bytes uploaded again to the same case (a device retrying) return the existing evidence.
    """
    now = now or utcnow()
    case = _case_for_upload(session, case_id, actor)  # who may, before what is wrong with the upload
    evidence_kind = _kind(kind)
    detections = frame_boxes(boxes, evidence_kind)
    image = _checked(data, evidence_kind, actor, settings)
    sha256 = hashlib.sha256(data).hexdigest()
    blobs = blobs_for(settings, session)
    store_image(blobs, sha256, image.content_type, data)  # an orphan at worst if we roll back
    begin_write(session)  # decoding and writing the file happened outside SQLite's write lock
    try:
        with session.begin_nested():
            evidence = Evidence(
                case_id=case.id,
                sha256=sha256,
                kind=evidence_kind.value,
                content_type=image.content_type,
                size=len(data),
                width=image.width,
                height=image.height,
                score=score,
                boxes=detections,
                uploaded_by=actor.label,
                created_at=now,
            )
            session.add(evidence)
            session.flush()
    except IntegrityError:  # uq_evidence_case_sha256: this case already has these bytes
        existing = session.scalar(
            select(Evidence).where(Evidence.case_id == case.id, Evidence.sha256 == sha256)
        )
        if existing is None:
            raise
        return existing, False
    _update_best_evidence(session, case, evidence, now)
    record_event(
        session,
        case,
        actor,
        "evidence",
        at=now,
        data={"evidence_id": evidence.id, "sha256": sha256, "kind": evidence.kind, "size": len(data)},
    )
    return evidence, True


def _update_best_evidence(session: Session, case: Case, evidence: Evidence, now: dt.datetime) -> None:
    """Best evidence: a full view of the violation (first sight, confirmation, a later sighting) that the
    device scored (contract.reports) replaces the current one when it scores higher by a margin; without
    scores, a confirmation beats a first sight beats a crop. After-pictures are never the best evidence."""
    rank = _BEST_RANK.get(EvidenceKind(evidence.kind))
    if rank is None:
        return
    current = session.get(Evidence, case.best_evidence_id) if case.best_evidence_id is not None else None
    if current is None or _better(evidence, rank, current):
        case.best_evidence_id = evidence.id
        case.updated_at = now


def _better(new: Evidence, new_rank: int, current: Evidence) -> bool:
    current_rank = _BEST_RANK.get(EvidenceKind(current.kind), 0)
    full_views = new_rank >= _FULL_VIEW_RANK and current_rank >= _FULL_VIEW_RANK
    if full_views and new.score is not None and current.score is not None:
        return new.score >= current.score + BEST_EVIDENCE_MARGIN
    return new_rank > current_rank


def open_evidence(session: Session, actor: Actor, sha256: str, *, audit: bool = True) -> tuple[BlobRef, str]:
    """The blob and content type of evidence ``sha256`` if ``actor`` may see a case that has it. A clip
    only for the roles of :mod:`api.clips`; its opening is recorded on the case (``audit``: a browser
    fetching the rest of a video it is playing is not a new opening)."""
    if actor.is_device:
        raise Forbidden("devices may upload evidence but not read it")
    if not _SHA256.fullmatch(sha256):
        raise InvalidInput(
            f"'{sha256[:80]}' is not a sha256: expected 64 lowercase hex digits", field="sha256"
        )
    found = session.execute(
        select(Evidence, Case)
        .join(Case, Case.id == Evidence.case_id)
        .where(Evidence.sha256 == sha256, visibility_clause(actor))
        .limit(1)
    ).first()
    if found is None:
        raise NotFound(f"evidence {sha256} not found")
    evidence, case = found
    content_type = evidence.content_type
    if content_type == CLIP_CONTENT_TYPE:
        require_clip_role(actor)
        if audit:
            begin_write(session)
            data = {"evidence_id": evidence.id, "sha256": sha256}
            record_event(session, case, actor, "clip_viewed", data=data)
            session.commit()
    return evidence_ref(sha256, content_type), content_type


def evidence_missing(sha256: str) -> str:
    return f"evidence {sha256} is recorded but its file is missing from the evidence store"
