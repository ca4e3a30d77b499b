"""Cars, trucks and buses as shaded 3-D boxes projected through the camera (true perspective)."""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from datasets.scenes.camera import Camera, FloatArray
from datasets.scenes.sprite import Pen, Sprite, pick, shade
from datasets.scenes.textures import Color

PAINT: list[Color] = [
    (235, 235, 235),
    (30, 30, 30),
    (160, 160, 165),
    (40, 40, 170),
    (150, 70, 20),
    (100, 100, 100),
    (30, 90, 30),
    (200, 200, 200),
    (20, 150, 220),
    (60, 40, 120),
    (120, 120, 125),
    (230, 230, 225),
]
GLASS: Color = (70, 55, 45)
LIGHT = np.array([0.4, 0.8, -0.45])  # sun direction (towards the sun), normalised below
LIGHT = LIGHT / np.linalg.norm(LIGHT)


@dataclass(frozen=True)
class Block:
    """A box in vehicle coordinates (x forward, y left, z up): centre x, length, width, bottom z, height."""

    x: float
    length: float
    width: float
    z0: float
    height: float
    colour: Color
    windows: tuple[str, ...] = ()  # faces with glass: "front", "back", "left", "right"
    window_band: tuple[float, float] = (0.1, 0.9)  # the glass part of a face's height (bottom, top)


@dataclass(frozen=True)
class Design:
    label: str
    length: float
    width: float
    blocks: tuple[Block, ...]
    wheel_x: tuple[float, ...]
    wheel_r: float


def design(rng: np.random.Generator, label: str) -> Design:
    paint = pick(rng, PAINT)
    if label == "car":
        length, width = float(rng.uniform(3.8, 4.9)), float(rng.uniform(1.7, 1.9))
        tall = rng.random() < 0.3  # SUV / van
        body_h = float(rng.uniform(0.6, 0.75)) + (0.15 if tall else 0)
        cabin_l = length * (float(rng.uniform(0.7, 0.85)) if tall else float(rng.uniform(0.45, 0.55)))
        cabin_h = float(rng.uniform(0.5, 0.6)) + (0.25 if tall else 0)
        blocks: tuple[Block, ...] = (
            Block(0, length, width, 0.28, body_h, paint),
            Block(
                -0.05 * length,
                cabin_l,
                width * 0.92,
                0.28 + body_h,
                cabin_h,
                paint,
                ("front", "back", "left", "right"),
                (0.08, 0.92),
            ),
        )
        return Design(label, length, width, blocks, (length / 2 - 0.8, -length / 2 + 0.8), 0.32)
    if label == "truck":
        length, width = float(rng.uniform(6, 9)), float(rng.uniform(2.2, 2.5))
        cab_l = 1.9
        cargo = pick(rng, [(230, 230, 230), (40, 40, 170), (150, 150, 150), (30, 120, 200), (40, 100, 40)])
        cargo_h = float(rng.uniform(2.2, 2.8))
        blocks = (
            Block(0, length * 0.96, width * 0.8, 0.4, 0.5, (40, 40, 40)),
            Block(
                length / 2 - cab_l / 2,
                cab_l,
                width,
                0.5,
                2.2,
                paint,
                ("front", "left", "right"),
                (0.55, 0.92),
            ),
            Block(-cab_l / 2, length - cab_l - 0.1, width, 0.9, cargo_h, cargo),
        )
        return Design(
            label, length, width, blocks, (length / 2 - 1.1, -length / 2 + 1.5, -length / 2 + 2.8), 0.45
        )
    length, width = float(rng.uniform(10, 12)), 2.5
    colour = pick(rng, [(40, 40, 180), (40, 140, 40), (220, 220, 220), (30, 160, 230), (150, 90, 30)])
    blocks = (Block(0, length, width, 0.3, 2.9, colour, ("front", "left", "right", "back"), (0.42, 0.9)),)
    return Design(label, length, width, blocks, (length / 2 - 2.3, -length / 2 + 2.5), 0.5)


_FACES = {  # corner indices of a box (bit 0: +x, bit 1: +y, bit 2: +z) and the outward normal
    "front": ((1, 3, 7, 5), (1, 0, 0)),
    "back": ((2, 0, 4, 6), (-1, 0, 0)),
    "left": ((3, 2, 6, 7), (0, 1, 0)),
    "right": ((0, 1, 5, 4), (0, -1, 0)),
    "top": ((4, 5, 7, 6), (0, 0, 1)),
}


def _corners(block: Block) -> FloatArray:
    xs = (block.x - block.length / 2, block.x + block.length / 2)
    ys = (-block.width / 2, block.width / 2)
    zs = (block.z0, block.z0 + block.height)
    return np.array([(xs[i & 1], ys[(i >> 1) & 1], zs[(i >> 2) & 1]) for i in range(8)], dtype=float)


def _to_world(local: FloatArray, position: tuple[float, float], heading: float) -> FloatArray:
    """Vehicle coordinates -> world (X across, Y up, Z along); heading 0 drives along +Z."""
    c, s = math.cos(heading), math.sin(heading)
    forward, left = np.array([s, 0, c]), np.array([-c, 0, s])
    up = np.array([0, 1.0, 0])
    world: FloatArray = (
        np.array([position[0], 0, position[1]])
        + local[:, 0:1] * forward
        + local[:, 1:2] * left
        + local[:, 2:3] * up
    )
    return world


def _inset(polygon: FloatArray, band: tuple[float, float], margin: float) -> FloatArray:
    """The glass of a face (corners: bottom-a, bottom-b, top-b, top-a in _FACES order)."""
    a0, b0, b1, a1 = polygon
    lo, hi = band

    def at(u: float, v: float) -> FloatArray:
        bottom = a0 + (b0 - a0) * u
        top = a1 + (b1 - a1) * u
        result: FloatArray = bottom + (top - bottom) * v
        return result

    return np.array([at(margin, lo), at(1 - margin, lo), at(1 - margin, hi), at(margin, hi)])


def vehicle_sprite(
    rng: np.random.Generator,
    camera: Camera,
    label: str,
    position: tuple[float, float],
    heading: float,
    *,
    night: bool,
) -> Sprite | None:
    """The vehicle drawn as the camera sees it; None when it is (partly) behind the camera."""
    plan = design(rng, label)
    world_camera = np.asarray(camera.position)
    polys: list[tuple[FloatArray, Color]] = []
    for block in plan.blocks:
        corners = _to_world(_corners(block), position, heading)
        for name, (index, normal) in _FACES.items():
            face = corners[list(index)]
            n = _to_world(np.array([normal], dtype=float), (0, 0), heading)[0]
            if float(np.dot(n, world_camera - face.mean(axis=0))) <= 0:
                continue  # facing away
            light = 0.75 + 0.35 * max(0.0, float(np.dot(n, LIGHT)))
            polys.append((face, shade(block.colour, light)))
            if name in block.windows:
                glass = (160, 170, 180) if night and name == "front" else GLASS
                polys.append((_inset(face, block.window_band, 0.08), shade(glass, light)))
        if block is plan.blocks[0]:
            polys.extend(_lights(corners, heading, world_camera, night))
    polys.extend(_wheels(plan, position, heading, world_camera))
    cam = [camera.to_camera(p) for p, _ in polys]
    if any(float(c[:, 2].min()) < 1.0 for c in cam):
        return None
    pixels = [camera.project_camera(c) for c in cam]
    every = np.concatenate(pixels)
    x0, y0 = np.floor(every.min(axis=0)).astype(int) - 1
    x1, y1 = np.ceil(every.max(axis=0)).astype(int) + 1
    if x1 - x0 > 4 * camera.width or y1 - y0 > 4 * camera.height:
        return None
    pen = Pen(int(x1 - x0), int(y1 - y0))
    for pts, (_, colour) in zip(pixels, polys, strict=True):
        pen.poly(pts - (x0, y0), colour)
    depth = camera.depth((position[0], 0.0, position[1]))
    return Sprite(pen.image, pen.alpha, int(x0), int(y0), depth, label)


def _lights(
    corners: FloatArray, heading: float, world_camera: FloatArray, night: bool
) -> list[tuple[FloatArray, Color]]:
    lights: list[tuple[FloatArray, Color]] = []
    for name, colour in (
        ("front", (200, 235, 250) if night else (170, 190, 200)),
        ("back", (40, 40, 230) if night else (30, 30, 160)),
    ):
        index, normal = _FACES[name]
        face = corners[list(index)]
        n = _to_world(np.array([normal], dtype=float), (0, 0), heading)[0]
        if float(np.dot(n, world_camera - face.mean(axis=0))) <= 0:
            continue
        for u0 in (0.06, 0.76):
            lights.append((_inset_rect(face, u0, u0 + 0.18, 0.55, 0.8), colour))
    return lights


def _inset_rect(face: FloatArray, u0: float, u1: float, v0: float, v1: float) -> FloatArray:
    a0, b0, b1, a1 = face

    def at(u: float, v: float) -> FloatArray:
        bottom = a0 + (b0 - a0) * u
        top = a1 + (b1 - a1) * u
        result: FloatArray = bottom + (top - bottom) * v
        return result

    return np.array([at(u0, v0), at(u1, v0), at(u1, v1), at(u0, v1)])


def _wheels(
    plan: Design, position: tuple[float, float], heading: float, world_camera: FloatArray
) -> list[tuple[FloatArray, Color]]:
    wheels: list[tuple[FloatArray, Color]] = []
    angles = np.linspace(0, 2 * math.pi, 14, endpoint=False)
    for side in (1, -1):
        y = side * (plan.width / 2 + 0.01)
        normal = _to_world(np.array([[0, side, 0]], dtype=float), (0, 0), heading)[0]
        centre = _to_world(np.array([[0, y, plan.wheel_r]]), position, heading)[0]
        if float(np.dot(normal, world_camera - centre)) <= 0:
            continue
        for x in plan.wheel_x:
            circle = np.stack(
                [
                    x + plan.wheel_r * np.cos(angles),
                    np.full_like(angles, y),
                    plan.wheel_r * (1 + np.sin(angles)),
                ],
                axis=1,
            )
            wheels.append((_to_world(circle, position, heading), (25, 25, 28)))
    return wheels
