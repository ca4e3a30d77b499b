"""Case search (every state, keyset pages), its CSV export, its map points and bulk dispatch / re-assign.

Every route takes the same query parameters (:func:`search_params`), read into one
:class:`api.case_search.CaseSearch`; dates may be a local day (``2026-05-11``: the store's time zone, a
``*_to`` day included) or an aware time.
"""

from __future__ import annotations

import csv
import datetime as dt
import io
from collections.abc import Iterator
from typing import Annotated, Any, Literal
from urllib.parse import urlencode
from zoneinfo import ZoneInfo

from fastapi import APIRouter, Depends, Query, Request
from fastapi.responses import Response, StreamingResponse
from pydantic import BaseModel, Field, ValidationError
from pydantic_core import to_json
from sqlalchemy import select
from sqlalchemy.orm import Session
from starlette.datastructures import QueryParams

from api.actors import Actor
from api.case_actions import principal_of
from api.case_map import MAP_LIMIT, case_points
from api.case_search import CaseSearch, SearchCursor, iter_rows, search_cases
from api.console.acting import ActionRequest, act_on_many
from api.deps import OperatorDep, SessionDep, SettingsDep, require_roles
from api.errors import Forbidden, InvalidInput
from api.models import CalendarSettings, CaseStatus, Role
from api.routers.responses import AUTHENTICATED, INVALID, errors
from api.settings import Settings
from api.work_calendar import DEFAULT_TIMEZONE
from api.workflow import TABLE, Action

router = APIRouter(prefix="/api/v1/case-search", tags=["cases"], responses=AUTHENTICATED)
BULK_ACTIONS = (Action.DISPATCH, Action.REASSIGN)
BULK_MAX = 500


def store_timezone(session: Session) -> ZoneInfo:
    """The working calendar's time zone: the command centre's local time, for dates in and times out."""
    name = session.scalar(select(CalendarSettings.timezone).order_by(CalendarSettings.id).limit(1))
    try:
        return ZoneInfo(name or DEFAULT_TIMEZONE)
    except (KeyError, ValueError):
        return ZoneInfo(DEFAULT_TIMEZONE)


def parse_moment(name: str, text: str | None, zone: ZoneInfo) -> dt.datetime | None:
    """A local day (its start; for ``*_to`` the next day's start, so the day is included) or an aware time."""
    if not text:
        return None
    try:
        if len(text) == 10:
            day = dt.date.fromisoformat(text) + dt.timedelta(days=1 if name.endswith("_to") else 0)
            return dt.datetime.combine(day, dt.time(), tzinfo=zone)
        moment = dt.datetime.fromisoformat(text)
    except ValueError:
        raise InvalidInput(
            f"{name}: expected a date YYYY-MM-DD or a time with its offset, got {text[:40]!r}", field=name
        ) from None
    if moment.tzinfo is None:
        raise InvalidInput(f"{name}: {text[:40]!r} has no UTC offset", field=name)
    return moment


Text64 = Annotated[str | None, Query(max_length=64)]
Moment = Annotated[str | None, Query(max_length=40, description="YYYY-MM-DD (local day) or an aware time.")]


def search_params(
    session: SessionDep,
    status: Annotated[list[CaseStatus] | None, Query(description="Any of these statuses.")] = None,
    violation: Annotated[list[str] | None, Query(description="Event codes, e.g. 0505.")] = None,
    unit: Annotated[int | None, Query(ge=1, le=2**31 - 1, description="Assigned unit id.")] = None,
    place: Text64 = None,
    camera: Text64 = None,
    created_from: Moment = None,
    created_to: Moment = None,
    first_seen_from: Moment = None,
    first_seen_to: Moment = None,
    overdue: bool | None = None,
    recurrence: bool | None = None,
    min_place_cases: Annotated[int | None, Query(ge=2, le=10_000)] = None,
    source: Literal["camera", "open311", "operator"] | None = None,
    q: Annotated[str | None, Query(max_length=100, description="Place, note or case number (#12).")] = None,
    sort: Literal["created", "updated", "deadline", "first_seen"] = "created",
    direction: Literal["desc", "asc"] = "desc",
) -> CaseSearch:
    return make_search(
        session,
        {
            "status": status or [],
            "violation": [v for v in violation or () if v],
            "unit": unit,
            "place": place,
            "camera": camera,
            "created_from": created_from,
            "created_to": created_to,
            "first_seen_from": first_seen_from,
            "first_seen_to": first_seen_to,
            "overdue": overdue,
            "recurrence": recurrence,
            "min_place_cases": min_place_cases,
            "source": source,
            "q": q,
            "sort": sort,
            "direction": direction,
        },
    )


MOMENT_FIELDS = ("created_from", "created_to", "first_seen_from", "first_seen_to")
LIST_FIELDS = ("status", "violation")
SEARCH_FIELDS = frozenset(CaseSearch.model_fields)


def make_search(session: Session, raw: dict[str, Any]) -> CaseSearch:
    """A CaseSearch from query values (strings or already parsed); dates read in the store's time zone.

    Blank values mean "any", so a console form may send every field. Raises InvalidInput naming the field.
    """
    zone = store_timezone(session)
    data: dict[str, Any] = {k: v for k, v in raw.items() if v is not None and v != "" and v != []}
    for name in MOMENT_FIELDS:
        if name in data:
            data[name] = parse_moment(name, str(data[name]), zone)
    try:
        return CaseSearch.model_validate(data)
    except ValidationError as error:
        first = error.errors()[0]
        field = str(first["loc"][0]) if first["loc"] else "search"
        raise InvalidInput(
            f"{field}: {str(first['msg']).removeprefix('Value error, ')}", field=field
        ) from None


def search_from_query(session: Session, params: QueryParams) -> CaseSearch:
    """The console's way in: every filter field of a GET form (blanks included), unknown names ignored."""
    raw: dict[str, Any] = {}
    for name in SEARCH_FIELDS:
        values = [v.strip() for v in params.getlist(name) if v.strip()]
        raw[name] = values if name in LIST_FIELDS else (values[0] if values else None)
    return make_search(session, raw)


def clean_query(params: QueryParams, *, drop: tuple[str, ...] = ("after",)) -> str:
    """The query string without blank fields (and without ``drop``): for links to the API and next pages."""
    return urlencode([(k, v) for k, v in params.multi_items() if v.strip() and k not in drop])


SearchDep = Annotated[CaseSearch, Depends(search_params)]


class CaseListItem(BaseModel):
    id: int
    status: str
    violation_code: str
    violation_name: str
    violation_name_en: str
    place_key: str
    place_name: str
    camera_code: str | None
    unit_id: int | None
    unit_name: str | None
    source: str
    overdue: bool
    recurrence_of_id: int | None
    created_at: dt.datetime
    updated_at: dt.datetime
    first_seen_at: dt.datetime | None
    confirmed_at: dt.datetime | None
    deadline_at: dt.datetime | None
    closed_at: dt.datetime | None


class CaseListPage(BaseModel):
    data: list[CaseListItem]
    count: int = Field(
        description="Cases matching the filters, on every page: exact up to 10,000; past that 10,000 with "
        "``count_capped`` true (an exact count over a million cases would cost every page a full scan)."
    )
    count_capped: bool = Field(description="``count`` stopped at 10,000: more cases match.")
    next: str | None = Field(description="Pass as ``after`` for the next page; null on the last page.")


@router.get("", response_model=CaseListPage, responses=INVALID, summary="Search cases, keyset-paginated")
def search_route(
    actor: OperatorDep,
    session: SessionDep,
    search: SearchDep,
    after: Annotated[str | None, Query(max_length=300, description="The previous page's ``next``.")] = None,
    limit: Annotated[int, Query(ge=1, le=200)] = 50,
) -> CaseListPage:
    """Cases in any state. Unit handlers see only their own unit's cases."""
    cursor = SearchCursor.decode(after, search) if after else None
    page = search_cases(session, actor, search, after=cursor, limit=limit)
    return CaseListPage(
        data=[CaseListItem.model_validate(row, from_attributes=True) for row in page.rows],
        count=page.total,
        count_capped=page.total_capped,
        next=page.next_cursor.encode() if page.next_cursor else None,
    )


CSV_COLUMNS = (
    ("id", "案件编号"),
    ("status", "状态"),
    ("violation_code", "事件代码"),
    ("violation_name", "事件类型"),
    ("place_key", "责任网格"),
    ("place_name", "地点"),
    ("camera_code", "摄像机"),
    ("unit_name", "处置单位"),
    ("source", "来源"),
    ("overdue", "超期"),
    ("recurrence_of_id", "复发自"),
    ("first_seen_at", "首次发现"),
    ("confirmed_at", "确认时间"),
    ("created_at", "上报时间"),
    ("deadline_at", "处置时限"),
    ("closed_at", "结案时间"),
    ("description", "描述"),
)


def _csv_value(value: object, zone: ZoneInfo) -> str:
    if value is None:
        return ""
    if isinstance(value, bool):
        return "1" if value else "0"
    if isinstance(value, dt.datetime):
        return value.astimezone(zone).strftime("%Y-%m-%d %H:%M:%S")
    text = str(value)
    # A cell starting with = + - @ is a formula to a spreadsheet: quote it so a note cannot run one.
    return "'" + text if text[:1] in ("=", "+", "-", "@", "\t", "\r") else text


def csv_lines(sessions: Session, actor: Actor, search: CaseSearch) -> Iterator[bytes]:
    """The export, a keyset batch at a time: BOM + header (Chinese and English), then one line per case."""
    zone = store_timezone(sessions)
    buffer = io.StringIO()
    writer = csv.writer(buffer)
    writer.writerow([f"{zh} {name}" for name, zh in CSV_COLUMNS])
    yield "\ufeff".encode() + _drain(buffer)
    for count, row in enumerate(iter_rows(sessions, actor, search), start=1):
        writer.writerow([_csv_value(getattr(row, name), zone) for name, _ in CSV_COLUMNS])
        if count % 500 == 0:
            yield _drain(buffer)
    yield _drain(buffer)


def _drain(buffer: io.StringIO) -> bytes:
    data = buffer.getvalue()
    buffer.seek(0)
    buffer.truncate()
    return data.encode("utf-8")


@router.get(
    "/export.csv",
    response_class=StreamingResponse,
    responses={200: {"content": {"text/csv": {}}}, **INVALID},
    summary="The search's cases as CSV (UTF-8 with BOM; times in the store's time zone)",
)
def export_route(
    request: Request, actor: OperatorDep, session: SessionDep, search: SearchDep
) -> StreamingResponse:
    # The request's session closes when this returns; the stream reads with its own, closed at its end.
    sessions = request.app.state.sessions

    def stream() -> Iterator[bytes]:
        with sessions() as own:
            yield from csv_lines(own, actor, search)

    stamp = dt.datetime.now(store_timezone(session)).strftime("%Y%m%d-%H%M")
    return StreamingResponse(
        stream(),
        media_type="text/csv; charset=utf-8",
        headers={"Content-Disposition": f'attachment; filename="cases-{stamp}.csv"'},
    )


class CasePointOut(BaseModel):
    id: int
    lat: float
    lon: float
    status: str
    overdue: bool
    violation_code: str
    place_name: str


class CameraPointOut(BaseModel):
    code: str
    name: str
    lat: float
    lon: float
    zones: int


class MapOut(BaseModel):
    cases: list[CasePointOut]
    cameras: list[CameraPointOut]
    total: int = Field(
        description="Matching cases with a position (more than len(cases) past the limit); counted up to "
        "10,000 (then ``total_capped`` is true: 10,000 or more)."
    )
    total_capped: bool = Field(description="``total`` stopped counting at 10,000: there are more.")
    unplaced: int = Field(description="Matching cases with no position (counted up to 10,000).")
    unplaced_capped: bool = Field(description="``unplaced`` stopped counting at 10,000: there are more.")
    tile_url: str | None
    tile_attribution: str


@router.get("/map", response_model=MapOut, responses=INVALID, summary="Matching cases and cameras as points")
def map_route(
    actor: OperatorDep,
    session: SessionDep,
    settings: SettingsDep,
    search: SearchDep,
    limit: Annotated[int, Query(ge=1, le=20_000)] = MAP_LIMIT,
) -> Response:
    points = case_points(session, actor, search, limit=limit)
    # Written straight as JSON: validating 5,000 points into models (and FastAPI validating them again
    # against MapOut) took longer than the query; the points' dataclasses have MapOut's fields and types
    # (tests/api/test_case_search.py checks the answer against MapOut).
    body = {
        "cases": points.cases,  # dataclasses: pydantic_core writes their fields as objects
        "cameras": points.cameras,
        "total": points.total,
        "total_capped": points.total_capped,
        "unplaced": points.unplaced,
        "unplaced_capped": points.unplaced_capped,
        "tile_url": settings.map_tile_url,
        "tile_attribution": settings.map_tile_attribution,
    }
    return Response(to_json(body), media_type="application/json")


# Checked before the body is read: a role that may never dispatch gets 403, whatever it sent.
BulkActorDep = Annotated[Actor, Depends(require_roles(Role.DISPATCHER, Role.ADMIN))]


class BulkRequest(BaseModel):
    action: Literal["dispatch", "reassign"]
    case_ids: list[Annotated[int, Field(ge=1, le=2**31 - 1)]] = Field(min_length=1, max_length=BULK_MAX)
    unit_id: int | None = Field(None, ge=1, le=2**31 - 1, description="Null: routing chooses the unit.")
    note: str | None = Field(None, max_length=4000)


class BulkResult(BaseModel):
    case_id: int
    ok: bool
    status: str | None
    unit: str | None
    error: str | None


class BulkResults(BaseModel):
    results: list[BulkResult]
    succeeded: int
    failed: int


def check_bulk_role(actor: Actor, action: str) -> None:
    """403 up front for a role that may never take ``action`` (rather than one refusal per case)."""
    principal = principal_of(actor)
    if principal not in TABLE[Action(action)].roles:
        raise Forbidden(f"role '{principal}' may not {action} cases")


def bulk(session: Session, actor: Actor, settings: Settings, request: BulkRequest) -> BulkResults:
    check_bulk_role(actor, request.action)
    outcomes = act_on_many(
        session,
        actor,
        settings,
        request.case_ids,
        ActionRequest(request.action, unit_id=request.unit_id, note=request.note or None),
    )
    results = [
        BulkResult(case_id=o.case_id, ok=o.ok, status=o.status, unit=o.unit, error=o.error) for o in outcomes
    ]
    ok = sum(r.ok for r in results)
    return BulkResults(results=results, succeeded=ok, failed=len(results) - ok)


@router.post(
    "/bulk",
    response_model=BulkResults,
    responses=errors(400, 403, 422),
    summary="Dispatch or re-assign many cases; each goes through the workflow, failures are listed",
)
def bulk_route(
    body: BulkRequest, actor: BulkActorDep, session: SessionDep, settings: SettingsDep
) -> BulkResults:
    """Each case moves (or not) on its own: one that may not move is reported, the others still move."""
    return bulk(session, actor, settings, body)
