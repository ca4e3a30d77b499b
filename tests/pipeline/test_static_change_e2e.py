"""Static change end to end on real footage: the REAL daemon (sources, yolov8n for people and vehicles,
pipeline.static_change, rules, evidence, outbox, pusher) against a REAL case store
(tests/pipeline/live_store.py), each file read once as fast as it decodes.

- vtest.avi, zones over the lawn and paths and over the parked van: no case from the pedestrians in 80 s, and
  the van, there from the first frame, is learned as part of the empty look (never an appearance).
- Composite clips (datasets.composite: a real Amsterdam garbage photo pasted into vtest): a pile that stays
  makes exactly one unknown_object case, matched by the composite scorer; a pile that leaves before the
  dwell makes none; no pile under a light ramp and camera shake makes none.
- car-detection.mp4 with static change over the whole lot: cars drive in, stop briefly and leave; with a
  dwell longer than their stops, no case.

Slow (real decoding and inference): marked ``e2e``. Times noted per test are on the 2-core development VM
under load (average ~6); about 70 s in all when it is idle.
"""

from __future__ import annotations

import datetime as dt
import json
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt
import pytest
from sqlalchemy import select

from api.models import Case, ViolationType
from datasets.composite import CAMERA_ID, CompositeSpec, write_clip
from datasets.composite_score import (
    daemon_config,
    load_composite_timeline,
    score_piles,
    static_change_zone,
)
from datasets.scenes.score import CaseEvent
from detector.detections import Detections
from pipeline.config import load_config
from pipeline.daemon import Daemon
from pipeline.protocols import StaticChangeLike, StaticZone
from pipeline.static_changes import default_factory
from tests.conftest import SHARED_DATA
from tests.pipeline.live_store import LiveStore
from tests.pipeline.test_daemon_e2e import write_config

pytestmark = pytest.mark.e2e

# --- the daemon with a window on its static-change detector ------------------------------------------------


@dataclass
class Seen:
    """What a camera's real static-change detector reported, frame by frame (stream time, frame-px box)."""

    reports: list[tuple[dt.datetime, tuple[float, float, float, float]]] = field(default_factory=list)
    states: dict[str, str] = field(default_factory=dict)


class Watched:
    """The real detector (``pipeline.static_changes.default_factory``), its reports recorded in ``seen``."""

    def __init__(self, inner: StaticChangeLike, seen: Seen) -> None:
        self.inner, self.seen = inner, seen

    def update(
        self, frame_bgr: npt.NDArray[np.uint8], stream_time: dt.datetime, moving_xyxy: npt.NDArray[np.float32]
    ) -> Detections:
        found = self.inner.update(frame_bgr, stream_time, moving_xyxy)
        self.seen.reports += [(stream_time, (x0, y0, x1, y1)) for x0, y0, x1, y1 in found.xyxy.tolist()]
        self.seen.states = self.inner.state()
        return found

    def __getattr__(self, name: str) -> Any:
        return getattr(self.inner, name)


def run_watched(config_path: Path) -> tuple[Daemon, dict[str, Seen]]:
    """Run the daemon on ``config_path`` to the end of its files; what each camera's detector reported."""
    seen: dict[str, Seen] = {}

    def factory(
        camera_id: str, zones: Sequence[StaticZone], class_id: int, reference_dir: Path | None
    ) -> StaticChangeLike:
        seen[camera_id] = Seen()
        return Watched(default_factory(camera_id, zones, class_id, reference_dir), seen[camera_id])

    daemon = Daemon(load_config(config_path), static_factory=factory)
    assert daemon.run() == 0  # the files end, the outbox is drained
    return daemon, seen


def sampled(daemon: Daemon, camera: str) -> float:
    """Frames the camera's sampler took: analysed, or skipped by the source because nothing changed."""
    analysed = daemon.metrics.value("streetwatch_frames_analysed_total", {"camera": camera}) or 0
    labels = {"camera": camera, "reason": "unchanged"}
    return analysed + (daemon.metrics.value("streetwatch_frames_skipped_total", labels) or 0)


def store_case_events(store: LiveStore, start: dt.datetime) -> list[CaseEvent]:
    """The store's cases as the scorers see them: violation type (pipeline), zone, seconds from ``start``."""
    with store.sessions() as session:
        codes = dict(session.execute(select(ViolationType.code, ViolationType.pipeline_type)).all())
        cases = list(session.scalars(select(Case).order_by(Case.id)))
    return [
        CaseEvent(
            case.id,
            codes.get(case.violation_code, case.violation_code),
            case.zone_code or "",
            (aware(case.first_seen_at) - start).total_seconds(),
            (aware(case.confirmed_at) - start).total_seconds(),
        )
        for case in cases
    ]


def aware(value: dt.datetime | None) -> dt.datetime:
    assert value is not None
    return value if value.tzinfo else value.replace(tzinfo=dt.UTC)


def iou(a: Sequence[float], b: Sequence[float]) -> float:
    ix = max(0.0, min(a[2], b[2]) - max(a[0], b[0]))
    iy = max(0.0, min(a[3], b[3]) - max(a[1], b[1]))
    inter = ix * iy
    return inter / ((a[2] - a[0]) * (a[3] - a[1]) + (b[2] - b[0]) * (b[3] - b[1]) - inter)


def static_camera(
    camera_id: str, url: Path, zones: list[dict[str, Any]], fps: float = 2.0, **extra: Any
) -> dict[str, Any]:
    return {"id": camera_id, "url": str(url), "sample": {"mode": "fps", "fps": fps}, "zones": zones, **extra}


# --- vtest.avi: pedestrians and a parked van ------------------------------------------------------------

LAWN_AND_PATHS = [[0.0, 0.3], [1.0, 0.3], [1.0, 1.0], [0.0, 1.0]]
VAN_CORNER = [[0.7, 0.0], [1.0, 0.0], [1.0, 0.3], [0.7, 0.3]]  # the van and the car beside it, top right
# Short dwells: a region that stood even 15 s would be a case. People are the only thing that changes here.
VTEST_DWELL_S = 15.0


def test_vtest_pedestrians_make_no_case_and_the_parked_van_is_no_appearance(
    tmp_path: Path, store: LiveStore, yolov8_int8: Path, vtest_path: Path
) -> None:
    """~50 s on the 2-core VM."""
    zones = [
        static_change_zone("lawn", "110101001001002", LAWN_AND_PATHS, dwell_s=VTEST_DWELL_S),
        static_change_zone("van", "110101001001001", VAN_CORNER, dwell_s=VTEST_DWELL_S),
    ]
    cameras = [static_camera("vtest", vtest_path, zones)]
    daemon, seen = run_watched(write_config(tmp_path, store, yolov8_int8, cameras))

    assert sampled(daemon, "vtest") >= 155  # 79.5 s at 2 fps
    assert seen["vtest"].states == {"lawn": "learned", "van": "learned"}
    assert seen["vtest"].reports == [], "a pedestrian or the van was reported as a new object"
    assert store.case_count() == 0


# --- composite clips: a real garbage photo in vtest -------------------------------------------------------

PHOTO = SHARED_DATA / "photos" / "garbage-amsterdam" / "mdc_photo_mdc_0e131d_1519086692088_1519086707176.jpg"
# Short clips at half vtest's width keep three daemon runs near a minute on 2 cores. The pile appears after
# the detector's 10 s of learning (pipeline.static_change.LEARN_S). It stands on a path that people cross
# every few seconds and the model now and then calls it a "car" (both mask it as moving), so it is first
# reported ~11 s after it appears: the clip leaves that, the dwell and 10 s of margin. "brief" leaves after
# 15 s: seen, but for far less than the dwell.
CLIP_S, APPEAR_S, COMPOSITE_DWELL_S, BRIEF_S = 55.0, 12.0, 20.0, 15.0
FOUND_WITHIN_S = 15.0  # first report after the pile appears: the ~11 s measured, plus a margin
CLIP_WIDTH, CLIP_FPS = 384, 4.0
COMPOSITE_PLACE = "310101001001099"


@pytest.fixture(scope="session")
def composite_clips(tmp_path_factory: pytest.TempPathFactory, vtest_path: Path) -> dict[str, Path]:
    """scenario -> the clip's timeline.json (the clip beside it), built once per session."""
    if not PHOTO.is_file():
        pytest.skip(f"{PHOTO} is missing (shared/ data beside the checkout; present in CI)")
    root = tmp_path_factory.mktemp("composite-clips")
    built: dict[str, Path] = {}
    for scenario in ("stays", "brief", "never"):
        spec = CompositeSpec(
            vtest_path,
            PHOTO,
            scenario,
            fps=CLIP_FPS,
            width=CLIP_WIDTH,
            duration_s=CLIP_S,
            appear_s=APPEAR_S,
            brief_s=BRIEF_S,
            dwell_s=COMPOSITE_DWELL_S,
        )
        built[scenario] = write_clip(spec, root / scenario).timeline
    return built


def run_composite(
    tmp_path: Path, store: LiveStore, model: Path, timeline_path: Path
) -> tuple[list[CaseEvent], Seen]:
    """The daemon on a composite clip with the scorer's own config (as ``scenes composite-garbage`` writes
    it); the store's cases and what static change reported."""
    _, key = store.add_device("composite-box")
    key_file = tmp_path / "device.key"
    key_file.write_text(key + "\n", encoding="utf-8")
    key_file.chmod(0o600)
    timeline = load_composite_timeline(timeline_path)
    config = daemon_config(
        timeline,
        video=timeline_path.parent / "clip.mp4",
        model=model,
        camera_id=CAMERA_ID,
        place=COMPOSITE_PLACE,
        store_url=store.url,
        device_key_file=key_file,
        work_dir=tmp_path / "edge",
    )
    path = tmp_path / "daemon.yaml"
    path.write_text(json.dumps(config, indent=1), encoding="utf-8")
    _, seen = run_watched(path)
    return store_case_events(store, timeline.start_time), seen[CAMERA_ID]


def test_a_composited_pile_that_stays_makes_exactly_one_case(
    tmp_path: Path, store: LiveStore, yolov8_int8: Path, composite_clips: dict[str, Path]
) -> None:
    """~35 s (and ~30 s for building the three clips once)."""
    timeline = load_composite_timeline(composite_clips["stays"])
    cases, seen = run_composite(tmp_path, store, yolov8_int8, composite_clips["stays"])
    result = score_piles(timeline, cases)
    assert (len(result.matches), result.missed, result.false_cases) == (1, (), ()), result
    assert len(cases) == 1 and cases[0].violation_type == "unknown_object", cases
    (pile,) = timeline.piles
    _, case = result.matches[0]
    assert pile.on_s <= case.first_seen_s <= pile.on_s + FOUND_WITHIN_S
    assert case.confirmed_s - case.first_seen_s == pytest.approx(COMPOSITE_DWELL_S, abs=1.0)  # 2 fps
    # Every report is the pile: nothing beside it, no passer-by.
    pile_px = pixels(pile.box, timeline_path=composite_clips["stays"])
    assert seen.reports and all(iou(box, pile_px) > 0.5 for _, box in seen.reports), seen.reports[:3]


@pytest.mark.parametrize("scenario", ["brief", "never"])
def test_a_pile_gone_before_the_dwell_or_none_under_light_ramp_and_shake_makes_no_case(
    tmp_path: Path, store: LiveStore, yolov8_int8: Path, composite_clips: dict[str, Path], scenario: str
) -> None:
    """~35 s each."""
    timeline = load_composite_timeline(composite_clips[scenario])
    cases, seen = run_composite(tmp_path, store, yolov8_int8, composite_clips[scenario])
    assert cases == []
    if scenario == "never":
        assert seen.reports == [], "the light ramp or the shake was reported as an object"
        return
    # The brief pile is seen (on the pile, while it is there, and a moment after: evidence decays over
    # ~1.5 s and is held under passers-by), but for far less than the dwell.
    (pile,) = timeline.piles
    pile_px = pixels(pile.box, timeline_path=composite_clips[scenario])
    times = [(t - timeline.start_time).total_seconds() for t, _ in seen.reports]
    assert seen.reports and all(iou(box, pile_px) > 0.5 for _, box in seen.reports)
    assert pile.on_s <= min(times) and max(times) <= pile.off_s + 3.0, times
    assert max(times) - min(times) < COMPOSITE_DWELL_S


def pixels(box: tuple[float, float, float, float], *, timeline_path: Path) -> tuple[float, ...]:
    """A timeline's normalised box in the clip's pixels."""
    size = json.loads(timeline_path.read_text(encoding="utf-8"))
    w, h = size["width"], size["height"]
    return (box[0] * w, box[1] * h, box[2] * w, box[3] * h)


# --- car-detection.mp4: cars that drive in, slow down and leave ------------------------------------------

WHOLE_LOT = [[0.0, 0.0], [1.0, 0.0], [1.0, 1.0], [0.0, 1.0]]
# The shortest dwell a zone accepts (StaticChangeConfig.dwell_s >= 1): far shorter than any real use, and
# still longer than every stop in the clip (see the test's docstring).
LOT_DWELL_S = 1.0


def test_cars_that_stop_only_briefly_in_the_lot_make_no_case(
    tmp_path: Path, store: LiveStore, yolov8_int8: Path, car_video: Path
) -> None:
    """~16 s. The longest stop in the clip, measured with the static-change detector's own evidence (run on
    every frame at 12.5 fps, no boxes: a car's pixels gain evidence only while they differ from the empty
    lot and did not move since the previous frame): no still-and-changed blob larger than 87 working px
    (0.15% of the frame; a car covers 2000+) ever holds 0.1 s of evidence. Cars slow down and turn but
    never stand for one frame interval (80 ms), so the issue's "a dwell shorter than a stop makes one case
    per stop" has no stop of 1 s or more (the shortest dwell) to test on this clip; the synthetic standing
    car of tests/pipeline/test_static_change.py covers a stop that lasts."""
    zones = [static_change_zone("lot", "110101001001003", WHOLE_LOT, dwell_s=LOT_DWELL_S)]
    daemon, seen = run_watched(
        write_config(tmp_path, store, yolov8_int8, [static_camera("lot", car_video, zones)])
    )

    assert sampled(daemon, "lot") >= 58  # 30 s at 2 fps
    assert seen["lot"].states["lot"] in ("learned", "relearning")  # the exposure jumps as cars pass
    assert seen["lot"].reports == []
    assert store.case_count() == 0
