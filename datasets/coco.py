"""COCO detection annotations <-> YOLO datasets, from the annotations alone (no image needs to be present).

COCO -> YOLO writes, for one split, a label file per image (empty for an image without boxes: an explicit
negative), ``dataset.yaml`` (merged with an existing one, so splits can be converted one by one), and
``coco-<split>-images.json``: the COCO images and categories without annotations. YOLO -> COCO reads
that file back for image ids, file names and sizes, so a round trip needs no image files; without it,
sizes come from the image files.

What YOLO cannot express is reported, never silently changed: crowd annotations are left out (YOLO has
no crowd flag; Ultralytics' converter also skips them), boxes reaching outside the image are clipped
to it, boxes entirely outside or without area are dropped. COCO category ids may have gaps: YOLO ids
are the categories sorted by id, and ``dataset.yaml`` keeps the original ids (``coco_category_ids``).
"""

from __future__ import annotations

import json
import math
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import cv2
import numpy as np
import numpy.typing as npt

from datasets.errors import CocoError, LabelError
from datasets.yolo import (
    Labels,
    label_path_for,
    read_dataset_yaml,
    read_labels,
    split_images,
    write_dataset_yaml,
    write_labels,
    xywhn_to_xyxy,
    xyxy_to_xywhn,
)

F64 = npt.NDArray[np.float64]
I64 = npt.NDArray[np.int64]
CATEGORY_IDS_KEY = "coco_category_ids"
MIN_SIDE_PX = 1e-3  # a clipped box thinner than this has no area left


@dataclass(frozen=True)
class CocoImage:
    id: int
    file_name: str
    width: int
    height: int


@dataclass(frozen=True)
class CocoCategory:
    id: int
    name: str
    supercategory: str = ""


@dataclass(frozen=True)
class CocoDataset:
    """Images, categories, and the boxes as parallel arrays (one row per annotation).

    Attributes:
        annotation_id, image_id, category_id: (N,) int64.
        xywh: (N, 4) float64 COCO boxes: left, top, width, height in pixels.
        iscrowd: (N,) bool.
    """

    images: list[CocoImage]
    categories: list[CocoCategory]
    annotation_id: I64
    image_id: I64
    category_id: I64
    xywh: F64
    iscrowd: npt.NDArray[np.bool_]
    info: dict[str, Any] = field(default_factory=dict)


@dataclass
class ConversionReport:
    """What a conversion did; the id lists name annotations that were changed or left out."""

    images: int = 0
    boxes: int = 0
    empty_images: int = 0
    crowd_skipped: list[int] = field(default_factory=list)
    clipped: list[int] = field(default_factory=list)
    dropped_outside: list[int] = field(default_factory=list)
    images_linked: int = 0
    images_missing: list[str] = field(default_factory=list)

    def to_json(self) -> dict[str, Any]:
        return {
            "images": self.images,
            "boxes": self.boxes,
            "empty_images": self.empty_images,
            "crowd_skipped": len(self.crowd_skipped),
            "clipped": len(self.clipped),
            "dropped_outside": len(self.dropped_outside),
            "images_linked": self.images_linked,
            "images_missing": len(self.images_missing),
            "examples": {
                "crowd_skipped": self.crowd_skipped[:5],
                "clipped": self.clipped[:5],
                "dropped_outside": self.dropped_outside[:5],
                "images_missing": self.images_missing[:5],
            },
        }


# --- reading COCO ---------------------------------------------------------------------------------------


def load_coco(path: Path) -> CocoDataset:
    """Parse and check a COCO detection file; errors name the file and the annotation/image/category."""
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise CocoError(f"{path}: COCO annotation file not found") from None
    except json.JSONDecodeError as exc:
        raise CocoError(f"{path}:{exc.lineno}:{exc.colno}: invalid JSON: {exc.msg}") from None
    if not isinstance(data, dict) or not all(k in data for k in ("images", "annotations", "categories")):
        raise CocoError(f"{path}: expected a COCO object with 'images', 'annotations' and 'categories'")
    images = [_image(path, i, item) for i, item in enumerate(data["images"])]
    categories = [_category(path, i, item) for i, item in enumerate(data["categories"])]
    _unique(path, "image", [im.id for im in images])
    _unique(path, "category", [c.id for c in categories])
    # Annotation ids are not checked for uniqueness: real files repeat them (TACO has two ids used twice
    # for different boxes) and nothing here looks annotations up by id; messages also give the index.
    rows = [_annotation(path, i, item) for i, item in enumerate(data["annotations"])]
    dataset = CocoDataset(
        images=images,
        categories=categories,
        annotation_id=np.array([r[0] for r in rows], np.int64).reshape(-1),
        image_id=np.array([r[1] for r in rows], np.int64).reshape(-1),
        category_id=np.array([r[2] for r in rows], np.int64).reshape(-1),
        xywh=np.array([r[3] for r in rows], np.float64).reshape(-1, 4),
        iscrowd=np.array([r[4] for r in rows], bool).reshape(-1),
        info=data.get("info") or {},
    )
    _check_references(path, dataset)
    return dataset


def _field(path: Path, section: str, index: int, item: Any, key: str) -> Any:
    if not isinstance(item, dict):
        raise CocoError(f"{path}: {section}[{index}]: expected an object, found {type(item).__name__}")
    if key not in item:
        name = f"{section}[{index}]" + (f" (id {item['id']})" if "id" in item else "")
        raise CocoError(f"{path}: {name}: missing '{key}'")
    return item[key]


def _int(path: Path, what: str, key: str, value: Any) -> int:
    if isinstance(value, bool) or not isinstance(value, int | float) or value != int(value):
        raise CocoError(f"{path}: {what}: '{key}' must be an integer, found {value!r}")
    return int(value)


def _image(path: Path, index: int, item: Any) -> CocoImage:
    image_id = _int(path, f"images[{index}]", "id", _field(path, "images", index, item, "id"))
    what = f"image {image_id}"
    file_name = _field(path, "images", index, item, "file_name")
    if (
        not isinstance(file_name, str)
        or not file_name
        or Path(file_name).is_absolute()
        or ".." in Path(file_name).parts
    ):
        raise CocoError(
            f"{path}: {what}: file_name must be a relative path inside the dataset, found {file_name!r}"
        )
    width = _int(path, what, "width", _field(path, "images", index, item, "width"))
    height = _int(path, what, "height", _field(path, "images", index, item, "height"))
    if width <= 0 or height <= 0:
        raise CocoError(f"{path}: {what} ({file_name}): width and height must be > 0, found {width}x{height}")
    return CocoImage(image_id, file_name, width, height)


def _category(path: Path, index: int, item: Any) -> CocoCategory:
    category_id = _int(path, f"categories[{index}]", "id", _field(path, "categories", index, item, "id"))
    name = _field(path, "categories", index, item, "name")
    if not isinstance(name, str) or not name.strip():
        raise CocoError(f"{path}: category {category_id}: name must be a non-empty string, found {name!r}")
    return CocoCategory(category_id, name, str(item.get("supercategory") or ""))


def _annotation(path: Path, index: int, item: Any) -> tuple[int, int, int, list[float], bool]:
    annotation_id = _int(path, f"annotations[{index}]", "id", _field(path, "annotations", index, item, "id"))
    what = f"annotation {annotation_id} (annotations[{index}])"
    image_id = _int(path, what, "image_id", _field(path, "annotations", index, item, "image_id"))
    category_id = _int(path, what, "category_id", _field(path, "annotations", index, item, "category_id"))
    bbox = _field(path, "annotations", index, item, "bbox")
    if (
        not isinstance(bbox, list)
        or len(bbox) != 4
        or not all(isinstance(v, int | float) and not isinstance(v, bool) and math.isfinite(v) for v in bbox)
    ):
        raise CocoError(
            f"{path}: {what}: bbox must be 4 finite numbers [x, y, width, height], found {bbox!r}"
        )
    if bbox[2] < 0 or bbox[3] < 0:
        raise CocoError(f"{path}: {what}: bbox width and height must be >= 0, found {bbox}")
    iscrowd = item.get("iscrowd", 0)
    if iscrowd not in (0, 1, True, False):
        raise CocoError(f"{path}: {what}: iscrowd must be 0 or 1, found {iscrowd!r}")
    return annotation_id, image_id, category_id, [float(v) for v in bbox], bool(iscrowd)


def _unique(path: Path, what: str, ids: Sequence[int]) -> None:
    values, counts = np.unique(np.asarray(ids, np.int64), return_counts=True)
    if (counts > 1).any():
        raise CocoError(f"{path}: {what} id {int(values[counts > 1][0])} is used more than once")


def _check_references(path: Path, dataset: CocoDataset) -> None:
    known_images = np.array([im.id for im in dataset.images], np.int64)
    known_categories = np.array([c.id for c in dataset.categories], np.int64)
    for ids, known, what in (
        (dataset.image_id, known_images, "image_id"),
        (dataset.category_id, known_categories, "category_id"),
    ):
        bad = ~np.isin(ids, known)
        if bad.any():
            first = int(np.flatnonzero(bad)[0])
            raise CocoError(
                f"{path}: annotation {int(dataset.annotation_id[first])} (annotations[{first}]): "
                f"{what} {int(ids[first])} "
                f"is not in the file's {what.removesuffix('_id')} list"
            )
    names = [c.name for c in dataset.categories]
    duplicates = sorted({n for n in names if names.count(n) > 1})
    if duplicates:
        raise CocoError(f"{path}: category name {duplicates[0]!r} is used by more than one category id")


# --- COCO -> YOLO ---------------------------------------------------------------------------------------


def coco_to_yolo(
    coco_path: Path, out_dir: Path, *, split: str = "train", images_dir: Path | None = None
) -> ConversionReport:
    """Convert ``coco_path`` into the YOLO dataset ``out_dir`` as ``split``; see the module docstring.

    ``images_dir``: where the images are (their ``file_name`` is relative to it); they are linked into
    ``out_dir/images/<split>/``. Without it only labels are written.
    """
    dataset = load_coco(coco_path)
    categories = sorted(dataset.categories, key=lambda c: c.id)
    names = [c.name for c in categories]
    category_ids = [c.id for c in categories]
    _merge_dataset_yaml(out_dir, split, names, category_ids)
    report = ConversionReport()
    yolo_class = np.searchsorted(np.array(category_ids, np.int64), dataset.category_id)
    keep = ~dataset.iscrowd
    report.crowd_skipped = dataset.annotation_id[dataset.iscrowd].tolist()
    by_image = _group_rows(dataset.image_id[keep], np.flatnonzero(keep))
    for image in dataset.images:
        rows = by_image.get(image.id, np.zeros(0, np.int64))
        labels = _image_labels(dataset, rows, yolo_class, image, report)
        target = out_dir / "labels" / split / Path(image.file_name).with_suffix(".txt")
        write_labels(target, labels)
        report.images += 1
        report.boxes += len(labels)
        report.empty_images += len(labels) == 0
        if images_dir is not None:
            _link_image(images_dir / image.file_name, out_dir / "images" / split / image.file_name, report)
    _write_manifest(out_dir / f"coco-{split}-images.json", dataset, categories)
    return report


def _group_rows(keys: I64, rows: I64) -> dict[int, I64]:
    """Rows grouped by key, in file order within each group (a stable sort, then one split)."""
    order = np.argsort(keys, kind="stable")
    keys, rows = keys[order], rows[order]
    starts = np.flatnonzero(np.diff(keys, prepend=keys[:1] - 1)) if len(keys) else np.zeros(0, np.int64)
    groups = np.split(rows, starts[1:])
    return {int(keys[s]): g for s, g in zip(starts, groups, strict=True)}


def _image_labels(
    dataset: CocoDataset, rows: I64, yolo_class: I64, image: CocoImage, report: ConversionReport
) -> Labels:
    xywh = dataset.xywh[rows]
    xyxy = np.concatenate([xywh[:, :2], xywh[:, :2] + xywh[:, 2:]], axis=1)
    limits = np.array([image.width, image.height, image.width, image.height], np.float64)
    clipped = np.clip(xyxy, 0, limits)
    inside = ((clipped[:, 2:] - clipped[:, :2]) > MIN_SIDE_PX).all(axis=1)
    changed = (np.abs(clipped - xyxy) > 1e-9).any(axis=1)
    ids = dataset.annotation_id[rows]
    report.dropped_outside += ids[~inside].tolist()
    report.clipped += ids[inside & changed].tolist()
    return Labels(yolo_class[rows][inside], xyxy_to_xywhn(clipped[inside], image.width, image.height))


def _link_image(source: Path, target: Path, report: ConversionReport) -> None:
    if not source.is_file():
        report.images_missing.append(str(source))
        return
    target.parent.mkdir(parents=True, exist_ok=True)
    if target.is_symlink() or target.exists():
        target.unlink()
    target.symlink_to(source.resolve())
    report.images_linked += 1


def _merge_dataset_yaml(out_dir: Path, split: str, names: list[str], category_ids: list[int]) -> None:
    """Add ``split`` to ``out_dir/dataset.yaml``, refusing to mix splits with different categories."""
    path = out_dir / "dataset.yaml"
    splits = {split: f"images/{split}"}
    extra: dict[str, Any] = {CATEGORY_IDS_KEY: category_ids}
    if path.exists():
        spec = read_dataset_yaml(path)
        if spec.names != names or spec.extra.get(CATEGORY_IDS_KEY, category_ids) != category_ids:
            raise CocoError(
                f"{path}: its classes differ from the categories being added as '{split}'; "
                "convert into another folder or use the same category list for every split"
            )
        splits = {**{k: v[0] for k, v in spec.splits.items() if len(v) == 1}, **splits}
        extra = {**spec.extra, **extra}
    write_dataset_yaml(path, names, splits, extra)


def _write_manifest(path: Path, dataset: CocoDataset, categories: list[CocoCategory]) -> None:
    document = {
        "info": dataset.info,
        "images": [
            {"id": im.id, "file_name": im.file_name, "width": im.width, "height": im.height}
            for im in dataset.images
        ],
        "categories": [{"id": c.id, "name": c.name, "supercategory": c.supercategory} for c in categories],
    }
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(document, ensure_ascii=False, indent=1), encoding="utf-8")


# --- YOLO -> COCO ---------------------------------------------------------------------------------------


def yolo_to_coco(dataset_yaml: Path, out_json: Path, *, split: str = "val") -> ConversionReport:
    """Write the boxes of ``split`` as a COCO file; image ids, names and sizes come from the
    ``coco-<split>-images.json`` written by :func:`coco_to_yolo`, else from the image files."""
    spec = read_dataset_yaml(dataset_yaml)
    categories = _categories_for(spec.path, spec.names, spec.extra.get(CATEGORY_IDS_KEY))
    manifest = spec.root / f"coco-{split}-images.json"
    if manifest.is_file():
        images = load_manifest_images(manifest)
        categories = _manifest_categories(manifest, categories)
        label_files = [spec.root / "labels" / split / Path(im.file_name).with_suffix(".txt") for im in images]
    else:
        images, label_files = _images_from_files(spec.path, spec.root, split_images(spec, split))
    report = ConversionReport()
    annotations: list[dict[str, Any]] = []
    for image, label_file in zip(images, label_files, strict=True):
        labels = read_labels(label_file, len(spec.names))
        xyxy = xywhn_to_xyxy(labels.xywhn, image.width, image.height)
        xywh = np.concatenate([xyxy[:, :2], xyxy[:, 2:] - xyxy[:, :2]], axis=1)
        for class_id, box in zip(labels.class_id.tolist(), xywh.tolist(), strict=True):
            annotations.append(
                {
                    "id": len(annotations) + 1,
                    "image_id": image.id,
                    "category_id": categories[class_id].id,
                    "bbox": [round(v, 4) for v in box],
                    "area": round(box[2] * box[3], 4),
                    "iscrowd": 0,
                    "segmentation": [],
                }
            )
        report.images += 1
        report.boxes += len(labels)
        report.empty_images += len(labels) == 0
    document = {
        "info": {"description": f"{spec.path} split {split}, converted by streetwatch"},
        "images": [
            {"id": im.id, "file_name": im.file_name, "width": im.width, "height": im.height} for im in images
        ],
        "annotations": annotations,
        "categories": [{"id": c.id, "name": c.name, "supercategory": c.supercategory} for c in categories],
    }
    out_json.parent.mkdir(parents=True, exist_ok=True)
    out_json.write_text(json.dumps(document, ensure_ascii=False), encoding="utf-8")
    return report


def _categories_for(path: Path, names: list[str], ids: Any) -> list[CocoCategory]:
    if ids is None:
        return [
            CocoCategory(i + 1, name) for i, name in enumerate(names)
        ]  # COCO ids conventionally start at 1
    if not isinstance(ids, list) or len(ids) != len(names) or not all(isinstance(i, int) for i in ids):
        raise LabelError(f"{path}: {CATEGORY_IDS_KEY}: expected {len(names)} integer ids, one per class name")
    return [CocoCategory(i, name) for i, name in zip(ids, names, strict=True)]


def _manifest_categories(path: Path, categories: list[CocoCategory]) -> list[CocoCategory]:
    """The manifest's categories (with their supercategories) when they are the dataset's classes."""
    data = json.loads(path.read_text(encoding="utf-8"))
    listed = [_category(path, i, item) for i, item in enumerate(data.get("categories", []))]
    if [(c.id, c.name) for c in listed] != [(c.id, c.name) for c in categories]:
        raise LabelError(f"{path}: its categories differ from the dataset YAML's names and coco_category_ids")
    return listed


def load_manifest_images(path: Path) -> list[CocoImage]:
    data = json.loads(path.read_text(encoding="utf-8"))
    return [_image(path, i, item) for i, item in enumerate(data.get("images", []))]


def _images_from_files(yaml_path: Path, root: Path, files: list[Path]) -> tuple[list[CocoImage], list[Path]]:
    images: list[CocoImage] = []
    for index, file in enumerate(files, start=1):
        pixels = cv2.imread(str(file), cv2.IMREAD_UNCHANGED)
        if pixels is None:
            raise LabelError(f"{yaml_path}: image {file} cannot be read (its size is needed for COCO boxes)")
        height, width = pixels.shape[:2]
        name = file.relative_to(root) if file.is_relative_to(root) else file
        images.append(CocoImage(index, str(name), int(width), int(height)))
    return images, [label_path_for(f) for f in files]
