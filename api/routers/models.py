"""The model registry (admins): publish versions, assign them to devices as live or shadow, roll back;
devices download their own assigned versions (resumable) and upload shadow comparisons."""

from __future__ import annotations

import json
from typing import Annotated, Any

from fastapi import APIRouter, File, Form, Path, UploadFile
from fastapi.responses import FileResponse, Response
from pydantic import BaseModel

from api import model_comparisons, model_registry
from api.deps import AdminDep, DeviceDep, SessionDep, SettingsDep
from api.errors import InvalidInput
from api.model_registry import AssignmentIn, AssignmentPublic, ModelVersionPublic, RollbackIn
from api.routers.responses import AUTHENTICATED, NOT_FOUND, WITH_BODY, errors
from api.storage import blobs_for
from api.storage.responses import RangeDep, blob_response
from contract.model_comparison import ModelComparisonReport

router = APIRouter(prefix="/api/v1", tags=["models"])

VersionId = Annotated[int, Path(ge=1, le=2**31 - 1)]


class ComparisonRecorded(BaseModel):
    id: int
    crops: int


def _json_field(name: str, text: str | None) -> dict[str, Any] | None:
    if text is None or text == "":
        return None
    try:
        value = json.loads(text)
    except json.JSONDecodeError as exc:
        raise InvalidInput(f"{name} is not JSON: {exc.msg} at character {exc.pos}", field=name) from exc
    if not isinstance(value, dict):
        raise InvalidInput(f"{name} must be a JSON object", field=name)
    return value


@router.post(
    "/models",
    response_model=ModelVersionPublic,
    status_code=201,
    responses={**AUTHENTICATED, **errors(400, 408, 409, 413, 422, 429)},
    summary="Publish a model version: its ONNX file and card (admins)",
)
def publish_route(
    actor: AdminDep,
    session: SessionDep,
    settings: SettingsDep,
    file: Annotated[UploadFile, File(description="The ONNX file.")],
    card: Annotated[str, Form(max_length=65_536, description="The model card as JSON (detector.card).")],
    dataset: Annotated[str | None, Form(max_length=500)] = None,
    training_command: Annotated[str | None, Form(max_length=10_000)] = None,
    evaluation: Annotated[
        str | None, Form(max_length=65_536, description="Evaluation figures, JSON.")
    ] = None,
) -> ModelVersionPublic:
    card_fields = _json_field("card", card)
    if card_fields is None:
        raise InvalidInput("card is required", field="card")
    version = model_registry.publish(
        session,
        settings,
        actor,
        source=file.file,
        card=card_fields,
        dataset=dataset or None,
        training_command=training_command or None,
        evaluation=_json_field("evaluation", evaluation),
    )
    return model_registry.public(version)


@router.get(
    "/models", response_model=list[ModelVersionPublic], responses=AUTHENTICATED, summary="Model versions"
)
def list_route(_: AdminDep, session: SessionDep) -> list[ModelVersionPublic]:
    return [model_registry.public(v) for v in model_registry.list_versions(session)]


@router.get(
    "/models/assignments",
    response_model=list[AssignmentPublic],
    responses=AUTHENTICATED,
    summary="Assignment history, newest first (the rollout's audit trail)",
)
def assignments_route(_: AdminDep, session: SessionDep) -> list[AssignmentPublic]:
    return model_registry.assignments(session)


@router.post(
    "/models/rollback",
    response_model=list[AssignmentPublic],
    responses={**AUTHENTICATED, **WITH_BODY, **errors(409)},
    summary="Make live again the version live before the current one (all devices or those named)",
)
def rollback_route(actor: AdminDep, session: SessionDep, body: RollbackIn) -> list[AssignmentPublic]:
    model_registry.rollback(session, actor, body)
    return model_registry.assignments(session, limit=len(body.devices or [None]))


@router.get(
    "/models/{version_id}",
    response_model=ModelVersionPublic,
    responses={**AUTHENTICATED, **NOT_FOUND},
    summary="One model version",
)
def get_route(version_id: VersionId, _: AdminDep, session: SessionDep) -> ModelVersionPublic:
    return model_registry.public(model_registry.get_version(session, version_id))


@router.post(
    "/models/{version_id}/assignments",
    response_model=list[AssignmentPublic],
    status_code=201,
    responses={**AUTHENTICATED, **WITH_BODY, **NOT_FOUND},
    summary="Assign a version to every device or to those named, as live or shadow",
)
def assign_route(
    version_id: VersionId, actor: AdminDep, session: SessionDep, body: AssignmentIn
) -> list[AssignmentPublic]:
    rows = model_registry.assign(session, actor, version_id, body)
    return model_registry.assignments(session, limit=len(rows))


@router.post(
    "/models/{version_id}/promote",
    response_model=list[AssignmentPublic],
    responses={**AUTHENTICATED, **WITH_BODY, **NOT_FOUND},
    summary="Make a version live (and end its shadow role), on every device or those named",
)
def promote_route(
    version_id: VersionId, actor: AdminDep, session: SessionDep, body: RollbackIn
) -> list[AssignmentPublic]:
    rows = model_registry.promote(session, actor, version_id, body)
    return model_registry.assignments(session, limit=len(rows))


@router.get(
    "/model-crops/{sha256}",
    response_class=FileResponse,
    responses={200: {"content": {"image/jpeg": {}}}, **AUTHENTICATED, **NOT_FOUND},
    summary="A crop of a shadow disagreement (admins)",
)
def crop_route(
    sha256: Annotated[str, Path(pattern=model_comparisons.SHA256_PATTERN)],
    _: AdminDep,
    session: SessionDep,
    settings: SettingsDep,
    ranges: RangeDep,
) -> Response:
    return blob_response(
        blobs_for(settings, session),
        model_comparisons.open_crop(sha256),
        media_type="image/jpeg",
        headers={"Cache-Control": "private, max-age=86400, immutable"},
        missing=model_comparisons.NO_CROP,
        ranges=ranges,
    )


@router.get(
    "/devices/me/models/{version_id}",
    response_class=FileResponse,
    responses={
        200: {"content": {"application/octet-stream": {}}},
        206: {"description": "The byte range asked for (Range: bytes=first-last or bytes=first-)."},
        **AUTHENTICATED,
        **NOT_FOUND,
        **errors(416),
    },
    summary="The ONNX file of a version assigned to the calling device (HTTP Range resumes)",
)
def my_model(
    version_id: VersionId, device: DeviceDep, session: SessionDep, settings: SettingsDep, ranges: RangeDep
) -> Response:
    """404 for a version not assigned to this device, live or shadow."""
    assert device.id is not None  # a device actor always has its row id
    return blob_response(
        blobs_for(settings, session),
        model_registry.open_device_model(session, device.id, version_id),
        media_type="application/octet-stream",
        headers={},
        missing=model_registry.model_missing(version_id),
        ranges=ranges,
    )


@router.post(
    "/devices/me/model-comparisons",
    response_model=ComparisonRecorded,
    status_code=201,
    responses={**AUTHENTICATED, **WITH_BODY},
    summary="A shadow model's agree/disagree summary over a period, with crops (X-Device-Key)",
)
def my_comparison(
    body: ModelComparisonReport, device: DeviceDep, session: SessionDep, settings: SettingsDep
) -> ComparisonRecorded:
    assert device.id is not None
    row = model_comparisons.record(session, settings, device.id, body)
    return ComparisonRecorded(id=row.id, crops=len(row.crops))
