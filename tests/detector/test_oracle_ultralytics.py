"""Oracle: on the same real frames, streetwatch's boxes are Ultralytics' boxes.

Each model runs through ``detector.Detector`` and through ``ultralytics.YOLO(onnx).predict`` (Ultralytics'
own letterbox, ONNX Runtime session, NMS and box scaling) with the same thresholds. The trained int8 model
must match box for box; models exported in this run from ``*.yaml`` architectures cover the v8 and v11
heads (``[B, 84, N]``, NMS), the NMS-free v10 and YOLO26 heads (``[B, 300, 6]``), a static rectangular input
and a dynamic export (rectangular inputs, batches).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt
import pytest

from detector import Detections, Detector
from detector.card import Layout
from detector.decoders import decode_ultralytics
from detector.export import export_model
from detector.nms import batched_nms
from tests.conftest import read_frames

pytestmark = [
    pytest.mark.train,
    # PyTorch's ONNX tracer warns about Ultralytics' head code on every export: known, not ours to fix.
    pytest.mark.filterwarnings(
        "ignore:Converting a tensor to a Python boolean", "ignore::DeprecationWarning"
    ),
]
ultralytics = pytest.importorskip("ultralytics")
torch = pytest.importorskip("torch")

Frames = dict[str, npt.NDArray[np.uint8]]

MIN_IOU = 0.9
# Untrained heads score ~1e-5..0.5 (see ``untrained_checkpoint``): 0.001 gives each model 100-300 boxes on the
# vtest frames, and max_det 100 is reached on most of them, so the top-k cutoff is exercised too.
LOW_CONFIDENCE, LOW_MAX_DET = 0.001, 100
IOU = 0.7  # Ultralytics' predict default
# Both sides run the same ONNX file in the same ONNX Runtime on the same input tensor, so scores agree to the
# bit here; the margin only absorbs float noise between CPUs. A box whose score lies within it of the
# confidence threshold, or of the last score kept under max_det, may fall on either side of that cut, so it
# alone may be missing from one side. Every other box must be matched.
SCORE_MARGIN = 1e-5


@dataclass(frozen=True)
class Oracle:
    architecture: str
    options: dict[str, Any]
    layout: Layout


ORACLES = {
    "yolov8n-256x320": Oracle("yolov8n.yaml", {"imgsz": (256, 320)}, Layout.ULTRALYTICS),
    "yolo11n": Oracle("yolo11n.yaml", {"imgsz": 320}, Layout.ULTRALYTICS),
    "yolo11n-dynamic": Oracle("yolo11n.yaml", {"imgsz": 320, "dynamic": True}, Layout.ULTRALYTICS),
    "yolov10n": Oracle("yolov10n.yaml", {"imgsz": 320}, Layout.END2END),
    "yolo26n": Oracle("yolo26n.yaml", {"imgsz": 320}, Layout.END2END),
}


# --- matching -----------------------------------------------------------------------------------------------


def sorted_corners(xyxy: npt.NDArray[np.float32]) -> npt.NDArray[np.float64]:
    """Untrained heads emit some boxes with x2 < x1 (the same on both sides): compare them as extents."""
    low, high = np.minimum(xyxy[:, :2], xyxy[:, 2:]), np.maximum(xyxy[:, :2], xyxy[:, 2:])
    return np.concatenate([low, high], axis=1).astype(np.float64)


def iou_batch(a_xyxy: npt.NDArray[np.float32], b_xyxy: npt.NDArray[np.float32]) -> npt.NDArray[np.float64]:
    """(N, M) IoU of every pair; two zero-area boxes (clipped onto a frame edge) count as equal (IoU 1)
    when their corners agree to half a pixel."""
    a, b = sorted_corners(a_xyxy), sorted_corners(b_xyxy)
    top_left = np.maximum(a[:, None, :2], b[None, :, :2])
    bottom_right = np.minimum(a[:, None, 2:], b[None, :, 2:])
    inter = np.prod(np.clip(bottom_right - top_left, 0, None), axis=2)
    area_a, area_b = np.prod(a[:, 2:] - a[:, :2], axis=1), np.prod(b[:, 2:] - b[:, :2], axis=1)
    union = area_a[:, None] + area_b[None, :] - inter
    same_corners = np.abs(a[:, None, :] - b[None, :, :]).max(axis=2) < 0.5
    return np.where(union > 0, inter / np.where(union > 0, union, 1.0), same_corners.astype(np.float64))


def match_boxes(ours: Detections, theirs: Detections, min_iou: float = MIN_IOU) -> npt.NDArray[np.intp]:
    """(K, 2) index pairs (ours, theirs) of boxes of the same class with IoU >= ``min_iou``, one-to-one.

    Greedy on the IoU matrix, best pair first. Why greedy is enough: Jaccard distance (1 - IoU) is a metric,
    so after NMS at IoU <= 0.8 a box has at most one partner at IoU >= 0.9 and greedy equals the optimal
    assignment; on NMS-free outputs (where near-duplicates can occur) taking the closest pair first is what
    an optimal matcher would do for them as well.
    """
    iou = iou_batch(ours.xyxy, theirs.xyxy)
    iou[ours.class_id[:, None] != theirs.class_id[None, :]] = 0.0
    rows, cols = np.nonzero(iou >= min_iou)
    order = np.argsort(-iou[rows, cols], kind="stable")
    pairs: list[tuple[int, int]] = []
    used_rows: set[int] = set()
    used_cols: set[int] = set()
    for r, c in zip(rows[order].tolist(), cols[order].tolist(), strict=True):
        if r not in used_rows and c not in used_cols:
            pairs.append((r, c))
            used_rows.add(r)
            used_cols.add(c)
    return np.array(pairs, dtype=np.intp).reshape(-1, 2)


def near_a_cut(detections: Detections, *, confidence: float, max_det: int) -> npt.NDArray[np.bool_]:
    """Boxes whose score is a tie, within ``SCORE_MARGIN``, with the threshold or with the max_det cutoff."""
    near = np.abs(detections.confidence - confidence) <= SCORE_MARGIN
    if len(detections) >= max_det:
        near |= np.abs(detections.confidence - detections.confidence.min()) <= SCORE_MARGIN
    return near


def assert_same_boxes(
    ours: Detections, theirs: Detections, *, confidence: float, max_det: int, where: str
) -> None:
    pairs = match_boxes(ours, theirs)
    np.testing.assert_allclose(
        ours.confidence[pairs[:, 0]],
        theirs.confidence[pairs[:, 1]],
        atol=SCORE_MARGIN,
        err_msg=f"{where}: matched boxes score differently",
    )
    for name, side, index in (("streetwatch", ours, 0), ("ultralytics", theirs, 1)):
        unmatched = np.ones(len(side), bool)
        unmatched[pairs[:, index]] = False
        unexplained = unmatched & ~near_a_cut(side, confidence=confidence, max_det=max_det)
        assert not unexplained.any(), (
            f"{where}: {unexplained.sum()} of {len(side)} {name} boxes have no match"
            f" (same class, IoU >= {MIN_IOU}): {side.xyxy[unexplained][:5].tolist()}"
            f" scores {side.confidence[unexplained][:5].tolist()}"
            f" classes {side.class_id[unexplained][:5].tolist()}; {len(pairs)} pairs matched"
        )


def ultralytics_detections(yolo: Any, frame: npt.NDArray[np.uint8], detector: Detector) -> Detections:
    """``YOLO.predict`` with the detector's thresholds; ``imgsz`` matters only to dynamic exports, whose
    metadata size Ultralytics does not read (it would letterbox to 640)."""
    result = yolo.predict(
        frame,
        conf=detector.confidence,
        iou=detector.iou,
        max_det=detector.max_detections,
        imgsz=list(detector.card.input.size_hw),
        # a fixed input size: square as ours (a dynamic batch axis alone makes Ultralytics try rectangles)
        rect=detector.card.input.dynamic,
        verbose=False,
    )[0]
    boxes = result.boxes
    return Detections(
        xyxy=boxes.xyxy.numpy().astype(np.float32),
        confidence=boxes.conf.numpy().astype(np.float32),
        class_id=boxes.cls.numpy().astype(np.int64),
    )


def compare_on_frames(onnx: Path, frames: Frames, *, confidence: float, max_det: int) -> int:
    """Assert streetwatch == Ultralytics on every frame; return how many boxes were compared."""
    detector = Detector(onnx, confidence=confidence, iou=IOU, max_detections=max_det)
    yolo = ultralytics.YOLO(str(onnx), task="detect")
    compared = 0
    for key, frame in frames.items():
        ours = detector(frame)
        theirs = ultralytics_detections(yolo, frame, detector)
        assert_same_boxes(ours, theirs, confidence=confidence, max_det=max_det, where=f"{onnx.name} {key}")
        compared += len(ours)
    return compared


# --- models and frames --------------------------------------------------------------------------------------


@pytest.fixture(scope="session")
def oracle_frames(vtest_frames: dict[int, npt.NDArray[np.uint8]], car_video: Path) -> Frames:
    """Six 576×768 vtest.avi frames (people) and three 432×768 car-detection.mp4 frames (cars)."""
    frames = {f"vtest#{i}": frame for i, frame in vtest_frames.items()}
    frames.update({f"car#{i}": frame for i, frame in read_frames(car_video, [0, 150, 300]).items()})
    return frames


def untrained_checkpoint(architecture: str, frames: list[npt.NDArray[np.uint8]], path: Path) -> Path:
    """An untrained model whose outputs depend on the image, saved as a checkpoint.

    A freshly initialised YOLO is degenerate: activations fade through the untrained layers, so every anchor
    of a stride level gets the head's prior score (sigmoid of its bias, ~1.6e-4) and the same box size - all
    ties, nothing to compare. Re-estimating the BatchNorm statistics on a few real frames (train-mode forward
    passes without any weight update) gives every layer unit-variance activations again: scores then spread
    over ~1e-5..0.5 and boxes follow the image. Weights stay random (seeded).
    """
    torch.manual_seed(0)
    yolo = ultralytics.YOLO(architecture)
    for module in yolo.model.modules():
        if isinstance(module, torch.nn.BatchNorm2d):
            module.reset_running_stats()
            module.momentum = None  # cumulative average: one batch sets the statistics
    batch = torch.cat(
        [
            torch.nn.functional.interpolate(
                torch.from_numpy(np.ascontiguousarray(frame[:, :, ::-1].transpose(2, 0, 1)))[None].float()
                / 255,
                size=(320, 320),
                mode="bilinear",
            )
            for frame in frames
        ]
    )
    yolo.model.train()
    with torch.no_grad():
        yolo.model(batch)
    yolo.model.eval()
    yolo.save(str(path))
    return path


@pytest.fixture(scope="session")
def oracle_models(tmp_path_factory: pytest.TempPathFactory, oracle_frames: Frames) -> dict[str, Path]:
    """Each oracle's ONNX file, exported by ``export_model`` from an untrained checkpoint of its
    architecture (one checkpoint per architecture)."""
    folder = tmp_path_factory.mktemp("oracle-models")
    calibration = list(oracle_frames.values())[::2]
    checkpoints: dict[str, Path] = {}
    models = {}
    for name, oracle in ORACLES.items():
        arch = oracle.architecture
        if arch not in checkpoints:
            checkpoints[arch] = untrained_checkpoint(arch, calibration, folder / arch.replace(".yaml", ".pt"))
        onnx, _ = export_model(checkpoints[arch], out_dir=folder, name=name, **oracle.options)
        models[name] = onnx
    return models


# --- the oracle tests ---------------------------------------------------------------------------------------


@pytest.mark.parametrize("confidence", [0.25, 0.05])
def test_trained_int8_model_matches_ultralytics_box_for_box(
    yolov8_int8: Path, oracle_frames: Frames, confidence: float
) -> None:
    detector = Detector(yolov8_int8, confidence=confidence, iou=IOU, max_detections=300)
    yolo = ultralytics.YOLO(str(yolov8_int8), task="detect")
    compared = 0
    for key, frame in oracle_frames.items():
        ours, theirs = detector(frame), ultralytics_detections(yolo, frame, detector)
        if confidence == 0.25:  # the card's threshold: exactly the same boxes, nothing excused
            assert len(ours) == len(theirs), key
            assert len(match_boxes(ours, theirs)) == len(ours), key
        assert_same_boxes(ours, theirs, confidence=confidence, max_det=300, where=f"{key} at {confidence}")
        compared += len(ours)
    assert compared >= (20 if confidence == 0.25 else 60)  # people in vtest, cars on the road


@pytest.mark.parametrize("name", list(ORACLES))
def test_exported_model_matches_ultralytics(
    name: str, oracle_models: dict[str, Path], oracle_frames: Frames
) -> None:
    onnx = oracle_models[name]
    card = Detector(onnx, warmup=False).card
    assert card.layout is ORACLES[name].layout
    compared = compare_on_frames(onnx, oracle_frames, confidence=LOW_CONFIDENCE, max_det=LOW_MAX_DET)
    assert compared >= 200, f"{name}: {compared} boxes at confidence {LOW_CONFIDENCE}, too few to compare"


def test_dynamic_batch_equals_single_frames(oracle_models: dict[str, Path], oracle_frames: Frames) -> None:
    onnx = oracle_models["yolo11n-dynamic"]
    detector = Detector(onnx, confidence=LOW_CONFIDENCE, iou=IOU, max_detections=300)
    assert detector.card.input.dynamic and detector.fixed_batch is None
    vtest = [frame for key, frame in oracle_frames.items() if key.startswith("vtest")]
    cars = [frame for key, frame in oracle_frames.items() if key.startswith("car")]
    # Rectangles: 576×768 → 240×320, padded to 256×320; 432×768 → 180×320, padded to 192×320.
    assert detector.preprocessor(vtest)[0].shape == (len(vtest), 3, 256, 320)
    assert detector.preprocessor(cars)[0].shape == (len(cars), 3, 192, 320)
    for frames in (vtest, cars):
        batch = detector.detect_batch(frames)  # one ONNX Runtime call for all frames
        for got, frame in zip(batch, frames, strict=True):
            single = detector(frame)
            np.testing.assert_array_equal(got.class_id, single.class_id)
            np.testing.assert_allclose(got.xyxy, single.xyxy, atol=1e-3)
            np.testing.assert_allclose(got.confidence, single.confidence, atol=SCORE_MARGIN)
    # Mixed sizes share the largest rectangle: the vtest frame sees exactly its single-frame input.
    mixed = detector.detect_batch([vtest[0], cars[0]])
    np.testing.assert_allclose(mixed[0].xyxy, detector(vtest[0]).xyxy, atol=1e-3)
    assert np.all(mixed[1].xyxy[:, 2::2] <= np.array([768, 432]))  # the car frame's boxes stay in its frame


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_nms_matches_ultralytics_nms(seed: int) -> None:
    """Streetwatch's decode + NMS against Ultralytics' ``non_max_suppression`` on dense candidates: 20 anchors
    per object (so most candidates are suppressed), more than max_det survivors, ten classes, and boxes
    reaching past the top-left edge (negative coordinates)."""
    from ultralytics.utils.nms import non_max_suppression

    rng = np.random.default_rng(seed)
    objects, anchors, classes = 150, 3000, 10
    centre, size = rng.uniform(-20, 340, (objects, 2)), rng.uniform(8, 120, (objects, 2))
    owner = rng.integers(0, objects, anchors)
    output = np.zeros((4 + classes, anchors), np.float32)
    output[0:2] = (centre[owner] + rng.normal(0, 2, (anchors, 2))).T
    output[2:4] = (size[owner] * rng.uniform(0.9, 1.1, (anchors, 2))).T
    output[4:] = rng.uniform(0, 0.3, (classes, anchors)) ** 2  # background: other classes score low
    output[4 + owner % classes, np.arange(anchors)] = rng.uniform(0.3, 1.0, anchors)
    confidence, max_det = 0.05, 100
    found = decode_ultralytics(output, confidence)
    keep = batched_nms(
        found.xyxy, found.confidence, found.class_id, iou_threshold=IOU, max_detections=max_det
    )
    (theirs,) = non_max_suppression(torch.from_numpy(output[None]), confidence, IOU, max_det=max_det)
    theirs = theirs.numpy()
    assert len(keep) == len(theirs) == max_det
    np.testing.assert_allclose(found.xyxy[keep], theirs[:, :4], atol=1e-4)
    np.testing.assert_array_equal(found.confidence[keep], theirs[:, 4])
    np.testing.assert_array_equal(found.class_id[keep], theirs[:, 5].astype(np.int64))


def test_nms_keeps_classes_apart_when_boxes_start_off_the_input() -> None:
    """Regression: OpenCV offsets each class by the largest coordinate + 1, so a class-1 box at negative
    coordinates used to overlap (and be suppressed by) a class-0 box in the bottom-right corner."""
    xyxy = np.array([[300, 300, 330, 330], [-20, -20, 10, 10]], np.float32)
    keep = batched_nms(
        xyxy, np.array([0.9, 0.8], np.float32), np.array([0, 1]), iou_threshold=0.2, max_detections=10
    )
    assert keep.tolist() == [0, 1]
