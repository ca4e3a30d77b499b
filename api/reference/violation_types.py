"""Violation types: event codes, the pipeline type each maps to, auto-filing and the handling rules
(a photo required to resolve, 开始处置 required before 处理反馈; enforced by :mod:`api.workflow`)."""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict, Field
from sqlalchemy import select
from sqlalchemy.orm import Session

from api.errors import Conflict, NotFound
from api.messages import msg
from api.models import Case, DeadlineRule, RoutingRule, ViolationType
from api.reference.common import (
    EventCode,
    PipelineType,
    StrictModel,
    assign,
    flush,
    in_use,
    reject_nulls,
    violation_by_code,
)

PHOTO_BY_DEFAULT = ("exposed_garbage", "street_stall")  # pipeline types; as in migration 0007


class ViolationTypeIn(StrictModel):
    """A violation type with its event code; ``pipeline_type`` is what the edge pipeline detects."""

    code: EventCode
    name: str = Field(min_length=1, max_length=100, description="e.g. 机动车乱停放")
    name_en: str = Field(default="", max_length=100)
    pipeline_type: PipelineType
    default_for_type: bool = Field(
        default=False,
        description="The code used for a report of this pipeline type that names no event code.",
    )
    auto_file: bool = Field(
        default=False, description="File (立案) reports above auto_file_min_confidence at once."
    )
    auto_file_min_confidence: float = Field(default=0.9, ge=0.0, le=1.0)
    active: bool = True
    description: str = Field(default="", max_length=2000)
    category: str = Field(
        default="", max_length=64, description="Major class, e.g. '05 街面秩序' (Open311 group)."
    )
    photo_required_to_resolve: bool | None = Field(
        default=None,
        description="A resolve (处理反馈) needs a handling photo uploaded since the last dispatch. "
        f"Omitted or null: on for the pipeline types {', '.join(PHOTO_BY_DEFAULT)}, off for the others.",
    )
    start_required_before_resolve: bool = Field(
        default=False, description="The unit must start (开始处置) before it may resolve (处理反馈)."
    )


class ViolationTypeUpdate(StrictModel):
    name: str | None = Field(default=None, min_length=1, max_length=100)
    name_en: str | None = Field(default=None, max_length=100)
    pipeline_type: PipelineType | None = None
    default_for_type: bool | None = None
    auto_file: bool | None = None
    auto_file_min_confidence: float | None = Field(default=None, ge=0.0, le=1.0)
    active: bool | None = None
    description: str | None = Field(default=None, max_length=2000)
    category: str | None = Field(default=None, max_length=64)
    photo_required_to_resolve: bool | None = None
    start_required_before_resolve: bool | None = None


class ViolationTypePublic(BaseModel):
    model_config = ConfigDict(from_attributes=True)

    id: int
    code: str
    name: str
    name_en: str
    pipeline_type: str
    default_for_type: bool
    auto_file: bool
    auto_file_min_confidence: float
    active: bool
    description: str
    category: str
    photo_required_to_resolve: bool
    start_required_before_resolve: bool


def photo_required_by_default(pipeline_type: str) -> bool:
    """Garbage and stalls are handled on the spot, and the photo is what shows it was."""
    return pipeline_type in PHOTO_BY_DEFAULT


def creation_values(body: ViolationTypeIn) -> dict[str, object]:
    """The columns of a new violation type: an unset photo rule takes its pipeline type's default."""
    values = body.model_dump()
    if values["photo_required_to_resolve"] is None:
        values["photo_required_to_resolve"] = photo_required_by_default(body.pipeline_type)
    return values


def get_violation_type(session: Session, code: str) -> ViolationType:
    violation = violation_by_code(session, code)
    if violation is None:
        raise NotFound(f"no violation type with event code {code!r}")
    return violation


def list_violation_types(session: Session) -> list[ViolationType]:
    return list(session.scalars(select(ViolationType).order_by(ViolationType.code)))


def clear_other_defaults(session: Session, violation: ViolationType) -> None:
    """Only one default code per pipeline type: making this one the default clears the others."""
    if not violation.default_for_type:
        return
    others = select(ViolationType).where(
        ViolationType.pipeline_type == violation.pipeline_type,
        ViolationType.default_for_type.is_(True),
        ViolationType.id != violation.id,
    )
    for other in session.scalars(others):
        other.default_for_type = False


def create_violation_type(session: Session, body: ViolationTypeIn) -> ViolationType:
    violation = ViolationType(**creation_values(body))
    session.add(violation)
    flush(session, msg("ref.duplicate_violation", code=body.code))
    clear_other_defaults(session, violation)
    session.flush()
    return violation


def update_violation_type(session: Session, code: str, body: ViolationTypeUpdate) -> ViolationType:
    violation = get_violation_type(session, code)
    values = body.model_dump(exclude_unset=True)
    reject_nulls(values)
    assign(violation, values)
    clear_other_defaults(session, violation)
    session.flush()
    return violation


def delete_violation_type(session: Session, code: str) -> None:
    violation = get_violation_type(session, code)
    used = in_use(
        session,
        {
            "cases": Case.violation_code == code,
            "routing rules": RoutingRule.violation_code == code,
            "deadline rules": DeadlineRule.violation_code == code,
        },
        {"cases": Case, "routing rules": RoutingRule, "deadline rules": DeadlineRule},
    )
    if used:
        raise Conflict(
            f"violation type {code!r} is still referenced by {', '.join(used)}: set active=false instead"
        )
    session.delete(violation)
    session.flush()


def known_pipeline_types(session: Session) -> set[str]:
    return set(session.scalars(select(ViolationType.pipeline_type).distinct()))
