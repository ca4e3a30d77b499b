"""Labels drawn on a case's evidence images (api.review_labels): objects the detector missed."""

from __future__ import annotations

import datetime as dt
from typing import Annotated

from fastapi import APIRouter, Depends, Path, Response
from pydantic import BaseModel, ConfigDict, Field

from api.actors import Actor
from api.deps import OperatorDep, SessionDep, require_roles
from api.models import ReviewLabel
from api.review_labels import LABEL_ROLES, add_label, delete_label, list_labels
from api.routers.responses import AUTHENTICATED, NOT_FOUND, errors

router = APIRouter(prefix="/api/v1/cases", tags=["labels"], responses=AUTHENTICATED)

MAX_ID = 2**31 - 1
CaseId = Annotated[int, Path(ge=1, le=MAX_ID, description="Case id.")]
LabelId = Annotated[int, Path(ge=1, le=MAX_ID, description="Label id.")]
Unit = Annotated[float, Field(ge=0, le=1)]
LabellerDep = Annotated[Actor, Depends(require_roles(*LABEL_ROLES))]


class LabelIn(BaseModel):
    model_config = ConfigDict(extra="forbid")

    evidence_id: int = Field(ge=1, le=MAX_ID, description="The image of the case drawn on (its evidence id).")
    box: tuple[Unit, Unit, Unit, Unit] = Field(
        description="x1, y1, x2, y2 as shares (0..1) of the image's width and height; x1 < x2, y1 < y2."
    )
    event_code: str = Field(
        min_length=1, max_length=16, description="The object's violation code, e.g. 0102."
    )


class LabelOut(BaseModel):
    id: int
    case_id: int
    evidence_id: int
    sha256: str = Field(description="The image's sha256 (GET /api/v1/evidence/{sha256}).")
    box: list[float] = Field(min_length=4, max_length=4, description="x1, y1, x2, y2 (0..1 of the image).")
    event_code: str
    created_by: str
    created_at: dt.datetime


def label_out(label: ReviewLabel) -> LabelOut:
    return LabelOut(
        id=label.id,
        case_id=label.case_id,
        evidence_id=label.evidence_id,
        sha256=label.sha256,
        box=[label.x1, label.y1, label.x2, label.y2],
        event_code=label.event_code,
        created_by=label.created_by,
        created_at=label.created_at,
    )


@router.post(
    "/{case_id}/labels",
    response_model=LabelOut,
    status_code=201,
    responses=errors(400, 404, 422),
    summary="Draw a box with a type on one of a case's images (shift leaders, dispatchers, admins): "
    "a missed object for the training set",
)
def add_label_route(case_id: CaseId, body: LabelIn, actor: LabellerDep, session: SessionDep) -> LabelOut:
    label = add_label(session, actor, case_id, body.evidence_id, list(body.box), body.event_code)
    session.commit()
    return label_out(label)


@router.get(
    "/{case_id}/labels",
    response_model=list[LabelOut],
    responses=NOT_FOUND,
    summary="The boxes drawn on a case's images",
)
def list_labels_route(case_id: CaseId, actor: OperatorDep, session: SessionDep) -> list[LabelOut]:
    return [label_out(label) for label in list_labels(session, actor, case_id)]


@router.delete(
    "/{case_id}/labels/{label_id}",
    status_code=204,
    response_class=Response,
    responses=NOT_FOUND,
    summary="Delete a drawn box (its author or an admin)",
)
def delete_label_route(
    case_id: CaseId, label_id: LabelId, actor: LabellerDep, session: SessionDep
) -> Response:
    delete_label(session, actor, case_id, label_id)
    session.commit()
    return Response(status_code=204)
