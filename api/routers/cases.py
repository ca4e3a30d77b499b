"""Cases: device reports in, evidence images, and the operators' case list and detail."""

from __future__ import annotations

from typing import Annotated, Literal

from fastapi import APIRouter, File, Form, Path, Query, Response, UploadFile
from fastapi.responses import FileResponse
from pydantic import AwareDatetime, Field

from api.actors import Actor
from api.case_queries import COUNT_CAP, CaseFilter, ListCursor, get_visible_case, list_cases, recurrence_ids
from api.case_schemas import CaseDetail, CasePublic, EvidencePublic
from api.clips import CLIP_CONTENT_TYPE, may_see_clips
from api.deps import ActorDep, DeviceDep, OperatorDep, SessionDep, SettingsDep
from api.evidence import SHA256_PATTERN, add_evidence, evidence_missing, evidence_url, open_evidence
from api.ingest import ingest_report
from api.models import Case, CaseStatus, Evidence
from api.routers.responses import AUTHENTICATED, INVALID, NOT_FOUND, errors
from api.schemas import Page
from api.storage import blobs_for
from api.storage.responses import RangeDep, blob_response
from contract.reports import CaseReport, EvidenceKind, IngestResult

router = APIRouter(prefix="/api/v1", tags=["cases"], responses=AUTHENTICATED)

MAX_ID = 2**31 - 1
CaseId = Annotated[int, Path(ge=1, le=MAX_ID, description="Case id.")]


@router.post(
    "/cases",
    response_model=IngestResult,
    status_code=201,
    responses={
        200: {"model": IngestResult, "description": "Added to an open case, or a repeated key."},
        **errors(400, 409, 422),
    },
    summary="Submit a confirmed violation from a device (X-Device-Key)",
)
def submit_case(
    report: CaseReport, device: DeviceDep, session: SessionDep, settings: SettingsDep, response: Response
) -> IngestResult:
    """201 when the report opened a new case; 200 when it became a sighting of the open case for its
    place and violation, or when its idempotency key was already received (``duplicate``)."""
    result = ingest_report(session, report, device, settings)
    session.commit()  # before answering: a device drops the report from its outbox on a 2xx
    if not result.created:
        response.status_code = 200
    return result


class CaseList(Page[CasePublic]):
    """A page of cases, newest first, and how many match the filters."""

    count: int = Field(
        description=f"How many cases match: exact up to {COUNT_CAP:,}; past that {COUNT_CAP:,} and "
        "count_capped is true (counting a million cases on every page costs a quarter of a second)."
    )
    count_capped: bool = Field(
        description=f"True when more than {COUNT_CAP:,} cases match (count is then a floor)."
    )
    next_cursor: str | None = Field(
        description="Pass as `after` for the next page (keyset: as fast at any depth, and no case repeats "
        "or is skipped while new ones arrive); null on the last page."
    )


@router.get("/cases", response_model=CaseList, responses=INVALID, summary="List cases (operators)")
def list_cases_route(
    actor: OperatorDep,
    session: SessionDep,
    status: Annotated[list[CaseStatus] | None, Query(description="Any of these statuses.")] = None,
    violation: Annotated[list[str] | None, Query(description="Event codes, e.g. 0505.")] = None,
    unit: Annotated[int | None, Query(ge=1, le=MAX_ID, description="Assigned unit id.")] = None,
    place: Annotated[str | None, Query(max_length=64, description="Place responsibility key.")] = None,
    camera: Annotated[str | None, Query(max_length=64, description="Camera code.")] = None,
    created_from: Annotated[AwareDatetime | None, Query(description="Created at or after.")] = None,
    created_to: Annotated[AwareDatetime | None, Query(description="Created before.")] = None,
    overdue: bool | None = None,
    source: Literal["camera", "open311", "operator"] | None = None,
    limit: Annotated[int, Query(ge=1, le=200)] = 50,
    offset: Annotated[int, Query(ge=0, le=10**9, description="Rows to skip (costs what it skips).")] = 0,
    after: Annotated[
        str | None,
        Query(max_length=80, description="The previous page's next_cursor: the page after it (no offset)."),
    ] = None,
) -> CaseList:
    """Newest first. Unit handlers see only their own unit's cases."""
    filters = CaseFilter(
        statuses=tuple(status or ()),
        violation_codes=tuple(violation or ()),
        unit_id=unit,
        place_key=place,
        camera=camera,
        created_from=created_from,
        created_to=created_to,
        overdue=overdue,
        source=source,
    )
    cursor = ListCursor.decode(after) if after is not None else None
    page = list_cases(session, actor, filters, limit=limit, offset=offset, after=cursor)
    return CaseList(
        data=[CasePublic.model_validate(case) for case in page.cases],
        count=page.count,
        count_capped=page.count_capped,
        next_cursor=page.next_cursor.encode() if page.next_cursor else None,
    )


@router.get(
    "/cases/{case_id}",
    response_model=CaseDetail,
    responses=NOT_FOUND,
    summary="One case with sightings, evidence and events",
)
def get_case_route(case_id: CaseId, actor: OperatorDep, session: SessionDep) -> CaseDetail:
    case = get_visible_case(session, actor, case_id, with_details=True)
    detail = CaseDetail.model_validate(case)
    return detail.model_copy(
        update={
            "evidence": [
                evidence_public(e)
                for e in case.evidence
                if e.content_type != CLIP_CONTENT_TYPE or may_see_clips(actor)
            ],
            "allowed_actions": _allowed_actions(case, actor),
            "recurrences": recurrence_ids(session, case.id),
        }
    )


@router.post(
    "/cases/{case_id}/evidence",
    response_model=EvidencePublic,
    status_code=201,
    responses={
        200: {"model": EvidencePublic, "description": "The case already had this image."},
        **errors(400, 404, 408, 413, 422, 429),
    },
    summary="Attach a JPEG or PNG image to a case (its device, or an operator who may act on it), or an "
    "MP4 evidence clip (kind clip, devices only)",
)
def upload_evidence_route(
    case_id: CaseId,
    file: Annotated[UploadFile, File(description="JPEG or PNG image; MP4 for kind clip.")],
    kind: Annotated[str, Form(description=f"One of: {', '.join(k.value for k in EvidenceKind)}.")],
    actor: ActorDep,
    session: SessionDep,
    settings: SettingsDep,
    response: Response,
    score: Annotated[
        float | None,
        Form(ge=0, le=1, description="Devices: how well the image shows the violation (contract.reports)."),
    ] = None,
    boxes: Annotated[
        str | None,
        Form(
            description="Devices, kind frame only: a JSON list of the boxes detected in the picture "
            "(contract.reports.Box, in its pixels)."
        ),
    ] = None,
) -> EvidencePublic:
    limit = max(settings.evidence_max_bytes, settings.clip_max_bytes)
    data = file.file.read(limit + 1)  # one byte more than allowed tells "too large"
    evidence, created = add_evidence(
        session, case_id, actor, data=data, kind=kind, settings=settings, score=score, boxes=boxes
    )
    session.commit()
    if not created:
        response.status_code = 200
    return evidence_public(evidence)


@router.get(
    "/evidence/{sha256}",
    response_class=FileResponse,  # for the OpenAPI document: a file, whichever blob store serves it
    responses={200: {"content": {"image/jpeg": {}, "image/png": {}, "video/mp4": {}}}, **NOT_FOUND},
    summary="An evidence image, for operators who may see a case that has it; a clip (MP4) only for "
    "shift leaders, dispatchers and admins, each opening audited",
)
def get_evidence_route(
    sha256: Annotated[str, Path(pattern=SHA256_PATTERN, description="64 lowercase hex digits.")],
    actor: OperatorDep,
    session: SessionDep,
    settings: SettingsDep,
    ranges: RangeDep,
) -> Response:
    # A video element fetches a clip in byte ranges: only the request from its start is a new opening.
    opening = ranges.range is None or ranges.range.replace(" ", "").startswith("bytes=0-")
    ref, content_type = open_evidence(session, actor, sha256, audit=opening)
    return blob_response(
        blobs_for(settings, session),
        ref,
        media_type=content_type,
        headers={"Cache-Control": "private, max-age=86400, immutable", "X-Content-Type-Options": "nosniff"},
        missing=evidence_missing(sha256),
        ranges=ranges,
    )


def evidence_public(evidence: Evidence) -> EvidencePublic:
    return EvidencePublic.model_validate(evidence).model_copy(update={"url": evidence_url(evidence.sha256)})


def _allowed_actions(case: Case, actor: Actor) -> list[str]:
    """What ``actor`` may do next, from the workflow module (an empty list until it is installed)."""
    try:
        from api.case_actions import allowed_actions_for
    except ModuleNotFoundError as error:
        if error.name != "api.case_actions":
            raise
        return []
    return [str(action) for action in allowed_actions_for(case, actor)]
