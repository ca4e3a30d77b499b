"""Objects on the street: drawn far to near, so nearer ones hide farther ones, and labelled with tight boxes
of what stays visible. An object mostly hidden (by other objects or the frame edge) gets no label."""

from __future__ import annotations

import math
from dataclasses import dataclass
from functools import lru_cache

import cv2
import numpy as np
import numpy.typing as npt

from datasets.scenes import street_objects
from datasets.scenes.camera import Camera
from datasets.scenes.figures import View, bicycle, motorcycle, person
from datasets.scenes.sprite import Sprite, finish
from datasets.scenes.textures import Image
from datasets.scenes.vehicles import vehicle_sprite

MIN_VISIBLE = 0.4  # share of an object's pixels that must stay visible for it to be labelled
MIN_BOX_PX = 4  # narrower or lower boxes are dropped (too small to learn from)
VEHICLES = ("car", "truck", "bus")
STALLS = {f.__name__: f for f in street_objects.STALLS}
SCENERY = {f.__name__: f for f in street_objects.SCENERY}
UNKNOWN_PILE = "dumped_furniture"  # the demo's object no model class covers: drawn, never labelled


@dataclass(frozen=True)
class Thing:
    """One object in the world: ``kind`` is a class name or a scenery name; ``seed`` fixes its looks."""

    kind: str
    x: float
    z: float
    heading: float = 0.0  # radians; 0 faces +Z (along the street)
    seed: int = 0
    phase: float = 0.0  # walking pose
    style: str = ""  # which stall, or "riding" for a person on a two-wheeler


@dataclass(frozen=True)
class Label:
    name: str
    xyxy: tuple[int, int, int, int]  # pixels, inclusive-exclusive


def _view(camera: Camera, thing: Thing, night: bool) -> View:
    cx, cy, cz = camera.position
    dx, dz = thing.x - cx, thing.z - cz
    distance = math.hypot(dx, dz) + 1e-6
    sight = math.atan2(dx, dz)
    side = abs(math.sin(thing.heading - sight))
    return View(side=side, squash=cy / math.hypot(distance, cy), night=night)


def draw_thing(thing: Thing, camera: Camera, *, night: bool) -> Sprite | None:
    """The object as the camera sees it, or None when it is behind the camera."""
    rng = np.random.default_rng(thing.seed)
    if thing.kind in VEHICLES:
        return vehicle_sprite(rng, camera, thing.kind, (thing.x, thing.z), thing.heading, night=night)
    ground = (thing.x, 0.0, thing.z)
    ppm = camera.px_per_m(ground)
    if ppm <= 0:
        return None
    view = _view(camera, thing, night)
    if thing.kind == "person":
        pen, anchor = person(rng, ppm, view, phase=thing.phase, riding=thing.style == "riding")
    elif thing.kind == "bicycle":
        pen, anchor = bicycle(rng, ppm, view)
    elif thing.kind == "motorcycle":
        pen, anchor = motorcycle(rng, ppm, view)
    elif thing.kind == "stall":
        pen, anchor = STALLS[thing.style or "canopy_stall"](rng, ppm, view)
    elif thing.kind == "garbage":
        pen, anchor = street_objects.garbage(rng, ppm, view, thing.style)
    elif thing.kind == UNKNOWN_PILE:
        pen, anchor = street_objects.dumped_furniture(rng, ppm, view)
    else:
        pen, anchor = SCENERY[thing.kind](rng, ppm, view)
    pixel = camera.project(np.array([ground]))[0]
    label = thing.kind if thing.kind not in SCENERY and thing.kind != UNKNOWN_PILE else None
    return finish(pen, (float(pixel[0]), float(pixel[1])), anchor, camera.depth(ground), label)


def _shadow(canvas: Image, camera: Camera, thing: Thing, strength: float) -> None:
    """A soft dark patch on the ground under the object (drawn into the background)."""
    radius = {"car": 1.2, "truck": 1.5, "bus": 1.6, "stall": 1.2}.get(thing.kind, 0.4)
    length = {"car": 2.6, "truck": 4.2, "bus": 6.0}.get(thing.kind, radius)
    c, s = math.cos(thing.heading), math.sin(thing.heading)
    corners = [(-length, -radius), (length, -radius), (length, radius), (-length, radius)]
    world = np.array([[thing.x + u * s - v * c, 0.0, thing.z + u * c + v * s] for u, v in corners])
    polygon = camera.clip_polygon(world)
    if len(polygon) < 3:
        return
    points = np.round(polygon).astype(np.int32)
    x0, y0 = np.maximum(points.min(axis=0), 0)
    x1, y1 = np.minimum(points.max(axis=0) + 1, (canvas.shape[1], canvas.shape[0]))
    if x1 <= x0 or y1 <= y0:
        return
    mask = np.zeros((int(y1 - y0), int(x1 - x0)), np.uint8)
    cv2.fillPoly(mask, [points - (x0, y0)], 255)
    blur = max(1, (min(mask.shape) // 4) | 1)
    region = cv2.GaussianBlur(mask, (blur, blur), 0).astype(np.float32) / 255
    patch = canvas[y0:y1, x0:x1]
    patch[:] = (patch * (1 - strength * region[:, :, None])).astype(np.uint8)


@lru_cache(maxsize=256)
def _draw_cached(thing: Thing, camera: Camera, night: bool) -> Sprite | None:
    return draw_thing(thing, camera, night=night)


def composite(
    background: Image, camera: Camera, things: list[Thing], *, night: bool, shadows: bool = True
) -> tuple[Image, list[Label]]:
    """Draw ``things`` over ``background`` (copied); labels of the objects that stay visible enough.
    Sprites are cached by (thing, camera): objects that stand still in a video are drawn once."""
    frame = background.copy()
    if shadows:
        for thing in things:
            _shadow(frame, camera, thing, 0.25 if night else 0.45)
    sprites = [s for s in (_draw_cached(t, camera, night) for t in things) if s is not None]
    sprites.sort(key=lambda s: -s.depth)
    owner = np.full(frame.shape[:2], -1, np.int32)
    for index, sprite in enumerate(sprites):
        _paste(frame, owner, sprite, index)
    return frame, _labels(sprites, owner)


def _clip(sprite: Sprite, shape_hw: tuple[int, ...]) -> tuple[slice, slice, slice, slice] | None:
    h, w = sprite.alpha.shape
    fx0, fy0 = max(sprite.x0, 0), max(sprite.y0, 0)
    fx1, fy1 = min(sprite.x0 + w, shape_hw[1]), min(sprite.y0 + h, shape_hw[0])
    if fx1 <= fx0 or fy1 <= fy0:
        return None
    frame_rows, frame_cols = slice(fy0, fy1), slice(fx0, fx1)
    patch_rows = slice(fy0 - sprite.y0, fy1 - sprite.y0)
    patch_cols = slice(fx0 - sprite.x0, fx1 - sprite.x0)
    return frame_rows, frame_cols, patch_rows, patch_cols


def _paste(frame: Image, owner: npt.NDArray[np.int32], sprite: Sprite, index: int) -> None:
    clipped = _clip(sprite, frame.shape)
    if clipped is None:
        return
    rows, cols, prow, pcol = clipped
    alpha = sprite.alpha[prow, pcol]
    a = (alpha.astype(np.float32) / 255)[:, :, None]
    target = frame[rows, cols]
    target[:] = (target * (1 - a) + sprite.image[prow, pcol] * a).astype(np.uint8)
    owner[rows, cols][alpha >= 128] = index


def _labels(sprites: list[Sprite], owner: npt.NDArray[np.int32]) -> list[Label]:
    labels = []
    for index, sprite in enumerate(sprites):
        if sprite.label is None:
            continue
        total = int(np.count_nonzero(sprite.alpha >= 128))
        clipped = _clip(sprite, owner.shape)
        if total == 0 or clipped is None:
            continue
        rows, cols, _, _ = clipped
        visible = owner[rows, cols] == index
        if np.count_nonzero(visible) < MIN_VISIBLE * total:
            continue
        ys, xs = np.nonzero(visible)
        x0, x1 = cols.start + int(xs.min()), cols.start + int(xs.max()) + 1
        y0, y1 = rows.start + int(ys.min()), rows.start + int(ys.max()) + 1
        if x1 - x0 >= MIN_BOX_PX and y1 - y0 >= MIN_BOX_PX:
            labels.append(Label(sprite.label, (x0, y0, x1, y1)))
    return labels
