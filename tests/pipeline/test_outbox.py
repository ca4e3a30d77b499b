"""The durable outbox on its own: what is put survives closing, crashing and reopening; keys are idempotent;
states move as the pusher reports; finished rows and their files are pruned; bad files are clear errors."""

from __future__ import annotations

import datetime as dt
import sqlite3
import subprocess
import sys
import threading
import uuid
from pathlib import Path
from typing import Any

import cv2
import numpy as np
import pytest

from contract.reports import CaseReport
from pipeline import outbox as outbox_module
from pipeline.errors import OutboxError
from pipeline.outbox import Outbox, file_sha256

REPO = Path(__file__).resolve().parents[2]
T0 = dt.datetime(2026, 5, 11, 1, 0, tzinfo=dt.UTC)


def make_report(key: str | None = None, **overrides: Any) -> CaseReport:
    body: dict[str, Any] = {
        "idempotency_key": key or uuid.uuid4().hex,
        "camera": "cam-1",
        "zone": "z-gate",
        "place": "110101001001001",
        "violation_type": "illegal_parking",
        "first_seen_at": T0,
        "confirmed_at": T0 + dt.timedelta(seconds=30),
        "confidence": 0.8,
        "boxes": [{"xyxy": (10, 20, 110, 220), "confidence": 0.8, "class_name": "car", "track_id": 7}],
        "model_name": "yolox-nano-coco",
        "model_version": "1",
    }
    body.update(overrides)
    return CaseReport.model_validate(body)


def make_jpeg(folder: Path, seed: int = 0) -> Path:
    pixels = np.random.default_rng(seed).integers(0, 256, size=(48, 64, 3), dtype=np.uint8)
    ok, data = cv2.imencode(".jpg", pixels)
    assert ok
    path = folder / f"image-{seed}.jpg"
    path.write_bytes(data.tobytes())
    return path


class Clock:
    def __init__(self, now: float = 1_000_000.0) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now


def test_a_report_put_survives_closing_and_reopening(tmp_path: Path) -> None:
    path = tmp_path / "data" / "outbox.sqlite"  # the folder is created
    report = make_report()
    image = make_jpeg(tmp_path)
    outbox = Outbox(path)

    assert outbox.put(report, [("first_seen", image), ("confirmation", image)]) is True
    outbox.close()
    reopened = Outbox(path)
    item = reopened.due()

    assert item is not None and item.key == report.idempotency_key and item.kind == "report"
    assert CaseReport.model_validate(item.body) == report
    assert [(i.kind, i.path, i.sha256, i.state) for i in item.images] == [
        ("first_seen", image.resolve(), file_sha256(image), "pending"),
        ("confirmation", image.resolve(), file_sha256(image), "pending"),
    ]
    assert (item.state, item.attempts, item.posted, item.case_id) == ("pending", 0, False, None)
    assert reopened.pending_count() == 1
    with sqlite3.connect(path) as db:
        assert db.execute("PRAGMA journal_mode").fetchone()[0] == "wal"


def test_a_put_that_returned_survives_a_killed_process(tmp_path: Path) -> None:
    """The daemon dies right after put() (no close, no atexit): the report is on disk."""
    path = tmp_path / "outbox.sqlite"
    script = (
        "import os, sys\n"
        "from pipeline.outbox import Outbox\n"
        "from tests.pipeline.test_outbox import make_report\n"
        f"Outbox(__import__('pathlib').Path({str(path)!r})).put(make_report('killed-daemon-0001'))\n"
        "os._exit(9)\n"
    )
    result = subprocess.run(
        [sys.executable, "-c", script], cwd=REPO, capture_output=True, text=True, timeout=60
    )

    assert result.returncode == 9, result.stderr
    item = Outbox(path).get("killed-daemon-0001")
    assert item is not None and item.state == "pending"


def test_put_is_idempotent_by_key(tmp_path: Path) -> None:
    outbox = Outbox(tmp_path / "outbox.sqlite")
    report = make_report("incident-0001")
    image = make_jpeg(tmp_path)

    first = outbox.put(report, [("confirmation", image)])
    again = outbox.put(report.model_copy(update={"confidence": 0.9}), [("crop", image)])

    assert (first, again) == (True, False)
    item = outbox.get("incident-0001")
    assert (
        item is not None
        and item.body["confidence"] == 0.8
        and [i.kind for i in item.images] == ["confirmation"]
    )
    assert outbox.counts() == {"pending": 1, "delivered": 0, "failed": 0}


def test_concurrent_puts_from_many_threads_keep_every_report_once(tmp_path: Path) -> None:
    outbox = Outbox(tmp_path / "outbox.sqlite")
    keys = [f"incident-{i:04d}" for i in range(200)]

    def put(chunk: list[str]) -> None:
        for key in chunk:
            outbox.put(make_report(key))
            outbox.put(make_report(key))  # every key twice, from the same thread

    threads = [threading.Thread(target=put, args=(keys[i::4],)) for i in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()

    assert outbox.pending_count() == 200
    with sqlite3.connect(tmp_path / "outbox.sqlite") as db:
        assert sorted(k for (k,) in db.execute("SELECT key FROM items")) == keys


def test_due_order_backoff_and_retry_now(tmp_path: Path) -> None:
    clock = Clock()
    outbox = Outbox(tmp_path / "outbox.sqlite", clock=clock)
    for key in ("incident-a001", "incident-b002"):
        outbox.put(make_report(key))
    first = outbox.due()
    assert first is not None and first.key == "incident-a001"

    outbox.retry_later(first.id, 30.0, "ConnectError: connection refused")

    second = outbox.due()
    assert second is not None and second.key == "incident-b002"  # the failed one waits its turn
    outbox.retry_later(second.id, 60.0, "ConnectError: connection refused")
    assert outbox.due() is None
    assert outbox.next_attempt_at() == clock.now + 30.0
    clock.now += 30.0
    retried = outbox.due()
    assert retried is not None and retried.key == "incident-a001"
    assert (retried.attempts, retried.last_error) == (1, "ConnectError: connection refused")

    assert outbox.retry_now() == 1  # b002 was not due yet
    assert outbox.due(clock.now) is not None and outbox.pending_count() == 2


def test_delivery_states(tmp_path: Path) -> None:
    outbox = Outbox(tmp_path / "outbox.sqlite")
    image = make_jpeg(tmp_path)
    outbox.put(make_report("incident-0001"), [("confirmation", image), ("crop", make_jpeg(tmp_path, 1))])
    outbox.put(make_report("incident-0002"))
    item = outbox.get("incident-0001")
    assert item is not None

    outbox.mark_posted(item.id, case_id=42)
    outbox.mark_image(item.id, 0, "uploaded")
    outbox.mark_image(item.id, 1, "failed", "HTTP 422 invalid_input: not a JPEG")
    outbox.mark_delivered(item.id)
    refused = outbox.get("incident-0002")
    assert refused is not None
    outbox.mark_failed(refused.id, "HTTP 403 forbidden: camera 'cam-1' is registered to another device")

    done = outbox.get("incident-0001")
    assert done is not None and (done.state, done.case_id, done.posted) == ("delivered", 42, True)
    assert [(i.state, i.last_error) for i in done.images] == [
        ("uploaded", None),
        ("failed", "HTTP 422 invalid_input: not a JPEG"),
    ]
    assert done.pending_images == ()
    assert [i.key for i in outbox.items()] == ["incident-0001", "incident-0002"]
    assert [i.key for i in outbox.items("failed")] == ["incident-0002"]
    assert outbox.counts() == {"pending": 0, "delivered": 1, "failed": 1}
    assert [i.last_error for i in outbox.failed()] == [
        "HTTP 403 forbidden: camera 'cam-1' is registered to another device"
    ]
    assert outbox.due() is None  # neither is delivered again


def test_actions_carry_their_case_and_body(tmp_path: Path) -> None:
    outbox = Outbox(tmp_path / "outbox.sqlite")
    image = make_jpeg(tmp_path)

    queued = outbox.put_action(
        key="verification:case-7:resolved-x",
        case_id=7,
        action="verify",
        images=[("after", image)],
        note="clear",
    )
    again = outbox.put_action(key="verification:case-7:resolved-x", case_id=7, action="rework")

    assert (queued, again) == (True, False)
    item = outbox.due()
    assert item is not None and (item.kind, item.case_id) == ("action", 7)
    assert item.body == {"action": "verify", "reason": None, "note": "clear"}
    assert outbox.contains("verification:case-7:resolved-x")


def test_a_missing_image_does_not_lose_the_report(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    outbox = Outbox(tmp_path / "outbox.sqlite")

    outbox.put(make_report("incident-0001"), [("confirmation", tmp_path / "gone.jpg")])

    item = outbox.get("incident-0001")
    assert item is not None and item.state == "pending"
    assert item.images[0].state == "failed" and "unreadable when queued" in (item.images[0].last_error or "")
    assert "gone.jpg" in caplog.text


def test_an_unknown_image_kind_is_refused(tmp_path: Path) -> None:
    outbox = Outbox(tmp_path / "outbox.sqlite")

    with pytest.raises(OutboxError, match="unknown evidence kind 'thumbnail'"):
        outbox.put(make_report(), [("thumbnail", make_jpeg(tmp_path))])
    assert outbox.pending_count() == 0


def test_prune_forgets_finished_items_and_their_files(tmp_path: Path) -> None:
    clock = Clock()
    outbox = Outbox(tmp_path / "outbox.sqlite", clock=clock)
    delivered_image, pending_image = make_jpeg(tmp_path, 1), make_jpeg(tmp_path, 2)
    outbox.put(make_report("incident-0001"), [("confirmation", delivered_image)])
    outbox.put(make_report("incident-0002"), [("confirmation", pending_image)])
    done = outbox.get("incident-0001")
    assert done is not None
    outbox.mark_delivered(done.id)

    assert outbox.prune(3600) == 0  # too recent
    clock.now += 7200
    assert outbox.prune(3600) == 1

    assert outbox.get("incident-0001") is None and not delivered_image.exists()
    assert outbox.get("incident-0002") is not None and pending_image.exists()
    assert outbox.referenced_paths() == {pending_image.resolve()}


def test_a_file_that_is_not_an_outbox_is_a_clear_error(tmp_path: Path) -> None:
    path = tmp_path / "outbox.sqlite"
    path.write_bytes(b"this is not a database" * 100)

    with pytest.raises(
        OutboxError, match=r"outbox\.sqlite \(store\.outbox\) is not a usable SQLite database"
    ):
        Outbox(path)


def test_an_outbox_from_a_newer_version_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "outbox.sqlite"
    with sqlite3.connect(path) as db:
        db.execute("PRAGMA user_version=99")

    with pytest.raises(OutboxError, match="schema version 99, newer than"):
        Outbox(path)


def test_an_outbox_in_an_unwritable_place_is_a_clear_error(tmp_path: Path) -> None:
    blocker = tmp_path / "not-a-folder"
    blocker.write_text("x")

    with pytest.raises(OutboxError, match="cannot open the outbox"):
        Outbox(blocker / "outbox.sqlite")


def test_a_version_2_outbox_is_upgraded_keeping_its_items(tmp_path: Path) -> None:
    """Version 3 lets an item be 'evidence' (a clip after its report): a version 2 file keeps its items."""
    path = tmp_path / "outbox.sqlite"
    outbox = Outbox(path)
    outbox.put(make_report("incident-0001"), [("confirmation", make_jpeg(tmp_path, 1), 0.5)])
    outbox.close()
    with sqlite3.connect(path) as db:  # back to version 2: 'evidence' not allowed
        db.executescript(
            "PRAGMA foreign_keys=OFF; BEGIN;"
            + outbox_module._ITEMS.format(name="items_v2").replace(", 'evidence'", "")
            + "INSERT INTO items_v2 SELECT * FROM items; DROP TABLE items; "
            "ALTER TABLE items_v2 RENAME TO items; ALTER TABLE images DROP COLUMN boxes; "
            "PRAGMA user_version=2; COMMIT;"
        )
    upgraded = Outbox(path)
    item = upgraded.get("incident-0001")
    assert item is not None and [image.score for image in item.images] == [0.5]
    assert upgraded.put_evidence(incident_key="incident-0001", images=[("clip", make_jpeg(tmp_path, 2))])
    with sqlite3.connect(path) as db:
        assert db.execute("PRAGMA user_version").fetchone()[0] == outbox_module.SCHEMA_VERSION == 4


def test_a_version_3_outbox_is_upgraded_and_images_carry_their_boxes(tmp_path: Path) -> None:
    """Version 4 keeps with an image the boxes detected in it (a training frame's): a version 3 file keeps
    its images, and a frame queued after the upgrade carries its boxes to the pusher."""
    path = tmp_path / "outbox.sqlite"
    outbox = Outbox(path)
    outbox.put(make_report("incident-0001"), [("confirmation", make_jpeg(tmp_path, 1), 0.5)])
    outbox.close()
    with sqlite3.connect(path) as db:
        db.executescript("ALTER TABLE images DROP COLUMN boxes; PRAGMA user_version=3;")
    upgraded = Outbox(path)
    old = upgraded.get("incident-0001")
    assert old is not None and [(i.kind, i.score, i.boxes) for i in old.images] == [
        ("confirmation", 0.5, None)
    ]
    boxes = '[{"xyxy":[1.0,2.0,30.0,40.0],"confidence":0.9,"class_name":"car"}]'
    upgraded.put(make_report("incident-0002"), [("frame", make_jpeg(tmp_path, 2), None, boxes)])
    item = upgraded.get("incident-0002")
    assert item is not None and [(i.kind, i.boxes) for i in item.pending_images] == [("frame", boxes)]
