"""Re-coding moves a case to the open slot of its new violation code, or merges it into that slot's case.

One open case per place and violation (:mod:`api.open_or_merge`) must hold after a re-code too. The case
takes ``open_slot(place, new code)`` in a SAVEPOINT, so the unique constraint decides a race with a report
or another re-code. When the slot is held, the re-coded case merges into the case holding it: its
sightings and evidence move there (the open case is the one the unit will work on, and later updates of
the moved incidents follow their sighting), and the re-coded case is voided as ``duplicate``; an audit
event ``merge`` on the open case links back to it and the re-code event links forward
(``merged_into``). Voiding rather than deleting keeps the re-coded case's trail and its id valid.
"""

from __future__ import annotations

import datetime as dt
from typing import Any, cast

from sqlalchemy import CursorResult, select, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from api.actors import Actor
from api.audit import record_event
from api.errors import Conflict
from api.models import Case, CaseStatus, Evidence, ReviewLabel, Sighting
from api.open_or_merge import find_open_case, open_slot

MAX_ATTEMPTS = 4  # slot rounds; each lost race is followed by a merge, so 2 suffice in practice
MERGE_REASON = "duplicate"


def move_to_slot(session: Session, case: Case, actor: Actor, now: dt.datetime) -> Case | None:
    """Give ``case`` (already carrying its new code) the open slot of that code at its place; ``None``
    when it took the slot, else the open case it merged into (``case`` is then voided)."""
    slot = open_slot(case.place_id, case.violation_code)
    session.flush()  # the new code is stored before the SAVEPOINT: a lost race rolls back only the slot
    for _ in range(MAX_ATTEMPTS):
        holder = find_open_case(session, slot)
        if holder is None:
            if _take_slot(session, case, slot):
                return None
            continue
        if holder == case.id:  # cannot happen for a different code; kept so a retry never self-merges
            return None
        target = _lock_holder(session, holder, slot)
        if target is not None:
            merge_into(session, case, target, actor, now)
            return target
    raise Conflict(f"case {case.id}: the open slot {slot} kept changing; try again")


def _take_slot(session: Session, case: Case, slot: str) -> bool:
    try:
        with session.begin_nested():
            case.open_slot = slot
            session.flush()
    except IntegrityError:  # a concurrent report or re-code opened the slot first: merge into it
        return False
    return True


def _lock_holder(session: Session, case_id: int, slot: str) -> Case | None:
    """The open case ``case_id`` with its row locked, if it still holds ``slot``."""
    from api.case_actions import lock_case  # the workflow module imports this one

    target = lock_case(session, case_id)
    return target if target.open_slot == slot else None


def merge_into(session: Session, case: Case, target: Case, actor: Actor, now: dt.datetime) -> None:
    """Move the sightings and evidence of ``case`` to ``target``, add up its facts, void ``case``."""
    moved_sightings = cast(
        CursorResult[Any],
        session.execute(update(Sighting).where(Sighting.case_id == case.id).values(case_id=target.id)),
    )
    sightings = moved_sightings.rowcount
    have = set(session.scalars(select(Evidence.sha256).where(Evidence.case_id == target.id)))
    # The same image on both cases stays with the voided one (one row per case and image).
    moved = [
        e
        for e in session.scalars(select(Evidence).where(Evidence.case_id == case.id))
        if e.sha256 not in have
    ]
    for evidence in moved:
        evidence.case_id = target.id
    if moved:  # boxes drawn on a moved image follow it (api.review_labels)
        session.execute(
            update(ReviewLabel)
            .where(ReviewLabel.evidence_id.in_([e.id for e in moved]))
            .values(case_id=target.id)
        )
    _add_facts(target, case, moved_best=any(e.id == case.best_evidence_id for e in moved))
    target.updated_at = now
    session.expire(case, ["sightings", "evidence"])
    session.expire(target, ["sightings", "evidence"])
    case.status = CaseStatus.VOIDED.value
    case.void_reason = MERGE_REASON
    case.voided_at = now
    case.open_slot = None
    case.extension_requested_hours = None
    case.extension_reason = None
    record_event(
        session,
        target,
        actor,
        "merge",
        from_status=target.status,
        to_status=target.status,
        data={
            "merged_from": case.id,
            "sightings": sightings,
            "evidence": len(moved),
            "sighting_count": case.sighting_count,
        },
        at=now,
    )


def _add_facts(target: Case, case: Case, *, moved_best: bool) -> None:
    target.sighting_count += case.sighting_count
    target.first_seen_at = _earliest(target.first_seen_at, case.first_seen_at)
    target.last_seen_at = _latest(target.last_seen_at, case.last_seen_at)
    # Gone only when every incident of both has ended (NULL: still there).
    target.ended_at = (
        None if None in (target.ended_at, case.ended_at) else _latest(target.ended_at, case.ended_at)
    )
    if case.confidence is not None and (target.confidence is None or case.confidence > target.confidence):
        target.confidence = case.confidence
    if target.best_evidence_id is None and moved_best:
        target.best_evidence_id = case.best_evidence_id


def _earliest(a: dt.datetime | None, b: dt.datetime | None) -> dt.datetime | None:
    return min((t for t in (a, b) if t is not None), default=None)


def _latest(a: dt.datetime | None, b: dt.datetime | None) -> dt.datetime | None:
    return max((t for t in (a, b) if t is not None), default=None)


RECODE_MAX_BOXES = 200  # bounds the audit row; a case still under review has a handful of reports


def reported_boxes(session: Session, case_id: int) -> list[dict[str, Any]]:
    """The boxes the case's reports named (each with its sighting id): with the chosen code, a label."""
    boxes: list[dict[str, Any]] = []
    for sighting_id, sighting_boxes in session.execute(
        select(Sighting.id, Sighting.boxes).where(Sighting.case_id == case_id).order_by(Sighting.id)
    ):
        for box in sighting_boxes or []:
            if isinstance(box, dict):
                boxes.append({"sighting_id": sighting_id, **box})
    return boxes[:RECODE_MAX_BOXES]
