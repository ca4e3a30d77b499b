"""``streetwatch evaluate MODEL DATASET``: mAP of an ONNX model run by streetwatch's own detector.

The model goes through :class:`detector.Detector` exactly as the daemon runs it (its card, letterbox,
decoder and NMS), so an exported model is checked the way it will be used. Only the thresholds differ:
evaluation keeps almost everything (confidence 0.001, NMS IoU 0.7, 300 boxes, Ultralytics' ``val``
defaults) because AP integrates over all confidences.

Two protocols. ``daemon`` (the default) keeps one class per box, the most likely, exactly as the daemon
does. ``ultralytics`` keeps every (box, class) pair above the threshold before NMS, as ``yolo val`` does
(``multi_label=True``): a box scored 0.6 truck and 0.3 car also counts as a car. That inflates mAP where
classes are confused and is never what a camera produces, but it is the number Ultralytics reports, so
it is there to compare with it (Ultralytics-layout models; other layouts are single-label anyway).

Model and dataset classes are matched by name: predictions of model classes the dataset does not name
are ignored, and a dataset class the model does not know is an error.
"""

from __future__ import annotations

import json
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import cv2
import numpy as np
import numpy.typing as npt

from datasets.errors import DatasetError
from datasets.metrics import ClassAP, MatchAccumulator, mean_ap
from datasets.yolo import (
    DatasetSpec,
    label_path_for,
    read_dataset_yaml,
    read_labels,
    split_images,
    xywhn_to_xyxy,
)
from detector.card import Layout
from detector.decoders import cxcywh_to_xyxy
from detector.detections import Detections
from detector.detector import Detector
from detector.nms import batched_nms

EVAL_CONFIDENCE = 0.001
EVAL_IOU = 0.7
EVAL_MAX_DETECTIONS = 300
PROTOCOLS = ("daemon", "ultralytics")


@dataclass(frozen=True)
class Evaluation:
    model: str
    dataset: str
    split: str
    images: int
    labels: int
    map50: float
    map50_95: float
    per_class: list[ClassAP]
    class_names: list[str]
    thresholds: dict[str, float]
    seconds: float
    protocol: str = "daemon"

    def to_json(self) -> dict[str, Any]:
        return {
            "model": self.model,
            "dataset": self.dataset,
            "split": self.split,
            "images": self.images,
            "labels": self.labels,
            "map50": round(self.map50, 5),
            "map50_95": round(self.map50_95, 5),
            "per_class": [
                {
                    "class": self.class_names[c.class_id],
                    "labels": c.labels,
                    "predictions": c.predictions,
                    "ap50": round(c.ap50, 5),
                    "ap50_95": round(c.ap50_95, 5),
                    "working_f2": round(c.working_f, 5),
                    "working_confidence": (
                        None if c.working_confidence is None else round(c.working_confidence, 5)
                    ),
                }
                for c in self.per_class
            ],
            "thresholds": self.thresholds,
            "protocol": self.protocol,
            "seconds": round(self.seconds, 2),
        }

    def table(self) -> str:
        """A per-class table for people, like Ultralytics' validation printout."""
        rows = [f"{'class':<24}{'labels':>8}{'preds':>8}{'AP50':>8}{'AP50-95':>9}"]
        rows.append(f"{'all':<24}{self.labels:>8}{'':>8}{self.map50:>8.3f}{self.map50_95:>9.3f}")
        rows += [
            f"{self.class_names[c.class_id][:23]:<24}{c.labels:>8}{c.predictions:>8}{c.ap50:>8.3f}{c.ap50_95:>9.3f}"
            for c in self.per_class
        ]
        return "\n".join(rows)


def default_split(spec: DatasetSpec) -> str:
    """``test`` when the dataset has one, else ``val``."""
    for split in ("test", "val"):
        if split in spec.splits:
            return split
    raise DatasetError(f"{spec.path}: no test or val split to evaluate on (splits: {', '.join(spec.splits)})")


def class_lookup(model_names: list[str], dataset_names: list[str], where: str) -> npt.NDArray[np.int64]:
    """(model classes,) -> dataset class id, -1 for model classes the dataset does not name."""
    missing = [name for name in dataset_names if name not in model_names]
    if missing:
        raise DatasetError(
            f"{where}: {len(missing)} dataset class(es) are not classes of the model: "
            f"{', '.join(repr(m) for m in missing[:8])}{', ...' if len(missing) > 8 else ''} "
            f"(it has {len(model_names)}: {', '.join(model_names[:12])}"
            f"{', ...' if len(model_names) > 12 else ''})"
        )
    index = {name: i for i, name in enumerate(dataset_names)}
    return np.array([index.get(name, -1) for name in model_names], np.int64)


def evaluate(
    model: Path,
    dataset_yaml: Path,
    *,
    split: str | None = None,
    confidence: float = EVAL_CONFIDENCE,
    iou: float = EVAL_IOU,
    max_detections: int = EVAL_MAX_DETECTIONS,
    provider: str = "cpu",
    protocol: str = "daemon",
) -> Evaluation:
    """Run ``model`` over the images of ``split`` of ``dataset_yaml`` and score it against their labels."""
    if protocol not in PROTOCOLS:
        raise DatasetError(f"protocol must be one of {', '.join(PROTOCOLS)}, not {protocol!r}")
    spec = read_dataset_yaml(dataset_yaml)
    split = split or default_split(spec)
    images = split_images(spec, split)
    if not images:
        raise DatasetError(f"{spec.path}: split '{split}' has no images")
    detector = Detector(
        model, provider=provider, confidence=confidence, iou=iou, max_detections=max_detections
    )
    to_dataset = class_lookup(detector.class_names, spec.names, f"{spec.path} vs {model}")
    started = time.perf_counter()
    accumulator = MatchAccumulator()
    labels_seen = 0
    for image_path in images:
        decoded = cv2.imread(str(image_path), cv2.IMREAD_COLOR)
        if decoded is None:
            raise DatasetError(
                f"{image_path}: cannot decode as an image (listed in split '{split}' of {spec.path})"
            )
        frame: npt.NDArray[np.uint8] = np.asarray(decoded, np.uint8)
        height, width = frame.shape[:2]
        labels = read_labels(label_path_for(image_path), len(spec.names))
        multi = protocol == "ultralytics" and detector.card.layout is Layout.ULTRALYTICS
        detections = detect_multi_label(detector, frame) if multi else detector(frame)
        classes = to_dataset[detections.class_id]
        kept = classes >= 0
        accumulator.add(
            detections.xyxy[kept].astype(np.float64),
            detections.confidence[kept].astype(np.float64),
            classes[kept],
            xywhn_to_xyxy(labels.xywhn, width, height),
            labels.class_id,
        )
        labels_seen += len(labels)
    per_class = accumulator.result()
    map50, map50_95 = mean_ap(per_class)
    return Evaluation(
        model=str(model),
        dataset=str(dataset_yaml),
        split=split,
        images=len(images),
        labels=labels_seen,
        map50=map50,
        map50_95=map50_95,
        per_class=per_class,
        class_names=spec.names,
        thresholds={"confidence": confidence, "iou": iou, "max_detections": max_detections},
        protocol=protocol,
        seconds=time.perf_counter() - started,
    )


def detect_multi_label(detector: Detector, frame: npt.NDArray[np.uint8]) -> Detections:
    """Ultralytics-layout detection keeping every (box, class) score above the threshold (``yolo val``'s
    ``multi_label``), through the detector's own preprocessing, session and class-aware NMS."""
    tensor, letterboxes = detector.preprocessor([frame], batch_size=detector.fixed_batch)
    output = detector.session.run([detector.output_name], {detector.input_name: tensor})[0][0]
    output = np.asarray(output, np.float32)  # (4 + nc, N)
    class_id, anchor = np.nonzero(output[4:] > detector.confidence)
    scores = output[4:][class_id, anchor]
    xyxy = cxcywh_to_xyxy(np.ascontiguousarray(output[:4, anchor].T))
    keep = batched_nms(
        xyxy,
        scores,
        class_id.astype(np.int64),
        iou_threshold=detector.iou,
        max_detections=detector.max_detections,
    )
    return Detections(
        xyxy=letterboxes[0].boxes_to_frame(xyxy[keep]),
        confidence=scores[keep],
        class_id=class_id[keep].astype(np.int64),
    )


def write_json(evaluation: Evaluation, path: Path) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(evaluation.to_json(), indent=2, ensure_ascii=False), encoding="utf-8")
