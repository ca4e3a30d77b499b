"""``streetwatch models quantize``: INT8 YOLOX-Nano calibrated on vtest.avi, its float head, the report.

One quantization (a few calibration frames, through the CLI) is shared by the module; the matching and
frame-split tests are pure numpy and run in milliseconds.
"""

from __future__ import annotations

import json
import os
import shutil
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt
import pytest
from typer.testing import CliRunner, Result

from detector import Detector
from detector.card import sha256_of
from detector.detections import Detections
from detector.errors import QuantizeError
from detector.quantize import (
    check_float_model,
    count_frames,
    head_nodes,
    iter_frames_at,
    match_detections,
    match_greedy,
    split_frames,
)
from streetwatch.cli import app

onnx = pytest.importorskip("onnx", reason="quantization needs the dev or train extra")

runner = CliRunner()
CALIBRATION_FRAMES = 12
EVALUATION_FRAMES = 16
# INT8 must keep this share of the float model's confident (>= 0.5) detections (same class, IoU >= 0.5)
# on the held-out frames. Measured with these frame counts and ONNX Runtime 1.31: 0.844 (64 frames: 0.845).
RECALL_BAR = 0.8


def quantize_cli(*args: str | Path) -> Result:
    return runner.invoke(app, ["models", "quantize", *map(str, args)])


def make_detections(rows: list[tuple[float, float, float, float, float, int]]) -> Detections:
    """Detections from (x1, y1, x2, y2, confidence, class) rows."""
    table = np.asarray(rows, np.float32).reshape(-1, 6)
    return Detections(table[:, :4].copy(), table[:, 4].copy(), table[:, 5].astype(np.int64))


# --- frame split -----------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("total", "calibration", "evaluation", "expected_counts"),
    [
        (795, 64, 32, (64, 32)),  # vtest.avi
        (795, 8, 0, (8, 0)),
        (20, 64, 32, (13, 7)),  # a short folder is shared in the asked proportion
        (3, 64, 32, (2, 1)),
        (1, 64, 32, (1, 0)),
        (10, 1, 1, (1, 1)),
    ],
)
def test_split_frames_is_disjoint_even_and_in_range(
    total: int, calibration: int, evaluation: int, expected_counts: tuple[int, int]
) -> None:
    split = split_frames(total, calibration, evaluation)
    assert (len(split.calibration), len(split.evaluation)) == expected_counts
    every = sorted(split.calibration + split.evaluation)
    assert len(set(every)) == len(every)
    assert all(0 <= i < total for i in every)
    if len(every) > 2:  # evenly spread: no gap more than twice the mean
        gaps = np.diff(every)
        assert gaps.max() <= 2 * total / len(every) + 1


def test_split_frames_interleaves_held_out_frames() -> None:
    split = split_frames(795, 64, 32)
    calibration = np.asarray(split.calibration)
    nearest = np.abs(np.asarray(split.evaluation)[:, None] - calibration[None, :]).min(axis=1)
    assert nearest.min() >= 795 // 96 - 1  # never next to a calibration frame
    assert split.evaluation[0] < 795 * 0.1 and split.evaluation[-1] > 795 * 0.9


@pytest.mark.parametrize(("total", "calibration", "evaluation"), [(0, 8, 4), (10, 0, 4), (10, 4, -1)])
def test_split_frames_rejects_impossible_requests(total: int, calibration: int, evaluation: int) -> None:
    with pytest.raises(ValueError, match="cannot take"):
        split_frames(total, calibration, evaluation)


def test_a_folder_of_images_is_a_frame_source(
    vtest_frames: dict[int, npt.NDArray[np.uint8]], tmp_path: Path
) -> None:
    import cv2

    for index, frame in vtest_frames.items():
        cv2.imwrite(str(tmp_path / f"cam-{index:04d}.png"), frame)
    (tmp_path / "notes.txt").write_text("not an image", encoding="utf-8")
    assert count_frames(tmp_path) == len(vtest_frames)
    picked = list(iter_frames_at(tmp_path, [1, 4]))
    np.testing.assert_array_equal(picked[0], vtest_frames[50])
    np.testing.assert_array_equal(picked[1], vtest_frames[600])


# --- matching ------------------------------------------------------------------------------------------


def sequential_greedy(iou: npt.NDArray[np.float64], threshold: float) -> set[tuple[int, int]]:
    """The textbook rule, one row at a time: the oracle for the vectorised rounds."""
    taken: set[int] = set()
    pairs = set()
    for row in range(iou.shape[0]):
        options = [(iou[row, col], -col) for col in range(iou.shape[1]) if col not in taken]
        if options and max(options)[0] >= threshold:
            col = -max(options)[1]
            taken.add(col)
            pairs.add((row, col))
    return pairs


@pytest.mark.parametrize("seed", range(40))
def test_match_greedy_equals_the_sequential_rule(seed: int) -> None:
    rng = np.random.default_rng(seed)
    n, m = rng.integers(0, 12, size=2)
    iou = np.round(rng.random((n, m)), 1)  # rounding makes ties and clashes common
    rows, cols = match_greedy(iou, 0.5)
    assert set(zip(rows.tolist(), cols.tolist(), strict=True)) == sequential_greedy(iou, 0.5)


def test_match_detections_pairs_same_class_by_confidence() -> None:
    reference = make_detections(
        [
            (0, 0, 10, 10, 0.4, 0),
            (1, 0, 11, 10, 0.9, 0),  # more confident: takes the best box first
            (50, 50, 60, 60, 0.8, 2),
        ]
    )
    candidate = make_detections(
        [
            (1, 0, 11, 10, 0.85, 0),
            (50, 50, 60, 60, 0.7, 7),  # right place, wrong class: no match
        ]
    )
    ref, cand, iou = match_detections(reference, candidate)
    assert ref.tolist() == [1] and cand.tolist() == [0]
    np.testing.assert_allclose(iou, [1.0])


# --- the detection head --------------------------------------------------------------------------------


def conv_weight_names(graph: Any, node_names: list[str]) -> set[str]:
    nodes = {node.name: node for node in graph.node}
    return {nodes[name].input[1] for name in node_names if nodes[name].op_type == "Conv"}


def test_yolox_head_ends_in_the_nine_prediction_convs(yolox_nano: Path) -> None:
    graph = onnx.load(str(yolox_nano)).graph
    head = head_nodes(graph)
    predictions = {f"head.{kind}_preds.{i}.weight" for kind in ("reg", "obj", "cls") for i in range(3)}
    assert conv_weight_names(graph, head.prediction_layers) == predictions
    assert conv_weight_names(graph, head.names) == predictions  # no stem, backbone or neck conv
    decode_ops = {node.op_type for node in graph.node if node.name in head.names}
    assert {"Sigmoid", "Concat", "Reshape", "Transpose"} <= decode_ops


def test_an_int8_model_is_refused(yolov8_int8: Path) -> None:
    with pytest.raises(QuantizeError, match="already quantized"):
        check_float_model(onnx.load(str(yolov8_int8)), yolov8_int8)


@pytest.fixture(scope="module")
def yolov8_graph(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Any]:
    """An untrained YOLOv8n (built offline from its yaml) exported to ONNX: the v8/11 head layout."""
    pytest.importorskip("ultralytics")
    from ultralytics import YOLO

    work = tmp_path_factory.mktemp("yolov8n")
    previous = Path.cwd()
    os.chdir(work)  # Ultralytics writes next to the working directory
    try:
        exported = YOLO("yolov8n.yaml").export(format="onnx", imgsz=64, simplify=False, verbose=False)
        yield onnx.load(str(exported)).graph
    finally:
        os.chdir(previous)
        shutil.rmtree(work, ignore_errors=True)


@pytest.mark.train
def test_ultralytics_head_walks_through_dfl_to_the_branch_convs(yolov8_graph: Any) -> None:
    head = head_nodes(yolov8_graph)
    final = {f"/model.22/cv{b}.{i}/cv{b}.{i}.2/Conv" for b in (2, 3) for i in range(3)}
    assert set(head.prediction_layers) == final
    assert "/model.22/dfl/conv/Conv" in head.names  # box decoding, walked through
    assert "/model.22/dfl/conv/Conv" not in head.prediction_layers
    convs = {name for name in head.names if name.endswith("Conv")}
    assert convs == final | {"/model.22/dfl/conv/Conv"}  # cv2.x.1, cv3.x.1 and the backbone are quantized


# --- the whole command on vtest.avi --------------------------------------------------------------------


@pytest.fixture(scope="module")
def quantized(yolox_card: Path, vtest_path: Path, tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    out = tmp_path_factory.mktemp("quantize") / "yolox-nano-int8.onnx"
    result = quantize_cli(
        yolox_card,
        "--calib",
        vtest_path,
        "--frames",
        CALIBRATION_FRAMES,
        "--eval-frames",
        EVALUATION_FRAMES,
        "--out",
        out,
    )
    assert result.exit_code == 0, result.stderr
    report = json.loads(out.with_suffix(".report.json").read_text(encoding="utf-8"))
    return {"out": out, "stdout": result.stdout, "report": report}


def test_cli_prints_the_drift_table(quantized: dict[str, Any]) -> None:
    stdout = quantized["stdout"]
    for label in ("recall of float detections", "precision", "mean IoU", "corner shift", "latency ms"):
        assert label in stdout
    assert str(quantized["out"].with_suffix(".report.json")) in stdout


def test_int8_card_loads_and_pins_the_file(quantized: dict[str, Any], yolox_card: Path) -> None:
    out: Path = quantized["out"]
    detector = Detector(out.with_suffix(".yaml"))
    float_card = Detector(yolox_card, warmup=False).card
    assert detector.card.name == "yolox-nano-coco-int8"
    assert detector.card.sha256 == sha256_of(out)
    assert detector.card.input == float_card.input and detector.card.classes == float_card.classes
    assert f"{CALIBRATION_FRAMES} frames of vtest.avi" in (detector.card.description or "")
    assert out.stat().st_size < 0.5 * float_card.path.stat().st_size


def test_head_stays_float_and_the_backbone_is_int8(quantized: dict[str, Any]) -> None:
    graph = onnx.load(str(quantized["out"])).graph
    dequantized = {o for node in graph.node if node.op_type == "DequantizeLinear" for o in node.output}
    float_weights = {init.name for init in graph.initializer if init.data_type == onnx.TensorProto.FLOAT}
    head = set(quantized["report"]["head_in_float"]["nodes"])
    convs = [node for node in graph.node if node.op_type == "Conv"]
    head_convs = [node for node in convs if node.name in head]
    assert len(head_convs) == 9
    assert all(node.input[1] in float_weights for node in head_convs)
    assert all(node.input[1] in dequantized for node in convs if node.name not in head)


def test_report_has_every_field(quantized: dict[str, Any]) -> None:
    report = quantized["report"]
    assert report["settings"]["calibration"] == "percentile" and report["settings"]["per_channel"]
    assert len(report["calibration"]["frames"]) == CALIBRATION_FRAMES
    assert len(report["evaluation"]["frames"]) == EVALUATION_FRAMES
    assert not set(report["calibration"]["frames"]) & set(report["evaluation"]["frames"])
    drift = report["drift"]
    for key in (
        "frames",
        "float_detections",
        "int8_detections",
        "matched",
        "recall",
        "precision",
        "recall_confident",
        "mean_iou",
        "mean_abs_confidence_change",
        "mean_corner_shift_px",
        "latency_ms",
        "per_class",
    ):
        assert drift[key] is not None, key
    assert set(drift["latency_ms"]) == {"float", "int8"} and drift["latency_ms"]["int8"]["mean"] > 0
    assert drift["per_class"]["person"]["float"] > 50  # vtest: a busy pedestrian scene


def test_int8_finds_the_people_the_float_model_finds(quantized: dict[str, Any]) -> None:
    drift = quantized["report"]["drift"]
    assert drift["recall_confident"] >= RECALL_BAR
    assert drift["precision"] >= 0.9
    assert drift["mean_iou"] >= 0.8
    assert drift["mean_corner_shift_px"] <= 5.0


def test_average_calibration_without_held_out_frames(
    yolox_card: Path, vtest_path: Path, tmp_path: Path
) -> None:
    out = tmp_path / "average.onnx"
    result = quantize_cli(
        yolox_card,
        "--calib",
        vtest_path,
        "--frames",
        2,
        "--eval-frames",
        0,
        "--calibration",
        "average",
        "--out",
        out,
    )
    assert result.exit_code == 0, result.stderr
    assert "no held-out frames left" in result.stdout
    report = json.loads(out.with_suffix(".report.json").read_text(encoding="utf-8"))
    assert "drift" not in report and report["settings"]["calibration"] == "average"
    assert len(Detector(out.with_suffix(".yaml"))(np.zeros((240, 320, 3), np.uint8))) == 0


# --- bad input -----------------------------------------------------------------------------------------


def test_missing_calibration_source_is_one_error_line(yolox_card: Path, tmp_path: Path) -> None:
    missing = tmp_path / "no-such-video.mp4"
    result = quantize_cli(yolox_card, "--calib", missing, "--out", tmp_path / "x.onnx")
    assert result.exit_code == 2
    assert result.stderr.startswith("error: ") and str(missing) in result.stderr
    assert len(result.stderr.strip().splitlines()) == 1
    assert not (tmp_path / "x.onnx").exists()


def test_non_onnx_model_is_one_error_line(vtest_path: Path, tmp_path: Path) -> None:
    fake = tmp_path / "weights.onnx"
    fake.write_text("not a protobuf", encoding="utf-8")
    result = quantize_cli(fake, "--calib", vtest_path)
    assert result.exit_code == 2
    assert result.stderr.startswith(f"error: {fake}: cannot load: expected an ONNX model")


def test_folder_without_images_is_one_error_line(yolox_card: Path, tmp_path: Path) -> None:
    result = quantize_cli(yolox_card, "--calib", tmp_path, "--out", tmp_path / "x.onnx")
    assert result.exit_code == 2
    assert result.stderr.strip() == f"error: {tmp_path}: no frames or images to calibrate on"


def test_refuses_to_overwrite_the_float_model(
    yolox_card: Path, yolox_nano: Path, vtest_path: Path, tmp_path: Path
) -> None:
    model = tmp_path / "m.onnx"
    shutil.copy(yolox_nano, model)
    card = tmp_path / "m.yaml"
    text = yolox_card.read_text(encoding="utf-8")
    lines = [line for line in text.splitlines() if not line.startswith(("path:", "sha256:"))]
    card.write_text("path: m.onnx\n" + "\n".join(lines) + "\n", encoding="utf-8")
    for out in (model, tmp_path / "m.yml"):
        result = quantize_cli(card, "--calib", vtest_path, "--out", out)
        assert result.exit_code == 2
        assert result.stderr.startswith("error: "), result.stderr
    assert sha256_of(model) == sha256_of(yolox_nano)
