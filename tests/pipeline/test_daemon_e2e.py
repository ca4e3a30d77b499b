"""End to end on real footage: cameras -> the daemon (real sources, detector, rules, evidence, outbox,
pusher) -> a REAL case store (migrated SQLite, served by uvicorn on a free port) with a real device key.

- vtest.avi (Debian opencv-doc): the van and the car parked at the top right make exactly one case for
  their shared place, confirmed within dwell + 5 s of stream time, with evidence; a zone over the walkway
  makes none. car-detection.mp4: cars that only drive through the lot make none.
- The case store stopped during the run and started again: every case arrives exactly once.
- Through a real RTSP server (GStreamer, tests/pipeline/rtsp_server.py) killed and restarted mid-run: the
  daemon reconnects and makes no second case; it stops cleanly on SIGTERM (``streetwatch run``). On the way,
  the case is marked resolved while the van is still there: verification by camera posts "rework" with an
  "after" picture, and the camera's health reaches the store.

Slow (real decoding and inference, about a minute in all on 2 cores): marked ``e2e``; CI runs them.
"""

from __future__ import annotations

import datetime as dt
import json
import os
import signal
import subprocess
import sys
import threading
import time
import urllib.error
import urllib.request
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import select

from api.models import Camera, Case, Sighting
from pipeline.cli import check_config
from pipeline.config import CameraConfig
from pipeline.daemon import Daemon
from pipeline.protocols import SourceLike
from tests.conftest import REPO
from tests.pipeline.live_store import LiveStore, free_port
from tests.pipeline.rtsp_server import RtspServer, encode_clip, server_available

pytestmark = pytest.mark.e2e

VAN_PLACE = "110101001001001"  # make_world's place
WALKWAY_PLACE = "110101001001002"
LOT_PLACE = "110101001001003"
CAR_PLACE = "110101001001004"
VAN_ZONE = [[0.82, 0.05], [1.0, 0.05], [1.0, 0.2], [0.82, 0.2]]  # the van and the car beside it
WALKWAY_ZONE = [[0.0, 0.28], [0.75, 0.28], [0.75, 0.6], [0.0, 0.6]]  # where the pedestrians walk
LOT_ZONE = [[0.0, 0.0], [1.0, 0.0], [1.0, 1.0], [0.0, 1.0]]  # the whole parking lot
# The van's bottom centre is at x ~ 0.90, the car's at x ~ 0.98: one zone each, two places.
VAN_ONLY_ZONE = [[0.82, 0.05], [0.945, 0.05], [0.945, 0.2], [0.82, 0.2]]
CAR_ONLY_ZONE = [[0.945, 0.05], [1.0, 0.05], [1.0, 0.2], [0.945, 0.2]]


def zone(zone_id: str, place: str, polygon: list[list[float]], dwell_s: float) -> dict[str, Any]:
    return {
        "id": zone_id,
        "place": place,
        "polygon": polygon,
        "rules": {"illegal_parking": {"dwell_s": dwell_s}},
    }


def write_config(
    tmp_path: Path,
    store: LiveStore,
    model: Path,
    cameras: list[dict[str, Any]],
    *,
    register: tuple[str, ...] = (),
    **sections: Any,
) -> Path:
    """A daemon configuration file for ``store`` with a fresh device key (owning the cameras in
    ``register``), as a user would write it."""
    _, key = store.add_device("edge-box", cameras=register)
    key_file = tmp_path / "device.key"
    key_file.write_text(key + "\n", encoding="utf-8")
    key_file.chmod(0o600)
    document: dict[str, Any] = {
        "detector": {
            "model": str(model),
            "classes": {"car": "illegal_parking", "truck": "illegal_parking", "bus": "illegal_parking"},
            "batch_size": 4,
        },
        "store": {
            "url": store.url,
            "device_key_file": str(key_file),
            "outbox": str(tmp_path / "outbox.sqlite"),
            "timeout_s": 5,
            "retry_base_s": 0.2,
            "retry_max_s": 1.0,
            **sections.pop("store_extra", {}),
        },
        "cameras": cameras,
        "evidence": {"dir": str(tmp_path / "evidence")},
        "verification": {"enabled": False},
        "metrics": {"port": 0},
        "scheduler": {"drain_timeout_s": 30},
        **sections,
    }
    path = tmp_path / "daemon.yaml"
    path.write_text(json.dumps(document, indent=1), encoding="utf-8")  # JSON is YAML
    return path


class FirstFrame:
    """Wraps a real camera source to remember the stream time of the first frame it handed over."""

    def __init__(self, inner: SourceLike) -> None:
        self.inner = inner
        self.first: dt.datetime | None = None

    def __getattr__(self, name: str) -> Any:
        return getattr(self.inner, name)

    def _seen(self, frame: Any) -> Any:
        if frame is not None and self.first is None:
            self.first = frame.stream_time
        return frame

    def next_frame(self, timeout: float) -> Any:
        return self._seen(self.inner.next_frame(timeout))

    def latest(self, after_seq: int) -> Any:
        return self._seen(self.inner.latest(after_seq))


def recording_factory(
    input_hw: tuple[int, int] | None = None,
) -> tuple[Callable[[CameraConfig], SourceLike], dict[str, FirstFrame]]:
    from pipeline.sources import CameraSource

    made: dict[str, FirstFrame] = {}

    def factory(camera: CameraConfig) -> SourceLike:
        made[camera.id] = FirstFrame(CameraSource(camera, input_hw=input_hw))
        return made[camera.id]  # type: ignore[return-value]

    return factory, made


def aware(value: dt.datetime | None) -> dt.datetime:
    assert value is not None
    return value if value.tzinfo else value.replace(tzinfo=dt.UTC)


def wait_for(condition: Callable[[], bool], timeout_s: float, what: str) -> None:
    deadline = time.monotonic() + timeout_s
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout_s:.0f} s waiting for {what}")
        time.sleep(0.1)


# --- vtest + parking lot through a real store ---------------------------------------------------------


LEAN_OPTIONS = {
    "as_configured": {},
    # zone-ROI inference: the detector sees the zones' crop (the van zone + the walkway; the lot is whole)
    "zone_roi": {"zone_roi": True},
    # zone gating: samples whose zones did not change reuse the last detections (model not run)
    "zone_gating": {"zone_gating": True},
    "roi_and_gating": {"zone_roi": True, "zone_gating": True},
}


@pytest.mark.parametrize("lean", list(LEAN_OPTIONS))
def test_parked_van_makes_one_case_and_passers_by_none(
    tmp_path: Path, store: LiveStore, yolox_card: Path, vtest_path: Path, car_video: Path, lean: str
) -> None:
    options = LEAN_OPTIONS[lean]
    cameras = [
        {
            "id": "vtest",
            "url": str(vtest_path),
            "sample": {"mode": "fps", "fps": 2},
            "timezone": "Europe/London",
            "zones": [
                zone("service-road", VAN_PLACE, VAN_ZONE, 30),
                zone("walkway", WALKWAY_PLACE, WALKWAY_ZONE, 30),
            ],
            **options,
        },
        {
            "id": "lot",
            "url": str(car_video),
            "sample": {"mode": "fps", "fps": 2},
            "zones": [zone("lot", LOT_PLACE, LOT_ZONE, 10)],
            **options,
        },
    ]
    config = check_config(
        write_config(tmp_path, store, yolox_card, cameras, incidents={"sighting_report_s": 15})
    )
    # the lean options work on the detector's copy, which the daemon's own sources always make
    factory, sources = recording_factory((416, 416) if options else None)
    daemon = Daemon(config, source_factory=factory)
    assert daemon.run() == 0  # both files end; the outbox is drained

    def sampled(camera: str) -> float:  # analysed, or skipped by the source because nothing changed
        analysed = daemon.metrics.value("streetwatch_frames_analysed_total", {"camera": camera}) or 0
        labels = {"camera": camera, "reason": "unchanged"}
        return analysed + (daemon.metrics.value("streetwatch_frames_skipped_total", labels) or 0)

    assert sampled("vtest") >= 155  # 79.5 s at 2 fps
    assert sampled("lot") >= 58  # 30 s at 2 fps
    assert store.case_count() == 1, "the van and the car share a place: one case; walkway and lot: none"
    assert len(store.sighting_keys()) == 1  # one report
    case = store.case(1)
    assert (case.camera_code, case.zone_code) == ("vtest", "service-road")
    assert case.place_id == store.world.place_id
    start = sources["vtest"].first
    assert start is not None
    confirmed = aware(case.confirmed_at)
    assert dt.timedelta(seconds=30) <= confirmed - start <= dt.timedelta(seconds=35), (start, confirmed)
    assert aware(case.first_seen_at) - start <= dt.timedelta(seconds=2)
    kinds = [kind for kind, _ in store.evidence(case.id)]
    assert sorted(k for k in kinds if k != "sighting") == ["confirmation", "crop", "first_seen", "frame"]
    assert daemon.outbox.path.exists()
    # The van stays to the end of the clip: the store hears it is still there every 15 s of stream time
    # after the confirmation (~31 s in), and the case's count and last seen move with it.
    life = [action for _, action in store.events(case.id) if action in ("still_there", "gone")]
    assert 2 <= len(life) <= 4 and set(life) == {"still_there"}, life
    with store.sessions() as session:
        (report,) = session.scalars(select(Sighting).where(Sighting.case_id == case.id))
    assert case.sighting_count == report.sighting_count > int(report.payload["sighting_count"])
    assert aware(case.last_seen_at) - start >= dt.timedelta(seconds=60)


# --- the case store goes down and comes back -----------------------------------------------------------


def test_store_down_during_the_run_every_case_arrives_exactly_once(
    tmp_path: Path, store: LiveStore, yolox_card: Path, vtest_path: Path
) -> None:
    # Paced at real time like a live camera, with a short dwell, so that the store is surely down (it
    # stops within a second) before the two cases are seen (5 s in) and confirmed (8 s in).
    cameras = [
        {
            "id": "vtest",
            "url": str(vtest_path),
            "sample": {"mode": "fps", "fps": 2},
            "realtime": True,
            "zones": [
                zone("van", VAN_PLACE, VAN_ONLY_ZONE, 8),
                zone("car", CAR_PLACE, CAR_ONLY_ZONE, 8),
            ],
        }
    ]
    config = check_config(write_config(tmp_path, store, yolox_card, cameras))
    daemon = Daemon(config)
    code: list[int] = []
    runner = threading.Thread(target=lambda: code.append(daemon.run()), daemon=True)
    runner.start()
    try:
        wait_for(
            lambda: (daemon.metrics.value("streetwatch_frames_analysed_total", {"camera": "vtest"}) or 0) > 0,
            60,
            "the first analysed frame",
        )
        store.stop()
        assert daemon.outbox.pending_count() == 0, "confirmed before the store went down: dwell too short"
        wait_for(lambda: daemon.outbox.pending_count() == 2, 60, "both cases queued in the outbox")
        wait_for(lambda: daemon.pusher.stats.retries > 0, 30, "a failed delivery attempt")
        time.sleep(1.5)  # a few more attempts against the dead port
        assert store.case_count() == 0
        store.start()
        wait_for(lambda: daemon.outbox.pending_count() == 0, 60, "the outbox delivered")
    finally:
        daemon.stop()
        runner.join(60)
    assert not runner.is_alive() and code == [0]
    assert store.case_count() == 2
    keys = store.sighting_keys()
    assert len(keys) == len(set(keys)) == 2
    for case_id in (1, 2):
        kinds = sorted(kind for kind, _ in store.evidence(case_id))
        assert kinds == ["confirmation", "crop", "first_seen", "frame"]
        with store.sessions() as session:
            (report,) = session.scalars(select(Sighting).where(Sighting.case_id == case_id))
        assert store.case(case_id).sighting_count == int(report.payload["sighting_count"]) > 1


# --- a live RTSP camera whose server dies and comes back ----------------------------------------------


@pytest.fixture(scope="session")
def vtest_h264(tmp_path_factory: pytest.TempPathFactory, vtest_path: Path) -> Path:
    why = server_available()
    if why is not None:
        if os.environ.get("CI"):
            pytest.fail(why)
        pytest.skip(why)
    folder = tmp_path_factory.mktemp("rtsp-clips")
    return encode_clip(vtest_path, folder / "vtest.h264", gop=10, max_seconds=40)


def healthz(port: int) -> dict[str, Any]:
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/healthz", timeout=5) as response:
            body: dict[str, Any] = json.loads(response.read())
    except urllib.error.HTTPError as error:
        body = json.loads(error.read())
    except OSError:
        return {}
    return body


def test_rtsp_server_restart_mid_run_reconnects_without_a_duplicate_case(
    tmp_path: Path, store: LiveStore, yolox_card: Path, vtest_h264: Path
) -> None:
    port = free_port()
    with RtspServer({"gate": vtest_h264}) as rtsp:
        cameras = [
            {
                "id": "gate",
                "url": rtsp.url("gate"),
                "sample": {"mode": "keyframes"},
                "timeout_s": 3,
                "reconnect_min_s": 0.5,
                "reconnect_max_s": 2,
                "zones": [
                    zone("service-road", VAN_PLACE, VAN_ZONE, 8),
                    zone("walkway", WALKWAY_PLACE, WALKWAY_ZONE, 8),
                ],
            }
        ]
        path = write_config(
            tmp_path,
            store,
            yolox_card,
            cameras,
            register=("gate",),
            metrics={"port": port},
            verification={"enabled": True, "absent_s": 3, "poll_interval_s": 1},
            store_extra={"health_report_s": 1},
        )
        daemon = subprocess.Popen(
            [sys.executable, "-c", "from streetwatch.cli import main; main()", "run", "--config", str(path)],
            cwd=REPO,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
        )
        try:
            wait_for(lambda: store.case_count() == 1, 90, "the case from the live camera")
            # A unit reports the case done while the van is still there: verification by camera sends it
            # back (rework) with an "after" picture.
            with store.sessions.begin() as session:
                case = session.get_one(Case, 1)
                case.status, case.unit_id = "resolved", store.world.traffic_id
                case.resolved_at = dt.datetime.now(dt.UTC)
            wait_for(lambda: store.case(1).rework_count == 1, 60, "verification by camera: rework")
            assert "after" in [kind for kind, _ in store.evidence(1)]
            before = healthz(port)["cameras"]["gate"]
            assert before["state"] == "up"
            rtsp.kill()
            wait_for(
                lambda: healthz(port).get("cameras", {}).get("gate", {}).get("state") != "up",
                30,
                "the camera down",
            )
            assert healthz(port)["status"] == "degraded"
            time.sleep(2)
            rtsp.start()
            wait_for(
                lambda: (
                    healthz(port).get("cameras", {}).get("gate", {}).get("reconnects", 0)
                    > before["reconnects"]
                    and healthz(port)["cameras"]["gate"]["state"] == "up"
                ),
                60,
                "the camera reconnected",
            )
            frames = metric(port, 'streetwatch_frames_analysed_total{camera="gate"}')
            wait_for(
                lambda: metric(port, 'streetwatch_frames_analysed_total{camera="gate"}') >= frames + 10,
                60,
                "ten more frames analysed after the reconnect (past the dwell)",
            )
        finally:
            daemon.send_signal(signal.SIGTERM)
            try:
                output, _ = daemon.communicate(timeout=60)
            except subprocess.TimeoutExpired:
                daemon.kill()
                output, _ = daemon.communicate()
                raise AssertionError(f"the daemon did not stop on SIGTERM:\n{output[-3000:]}") from None
    assert daemon.returncode == 0, output[-3000:]
    assert store.case_count() == 1, output[-3000:]
    assert len(store.sighting_keys()) == 1  # one report: the incident stayed open across the outage
    assert "SIGTERM: shutting down" in output
    with store.sessions() as session:  # the daemon reported the camera's health to the store
        health = session.scalar(select(Camera.health).where(Camera.code == "gate"))
    assert health is not None and health["state"] in ("up", "reconnecting")


def metric(port: int, name: str) -> float:
    with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=5) as response:
        for line in response.read().decode().splitlines():
            if line.startswith(name + " "):
                return float(line.rsplit(" ", 1)[1])
    return 0.0
