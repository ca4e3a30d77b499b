"""``streetwatch dataset export-reviewed``: operators' review decisions become a YOLO dataset.

Confirmed cases (filed and every later status) give images with their offending boxes labelled; cases
voided as false positives give hard negatives (the same kind of image with an empty label file).

Reads the case store's database directly (SQLAlchemy, the store extra) rather than its HTTP API: an
export touches every reviewed case and its image files, which live in the store's evidence directory,
so it runs beside the store like ``streetwatch api migrate`` and needs no operator token or download.

Which pixels: the daemon uploads per confirmation a ``confirmation`` image (the whole frame, but with
the zone, boxes and a caption drawn on it), a ``crop`` (a close-up of the most confident box, clean
pixels, persons blurred) and, with ``evidence.training_frame`` (default), a ``frame``: the same frame with
nothing drawn on it, every zone of the camera sharp. ``--images frame`` (the command's default) exports
those frames: the scale
and context the daemon's model sees, so a model trained on them finds the objects in the daemon's frames.
In a confirmed case's frame, besides its own boxes, the other real objects in view are labelled (other
cases' boxes at the same moment, as for negatives below, the doubtful ones left out), and so is what the
daemon detected in the frame and sent with it (``evidence.boxes``): a box of a dataset class at or above
``--context-confidence``, and a static change (``unknown_object``) lying where a reviewed case's object
stands (that case's class and box); never where a box voided as a false positive was. A case without such
a frame (uploaded by an older daemon) is skipped: the annotated confirmation picture would teach the
drawing. ``--images crop`` exports the crops: their place in the frame is recomputed exactly as
the daemon cut them (checked against each crop's size), and every box of the report that shows in the
crop is labelled; a crop shows the object larger than the daemon's frames do.

Each image's boxes come from the sighting (device report) it was uploaded with: the latest sighting
received before the image. Only the reported (offending) objects are labelled; other objects in an
image are not, so pick the dataset classes to be the violation classes.

A re-coded case is labelled by the type the operator chose: re-coding (``recode``, kept in the audit trail
as ``{"from", "to", "boxes"}``) changes the case's event code, so a static-change box of class
``unknown_object`` on a case re-coded to 0102 maps through exposed_garbage's ``"*"`` to ``garbage``. A type
with no single class (illegal_parking: car? truck?) needs a ``--mapping`` entry for ``unknown_object``;
the export says so rather than guessing. A case merged away by its re-code is voided as a duplicate: its
sightings, boxes included, moved to the open case it merged into and are exported there.

A case voided as ``false_positive`` is a hard negative only where its own boxes were. ``--images crop``
exports its crop (a close-up of the voided box) with an empty label, unless another case's box shows in
it: a real object there (another case confirmed, or a detection of another class at or above
``--context-confidence`` reported by the same camera at the same time) becomes a label of the crop, and a
doubtful one (a low-confidence box, or one of the voided class that nobody confirmed) drops the crop.
``--images frame`` keeps the frame only with such labels (an empty label over a whole street frame would
teach that the real objects standing in it are background) and drops it otherwise.

Operators draw missed objects on a case's images (api.review_labels: a box normalised to the image and a
violation code). A box drawn over a reported box (at least half of it inside) corrects it: the report's
box is dropped there and in other frames where that object is labelled. Each drawn box becomes a box of
that image, its class mapped from the code as a re-coded ``unknown_object`` box is; a box drawn on a
confirmation frame also labels the undrawn frame of the same moment (and the reverse) and the crop where
it shows, and in ``--images crop`` a drawn box outside the case's crop gets a crop of its own cut from the
frame (the same window arithmetic as the daemon's). A code with no single class is skipped, listed with
the mapping to add.

Splits are a hash of the *group*: connected incidents on one camera. A case, the recurrences linked to it
(same place, same violation) and every case of the same camera whose time on screen overlaps it (so whose
pictures show the same scene) always land in the same split, so near-identical views never leak between
train and test. Groups are deterministic (named by camera and smallest case id). ``--group-by camera``
holds out whole cameras instead; ``--group-by case`` splits case by case (no such guarantee).
"""

from __future__ import annotations

import datetime as dt
import hashlib
import json
import shutil
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field, replace
from enum import StrEnum
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import numpy.typing as npt

from datasets.errors import ExportError
from datasets.yolo import SPLITS, Labels, write_dataset_yaml, write_labels, xyxy_to_xywhn
from detector.boxes import box_inside_batch, box_iou_batch
from detector.yaml_lines import load_located_yaml
from pipeline.config import RedactionConfig
from pipeline.evidence import CROP_MARGIN, CROP_MIN_PX

if TYPE_CHECKING:
    from sqlalchemy.orm import Session

    from api.models import Case, Evidence, ReviewLabel, Sighting

F64 = npt.NDArray[np.float64]

DEFAULT_CLASSES = ["car", "truck", "bus", "motorcycle", "bicycle", "person", "stall", "garbage"]
# A COCO detector reports a stall as umbrella / dining table / chair and garbage as bags or bottles:
# the violation says what the operator confirmed, so every box of those cases is that class.
DEFAULT_VIOLATION_CLASSES: dict[str, dict[str, str | None]] = {
    "street_stall": {"*": "stall"},
    "exposed_garbage": {"*": "garbage"},
}
CONFIRMED_STATUSES = (
    "filed",
    "dispatched",
    "in_progress",
    "resolved",
    "verified",
    "closed",
    "returned",
    "deferred",
)
NEGATIVE_VOID_REASON = "false_positive"
MIN_VISIBLE = 0.25  # a box cut by the crop keeps its label if this share of its area is inside
CONTEXT_CONFIDENCE = 0.5  # another case's unconfirmed box labels a negative's image from this confidence
SAME_MOMENT = dt.timedelta(seconds=5)  # another incident on screen: its seen interval, widened by this
GROUP_GAP = dt.timedelta(seconds=30)  # two incidents of one camera this close in time share a split group
DRAWN_CLASS = "unknown_object"  # a drawn box maps from its code as a re-coded static-change box does
SAME_OBJECT_IOU = 0.5  # a context or drawn box this close to one already labelled is the same object
SAME_PLACE_IOU = 0.3  # a detected static change this close to a reviewed case's box is that object
# A reported or detected box with at least this share of its area inside a box an operator drew on the case
# is that object, corrected: static change boxes what changed inside the zone (a stall's table and its
# shadow, not its umbrella), so the drawn box may be narrower as well as taller.
CORRECTED_SHARE = 0.5


class ImageSource(StrEnum):
    CROP = "crop"
    FRAME = "frame"


class GroupBy(StrEnum):
    INCIDENT = "incident"
    CAMERA = "camera"
    CASE = "case"


# --- class mapping --------------------------------------------------------------------------------------


@dataclass(frozen=True)
class ClassMapping:
    """Dataset classes, and per violation (pipeline type or event code) detector class -> dataset class.

    Lookup order for a box: the event code's map, then the violation type's map, each by the box's class
    name then ``"*"``; then the class name itself if it is a dataset class. A mapped ``None`` drops the box.
    """

    classes: list[str]
    violations: dict[str, dict[str, str | None]] = field(default_factory=dict)

    def class_id(self, class_name: str, violation_type: str, event_code: str, where: str) -> int | None:
        for key in (event_code, violation_type):
            table = self.violations.get(key, {})
            for name in (class_name, "*"):
                if name in table:
                    target = table[name]
                    return None if target is None else self.classes.index(target)
        if class_name in self.classes:
            return self.classes.index(class_name)
        raise ExportError(
            f"{where}: detector class '{class_name}' ({violation_type}, event {event_code}) is not a dataset "
            f"class ({', '.join(self.classes)}); map it in --mapping, e.g. violations: "
            f"{{{violation_type}: {{{class_name}: <class>}}}} (null drops it)"
        )


def default_mapping() -> ClassMapping:
    return ClassMapping(list(DEFAULT_CLASSES), {k: dict(v) for k, v in DEFAULT_VIOLATION_CLASSES.items()})


def load_mapping(path: Path) -> ClassMapping:
    """A mapping file: ``classes: [...]``, ``violations: {type or code: {detector class or '*': class}}``."""
    located = load_located_yaml(path)
    data = located.data

    def where(*key: str | int) -> str:
        line = located.line_of(key)
        return f"{path}:{line}" if line else str(path)

    if not isinstance(data, dict) or set(data) - {"classes", "violations"}:
        raise ExportError(f"{where()}: expected a mapping with 'classes' and optional 'violations'")
    classes = data.get("classes")
    if not isinstance(classes, list) or not classes or not all(isinstance(c, str) and c for c in classes):
        raise ExportError(f"{where('classes')}: classes: expected a non-empty list of class names")
    if len(set(classes)) != len(classes):
        raise ExportError(f"{where('classes')}: classes: a name is listed twice")
    violations = data.get("violations") or {}
    if not isinstance(violations, dict):
        raise ExportError(f"{where('violations')}: violations: expected {{violation: {{class: class}}}}")
    checked: dict[str, dict[str, str | None]] = {}
    for violation, table in violations.items():
        if not isinstance(table, dict):
            raise ExportError(
                f"{where('violations', str(violation))}: {violation}: expected {{class: class}}"
            )
        for source, target in table.items():
            if target is not None and target not in classes:
                raise ExportError(
                    f"{where('violations', str(violation), str(source))}: {violation}.{source}: "
                    f"'{target}' is not one of the classes ({', '.join(classes)})"
                )
        checked[str(violation)] = {str(k): v for k, v in table.items()}
    return ClassMapping(list(classes), checked)


# --- geometry -------------------------------------------------------------------------------------------


def crop_window(xyxy: Sequence[float], frame_wh: tuple[int, int]) -> tuple[int, int, int, int] | None:
    """Where :func:`pipeline.evidence.crop_box` cut the crop of box ``xyxy`` from a frame of ``frame_wh``:
    the same float32 arithmetic, rounding and clipping. None if the box lies outside the frame."""
    x1, y1, x2, y2 = (float(v) for v in xyxy)
    cx, cy = (x1 + x2) / 2, (y1 + y2) / 2
    half_w = max((x2 - x1) * (1 + 2 * CROP_MARGIN), CROP_MIN_PX) / 2
    half_h = max((y2 - y1) * (1 + 2 * CROP_MARGIN), CROP_MIN_PX) / 2
    box = np.round(np.array([cx - half_w, cy - half_h, cx + half_w, cy + half_h], np.float32)).astype(
        np.int64
    )
    width, height = frame_wh
    box[0::2] = box[0::2].clip(0, width)
    box[1::2] = box[1::2].clip(0, height)
    if box[2] <= box[0] or box[3] <= box[1]:
        return None
    return int(box[0]), int(box[1]), int(box[2]), int(box[3])


def boxes_in_window(xyxy: F64, window: tuple[int, int, int, int]) -> tuple[F64, npt.NDArray[np.bool_]]:
    """Boxes shifted into ``window`` and clipped to it, and which keep at least :data:`MIN_VISIBLE`."""
    x0, y0, x1, y1 = window
    shifted = xyxy - np.array([x0, y0, x0, y0], np.float64)
    clipped = np.clip(shifted, 0, np.array([x1 - x0, y1 - y0, x1 - x0, y1 - y0], np.float64))
    area = (xyxy[:, 2:] - xyxy[:, :2]).clip(0).prod(axis=1)
    visible = (clipped[:, 2:] - clipped[:, :2]).clip(0).prod(axis=1)
    return clipped, visible >= MIN_VISIBLE * np.maximum(area, 1e-9)


# --- samples --------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Sample:
    """One exported image: where its file is, its labels (empty: a hard negative) and its split group.

    ``window``: the part of the file to write (a crop cut here, around a drawn box); None: the whole file.
    """

    case_id: int
    evidence_path: Path
    name: str
    labels: Labels
    group: str
    camera: str = ""
    window: tuple[int, int, int, int] | None = None
    drawn: int = 0  # how many of the labels operators drew
    negative: bool = False  # an image of a false positive: its own boxes are background


@dataclass
class Tally:
    """Counts of one split or one camera for the summary table."""

    images: int = 0
    negatives: int = 0
    drawn: int = 0
    boxes: dict[str, int] = field(default_factory=dict)

    def add(self, sample: Sample, classes: list[str]) -> None:
        self.images += 1
        self.negatives += sample.negative
        self.drawn += sample.drawn
        for class_id in sample.labels.class_id.tolist():
            self.boxes[classes[class_id]] = self.boxes.get(classes[class_id], 0) + 1

    def to_json(self) -> dict[str, Any]:
        return {
            "images": self.images,
            "negatives": self.negatives,
            "drawn_labels": self.drawn,
            "boxes": self.boxes,
        }


@dataclass
class ExportReport:
    images: dict[str, int] = field(default_factory=lambda: dict.fromkeys(SPLITS, 0))
    negatives: dict[str, int] = field(default_factory=lambda: dict.fromkeys(SPLITS, 0))
    boxes_per_class: dict[str, int] = field(default_factory=dict)
    confirmed_cases: int = 0
    rejected_cases: int = 0
    negatives_dropped: int = 0
    per_split: dict[str, Tally] = field(default_factory=lambda: {split: Tally() for split in SPLITS})
    per_camera: dict[str, Tally] = field(default_factory=dict)
    skipped: list[dict[str, Any]] = field(default_factory=list)

    def skip(self, case_id: int, reason: str) -> None:
        entry = {"case": case_id, "reason": reason}
        if entry not in self.skipped[-8:]:  # the same drawn label met twice (its crop and its frame)
            self.skipped.append(entry)

    def to_json(self) -> dict[str, Any]:
        return {
            "images": self.images,
            "hard_negatives": self.negatives,
            "boxes_per_class": self.boxes_per_class,
            "drawn_labels": sum(t.drawn for t in self.per_split.values()),
            "negatives_dropped": self.negatives_dropped,
            "confirmed_cases": self.confirmed_cases,
            "rejected_cases": self.rejected_cases,
            "per_split": {k: v.to_json() for k, v in self.per_split.items()},
            "per_camera": {k: v.to_json() for k, v in sorted(self.per_camera.items())},
            "skipped_cases": len(self.skipped),
            "skipped": self.skipped,
        }

    def table(self, classes: list[str]) -> str:
        """The summary: one row per split and per camera, then the total."""
        shown = [c for c in classes if any(t.boxes.get(c) for t in self.per_split.values())]
        head: list[str | int] = ["", "images", "negatives", "drawn", *shown]
        rows: list[list[str | int]] = [
            [f"split {k}", *self._cells(v, shown)] for k, v in self.per_split.items()
        ]
        rows += [[f"camera {k}", *self._cells(v, shown)] for k, v in sorted(self.per_camera.items())]
        total = Tally()
        for tally in self.per_split.values():
            total.images += tally.images
            total.negatives += tally.negatives
            total.drawn += tally.drawn
            for name, count in tally.boxes.items():
                total.boxes[name] = total.boxes.get(name, 0) + count
        rows.append(["total", *self._cells(total, shown)])
        widths = [max(len(str(row[i])) for row in [head, *rows]) for i in range(len(head))]
        lines = [
            "  ".join(
                str(cell).rjust(w) if i else str(cell).ljust(w)
                for i, (cell, w) in enumerate(zip(row, widths, strict=True))
            )
            for row in [head, *rows]
        ]
        lines.append(
            "boxes per class; negatives: images of false positives (their own boxes unlabelled); "
            f"drawn: boxes operators drew. {self.negatives_dropped} false-positive image(s) dropped "
            f"(other objects in them could not be labelled), {len(self.skipped)} skip(s): export-report.json"
        )
        return "\n".join(lines)

    @staticmethod
    def _cells(tally: Tally, shown: list[str]) -> list[int]:
        return [tally.images, tally.negatives, tally.drawn, *(tally.boxes.get(c, 0) for c in shown)]


def _sighting_for(evidence: Evidence, sightings: list[Sighting]) -> Sighting:
    """The report an image was uploaded with: the latest sighting received at or before it."""
    before = [s for s in sightings if s.received_at <= evidence.created_at]
    return before[-1] if before else sightings[0]


def _report_boxes(
    case: Case, sighting: Sighting, mapping: ClassMapping, violation_type: str
) -> tuple[F64, npt.NDArray[np.int64]]:
    """The sighting's boxes (frame pixels) that map to a dataset class, and their class ids."""
    xyxy, classes = [], []
    for index, box in enumerate(sighting.boxes or []):
        where = f"case {case.id} sighting {sighting.id} box {index}"
        if not isinstance(box, dict) or "xyxy" not in box or "class_name" not in box:
            raise ExportError(f"{where}: expected {{xyxy, class_name, ...}}, found {str(box)[:80]}")
        class_id = mapping.class_id(str(box["class_name"]), violation_type, case.violation_code, where)
        if class_id is not None:
            xyxy.append([float(v) for v in box["xyxy"]])
            classes.append(class_id)
    return np.array(xyxy, np.float64).reshape(-1, 4), np.array(classes, np.int64)


# --- what else stands in a false positive's picture -----------------------------------------------------


@dataclass(frozen=True)
class SceneBox:
    """A box another case's report named: on screen from ``start`` to ``end`` on its camera."""

    case_id: int
    xyxy: tuple[float, float, float, float]
    class_id: int | None  # None: the mapping drops it (not a dataset class)
    mappable: bool  # False: no class for it without a --mapping entry (a doubtful object)
    confidence: float
    confirmed: bool
    start: dt.datetime
    end: dt.datetime
    ended: bool = True  # False: the incident never ended (it may stand in view after ``end``)
    voided: bool = False  # voided as a false positive: a hard negative where it was, never a label


def scene_boxes(
    session: Session, cameras: Iterable[str], mapping: ClassMapping, types: dict[str, str]
) -> dict[str, list[SceneBox]]:
    """Per camera, every box reported by a case (those voided as false positives marked ``voided``)."""
    from sqlalchemy import select

    from api.models import Case, Sighting

    wanted = sorted(set(cameras))
    scene: dict[str, list[SceneBox]] = {camera: [] for camera in wanted}
    if not wanted:
        return scene
    rows = session.execute(
        select(Sighting, Case.status, Case.void_reason, Case.violation_code)
        .join(Case, Sighting.case_id == Case.id)
        .where(Sighting.camera_code.in_(wanted))
    ).all()
    for sighting, status, void_reason, code in rows:
        voided = status == "voided" and void_reason == NEGATIVE_VOID_REASON
        start = sighting.first_seen_at or sighting.confirmed_at or sighting.received_at
        end = max(t for t in (start, sighting.confirmed_at, sighting.last_seen_at, sighting.ended_at) if t)
        for box in sighting.boxes or []:
            if not isinstance(box, dict) or "xyxy" not in box:
                continue
            try:
                class_id = mapping.class_id(str(box.get("class_name")), types.get(code, code), code, "")
                mappable = True
            except ExportError:
                class_id, mappable = None, False
            xyxy = tuple(float(v) for v in box["xyxy"])
            scene[str(sighting.camera_code)].append(
                SceneBox(
                    sighting.case_id,
                    (xyxy[0], xyxy[1], xyxy[2], xyxy[3]),
                    class_id,
                    mappable,
                    float(box.get("confidence", 0.0)),
                    status in CONFIRMED_STATUSES,
                    start,
                    end,
                    ended=sighting.ended_at is not None,
                    voided=voided,
                )
            )
    return scene


def negative_context(
    case: Case,
    sighting: Sighting,
    window: tuple[int, int, int, int],
    own_classes: set[int],
    scene: list[SceneBox],
    min_confidence: float,
    *,
    skip_doubtful: bool = False,
) -> tuple[F64, npt.NDArray[np.int64], str | None]:
    """Boxes of real objects in ``window`` (frame pixels) of a case's picture, shifted into the window, and
    why the picture must be dropped (a doubtful object in it), or None. ``skip_doubtful``: leave doubtful
    objects out instead (a confirmed case's frame keeps its own labels whatever else stands in it)."""
    moment = sighting.confirmed_at or sighting.received_at
    near = [
        b
        for b in scene
        if b.case_id != case.id and not b.voided and b.start - SAME_MOMENT <= moment <= b.end + SAME_MOMENT
    ]
    if not near:
        return np.zeros((0, 4), np.float64), np.zeros((0,), np.int64), None
    shifted, visible = boxes_in_window(np.array([b.xyxy for b in near], np.float64), window)
    xyxy, classes = [], []
    for box, inside, place in zip(near, visible.tolist(), shifted, strict=True):
        if not inside or (box.mappable and box.class_id is None):
            continue
        real = box.mappable and (
            box.confirmed or (box.confidence >= min_confidence and box.class_id not in own_classes)
        )
        if not real and skip_doubtful:
            continue
        if not real:
            return (
                np.zeros((0, 4), np.float64),
                np.zeros((0,), np.int64),
                f"case {box.case_id}'s box {[round(v) for v in box.xyxy]} (confidence {box.confidence:.2f}) "
                "stands in it and cannot be labelled with confidence",
            )
        xyxy.append(place)
        classes.append(int(box.class_id))  # type: ignore[arg-type]
    return np.array(xyxy, np.float64).reshape(-1, 4), np.array(classes, np.int64), None


def _new_boxes(
    extra: tuple[F64, npt.NDArray[np.int64]], known: F64, max_iou: float = SAME_OBJECT_IOU
) -> tuple[F64, npt.NDArray[np.int64]]:
    """The boxes of ``extra`` that are not already among ``known`` (IoU above ``max_iou``): the same object
    reported by two cases is labelled once."""
    xyxy, classes = extra
    if not len(xyxy) or not len(known):
        return xyxy, classes
    keep = box_iou_batch(xyxy, known).max(axis=1) <= max_iou
    return xyxy[keep], classes[keep]


def detected_boxes(
    evidence: Evidence,
    moment: dt.datetime,
    own: F64,
    scene: list[SceneBox],
    mapping: ClassMapping,
    min_confidence: float,
) -> tuple[F64, npt.NDArray[np.int64]]:
    """What the daemon detected in a training frame (``evidence.boxes``, sent with it), as labels: a model
    class that is a dataset class, at or above ``min_confidence``; a static change (``unknown_object``)
    where a confirmed case of this camera had its box while that incident stood (the class its review
    gave). Never where the case's ``own`` boxes or a box voided as a false positive at that moment are:
    those stay hard negatives. Anything else (a doubtful object) is left out."""
    detected = [box for box in evidence.boxes or [] if isinstance(box, dict) and "xyxy" in box]
    if not detected:
        return np.zeros((0, 4), np.float64), np.zeros((0,), np.int64)
    xyxy = np.array([[float(v) for v in box["xyxy"]] for box in detected], np.float64).reshape(-1, 4)
    standing = [
        b for b in scene if b.start - SAME_MOMENT <= moment and (not b.ended or moment <= b.end + SAME_MOMENT)
    ]
    voided = np.array([b.xyxy for b in standing if b.voided], np.float64).reshape(-1, 4)
    confirmed = [b for b in standing if b.confirmed and b.class_id is not None]
    confirmed_xyxy = np.array([b.xyxy for b in confirmed], np.float64).reshape(-1, 4)
    negative = np.concatenate([own.reshape(-1, 4), voided])
    overlaps_negative = (
        box_iou_batch(xyxy, negative).max(axis=1) > SAME_PLACE_IOU
        if len(negative)
        else np.zeros(len(xyxy), bool)
    )
    if confirmed:  # the same place: overlapping enough, or lying inside the reviewed (corrected) box
        place = np.maximum(
            box_iou_batch(xyxy, confirmed_xyxy) / SAME_PLACE_IOU,
            box_inside_batch(xyxy, confirmed_xyxy) / CORRECTED_SHARE,
        )
    labels: list[list[float]] = []
    classes: list[int] = []
    matched: set[int] = set()
    for index, box in enumerate(detected):
        if overlaps_negative[index]:
            continue
        name = str(box.get("class_name"))
        if name == DRAWN_CLASS:  # a static change: only where a reviewed case says what it is
            if not confirmed or place[index].max() < 1.0:
                continue
            best = int(place[index].argmax())
            if best not in matched:  # a standing object: its reviewed box, labelled once
                matched.add(best)
                labels.append(list(confirmed[best].xyxy))
                classes.append(int(confirmed[best].class_id))  # type: ignore[arg-type]
        elif float(box.get("confidence", 0.0)) >= min_confidence:
            try:
                class_id = mapping.class_id(name, "", "", "")
            except ExportError:
                continue  # no dataset class without a mapping entry: left out
            if class_id is not None:
                labels.append(xyxy[index].tolist())
                classes.append(class_id)
    return np.array(labels, np.float64).reshape(-1, 4), np.array(classes, np.int64)


def _redrawn_by(xyxy: F64, drawn: F64) -> npt.NDArray[np.intp]:
    """Per box of ``xyxy``, the drawn box that redraws it (``CORRECTED_SHARE`` of it inside), or -1."""
    if not len(xyxy) or not len(drawn):
        return np.full(len(xyxy), -1, np.intp)
    inside = box_inside_batch(xyxy, drawn)
    best = inside.argmax(axis=1)
    return np.where(inside[np.arange(len(xyxy)), best] >= CORRECTED_SHARE, best, -1)


def corrected(own: tuple[F64, npt.NDArray[np.int64]], drawn: F64) -> tuple[F64, npt.NDArray[np.int64]]:
    """``own`` without the boxes an operator redrew: each at least half inside a drawn box (the drawn box,
    labelled besides, is the object; the reported one a part of it)."""
    xyxy, classes = own
    keep = _redrawn_by(xyxy, drawn) < 0
    return xyxy[keep], classes[keep]


def correct_scene(
    scene: dict[str, list[SceneBox]], cases: Sequence[Case], drawn: dict[int, list[ReviewLabel]]
) -> dict[str, list[SceneBox]]:
    """``scene`` with each case's reported boxes that an operator redrew on one of its whole-frame pictures
    (:func:`corrected`) replaced by the drawn box: where that object stood, for the other frames."""
    redraws: dict[int, F64] = {}
    for case in cases:
        pixels = [
            label_px(label, e.width, e.height)
            for e in case.evidence
            if e.kind in ("frame", "confirmation")
            for label in drawn.get(e.id, [])
        ]
        if pixels:
            redraws[case.id] = np.array(pixels, np.float64)
    if not redraws:
        return scene
    fixed: dict[str, list[SceneBox]] = {}
    for camera, boxes in scene.items():
        fixed[camera] = []
        for box in boxes:
            drawn_here = redraws.get(box.case_id)
            if drawn_here is not None:
                best = int(_redrawn_by(np.array([box.xyxy], np.float64), drawn_here)[0])
                if best >= 0:
                    x1, y1, x2, y2 = (float(v) for v in drawn_here[best])
                    box = replace(box, xyxy=(x1, y1, x2, y2))
            fixed[camera].append(box)
    return fixed


# --- boxes drawn by operators ---------------------------------------------------------------------------


def label_px(label: ReviewLabel, width: float, height: float) -> list[float]:
    """A drawn label's box (stored normalised to its image) in pixels of a ``width`` x ``height`` image."""
    return [label.x1 * width, label.y1 * height, label.x2 * width, label.y2 * height]


def drawn_boxes(
    case: Case,
    labels: list[ReviewLabel],
    size: tuple[int, int],
    mapping: ClassMapping,
    types: dict[str, str],
    report: ExportReport,
) -> tuple[F64, npt.NDArray[np.int64]]:
    """Drawn labels of one image in its pixels (``size``), with their classes mapped from their codes."""
    xyxy, classes = [], []
    width, height = size
    for label in labels:
        where = f"case {case.id} drawn label {label.id} (event {label.event_code})"
        try:
            class_id = mapping.class_id(
                DRAWN_CLASS, types.get(label.event_code, label.event_code), label.event_code, where
            )
        except ExportError as error:
            report.skip(case.id, f"{error}")
            continue
        if class_id is None:
            continue
        xyxy.append(label_px(label, width, height))
        classes.append(class_id)
    return np.array(xyxy, np.float64).reshape(-1, 4), np.array(classes, np.int64)


@dataclass(frozen=True)
class CaseContext:
    """What a case's export needs besides the case: its drawn labels and the boxes around it."""

    types: dict[str, str]
    drawn: dict[int, list[ReviewLabel]]  # evidence id -> labels drawn on it
    scene: dict[str, list[SceneBox]]
    min_confidence: float = CONTEXT_CONFIDENCE


def _join(*parts: tuple[F64, npt.NDArray[np.int64]]) -> tuple[F64, npt.NDArray[np.int64]]:
    return (
        np.concatenate([p[0] for p in parts]).reshape(-1, 4),
        np.concatenate([p[1] for p in parts]).astype(np.int64),
    )


def case_samples(
    case: Case,
    *,
    violation_type: str,
    negative: bool,
    mapping: ClassMapping,
    source: ImageSource,
    evidence_dir: Path,
    group: str,
    report: ExportReport,
    context: CaseContext | None = None,
) -> list[Sample]:
    """The images of one reviewed case; problems that only concern this case are recorded as skips."""
    from api.evidence import evidence_path

    context = context or CaseContext({}, {}, {})
    sightings = sorted(case.sightings, key=lambda s: (s.received_at, s.id))
    if not sightings:
        report.skip(case.id, "no sighting (not a camera case)")
        return []
    frames = [e for e in case.evidence if e.kind == "confirmation"]
    clean = [e for e in case.evidence if e.kind == "frame"]
    wanted = clean if source is ImageSource.FRAME else [e for e in case.evidence if e.kind == "crop"]
    drawn_frames = [e for e in case.evidence if e.kind != "crop" and context.drawn.get(e.id)]
    if not wanted and not (source is ImageSource.CROP and drawn_frames):
        missing = (
            "no undrawn frame (evidence kind 'frame', uploaded by daemons with evidence.training_frame): "
            "confirmation pictures have the zone and boxes drawn on them"
            if source is ImageSource.FRAME
            else "no crop evidence image"
        )
        report.skip(case.id, missing)
        return []
    camera = case.camera_code or ""
    samples = []
    covered: set[int] = set()  # drawn labels already in an exported image
    for evidence in wanted:
        path = evidence_path(evidence_dir, evidence.sha256, evidence.content_type)
        if not path.is_file():
            report.skip(
                case.id, f"evidence {evidence.sha256[:12]} is recorded but its file {path} is missing"
            )
            continue
        sighting = _sighting_for(evidence, sightings)
        xyxy, classes = _report_boxes(case, sighting, mapping, violation_type)
        own = set(classes.tolist())
        size = (evidence.width, evidence.height)
        on_image = context.drawn.get(evidence.id, [])
        drawn = drawn_boxes(case, on_image, size, mapping, context.types, report)
        covered |= {label.id for label in on_image}
        if source is ImageSource.CROP:
            placed = _place_crop(case, evidence, sighting, frames, report)
            if placed is None:
                continue
            window = placed
            xyxy, keep = boxes_in_window(xyxy, placed)
            xyxy, classes = xyxy[keep], classes[keep]
            frame = _frame_of(evidence, frames)
            # boxes drawn on the confirmation frame or on the undrawn frame of the same moment
            for whole in [frame, _twin(frame, clean)] if frame is not None else []:
                if whole is None or not context.drawn.get(whole.id):
                    continue
                on_frame = context.drawn[whole.id]
                frame_drawn = drawn_boxes(
                    case, on_frame, (whole.width, whole.height), mapping, context.types, report
                )
                shifted, keep = boxes_in_window(frame_drawn[0], placed)
                drawn = _join(drawn, (shifted[keep], frame_drawn[1][keep]))
                covered |= {
                    label.id
                    for label, k in zip(on_frame, _visible_ids(on_frame, whole, placed), strict=True)
                    if k
                }
        else:
            window = (0, 0, size[0], size[1])
            xyxy = np.clip(xyxy, 0, np.array([size[0], size[1], size[0], size[1]], np.float64))
            inside = ((xyxy[:, 2:] - xyxy[:, :2]) > 1).all(axis=1)
            xyxy, classes = xyxy[inside], classes[inside]
            # boxes drawn on the confirmation picture of the same moment label this frame too
            twin = _twin(evidence, frames)
            if twin is not None and context.drawn.get(twin.id):
                on_twin = context.drawn[twin.id]
                drawn = _join(drawn, drawn_boxes(case, on_twin, size, mapping, context.types, report))
                covered |= {label.id for label in on_twin}
        detected = (np.zeros((0, 4), np.float64), np.zeros((0,), np.int64))
        if source is ImageSource.FRAME:  # what the daemon detected in the frame, sent with it
            detected = detected_boxes(
                evidence,
                sighting.confirmed_at or sighting.received_at,
                xyxy,
                context.scene.get(camera, []),
                mapping,
                context.min_confidence,
            )
        if negative:
            others, other_classes, doubt = negative_context(
                case, sighting, window, own, context.scene.get(camera, []), context.min_confidence
            )
            labelled = _join((others, other_classes), drawn)
            labelled = _join(labelled, _new_boxes(detected, labelled[0]))
            if doubt is None and source is ImageSource.FRAME and not len(labelled[1]):
                doubt = "no other object in the frame could be labelled (never an empty label over a frame)"
            if doubt is not None:
                report.negatives_dropped += 1
                report.skip(
                    case.id, f"false positive's {evidence.kind} {evidence.sha256[:12]} dropped: {doubt}"
                )
                continue
            xyxy, classes = labelled
        else:
            xyxy, classes = corrected((xyxy, classes), drawn[0])
            xyxy, classes = _join((xyxy, classes), _new_boxes(drawn, xyxy))
            if source is ImageSource.FRAME:  # the other real objects in view, so they are not background
                others, other_classes, _ = negative_context(
                    case,
                    sighting,
                    window,
                    set(),
                    context.scene.get(camera, []),
                    context.min_confidence,
                    skip_doubtful=True,
                )
                xyxy, classes = _join((xyxy, classes), _new_boxes((others, other_classes), xyxy))
                xyxy, classes = _join((xyxy, classes), _new_boxes(detected, xyxy))
            if not len(classes):
                report.skip(case.id, f"image {evidence.sha256[:12]}: no box of a dataset class in it")
                continue
        ndrawn = len(drawn[1])
        labels = Labels(classes, xyxy_to_xywhn(xyxy, *size)) if len(classes) else Labels.empty()
        name = f"case{case.id:06d}_{evidence.kind}_{evidence.sha256[:12]}{path.suffix}"
        samples.append(Sample(case.id, path, name, labels, group, camera, drawn=ndrawn, negative=negative))
    if source is ImageSource.CROP:
        samples += _drawn_crops(
            case,
            drawn_frames,
            covered,
            negative,
            mapping,
            evidence_dir,
            group,
            report,
            context,
            violation_type,
        )
    return samples


def _frame_of(crop: Evidence, frames: list[Evidence]) -> Evidence | None:
    return (
        min(frames, key=lambda f: abs((f.created_at - crop.created_at).total_seconds())) if frames else None
    )


def _twin(image: Evidence | None, others: list[Evidence]) -> Evidence | None:
    """The picture of ``others`` taken at the same moment as ``image`` (the undrawn frame of a confirmation
    picture or the reverse): uploaded with it, of the same size."""
    if image is None:
        return None
    same = [e for e in others if (e.width, e.height) == (image.width, image.height)]
    return _frame_of(image, same)


def _visible_ids(labels: list[ReviewLabel], frame: Evidence, window: tuple[int, int, int, int]) -> list[bool]:
    if not labels:
        return []
    xyxy = np.array([label_px(label, frame.width, frame.height) for label in labels])
    return [bool(v) for v in boxes_in_window(xyxy, window)[1]]


def _drawn_crops(
    case: Case,
    frames: list[Evidence],
    covered: set[int],
    negative: bool,
    mapping: ClassMapping,
    evidence_dir: Path,
    group: str,
    report: ExportReport,
    context: CaseContext,
    violation_type: str,
) -> list[Sample]:
    """In crop mode, a crop cut from the frame around each drawn box no exported crop shows, labelled with
    every drawn box and (for a confirmed case) every reported box that shows in it; for a false positive,
    the other objects around it decide as for its own crop (labelled, or the crop is dropped)."""
    from api.evidence import evidence_path

    sightings = sorted(case.sightings, key=lambda s: (s.received_at, s.id))
    samples = []
    for frame in frames:
        labels = context.drawn.get(frame.id, [])
        path = evidence_path(evidence_dir, frame.sha256, frame.content_type)
        if not path.is_file():
            continue
        size = (frame.width, frame.height)
        all_drawn = drawn_boxes(case, labels, size, mapping, context.types, report)
        sighting = _sighting_for(frame, sightings)
        reported = _report_boxes(case, sighting, mapping, violation_type)
        for label in labels:
            if label.id in covered:
                continue
            if not len(drawn_boxes(case, [label], size, mapping, context.types, ExportReport())[1]):
                continue  # its code maps to no class (listed once already)
            xyxy = label_px(label, *size)
            window = crop_window(xyxy, size)
            if window is None:
                continue
            shifted, keep = boxes_in_window(all_drawn[0], window)
            found = (shifted[keep], all_drawn[1][keep])
            if negative:
                own = set(reported[1].tolist())
                others, other_classes, doubt = negative_context(
                    case,
                    sighting,
                    window,
                    own,
                    context.scene.get(case.camera_code or "", []),
                    context.min_confidence,
                )
                if doubt is not None:
                    report.negatives_dropped += 1
                    report.skip(case.id, f"crop around drawn label {label.id} dropped: {doubt}")
                    continue
                xyxy_all, classes = _join(found, (others, other_classes))
            else:
                in_crop, visible = boxes_in_window(reported[0], window)
                xyxy_all, classes = _join(found, (in_crop[visible], reported[1][visible]))
            covered |= {lb.id for lb, k in zip(labels, _visible_ids(labels, frame, window), strict=True) if k}
            w, h = window[2] - window[0], window[3] - window[1]
            boxes = Labels(classes, xyxy_to_xywhn(xyxy_all, w, h))
            name = f"case{case.id:06d}_drawn{label.id:06d}_{frame.sha256[:12]}{path.suffix}"
            camera = case.camera_code or ""
            samples.append(
                Sample(case.id, path, name, boxes, group, camera, window, int(keep.sum()), negative)
            )
    return samples


def _place_crop(
    case: Case, crop: Evidence, sighting: Sighting, frames: list[Evidence], report: ExportReport
) -> tuple[int, int, int, int] | None:
    """The crop's window in its frame, recomputed from the sighting's most confident box."""
    boxes = [b for b in sighting.boxes or [] if isinstance(b, dict) and "xyxy" in b]
    if not boxes or not frames:
        report.skip(case.id, f"crop {crop.sha256[:12]}: no boxes or no confirmation frame to place it in")
        return None
    frame = min(frames, key=lambda f: abs((f.created_at - crop.created_at).total_seconds()))
    best = int(np.argmax([float(b.get("confidence", 0.0)) for b in boxes]))
    window = crop_window(boxes[best]["xyxy"], (frame.width, frame.height))
    if window is None or (window[2] - window[0], window[3] - window[1]) != (crop.width, crop.height):
        report.skip(
            case.id, f"crop {crop.sha256[:12]} ({crop.width}x{crop.height}) does not match its report"
        )
        return None
    return window


# --- splits and writing ---------------------------------------------------------------------------------


def split_of(group: str, fractions: tuple[float, float, float], seed: int = 0) -> str:
    """train / val / test by a hash of ``group``: stable across runs, machines and store sizes."""
    digest = hashlib.sha256(f"{seed}:{group}".encode()).digest()
    u = int.from_bytes(digest[:8], "big") / 2**64
    if u < fractions[0]:
        return "train"
    return "val" if u < fractions[0] + fractions[1] else "test"


def incident_roots(session: Session) -> dict[int, int]:
    """case id -> the first case of its recurrence chain (a case that recurs no other is its own root)."""
    from sqlalchemy import select

    from api.models import Case

    parent = {case_id: root for case_id, root in session.execute(select(Case.id, Case.recurrence_of_id))}
    roots: dict[int, int] = {}
    for case_id in parent:
        seen: list[int] = []
        current = case_id
        while parent.get(current) is not None and current not in roots and len(seen) < 10_000:
            seen.append(current)
            current = int(parent[current])  # type: ignore[arg-type]
        root = roots.get(current, current)
        for visited in [*seen, case_id]:
            roots[visited] = root
    return roots


def _seen(case: Case) -> tuple[dt.datetime, dt.datetime]:
    """When a case's scene was on screen: first seen to last seen (or ended, or confirmed)."""
    start = case.first_seen_at or case.confirmed_at or case.created_at
    end = max(t for t in (start, case.confirmed_at, case.last_seen_at, case.ended_at) if t is not None)
    return start, end


def incident_groups(cases: Sequence[Case], roots: dict[int, int]) -> dict[int, str]:
    """case id -> its split group: connected incidents on one camera.

    Two cases are connected when one recurs the other (same recurrence chain) or when they are on the same
    camera and their times on screen overlap or lie within :data:`GROUP_GAP` (their pictures show the same
    scene). A group is named by its smallest case's camera and id, so the same store gives the same groups.
    """
    parent: dict[int, int] = {}

    def find(x: int) -> int:
        parent.setdefault(x, x)
        while parent[x] != x:
            parent[x] = parent[parent[x]]
            x = parent[x]
        return x

    def union(a: int, b: int) -> None:
        ra, rb = find(a), find(b)
        if ra != rb:
            parent[max(ra, rb)] = min(ra, rb)

    by_camera: dict[str, list[tuple[dt.datetime, dt.datetime, int]]] = {}
    for case in cases:
        union(case.id, roots.get(case.id, case.id))
        start, end = _seen(case)
        by_camera.setdefault(case.camera_code or "", []).append((start, end, case.id))
    for spans in by_camera.values():
        spans.sort()
        reach: dt.datetime | None = None
        previous = 0
        for start, end, case_id in spans:
            if reach is not None and start <= reach + GROUP_GAP:
                union(previous, case_id)
                reach = max(reach, end)
            else:
                reach = end
            previous = case_id
    camera = {case.id: case.camera_code or "-" for case in cases}
    groups: dict[int, str] = {}
    for case in cases:
        first = find(case.id)  # union keeps the smallest id as the root
        groups[case.id] = f"camera:{camera.get(first, camera[case.id])}:incident:{first}"
    return groups


def write_dataset(
    samples: list[Sample],
    out_dir: Path,
    classes: list[str],
    fractions: tuple[float, float, float],
    seed: int,
    report: ExportReport,
    blurred_outside_zones: float | None = None,
) -> Path:
    """Copy the images and write labels and ``dataset.yaml``; returns the YAML path.
    ``blurred_outside_zones``: the images are whole frames redacted outside their camera's zones with this
    blur (a share of the shorter side), recorded for ``streetwatch train`` to put in the model's card."""
    for split in SPLITS:
        (out_dir / "images" / split).mkdir(parents=True, exist_ok=True)
        (out_dir / "labels" / split).mkdir(parents=True, exist_ok=True)
    for sample in samples:
        split = split_of(sample.group, fractions, seed)
        target = out_dir / "images" / split / sample.name
        if sample.window is None:
            shutil.copyfile(sample.evidence_path, target)
        else:
            _write_window(sample.evidence_path, sample.window, target)
        write_labels((out_dir / "labels" / split / sample.name).with_suffix(".txt"), sample.labels)
        report.images[split] += 1
        report.negatives[split] += sample.negative
        report.per_split[split].add(sample, classes)
        report.per_camera.setdefault(sample.camera or "-", Tally()).add(sample, classes)
        for class_id in sample.labels.class_id.tolist():
            report.boxes_per_class[classes[class_id]] = report.boxes_per_class.get(classes[class_id], 0) + 1
    yaml_path = out_dir / "dataset.yaml"
    write_dataset_yaml(
        yaml_path,
        classes,
        {split: f"images/{split}" for split in SPLITS},
        {
            "source": "streetwatch dataset export-reviewed",
            "split_fractions": list(fractions),
            "split_seed": seed,
            **({"blurred_outside_zones": blurred_outside_zones} if blurred_outside_zones else {}),
        },
    )
    (out_dir / "export-report.json").write_text(json.dumps(report.to_json(), indent=2), encoding="utf-8")
    return yaml_path


def _write_window(source: Path, window: tuple[int, int, int, int], target: Path) -> None:
    import cv2

    image = cv2.imread(str(source), cv2.IMREAD_COLOR)
    if image is None:
        raise ExportError(f"{source}: cannot read the image to cut a crop from")
    x0, y0, x1, y1 = window
    if not cv2.imwrite(str(target), image[y0:y1, x0:x1]):
        raise ExportError(f"{target}: cannot write the crop")


# --- the export -----------------------------------------------------------------------------------------


def export_reviewed(
    session: Session,
    evidence_dir: Path,
    out_dir: Path,
    *,
    mapping: ClassMapping | None = None,
    source: ImageSource = ImageSource.CROP,
    group_by: GroupBy = GroupBy.INCIDENT,
    fractions: tuple[float, float, float] = (0.8, 0.1, 0.1),
    seed: int = 0,
    strict: bool = False,
    context_confidence: float = CONTEXT_CONFIDENCE,
) -> tuple[Path, ExportReport]:
    """Export every reviewed case of the store behind ``session`` to ``out_dir``; see the module docstring.

    ``strict``: a case that cannot be exported (no evidence, its file missing...) is an error instead of
    a skip listed in the report. ``context_confidence``: from which confidence another case's unconfirmed
    box of another class labels a false positive's picture.
    """
    from sqlalchemy import or_, select
    from sqlalchemy.orm import selectinload

    from api.models import Case, ReviewLabel, ViolationType

    mapping = mapping or default_mapping()
    _check_fractions(fractions)
    if not 0 <= context_confidence <= 1:
        raise ExportError(f"--context-confidence {context_confidence}: expected a confidence in 0..1")
    if out_dir.exists() and any(out_dir.iterdir()):
        raise ExportError(f"{out_dir}: exists and is not empty; export into a new folder")
    types = {
        code: kind for code, kind in session.execute(select(ViolationType.code, ViolationType.pipeline_type))
    }
    cases = session.scalars(
        select(Case)
        .where(
            or_(
                Case.status.in_(CONFIRMED_STATUSES),
                (Case.status == "voided") & (Case.void_reason == NEGATIVE_VOID_REASON),
            )
        )
        .options(selectinload(Case.sightings), selectinload(Case.evidence))
        .order_by(Case.id)
    ).all()
    groups = incident_groups(cases, incident_roots(session)) if group_by is GroupBy.INCIDENT else {}
    drawn: dict[int, list[ReviewLabel]] = {}
    case_ids = [case.id for case in cases]
    for start in range(0, len(case_ids), 1000):
        for label in session.scalars(
            select(ReviewLabel)
            .where(ReviewLabel.case_id.in_(case_ids[start : start + 1000]))
            .order_by(ReviewLabel.id)
        ):
            drawn.setdefault(label.evidence_id, []).append(label)
    # whose pictures need the other objects in view: false positives', and in frame mode every case's
    context_cameras = {
        case.camera_code
        for case in cases
        if (case.status == "voided" or source is ImageSource.FRAME) and case.camera_code is not None
    }
    scene = correct_scene(scene_boxes(session, context_cameras, mapping, types), cases, drawn)
    context = CaseContext(types, drawn, scene, context_confidence)
    report = ExportReport()
    samples: list[Sample] = []
    for case in cases:
        negative = case.status == "voided"
        report.rejected_cases += negative
        report.confirmed_cases += not negative
        group = {
            GroupBy.INCIDENT: groups.get(case.id, f"case:{case.id}"),
            GroupBy.CAMERA: f"camera:{case.camera_code}",
            GroupBy.CASE: f"case:{case.id}",
        }[group_by]
        samples += case_samples(
            case,
            violation_type=types.get(case.violation_code, case.violation_code),
            negative=negative,
            mapping=mapping,
            source=source,
            evidence_dir=evidence_dir,
            group=group,
            report=report,
            context=context,
        )
    if strict and report.skipped:
        first = report.skipped[0]
        raise ExportError(
            f"case {first['case']}: {first['reason']} ({len(report.skipped)} case image(s) cannot be "
            "exported; without --strict they are skipped and listed in export-report.json)"
        )
    if not any(len(sample.labels) for sample in samples):
        raise ExportError(
            f"nothing to export: no labelled image from {report.confirmed_cases} confirmed and "
            f"{report.rejected_cases} rejected "
            f"(voided as {NEGATIVE_VOID_REASON}) case(s) found"
            + (
                f"; skipped: {report.skipped[0]['reason']} (case {report.skipped[0]['case']})"
                if report.skipped
                else ""
            )
        )
    # undrawn frames are sharp only inside their camera's zones under the default redaction
    # (outside_violation); a model learns that, so its card will ask the daemon for the same blur
    blur = RedactionConfig().outside_blur if source is ImageSource.FRAME else None
    return write_dataset(samples, out_dir, mapping.classes, fractions, seed, report, blur), report


def _check_fractions(fractions: tuple[float, float, float]) -> None:
    if len(fractions) != 3 or any(f < 0 for f in fractions) or abs(sum(fractions) - 1) > 1e-6:
        raise ExportError(
            f"split fractions must be three numbers >= 0 summing to 1 (train,val,test), got {fractions}"
        )


def parse_fractions(text: str) -> tuple[float, float, float]:
    try:
        values = tuple(float(v) for v in text.split(","))
    except ValueError:
        raise ExportError(f"--split {text!r}: expected three fractions like 0.8,0.1,0.1") from None
    if len(values) != 3:
        raise ExportError(f"--split {text!r}: expected three fractions like 0.8,0.1,0.1")
    fractions = (values[0], values[1], values[2])
    _check_fractions(fractions)
    return fractions
