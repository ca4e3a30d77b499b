"""streetwatch evaluate against Ultralytics' own validation of the same ONNX model on the same images.

The dataset is real footage pseudo-labelled by another model (YOLOX-Nano), evaluated model YOLOv8n INT8:
a model and labels that disagree in realistic ways (car vs truck, missed and extra people).
"""

from __future__ import annotations

import json
from pathlib import Path

import cv2
import numpy as np
import pytest
from typer.testing import CliRunner

from datasets.errors import DatasetError
from datasets.evaluate import evaluate
from streetwatch.cli import app
from tests.conftest import CAR_DETECTION, VTEST, YOLOV8_INT8, YOLOX_CARD, require
from tests.datasets.builders import pseudo_labelled_dataset, video_frames


@pytest.fixture(scope="module")
def dataset(tmp_path_factory: pytest.TempPathFactory) -> Path:
    require(YOLOX_CARD, "model card")
    require(YOLOV8_INT8, "shared/ data beside the checkout")
    frames = video_frames(require(VTEST, "apt-get install opencv-doc"), range(0, 790, 60))
    frames += video_frames(require(CAR_DETECTION, "shared/ data"), range(0, 375, 75))
    return pseudo_labelled_dataset(tmp_path_factory.mktemp("pseudo"), frames, YOLOX_CARD)


def _ultralytics_val(dataset: Path, tmp_path: Path, *, multi_label: bool) -> tuple[float, float]:
    pytest.importorskip("ultralytics")
    from ultralytics import YOLO
    from ultralytics.models.yolo.detect import val as detect_val

    original = detect_val.nms.non_max_suppression

    def single_label(*args: object, **kwargs: object) -> object:
        return original(*args, **{**kwargs, "multi_label": False})  # type: ignore[arg-type]

    try:
        if not multi_label:
            detect_val.nms.non_max_suppression = single_label  # type: ignore[assignment]
        model = YOLO(str(YOLOV8_INT8), task="detect")
        metrics = model.val(
            data=str(dataset),
            split="val",
            imgsz=640,
            batch=1,
            conf=0.001,
            iou=0.7,
            device="cpu",
            plots=False,
            verbose=False,
            project=str(tmp_path / "runs"),
        )
    finally:
        detect_val.nms.non_max_suppression = original
    return float(metrics.box.map50), float(metrics.box.map)


@pytest.mark.train
def test_agrees_with_ultralytics_val(dataset: Path, tmp_path: Path) -> None:
    ours = evaluate(YOLOV8_INT8, dataset, split="val", protocol="ultralytics")
    theirs = _ultralytics_val(dataset, tmp_path, multi_label=True)
    assert ours.labels > 50 and 0.3 < ours.map50 < 0.99  # a real, imperfect result
    assert ours.map50 == pytest.approx(theirs[0], abs=0.02)
    assert ours.map50_95 == pytest.approx(theirs[1], abs=0.02)
    # the daemon's protocol (one class per box) is Ultralytics with multi_label off
    daemon = evaluate(YOLOV8_INT8, dataset, split="val")
    single = _ultralytics_val(dataset, tmp_path, multi_label=False)
    assert daemon.map50 == pytest.approx(single[0], abs=0.02)
    assert daemon.map50_95 == pytest.approx(single[1], abs=0.02)


def test_cli_prints_json_and_names_bad_input(dataset: Path, tmp_path: Path) -> None:
    out = tmp_path / "eval.json"
    result = CliRunner().invoke(app, ["evaluate", str(YOLOV8_INT8), str(dataset), "--json", str(out)])
    assert result.exit_code == 0, result.output
    document = json.loads(out.read_text())
    assert document["split"] == "val" and document["images"] == 19
    assert {row["class"] for row in document["per_class"]} >= {"person", "car"}
    assert document["map50"] == pytest.approx(evaluate(YOLOV8_INT8, dataset).map50, abs=1e-5)
    bad = CliRunner().invoke(app, ["evaluate", str(YOLOV8_INT8), str(dataset), "--split", "test"])
    assert bad.exit_code == 2 and "no 'test' split" in bad.output


def test_dataset_classes_unknown_to_the_model(tmp_path: Path) -> None:
    (tmp_path / "images" / "val").mkdir(parents=True)
    cv2.imwrite(str(tmp_path / "images" / "val" / "a.jpg"), np.zeros((32, 32, 3), np.uint8))
    (tmp_path / "dataset.yaml").write_text("val: images/val\nnames: [car, stall]\n")
    with pytest.raises(DatasetError, match="1 dataset class\\(es\\) are not classes of the model: 'stall'"):
        evaluate(require(YOLOV8_INT8, "shared data"), tmp_path / "dataset.yaml")


def test_training_writes_each_classs_working_confidence_into_the_card(dataset: Path, tmp_path: Path) -> None:
    """After training, each class with enough validation boxes gets the confidence where its F2 peaks on the
    validation split, as the daemon runs the model; the card keeps its header and loads with them."""
    from datasets.train import MIN_WORKING_LABELS, choose_working_points
    from detector import Detector

    card = tmp_path / "city.yaml"
    card.write_text(f"# written by a test\nname: city\npath: {YOLOV8_INT8}\n", encoding="utf-8")
    points = choose_working_points(card, dataset)

    evaluation = evaluate(card, dataset, split="val", iou=0.45)  # the card's default NMS, as the daemon
    expected = {
        evaluation.class_names[c.class_id]: round(c.working_confidence, 3)
        for c in evaluation.per_class
        if c.labels >= MIN_WORKING_LABELS and c.working_confidence is not None
    }
    assert {"car", "person"} <= set(points) and points == expected
    assert all(0.0 < value < 1.0 for value in points.values())
    assert card.read_text(encoding="utf-8").startswith("# written by a test\n")
    assert Detector(card, warmup=False).card.thresholds.classes == points
