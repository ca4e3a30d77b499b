"""The names people know things by, from the store's tables: one lookup per kind for every page.

Violation types are named by the violation_types table only (机动车乱停放, not a second wording in a
template); cameras by their configured name. Codes are what a page falls back to when no name is set.
"""

from __future__ import annotations

from collections.abc import Iterable

from sqlalchemy import select
from sqlalchemy.orm import Session

from api.console.i18n import Lang
from api.models import Camera, ViolationType


def violation_type_names(session: Session, lang: Lang) -> dict[str, str]:
    """Pipeline type (``illegal_parking``) -> the name of its default active violation type in ``lang``."""
    names: dict[str, str] = {}
    rows = session.execute(
        select(ViolationType.pipeline_type, ViolationType.name, ViolationType.name_en)
        .where(ViolationType.active)
        .order_by(ViolationType.default_for_type.desc(), ViolationType.code)
    )
    for pipeline_type, name, name_en in rows:
        names.setdefault(pipeline_type, (name_en or name) if lang == "en" else name)
    return names


def camera_names(session: Session, codes: Iterable[str]) -> dict[str, str]:
    """Camera code -> its name (the code itself when it has none or is not registered)."""
    wanted = {code for code in codes if code}
    rows = session.execute(select(Camera.code, Camera.name).where(Camera.code.in_(wanted)))
    named: dict[str, str] = {code: name for code, name in rows if name}
    return {code: named.get(code, code) for code in wanted}
