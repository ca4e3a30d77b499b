"""What a model is shown: frames blurred outside the camera's zones when its card says it learnt from
pictures redacted that way (``input.blur_outside_zones``), exactly as a training frame is redacted; the
frame as it is otherwise. Real footage: the first frame of vtest.avi."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from types import SimpleNamespace

import av
import cv2
import numpy as np
import numpy.typing as npt
import pytest

from detector.card import ModelCard
from detector.detections import Detections
from detector.detector import Detector
from pipeline import redaction
from pipeline.config import RedactionConfig, ZoneConfig
from pipeline.daemon import Daemon
from pipeline.model_input import model_input
from pipeline.roi import pixel_box
from tests.pipeline.test_daemon import FakeDetector, FileSource, camera, make_config, reports

REPO = Path(__file__).resolve().parents[2]
PAVEMENT = [[0.05, 0.55], [0.6, 0.5], [0.7, 0.95], [0.1, 0.98]]


@dataclass
class Frame:
    image: npt.NDArray[np.uint8]
    small: npt.NDArray[np.uint8] | None = None
    small_box: tuple[int, int, int, int] | None = None

    @property
    def hw(self) -> tuple[int, int]:
        return self.image.shape[0], self.image.shape[1]


def zone(polygon: list[list[float]]) -> ZoneConfig:
    return ZoneConfig.model_validate(
        {"id": "pavement", "place": "p", "polygon": polygon, "rules": {"street_stall": {"dwell_s": 30}}}
    )


@pytest.fixture(scope="module")
def street(vtest_path: Path) -> npt.NDArray[np.uint8]:
    with av.open(str(vtest_path)) as container:
        frame = next(container.decode(video=0))
        return np.ascontiguousarray(frame.to_ndarray(format="bgr24"))


@pytest.fixture(scope="module")
def card() -> ModelCard:
    return Detector(REPO / "models" / "streetwatch-demo-n.yaml").card


def blurring(card: ModelCard, share: float = 0.04) -> SimpleNamespace:
    """A detector whose card says it learnt from frames blurred with ``share`` outside the zones."""
    return SimpleNamespace(
        card=card.model_copy(update={"input": card.input.model_copy(update={"blur_outside_zones": share})})
    )


def detail(image: npt.NDArray[np.uint8], where: npt.NDArray[np.bool_]) -> float:
    return float(cv2.Laplacian(cv2.cvtColor(image, cv2.COLOR_BGR2GRAY), cv2.CV_64F)[where].var())


def zone_mask(
    shape_hw: tuple[int, int], polygon_px: npt.NDArray[np.float64]
) -> tuple[npt.NDArray[np.bool_], ...]:
    """Inside the zone, and well outside it (away from the edge, where blur and sharp meet)."""
    mask = redaction.kept_mask(shape_hw, np.zeros((0, 4), np.float32), polygon_px).astype(np.uint8)
    outside = ~cv2.dilate(mask, np.ones((15, 15), np.uint8)).astype(bool)
    inside = cv2.erode(mask, np.ones((5, 5), np.uint8)).astype(bool)
    return inside, outside


def test_a_model_without_the_card_field_sees_the_frame_as_it_is(
    street: npt.NDArray[np.uint8], card: ModelCard
) -> None:
    assert card.input.blur_outside_zones is None
    frame = Frame(street)
    assert model_input(SimpleNamespace(card=card), frame, lambda: [zone(PAVEMENT)]) is street
    assert model_input(object(), frame, lambda: [zone(PAVEMENT)]) is street  # a detector without a card

    def not_looked_up() -> list[ZoneConfig]:
        raise AssertionError("a model shown frames as they are needs no zones (the scheduler's hot path)")

    assert model_input(SimpleNamespace(card=card), frame, not_looked_up) is street


def test_the_model_sees_the_whole_frame_exactly_as_a_training_frame_is_redacted(
    street: npt.NDArray[np.uint8], card: ModelCard
) -> None:
    height, width = street.shape[:2]
    polygon_px = np.array(PAVEMENT) * (width, height)
    shown = model_input(blurring(card), Frame(street), lambda: [zone(PAVEMENT)])
    # the default policy's training frame (evidence kind 'frame'): the zones sharp, the rest blurred
    trained_on = redaction.redact(
        street,
        RedactionConfig(),
        persons_xyxy=np.zeros((0, 4), np.float32),
        violation=Detections.empty(),
        class_names=[],
        polygon_px=polygon_px,
    )
    assert np.array_equal(shown, trained_on)
    inside, outside = zone_mask((height, width), polygon_px)
    assert np.array_equal(shown[inside], street[inside])
    assert detail(shown, outside) < 0.1 * detail(street, outside)
    assert not np.shares_memory(shown, street)  # the frame itself stays sharp for evidence


def test_a_downscaled_copy_is_blurred_as_the_full_frame_would_be_and_then_scaled(
    street: npt.NDArray[np.uint8], card: ModelCard
) -> None:
    height, width = street.shape[:2]
    small = cv2.resize(street, (width // 2, height // 2), interpolation=cv2.INTER_AREA)
    shown = model_input(blurring(card), Frame(street, small), lambda: [zone(PAVEMENT)])
    assert shown.shape == small.shape
    inside, outside = zone_mask(small.shape[:2], np.array(PAVEMENT) * (width // 2, height // 2))
    assert np.array_equal(shown[inside], small[inside])
    # the same blur relative to the picture: the full frame blurred then scaled looks the same outside
    full = cv2.resize(
        model_input(blurring(card), Frame(street), lambda: [zone(PAVEMENT)]),
        (width // 2, height // 2),
        interpolation=cv2.INTER_AREA,
    )
    assert np.abs(shown[outside].astype(int) - full[outside].astype(int)).mean() < 4


def test_with_zone_roi_the_crop_keeps_its_zone_sharp_where_it_lies_in_the_crop(
    street: npt.NDArray[np.uint8], card: ModelCard
) -> None:
    height, width = street.shape[:2]
    box = pixel_box((0.0, 0.4, 0.8, 1.0), width, height)
    x0, y0, x1, y1 = box
    small = np.ascontiguousarray(street[y0:y1, x0:x1])  # the crop at scale 1
    shown = model_input(blurring(card), Frame(street, small, box), lambda: [zone(PAVEMENT)])
    polygon_px = np.array(PAVEMENT) * (width, height) - (x0, y0)
    inside, outside = zone_mask(small.shape[:2], polygon_px)
    assert inside.any() and outside.any()
    assert np.array_equal(shown[inside], small[inside])
    assert detail(shown, outside) < 0.1 * detail(small, outside)


def test_a_camera_without_zones_is_shown_as_it_is(street: npt.NDArray[np.uint8], card: ModelCard) -> None:
    assert model_input(blurring(card), Frame(street), lambda: []) is street


@dataclass
class SeeingDetector(FakeDetector):
    """The fake detector, with a card, keeping every picture it was shown."""

    shown: list[npt.NDArray[np.uint8]] = field(default_factory=list)

    def detect_batch(self, frames: Sequence[npt.NDArray[np.uint8]]) -> list[Detections]:
        self.shown.extend(np.array(f) for f in frames)
        return super().detect_batch(frames)


@pytest.mark.parametrize("share", [None, 0.04])
def test_the_daemon_shows_its_model_the_frames_its_card_asks_for_and_leaves_the_frame_as_it_was(
    tmp_path: Path, street: npt.NDArray[np.uint8], card: ModelCard, share: float | None
) -> None:
    config = make_config(tmp_path, [camera("cam-a", dwell_s=3)])
    before = street.copy()
    source = FileSource("cam-a", 6)
    for frame in source.frames:
        frame.image = street  # the real street in every frame
    kerb = config.cameras[0].zones
    height, width = street.shape[:2]
    parked = np.array(
        [[0.6 * width, 0.1 * height, 0.8 * width, 0.3 * height]], np.float32
    )  # in the kerb zone
    detector = SeeingDetector(boxes=parked, card=blurring(card, share).card if share else card)  # type: ignore[arg-type]
    assert Daemon(config, detector=detector, source_factory=lambda c: source).run() == 0
    assert len(detector.shown) == 6
    expected = model_input(blurring(card, share), Frame(street), lambda: kerb) if share else street
    assert all(np.array_equal(shown, expected) for shown in detector.shown)
    assert share is None or not np.array_equal(expected, street)  # blurred outside the kerb zone
    # the frame the rules, evidence and redaction work from is untouched, and the case still comes
    assert np.array_equal(street, before) and len(reports(tmp_path)) == 1
