"""Small YOLO datasets made from real footage for dataset and evaluation tests."""

from __future__ import annotations

from collections.abc import Iterable
from pathlib import Path

import cv2
import numpy as np
import numpy.typing as npt

from datasets.yolo import Labels, write_dataset_yaml, write_labels, xyxy_to_xywhn
from detector.detector import Detector


def video_frames(path: Path, indices: Iterable[int]) -> list[npt.NDArray[np.uint8]]:
    """BGR frames at ``indices`` of a video (PyAV)."""
    import av

    wanted = sorted(set(indices))
    frames: list[npt.NDArray[np.uint8]] = []
    with av.open(str(path)) as container:
        for i, frame in enumerate(container.decode(video=0)):
            if i in wanted:
                frames.append(frame.to_ndarray(format="bgr24"))
            if len(frames) == len(wanted):
                break
    return frames


def pseudo_labelled_dataset(
    root: Path,
    frames: list[npt.NDArray[np.uint8]],
    labeller: Path,
    *,
    split: str = "val",
    confidence: float = 0.35,
) -> Path:
    """A YOLO dataset whose labels are ``labeller``'s confident detections (all its class names kept, so
    class ids agree with any model trained on the same classes); returns ``dataset.yaml``."""
    detector = Detector(labeller, confidence=confidence)
    for i, frame in enumerate(frames):
        image = root / "images" / split / f"frame_{i:03d}.jpg"
        image.parent.mkdir(parents=True, exist_ok=True)
        cv2.imwrite(str(image), frame, [cv2.IMWRITE_JPEG_QUALITY, 95])
        found = detector(frame)
        height, width = frame.shape[:2]
        xyxy = np.clip(found.xyxy.astype(np.float64), 0, [width, height, width, height])
        keep = ((xyxy[:, 2:] - xyxy[:, :2]) > 1).all(axis=1)
        labels = Labels(found.class_id[keep], xyxy_to_xywhn(xyxy[keep], width, height))
        write_labels(root / "labels" / split / f"frame_{i:03d}.txt", labels)
    # Ultralytics insists on a train key even to validate: the same folder
    splits = {"train": f"images/{split}", split: f"images/{split}"}
    write_dataset_yaml(root / "dataset.yaml", detector.class_names, splits)
    return root / "dataset.yaml"
