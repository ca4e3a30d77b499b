"""The review queue: pending cases newest first, confirm (立案) or reject (作废) by keyboard, one or many."""

from __future__ import annotations

import datetime as dt
from typing import Annotated

from fastapi import APIRouter, Form, Query
from fastapi.responses import JSONResponse, RedirectResponse, Response
from sqlalchemy import select

from api.console.acting import ActionRequest, act, act_on_many, recode_choices
from api.console.deps import Page, PageDep
from api.console.queue import (
    Cursor,
    QueueFilter,
    review_queue,
    suggest_cameras,
    suggest_places,
    violation_options,
)
from api.console.rendering import render
from api.console.security import CSRF_FIELD, check_csrf, safe_next
from api.deps import SettingsDep
from api.errors import Forbidden, InvalidInput
from api.messages import msg
from api.models import AuditEvent, Role, ViolationType
from api.workflow import TABLE, VOID_REASONS, Action

router = APIRouter(prefix="/console/review", include_in_schema=False)
QUEUE_ROLES = frozenset({Role.ADMIN, Role.SHIFT_LEADER, Role.DISPATCHER, Role.VIEWER})
Text = Annotated[str | None, Query(max_length=64)]


def _require_queue_role(page: Page) -> None:
    if page.role not in QUEUE_ROLES:
        raise Forbidden(f"role '{page.role}' has no review queue; unit handlers work from the unit board")


def _day_start(page: Page, name: str, value: str | None, *, next_day: bool = False) -> dt.datetime | None:
    """A date from a filter (the command centre's local day) as the UTC start of that day or the next."""
    if not value:
        return None
    try:
        day = dt.date.fromisoformat(value)
    except ValueError:
        raise InvalidInput(
            f"{name}: expected a date YYYY-MM-DD, got {value[:20]!r}",
            msg=msg("error.bad_date", field=name, value=value[:20]),
            field=name,
        ) from None
    if next_day:
        day += dt.timedelta(days=1)
    return dt.datetime.combine(day, dt.time(), tzinfo=page.timezone).astimezone(dt.UTC)


@router.get("")
def queue_page(
    page: PageDep,
    camera: Text = None,
    place: Text = None,
    violation: Annotated[str | None, Query(max_length=16)] = None,
    date_from: Annotated[str | None, Query(alias="from", max_length=10)] = None,
    date_to: Annotated[str | None, Query(alias="to", max_length=10)] = None,
    after: Annotated[str | None, Query(max_length=200)] = None,
) -> Response:
    _require_queue_role(page)
    filters = QueueFilter(
        camera=camera or None,
        place_key=place or None,
        violation=violation or None,
        created_from=_day_start(page, "from", date_from),
        created_to=_day_start(page, "to", date_to, next_day=True),
    )
    actor = page.operator
    result = review_queue(page.session, actor, filters, after=Cursor.decode(after) if after else None)
    principal = actor.role.value if actor.role else ""
    query = {
        "camera": camera or "",
        "place": place or "",
        "violation": violation or "",
        "from": date_from or "",
        "to": date_to or "",
    }
    return render(
        page,
        "review/queue.html",
        result=result,
        violations=violation_options(page.session),
        query=query,
        filtered=any(query.values()),
        deep=after is not None,
        can_decide=principal in TABLE[Action.FILE].roles and principal in TABLE[Action.VOID].roles,
        can_recode=principal in TABLE[Action.RECODE].roles,
        recode_keys=[c for c in recode_choices(page.session) if c.key is not None],
        void_reasons=VOID_REASONS,
    )


@router.get("/suggest")
def suggest(
    page: PageDep,
    field: Annotated[str, Query(pattern="^(camera|place)$")],
    q: Annotated[str, Query(max_length=64)] = "",
) -> JSONResponse:
    """The camera and place filters' type-ahead: up to 20 of those with cases awaiting review that start
    with ``q``, as ``[{"value": ..., "label": ...}]`` (JSON; the page fills a ``<datalist>`` with them)."""
    _require_queue_role(page)
    actor = page.operator
    if field == "camera":
        items = [{"value": c, "label": c} for c in suggest_cameras(page.session, actor, q.strip())]
    else:
        items = [{"value": k, "label": n} for k, n in suggest_places(page.session, actor, q.strip())]
    return JSONResponse(items)


@router.post("/decide")
def decide(
    page: PageDep,
    settings: SettingsDep,
    decision: Annotated[str, Form(pattern="^(file|void)$")],
    case_id: Annotated[list[int], Form()],
    reason: Annotated[str | None, Form(max_length=64)] = None,
    note: Annotated[str | None, Form(max_length=4000)] = None,
    csrf_token: Annotated[str, Form(alias=CSRF_FIELD)] = "",
    next: Annotated[str, Form(max_length=2000)] = "",
) -> Response:
    """Confirm (file) or reject (void with a reason) one or more cases; JSON for scripts, else a redirect."""
    check_csrf(page.request, csrf_token)
    request = ActionRequest(decision, reason=reason if decision == "void" else None, note=note)
    outcomes = act_on_many(page.session, page.operator, settings, case_id, request)
    if "application/json" in page.request.headers.get("accept", ""):
        results = [
            {
                "case_id": o.case_id,
                "ok": o.ok,
                "status": o.status,
                "status_label": page.t(f"status.{o.status}") if o.status else None,
                "unit": o.unit,
                "error": page.error_text(o.failure) if o.failure else None,
            }
            for o in outcomes
        ]
        return JSONResponse({"results": results})
    return RedirectResponse(safe_next(next, "/console/review"), status_code=303)


@router.post("/recode")
def recode(
    page: PageDep,
    settings: SettingsDep,
    case_id: Annotated[int, Form(ge=1, le=2**31 - 1)],
    violation_code: Annotated[str, Form(min_length=1, max_length=16)],
    csrf_token: Annotated[str, Form(alias=CSRF_FIELD)] = "",
) -> Response:
    """Re-code one case (the queue's number keys); JSON: the new code and name, or the case it merged into."""
    check_csrf(page.request, csrf_token)
    outcome = act(
        page.session, page.operator, settings, case_id, ActionRequest("recode", violation_code=violation_code)
    )
    result: dict[str, object] = {"case_id": case_id, "ok": outcome.ok}
    if not outcome.ok:
        # what window.streetwatch.post shows for a refusal
        result["detail"] = page.error_text(outcome.failure) if outcome.failure else outcome.error
    else:
        violation = page.session.scalar(select(ViolationType).where(ViolationType.code == violation_code))
        event = page.session.scalar(
            select(AuditEvent)
            .where(AuditEvent.case_id == case_id, AuditEvent.action == "recode")
            .order_by(AuditEvent.id.desc())
            .limit(1)
        )
        name = (
            (violation.name if page.lang == "zh" else violation.name_en or violation.name)
            if violation
            else ""
        )
        result.update(
            status=outcome.status,
            violation_code=violation_code,
            violation_name=name,
            merged_into=(event.data or {}).get("merged_into") if event else None,
        )
    return JSONResponse(result, status_code=200 if outcome.ok else outcome.http_status)
