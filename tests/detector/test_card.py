"""Model cards: Ultralytics metadata makes a bare .onnx work; a card's fields win over metadata."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from detector import Detector, Layout
from detector.card import sha256_of
from detector.errors import ModelCardError
from detector.loader import load_model


def test_bare_ultralytics_onnx_needs_no_card(yolov8_int8: Path) -> None:
    card = load_model(yolov8_int8).card
    assert card.layout is Layout.ULTRALYTICS
    assert card.input.size_hw == (640, 640) and card.input.stride == 32 and not card.input.dynamic
    assert (card.input.channel_order, card.input.pixel_range, card.input.letterbox) == (
        "rgb",
        "0-1",
        "center",
    )
    assert (
        len(card.classes) == 80
        and card.classes[:3] == ["person", "bicycle", "car"]
        and card.classes[7] == "truck"
    )
    assert card.licence.startswith("AGPL-3.0")


def test_bundled_yolox_card_pins_its_file(yolox_card: Path, yolox_nano: Path) -> None:
    fields = yaml.safe_load(yolox_card.read_text(encoding="utf-8"))
    assert fields["sha256"] == sha256_of(yolox_nano)
    card = load_model(yolox_card).card
    assert card.layout is Layout.YOLOX and card.licence == "Apache-2.0"
    assert card.classes[0] == "person" and len(card.classes) == 80


def test_card_overrides_metadata(tmp_path: Path, yolov8_int8: Path) -> None:
    card = tmp_path / "v8.yaml"
    card.write_text(
        f"name: city-v8\nversion: '2'\npath: {yolov8_int8}\n"
        "thresholds: {confidence: 0.4, max_detections: 50}\nlicence: AGPL-3.0 (test asset)\n",
        encoding="utf-8",
    )
    detector = Detector(card, warmup=False)
    assert detector.card.name == "city-v8" and detector.card.version == "2"
    assert (detector.confidence, detector.max_detections) == (0.4, 50)
    assert detector.class_names[2] == "car"  # still from the ONNX metadata


def test_class_working_points_lower_what_the_detector_returns(tmp_path: Path, yolov8_int8: Path) -> None:
    """A class's working confidence below the card's confidence must still reach the rules."""
    card = tmp_path / "v8.yaml"
    card.write_text(
        f"name: city-v8\npath: {yolov8_int8}\n"
        "thresholds: {confidence: 0.4, classes: {car: 0.12, truck: 0.6}}\n",
        encoding="utf-8",
    )
    detector = Detector(card, warmup=False)
    assert detector.card.thresholds.classes == {"car": 0.12, "truck": 0.6}
    assert detector.confidence == 0.12


def test_working_points_of_unknown_classes_are_refused_with_the_card_line(
    tmp_path: Path, yolov8_int8: Path
) -> None:
    card = tmp_path / "v8.yaml"
    card.write_text(
        f"name: city-v8\npath: {yolov8_int8}\nthresholds:\n  classes: {{stall: 0.2}}\n", encoding="utf-8"
    )
    with pytest.raises(ModelCardError, match="'stall', not classes of the model"):
        Detector(card, warmup=False)
