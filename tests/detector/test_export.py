"""``streetwatch models export``: Ultralytics weights in; an ONNX file and a card that loads back out.

The first tests fail before Ultralytics is imported, so they run in every job; the ``train`` tests export
untrained architectures (``*.yaml``: no download, a few seconds each on a CPU).
"""

from __future__ import annotations

import json
import shutil
import sys
from pathlib import Path

import numpy as np
import numpy.typing as npt
import pytest
from typer.testing import CliRunner, Result

from detector import Detector
from detector.card import Layout, sha256_of
from detector.export import ExportError, export_model, parse_imgsz, reproduce_command
from streetwatch.cli import app

runner = CliRunner()
# PyTorch's ONNX tracer warns about Ultralytics' head code on every export: known, not ours to fix.
pytestmark = pytest.mark.filterwarnings(
    "ignore:Converting a tensor to a Python boolean", "ignore::DeprecationWarning"
)


def export_cli(*args: str) -> Result:
    return runner.invoke(app, ["models", "export", *args])


def summary_of(result: Result) -> dict[str, object]:
    """The command's JSON summary: its last stdout line (Ultralytics logs to stdout before it)."""
    line = result.stdout.strip().splitlines()[-1]
    parsed: dict[str, object] = json.loads(line)
    return parsed


# --- failures caught before Ultralytics is imported -------------------------------------------------------


def test_missing_weights_is_one_error_line_naming_the_file(tmp_path: Path) -> None:
    missing = tmp_path / "nowhere" / "best.pt"
    result = export_cli(str(missing), "--out", str(tmp_path / "models"))
    assert result.exit_code == 2
    assert result.stderr.strip() == (
        f"error: {missing}: weights file not found (expected a .pt checkpoint or .yaml architecture)"
    )
    assert not (tmp_path / "models").exists()


def test_weights_of_another_format_are_refused(tmp_path: Path) -> None:
    onnx = tmp_path / "model.onnx"
    onnx.write_bytes(b"")
    result = export_cli(str(onnx), "--out", str(tmp_path))
    assert result.exit_code == 2
    assert "expected Ultralytics weights (.pt) or an architecture (.yaml)" in result.stderr


def test_without_ultralytics_the_error_names_the_train_extra(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    weights = tmp_path / "best.pt"
    weights.write_bytes(b"not read")
    monkeypatch.setitem(sys.modules, "ultralytics", None)  # makes ``import ultralytics`` raise ImportError
    result = export_cli(str(weights), "--out", str(tmp_path / "models"))
    assert result.exit_code == 2
    assert result.stderr.startswith("error: exporting needs Ultralytics")
    assert "pip install 'streetwatch[train]'" in result.stderr


@pytest.mark.parametrize("existing", ["best.onnx", "best.yaml"])
def test_existing_outputs_are_not_replaced_without_overwrite(tmp_path: Path, existing: str) -> None:
    weights = tmp_path / "best.pt"
    weights.write_bytes(b"not read")
    (tmp_path / "models").mkdir()
    (tmp_path / "models" / existing).write_text("keep me")
    with pytest.raises(ExportError, match="already exists; pass --overwrite"):
        export_model(weights, out_dir=tmp_path / "models")
    assert (tmp_path / "models" / existing).read_text() == "keep me"


def test_an_architecture_is_never_overwritten_by_its_own_card(tmp_path: Path) -> None:
    arch = tmp_path / "arch.yaml"
    arch.write_text("nc: 1\n")
    with pytest.raises(ExportError, match="would overwrite its source"):
        export_model(arch, out_dir=tmp_path, overwrite=True)


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("640", 640),
        ("384,640", (384, 640)),
        ("384x640", (384, 640)),
        (" 320 ", 320),
        ("0", ValueError),
        ("a", ValueError),
        ("1,2,3", ValueError),
        ("", ValueError),
        ("-320", ValueError),
    ],
)
def test_parse_imgsz(text: str, expected: int | tuple[int, int] | type[Exception]) -> None:
    if isinstance(expected, type):
        with pytest.raises(expected, match="--imgsz"):
            parse_imgsz(text)
    else:
        assert parse_imgsz(text) == expected


def test_reproduce_command_lists_only_what_differs_from_the_defaults() -> None:
    common = {"out_dir": Path("models"), "opset": None, "simplify": True, "end2end": True, "version": "0.1.0"}
    plain = reproduce_command(
        Path("best.pt"), imgsz=640, dynamic=False, half=False, batch=1, name="best", **common
    )
    assert plain == "streetwatch models export best.pt --out models --imgsz 640"
    static = reproduce_command(
        Path("best.pt"),
        imgsz=640,
        dynamic=False,
        half=False,
        batch=4,
        name="best",
        dynamic_batch=False,
        out_dir=Path("models"),
        opset=None,
        simplify=True,
        end2end=True,
        version="0.1.0",
    )
    assert static == "streetwatch models export best.pt --out models --imgsz 640 --static-batch --batch 4"
    custom = reproduce_command(
        Path("runs/my best.pt"),
        out_dir=Path("models"),
        imgsz=(384, 640),
        dynamic=True,
        half=True,
        batch=1,
        opset=17,
        name="cams",
        simplify=False,
        end2end=False,
        version="2.0",
    )
    assert custom == (
        "streetwatch models export 'runs/my best.pt' --out models --imgsz 384,640 --dynamic --half"
        " --no-simplify --no-end2end --opset 17 --name cams --version 2.0"
    )


# --- real exports (train extra) -----------------------------------------------------------------------------


@pytest.fixture(scope="module")
def ultralytics_cfg() -> Path:
    ultralytics = pytest.importorskip("ultralytics")
    return Path(ultralytics.__file__).parent / "cfg" / "models"


@pytest.fixture(scope="module")
def frame(vtest_frames: dict[int, npt.NDArray[np.uint8]]) -> npt.NDArray[np.uint8]:
    return vtest_frames[200]


@pytest.mark.train
def test_cli_exports_an_architecture_and_its_card_loads_back(
    tmp_path: Path, ultralytics_cfg: Path, frame: npt.NDArray[np.uint8], monkeypatch: pytest.MonkeyPatch
) -> None:
    import ultralytics

    monkeypatch.chdir(tmp_path)  # relative paths, as typed in a checkout
    arch, out = Path("arch.yaml"), Path("models")
    shutil.copy(ultralytics_cfg / "v8" / "yolov8.yaml", arch)
    result = export_cli(str(arch), "--out", str(out), "--imgsz", "320")
    assert result.exit_code == 0, result.output
    onnx, card_path = out / "arch.onnx", out / "arch.yaml"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["arch.yaml", "models"]  # nothing left behind
    assert summary_of(result) == {
        "onnx": str(onnx),
        "card": str(card_path),
        "layout": "ultralytics",
        "input_hw": [320, 320],
        "dynamic": False,
        "classes": 80,
        "sha256": sha256_of(onnx),
    }

    detector = Detector(card_path)
    card = detector.card
    assert detector.loaded.card_path == card_path
    assert card.path == tmp_path / "models" / "arch.onnx"
    assert card.sha256 == sha256_of(onnx)
    assert card.layout is Layout.ULTRALYTICS
    # 4 + 80 classes, 40² + 20² + 10² anchors; the batch axis is dynamic by default (one run per batch)
    assert detector.loaded.info.outputs[0].shape == ("batch", 84, 2100)
    assert detector.fixed_batch is None
    assert [len(d) >= 0 for d in detector.detect_batch([frame, frame])] == [True, True]
    assert (card.input.size_hw, card.input.dynamic, card.input.stride) == ((320, 320), False, 32)
    assert card.classes == [str(i) for i in range(80)]  # an untrained architecture names classes by number
    assert card.name == "arch" and card.version == "0.1.0"
    assert card.licence.startswith("AGPL-3.0")
    assert card.thresholds.iou == 0.7  # Ultralytics' predict default
    assert card.source == f"{arch} (architecture only: random, untrained weights), " + (
        f"exported by Ultralytics {ultralytics.__version__}"
    )
    command = "streetwatch models export arch.yaml --out models --imgsz 320"
    assert card.description is not None and card.description.endswith(f"exported with: {command}")
    assert f"#   {command}\n" in card_path.read_text(encoding="utf-8")
    assert len(detector(frame)) >= 0  # it runs on a real frame

    again = export_cli(str(arch), "--out", str(out), "--imgsz", "320")
    assert again.exit_code == 2
    assert again.stderr.strip() == f"error: {onnx}: already exists; pass --overwrite to replace it"


@pytest.mark.train
@pytest.mark.parametrize(
    ("end2end", "layout", "output_shape"),
    [(True, Layout.END2END, ("batch", 300, 6)), (False, Layout.ULTRALYTICS, ("batch", 84, 1680))],
)
def test_yolo26_exports_its_nms_free_head_unless_asked_not_to(
    tmp_path: Path,
    ultralytics_cfg: Path,
    frame: npt.NDArray[np.uint8],
    end2end: bool,
    layout: Layout,
    output_shape: tuple[int, ...],
) -> None:
    # A bare architecture name is Ultralytics' own; a rectangular size (height, width) is kept as given.
    onnx, card_path = export_model(Path("yolo26n.yaml"), out_dir=tmp_path, imgsz=(256, 320), end2end=end2end)
    assert (onnx, card_path) == (tmp_path / "yolo26n.onnx", tmp_path / "yolo26n.yaml")
    detector = Detector(card_path, confidence=0.0)
    assert detector.card.layout is layout
    assert detector.loaded.info.metadata["end2end"] == str(end2end)
    assert detector.loaded.info.outputs[0].shape == output_shape  # 1680 = 32×40 + 16×20 + 8×10 anchors
    assert detector.card.input.size_hw == (256, 320)
    assert len(detector(frame)) > 0  # confidence 0: boxes whatever the (untrained) weights


@pytest.mark.train
def test_dynamic_half_export_takes_any_batch_and_rectangle(
    tmp_path: Path, ultralytics_cfg: Path, vtest_frames: dict[int, npt.NDArray[np.uint8]]
) -> None:
    _, card_path = export_model(
        Path("yolov8n.yaml"), out_dir=tmp_path, imgsz=320, dynamic=True, half=True, name="v8-dynamic-fp16"
    )
    detector = Detector(card_path, confidence=0.0, max_detections=5)
    image_input = detector.loaded.info.inputs[0]
    assert image_input.dtype == "tensor(float)"  # FP16 weights, float32 input and output
    assert not image_input.static_shape and detector.card.input.dynamic
    frames = list(vtest_frames.values())[:3]
    tensor, _ = detector.preprocessor(frames)
    assert tensor.shape == (3, 3, 256, 320)  # 576×768 → 240×320, padded to a multiple of 32
    assert [len(d) for d in detector.detect_batch(frames)] == [5, 5, 5]
    description = detector.card.description or ""
    assert description.endswith("--imgsz 320 --dynamic --half --name v8-dynamic-fp16")
