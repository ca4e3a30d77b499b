"""Evidence pictures: which pictures each event gets, people pixelated on real footage (and not when turned
off), the zone and boxes drawn, a crop of the object, files named by sha256 that the case store accepts."""

from __future__ import annotations

import datetime as dt
import hashlib
from pathlib import Path

import cv2
import numpy as np
import numpy.typing as npt
import pytest

from api.evidence import check_image
from detector.detections import Detections
from pipeline.config import EvidenceConfig
from pipeline.errors import EvidenceError
from pipeline.evidence import ZONE_COLOUR, crop_box, pixelate, render_after, render_evidence, stamp_time
from pipeline.incidents import IncidentEvent

T0 = dt.datetime(2026, 5, 11, 1, 0, tzinfo=dt.UTC)
COCO_LIKE = ["person", "bicycle", "car"]


def make_detections(rows: list[tuple[float, float, float, float, float, int]]) -> Detections:
    if not rows:
        return Detections.empty()
    array = np.array(rows, np.float32)
    return Detections(
        xyxy=array[:, :4].copy(), confidence=array[:, 4].copy(), class_id=array[:, 5].astype(np.int64)
    )


def make_event(
    kind: str = "confirmed",
    boxes: Detections | None = None,
    polygon: list[tuple[int, int]] | None = None,
    other_zones: tuple[list[tuple[int, int]], ...] = (),
) -> IncidentEvent:
    boxes = make_detections([(400, 60, 560, 160, 0.9, 2)]) if boxes is None else boxes
    zone = np.array(polygon or [(350, 40), (639, 40), (639, 200), (350, 200)], np.int32)
    return IncidentEvent(
        kind=kind,  # type: ignore[arg-type]
        incident_id="0" * 32,
        camera_id="cam-1",
        zone_id="z-gate",
        place="110101001001001",
        violation_type="illegal_parking",
        first_seen_at=T0,
        at=T0 + dt.timedelta(seconds=30),
        confidence=float(boxes.confidence.max()) if len(boxes) else 0.0,
        boxes=boxes,
        polygon_px=zone,
        zones_px=(zone, *(np.array(z, np.int32) for z in other_zones)),
    )


def noise_frame(seed: int = 0, hw: tuple[int, int] = (360, 640)) -> npt.NDArray[np.uint8]:
    return np.random.default_rng(seed).integers(0, 256, size=(*hw, 3)).astype(np.uint8)


def read(path: Path) -> npt.NDArray[np.uint8]:
    image = cv2.imread(str(path), cv2.IMREAD_COLOR)
    assert image is not None, path
    return np.asarray(image, np.uint8)


def sharpness(image: npt.NDArray[np.uint8]) -> float:
    return float(cv2.Laplacian(cv2.cvtColor(image, cv2.COLOR_BGR2GRAY), cv2.CV_64F).var())


def region(image: npt.NDArray[np.uint8], box: npt.NDArray[np.float32]) -> npt.NDArray[np.uint8]:
    x1, y1, x2, y2 = (round(float(v)) for v in box)
    return image[y1:y2, x1:x2]


@pytest.mark.parametrize(
    ("kind", "expected"),
    [
        ("first_seen", ["first_seen"]),
        ("confirmed", ["confirmation", "crop", "frame"]),
        ("sighting", ["sighting"]),
        ("ended", []),
    ],
)
def test_which_pictures_each_event_gets(tmp_path: Path, kind: str, expected: list[str]) -> None:
    written = render_evidence(
        noise_frame(), make_event(kind), Detections.empty(), COCO_LIKE, EvidenceConfig(dir=tmp_path)
    )

    assert [k for k, _ in written] == expected
    for _, path in written:
        data = path.read_bytes()
        assert path == tmp_path / path.stem[:2] / f"{hashlib.sha256(data).hexdigest()}.jpg"
        assert check_image(data, 5 * 1024 * 1024).content_type == "image/jpeg"  # the store's own check


def test_the_same_picture_is_one_file_and_the_frame_is_left_alone(tmp_path: Path) -> None:
    frame = noise_frame()
    before = frame.copy()
    people = make_detections([(20, 200, 80, 340, 0.8, 0)])
    config = EvidenceConfig(dir=tmp_path)

    first = render_evidence(frame, make_event(), people, COCO_LIKE, config)
    second = render_evidence(frame, make_event(), people, COCO_LIKE, config)

    assert first == second
    assert len(list(tmp_path.rglob("*.jpg"))) == 3 and not list(tmp_path.rglob("*.tmp"))
    assert np.array_equal(frame, before)


def test_zone_and_boxes_are_drawn_and_the_crop_shows_the_object(tmp_path: Path) -> None:
    frame = np.full((360, 640, 3), 128, np.uint8)
    frame[60:160, 400:560] = (40, 160, 40)  # "the car"
    boxes = make_detections([(400, 60, 560, 160, 0.6, 2), (420, 70, 520, 150, 0.9, 2)])
    written = dict(
        render_evidence(
            frame, make_event(boxes=boxes), Detections.empty(), COCO_LIKE, EvidenceConfig(dir=tmp_path)
        )
    )

    confirmation, crop = read(written["confirmation"]), read(written["crop"])
    edge = confirmation[120, 350].astype(int)  # the polygon's left edge
    assert np.abs(edge - ZONE_COLOUR).max() < 60
    assert (confirmation[70, 420].astype(int) - (0, 0, 255) != 0).any()  # a red box corner
    assert np.abs(confirmation[70, 420].astype(int) - (0, 0, 255)).max() < 80
    # the crop is of the most confident box (100x80) with a margin, at least 96 px a side, undrawn
    assert crop.shape[0] >= 96 and crop.shape[1] >= 100 * 1.5 - 1
    centre = crop[crop.shape[0] // 2, crop.shape[1] // 2].astype(int)
    assert np.abs(centre - (40, 160, 40)).max() < 20


def test_a_crop_near_the_edge_stays_inside_the_frame() -> None:
    frame = noise_frame()
    crop = crop_box(frame, np.array([600, 330, 640, 360], np.float32))
    assert crop.shape[0] > 0 and crop.shape[1] > 0 and crop.shape[0] <= 360 and crop.shape[1] <= 640
    with pytest.raises(EvidenceError, match="lies outside the 640x360 frame"):
        crop_box(frame, np.array([700, 400, 800, 500], np.float32))


def test_pixelate_removes_detail_inside_the_box_only() -> None:
    frame = noise_frame(3)
    image = frame.copy()
    box = np.array([[100, 100, 200, 300]], np.float32)

    pixelate(image, box, margin=0.0)

    assert sharpness(image[100:300, 100:200]) < 0.02 * sharpness(frame[100:300, 100:200])
    assert np.array_equal(image[:, 220:], frame[:, 220:])


def test_after_picture(tmp_path: Path) -> None:
    written = render_after(
        noise_frame(),
        camera_id="cam-1",
        zone_id="z-gate",
        violation_type="illegal_parking",
        at=T0,
        polygon_px=[(350, 40), (639, 40), (639, 200), (350, 200)],
        boxes=Detections.empty(),
        all_detections=Detections.empty(),
        class_names=COCO_LIKE,
        config=EvidenceConfig(dir=tmp_path),
        note="verify",
    )

    assert [kind for kind, _ in written] == ["after"] and written[0][1].is_file()


def test_an_unwritable_evidence_dir_is_a_clear_error(tmp_path: Path) -> None:
    blocker = tmp_path / "file"
    blocker.write_text("x")

    with pytest.raises(EvidenceError, match=r"cannot write evidence under evidence\.dir"):
        render_evidence(
            noise_frame(), make_event(), Detections.empty(), COCO_LIKE, EvidenceConfig(dir=blocker / "ev")
        )


def test_a_polygon_of_two_points_is_refused(tmp_path: Path) -> None:
    with pytest.raises(EvidenceError, match="at least 3 points"):
        render_evidence(
            noise_frame(),
            make_event(polygon=[(0, 0), (10, 10)]),
            Detections.empty(),
            COCO_LIKE,
            EvidenceConfig(dir=tmp_path),
        )


# --- real footage: vtest.avi, real detections ------------------------------------------------------------


@pytest.fixture(scope="module")
def vtest_scene(
    vtest_frames: dict[int, npt.NDArray[np.uint8]], yolox_card: Path
) -> tuple[npt.NDArray[np.uint8], Detections, list[str]]:
    from detector.detector import Detector

    detector = Detector(yolox_card, warmup=False)
    frame = vtest_frames[200]
    return frame, detector.detect_batch([frame])[0], detector.class_names


@pytest.mark.parametrize("blur", [True, False])
def test_people_in_real_footage_are_pixelated_unless_turned_off(
    tmp_path: Path, vtest_scene: tuple[npt.NDArray[np.uint8], Detections, list[str]], blur: bool
) -> None:
    frame, detections, names = vtest_scene
    vehicles = detections[np.isin(detections.class_id, [names.index("car"), names.index("truck")])]
    people = detections[detections.class_id == names.index("person")]
    zone = [(440, 0), (767, 0), (767, 180), (440, 180)]  # over the van and car parked top right
    # people clear of the zone's tint and the caption bar, so the comparison sees only the blur
    clear = people.xyxy[people.xyxy[:, 1] > 190]
    assert len(vehicles) >= 1 and len(clear) >= 2, "vtest frame 200 has the parked vehicles and pedestrians"
    event = make_event(boxes=vehicles, polygon=zone)

    written = dict(
        render_evidence(frame, event, detections, names, EvidenceConfig(dir=tmp_path, blur_persons=blur))
    )

    picture = read(written["confirmation"])
    for box in clear:
        original, shown = region(frame, box), region(picture, box)
        variance_ratio = float(shown.var()) / float(original.var())
        sharpness_ratio = sharpness(shown) / sharpness(original)
        if blur:
            assert sharpness_ratio < 0.1 and variance_ratio < 0.6, (box, sharpness_ratio, variance_ratio)
        else:
            assert sharpness_ratio > 0.5 and variance_ratio > 0.85, (box, sharpness_ratio, variance_ratio)


@pytest.mark.parametrize(
    ("timezone", "stamp"),
    [
        ("Asia/Shanghai", "2026-05-11 09:00:30 UTC+08:00"),
        ("Asia/Urumqi", "2026-05-11 07:00:30 UTC+06:00"),
        ("UTC", "2026-05-11 01:00:30 UTC+00:00"),
    ],
)
def test_stamps_show_the_cameras_local_time(timezone: str, stamp: str) -> None:
    """People on site read the stamp against a local clock: the camera's zone, with its offset, not UTC."""
    assert stamp_time(T0 + dt.timedelta(seconds=30), timezone) == stamp


def test_the_stamp_burnt_in_follows_the_camera_time_zone(tmp_path: Path) -> None:
    frame, event = noise_frame(), make_event()
    config = EvidenceConfig(dir=tmp_path, blur_persons=False)
    (_, local), *_ = render_evidence(frame, event, Detections.empty(), COCO_LIKE, config)  # Asia/Shanghai
    (_, utc), *_ = render_evidence(frame, event, Detections.empty(), COCO_LIKE, config, timezone="UTC")
    shanghai, in_utc = read(local), read(utc)
    bar = 30  # the caption bar at the top: the only part the time zone changes
    assert not np.array_equal(shanghai[:bar], in_utc[:bar])
    below = bar + 16  # past the JPEG blocks the bar's edge shares
    assert np.abs(shanghai[below:].astype(int) - in_utc[below:].astype(int)).max() <= 40  # JPEG noise only


def test_the_training_frame_has_nothing_drawn_and_every_zone_sharp(tmp_path: Path) -> None:
    """The ``frame`` picture: the confirmation's pixels without zone, boxes or caption; the camera's other
    zones stay sharp (a missed pile there can be labelled) while the street outside them is blurred, and a
    person inside another zone is pixelated all the same."""
    # gray texture in 4-px blocks: sharp, and JPEG keeps it (colour noise would not survive subsampling)
    blocks = np.random.default_rng(3).integers(0, 256, size=(90, 160), dtype=np.uint8)
    frame = cv2.cvtColor(cv2.resize(blocks, (640, 360), interpolation=cv2.INTER_NEAREST), cv2.COLOR_GRAY2BGR)
    other = [(0, 220), (300, 220), (300, 359), (0, 359)]  # the pavement zone at the bottom left
    person = make_detections([(200, 240, 260, 340, 0.8, 0)])  # standing in the pavement zone
    config = EvidenceConfig(dir=tmp_path, jpeg_quality=100)
    written = dict(render_evidence(frame, make_event(other_zones=(other,)), person, COCO_LIKE, config))
    clean, confirmation = read(written["frame"]), read(written["confirmation"])

    case_zone = np.s_[50:190, 360:630]
    assert np.abs(clean[case_zone].astype(int) - frame[case_zone]).mean() < 4  # no zone fill, no box
    assert np.abs(confirmation[case_zone].astype(int) - frame[case_zone]).mean() > 10
    pavement, street = np.s_[230:350, 10:190], np.s_[10:200, 20:300]
    assert sharpness(clean[pavement]) > 10 * sharpness(confirmation[pavement])  # sharp only in the frame
    assert sharpness(clean[street]) < sharpness(frame[street]) / 10  # outside every zone: blurred
    assert sharpness(clean[250:330, 205:255]) < sharpness(frame[250:330, 205:255]) / 10  # the person

    # a camera with one zone, and the switch that turns the frame off
    assert "frame" in dict(render_evidence(frame, make_event(), person, COCO_LIKE, config))
    off = EvidenceConfig(dir=tmp_path, training_frame=False)
    assert [k for k, _ in render_evidence(frame, make_event(), person, COCO_LIKE, off)] == [
        "confirmation",
        "crop",
    ]
