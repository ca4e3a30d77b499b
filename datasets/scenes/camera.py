"""A pinhole camera over a street: world X across the street, Y up, Z along it (metres)."""

from __future__ import annotations

import math
from dataclasses import dataclass
from functools import cached_property

import numpy as np
import numpy.typing as npt

FloatArray = npt.NDArray[np.float64]
NEAR_M = 0.5  # geometry closer to the camera than this is clipped away


@dataclass(frozen=True)
class Camera:
    width: int
    height: int
    focal_px: float
    position: tuple[float, float, float]  # (X, Y, Z) in metres
    yaw_rad: float  # 0 looks along +Z, positive turns towards +X
    pitch_rad: float  # positive looks down

    @cached_property
    def rotation(self) -> FloatArray:
        """Rows: image right, image down and forward, in world coordinates."""
        cy, sy = math.cos(self.yaw_rad), math.sin(self.yaw_rad)
        cp, sp = math.cos(self.pitch_rad), math.sin(self.pitch_rad)
        forward = np.array([cp * sy, -sp, cp * cy])
        right = np.array([cy, 0.0, -sy])
        up = np.cross(forward, right)
        return np.stack([right, -up, forward])

    @cached_property
    def intrinsics(self) -> FloatArray:
        return np.array(
            [[self.focal_px, 0, self.width / 2], [0, self.focal_px, self.height / 2], [0, 0, 1]], dtype=float
        )

    def to_camera(self, points_xyz: FloatArray) -> FloatArray:
        """(N, 3) world points -> (N, 3) camera coordinates (x right, y down, z forward)."""
        shifted = np.asarray(points_xyz, dtype=float) - np.asarray(self.position)
        result: FloatArray = shifted @ self.rotation.T
        return result

    def project_camera(self, points_cam: FloatArray) -> FloatArray:
        """(N, 3) camera coordinates with z > 0 -> (N, 2) pixel coordinates."""
        z = points_cam[:, 2:3]
        result: FloatArray = points_cam[:, :2] / z * self.focal_px + np.array(
            [self.width / 2, self.height / 2]
        )
        return result

    def project(self, points_xyz: FloatArray) -> FloatArray:
        return self.project_camera(self.to_camera(points_xyz))

    def depth(self, point_xyz: tuple[float, float, float]) -> float:
        return float(self.to_camera(np.array([point_xyz]))[0, 2])

    def px_per_m(self, point_xyz: tuple[float, float, float]) -> float:
        """Pixels per metre for an upright object standing at ``point_xyz`` (0 when behind the camera)."""
        depth = self.depth(point_xyz)
        return self.focal_px / depth if depth > NEAR_M else 0.0

    def plane_homography(self, origin: FloatArray, axis_u: FloatArray, axis_v: FloatArray) -> FloatArray:
        """3x3 map from plane coordinates (u, v, 1) -- point = origin + u*axis_u + v*axis_v -- to pixels."""
        basis = np.stack(
            [axis_u, axis_v, np.asarray(origin, dtype=float) - np.asarray(self.position)], axis=1
        )
        result: FloatArray = self.intrinsics @ self.rotation @ basis
        return result

    def clip_polygon(self, polygon_xyz: FloatArray) -> FloatArray:
        """Clip a world polygon to the part in front of the camera; pixels (M, 2), maybe empty."""
        cam = self.to_camera(polygon_xyz)
        kept: list[FloatArray] = []
        count = len(cam)
        for i in range(count):
            a, b = cam[i], cam[(i + 1) % count]
            a_in, b_in = a[2] >= NEAR_M, b[2] >= NEAR_M
            if a_in:
                kept.append(a)
            if a_in != b_in:
                t = (NEAR_M - a[2]) / (b[2] - a[2])
                kept.append(a + t * (b - a))
        if len(kept) < 3:
            return np.zeros((0, 2))
        return self.project_camera(np.array(kept))
