"""The composite-clip scorer: one unknown_object case per pile that stays past the dwell, none otherwise; and
the static-change daemon config it writes is one the daemon accepts."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import yaml

from datasets.composite_score import daemon_config, load_composite_timeline, score_piles
from datasets.scenes.score import CaseEvent, TimelineError
from pipeline.config import load_config
from tests.conftest import YOLOX_CARD


def write_timeline(tmp_path: Path, piles: list[dict[str, object]], dwell_s: float = 30.0) -> Path:
    path = tmp_path / "timeline.json"
    data = {
        "start_time": "2026-05-04T09:00:00+08:00",
        "duration_s": 79.0,
        "dwell_s": dwell_s,
        "zone": {"id": "street", "polygon": [[0, 0.3], [1, 0.3], [1, 1], [0, 1]]},
        "piles": piles,
    }
    path.write_text(json.dumps(data), encoding="utf-8")
    return path


def case(
    case_id: int, first: float, confirmed: float, kind: str = "unknown_object", zone: str = "street"
) -> CaseEvent:
    return CaseEvent(case_id, kind, zone, first, confirmed)


STAYS = {"id": "pile-1", "on_s": 20.0, "off_s": 79.0, "box": [0.76, 0.47, 0.84, 0.55]}
BRIEF = {"id": "pile-1", "on_s": 20.0, "off_s": 40.0, "box": [0.76, 0.47, 0.84, 0.55]}


@pytest.mark.parametrize(
    ("piles", "cases", "hits", "false", "missed"),
    [
        ([STAYS], [case(1, 22, 52)], 1, 0, 0),
        ([STAYS], [], 0, 0, 1),
        ([STAYS], [case(1, 22, 52), case(2, 60, 75)], 1, 1, 0),  # the same pile twice: one is false
        ([STAYS], [case(1, 5, 35)], 0, 1, 1),  # seen before the pile was there
        ([STAYS], [case(1, 22, 30)], 0, 1, 1),  # confirmed before the dwell could pass
        ([STAYS], [case(1, 22, 52, kind="illegal_parking")], 0, 0, 1),  # not static change's case
        ([STAYS], [case(1, 22, 52, zone="lot")], 0, 0, 1),
        ([BRIEF], [], 0, 0, 0),  # gone before the dwell: nothing expected
        ([BRIEF], [case(1, 22, 52)], 0, 1, 0),
        ([], [case(1, 22, 52)], 0, 1, 0),  # never: any case is false
    ],
)
def test_score_piles(
    tmp_path: Path, piles: list[dict[str, object]], cases: list[CaseEvent], hits: int, false: int, missed: int
) -> None:
    result = score_piles(load_composite_timeline(write_timeline(tmp_path, piles)), cases)
    assert (len(result.matches), len(result.false_cases), len(result.missed)) == (hits, false, missed)


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("[]", "expected a JSON object"),
        ('{"start_time": "2026-05-04T09:00:00+08:00"}', "missing field 'zone'"),
        ("{", "not valid JSON"),
    ],
)
def test_bad_timelines_name_the_file_and_field(tmp_path: Path, text: str, message: str) -> None:
    path = tmp_path / "timeline.json"
    path.write_text(text, encoding="utf-8")
    with pytest.raises(TimelineError, match=message):
        load_composite_timeline(path)


def test_a_pile_that_leaves_before_it_arrives_is_refused(tmp_path: Path) -> None:
    path = write_timeline(tmp_path, [{**STAYS, "on_s": 50.0, "off_s": 40.0}])
    with pytest.raises(TimelineError, match=r"piles\[0\]: off_s 40.0 is before on_s 50.0"):
        load_composite_timeline(path)


def test_the_daemon_accepts_the_static_change_config(tmp_path: Path) -> None:
    timeline = load_composite_timeline(write_timeline(tmp_path, [STAYS]))
    (tmp_path / "device.key").write_text("k" * 40 + "\n", encoding="utf-8")
    config = daemon_config(
        timeline,
        video=tmp_path / "clip.mp4",
        model=YOLOX_CARD,
        camera_id="composite",
        place="310101001001099",
        store_url="http://127.0.0.1:8765",
        device_key_file=tmp_path / "device.key",
        work_dir=tmp_path / "edge",
        dwell_s=45.0,
    )
    path = tmp_path / "daemon.yaml"
    path.write_text(yaml.safe_dump(config, sort_keys=False), encoding="utf-8")
    zone = load_config(path).cameras[0].zones[0]
    assert zone.rules == {}
    assert zone.static_change is not None
    assert (zone.static_change.dwell_s, zone.static_change.report_as) == (45.0, "unknown_object")
