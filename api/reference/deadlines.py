"""The deadline table: working hours allowed per violation type."""

from __future__ import annotations

from pydantic import BaseModel, Field
from sqlalchemy import select
from sqlalchemy.orm import Session

from api.errors import NotFound
from api.models import DeadlineRule
from api.reference.common import StrictModel, ref_violation, upsert


class DeadlineIn(StrictModel):
    working_hours: float = Field(gt=0, le=10_000, description="Working hours allowed from dispatch.")


class DeadlinePublic(BaseModel):
    violation_code: str
    working_hours: float


def list_deadlines(session: Session) -> list[DeadlineRule]:
    return list(session.scalars(select(DeadlineRule).order_by(DeadlineRule.violation_code)))


def put_deadline(session: Session, violation_code: str, body: DeadlineIn) -> DeadlineRule:
    ref_violation(session, violation_code, "violation_code")
    upsert(
        session,
        DeadlineRule,
        {"violation_code": violation_code, "working_hours": body.working_hours},
        keys=("violation_code",),
    )
    rule = session.scalar(
        select(DeadlineRule)
        .where(DeadlineRule.violation_code == violation_code)
        .execution_options(populate_existing=True)
    )
    assert rule is not None  # just upserted in this transaction
    return rule


def delete_deadline(session: Session, violation_code: str) -> None:
    rule = session.scalar(select(DeadlineRule).where(DeadlineRule.violation_code == violation_code))
    if rule is None:
        raise NotFound(f"no deadline for violation {violation_code!r} (the calendar's default applies)")
    session.delete(rule)
    session.flush()
