"""Detection metrics as Ultralytics computes them: mAP50 and mAP50-95 (IoU thresholds 0.50:0.05:0.95),
101-point interpolated AP per class, averaged over the classes that have labels.

Following Ultralytics (8.4) exactly is the point: a model validated by ``yolo val`` and by
``streetwatch evaluate`` must get the same numbers, so the differences left are the detector's, not the
metric's. Matching is greedy in confidence order: each prediction, most confident first, takes the
unclaimed label of its class it overlaps most, separately at each IoU threshold. The AP integral is
the trapezoid rule over the precision envelope sampled at 101 recall points, the envelope dropping to 0
just past the highest recall reached.

Everything is vectorised over the 10 thresholds; the only Python loops run over the predictions of one
image that overlap a label at all (a handful) and over classes.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import numpy.typing as npt

from detector.boxes import box_iou_batch

F64 = npt.NDArray[np.float64]
I64 = npt.NDArray[np.int64]
Bool = npt.NDArray[np.bool_]

IOU_THRESHOLDS: F64 = np.linspace(0.5, 0.95, 10)
RECALL_POINTS: F64 = np.linspace(0.0, 1.0, 101)
#: A class's working point weighs recall twice as much as precision (F2): downstream, dwell and stationarity
#: drop a false box that does not stay, while a box missed in a few frames can break an object's stay.
WORKING_BETA = 2.0


def match_predictions(
    pred_xyxy: F64,
    pred_confidence: F64,
    pred_class: I64,
    true_xyxy: F64,
    true_class: I64,
    thresholds: F64 = IOU_THRESHOLDS,
) -> Bool:
    """(N, T) bool: whether prediction i is a true positive at threshold t, for one image.

    Predictions are visited most confident first (ties keep their order); each takes, at each
    threshold, the unclaimed label of its own class with the highest IoU if that IoU reaches it.
    """
    n = len(pred_confidence)
    correct = np.zeros((n, len(thresholds)), bool)
    if n == 0 or len(true_class) == 0:
        return correct
    order = np.argsort(-np.asarray(pred_confidence), kind="stable")
    iou = box_iou_batch(true_xyxy, np.asarray(pred_xyxy)[order])  # (M, N) labels x predictions
    iou *= np.asarray(true_class)[:, None] == np.asarray(pred_class)[order][None, :]
    matched = np.zeros((len(true_class), len(thresholds)), bool)  # labels claimed at each threshold
    columns = np.arange(len(thresholds))
    for j in np.flatnonzero((iou >= thresholds.min()).any(axis=0)):
        available = np.where(matched, 0.0, iou[:, j, None])  # (M, T)
        best = available.argmax(axis=0)  # (T,)
        hit = available[best, columns] >= thresholds
        correct[order[j]] = hit
        matched[best, columns] |= hit
    return correct


def average_precision(recall: F64, precision: F64) -> float:
    """AP of one precision/recall curve (predictions sorted by confidence): 101-point interpolation of
    the precision envelope, integrated with the trapezoid rule (Ultralytics ``compute_ap``)."""
    last = recall[-1] if len(recall) else 1.0
    mrec = np.concatenate(([0.0], recall, [last], [1.0]))
    mpre = np.concatenate(([1.0], precision, [0.0], [0.0]))
    envelope = np.flip(np.maximum.accumulate(np.flip(mpre)))
    sampled = np.interp(RECALL_POINTS, mrec, envelope)
    return float(np.sum((sampled[1:] + sampled[:-1]) / 2 * np.diff(RECALL_POINTS)))  # trapezoid rule


@dataclass(frozen=True)
class ClassAP:
    """AP of one class: ``ap`` (T,) at each IoU threshold, with its label and prediction counts."""

    class_id: int
    labels: int
    predictions: int
    ap: F64
    #: The confidence at which this class's F-beta (:data:`WORKING_BETA`) at IoU 0.5 peaks: the model's
    #: working point for it (:func:`working_point`); None when no prediction of it is correct.
    working_confidence: float | None = None
    working_f: float = 0.0  # that peak's F-beta

    @property
    def ap50(self) -> float:
        return float(self.ap[0])

    @property
    def ap50_95(self) -> float:
        return float(self.ap.mean())


def ap_per_class(correct: Bool, confidence: F64, pred_class: I64, true_class: I64) -> list[ClassAP]:
    """AP per class that has labels (classes only predicted are not scored, as in Ultralytics).

    Args:
        correct: (N, T) true-positive flags of all predictions of all images (:func:`match_predictions`).
        confidence, pred_class: (N,) the predictions' scores and classes.
        true_class: (L,) the class of every label of every image.
    """
    order = np.argsort(-np.asarray(confidence), kind="stable")
    correct, pred_class = np.asarray(correct)[order], np.asarray(pred_class)[order]
    scores = np.asarray(confidence, np.float64)[order]
    classes, counts = np.unique(np.asarray(true_class, np.int64), return_counts=True)
    results = []
    for class_id, n_labels in zip(classes.tolist(), counts.tolist(), strict=True):
        rows = pred_class == class_id
        ap = np.zeros(correct.shape[1], np.float64)
        working: tuple[float | None, float] = (None, 0.0)
        if rows.any():
            tp = np.cumsum(correct[rows], axis=0, dtype=np.float64)  # (n, T)
            fp = np.cumsum(~correct[rows], axis=0, dtype=np.float64)
            recall, precision = tp / n_labels, tp / (tp + fp)
            ap = np.array([average_precision(recall[:, t], precision[:, t]) for t in range(correct.shape[1])])
            working = working_point(recall[:, 0], precision[:, 0], scores[rows])
        results.append(ClassAP(int(class_id), int(n_labels), int(rows.sum()), ap, *working))
    return results


def working_point(
    recall: F64, precision: F64, confidence: F64, beta: float = WORKING_BETA
) -> tuple[float | None, float]:
    """(confidence threshold, F-beta) where F-beta peaks along one class's predictions sorted by confidence.

    Keeping predictions down to index k gives ``recall[k]``/``precision[k]``; the threshold is set halfway
    between prediction k's confidence and the next one's (halfway to zero after the last), so that a model
    whose scores drift a little on new frames keeps the same working point. Of equal peaks the first (the
    highest threshold) wins: it reaches that score with fewer boxes. ``None`` when nothing is correct."""
    b2 = beta * beta
    denominator = b2 * precision + recall
    f = np.divide(
        (1 + b2) * precision * recall, denominator, out=np.zeros_like(recall), where=denominator > 0
    )
    if not len(f) or f.max() <= 0:
        return None, 0.0
    k = int(np.argmax(f))
    below = float(confidence[k + 1]) if k + 1 < len(confidence) else 0.0
    return (float(confidence[k]) + below) / 2, float(f[k])


@dataclass
class MatchAccumulator:
    """Collects per-image matches, then scores them all at once (:meth:`result`)."""

    thresholds: F64 = field(default_factory=lambda: IOU_THRESHOLDS.copy())
    _correct: list[Bool] = field(default_factory=list)
    _confidence: list[F64] = field(default_factory=list)
    _pred_class: list[I64] = field(default_factory=list)
    _true_class: list[I64] = field(default_factory=list)
    images: int = 0

    def add(
        self, pred_xyxy: F64, pred_confidence: F64, pred_class: I64, true_xyxy: F64, true_class: I64
    ) -> None:
        """One image's predictions and labels, in the same pixel coordinates."""
        self._correct.append(
            match_predictions(pred_xyxy, pred_confidence, pred_class, true_xyxy, true_class, self.thresholds)
        )
        self._confidence.append(np.asarray(pred_confidence, np.float64).reshape(-1))
        self._pred_class.append(np.asarray(pred_class, np.int64).reshape(-1))
        self._true_class.append(np.asarray(true_class, np.int64).reshape(-1))
        self.images += 1

    def result(self) -> list[ClassAP]:
        t = len(self.thresholds)
        return ap_per_class(
            np.concatenate(self._correct) if self._correct else np.zeros((0, t), bool),
            np.concatenate(self._confidence) if self._confidence else np.zeros(0),
            np.concatenate(self._pred_class) if self._pred_class else np.zeros(0, np.int64),
            np.concatenate(self._true_class) if self._true_class else np.zeros(0, np.int64),
        )


def mean_ap(per_class: list[ClassAP]) -> tuple[float, float]:
    """(mAP50, mAP50-95) over the classes that have labels; (0, 0) when none has."""
    if not per_class:
        return 0.0, 0.0
    ap = np.stack([c.ap for c in per_class])
    return float(ap[:, 0].mean()), float(ap.mean())
