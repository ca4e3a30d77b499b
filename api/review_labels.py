"""Boxes operators draw on a case's evidence image: objects the detector missed, with their type.

A label names one image of the case (its evidence id), a box normalised to that image (0..1), and a
violation code; ``streetwatch dataset export-reviewed`` turns it into a box of that image, mapping the
code to a class as it does for re-coded cases. Shift leaders, dispatchers and admins (the roles that
review) draw; the author or an admin deletes. Both are audited on the case (``label_added``,
``label_deleted``) like every other case action.
"""

from __future__ import annotations

from sqlalchemy import select
from sqlalchemy.orm import Session

from api.actors import Actor
from api.audit import record_event
from api.case_queries import get_visible_case
from api.clips import CLIP_CONTENT_TYPE
from api.errors import Forbidden, InvalidInput, NotFound
from api.models import Evidence, ReviewLabel, Role, ViolationType, utcnow

LABEL_ROLES = (Role.SHIFT_LEADER, Role.DISPATCHER, Role.ADMIN)
MIN_SIDE = 0.002  # of the image: a box thinner than this is a slip of the pointer, not an object
MAX_LABELS_PER_CASE = 200


def check_box(box: tuple[float, float, float, float] | list[float]) -> tuple[float, float, float, float]:
    """``[x1, y1, x2, y2]`` within 0..1 with x1 < x2 and y1 < y2 (each side at least MIN_SIDE)."""
    if len(box) != 4:
        raise InvalidInput(f"box: expected [x1, y1, x2, y2], got {len(box)} numbers")
    x1, y1, x2, y2 = (float(v) for v in box)
    if not all(0.0 <= v <= 1.0 for v in (x1, y1, x2, y2)):
        raise InvalidInput(f"box {[x1, y1, x2, y2]}: every value must lie in 0..1 (a share of the image)")
    if x2 - x1 < MIN_SIDE or y2 - y1 < MIN_SIDE:
        raise InvalidInput(
            f"box {[x1, y1, x2, y2]}: expected x1 < x2 and y1 < y2, each side >= {MIN_SIDE} of the image"
        )
    return x1, y1, x2, y2


def _may_label(actor: Actor) -> None:
    if actor.role not in LABEL_ROLES:
        allowed = ", ".join(r.value for r in LABEL_ROLES)
        raise Forbidden(f"role '{actor.role}' may not draw labels; allowed roles: {allowed}")


def add_label(
    session: Session,
    actor: Actor,
    case_id: int,
    evidence_id: int,
    box: tuple[float, float, float, float] | list[float],
    event_code: str,
) -> ReviewLabel:
    """Store a drawn box on image ``evidence_id`` of case ``case_id`` and audit it on the case."""
    case = get_visible_case(session, actor, case_id)
    _may_label(actor)
    x1, y1, x2, y2 = check_box(box)
    evidence = session.get(Evidence, evidence_id)
    if evidence is None or evidence.case_id != case.id:
        raise NotFound(f"evidence {evidence_id} is not an image of case {case.id}")
    if evidence.content_type == CLIP_CONTENT_TYPE:
        raise InvalidInput(f"evidence {evidence_id} is a video clip: draw on one of the case's images")
    violation = session.scalar(select(ViolationType).where(ViolationType.code == event_code))
    if violation is None or not violation.active:
        raise InvalidInput(f"event_code '{event_code}' is not an active violation code")
    count = len(session.scalars(select(ReviewLabel.id).where(ReviewLabel.case_id == case.id)).all())
    if count >= MAX_LABELS_PER_CASE:
        raise InvalidInput(f"case {case.id} already has {count} drawn labels (at most {MAX_LABELS_PER_CASE})")
    label = ReviewLabel(
        case_id=case.id,
        evidence_id=evidence.id,
        sha256=evidence.sha256,
        x1=x1,
        y1=y1,
        x2=x2,
        y2=y2,
        event_code=event_code,
        created_by=actor.label,
        created_by_user_id=actor.id,
        created_at=utcnow(),
    )
    session.add(label)
    session.flush()
    record_event(
        session,
        case,
        actor,
        "label_added",
        from_status=case.status,
        to_status=case.status,
        data={"label": label.id, "evidence": evidence.id, "box": [x1, y1, x2, y2], "event_code": event_code},
    )
    return label


def list_labels(session: Session, actor: Actor, case_id: int) -> list[ReviewLabel]:
    case = get_visible_case(session, actor, case_id)
    return list(
        session.scalars(select(ReviewLabel).where(ReviewLabel.case_id == case.id).order_by(ReviewLabel.id))
    )


def delete_label(session: Session, actor: Actor, case_id: int, label_id: int) -> None:
    """Delete a label: its author or an admin."""
    case = get_visible_case(session, actor, case_id)
    _may_label(actor)
    label = session.get(ReviewLabel, label_id)
    if label is None or label.case_id != case.id:
        raise NotFound(f"label {label_id} of case {case.id} not found")
    author = (
        label.created_by_user_id == actor.id
        if label.created_by_user_id is not None
        else label.created_by == actor.label
    )
    if actor.role != Role.ADMIN and not author:
        raise Forbidden(
            f"label {label_id} was drawn by {label.created_by}: only its author or an admin deletes it"
        )
    record_event(
        session,
        case,
        actor,
        "label_deleted",
        from_status=case.status,
        to_status=case.status,
        data={
            "label": label.id,
            "evidence": label.evidence_id,
            "box": [label.x1, label.y1, label.x2, label.y2],
            "event_code": label.event_code,
            "drawn_by": label.created_by,
        },
    )
    session.delete(label)
    session.flush()
