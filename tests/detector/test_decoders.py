"""Decoders, NMS and box mapping on hand-built models whose outputs are known exactly."""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import pytest

from detector import Detector, Layout
from tests.detector.onnx_builders import constant_output_model, ultralytics_metadata

NAMES = ["car", "person", "stall"]


def ultralytics_output(
    rows: list[tuple[float, float, float, float, int, float]], nc: int = 3, n: int = 16
) -> np.ndarray:
    """[1, 4+nc, n]: one column per (cx, cy, w, h, class, score); the rest empty."""
    out = np.zeros((1, 4 + nc, n), np.float32)
    for col, (cx, cy, w, h, cls, score) in enumerate(rows):
        out[0, :4, col] = (cx, cy, w, h)
        out[0, 4 + cls, col] = score
    return out


def test_ultralytics_layout_maps_boxes_back_and_suppresses_per_class(tmp_path: Path) -> None:
    output = ultralytics_output(
        [
            (32, 32, 20, 10, 0, 0.9),  # kept
            (33, 32, 20, 10, 0, 0.8),  # same class, IoU ~0.9 with the first: suppressed
            (33, 32, 20, 10, 1, 0.7),  # same box, other class: kept (class-aware NMS)
            (10, 10, 4, 4, 2, 0.2),  # below the threshold
        ]
    )
    model = constant_output_model(tmp_path / "u.onnx", output, metadata=ultralytics_metadata(NAMES, (64, 64)))
    detector = Detector(model, confidence=0.25, iou=0.5)
    assert detector.card.layout is Layout.ULTRALYTICS
    assert detector.class_names == NAMES
    # A 128x64 (w x h) frame is halved into 64x32 and padded by 16 rows at the top.
    found = detector(np.zeros((64, 128, 3), np.uint8))
    assert found.class_id.tolist() == [0, 1]
    np.testing.assert_allclose(found.confidence, [0.9, 0.7], rtol=1e-6)
    np.testing.assert_allclose(found.xyxy[0], [44, 22, 84, 42], atol=1e-4)


def test_end2end_layout_keeps_model_suppressed_boxes(tmp_path: Path) -> None:
    rows = np.zeros((1, 10, 6), np.float32)
    rows[0, 0] = (8, 8, 24, 24, 0.95, 2)
    rows[0, 1] = (9, 8, 25, 24, 0.60, 2)  # overlapping, same class: the model already decided to keep it
    rows[0, 2] = (40, 40, 60, 60, 0.10, 1)  # below the threshold
    model = constant_output_model(
        tmp_path / "e2e.onnx", rows, metadata=ultralytics_metadata(NAMES, (64, 64), end2end=True)
    )
    detector = Detector(model, confidence=0.25)
    assert detector.card.layout is Layout.END2END
    found = detector(np.zeros((64, 64, 3), np.uint8))
    assert found.class_id.tolist() == [2, 2]
    np.testing.assert_allclose(found.xyxy, [[8, 8, 24, 24], [9, 8, 25, 24]], atol=1e-4)


def test_yolox_layout_decodes_grid_and_stride(tmp_path: Path) -> None:
    # 64x64 input, strides 8/16/32: 64 + 16 + 4 = 84 grid cells; 2 classes -> 7 columns.
    out = np.zeros((1, 84, 7), np.float32)
    index = 64 + 2 * 4 + 1  # stride 16 level, cell x=1, y=2
    out[0, index] = (0.5, 0.5, math.log(2.0), 0.0, 0.9, 0.1, 0.8)
    card = tmp_path / "x.yaml"
    model = constant_output_model(tmp_path / "x.onnx", out, output_name="output")
    card.write_text(
        "name: tiny-yolox\npath: x.onnx\nlayout: yolox\nclasses: [litter, cart]\n"
        "input: {size_hw: [64, 64]}\nstrides: [8, 16, 32]\n",
        encoding="utf-8",
    )
    assert model.exists()
    detector = Detector(card, confidence=0.3)
    assert detector.card.input.channel_order == "bgr" and detector.card.input.letterbox == "top_left"
    found = detector(np.zeros((64, 64, 3), np.uint8))
    assert found.class_id.tolist() == [1]
    np.testing.assert_allclose(found.confidence, [0.72], rtol=1e-5)
    # centre ((0.5+1)*16, (0.5+2)*16) = (24, 40), size (2*16, 1*16)
    np.testing.assert_allclose(found.xyxy[0], [8, 32, 40, 48], atol=1e-4)


def grid_rows(count: int) -> list[tuple[float, float, float, float, int, float]]:
    """``count`` separate 4x4 boxes on a grid, scores falling slowly."""
    return [(4 + 8 * (i % 8), 4 + 8 * (i // 8), 4, 4, i % 3, 0.9 - i * 0.001) for i in range(count)]


def test_dense_scene_keeps_far_more_than_twenty_boxes(tmp_path: Path) -> None:
    output = ultralytics_output(grid_rows(60), n=64)
    model = constant_output_model(tmp_path / "d.onnx", output, metadata=ultralytics_metadata(NAMES, (64, 64)))
    assert len(Detector(model)(np.zeros((64, 64, 3), np.uint8))) == 60


@pytest.mark.parametrize("cap", [1, 7, 40])
def test_max_detections_keeps_the_best(tmp_path: Path, cap: int) -> None:
    output = ultralytics_output(grid_rows(60), n=64)
    model = constant_output_model(tmp_path / "d.onnx", output, metadata=ultralytics_metadata(NAMES, (64, 64)))
    found = Detector(model, max_detections=cap)(np.zeros((64, 64, 3), np.uint8))
    assert len(found) == cap
    assert np.all(np.diff(found.confidence) <= 0)
    assert found.confidence[0] == pytest.approx(0.9)


def test_batch_of_frames_matches_single_calls(tmp_path: Path) -> None:
    output = ultralytics_output([(32, 32, 20, 10, 0, 0.9), (10, 50, 8, 8, 1, 0.6)])
    model = constant_output_model(tmp_path / "u.onnx", output, metadata=ultralytics_metadata(NAMES, (64, 64)))
    detector = Detector(model)
    frames = [
        np.zeros((64, 128, 3), np.uint8),
        np.zeros((48, 48, 3), np.uint8),
        np.zeros((100, 30, 3), np.uint8),
    ]
    batch = detector.detect_batch(frames)
    for frame, result in zip(frames, batch, strict=True):
        single = detector(frame)
        np.testing.assert_array_equal(result.xyxy, single.xyxy)
        np.testing.assert_array_equal(result.class_id, single.class_id)
        assert np.all(result.xyxy[:, 2] <= frame.shape[1]) and np.all(result.xyxy[:, 3] <= frame.shape[0])
