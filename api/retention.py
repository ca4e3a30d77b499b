"""The retention job: evidence of closed and voided cases is deleted once their retention period is over.

The period is per violation type (``Settings.retention_days_by_violation``, else ``retention_days``),
counted from closing or voiding. The case, its sightings, audit trail and statistics stay; its evidence
rows go, and each image goes from the blob store (:mod:`api.storage`: files or PostgreSQL) with the last
evidence row that references it (images are stored once by sha256 and may be shared between cases).
Each purge is audited as ``evidence_deleted``.

Safe with several workers: a case is claimed with ``SELECT ... FOR UPDATE SKIP LOCKED`` on PostgreSQL
(``BEGIN IMMEDIATE`` serialises writers on SQLite), and every evidence row sharing one of its files is
locked in (sha256, id) order before the references are counted, so two workers purging two cases that
share a file cannot both see the other's row and keep the file. Images are removed after the commit: a
rollback never leaves a row without its image.

Camera snapshots are a live view for the zone editor, replaced at every upload, and never evidence: the
latest frame of an existing camera is kept; the snapshot of a deleted camera is removed once it is
older than ``retention_days``.
"""

from __future__ import annotations

import datetime as dt
import logging
from dataclasses import dataclass, field

from sqlalchemy import ColumnElement, and_, delete, exists, func, or_, select
from sqlalchemy.orm import Session, sessionmaker

from api.actors import SYSTEM
from api.audit import record_event
from api.cameras import snapshot_camera
from api.evidence import evidence_ref
from api.ingest import begin_write
from api.messages import NOTE_KEY, msg
from api.models import Camera, Case, CaseStatus, Evidence, ReviewLabel, utcnow
from api.settings import Settings
from api.storage import BlobRef, BlobStore, blobs_for

log = logging.getLogger(__name__)

BATCH = 200  # cases per run; the next run picks up the rest
ENDED_STATUSES = (CaseStatus.CLOSED.value, CaseStatus.VOIDED.value)
EVENT = "evidence_deleted"


@dataclass
class Purged:
    """What one run removed: cases whose evidence went, image files and orphaned snapshot files."""

    cases: list[int] = field(default_factory=list)
    files: list[str] = field(default_factory=list)  # sha256 of each image file removed
    snapshots: list[str] = field(default_factory=list)  # blob names (<camera code>.jpg)

    @property
    def count(self) -> int:
        return len(self.cases) + len(self.snapshots)


def retention_days(settings: Settings, violation_code: str) -> float:
    return settings.retention_days_by_violation.get(violation_code, settings.retention_days)


def _ended_at() -> ColumnElement[dt.datetime]:
    # closed_at or voided_at; updated_at only for rows that ended before those columns were kept
    return func.coalesce(Case.closed_at, Case.voided_at, Case.updated_at)


def _expired(settings: Settings, now: dt.datetime) -> ColumnElement[bool]:
    ended = _ended_at()
    by_type = settings.retention_days_by_violation
    default = ended < now - dt.timedelta(days=settings.retention_days)
    if by_type:
        default = and_(Case.violation_code.not_in(list(by_type)), default)
    own = [
        and_(Case.violation_code == code, ended < now - dt.timedelta(days=days))
        for code, days in by_type.items()
    ]
    return or_(default, *own)


def _due(settings: Settings, now: dt.datetime) -> list[ColumnElement[bool]]:
    return [
        Case.status.in_(ENDED_STATUSES),
        _expired(settings, now),
        exists().where(Evidence.case_id == Case.id),
    ]


def purge_expired(
    sessions: sessionmaker[Session], settings: Settings, now: dt.datetime | None = None
) -> Purged:
    """Delete the evidence of every case past its retention period (up to BATCH cases) and orphaned
    snapshots; a case another worker is purging or has purged is left to it."""
    now = now or utcnow()
    blobs = blobs_for(settings, sessions)
    with sessions() as session:
        case_ids = session.scalars(
            select(Case.id).where(*_due(settings, now)).order_by(_ended_at(), Case.id).limit(BATCH)
        ).all()
    purged = Purged()
    for case_id in case_ids:
        files = _purge_case(sessions, settings, blobs, case_id, now)
        if files is not None:
            purged.cases.append(case_id)
            purged.files.extend(files)
    with sessions() as session:
        purged.snapshots = purge_orphan_snapshots(session, settings, blobs, now)
    return purged


def run_retention(sessions: sessionmaker[Session], settings: Settings) -> int:
    """The job: cases purged plus snapshot files removed in this run."""
    return purge_expired(sessions, settings).count


def _purge_case(
    sessions: sessionmaker[Session], settings: Settings, blobs: BlobStore, case_id: int, now: dt.datetime
) -> list[str] | None:
    """Delete one case's evidence rows; the sha256s of the files removed, None if the case was not ours."""
    with sessions.begin() as session:
        begin_write(session)
        case = session.scalar(
            select(Case).where(Case.id == case_id, *_due(settings, now)).with_for_update(skip_locked=True)
        )
        if case is None:  # claimed or already purged by another worker
            return None
        rows = session.execute(
            select(Evidence.sha256, Evidence.content_type).where(Evidence.case_id == case_id)
        ).all()
        content_types = {sha256: content_type for sha256, content_type in rows}
        shas = sorted(content_types)
        session.execute(
            select(Evidence.id)
            .where(Evidence.sha256.in_(shas))
            .order_by(Evidence.sha256, Evidence.id)
            .with_for_update()
        ).all()
        # boxes drawn on the purged images go with them (api.review_labels)
        session.execute(
            delete(ReviewLabel)
            .where(ReviewLabel.case_id == case_id)
            .execution_options(synchronize_session=False)
        )
        session.execute(
            delete(Evidence).where(Evidence.case_id == case_id).execution_options(synchronize_session=False)
        )
        still_used = set(session.scalars(select(Evidence.sha256).where(Evidence.sha256.in_(shas))))
        case.best_evidence_id = None
        days = retention_days(settings, case.violation_code)
        record_event(
            session,
            case,
            SYSTEM,
            EVENT,
            from_status=case.status,
            to_status=case.status,
            reason="retention",
            note=f"{len(shas)} evidence image(s) deleted under retention, {days:g} days after the case ended",
            data={
                "count": len(shas),
                "sha256": shas,
                "retention_days": days,
                NOTE_KEY: msg("retention.deleted", count=len(shas), days=f"{days:g}").as_data(),
            },
            at=now,
        )
    removed = [sha for sha in shas if sha not in still_used]
    for sha in removed:
        _remove(blobs, evidence_ref(sha, content_types[sha]))
    return removed


def _remove(blobs: BlobStore, ref: BlobRef) -> None:
    try:
        blobs.delete(ref)
    except Exception:  # the row is gone either way; the next operator sees nothing, the log says why
        log.exception("retention: could not remove %s", ref.key)


def purge_orphan_snapshots(
    session: Session, settings: Settings, blobs: BlobStore, now: dt.datetime
) -> list[str]:
    """Remove snapshots of cameras that no longer exist, once older than ``retention_days``."""
    cameras = set(session.scalars(select(Camera.code)))
    cutoff = now - dt.timedelta(days=settings.retention_days)
    removed = []
    for blob in blobs.list("snapshot"):
        if snapshot_camera(blob.ref) in cameras or blob.modified_at >= cutoff:
            continue
        _remove(blobs, blob.ref)
        removed.append(blob.ref.name)
    return removed
