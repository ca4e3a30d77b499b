"""``streetwatch dataset export-reviewed``: operators' review decisions become a YOLO dataset.

Confirmed cases (filed and every later status) give images with their offending boxes labelled; cases
voided as false positives give hard negatives (the same kind of image with an empty label file).

Reads the case store's database directly (SQLAlchemy, the store extra) rather than its HTTP API: an
export touches every reviewed case and its image files, which live in the store's evidence directory,
so it runs beside the store like ``streetwatch api migrate`` and needs no operator token or download.

Which pixels: the daemon uploads per confirmation a ``confirmation`` image (the whole frame, but with
the zone, boxes and a caption drawn on it) and a ``crop`` (a close-up of the most confident box, clean
pixels, persons blurred). ``--images crop`` (default) exports the crops: their place in the frame is
recomputed exactly as the daemon cut them (checked against each crop's size), and every box of the
report that shows in the crop is labelled. ``--images frame`` exports the confirmation frames, whose
drawn overlay a model can learn to rely on: use it only where that matters less than context.

Each image's boxes come from the sighting (device report) it was uploaded with: the latest sighting
received before the image. Only the reported (offending) objects are labelled; other objects in an
image are not, so pick the dataset classes to be the violation classes.

A re-coded case is labelled by the type the operator chose: re-coding (``recode``, kept in the audit trail
as ``{"from", "to", "boxes"}``) changes the case's event code, so a static-change box of class
``unknown_object`` on a case re-coded to 0102 maps through exposed_garbage's ``"*"`` to ``garbage``. A type
with no single class (illegal_parking: car? truck?) needs a ``--mapping`` entry for ``unknown_object``;
the export says so rather than guessing. A case merged away by its re-code is voided as a duplicate: its
sightings, boxes included, moved to the open case it merged into and are exported there.

Splits are a hash of the *incident*: a case and the recurrences linked to it (same place, same
violation) always land in the same split, so near-identical views never leak between train and test.
``--group-by camera`` holds out whole cameras instead.
"""

from __future__ import annotations

import hashlib
import json
import shutil
from collections.abc import Sequence
from dataclasses import dataclass, field
from enum import StrEnum
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import numpy.typing as npt

from datasets.errors import ExportError
from datasets.yolo import SPLITS, Labels, write_dataset_yaml, write_labels, xyxy_to_xywhn
from detector.yaml_lines import load_located_yaml
from pipeline.evidence import CROP_MARGIN, CROP_MIN_PX

if TYPE_CHECKING:
    from sqlalchemy.orm import Session

    from api.models import Case, Evidence, Sighting

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
    """One exported image: where its file is, its labels (empty: a hard negative) and its split group."""

    case_id: int
    evidence_path: Path
    name: str
    labels: Labels
    group: str


@dataclass
class ExportReport:
    images: dict[str, int] = field(default_factory=lambda: dict.fromkeys(SPLITS, 0))
    negatives: dict[str, int] = field(default_factory=lambda: dict.fromkeys(SPLITS, 0))
    boxes_per_class: dict[str, int] = field(default_factory=dict)
    confirmed_cases: int = 0
    rejected_cases: int = 0
    skipped: list[dict[str, Any]] = field(default_factory=list)

    def skip(self, case_id: int, reason: str) -> None:
        self.skipped.append({"case": case_id, "reason": reason})

    def to_json(self) -> dict[str, Any]:
        return {
            "images": self.images,
            "hard_negatives": self.negatives,
            "boxes_per_class": self.boxes_per_class,
            "confirmed_cases": self.confirmed_cases,
            "rejected_cases": self.rejected_cases,
            "skipped_cases": len(self.skipped),
            "skipped": self.skipped,
        }


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
) -> list[Sample]:
    """The images of one reviewed case; problems that only concern this case are recorded as skips."""
    from api.evidence import evidence_path

    sightings = sorted(case.sightings, key=lambda s: (s.received_at, s.id))
    if not sightings:
        report.skip(case.id, "no sighting (not a camera case)")
        return []
    frames = [e for e in case.evidence if e.kind == "confirmation"]
    wanted = frames if source is ImageSource.FRAME else [e for e in case.evidence if e.kind == "crop"]
    if not wanted:
        report.skip(case.id, f"no {'confirmation' if source is ImageSource.FRAME else 'crop'} evidence image")
        return []
    samples = []
    for evidence in wanted:
        path = evidence_path(evidence_dir, evidence.sha256, evidence.content_type)
        if not path.is_file():
            report.skip(
                case.id, f"evidence {evidence.sha256[:12]} is recorded but its file {path} is missing"
            )
            continue
        sighting = _sighting_for(evidence, sightings)
        xyxy, classes = _report_boxes(case, sighting, mapping, violation_type)
        size = (evidence.width, evidence.height)
        if source is ImageSource.CROP:
            placed = _place_crop(case, evidence, sighting, frames, report)
            if placed is None:
                continue
            xyxy, keep = boxes_in_window(xyxy, placed)
            xyxy, classes = xyxy[keep], classes[keep]
        else:
            xyxy = np.clip(xyxy, 0, np.array([size[0], size[1], size[0], size[1]], np.float64))
            inside = ((xyxy[:, 2:] - xyxy[:, :2]) > 1).all(axis=1)
            xyxy, classes = xyxy[inside], classes[inside]
        if negative:
            labels = Labels.empty()
        elif not len(classes):
            report.skip(case.id, f"image {evidence.sha256[:12]}: no box of a dataset class in it")
            continue
        else:
            labels = Labels(classes, xyxy_to_xywhn(xyxy, *size))
        name = f"case{case.id:06d}_{evidence.kind}_{evidence.sha256[:12]}{path.suffix}"
        samples.append(Sample(case.id, path, name, labels, group))
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


def write_dataset(
    samples: list[Sample],
    out_dir: Path,
    classes: list[str],
    fractions: tuple[float, float, float],
    seed: int,
    report: ExportReport,
) -> Path:
    """Copy the images and write labels and ``dataset.yaml``; returns the YAML path."""
    for split in SPLITS:
        (out_dir / "images" / split).mkdir(parents=True, exist_ok=True)
        (out_dir / "labels" / split).mkdir(parents=True, exist_ok=True)
    for sample in samples:
        split = split_of(sample.group, fractions, seed)
        target = out_dir / "images" / split / sample.name
        shutil.copyfile(sample.evidence_path, target)
        write_labels((out_dir / "labels" / split / sample.name).with_suffix(".txt"), sample.labels)
        report.images[split] += 1
        report.negatives[split] += len(sample.labels) == 0
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
        },
    )
    (out_dir / "export-report.json").write_text(json.dumps(report.to_json(), indent=2), encoding="utf-8")
    return yaml_path


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
) -> tuple[Path, ExportReport]:
    """Export every reviewed case of the store behind ``session`` to ``out_dir``; see the module docstring.

    ``strict``: a case that cannot be exported (no evidence, its file missing...) is an error instead of
    a skip listed in the report.
    """
    from sqlalchemy import or_, select
    from sqlalchemy.orm import selectinload

    from api.models import Case, ViolationType

    mapping = mapping or default_mapping()
    _check_fractions(fractions)
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
    roots = incident_roots(session) if group_by is GroupBy.INCIDENT else {}
    report = ExportReport()
    samples: list[Sample] = []
    for case in cases:
        negative = case.status == "voided"
        report.rejected_cases += negative
        report.confirmed_cases += not negative
        group = {
            GroupBy.INCIDENT: f"incident:{roots.get(case.id, case.id)}",
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
    return write_dataset(samples, out_dir, mapping.classes, fractions, seed, report), report


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
