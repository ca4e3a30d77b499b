"""Street stalls, exposed garbage and scenery (bins, trees, poles...), drawn as billboards."""

from __future__ import annotations

import math

import numpy as np

from datasets.scenes.figures import CLOTHES, Drawn, View
from datasets.scenes.sprite import Pen, pick, shade
from datasets.scenes.textures import Color

CANOPY: list[Color] = [
    (40, 40, 200),
    (200, 110, 30),
    (40, 170, 40),
    (30, 200, 230),
    (230, 230, 230),
    (150, 60, 150),
    (30, 110, 220),
]
GOODS: list[Color] = [
    (30, 60, 220),
    (40, 180, 240),
    (40, 160, 60),
    (30, 130, 230),
    (200, 200, 210),
    (160, 60, 140),
    (40, 200, 200),
    (60, 60, 180),
    (20, 100, 160),
    (230, 160, 60),
]
BAGS: list[Color] = [
    (20, 20, 22),
    (25, 25, 30),
    (30, 50, 30),
    (120, 60, 20),
    (200, 200, 195),
    (35, 35, 40),
    (40, 40, 110),
]


def _goods(rng: np.random.Generator, pen: Pen, x0: float, x1: float, y: float, ppm: float, rows: int) -> None:
    """Fruit, vegetables, boxes and folded clothes heaped along a surface at height ``y``."""
    x = x0
    while x < x1 - 0.05 * ppm:
        size = float(rng.uniform(0.08, 0.22)) * ppm
        color = pick(rng, GOODS)
        for row in range(rows):
            yy = y - row * size * 0.8 - size / 2
            if rng.random() < 0.5:
                pen.ellipse(
                    (x + size / 2, yy), (size / 2, size / 2.3), shade(color, float(rng.uniform(0.8, 1.15)))
                )
            else:
                pen.rect(
                    x, yy - size / 2, x + size, yy + size / 2, shade(color, float(rng.uniform(0.8, 1.15)))
                )
        x += size * float(rng.uniform(0.8, 1.1))


def _table(
    rng: np.random.Generator, pen: Pen, cx: float, ground: float, width: float, depth: float, ppm: float
) -> float:
    """A table seen from above the front edge; returns the y of its top surface."""
    top_y = ground - 0.8 * ppm
    cloth = pick(rng, [(230, 230, 230), (40, 40, 160), (60, 120, 200), (70, 70, 70), (50, 130, 50)])
    for sx in (-1, 1):
        pen.line(
            (cx + sx * width * 0.45, top_y),
            (cx + sx * width * 0.45, ground),
            (60, 60, 60),
            max(1, 0.04 * ppm),
        )
    pen.poly(
        [
            (cx - width / 2, top_y),
            (cx + width / 2, top_y),
            (cx + width / 2 - depth * 0.3, top_y - depth),
            (cx - width / 2 + depth * 0.3, top_y - depth),
        ],
        shade(cloth, 1.1),
    )
    pen.rect(cx - width / 2, top_y, cx + width / 2, top_y + 0.25 * ppm * (1 + (rng.random() < 0.5)), cloth)
    return top_y


def canopy_stall(rng: np.random.Generator, ppm: float, view: View) -> Drawn:
    width = float(rng.uniform(1.6, 3.0)) * ppm * (0.6 + 0.4 * view.side)
    depth = float(rng.uniform(1.0, 2.0)) * ppm * view.squash
    height = float(rng.uniform(2.1, 2.6)) * ppm
    w, h = int(width * 1.15 + 6), int(height + depth + 0.5 * ppm + 6)
    pen = Pen(w, h)
    cx, ground = w / 2, h - 2
    pole = max(1, 0.04 * ppm)
    for sx in (-1, 1):
        pen.line((cx + sx * width / 2, ground), (cx + sx * width / 2, ground - height), (90, 90, 90), pole)
        pen.line(
            (cx + sx * (width / 2 - depth * 0.3), ground - depth),
            (cx + sx * (width / 2 - depth * 0.3), ground - depth - height),
            (90, 90, 90),
            pole,
        )
    top = _table(rng, pen, cx, ground, width * 0.85, depth * 0.7, ppm)
    _goods(rng, pen, cx - width * 0.4, cx + width * 0.4, top - depth * 0.2, ppm, rows=int(rng.integers(1, 3)))
    colour, stripe = pick(rng, CANOPY), pick(rng, CANOPY)
    roof_front, roof_back = ground - height, ground - height - depth - 0.3 * ppm
    roof = [
        (cx - width * 0.58, roof_front),
        (cx + width * 0.58, roof_front),
        (cx + width / 2 - depth * 0.3, roof_back),
        (cx - width / 2 + depth * 0.3, roof_back),
    ]
    pen.poly(roof, colour)
    if rng.random() < 0.5:
        n = int(rng.integers(3, 8))
        for i in range(0, n, 2):
            a, b = i / n, (i + 1) / n
            pen.poly(
                [
                    (roof[0][0] + (roof[1][0] - roof[0][0]) * a, roof_front),
                    (roof[0][0] + (roof[1][0] - roof[0][0]) * b, roof_front),
                    (roof[3][0] + (roof[2][0] - roof[3][0]) * b, roof_back),
                    (roof[3][0] + (roof[2][0] - roof[3][0]) * a, roof_back),
                ],
                stripe,
            )
    flap = 0.2 * ppm
    pen.rect(cx - width * 0.58, roof_front, cx + width * 0.58, roof_front + flap, shade(colour, 0.8))
    return pen, (cx, ground)


def umbrella_stall(rng: np.random.Generator, ppm: float, view: View) -> Drawn:
    radius = float(rng.uniform(1.0, 1.5)) * ppm
    height = float(rng.uniform(2.0, 2.4)) * ppm
    w, h = int(2.2 * radius + 6), int(height + 0.6 * radius + 6)
    pen = Pen(w, h)
    cx, ground = w / 2, h - 2
    table_w = float(rng.uniform(1.0, 1.8)) * ppm
    top = _table(rng, pen, cx, ground, table_w, 0.8 * ppm * view.squash, ppm)
    _goods(
        rng,
        pen,
        cx - table_w * 0.45,
        cx + table_w * 0.45,
        top - 0.2 * ppm * view.squash,
        ppm,
        rows=int(rng.integers(1, 3)),
    )
    pen.line((cx, ground), (cx, ground - height), (200, 200, 200), max(1, 0.04 * ppm))
    a, b = pick(rng, CANOPY), pick(rng, CANOPY)
    rim = ground - height + 0.15 * ppm
    segments = int(rng.integers(4, 9))
    for i in range(segments):
        x_a = cx - radius + 2 * radius * i / segments
        x_b = cx - radius + 2 * radius * (i + 1) / segments
        pen.poly(
            [(cx, rim - 0.55 * radius * (0.3 + 0.7 * view.squash)), (x_a, rim), (x_b, rim)], a if i % 2 else b
        )
    pen.ellipse((cx, rim), (radius, 0.25 * radius * view.squash + 1), shade(a, 0.8))
    return pen, (cx, ground)


def cart_stall(rng: np.random.Generator, ppm: float, view: View) -> Drawn:
    length = float(rng.uniform(1.3, 2.0)) * ppm * (0.55 + 0.45 * view.side)
    body_h = float(rng.uniform(0.7, 1.0)) * ppm
    has_roof = rng.random() < 0.6
    w, h = int(length * 1.3 + 8), int(body_h + (1.6 if has_roof else 0.9) * ppm + 8)
    pen = Pen(w, h)
    cx, ground = w / 2, h - 2
    colour = pick(rng, CANOPY)
    wheel = 0.2 * ppm
    body_top = ground - wheel - body_h
    pen.rect(cx - length / 2, body_top, cx + length / 2, ground - wheel, colour)
    pen.rect(cx - length / 2, body_top, cx + length / 2, body_top + 0.12 * ppm, shade(colour, 0.7))
    for sx in (-0.3, 0.3):
        pen.ellipse((cx + sx * length, ground - wheel), (wheel * 0.7, wheel), (30, 30, 30))
    glass_top = body_top - 0.45 * ppm
    pen.rect(cx - length * 0.45, glass_top, cx + length * 0.45, body_top, (190, 200, 190))
    _goods(rng, pen, cx - length * 0.42, cx + length * 0.42, body_top - 0.02 * ppm, ppm, rows=1)
    pen.line(
        (cx + length / 2, body_top + 0.2 * ppm),
        (cx + length / 2 + 0.25 * ppm, body_top),
        (80, 80, 80),
        max(1, 0.04 * ppm),
    )
    if has_roof:
        roof_y = glass_top - 0.6 * ppm
        for sx in (-0.45, 0.45):
            pen.line(
                (cx + sx * length, glass_top), (cx + sx * length, roof_y), (120, 120, 120), max(1, 0.03 * ppm)
            )
        pen.poly(
            [
                (cx - length * 0.6, roof_y),
                (cx + length * 0.6, roof_y),
                (cx + length * 0.5, roof_y - 0.2 * ppm),
                (cx - length * 0.5, roof_y - 0.2 * ppm),
            ],
            pick(rng, CANOPY),
        )
    return pen, (cx, ground)


def ground_stall(rng: np.random.Generator, ppm: float, view: View) -> Drawn:
    """Goods laid out on a sheet on the pavement, a few crates beside them."""
    width = float(rng.uniform(1.5, 3.0)) * ppm * (0.6 + 0.4 * view.side)
    depth = float(rng.uniform(1.0, 2.0)) * ppm * max(view.squash, 0.15)
    w, h = int(width * 1.2 + 6), int(depth + 0.7 * ppm + 6)
    pen = Pen(w, h)
    cx, ground = w / 2, h - 2
    sheet = pick(rng, [(160, 80, 20), (40, 40, 160), (200, 200, 200), (40, 120, 40), (30, 30, 30)])
    pen.poly(
        [
            (cx - width / 2, ground),
            (cx + width / 2, ground),
            (cx + width / 2 - depth * 0.2, ground - depth),
            (cx - width / 2 + depth * 0.2, ground - depth),
        ],
        sheet,
    )
    rows = max(1, int(depth / (0.25 * ppm)))
    for r in range(rows):
        y = ground - depth * (r + 0.7) / (rows + 0.3)
        inset = depth * 0.2 * (r + 1) / rows
        _goods(rng, pen, cx - width / 2 + inset + 2, cx + width / 2 - inset - 2, y, ppm * 0.8, rows=1)
    for _ in range(int(rng.integers(1, 4))):
        x = cx + float(rng.uniform(-0.5, 0.5)) * width
        size = float(rng.uniform(0.3, 0.5)) * ppm
        pen.rect(
            x - size / 2,
            ground - depth * 0.5 - size,
            x + size / 2,
            ground - depth * 0.5,
            pick(rng, [(40, 90, 200), (30, 30, 180), (200, 200, 200)]),
        )
    return pen, (cx, ground)


STALLS = (canopy_stall, umbrella_stall, cart_stall, ground_stall)


def _bag(rng: np.random.Generator, pen: Pen, centre: tuple[float, float], size: float) -> None:
    colour = pick(rng, BAGS)
    rx, ry = size * float(rng.uniform(0.45, 0.6)), size * float(rng.uniform(0.4, 0.55))
    pen.ellipse(centre, (rx, ry), colour, angle=float(rng.uniform(-20, 20)))
    pen.ellipse(
        (centre[0] - rx * 0.3, centre[1] - ry * 0.35),
        (rx * 0.35, ry * 0.25),
        shade(colour, 1.6 if sum(colour) < 200 else 1.1),
    )
    knot = (centre[0] + float(rng.uniform(-0.2, 0.2)) * rx, centre[1] - ry * 0.95)
    pen.poly(
        [
            (knot[0] - rx * 0.2, knot[1] - ry * 0.35),
            (knot[0] + rx * 0.2, knot[1] - ry * 0.35),
            (knot[0], knot[1] + ry * 0.15),
        ],
        colour,
    )


def _litter(
    rng: np.random.Generator,
    pen: Pen,
    cx: float,
    ground: float,
    spread_x: float,
    spread_y: float,
    ppm: float,
    count: int,
) -> None:
    for _ in range(count):
        x = cx + float(rng.uniform(-1, 1)) * spread_x
        y = ground - float(rng.uniform(0, 1)) * spread_y - 1
        size = float(rng.uniform(0.06, 0.18)) * ppm
        colour = pick(
            rng,
            [
                (230, 230, 230),
                (200, 210, 215),
                (40, 140, 40),
                (30, 30, 200),
                (60, 130, 170),
                (180, 180, 60),
                (20, 20, 20),
            ],
        )
        angle = float(rng.uniform(0, math.pi))
        dx, dy = math.cos(angle) * size, math.sin(angle) * size * 0.5
        pen.poly([(x - dx, y - dy), (x + dy, y - dx * 0.4), (x + dx, y + dy), (x - dy, y + dx * 0.4)], colour)


GARBAGE_KINDS = ("bags", "pile", "litter")
GARBAGE_KIND_SHARE = (0.4, 0.4, 0.2)  # how often each kind is drawn when none is asked for


def garbage(rng: np.random.Generator, ppm: float, view: View, kind: str = "") -> Drawn:
    """Bags, a pile of bags and boxes, or litter scattered over the ground (``kind``: random when empty)."""
    kind = kind or str(rng.choice(GARBAGE_KINDS, p=GARBAGE_KIND_SHARE))
    if kind == "litter":
        spread_x = float(rng.uniform(0.5, 1.2)) * ppm
        spread_y = spread_x * max(view.squash, 0.2) * float(rng.uniform(0.6, 1.2))
        pen = Pen(int(2 * spread_x + 0.4 * ppm + 6), int(spread_y + 0.3 * ppm + 6))
        cx, ground = pen.image.shape[1] / 2, pen.image.shape[0] - 2
        _litter(rng, pen, cx, ground - 0.05 * ppm, spread_x, spread_y, ppm, int(rng.integers(10, 28)))
        if rng.random() < 0.6:
            _bag(rng, pen, (cx + float(rng.uniform(-0.4, 0.4)) * spread_x, ground - 0.2 * ppm), 0.45 * ppm)
        return pen, (cx, ground)
    count = int(rng.integers(1, 4)) if kind == "bags" else int(rng.integers(4, 10))
    spread = (0.35 + 0.12 * count) * ppm
    pen = Pen(int(2 * spread + ppm), int((0.5 + 0.1 * count) * ppm + spread * view.squash + 6))
    cx, ground = pen.image.shape[1] / 2, pen.image.shape[0] - 2
    items = []
    for i in range(count):
        size = float(rng.uniform(0.4, 0.7)) * ppm
        x = cx + float(rng.uniform(-1, 1)) * (spread - size / 2)
        lift = (i / max(1, count - 1)) * 0.35 * ppm * (kind == "pile") * (1 - abs(x - cx) / spread)
        back = float(rng.uniform(0, 0.5)) * spread * view.squash
        items.append((back - lift, x, size))
    for back_lift, x, size in sorted(items, key=lambda it: -it[0]):  # far ones first
        y = ground - size * 0.45 - back_lift
        if kind == "pile" and rng.random() < 0.25:  # a cardboard box
            pen.rect(x - size / 2, y - size * 0.4, x + size / 2, y + size * 0.45, (80, 130, 170))
            pen.line((x - size / 2, y - size * 0.4), (x + size / 2, y - size * 0.4), (60, 100, 140), 1)
        else:
            _bag(rng, pen, (x, y), size)
    if rng.random() < 0.5:
        _litter(rng, pen, cx, ground - 1, spread, 0.2 * ppm, ppm, int(rng.integers(3, 10)))
    return pen, (cx, ground)


# --- scenery: never labelled; it teaches the model what a stall or garbage is not ----------------


def wheelie_bin(rng: np.random.Generator, ppm: float, view: View) -> Drawn:
    colour = pick(rng, [(40, 110, 40), (90, 90, 90), (30, 60, 160), (160, 100, 30), (40, 160, 200)])
    width, height = 0.6 * ppm, 1.05 * ppm
    pen = Pen(int(width + 6), int(height + 0.3 * ppm))
    cx, ground = pen.image.shape[1] / 2, pen.image.shape[0] - 1
    pen.poly(
        [
            (cx - width * 0.42, ground),
            (cx + width * 0.42, ground),
            (cx + width / 2, ground - height),
            (cx - width / 2, ground - height),
        ],
        colour,
    )
    pen.rect(
        cx - width * 0.53,
        ground - height - 0.08 * ppm,
        cx + width * 0.53,
        ground - height + 0.02 * ppm,
        shade(colour, 0.7),
    )
    return pen, (cx, ground)


def tree(rng: np.random.Generator, ppm: float, view: View) -> Drawn:
    height = float(rng.uniform(4, 7)) * ppm
    crown = float(rng.uniform(1.2, 2.2)) * ppm
    pen = Pen(int(2 * crown + 6), int(height + crown * 0.5))
    cx, ground = pen.image.shape[1] / 2, pen.image.shape[0] - 1
    pen.line((cx, ground), (cx, ground - height + crown), (40, 60, 80), max(2, 0.2 * ppm))
    green = pick(rng, [(40, 110, 50), (30, 90, 40), (50, 130, 80)])
    for _ in range(6):
        c = (
            cx + float(rng.uniform(-0.5, 0.5)) * crown,
            ground - height + float(rng.uniform(-0.3, 0.5)) * crown,
        )
        pen.ellipse(c, (crown * 0.6, crown * 0.5), shade(green, float(rng.uniform(0.8, 1.2))))
    return pen, (cx, ground)


def pole(rng: np.random.Generator, ppm: float, view: View) -> Drawn:
    height = float(rng.uniform(3, 7)) * ppm
    pen = Pen(int(0.8 * ppm + 4), int(height + 2))
    cx, ground = pen.image.shape[1] / 2, pen.image.shape[0] - 1
    pen.line((cx, ground), (cx, ground - height), (110, 110, 115), max(1.5, 0.12 * ppm))
    if rng.random() < 0.5:  # a sign
        pen.ellipse(
            (cx, ground - height + 0.3 * ppm),
            (0.3 * ppm, 0.3 * ppm),
            pick(rng, [(30, 30, 200), (200, 90, 20)]),
        )
    else:  # a lamp
        pen.rect(
            cx - 0.3 * ppm,
            ground - height,
            cx + 0.3 * ppm,
            ground - height + 0.12 * ppm,
            (220, 240, 250) if view.night else (90, 90, 90),
        )
    return pen, (cx, ground)


def bench(rng: np.random.Generator, ppm: float, view: View) -> Drawn:
    length = float(rng.uniform(1.4, 2.0)) * ppm * (0.4 + 0.6 * view.side)
    pen = Pen(int(length + 6), int(0.95 * ppm + 3))
    cx, ground = pen.image.shape[1] / 2, pen.image.shape[0] - 1
    wood = pick(rng, [(50, 90, 140), (60, 60, 60), (40, 70, 110)])
    pen.rect(cx - length / 2, ground - 0.5 * ppm, cx + length / 2, ground - 0.42 * ppm, wood)
    pen.rect(cx - length / 2, ground - 0.9 * ppm, cx + length / 2, ground - 0.65 * ppm, wood)
    for sx in (-0.42, 0.42):
        pen.line(
            (cx + sx * length, ground),
            (cx + sx * length, ground - 0.9 * ppm),
            (40, 40, 40),
            max(1, 0.05 * ppm),
        )
    return pen, (cx, ground)


def planter(rng: np.random.Generator, ppm: float, view: View) -> Drawn:
    width = float(rng.uniform(0.8, 1.6)) * ppm
    pen = Pen(int(width + 6), int(1.3 * ppm))
    cx, ground = pen.image.shape[1] / 2, pen.image.shape[0] - 1
    pen.rect(
        cx - width / 2,
        ground - 0.55 * ppm,
        cx + width / 2,
        ground,
        pick(rng, [(150, 150, 150), (60, 90, 130), (200, 200, 195)]),
    )
    for _ in range(5):
        pen.ellipse(
            (cx + float(rng.uniform(-0.4, 0.4)) * width, ground - 0.7 * ppm),
            (0.25 * ppm, 0.22 * ppm),
            (40, 120, 50),
        )
    return pen, (cx, ground)


def cone(rng: np.random.Generator, ppm: float, view: View) -> Drawn:
    pen = Pen(int(0.45 * ppm + 4), int(0.75 * ppm + 2))
    cx, ground = pen.image.shape[1] / 2, pen.image.shape[0] - 1
    pen.poly([(cx - 0.2 * ppm, ground), (cx + 0.2 * ppm, ground), (cx, ground - 0.7 * ppm)], (20, 90, 240))
    pen.rect(cx - 0.1 * ppm, ground - 0.4 * ppm, cx + 0.1 * ppm, ground - 0.3 * ppm, (240, 240, 240))
    return pen, (cx, ground)


def shop_sign(rng: np.random.Generator, ppm: float, view: View) -> Drawn:
    """A-frame sign board or a stack of crates by a shop door: not a stall."""
    width = float(rng.uniform(0.5, 0.9)) * ppm
    pen = Pen(int(width + 6), int(1.1 * ppm))
    cx, ground = pen.image.shape[1] / 2, pen.image.shape[0] - 1
    colour = pick(rng, [(30, 30, 30), (200, 200, 200), (40, 40, 160), *CLOTHES[:3]])
    pen.poly(
        [
            (cx - width / 2, ground),
            (cx + width / 2, ground),
            (cx + width * 0.35, ground - 0.95 * ppm),
            (cx - width * 0.35, ground - 0.95 * ppm),
        ],
        colour,
    )
    return pen, (cx, ground)


SCENERY = (wheelie_bin, tree, pole, bench, planter, cone, shop_sign)


# --- the demo's unknown object: never in the generated training scenes, so the demo model does not know it --


def dumped_furniture(rng: np.random.Generator, ppm: float, view: View) -> Drawn:
    """A mattress leant on a wooden pallet beside a broken chair: flat slabs and straight slats, nothing
    like the round bags the garbage class was trained on (drawn by the demo only, never by the generator)."""
    width, height = 2.0 * ppm, 1.3 * ppm
    pen = Pen(int(width + 8), int(height + 0.3 * ppm * view.squash + 8))
    cx, ground = pen.image.shape[1] / 2, pen.image.shape[0] - 2
    wood = pick(rng, [(40, 90, 150), (50, 110, 170), (60, 100, 130)])
    left = cx - width / 2
    for i in range(5):  # the pallet, upright: horizontal slats
        y = ground - (i + 0.5) * 0.2 * ppm
        pen.rect(left, y - 0.07 * ppm, left + 1.2 * ppm, y + 0.07 * ppm, shade(wood, 0.9 + 0.05 * i))
    cloth = pick(rng, [(205, 210, 220), (190, 200, 215), (170, 190, 200)])
    slab = [
        (left + 0.3 * ppm, ground),
        (left + 1.5 * ppm, ground),
        (left + 1.25 * ppm, ground - height),
        (left + 0.15 * ppm, ground - height + 0.1 * ppm),
    ]
    pen.poly(slab, cloth)  # the mattress, leant against it
    for j in range(1, 4):  # quilting seams
        u = j / 4
        pen.line(
            (left + 0.3 * ppm - 0.15 * ppm * u, ground - height * u),
            (left + 1.5 * ppm - 0.25 * ppm * u, ground - height * u),
            shade(cloth, 0.8),
            1,
        )
    seat = left + 1.55 * ppm
    leg = max(1.0, 0.05 * ppm)
    chair = pick(rng, [(30, 30, 30), (70, 60, 120), (40, 70, 40)])
    pen.rect(seat, ground - 0.5 * ppm, seat + 0.4 * ppm, ground - 0.42 * ppm, chair)
    pen.line((seat, ground), (seat + 0.05 * ppm, ground - 0.45 * ppm), chair, leg)
    pen.line((seat + 0.4 * ppm, ground - 0.1 * ppm), (seat + 0.35 * ppm, ground - 0.45 * ppm), chair, leg)
    pen.line((seat + 0.4 * ppm, ground - 0.45 * ppm), (seat + 0.5 * ppm, ground - 0.95 * ppm), chair, leg)
    return pen, (cx, ground)
