"""What a model is shown of a camera's frame: the detector's copy of it (:func:`pipeline.scheduler.
detector_frame`), blurred outside the camera's zones when the model's card says it learnt from pictures
redacted that way (``input.blur_outside_zones``).

Why: a city's own model learns from the undrawn frames its boxes upload (evidence kind ``frame``), and
under the default privacy policy (``outside_violation``) those are sharp only inside the camera's zones. A
model trained on them and shown the whole sharp street fires on the shop signs it never saw sharp and
scores the pavement's objects lower: in the bootstrap round of 2026-12-06 the same model found 5 of 8
unseen stalls and 6 of 8 piles (2 false) on sharp frames, 8 of 8 of each with none false on frames blurred
like its training (benchmarks/README.md, Bootstrap round). Nothing outside a zone becomes a case, so the
blur hides nothing the rules use; evidence keeps the frame as it was.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from functools import lru_cache
from typing import Any

import numpy as np
import numpy.typing as npt

from pipeline import redaction
from pipeline.config import ZoneConfig
from pipeline.protocols import FrameLike

Image = npt.NDArray[np.uint8]
_NO_BOXES = np.zeros((0, 4), np.float32)


def detector_frame(frame: FrameLike) -> Image:
    """What the detector sees: the source's downscaled copy when it made one, else the full frame."""
    return frame.small if frame.small is not None else frame.image


def blur_share(detector: Any) -> float | None:
    """The card's ``input.blur_outside_zones`` (a Gaussian sigma as a share of the frame's shorter side);
    None for a model shown frames as they are (or a detector without a card)."""
    card = getattr(detector, "card", None)
    return None if card is None else card.input.blur_outside_zones


def model_input(detector: Any, frame: FrameLike, zones: Callable[[], Sequence[ZoneConfig]] | None) -> Image:
    """The picture ``detector`` runs on for ``frame`` of a camera whose current zones ``zones()`` gives
    (None: a camera without them); looked up only for a model that asks for the blur."""
    image = detector_frame(frame)
    share = blur_share(detector)
    current = zones() if share is not None and zones is not None else ()
    if share is None or not current:
        return image
    box = frame.small_box if frame.small is not None else None
    return blurred_outside_zones(image, frame.hw, box, current, share)


def blurred_outside_zones(
    image: Image,
    full_hw: tuple[int, int],
    box: tuple[int, int, int, int] | None,
    zones: Sequence[ZoneConfig],
    share: float,
) -> Image:
    """``image`` (which shows ``box`` of a frame of ``full_hw``, the whole frame when None, scaled) blurred
    with sigma ``share`` × the full frame's shorter side, as :func:`pipeline.redaction.redact` blurs a
    training frame, except inside the zones (normalised polygons of the full frame). A new array."""
    height, width = full_hw
    x0, y0, x1, y1 = box if box is not None else (0, 0, width, height)
    image_h, image_w = image.shape[:2]
    scale = image_w / max(1, x1 - x0)
    polygons = tuple(tuple((float(x), float(y)) for x, y in zone.polygon) for zone in zones)
    keep = _kept(polygons, (image_h, image_w), (width, height), (x0, y0, x1, y1))
    # the training frame's sigma in full-frame pixels, as a share of the shorter side of ``image``
    sigma_share = share * min(height, width) * scale / max(1, min(image_h, image_w))
    return redaction.blurred_outside(image, keep, sigma_share)


@lru_cache(maxsize=256)
def _kept(
    polygons: tuple[tuple[tuple[float, float], ...], ...],
    image_hw: tuple[int, int],
    full_wh: tuple[int, int],
    box: tuple[int, int, int, int],
) -> npt.NDArray[np.uint8]:
    """The zones' mask (1 inside) in ``image``'s pixels; a camera's zones and sizes rarely change, so it is
    drawn once per combination."""
    x0, y0, x1, y1 = box
    scale = np.array([image_hw[1] / max(1, x1 - x0), image_hw[0] / max(1, y1 - y0)])
    pixels = [(np.array(p, np.float64) * full_wh - (x0, y0)) * scale for p in polygons]
    mask = redaction.kept_mask(image_hw, _NO_BOXES, *pixels).view(np.uint8)
    mask.flags.writeable = False  # shared by every call with the same key
    return mask
