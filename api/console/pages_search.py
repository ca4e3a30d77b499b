"""Case search and the map: every case in any state, filtered like the API (api.case_search), a page at a
time (keyset), exported as CSV by the API, dispatched or re-assigned in bulk by dispatchers.

The filter form's fields are the API's query parameters, so the list, its CSV link and the map's points
all read the same query string.
"""

from __future__ import annotations

from typing import Annotated, Any
from urllib.parse import urlsplit

from fastapi import APIRouter, Form
from fastapi.responses import JSONResponse, Response
from sqlalchemy import and_, distinct, func, select
from sqlalchemy.orm import Session
from starlette.datastructures import QueryParams

from api.actors import Actor
from api.case_queries import visibility_clause
from api.case_search import SearchCursor, search_cases
from api.console.acting import ActionRequest, act_on_many
from api.console.deps import Page, PageDep
from api.console.queue import FilterOptions, filter_options
from api.console.rendering import render
from api.console.security import CSRF_FIELD, check_csrf, safe_next
from api.deps import SettingsDep
from api.errors import InvalidInput
from api.models import Case, CaseStatus, Unit, ViolationType
from api.routers.case_search import (
    BULK_MAX,
    SEARCH_FIELDS,
    check_bulk_role,
    clean_query,
    search_from_query,
)
from api.security_headers import CONTENT_SECURITY_POLICY
from api.workflow import TABLE, Action

router = APIRouter(prefix="/console", include_in_schema=False)
PAGE_SIZE = 50
BULK_ACTIONS = (Action.DISPATCH, Action.REASSIGN)
SORTS = ("created", "updated", "deadline", "first_seen")
SOURCES = ("camera", "open311", "operator")
# A city has thousands of places and cameras: past this many, the filter is a text field (key or code),
# not a <select> of every one (5,000 options made the page 860 KiB and most of its 600 ms at 1M cases).
OPTION_LIMIT = 300


def _bulk_actions(page: Page) -> list[Action]:
    principal = page.role.value if page.role else ""
    return [a for a in BULK_ACTIONS if principal in TABLE[a].roles]


def _options(session: Session, actor: Actor) -> tuple[FilterOptions, bool]:
    """The queue's filter options, or (past OPTION_LIMIT pending cameras or places) only the violation
    types: naming thousands of cameras and places cost 70-90 ms a page at 1M cases, for lists not shown."""
    pending = and_(Case.status == CaseStatus.PENDING_REVIEW.value, visibility_clause(actor))
    cameras = session.scalar(select(func.count(distinct(Case.camera_code))).where(pending)) or 0
    places = session.scalar(select(func.count(distinct(Case.place_id))).where(pending)) or 0
    if cameras <= OPTION_LIMIT and places <= OPTION_LIMIT:
        return filter_options(session, actor), False
    violations = session.execute(
        select(ViolationType.code, ViolationType.name, ViolationType.name_en)
        .where(ViolationType.active.is_(True))
        .order_by(ViolationType.code)
    )
    return FilterOptions([], [], [(code, name, en or name) for code, name, en in violations]), True


def _form_context(page: Page, params: QueryParams) -> dict[str, Any]:
    """What the filter form offers and what it currently says."""
    session = page.session
    units = session.scalars(select(Unit).where(Unit.active.is_(True)).order_by(Unit.name)).all()
    options, as_text = _options(session, page.operator)
    return {
        "options": options,
        "places_as_text": as_text,
        "cameras_as_text": as_text,
        "units": units,
        "statuses": [s.value for s in CaseStatus],
        "sorts": SORTS,
        "sources": SOURCES,
        "query": {name: params.get(name, "") for name in SEARCH_FIELDS},
        "chosen_statuses": params.getlist("status"),
        "clean": clean_query(params),
    }


@router.get("/search")
def search_page(page: PageDep) -> Response:
    return _render_list(page, page.request.query_params)


def _render_list(
    page: Page, params: QueryParams, *, outcomes: list[dict[str, object]] | None = None
) -> Response:
    search = search_from_query(page.session, params)
    after = params.get("after")
    cursor = SearchCursor.decode(after, search) if after else None
    result = search_cases(page.session, page.operator, search, after=cursor, limit=PAGE_SIZE)
    return render(
        page,
        "search/list.html",
        result=result,
        deep=cursor is not None,
        bulk_actions=_bulk_actions(page),
        bulk_max=BULK_MAX,
        outcomes=outcomes,
        **_form_context(page, params),
    )


@router.post("/search/bulk")
def bulk_page(
    page: PageDep,
    settings: SettingsDep,
    action: Annotated[str, Form(pattern="^(dispatch|reassign)$")],
    case_id: Annotated[list[int], Form(max_length=BULK_MAX)] = [],  # noqa: B006  (FastAPI reads the default)
    unit_id: Annotated[str, Form(max_length=12)] = "",
    csrf_token: Annotated[str, Form(alias=CSRF_FIELD)] = "",
    next: Annotated[str, Form(max_length=2000)] = "",
) -> Response:
    """Dispatch or re-assign the ticked cases one by one through the workflow; show what moved, what not."""
    check_csrf(page.request, csrf_token)
    check_bulk_role(page.operator, action)
    if not case_id:
        raise InvalidInput(page.t("search.nothing_selected"), field="case_id")
    try:
        unit = int(unit_id) if unit_id else None
    except ValueError:
        raise InvalidInput(f"unit_id: not a number: {unit_id[:12]!r}", field="unit_id") from None
    outcomes = act_on_many(
        page.session, page.operator, settings, case_id, ActionRequest(action, unit_id=unit)
    )
    rows: list[dict[str, object]] = [
        {
            "case_id": o.case_id,
            "ok": o.ok,
            "status": o.status,
            "status_label": page.t(f"status.{o.status}") if o.status else None,
            "unit": o.unit,
            "error": o.error,
        }
        for o in outcomes
    ]
    if "application/json" in page.request.headers.get("accept", ""):
        return JSONResponse({"results": rows})
    # Show the outcomes above the list the dispatcher came from (its filters, its page).
    target = urlsplit(safe_next(next, "/console/search"))
    return _render_list(page, QueryParams(target.query), outcomes=rows)


@router.get("/map")
def map_page(page: PageDep, settings: SettingsDep) -> Response:
    search_from_query(
        page.session, page.request.query_params
    )  # a bad filter is an error page, not a blank map
    response = render(
        page,
        "search/map.html",
        tile_url=settings.map_tile_url or "",
        tile_attribution=settings.map_tile_attribution,
        **_form_context(page, page.request.query_params),
    )
    if settings.map_tile_url:  # the city's tile server may serve images to this page, nothing else
        origin = "{0.scheme}://{0.netloc}".format(urlsplit(settings.map_tile_url))
        response.headers["Content-Security-Policy"] = map_csp(origin)
    return response


def map_csp(tile_origin: str) -> str:
    """The console's policy with the tile server's origin allowed for images."""
    return CONTENT_SECURITY_POLICY.replace("img-src 'self' data:", f"img-src 'self' data: {tile_origin}")
