"""Zone membership by mask lookup: anchors, overlapping zones, caching per frame size, limits."""

from __future__ import annotations

import cv2
import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from pipeline.config import ZoneConfig
from pipeline.errors import ZoneError
from pipeline.zones import MAX_CACHED_SIZES, MAX_ZONES_PER_CAMERA, CameraZones, anchor_points
from tests.pipeline.rule_builders import zone

HW = (100, 200)  # height, width


def zones_of(*polygons: list[list[float]], anchor: str = "bottom_center") -> CameraZones:
    configs = [
        ZoneConfig.model_validate(zone(f"z{i}", polygon=p, anchor=anchor)) for i, p in enumerate(polygons)
    ]
    return CameraZones("cam", configs)


LEFT = [[0.0, 0.0], [0.5, 0.0], [0.5, 1.0], [0.0, 1.0]]
MIDDLE = [[0.25, 0.0], [0.75, 0.0], [0.75, 1.0], [0.25, 1.0]]
TOP = [[0.0, 0.0], [1.0, 0.0], [1.0, 0.5], [0.0, 0.5]]


def test_anchor_points() -> None:
    xyxy = np.array([[10, 20, 30, 60]], np.float32)
    assert anchor_points(xyxy, "bottom_center").tolist() == [[20, 60]]
    assert anchor_points(xyxy, "center").tolist() == [[20, 40]]


@pytest.mark.parametrize(
    ("box", "anchor", "inside"),
    [
        ((10, 10, 40, 40), "bottom_center", True),  # anchor (25, 40): in the top half
        ((10, 30, 40, 70), "bottom_center", False),  # anchor (25, 70): below it
        ((10, 34, 40, 70), "center", False),  # centre (25, 52): below it
        ((10, 20, 40, 70), "center", True),  # centre (25, 45)
        ((150, 0, 250, 40), "bottom_center", True),  # partly outside the frame; anchor (200, 40) clipped
    ],
)
def test_membership_uses_the_zone_anchor(box: tuple[int, ...], anchor: str, inside: bool) -> None:
    masks = zones_of(TOP, anchor=anchor).at(HW)
    assert masks.membership(np.array([box], np.float32)).tolist() == [[inside]]


def test_overlapping_zones_each_report_membership() -> None:
    masks = zones_of(LEFT, MIDDLE).at(HW)
    boxes = np.array([[10, 0, 20, 50], [70, 0, 90, 50], [140, 0, 160, 50], [180, 0, 190, 50]], np.float32)
    assert masks.membership(boxes).tolist() == [[True, False], [True, True], [False, True], [False, False]]


def test_bottom_edge_anchor_counts_for_a_zone_touching_the_edge() -> None:
    masks = zones_of([[0.0, 0.5], [1.0, 0.5], [1.0, 1.0], [0.0, 1.0]]).at(HW)
    assert masks.membership(np.array([[10, 60, 30, 100]], np.float32)).tolist() == [[True]]


def test_no_boxes_and_no_zones() -> None:
    masks = zones_of(LEFT).at(HW)
    assert masks.membership(np.zeros((0, 4), np.float32)).shape == (0, 1)


def test_masks_are_rasterised_once_per_frame_size_and_cached_boundedly() -> None:
    zones = zones_of(LEFT)
    first = zones.at(HW)
    assert zones.at(HW) is first
    other = zones.at((200, 400))
    assert other is not first
    assert other.bits.shape == (200, 400)
    assert other.polygons_px[0].tolist() == [[0, 0], [200, 0], [200, 200], [0, 200]]
    for k in range(MAX_CACHED_SIZES + 2):
        zones.at((50 + k, 50))
    assert len(zones._cache) == MAX_CACHED_SIZES


def test_the_64th_zone_uses_the_top_bit() -> None:
    polygons = [[[0.0, 0.0], [0.1, 0.0], [0.1, 0.1], [0.0, 0.1]]] * (MAX_ZONES_PER_CAMERA - 1) + [TOP]
    masks = zones_of(*polygons).at(HW)
    assert masks.bits.dtype == np.uint64
    inside = masks.membership(np.array([[100, 10, 120, 40]], np.float32))[0]
    assert inside[-1] and not inside[:-1].any()


def test_too_many_zones_is_a_typed_error() -> None:
    with pytest.raises(ZoneError, match=r"camera 'cam' has 65 zones; at most 64"):
        zones_of(*[LEFT] * (MAX_ZONES_PER_CAMERA + 1))


def test_frame_size_must_be_positive() -> None:
    with pytest.raises(ZoneError, match="frame size 0x100"):
        zones_of(LEFT).at((100, 0))


@st.composite
def convex_polygons(draw: st.DrawFn) -> list[list[float]]:
    """A convex polygon: the hull of 3-8 random points in the unit square."""
    points = draw(
        st.lists(st.tuples(st.floats(0, 1), st.floats(0, 1)), min_size=3, max_size=8, unique=True).filter(
            lambda pts: cv2.contourArea(np.array(pts, np.float32)) > 0.01
        )
    )
    hull = cv2.convexHull(np.array(points, np.float32)).reshape(-1, 2)
    return [[float(x), float(y)] for x, y in hull]


@settings(max_examples=60, deadline=None)
@given(polygon=convex_polygons(), seed=st.integers(0, 2**32 - 1))
def test_mask_lookup_agrees_with_point_in_polygon(polygon: list[list[float]], seed: int) -> None:
    """Away from the outline (one pixel of rasterisation slack), the mask says what a polygon test says."""
    h, w = HW
    masks = zones_of(polygon, anchor="center").at(HW)
    rng = np.random.default_rng(seed)
    centres = rng.uniform([0, 0], [w, h], size=(200, 2)).astype(np.float32)
    boxes = np.concatenate([centres - 2, centres + 2], axis=1)
    got = masks.membership(boxes)[:, 0]
    contour = masks.polygons_px[0].astype(np.float32)
    pixel_centres = np.floor(centres) + 0.5
    distance = np.array([cv2.pointPolygonTest(contour, (float(x), float(y)), True) for x, y in pixel_centres])
    clear = np.abs(distance) > 1.5
    np.testing.assert_array_equal(got[clear], distance[clear] > 0)


def test_a_1080p_mask_is_drawn_at_640_px_and_agrees_with_the_polygon_away_from_its_edges() -> None:
    # a patrolled camera keeps its mask for ever: 1920x1080 would be 2 MB per camera, 640x360 is 0.23 MB
    polygon = [[0.1, 0.2], [0.8, 0.1], [0.95, 0.9], [0.3, 0.7]]
    masks = zones_of(polygon).at((1080, 1920))
    assert masks.bits.shape == (360, 640) and masks.bits.nbytes <= 240_000
    assert masks.polygons_px[0].tolist() == [[192, 216], [1536, 108], [1824, 972], [576, 756]]  # frame px
    rng = np.random.default_rng(7)
    points = rng.uniform([0, 0], [1920, 1080], (2000, 2)).astype(np.float32)
    contour = masks.polygons_px[0].reshape(-1, 1, 2).astype(np.float32)
    distance = np.array([cv2.pointPolygonTest(contour, (float(x), float(y)), True) for x, y in points])
    clear = np.abs(distance) > 4  # farther than a mask pixel and a bit from the edge
    boxes = np.column_stack([points[:, 0] - 5, points[:, 1] - 20, points[:, 0] + 5, points[:, 1]])  # anchor
    inside = masks.membership(boxes.astype(np.float32))[:, 0]
    assert clear.sum() > 1800
    assert (inside[clear] == (distance[clear] > 0)).all()
