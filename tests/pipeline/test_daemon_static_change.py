"""Static change wired into the daemon, with a stand-in detector in place of pipeline.static_change: its
unknown_object detections become case reports (class unknown_object, violation report_as) through the real
rules, evidence and outbox; the model's people and vehicles are handed to it as moving; health and metrics
say which zones have no reference yet; an operator's reference reaches it; verification uses it."""

from __future__ import annotations

import datetime as dt
from collections.abc import Sequence
from pathlib import Path
from typing import Any, ClassVar

import numpy as np
import numpy.typing as npt

from detector.detections import Detections
from pipeline.config import DaemonConfig
from pipeline.daemon import Daemon
from pipeline.protocols import StaticZone
from pipeline.verification import ResolvedCase
from tests.pipeline.test_daemon import CLASSES, FakeDetector, FileSource, make_config, reports

PILE = np.array([[40.0, 150.0, 100.0, 200.0]], np.float32)  # bottom centre (70, 200) in a 320x240 frame


class FakeStaticChange:
    """Reports PILE from ``appears_at`` (frame index) on; records what the daemon hands it."""

    instances: ClassVar[list[FakeStaticChange]] = []

    def __init__(
        self, camera_id: str, zones: Sequence[StaticZone], class_id: int, reference_dir: Path | None
    ) -> None:
        self.camera_id, self.class_id, self.reference_dir = camera_id, class_id, reference_dir
        self.zones = list(zones)
        self.frames = 0
        self.appears_at = 5
        self.moving: list[npt.NDArray[np.float32]] = []
        self.references: dict[str, npt.NDArray[np.uint8]] = {}
        self.empty = True  # what looks_like_reference answers
        FakeStaticChange.instances.append(self)

    def update(
        self, frame_bgr: npt.NDArray[np.uint8], stream_time: dt.datetime, moving_xyxy: npt.NDArray[np.float32]
    ) -> Detections:
        self.frames += 1
        self.moving.append(moving_xyxy)
        if self.frames <= self.appears_at:
            return Detections.empty()
        return Detections(PILE.copy(), np.array([0.4], np.float32), np.array([self.class_id], np.int64))

    def replace_zones(self, zones: Sequence[StaticZone]) -> None:
        self.zones = list(zones)

    def set_reference(self, zone_id: str, image_bgr: npt.NDArray[np.uint8]) -> None:
        self.references[zone_id] = image_bgr

    def absorb(self, zone_id: str, box_xyxy_px: npt.NDArray[np.float32]) -> None:
        pass

    def state(self) -> dict[str, str]:
        return {zone_id: "set" if zone_id in self.references else "learning" for zone_id, _, _ in self.zones}

    def looks_like_reference(
        self, zone_id: str, box_xyxy_px: npt.NDArray[np.float32], frame_bgr: npt.NDArray[np.uint8]
    ) -> bool:
        return self.empty


def static_config(tmp_path: Path, **static: Any) -> DaemonConfig:
    zones = [
        {
            "id": "kerb",
            "place": "place-kerb",
            "polygon": [[0.5, 0.0], [1.0, 0.0], [1.0, 0.5], [0.5, 0.5]],
            "rules": {"illegal_parking": {"dwell_s": 30}},
        },
        {
            "id": "pavement",
            "place": "place-pavement",
            "polygon": [[0.0, 0.5], [0.5, 0.5], [0.5, 1.0], [0.0, 1.0]],
            "static_change": {"dwell_s": 20, **static},
        },
    ]
    return make_config(tmp_path, [{"id": "cam-a", "url": "/videos/x.mp4", "zones": zones}])


def run_daemon(config: DaemonConfig, frames: int) -> tuple[Daemon, FakeStaticChange]:
    FakeStaticChange.instances.clear()
    source = FileSource("cam-a", frames)
    daemon = Daemon(
        config, detector=FakeDetector(), source_factory=lambda c: source, static_factory=FakeStaticChange
    )
    assert daemon.run() == 0
    (fake,) = FakeStaticChange.instances
    return daemon, fake


def test_a_static_object_becomes_a_case_report_of_report_as(tmp_path: Path) -> None:
    daemon, fake = run_daemon(static_config(tmp_path, report_as="exposed_garbage"), 60)
    assert fake.class_id == len(CLASSES)  # appended after the model's classes
    assert fake.reference_dir == tmp_path / "references"
    assert [z[0] for z in fake.zones] == ["pavement"]  # only the static-change zone
    found = {r["violation_type"]: r for r in reports(tmp_path)}
    assert set(found) == {"illegal_parking", "exposed_garbage"}  # the parked car and the pile
    pile = found["exposed_garbage"]
    assert pile["zone"] == "pavement" and pile["place"] == "place-pavement"
    assert [box["class_name"] for box in pile["boxes"]] == ["unknown_object"]
    first = dt.datetime.fromisoformat(pile["first_seen_at"])
    assert 20 <= (dt.datetime.fromisoformat(pile["confirmed_at"]) - first).total_seconds() <= 21
    # The model's car was handed over as moving (never evidence of a change).
    assert all(m.tolist() == [[200.0, 20.0, 300.0, 80.0]] for m in fake.moving)
    assert (daemon.metrics.value("streetwatch_static_change_seconds_count") or 0) == 60


def test_a_default_zone_reports_unknown_object_and_a_short_stay_nothing(tmp_path: Path) -> None:
    run_daemon(static_config(tmp_path), 60)
    assert "unknown_object" in {r["violation_type"] for r in reports(tmp_path)}
    other = tmp_path / "short"
    other.mkdir()
    run_daemon(static_config(other, dwell_s=120), 60)  # stays 55 s < 120 s
    assert "unknown_object" not in {r["violation_type"] for r in reports(other)}


def test_health_and_metrics_say_which_zones_have_no_reference_yet(tmp_path: Path) -> None:
    daemon, fake = run_daemon(static_config(tmp_path), 3)
    health = daemon.health().body["cameras"]["cam-a"]
    assert health["references"] == {"pavement": "learning"}
    labels = {"camera": "cam-a", "zone": "pavement"}
    assert daemon.metrics.value("streetwatch_static_reference_state", labels | {"state": "learning"}) == 1
    assert daemon.metrics.value("streetwatch_static_reference_state", labels | {"state": "set"}) == 0
    sent: list[dict[str, Any]] = []

    class Client:
        def request(self, method: str, path: str, **kwargs: Any) -> Any:
            sent.append(kwargs["json"])
            return type("R", (), {"status_code": 200})()

    daemon.health_reporter.client = Client()
    daemon.health_reporter.report("cam-a", daemon.cameras[0].source)
    assert sent[0]["references"] == {"pavement": "learning"}

    # An operator's reference from the store-sync thread is set before the camera's next frame.
    daemon.static.offer_reference("cam-a", "pavement", np.zeros((24, 32, 3), np.uint8))
    daemon.static.detect(
        "cam-a", np.zeros((240, 320, 3), np.uint8), dt.datetime.now(dt.UTC), Detections.empty()
    )
    assert "pavement" in fake.references
    assert daemon.health().body["cameras"]["cam-a"]["references"] == {"pavement": "set"}


def test_a_resolved_static_case_is_verified_only_once_the_zone_looks_empty(tmp_path: Path) -> None:
    config = static_config(tmp_path)
    config = config.model_copy(
        update={"verification": config.verification.model_copy(update={"enabled": True, "absent_s": 10})}
    )
    FakeStaticChange.instances.clear()
    source = FileSource("cam-a", 1)
    daemon = Daemon(
        config, detector=FakeDetector(), source_factory=lambda c: source, static_factory=FakeStaticChange
    )  # not run: the test plays the rules thread
    (fake,) = FakeStaticChange.instances
    verifier = daemon.verifier
    frame = np.zeros((240, 320, 3), np.uint8)
    t0 = dt.datetime(2026, 5, 11, 2, 0, tzinfo=dt.UTC)
    case = ResolvedCase(7, "cam-a", "pavement", "exposed_garbage", t0)  # re-coded at review: still watched
    assert verifier.set_resolved([case]) == 1
    fake.empty = False  # the pile is gone from the model's view (it never saw it) but the zone is not empty
    decisions = [
        d
        for s in range(0, 30, 2)
        for d in verifier.observe("cam-a", t0 + dt.timedelta(seconds=s), frame, Detections.empty())
    ]
    assert [d.verdict for d in decisions] == ["rework"]

    later = ResolvedCase(7, "cam-a", "pavement", "exposed_garbage", t0 + dt.timedelta(hours=1))
    assert verifier.set_resolved([later]) == 1
    fake.empty = True
    start = t0 + dt.timedelta(hours=1)
    decisions = [
        d
        for s in range(0, 30, 2)
        for d in verifier.observe("cam-a", start + dt.timedelta(seconds=s), frame, Detections.empty())
    ]
    assert [d.verdict for d in decisions] == ["verify"]
    daemon.outbox.close()
