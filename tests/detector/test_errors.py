"""Every bad model or input gets a clear error naming the file and what was expected."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from detector import (
    ChecksumMismatchError,
    Detector,
    FrameError,
    ModelCardError,
    ModelFileError,
    ModelInputError,
    UnknownLayoutError,
)
from tests.detector.onnx_builders import constant_output_model, ultralytics_metadata


def test_missing_model_file(tmp_path: Path) -> None:
    missing = tmp_path / "nowhere.onnx"
    with pytest.raises(ModelFileError, match=r"nowhere\.onnx: model file not found"):
        Detector(missing)


def test_not_an_onnx_file(tmp_path: Path) -> None:
    fake = tmp_path / "weights.onnx"
    fake.write_bytes(b"\x89PNG\r\n\x1a\n not a model")
    with pytest.raises(ModelFileError, match=r"weights\.onnx: cannot load: expected an ONNX model"):
        Detector(fake)


def test_folder_instead_of_model(tmp_path: Path) -> None:
    with pytest.raises(ModelFileError, match="not a file"):
        Detector(tmp_path)


def test_sha256_mismatch_names_card_and_both_digests(tmp_path: Path) -> None:
    constant_output_model(
        tmp_path / "m.onnx",
        np.zeros((1, 7, 8), np.float32),
        metadata=ultralytics_metadata(["a", "b", "c"], (64, 64)),
    )
    card = tmp_path / "m.yaml"
    card.write_text(f"name: m\npath: m.onnx\nsha256: {'ab' * 32}\n", encoding="utf-8")
    with pytest.raises(ChecksumMismatchError) as caught:
        Detector(card)
    message = str(caught.value)
    assert "m.onnx: sha256 mismatch: expected abab" in message and "pinned by card" in message
    assert "m.yaml" in message


def test_unknown_output_layout_without_card(tmp_path: Path) -> None:
    # [1, 100, 9]: more rows than columns, not a YOLOX grid for 64x64, not 6 columns.
    model = constant_output_model(tmp_path / "odd.onnx", np.zeros((1, 100, 9), np.float32))
    with pytest.raises(ModelCardError, match=r"odd\.onnx: cannot describe this model without a card.*layout"):
        Detector(model)


def test_output_shape_disagrees_with_card_layout(tmp_path: Path) -> None:
    constant_output_model(tmp_path / "m.onnx", np.zeros((1, 100, 9), np.float32))
    card = tmp_path / "m.yaml"
    card.write_text("name: m\npath: m.onnx\nlayout: end2end\nclasses: [a]\n", encoding="utf-8")
    with pytest.raises(
        UnknownLayoutError, match=r"has shape \[1, 100, 9\], expected \[B, K, 6\] for layout 'end2end'"
    ):
        Detector(card)


def test_class_count_disagrees_with_output(tmp_path: Path) -> None:
    constant_output_model(tmp_path / "m.onnx", np.zeros((1, 7, 64), np.float32))
    card = tmp_path / "m.yaml"
    card.write_text(
        "name: m\npath: m.onnx\nlayout: ultralytics\nclasses: [a, b]\ninput: {size_hw: [64, 64]}\n"
    )
    with pytest.raises(UnknownLayoutError, match=r"expected \[B, 6, N\].*with 2 classes"):
        Detector(card)


@pytest.mark.parametrize(
    ("input_shape", "input_type", "message"),
    [
        ([1, 3, 64, 64], "int64", r"type tensor\(int64\), expected tensor\(float\)"),
        ([1, 1, 64, 64], "float", "1 channels .* expected 3"),
        ([1, 64, 64], "float", r"expected 4 axes \[batch, 3, height, width\]"),
    ],
)
def test_model_input_that_is_not_an_image_batch(
    tmp_path: Path, input_shape: list[int], input_type: str, message: str
) -> None:
    model = constant_output_model(
        tmp_path / "in.onnx",
        np.zeros((1, 7, 64), np.float32),
        input_shape=input_shape,
        input_type=input_type,
        metadata=ultralytics_metadata(["a", "b", "c"], (64, 64)),
    )
    with pytest.raises(ModelInputError, match=message) as caught:
        Detector(model)
    assert "in.onnx" in str(caught.value)


def test_card_errors_name_file_line_and_field(tmp_path: Path) -> None:
    constant_output_model(
        tmp_path / "m.onnx",
        np.zeros((1, 7, 64), np.float32),
        metadata=ultralytics_metadata(["a", "b", "c"], (64, 64)),
    )
    card = tmp_path / "m.yaml"
    card.write_text("name: m\npath: m.onnx\nthresholds:\n  confidence: 1.5\ncolour: red\n", encoding="utf-8")
    with pytest.raises(ModelCardError) as caught:
        Detector(card)
    message = str(caught.value)
    assert "m.yaml:4: thresholds.confidence: Input should be less than or equal to 1" in message
    assert "m.yaml:5: colour: Extra inputs are not permitted" in message


def test_card_yaml_syntax_error_has_line_and_column(tmp_path: Path) -> None:
    card = tmp_path / "bad.yaml"
    card.write_text("name: m\npath: [unclosed\n", encoding="utf-8")
    with pytest.raises(ModelCardError, match=r"bad\.yaml:3:1: invalid YAML"):
        Detector(card)


def test_card_without_path(tmp_path: Path) -> None:
    card = tmp_path / "c.yaml"
    card.write_text("name: m\n", encoding="utf-8")
    with pytest.raises(ModelCardError, match=r"c\.yaml: missing field 'path'"):
        Detector(card)


def test_frame_errors_from_the_detector(tmp_path: Path) -> None:
    model = constant_output_model(
        tmp_path / "m.onnx",
        np.zeros((1, 7, 64), np.float32),
        metadata=ultralytics_metadata(["a", "b", "c"], (64, 64)),
    )
    detector = Detector(model)
    with pytest.raises(FrameError, match="frame 1: empty frame"):
        detector.detect_batch([np.zeros((8, 8, 3), np.uint8), np.zeros((0, 8, 3), np.uint8)])
