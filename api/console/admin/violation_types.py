"""Violation types: event code, names (zh/en), the pipeline type it maps to, auto-filing, whether active,
and its deadline in working hours (DeadlineRule; empty: the calendar's default applies)."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Annotated, Any
from urllib.parse import quote

from fastapi import APIRouter, Path
from fastapi.responses import Response
from sqlalchemy import select

from api import reference as ref
from api.console.admin.forms import (
    Field,
    Form,
    FormDep,
    attempt,
    audit,
    checked,
    number,
    posted,
    redirect,
    require_admin,
)
from api.console.admin.pages import Row, cell, error_status, render_admin, yes_no
from api.console.deps import Page, PageDep
from api.models import DeadlineRule, ViolationType

router = APIRouter(prefix="/console/admin/violation-types", include_in_schema=False)
EventCodePath = Annotated[str, Path(min_length=1, max_length=16, pattern=ref.EVENT_CODE_PATTERN)]
BASE = "/console/admin/violation-types"


def _deadlines(page: Page) -> dict[str, float]:
    return {row.violation_code: row.working_hours for row in page.session.scalars(select(DeadlineRule))}


def _fields(values: Mapping[str, Any], *, new: bool) -> list[Field]:
    return [
        Field(
            "code", "admin.field.event_code", value=values.get("code", ""), required=True, readonly=not new
        ),
        Field("name", "admin.field.name_zh", value=values.get("name", ""), required=True),
        Field("name_en", "admin.field.name_en", value=values.get("name_en", ""), lang="en"),
        Field(
            "pipeline_type",
            "admin.field.pipeline_type",
            value=values.get("pipeline_type", ""),
            required=True,
            hint="admin.violation_types.pipeline_hint",
        ),
        Field("category", "admin.field.category", value=values.get("category", "")),
        Field(
            "working_hours",
            "admin.field.working_hours",
            kind="number",
            step="any",
            value=values.get("working_hours"),
            hint="admin.violation_types.deadline_hint",
        ),
        Field(
            "auto_file_min_confidence",
            "admin.field.auto_file_min_confidence",
            kind="number",
            step="0.01",
            value=values.get("auto_file_min_confidence", 0.9),
        ),
        Field(
            "default_for_type",
            "admin.field.default_for_type",
            kind="checkbox",
            value=values.get("default_for_type", False),
        ),
        Field("auto_file", "admin.field.auto_file", kind="checkbox", value=values.get("auto_file", False)),
        Field(
            "photo_required_to_resolve",
            "admin.field.photo_required_to_resolve",
            kind="checkbox",
            value=values.get("photo_required_to_resolve", False),
            hint="admin.violation_types.photo_hint",
        ),
        Field(
            "start_required_before_resolve",
            "admin.field.start_required_before_resolve",
            kind="checkbox",
            value=values.get("start_required_before_resolve", False),
        ),
        Field("active", "admin.field.active", kind="checkbox", value=values.get("active", True)),
    ]


def _handling(page: Page, violation: ViolationType) -> str:
    rules = [
        page.t(key)
        for key, on in (
            ("admin.field.photo_required_to_resolve", violation.photo_required_to_resolve),
            ("admin.field.start_required_before_resolve", violation.start_required_before_resolve),
        )
        if on
    ]
    return "；".join(rules) if page.lang == "zh" else "; ".join(rules)


def _list(page: Page, values: Mapping[str, Any], errors: list[str]) -> Response:
    deadlines = _deadlines(page)
    default_hours = ref.get_calendar(page.session).default_working_hours
    rows = [
        Row(
            id=f"violation-{violation.code}",
            cells=[
                cell(violation.code, f"{BASE}/{quote(violation.code)}"),
                cell(violation.name),
                cell(violation.name_en, css="lang-en"),
                cell(violation.pipeline_type),
                cell(
                    page.t("admin.hours", hours=f"{deadlines[violation.code]:g}")
                    if violation.code in deadlines
                    else page.t("admin.violation_types.default_deadline", hours=f"{default_hours:g}")
                ),
                cell(_handling(page, violation)),
                cell(yes_no(page, violation.active)),
            ],
            muted=not violation.active,
        )
        for violation in ref.list_violation_types(page.session)
    ]
    return render_admin(
        page,
        "admin/area.html",
        status_code=error_status(errors),
        title="admin.violation_types.title",
        explain="admin.violation_types.explain",
        table_id="violation-types",
        columns=[
            "admin.field.event_code",
            "admin.field.name_zh",
            "admin.field.name_en",
            "admin.field.pipeline_type",
            "admin.field.working_hours",
            "admin.violation_types.handling",
            "admin.field.active",
        ],
        rows=rows,
        form=Form("violation-form", BASE, _fields(values, new=True), "admin.create", errors),
        form_title="admin.violation_types.new",
    )


FLAGS = (
    "default_for_type",
    "auto_file",
    "active",
    "photo_required_to_resolve",
    "start_required_before_resolve",
)


def _flags(values: dict[str, str]) -> dict[str, bool]:
    return {name: checked(values, name) for name in FLAGS}


def _save_deadline(page: Page, code: str, values: dict[str, str]) -> None:
    hours = number(values, "working_hours")
    if hours is not None:
        ref.put_deadline(page.session, code, ref.DeadlineIn.model_validate({"working_hours": hours}))
    elif page.session.scalar(select(DeadlineRule).where(DeadlineRule.violation_code == code)) is not None:
        ref.delete_deadline(page.session, code)  # empty: back to the calendar's default


@router.get("")
def violation_types_page(page: PageDep) -> Response:
    require_admin(page)
    return _list(page, {}, [])


@router.post("")
def create_violation_type(page: PageDep, form: FormDep) -> Response:
    values = posted(page, form)

    def change() -> ViolationType:
        body = ref.ViolationTypeIn.model_validate(
            {
                "code": values.get("code", ""),
                "name": values.get("name", ""),
                "name_en": values.get("name_en", ""),
                "pipeline_type": values.get("pipeline_type", ""),
                "category": values.get("category", ""),
                "auto_file_min_confidence": number(values, "auto_file_min_confidence") or 0.9,
                **_flags(values),
            }
        )
        violation = ref.create_violation_type(page.session, body)
        _save_deadline(page, violation.code, values)
        return violation

    violation, errors = attempt(page, change)
    if violation is None:
        return _list(page, {**values, **_flags(values)}, errors)
    audit(page, "violation_type", "created", violation.code)
    return redirect(f"{BASE}?saved={quote(violation.name)}")


def _edit(page: Page, code: str, values: Mapping[str, Any], errors: list[str]) -> Response:
    return render_admin(
        page,
        "admin/edit.html",
        status_code=error_status(errors),
        heading=page.t("admin.violation_types.edit", code=code),
        back=BASE,
        links=[],
        form=Form(
            "violation-form", f"{BASE}/{quote(code)}", _fields(values, new=False), "admin.save", errors
        ),
        extras=[],
        history=None,
    )


@router.get("/{code}")
def violation_type_page(code: EventCodePath, page: PageDep) -> Response:
    require_admin(page)
    violation = ref.get_violation_type(page.session, code)
    values: dict[str, Any] = {
        name: getattr(violation, name)
        for name in (
            "code",
            "name",
            "name_en",
            "pipeline_type",
            "category",
            "auto_file_min_confidence",
            "default_for_type",
            "auto_file",
            "active",
            "photo_required_to_resolve",
            "start_required_before_resolve",
        )
    }
    values["working_hours"] = _deadlines(page).get(code)
    return _edit(page, code, values, [])


@router.post("/{code}")
def update_violation_type(code: EventCodePath, page: PageDep, form: FormDep) -> Response:
    values = posted(page, form)
    ref.get_violation_type(page.session, code)  # 404 before anything else

    def change() -> ViolationType:
        body = ref.ViolationTypeUpdate.model_validate(
            {
                "name": values.get("name", ""),
                "name_en": values.get("name_en", ""),
                "pipeline_type": values.get("pipeline_type", ""),
                "category": values.get("category", ""),
                "auto_file_min_confidence": number(values, "auto_file_min_confidence") or 0.9,
                **_flags(values),
            }
        )
        violation = ref.update_violation_type(page.session, code, body)
        _save_deadline(page, code, values)
        return violation

    violation, errors = attempt(page, change)
    if violation is None:
        return _edit(page, code, {**values, **_flags(values), "code": code}, errors)
    audit(page, "violation_type", "updated", code)
    return redirect(f"{BASE}?saved={quote(violation.name)}")
