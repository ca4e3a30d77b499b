"""COCO <-> YOLO conversion: the real TACO annotations (labels only, from their widths and heights) and
hand-built files for the edge cases TACO does not have (crowds, gaps in category ids, empty images)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from datasets.coco import coco_to_yolo, load_coco, yolo_to_coco
from datasets.errors import CocoError
from datasets.yolo import read_dataset_yaml, read_labels
from tests.conftest import SHARED_DATA, require

TACO = SHARED_DATA / "annotations" / "taco_annotations.json"


@pytest.fixture(scope="module")
def taco() -> Path:
    return require(TACO, "shared/ data beside the checkout; present in CI")


def _boxes_by_image(document: dict[str, Any]) -> dict[int, list[tuple[int, list[float]]]]:
    out: dict[int, list[tuple[int, list[float]]]] = {im["id"]: [] for im in document["images"]}
    for a in document["annotations"]:
        out[a["image_id"]].append((a["category_id"], a["bbox"]))
    return out


def _clip_xywh(box: list[float], width: int, height: int) -> list[float]:
    x1, y1 = max(box[0], 0.0), max(box[1], 0.0)
    x2, y2 = min(box[0] + box[2], width), min(box[1] + box[3], height)
    return [x1, y1, x2 - x1, y2 - y1]


def test_taco_round_trip_preserves_boxes_and_categories(taco: Path, tmp_path: Path) -> None:
    report = coco_to_yolo(taco, tmp_path / "yolo", split="train")
    original = json.loads(taco.read_text(encoding="utf-8"))
    assert report.images == len(original["images"]) == 1500
    assert report.boxes == len(original["annotations"]) == 4784
    assert report.crowd_skipped == [] and report.dropped_outside == []
    # TACO has boxes a pixel past the image edge: they are clipped, and named
    sizes = {im["id"]: (im["width"], im["height"]) for im in original["images"]}
    outside = [
        a["id"]
        for a in original["annotations"]
        if a["bbox"][0] < 0
        or a["bbox"][1] < 0
        or a["bbox"][0] + a["bbox"][2] > sizes[a["image_id"]][0]
        or a["bbox"][1] + a["bbox"][3] > sizes[a["image_id"]][1]
    ]
    assert sorted(report.clipped) == sorted(outside) and len(outside) > 0

    back_path = tmp_path / "back.json"
    yolo_to_coco(tmp_path / "yolo" / "dataset.yaml", back_path, split="train")
    back = json.loads(back_path.read_text(encoding="utf-8"))
    assert back["categories"] == [
        {"id": c["id"], "name": c["name"], "supercategory": c["supercategory"]}
        for c in original["categories"]
    ]
    assert [(im["id"], im["file_name"], im["width"], im["height"]) for im in back["images"]] == [
        (im["id"], im["file_name"], im["width"], im["height"]) for im in original["images"]
    ]
    before, after = _boxes_by_image(original), _boxes_by_image(back)
    for image_id, (width, height) in sizes.items():
        expected = [(c, _clip_xywh(b, width, height)) for c, b in before[image_id]]
        got = after[image_id]
        assert [c for c, _ in got] == [c for c, _ in expected]
        np.testing.assert_allclose(
            np.array([b for _, b in got]).reshape(-1, 4),
            np.array([b for _, b in expected]).reshape(-1, 4),
            atol=0.01,  # 6 decimals of a normalised coordinate on a 4000 px side, plus 4-decimal output
        )


def test_taco_labels_are_normalised_and_yaml_names_all_categories(taco: Path, tmp_path: Path) -> None:
    coco_to_yolo(taco, tmp_path, split="train")
    spec = read_dataset_yaml(tmp_path / "dataset.yaml")
    assert len(spec.names) == 60 and spec.names[0] == "Aluminium foil"
    labels = read_labels(tmp_path / "labels" / "train" / "batch_1" / "000006.txt", len(spec.names))
    # annotation 1 of TACO: bbox [517, 127, 447, 1322] on a 1537x2049 image, category 6
    assert labels.class_id.tolist()[0] == 6
    np.testing.assert_allclose(
        labels.xywhn[0], [(517 + 447 / 2) / 1537, (127 + 1322 / 2) / 2049, 447 / 1537, 1322 / 2049], atol=1e-6
    )


def _coco(**overrides: Any) -> dict[str, Any]:
    document: dict[str, Any] = {
        "images": [
            {"id": 10, "file_name": "a/one.jpg", "width": 200, "height": 100},
            {"id": 11, "file_name": "a/two.jpg", "width": 50, "height": 50},  # no annotations
        ],
        "categories": [{"id": 3, "name": "bag"}, {"id": 7, "name": "pile"}, {"id": 12, "name": "litter"}],
        "annotations": [
            {"id": 1, "image_id": 10, "category_id": 12, "bbox": [10, 10, 20, 40], "iscrowd": 0},
            {"id": 2, "image_id": 10, "category_id": 3, "bbox": [190, -5, 30, 20], "iscrowd": 0},  # clipped
            {"id": 3, "image_id": 10, "category_id": 7, "bbox": [0, 0, 200, 100], "iscrowd": 1},  # crowd
            {"id": 4, "image_id": 10, "category_id": 7, "bbox": [300, 10, 20, 20], "iscrowd": 0},  # outside
        ],
    }
    document.update(overrides)
    return document


def _write(path: Path, document: Any) -> Path:
    path.write_text(json.dumps(document), encoding="utf-8")
    return path


def test_edge_cases_crowd_outside_empty_images_and_category_gaps(tmp_path: Path) -> None:
    source = _write(tmp_path / "in.json", _coco())
    report = coco_to_yolo(source, tmp_path / "out", split="val")
    assert report.crowd_skipped == [3]
    assert report.clipped == [2]
    assert report.dropped_outside == [4]
    assert (report.images, report.boxes, report.empty_images) == (2, 2, 1)
    spec = read_dataset_yaml(tmp_path / "out" / "dataset.yaml")
    assert spec.names == ["bag", "pile", "litter"]  # sorted by COCO id: 3, 7, 12 -> 0, 1, 2
    assert spec.extra["coco_category_ids"] == [3, 7, 12]
    empty = tmp_path / "out" / "labels" / "val" / "a" / "two.txt"
    assert empty.is_file() and empty.read_text() == ""  # an explicit negative, not a missing file
    labels = read_labels(tmp_path / "out" / "labels" / "val" / "a" / "one.txt", 3)
    assert labels.class_id.tolist() == [2, 0]
    np.testing.assert_allclose(labels.xywhn[1], [195 / 200, 7.5 / 100, 10 / 200, 15 / 100], atol=1e-6)

    back = tmp_path / "back.json"
    yolo_to_coco(tmp_path / "out" / "dataset.yaml", back, split="val")
    document = json.loads(back.read_text())
    assert [c["id"] for c in document["categories"]] == [3, 7, 12]
    boxes = [(a["image_id"], a["category_id"], a["bbox"]) for a in document["annotations"]]
    assert boxes == [(10, 12, [10.0, 10.0, 20.0, 40.0]), (10, 3, [190.0, 0.0, 10.0, 15.0])]


def test_splits_merge_into_one_dataset_yaml_and_refuse_other_categories(tmp_path: Path) -> None:
    coco_to_yolo(_write(tmp_path / "train.json", _coco()), tmp_path / "out", split="train")
    coco_to_yolo(_write(tmp_path / "val.json", _coco()), tmp_path / "out", split="val")
    assert read_dataset_yaml(tmp_path / "out" / "dataset.yaml").splits == {
        "train": ["images/train"],
        "val": ["images/val"],
    }
    other = _coco(categories=[{"id": 3, "name": "bag"}, {"id": 7, "name": "pile"}, {"id": 12, "name": "can"}])
    with pytest.raises(CocoError, match="classes differ"):
        coco_to_yolo(_write(tmp_path / "other.json", other), tmp_path / "out", split="test")


def test_images_are_linked_when_given_and_missing_ones_reported(tmp_path: Path) -> None:
    images = tmp_path / "images"
    (images / "a").mkdir(parents=True)
    (images / "a" / "one.jpg").write_bytes(b"not checked here")
    report = coco_to_yolo(_write(tmp_path / "in.json", _coco()), tmp_path / "out", images_dir=images)
    assert report.images_linked == 1
    assert report.images_missing == [str(images / "a" / "two.jpg")]
    assert (tmp_path / "out" / "images" / "train" / "a" / "one.jpg").resolve() == (images / "a" / "one.jpg")


def _annotation(**fields: Any) -> dict[str, Any]:
    return {"id": 5, "image_id": 10, "category_id": 3, "bbox": [1, 2, 3, 4], "iscrowd": 0, **fields}


@pytest.mark.parametrize(
    ("annotations", "message"),
    [
        ([{"id": 5, "image_id": 10, "category_id": 3}], r"annotations\[0\] \(id 5\): missing 'bbox'"),
        ([_annotation(bbox=[1, 2, -3, 4])], r"annotation 5 \(annotations\[0\]\): bbox width and height"),
        ([_annotation(bbox=[1, 2, "x", 4])], r"annotation 5 \(annotations\[0\]\): bbox must be 4 finite"),
        ([_annotation(bbox=[1, 2, 3])], "bbox must be 4 finite numbers"),
        ([_annotation(image_id=99)], r"annotation 5 \(annotations\[0\]\): image_id 99 is not in"),
        ([_annotation(category_id=4)], "annotation 5 .*category_id 4 is not in the file's category list"),
        ([_annotation(iscrowd=2)], "iscrowd must be 0 or 1"),
        ([_annotation(image_id=1.5)], "'image_id' must be an integer"),
    ],
)
def test_bad_annotations_are_named(tmp_path: Path, annotations: list[Any], message: str) -> None:
    path = _write(tmp_path / "bad.json", _coco(annotations=annotations))
    with pytest.raises(CocoError, match=message):
        load_coco(path)


def test_bad_files_are_named(tmp_path: Path) -> None:
    broken = tmp_path / "broken.json"
    broken.write_text('{"images": [\n  {"id": 1,}\n]}', encoding="utf-8")
    with pytest.raises(CocoError, match=r"broken.json:2:\d+: invalid JSON"):
        load_coco(broken)
    with pytest.raises(CocoError, match="not found"):
        load_coco(tmp_path / "missing.json")
    with pytest.raises(CocoError, match="image id 10 is used more than once"):
        load_coco(_write(tmp_path / "dup.json", _coco(images=_coco()["images"] * 2)))
    escaping = _coco(images=[{"id": 10, "file_name": "../x.jpg", "width": 5, "height": 5}], annotations=[])
    with pytest.raises(CocoError, match="file_name must be a relative path"):
        load_coco(_write(tmp_path / "escape.json", escaping))
    with pytest.raises(CocoError, match="category name 'bag' is used by more than one"):
        load_coco(
            _write(
                tmp_path / "names.json",
                _coco(
                    categories=[{"id": 3, "name": "bag"}] * 1
                    + [{"id": 7, "name": "bag"}, {"id": 12, "name": "x"}]
                ),
            )
        )


def test_cli_converts_and_names_errors(tmp_path: Path) -> None:
    from typer.testing import CliRunner

    from streetwatch.cli import app

    source = _write(tmp_path / "in.json", _coco())
    result = CliRunner().invoke(app, ["dataset", "coco-to-yolo", str(source), str(tmp_path / "out")])
    assert result.exit_code == 0, result.output
    assert json.loads(result.output)["crowd_skipped"] == 1
    back = CliRunner().invoke(
        app,
        [
            "dataset",
            "yolo-to-coco",
            str(tmp_path / "out" / "dataset.yaml"),
            str(tmp_path / "b.json"),
            "--split",
            "train",
        ],
    )
    assert back.exit_code == 0 and json.loads(back.output)["boxes"] == 2
    bad = _write(tmp_path / "bad.json", _coco(annotations=[_annotation(category_id=4)]))
    failed = CliRunner().invoke(app, ["dataset", "coco-to-yolo", str(bad), str(tmp_path / "o2")])
    assert failed.exit_code == 2 and "annotation 5 (annotations[0]): category_id 4" in failed.output
