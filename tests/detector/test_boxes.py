from __future__ import annotations

import numpy as np
import pytest

from detector.boxes import box_iou_batch, box_iou_pairs


def _box(x: float, y: float, w: float = 10.0, h: float = 10.0) -> list[float]:
    return [x, y, x + w, y + h]


def test_iou_batch_by_hand() -> None:
    a = np.array([_box(0, 0), [0, 0, 0, 0]], np.float32)
    b = np.array([_box(0, 0), _box(5, 0), _box(20, 20), _box(0, 0, 20)], np.float32)
    # identical, half-shifted (50 / 150), apart, inside a box twice as big; a zero-area box overlaps nothing
    np.testing.assert_allclose(box_iou_batch(a, b), [[1.0, 50 / 150, 0.0, 0.5], [0.0, 0.0, 0.0, 0.0]])


def test_iou_pairs_by_hand() -> None:
    a = np.array([[0, 0, 2, 2], [0, 0, 2, 2], [0, 0, 1, 1], [0, 0, 0, 0]], float)
    b = np.array([[0, 0, 2, 2], [1, 0, 3, 2], [2, 2, 3, 3], [0, 0, 0, 0]], float)
    np.testing.assert_allclose(box_iou_pairs(a, b), [1.0, 2 / 6, 0.0, 0.0])


def test_inverted_boxes_overlap_nothing() -> None:
    inverted = np.array([[10, 10, 0, 0], [10, 0, 0, 10]], float)
    assert not box_iou_batch(inverted, [_box(0, 0), _box(2, 2)]).any()


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_pairs_are_the_diagonal_of_the_batch_whatever_the_dtype(dtype: type[np.floating]) -> None:
    rng = np.random.default_rng(0)
    corners = rng.uniform(0, 100, (50, 2, 2))
    a = np.concatenate([corners.min(axis=1), corners.max(axis=1)], axis=1).astype(dtype)
    b = a + rng.uniform(-5, 5, a.shape).astype(dtype)
    batch = box_iou_batch(a, b)
    assert batch.shape == (50, 50)
    assert batch.dtype == np.float64
    np.testing.assert_array_equal(box_iou_pairs(a, b), np.diagonal(batch))
    np.testing.assert_array_equal(batch, box_iou_batch(a.astype(np.float64), b.astype(np.float64)))


def test_empty_inputs_give_empty_results() -> None:
    assert box_iou_batch(np.zeros((0, 4)), np.zeros((3, 4))).shape == (0, 3)
    assert box_iou_pairs(np.zeros((0, 4)), np.zeros((0, 4))).shape == (0,)
