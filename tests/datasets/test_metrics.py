"""mAP computation on hand-built cases whose answers follow from the definition, and against Ultralytics'
own matcher and AP code on random detections (the evaluator must agree with ``yolo val``)."""

from __future__ import annotations

import numpy as np
import pytest

from datasets.metrics import (
    IOU_THRESHOLDS,
    MatchAccumulator,
    ap_per_class,
    average_precision,
    match_predictions,
    mean_ap,
)
from detector.boxes import box_iou_batch

# A perfect ranking scores 0.995, not 1: the envelope is 1 up to recall 1 and 0 past it, and the
# trapezoid over the last of the 101 recall points (0.99 -> 1.0) averages 1 and 0 (Ultralytics does the same).
PERFECT = 1.0 - 0.5 / 100


def _box(x: float, y: float, w: float = 10.0, h: float = 10.0) -> list[float]:
    return [x, y, x + w, y + h]


def test_perfect_predictions_score_the_maximum() -> None:
    acc = MatchAccumulator()
    labels = np.array([_box(0, 0), _box(50, 50, 20, 30)])
    acc.add(labels, np.array([0.9, 0.8]), np.array([0, 1]), labels, np.array([0, 1]))
    acc.add(np.array([_box(5, 5)]), np.array([0.7]), np.array([1]), np.array([_box(5, 5)]), np.array([1]))
    per_class = acc.result()
    assert [(c.class_id, c.labels, c.predictions) for c in per_class] == [(0, 1, 1), (1, 2, 2)]
    assert mean_ap(per_class) == pytest.approx((PERFECT, PERFECT))


def test_a_false_positive_costs_only_when_ranked_above_the_true_one() -> None:
    label = np.array([_box(0, 0)])
    miss = _box(100, 100)
    for fp_confidence, expected in ((0.5, PERFECT), (0.95, 0.4975)):
        acc = MatchAccumulator()
        acc.add(
            np.array([_box(0, 0), miss]),
            np.array([0.9, fp_confidence]),
            np.array([0, 0]),
            label,
            np.array([0]),
        )
        # FP first: precision 0 at recall 0, then 1/2 at recall 1: the envelope is 0.5 on [0, 1], with the
        # same 0.0025 lost over the last recall step: 0.5 - 0.0025
        assert mean_ap(acc.result())[0] == pytest.approx(expected)


def test_missed_labels_and_unlabelled_classes() -> None:
    acc = MatchAccumulator()
    labels = np.array([_box(0, 0), _box(30, 0)])
    # one of two labels found; a prediction of class 5 (no labels anywhere) is not scored as a class
    acc.add(
        np.array([_box(0, 0), _box(60, 60)]), np.array([0.9, 0.9]), np.array([0, 5]), labels, np.array([0, 0])
    )
    acc.add(np.zeros((0, 4)), np.zeros(0), np.zeros(0, np.int64), np.array([_box(0, 0)]), np.array([3]))
    per_class = acc.result()
    assert [c.class_id for c in per_class] == [0, 3]
    # class 0: precision 1 up to recall 0.5, then the envelope drops to 0 (at 0.5 itself): 0.49 of full
    # steps, and half of the step from 0.49 to 0.50
    assert per_class[0].ap50 == pytest.approx(0.49 + 0.005)
    assert per_class[1].ap50 == 0.0 and per_class[1].predictions == 0
    assert mean_ap([]) == (0.0, 0.0)


def test_iou_thresholds_split_a_loose_box() -> None:
    label = np.array([[0.0, 0.0, 100.0, 100.0]])
    loose = np.array([[0.0, 0.0, 100.0, 72.0]])  # IoU 0.72: a hit at 0.50 ... 0.70, a miss at 0.75 ... 0.95
    correct = match_predictions(loose, np.array([0.9]), np.array([0]), label, np.array([0]))
    assert correct[0].tolist() == (IOU_THRESHOLDS <= 0.72).tolist()
    per_class = ap_per_class(correct, np.array([0.9]), np.array([0]), np.array([0]))
    assert per_class[0].ap50 == pytest.approx(PERFECT)
    assert per_class[0].ap50_95 == pytest.approx(PERFECT * 5 / 10)


def test_duplicates_wrong_classes_and_confidence_order() -> None:
    labels = np.array([_box(0, 0), _box(8, 0)])
    preds = np.array([_box(0, 0), _box(0, 0), _box(4, 0), _box(8, 0)])
    confidence = np.array([0.9, 0.8, 0.95, 0.7])
    classes = np.array([0, 0, 1, 0])
    correct = match_predictions(preds, confidence, classes, labels, np.array([0, 0]))
    assert correct[:, 0].tolist() == [True, False, False, True]  # duplicate FP; wrong class never matches
    # the most confident prediction claims its best label first, even if a later one fits it better
    greedy = match_predictions(
        np.array([_box(2, 0), _box(0, 0)]),
        np.array([0.9, 0.8]),
        np.array([0, 0]),
        np.array([_box(0, 0)]),
        np.array([0]),
    )
    assert greedy[:, 0].tolist() == [True, False]


def test_empty_inputs() -> None:
    assert match_predictions(
        np.zeros((0, 4)), np.zeros(0), np.zeros(0, np.int64), np.zeros((0, 4)), np.zeros(0, np.int64)
    ).shape == (0, 10)
    assert average_precision(np.array([0.0]), np.array([0.0])) == 0.0  # one false positive
    assert MatchAccumulator().result() == []


@pytest.mark.train
def test_agrees_with_ultralytics_on_random_detections() -> None:
    torch = pytest.importorskip("torch")
    pytest.importorskip("ultralytics")
    from ultralytics.models.yolo.detect import DetectionValidator
    from ultralytics.utils.metrics import ap_per_class as ultralytics_ap_per_class

    rng = np.random.default_rng(7)
    validator = DetectionValidator()
    acc = MatchAccumulator()
    stats: dict[str, list[np.ndarray]] = {"tp": [], "conf": [], "pred_cls": [], "target_cls": []}
    for _ in range(40):
        n_labels, n_preds = rng.integers(0, 8), rng.integers(0, 15)
        true_xyxy = _random_boxes(rng, n_labels)
        true_class = rng.integers(0, 4, n_labels)
        # predictions: most are jittered labels of the label's class, the rest random boxes and classes
        source = rng.integers(0, max(n_labels, 1), n_preds)
        near = (rng.random(n_preds) < 0.7) & (n_labels > 0)
        pred_xyxy = _random_boxes(rng, n_preds)
        pred_class = rng.integers(0, 4, n_preds)
        if n_labels:
            pred_xyxy[near] = true_xyxy[source[near]] + rng.normal(0, 3, (int(near.sum()), 4))
            keep_class = near & (rng.random(n_preds) < 0.85)
            pred_class[keep_class] = true_class[source[keep_class]]
        confidence = rng.random(n_preds)
        acc.add(pred_xyxy, confidence, pred_class, true_xyxy, true_class)
        order = np.argsort(-confidence, kind="stable")  # Ultralytics gets predictions sorted by NMS
        iou = box_iou_batch(true_xyxy, pred_xyxy[order])
        tp = validator.match_predictions(
            torch.tensor(pred_class[order]), torch.tensor(true_class), torch.tensor(iou)
        )
        stats["tp"].append(tp.numpy())
        stats["conf"].append(confidence[order])
        stats["pred_cls"].append(pred_class[order])
        stats["target_cls"].append(true_class)
    joined = {k: np.concatenate(v) for k, v in stats.items()}
    reference = ultralytics_ap_per_class(
        joined["tp"], joined["conf"], joined["pred_cls"], joined["target_cls"]
    )
    ours = acc.result()
    assert 0.2 < mean_ap(ours)[0] < 0.95  # a mix of hits and misses, not a trivial case
    np.testing.assert_array_equal([c.class_id for c in ours], reference[6])
    np.testing.assert_allclose(np.stack([c.ap for c in ours]), reference[5], atol=1e-9)


def _random_boxes(rng: np.random.Generator, n: int) -> np.ndarray:
    xy = rng.uniform(0, 200, (n, 2))
    return np.concatenate([xy, xy + rng.uniform(5, 60, (n, 2))], axis=1)


def test_the_working_point_lies_between_the_last_kept_box_and_the_next() -> None:
    """Three labels found at 0.9, 0.5 and 0.3, a false box at 0.2 below them: keeping down to 0.3 finds all
    at full precision, so the threshold sits halfway to the false box."""
    labels = np.array([_box(0, 0), _box(100, 0), _box(200, 0)])
    acc = MatchAccumulator()
    predictions = np.array([_box(0, 0), _box(100, 0), _box(200, 0), _box(300, 0)])
    acc.add(predictions, np.array([0.9, 0.5, 0.3, 0.2]), np.zeros(4, np.int64), labels, np.zeros(3, np.int64))
    [result] = acc.result()
    assert result.working_confidence == pytest.approx(0.25)
    assert result.working_f == pytest.approx(1.0)


def test_the_working_point_weighs_recall_over_precision() -> None:
    """Two of four labels above five false boxes, the other two below them: F1 peaks above the false boxes
    (0.67 against 0.62 with all found), F2 goes down to find them all (0.80 against 0.56)."""
    labels = np.array([_box(0, 0), _box(100, 0), _box(200, 0), _box(300, 0)])
    false = [_box(400 + 50 * i, 0) for i in range(5)]
    predictions = np.array([_box(0, 0), _box(100, 0), *false, _box(200, 0), _box(300, 0)])
    scores = np.array([0.9, 0.8, 0.7, 0.65, 0.6, 0.55, 0.5, 0.4, 0.3])
    acc = MatchAccumulator()
    acc.add(predictions, scores, np.zeros(9, np.int64), labels, np.zeros(4, np.int64))
    [result] = acc.result()
    assert result.working_confidence == pytest.approx(0.15)  # halfway from 0.3 to nothing below
    assert result.working_f == pytest.approx(5 * (4 / 9) / (4 * 4 / 9 + 1))


def test_no_working_point_without_a_correct_box() -> None:
    acc = MatchAccumulator()
    acc.add(
        np.array([_box(500, 500)]),
        np.array([0.9]),
        np.zeros(1, np.int64),
        np.array([_box(0, 0)]),
        np.zeros(1, np.int64),
    )
    [result] = acc.result()
    assert result.working_confidence is None and result.working_f == 0.0
