"""Zones swapped while the rules run (store zone sync): unchanged zones keep their tracks and dwell, a zone
that now covers a parked car confirms it, a removed zone's open incident ends at once."""

from __future__ import annotations

import pytest

from pipeline.config import ZoneConfig
from pipeline.errors import ZoneError
from pipeline.zones import MAX_ZONES_PER_CAMERA
from tests.pipeline.rule_builders import (
    camera,
    feed,
    kinds,
    make_engine,
    offset_s,
    parked,
    zone,
)

LEFT = [[0.0, 0.0], [0.3, 0.0], [0.3, 1.0], [0.0, 1.0]]  # the parked car (x 800-1000 of 1920) is not here
MIDDLE = [[0.3, 0.0], [0.7, 0.0], [0.7, 1.0], [0.3, 1.0]]  # it is here
DWELL = 30.0


def zones(*specs: dict[str, object]) -> list[ZoneConfig]:
    return [ZoneConfig.model_validate(spec) for spec in specs]


def test_a_zone_moved_over_a_parked_car_confirms_it_after_the_dwell() -> None:
    engine = make_engine(cameras=[camera(zones=[zone("z1", polygon=LEFT)])])
    assert feed(engine, parked(range(0, 60))) == []  # outside the zone: nothing
    assert engine.replace_zones("cam", zones(zone("z1", polygon=MIDDLE))) == []
    events = feed(engine, parked(range(60, 100)))
    [confirmed] = kinds(events, "confirmed")
    assert offset_s(confirmed.at) == 60 + DWELL  # the stay starts when the zone covers the car
    assert (confirmed.zone_id, confirmed.place) == ("z1", "p1")


def test_an_unchanged_zone_keeps_its_stay_across_a_reload() -> None:
    engine = make_engine(cameras=[camera(zones=[zone("z1", polygon=MIDDLE)])])
    feed(engine, parked(range(0, 20)))
    # A new zone elsewhere and a longer dwell on z1: z1's polygon is the same, so the car's stay counts on.
    reloaded = zones(
        zone("other", place="p2", polygon=LEFT),
        zone("z1", polygon=MIDDLE, rules={"illegal_parking": {"dwell_s": 40}}),
    )
    assert engine.replace_zones("cam", reloaded) == []
    events = feed(engine, parked(range(20, 60)))
    [confirmed] = kinds(events, "confirmed")
    assert offset_s(confirmed.at) == 40  # 40 s since the car parked, not 40 s since the reload
    assert offset_s(confirmed.first_seen_at) == 0
    assert engine.places == ["p1", "p2"]


def test_a_moved_zone_starts_its_stays_over() -> None:
    engine = make_engine(cameras=[camera(zones=[zone("z1", polygon=MIDDLE)])])
    feed(engine, parked(range(0, 20)))
    shifted = [[0.35, 0.0], [0.75, 0.0], [0.75, 1.0], [0.35, 1.0]]  # still covers the car
    engine.replace_zones("cam", zones(zone("z1", polygon=shifted)))
    [confirmed] = kinds(feed(engine, parked(range(20, 60))), "confirmed")
    assert offset_s(confirmed.at) == 20 + DWELL


def test_removing_a_zone_ends_its_open_incident_and_no_case_follows() -> None:
    engine = make_engine(
        cameras=[camera(zones=[zone("z1", polygon=MIDDLE), zone("z2", place="p2", polygon=LEFT)])]
    )
    events = feed(engine, parked(range(0, 40)))
    [confirmed] = kinds(events, "confirmed")
    ended = engine.replace_zones("cam", zones(zone("z2", place="p2", polygon=LEFT)))
    assert [(e.kind, e.incident_id, e.zone_id) for e in ended] == [("ended", confirmed.incident_id, "z1")]
    assert engine.open_incidents == 0
    assert feed(engine, parked(range(40, 120))) == []  # the car is in no zone now


def test_a_zone_moved_to_another_place_ends_the_old_places_incident() -> None:
    engine = make_engine(cameras=[camera(zones=[zone("z1", polygon=MIDDLE)])])
    first = kinds(feed(engine, parked(range(0, 40))), "confirmed")[0]
    ended = engine.replace_zones("cam", zones(zone("z1", place="p9", polygon=MIDDLE)))
    assert [e.incident_id for e in ended] == [first.incident_id]
    # Same polygon: the car's stay is kept, so the new place's incident confirms on the next frame.
    [again] = kinds(feed(engine, parked(range(40, 45))), "confirmed")
    assert again.place == "p9" and again.incident_id != first.incident_id
    assert offset_s(again.at) == 40


def test_an_invalid_reload_changes_nothing() -> None:
    engine = make_engine(cameras=[camera(zones=[zone("z1", polygon=MIDDLE)])])
    feed(engine, parked(range(0, 20)))
    too_many = zones(*[zone(f"z{i}", polygon=MIDDLE) for i in range(MAX_ZONES_PER_CAMERA + 1)])
    with pytest.raises(ZoneError, match="at most 64"):
        engine.replace_zones("cam", too_many)
    assert [z.id for z in engine.zones_of("cam")] == ["z1"]
    [confirmed] = kinds(feed(engine, parked(range(20, 40))), "confirmed")
    assert offset_s(confirmed.at) == DWELL  # the stay survived the refused reload
