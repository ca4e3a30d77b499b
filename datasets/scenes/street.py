"""A straight street (road, two pavements, two rows of shopfronts) and a camera looking at it."""

from __future__ import annotations

import math
from dataclasses import dataclass

import cv2
import numpy as np

from datasets.scenes.camera import Camera, FloatArray
from datasets.scenes.textures import (
    PX_PER_M,
    Image,
    facade_texture,
    pavement_texture,
    road_texture,
    sky_gradient,
)

Z_NEAR, Z_FAR = -10.0, 90.0  # the street's extent along Z (the camera stands at Z = 0)


@dataclass(frozen=True)
class Street:
    road_m: float  # road width; the road spans X in [-road_m / 2, road_m / 2]
    lanes: int
    left_pavement_m: float
    right_pavement_m: float
    left_facade_m: float  # building heights
    right_facade_m: float

    @property
    def left_kerb(self) -> float:
        return -self.road_m / 2

    @property
    def right_kerb(self) -> float:
        return self.road_m / 2

    @property
    def left_wall(self) -> float:
        return self.left_kerb - self.left_pavement_m

    @property
    def right_wall(self) -> float:
        return self.right_kerb + self.right_pavement_m

    def lane_centres(self) -> list[float]:
        width = self.road_m / self.lanes
        return [self.left_kerb + width * (i + 0.5) for i in range(self.lanes)]


def random_street(rng: np.random.Generator) -> Street:
    lanes = int(rng.integers(2, 5))
    return Street(
        road_m=lanes * float(rng.uniform(3.0, 3.6)) + float(rng.uniform(0, 2.5)),
        lanes=lanes,
        left_pavement_m=float(rng.uniform(3, 7)),
        right_pavement_m=float(rng.uniform(3, 7)),
        left_facade_m=float(rng.uniform(7, 16)),
        right_facade_m=float(rng.uniform(7, 16)),
    )


def random_camera(rng: np.random.Generator, street: Street, width: int, height: int) -> Camera:
    """Elevated CCTV views: along the street, diagonal, or across it at a pavement."""
    hfov = math.radians(rng.uniform(50, 78))
    yaw_deg = float(rng.choice([rng.uniform(-35, 35), rng.uniform(40, 80) * rng.choice([-1, 1])]))
    # Looking across the street from one side: stand on the other side.
    x = float(rng.uniform(street.left_wall + 1, street.right_wall - 1))
    if abs(yaw_deg) > 40:
        x = (
            float(street.left_wall + rng.uniform(0.5, 3))
            if yaw_deg > 0
            else float(street.right_wall - rng.uniform(0.5, 3))
        )
    return Camera(
        width=width,
        height=height,
        focal_px=width / 2 / math.tan(hfov / 2),
        position=(x, float(rng.uniform(5, 12)), 0.0),
        yaw_rad=math.radians(yaw_deg),
        pitch_rad=math.radians(rng.uniform(12, 34)),
    )


def _warp_region(
    canvas: Image, camera: Camera, texture: Image, homography: FloatArray, polygon_xyz: FloatArray
) -> None:
    polygon = camera.clip_polygon(polygon_xyz)
    if len(polygon) == 0:
        return
    warped = cv2.warpPerspective(
        texture,
        homography,
        (camera.width, camera.height),
        flags=cv2.INTER_LINEAR,
        borderMode=cv2.BORDER_REPLICATE,
    )
    mask = np.zeros(canvas.shape[:2], np.uint8)
    cv2.fillPoly(mask, [np.round(polygon * 16).astype(np.int32)], 255, cv2.LINE_AA, shift=4)
    alpha = (mask.astype(np.float32) / 255)[:, :, None]
    canvas[:] = (canvas * (1 - alpha) + warped * alpha).astype(np.uint8)


def _ground(canvas: Image, camera: Camera, texture: Image, x0: float, x1: float) -> None:
    s = 1 / PX_PER_M
    homography = camera.plane_homography(np.array([x0, 0, Z_NEAR]), np.array([s, 0, 0]), np.array([0, 0, s]))
    polygon = np.array([[x0, 0, Z_NEAR], [x1, 0, Z_NEAR], [x1, 0, Z_FAR], [x0, 0, Z_FAR]])
    _warp_region(canvas, camera, texture, homography, polygon)


def _facade(canvas: Image, camera: Camera, texture: Image, x: float, height_m: float) -> None:
    s = 1 / PX_PER_M
    homography = camera.plane_homography(
        np.array([x, height_m, Z_NEAR]), np.array([0, 0, s]), np.array([0, -s, 0])
    )
    polygon = np.array([[x, 0, Z_NEAR], [x, 0, Z_FAR], [x, height_m, Z_FAR], [x, height_m, Z_NEAR]])
    _warp_region(canvas, camera, texture, homography, polygon)


def render_street(rng: np.random.Generator, street: Street, camera: Camera) -> Image:
    """The empty street as the camera sees it, in daylight colours (effects come later)."""
    length = Z_FAR - Z_NEAR
    top = (int(rng.integers(170, 235)), int(rng.integers(150, 200)), int(rng.integers(120, 170)))
    canvas = sky_gradient(camera.height, camera.width, top, (215, 215, 210))
    _ground(
        canvas,
        camera,
        road_texture(rng, street.road_m, length, street.lanes),
        street.left_kerb,
        street.right_kerb,
    )
    left = pavement_texture(rng, street.left_pavement_m, length, kerb_at_left=False)
    _ground(canvas, camera, left, street.left_wall, street.left_kerb)
    right = pavement_texture(rng, street.right_pavement_m, length, kerb_at_left=True)
    _ground(canvas, camera, right, street.right_kerb, street.right_wall)
    _facade(
        canvas,
        camera,
        facade_texture(rng, length, street.left_facade_m),
        street.left_wall,
        street.left_facade_m,
    )
    _facade(
        canvas,
        camera,
        facade_texture(rng, length, street.right_facade_m),
        street.right_wall,
        street.right_facade_m,
    )
    return canvas
