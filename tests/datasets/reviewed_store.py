"""A real case store with reviewed camera cases whose evidence is real footage, rendered by the daemon's
own evidence code (annotated confirmation frame and crop), for the export tests."""

from __future__ import annotations

import datetime as dt
import json
import uuid
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import cv2
import numpy as np
import numpy.typing as npt
from sqlalchemy import select

from api.actors import Actor
from api.auth import create_device
from api.case_actions import apply_action
from api.db import make_engine, make_session_factory
from api.evidence import add_evidence
from api.ingest import ingest_report
from api.migrate import upgrade
from api.models import Case, Evidence, Role
from api.review_labels import add_label
from api.settings import Settings
from contract.reports import CaseReport
from detector.detections import Detections
from pipeline.evidence import annotate, crop_box
from tests.api.builders import make_world

T0 = dt.datetime(2026, 5, 11, 1, 0, tzinfo=dt.UTC)
ADMIN = Actor(kind="user", id=None, name="admin", role=Role.ADMIN)


@dataclass
class ReviewedStore:
    settings: Settings
    device: Actor
    names: list[str]

    def __post_init__(self) -> None:
        self.engine = make_engine(self.settings)
        upgrade(self.engine)
        self.sessions = make_session_factory(self.engine)
        make_world(self.sessions)
        with self.sessions.begin() as session:
            issued = create_device(session, "box-1")
            self.device = Actor(kind="device", id=issued.device.id, name="box-1")

    def report(
        self,
        frame: npt.NDArray[np.uint8],
        detections: Detections,
        *,
        place: str,
        violation: str = "illegal_parking",
        evidence: tuple[str, ...] = ("confirmation", "crop", "frame"),
        minutes: int = 0,
        camera: str = "cam-1",
        detected: list[dict[str, Any]] | None = None,
    ) -> int:
        """One device report of ``detections`` in ``frame`` with the daemon's evidence images; the case id.
        ``detected``: the boxes sent with the ``frame`` picture (everything the daemon detected in it)."""
        boxes = [
            {"xyxy": [float(v) for v in xyxy], "confidence": float(c), "class_name": self.names[int(k)]}
            for xyxy, c, k in zip(detections.xyxy, detections.confidence, detections.class_id, strict=True)
        ]
        at = T0 + dt.timedelta(minutes=minutes)
        report = CaseReport.model_validate(
            {
                "idempotency_key": uuid.uuid4().hex,
                "camera": camera,
                "zone": "z1",
                "place": place,
                "violation_type": violation,
                "first_seen_at": at.isoformat(),
                "confirmed_at": at.isoformat(),
                "confidence": float(detections.confidence.max()),
                "boxes": boxes,
                "model_name": "yolox-nano-coco",
            }
        )
        with self.sessions.begin() as session:
            case_id = ingest_report(session, report, self.device, self.settings).case_id
        h, w = frame.shape[:2]
        images = {
            "confirmation": annotate(frame, [[0, 0], [w, 0], [w, h], [0, h]], detections, self.names, camera),
            "crop": crop_box(frame, detections.xyxy[int(np.argmax(detections.confidence))]),
            "frame": frame,  # nothing drawn on it
        }
        for kind in evidence:
            ok, data = cv2.imencode(".jpg", images[kind], [cv2.IMWRITE_JPEG_QUALITY, 90])
            assert ok
            with self.sessions.begin() as session:
                add_evidence(
                    session,
                    case_id,
                    self.device,
                    data=data.tobytes(),
                    kind=kind,
                    settings=self.settings,
                    boxes=json.dumps(detected) if kind == "frame" and detected is not None else None,
                )
        return case_id

    def draw(self, case_id: int, kind: str, box: list[float], code: str, actor: Actor = ADMIN) -> int:
        """An operator draws ``box`` (0..1 of the image) with ``code`` on the case's ``kind`` image."""
        with self.sessions.begin() as session:
            evidence = session.scalars(
                select(Evidence).where(Evidence.case_id == case_id, Evidence.kind == kind)
            ).first()
            assert evidence is not None, f"case {case_id} has no {kind} image"
            return add_label(session, actor, case_id, evidence.id, box, code).id

    def act(self, case_id: int, action: str, reason: str | None = None) -> None:
        with self.sessions.begin() as session:
            case = session.get(Case, case_id)
            assert case is not None
            apply_action(session, case, action, ADMIN, settings=self.settings, reason=reason)


def make_reviewed_store(folder: Path, names: list[str]) -> ReviewedStore:
    settings = Settings(data_dir=folder, run_jobs=False, _env_file=None)  # type: ignore[call-arg]
    return ReviewedStore(settings, Actor(kind="device", id=None, name=""), names)
