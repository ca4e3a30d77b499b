"""Flat textures in plane coordinates (``PX_PER_M`` pixels per metre), warped into the scene later."""

from __future__ import annotations

import cv2
import numpy as np
import numpy.typing as npt

Image = npt.NDArray[np.uint8]
Color = tuple[int, int, int]
PX_PER_M = 20


def value_noise(rng: np.random.Generator, shape_hw: tuple[int, int], cell_px: int, amplitude: float) -> Image:
    """Smooth noise in [-amplitude, amplitude] as float32, one channel, from a coarse random grid."""
    h, w = shape_hw
    coarse = rng.uniform(-1, 1, (max(2, h // cell_px + 2), max(2, w // cell_px + 2))).astype(np.float32)
    return (cv2.resize(coarse, (w, h), interpolation=cv2.INTER_CUBIC) * amplitude).astype(np.float32)


def textured(rng: np.random.Generator, shape_hw: tuple[int, int], base: Color, grain: float) -> Image:
    """A surface of colour ``base`` with coarse blotches and fine grain."""
    h, w = shape_hw
    light = value_noise(rng, shape_hw, 48, grain) + rng.standard_normal((h, w), dtype=np.float32) * (
        grain / 2
    )
    surface = np.asarray(base, dtype=np.float32)[None, None, :] + light[:, :, None]
    return np.clip(surface, 0, 255).astype(np.uint8)


def jitter(rng: np.random.Generator, color: Color, amount: int) -> Color:
    c = np.clip(np.asarray(color) + rng.integers(-amount, amount + 1, 3), 0, 255)
    return int(c[0]), int(c[1]), int(c[2])


def m(value: float) -> int:
    return round(value * PX_PER_M)


def road_texture(rng: np.random.Generator, width_m: float, length_m: float, lanes: int) -> Image:
    """Asphalt seen from above: u across the road (0 at the left kerb), v along it."""
    gray = int(rng.integers(55, 115))
    image = textured(rng, (m(length_m), m(width_m)), (gray, gray, gray + int(rng.integers(-4, 6))), 10)
    for _ in range(int(rng.integers(0, 6))):  # patches and repairs
        x, y = int(rng.integers(0, image.shape[1])), int(rng.integers(0, image.shape[0]))
        shade = gray + int(rng.integers(-25, 20))
        cv2.rectangle(
            image, (x, y), (x + m(rng.uniform(0.5, 3)), y + m(rng.uniform(0.5, 4))), (shade,) * 3, -1
        )
    white = (225, 228, 230)
    yellow = (40, 190, 225)
    line_w = max(2, m(0.15))
    edge = m(0.3)
    cv2.line(image, (edge, 0), (edge, image.shape[0]), white, line_w)
    cv2.line(image, (image.shape[1] - edge, 0), (image.shape[1] - edge, image.shape[0]), white, line_w)
    dash, gap = m(rng.uniform(2, 4)), m(rng.uniform(3, 6))
    for lane in range(1, lanes):
        x = round(image.shape[1] * lane / lanes)
        if lane == lanes // 2 and rng.random() < 0.5:
            cv2.line(image, (x - line_w, 0), (x - line_w, image.shape[0]), yellow, line_w)
            cv2.line(image, (x + line_w, 0), (x + line_w, image.shape[0]), yellow, line_w)
            continue
        for y in range(int(rng.integers(0, dash + gap)), image.shape[0], dash + gap):
            cv2.line(image, (x, y), (x, y + dash), white, line_w)
    if rng.random() < 0.4:  # a zebra crossing
        y0 = int(rng.integers(m(5), max(m(6), image.shape[0] - m(10))))
        for x in range(edge * 2, image.shape[1] - edge * 2, m(1.0)):
            cv2.rectangle(image, (x, y0), (x + m(0.5), y0 + m(4)), white, -1)
    for _ in range(int(rng.integers(0, 4))):  # manhole covers
        centre = (int(rng.integers(0, image.shape[1])), int(rng.integers(0, image.shape[0])))
        cv2.circle(image, centre, m(0.35), (gray - 30,) * 3, -1)
        cv2.circle(image, centre, m(0.35), (gray + 15,) * 3, 2)
    return image


def pavement_texture(rng: np.random.Generator, width_m: float, length_m: float, kerb_at_left: bool) -> Image:
    """Paving tiles with a kerb stone along the road side."""
    palette = [(150, 150, 150), (110, 120, 160), (150, 170, 185), (95, 100, 110), (120, 135, 130)]
    base = jitter(rng, palette[int(rng.integers(len(palette)))], 15)
    image = textured(rng, (m(length_m), m(width_m)), base, 8)
    tile = m(rng.uniform(0.3, 0.7))
    grout = tuple(int(c * 0.75) for c in base)
    for x in range(0, image.shape[1], tile):
        cv2.line(image, (x, 0), (x, image.shape[0]), grout, 1)
    for y in range(0, image.shape[0], tile):
        cv2.line(image, (0, y), (image.shape[1], y), grout, 1)
    kerb = m(0.25)
    x0 = 0 if kerb_at_left else image.shape[1] - kerb
    cv2.rectangle(image, (x0, 0), (x0 + kerb, image.shape[0]), jitter(rng, (170, 170, 165), 20), -1)
    if rng.random() < 0.5:  # tactile paving strip
        x = int(rng.integers(kerb, max(kerb + 1, image.shape[1] - m(0.5))))
        cv2.rectangle(image, (x, 0), (x + m(0.4), image.shape[0]), (40, 180, 210), -1)
    for _ in range(int(rng.integers(0, 5))):  # stains
        centre = (int(rng.integers(0, image.shape[1])), int(rng.integers(0, image.shape[0])))
        shade = tuple(int(c * rng.uniform(0.7, 0.9)) for c in base)
        cv2.ellipse(image, centre, (m(rng.uniform(0.2, 0.8)), m(rng.uniform(0.2, 0.6))), 0, 0, 360, shade, -1)
    return image


SIGN_COLOURS: list[Color] = [
    (30, 30, 200),
    (200, 80, 20),
    (30, 160, 30),
    (20, 200, 230),
    (230, 230, 230),
    (40, 40, 40),
]


def _shopfront(rng: np.random.Generator, image: Image, x0: int, x1: int, floor_h: int) -> None:
    top = image.shape[0] - floor_h
    sign_h = m(rng.uniform(0.6, 1.0))
    sign = SIGN_COLOURS[int(rng.integers(len(SIGN_COLOURS)))]
    cv2.rectangle(image, (x0 + 2, top), (x1 - 2, top + sign_h), jitter(rng, sign, 25), -1)
    for _ in range(int(rng.integers(2, 6))):  # lettering
        lx = int(rng.integers(x0 + 6, max(x0 + 7, x1 - m(0.8))))
        text = (255, 255, 255) if sum(sign) < 400 else (20, 20, 20)
        cv2.rectangle(image, (lx, top + sign_h // 4), (lx + m(0.5), top + 3 * sign_h // 4), text, -1)
    body_top = top + sign_h + 2
    if rng.random() < 0.25:  # roller shutter
        cv2.rectangle(image, (x0 + 4, body_top), (x1 - 4, image.shape[0]), (150, 155, 160), -1)
        for y in range(body_top, image.shape[0], 5):
            cv2.line(image, (x0 + 4, y), (x1 - 4, y), (110, 115, 120), 1)
        return
    glass = jitter(rng, (90, 70, 50), 25)
    cv2.rectangle(image, (x0 + 4, body_top), (x1 - 4, image.shape[0] - m(0.3)), glass, -1)
    for _ in range(int(rng.integers(2, 8))):  # things behind the glass
        gx = int(rng.integers(x0 + 6, max(x0 + 7, x1 - 10)))
        gy = int(rng.integers(body_top, image.shape[0] - m(0.6)))
        cv2.rectangle(image, (gx, gy), (gx + m(0.4), gy + m(0.4)), jitter(rng, glass, 60), -1)
    door = int(rng.integers(x0 + 6, max(x0 + 7, x1 - m(1.2))))
    cv2.rectangle(image, (door, body_top + m(0.4)), (door + m(1.0), image.shape[0]), (60, 50, 45), -1)


def facade_texture(rng: np.random.Generator, length_m: float, height_m: float) -> Image:
    """Buildings along the street: u along the street, v from the roof line (0) down to the ground."""
    h, w = m(height_m), m(length_m)
    image = np.zeros((h, w, 3), np.uint8)
    x = 0
    floor_h = m(rng.uniform(3.2, 4.2))
    while x < w:
        bw = m(rng.uniform(8, 25))
        wall = jitter(
            rng, [(170, 180, 190), (120, 140, 170), (200, 200, 200), (90, 110, 140)][int(rng.integers(4))], 30
        )
        image[:, x : x + bw] = textured(rng, (h, min(bw, w - x)), wall, 6)
        storey = m(rng.uniform(2.8, 3.4))
        for y in range(h - floor_h - storey, 0, -storey):  # upper floors: windows
            for wx in range(x + m(0.8), x + bw - m(1.2), m(rng.uniform(2.2, 3.0))):
                cv2.rectangle(
                    image, (wx, y + m(0.8)), (wx + m(1.2), y + m(2.2)), jitter(rng, (80, 70, 60), 20), -1
                )
        sx = x
        while sx < x + bw - m(3):
            sw = m(rng.uniform(3.5, 8))
            _shopfront(rng, image, sx, min(sx + sw, x + bw), floor_h)
            sx += sw
        x += bw
    return image


def sky_gradient(height: int, width: int, top: Color, bottom: Color) -> Image:
    t = np.linspace(0, 1, height, dtype=np.float32)[:, None, None]
    rows = (1 - t) * np.asarray(top, np.float32) + t * np.asarray(bottom, np.float32)
    return np.repeat(rows, width, axis=1).astype(np.uint8)
