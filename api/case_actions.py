"""Workflow actions on cases: the checks of :mod:`api.workflow`, then the side effects, one audit event per
step and the notifications to units, all in the caller's transaction with the case row locked.

Side effects worth knowing:

- ``file`` sets filed_at and immediately dispatches the case (as the system) when routing finds a unit;
  otherwise the case stays filed and an audit event ``route`` says why.
- Every entry into ``dispatched`` (dispatch, re-dispatch of a returned case, reassign, resume, rework)
  starts the clock again: ``dispatched_at`` = now, ``deadline_at`` = now + the violation's DeadlineRule
  working hours (or the calendar's default) on the working calendar, and clears overdue/escalation and
  any pending extension request. So ``deadline_at - dispatched_at`` is always the allowed working time
  plus approved extensions.
- ``approve_extension`` moves deadline_at later by the approved working hours (from the old deadline).
- ``close`` and ``void`` free the case's open slot, so the next report for the place opens a new case.
- ``recode`` (pending_review or filed: before any dispatch) changes the violation code to another active
  one and moves the case to the new code's open slot, merging it into the open case there if there is one
  (:mod:`api.recoding`; the re-coded case is then voided as ``duplicate``). The audit event keeps
  ``{"from", "to", "boxes"}``, the labels a later training run reads, and the routing the new code gets; a
  filed case (filed but routed nowhere) is routed and dispatched again at once, as filing does, so its
  deadline is the new code's. A case still to classify (``unknown_object``) can be neither filed nor
  dispatched (:func:`api.workflow.check_classified`).
- ``resolve`` follows the violation type's handling rules (:func:`api.workflow.check_handling`): a handling
  photo uploaded since the last dispatch where the type requires one, and ``start`` first where it says so.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from sqlalchemy import exists, select, update
from sqlalchemy.orm import Session, object_session

from api.actors import SYSTEM, Actor, actor_name
from api.audit import record_event
from api.errors import Conflict, Forbidden, InvalidInput, NotFound
from api.messages import NOTE_KEY, msg
from api.models import (
    Camera,
    Case,
    CaseStatus,
    DeadlineRule,
    Evidence,
    Role,
    Sighting,
    Unit,
    ViolationType,
    utcnow,
)
from api.notify import enqueue_case_event
from api.recoding import move_to_slot, reported_boxes
from api.routing import route
from api.settings import Settings
from api.suppressions import record_false_alarm
from api.work_calendar import WorkCalendar, add_working_hours, load_calendar
from api.workflow import (
    NEEDS_CLASSIFIED,
    Action,
    HandlingRules,
    Transition,
    allowed_actions,
    check,
    check_classified,
    check_handling,
    is_unclassified,
    parse_action,
)
from common.messages import Message
from contract.reports import EvidenceKind


def principal_of(actor: Actor) -> str:
    """The workflow table's name for the actor: its role, ``device`` or ``system``."""
    if actor.kind == "user":
        if actor.role is None:
            raise Forbidden(f"operator {actor.name} has no role")
        return actor.role.value
    return actor.kind


def device_reported(session: Session, case: Case, device_id: int) -> bool:
    """Did this device report the case (a sighting), or does the case's camera belong to it?"""
    by_sighting = exists().where(Sighting.case_id == case.id, Sighting.device_id == device_id)
    by_camera = exists().where(Camera.code == case.camera_code, Camera.device_id == device_id)
    return bool(session.scalar(select(by_sighting | by_camera)))


def owns_case(session: Session, case: Case, actor: Actor) -> bool:
    """Whether a unit handler's unit has the case, or a device reported it; true for everyone else."""
    if actor.kind == "device":
        return actor.id is not None and device_reported(session, case, actor.id)
    if actor.kind == "user" and actor.role is Role.UNIT_HANDLER:
        return case.unit_id is not None and case.unit_id == actor.unit_id
    return True


def visible_to(session: Session, case: Case, actor: Actor) -> bool:
    """Unit handlers see only their unit's cases, devices only the cases they reported."""
    return owns_case(session, case, actor)


def get_case_for(session: Session, case_id: int, actor: Actor) -> Case:
    """The case, or 404 when it does not exist or the actor may not see it (existence is not leaked)."""
    case = session.get(Case, case_id)
    if case is None or not visible_to(session, case, actor):
        raise NotFound(f"case {case_id} not found", msg=msg("error.case_not_found", case=case_id))
    return case


def allowed_actions_for(case: Case, actor: Actor) -> list[str]:
    """What ``actor`` may do next to ``case`` (names of :class:`api.workflow.Action`)."""
    session = object_session(case)
    if session is None:
        raise ValueError(f"case {case.id} is not attached to a session")
    actions = allowed_actions(
        case.status,
        principal_of(actor),
        owns_case=owns_case(session, case, actor),
        extension_pending=case.extension_requested_hours is not None,
    )
    if is_unclassified(pipeline_type_of(session, case.violation_code)):
        actions = [a for a in actions if a not in NEEDS_CLASSIFIED]
    rules = handling_rules(session, case.violation_code)
    return [a.value for a in actions if rules.allows(a, case.status)]


def handling_rules(session: Session, violation_code: str) -> HandlingRules:
    """The violation type's handling rules; none for a code without a type."""
    row = session.execute(
        select(ViolationType.photo_required_to_resolve, ViolationType.start_required_before_resolve).where(
            ViolationType.code == violation_code
        )
    ).one_or_none()
    return HandlingRules(bool(row[0]), bool(row[1])) if row is not None else HandlingRules()


def has_handling_photo(session: Session, case: Case) -> bool:
    """Whether a handling photo was uploaded since the case was last dispatched (a rework needs a new one)."""
    photo = exists().where(Evidence.case_id == case.id, Evidence.kind == EvidenceKind.HANDLING.value)
    if case.dispatched_at is not None:
        photo = photo.where(Evidence.created_at >= case.dispatched_at)
    return bool(session.scalar(select(photo)))


def pipeline_type_of(session: Session, violation_code: str) -> str | None:
    return session.scalar(select(ViolationType.pipeline_type).where(ViolationType.code == violation_code))


def lock_case(session: Session, case_id: int) -> Case:
    """Re-read the case with its row locked until the transaction ends, so two operators cannot move it
    at once: ``SELECT ... FOR UPDATE`` on PostgreSQL; on SQLite (no row locks) a no-op UPDATE first takes
    the database write lock, so the read that follows is current and stays so."""
    if session.get_bind().dialect.name == "sqlite":
        session.execute(
            update(Case).where(Case.id == case_id).values(status=Case.status),
            execution_options={"synchronize_session": False},
        )
    statement = select(Case).where(Case.id == case_id).with_for_update()
    case = session.scalars(statement, execution_options={"populate_existing": True}).one_or_none()
    if case is None:
        raise NotFound(f"case {case_id} not found")
    return case


@dataclass
class _Step:
    """One transition being applied: the request and what the audit event will record."""

    session: Session
    case: Case
    actor: Actor
    settings: Settings
    now: dt.datetime
    reason: str | None = None
    note: str | None = None
    unit_id: int | None = None
    hours: float | None = None
    violation_code: str | None = None
    preset_unit: tuple[Unit, Message] | None = None  # a unit routing already chose (auto-dispatch on filing)
    from_status: str = ""
    data: dict[str, Any] = field(default_factory=dict)
    _calendar: WorkCalendar | None = None

    @property
    def calendar(self) -> WorkCalendar:
        if self._calendar is None:
            try:
                self._calendar = load_calendar(self.session)
            except ValueError as exc:  # a broken CalendarSettings row: say so instead of a 500
                raise Conflict(
                    f"the working calendar is misconfigured: {exc}; fix the calendar settings"
                ) from exc
        return self._calendar

    def notify(self, unit: Unit, event: str) -> None:
        enqueue_case_event(self.session, self.case, unit, event, self.settings)


def apply_action(
    session: Session,
    case: Case,
    action: str | Action,
    actor: Actor,
    *,
    settings: Settings,
    reason: str | None = None,
    note: str | None = None,
    unit_id: int | None = None,
    hours: float | None = None,
    violation_code: str | None = None,
    now: dt.datetime | None = None,
) -> Case:
    """Take ``action`` on ``case`` as ``actor``: 409 for a move not allowed from the status, 403 for a role or
    unit that may not, 422 for a missing or bad field; otherwise apply it, audit it and notify."""
    now = now or utcnow()
    action = parse_action(action)
    case = lock_case(session, case.id)
    step = _Step(session, case, actor, settings, now, reason, note, unit_id, hours, violation_code)
    _transition(step, action)
    if action is Action.FILE or (action is Action.RECODE and case.status == CaseStatus.FILED):
        _auto_dispatch(session, case, settings, now)
    session.flush()
    return case


def _transition(step: _Step, action: Action) -> None:
    case = step.case
    row: Transition = check(
        action,
        case.status,
        principal_of(step.actor),
        owns_case=owns_case(step.session, case, step.actor),
        extension_pending=case.extension_requested_hours is not None,
        reason=step.reason,
        note=step.note,
        hours=step.hours,
        unit_id=step.unit_id,
        violation_code=step.violation_code,
    )
    check_classified(
        action,
        case_id=case.id,
        violation_code=case.violation_code,
        pipeline_type=pipeline_type_of(step.session, case.violation_code),
    )
    if action is Action.RESOLVE:
        check_handling(
            action,
            case.status,
            handling_rules(step.session, case.violation_code),
            case_id=case.id,
            violation_code=case.violation_code,
            has_handling_photo=has_handling_photo(step.session, case),
        )
    step.from_status = case.status
    if row.target is not None:
        case.status = row.target.value
    _EFFECTS[action](step)
    case.updated_at = step.now
    record_event(
        step.session,
        case,
        step.actor,
        action.value,
        from_status=step.from_status,
        to_status=case.status,
        reason=step.reason,
        note=step.note,
        data=step.data or None,
        at=step.now,
    )


def _auto_dispatch(session: Session, case: Case, settings: Settings, now: dt.datetime) -> None:
    """Filing routes the case at once; without a unit it stays filed and the trail says why."""
    unit, why = route(session, case.place, case.violation_code)
    if unit is None:
        record_event(
            session,
            case,
            SYSTEM,
            "route",
            from_status=case.status,
            to_status=case.status,
            reason="no_unit",
            note=str(why),
            data={NOTE_KEY: why.as_data()},
            at=now,
        )
        return
    step = _Step(session, case, SYSTEM, settings, now, reason="auto_dispatch", preset_unit=(unit, why))
    _transition(step, Action.DISPATCH)


# --- side effects, one per action (the status is already the target when they run) ---


def _on_file(step: _Step) -> None:
    step.case.filed_at = step.now


def _on_void(step: _Step) -> None:
    case = step.case
    case.voided_at = step.now
    case.void_reason = step.reason
    case.open_slot = None
    _clear_extension(case)
    if step.reason == "false_positive":  # the false-alarm memory: the daemons will not report it again
        made = record_false_alarm(step.session, case, step.actor, settings=step.settings, now=step.now)
        step.data["suppressions"] = [s.id for s in made]


def _on_dispatch(step: _Step) -> None:
    unit, why = _choose_unit(step)
    returned_by = step.case.unit_id if step.from_status == CaseStatus.RETURNED else None
    if returned_by is not None and unit.id == returned_by and step.unit_id is None:
        raise InvalidInput(
            f"routing sends case {step.case.id} back to {unit.code}, the unit that returned it: "
            "give a unit_id to re-dispatch it elsewhere",
            msg=msg("error.back_to_returner", case=step.case.id, unit=unit.code, unit_name=unit.name),
            field="unit_id",
        )
    _start_clock(step, unit, why)
    step.notify(unit, "dispatched")


def _on_reassign(step: _Step) -> None:
    case = step.case
    unit, why = _choose_unit(step)
    if unit.id == case.unit_id:
        raise InvalidInput(
            f"case {case.id} is already assigned to {unit.code}: give another unit_id",
            msg=msg("error.same_unit", case=case.id, unit=unit.code, unit_name=unit.name),
            field="unit_id",
        )
    old = step.session.get(Unit, case.unit_id) if case.unit_id is not None else None
    step.data["previous_unit"] = old.code if old else None
    _start_clock(step, unit, why)
    step.notify(unit, "dispatched")
    if old is not None:
        step.notify(old, "withdrawn")


def _on_resume(step: _Step) -> None:
    case = step.case
    current = (
        step.session.get(Unit, case.unit_id) if case.unit_id is not None and step.unit_id is None else None
    )
    if current is not None and current.active:
        unit, why = current, msg("route.resumed", unit=current.code, unit_name=current.name)
    else:
        unit, why = _choose_unit(step)
    _start_clock(step, unit, why)
    step.notify(unit, "dispatched")


def _on_start(step: _Step) -> None:
    pass


def _on_return(step: _Step) -> None:
    case = step.case
    case.return_count += 1
    _clear_extension(case)
    unit = step.session.get(Unit, case.unit_id) if case.unit_id is not None else None
    step.data["returned_by"] = unit.code if unit else None


def _on_resolve(step: _Step) -> None:
    step.case.resolved_at = step.now
    _clear_extension(step.case)


def _on_request_extension(step: _Step) -> None:
    case = step.case
    case.extension_requested_hours = step.hours
    case.extension_reason = step.note or step.reason
    step.data["hours"] = step.hours


def _on_approve_extension(step: _Step) -> None:
    case = step.case
    requested = case.extension_requested_hours
    hours = step.hours if step.hours is not None else requested
    if hours is None:  # unreachable: the workflow table requires a pending request
        raise Conflict(f"case {case.id} has no pending extension request")
    old = case.deadline_at or step.now
    case.deadline_at = add_working_hours(old, hours, step.calendar)
    if case.deadline_at > step.now:
        case.overdue = False
        case.escalated_to_unit_id = None
    step.data.update(
        requested_hours=requested,
        approved_hours=hours,
        deadline_from=old.isoformat(),
        deadline_to=case.deadline_at.isoformat(),
    )
    _clear_extension(case)
    _notify_assigned(step, "extension_approved")


def _on_reject_extension(step: _Step) -> None:
    step.data["requested_hours"] = step.case.extension_requested_hours
    _clear_extension(step.case)
    _notify_assigned(step, "extension_rejected")


def _on_defer(step: _Step) -> None:
    _clear_extension(step.case)


def _on_verify(step: _Step) -> None:
    step.case.verified_at = step.now


def _on_rework(step: _Step) -> None:
    case = step.case
    unit = step.session.get(Unit, case.unit_id) if case.unit_id is not None else None
    if unit is None:
        raise Conflict(
            f"case {case.id} has no unit to send the rework to", msg=msg("error.no_rework_unit", case=case.id)
        )
    case.rework_count += 1
    case.resolved_at = None
    case.verified_at = None
    why = msg("route.rework", count=case.rework_count, unit=unit.code, unit_name=unit.name)
    _start_clock(step, unit, why)
    step.notify(unit, "rework")


def _on_close(step: _Step) -> None:
    step.case.closed_at = step.now
    step.case.open_slot = None


def _on_recode(step: _Step) -> None:
    case = step.case
    old = case.violation_code
    new = _recode_target(step, old)
    step.data.update({"from": old, "to": new.code, "boxes": reported_boxes(step.session, case.id)})
    case.violation_code = new.code
    merged = move_to_slot(step.session, case, step.actor, step.now)
    if merged is not None:
        step.reason = "duplicate"
        step.data["merged_into"] = merged.id
        return
    if case.status == CaseStatus.PENDING_REVIEW:  # filed cases are routed and dispatched after this step
        unit, why = route(step.session, case.place, new.code)
        hours = deadline_hours(step.session, new.code, step.calendar)
        step.data.update(unit=unit.code if unit else None, routing=str(why), working_hours=hours)


def _recode_target(step: _Step, old: str) -> ViolationType:
    """The active violation type to re-code to: 422 for an unknown, inactive or unchanged code."""
    code = step.violation_code or ""
    new = step.session.scalar(select(ViolationType).where(ViolationType.code == code))
    if new is None or not new.active:
        active = step.session.scalars(
            select(ViolationType.code).where(ViolationType.active.is_(True)).order_by(ViolationType.code)
        ).all()
        state = "is not a violation type" if new is None else "is disabled"
        raise InvalidInput(
            f"violation_code {code!r} {state}; active codes: {', '.join(active)}",
            msg=msg("error.code_inactive", code=code),
            field="violation_code",
        )
    if new.code == old:
        raise InvalidInput(
            f"case {step.case.id} is already {old}: give another code",
            msg=msg("error.same_code", case=step.case.id, code=old, violation_name=new.name),
            field="violation_code",
        )
    if is_unclassified(new.pipeline_type) and step.case.status != CaseStatus.PENDING_REVIEW:
        raise InvalidInput(
            f"{new.code} ({new.pipeline_type}) is for cases still under review; a filed case needs a code "
            "a unit can be sent for",
            msg=msg("error.code_for_review", code=new.code, violation_name=new.name),
            field="violation_code",
        )
    return new


_EFFECTS: dict[Action, Callable[[_Step], None]] = {
    Action.FILE: _on_file,
    Action.VOID: _on_void,
    Action.DISPATCH: _on_dispatch,
    Action.REASSIGN: _on_reassign,
    Action.START: _on_start,
    Action.RETURN: _on_return,
    Action.RESOLVE: _on_resolve,
    Action.REQUEST_EXTENSION: _on_request_extension,
    Action.APPROVE_EXTENSION: _on_approve_extension,
    Action.REJECT_EXTENSION: _on_reject_extension,
    Action.DEFER: _on_defer,
    Action.RESUME: _on_resume,
    Action.VERIFY: _on_verify,
    Action.REWORK: _on_rework,
    Action.CLOSE: _on_close,
    Action.RECODE: _on_recode,
}


# --- helpers ---


def _choose_unit(step: _Step) -> tuple[Unit, Message]:
    """The unit named by unit_id, else the one routing chooses; 422 when there is none."""
    if step.preset_unit is not None:
        return step.preset_unit
    if step.unit_id is not None:
        unit = step.session.get(Unit, step.unit_id)
        if unit is None or not unit.active:
            state = "does not exist" if unit is None else "is disabled"
            raise InvalidInput(
                f"unit {step.unit_id} {state}: give an active unit's id",
                msg=msg("error.unit_missing", unit_id=step.unit_id),
                field="unit_id",
            )
        return unit, msg(
            "route.chosen", actor=step.actor.label, actor_name=actor_name(step.session, step.actor)
        )
    unit, why = route(step.session, step.case.place, step.case.violation_code)
    if unit is None:
        raise InvalidInput(why, field="unit_id")
    return unit, why


def deadline_hours(session: Session, violation_code: str, calendar: WorkCalendar) -> float:
    """Working hours allowed for the violation: its DeadlineRule, else the calendar's default."""
    hours = session.scalar(
        select(DeadlineRule.working_hours).where(DeadlineRule.violation_code == violation_code)
    )
    return float(hours) if hours is not None else calendar.default_working_hours


def _start_clock(step: _Step, unit: Unit, why: Message) -> None:
    case = step.case
    hours = deadline_hours(step.session, case.violation_code, step.calendar)
    case.unit_id = unit.id
    case.dispatched_at = step.now
    case.first_dispatched_at = case.first_dispatched_at or step.now  # time-to-dispatch counts the first one
    case.deadline_at = add_working_hours(step.now, hours, step.calendar)
    case.overdue = False
    case.escalated_to_unit_id = None
    _clear_extension(case)
    step.data.update(
        unit=unit.code,
        unit_id=unit.id,
        routing=str(why),
        working_hours=hours,
        deadline_at=case.deadline_at.isoformat(),
    )
    if step.note is None and step.actor.kind == "system":
        step.note = str(why)
        step.data[NOTE_KEY] = why.as_data()


def _clear_extension(case: Case) -> None:
    case.extension_requested_hours = None
    case.extension_reason = None


def _notify_assigned(step: _Step, event: str) -> None:
    unit = step.session.get(Unit, step.case.unit_id) if step.case.unit_id is not None else None
    if unit is not None:
        step.notify(unit, event)
