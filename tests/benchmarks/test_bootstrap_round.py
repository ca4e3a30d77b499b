"""A tiny bootstrap round (benchmarks/bootstrap_round.py) so the loop never rots: two short generated clips
reviewed by the simulated operator through the real store, one training epoch at a tiny input size, the
model published, promoted and picked up by the daemon (a restart onto another class list), the unseen clip
and the demo clip run again. It asserts the loop's mechanics, never the accuracy targets (the full round
is measured by hand: benchmarks/README.md, Bootstrap round).

The tiny round is slow (rendering, seven daemon runs, training; 3-7 min on the 2-vCPU box): marked ``e2e``
and ``train``. The simulated operator's answers and drawn boxes are checked on their own, quickly.
"""

from __future__ import annotations

import importlib.util
import json
from dataclasses import replace
from pathlib import Path

import cv2
import numpy as np
import pytest
import yaml

from benchmarks import bootstrap_round
from datasets.scenes import demo
from datasets.scenes.score import CaseEvent, Incident
from detector.boxes import box_iou_batch


@pytest.mark.e2e
@pytest.mark.train
@pytest.mark.skipif(importlib.util.find_spec("ultralytics") is None, reason="needs the train extra")
def test_a_tiny_round_consumes_decisions_publishes_and_promotes_a_model_and_prints_the_table(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    out = tmp_path / "round"
    tiny = (
        "--clips 2 --unseen 1 --clip-s 80 --unseen-s 90 --demo-s 80 --val-share 0.5 --train-hours 0 "
        "--epochs 1 --imgsz 64 --batch 8 --piles 2"
    )
    args = bootstrap_round.parse_args(["--out", str(out), *tiny.split(), "--truth-every-s", "20"])
    result = bootstrap_round.bootstrap_round(args)
    printed = capsys.readouterr().out
    # the operator's decisions reached the store and were consumed by the export
    assert sum(result["decisions"].values()) > 0 and result["decisions"].get("file", 0) > 0
    # a model trained on them, published and made live (the daemon restarted onto it: another class list)
    assert result["version_id"] >= 1 and Path(result["model"]).is_file()
    assert (out / "edge-after" / "models" / "staged.json").is_file()
    staged = json.loads((out / "edge-after" / "models" / "staged.json").read_text())
    assert staged["version_id"] == result["version_id"] and "stall" in staged["classes"]
    # one table: every class, before and after, the decisions and every step's wall time
    for kind in ("stall", "garbage", "parking"):
        assert any(line.startswith(kind) for line in printed.splitlines()), printed
    assert "operator decisions consumed:" in printed
    assert set(result["steps"]) == {"render", "before", "operator", "train", "after"}
    # AP50 also on the unseen frames redacted as training frames are: the same frames, other pixels
    assert set(result["ap50_after_redacted"]) == set(result["ap50_after"]) and "AP50 redacted" in printed
    sharp, redacted = (
        sorted((out / "truth" / "images").rglob("*.jpg")),
        sorted((out / "truth-redacted" / "images").rglob("*.jpg")),
    )
    assert [p.name for p in sharp] == [p.name for p in redacted] and sharp
    assert sharp[0].read_bytes() != redacted[0].read_bytes()
    assert "garbage photos" in result["garbage_photos"]
    assert json.loads((out / "result.json").read_text())["version_id"] == result["version_id"]
    # the unseen clip has its own length; the validation split its own share of the reviewed incidents
    assert json.loads((out / "clips" / "u0" / "timeline.json").read_text())["duration_s"] == 90.0
    assert json.loads((out / "clips" / "r0" / "timeline.json").read_text())["duration_s"] == 80.0
    reviewed = yaml.safe_load((out / "reviewed" / "dataset.yaml").read_text(encoding="utf-8"))
    assert reviewed["split_fractions"] == [0.5, 0.5, 0.0]
    # step 5 again on the finished round with its card (benchmarks/round_after.py): the same clips, scored
    # against the same incidents, and the round's folder left as it was
    from benchmarks import round_after

    before = sorted(p.name for p in (out / "clips" / "u0").iterdir())
    again = round_after.after_again(out, Path(result["model"]), tmp_path / "again")
    for kind in ("stall", "garbage", "parking"):
        for where, phase in (("unseen", "unseen_after"), ("demo", "demo_after")):
            assert sum(again[where][kind][:2]) == sum(result[phase][kind][:2])  # true + missed = incidents
    assert sorted(p.name for p in (out / "clips" / "u0").iterdir()) == before
    assert json.loads((tmp_path / "again" / "result.json").read_text())["card"] == result["model"]
    # the starting model has no stall or garbage class: no such case before the round
    for phase in ("unseen_before", "demo_before"):
        for kind in ("stall", "garbage"):
            assert result[phase][kind][0] == 0, result


@pytest.mark.parametrize("share", ["0", "1", "1.5"])
def test_a_validation_share_outside_zero_to_one_is_refused_before_anything_is_written(
    tmp_path: Path, share: str
) -> None:
    out = tmp_path / "round"
    args = bootstrap_round.parse_args(["--out", str(out), "--val-share", share])
    with pytest.raises(SystemExit, match="--val-share"):
        bootstrap_round.bootstrap_round(args)
    assert not out.exists()


def clip(tmp_path: Path) -> bootstrap_round.Clip:
    from datasets.scenes.score import Timeline
    from datasets.scenes.video import START_TIME

    incidents = tuple(
        Incident(i.violation_type, i.zone, i.start_s, i.end_s, i.what) for i in demo.incidents()
    )
    return bootstrap_round.Clip("r0", 0, 1000, 1000, tmp_path, Timeline(START_TIME, incidents), 240.0)


def test_a_truth_frame_redacted_as_a_training_frame_is_blurred_outside_the_zones_only() -> None:
    from datasets.scenes.video import DemoScene

    image, found = DemoScene(bootstrap_round.UNSEEN_SEED, 120.0).frame(60.0)
    image = np.asarray(image)
    redacted = bootstrap_round.as_training_frame(image, [])
    zones = np.zeros(image.shape[:2], np.uint8)
    for zone in demo.ZONES:
        polygon = np.array(zone.polygon(demo.CAMERA), np.float32) * (demo.WIDTH, demo.HEIGHT)
        cv2.fillPoly(zones, [np.round(polygon).astype(np.int32)], 1)
    inside, outside = zones.astype(bool), ~cv2.dilate(zones, np.ones((9, 9), np.uint8)).astype(bool)
    assert inside.any() and outside.any()
    assert np.array_equal(redacted[inside], image[inside])  # the zones stay sharp
    # and outside them the street is blurred: far less detail than in the sharp frame
    detail = [
        float(cv2.Laplacian(cv2.cvtColor(p, cv2.COLOR_BGR2GRAY), cv2.CV_64F)[outside].var())
        for p in (image, redacted)
    ]
    assert detail[1] < 0.1 * detail[0]
    # people are pixelated as the daemon does it
    person = next(label.xyxy for label in found if label.name == "person")
    assert not np.array_equal(bootstrap_round.as_training_frame(image, [person]), redacted)


@pytest.mark.parametrize(
    ("zone", "first_seen", "confirmed", "expected"),
    [
        ("pavement", 44.0, 76.0, "street_stall"),  # static change saw the stall: re-coded to it
        ("pavement", 66.0, 98.0, "exposed_garbage"),  # the bags, dumped at 62 s, while the stall trades
        ("no-parking-b", 98.0, 128.0, "illegal_parking"),  # the truck
        ("no-parking-b", 43.0, 55.0, None),  # the car that stops 12 s (if a case came): no incident
        ("no-parking-a", 5.0, 20.0, None),  # before the car came: voided as false_positive
    ],
)
def test_the_simulated_operator_answers_from_the_timeline(
    tmp_path: Path, zone: str, first_seen: float, confirmed: float, expected: str | None
) -> None:
    found = bootstrap_round.truth(clip(tmp_path), CaseEvent(1, "unknown_object", zone, first_seen, confirmed))
    assert (found.violation_type if found else None) == expected


def test_a_missed_object_is_drawn_where_the_scene_drew_it(tmp_path: Path) -> None:
    """The box the operator draws is the ground truth's, normalised, and lies on the pavement zone."""
    the_clip = clip(tmp_path)
    stall = next(i for i in the_clip.timeline.incidents if i.violation_type == "street_stall")
    (box,) = bootstrap_round.ground_truth_boxes(the_clip, stall, 100.0)
    assert all(0 <= v <= 1 for v in box) and box[0] < box[2] and box[1] < box[3]
    pavement = next(z for z in demo.ZONES if z.id == "pavement").polygon(demo.CAMERA)
    centre = ((box[0] + box[2]) / 2, (box[1] + box[3]) / 2)
    xs, ys = [p[0] for p in pavement], [p[1] for p in pavement]
    assert min(xs) <= centre[0] <= max(xs) and min(ys) <= centre[1] <= max(ys)
    garbage = next(i for i in the_clip.timeline.incidents if i.violation_type == "exposed_garbage")
    assert bootstrap_round.ground_truth_boxes(the_clip, garbage, 30.0) == []  # not dumped yet


def test_every_pile_of_a_dumping_is_drawn_each_with_its_own_box(tmp_path: Path) -> None:
    """A round's clip with several piles: the operator boxes each one it sees, not one box over them all."""
    the_clip = replace(clip(tmp_path), piles=3)
    garbage = next(i for i in the_clip.timeline.incidents if i.violation_type == "exposed_garbage")
    boxes = bootstrap_round.ground_truth_boxes(the_clip, garbage, 100.0)
    assert len(boxes) >= 2
    pavement = next(z for z in demo.ZONES if z.id == "pavement").polygon(demo.CAMERA)
    xs, ys = [p[0] for p in pavement], [p[1] for p in pavement]
    for x0, _y0, x1, y1 in boxes:
        assert min(xs) <= (x0 + x1) / 2 <= max(xs) and min(ys) <= y1 <= max(ys) + 0.05
    # the piles are apart: no two boxes the same object
    for i, a in enumerate(boxes):
        for b in boxes[i + 1 :]:
            assert box_iou_batch(np.array([a]), np.array(b)).max() < 0.3
    areas = [(x1 - x0) * (y1 - y0) for x0, y0, x1, y1 in boxes]
    assert areas == sorted(areas, reverse=True)  # largest first
