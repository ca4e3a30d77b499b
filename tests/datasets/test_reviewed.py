"""export-reviewed on a real case store whose cases carry real footage as evidence (rendered by the
daemon's own evidence code), and the round trip: reviewed cases -> dataset -> one epoch of Ultralytics."""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np
import pytest
import yaml

from datasets.errors import ExportError
from datasets.reviewed import (
    ClassMapping,
    GroupBy,
    ImageSource,
    crop_window,
    export_reviewed,
    load_mapping,
    split_of,
)
from datasets.yolo import read_dataset_yaml, read_labels, split_images, xywhn_to_xyxy
from detector.detections import Detections
from detector.detector import Detector
from pipeline.evidence import crop_box
from tests.conftest import VTEST, YOLOX_CARD, require
from tests.datasets.builders import video_frames
from tests.datasets.reviewed_store import ReviewedStore, make_reviewed_store

VEHICLES = ("car", "truck", "bus")


@dataclass
class Reviewed:
    store: ReviewedStore
    filed: list[int]  # confirmed cases with evidence
    rejected: list[int]  # voided as false positives
    no_evidence: int
    boxes: dict[int, Detections]
    frames: dict[int, np.ndarray]


@pytest.fixture(scope="module")
def reviewed(tmp_path_factory: pytest.TempPathFactory) -> Reviewed:
    require(VTEST, "apt-get install opencv-doc")
    detector = Detector(require(YOLOX_CARD.parent / YOLOX_CARD.name, "model card"), confidence=0.3)
    vehicle_ids = [detector.class_names.index(name) for name in VEHICLES]
    # vtest.avi: a van and a car parked at the top right all through the clip
    frames = video_frames(VTEST, range(0, 790, 100))
    store = make_reviewed_store(tmp_path_factory.mktemp("store"), detector.class_names)
    found: list[tuple[np.ndarray, Detections]] = []
    for frame in frames:
        detections = detector(frame)
        vehicles = detections[np.isin(detections.class_id, vehicle_ids)]
        if len(vehicles):
            found.append((frame, vehicles))
    assert len(found) >= 6, "the footage shows vehicles in most frames"
    result = Reviewed(store, [], [], 0, {}, {})
    for i, (frame, vehicles) in enumerate(found):
        case_id = store.report(frame, vehicles, place=f"grid-{i}", minutes=i)
        result.boxes[case_id], result.frames[case_id] = vehicles, frame
        if i < 2:  # operators said: nothing wrong there
            store.act(case_id, "void", reason="false_positive")
            result.rejected.append(case_id)
        else:
            store.act(case_id, "file")
            result.filed.append(case_id)
    frame, vehicles = found[0]
    store.report(frame, vehicles, place="pending", minutes=30)  # never reviewed: not exported
    duplicate = store.report(frame, vehicles, place="duplicate", minutes=31)
    store.act(duplicate, "void", reason="duplicate")  # a real violation reported twice: neither class
    result.no_evidence = store.report(frame, vehicles, place="bare", evidence=(), minutes=32)
    store.act(result.no_evidence, "file")
    return result


def _export(reviewed: Reviewed, out: Path, **options: object) -> tuple[Path, dict[str, object]]:
    with reviewed.store.sessions() as session:
        yaml_path, report = export_reviewed(session, reviewed.store.settings.evidence_dir, out, **options)  # type: ignore[arg-type]
    return yaml_path, report.to_json()


def test_crop_window_is_where_the_daemon_cut_its_crop(reviewed: Reviewed) -> None:
    for case_id, detections in reviewed.boxes.items():
        frame = reviewed.frames[case_id]
        h, w = frame.shape[:2]
        edge = np.array([w - 30, h - 20, w + 10, h + 5], np.float32)  # reaches past the frame
        for xyxy in [*detections.xyxy, edge]:
            x0, y0, x1, y1 = crop_window(xyxy.tolist(), (w, h)) or (0, 0, 0, 0)
            np.testing.assert_array_equal(frame[y0:y1, x0:x1], crop_box(frame, xyxy))


def test_export_crops_labels_positives_and_keeps_negatives_empty(reviewed: Reviewed, tmp_path: Path) -> None:
    yaml_path, report = _export(reviewed, tmp_path / "ds", group_by=GroupBy.CASE, fractions=(0.5, 0.5, 0.0))
    spec = read_dataset_yaml(yaml_path)
    assert spec.names[:3] == ["car", "truck", "bus"] and "stall" in spec.names
    assert report["confirmed_cases"] == len(reviewed.filed) + 1 and report["rejected_cases"] == 2
    assert report["skipped"] == [{"case": reviewed.no_evidence, "reason": "no crop evidence image"}]
    images = [p for split in ("train", "val", "test") for p in split_images(spec, split)]
    assert len(images) == len(reviewed.filed) + len(reviewed.rejected)
    by_case = {int(p.name[4:10]): p for p in images}
    assert sorted(by_case) == sorted(reviewed.filed + reviewed.rejected)
    for case_id in reviewed.rejected:
        label = (
            by_case[case_id].parents[2]
            / "labels"
            / by_case[case_id].parent.name
            / f"{by_case[case_id].stem}.txt"
        )
        assert label.is_file() and label.read_text() == ""  # a hard negative
    for case_id in reviewed.filed:
        image = cv2.imread(str(by_case[case_id]))
        h, w = image.shape[:2]
        label_file = (
            by_case[case_id].parents[2]
            / "labels"
            / by_case[case_id].parent.name
            / f"{by_case[case_id].stem}.txt"
        )
        labels = read_labels(label_file, len(spec.names))
        detections = reviewed.boxes[case_id]
        best = int(np.argmax(detections.confidence))
        frame = reviewed.frames[case_id]
        window = crop_window(detections.xyxy[best].tolist(), (frame.shape[1], frame.shape[0]))
        assert window is not None and (window[2] - window[0], window[3] - window[1]) == (w, h)
        # the most confident box is in its crop, where it was in the frame
        expected = detections.xyxy[best] - np.array([window[0], window[1]] * 2, np.float32)
        expected = np.clip(expected, 0, [w, h, w, h])
        got = xywhn_to_xyxy(labels.xywhn, w, h)
        assert np.abs(got - expected).max(axis=1).min() < 0.01
        assert spec.names[int(labels.class_id[np.abs(got - expected).max(axis=1).argmin()])] in VEHICLES
    saved = json.loads((tmp_path / "ds" / "export-report.json").read_text())
    assert saved["images"] == report["images"] and sum(saved["images"].values()) == len(images)


def test_export_frames_labels_every_reported_box(reviewed: Reviewed, tmp_path: Path) -> None:
    yaml_path, report = _export(
        reviewed, tmp_path / "ds", source=ImageSource.FRAME, fractions=(1.0, 0.0, 0.0)
    )
    spec = read_dataset_yaml(yaml_path)
    images = split_images(spec, "train")
    assert report["images"] == {"train": len(images), "val": 0, "test": 0}
    total = sum(len(reviewed.boxes[c]) for c in reviewed.filed)
    assert sum(report["boxes_per_class"].values()) == total  # type: ignore[union-attr]
    case_id = reviewed.filed[0]
    image = next(p for p in images if p.name.startswith(f"case{case_id:06d}_frame"))
    frame = reviewed.frames[case_id]
    labels = read_labels(image.parents[2] / "labels" / "train" / f"{image.stem}.txt", len(spec.names))
    got = xywhn_to_xyxy(labels.xywhn, frame.shape[1], frame.shape[0])
    np.testing.assert_allclose(
        got, np.clip(reviewed.boxes[case_id].xyxy, 0, [frame.shape[1], frame.shape[0]] * 2), atol=0.01
    )


def test_frames_say_they_are_blurred_outside_the_zones_and_training_puts_that_in_the_card(
    reviewed: Reviewed, tmp_path: Path
) -> None:
    from datasets.train import copy_input_blur

    demo_card = Path(__file__).resolve().parents[2] / "models" / "streetwatch-demo-n.yaml"

    frames, _ = _export(reviewed, tmp_path / "frames", source=ImageSource.FRAME)
    crops, _ = _export(reviewed, tmp_path / "crops", source=ImageSource.CROP)
    # undrawn frames are redacted by the default policy; crops are cut around the kept-sharp boxes
    assert yaml.safe_load(frames.read_text(encoding="utf-8"))["blurred_outside_zones"] == 0.04
    assert "blurred_outside_zones" not in yaml.safe_load(crops.read_text(encoding="utf-8"))
    card = tmp_path / "city.yaml"
    card.write_text(
        "# how it was trained\n" + "name:" + demo_card.read_text(encoding="utf-8").split("\nname:", 1)[1]
    )
    (tmp_path / "streetwatch-demo-n.onnx").symlink_to(demo_card.with_suffix(".onnx"))
    assert copy_input_blur(crops, card) is None and Detector(card).card.input.blur_outside_zones is None
    assert copy_input_blur(frames, card) == 0.04
    assert Detector(card).card.input.blur_outside_zones == 0.04  # the daemon blurs its frames the same way
    assert card.read_text(encoding="utf-8").startswith("# how it was trained\n")


def test_splits_are_stable_hashes_of_the_group() -> None:
    fractions = (0.8, 0.1, 0.1)
    splits = [split_of(f"incident:{i}", fractions) for i in range(2000)]
    assert splits == [split_of(f"incident:{i}", fractions) for i in range(2000)]
    assert (
        0.75 < splits.count("train") / 2000 < 0.85
        and splits.count("val") > 100
        and splits.count("test") > 100
    )
    assert splits != [split_of(f"incident:{i}", fractions, seed=1) for i in range(2000)]


def test_unmapped_class_names_the_box(reviewed: Reviewed, tmp_path: Path) -> None:
    mapping = ClassMapping(["stall", "garbage"], {})
    with pytest.raises(
        ExportError,
        match=r"case \d+ sighting \d+ box 0: detector class '(car|truck|bus)' "
        r"\(illegal_parking, event 0505\) is not a dataset class",
    ):
        _export(reviewed, tmp_path / "ds", mapping=mapping)
    dropped = ClassMapping(["stall"], {"illegal_parking": {"*": None}})
    with pytest.raises(ExportError, match="nothing to export"):  # negatives have no place without positives
        _export(reviewed, tmp_path / "ds2", mapping=dropped, source=ImageSource.FRAME)


def test_strict_refuses_cases_without_evidence(reviewed: Reviewed, tmp_path: Path) -> None:
    with pytest.raises(ExportError, match=rf"case {reviewed.no_evidence}: no crop evidence image"):
        _export(reviewed, tmp_path / "ds", strict=True)


def test_mapping_file_errors_name_the_line(tmp_path: Path) -> None:
    good = tmp_path / "good.yaml"
    good.write_text(
        "classes: [car, stall]\nviolations:\n  street_stall: {'*': stall}\n  '0506': {bicycle: null}\n"
    )
    mapping = load_mapping(good)
    assert mapping.class_id("umbrella", "street_stall", "0501", "x") == 1
    assert mapping.class_id("bicycle", "illegal_parking", "0506", "x") is None
    assert mapping.class_id("car", "illegal_parking", "0505", "x") == 0
    bad = tmp_path / "bad.yaml"
    bad.write_text("classes: [car, stall]\nviolations:\n  street_stall:\n    '*': stand\n")
    with pytest.raises(ExportError, match=r"bad.yaml:4: street_stall.\*: 'stand' is not one of the classes"):
        load_mapping(bad)


@pytest.mark.train
def test_round_trip_reviewed_cases_train_one_epoch(reviewed: Reviewed, tmp_path: Path) -> None:
    pytest.importorskip("ultralytics")
    from datasets.train import train

    yaml_path, report = _export(reviewed, tmp_path / "ds", group_by=GroupBy.CASE, fractions=(0.5, 0.5, 0.0))
    images: dict[str, int] = report["images"]  # type: ignore[assignment]
    assert images["train"] > 0 and images["val"] > 0
    import torch

    threads_before = torch.get_num_threads()
    result = train(
        "yolov8n.yaml",
        yaml_path,
        epochs=1,
        imgsz=64,
        batch=4,
        workers=0,
        project=tmp_path / "runs",
        name="roundtrip",
        out_dir=tmp_path / "models",
        hue_shift=0.5,
        threads=threads_before + 1,
    )
    assert result.weights.is_file() and result.onnx is not None and result.card is not None
    # the training ran on the threads asked for (Ultralytics would take cores - 1), the process keeps its own
    assert result.threads == threads_before + 1 and f"--threads {threads_before + 1}" in result.command
    assert torch.get_num_threads() == threads_before
    # the hue rotation reached Ultralytics and the recorded command reproduces it
    trained_with = yaml.safe_load((tmp_path / "runs" / "roundtrip" / "args.yaml").read_text(encoding="utf-8"))
    assert trained_with["hsv_h"] == 0.5 and "--hue-shift 0.5" in result.command
    assert "metrics/mAP50(B)" in result.metrics
    # what Ultralytics read: every exported training image, the hard negatives as images without boxes
    from ultralytics.data.utils import load_dataset_cache_file

    cache = load_dataset_cache_file(tmp_path / "ds" / "labels" / "train.cache")
    negatives: dict[str, int] = report["hard_negatives"]  # type: ignore[assignment]
    assert len(cache["labels"]) == images["train"]
    assert sum(len(label["cls"]) == 0 for label in cache["labels"]) == negatives["train"]
    # and the exported model runs in streetwatch's detector with the dataset's classes
    detector = Detector(result.card, confidence=0.001)
    assert detector.class_names == read_dataset_yaml(yaml_path).names
    assert detector.card.input.size_hw == (64, 64)
    frame = cv2.imread(str(split_images(read_dataset_yaml(yaml_path), "val")[0]))
    assert detector(frame).xyxy.shape[1] == 4


@pytest.mark.parametrize("hue_shift", [-0.1, 0.6])
def test_a_hue_shift_outside_the_colour_circle_is_refused_before_training(
    reviewed: Reviewed, tmp_path: Path, hue_shift: float
) -> None:
    from datasets.errors import TrainError
    from datasets.train import train

    yaml_path, _ = _export(reviewed, tmp_path / "ds", group_by=GroupBy.CASE, fractions=(0.5, 0.5, 0.0))
    with pytest.raises(TrainError, match=rf"hue_shift must be between 0 and 0.5 .*got {hue_shift}"):
        train("yolov8n.yaml", yaml_path, hue_shift=hue_shift, project=tmp_path / "runs")
    assert not (tmp_path / "runs").exists()


def test_zero_training_threads_are_refused_before_training(reviewed: Reviewed, tmp_path: Path) -> None:
    from datasets.errors import TrainError
    from datasets.train import train

    yaml_path, _ = _export(reviewed, tmp_path / "ds", group_by=GroupBy.CASE, fractions=(0.5, 0.5, 0.0))
    with pytest.raises(TrainError, match=r"threads must be >= 1; got 0"):
        train("yolov8n.yaml", yaml_path, threads=0, project=tmp_path / "runs")
    assert not (tmp_path / "runs").exists()


def test_cli_exports_from_the_store_data_dir(
    reviewed: Reviewed, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from typer.testing import CliRunner

    from streetwatch.cli import app

    monkeypatch.delenv("STREETWATCH_DATABASE_URL", raising=False)
    monkeypatch.setenv("STREETWATCH_DATA_DIR", str(reviewed.store.settings.data_dir))  # restored afterwards
    out = tmp_path / "ds"
    command = ["dataset", "export-reviewed", "--split", "1,0,0", "--json"]
    result = CliRunner().invoke(app, [*command, str(out), "--images", "crop"])
    assert result.exit_code == 0, result.output
    summary = json.loads(result.output)
    assert summary["images"]["train"] == len(reviewed.filed) + len(reviewed.rejected)
    # by default the undrawn frames: a false positive's frame with nothing else labelled in it is dropped
    frames = CliRunner().invoke(app, [*command, str(tmp_path / "frames")])
    assert frames.exit_code == 0, frames.output
    assert json.loads(frames.output)["images"]["train"] == len(reviewed.filed)
    assert all("_frame_" in p.name for p in (tmp_path / "frames" / "images" / "train").iterdir())
    again = CliRunner().invoke(app, ["dataset", "export-reviewed", str(out)])
    assert again.exit_code == 2 and "exists and is not empty" in again.output
