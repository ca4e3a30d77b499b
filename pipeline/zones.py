"""Zone membership by mask lookup: polygons rasterised once per (camera, frame size), one index per frame.

Each camera's zones are drawn into one integer mask in which bit ``z`` of a pixel is set when the pixel lies
in zone ``z`` (zones may overlap). Membership of N boxes is then the mask read at their N anchor points and a
shift: no per-box or per-zone Python loop, no point-in-polygon test on the hot path.
"""

from __future__ import annotations

import logging
from collections import OrderedDict
from collections.abc import Sequence
from dataclasses import dataclass

import cv2
import numpy as np
import numpy.typing as npt

from contract.device_config import Anchor
from pipeline.config import ZoneConfig
from pipeline.errors import ZoneError

log = logging.getLogger(__name__)

ANCHORS: tuple[Anchor, ...] = ("bottom_center", "center")
MAX_ZONES_PER_CAMERA = 64  # bits of the widest mask dtype
MAX_CACHED_SIZES = 4  # frame sizes kept per camera (a stream may change resolution after a reconnect)
# The mask is drawn at most this wide or tall (aspect kept): a 1080p mask would be 2 MB per camera, the
# bulk of a patrolled camera's memory; at 640 px a pixel of the mask is 3 px of a 1080p frame, well inside
# the jitter of a detector's box.
MASK_MAX_SIDE = 640

_MASK_DTYPES = ((8, np.uint8), (16, np.uint16), (32, np.uint32), (64, np.uint64))


def anchor_points(xyxy: npt.NDArray[np.float32], anchor: Anchor) -> npt.NDArray[np.float32]:
    """(N, 2) anchor points of (N, 4) ``xyxy`` boxes: bottom centre (where a car meets the road) or centre."""
    x = (xyxy[:, 0] + xyxy[:, 2]) * 0.5
    y = xyxy[:, 3] if anchor == "bottom_center" else (xyxy[:, 1] + xyxy[:, 3]) * 0.5
    return np.stack([x, y], axis=1).astype(np.float32, copy=False)


def _mask_dtype(n_zones: int) -> type[np.unsignedinteger[npt.NBitBase]]:
    for bits, dtype in _MASK_DTYPES:
        if n_zones <= bits:
            return dtype  # type: ignore[return-value]
    raise AssertionError("unreachable: zone count checked by CameraZones")


@dataclass(frozen=True, slots=True)
class ZoneMasks:
    """The zones of one camera rasterised at one frame size.

    Attributes:
        frame_hw: (height, width) of the frames this mask was drawn for.
        bits: (h, w) unsigned mask, the frame scaled to at most :data:`MASK_MAX_SIDE` (aspect kept); bit
            ``z`` set where zone ``z`` covers the pixel.
        polygons_px: per zone, an (K, 2) int32 polygon in frame pixels (for drawing evidence).
        zone_anchor: (Z,) index into :data:`ANCHORS` of each zone's anchor.
    """

    frame_hw: tuple[int, int]
    bits: npt.NDArray[np.unsignedinteger[npt.NBitBase]]
    polygons_px: tuple[npt.NDArray[np.int32], ...]
    zone_anchor: npt.NDArray[np.intp]

    @property
    def n_zones(self) -> int:
        return len(self.polygons_px)

    def membership(self, xyxy: npt.NDArray[np.float32]) -> npt.NDArray[np.bool_]:
        """(N, Z) bool: whether each box's anchor (its zone's anchor kind) lies inside each zone."""
        n, z = len(xyxy), self.n_zones
        if n == 0 or z == 0:
            return np.zeros((n, z), np.bool_)
        h, w = self.frame_hw
        mask_h, mask_w = self.bits.shape
        sx, sy = mask_w / w, mask_h / h
        kinds = np.unique(self.zone_anchor)
        # One lookup per anchor kind in use (at most two), then each zone reads the row of its own kind.
        looked_up = np.empty((len(ANCHORS), n), self.bits.dtype)
        for kind in kinds:
            points = anchor_points(xyxy, ANCHORS[int(kind)])
            xs = np.clip(np.clip(points[:, 0], 0, w - 1) * sx, 0, mask_w - 1).astype(np.intp)
            ys = np.clip(np.clip(points[:, 1], 0, h - 1) * sy, 0, mask_h - 1).astype(np.intp)
            looked_up[kind] = self.bits[ys, xs]
        per_zone = looked_up[self.zone_anchor]  # (Z, N)
        shifts = np.arange(z, dtype=self.bits.dtype)[:, None]
        inside: npt.NDArray[np.bool_] = ((per_zone >> shifts) & self.bits.dtype.type(1)).astype(np.bool_).T
        return inside


class CameraZones:
    """The zones of one camera; masks are built on the first frame of each size and cached (a few sizes).

    Args:
        camera_id: used in error messages and logs.
        zones: the camera's zones from the configuration, in order (zone index = position).
    """

    def __init__(self, camera_id: str, zones: Sequence[ZoneConfig]) -> None:
        if len(zones) > MAX_ZONES_PER_CAMERA:
            raise ZoneError(
                f"camera {camera_id!r} has {len(zones)} zones; at most {MAX_ZONES_PER_CAMERA} are supported"
            )
        self.camera_id = camera_id
        self.zone_ids = tuple(z.id for z in zones)
        self._polygons = tuple(np.asarray(z.polygon, np.float64).reshape(-1, 2) for z in zones)
        self._zone_anchor = np.array([ANCHORS.index(z.anchor) for z in zones], np.intp)
        self._dtype = _mask_dtype(len(zones))
        self._cache: OrderedDict[tuple[int, int], ZoneMasks] = OrderedDict()

    def index_of(self, zone_id: str) -> int:
        """Position of ``zone_id`` on this camera; :class:`ValueError` when the camera has no such zone."""
        return self.zone_ids.index(zone_id)

    def at(self, frame_hw: tuple[int, int]) -> ZoneMasks:
        """The masks for frames of ``frame_hw`` = (height, width), rasterised on first use."""
        masks = self._cache.get(frame_hw)
        if masks is not None:
            self._cache.move_to_end(frame_hw)
            return masks
        masks = self._rasterise(frame_hw)
        self._cache[frame_hw] = masks
        if len(self._cache) > MAX_CACHED_SIZES:
            self._cache.popitem(last=False)
        return masks

    def _rasterise(self, frame_hw: tuple[int, int]) -> ZoneMasks:
        h, w = frame_hw
        if h <= 0 or w <= 0:
            raise ZoneError(f"camera {self.camera_id!r}: frame size {w}x{h} is not positive")
        shrink = min(MASK_MAX_SIDE / max(h, w), 1.0)
        mask_h, mask_w = max(1, round(h * shrink)), max(1, round(w * shrink))
        bits = np.zeros((mask_h, mask_w), self._dtype)
        layer = np.zeros((mask_h, mask_w), np.uint8)
        polygons_px = []
        scale = np.array([w, h], np.float64)
        mask_scale = np.array([mask_w, mask_h], np.float64)
        for z, polygon in enumerate(self._polygons):
            # A corner at normalised 1.0 lies on the frame's far edge (pixel w), which fillPoly clips.
            px = np.rint(polygon * scale).astype(np.int32)
            polygons_px.append(px)
            layer.fill(0)
            cv2.fillPoly(layer, [np.rint(polygon * mask_scale).astype(np.int32)], 1)
            if not layer.any():
                log.warning(
                    "camera %s zone %s covers no pixel at %dx%d", self.camera_id, self.zone_ids[z], w, h
                )
            bits[layer.view(np.bool_)] |= self._dtype(1 << z)
        log.debug("camera %s: zone mask rasterised at %dx%d", self.camera_id, w, h)
        return ZoneMasks((h, w), bits, tuple(polygons_px), self._zone_anchor)
