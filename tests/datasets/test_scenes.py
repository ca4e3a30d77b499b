"""The scene generator: the same seed gives the same dataset; labels are tight boxes of what is visible."""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import pytest

from datasets.scenes import CLASSES
from datasets.scenes.compose import Label, Thing, composite
from datasets.scenes.demo import CAMERA, STREET
from datasets.scenes.generate import random_scene, split_of, write_dataset
from datasets.yolo import label_path_for, read_dataset_yaml, read_labels, split_images

BACKGROUND = np.full((CAMERA.height, CAMERA.width, 3), 100, np.uint8)
KERB = STREET.right_kerb


def changed_box(frame: np.ndarray, background: np.ndarray) -> tuple[int, int, int, int]:
    ys, xs = np.nonzero(np.any(frame != background, axis=2))
    return int(xs.min()), int(ys.min()), int(xs.max()) + 1, int(ys.max()) + 1


def only(labels: list[Label], name: str) -> Label:
    found = [label for label in labels if label.name == name]
    assert len(found) == 1, labels
    return found[0]


def test_the_classes_keep_their_documented_order() -> None:
    assert CLASSES == ("car", "truck", "bus", "motorcycle", "bicycle", "person", "stall", "garbage")


def test_the_same_seed_draws_the_same_scene_and_another_seed_does_not() -> None:
    first, again, other = random_scene(123), random_scene(123), random_scene(124)
    assert np.array_equal(first.image, again.image)
    assert first.labels == again.labels
    assert first.labels, "a street scene with nothing in it"
    assert not np.array_equal(first.image[:100], other.image[:100])


@pytest.mark.parametrize(
    "thing",
    [
        Thing("car", KERB - 1.1, 14.0, 0.3, seed=1),
        Thing("truck", 0.0, 25.0, math.pi, seed=2),
        Thing("bus", -2.0, 30.0, 0.0, seed=3),
        Thing("person", KERB + 2.0, 12.0, 0.0, seed=4, phase=1.0),
        Thing("bicycle", KERB + 1.0, 10.0, 0.2, seed=5),
        Thing("motorcycle", KERB + 1.5, 16.0, 1.2, seed=6),
        Thing("stall", KERB + 3.0, 18.0, 0.0, seed=7, style="umbrella_stall"),
        Thing("garbage", KERB + 1.5, 12.0, 0.0, seed=8, style="pile"),
    ],
    ids=lambda thing: thing.kind,
)
def test_a_lone_object_gets_the_tight_box_of_its_pixels(thing: Thing) -> None:
    frame, labels = composite(BACKGROUND, CAMERA, [thing], night=False, shadows=False)
    box = only(labels, thing.kind).xyxy
    drawn = changed_box(frame, BACKGROUND)
    # Anti-aliased rims (coverage under one half) may widen the drawn area by a pixel, never more.
    assert all(abs(a - b) <= 1 for a, b in zip(box, drawn, strict=True)), (box, drawn)


def test_an_occluded_object_is_boxed_by_its_visible_part_and_a_hidden_one_is_dropped() -> None:
    far_car = Thing("car", KERB - 1.1, 20.0, 0.0, seed=11)
    alone = only(composite(BACKGROUND, CAMERA, [far_car], night=False, shadows=False)[1], "car").xyxy
    # A bus in the middle lane hides the car's lower part: the box shrinks to what is left of it.
    bus = Thing("bus", 0.5, 14.0, 0.0, seed=12)
    _, labels = composite(BACKGROUND, CAMERA, [far_car, bus], night=False, shadows=False)
    box = only(labels, "car").xyxy
    assert alone[0] <= box[0] and box[2] <= alone[2] and alone[1] <= box[1] and box[3] <= alone[3]
    assert (box[2] - box[0]) * (box[3] - box[1]) < (alone[2] - alone[0]) * (alone[3] - alone[1])
    assert only(labels, "bus")
    # The same bus a metre nearer the kerb hides most of the car: no label for it.
    _, labels = composite(BACKGROUND, CAMERA, [far_car, bus_at(1.5)], night=False, shadows=False)
    assert [label.name for label in labels] == ["bus"]


def bus_at(x: float) -> Thing:
    return Thing("bus", x, 14.0, 0.0, seed=12)


def test_an_object_mostly_outside_the_frame_is_dropped_and_a_cut_one_is_clipped() -> None:
    def labels_at(z: float) -> tuple[np.ndarray, list[Label]]:
        car = Thing("car", KERB - 1.1, z, 0.0, seed=22)
        return composite(BACKGROUND, CAMERA, [car], night=False, shadows=False)

    frame, labels = labels_at(6.0)  # near the camera: the frame cuts off most of it
    assert changed_box(frame, BACKGROUND)[3] == CAMERA.height and labels == []
    frame, labels = labels_at(8.0)  # less cut off: labelled, the box ends at the frame's edge
    assert only(labels, "car").xyxy[3] == CAMERA.height
    assert all(
        abs(a - b) <= 1 for a, b in zip(only(labels, "car").xyxy, changed_box(frame, BACKGROUND), strict=True)
    )


def test_every_label_of_random_scenes_is_a_valid_box() -> None:
    for seed in range(12):
        scene = random_scene(seed)
        height, width = scene.image.shape[:2]
        for label in scene.labels:
            x0, y0, x1, y1 = label.xyxy
            assert label.name in CLASSES
            assert x0 >= 0 and x1 <= width and y0 >= 0 and y1 <= height
            assert x1 - x0 >= 4 and y1 - y0 >= 4


def test_splits_are_contiguous_80_10_10() -> None:
    splits = [split_of(i, 20) for i in range(20)]
    assert splits == ["train"] * 16 + ["val"] * 2 + ["test"] * 2


def test_a_written_dataset_is_the_same_with_one_or_two_workers_and_reads_back(tmp_path: Path) -> None:
    one = write_dataset(tmp_path / "one", 10, seed=3, workers=1)
    two = write_dataset(tmp_path / "two", 10, seed=3, workers=2)
    files_one = sorted(p.relative_to(one.parent) for p in one.parent.rglob("*") if p.is_file())
    files_two = sorted(p.relative_to(two.parent) for p in two.parent.rglob("*") if p.is_file())
    assert files_one == files_two
    for name in files_one:
        if name.suffix in (".jpg", ".txt"):
            assert (one.parent / name).read_bytes() == (two.parent / name).read_bytes(), name
    spec = read_dataset_yaml(one)
    assert spec.names == list(CLASSES)
    counts = {split: len(split_images(spec, split)) for split in ("train", "val", "test")}
    assert counts == {"train": 8, "val": 1, "test": 1}
    boxes = 0
    for image in split_images(spec, "train"):
        labels = read_labels(label_path_for(image), len(CLASSES))
        boxes += len(labels.class_id)
    assert boxes > 10


@pytest.mark.train
def test_ultralytics_loads_the_dataset(tmp_path: Path) -> None:
    pytest.importorskip("ultralytics")
    from ultralytics.data.utils import check_det_dataset

    data = check_det_dataset(str(write_dataset(tmp_path / "data", 10, seed=4)))
    assert data["nc"] == len(CLASSES)
    assert list(data["names"].values()) == list(CLASSES)
    assert Path(data["test"]).is_dir()
