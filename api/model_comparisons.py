"""Shadow comparisons: the summaries daemons upload (contract.model_comparison) and their totals per device
and class for the console. Crops are checked JPEGs kept by sha256 as ``model_crop`` blobs (:mod:`api.storage`:
``<data_dir>/model-crops/`` or PostgreSQL, so every API host shows them)."""

from __future__ import annotations

import base64
import binascii
import hashlib
import re
from dataclasses import dataclass, field
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from api.errors import InvalidInput, NotFound
from api.evidence import check_image
from api.model_registry import device_models
from api.models import Device, ModelComparison, utcnow
from api.settings import Settings
from api.storage import BlobRef, blobs_for, chunked
from contract.model_comparison import MAX_CROP_BYTES, ModelComparisonReport

SHA256_PATTERN = r"^[0-9a-f]{64}$"


NO_CROP = "no such crop"


def crop_ref(sha256: str) -> BlobRef:
    return BlobRef("model_crop", f"{sha256}.jpg")


def record(
    session: Session, settings: Settings, device_id: int, report: ModelComparisonReport
) -> ModelComparison:
    """Keep a device's summary; 422 unless the shadow version is this device's shadow model."""
    shadows = {m.version_id for m in device_models(session, device_id) if m.role == "shadow"}
    if report.shadow_version_id not in shadows:
        raise InvalidInput(
            f"model version {report.shadow_version_id} is not this device's shadow model",
            field="shadow_version_id",
        )
    if report.period_end < report.period_start:
        raise InvalidInput("period_end is before period_start", field="period_end")
    crops = []
    blobs = blobs_for(settings, session)
    for index, crop in enumerate(report.crops):
        try:
            data = base64.b64decode(crop.jpeg_base64, validate=True)
        except (binascii.Error, ValueError) as exc:
            raise InvalidInput(f"crops[{index}]: not base64", field=f"crops.{index}.jpeg_base64") from exc
        checked = check_image(data, MAX_CROP_BYTES, max_pixels=settings.image_max_pixels)
        if checked.content_type != "image/jpeg":
            raise InvalidInput(f"crops[{index}]: not a JPEG", field=f"crops.{index}.jpeg_base64")
        sha256 = hashlib.sha256(data).hexdigest()
        blobs.put(crop_ref(sha256), chunked(data), content_type="image/jpeg")  # kept if stored already
        crops.append({"class": crop.class_name, "side": crop.side, "camera": crop.camera, "sha256": sha256})
    row = ModelComparison(
        device_id=device_id,
        live_version_id=report.live_version_id,
        shadow_version_id=report.shadow_version_id,
        period_start=report.period_start,
        period_end=report.period_end,
        classes={
            **{name: counts.model_dump() for name, counts in report.classes.items()},
            "_frames": {"live": report.frames_live, "shadow": report.frames_shadow},
        },
        crops=crops,
        created_at=utcnow(),
    )
    session.add(row)
    session.flush()
    return row


@dataclass
class DeviceClassTotals:
    device: str
    class_name: str
    agree: int = 0
    live_only: int = 0
    shadow_only: int = 0
    crops: list[dict[str, Any]] = field(default_factory=list)


def totals(session: Session, shadow_version_id: int, *, max_crops: int = 8) -> list[DeviceClassTotals]:
    """Per device and class, summed over every summary uploaded for ``shadow_version_id``."""
    found: dict[tuple[str, str], DeviceClassTotals] = {}
    rows = session.execute(
        select(ModelComparison, Device.name)
        .join(Device, Device.id == ModelComparison.device_id)
        .where(ModelComparison.shadow_version_id == shadow_version_id)
        .order_by(ModelComparison.period_end.desc())
    )
    for row, device in rows:
        for name, counts in row.classes.items():
            if name.startswith("_"):
                continue
            entry = found.setdefault((device, name), DeviceClassTotals(device, name))
            entry.agree += int(counts.get("agree", 0))
            entry.live_only += int(counts.get("live_only", 0))
            entry.shadow_only += int(counts.get("shadow_only", 0))
        for crop in row.crops:
            entry = found.setdefault((device, crop["class"]), DeviceClassTotals(device, crop["class"]))
            if len(entry.crops) < max_crops:
                entry.crops.append(crop)
    return [found[key] for key in sorted(found)]


def open_crop(sha256: str) -> BlobRef:
    """The crop's blob (the route says 404 when it is not stored)."""
    if not re.fullmatch(SHA256_PATTERN, sha256):
        raise NotFound(NO_CROP)
    return crop_ref(sha256)
