"""The benchmark's model: the default yolo11n-size export (random weights: speed only) and the facts a
trial needs about a model."""

from __future__ import annotations

import gc
from dataclasses import dataclass
from pathlib import Path

DEFAULT_ARCH = "yolo11n.yaml"  # exported once to <cache>/models/yolo11n-640.onnx (random weights)


def default_model(cache: Path, size_hw: tuple[int, int] = (640, 640), *, dynamic: bool = False) -> Path:
    """The yolo11n-size model at ``size_hw`` (random weights), exported once with Ultralytics into the cache:
    ``yolo11n-640`` (square) or e.g. ``yolo11n-384x640`` (a 16:9 camera's picture without padding rows);
    ``dynamic``: dynamic height and width up to ``size_hw`` (``yolo11n-384x640-dyn``: zone-ROI crops run at
    their own size)."""
    from detector.export import export_model

    height, width = size_hw
    size = str(width) if height == width else f"{height}x{width}"
    card = cache / "models" / f"yolo11n-{size}{'-dyn' if dynamic else ''}.yaml"
    if not card.exists():
        imgsz = width if height == width else (height, width)
        export_model(
            Path(DEFAULT_ARCH),
            out_dir=card.parent,
            imgsz=imgsz,
            name=card.stem,
            overwrite=True,
            dynamic=dynamic,
        )
    return card


@dataclass(frozen=True)
class ModelFacts:
    """What the trials need to know about the model, read once by the main process."""

    model: str  # the card or ONNX file given
    onnx: str
    name: str
    layout: str
    input_hw: tuple[int, int]  # the largest input when ``dynamic``
    fixed_batch: int | None
    confidence: float
    iou: float
    max_detections: int
    violation_class: str  # the class mapped to illegal_parking (and used for the scripted car)
    violation_class_id: int
    ultralytics: bool  # whether Ultralytics can run it (the naive loop)
    dynamic: bool = False  # dynamic input height and width (zone-ROI crops run at their own size)


def model_facts(model: Path) -> ModelFacts:
    from detector import Detector

    detector = Detector(model, warmup=False)
    names = detector.class_names
    class_id = names.index("car") if "car" in names else min(2, len(names) - 1)
    card = detector.card
    facts = ModelFacts(
        model=str(model),
        onnx=str(card.path),
        name=card.name,
        layout=card.layout.value,
        input_hw=(int(card.input.size_hw[0]), int(card.input.size_hw[1])),
        fixed_batch=detector.fixed_batch,
        confidence=detector.confidence,
        iou=detector.iou,
        max_detections=detector.max_detections,
        violation_class=names[class_id],
        violation_class_id=class_id,
        ultralytics=bool(detector.loaded.info.is_ultralytics),
        dynamic=bool(card.input.dynamic),
    )
    del detector
    gc.collect()
    return facts
