"""The workflow table: every action x status x caller is allowed or refused with the right error class.

The expectations come from SPEC below, written out by hand from the lead's brief (not read from
api.workflow), so a change to the table has to be made twice on purpose.
"""

from __future__ import annotations

import itertools
import math

import pytest

from api.errors import ApiError, Conflict, Forbidden, InvalidInput
from api.models import CaseStatus
from api.workflow import TABLE, Action, allowed_actions, check, moves_from

CLOCK = {"dispatched", "in_progress"}
# action: (statuses it leaves, who may besides admin)
SPEC: dict[str, tuple[set[str], set[str]]] = {
    "file": ({"pending_review"}, {"shift_leader", "system"}),
    "void": ({"pending_review", "filed", "returned"}, {"shift_leader"}),
    "dispatch": ({"filed", "returned"}, {"dispatcher", "system"}),
    "reassign": (CLOCK, {"dispatcher"}),
    "start": ({"dispatched"}, {"unit_handler"}),
    "return": (CLOCK, {"unit_handler"}),
    "resolve": (CLOCK, {"unit_handler"}),
    "request_extension": (CLOCK, {"unit_handler"}),
    "approve_extension": (CLOCK, {"dispatcher"}),
    "reject_extension": (CLOCK, {"dispatcher"}),
    "defer": ({"filed", "returned", *CLOCK}, {"dispatcher"}),
    "resume": ({"deferred"}, {"dispatcher"}),
    "verify": ({"resolved"}, {"shift_leader", "device"}),
    "rework": ({"resolved", "verified"}, {"shift_leader", "device"}),
    "close": ({"verified"}, {"shift_leader"}),
    "recode": ({"pending_review", "filed"}, {"shift_leader"}),
}
TARGETS = {
    "file": "filed",
    "void": "voided",
    "dispatch": "dispatched",
    "reassign": "dispatched",
    "start": "in_progress",
    "return": "returned",
    "resolve": "resolved",
    "request_extension": None,
    "approve_extension": None,
    "reject_extension": None,
    "defer": "deferred",
    "resume": "dispatched",
    "verify": "verified",
    "rework": "dispatched",
    "close": "closed",
    "recode": None,
}
# caller: (principal, owns the case). "own"/"other": a unit handler of the case's unit or of another
# unit; a device that reported the case or one that did not.
CALLERS = {
    "admin": ("admin", True),
    "shift_leader": ("shift_leader", True),
    "dispatcher": ("dispatcher", True),
    "unit_handler_own": ("unit_handler", True),
    "unit_handler_other": ("unit_handler", False),
    "viewer": ("viewer", True),
    "device_own": ("device", True),
    "device_other": ("device", False),
    "system": ("system", True),
}
# Valid fields for each action, so that only status and role decide.
FIELDS: dict[str, dict[str, object]] = {
    "void": {"reason": "duplicate"},
    "return": {"note": "not ours: private land"},
    "request_extension": {"hours": 8.0},
    "recode": {"violation_code": "0102"},
}


def expected(action: str, status: str, caller: str) -> type[ApiError] | None:
    principal, owns = CALLERS[caller]
    sources, roles = SPEC[action]
    if principal != "admin" and principal not in roles:
        return Forbidden
    if principal in {"unit_handler", "device"} and not owns:
        return Forbidden
    if status not in sources:
        return Conflict
    return None


def pending_fits(action: str) -> bool:
    return action in {"approve_extension", "reject_extension"}


def test_spec_covers_every_action_and_the_table_targets() -> None:
    assert set(SPEC) == {a.value for a in Action}
    assert {a.value: (t.target.value if t.target else None) for a, t in TABLE.items()} == TARGETS


@pytest.mark.parametrize(
    ("action", "status", "caller"),
    list(itertools.product(SPEC, [s.value for s in CaseStatus], CALLERS)),
)
def test_every_action_status_and_caller(action: str, status: str, caller: str) -> None:
    principal, owns = CALLERS[caller]
    error = expected(action, status, caller)
    kwargs = {"owns_case": owns, "extension_pending": pending_fits(action), **FIELDS.get(action, {})}
    if error is None:
        row = check(action, status, principal, **kwargs)  # type: ignore[arg-type]
        assert row.action == action
    else:
        with pytest.raises(error) as raised:
            check(action, status, principal, **kwargs)  # type: ignore[arg-type]
        assert type(raised.value) is error
    allowed = allowed_actions(status, principal, owns_case=owns, extension_pending=pending_fits(action))
    assert (Action(action) in allowed) == (error is None)


@pytest.mark.parametrize(
    ("action", "status", "caller", "error"),
    [
        # the 7-step path, each by its usual role
        ("file", "pending_review", "shift_leader", None),
        ("file", "pending_review", "system", None),
        ("dispatch", "filed", "system", None),
        ("start", "dispatched", "unit_handler_own", None),
        ("resolve", "in_progress", "unit_handler_own", None),
        ("verify", "resolved", "shift_leader", None),
        ("verify", "resolved", "device_own", None),
        ("close", "verified", "shift_leader", None),
        # side paths
        ("return", "in_progress", "unit_handler_own", None),
        ("dispatch", "returned", "dispatcher", None),
        ("rework", "resolved", "device_own", None),
        ("defer", "in_progress", "dispatcher", None),
        ("resume", "deferred", "dispatcher", None),
        # refusals
        ("start", "dispatched", "unit_handler_other", Forbidden),
        ("verify", "resolved", "device_other", Forbidden),
        ("close", "verified", "device_own", Forbidden),
        ("close", "verified", "dispatcher", Forbidden),
        ("file", "pending_review", "viewer", Forbidden),
        ("file", "pending_review", "device_own", Forbidden),
        ("start", "dispatched", "system", Forbidden),
        ("dispatch", "dispatched", "dispatcher", Conflict),
        ("close", "resolved", "shift_leader", Conflict),
        ("start", "in_progress", "unit_handler_own", Conflict),
        ("void", "dispatched", "admin", Conflict),
        ("file", "closed", "admin", Conflict),
        ("rework", "closed", "shift_leader", Conflict),
    ],
)
def test_hand_picked_cases(action: str, status: str, caller: str, error: type[ApiError] | None) -> None:
    assert expected(action, status, caller) is error  # the SPEC agrees with the hand-written row
    principal, owns = CALLERS[caller]
    kwargs = {"owns_case": owns, "extension_pending": False, **FIELDS.get(action, {})}
    if error is None:
        check(action, status, principal, **kwargs)  # type: ignore[arg-type]
    else:
        with pytest.raises(error):
            check(action, status, principal, **kwargs)  # type: ignore[arg-type]


def test_conflict_names_the_status_and_the_allowed_moves() -> None:
    with pytest.raises(Conflict) as raised:
        check("close", "dispatched", "shift_leader", owns_case=True, extension_pending=False)
    message = raised.value.message
    assert "'dispatched'" in message
    assert (
        "allowed moves from 'dispatched': reassign, start, return, resolve, request_extension, "
        "approve_extension, reject_extension, defer (yours: none)"
    ) in message
    assert "(yours: none)" in message
    assert raised.value.details["status"] == "dispatched"
    assert raised.value.details["allowed_actions"] == []
    assert raised.value.details["moves_from_status"] == [
        "reassign",
        "start",
        "return",
        "resolve",
        "request_extension",
        "approve_extension",
        "reject_extension",
        "defer",
    ]


def test_conflict_on_a_final_status_says_it_is_final() -> None:
    with pytest.raises(Conflict, match="'closed' is final: no moves are allowed from it"):
        check("rework", "closed", "admin", owns_case=True, extension_pending=False)


def test_forbidden_names_the_role_and_the_roles_that_may() -> None:
    with pytest.raises(Forbidden) as raised:
        check("close", "verified", "dispatcher", owns_case=True, extension_pending=False)
    assert (
        raised.value.message == "role 'dispatcher' may not close a case; roles that may: admin, shift_leader"
    )
    assert raised.value.details["roles"] == ["admin", "shift_leader"]
    with pytest.raises(Forbidden, match="a unit_handler may start only their own unit's cases"):
        check("start", "dispatched", "unit_handler", owns_case=False, extension_pending=False)
    with pytest.raises(Forbidden, match="a device may verify only cases from its own cameras"):
        check("verify", "resolved", "device", owns_case=False, extension_pending=False)


@pytest.mark.parametrize(
    ("action", "pending", "error"),
    [
        ("request_extension", False, None),
        ("request_extension", True, Conflict),
        ("approve_extension", True, None),
        ("approve_extension", False, Conflict),
        ("reject_extension", True, None),
        ("reject_extension", False, Conflict),
        ("resolve", True, None),  # finishing the job needs no decision on the request first
    ],
)
def test_extension_state(action: str, pending: bool, error: type[ApiError] | None) -> None:
    principal = "dispatcher" if "extension" in action and action != "request_extension" else "unit_handler"
    kwargs = {"owns_case": True, "extension_pending": pending, **FIELDS.get(action, {})}
    if error is None:
        check(action, "in_progress", principal, **kwargs)  # type: ignore[arg-type]
    else:
        with pytest.raises(error, match="extension request"):
            check(action, "in_progress", principal, **kwargs)  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("action", "status", "principal", "fields", "match"),
    [
        (
            "void",
            "filed",
            "shift_leader",
            {},
            "void needs a reason, one of false_positive, duplicate, not_our",
        ),
        ("void", "filed", "shift_leader", {"reason": "bored"}, "got 'bored'"),
        ("return", "dispatched", "unit_handler", {}, "return needs a note"),
        ("return", "dispatched", "unit_handler", {"note": "  "}, "return needs a note"),
        ("request_extension", "dispatched", "unit_handler", {}, "request_extension needs hours"),
        (
            "request_extension",
            "dispatched",
            "unit_handler",
            {"hours": 0.0},
            "hours must be working hours > 0",
        ),
        ("request_extension", "dispatched", "unit_handler", {"hours": -2.0}, "hours must be"),
        ("request_extension", "dispatched", "unit_handler", {"hours": math.nan}, "hours must be"),
        ("start", "dispatched", "unit_handler", {"hours": 2.0}, "start takes no hours"),
        ("start", "dispatched", "unit_handler", {"unit_id": 3}, "unit_id is for dispatch, reassign, resume"),
        ("file", "pending_review", "shift_leader", {"reason": "x" * 65}, "at most 64"),
    ],
)
def test_required_fields(
    action: str, status: str, principal: str, fields: dict[str, object], match: str
) -> None:
    pending = False
    with pytest.raises(InvalidInput, match=match):
        check(action, status, principal, owns_case=True, extension_pending=pending, **fields)  # type: ignore[arg-type]


def test_unknown_action_lists_the_actions() -> None:
    with pytest.raises(InvalidInput, match="unknown action 'teleport'; actions: file, void, dispatch"):
        check("teleport", "filed", "admin", owns_case=True, extension_pending=False)


def test_only_closed_and_voided_are_final() -> None:
    final = {s.value for s in CaseStatus if not moves_from(s)}
    assert final == {"closed", "voided"}
