"""Random labelled scenes, and a YOLO dataset of them (images/, labels/, dataset.yaml)."""

from __future__ import annotations

from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np
import yaml

from datasets.scenes import CLASS_ID, CLASSES
from datasets.scenes.compose import Label, composite
from datasets.scenes.effects import apply, random_conditions
from datasets.scenes.layout import random_things
from datasets.scenes.street import random_camera, random_street, render_street
from datasets.scenes.textures import Image

SIZES_WH = ((640, 360), (640, 480), (704, 396))
SPLITS = (("train", 0.8), ("val", 0.1), ("test", 0.1))
JPEG_QUALITY = 92  # the scene already carries its own compression artefacts


@dataclass(frozen=True)
class Scene:
    image: Image
    labels: list[Label]


def random_scene(seed: int) -> Scene:
    """One street scene; the same seed always gives the same pixels and labels."""
    rng = np.random.default_rng(seed)
    width, height = SIZES_WH[int(rng.integers(len(SIZES_WH)))]
    street = random_street(rng)
    camera = random_camera(rng, street, width, height)
    background = render_street(rng, street, camera)
    conditions = random_conditions(rng)
    frame, labels = composite(background, camera, random_things(rng, street, camera), night=conditions.night)
    return Scene(apply(frame, conditions, rng), labels)


def yolo_lines(labels: list[Label], width: int, height: int) -> list[str]:
    """``class cx cy w h`` normalised to the image size, one line per box."""
    lines = []
    for label in labels:
        x0, y0, x1, y1 = label.xyxy
        cx, cy = (x0 + x1) / 2 / width, (y0 + y1) / 2 / height
        lines.append(
            f"{CLASS_ID[label.name]} {cx:.6f} {cy:.6f} {(x1 - x0) / width:.6f} {(y1 - y0) / height:.6f}"
        )
    return lines


def split_of(index: int, count: int) -> str:
    """Contiguous splits: the first 80 % train, then 10 % val, then 10 % test."""
    edge = 0.0
    for name, share in SPLITS:
        edge += share
        if index < round(edge * count):
            return name
    return SPLITS[-1][0]


def _write_one(out: Path, seed: int, index: int, count: int) -> None:
    split = split_of(index, count)
    name = f"scene-{seed}-{index:06d}"
    image_path, label_path = out / "images" / split / f"{name}.jpg", out / "labels" / split / f"{name}.txt"
    if image_path.exists() and label_path.exists():
        return  # resumed: the same seed writes the same scene
    scene = random_scene(seed * 1_000_003 + index)
    cv2.imwrite(str(image_path), scene.image, [cv2.IMWRITE_JPEG_QUALITY, JPEG_QUALITY])
    height, width = scene.image.shape[:2]
    lines = yolo_lines(scene.labels, width, height)
    label_path.write_text("".join(f"{line}\n" for line in lines), encoding="utf-8")  # last: marks it done


def write_dataset(
    out: Path, count: int, seed: int, *, workers: int = 1, only_split: str | None = None
) -> Path:
    """``count`` scenes (scene i uses seed ``seed * 1_000_003 + i``) as a YOLO dataset; returns dataset.yaml.
    The result does not depend on ``workers``: every scene has its own seed. ``only_split`` writes just
    that split's scenes (the same files as a full run), e.g. a model card's held-out test split."""
    for split, _ in SPLITS:
        (out / "images" / split).mkdir(parents=True, exist_ok=True)
        (out / "labels" / split).mkdir(parents=True, exist_ok=True)
    indices = [i for i in range(count) if only_split is None or split_of(i, count) == only_split]
    if only_split is not None and not indices:
        raise ValueError(f"split must be one of {', '.join(name for name, _ in SPLITS)}, not {only_split!r}")
    if workers > 1:
        with ProcessPoolExecutor(workers) as pool:
            n = len(indices)
            list(pool.map(_write_one, [out] * n, [seed] * n, indices, [count] * n, chunksize=16))
    else:
        for index in indices:
            _write_one(out, seed, index, count)
    document = {
        "path": str(out.resolve()),
        "train": "images/train",
        "val": "images/val",
        "test": "images/test",
        "names": dict(enumerate(CLASSES)),
    }
    path = out / "dataset.yaml"
    path.write_text(yaml.safe_dump(document, sort_keys=False), encoding="utf-8")
    return path
