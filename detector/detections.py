"""The one detection type passed from the detector to the rules: a struct of parallel arrays."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import numpy.typing as npt

FloatArray = npt.NDArray[np.float32]
IntArray = npt.NDArray[np.int64]


@dataclass(frozen=True, slots=True)
class Detections:
    """Detections of one frame.

    Attributes:
        xyxy: (N, 4) float32 boxes in source-frame pixels, x1 y1 x2 y2.
        confidence: (N,) float32 scores in [0, 1].
        class_id: (N,) int64 model class indices.
        track_id: optional (N,) int64 track ids, set by a tracker.
    """

    xyxy: FloatArray
    confidence: FloatArray
    class_id: IntArray
    track_id: IntArray | None = None

    @classmethod
    def empty(cls) -> Detections:
        return cls(
            xyxy=np.zeros((0, 4), np.float32),
            confidence=np.zeros((0,), np.float32),
            class_id=np.zeros((0,), np.int64),
        )

    def __post_init__(self) -> None:
        n = len(self.xyxy)
        if self.xyxy.shape != (n, 4) or self.confidence.shape != (n,) or self.class_id.shape != (n,):
            raise ValueError(
                "Detections arrays disagree: "
                f"xyxy {self.xyxy.shape}, confidence {self.confidence.shape}, class_id {self.class_id.shape}"
            )
        if self.track_id is not None and self.track_id.shape != (n,):
            raise ValueError(f"track_id has shape {self.track_id.shape}, expected ({n},)")

    def __len__(self) -> int:
        return len(self.confidence)

    def __getitem__(self, index: npt.NDArray[np.bool_] | npt.NDArray[np.integer[Any]] | slice) -> Detections:
        """Select rows with a boolean mask, an index array or a slice."""
        return Detections(
            xyxy=self.xyxy[index],
            confidence=self.confidence[index],
            class_id=self.class_id[index],
            track_id=None if self.track_id is None else self.track_id[index],
        )

    def to_records(self, class_names: Sequence[str]) -> list[dict[str, Any]]:
        """JSON-ready list of dicts, one per box (not for the hot path)."""
        records: list[dict[str, Any]] = []
        for i in range(len(self)):
            cid = int(self.class_id[i])
            record: dict[str, Any] = {
                "class_id": cid,
                "class_name": class_names[cid] if 0 <= cid < len(class_names) else str(cid),
                "confidence": round(float(self.confidence[i]), 4),
                "xyxy": [round(float(v), 1) for v in self.xyxy[i]],
            }
            if self.track_id is not None:
                record["track_id"] = int(self.track_id[i])
            records.append(record)
        return records
