"""Where objects go on a street: back-projected from image points, snapped to where each kind belongs."""

from __future__ import annotations

import math

import numpy as np

from datasets.scenes.camera import Camera
from datasets.scenes.compose import SCENERY, STALLS, Thing
from datasets.scenes.street import Street

FOOTPRINT_M = {
    "car": 2.4,
    "truck": 4.0,
    "bus": 5.5,
    "motorcycle": 1.0,
    "bicycle": 0.9,
    "person": 0.4,
    "stall": 1.6,
    "garbage": 0.8,
}
MIN_PPM = {
    "person": 9,
    "motorcycle": 8,
    "bicycle": 8,
    "garbage": 11,
    "stall": 7,
    "car": 4,
    "truck": 3,
    "bus": 3,
}
MAX_PPM = 110.0


def ground_point(camera: Camera, u: float, v: float) -> tuple[float, float] | None:
    """The ground point (X, Z) seen at pixel (u, v), or None above the horizon."""
    ray_cam = np.array(
        [(u - camera.width / 2) / camera.focal_px, (v - camera.height / 2) / camera.focal_px, 1.0]
    )
    ray = camera.rotation.T @ ray_cam
    if ray[1] >= -1e-3:
        return None
    t = -camera.position[1] / ray[1]
    return camera.position[0] + t * ray[0], camera.position[2] + t * ray[2]


class Placer:
    """Rejection sampling of spots that are on screen, big enough, and not inside another object."""

    def __init__(self, rng: np.random.Generator, street: Street, camera: Camera) -> None:
        self.rng, self.street, self.camera = rng, street, camera
        self.taken: list[tuple[float, float, float]] = []

    def _band(self, where: str, half_width: float) -> tuple[float, float]:
        s = self.street
        if where == "road":
            return s.left_kerb + half_width, s.right_kerb - half_width
        if where == "left_pavement":
            return s.left_wall + half_width, s.left_kerb - half_width
        if where == "right_pavement":
            return s.right_kerb + half_width, s.right_wall - half_width
        lane = s.road_m / s.lanes
        if where == "left_kerb":  # the parking strip along the kerb
            return s.left_kerb + half_width + 0.1, s.left_kerb + lane * 0.6
        return s.right_kerb - lane * 0.6, s.right_kerb - half_width - 0.1

    def spot(self, kind: str, where: str, x: float | None = None) -> tuple[float, float] | None:
        radius = FOOTPRINT_M.get(kind, 0.5)
        half_width = min(radius, 1.1) if kind in ("car", "truck", "bus") else 0.3
        for _ in range(30):
            u = float(self.rng.uniform(0.02, 0.98)) * self.camera.width
            v = float(self.rng.uniform(0.15, 1.1)) * self.camera.height
            point = ground_point(self.camera, u, v)
            if point is None:
                continue
            lo, hi = self._band(where, half_width)
            if hi <= lo:
                return None
            gx = x if x is not None else float(self.rng.uniform(lo, hi))
            gz = point[1]
            ppm = self.camera.px_per_m((gx, 0.0, gz))
            if not MIN_PPM.get(kind, 3) <= ppm <= MAX_PPM:
                continue
            pixel = self.camera.project(np.array([[gx, 0.0, gz]]))[0]
            if not (
                -0.05 * self.camera.width < pixel[0] < 1.05 * self.camera.width
                and 0 < pixel[1] < 1.08 * self.camera.height
            ):
                continue
            if any(math.hypot(gx - tx, gz - tz) < radius + tr for tx, tz, tr in self.taken):
                continue
            self.taken.append((gx, gz, radius))
            return gx, gz
        return None


def _heading(rng: np.random.Generator, street: Street, x: float, jitter_deg: float) -> float:
    along = 0.0 if x > 0 else math.pi  # drive on the right
    return along + math.radians(float(rng.uniform(-jitter_deg, jitter_deg)))


def random_things(rng: np.random.Generator, street: Street, camera: Camera) -> list[Thing]:
    placer = Placer(rng, street, camera)
    things: list[Thing] = []
    pavements = ("left_pavement", "right_pavement")

    def add(
        kind: str, where: str, heading: float | None = None, style: str = "", x: float | None = None
    ) -> Thing | None:
        spot = placer.spot(kind, where, x)
        if spot is None:
            return None
        h = heading if heading is not None else _heading(rng, street, spot[0], 6)
        thing = Thing(
            kind, spot[0], spot[1], h, int(rng.integers(1 << 31)), float(rng.uniform(0, 6.3)), style
        )
        things.append(thing)
        return thing

    def count(low: int, high: int, p_any: float) -> int:
        return int(rng.integers(low, high + 1)) if rng.random() < p_any else 0

    vehicle_kinds = ["car"] * 8 + ["truck"] * 2 + ["bus"]
    for _ in range(count(1, 6, 0.85)):  # traffic
        add(str(rng.choice(vehicle_kinds)), "road")
    for _ in range(count(1, 5, 0.7)):  # parked at the kerb, or up on the pavement
        kind = str(rng.choice(vehicle_kinds[:-1]))
        where = str(rng.choice(["left_kerb", "right_kerb", *pavements], p=[0.35, 0.35, 0.15, 0.15]))
        add(
            kind,
            where,
            _heading(rng, street, 1 if "right" in where else -1, 4) + (math.pi if rng.random() < 0.3 else 0),
        )
    for _ in range(count(1, 5, 0.6)):
        kind = str(rng.choice(["motorcycle", "bicycle"]))
        moving = rng.random() < 0.4
        thing = add(
            kind,
            "road" if moving else str(rng.choice(pavements)),
            None if moving else float(rng.uniform(0, 6.3)),
        )
        if thing is not None and moving:
            things.append(
                Thing(
                    "person",
                    thing.x,
                    thing.z - 0.05,
                    thing.heading,
                    int(rng.integers(1 << 31)),
                    0.0,
                    "riding",
                )
            )
    for _ in range(count(1, 12, 0.85)):
        add("person", str(rng.choice([*pavements, "road"], p=[0.45, 0.45, 0.1])), float(rng.uniform(0, 6.3)))
    for _ in range(count(1, 3, 0.6)):
        stall = add(
            "stall",
            str(rng.choice(pavements)),
            float(rng.choice([0.0, math.pi / 2])) + float(rng.uniform(-0.3, 0.3)),
            str(rng.choice(list(STALLS))),
        )
        if stall is not None and rng.random() < 0.7:  # the vendor
            things.append(
                Thing(
                    "person",
                    stall.x + float(rng.uniform(-0.8, 0.8)),
                    stall.z + 0.9,
                    0.0,
                    int(rng.integers(1 << 31)),
                )
            )
    for _ in range(count(1, 4, 0.6)):
        add("garbage", str(rng.choice([*pavements, "left_kerb", "right_kerb"], p=[0.35, 0.35, 0.15, 0.15])))
    for _ in range(int(rng.integers(2, 9))):
        add(str(rng.choice(list(SCENERY))), str(rng.choice(pavements)))
    return things
