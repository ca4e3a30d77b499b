"""How many incidents a model raises on real footage through the daemon's rules (a demo model trained on
generated streets must not flood a real camera with stall or garbage cases).

The daemon runs with a case store that is not there: every confirmed incident stays in its durable outbox,
one report each, and is counted there by camera and violation type.
"""

from __future__ import annotations

import json
import logging
import tempfile
from collections import Counter
from pathlib import Path
from typing import Any

from pipeline.config import load_config
from pipeline.daemon import Daemon
from pipeline.outbox import Outbox

VTEST = Path("/usr/share/doc/opencv-doc/examples/data/vtest.avi")
WHOLE_FRAME = [[0.0, 0.0], [1.0, 0.0], [1.0, 1.0], [0.0, 1.0]]
# vtest.avi: a no-parking zone over the van parked at the top right and one over the walkway (as in
# tests/pipeline/test_daemon_e2e.py); car-detection.mp4: the whole parking lot with a short dwell.
PARKING_ZONES: dict[str, list[tuple[str, list[list[float]], float]]] = {
    "vtest": [
        ("service-road", [[0.82, 0.05], [1.0, 0.05], [1.0, 0.2], [0.82, 0.2]], 30.0),
        ("walkway", [[0.0, 0.28], [0.75, 0.28], [0.75, 0.6], [0.0, 0.6]], 30.0),
    ],
    "lot": [("lot", WHOLE_FRAME, 10.0)],
}
STALL_GARBAGE_DWELL_S = 30.0
CLASSES = {
    "car": "illegal_parking",
    "truck": "illegal_parking",
    "bus": "illegal_parking",
    "motorcycle": "illegal_parking",
    "stall": "street_stall",
    "garbage": "exposed_garbage",
}


def camera_config(camera_id: str, video: Path) -> dict[str, Any]:
    zones: list[dict[str, Any]] = [
        {
            "id": zone,
            "place": f"{camera_id}-{zone}",
            "polygon": polygon,
            "rules": {"illegal_parking": {"dwell_s": dwell}},
        }
        for zone, polygon, dwell in PARKING_ZONES[camera_id]
    ]
    zones.append(
        {
            "id": "whole-frame",
            "place": f"{camera_id}-whole-frame",
            "polygon": WHOLE_FRAME,
            "rules": {
                "street_stall": {"dwell_s": STALL_GARBAGE_DWELL_S},
                "exposed_garbage": {"dwell_s": STALL_GARBAGE_DWELL_S},
            },
        }
    )
    return {"id": camera_id, "url": str(video), "sample": {"mode": "fps", "fps": 2}, "zones": zones}


def count_incidents(
    model: Path,
    videos: dict[str, Path],
    work_dir: Path | None = None,
    classes: dict[str, str] | None = None,
) -> Counter[tuple[str, str]]:
    """Confirmed incidents per (camera, violation type) for ``videos`` (camera id -> file, ids from
    :data:`PARKING_ZONES`), each read once as fast as the box can."""
    with tempfile.TemporaryDirectory(prefix="streetwatch-false-alarms-") as scratch:
        folder = work_dir or Path(scratch)
        folder.mkdir(parents=True, exist_ok=True)
        (folder / "device.key").write_text("not-a-real-key-" + "0" * 32 + "\n", encoding="utf-8")
        document = {
            "detector": {"model": str(model.resolve()), "classes": classes or CLASSES, "batch_size": 4},
            "store": {
                "url": "http://127.0.0.1:9",  # nobody listens: reports stay in the outbox
                "device_key_file": str(folder / "device.key"),
                "outbox": str(folder / "outbox.sqlite"),
                "health_report_s": 0,
            },
            "cameras": [camera_config(camera_id, video) for camera_id, video in videos.items()],
            "evidence": {"dir": str(folder / "evidence")},
            "verification": {"enabled": False},
            "metrics": {"port": 0},
            "scheduler": {"drain_timeout_s": 0},
        }
        path = folder / "daemon.yaml"
        path.write_text(json.dumps(document, indent=1), encoding="utf-8")  # JSON is YAML
        pusher_log = logging.getLogger("pipeline.pusher")
        level = pusher_log.level
        pusher_log.setLevel(logging.ERROR)  # the store is down on purpose
        try:
            code = Daemon(load_config(path)).run()
        finally:
            pusher_log.setLevel(level)
        if code != 0:
            raise RuntimeError(f"the daemon failed on {', '.join(map(str, videos.values()))} (exit {code})")
        outbox = Outbox(folder / "outbox.sqlite")
        try:
            reports = [item.body for item in outbox.items() if item.kind == "report"]
        finally:
            outbox.close()
    return Counter((str(r["camera"]), str(r["violation_type"])) for r in reports)
