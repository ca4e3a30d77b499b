"""A zone changed in the case store reaches a running daemon: vtest.avi paced at real time, the van parked at
the top right. The box starts with its YAML's walkway zone (no case there); an operator saves a zone over the
van in the store; the daemon picks it up without a restart and reports the van; when the store zone is
deleted again the box falls back to its YAML and the van's incident ends.

Slow (real decoding and inference for ~40 s of video): marked ``e2e``.
"""

from __future__ import annotations

import threading
from pathlib import Path

import pytest

from api.reference.cameras import ZoneBody, delete_zone, put_zone
from pipeline.cli import check_config
from pipeline.daemon import Daemon
from tests.pipeline.live_store import LiveStore
from tests.pipeline.test_daemon_e2e import VAN_ZONE, WALKWAY_PLACE, WALKWAY_ZONE, wait_for, write_config, zone

pytestmark = pytest.mark.e2e


def analysed(daemon: Daemon) -> float:
    return daemon.metrics.value("streetwatch_frames_analysed_total", {"camera": "vtest"}) or 0


def test_a_zone_saved_in_the_store_changes_what_a_running_daemon_reports(
    tmp_path: Path, store: LiveStore, yolox_card: Path, vtest_path: Path
) -> None:
    cameras = [
        {
            "id": "vtest",
            "url": str(vtest_path),
            "sample": {"mode": "fps", "fps": 2},
            "realtime": True,
            "zones": [zone("walkway", WALKWAY_PLACE, WALKWAY_ZONE, 8)],
        }
    ]
    path = write_config(
        tmp_path,
        store,
        yolox_card,
        cameras,
        register=("vtest",),
        store_extra={"zone_sync_s": 1, "snapshot_s": 3},
    )
    daemon = Daemon(check_config(path))
    code: list[int] = []
    runner = threading.Thread(target=lambda: code.append(daemon.run()), daemon=True)
    runner.start()
    try:
        wait_for(lambda: analysed(daemon) >= 20, 60, "10 s of analysed video")
        # The latest frame reached the store (the zone editor draws on it); the walkway made no case.
        with store.sessions() as session:
            from api.reference.common import camera_by_code

            camera = camera_by_code(session, "vtest")
            assert camera is not None and camera.snapshot_at is not None and camera.snapshot_width == 768
        assert store.case_count() == 0
        assert [z.id for z in daemon.zones("vtest")] == ["walkway"]

        body = {
            "place": store.world.place_key,
            "polygon": VAN_ZONE,
            "rules": {"illegal_parking": {"dwell_s": 8}},
        }
        with store.sessions.begin() as session:
            put_zone(session, "vtest", "service-road", ZoneBody.model_validate(body))
        wait_for(
            lambda: [z.id for z in daemon.zones("vtest")] == ["service-road"], 10, "the store's zone applied"
        )
        wait_for(lambda: store.case_count() == 1, 40, "a case for the van in the store's zone")
        case = store.case(1)
        assert (case.camera_code, case.zone_code, case.place_id) == (
            "vtest",
            "service-road",
            store.world.place_id,
        )

        with store.sessions.begin() as session:
            delete_zone(session, "vtest", "service-road")
        wait_for(lambda: [z.id for z in daemon.zones("vtest")] == ["walkway"], 10, "the YAML's zones again")
        ended = daemon.metrics.value("streetwatch_incident_events_total", {"kind": "ended"}) or 0
        assert ended >= 1, "the van's incident ends with its zone"
    finally:
        daemon.stop()
        runner.join(60)
    assert not runner.is_alive() and code == [0]
    assert store.case_count() == 1
