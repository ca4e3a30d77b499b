"""Open311 GeoReport v2 facade at ``/open311/v2`` (JSON only), so 311 clients and dashboards can read
and write cases.

Secure by default, unlike the spec's public GET: every endpoint except ``discovery.json`` needs a
credential: best in a header (``X-API-Key``, ``Authorization: Bearer`` or ``X-Device-Key``), which access
logs and proxies do not record; ``api_key`` in the query string (GET) or form (POST), as the spec has
it, is accepted too, and blanked in the store's logs (:mod:`api.log_redaction`). Requests are read with
an operator token (unit handlers see their own unit's cases); they are submitted with an operator token
(not a viewer) or a device key. Errors are GeoReport error arrays
``[{"code": <HTTP status>, "description": "..."}]``.
"""

from __future__ import annotations

from collections.abc import Callable, Coroutine
from typing import Annotated, Any

from fastapi import APIRouter, Depends, Form, Path, Query, Request, Response
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from fastapi.routing import APIRoute
from fastapi.security import APIKeyHeader, HTTPAuthorizationCredentials, HTTPBearer
from pydantic import AwareDatetime
from starlette.exceptions import HTTPException

from api import open311
from api.actors import Actor
from api.deps import TOKEN_COOKIE, SessionDep, SettingsDep, Unauthorized, get_actor
from api.errors import ApiError, InvalidInput

# Open311 clients expect 400 for bad parameters and 403 for a bad api_key.
_SPEC_STATUS = {InvalidInput.status_code: 400, Unauthorized.status_code: 403}


def error_response(status: int, description: str) -> JSONResponse:
    return JSONResponse(status_code=status, content=[{"code": status, "description": description}])


def _describe(exc: RequestValidationError) -> str:
    parts = []
    for error in exc.errors():
        field = ".".join(str(p) for p in error.get("loc", ()) if p not in ("body", "query", "path"))
        parts.append(f"{field or 'request'}: {error.get('msg', 'invalid')}")
    return "; ".join(parts)


class Open311Route(APIRoute):
    """Routes whose errors are rendered as GeoReport error arrays instead of the API's usual shape."""

    def get_route_handler(self) -> Callable[[Request], Coroutine[Any, Any, Response]]:
        handler = super().get_route_handler()

        async def route(request: Request) -> Response:
            try:
                return await handler(request)
            except RequestValidationError as exc:
                return error_response(400, _describe(exc))
            except ApiError as exc:
                status = _SPEC_STATUS.get(exc.status_code, exc.status_code)
                return error_response(status, exc.message)
            except HTTPException as exc:  # the framework's, e.g. a body that is not form data
                return error_response(exc.status_code, str(exc.detail))

        return route


ERRORS: dict[int | str, dict[str, Any]] = {
    code: {"model": list[open311.Open311Error], "description": what}
    for code, what in (
        (400, "Invalid or missing parameter"),
        (403, "Missing, invalid or insufficient api_key"),
        (404, "Not found"),
        # Every other error is an error array too (and this stops FastAPI documenting its own 422, which
        # these routes never send: invalid input is a 400 here).
        ("default", "Any other error"),
    )
}
CONFLICT: dict[int | str, dict[str, Any]] = {
    409: {"model": list[open311.Open311Error], "description": "The case changed meanwhile: retry"}
}

# Not on the router: discovery.json is public and takes no input, so it has none of these errors.
router = APIRouter(prefix="/open311/v2", tags=["open311"], route_class=Open311Route)

_bearer = HTTPBearer(auto_error=False, description="Operator token (swt_...) or device key (swd_...)")
_device_header = APIKeyHeader(name="X-Device-Key", auto_error=False, description="Device API key (swd_...)")
_api_key_header = APIKeyHeader(
    name="X-API-Key", auto_error=False, description="The api_key as a header: operator token or device key."
)
BearerDep = Annotated[HTTPAuthorizationCredentials | None, Depends(_bearer)]
DeviceHeaderDep = Annotated[str | None, Depends(_device_header)]
ApiKeyHeaderDep = Annotated[str | None, Depends(_api_key_header)]
ApiKeyQuery = Annotated[
    str | None, Query(max_length=200, description="Operator token (swt_...) or device key (swd_...).")
]
Jurisdiction = Annotated[
    str | None, Query(max_length=100, description="Accepted and ignored: one jurisdiction.")
]


def _caller(
    request: Request,
    session: SessionDep,
    api_key: str | None,
    bearer: HTTPAuthorizationCredentials | None,
    device_key: str | None,
) -> Actor:
    if api_key:
        bearer = HTTPAuthorizationCredentials(scheme="Bearer", credentials=api_key)
    if not (api_key or bearer or device_key or request.cookies.get(TOKEN_COOKIE)):
        raise Unauthorized("api_key required: an operator token (swt_...) or a device key (swd_...)")
    return get_actor(request, session, bearer, device_key)


def query_caller(
    request: Request,
    session: SessionDep,
    bearer: BearerDep,
    device_key: DeviceHeaderDep,
    header_key: ApiKeyHeaderDep,
    api_key: ApiKeyQuery = None,
) -> Actor:
    return _caller(request, session, header_key or api_key, bearer, device_key)


def form_caller(
    request: Request,
    session: SessionDep,
    bearer: BearerDep,
    device_key: DeviceHeaderDep,
    header_key: ApiKeyHeaderDep,
    api_key: Annotated[str | None, Form(max_length=200, description="Operator token or device key.")] = None,
) -> Actor:
    return _caller(request, session, header_key or api_key, bearer, device_key)


QueryCaller = Annotated[Actor, Depends(query_caller)]
FormCaller = Annotated[Actor, Depends(form_caller)]


@router.get("/discovery.json", response_model=open311.Discovery, summary="Open311 discovery (public)")
def discovery(settings: SettingsDep) -> open311.Discovery:
    return open311.discovery(settings)


@router.get(
    "/services.json",
    responses=ERRORS,
    response_model=list[open311.Service],
    summary="Service list: the violation types",
)
def services(
    _: QueryCaller, session: SessionDep, jurisdiction_id: Jurisdiction = None
) -> list[open311.Service]:
    return open311.services(session)


@router.get(
    "/services/{service_code}.json",
    responses=ERRORS,
    response_model=open311.ServiceDefinition,
    summary="Service definition (no extra attributes: metadata is false for every service)",
)
def service_definition(
    service_code: Annotated[str, Path(min_length=1, max_length=16)],
    _: QueryCaller,
    session: SessionDep,
    jurisdiction_id: Jurisdiction = None,
) -> open311.ServiceDefinition:
    return open311.service_definition(session, service_code)


@router.get(
    "/requests.json",
    responses=ERRORS,
    response_model=list[open311.ServiceRequest],
    summary="Query service requests",
)
def list_requests(
    actor: QueryCaller,
    session: SessionDep,
    settings: SettingsDep,
    service_request_id: Annotated[
        str | None, Query(max_length=2000, description="Comma-separated ids; overrides the other filters.")
    ] = None,
    service_code: Annotated[str | None, Query(max_length=500, description="Comma-separated codes.")] = None,
    status: Annotated[str | None, Query(max_length=20, description="open, closed or open,closed.")] = None,
    start_date: Annotated[AwareDatetime | None, Query(description="Requested at or after (W3C).")] = None,
    end_date: Annotated[AwareDatetime | None, Query(description="Requested at or before (W3C).")] = None,
    jurisdiction_id: Jurisdiction = None,
) -> list[open311.ServiceRequest]:
    """Newest first, at most 1000; without dates the last 90 days (as the spec suggests)."""
    return open311.list_requests(
        session,
        actor,
        settings,
        service_request_id=service_request_id,
        service_code=service_code,
        status=status,
        start_date=start_date,
        end_date=end_date,
    )


@router.get(
    "/requests/{service_request_id}.json",
    responses=ERRORS,
    response_model=list[open311.ServiceRequest],
    summary="One service request (an array of one, as the spec says)",
)
def get_request(
    service_request_id: Annotated[int, Path(ge=1, le=2**31 - 1)],
    actor: QueryCaller,
    session: SessionDep,
    settings: SettingsDep,
    jurisdiction_id: Jurisdiction = None,
) -> list[open311.ServiceRequest]:
    return [open311.get_request(session, actor, settings, service_request_id)]


def _form_text(max_length: int, description: str) -> Any:
    return Form(max_length=max_length, description=description)


@router.post(
    "/requests.json",
    response_model=list[open311.RequestCreated],
    status_code=201,
    responses={**ERRORS, **CONFLICT},
    summary="Submit a service request (form-encoded, api_key required)",
)
def create_request(
    actor: FormCaller,
    session: SessionDep,
    settings: SettingsDep,
    service_code: Annotated[
        str, Form(min_length=1, max_length=16, description="Event code of the violation.")
    ],
    lat: Annotated[float | None, Form(ge=-90, le=90, description="WGS 84 latitude.")] = None,
    long: Annotated[float | None, Form(ge=-180, le=180, description="WGS 84 longitude.")] = None,
    address_string: Annotated[str | None, _form_text(300, "Human-readable address.")] = None,
    address_id: Annotated[str | None, _form_text(64, "A place key (grid code, road section).")] = None,
    email: Annotated[str | None, _form_text(200, "Reporter's e-mail (kept private).")] = None,
    device_id: Annotated[str | None, _form_text(100, "Accepted and ignored.")] = None,
    account_id: Annotated[str | None, _form_text(100, "Accepted and ignored.")] = None,
    first_name: Annotated[str | None, _form_text(100, "Reporter's first name (kept private).")] = None,
    last_name: Annotated[str | None, _form_text(100, "Reporter's last name (kept private).")] = None,
    phone: Annotated[str | None, _form_text(50, "Reporter's phone (kept private).")] = None,
    description: Annotated[str | None, _form_text(4000, "What is wrong.")] = None,
    media_url: Annotated[
        str | None,
        Form(max_length=500, pattern=r"^https?://\S+$", description="An image URL (http or https)."),
    ] = None,
    jurisdiction_id: Annotated[str | None, _form_text(100, "Accepted and ignored.")] = None,
) -> list[open311.RequestCreated]:
    """Opens a case in pending_review (source open311), or adds the report to the open case for the same
    place and violation. The place is address_id, or the nearest known place to lat/long."""
    form = open311.Submission(
        service_code=service_code,
        lat=lat,
        long=long,
        address_string=address_string,
        address_id=address_id,
        email=email,
        first_name=first_name,
        last_name=last_name,
        phone=phone,
        description=description,
        media_url=media_url,
    )
    if (lat is None) != (long is None):
        raise InvalidInput("give both lat and long, or neither", field="lat")
    case, new = open311.submit_request(session, actor, form, settings)
    session.commit()  # before answering, like camera reports
    return [open311.created_of(case, new)]
