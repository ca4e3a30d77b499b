"""The store's model rollout reaches a running daemon: real store, real daemon, vtest.avi from ../shared/data
(not paced: every sampled frame must be analysed), YOLOX-Nano from ../shared/data/models.

- Hot swap and rollback: two registry versions of YOLOX (the same weights, re-serialised so the files
  differ) are made live one after the other, then rolled back, while frames flow; no frame is lost (every
  frame the source handed over is analysed, none dropped as behind), and the van's case names the
  registry version that was live when it was confirmed.
- A model that fails: a file that is not ONNX, then a file altered on the store (wrong sha256): each is
  reported in the camera health the store keeps, and the old model keeps analysing.

Slow (real decoding and inference): marked ``e2e``.
"""

from __future__ import annotations

import io
import threading
from pathlib import Path
from typing import Any

import onnx
import pytest
import yaml

from api import model_registry
from api.actors import Actor
from api.model_registry import AssignmentIn, RollbackIn
from api.models import Camera, ModelComparison, ModelVersion, Role
from pipeline.cli import check_config
from pipeline.config import CameraConfig
from pipeline.daemon import Daemon
from pipeline.incidents import RuleEngine
from pipeline.protocols import SourceLike
from tests.conftest import REPO
from tests.pipeline.live_store import LiveStore
from tests.pipeline.test_daemon_e2e import VAN_ZONE, wait_for, write_config, zone

pytestmark = pytest.mark.e2e

ADMIN = Actor(kind="user", id=None, name="admin", role=Role.ADMIN)


class Counting:
    """A real camera source that counts the frames it hands over."""

    def __init__(self, inner: SourceLike) -> None:
        self.inner = inner
        self.handed = 0

    def __getattr__(self, name: str) -> Any:
        return getattr(self.inner, name)

    def next_frame(self, timeout: float) -> Any:
        frame = self.inner.next_frame(timeout)
        self.handed += frame is not None
        return frame

    def latest(self, after_seq: int) -> Any:
        frame = self.inner.latest(after_seq)
        self.handed += frame is not None
        return frame


def yolox_card_fields(card: Path) -> dict[str, Any]:
    fields: dict[str, Any] = yaml.safe_load(card.read_text())
    fields.pop("path")
    fields.pop("sha256")
    return fields


def publish(store: LiveStore, data: bytes, card: dict[str, Any]) -> int:
    with store.sessions.begin() as session:
        version = model_registry.publish(
            session, store.settings, ADMIN, source=io.BytesIO(data), card=card, dataset=None,
            training_command=None, evaluation=None,
        )  # fmt: skip
        return version.id


def make_live(store: LiveStore, version_id: int) -> None:
    with store.sessions.begin() as session:
        model_registry.assign(session, ADMIN, version_id, AssignmentIn(role="live", devices=["edge-box"]))


def resaved(onnx_path: Path, note: str) -> bytes:
    """The same network with another doc string: a different file (and sha256), the same detector."""
    model = onnx.load(str(onnx_path))
    model.doc_string = note
    return model.SerializeToString()


def start(daemon: Daemon) -> tuple[threading.Thread, list[int]]:
    code: list[int] = []
    runner = threading.Thread(target=lambda: code.append(daemon.run()), daemon=True)
    runner.start()
    return runner, code


def analysed(daemon: Daemon) -> float:
    return daemon.metrics.value("streetwatch_frames_analysed_total", {"camera": "vtest"}) or 0


def camera_config(fps: float, dwell_s: float, place: str) -> list[dict[str, Any]]:
    return [
        {
            "id": "vtest",
            "url": "",
            "sample": {"mode": "fps", "fps": fps},
            "zones": [zone("service-road", place, VAN_ZONE, dwell_s)],
        }
    ]


def test_hot_swap_and_rollback_under_flowing_frames_lose_no_frame(
    tmp_path: Path, store: LiveStore, yolox_card: Path, yolox_nano: Path, vtest_path: Path
) -> None:
    card = yolox_card_fields(yolox_card)
    v1 = publish(store, resaved(yolox_nano, "registry v1"), {**card, "version": "r1"})
    # v2 was trained with working points: the rules follow them while it is live
    thresholds = {**card.get("thresholds", {}), "classes": {"car": 0.2}}
    v2 = publish(
        store, resaved(yolox_nano, "registry v2"), {**card, "version": "r2", "thresholds": thresholds}
    )
    cameras = camera_config(5, 20, store.world.place_key)
    cameras[0]["url"] = str(vtest_path)
    path = write_config(
        tmp_path, store, yolox_card, cameras, register=("vtest",), store_extra={"zone_sync_s": 0.5}
    )
    counted: list[Counting] = []

    def factory(camera: CameraConfig) -> SourceLike:
        from pipeline.sources import CameraSource

        counted.append(Counting(CameraSource(camera)))
        return counted[-1]  # type: ignore[return-value]

    daemon = Daemon(check_config(path), source_factory=factory)
    runner, code = start(daemon)
    seen: list[tuple[int | None, float]] = []  # (live version, frames analysed) at each swap
    try:
        for version_id, rollback in ((v1, False), (v2, False), (v1, True)):
            if rollback:
                with store.sessions.begin() as session:
                    model_registry.rollback(session, ADMIN, RollbackIn(devices=["edge-box"]))
            else:
                make_live(store, version_id)
            wait_for(
                lambda v=version_id: daemon.swapper.identity.version_id == v, 90, f"version {version_id}"
            )
            seen.append((version_id, analysed(daemon)))
            wait_for(
                lambda v=version_id: working_point(daemon, "car") == pytest.approx(0.2 if v == v2 else 0.3),
                30,
                f"the working point of version {version_id}",
            )
        assert daemon.model_updater.health().state == "running"
    finally:
        runner.join(300)
        daemon.stop()
    assert not runner.is_alive() and code == [0]
    assert daemon.swapper.swaps == 3
    frames = [count for _, count in seen]
    assert frames == sorted(frames) and frames[0] > 0, "frames flowed through every swap"
    handed = counted[0].handed
    assert handed > 300 and analysed(daemon) == handed, "every frame handed over was analysed"
    assert (daemon.metrics.value("streetwatch_frames_skipped_total", {"reason": "behind"}) or 0) == 0
    # the van's case names the registry version live at its confirmation
    assert store.case_count() == 1
    case = store.case(1)
    assert case.model_name == "yolox-nano-coco"
    assert case.model_version is not None and case.model_version.split("#")[-1] in {str(v1), str(v2)}
    assert (tmp_path / "models" / f"{_sha(store, v1)}.onnx").is_file()


def working_point(daemon: Daemon, name: str) -> float:
    """The confidence the daemon's rules ask of ``name`` where a rule sets none."""
    rules: RuleEngine = daemon.rules  # type: ignore[assignment]
    return float(rules.class_confidence()[daemon.class_names.index(name)])


def _sha(store: LiveStore, version_id: int) -> str:
    with store.sessions() as session:
        return session.get_one(ModelVersion, version_id).sha256


def test_a_model_that_fails_is_reported_and_the_old_one_keeps_running(
    tmp_path: Path, store: LiveStore, yolox_card: Path, yolox_nano: Path, vtest_path: Path
) -> None:
    card = yolox_card_fields(yolox_card)
    corrupt = publish(store, b"this is not an onnx file" * 100, card)
    tampered = publish(store, resaved(yolox_nano, "to be altered"), card)
    stored = store.settings.data_dir / "models" / f"{_sha(store, tampered)}.onnx"
    altered = bytearray(stored.read_bytes())
    altered[-100:] = bytes(100)  # the same size, other bytes: only the sha256 tells
    stored.write_bytes(bytes(altered))
    cameras = camera_config(2, 40, store.world.place_key)
    cameras[0]["url"] = str(vtest_path)
    cameras[0]["realtime"] = True
    path = write_config(
        tmp_path,
        store,
        yolox_card,
        cameras,
        register=("vtest",),
        store_extra={"zone_sync_s": 0.5, "health_report_s": 1},
    )
    daemon = Daemon(check_config(path))
    runner, code = start(daemon)

    def stored_model_health() -> dict[str, Any]:
        with store.sessions() as session:
            camera = session.query(Camera).filter_by(code="vtest").one()
            return dict((camera.health or {}).get("model") or {})

    def failed_on(version_id: int) -> bool:
        health = stored_model_health()
        return health.get("target_version_id") == version_id and health.get("state") == "failed"

    try:
        wait_for(lambda: analysed(daemon) >= 4, 60, "frames analysed")
        make_live(store, corrupt)
        wait_for(lambda: failed_on(corrupt), 60, "the load failure in the health")
        health = stored_model_health()
        assert "does not load" in health["error"] and health["live_version_id"] is None
        before = analysed(daemon)
        wait_for(lambda: analysed(daemon) >= before + 4, 30, "the old model still analysing")

        make_live(store, tampered)
        wait_for(lambda: failed_on(tampered), 60, "the sha256 failure in the health")
        assert "sha256" in stored_model_health()["error"]
        assert daemon.swapper.identity.version_id is None and daemon.swapper.swaps == 0
        before = analysed(daemon)
        wait_for(lambda: analysed(daemon) >= before + 4, 30, "the old model still analysing")
        assert not (tmp_path / "models" / f"{_sha(store, tampered)}.onnx.part").exists()
    finally:
        daemon.stop()
        runner.join(60)
    assert not runner.is_alive() and code == [0]


def test_a_shadow_model_is_compared_and_never_reports_a_case(
    tmp_path: Path, store: LiveStore, yolox_card: Path, yolox_nano: Path, vtest_path: Path
) -> None:
    shadow = publish(store, resaved(yolox_nano, "shadow"), yolox_card_fields(yolox_card))
    cameras = camera_config(5, 20, store.world.place_key)
    cameras[0]["url"] = str(vtest_path)
    path = write_config(
        tmp_path,
        store,
        yolox_card,
        cameras,
        register=("vtest",),
        store_extra={"zone_sync_s": 0.5, "shadow_period_s": 3600},
    )
    with store.sessions.begin() as session:
        body = AssignmentIn(role="shadow", devices=["edge-box"], shadow_share=0.5)
        model_registry.assign(session, ADMIN, shadow, body)
    daemon = Daemon(check_config(path))
    runner, code = start(daemon)
    runner.join(300)
    daemon.stop()
    assert not runner.is_alive() and code == [0]
    # the live model's van is the only case: the shadow's would-be incidents were recorded, not reported
    assert store.case_count() == 1
    assert daemon.shadow.shadow_events >= 1 and daemon.shadow.uploaded == 1
    shadow_calls = daemon.metrics.value("streetwatch_shadow_inference_seconds_count") or 0
    assert 0 < shadow_calls <= 0.5 * analysed(daemon) + 1, "the shadow ran on at most its share"
    with store.sessions() as session:
        (row,) = session.query(ModelComparison).all()
        assert row.shadow_version_id == shadow and row.live_version_id is None
        assert row.classes["illegal_parking"]["agree"] == 1, row.classes
        assert row.classes["_frames"]["shadow"] == shadow_calls


def test_a_live_model_with_other_classes_restarts_the_daemon_onto_it(
    tmp_path: Path, store: LiveStore, yolox_card: Path, vtest_path: Path
) -> None:
    """A city's first stall and garbage model (the demo model's classes, not COCO's) made live: the running
    daemon stages it and stops with RESTART_EXIT; the daemon built again from the same file runs it, with
    the card's stall and garbage mapped and the registry version in its reports."""
    from pipeline.daemon import RESTART_EXIT

    demo = REPO / "models" / "streetwatch-demo-n.yaml"
    card = {**yolox_card_fields(demo), "violations": {"stall": "street_stall", "garbage": "exposed_garbage"}}
    city = publish(store, (REPO / "models" / "streetwatch-demo-n.onnx").read_bytes(), card)
    cameras = camera_config(2, 40, store.world.place_key)
    cameras[0]["url"] = str(vtest_path)
    cameras[0]["realtime"] = True
    path = write_config(
        tmp_path, store, yolox_card, cameras, register=("vtest",), store_extra={"zone_sync_s": 0.5}
    )
    daemon = Daemon(check_config(path))
    runner, code = start(daemon)
    try:
        wait_for(lambda: analysed(daemon) >= 2, 60, "frames analysed")
        make_live(store, city)
        runner.join(120)
    finally:
        daemon.stop()
        runner.join(60)
    assert code == [RESTART_EXIT] and daemon.swapper.swaps == 0
    again = Daemon(check_config(path))
    try:
        assert again.swapper.class_names == yaml.safe_load(demo.read_text())["classes"]
        assert again.swapper.identity.version_id == city
        assert again.config.detector.violation_of == {
            "car": "illegal_parking",
            "truck": "illegal_parking",
            "bus": "illegal_parking",
            "stall": "street_stall",
            "garbage": "exposed_garbage",
        }
    finally:
        again.outbox.close()
