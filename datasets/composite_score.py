"""Score a daemon run on a composite clip (datasets.composite) and write the daemon config for one.

Expected: exactly one ``report_as`` case in the clip's zone per pile that stays past the dwell, and none for
a pile that leaves before it (or for a clip without a pile). A case matches a pile when its first sighting
falls in the pile's interval and its confirmation after the dwell, both widened by a tolerance; each pile
matches at most one case, so a second case for the same pile is a false case.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from datasets.scenes.score import CaseEvent, Score, TimelineError, read_timeline_object, timeline_field

DEFAULT_TOLERANCE_S = 10.0
REPORT_AS = "unknown_object"
# Smallest change reported, as a share of the frame: the design's default. The composited pile covers about
# 0.8% of the frame (datasets.composite's defaults), four times more.
MIN_AREA = 0.002


@dataclass(frozen=True)
class Pile:
    id: str
    on_s: float
    off_s: float
    box: tuple[float, float, float, float]


@dataclass(frozen=True)
class CompositeTimeline:
    start_time: dt.datetime
    duration_s: float
    dwell_s: float
    zone: str
    zone_polygon: tuple[tuple[float, float], ...]
    piles: tuple[Pile, ...]

    def expected(self, tolerance_s: float = DEFAULT_TOLERANCE_S) -> tuple[Pile, ...]:
        """Piles that stay long enough to be confirmed (the dwell plus a tolerance for sampling)."""
        return tuple(p for p in self.piles if p.off_s - p.on_s >= self.dwell_s + tolerance_s)


PileScore = Score[Pile]  # cases matched to piles (datasets.scenes.score.Score)


def load_composite_timeline(path: Path) -> CompositeTimeline:
    """Read a composite clip's ``timeline.json``; errors name the file and the field."""
    data, start = read_timeline_object(path, "start_time, zone and piles")
    where = str(path)
    zone = timeline_field(data, "zone", dict, where)
    polygon = timeline_field(zone, "polygon", list, f"{where}: zone")
    piles = []
    for index, item in enumerate(timeline_field(data, "piles", list, where)):
        at = f"{where}: piles[{index}]"
        if not isinstance(item, dict):
            raise TimelineError(f"{at}: expected an object")
        box = timeline_field(item, "box", list, at)
        if len(box) != 4:
            raise TimelineError(f"{at}: box must be [x0, y0, x1, y1], got {box!r}")
        pile = Pile(
            str(timeline_field(item, "id", str, at)),
            timeline_field(item, "on_s", float, at),
            timeline_field(item, "off_s", float, at),
            (float(box[0]), float(box[1]), float(box[2]), float(box[3])),
        )
        if pile.off_s < pile.on_s:
            raise TimelineError(f"{at}: off_s {pile.off_s} is before on_s {pile.on_s}")
        piles.append(pile)
    return CompositeTimeline(
        start,
        timeline_field(data, "duration_s", float, where),
        timeline_field(data, "dwell_s", float, where),
        str(timeline_field(zone, "id", str, f"{where}: zone")),
        tuple((float(x), float(y)) for x, y in polygon),
        tuple(piles),
    )


def score_piles(
    timeline: CompositeTimeline,
    cases: list[CaseEvent],
    *,
    report_as: str = REPORT_AS,
    tolerance_s: float = DEFAULT_TOLERANCE_S,
) -> PileScore:
    """Match ``report_as`` cases in the clip's zone to the piles that stay past the dwell (earliest first).
    Cases of other types or zones are not the static-change detector's and are left out."""
    free = list(timeline.expected(tolerance_s))
    matches, false_cases = [], []
    ours = [c for c in cases if c.violation_type == report_as and c.zone == timeline.zone]
    for case in sorted(ours, key=lambda c: (c.first_seen_s, c.case_id)):
        eligible = [
            p
            for p in free
            if p.on_s - tolerance_s <= case.first_seen_s <= p.off_s + tolerance_s
            and p.on_s + timeline.dwell_s - tolerance_s <= case.confirmed_s <= p.off_s + tolerance_s
        ]
        if not eligible:
            false_cases.append(case)
            continue
        best = min(eligible, key=lambda p: abs(p.on_s - case.first_seen_s))
        free.remove(best)
        matches.append((best, case))
    return PileScore(tuple(matches), tuple(free), tuple(false_cases))


def report(result: PileScore) -> str:
    lines = [
        f"  hit   case {case.case_id}: {pile.id} ({pile.on_s:.0f}-{pile.off_s:.0f} s), "
        f"seen {case.first_seen_s:.0f} s, confirmed {case.confirmed_s:.0f} s"
        for pile, case in result.matches
    ]
    lines += [f"  miss  {p.id} ({p.on_s:.0f}-{p.off_s:.0f} s): no case" for p in result.missed]
    lines += [
        f"  false case {c.case_id}: seen {c.first_seen_s:.0f} s, confirmed {c.confirmed_s:.0f} s: "
        "no pile stays then"
        for c in result.false_cases
    ]
    hits, missed = len(result.matches), len(result.missed)
    cases = hits + len(result.false_cases)
    lines.append(
        f"precision {result.precision:.2f} ({hits}/{cases} cases), "
        f"recall {result.recall:.2f} ({hits}/{hits + missed} piles)"
    )
    return "\n".join(lines)


def static_change_zone(
    zone_id: str,
    place: str,
    polygon: list[list[float]] | tuple[tuple[float, float], ...],
    *,
    dwell_s: float,
    min_area: float = MIN_AREA,
    report_as: str = REPORT_AS,
) -> dict[str, Any]:
    """A daemon YAML zone judged by static change alone (no class rules)."""
    return {
        "id": zone_id,
        "place": place,
        "polygon": [[float(x), float(y)] for x, y in polygon],
        "static_change": {"dwell_s": dwell_s, "report_as": report_as, "min_area": min_area},
    }


def daemon_config(
    timeline: CompositeTimeline,
    *,
    video: Path,
    model: Path,
    camera_id: str,
    place: str,
    store_url: str,
    device_key_file: Path,
    work_dir: Path,
    fps: float = 2.0,
    dwell_s: float | None = None,
) -> dict[str, Any]:
    """A daemon configuration for a composite clip: the file read once, unpaced, stream time from the
    timeline's start; the model only finds people and vehicles (what static change must ignore)."""
    zone = static_change_zone(
        timeline.zone,
        place,
        timeline.zone_polygon,
        dwell_s=dwell_s if dwell_s is not None else timeline.dwell_s,
    )
    return {
        "detector": {
            "model": str(model),
            "provider": "cpu",
            "classes": {"car": "illegal_parking", "truck": "illegal_parking", "bus": "illegal_parking"},
            "batch_size": 4,
        },
        "store": {
            "url": store_url,
            "device_key_file": str(device_key_file),
            "outbox": str(work_dir / "outbox.sqlite"),
            "retry_base_s": 0.5,
            "retry_max_s": 5.0,
        },
        "cameras": [
            {
                "id": camera_id,
                "url": str(video),
                "sample": {"mode": "fps", "fps": fps},
                "start_time": timeline.start_time.isoformat(),
                "zones": [zone],
            }
        ],
        "evidence": {"dir": str(work_dir / "evidence"), "blur_persons": True},
        "verification": {"enabled": False},
        "metrics": {"port": 0},
    }
