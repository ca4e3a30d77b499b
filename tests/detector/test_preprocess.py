"""Letterboxing: geometry as Ultralytics rounds it, colour order and scaling per card, rectangles."""

from __future__ import annotations

import numpy as np
import pytest

from detector.card import InputSpec
from detector.errors import FrameError
from detector.preprocess import Preprocessor


def spec(**fields: object) -> InputSpec:
    return InputSpec.model_validate({"size_hw": (640, 640), **fields})


@pytest.mark.parametrize(
    ("frame_hw", "resized_hw", "pad_xy"),
    [
        ((576, 768), (480, 640), (0, 80)),  # vtest.avi
        ((432, 768), (360, 640), (0, 140)),  # car-detection.mp4
        ((1080, 1920), (360, 640), (0, 140)),
        ((640, 640), (640, 640), (0, 0)),
        ((700, 300), (640, 274), (183, 0)),  # portrait: odd padding split like Ultralytics (183 | 183)
    ],
)
def test_letterbox_geometry(
    frame_hw: tuple[int, int], resized_hw: tuple[int, int], pad_xy: tuple[int, int]
) -> None:
    pre = Preprocessor(spec())
    _, boxes = pre([np.zeros((*frame_hw, 3), np.uint8)])
    assert boxes[0].resized_hw == resized_hw
    assert (boxes[0].pad_x, boxes[0].pad_y) == pad_xy


def test_boxes_round_trip_to_frame_pixels() -> None:
    pre = Preprocessor(spec())
    _, (box,) = pre([np.zeros((576, 768, 3), np.uint8)])
    frame_xyxy = np.array([[652.0, 45.0, 722.0, 100.0]], np.float32)
    input_xyxy = frame_xyxy * (640 / 768) + np.array([0, 80, 0, 80], np.float32)
    np.testing.assert_allclose(box.boxes_to_frame(input_xyxy), frame_xyxy, atol=1e-3)


def test_colour_order_scaling_and_padding() -> None:
    frame = np.zeros((32, 64, 3), np.uint8)
    frame[..., 0], frame[..., 1], frame[..., 2] = 10, 20, 30  # B, G, R
    rgb = Preprocessor(InputSpec(size_hw=(64, 64)))([frame])[0]
    bgr = Preprocessor(
        InputSpec(size_hw=(64, 64), channel_order="bgr", pixel_range="0-255", letterbox="top_left")
    )([frame])[0]
    # centred: rows 16..47 hold the image; RGB order, 0-1
    np.testing.assert_allclose(rgb[0, :, 32, 10], [30 / 255, 20 / 255, 10 / 255], rtol=1e-6)
    np.testing.assert_allclose(rgb[0, :, 0, 0], [114 / 255] * 3, rtol=1e-6)
    # top-left: rows 0..31 hold the image; BGR order, 0-255
    np.testing.assert_array_equal(bgr[0, :, 5, 5], [10, 20, 30])
    np.testing.assert_array_equal(bgr[0, :, 40, 5], [114, 114, 114])


def test_dynamic_input_uses_smallest_stride_rectangle() -> None:
    pre = Preprocessor(spec(dynamic=True))
    tensor, (box,) = pre([np.zeros((576, 768, 3), np.uint8)])
    assert tensor.shape == (1, 3, 480, 640)
    assert (box.pad_x, box.pad_y) == (0, 0)
    tensor, _ = pre([np.zeros((432, 768, 3), np.uint8)])
    assert tensor.shape == (1, 3, 384, 640)  # 360 rounded up to a multiple of 32


def test_a_frame_not_to_be_enlarged_runs_at_its_own_size_on_a_dynamic_model() -> None:
    pre = Preprocessor(spec(dynamic=True))
    crop = np.zeros((144, 178, 3), np.uint8)  # vtest's van zone cropped at the stream's pixels
    filled, (box,) = pre([crop])
    assert filled.shape == (1, 3, 544, 640) and box.resized_hw == (518, 640)  # enlarged 3.6x
    native, (box,) = pre([crop], max_scale=[1.0])
    assert native.shape == (1, 3, 160, 192)  # its own size rounded up to the stride: ~11x fewer pixels
    assert box.resized_hw == (144, 178) and (box.pad_x, box.pad_y) == (7, 8)
    frame_xyxy = np.array([[20.0, 30.0, 120.0, 100.0]], np.float32)
    np.testing.assert_allclose(
        box.boxes_to_frame(frame_xyxy + np.float32([7, 8, 7, 8])), frame_xyxy, atol=1e-3
    )
    big, (box,) = pre([np.zeros((1080, 1920, 3), np.uint8)], max_scale=[1.0])
    assert big.shape == (1, 3, 384, 640) and box.resized_hw == (360, 640)  # a larger one still shrinks


def test_a_fixed_model_pads_a_frame_not_to_be_enlarged() -> None:
    pre = Preprocessor(spec())
    tensor, (box,) = pre([np.full((144, 178, 3), 50, np.uint8)], max_scale=[1.0])
    assert tensor.shape == (1, 3, 640, 640) and box.resized_hw == (144, 178)
    assert tensor[0, 0, box.pad_y + 10, box.pad_x + 10] == pytest.approx(50 / 255)
    assert tensor[0, 0, 0, 0] == pytest.approx(114 / 255)  # the rest is padding


def test_one_max_scale_per_frame() -> None:
    with pytest.raises(ValueError, match="1 max_scale values for 2 frames"):
        Preprocessor(spec())([np.zeros((8, 8, 3), np.uint8)] * 2, max_scale=[1.0])


def test_input_buffer_is_reused_between_calls() -> None:
    pre = Preprocessor(spec())
    first, _ = pre([np.zeros((576, 768, 3), np.uint8)])
    second, _ = pre([np.full((576, 768, 3), 7, np.uint8)])
    assert first is second


@pytest.mark.parametrize(
    ("frame", "message"),
    [
        (np.zeros((0, 0, 3), np.uint8), "empty frame"),
        (np.zeros((10, 10), np.uint8), "expected HxWx3"),
        (np.zeros((10, 10, 4), np.uint8), "expected HxWx3"),
        (np.zeros((10, 10, 3), np.float32), "dtype float32, expected uint8"),
        (None, "expected a numpy array"),
    ],
)
def test_bad_frames_are_named(frame: object, message: str) -> None:
    with pytest.raises(FrameError, match=message):
        Preprocessor(spec())([frame])  # type: ignore[list-item]
