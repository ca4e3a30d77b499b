"""Static change end to end: real footage with real garbage photos composited in (``datasets.composite``),
and an edge box that runs the REAL daemon on them against a live case store (``tests.pipeline.live_store``).

The scene: vtest.avi (Debian opencv-doc), one static-change zone over its lawn and paths (no class rules),
in make_world's place. A pile appears on the lawn once the zone's reference is learned and stays to the end.
The model (yolov8n, COCO) finds the pedestrians, which static change must ignore.

Constants, and why:

- ``SAMPLE_FPS`` 2: a rate the daemon's sampler uses on real cameras (``datasets.composite_score``'s default).
- ``APPEAR_S``: one second after the zone's reference is learned (``LEARN_S`` of frames): earlier, the pile
  would be part of the "empty" look, as a van parked from the start is.
- ``DWELL_S`` 5: short, so a test stays short. ``FIRST_SEEN_S`` 2, under it: the first-sight picture and the
  confirmation's are different frames, as in a real zone whose dwell is minutes (at the default 5 s, capped
  at the dwell, both events fall on one frame and the store keeps the one picture once). The pile starts
  "staying" (its incident's ``first_seen_at``) 9.6 s after it appears at 2 fps (measured: static change's
  evidence and stable box while people pass, then the tracker's), and is confirmed a dwell later: 14.6 s.
  ``DURATION_S`` leaves over 5 s more (10 analysed frames) before the clip ends.
"""

from __future__ import annotations

import datetime as dt
import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import select

from api.models import Sighting
from datasets.composite import START_TIME, ClipFiles, CompositeSpec, write_clip
from pipeline.cli import check_config
from pipeline.daemon import Daemon
from pipeline.static_change import LEARN_S
from tests.conftest import SHARED_DATA
from tests.pipeline.live_store import LiveStore

PHOTOS = SHARED_DATA / "photos" / "garbage-amsterdam"
PLACE = "110101001001001"  # make_world's place
CAMERA, ZONE = "vtest", "lawn"
ZONE_POLYGON = [[0.0, 0.3], [1.0, 0.3], [1.0, 1.0], [0.0, 1.0]]  # vtest: lawn and paths, no parking
SAMPLE_FPS = 2.0
CLIP_FPS = 5.0  # the composite's own rate; the daemon samples it at SAMPLE_FPS
APPEAR_S = LEARN_S + 1.0
DWELL_S = 5.0
FIRST_SEEN_S = 2.0
DURATION_S = APPEAR_S + 20.0
Box = tuple[float, float, float, float]
STATIC_ZONE: dict[str, Any] = {  # static change only: no class rules
    "id": ZONE,
    "place": PLACE,
    "polygon": ZONE_POLYGON,
    "static_change": {"dwell_s": DWELL_S, "report_as": "unknown_object"},
}


@dataclass(frozen=True)
class Pile:
    """A garbage photo (file name prefix), the part of it holding the pile, where it stands in vtest."""

    photo: str
    crop: Box
    ground_xy: tuple[float, float]  # bottom centre, normalised
    width: float = 0.1  # of the frame width: about 1.5 m on vtest's lawn


# Both on the lawn, where vtest's pedestrians pass now and then, ~0.55 of the frame width apart.
BAGS = Pile("mdc_photo_mdc_0e131d", (0.15, 0.15, 0.85, 0.85), (0.30, 0.80))
CARDBOARD = Pile("mdc_photo_mdc_81906a", (0.2, 0.35, 0.85, 0.95), (0.85, 0.97))


def photo(pile: Pile) -> Path:
    matches = sorted(PHOTOS.glob(f"{pile.photo}*.jpg"))
    if not matches:
        pytest.skip(f"{PHOTOS}/{pile.photo}*.jpg is missing (shared/ data beside the checkout)")
    return matches[0]


def footage(base: Path, out: Path, duration_s: float) -> ClipFiles:
    """The first ``duration_s`` of ``base`` as the composite clips are made, without a pile (scenario never,
    steady light and camera)."""
    spec = CompositeSpec(
        base, photo(BAGS), "never", fps=CLIP_FPS, duration_s=duration_s, ramp=False, shake=False
    )
    return write_clip(spec, out)


def composite(base: Path, pile: Pile, out: Path) -> ClipFiles:
    """``pile`` composited into ``base`` (vtest, or a clip that has a pile already): it appears at
    APPEAR_S and stays."""
    spec = CompositeSpec(
        base,
        photo(pile),
        "stays",
        fps=CLIP_FPS,
        duration_s=DURATION_S,
        appear_s=APPEAR_S,
        ground_xy=pile.ground_xy,
        pile_width=pile.width,
        crop=pile.crop,
        zone=tuple((x, y) for x, y in ZONE_POLYGON),
        dwell_s=DWELL_S,
    )
    return write_clip(spec, out)


def pile_box(clip: ClipFiles) -> Box:
    """The (last) pile's box from the clip's timeline, normalised."""
    timeline = json.loads(clip.timeline.read_text(encoding="utf-8"))
    x1, y1, x2, y2 = timeline["piles"][-1]["box"]
    return float(x1), float(y1), float(x2), float(y2)


def case_boxes(store: LiveStore, case_id: int) -> list[tuple[str, Box]]:
    """(class name, box normalised by the frame size the daemon reported) of the case's one report."""
    with store.sessions() as session:
        (sighting,) = session.scalars(select(Sighting).where(Sighting.case_id == case_id))
        boxes, (width, height) = sighting.boxes or [], sighting.payload["frame_wh"]
    return [
        (
            str(b["class_name"]),
            (b["xyxy"][0] / width, b["xyxy"][1] / height, b["xyxy"][2] / width, b["xyxy"][3] / height),
        )
        for b in boxes
    ]


def assert_pile_case(store: LiveStore, case_id: int, clip: ClipFiles) -> None:
    """Case ``case_id`` is the clip's (last) pile: a 9901 waiting for review, from its box, not before it
    appeared, confirmed a dwell after it started staying."""
    case = store.case(case_id)
    assert (case.violation_code, case.status, case.camera_code, case.zone_code) == (
        "9901",
        "pending_review",
        CAMERA,
        ZONE,
    )
    ((name, box),) = case_boxes(store, case_id)
    assert name == "unknown_object" and iou(box, pile_box(clip)) >= 0.5, "the case is the pile"
    assert case.first_seen_at is not None and case.confirmed_at is not None
    first, confirmed = clip_s(case.first_seen_at), clip_s(case.confirmed_at)
    assert APPEAR_S <= first <= DURATION_S - DWELL_S, f"first seen {first:.1f} s into the clip"
    assert DWELL_S <= confirmed - first <= DWELL_S + 1 / SAMPLE_FPS + 0.01, (first, confirmed)


def clip_s(at: dt.datetime) -> float:
    """Seconds into the clip of a stream time the daemon reported (the store keeps naive UTC on SQLite)."""
    aware = at if at.tzinfo else at.replace(tzinfo=dt.UTC)
    return (aware - START_TIME).total_seconds()


def iou(a: Box, b: Box) -> float:
    ix = max(0.0, min(a[2], b[2]) - max(a[0], b[0]))
    iy = max(0.0, min(a[3], b[3]) - max(a[1], b[1]))
    inter = ix * iy
    return inter / ((a[2] - a[0]) * (a[3] - a[1]) + (b[2] - b[0]) * (b[3] - b[1]) - inter)


class EdgeBox:
    """One edge box (one device key, one working folder) that runs the real daemon on a clip file, start to
    end, as often as a test needs: its outbox, zone cache and learned references persist between runs."""

    def __init__(
        self,
        folder: Path,
        store: LiveStore,
        model: Path,
        *,
        register: bool,
        zone: dict[str, Any] | None = None,
    ) -> None:
        self.folder, self.store, self.model = folder, store, model
        self.zone = zone or STATIC_ZONE
        folder.mkdir(parents=True, exist_ok=True)
        _, key = store.add_device(f"edge-{folder.name}", cameras=(CAMERA,) if register else ())
        self.key_file = folder / "device.key"
        self.key_file.write_text(key + "\n", encoding="utf-8")
        self.key_file.chmod(0o600)

    def config(self, video: Path) -> dict[str, Any]:
        return {
            "detector": {
                "model": str(self.model),
                "classes": {"car": "illegal_parking", "truck": "illegal_parking", "bus": "illegal_parking"},
                "batch_size": 4,
            },
            "store": {
                "url": self.store.url,
                "device_key_file": str(self.key_file),
                "outbox": str(self.folder / "outbox.sqlite"),
                "timeout_s": 5,
                "retry_base_s": 0.2,
                "retry_max_s": 1.0,
                "zone_sync_s": 1,  # suppressions travel with the zones: poll often
            },
            "cameras": [
                {
                    "id": CAMERA,
                    "url": str(video),
                    "sample": {"mode": "fps", "fps": SAMPLE_FPS},
                    "start_time": START_TIME.isoformat(),  # stream time = the clip's timeline
                    "zones": [self.zone],
                }
            ],
            "incidents": {"first_seen_after_s": FIRST_SEEN_S},
            "evidence": {"dir": str(self.folder / "evidence")},
            "verification": {"enabled": False},
            "metrics": {"port": 0},
            "scheduler": {"drain_timeout_s": 30},
        }

    def run(self, video: Path) -> Daemon:
        """Run the daemon over ``video`` to its end (the outbox drained); returns it for its metrics."""
        path = self.folder / "daemon.yaml"
        path.write_text(json.dumps(self.config(video), indent=1), encoding="utf-8")  # JSON is YAML
        daemon = Daemon(check_config(path))
        assert daemon.run() == 0
        return daemon

    def suppressed(self, daemon: Daemon, violation: str = "unknown_object") -> float:
        labels = {"camera": CAMERA, "zone": self.zone["id"], "violation": violation}
        return daemon.metrics.value("streetwatch_detections_suppressed_total", labels) or 0.0


@pytest.fixture(scope="session")
def bags_clip(tmp_path_factory: pytest.TempPathFactory, vtest_path: Path) -> ClipFiles:
    """vtest.avi with the bags pile appearing on the lawn at APPEAR_S (built once per test session)."""
    return composite(vtest_path, BAGS, tmp_path_factory.mktemp("bags-clip"))
