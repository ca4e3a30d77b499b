"""Composite clips: a real garbage photo in real footage (vtest.avi), where and when the timeline says, behind
the people who walk past it, lit like the pavement it stands on; the light ramp and shake of the 'never'
clip; deterministic files that decode at the stated rate and length."""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path

import av
import cv2
import numpy as np
import numpy.typing as npt
import pytest

from datasets.composite import (
    SHAKE_MAX_PX,
    CompositeClip,
    CompositeError,
    CompositeSpec,
    light_gain,
    write_clip,
)
from detector import Detector
from tests.conftest import REPO

PHOTOS = REPO.parent / "shared" / "data" / "photos" / "garbage-amsterdam"
BAGS = PHOTOS / "mdc_photo_mdc_0e131d_1519086692088_1519086707176.jpg"
DURATION_S, APPEAR_S, BRIEF_S = 30.0, 8.0, 10.0
# vtest.avi, sampled at 5 fps: two people walk across the pile's spot, nearer the camera than its base.
CROSSINGS = [*range(96, 102), *range(123, 129)]


@dataclass
class Rendered:
    clip: CompositeClip
    inside: list[float] = field(default_factory=list)  # mean |composite - base| inside the pile's box
    outside: list[int] = field(default_factory=list)  # max |composite - base| outside the pasted patch
    kept: dict[int, tuple[npt.NDArray[np.uint8], npt.NDArray[np.uint8]]] = field(default_factory=dict)

    def box_px(self) -> tuple[int, int, int, int]:
        w, h = self.clip.size
        x0, y0, x1, y1 = self.clip.placed.box(w, h)
        return round(x0 * w), round(y0 * h), round(x1 * w), round(y1 * h)


def render(spec: CompositeSpec, keep: list[int]) -> Rendered:
    out = Rendered(CompositeClip(spec))
    x0, y0, x1, y1 = out.box_px()
    p = out.clip.placed
    for frame in out.clip.frames():
        diff = cv2.absdiff(frame.image, frame.base).max(axis=2)
        out.inside.append(float(diff[y0:y1, x0:x1].mean()))
        diff[p.y0 : p.y0 + p.alpha.shape[0], p.x0 : p.x0 + p.alpha.shape[1]] = 0
        out.outside.append(int(diff.max()))
        if frame.index in keep:
            out.kept[frame.index] = (frame.image, frame.base)
    return out


@pytest.fixture(scope="module")
def photo() -> Path:
    if not BAGS.is_file():
        pytest.skip(f"{BAGS} is missing (shared/ data beside the checkout; present in CI)")
    return BAGS


@pytest.fixture(scope="module")
def stays(vtest_path: Path, photo: Path) -> Rendered:
    spec = CompositeSpec(vtest_path, photo, "stays", duration_s=DURATION_S, appear_s=APPEAR_S)
    return render(spec, [*CROSSINGS, 60])


@pytest.fixture(scope="module")
def brief(vtest_path: Path, photo: Path) -> Rendered:
    spec = CompositeSpec(
        vtest_path, photo, "brief", duration_s=DURATION_S, appear_s=APPEAR_S, brief_s=BRIEF_S
    )
    return render(spec, [])


@pytest.mark.parametrize("scenario", ["stays", "brief"])
def test_the_pile_is_in_its_box_exactly_while_the_timeline_says(
    scenario: str, request: pytest.FixtureRequest
) -> None:
    rendered: Rendered = request.getfixturevalue(scenario)
    clip = rendered.clip
    pile = clip.timeline(Path("clip.mp4"))["piles"][0]  # type: ignore[index]
    off = DURATION_S if scenario == "stays" else APPEAR_S + BRIEF_S
    assert (pile["on_s"], pile["off_s"]) == (APPEAR_S, off)
    times = np.arange(clip.count) / clip.spec.fps
    on = (times >= APPEAR_S) & (times < off)
    inside = np.array(rendered.inside)
    # On: the pile changes its box by tens of gray levels (a passer-by in front hides part of it for a few
    # frames, so the floor is the median's half); off: not one pixel changes.
    assert np.median(inside[on]) > 30 and inside[on].min() > 10, inside[on]
    assert not inside[~on].any()
    assert not any(rendered.outside), "pixels outside the pasted patch changed"


def test_people_who_walk_past_nearer_the_camera_stay_in_front_of_the_pile(
    stays: Rendered, yolov8_int8: Path
) -> None:
    """Independent evidence: the real COCO model's person boxes (not the clip's own motion mask)."""
    detector = Detector(yolov8_int8, warmup=False)
    person = detector.class_names.index("person")
    x0, y0, x1, y1 = stays.box_px()
    checked = 0
    for index in CROSSINGS:
        image, base = stays.kept[index]
        found = detector(image)
        for (px0, py0, px1, py1), class_id in zip(found.xyxy, found.class_id, strict=True):
            ix0, iy0, ix1, iy1 = max(x0, int(px0)), max(y0, int(py0)), min(x1, int(px1)), min(y1, int(py1))
            if class_id != person or py1 < y1 or ix1 - ix0 < 8 or iy1 - iy0 < 8:
                continue  # not a person, feet behind the pile's base, or barely overlapping it
            same = cv2.absdiff(image, base)[iy0:iy1, ix0:ix1].max(axis=2) <= 2
            # The person's silhouette fills about half their box; without re-pasting, ~0% would match.
            assert same.mean() > 0.35, (index, same.mean())
            checked += 1
    assert checked >= 6, "the crossings in vtest.avi were not found"


def test_the_pile_is_lit_like_the_pavement_around_it(stays: Rendered, photo: Path) -> None:
    image, _ = stays.kept[60]  # nobody near the pile at 12 s
    p = stays.clip.placed
    rows, cols = slice(p.y0, p.y0 + p.alpha.shape[0]), slice(p.x0, p.x0 + p.alpha.shape[1])
    weights = p.alpha[:, :, None] / p.alpha.sum()
    pile = (image[rows, cols] * weights).sum(axis=(0, 1))
    ring = stays.clip.background[
        p.y0 - 20 : p.y0 + p.alpha.shape[0] + 20, p.x0 - 30 : p.x0 + p.alpha.shape[1] + 30
    ]
    ground = ring.reshape(-1, 3).astype(np.float64).mean(axis=0)
    raw = np.asarray(cv2.imread(str(photo))).reshape(-1, 3).mean(axis=0)
    assert np.abs(raw - ground).min() > 50  # the photo as taken would stand out by its exposure alone
    # 8 gray levels: the pavement's own unevenness between the ring and the pile's footprint.
    assert np.abs(pile - ground).max() < 8, (pile, ground)


def test_never_no_pile_but_the_light_ramps_and_the_camera_shakes(vtest_path: Path, photo: Path) -> None:
    clip = CompositeClip(CompositeSpec(vtest_path, photo, "never", duration_s=DURATION_S, seed=3))
    assert clip.timeline(Path("clip.mp4"))["piles"] == []
    shifts, gains = [], []
    for frame, (_, original) in zip(clip.frames(), clip.footage(), strict=True):
        assert np.array_equal(frame.image, frame.base)
        a, b = cv2.cvtColor(original, cv2.COLOR_BGR2GRAY), cv2.cvtColor(frame.image, cv2.COLOR_BGR2GRAY)
        (dx, dy), _ = cv2.phaseCorrelate(a.astype(np.float64), b.astype(np.float64))
        shifts.append(max(abs(dx), abs(dy)))
        mid = (a > 40) & (a < 160)  # neither crushed nor clipped at any gain of the ramp
        gains.append((float(b[mid].mean()) / float(a[mid].mean()), light_gain(frame.t, clip.duration_s)))
    assert max(shifts) <= SHAKE_MAX_PX + 0.5 and np.mean(np.array(shifts) >= 1) > 0.3, shifts
    measured, expected = np.array(gains).T
    assert expected.min() == pytest.approx(0.55, abs=0.02) and expected[-1] > 1.15
    assert np.abs(measured - expected).max() < 0.06


def test_clips_are_deterministic_h264_at_the_stated_rate_and_length(
    vtest_path: Path, photo: Path, tmp_path: Path
) -> None:
    def build(seed: int, where: str) -> Path:
        spec = CompositeSpec(vtest_path, photo, "stays", seed=seed, duration_s=6, appear_s=2, shake=True)
        return write_clip(spec, tmp_path / where).video

    first, again, other = build(1, "a"), build(1, "b"), build(2, "c")
    assert first.read_bytes() == again.read_bytes()
    assert first.read_bytes() != other.read_bytes()
    with av.open(str(first)) as container:
        stream = container.streams.video[0]
        assert stream.codec_context.name == "h264"
        assert float(stream.average_rate or 0) == 5.0
        assert (stream.codec_context.width, stream.codec_context.height) == (640, 480)
        assert sum(1 for _ in container.decode(video=0)) == 30
    timeline = json.loads((tmp_path / "a" / "timeline.json").read_text(encoding="utf-8"))
    assert timeline["frames"] == 30 and timeline["fps"] == 5.0 and timeline["shake_px"] == SHAKE_MAX_PX
    assert timeline["piles"][0]["on_s"] == 2 and timeline["piles"][0]["off_s"] == 6


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ({"scenario": "sometimes"}, "scenario must be one of"),
        ({"crop": (0.8, 0.1, 0.2, 0.9)}, "crop"),
        ({"ground_xy": (0.5, 0.02)}, "does not fit"),
        ({"photo": Path("/nonexistent.jpg")}, "not a readable image"),
        ({"base": Path("/nonexistent.avi")}, "base video not found"),
        ({"appear_s": 500.0}, "is not before the clip's end"),
    ],
)
def test_bad_specs_say_what_is_wrong(
    vtest_path: Path, photo: Path, change: dict[str, object], message: str
) -> None:
    spec = {"base": vtest_path, "photo": photo, "duration_s": 6.0, **change}
    with pytest.raises(CompositeError, match=message):
        CompositeClip(CompositeSpec(**spec))  # type: ignore[arg-type]
