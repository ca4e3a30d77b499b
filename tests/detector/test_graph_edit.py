"""Rewriting static detector graphs (detector/graph_edit.py, ``streetwatch models reshape``): a dynamic
batch axis that computes exactly what the batch-1 file computes, and a 384x640 input that finds the same
objects in real 16:9 footage."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import numpy.typing as npt
import onnx
import pytest
from typer.testing import CliRunner

from detector import Detector
from detector.export import reshape_model
from detector.graph_edit import GraphEditError, make_batch_dynamic, resize_input
from streetwatch.cli import app
from tests.conftest import read_frames

Frame = npt.NDArray[np.uint8]


def iou(a: npt.NDArray[np.float32], b: npt.NDArray[np.float32]) -> float:
    x1, y1 = max(a[0], b[0]), max(a[1], b[1])
    x2, y2 = min(a[2], b[2]), min(a[3], b[3])
    inter = max(0.0, x2 - x1) * max(0.0, y2 - y1)
    area = (a[2] - a[0]) * (a[3] - a[1]) + (b[2] - b[0]) * (b[3] - b[1]) - inter
    return float(inter / area) if area > 0 else 0.0


@pytest.mark.parametrize("name", ["yolov8n_int8_coco.onnx", "yolox_nano_coco.onnx"])
def test_dynamic_batch_equals_the_static_file_on_real_frames(
    name: str, yolov8_int8: Path, yolox_card: Path, vtest_frames: dict[int, Frame], tmp_path: Path
) -> None:
    source = yolov8_int8 if name.startswith("yolov8") else yolox_card
    original = Detector(source)
    target, card = reshape_model(source, tmp_path / name, dynamic_batch=True)
    shape = onnx.load(str(target)).graph.input[0].type.tensor_type.shape.dim
    assert shape[0].dim_param == "batch"
    frames = [vtest_frames[i] for i in (0, 200, 400, 790)]
    want = [original(f) for f in frames]
    dynamic = Detector(card)
    assert dynamic.fixed_batch is None
    for frame, expected in zip(frames, want, strict=True):  # one at a time: the very same boxes
        got = dynamic(frame)
        np.testing.assert_array_equal(got.xyxy, expected.xyxy)
        np.testing.assert_array_equal(got.class_id, expected.class_id)
    together = dynamic.detect_batch(frames)
    if name.startswith("yolox"):  # a float model: a batch of different frames gives each frame's own boxes
        for got, expected in zip(together, want, strict=True):
            np.testing.assert_allclose(got.xyxy, expected.xyxy, atol=1e-3)
    else:  # dynamically quantised: one int8 scale per batch tensor, so a batch shifts scores a little
        assert [len(d) for d in together] == pytest.approx([len(d) for d in want], abs=2)


def test_the_bundled_demo_model_is_batch_dynamic() -> None:
    demo = Detector(Path(__file__).resolve().parents[2] / "models" / "streetwatch-demo-n.yaml")
    assert demo.fixed_batch is None and demo.card.input.size_hw == (320, 320)


def test_384x640_finds_the_same_cars_in_real_16_9_footage(
    yolov8_int8: Path, car_video: Path, tmp_path: Path
) -> None:
    runner = CliRunner()
    target = tmp_path / "v8-384x640.onnx"
    result = runner.invoke(app, ["models", "reshape", str(yolov8_int8), str(target), "--imgsz", "384,640"])
    assert result.exit_code == 0, result.output
    card = target.with_suffix(".yaml")
    rect, square = Detector(card), Detector(yolov8_int8)
    assert rect.card.input.size_hw == (384, 640) and rect.fixed_batch is None
    assert rect.loaded.info.outputs[0].shape[2] == 48 * 80 + 24 * 40 + 12 * 20
    frames = read_frames(car_video, list(range(0, 375, 25)))  # the 30 s clip, every 2 s
    assert frames[0].shape[:2] == (432, 768)  # 16:9: 640x360 fills 384x640 but for 24 rows
    matched = total = found = 0
    for frame in frames.values():
        a, b = square(frame), rect(frame)
        found += len(b)
        for box, c in zip(a.xyxy, a.class_id, strict=True):
            total += 1
            matched += any(
                o == c and iou(box, other) > 0.5 for other, o in zip(b.xyxy, b.class_id, strict=True)
            )
    assert total >= 8  # cars, a suitcase, phones: what the square model sees while cars drive through
    assert matched / total >= 0.8 and abs(found - total) <= 0.2 * total, (matched, found, total)


def test_bad_inputs_are_refused_with_the_reason(yolov8_int8: Path, tmp_path: Path) -> None:
    model = onnx.load(str(yolov8_int8))
    with pytest.raises(GraphEditError, match="multiples of 32"):
        resize_input(model, (360, 640))
    dynamic = make_batch_dynamic(model)
    with pytest.raises(GraphEditError, match="expected a static"):
        resize_input(_dynamic_hw(dynamic), (384, 640))
    junk = tmp_path / "junk.onnx"
    junk.write_bytes(b"not a model")
    result = CliRunner().invoke(app, ["models", "reshape", str(junk), str(tmp_path / "x.onnx")])
    assert result.exit_code == 2 and "error:" in result.output and "junk.onnx" in result.output


def _dynamic_hw(model: onnx.ModelProto) -> onnx.ModelProto:
    copy = onnx.ModelProto()
    copy.CopyFrom(model)
    copy.graph.input[0].type.tensor_type.shape.dim[2].dim_param = "height"
    return copy
