"""The demo clip: its timeline says what the scripted actors do, the frames show it, the files are usable."""

from __future__ import annotations

import json
from dataclasses import replace
from pathlib import Path

import av
import cv2
import numpy as np
import pytest

from datasets.scenes import demo
from datasets.scenes.actors import Actor
from datasets.scenes.compose import UNKNOWN_PILE
from datasets.scenes.score import CaseEvent, Incident, score
from datasets.scenes.video import CLASS_TO_VIOLATION, DemoScene, render_demo
from pipeline.config import load_config
from tests.conftest import YOLOX_CARD

ZONES = {zone.id: zone for zone in demo.ZONES}
CAUSES = {**CLASS_TO_VIOLATION, UNKNOWN_PILE: "unknown_object"}  # static change reports what no class covers
MODEL_INCIDENTS = [i for i in demo.incidents() if i.violation_type != "unknown_object"]


def in_zone_rect(actor: Actor, t: float, zone: demo.Zone) -> bool:
    thing = actor.at(t)
    if thing is None:
        return False
    return zone.x_m[0] <= thing.x <= zone.x_m[1] and zone.z_m[0] <= thing.z <= zone.z_m[1]


def causes(actor: Actor, incident: demo.Incident) -> bool:
    """The actor stands in the incident's zone, unmoved, from its start to its end."""
    if CAUSES.get(actor.kind) != incident.violation_type:
        return False
    zone = ZONES[incident.zone]
    times = np.arange(incident.start_s, incident.end_s + 1e-9, 1.0)
    if not all(in_zone_rect(actor, t, zone) for t in times):
        return False
    spots = {(round(thing.x, 6), round(thing.z, 6)) for t in times if (thing := actor.at(t)) is not None}
    return len(spots) == 1


def test_every_incident_is_one_scripted_actor_standing_in_its_zone_and_gone_outside_it() -> None:
    actors = DemoScene(7).actors
    for incident in demo.incidents():
        responsible = [actor for actor in actors if causes(actor, incident)]
        assert len(responsible) == 1, incident
        actor = responsible[0]
        zone = ZONES[incident.zone]
        assert not in_zone_rect(actor, incident.start_s - 2, zone) or actor.at(
            incident.start_s - 2
        ) != actor.at(incident.start_s)
        assert not in_zone_rect(actor, incident.end_s + 4, zone), incident
    # The car that stops in zone B stays less than the dwell: no incident, by design.
    brief = [
        a
        for a in actors
        if a.kind == "car" and any(in_zone_rect(a, t, ZONES["no-parking-b"]) for t in (46, 50))
    ]
    assert len(brief) == 1
    stopped = [
        t for t in np.arange(0, demo.DURATION_S, 0.5) if in_zone_rect(brief[0], t, ZONES["no-parking-b"])
    ]
    assert 0 < stopped[-1] - stopped[0] < demo.DWELL_S


def anchor_in_polygon(box: tuple[int, int, int, int], polygon: list[tuple[float, float]]) -> bool:
    x0, _, x1, y1 = box
    anchor = ((x0 + x1) / 2 / demo.WIDTH, y1 / demo.HEIGHT)
    contour = np.array(polygon, np.float32).reshape(-1, 1, 2)
    return cv2.pointPolygonTest(contour, anchor, False) >= 0


@pytest.mark.parametrize("incident", MODEL_INCIDENTS, ids=lambda i: f"{i.violation_type}-{i.zone}")
def test_mid_incident_the_frame_labels_the_object_with_its_anchor_in_the_zone(
    incident: demo.Incident,
) -> None:
    scene = DemoScene(7)
    polygon = ZONES[incident.zone].polygon(demo.CAMERA)
    kinds = {kind for kind, violation in CLASS_TO_VIOLATION.items() if violation == incident.violation_type}
    for t in (incident.start_s + 1, (incident.start_s + incident.end_s) / 2, incident.end_s - 1):
        _, labels = scene.frame(t)
        inside = [label for label in labels if label.name in kinds and anchor_in_polygon(label.xyxy, polygon)]
        assert inside, (t, labels)


def test_the_dumped_furniture_is_drawn_in_its_static_change_zone_unlabelled_and_changes_nothing_else() -> (
    None
):
    (pile,) = [i for i in demo.incidents() if i.violation_type == "unknown_object"]
    zone = ZONES[pile.zone]
    assert zone.static_change and not zone.rules  # only static change can report it
    scene = DemoScene(7)
    without = DemoScene(7)
    without.actors = [a for a in without.actors if a.kind != UNKNOWN_PILE]
    polygon = zone.polygon(demo.CAMERA)
    for t in (pile.start_s - 1, pile.start_s, 150.0, pile.end_s - 0.1):
        (image, labels), (bare, bare_labels) = scene.frame(t), without.frame(t)
        assert labels == bare_labels  # never labelled: the model was not trained on it
        changed = cv2.absdiff(image, bare).max(axis=2) > 0
        if t < pile.start_s:
            assert not changed.any()
            continue
        ys, xs = np.nonzero(changed)
        box = (int(xs.min()), int(ys.min()), int(xs.max()) + 1, int(ys.max()) + 1)
        assert anchor_in_polygon(box, polygon), box
        # Big enough for the zone's min_area, small enough to leave the rest of the frame alone.
        assert demo.STATIC_MIN_AREA < changed.sum() / changed.size < 0.02


def test_the_scorer_matches_an_unknown_object_case_to_the_dumped_furniture() -> None:
    start = 75.0
    incidents = [Incident(i.violation_type, i.zone, i.start_s, i.end_s, i.what) for i in demo.incidents()]
    case = CaseEvent(9, "unknown_object", "far-pavement", start + 2, start + demo.DWELL_S + 3)
    result = score(incidents, [case])
    assert [(i.zone, c.case_id) for i, c in result.matches] == [("far-pavement", 9)]
    stray = CaseEvent(10, "unknown_object", "pavement", start + 2, start + demo.DWELL_S + 3)
    assert score(incidents, [stray]).false_cases == (stray,)


def test_render_demo_writes_an_h264_clip_its_timeline_and_a_config_the_daemon_accepts(tmp_path: Path) -> None:
    files = render_demo(tmp_path, 7, model=YOLOX_CARD, duration_s=70.0)
    with av.open(str(files.video)) as container:
        stream = container.streams.video[0]
        assert stream.codec_context.name == "h264"
        assert (stream.codec_context.width, stream.codec_context.height) == (demo.WIDTH, demo.HEIGHT)
        frames = sum(1 for _ in container.decode(video=0))
    assert frames == 70 * demo.FPS
    timeline = json.loads(files.timeline.read_text(encoding="utf-8"))
    # 70 s: the parked car (in place at 21 s, confirmable at 51 s) fits; the stall (40 s + 30 s) does not.
    assert [(i["violation_type"], i["zone"]) for i in timeline["incidents"]] == [
        ("illegal_parking", "no-parking-a")
    ]
    assert timeline["incidents"][0]["end_s"] == 70.0
    assert timeline["start_time"] == "2026-05-04T09:00:00+08:00"
    (tmp_path / "device.key").write_text("k" * 40 + "\n", encoding="utf-8")
    config = load_config(files.config)
    camera = config.cameras[0]
    assert camera.url == str(files.video.resolve())
    assert [z.id for z in camera.zones] == [z.id for z in demo.ZONES]
    far = camera.zones[-1]
    assert far.rules == {} and far.static_change is not None
    assert (far.static_change.dwell_s, far.static_change.report_as) == (demo.DWELL_S, "unknown_object")
    assert config.detector.classes["stall"] == "street_stall"
    assert config.unused_rules() == []


def test_the_same_seed_renders_the_same_frames() -> None:
    first, second = DemoScene(7).frame(33.3), DemoScene(7).frame(33.3)
    assert np.array_equal(first[0], second[0]) and first[1] == second[1]
    assert not np.array_equal(first[0], DemoScene(8).frame(33.3)[0])


OTHER_LOOKS = [1000, 1001, 1018, 2000, 2003]


@pytest.mark.parametrize("look", OTHER_LOOKS)
def test_another_look_keeps_the_script_with_the_stall_and_bags_elsewhere_on_the_pavement(look: int) -> None:
    scene = DemoScene(look, look=look)
    for incident in demo.incidents():  # every incident still one actor, standing in its zone for its time
        assert len([actor for actor in scene.actors if causes(actor, incident)]) == 1, (look, incident)
    stall, bags = (next(a for a in scene.actors if a.kind == kind) for kind in ("stall", "garbage"))
    polygon = ZONES["pavement"].polygon(demo.CAMERA)
    _, labels = scene.frame(100.0)  # both in place
    for kind in ("stall", "garbage"):
        (box,) = [label.xyxy for label in labels if label.name == kind]
        x0, y0, x1, y1 = box
        # whole in the frame
        assert x0 > 0 and y0 > 0 and x1 < demo.WIDTH and y1 < demo.HEIGHT, (look, kind, box)
        assert anchor_in_polygon(box, polygon), (look, kind, box)
    stall_at, bags_at = stall.at(100.0), bags.at(100.0)
    assert stall_at is not None and bags_at is not None
    assert bags_at.z <= stall_at.z - demo.BAGS_BEFORE_STALL_M  # nearer the camera: never behind the stall


def test_the_looks_spread_the_stall_over_the_pavement_and_the_demo_keeps_its_spot() -> None:
    spots = [demo.placements(np.random.default_rng([look, 17]))[0] for look in range(1000, 1048)]
    zs = np.array([z for _, z in spots])
    # a round's 48 clips put the stall all along its range, not on one spot a model could learn
    assert zs.min() < demo.STALL_Z[0] + 3 and zs.max() > demo.STALL_Z[1] - 3 and zs.std() > 3
    stall = next(a for a in demo.scripted_actors() if a.kind == "stall").at(100.0)
    assert stall is not None and (stall.x, stall.z) == demo.DEMO_STALL_AT


@pytest.mark.parametrize("look", OTHER_LOOKS)
def test_more_piles_are_dumped_with_the_first_apart_on_the_pavement_before_the_stall(look: int) -> None:
    """A round's clip with several piles: each stands, unmoved, in the pavement zone from shortly after the
    bags' dumping to the incident's end, apart from the others and in front of the stall; one garbage
    incident still, and the rest of the script unchanged."""
    scene = DemoScene(look, look=look, piles=3)
    (garbage,) = [i for i in demo.incidents() if i.violation_type == "exposed_garbage"]
    piles = [a for a in scene.actors if a.kind == "garbage"]
    assert 2 <= len(piles) <= 3
    stall = next(a for a in scene.actors if a.kind == "stall").at(100.0)
    assert stall is not None
    spots = []
    for pile in piles:
        shown = [t for t in np.arange(0.0, demo.DURATION_S, 1.0) if pile.at(float(t)) is not None]
        assert garbage.start_s <= shown[0] <= garbage.start_s + 10 and shown[-1] <= garbage.end_s, look
        late = replace(garbage, start_s=shown[0])
        assert causes(pile, late), (look, pile)
        thing = pile.at(100.0)
        assert thing is not None and thing.z <= stall.z - demo.BAGS_BEFORE_STALL_M
        spots.append((thing.x, thing.z))
    assert all(
        np.hypot(a[0] - b[0], a[1] - b[1]) >= demo.PILES_APART_M
        for i, a in enumerate(spots)
        for b in spots[i + 1 :]
    )
    single = DemoScene(look, look=look)  # the rest as with one pile: the same actors, the first pile too
    assert [a for a in scene.actors if a.kind != "garbage"] == [
        a for a in single.actors if a.kind != "garbage"
    ]
    assert piles[0] == next(a for a in single.actors if a.kind == "garbage")


def test_the_piles_vary_in_kind_over_a_rounds_looks_and_the_demo_keeps_one_pile_of_bags() -> None:
    kinds = {
        a.style
        for look in range(1000, 1048)
        for a in demo.scripted_actors(look, piles=3)
        if a.kind == "garbage"
    }
    assert kinds == {"bags", "pile", "litter"}
    assert [a.style for a in demo.scripted_actors() if a.kind == "garbage"] == ["bags"]
    with pytest.raises(ValueError, match="piles"):
        demo.scripted_actors(0, piles=2)
