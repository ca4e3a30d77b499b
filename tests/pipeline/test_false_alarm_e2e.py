"""The false-alarm memory end to end, on real footage through the real daemon and a real case store.

vtest.avi with a real garbage photo composited on its lawn (tests/pipeline/static_scenes.py): static change
reports the pile, an ``unknown_object`` case reaches the store; a shift leader voids it as a false positive
(HTTP API); the suppression reaches the box with its configuration (a camera only the box's YAML has: the
store never registered it). The next run of the same footage reports nothing new (the pile is dropped and
counted), while a second pile elsewhere in the same zone is still reported.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import httpx
import pytest
from sqlalchemy import select

from api.models import Case, Role, Suppression
from datasets.composite import ClipFiles
from tests.api.builders import auth, make_operators
from tests.pipeline.live_store import LiveStore
from tests.pipeline.static_scenes import (
    CAMERA,
    CARDBOARD,
    PLACE,
    ZONE,
    EdgeBox,
    assert_pile_case,
    bags_clip,  # noqa: F401 (a fixture)
    case_boxes,
    composite,
    footage,
    iou,
)

pytestmark = pytest.mark.e2e


def test_a_voided_static_false_alarm_stays_away_and_another_pile_is_still_reported(
    tmp_path: Path,
    store: LiveStore,
    yolov8_int8: Path,
    bags_clip: ClipFiles,  # noqa: F811
) -> None:
    box = EdgeBox(tmp_path / "edge", store, yolov8_int8, register=False)
    tokens = make_operators(store.sessions, [("li", Role.SHIFT_LEADER, None)])

    # 1. The pile becomes a 9901 case waiting for review.
    box.run(bags_clip.video)
    assert store.case_count() == 1
    assert_pile_case(store, 1, bags_clip)

    # 2. An operator says it is not a violation: a false positive (say, the city's own bin).
    voided = httpx.post(
        f"{store.url}/api/v1/cases/1/actions/void",
        json={"reason": "false_positive"},
        headers=auth(tokens["li"]),
        timeout=10,
    )
    assert voided.status_code == 200, voided.text
    with store.sessions() as session:
        (suppression,) = session.scalars(select(Suppression))
        assert (suppression.camera_code, suppression.zone_code, suppression.violation_type) == (
            CAMERA,
            ZONE,
            "unknown_object",
        )

    # 3. The same footage again: nothing new; the pile is dropped as the remembered false alarm.
    again = box.run(bags_clip.video)
    assert again.suppressions.count(CAMERA) == 1, "the suppression reached the box with its zones"
    assert box.suppressed(again) > 0
    assert store.case_count() == 1

    # 4. The same footage with a second pile elsewhere in the zone: that one is reported, the first is not.
    both = composite(bags_clip.video, CARDBOARD, tmp_path / "both")
    third = box.run(both.video)
    assert box.suppressed(third) > 0  # the bags are still dropped
    assert store.case_count() == 2
    assert_pile_case(store, 2, both)  # the new case is the second pile
    with store.sessions() as session:
        assert session.scalar(select(Case.status).where(Case.id == 1)) == "voided"


# --- a model's false alarm: a static object of a class with a rule ------------------------------------

# vtest's service road, top right: a white van and a car stand there for the whole clip (one place).
SERVICE_ROAD: dict[str, Any] = {
    "id": "service-road",
    "place": PLACE,
    "polygon": [[0.82, 0.05], [1.0, 0.05], [1.0, 0.2], [0.82, 0.2]],
    "rules": {"illegal_parking": {"dwell_s": 8}},
}
ROAD_CLIP_S = 20.0  # both are confirmed ~8 s in (they stand from the first frame); 12 s to spare


def test_a_voided_parked_vehicle_is_dropped_and_the_one_beside_it_still_reported(
    tmp_path: Path, store: LiveStore, yolov8_int8: Path, vtest_path: Path
) -> None:
    """The issue's "a sign box read as a truck": a static object the model calls a vehicle. Here, one of the
    two vehicles on the service road (say the city's own van, allowed there) is voided as a false positive:
    the next run drops it (the model's class, not absorbed), and the other vehicle still makes a case."""
    clip = footage(vtest_path, tmp_path / "road", ROAD_CLIP_S)
    box = EdgeBox(tmp_path / "edge", store, yolov8_int8, register=True, zone=SERVICE_ROAD)
    tokens = make_operators(store.sessions, [("li", Role.SHIFT_LEADER, None)])

    box.run(clip.video)
    assert store.case_count() == 1
    reported = case_boxes(store, 1)
    assert len(reported) == 2, reported  # the van and the car, one case for their place
    voided = httpx.post(
        f"{store.url}/api/v1/cases/1/actions/void",
        json={"reason": "false_positive"},
        headers=auth(tokens["li"]),
        timeout=10,
    )
    assert voided.status_code == 200, voided.text
    with store.sessions() as session:
        (suppression,) = session.scalars(select(Suppression))  # the most confident box of the report
        remembered = (suppression.box[0], suppression.box[1], suppression.box[2], suppression.box[3])
    assert max(iou(remembered, b) for _, b in reported) > 0.99

    again = box.run(clip.video)
    assert box.suppressed(again, "illegal_parking") > 0
    assert store.case_count() == 2
    ((_, other),) = case_boxes(store, 2)
    assert iou(other, remembered) < 0.1, "the new case is the other vehicle"
    assert max(iou(other, b) for _, b in reported) >= 0.5
