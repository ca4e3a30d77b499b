"""``streetwatch train``: Ultralytics training on a YOLO dataset, offline, then the ONNX export and model
card of ``streetwatch models export`` (train extra).

Ultralytics and PyTorch are imported lazily: the daemon and the API never need them.
"""

from __future__ import annotations

import shlex
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from datasets.errors import TrainError
from datasets.yolo import read_dataset_yaml
from detector.export import export_model, import_ultralytics


@dataclass(frozen=True)
class TrainResult:
    weights: Path  # best.pt
    onnx: Path | None
    card: Path | None
    metrics: dict[str, float]
    command: str


def train(
    model: str,
    data: Path,
    *,
    epochs: int = 100,
    imgsz: int = 640,
    batch: int = 16,
    device: str = "cpu",
    project: Path = Path("runs/train"),
    name: str = "streetwatch",
    seed: int = 0,
    workers: int = 2,
    export: bool = True,
    out_dir: Path = Path("models"),
    export_name: str | None = None,
    overwrite: bool = False,
    extra: dict[str, Any] | None = None,
) -> TrainResult:
    """Train ``model`` (an architecture ``.yaml`` or ``.pt`` weights to start from) on ``data``; export the
    best weights to ``out_dir/<export_name>.onnx`` with a card unless ``export`` is False."""
    read_dataset_yaml(data)  # a malformed dataset fails here, with a line number, not deep in Ultralytics
    if epochs < 1 or imgsz < 32 or batch < 1:
        raise TrainError(
            f"epochs, imgsz and batch must be >= 1, >= 32 and >= 1; got {epochs}, {imgsz}, {batch}"
        )
    if model.endswith(".pt") and not Path(model).is_file():
        raise TrainError(f"{model}: weights file not found (offline: Ultralytics cannot download it)")
    ultralytics = import_ultralytics()
    arguments: dict[str, Any] = {
        "data": str(data.resolve()),
        "epochs": epochs,
        "imgsz": imgsz,
        "batch": batch,
        "device": device,
        "project": str(project.resolve()),
        "name": name,
        "exist_ok": True,
        "seed": seed,
        "deterministic": True,
        "workers": workers,
        "plots": False,  # plotting fetches a font from the network on first use
        "verbose": False,
        **(extra or {}),
    }
    try:
        yolo = ultralytics.YOLO(model, task="detect")
        yolo.train(**arguments)
    except Exception as exc:  # Ultralytics raises anything from FileNotFoundError to RuntimeError
        raise TrainError(
            f"Ultralytics training of {model} on {data} failed: {type(exc).__name__}: {exc}"
        ) from exc
    trainer = yolo.trainer
    weights = Path(trainer.best if Path(trainer.best).is_file() else trainer.last)
    metrics = {k: float(v) for k, v in (getattr(trainer, "metrics", None) or {}).items() if _is_number(v)}
    command = train_command_line(model, data, epochs, imgsz, batch, device, project, name, seed)
    if not export:
        return TrainResult(weights, None, None, metrics, command)
    onnx, card = export_model(
        weights, out_dir=out_dir, imgsz=imgsz, name=export_name or name, overwrite=overwrite
    )
    return TrainResult(weights, onnx, card, metrics, command)


def _is_number(value: Any) -> bool:
    try:
        float(value)
    except (TypeError, ValueError):
        return False
    return True


def train_command_line(
    model: str,
    data: Path,
    epochs: int,
    imgsz: int,
    batch: int,
    device: str,
    project: Path,
    name: str,
    seed: int,
) -> str:
    """The ``streetwatch train`` command that reproduces a run."""
    words = ["streetwatch", "train", model, str(data), "--epochs", str(epochs), "--imgsz", str(imgsz)]
    words += ["--batch", str(batch), "--device", device, "--project", str(project), "--name", name]
    words += ["--seed", str(seed)]
    return shlex.join(words)
