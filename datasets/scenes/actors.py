"""Scripted actors for demo videos: objects that move along waypoints, stop, and come and go."""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from datasets.scenes.compose import Thing

STRIDE_M = 1.4  # a walking person's pose repeats every stride


@dataclass(frozen=True)
class Actor:
    """``waypoints`` are (t seconds, x, z); before the first and after the last the actor is absent.
    Between two waypoints at the same place it stands still."""

    kind: str
    seed: int
    waypoints: tuple[tuple[float, float, float], ...]
    style: str = ""
    heading: float | None = None  # fixed heading; default: the direction of travel

    def at(self, t: float) -> Thing | None:
        points = self.waypoints
        if not points[0][0] <= t <= points[-1][0]:
            return None
        times = [p[0] for p in points]
        i = max(0, min(len(points) - 2, int(np.searchsorted(times, t, side="right")) - 1))
        (t0, x0, z0), (t1, x1, z1) = points[i], points[i + 1]
        u = 0.0 if t1 <= t0 else (t - t0) / (t1 - t0)
        x, z = x0 + (x1 - x0) * u, z0 + (z1 - z0) * u
        heading = self.heading if self.heading is not None else self._travel_heading(i)
        return Thing(self.kind, x, z, heading, self.seed, self._walked(t) / STRIDE_M * math.pi, self.style)

    def _travel_heading(self, index: int) -> float:
        """The direction of the nearest moving segment (a parked car keeps the heading it came in with)."""
        order = [*range(index, -1, -1), *range(index + 1, len(self.waypoints) - 1)]
        for j in order:
            (_, x0, z0), (_, x1, z1) = self.waypoints[j], self.waypoints[j + 1]
            if math.hypot(x1 - x0, z1 - z0) > 1e-6:
                return math.atan2(x1 - x0, z1 - z0)
        return 0.0

    def _walked(self, t: float) -> float:
        distance = 0.0
        for (t0, x0, z0), (t1, x1, z1) in zip(self.waypoints, self.waypoints[1:], strict=False):
            if t <= t0:
                break
            share = 1.0 if t >= t1 or t1 <= t0 else (t - t0) / (t1 - t0)
            distance += math.hypot(x1 - x0, z1 - z0) * share
        return distance
