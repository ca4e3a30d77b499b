"""The training set from reviews, on a real case store with real footage (vtest.avi) as evidence:

- a ``false_positive`` void is a hard negative only where its own box was: its crop keeps an empty label,
  its frame keeps the other objects that stand in it (another case's confident box of another class) or is
  dropped, and a doubtful object near it (a low-confidence box) drops the picture;
- boxes operators drew on a case's image become labels of that image (class from the code, as a re-code),
  with a crop of their own where the case's crop does not show them; a code without one class is listed;
- a frame also labels what the daemon detected in it (sent with it): confident boxes of dataset classes,
  and static changes where a reviewed case's object stands; never where a false positive was voided;
- a box an operator draws around a reported box corrects it, in its own frame and in later ones;
- splits group connected incidents of one camera; the summary table counts per split and per camera.
"""

from __future__ import annotations

import datetime as dt
from pathlib import Path
from typing import Any

import cv2
import numpy as np
import pytest
from typer.testing import CliRunner

from api.models import Case
from datasets.reviewed import (
    ClassMapping,
    ExportReport,
    GroupBy,
    ImageSource,
    crop_window,
    export_reviewed,
    incident_groups,
    split_of,
)
from datasets.yolo import Labels, read_dataset_yaml, read_labels, split_images, xywhn_to_xyxy
from detector.detections import Detections
from streetwatch.cli import app
from tests.conftest import VTEST, require
from tests.datasets.builders import video_frames
from tests.datasets.reviewed_store import ReviewedStore, make_reviewed_store

NAMES = ["car", "umbrella"]  # the detector's classes the reports name
MAPPING = ClassMapping(
    ["car", "stall", "garbage"], {"street_stall": {"*": "stall"}, "exposed_garbage": {"*": "garbage"}}
)
CAR = [560.0, 60.0, 700.0, 160.0]  # vtest.avi (768x576): the parked cars at the top right
STALL = [80.0, 300.0, 200.0, 420.0]  # pavement at the bottom left: the "stall" that was not one
FAINT = [150.0, 330.0, 220.0, 400.0]  # a low-confidence box beside it


def boxes(xyxy: list[float], confidence: float, class_id: int) -> Detections:
    return Detections(
        xyxy=np.array([xyxy], np.float32),
        confidence=np.array([confidence], np.float32),
        class_id=np.array([class_id], np.int64),
    )


def export(store: ReviewedStore, out: Path, source: ImageSource) -> tuple[Path, ExportReport]:
    with store.sessions() as session:
        return export_reviewed(
            session,
            store.settings.evidence_dir,
            out,
            mapping=MAPPING,
            source=source,
            group_by=GroupBy.CASE,
            fractions=(1.0, 0.0, 0.0),
        )


def exported(yaml_path: Path) -> dict[str, tuple[Path, Labels]]:
    """image name -> (path, labels) of the train split."""
    spec = read_dataset_yaml(yaml_path)
    return {
        image.name: (image, read_labels(image.parents[2] / "labels" / "train" / f"{image.stem}.txt", 3))
        for image in split_images(spec, "train")
    }


def of_case(images: dict[str, tuple[Path, Labels]], case_id: int) -> list[tuple[Path, Labels]]:
    return [images[name] for name in sorted(images) if name.startswith(f"case{case_id:06d}_")]


@pytest.fixture(scope="module")
def frame() -> np.ndarray[Any, np.dtype[np.uint8]]:
    require(VTEST, "apt-get install opencv-doc")
    (first,) = video_frames(VTEST, [100])
    return first


def test_a_false_positive_is_negative_only_where_its_box_was(
    frame: np.ndarray[Any, np.dtype[np.uint8]], tmp_path: Path
) -> None:
    store = make_reviewed_store(tmp_path / "store", NAMES)
    # minute 0: a confident car nobody reviewed yet, and a "stall" voided as a false positive beside it
    store.report(frame, boxes(CAR, 0.9, 0), place="p-a", minutes=0)
    beside_car = store.report(frame, boxes(STALL, 0.6, 1), place="p-b", violation="street_stall", minutes=0)
    store.act(beside_car, "void", reason="false_positive")
    filed = store.report(frame, boxes(CAR, 0.9, 0), place="p-d", minutes=20)
    store.act(filed, "file")
    # minute 40: a false positive with nothing known around it; minute 60: one beside a doubtful box
    alone = store.report(frame, boxes(STALL, 0.6, 1), place="p-e", violation="street_stall", minutes=40)
    store.act(alone, "void", reason="false_positive")
    faint = store.report(frame, boxes(FAINT, 0.3, 0), place="p-f", minutes=60)
    doubtful = store.report(frame, boxes(STALL, 0.6, 1), place="p-g", violation="street_stall", minutes=60)
    store.act(doubtful, "void", reason="false_positive")

    # frames: the car stands in the first false positive's frame and keeps its label; no stall label
    yaml_path, report = export(store, tmp_path / "frames", ImageSource.FRAME)
    images = exported(yaml_path)
    ((_, labels),) = of_case(images, beside_car)
    assert labels.class_id.tolist() == [0]  # car
    np.testing.assert_allclose(xywhn_to_xyxy(labels.xywhn, 768, 576)[0], CAR, atol=1)
    assert of_case(images, alone) == [] and of_case(images, doubtful) == []  # never an empty frame
    assert report.negatives_dropped == 2 and report.negatives["train"] == 1
    assert len(of_case(images, filed)) == 1

    # crops: the close-up of the voided box is an empty label; the doubtful one is dropped
    yaml_path, report = export(store, tmp_path / "crops", ImageSource.CROP)
    images = exported(yaml_path)
    for case_id in (beside_car, alone):
        ((_, labels),) = of_case(images, case_id)
        assert len(labels) == 0
    assert of_case(images, doubtful) == []
    assert report.negatives_dropped == 1 and report.negatives["train"] == 2
    (why,) = [s["reason"] for s in report.skipped if s["case"] == doubtful]
    assert f"case {faint}'s box" in why and "cannot be labelled" in why


def test_drawn_boxes_become_labels_of_their_image(
    frame: np.ndarray[Any, np.dtype[np.uint8]], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    store = make_reviewed_store(tmp_path / "store", NAMES)
    pile = store.report(frame, boxes(STALL, 0.7, 1), place="p-h", violation="exposed_garbage", minutes=0)
    store.act(pile, "file")
    missed = [0.70, 0.60, 0.85, 0.80]  # a second pile the detector missed, far from the first
    store.draw(pile, "confirmation", missed, "0102")
    store.draw(pile, "confirmation", [0.40, 0.40, 0.45, 0.45], "0505")  # parking: car or truck?
    # an operator voids a "stall" but draws the real garbage standing in its frame
    voided = store.report(frame, boxes(STALL, 0.6, 1), place="p-j", violation="street_stall", minutes=30)
    store.act(voided, "void", reason="false_positive")
    store.draw(voided, "confirmation", missed, "0102")

    yaml_path, report = export(store, tmp_path / "frames", ImageSource.FRAME)
    images = exported(yaml_path)
    ((_, labels),) = of_case(images, pile)
    assert sorted(labels.class_id.tolist()) == [2, 2]  # the reported pile and the drawn one: garbage
    missed_px = [m * s for m, s in zip(missed, (768, 576, 768, 576), strict=True)]
    assert any(np.allclose(box, missed_px, atol=1) for box in xywhn_to_xyxy(labels.xywhn, 768, 576))
    ((_, labels),) = of_case(images, voided)
    assert labels.class_id.tolist() == [2]  # garbage only: the voided stall stays unlabelled
    summary = report.to_json()
    assert summary["drawn_labels"] == 2
    assert any("0505" in s["reason"] and "--mapping" in s["reason"] for s in report.skipped)
    table = report.table(MAPPING.classes)
    assert "camera cam-1" in table and "garbage" in table and "split train" in table

    # crops: the case's crop shows the reported pile; the drawn pile gets a crop of its own
    yaml_path, report = export(store, tmp_path / "crops", ImageSource.CROP)
    images = exported(yaml_path)
    crops = dict((path.name.split("_")[1], (path, labels)) for path, labels in of_case(images, pile))
    assert set(crops) == {"crop", "drawn000001"}
    path, labels = crops["drawn000001"]
    window = crop_window(missed_px, (768, 576))
    assert window is not None
    picture = cv2.imread(str(path))
    assert picture is not None and picture.shape[:2] == (window[3] - window[1], window[2] - window[0])
    assert labels.class_id.tolist() == [2]
    assert report.per_camera["cam-1"].drawn >= 2

    # the command prints the table: per split and per camera, images, negatives, drawn boxes, classes
    monkeypatch.delenv("STREETWATCH_DATABASE_URL", raising=False)
    monkeypatch.setenv("STREETWATCH_DATA_DIR", str(store.settings.data_dir))
    result = CliRunner().invoke(
        app, ["dataset", "export-reviewed", str(tmp_path / "cli"), "--images", "frame"]
    )
    assert result.exit_code == 0, result.output
    rows = {line.split("  ")[0].strip(): line.split() for line in result.output.splitlines()}
    head = rows[""]
    assert head[:3] == ["images", "negatives", "drawn"] and "garbage" in head
    train = dict(zip(head, rows["split train"][2:], strict=True))
    assert (train["images"], train["negatives"], train["drawn"], train["garbage"]) == ("2", "1", "2", "3")
    assert rows["camera cam-1"][2:] == rows["split train"][2:]


def _case(case_id: int, camera: str, start_min: float, end_min: float) -> Case:
    t0 = dt.datetime(2026, 5, 11, 1, 0)
    return Case(
        id=case_id,
        camera_code=camera,
        first_seen_at=t0 + dt.timedelta(minutes=start_min),
        confirmed_at=t0 + dt.timedelta(minutes=start_min),
        last_seen_at=t0 + dt.timedelta(minutes=end_min),
        created_at=t0 + dt.timedelta(minutes=start_min),
    )


def test_splits_group_connected_incidents_of_one_camera() -> None:
    cases = [
        _case(1, "cam-1", 0, 10),
        _case(2, "cam-1", 5, 6),  # on screen with 1: the same scene
        _case(3, "cam-1", 10.2, 20),  # starts 12 s after 1 ends: still the same scene
        _case(4, "cam-1", 60, 70),  # an hour later: its own group...
        _case(5, "cam-2", 0, 10),  # same time, another camera: another group
        _case(6, "cam-1", 200, 210),  # ...unless it recurs an earlier case
    ]
    groups = incident_groups(cases, {6: 4})
    assert groups[1] == groups[2] == groups[3] == "camera:cam-1:incident:1"
    assert groups[4] == groups[6] == "camera:cam-1:incident:4"
    assert groups[5] == "camera:cam-2:incident:5"
    assert len({groups[1], groups[4], groups[5]}) == 3
    assert incident_groups(list(reversed(cases)), {6: 4}) == groups  # deterministic
    for seed in range(20):  # connected cases never straddle splits, whatever the seed
        splits = {split_of(groups[i], (0.5, 0.25, 0.25), seed) for i in (1, 2, 3)}
        assert len(splits) == 1


def test_a_crop_around_a_drawn_box_labels_the_reported_box_in_it(
    frame: np.ndarray[Any, np.dtype[np.uint8]], tmp_path: Path
) -> None:
    store = make_reviewed_store(tmp_path / "store", NAMES)
    small = [300.0, 300.0, 340.0, 340.0]  # its close-up is the daemon's smallest: 96 px square
    case_id = store.report(frame, boxes(small, 0.8, 1), place="p-k", violation="exposed_garbage")
    store.act(case_id, "file")
    big = [330 / 768, 250 / 576, 530 / 768, 450 / 576]  # mostly outside that close-up
    store.draw(case_id, "confirmation", big, "0102")
    yaml_path, _ = export(store, tmp_path / "crops", ImageSource.CROP)
    crops = {
        path.name.split("_")[1]: (path, labels) for path, labels in of_case(exported(yaml_path), case_id)
    }
    assert set(crops) == {"crop", "drawn000001"}
    assert crops["crop"][1].class_id.tolist() == [2]  # the reported pile only
    _, labels = crops["drawn000001"]
    window = crop_window([330.0, 250.0, 530.0, 450.0], (768, 576))
    assert window is not None
    w, h = window[2] - window[0], window[3] - window[1]
    got = sorted(xywhn_to_xyxy(labels.xywhn, w, h).round().tolist())
    shift = [window[0], window[1], window[0], window[1]]
    want = sorted(
        [[a - b for a, b in zip(box, shift, strict=True)] for box in (small, [330.0, 250.0, 530.0, 450.0])]
    )
    np.testing.assert_allclose(got, want, atol=1.5)  # the drawn pile and the reported one, both garbage
    assert labels.class_id.tolist() == [2, 2]


def test_frames_are_the_undrawn_pictures_with_every_real_object_in_view(
    frame: np.ndarray[Any, np.dtype[np.uint8]], tmp_path: Path
) -> None:
    """``--images frame`` exports the ``frame`` evidence (nothing drawn on it), never the annotated
    confirmation picture; a confirmed case's frame also labels the other real objects in view at that
    moment (another case's confirmed box), and leaves out a doubtful one instead of dropping the frame."""
    store = make_reviewed_store(tmp_path / "store", NAMES)
    car = store.report(frame, boxes(CAR, 0.9, 0), place="p-a", minutes=0)
    store.act(car, "file")
    stall = store.report(frame, boxes(STALL, 0.7, 1), place="p-b", violation="street_stall", minutes=0)
    store.act(stall, "file")
    store.report(frame, boxes(FAINT, 0.3, 0), place="p-c", minutes=0)  # doubtful, never reviewed
    old = store.report(frame, boxes(CAR, 0.9, 0), place="p-d", evidence=("confirmation",), minutes=40)
    store.act(old, "file")  # from a daemon without evidence.training_frame

    yaml_path, report = export(store, tmp_path / "frames", ImageSource.FRAME)
    images = exported(yaml_path)
    for case_id in (car, stall):
        ((path, labels),) = of_case(images, case_id)
        assert path.name.startswith(f"case{case_id:06d}_frame_")
        picture = cv2.imread(str(path))
        assert picture is not None and np.abs(picture.astype(int) - frame).mean() < 3  # nothing drawn
        got = xywhn_to_xyxy(labels.xywhn, 768, 576)
        assert sorted(labels.class_id.tolist()) == [0, 1]  # the car and the stall, in both frames
        for wanted in (CAR, STALL):
            assert any(np.allclose(box, wanted, atol=1) for box in got)
    assert of_case(images, old) == []
    (why,) = [s["reason"] for s in report.skipped if s["case"] == old]
    assert "no undrawn frame" in why


GARBAGE = [300.0, 420.0, 380.0, 500.0]  # a pile on the pavement
TABLE = [100.0, 360.0, 180.0, 420.0]  # what static change boxed of a stall: its table, inside the zone
WHOLE_STALL = [112.0, 290.0, 165.0, 412.0]  # the stall with its umbrella, narrower than the table's shadow


def detected(xyxy: list[float], confidence: float, name: str) -> dict[str, Any]:
    return {"xyxy": xyxy, "confidence": confidence, "class_name": name}


def classes_and_boxes(labels: Labels) -> list[tuple[int, list[float]]]:
    """(class id, box in vtest pixels rounded) of each label, sorted."""
    xyxy = xywhn_to_xyxy(labels.xywhn, 768, 576).round().tolist()
    return sorted(zip(labels.class_id.tolist(), xyxy, strict=True))


def normalised(xyxy: list[float]) -> list[float]:
    return [v / s for v, s in zip(xyxy, (768, 576, 768, 576), strict=True)]


def test_a_frame_labels_what_the_daemon_detected_in_it_except_where_a_false_positive_was(
    frame: np.ndarray[Any, np.dtype[np.uint8]], tmp_path: Path
) -> None:
    """No case names the parked car, but the daemon detected it in both frames: it is labelled (not taught
    as background), also in a false positive's frame, which is kept for it; a doubtful car (low
    confidence), a static change no reviewed case explains, and the voided box itself stay unlabelled."""
    store = make_reviewed_store(tmp_path / "store", [*NAMES, "unknown_object"])
    in_view = [
        detected(CAR, 0.9, "car"),
        detected(FAINT, 0.3, "car"),
        detected([400.0, 200.0, 440.0, 260.0], 0.5, "unknown_object"),
    ]
    voided = store.report(
        frame,
        boxes(STALL, 0.6, 1),
        place="p-b",
        violation="street_stall",
        detected=[*in_view, detected(STALL, 0.6, "umbrella")],
    )
    store.act(voided, "void", reason="false_positive")
    pile = store.report(
        frame,
        boxes(GARBAGE, 0.7, 1),
        place="p-a",
        violation="exposed_garbage",
        minutes=1,
        detected=[*in_view, detected(STALL, 0.95, "car")],  # where the false positive was: not a car
    )
    store.act(pile, "file")

    yaml_path, report = export(store, tmp_path / "frames", ImageSource.FRAME)
    images = exported(yaml_path)
    ((_, labels),) = of_case(images, pile)
    assert classes_and_boxes(labels) == [(0, CAR), (2, GARBAGE)]
    ((_, labels),) = of_case(images, voided)  # kept for the car; the voided box stays a hard negative
    assert labels.class_id.tolist() == [0]
    np.testing.assert_allclose(xywhn_to_xyxy(labels.xywhn, 768, 576)[0], CAR, atol=1)
    assert report.negatives_dropped == 0


def test_a_redrawn_static_change_box_labels_the_whole_object_in_its_frame_and_in_later_ones(
    frame: np.ndarray[Any, np.dtype[np.uint8]], tmp_path: Path
) -> None:
    """Static change boxed a stall's table (what changed inside the zone); the operator who re-codes it draws
    the whole stall on the frame. Its frame is labelled with the drawn box, not the table; a later case's
    frame in which the daemon still detects the change there labels the stall with the drawn box too."""
    store = make_reviewed_store(tmp_path / "store", [*NAMES, "unknown_object"])
    stall = store.report(frame, boxes(TABLE, 0.6, 2), place="p-s", violation="street_stall")
    store.act(stall, "file")
    store.draw(stall, "frame", normalised(WHOLE_STALL), "0501")
    pile = store.report(
        frame,
        boxes(GARBAGE, 0.7, 1),
        place="p-a",
        violation="exposed_garbage",
        minutes=3,
        detected=[detected([102.0, 358.0, 182.0, 421.0], 0.6, "unknown_object")],
    )
    store.act(pile, "file")

    yaml_path, _ = export(store, tmp_path / "frames", ImageSource.FRAME)
    images = exported(yaml_path)
    for case_id, wanted in ((stall, [(1, WHOLE_STALL)]), (pile, [(1, WHOLE_STALL), (2, GARBAGE)])):
        ((_, labels),) = of_case(images, case_id)
        assert classes_and_boxes(labels) == wanted, case_id
