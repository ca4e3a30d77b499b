"""Static change in the zone rules: unknown_object detections become incidents of the zone's report_as,
through the same tracker and dwell as the model's, and a change the model explains stays the model's case."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from typer.testing import CliRunner

from pipeline.config import RuleConfig, ZoneConfig
from pipeline.incidents import RuleEngine
from streetwatch.cli import app
from tests.pipeline.rule_builders import (
    CAR,
    CLASS_NAMES,
    PARKED,
    camera,
    feed,
    kinds,
    make_config,
    make_detections,
    zone,
)

UNKNOWN = len(CLASS_NAMES)  # the static-change class comes after the model's
PILE = (300.0, 800.0, 420.0, 900.0)


def static_engine(static: dict[str, Any], rules: dict[str, Any] | None = None) -> RuleEngine:
    config = make_config(cameras=[camera(zones=[zone(rules=rules or {}, static_change=static)])])
    return RuleEngine(config, [*CLASS_NAMES, "unknown_object"])


def test_a_zone_needs_rules_or_static_change() -> None:
    with pytest.raises(ValueError, match="needs rules, static_change or both"):
        ZoneConfig.model_validate({"id": "z", "place": "p", "polygon": [[0, 0], [1, 0], [1, 1]]})
    alone = ZoneConfig.model_validate(
        {"id": "z", "place": "p", "polygon": [[0, 0], [1, 0], [1, 1]], "static_change": {"dwell_s": 60}}
    )
    assert alone.static_change is not None
    assert alone.static_change.report_as == "unknown_object"
    assert alone.effective_rules["unknown_object"].dwell_s == 60


def test_an_explicit_rule_for_report_as_keeps_its_settings() -> None:
    explicit = ZoneConfig.model_validate(
        {
            "id": "z",
            "place": "p",
            "polygon": [[0, 0], [1, 0], [1, 1]],
            "rules": {"exposed_garbage": {"dwell_s": 30, "min_confidence": 0.5}},
            "static_change": {"dwell_s": 600, "report_as": "exposed_garbage"},
        }
    )
    assert explicit.effective_rules["exposed_garbage"].dwell_s == 30


def test_a_static_object_becomes_a_confirmed_incident_of_report_as() -> None:
    engine = static_engine({"dwell_s": 60, "report_as": "exposed_garbage"})
    events = feed(engine, [(s, make_detections([PILE], UNKNOWN, 0.2)) for s in range(0, 90, 5)])
    (confirmed,) = kinds(events, "confirmed")
    assert confirmed.violation_type == "exposed_garbage"
    assert 60 <= (confirmed.at - confirmed.first_seen_at).total_seconds() < 65
    assert confirmed.boxes.class_id.tolist() == [UNKNOWN]


def test_a_brief_stop_shorter_than_the_dwell_is_no_case() -> None:
    engine = static_engine({"dwell_s": 120})
    events = feed(engine, [(s, make_detections([PILE], UNKNOWN)) for s in range(0, 100, 5)])
    assert not kinds(events, "confirmed")


def test_without_static_change_unknown_objects_are_ignored() -> None:
    engine = RuleEngine(make_config(), [*CLASS_NAMES, "unknown_object"])
    events = feed(engine, [(s, make_detections([PILE], UNKNOWN)) for s in range(0, 200, 5)])
    assert not events


def test_a_parked_car_stays_a_parking_case_not_an_unknown_object() -> None:
    engine = static_engine({"dwell_s": 30}, rules={"illegal_parking": {"dwell_s": 30}})
    # The car's change region is its box less a margin: mostly inside the car's detection.
    car_change = (810.0, 510.0, 990.0, 630.0)
    frames = [
        (s, make_detections([PARKED, car_change, PILE], [CAR, UNKNOWN, UNKNOWN])) for s in range(0, 60, 5)
    ]
    confirmed = kinds(feed(engine, frames), "confirmed")
    assert sorted(e.violation_type for e in confirmed) == ["illegal_parking", "unknown_object"]
    (unknown,) = [e for e in confirmed if e.violation_type == "unknown_object"]
    assert unknown.boxes.xyxy.tolist() == [list(PILE)]  # the pile, not the car's change region


def test_a_change_under_a_class_the_zone_has_no_rule_for_is_kept() -> None:
    engine = static_engine({"dwell_s": 30})  # no parking rule: a car standing there is a new object
    car_change = (810.0, 510.0, 990.0, 630.0)
    frames = [(s, make_detections([PARKED, car_change], [CAR, UNKNOWN])) for s in range(0, 60, 5)]
    (confirmed,) = kinds(feed(engine, frames), "confirmed")
    assert confirmed.violation_type == "unknown_object"


def test_replacing_zones_keeps_static_incidents_while_static_change_stays() -> None:
    engine = static_engine({"dwell_s": 30})
    events = feed(engine, [(s, make_detections([PILE], UNKNOWN)) for s in range(0, 40, 5)])
    assert kinds(events, "confirmed")
    (same,) = engine.zones_of("cam")
    assert not engine.replace_zones("cam", [same])
    parking_only = same.model_copy(
        update={"static_change": None, "rules": {"illegal_parking": RuleConfig(dwell_s=30)}}
    )
    ended = engine.replace_zones("cam", [parking_only])
    assert [e.kind for e in ended] == ["ended"]


# ---- daemon YAML ---------------------------------------------------------------------------------------

BASE = """\
detector:
  model: @MODEL@
  classes:
    car: illegal_parking
store:
  url: http://127.0.0.1:8000
  device_key_file: secrets/device.key
cameras:
  - id: cam
    url: rtsp://127.0.0.1:8554/gate
    sample: {mode: fps, fps: 1}
    zones:
      - id: pavement
        place: "110101001001001"
        polygon: [[0.0, 0.5], [1.0, 0.5], [1.0, 1.0], [0.0, 1.0]]
@ZONE@
"""


@pytest.fixture
def box_folder(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.chdir(tmp_path)
    key = tmp_path / "secrets" / "device.key"
    key.parent.mkdir()
    key.write_text("swd_0123456789ab_secret\n", encoding="utf-8")
    key.chmod(0o600)
    return tmp_path


@pytest.mark.parametrize(
    ("zone_text", "line", "message"),
    [
        ("        static_change: {dwell_s: 120, report_as: unknown_object, min_area: 0.002}", None, None),
        ("        static_change: {report_as: exposed_garbage}", None, None),
        ("        static_change: {}", None, None),
        ("        anchor: center", 13, "needs rules, static_change or both"),
        ("        static_change: {report_as: littering}", 16, "unknown violation type 'littering'"),
        ("        static_change: {report_as: Garbage}", 16, "should match pattern"),
        ("        static_change: {dwell_s: 0}", 16, "greater than or equal to 1"),
        ("        static_change: {min_area: 1.5}", 16, "less than 1"),
        ("        static_change: {dwell: 60}", 16, "Extra inputs are not permitted"),
    ],
)
def test_static_change_in_the_yaml(
    box_folder: Path, yolox_card: Path, zone_text: str, line: int | None, message: str | None
) -> None:
    path = box_folder / "daemon.yaml"
    path.write_text(BASE.replace("@MODEL@", str(yolox_card)).replace("@ZONE@", zone_text), encoding="utf-8")
    result = CliRunner().invoke(app, ["validate-config", str(path)])
    if message is None:
        assert result.exit_code == 0, result.output
    else:
        assert result.exit_code == 2, result.output
        assert f"{path}:{line}:" in result.output, result.output
        assert message in result.output
