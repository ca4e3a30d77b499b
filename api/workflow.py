"""The case workflow as a declarative table: which action moves a case from which status, and who may.

Pure: no database. :mod:`api.case_actions` applies the side effects; this module only answers
"may this principal do this now?" and explains why not.

A *principal* is an operator's role (:class:`api.models.Role` value), ``"device"`` (an edge box; it may
verify or rework cases from its own cameras) or ``"system"`` (automatic filing and the dispatch that
filing triggers). Admins may do everything, on every case.

Checks run in this order, so each refusal names the first thing that is wrong:

1. the principal's role may never take the action          -> :class:`Forbidden` (403)
2. a unit handler / device acting on a case that is not its -> :class:`Forbidden` (403)
3. the action is not a move out of the case's status        -> :class:`Conflict` (409)
4. the extension state does not fit (none pending / one already pending) -> :class:`Conflict` (409)
5. a required field is missing or wrong (void reason, return note, hours, code) -> :class:`InvalidInput` (422)

Handling rules (:class:`HandlingRules`, per violation type): a resolve may need a handling photo uploaded
since the last dispatch (422) and may need the unit to have started first (409); :func:`check_handling`.

A case of a to-classify violation type (pipeline type ``unknown_object``, code 9901 in the default
reference data) may not be filed or sent to a unit: :func:`check_classified` (409) says to re-code it first.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from enum import StrEnum
from typing import Any, Literal

from api.errors import Conflict, Forbidden, InvalidInput
from api.messages import msg
from api.models import CaseStatus, Role

DEVICE = "device"
SYSTEM = "system"
PRINCIPALS: tuple[str, ...] = (*(role.value for role in Role), DEVICE, SYSTEM)
# Principals that may act only on "their" cases: a unit handler on its unit's, a device on its cameras'.
SCOPED_PRINCIPALS = frozenset({Role.UNIT_HANDLER.value, DEVICE})

VOID_REASONS = ("false_positive", "duplicate", "not_our_responsibility")
REASON_MAX_CHARS = 64


class Action(StrEnum):
    FILE = "file"  # 立案
    VOID = "void"  # 作废
    DISPATCH = "dispatch"  # 派遣 (also re-dispatch of a returned case)
    REASSIGN = "reassign"  # 改派
    START = "start"
    RETURN = "return"  # 回退
    RESOLVE = "resolve"  # 处理反馈
    REQUEST_EXTENSION = "request_extension"  # 延时申请
    APPROVE_EXTENSION = "approve_extension"
    REJECT_EXTENSION = "reject_extension"
    DEFER = "defer"  # 挂账
    RESUME = "resume"
    VERIFY = "verify"  # 核查
    REWORK = "rework"  # 返工
    CLOSE = "close"  # 结案
    RECODE = "recode"  # 改判类型: change the violation code before dispatch


class ExtensionRule(StrEnum):
    ANY = "any"
    PENDING = "pending"  # an extension request must be pending
    NOT_PENDING = "not_pending"  # no extension request may be pending


@dataclass(frozen=True)
class Transition:
    """One row of the workflow table."""

    action: Action
    sources: frozenset[CaseStatus]
    target: CaseStatus | None  # None: the status does not change
    roles: frozenset[str]  # principals allowed (admin is always added)
    description: str
    extension: ExtensionRule = ExtensionRule.ANY
    reason_choices: tuple[str, ...] = ()  # non-empty: a reason is required and must be one of these
    needs_note: bool = False
    hours: Literal["none", "required", "optional"] = "none"  # working hours > 0
    takes_unit: bool = False  # unit_id may name the unit (otherwise routing decides)
    takes_code: bool = False  # violation_code is required: the new code


def _roles(*roles: str) -> frozenset[str]:
    return frozenset({*roles, Role.ADMIN.value})


S = CaseStatus
SHIFT_LEADER, DISPATCHER, UNIT_HANDLER = (
    Role.SHIFT_LEADER.value,
    Role.DISPATCHER.value,
    Role.UNIT_HANDLER.value,
)
_CLOCK = frozenset({S.DISPATCHED, S.IN_PROGRESS})

TABLE: dict[Action, Transition] = {
    t.action: t
    for t in (
        Transition(
            Action.FILE,
            frozenset({S.PENDING_REVIEW}),
            S.FILED,
            _roles(SHIFT_LEADER, SYSTEM),
            "立案: accept the report as a case; routing then dispatches it",
        ),
        Transition(
            Action.VOID,
            frozenset({S.PENDING_REVIEW, S.FILED, S.RETURNED}),
            S.VOIDED,
            _roles(SHIFT_LEADER),
            "作废: not a case (false positive, duplicate, not our responsibility)",
            reason_choices=VOID_REASONS,
        ),
        Transition(
            Action.DISPATCH,
            frozenset({S.FILED, S.RETURNED}),
            S.DISPATCHED,
            _roles(DISPATCHER, SYSTEM),
            "派遣: send to a unit (routing or unit_id); the deadline clock starts",
            takes_unit=True,
        ),
        Transition(
            Action.REASSIGN,
            _CLOCK,
            S.DISPATCHED,
            _roles(DISPATCHER),
            "改派: move to another unit (routing or unit_id) with a fresh deadline",
            takes_unit=True,
        ),
        Transition(
            Action.START, frozenset({S.DISPATCHED}), S.IN_PROGRESS, _roles(UNIT_HANDLER), "the unit starts"
        ),
        Transition(
            Action.RETURN,
            _CLOCK,
            S.RETURNED,
            _roles(UNIT_HANDLER),
            "回退: the unit hands the case back for re-dispatch",
            needs_note=True,
        ),
        Transition(
            Action.RESOLVE, _CLOCK, S.RESOLVED, _roles(UNIT_HANDLER), "处理反馈: the unit reports it done"
        ),
        Transition(
            Action.REQUEST_EXTENSION,
            _CLOCK,
            None,
            _roles(UNIT_HANDLER),
            "延时: ask for more working hours",
            extension=ExtensionRule.NOT_PENDING,
            hours="required",
        ),
        Transition(
            Action.APPROVE_EXTENSION,
            _CLOCK,
            None,
            _roles(DISPATCHER),
            "extend the deadline by the requested (or the given) working hours",
            extension=ExtensionRule.PENDING,
            hours="optional",
        ),
        Transition(
            Action.REJECT_EXTENSION,
            _CLOCK,
            None,
            _roles(DISPATCHER),
            "refuse the extension request",
            extension=ExtensionRule.PENDING,
        ),
        Transition(
            Action.DEFER,
            frozenset({S.FILED, S.RETURNED, *_CLOCK}),
            S.DEFERRED,
            _roles(DISPATCHER),
            "挂账: register as not solvable in time; the clock stops",
        ),
        Transition(
            Action.RESUME,
            frozenset({S.DEFERRED}),
            S.DISPATCHED,
            _roles(DISPATCHER),
            "take a deferred case up again: dispatch with a fresh deadline",
            takes_unit=True,
        ),
        Transition(
            Action.VERIFY,
            frozenset({S.RESOLVED}),
            S.VERIFIED,
            _roles(SHIFT_LEADER, DEVICE),
            "核查: the problem is gone",
        ),
        Transition(
            Action.REWORK,
            frozenset({S.RESOLVED, S.VERIFIED}),
            S.DISPATCHED,
            _roles(SHIFT_LEADER, DEVICE),
            "返工: still there; back to the unit with a fresh deadline",
        ),
        Transition(Action.CLOSE, frozenset({S.VERIFIED}), S.CLOSED, _roles(SHIFT_LEADER), "结案"),
        Transition(
            Action.RECODE,
            frozenset({S.PENDING_REVIEW, S.FILED}),  # before any dispatch: no unit has worked on it yet
            None,  # unchanged, or voided as a duplicate when it merges into the new code's open case
            _roles(SHIFT_LEADER),
            "改判: change the violation code; re-routes and moves the case to the new code's open slot "
            "(merging into that open case if there is one)",
            takes_code=True,
        ),
    )
}


def parse_action(value: str | Action) -> Action:
    try:
        return Action(value)
    except ValueError:
        raise InvalidInput(
            f"unknown action {value!r}; actions: {', '.join(a.value for a in Action)}", action=str(value)
        ) from None


def moves_from(status: CaseStatus | str) -> list[Action]:
    """Every action that leaves ``status`` for someone (in table order)."""
    return [t.action for t in TABLE.values() if status in t.sources]


def allowed_actions(
    status: CaseStatus | str, principal: str, *, owns_case: bool, extension_pending: bool
) -> list[Action]:
    """What ``principal`` may do to a case in ``status`` (in table order)."""
    return [
        t.action
        for t in TABLE.values()
        if status in t.sources
        and principal in t.roles
        and (owns_case or principal not in SCOPED_PRINCIPALS)
        and _extension_fits(t.extension, extension_pending)
    ]


def _extension_fits(rule: ExtensionRule, pending: bool) -> bool:
    return rule is ExtensionRule.ANY or pending == (rule is ExtensionRule.PENDING)


def _names(actions: list[Action]) -> str:
    return ", ".join(a.value for a in actions) or "none"


def check(
    action: str | Action,
    status: CaseStatus | str,
    principal: str,
    *,
    owns_case: bool,
    extension_pending: bool,
    reason: str | None = None,
    note: str | None = None,
    hours: float | None = None,
    unit_id: int | None = None,
    violation_code: str | None = None,
) -> Transition:
    """The table row for ``action`` if ``principal`` may take it now; otherwise raise a typed error."""
    row = TABLE[parse_action(action)]
    status = CaseStatus(status)
    _check_principal(row, principal, owns_case=owns_case)
    allowed = allowed_actions(status, principal, owns_case=owns_case, extension_pending=extension_pending)
    details: dict[str, Any] = {
        "status": status.value,
        "action": row.action.value,
        "moves_from_status": [a.value for a in moves_from(status)],
        "allowed_actions": [a.value for a in allowed],
    }
    if status not in row.sources:
        moves = moves_from(status)
        where = (
            f"'{status}' is final: no moves are allowed from it"
            if not moves
            else f"allowed moves from '{status}': {_names(moves)} (yours: {_names(allowed)})"
        )
        froms = ", ".join(sorted(s.value for s in row.sources))
        raise Conflict(
            f"cannot {row.action} a case that is '{status}' ({row.action} needs {froms}); {where}",
            msg=msg("error.wrong_status", action=row.action.value, status=status.value),
            **details,
        )
    if not _extension_fits(row.extension, extension_pending):
        state = (
            "no extension request is pending"
            if not extension_pending
            else "an extension request is already pending"
        )
        state_msg = msg("error.extension_none" if not extension_pending else "error.extension_pending")
        raise Conflict(
            f"cannot {row.action} the case: {state} (status '{status}'); allowed moves: {_names(allowed)}",
            msg=msg(
                "error.extension_state",
                action=row.action.value,
                state=state,
                state_zh=state_msg.text("zh"),
            ),
            **details,
        )
    _check_fields(row, reason=reason, note=note, hours=hours, unit_id=unit_id)
    _check_code(row, violation_code)
    return row


def _check_principal(row: Transition, principal: str, *, owns_case: bool) -> None:
    if principal not in PRINCIPALS:
        raise Forbidden(f"unknown principal {principal!r}; expected one of {', '.join(PRINCIPALS)}")
    may = sorted(row.roles)
    if principal not in row.roles:
        raise Forbidden(
            f"role '{principal}' may not {row.action} a case; roles that may: {', '.join(may)}",
            msg=msg("error.role", action=row.action.value, role=principal),
            action=row.action.value,
            role=principal,
            roles=may,
        )
    if principal in SCOPED_PRINCIPALS and not owns_case:
        whose = "their own unit's cases" if principal == UNIT_HANDLER else "cases from its own cameras"
        raise Forbidden(
            f"a {principal} may {row.action} only {whose}",
            msg=msg("error.not_own", action=row.action.value, role=principal),
            action=row.action.value,
            role=principal,
            roles=may,
        )


def _check_fields(
    row: Transition, *, reason: str | None, note: str | None, hours: float | None, unit_id: int | None
) -> None:
    if row.reason_choices and reason not in row.reason_choices:
        raise InvalidInput(
            f"{row.action} needs a reason, one of {', '.join(row.reason_choices)}; got {reason!r}",
            msg=msg("error.need_reason", action=row.action.value),
            field="reason",
            allowed=list(row.reason_choices),
        )
    if reason is not None and len(reason) > REASON_MAX_CHARS:
        raise InvalidInput(
            f"reason is {len(reason)} characters; at most {REASON_MAX_CHARS} (use note for text)"
        )
    if row.needs_note and not (note and note.strip()):
        raise InvalidInput(
            f"{row.action} needs a note saying why",
            msg=msg("error.need_note", action=row.action.value),
            field="note",
        )
    if row.hours == "none" and hours is not None:
        takers = _names([t.action for t in TABLE.values() if t.hours != "none"])
        raise InvalidInput(
            f"{row.action} takes no hours; hours are for {takers}",
            msg=msg("error.no_field", action=row.action.value, field="hours"),
            field="hours",
        )
    if row.hours == "required" and hours is None:
        raise InvalidInput(
            f"{row.action} needs hours (working hours > 0)",
            msg=msg("error.need_hours", action=row.action.value),
            field="hours",
        )
    if hours is not None and not (math.isfinite(hours) and 0 < hours <= 10_000):
        raise InvalidInput(
            f"hours must be working hours > 0 (and at most 10000); got {hours}",
            msg=msg("error.bad_hours", hours=str(hours)),
            field="hours",
        )
    if unit_id is not None and not row.takes_unit:
        takers = _names([t.action for t in TABLE.values() if t.takes_unit])
        raise InvalidInput(
            f"{row.action} takes no unit_id; unit_id is for {takers}",
            msg=msg("error.no_field", action=row.action.value, field="unit_id"),
            field="unit_id",
        )


def _check_code(row: Transition, violation_code: str | None) -> None:
    if row.takes_code and not violation_code:
        raise InvalidInput(
            f"{row.action} needs violation_code: the event code to change to, e.g. 0102",
            msg=msg("error.need_code", action=row.action.value),
            field="violation_code",
        )
    if violation_code is not None and not row.takes_code:
        takers = _names([t.action for t in TABLE.values() if t.takes_code])
        raise InvalidInput(
            f"{row.action} takes no violation_code; violation_code is for {takers}",
            msg=msg("error.no_field", action=row.action.value, field="violation_code"),
            field="violation_code",
        )


# --- cases still to classify ---

UNCLASSIFIED_TYPE = "unknown_object"  # the pipeline type of "something new is there" (static change)
# Every move that files a case or hands it to a unit: a to-classify case must be re-coded first.
NEEDS_CLASSIFIED = frozenset({Action.FILE, Action.DISPATCH, Action.REASSIGN, Action.RESUME, Action.REWORK})


def is_unclassified(pipeline_type: str | None) -> bool:
    """Whether a violation type of this pipeline type waits for an operator to re-code it."""
    return pipeline_type == UNCLASSIFIED_TYPE


def check_classified(action: Action, *, case_id: int, violation_code: str, pipeline_type: str | None) -> None:
    """409 for a move that would file or dispatch a case whose type is still to classify."""
    if action in NEEDS_CLASSIFIED and is_unclassified(pipeline_type):
        raise Conflict(
            f"cannot {action} case {case_id}: its violation {violation_code} ({pipeline_type}) is still to "
            f"classify; re-code before filing (请先改判类型再立案) with action recode and a violation_code",
            msg=msg("error.unclassified", action=action.value, case=case_id, violation=violation_code),
            action=action.value,
            violation_code=violation_code,
        )


# --- handling rules: per violation type (api.models.ViolationType) ---


@dataclass(frozen=True)
class HandlingRules:
    """What a violation type asks of the unit before it may resolve (处理反馈) a case."""

    photo_required_to_resolve: bool = False  # a handling photo uploaded since the last dispatch
    start_required_before_resolve: bool = False  # 开始处置 first: no resolve straight from dispatched

    def allows(self, action: Action, status: CaseStatus | str) -> bool:
        """Whether the start rule lets ``action`` happen from ``status`` (the photo is checked on the act)."""
        return not (
            action is Action.RESOLVE and self.start_required_before_resolve and status == S.DISPATCHED
        )


def check_handling(
    action: Action,
    status: CaseStatus | str,
    rules: HandlingRules,
    *,
    case_id: int,
    violation_code: str,
    has_handling_photo: bool,
) -> None:
    """409 for a resolve before the unit started where the type needs a start; 422 for a resolve without a
    handling photo where the type needs one. The messages carry the Chinese the units read."""
    if action is not Action.RESOLVE:
        return
    if not rules.allows(action, status):
        raise Conflict(
            f"cannot resolve case {case_id} straight from '{status}': violation {violation_code} needs the "
            "unit to start (开始处置) first; take action start, then resolve (须先开始处置再处理反馈)",
            action=action.value,
            rule="start_required_before_resolve",
            violation_code=violation_code,
        )
    if rules.photo_required_to_resolve and not has_handling_photo:
        raise InvalidInput(
            f"resolving case {case_id} needs a photo of the handled place: violation {violation_code} "
            "requires one; upload evidence of kind 'handling' since the case was dispatched, then resolve "
            "(处理反馈须上传处置后现场照片)",
            field="photo",
            rule="photo_required_to_resolve",
            violation_code=violation_code,
        )
