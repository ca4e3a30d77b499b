"""Zone references on disk: one grayscale PNG per (camera, zone, geometry), written atomically.

The file name carries a key of the zone's polygon and the working frame size, so a reference is only ever
loaded for the geometry it was learned for: a zone that was redrawn, or a stream whose resolution changed,
learns afresh instead of comparing against a picture of somewhere else. A sidecar JSON records whether the
reference was learned or set by an operator (the zone's state after a restart).
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import logging
import re
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np
import numpy.typing as npt

from common.files import write_atomically

log = logging.getLogger(__name__)

_UNSAFE = re.compile(r"[^A-Za-z0-9_.\-]")


@dataclass(frozen=True, slots=True)
class ReferenceFile:
    """Where one zone's reference lives: ``<dir>/<camera>/<zone>.<key>.png`` plus ``.json``."""

    png: Path
    meta: Path

    @classmethod
    def at(
        cls,
        reference_dir: Path,
        camera_id: str,
        zone_id: str,
        polygon: Sequence[Sequence[float]],
        work_hw: tuple[int, int],
    ) -> ReferenceFile:
        geometry = json.dumps([[round(float(v), 6) for v in p] for p in polygon] + [list(work_hw)])
        key = hashlib.sha256(geometry.encode()).hexdigest()[:12]
        folder = reference_dir / _UNSAFE.sub("_", camera_id)
        stem = f"{_UNSAFE.sub('_', zone_id)}.{key}"
        return cls(folder / f"{stem}.png", folder / f"{stem}.json")

    def save(self, reference: npt.NDArray[np.float32], state: str) -> None:
        ok, encoded = cv2.imencode(".png", np.clip(np.rint(reference), 0, 255).astype(np.uint8))
        if not ok:
            log.warning("could not encode the reference %s", self.png)
            return
        # No fsync: a reference lost in a power cut is learned again; a half-written one never loads.
        write_atomically(self.png, encoded.tobytes(), durable=False)
        write_atomically(self.meta, json.dumps({"state": state}).encode(), durable=False)

    def load(self, shape_hw: tuple[int, int]) -> tuple[npt.NDArray[np.float32], str] | None:
        """The stored reference and its state, or None when there is none (or it does not fit)."""
        if not self.png.exists():
            return None
        image = cv2.imread(str(self.png), cv2.IMREAD_GRAYSCALE)
        if image is None or image.shape != shape_hw:
            log.warning("ignoring the reference %s: unreadable or not %s", self.png, shape_hw)
            return None
        state = "learned"
        with contextlib.suppress(OSError, ValueError, AttributeError):  # no sidecar: a learned one
            state = str(json.loads(self.meta.read_text(encoding="utf-8")).get("state", state))
        return image.astype(np.float32), "set" if state == "set" else "learned"
