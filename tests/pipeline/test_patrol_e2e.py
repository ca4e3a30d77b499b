"""End to end in patrol mode: snapshot cameras visited in turn -> the daemon (real detector, rules,
evidence, outbox, pusher) -> a REAL case store (tests/pipeline/live_store.py).

The snapshot server answers with real vtest.avi frames (Debian opencv-doc), the van parked at the top right
in every one: visited every 2 s, the van's stay adds up across visits and makes one case with its evidence.
A second camera of the same box never answers: it is marked failed in the daemon's health and in the
store, and the first camera's case arrives all the same.

Slow (real inference): marked ``e2e``.
"""

from __future__ import annotations

import datetime as dt
from pathlib import Path
from typing import Any

import cv2
import numpy as np
import numpy.typing as npt
import pytest
from sqlalchemy import select

from api.models import Camera
from benchmarks.snapshot_server import SnapshotServer
from pipeline.cli import check_config
from pipeline.daemon import Daemon
from tests.pipeline.live_store import LiveStore
from tests.pipeline.test_daemon_e2e import VAN_PLACE, VAN_ZONE, aware, wait_for, write_config, zone

pytestmark = pytest.mark.e2e

EVERY_S = 2.0
DWELL_S = 6.0
# a confirmed case's pictures, sightings aside
EVIDENCE_KINDS = {"confirmation", "crop", "first_seen", "frame"}


def reported_health(store: LiveStore, camera: str) -> dict[str, Any] | None:
    with store.sessions() as session:
        health: dict[str, Any] | None = session.scalar(select(Camera.health).where(Camera.code == camera))
        return health


def test_a_patrol_camera_makes_a_case_across_visits_while_a_dead_one_is_marked(
    tmp_path: Path, store: LiveStore, yolox_card: Path, vtest_frames: dict[int, npt.NDArray[np.uint8]]
) -> None:
    pictures = [cv2.imencode(".jpg", vtest_frames[i])[1].tobytes() for i in sorted(vtest_frames)]
    with SnapshotServer(pictures, hang=frozenset({"dead"}), hang_s=3.0) as server:
        cameras = [
            {
                "id": cam,
                "url": server.url(cam),
                "zones": [zone("service-road", VAN_PLACE, VAN_ZONE, DWELL_S)],
            }
            for cam in ("gate", "dead")
        ]
        config = check_config(
            write_config(
                tmp_path,
                store,
                yolox_card,
                cameras,
                register=("gate", "dead"),
                camera_defaults={"sample": {"mode": "patrol", "every_s": EVERY_S}},
                patrol={"max_concurrent": 2, "visit_timeout_s": 1.0, "per_host_limit": 2},
                store_extra={"health_report_s": 1},
            )
        )
        cameras_by_id = {camera.id: camera for camera in config.cameras}
        assert cameras_by_id["dead"].failed_after == 3
        daemon = Daemon(config)
        started = dt.datetime.now(dt.UTC)
        daemon.start()
        try:
            wait_for(lambda: store.case_count() == 1, 60, "the patrol camera's case")
            # its pictures follow the report through the outbox: stopping first would leave one there
            wait_for(
                lambda: {kind for kind, _ in store.evidence(1)} >= EVIDENCE_KINDS, 30, "the case's pictures"
            )
            wait_for(lambda: daemon.health().body["cameras"]["dead"]["state"] == "failed", 30, "dead marked")
            visits = server.requests["gate"]
            health = daemon.health()
            wait_for(lambda: reported_health(store, "dead") is not None, 10, "its health in the store")
        finally:
            daemon.stop()
            daemon.shutdown()
    assert not daemon.failures
    case = store.case(1)
    assert (case.camera_code, case.zone_code) == ("gate", "service-road")
    stood = aware(case.confirmed_at) - aware(case.first_seen_at)
    # seen on every visit 2 s apart: confirmed on the first visit at or past the dwell
    assert dt.timedelta(seconds=DWELL_S) <= stood <= dt.timedelta(seconds=DWELL_S + EVERY_S + 1), stood
    assert aware(case.first_seen_at) - started <= dt.timedelta(seconds=EVERY_S + 2)
    kinds = sorted(kind for kind, _ in store.evidence(case.id) if kind != "sighting")
    assert kinds == sorted(EVIDENCE_KINDS)
    assert visits >= 4  # visited in turn, one picture each time
    assert health.status == "degraded"
    dead = health.body["cameras"]["dead"]
    assert dead["state"] == "failed" and "visit timeout" in dead["last_error"]
    assert health.body["cameras"]["gate"]["state"] == "up"
    reported = reported_health(store, "dead")  # the dead camera's health reached the store
    assert reported is not None and reported["state"] in ("reconnecting", "failed")
    assert "visit timeout" in (reported["error"] or "")
