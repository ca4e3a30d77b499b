"""Camera and weather effects applied to a finished frame: night, rain, blur, noise, JPEG artefacts."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import cv2
import numpy as np
import numpy.typing as npt

from datasets.scenes.textures import Image


@dataclass(frozen=True)
class Conditions:
    night: bool
    rain: float  # 0 = dry; streak density otherwise
    gain: float  # exposure
    tint: tuple[float, float, float]  # per-channel (B, G, R) colour balance
    blur_px: float  # 0 = sharp
    motion_blur_px: int  # 0 = none
    noise_sigma: float
    jpeg_quality: int  # 0 = no re-encoding


def random_conditions(rng: np.random.Generator) -> Conditions:
    night = bool(rng.random() < 0.2)
    tint = tuple(float(t) for t in rng.uniform(0.88, 1.12, 3))
    if night:
        tint = (tint[0] * 1.15, tint[1], tint[2] * 0.9)
    return Conditions(
        night=night,
        rain=float(rng.uniform(0.3, 1.0)) if rng.random() < 0.15 else 0.0,
        gain=float(rng.uniform(0.3, 0.5)) if night else float(rng.uniform(0.7, 1.25)),
        tint=(tint[0], tint[1], tint[2]),
        blur_px=float(rng.uniform(0.5, 1.6)) if rng.random() < 0.3 else 0.0,
        motion_blur_px=int(rng.integers(3, 9)) if rng.random() < 0.1 else 0,
        noise_sigma=float(rng.uniform(1, 9)),
        jpeg_quality=int(rng.integers(25, 92)) if rng.random() < 0.8 else 0,
    )


def lamps(image: Image, rng: np.random.Generator, count: int) -> None:
    """Pools of street-lamp light at night (added light, so lit things keep their colours)."""
    h, w = image.shape[:2]
    glow: npt.NDArray[Any] = np.zeros((h, w), np.float32)
    for _ in range(count):
        centre = (int(rng.integers(0, w)), int(rng.integers(h // 3, h)))
        cv2.circle(glow, centre, int(rng.integers(w // 10, w // 4)), 1.0, -1)
    glow = cv2.GaussianBlur(glow, (0, 0), w / 20)
    image[:] = np.clip(image * (1 + 1.6 * glow[:, :, None]), 0, 255).astype(np.uint8)


def apply(image: Image, conditions: Conditions, rng: np.random.Generator) -> Image:
    out: npt.NDArray[Any] = (
        image.astype(np.float32) * np.asarray(conditions.tint, np.float32) * conditions.gain
    )
    if conditions.night:
        frame = np.clip(out, 0, 255).astype(np.uint8)
        lamps(frame, rng, int(rng.integers(1, 5)))
        out = frame.astype(np.float32)
    if conditions.rain > 0:
        out = out * 0.85 + 20
        streaks = np.zeros(image.shape[:2], np.float32)
        h, w = image.shape[:2]
        slant = float(rng.uniform(-0.3, 0.3))
        for _ in range(int(conditions.rain * w * h / 900)):
            x, y = int(rng.integers(0, w)), int(rng.integers(0, h))
            length = int(rng.integers(6, 18))
            cv2.line(streaks, (x, y), (int(x + slant * length), y + length), 1.0, 1)
        out = out + streaks[:, :, None] * 60
    if conditions.blur_px > 0:
        out = cv2.GaussianBlur(out, (0, 0), conditions.blur_px)
    if conditions.motion_blur_px > 0:
        kernel = np.zeros((conditions.motion_blur_px, conditions.motion_blur_px), np.float32)
        kernel[conditions.motion_blur_px // 2, :] = 1 / conditions.motion_blur_px
        out = cv2.filter2D(out, -1, kernel)
    out = out + rng.normal(0, conditions.noise_sigma, out.shape).astype(np.float32)
    result: Image = np.clip(out, 0, 255).astype(np.uint8)
    if conditions.jpeg_quality:
        ok, data = cv2.imencode(".jpg", result, [cv2.IMWRITE_JPEG_QUALITY, conditions.jpeg_quality])
        decoded = cv2.imdecode(data, cv2.IMREAD_COLOR) if ok else None
        if decoded is not None:
            result = decoded.astype(np.uint8, copy=False)
    return result
