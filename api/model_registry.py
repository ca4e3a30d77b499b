"""The model registry: detector versions (ONNX file + card) and their rollout to devices as live or shadow.

Files are ``model`` blobs (:mod:`api.storage`: ``<data_dir>/models/<sha256>.onnx`` or PostgreSQL chunks, so
every API host serves a model published through any of them), named by their content's hash, never by
anything a client sent, and streamed in from the upload (never the whole file in memory).

Assignments are append-only rows (:class:`api.models.ModelAssignment`): what a device runs in a role is
the latest row of that role for the device or for all devices, so the table is also the audit trail and a
rollback is one more row that names the version live before the current one.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterator
from typing import IO, Any, Literal

from pydantic import BaseModel, Field, ValidationError
from sqlalchemy import ColumnElement, or_, select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from api.actors import Actor
from api.errors import Conflict, InvalidInput, NotFound, PayloadTooLarge
from api.models import Device, ModelAssignment, ModelVersion, utcnow
from api.settings import Settings
from api.storage import BlobRef, BlobStore, StoredBlob, blobs_for
from contract import paths
from contract.device_config import MAX_SHADOW_SHARE, DeviceModel, ModelRole
from detector.card import ModelCard

_CHUNK = 1 << 20
ROLES: tuple[ModelRole, ...] = ("live", "shadow")


class ModelVersionPublic(BaseModel):
    id: int
    name: str
    version: str
    sha256: str
    size: int
    card: dict[str, Any]
    dataset: str | None
    training_command: str | None
    evaluation: dict[str, Any] | None
    uploaded_by: str
    created_at: Any


class AssignmentIn(BaseModel):
    role: ModelRole = Field(description="live: makes the cases; shadow: runs beside it, reports nothing.")
    devices: list[str] | None = Field(None, max_length=500, description="Device names; absent: every device.")
    shadow_share: float = Field(
        0.1, ge=0, le=MAX_SHADOW_SHARE, description="Share of analysed frames a shadow model runs on."
    )


class RollbackIn(BaseModel):
    devices: list[str] | None = Field(None, max_length=500, description="Device names; absent: every device.")


class AssignmentPublic(BaseModel):
    id: int
    version_id: int | None
    role: str
    device: str | None
    shadow_share: float
    action: str
    assigned_by: str
    assigned_at: Any


def model_ref(sha256: str) -> BlobRef:
    return BlobRef("model", f"{sha256}.onnx")


def public(version: ModelVersion) -> ModelVersionPublic:
    return ModelVersionPublic.model_validate(version, from_attributes=True)


def check_card(card: dict[str, Any], sha256: str) -> dict[str, Any]:
    """The card as the registry keeps it (``path`` and ``sha256`` are the stored file's); InvalidInput
    naming the field when it is not a complete model card."""
    if card.get("sha256") not in (None, sha256):
        raise InvalidInput(
            f"the card says sha256 {card['sha256']}, the uploaded file has {sha256}", field="card.sha256"
        )
    try:
        checked = ModelCard.model_validate({**card, "path": f"{sha256}.onnx", "sha256": sha256})
    except ValidationError as exc:
        problems = "; ".join(f"card.{'.'.join(map(str, e['loc']))}: {e['msg']}" for e in exc.errors())
        raise InvalidInput(f"invalid model card: {problems}", field="card") from exc
    data = checked.model_dump(mode="json", exclude_none=True)
    data.pop("path")
    return data


def _upload(settings: Settings, source: IO[bytes], card_sha256: Any) -> Iterator[bytes]:
    """The uploaded file in chunks, refused (413, 422) by raising from the stream, so that the blob store
    keeps nothing of it: over the size limit, empty, or not the file the card names by its sha256."""
    digest = hashlib.sha256() if isinstance(card_sha256, str) else None
    size = 0
    for block in iter(lambda: source.read(_CHUNK), b""):
        size += len(block)
        if size > settings.model_max_bytes:
            raise PayloadTooLarge(
                f"model file is larger than the limit of {settings.model_max_bytes} bytes",
                field="file",
                max_bytes=settings.model_max_bytes,
            )
        if digest is not None:
            digest.update(block)
        yield block
    if size == 0:
        raise InvalidInput("the model file is empty", field="file")
    if digest is not None and digest.hexdigest() != card_sha256:
        raise InvalidInput(
            f"the card says sha256 {card_sha256}, the uploaded file has {digest.hexdigest()}",
            field="card.sha256",
        )


def _store_file(blobs: BlobStore, settings: Settings, source: IO[bytes], card: dict[str, Any]) -> StoredBlob:
    """The upload as a ``model`` blob named by its sha256, hashed and counted as it streams in."""
    check_card({**card, "sha256": None}, "0" * 64)  # a bad card is refused before any byte is stored
    chunks = _upload(settings, source, card.get("sha256"))
    return blobs.put_hashed("model", chunks, suffix=".onnx", content_type="application/octet-stream")


def publish(
    session: Session,
    settings: Settings,
    actor: Actor,
    *,
    source: IO[bytes],
    card: dict[str, Any],
    dataset: str | None,
    training_command: str | None,
    evaluation: dict[str, Any] | None,
) -> ModelVersion:
    """Store an ONNX file and its card as a new version; 409 when the same file is already published.

    The file is stored before the version row (committed with the request): a request that fails after
    it leaves the file unreferenced, and publishing it again uses it."""
    stored = _store_file(blobs_for(settings, session), settings, source, card)
    checked = check_card(card, stored.sha256)
    existing = session.scalar(select(ModelVersion).where(ModelVersion.sha256 == stored.sha256))
    if existing is not None:
        raise Conflict(f"this file is already published as version {existing.id}", id=existing.id)
    version = ModelVersion(
        name=checked["name"],
        version=checked.get("version", "0"),
        sha256=stored.sha256,
        size=stored.size,
        card=checked,
        dataset=dataset,
        training_command=training_command,
        evaluation=evaluation,
        uploaded_by=actor.label,
    )
    session.add(version)
    try:
        session.flush()
    except IntegrityError as exc:  # the same file, published at the same moment by another request
        raise Conflict("this file is already published") from exc
    return version


def get_version(session: Session, version_id: int) -> ModelVersion:
    version = session.get(ModelVersion, version_id)
    if version is None:
        raise NotFound(f"no model version {version_id}")
    return version


def list_versions(session: Session) -> list[ModelVersion]:
    return list(session.scalars(select(ModelVersion).order_by(ModelVersion.id.desc())))


def _device_ids(session: Session, names: list[str] | None) -> list[int | None]:
    if names is None:
        return [None]
    query = select(Device.name, Device.id).where(Device.name.in_(names))
    found = {name: device_id for name, device_id in session.execute(query)}
    missing = sorted(set(names) - set(found))
    if missing:
        raise InvalidInput(f"no such device: {', '.join(missing)}", field="devices")
    if not names:
        raise InvalidInput("name at least one device, or leave devices out for every device", field="devices")
    return [found[name] for name in names]


def assign(
    session: Session,
    actor: Actor,
    version_id: int | None,
    body: AssignmentIn,
    *,
    action: Literal["assign", "rollback", "promote", "unassign"] = "assign",
) -> list[ModelAssignment]:
    """One row per device named (or one for all devices)."""
    if version_id is not None:
        get_version(session, version_id)
    rows = [
        ModelAssignment(
            version_id=version_id,
            role=body.role,
            device_id=device_id,
            shadow_share=body.shadow_share if body.role == "shadow" else 0.0,
            action=action,
            assigned_by=actor.label,
            assigned_at=utcnow(),
        )
        for device_id in _device_ids(session, body.devices)
    ]
    session.add_all(rows)
    session.flush()
    return rows


def _history(session: Session, role: ModelRole, device_id: int | None) -> list[ModelAssignment]:
    """Rows deciding ``role`` on ``device_id`` (None: devices without their own rows), newest first."""
    scope: ColumnElement[bool] = ModelAssignment.device_id.is_(None)
    if device_id is not None:
        scope = or_(scope, ModelAssignment.device_id == device_id)
    return list(
        session.scalars(
            select(ModelAssignment)
            .where(ModelAssignment.role == role, scope)
            .order_by(ModelAssignment.assigned_at.desc(), ModelAssignment.id.desc())
        )
    )


def current(session: Session, role: ModelRole, device_id: int | None) -> ModelAssignment | None:
    history = _history(session, role, device_id)
    return history[0] if history and history[0].version_id is not None else None


def rollback(session: Session, actor: Actor, body: RollbackIn) -> list[ModelAssignment]:
    """Make live again, on each device named (or all), the version that was live before the current one;
    409 where there is none."""
    rows = []
    for device_id in _device_ids(session, body.devices):
        history = _history(session, "live", device_id)
        if not history or history[0].version_id is None:
            raise Conflict("no live model is assigned: nothing to roll back")
        now_live = history[0].version_id
        previous = next((row.version_id for row in history[1:] if row.version_id != now_live), None)
        if previous is None:
            raise Conflict(f"version {now_live} is the first live model: there is none to roll back to")
        device = [session.get_one(Device, device_id).name] if device_id is not None else None
        rows += assign(session, actor, previous, AssignmentIn(role="live", devices=device), action="rollback")
    return rows


def promote(session: Session, actor: Actor, version_id: int, body: RollbackIn) -> list[ModelAssignment]:
    """Make a version live (typically the shadow one) and end the shadow role where it was shadow."""
    rows = assign(
        session, actor, version_id, AssignmentIn(role="live", devices=body.devices), action="promote"
    )
    for device_id in _device_ids(session, body.devices):
        shadow = current(session, "shadow", device_id)
        if shadow is not None and shadow.version_id == version_id:
            device = [session.get_one(Device, device_id).name] if device_id is not None else None
            rows += assign(
                session, actor, None, AssignmentIn(role="shadow", devices=device), action="unassign"
            )
    return rows


def assignments(session: Session, limit: int = 200) -> list[AssignmentPublic]:
    names = {device_id: name for device_id, name in session.execute(select(Device.id, Device.name))}
    rows = session.scalars(
        select(ModelAssignment)
        .order_by(ModelAssignment.assigned_at.desc(), ModelAssignment.id.desc())
        .limit(limit)
    )
    return [
        AssignmentPublic(
            id=row.id,
            version_id=row.version_id,
            role=row.role,
            device=names.get(row.device_id) if row.device_id is not None else None,
            shadow_share=row.shadow_share,
            action=row.action,
            assigned_by=row.assigned_by,
            assigned_at=row.assigned_at,
        )
        for row in rows
    ]


def device_models(session: Session, device_id: int) -> list[DeviceModel]:
    """What the device's configuration carries: its live and its shadow model, when assigned."""
    found = []
    for role in ROLES:
        row = current(session, role, device_id)
        if row is None or row.version_id is None:
            continue
        version = session.get_one(ModelVersion, row.version_id)
        found.append(
            DeviceModel(
                version_id=version.id,
                name=version.name,
                version=version.version,
                sha256=version.sha256,
                size=version.size,
                download_path=paths.device_model(version.id),
                card=version.card,
                role=role,
                shadow_share=row.shadow_share,
            )
        )
    return found


def open_device_model(session: Session, device_id: int, version_id: int) -> BlobRef:
    """The ONNX file of a version assigned to the device (live or shadow); 404 otherwise, so a device
    learns nothing of versions that are not its own."""
    if version_id not in {model.version_id for model in device_models(session, device_id)}:
        raise NotFound(f"model version {version_id} is not assigned to this device")
    return model_ref(session.get_one(ModelVersion, version_id).sha256)


def model_missing(version_id: int) -> str:
    return f"the file of model version {version_id} is missing from the store"
