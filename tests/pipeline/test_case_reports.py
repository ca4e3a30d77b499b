"""What the daemon tells the store about an incident: the report with the event code of the object's class,
later sightings at a bounded rate, the end of a reported incident only, and event codes checked against
the store's violation types."""

from __future__ import annotations

import datetime as dt
import sqlite3
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from contract.device_config import DeviceViolationType
from detector.detections import Detections
from pipeline.case_reports import CaseReporter
from pipeline.config import ConfigError, DaemonConfig, load_config
from pipeline.incidents import IncidentEvent
from pipeline.outbox import Outbox
from tests.pipeline.rule_builders import camera
from tests.pipeline.test_outbox import make_jpeg, make_report

T0 = dt.datetime(2026, 5, 11, 1, 0, tzinfo=dt.UTC)
NAMES = ["person", "bicycle", "car", "truck"]
BICYCLE, CAR = 1, 2


def config(classes: dict[str, Any], **incidents: Any) -> DaemonConfig:
    return DaemonConfig.model_validate(
        {
            "detector": {"model": "models/yolox-nano-coco.yaml", "classes": classes},
            "store": {"url": "http://127.0.0.1:8000", "device_key_file": "secrets/device.key"},
            "cameras": [camera()],
            "incidents": incidents,
        }
    )


def event(
    kind: str, seconds: float, *, class_id: int = CAR, count: int = 10, confirmed: bool = True
) -> IncidentEvent:
    boxes = Detections(
        np.array([[10, 20, 110, 220]], np.float32),
        np.array([0.8], np.float32),
        np.array([class_id], np.int64),
        np.array([7], np.int64),
    )
    return IncidentEvent(
        kind=kind,  # type: ignore[arg-type]
        incident_id="a" * 32,
        camera_id="cam-1",
        zone_id="z",
        place="p-1",
        violation_type="illegal_parking",
        first_seen_at=T0,
        at=T0 + dt.timedelta(seconds=seconds),
        confidence=0.8,
        boxes=boxes if kind != "ended" else Detections.empty(),
        polygon_px=np.zeros((0, 2), np.int32),
        sighting_count=count,
        confirmed_at=T0 + dt.timedelta(seconds=30) if confirmed else None,
        last_seen_at=T0 + dt.timedelta(seconds=seconds - 5),
    )


PARKING = {"car": "illegal_parking", "bicycle": "illegal_parking"}


@pytest.mark.parametrize(
    ("classes", "class_id", "code"),
    [
        (PARKING, CAR, None),  # a motor vehicle: the store's default code of the type (0505)
        (PARKING, BICYCLE, "0506"),  # a bicycle on the pavement: non-motor vehicle, built in
        ({"car": {"violation": "illegal_parking", "event_code": "0599"}}, CAR, "0599"),  # configured
        ({"bicycle": {"violation": "illegal_parking", "event_code": "0505"}}, BICYCLE, "0505"),  # overridden
    ],
)
def test_the_report_carries_the_event_code_of_the_objects_class(
    classes: dict[str, Any], class_id: int, code: str | None
) -> None:
    reporter = CaseReporter(config(classes), NAMES, model_name="m", model_version="1")

    report = reporter.report(event("confirmed", 30, class_id=class_id), score=0.5)

    assert report.event_code == code
    assert report.boxes[0].class_name == NAMES[class_id] and report.sighting_count == 10


def test_the_report_carries_the_frame_size_its_boxes_are_in() -> None:
    reporter = CaseReporter(config({"car": "illegal_parking"}), NAMES, model_name="m", model_version="1")
    assert reporter.report(event("confirmed", 30), 0.5, (1080, 1920)).frame_wh == (1920, 1080)
    assert reporter.report(event("confirmed", 31), 0.5).frame_wh is None  # the store falls back to evidence


def test_a_class_mapping_with_a_bad_event_code_is_refused_with_its_line(tmp_path: Path) -> None:
    path = tmp_path / "daemon.yaml"
    path.write_text(
        "detector:\n"
        "  model: models/yolox-nano-coco.yaml\n"
        "  classes:\n"
        "    bicycle: {violation: illegal_parking, event_code: '05 06'}\n"
        "store: {url: 'http://127.0.0.1:8000', device_key_file: secrets/device.key}\n"
        "cameras:\n"
        "  - {id: cam-1, url: a.mp4, zones: [{id: z, place: p, polygon: [[0, 0], [1, 0], [1, 1]], "
        "rules: {illegal_parking: {dwell_s: 30}}}]}\n"
    )
    with pytest.raises(ConfigError, match=r"daemon\.yaml:4: detector\.classes\.bicycle.*event_code"):
        load_config(path)


def test_event_codes_the_store_does_not_have_are_not_sent() -> None:
    classes = {"bicycle": "illegal_parking", "car": {"violation": "illegal_parking", "event_code": "0102"}}
    reporter = CaseReporter(config(classes), NAMES, model_name="m", model_version="1")
    store_types = [
        DeviceViolationType(
            code="0505", pipeline_type="illegal_parking", default_for_type=True, name="机动车"
        ),
        DeviceViolationType(code="0102", pipeline_type="exposed_garbage", default_for_type=True, name="垃圾"),
    ]

    problems = reporter.event_codes.check(store_types)

    assert len(problems) == 2
    assert "'0506' is not an active violation type" in problems[0]
    assert "'0102' is a exposed_garbage code in the case store, not illegal_parking" in problems[1]
    assert reporter.report(event("confirmed", 30, class_id=BICYCLE), 0.5).event_code is None
    assert reporter.report(event("confirmed", 30, class_id=CAR), 0.5).event_code is None
    store_types.append(
        DeviceViolationType(
            code="0506", pipeline_type="illegal_parking", default_for_type=False, name="非机动车"
        )
    )
    assert reporter.event_codes.check(store_types) == [problems[1]]  # the store gained 0506
    assert reporter.report(event("confirmed", 30, class_id=BICYCLE), 0.5).event_code == "0506"


def test_sightings_go_at_a_bounded_rate_and_the_end_always() -> None:
    reporter = CaseReporter(config(PARKING, sighting_report_s=300), NAMES, model_name="m", model_version="1")
    reporter.report(event("confirmed", 30), score=0.5)

    due = [
        s
        for s in range(90, 1300, 60)
        if reporter.sighting_due(event("sighting", s))
        and reporter.sighting(event("sighting", s, count=s), None)
    ]
    ended = reporter.ended(event("ended", 1400, count=1300))

    assert due == [330, 630, 930, 1230]  # one per 300 s of stream time after the report
    assert ended is not None and ended.kind == "ended" and ended.idempotency_key == "a" * 32 + ":end"
    assert ended.at == T0 + dt.timedelta(seconds=1395)  # when last seen, not when the quiet period ran out
    assert reporter.ended(event("ended", 1400, confirmed=False)) is None  # nothing reported: nothing to end


def test_a_picture_goes_with_a_sighting_only_when_it_is_a_better_view() -> None:
    reporter = CaseReporter(config(PARKING), NAMES, model_name="m", model_version="1")
    reporter.report(event("confirmed", 30), score=0.50)

    assert not reporter.better_picture(event("sighting", 400), 0.53)  # within the margin
    assert reporter.better_picture(event("sighting", 400), 0.70)
    reporter.sighting(event("sighting", 400), 0.70)
    assert not reporter.better_picture(event("sighting", 800), 0.70)  # the best sent is now 0.70


def test_an_outbox_of_the_previous_version_is_upgraded_with_its_items(tmp_path: Path) -> None:
    """A box updated while reports wait: the version 1 outbox keeps them, and takes updates after."""
    path = tmp_path / "outbox.sqlite"
    old = Outbox(path)
    old.put(make_report("incident-0001"), [("confirmation", make_jpeg(tmp_path, 1))])
    old.close()
    db = sqlite3.connect(path)  # back to version 1: the old CHECK constraint, no score or boxes column
    db.executescript(
        "PRAGMA foreign_keys=OFF; BEGIN;"
        "CREATE TABLE items_v1 AS SELECT * FROM items; DROP TABLE items;"
        "CREATE TABLE items (id INTEGER PRIMARY KEY AUTOINCREMENT, key TEXT NOT NULL UNIQUE, "
        "kind TEXT NOT NULL CHECK (kind IN ('report', 'action')), body TEXT NOT NULL, case_id INTEGER, "
        "posted INTEGER NOT NULL DEFAULT 0, state TEXT NOT NULL DEFAULT 'pending', "
        "attempts INTEGER NOT NULL DEFAULT 0, next_attempt_at REAL NOT NULL, created_at REAL NOT NULL, "
        "updated_at REAL NOT NULL, last_error TEXT);"
        "INSERT INTO items SELECT * FROM items_v1; DROP TABLE items_v1;"
        "ALTER TABLE images DROP COLUMN score; ALTER TABLE images DROP COLUMN boxes; "
        "PRAGMA user_version=1; COMMIT;"
    )
    db.close()

    upgraded = Outbox(path)
    reporter = CaseReporter(config(PARKING), NAMES, model_name="m", model_version="1")
    reporter.report(event("confirmed", 30), 0.5)
    assert upgraded.put_update(
        reporter.sighting(event("sighting", 400), 0.9), [("sighting", make_jpeg(tmp_path, 2), 0.9)]
    )

    report = upgraded.get("incident-0001")
    assert report is not None and [image.kind for image in report.images] == ["confirmation"]
    update = upgraded.get("a" * 32 + ":s10")
    assert update is not None and update.kind == "update" and update.images[0].score == 0.9
    assert upgraded.counts()["pending"] == 2
