"""The demo scorer: which cases match which incidents, and the event-level precision and recall."""

from __future__ import annotations

import datetime as dt
import json
import re
from pathlib import Path

import pytest

from datasets.scenes.score import (
    CaseEvent,
    Incident,
    TimelineError,
    case_events,
    load_timeline,
    score,
)

PARKING_A = Incident("illegal_parking", "zone-a", 20.0, 150.0)
PARKING_A_LATER = Incident("illegal_parking", "zone-a", 200.0, 260.0)
STALL = Incident("street_stall", "pavement", 40.0, 160.0)


def case(case_id: int, violation: str, zone: str, seen: float, confirmed: float | None = None) -> CaseEvent:
    return CaseEvent(case_id, violation, zone, seen, seen + 30 if confirmed is None else confirmed)


@pytest.mark.parametrize(
    ("cases", "matched_ids", "precision", "recall"),
    [
        (
            [case(1, "illegal_parking", "zone-a", 25), case(2, "street_stall", "pavement", 45)],
            [1, 2],
            1.0,
            2 / 3,
        ),
        ([case(1, "illegal_parking", "zone-b", 25)], [], 0.0, 0.0),  # wrong zone
        ([case(1, "street_stall", "zone-a", 25)], [], 0.0, 0.0),  # wrong violation
        ([case(1, "illegal_parking", "zone-a", 5)], [], 0.0, 0.0),  # seen before the car came (tolerance 10)
        ([case(1, "illegal_parking", "zone-a", 12)], [1], 1.0, 1 / 3),  # within the tolerance before it
        ([case(1, "illegal_parking", "zone-a", 140, 175)], [], 0.0, 0.0),  # confirmed after it left
        # The same incident twice: the second case is a false alarm (one case per incident).
        (
            [case(1, "illegal_parking", "zone-a", 25), case(2, "illegal_parking", "zone-a", 90)],
            [1],
            0.5,
            1 / 3,
        ),
        # Two incidents in the same zone, one case each.
        (
            [case(1, "illegal_parking", "zone-a", 25), case(2, "illegal_parking", "zone-a", 205)],
            [1, 2],
            1.0,
            2 / 3,
        ),
        ([], [], 1.0, 0.0),
    ],
)
def test_cases_match_incidents_of_the_same_type_zone_and_time(
    cases: list[CaseEvent], matched_ids: list[int], precision: float, recall: float
) -> None:
    result = score([PARKING_A, STALL, PARKING_A_LATER], cases)
    assert sorted(c.case_id for _, c in result.matches) == matched_ids
    assert result.precision == pytest.approx(precision)
    assert result.recall == pytest.approx(recall)
    assert len(result.matches) + len(result.missed) == 3
    assert len(result.matches) + len(result.false_cases) == len(cases)


def test_a_case_goes_to_the_incident_that_started_nearest() -> None:
    early = Incident("exposed_garbage", "pavement", 0.0, 300.0)
    late = Incident("exposed_garbage", "pavement", 100.0, 300.0)
    result = score([early, late], [case(7, "exposed_garbage", "pavement", 105)])
    assert [incident for incident, _ in result.matches] == [late]


def test_case_events_map_event_codes_and_measure_from_the_clip_start() -> None:
    start = dt.datetime(2026, 5, 4, 9, 0, tzinfo=dt.timezone(dt.timedelta(hours=8)))
    rows = [
        {
            "id": 3,
            "violation_code": "0505",
            "zone_code": "zone-a",
            "first_seen_at": "2026-05-04T01:00:26",  # SQLite gives UTC without an offset
            "confirmed_at": "2026-05-04T01:00:51+00:00",
        },
        {"id": 4, "violation_code": "0102", "zone_code": None, "first_seen_at": None, "confirmed_at": None},
    ]
    events = case_events(rows, {"0505": "illegal_parking"}, start)
    assert events == [CaseEvent(3, "illegal_parking", "zone-a", 26.0, 51.0)]


def test_a_timeline_reads_back_and_bad_ones_name_the_field(tmp_path: Path) -> None:
    path = tmp_path / "timeline.json"
    good = {
        "start_time": "2026-05-04T09:00:00+08:00",
        "incidents": [{"violation_type": "street_stall", "zone": "pavement", "start_s": 40, "end_s": 165.5}],
    }
    path.write_text(json.dumps(good), encoding="utf-8")
    timeline = load_timeline(path)
    assert timeline.incidents == (Incident("street_stall", "pavement", 40.0, 165.5),)
    assert timeline.start_time.utcoffset() == dt.timedelta(hours=8)
    for broken, message in [
        ({**good, "start_time": "2026-05-04T09:00:00"}, "UTC offset"),
        ({"start_time": good["start_time"]}, "missing field 'incidents'"),
        (
            {**good, "incidents": [{"zone": "pavement", "start_s": 1, "end_s": 2}]},
            "incidents[0]: missing field",
        ),
        ({**good, "incidents": [{**good["incidents"][0], "end_s": 10}]}, "before start_s"),
        ({**good, "incidents": [{**good["incidents"][0], "start_s": "soon"}]}, "must be float"),
    ]:
        path.write_text(json.dumps(broken), encoding="utf-8")
        with pytest.raises(TimelineError, match=re.escape(message)) as error:
            load_timeline(path)
        assert str(path) in str(error.value)
    path.write_text("{not json", encoding="utf-8")
    with pytest.raises(TimelineError, match=r"timeline.json:1: not valid JSON"):
        load_timeline(path)
