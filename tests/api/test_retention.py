"""Retention: evidence of cases closed or voided longer ago than their period is deleted, once, on both
backends; live cases, recent cases and files shared with them keep their images; pages and statistics
still work afterwards."""

from __future__ import annotations

import datetime as dt
import hashlib
import os
import threading
from pathlib import Path

import pydantic
import pytest
from fastapi.testclient import TestClient
from sqlalchemy import func, select

from api.console.security import LANG_COOKIE
from api.deps import TOKEN_COOKIE
from api.evidence import evidence_path, store_image
from api.jobs import default_jobs
from api.models import AuditEvent, Camera, Case, Evidence, Role
from api.retention import Purged, purge_expired
from api.settings import Settings
from api.storage import blobs_for
from tests.api.builders import World, auth, image_bytes, make_operator, make_world
from tests.api.conftest import Store

pytestmark = pytest.mark.security

NOW = dt.datetime(2026, 6, 1, 12, 0, tzinfo=dt.UTC)
OLD = NOW - dt.timedelta(days=200)  # past the default 180 days
RECENT = NOW - dt.timedelta(days=10)


def _case(
    store: Store, world: World, *, status: str, ended_at: dt.datetime, images: list[bytes], code: str = "0102"
) -> int:
    """A case in ``status`` that ended (closed or voided) at ``ended_at``, with ``images`` as evidence."""
    created = ended_at - dt.timedelta(days=1)
    with store.sessions.begin() as session:
        case = Case(
            status=status,
            violation_code=code,
            place_id=world.place_id,
            unit_id=world.sanitation_id,
            camera_code="cam-1",
            created_at=created,
            updated_at=ended_at,
            filed_at=created,
            dispatched_at=created,
            first_dispatched_at=created,
            closed_at=ended_at if status == "closed" else None,
            voided_at=ended_at if status == "voided" else None,
        )
        session.add(case)
        session.flush()
        for data in images:
            sha256 = hashlib.sha256(data).hexdigest()
            store_image(blobs_for(store.settings, store.engine), sha256, "image/jpeg", data)
            evidence = Evidence(
                case_id=case.id,
                sha256=sha256,
                kind="confirmation",
                content_type="image/jpeg",
                size=len(data),
                width=64,
                height=48,
                uploaded_by="device:box-1",
                created_at=created,
            )
            session.add(evidence)
            session.flush()
            case.best_evidence_id = evidence.id
        return case.id


def _file(store: Store, data: bytes) -> Path:
    return evidence_path(store.settings.evidence_dir, hashlib.sha256(data).hexdigest(), "image/jpeg")


def _evidence_count(store: Store, case_id: int) -> int:
    with store.sessions() as session:
        return session.scalar(select(func.count()).where(Evidence.case_id == case_id)) or 0


def _purge_events(store: Store, case_id: int) -> list[AuditEvent]:
    with store.sessions() as session:
        return list(
            session.scalars(
                select(AuditEvent).where(
                    AuditEvent.case_id == case_id, AuditEvent.action == "evidence_deleted"
                )
            )
        )


def test_the_job_is_registered(store: Store) -> None:
    assert "retention" in [job.name for job in default_jobs(store.settings)]


def test_ended_cases_past_their_period_lose_evidence_and_others_keep_it(store: Store) -> None:
    world = make_world(store.sessions)
    closed_old = [image_bytes(seed=1), image_bytes(seed=2)]
    voided_old, recent, live = [image_bytes(seed=3)], [image_bytes(seed=4)], [image_bytes(seed=5)]
    a = _case(store, world, status="closed", ended_at=OLD, images=closed_old)
    b = _case(store, world, status="voided", ended_at=OLD, images=voided_old)
    c = _case(store, world, status="closed", ended_at=RECENT, images=recent)
    d = _case(store, world, status="in_progress", ended_at=OLD - dt.timedelta(days=400), images=live)

    purged = purge_expired(store.sessions, store.settings, now=NOW)

    assert sorted(purged.cases) == sorted([a, b])
    for case_id, images in ((a, closed_old), (b, voided_old)):
        assert _evidence_count(store, case_id) == 0
        assert not any(_file(store, data).exists() for data in images)
        (event,) = _purge_events(store, case_id)
        shas = sorted(hashlib.sha256(data).hexdigest() for data in images)
        assert event.actor == "system"
        assert event.data == {
            "count": len(images),
            "sha256": shas,
            "retention_days": 180.0,
            # the note as a catalogued message, so the timeline reads it in Chinese too
            "note_message": {"code": "retention.deleted", "params": {"count": len(images), "days": "180"}},
        }
    for case_id, images in ((c, recent), (d, live)):
        assert _evidence_count(store, case_id) == 1
        assert _file(store, images[0]).is_file()
        assert _purge_events(store, case_id) == []
    with store.sessions() as session:
        assert session.get_one(Case, a).best_evidence_id is None
        assert session.get_one(Case, c).best_evidence_id is not None
    # nothing left to do: a second run changes nothing and audits nothing twice
    assert purge_expired(store.sessions, store.settings, now=NOW) == Purged()
    assert len(_purge_events(store, a)) == 1


def test_the_period_is_per_violation_type(store: Store) -> None:
    world = make_world(store.sessions)
    settings = store.settings.model_copy(update={"retention_days_by_violation": {"0505": 30.0}})
    forty_days = NOW - dt.timedelta(days=40)
    parking = _case(
        store, world, status="closed", ended_at=forty_days, images=[image_bytes(seed=1)], code="0505"
    )
    garbage = _case(store, world, status="closed", ended_at=forty_days, images=[image_bytes(seed=2)])
    old_garbage = _case(store, world, status="closed", ended_at=OLD, images=[image_bytes(seed=3)])

    purged = purge_expired(store.sessions, settings, now=NOW)

    assert sorted(purged.cases) == sorted([parking, old_garbage])
    assert _evidence_count(store, garbage) == 1
    assert _purge_events(store, parking)[0].data == {
        "count": 1,
        "sha256": [hashlib.sha256(image_bytes(seed=1)).hexdigest()],
        "retention_days": 30.0,
        "note_message": {"code": "retention.deleted", "params": {"count": 1, "days": "30"}},
    }


def test_a_file_shared_with_a_live_case_stays_until_its_last_reference_goes(
    store: Store, client: TestClient
) -> None:
    world = make_world(store.sessions)
    shared, own = image_bytes(seed=7), image_bytes(seed=8)
    old = _case(store, world, status="closed", ended_at=OLD, images=[shared, own])
    live = _case(store, world, status="dispatched", ended_at=RECENT, images=[shared])

    purged = purge_expired(store.sessions, store.settings, now=NOW)

    assert purged.cases == [old]
    assert purged.files == [hashlib.sha256(own).hexdigest()]
    assert _file(store, shared).is_file() and not _file(store, own).exists()
    admin = make_operator(store.sessions, Role.ADMIN)
    response = client.get(f"/api/v1/evidence/{hashlib.sha256(shared).hexdigest()}", headers=auth(admin))
    assert response.status_code == 200 and response.content == shared

    with store.sessions.begin() as session:  # the live case ends too, long ago: now the file goes
        session.get_one(Case, live).status = "closed"
        session.get_one(Case, live).closed_at = OLD
    assert purge_expired(store.sessions, store.settings, now=NOW).files == [
        hashlib.sha256(shared).hexdigest()
    ]
    assert not _file(store, shared).exists()


def test_two_workers_at_once_delete_each_case_and_file_once(store: Store) -> None:
    world = make_world(store.sessions)
    shared = image_bytes(seed=99)
    cases = {
        _case(store, world, status="closed", ended_at=OLD, images=[shared, image_bytes(seed=i)])
        for i in range(8)
    }
    all_shas = {hashlib.sha256(image_bytes(seed=i)).hexdigest() for i in [99, *range(8)]}
    start = threading.Barrier(2)
    results: list[Purged] = []
    errors: list[BaseException] = []

    def worker() -> None:
        try:
            start.wait()
            results.append(purge_expired(store.sessions, store.settings, now=NOW))
        except BaseException as exc:
            errors.append(exc)

    threads = [threading.Thread(target=worker) for _ in range(2)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(60)

    assert errors == []
    first, second = results
    assert not set(first.cases) & set(second.cases)
    assert set(first.cases) | set(second.cases) == cases
    files = first.files + second.files
    assert sorted(files) == sorted(all_shas)  # each file removed by exactly one worker
    assert not any(store.settings.evidence_dir.rglob("*.jpg"))
    for case_id in cases:
        assert len(_purge_events(store, case_id)) == 1


def test_case_pages_and_statistics_still_work_after_deletion(store: Store, client: TestClient) -> None:
    world = make_world(store.sessions)
    closed = _case(
        store, world, status="closed", ended_at=OLD, images=[image_bytes(seed=1), image_bytes(seed=2)]
    )
    _case(store, world, status="voided", ended_at=OLD, images=[image_bytes(seed=3)])
    admin = make_operator(store.sessions, Role.ADMIN)
    report_query = {"period": "monthly", "date": OLD.date().isoformat()}
    before = client.get("/api/v1/stats/report", params=report_query, headers=auth(admin))
    assert before.status_code == 200, before.text
    assert before.json()["totals"]["created"] == 2 and before.json()["totals"]["closed"] == 1

    purge_expired(store.sessions, store.settings, now=NOW)

    after = client.get("/api/v1/stats/report", params=report_query, headers=auth(admin))
    assert after.json() == before.json()
    detail = client.get(f"/api/v1/cases/{closed}", headers=auth(admin))
    assert detail.status_code == 200
    body = detail.json()
    assert body["evidence"] == [] and body["best_evidence_id"] is None
    (purge,) = [e for e in body["events"] if e["action"] == "evidence_deleted"]
    assert (
        purge["note"].startswith("2 evidence image(s) deleted under retention")
        and purge["reason"] == "retention"
    )

    client.cookies.set(TOKEN_COOKIE, admin)
    for lang, text in (("en", "Evidence deleted under retention at "), ("zh", "按保存期限删除（2 张）")):
        client.cookies.set(LANG_COOKIE, lang)
        page = client.get(f"/console/cases/{closed}")
        assert page.status_code == 200
        assert 'id="evidence-retention"' in page.text and text in page.text


def test_snapshots_of_deleted_cameras_go_after_the_period_and_live_ones_stay(store: Store) -> None:
    folder = store.settings.data_dir / "snapshots"
    folder.mkdir()
    with store.sessions.begin() as session:
        session.add(Camera(code="cam-live", name="live"))
    old_time = (NOW - dt.timedelta(days=200)).timestamp()
    for name, mtime in (
        ("cam-live", old_time),
        ("cam-gone", old_time),
        ("cam-gone-recently", NOW.timestamp()),
    ):
        path = folder / f"{name}.jpg"
        path.write_bytes(image_bytes(seed=1))
        os.utime(path, (mtime, mtime))

    purged = purge_expired(store.sessions, store.settings, now=NOW)

    assert purged.snapshots == ["cam-gone.jpg"]
    assert sorted(p.name for p in folder.iterdir()) == ["cam-gone-recently.jpg", "cam-live.jpg"]


def test_retention_settings_reject_a_period_that_is_not_positive() -> None:
    with pytest.raises(pydantic.ValidationError, match="retention_days_by_violation"):
        Settings(retention_days_by_violation={"0505": 0}, _env_file=None)  # type: ignore[call-arg]
