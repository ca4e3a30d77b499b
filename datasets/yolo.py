"""YOLO datasets as Ultralytics reads them: ``dataset.yaml``, ``images/<split>/...`` and one label file
per image at the same path under ``labels/`` (``class cx cy w h``, normalised to the image size).

Boxes are a struct of arrays (:class:`Labels`), never a list of per-box objects.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt
import yaml

from datasets.errors import LabelError
from detector.yaml_lines import load_located_yaml

IMAGE_SUFFIXES = (".jpg", ".jpeg", ".png", ".bmp", ".webp", ".tif", ".tiff")
SPLITS = ("train", "val", "test")
COORD_TOLERANCE = 1e-6  # normalised coordinates a rounding error past 0 or 1 are still accepted
DECIMALS = 6  # written precision: 6 decimals of a 4000 px side is 0.002 px

F64 = npt.NDArray[np.float64]
I64 = npt.NDArray[np.int64]


@dataclass(frozen=True, slots=True)
class Labels:
    """The boxes of one image.

    Attributes:
        class_id: (N,) int64 dataset class indices.
        xywhn: (N, 4) float64 centre x, centre y, width, height, each divided by the image's width or height.
    """

    class_id: I64
    xywhn: F64

    @classmethod
    def empty(cls) -> Labels:
        return cls(np.zeros((0,), np.int64), np.zeros((0, 4), np.float64))

    def __len__(self) -> int:
        return len(self.class_id)


def xyxy_to_xywhn(xyxy: F64, width: int, height: int) -> F64:
    """(N, 4) pixel corners to normalised centre and size."""
    xyxy = np.asarray(xyxy, np.float64).reshape(-1, 4)
    scale = np.array([width, height, width, height], np.float64)
    out = np.empty_like(xyxy)
    out[:, :2] = (xyxy[:, :2] + xyxy[:, 2:]) / 2
    out[:, 2:] = xyxy[:, 2:] - xyxy[:, :2]
    result: F64 = out / scale
    return result


def xywhn_to_xyxy(xywhn: F64, width: int, height: int) -> F64:
    """(N, 4) normalised centre and size to pixel corners."""
    xywhn = np.asarray(xywhn, np.float64).reshape(-1, 4)
    half = xywhn[:, 2:] / 2
    corners = np.concatenate([xywhn[:, :2] - half, xywhn[:, :2] + half], axis=1)
    result: F64 = corners * np.array([width, height, width, height], np.float64)
    return result


# --- label files ----------------------------------------------------------------------------------------


def label_path_for(image: Path) -> Path:
    """Ultralytics' rule: the last ``images`` folder of the path becomes ``labels``, the suffix ``.txt``."""
    parts = list(image.parts)
    for i in range(len(parts) - 2, -1, -1):
        if parts[i] == "images":
            parts[i] = "labels"
            return Path(*parts).with_suffix(".txt")
    raise LabelError(f"{image}: image path has no 'images' folder, so its label file cannot be found")


def read_labels(path: Path, num_classes: int) -> Labels:
    """Parse one label file; a missing file is an image without objects (as Ultralytics treats it).

    Lines are ``class cx cy w h`` (a box) or ``class x1 y1 x2 y2 x3 y3 ...`` (a polygon, whose bounds
    become the box, as Ultralytics does for detection).
    """
    if not path.exists():
        return Labels.empty()
    classes: list[int] = []
    boxes: list[tuple[float, float, float, float]] = []
    for number, line in enumerate(path.read_text(encoding="utf-8").splitlines(), start=1):
        if not line.strip():
            continue
        class_id, box = _parse_line(line, num_classes, f"{path}:{number}")
        classes.append(class_id)
        boxes.append(box)
    if not classes:
        return Labels.empty()
    return Labels(np.array(classes, np.int64), np.array(boxes, np.float64))


def _parse_line(line: str, num_classes: int, where: str) -> tuple[int, tuple[float, float, float, float]]:
    words = line.split()
    if len(words) != 5 and (len(words) < 7 or len(words) % 2 == 0):
        raise LabelError(
            f"{where}: expected 'class cx cy w h' (5 numbers) or a polygon 'class x1 y1 x2 y2 x3 y3 ...', "
            f"found {len(words)} values: {line.strip()[:80]!r}"
        )
    try:
        class_id = int(words[0])
    except ValueError:
        raise LabelError(f"{where}: class {words[0]!r} is not an integer") from None
    if not 0 <= class_id < num_classes:
        raise LabelError(f"{where}: class {class_id} is out of range: the dataset has {num_classes} classes")
    try:
        values = [float(word) for word in words[1:]]
    except ValueError:
        raise LabelError(
            f"{where}: coordinates must be numbers, found {' '.join(words[1:])[:80]!r}"
        ) from None
    if not all(math.isfinite(v) and -COORD_TOLERANCE <= v <= 1 + COORD_TOLERANCE for v in values):
        raise LabelError(f"{where}: coordinates must be normalised to 0..1, found {' '.join(words[1:])[:80]}")
    if len(values) == 4:
        cx, cy, w, h = values
        if w <= 0 or h <= 0:
            raise LabelError(f"{where}: box width and height must be > 0, found w={w} h={h}")
        return class_id, (cx, cy, w, h)
    xs, ys = values[0::2], values[1::2]
    x1, x2, y1, y2 = min(xs), max(xs), min(ys), max(ys)
    return class_id, ((x1 + x2) / 2, (y1 + y2) / 2, x2 - x1, y2 - y1)


def write_labels(path: Path, labels: Labels) -> None:
    """Write ``labels`` (an empty file for an image without objects: an explicit negative)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    lines = [
        f"{int(c)} " + " ".join(f"{float(v):.{DECIMALS}f}" for v in box)
        for c, box in zip(labels.class_id, labels.xywhn, strict=True)
    ]
    path.write_text("".join(line + "\n" for line in lines), encoding="utf-8")


# --- dataset.yaml ---------------------------------------------------------------------------------------


@dataclass(frozen=True)
class DatasetSpec:
    """A parsed ``dataset.yaml``.

    Attributes:
        path: the YAML file.
        root: the dataset root (``path:`` in the YAML, relative to the file; default its folder).
        names: class names, index = class id.
        splits: split name -> image sources (folders or ``.txt`` lists), relative to ``root``.
        extra: any other keys (kept when the file is rewritten).
    """

    path: Path
    root: Path
    names: list[str]
    splits: dict[str, list[str]]
    extra: dict[str, Any] = field(default_factory=dict)


def read_dataset_yaml(path: Path) -> DatasetSpec:
    """Parse an Ultralytics detection ``dataset.yaml``; errors name the file and line."""
    if not path.is_file():
        raise LabelError(f"{path}: dataset YAML not found")
    located = load_located_yaml(path)
    data = located.data
    if not isinstance(data, dict):
        raise LabelError(f"{path}: expected a mapping with 'names' and split keys (train, val, test)")

    def where(*key: str) -> str:
        line = located.line_of(key)
        return f"{path}:{line}" if line else str(path)

    names = _parse_names(data.get("names"), where("names"))
    root = Path(str(data.get("path") or "."))
    root = root if root.is_absolute() else (path.parent / root)
    splits: dict[str, list[str]] = {}
    for split in SPLITS:
        value = data.get(split)
        if value is None:
            continue
        sources = [value] if isinstance(value, str) else value
        if not isinstance(sources, list) or not all(isinstance(s, str) for s in sources):
            raise LabelError(f"{where(split)}: {split}: expected a folder, a .txt list, or a list of them")
        splits[split] = list(sources)
    extra = {k: v for k, v in data.items() if k not in ("names", "path", "nc", *SPLITS)}
    return DatasetSpec(path=path, root=root, names=names, splits=splits, extra=extra)


def _parse_names(value: Any, where: str) -> list[str]:
    if isinstance(value, list) and value and all(isinstance(n, str) and n for n in value):
        return list(value)
    if isinstance(value, dict) and value:
        keys = sorted(value)
        if keys != list(range(len(keys))) or not all(isinstance(value[k], str) for k in keys):
            raise LabelError(
                f"{where}: names: expected ids 0..{len(keys) - 1} mapped to names, found {value}"
            )
        return [value[k] for k in keys]
    raise LabelError(f"{where}: names: expected a non-empty list of class names or a {{id: name}} mapping")


def write_dataset_yaml(
    path: Path, names: Sequence[str], splits: Mapping[str, str], extra: Mapping[str, Any] | None = None
) -> None:
    """Write a dataset YAML Ultralytics loads: ``path`` (the YAML's folder), splits, ``names`` by id."""
    data: dict[str, Any] = {"path": str(path.parent.resolve())}
    data.update({split: splits[split] for split in SPLITS if split in splits})
    data["names"] = dict(enumerate(names))
    data.update(extra or {})
    path.parent.mkdir(parents=True, exist_ok=True)
    text = yaml.safe_dump(data, sort_keys=False, allow_unicode=True, width=110)
    path.write_text(text, encoding="utf-8")


def split_images(spec: DatasetSpec, split: str) -> list[Path]:
    """The images of ``split``: every image under its folders (sorted) and every line of its lists."""
    if split not in spec.splits:
        known = ", ".join(spec.splits) or "none"
        raise LabelError(f"{spec.path}: no '{split}' split (splits: {known})")
    images: list[Path] = []
    for source in spec.splits[split]:
        location = Path(source) if Path(source).is_absolute() else spec.root / source
        if location.is_dir():
            images += sorted(p for p in location.rglob("*") if p.suffix.lower() in IMAGE_SUFFIXES)
        elif location.suffix == ".txt" and location.is_file():
            lines = location.read_text(encoding="utf-8").splitlines()
            images += [_list_entry(spec.root, location, line) for line in lines if line.strip()]
        else:
            raise LabelError(
                f"{spec.path}: {split}: {location} is neither a folder nor a .txt list of images"
            )
    return images


def _list_entry(root: Path, list_file: Path, line: str) -> Path:
    """Ultralytics' rule: ``./x`` is relative to the list's folder; other relative paths to the root."""
    text = line.strip()
    if text.startswith("./"):
        return list_file.parent / text[2:]
    entry = Path(text)
    return entry if entry.is_absolute() else root / entry
