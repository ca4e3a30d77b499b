"""Upright figures drawn as billboards: people, bicycles and motorcycles (sizes in metres, ``ppm`` px/m)."""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from datasets.scenes.sprite import Pen, pick, shade
from datasets.scenes.textures import Color

Drawn = tuple[Pen, tuple[float, float]]  # the patch and its anchor (bottom centre on the ground)

SKIN: list[Color] = [(150, 180, 225), (120, 160, 210), (90, 130, 180), (60, 90, 140), (170, 200, 235)]
HAIR: list[Color] = [(20, 20, 25), (30, 40, 60), (60, 80, 110), (140, 160, 180)]
CLOTHES: list[Color] = [
    (40, 40, 40),
    (200, 200, 200),
    (150, 60, 20),
    (40, 40, 160),
    (50, 120, 50),
    (30, 150, 210),
    (120, 50, 120),
    (90, 90, 90),
    (170, 130, 80),
    (20, 30, 90),
    (230, 230, 240),
    (60, 60, 120),
]


@dataclass(frozen=True)
class View:
    """How an object at a spot is seen: ``side`` = |sin| of the angle between its heading and the line of
    sight (1 = side on, 0 = head on); ``squash`` = sin of the elevation of the camera seen from there."""

    side: float
    squash: float
    night: bool = False


def person(
    rng: np.random.Generator, ppm: float, view: View, *, phase: float | None = None, riding: bool = False
) -> Drawn:
    height = float(rng.uniform(1.5, 1.9)) * (0.72 if riding else 1.0)
    h = height * ppm
    shoulder = h * float(rng.uniform(0.22, 0.28)) * (0.75 + 0.25 * (1 - view.side))
    w = math.ceil(max(shoulder * 1.9, h * 0.55)) + 4
    pen = Pen(w, math.ceil(h) + 3)
    cx, ground = w / 2, h + 1
    skin, top, legs = pick(rng, SKIN), pick(rng, CLOTHES), pick(rng, CLOTHES)
    swing = (
        math.sin(phase if phase is not None else float(rng.uniform(0, 2 * math.pi))) * 0.12 * h * view.side
    )
    hip = ground - 0.5 * h
    leg_w = max(1.5, 0.07 * h)
    if riding:  # knees forward, feet on the pedals
        pen.line((cx, hip), (cx + 0.12 * h, hip + 0.25 * h), legs, leg_w)
        pen.line((cx + 0.12 * h, hip + 0.25 * h), (cx + 0.05 * h, ground - 2), legs, leg_w)
    else:
        for sign in (-1, 1):
            foot_x = cx + sign * (0.05 * h + swing)
            pen.line((cx + sign * 0.04 * h, hip), (foot_x, ground - 0.03 * h), legs, leg_w)
            pen.ellipse((foot_x, ground - 0.02 * h), (0.05 * h, 0.02 * h), (30, 30, 35))
    neck = ground - 0.83 * h
    long_coat = rng.random() < 0.25
    bottom = hip + (0.18 * h if long_coat else 0.02 * h)
    pen.poly(
        [
            (cx - shoulder / 2, neck),
            (cx + shoulder / 2, neck),
            (cx + shoulder * 0.42, bottom),
            (cx - shoulder * 0.42, bottom),
        ],
        top,
    )
    arm_w = max(1.2, 0.055 * h)
    for sign in (-1, 1):
        hand = (cx + sign * (shoulder * 0.55) - sign * swing * 0.6, hip + 0.02 * h)
        pen.line((cx + sign * shoulder * 0.45, neck + 0.03 * h), hand, shade(top, 0.85), arm_w)
        pen.ellipse(hand, (arm_w * 0.6, arm_w * 0.6), skin)
    head_r = 0.065 * h
    head_c = (cx, neck - head_r * 0.9)
    pen.ellipse(head_c, (head_r * 0.9, head_r), skin)
    if riding and rng.random() < 0.5:
        pen.ellipse((head_c[0], head_c[1] - head_r * 0.2), (head_r * 1.1, head_r * 1.0), pick(rng, CLOTHES))
    else:
        pen.ellipse((head_c[0], head_c[1] - head_r * 0.45), (head_r * 0.95, head_r * 0.6), pick(rng, HAIR))
    if rng.random() < 0.3:  # a bag in hand or on the back
        bag = pick(rng, CLOTHES)
        bx = cx + shoulder * 0.6
        pen.rect(bx - 0.05 * h, hip - 0.02 * h, bx + 0.06 * h, hip + 0.12 * h, bag)
    return pen, (cx, ground)


def _wheel(pen: Pen, centre: tuple[float, float], radius: float, squeeze: float, thick: float) -> None:
    pen.ring(centre, (max(1.0, radius * squeeze), radius), (25, 25, 25), thick)


def bicycle(rng: np.random.Generator, ppm: float, view: View) -> Drawn:
    r, base = 0.34 * ppm, 1.05 * ppm
    squeeze = max(0.25, view.side)
    half = base / 2 * squeeze
    w, h = int(2 * half + 2 * r * squeeze + 6), int(1.1 * ppm + 4)
    pen = Pen(w, h)
    cx, ground = w / 2, h - 1
    frame = pick(rng, CLOTHES)
    thick = max(1.0, 0.035 * ppm)
    rear, front = (cx - half, ground - r), (cx + half, ground - r)
    seat = (cx - 0.15 * base * squeeze, ground - 0.95 * ppm)
    bar = (cx + 0.38 * base * squeeze, ground - 1.0 * ppm)
    crank = (cx, ground - r * 0.9)
    for a, b in ((rear, crank), (crank, seat), (seat, rear), (crank, bar), (bar, front), (seat, bar)):
        pen.line(a, b, frame, thick)
    _wheel(pen, rear, r, squeeze, thick)
    _wheel(pen, front, r, squeeze, thick)
    pen.line((bar[0] - 0.1 * ppm, bar[1]), (bar[0] + 0.12 * ppm, bar[1] - 0.03 * ppm), (30, 30, 30), thick)
    pen.ellipse(seat, (0.12 * ppm * max(squeeze, 0.5), 0.04 * ppm), (20, 20, 20))
    return pen, (cx, ground)


def motorcycle(rng: np.random.Generator, ppm: float, view: View) -> Drawn:
    r, base = 0.3 * ppm, 1.35 * ppm
    squeeze = max(0.3, view.side)
    half = base / 2 * squeeze
    w, h = int(2 * half + 2 * r * squeeze + 8), int(1.25 * ppm + 4)
    pen = Pen(w, h)
    cx, ground = w / 2, h - 1
    body = pick(
        rng, [(30, 30, 180), (20, 20, 20), (200, 200, 200), (160, 80, 20), (30, 130, 30), (20, 160, 220)]
    )
    rear, front = (cx - half, ground - r), (cx + half, ground - r)
    thick = max(1.5, 0.07 * ppm)
    _wheel(pen, rear, r, squeeze, thick)
    _wheel(pen, front, r, squeeze, thick)
    pen.ellipse(rear, (r * squeeze * 0.5, r * 0.5), (60, 60, 60))
    pen.ellipse(front, (r * squeeze * 0.5, r * 0.5), (60, 60, 60))
    pen.rect(
        cx - 0.25 * base * squeeze,
        ground - 0.65 * ppm,
        cx + 0.2 * base * squeeze,
        ground - 0.3 * ppm,
        (50, 50, 55),
    )
    pen.ellipse(
        (cx - 0.05 * base * squeeze, ground - 0.72 * ppm),
        (0.4 * base * squeeze + 0.15 * ppm * (1 - squeeze), 0.14 * ppm),
        body,
    )
    pen.ellipse(
        (cx - 0.25 * base * squeeze, ground - 0.82 * ppm),
        (0.22 * base * squeeze + 0.1 * ppm, 0.06 * ppm),
        (25, 25, 25),
    )
    pen.line(front, (cx + 0.35 * base * squeeze, ground - 1.05 * ppm), (80, 80, 80), thick)
    pen.line(
        (cx + 0.3 * base * squeeze - 0.15 * ppm, ground - 1.1 * ppm),
        (cx + 0.3 * base * squeeze + 0.2 * ppm, ground - 1.1 * ppm),
        (30, 30, 30),
        thick,
    )
    lamp = (200, 240, 255) if view.night else (180, 200, 210)
    pen.ellipse((cx + 0.42 * base * squeeze, ground - 0.9 * ppm), (0.07 * ppm, 0.07 * ppm), lamp)
    return pen, (cx, ground)
