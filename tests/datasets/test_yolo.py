"""YOLO label files and dataset YAML: what Ultralytics accepts is read; anything else is an error naming
the file and line."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from datasets.errors import LabelError
from datasets.yolo import (
    Labels,
    label_path_for,
    read_dataset_yaml,
    read_labels,
    split_images,
    write_dataset_yaml,
    write_labels,
    xywhn_to_xyxy,
    xyxy_to_xywhn,
)


def test_box_formats_round_trip() -> None:
    xyxy = np.array([[10.0, 20.0, 110.0, 220.0], [0.0, 0.0, 640.0, 480.0]])
    xywhn = xyxy_to_xywhn(xyxy, 640, 480)
    np.testing.assert_allclose(xywhn[0], [60 / 640, 120 / 480, 100 / 640, 200 / 480])
    np.testing.assert_allclose(xywhn_to_xyxy(xywhn, 640, 480), xyxy)


def test_labels_write_and_read_back(tmp_path: Path) -> None:
    labels = Labels(np.array([2, 0]), np.array([[0.5, 0.5, 0.25, 0.125], [0.1, 0.2, 0.05, 0.1]]))
    path = tmp_path / "labels" / "a.txt"
    write_labels(path, labels)
    assert path.read_text().splitlines()[0] == "2 0.500000 0.500000 0.250000 0.125000"
    back = read_labels(path, 3)
    assert back.class_id.tolist() == [2, 0]
    np.testing.assert_allclose(back.xywhn, labels.xywhn)
    write_labels(path, Labels.empty())
    assert path.read_text() == "" and len(read_labels(path, 3)) == 0
    assert len(read_labels(tmp_path / "missing.txt", 3)) == 0  # no file: an image without objects


def test_polygon_lines_become_their_bounds(tmp_path: Path) -> None:
    path = tmp_path / "poly.txt"
    path.write_text("1 0.1 0.2 0.5 0.2 0.3 0.6\n")
    labels = read_labels(path, 2)
    np.testing.assert_allclose(labels.xywhn[0], [0.3, 0.4, 0.4, 0.4])


@pytest.mark.parametrize(
    ("line", "message"),
    [
        ("0 0.5 0.5 0.1", "expected 'class cx cy w h'"),
        ("3 0.5 0.5 0.1 0.1", "class 3 is out of range: the dataset has 3 classes"),
        ("car 0.5 0.5 0.1 0.1", "class 'car' is not an integer"),
        ("0 0.5 0.5 x 0.1", "coordinates must be numbers"),
        ("0 0.5 1.5 0.1 0.1", "coordinates must be normalised to 0..1"),
        ("0 0.5 0.5 0 0.1", "box width and height must be > 0"),
        ("0 0.5 0.5 nan 0.1", "coordinates must be normalised to 0..1"),
    ],
)
def test_bad_label_lines_name_file_and_line(tmp_path: Path, line: str, message: str) -> None:
    path = tmp_path / "img.txt"
    path.write_text(f"0 0.5 0.5 0.1 0.1\n\n{line}\n")
    with pytest.raises(LabelError, match=f"img.txt:3: {message}"):
        read_labels(path, 3)


def test_label_path_follows_ultralytics() -> None:
    assert label_path_for(Path("/d/images/train/x/a.jpg")) == Path("/d/labels/train/x/a.txt")
    assert label_path_for(Path("/images/d/images/val/b.png")) == Path("/images/d/labels/val/b.txt")
    with pytest.raises(LabelError, match="no 'images' folder"):
        label_path_for(Path("/d/pics/a.jpg"))


def test_dataset_yaml_round_trip_and_split_listing(tmp_path: Path) -> None:
    for name in ("b.jpg", "a.png", "notes.txt"):
        (tmp_path / "images" / "val").mkdir(parents=True, exist_ok=True)
        (tmp_path / "images" / "val" / name).write_bytes(b"")
    (tmp_path / "test.txt").write_text("./images/val/b.jpg\nimages/val/a.png\n")
    write_dataset_yaml(
        tmp_path / "dataset.yaml", ["car", "stall"], {"val": "images/val", "test": "test.txt"}, {"x": 1}
    )
    spec = read_dataset_yaml(tmp_path / "dataset.yaml")
    assert spec.names == ["car", "stall"] and spec.extra == {"x": 1}
    assert spec.root == tmp_path.resolve()
    assert split_images(spec, "val") == [spec.root / "images/val/a.png", spec.root / "images/val/b.jpg"]
    assert split_images(spec, "test") == [tmp_path / "images/val/b.jpg", spec.root / "images/val/a.png"]
    with pytest.raises(LabelError, match="no 'train' split \\(splits: val, test\\)"):
        split_images(spec, "train")


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("train: images\nnames: []\n", r"dataset.yaml:2: names: expected a non-empty list"),
        ("names: {0: a, 2: b}\n", r"dataset.yaml:1: names: expected ids 0..1"),
        ("names: [a]\nval: 3\n", r"dataset.yaml:2: val: expected a folder"),
        ("- a\n", "expected a mapping"),
    ],
)
def test_bad_dataset_yaml_names_line(tmp_path: Path, text: str, message: str) -> None:
    path = tmp_path / "dataset.yaml"
    path.write_text(text)
    with pytest.raises(LabelError, match=message):
        read_dataset_yaml(path)
