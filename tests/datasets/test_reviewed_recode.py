"""A re-coded case is labelled with the type the operator chose: the static-change detector reports
class ``unknown_object`` (9901); re-coded to 0102 at review, its box becomes a ``garbage`` label, and a
re-code to a type with no single dataset class (0505: car? truck?) asks for a mapping instead of guessing."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from api.case_actions import apply_action
from api.models import Case
from datasets.errors import ExportError
from datasets.reviewed import ClassMapping, GroupBy, default_mapping, export_reviewed
from datasets.yolo import read_dataset_yaml, read_labels, split_images
from detector.detections import Detections
from tests.conftest import VTEST, require
from tests.datasets.builders import video_frames
from tests.datasets.reviewed_store import ADMIN, ReviewedStore, make_reviewed_store

# A box on the pavement of vtest.avi (640x480) where nobody stands in frame 100: the "new object".
PILE = Detections(
    xyxy=np.array([[60.0, 380.0, 150.0, 450.0]], np.float32),
    confidence=np.array([0.62], np.float32),
    class_id=np.array([0], np.int64),
)


def recode_and_file(store: ReviewedStore, case_id: int, code: str) -> None:
    with store.sessions.begin() as session:
        case = session.get_one(Case, case_id)
        apply_action(session, case, "recode", ADMIN, settings=store.settings, violation_code=code)
        apply_action(session, case, "file", ADMIN, settings=store.settings)


def export(store: ReviewedStore, out: Path, mapping: ClassMapping) -> Path:
    with store.sessions() as session:
        yaml_path, _ = export_reviewed(
            session,
            store.settings.evidence_dir,
            out,
            mapping=mapping,
            group_by=GroupBy.CASE,
            fractions=(1.0, 0.0, 0.0),
        )
    return yaml_path


def test_a_recoded_unknown_object_is_labelled_with_the_chosen_type(tmp_path: Path) -> None:
    require(VTEST, "apt-get install opencv-doc")
    (frame,) = video_frames(VTEST, [100])
    store = make_reviewed_store(tmp_path / "store", ["unknown_object"])
    case_id = store.report(frame, PILE, place="grid-1", violation="unknown_object")
    with store.sessions() as session:
        assert session.get_one(Case, case_id).violation_code == "9901"
    recode_and_file(store, case_id, "0102")

    spec = read_dataset_yaml(export(store, tmp_path / "ds", default_mapping()))
    (image,) = split_images(spec, "train")
    labels = read_labels(image.parents[2] / "labels" / "train" / f"{image.stem}.txt", len(spec.names))
    assert [spec.names[int(k)] for k in labels.class_id] == ["garbage"]


def test_a_recode_to_a_type_without_one_class_needs_a_mapping(tmp_path: Path) -> None:
    require(VTEST, "apt-get install opencv-doc")
    (frame,) = video_frames(VTEST, [100])
    store = make_reviewed_store(tmp_path / "store", ["unknown_object"])
    recode_and_file(store, store.report(frame, PILE, place="grid-1", violation="unknown_object"), "0505")
    with pytest.raises(ExportError, match=r"'unknown_object' \(illegal_parking, event 0505\).*--mapping"):
        export(store, tmp_path / "ds", default_mapping())
    mapping = default_mapping()
    mapping.violations["illegal_parking"] = {"unknown_object": "car"}
    spec = read_dataset_yaml(export(store, tmp_path / "ds2", mapping))
    (image,) = split_images(spec, "train")
    labels = read_labels(image.parents[2] / "labels" / "train" / f"{image.stem}.txt", len(spec.names))
    assert [spec.names[int(k)] for k in labels.class_id] == ["car"]
