"""``streetwatch train``: Ultralytics training on a YOLO dataset, offline, then the ONNX export and model
card of ``streetwatch models export`` (train extra), with each class's working confidence chosen on the
validation split (the card's ``thresholds.classes``).

Ultralytics and PyTorch are imported lazily: the daemon and the API never need them.
"""

from __future__ import annotations

import logging
import os
import shlex
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from itertools import takewhile
from pathlib import Path
from typing import Any

import yaml

from datasets.augmentation import DEFAULT_HUE_SHIFT, MAX_HUE_SHIFT
from datasets.errors import TrainError
from datasets.yolo import read_dataset_yaml, split_images
from detector.export import export_model, import_ultralytics

log = logging.getLogger(__name__)

#: A class needs this many labelled boxes in the validation split before its F2 peak is taken as its working
#: confidence; with fewer the peak is noise, and rules keep their default for it.
MIN_WORKING_LABELS = 5


@dataclass(frozen=True)
class TrainResult:
    weights: Path  # best.pt
    onnx: Path | None
    card: Path | None
    metrics: dict[str, float]
    command: str
    working_points: dict[str, float] = field(default_factory=dict)  # written into the card
    threads: int | None = None  # torch threads the training ran on (read when it started)


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
    hue_shift: float = DEFAULT_HUE_SHIFT,
    threads: int | None = None,
    extra: dict[str, Any] | None = None,
) -> TrainResult:
    """Train ``model`` (an architecture ``.yaml`` or ``.pt`` weights to start from) on ``data``; export the
    best weights to ``out_dir/<export_name>.onnx`` with a card unless ``export`` is False.

    ``hue_shift`` is the largest random hue rotation of a training image, as a share of the colour circle
    (Ultralytics' ``hsv_h``): 0.5 shows every object in every colour. In the bootstrap round it made the
    first model find a stall whose colour matched the wall behind it, and cost garbage recall
    (benchmarks/README.md, Bootstrap round), so the default stays Ultralytics' own.

    ``threads`` is the number of torch threads a CPU training runs on; default every core. Ultralytics
    itself takes one less than the cores (``NUM_THREADS``), which on a 2-vCPU box leaves half of it idle:
    two threads trained the bootstrap round's set 1.54x faster than one (benchmarks/README.md)."""
    threads = threads if threads is not None else os.cpu_count() or 1
    read_dataset_yaml(data)  # a malformed dataset fails here, with a line number, not deep in Ultralytics
    if epochs < 1 or imgsz < 32 or batch < 1:
        raise TrainError(
            f"epochs, imgsz and batch must be >= 1, >= 32 and >= 1; got {epochs}, {imgsz}, {batch}"
        )
    if threads < 1:
        raise TrainError(f"threads must be >= 1; got {threads}")
    if not 0.0 <= hue_shift <= MAX_HUE_SHIFT:
        raise TrainError(
            f"hue_shift must be between 0 and {MAX_HUE_SHIFT} (share of the colour circle); got {hue_shift}"
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
        "hsv_h": hue_shift,
        **(extra or {}),
    }
    started_on: list[int] = []
    try:
        yolo = ultralytics.YOLO(model, task="detect")
        yolo.add_callback("on_train_start", lambda _trainer: started_on.append(_torch_threads()))
        with _cpu_training_threads(threads):
            yolo.train(**arguments)
    except Exception as exc:  # Ultralytics raises anything from FileNotFoundError to RuntimeError
        raise TrainError(
            f"Ultralytics training of {model} on {data} failed: {type(exc).__name__}: {exc}"
        ) from exc
    trainer = yolo.trainer
    weights = Path(trainer.best if Path(trainer.best).is_file() else trainer.last)
    metrics = {k: float(v) for k, v in (getattr(trainer, "metrics", None) or {}).items() if _is_number(v)}
    command = train_command_line(
        model, data, epochs, imgsz, batch, device, project, name, seed, hue_shift, threads
    )
    used = started_on[0] if started_on else None
    if not export:
        return TrainResult(weights, None, None, metrics, command, threads=used)
    onnx, card = export_model(
        weights, out_dir=out_dir, imgsz=imgsz, name=export_name or name, overwrite=overwrite
    )
    if card is not None:
        copy_input_blur(data, card)
    points = choose_working_points(card, data) if card is not None else {}
    return TrainResult(weights, onnx, card, metrics, command, points, used)


def copy_input_blur(data: Path, card: Path) -> float | None:
    """The dataset's ``blurred_outside_zones`` (``export-reviewed --images frame``: frames redacted outside
    their camera's zones) into the card's ``input.blur_outside_zones``, so that the daemon shows the model
    frames blurred as it learnt from them (pipeline.model_input). Returns it; None when the dataset has
    none."""
    spec = yaml.safe_load(data.read_text(encoding="utf-8")) or {}
    blur = spec.get("blurred_outside_zones")
    if blur is None:
        return None
    _update_card(card, lambda fields: fields.setdefault("input", {}).update(blur_outside_zones=float(blur)))
    return float(blur)


def _torch_threads() -> int:
    import torch

    return int(torch.get_num_threads())


@contextmanager
def _cpu_training_threads(threads: int) -> Iterator[None]:
    """Ultralytics sets torch's threads to its module constant ``NUM_THREADS`` when it selects the CPU
    (``select_device``), whatever OMP_NUM_THREADS says; the constant is replaced for the training and
    both are put back after it, so the process goes on with the threads it had."""
    from ultralytics.utils import torch_utils

    before, before_torch = getattr(torch_utils, "NUM_THREADS"), _torch_threads()  # noqa: B009 (not re-exported)
    setattr(torch_utils, "NUM_THREADS", threads)  # noqa: B010
    try:
        yield
    finally:
        import torch

        setattr(torch_utils, "NUM_THREADS", before)  # noqa: B010
        torch.set_num_threads(before_torch)


def choose_working_points(card: Path, data: Path, *, split: str = "val") -> dict[str, float]:
    """Each class's working confidence: where its F2 at IoU 0.5 peaks (datasets.metrics.working_point) on
    ``split`` of ``data``, the exported
    model run as the daemon runs it (``streetwatch evaluate``, the card's NMS), for classes with at least
    :data:`MIN_WORKING_LABELS` boxes there. Written into the card's ``thresholds.classes`` (the rules of a
    zone that set no ``min_confidence`` use it): a new model's scores are on a scale of their own, and a
    fixed threshold made for another model drops what this one finds. No split, no points."""
    from datasets.evaluate import evaluate
    from detector.card import Thresholds, read_card_fields

    spec = read_dataset_yaml(data)
    if split not in spec.splits or not split_images(spec, split):
        log.warning("%s has no %s images: the card keeps no per-class working confidence", data, split)
        return {}
    iou = Thresholds.model_validate(read_card_fields(card).get("thresholds") or {}).iou  # the daemon's NMS
    evaluation = evaluate(card, data, split=split, iou=iou)
    points = {
        evaluation.class_names[c.class_id]: round(c.working_confidence, 3)
        for c in evaluation.per_class
        if c.labels >= MIN_WORKING_LABELS and c.working_confidence is not None
    }
    if points:
        write_working_points(card, points)
    return points


def write_working_points(card: Path, points: dict[str, float]) -> None:
    """``thresholds.classes`` set in the card file; its header comments and other fields are kept."""
    _update_card(card, lambda fields: fields.setdefault("thresholds", {}).update(classes=dict(points)))


def _update_card(card: Path, change: Callable[[dict[str, Any]], object]) -> None:
    """The card file with ``change`` applied to its fields; its header comments and other fields kept."""
    text = card.read_text(encoding="utf-8")
    header = "".join(takewhile(lambda line: line.startswith("#"), text.splitlines(keepends=True)))
    data = yaml.safe_load(text)
    change(data)
    body = yaml.safe_dump(data, sort_keys=False, allow_unicode=True, width=110, default_flow_style=None)
    card.write_text(header + body, encoding="utf-8")


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
    hue_shift: float = DEFAULT_HUE_SHIFT,
    threads: int | None = None,
) -> str:
    """The ``streetwatch train`` command that reproduces a run (the thread count changes the weights a
    little: floating-point sums are split differently)."""
    words = ["streetwatch", "train", model, str(data), "--epochs", str(epochs), "--imgsz", str(imgsz)]
    words += ["--batch", str(batch), "--device", device, "--project", str(project), "--name", name]
    words += ["--seed", str(seed), "--hue-shift", f"{hue_shift:g}"]
    if threads is not None:
        words += ["--threads", str(threads)]
    return shlex.join(words)
