"""Privacy by construction: on real footage (vtest.avi), everyone outside the violation loses their detail
in the evidence, also people the detector misses at its working threshold; the violation keeps its
detail; persons_only mode pixelates only the people found; plates on request; unredacted copies stay on
the box; the rules see the same detections when the detector runs lower for redaction; the per-camera
configuration.

Detail is measured as the variance of the Laplacian (edge energy) of a box's gray pixels, redacted over
original: a pixelated or strongly blurred person keeps well under 10 % of it, a sharp region over 70 %.
"""

from __future__ import annotations

import os
import time
from pathlib import Path

import cv2
import numpy as np
import numpy.typing as npt
import pytest

from detector.detections import Detections
from pipeline.config import ConfigError, EvidenceConfig, RedactionConfig, load_config
from pipeline.evidence import UNREDACTED_DIR, prune_older_than, render_evidence
from pipeline.redaction import PersonSplit, plate_bands, redact
from tests.pipeline.test_evidence import make_detections, make_event, read

pytestmark = pytest.mark.security

Image = npt.NDArray[np.uint8]
GONE = 0.1  # a redacted person keeps less than this share of their edge energy
KEPT = 0.7  # the violation keeps more than this share of its own
LOW, WORKING = 0.1, 0.25  # person_confidence and yolov8n's working threshold (its card)
VAN_ZONE = [(630, 29), (767, 29), (767, 115), (630, 115)]  # tests/pipeline/test_daemon_e2e.py VAN_ZONE


def detail(image: Image, box: npt.NDArray[np.float32] | tuple[int, int, int, int]) -> float:
    x1, y1, x2, y2 = (round(float(v)) for v in box)
    gray = cv2.cvtColor(image[y1:y2, x1:x2], cv2.COLOR_BGR2GRAY)
    return float(cv2.Laplacian(gray, cv2.CV_64F).var())


def overlaps(box: npt.NDArray[np.float32], region: tuple[float, float, float, float]) -> bool:
    return bool(box[0] < region[2] and box[2] > region[0] and box[1] < region[3] and box[3] > region[1])


@pytest.fixture(scope="module")
def detectors(yolov8_int8: Path) -> tuple[object, object]:
    from detector.detector import Detector

    low = Detector(yolov8_int8, confidence=LOW, warmup=False)
    working = Detector(yolov8_int8, warmup=False)
    assert working.confidence == WORKING, "the test's working threshold is yolov8n's card threshold"
    return low, working


def scene(
    frame: Image, detectors: tuple[object, object]
) -> tuple[Detections, Detections, npt.NDArray[np.float32], list[str]]:
    """(working-threshold detections, vehicles in the van zone, people at LOW, class names)."""
    from detector.detector import Detector

    low, working = detectors
    assert isinstance(low, Detector) and isinstance(working, Detector)
    names = working.class_names
    found = working(frame)
    vehicles = found[np.isin(found.class_id, [names.index("car"), names.index("truck")])]
    vehicles = vehicles[vehicles.xyxy[:, 0] > VAN_ZONE[0][0] - 30]
    everyone = low(frame)
    people = everyone.xyxy[everyone.class_id == names.index("person")]
    return found, vehicles, people, names


@pytest.mark.parametrize("index", [200, 790])
def test_nobody_outside_the_violation_keeps_detail_even_when_the_detector_missed_them(
    tmp_path: Path, vtest_frames: dict[int, Image], detectors: tuple[object, object], index: int
) -> None:
    frame = vtest_frames[index]
    found, vehicles, people, names = scene(frame, detectors)
    assert len(vehicles) >= 1, "the van parked at the top right"
    # The daemon missed every person: only the vehicles reach the renderer, and no person boxes at all.
    no_people = found[found.class_id != names.index("person")]
    written = dict(
        render_evidence(
            frame,
            make_event(boxes=vehicles, polygon=VAN_ZONE),
            no_people,
            names,
            EvidenceConfig(dir=tmp_path),
            persons_xyxy=np.zeros((0, 4), np.float32),
        )
    )
    picture = read(written["confirmation"])
    x1, y1 = vehicles.xyxy[:, :2].min(axis=0)
    x2, y2 = vehicles.xyxy[:, 2:].max(axis=0)
    w, h = x2 - x1, y2 - y1
    kept = (min(x1 - w / 4, VAN_ZONE[0][0]), 0.0, 768.0, max(y2 + h / 4, VAN_ZONE[2][1]))
    outside = [box for box in people if not overlaps(box, kept) and box[1] > 20]  # not under the caption
    working_people = found.xyxy[found.class_id == names.index("person")]
    missed = [b for b in outside if all(not overlaps(b, tuple(p)) for p in working_people)]
    assert len(outside) >= 5 and missed, "pedestrians, some only found below the working threshold"
    for box in outside:
        ratio = detail(picture, box) / detail(frame, box)
        assert ratio < GONE, (index, box.round(), ratio)
    crop = read(written["crop"])
    best = vehicles.xyxy[int(np.argmax(vehicles.confidence))]
    assert detail(crop, (0, 0, crop.shape[1], crop.shape[0])) > 0  # a real picture
    ratio = detail(redact_base(frame, vehicles, names), best) / detail(frame, best)
    assert ratio > KEPT, ratio


def redact_base(frame: Image, vehicles: Detections, names: list[str]) -> Image:
    return redact(
        frame,
        RedactionConfig(),
        persons_xyxy=np.zeros((0, 4), np.float32),
        violation=vehicles,
        class_names=names,
        polygon_px=VAN_ZONE,
    )


def test_people_inside_the_kept_zone_are_pixelated_and_the_van_stays_sharp(
    vtest_frames: dict[int, Image], detectors: tuple[object, object]
) -> None:
    frame = vtest_frames[200]
    _, vehicles, people, names = scene(frame, detectors)
    in_zone = [box for box in people if overlaps(box, (630, 29, 767, 115))]
    assert in_zone, "frame 200: people walk past the van, inside its zone"
    redacted = redact(
        frame,
        RedactionConfig(),
        persons_xyxy=people,
        violation=vehicles,
        class_names=names,
        polygon_px=VAN_ZONE,
    )
    for box in in_zone:
        assert detail(redacted, box) / detail(frame, box) < GONE, box.round()
    van = vehicles.xyxy[int(np.argmax(vehicles.confidence))]
    # A pedestrian's pixelated box (grown by person_margin) covers the van's bottom edge: measure above it.
    tops = [b[1] - 0.15 * (b[3] - b[1]) for b in people if overlaps(b, tuple(van))]
    visible = (van[0], van[1], van[2], min([van[3], *tops]))
    assert visible[3] - visible[1] > 0.6 * (van[3] - van[1])
    assert detail(redacted, visible) / detail(frame, visible) > KEPT


def test_persons_only_pixelates_the_people_found_and_leaves_the_rest_sharp(
    vtest_frames: dict[int, Image], detectors: tuple[object, object]
) -> None:
    frame = vtest_frames[200]
    _, vehicles, people, names = scene(frame, detectors)
    found, missed = people[:3], people[3:]
    policy = RedactionConfig(mode="persons_only")
    redacted = redact(frame, policy, persons_xyxy=found, violation=vehicles, class_names=names)
    for box in found:
        assert detail(redacted, box) / detail(frame, box) < GONE
    # The trade-off: a person not found stays as sharp as the camera saw them.
    for box in missed:
        if all(not overlaps(box, tuple(f)) for f in found):
            assert detail(redacted, box) / detail(frame, box) > 0.95
    mask = np.ones(frame.shape[:2], bool)
    for x1, y1, x2, y2 in np.round(found).astype(int):
        w, h = x2 - x1, y2 - y1
        mask[max(0, y1 - h) : y2 + h, max(0, x1 - w) : x2 + w] = False
    assert np.array_equal(redacted[mask], frame[mask]), "nothing but the people found is touched"


def test_plates_are_pixelated_only_when_asked() -> None:
    rng = np.random.default_rng(3)
    frame = rng.integers(0, 256, size=(360, 640, 3)).astype(np.uint8)
    car = make_detections([(300, 100, 500, 300, 0.9, 2)])
    names = ["person", "bicycle", "car"]
    band = plate_bands(car, names)[0]
    assert band.round().tolist() == [320, 210, 480, 300]
    top = (300, 100, 500, 200)
    for asked in (False, True):
        policy = RedactionConfig(blur_plates_in_violation=asked)
        out = redact(
            frame, policy, persons_xyxy=np.zeros((0, 4), np.float32), violation=car, class_names=names
        )
        band_ratio = detail(out, band) / detail(frame, band)
        assert (band_ratio < GONE) if asked else (band_ratio == 1.0)
        assert detail(out, top) / detail(frame, top) == 1.0  # the car itself stays
    person = make_detections([(300, 100, 500, 300, 0.9, 0)])
    assert len(plate_bands(person, names)) == 0, "only vehicles have plates"


def test_the_unredacted_copy_stays_on_the_box_only_when_configured(tmp_path: Path) -> None:
    frame = np.random.default_rng(5).integers(0, 256, size=(360, 640, 3)).astype(np.uint8)
    person = np.array([[100, 220, 140, 320]], np.float32)
    for keep in (False, True):
        config = EvidenceConfig(dir=tmp_path / str(keep), redaction=RedactionConfig(keep_unredacted=keep))
        written = render_evidence(
            frame, make_event(), Detections.empty(), ["person", "car"], config, persons_xyxy=person
        )
        local = sorted((tmp_path / str(keep) / UNREDACTED_DIR).rglob("*.jpg"))
        assert len(local) == (1 if keep else 0)
        assert not {path for _, path in written} & set(local), "never handed to the outbox"
        for kind, path in written:
            if kind == "crop":  # a close-up of the car, away from the person
                continue
            assert detail(read(path), person[0]) / detail(frame, person[0]) < GONE
        if keep:
            assert local[0].parent.parent.name == "cam-1"
            assert detail(read(local[0]), person[0]) / detail(frame, person[0]) > 0.5
            old = time.time() - 3 * 3600
            os.utime(local[0], (old, old))
            assert prune_older_than(local[0].parent.parent, 2 * 3600) == 1
            assert not local[0].exists()


def test_the_rules_see_the_same_detections_when_the_detector_runs_lower(
    vtest_frames: dict[int, Image], detectors: tuple[object, object]
) -> None:
    from detector.detector import Detector

    low, working = detectors
    assert isinstance(low, Detector) and isinstance(working, Detector)
    split = PersonSplit(working.class_names, working_confidence=WORKING, person_confidence=LOW)
    extra = 0
    for frame in vtest_frames.values():
        rules, persons = split(low(frame))
        expected = working(frame)
        assert np.array_equal(rules.class_id, expected.class_id)
        assert np.allclose(rules.xyxy, expected.xyxy) and np.allclose(rules.confidence, expected.confidence)
        people = expected.xyxy[expected.class_id == 0]
        extra += len(persons) - len(people)
    assert extra > 0, "people below the working threshold reach redaction"
    with pytest.raises(ValueError, match="above the working confidence"):
        PersonSplit(["person"], working_confidence=0.2, person_confidence=0.3)


CONFIG = """\
detector:
  model: {model}
  classes: {{car: illegal_parking}}
store: {{url: "http://127.0.0.1:8000", device_key_file: key}}
evidence:
  redaction: {{mode: outside_violation, margin: 0.3, blur_plates_in_violation: true}}
cameras:
  - id: wide
    url: /dev/video0
    redaction: {{mode: persons_only}}
    zones:
      - {{id: z, place: p, polygon: [[0, 0], [1, 0], [1, 1]], rules: {{illegal_parking: {{dwell_s: 30}}}}}}
  - id: plain
    url: /dev/video1
    zones:
      - {{id: z, place: p, polygon: [[0, 0], [1, 0], [1, 1]], rules: {{illegal_parking: {{dwell_s: 30}}}}}}
"""


def test_a_camera_overrides_only_the_fields_it_sets(tmp_path: Path, yolox_card: Path) -> None:
    path = tmp_path / "daemon.yaml"
    path.write_text(CONFIG.format(model=yolox_card), encoding="utf-8")
    config = load_config(path)
    wide, plain = (config.evidence.redaction_for(camera) for camera in config.cameras)
    assert (wide.mode, wide.margin, wide.blur_plates_in_violation) == ("persons_only", 0.3, True)
    assert plain == config.evidence.redaction
    assert EvidenceConfig().redaction == RedactionConfig(mode="outside_violation", keep_unredacted=False)


@pytest.mark.parametrize(
    ("old", "new", "where"),
    [
        ("{mode: persons_only}", "{mode: faces}", ":10: cameras.0.redaction.mode:"),
        ("margin: 0.3", "margin: -1", ":6: evidence.redaction.margin:"),
        ("{mode: persons_only}", "{mode: persons_only, blur: true}", ":10: cameras.0.redaction.blur:"),
    ],
)
def test_a_bad_redaction_setting_names_its_line(
    tmp_path: Path, yolox_card: Path, old: str, new: str, where: str
) -> None:
    path = tmp_path / "daemon.yaml"
    path.write_text(CONFIG.format(model=yolox_card).replace(old, new), encoding="utf-8")
    with pytest.raises(ConfigError) as caught:
        load_config(path)
    assert f"{path}{where}" in str(caught.value), caught.value


@pytest.mark.parametrize(("blur", "lowered"), [(True, True), (False, False)])
def test_the_daemon_runs_its_detector_at_the_person_threshold_only_for_redaction(
    tmp_path: Path, yolov8_int8: Path, blur: bool, lowered: bool
) -> None:
    from detector.detector import Detector
    from pipeline.daemon import Daemon

    path = tmp_path / "daemon.yaml"
    path.write_text(CONFIG.format(model=yolov8_int8), encoding="utf-8")
    config = load_config(path)
    config = config.model_copy(update={"evidence": EvidenceConfig(blur_persons=blur)})
    detector = Detector(yolov8_int8, warmup=False)
    split = Daemon._persons_for_redaction(detector, config)
    assert (split is not None) is lowered
    assert detector.confidence == (LOW if lowered else WORKING)
    if split is not None:
        assert (split.working_confidence, split.person_confidence) == (WORKING, LOW)


def test_snapshots_pixelate_the_people_found_below_the_working_threshold(
    vtest_frames: dict[int, Image], detectors: tuple[object, object]
) -> None:
    from types import SimpleNamespace

    from pipeline.metrics import DaemonMetrics
    from pipeline.snapshots import Snapshots
    from pipeline.stages import Analysed

    frame = vtest_frames[200]
    found, _, people, names = scene(frame, detectors)
    offered: list[bytes] = []
    sync = SimpleNamespace(offer_snapshot=lambda camera_id, jpeg: offered.append(jpeg))
    snapshots = Snapshots(sync, names, DaemonMetrics(["cam-1"]), every_s=60, blur_persons=True)  # type: ignore[arg-type]
    item = Analysed("cam-1", SimpleNamespace(image=frame, full=None), found, 0.0, people)  # type: ignore[arg-type]
    snapshots.maybe_offer(item)
    picture = cv2.imdecode(np.frombuffer(offered[0], np.uint8), cv2.IMREAD_COLOR)
    working_people = found.xyxy[found.class_id == names.index("person")]
    assert len(people) > len(working_people)
    for box in people:
        assert detail(picture, box) / detail(frame, box) < GONE, box.round()
