"""Sprites: an object drawn into its own patch (colour + coverage), placed in the frame later."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import cv2
import numpy as np
import numpy.typing as npt

from datasets.scenes.textures import Color, Image

Mask = npt.NDArray[np.uint8]


@dataclass
class Sprite:
    """``image`` and ``alpha`` (0..255) of one object; ``x0, y0`` its top-left pixel in the frame."""

    image: Image
    alpha: Mask
    x0: int
    y0: int
    depth: float  # metres from the camera; far sprites are drawn first
    label: str | None  # a class name, or None for scenery that is never labelled


class Pen:
    """Draws shapes into a patch and its coverage mask at once. Coordinates are patch pixels (floats)."""

    SHIFT = 3  # sub-pixel bits for OpenCV's fixed-point drawing

    def __init__(self, width: int, height: int) -> None:
        self.image = np.zeros((max(1, height), max(1, width), 3), np.uint8)
        self.alpha = np.zeros((max(1, height), max(1, width)), np.uint8)

    def _fix(self, points: npt.ArrayLike) -> npt.NDArray[np.int32]:
        return (
            np.round(np.asarray(points, dtype=np.float64) * (1 << self.SHIFT)).astype(np.int32).reshape(-1, 2)
        )

    def poly(self, points: npt.ArrayLike, color: Color) -> None:
        fixed = [self._fix(points)]
        cv2.fillPoly(self.image, fixed, color, cv2.LINE_AA, shift=self.SHIFT)
        cv2.fillPoly(self.alpha, fixed, 255, cv2.LINE_AA, shift=self.SHIFT)

    def ellipse(
        self, centre: tuple[float, float], axes: tuple[float, float], color: Color, angle: float = 0
    ) -> None:
        c = (round(centre[0] * 8), round(centre[1] * 8))
        a = (max(1, round(axes[0] * 8)), max(1, round(axes[1] * 8)))
        cv2.ellipse(self.image, c, a, angle, 0, 360, color, -1, cv2.LINE_AA, shift=self.SHIFT)
        cv2.ellipse(self.alpha, c, a, angle, 0, 360, 255, -1, cv2.LINE_AA, shift=self.SHIFT)

    def ring(
        self, centre: tuple[float, float], axes: tuple[float, float], color: Color, thickness: float
    ) -> None:
        c = (round(centre[0] * 8), round(centre[1] * 8))
        a = (max(1, round(axes[0] * 8)), max(1, round(axes[1] * 8)))
        t = max(1, round(thickness))
        cv2.ellipse(self.image, c, a, 0, 0, 360, color, t, cv2.LINE_AA, shift=self.SHIFT)
        cv2.ellipse(self.alpha, c, a, 0, 0, 360, 255, t, cv2.LINE_AA, shift=self.SHIFT)

    def line(self, a: tuple[float, float], b: tuple[float, float], color: Color, thickness: float) -> None:
        pa, pb = self._fix([a])[0], self._fix([b])[0]
        t = max(1, round(thickness))
        cv2.line(self.image, tuple(pa), tuple(pb), color, t, cv2.LINE_AA, shift=self.SHIFT)
        cv2.line(self.alpha, tuple(pa), tuple(pb), 255, t, cv2.LINE_AA, shift=self.SHIFT)

    def rect(self, x0: float, y0: float, x1: float, y1: float, color: Color) -> None:
        self.poly([(x0, y0), (x1, y0), (x1, y1), (x0, y1)], color)


def shade(color: Color, factor: float) -> Color:
    b, g, r = (min(255, max(0, int(c * factor))) for c in color)
    return b, g, r


def pick(rng: np.random.Generator, options: Sequence[Color]) -> Color:
    return options[int(rng.integers(len(options)))]


def finish(
    pen: Pen,
    anchor_px: tuple[float, float],
    anchor_in_patch: tuple[float, float],
    depth: float,
    label: str | None,
) -> Sprite:
    """A sprite whose patch point ``anchor_in_patch`` lands on frame pixel ``anchor_px``."""
    x0 = round(anchor_px[0] - anchor_in_patch[0])
    y0 = round(anchor_px[1] - anchor_in_patch[1])
    return Sprite(pen.image, pen.alpha, x0, y0, depth, label)
