"""Inline SVG charts for the dashboards, computed on the server (no chart library, no CDN): the template
only draws the rectangles and labels prepared here."""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

from api.stats import DayCount

SERIES = ("created", "dispatched", "closed")
WIDTH, HEIGHT = 900, 260  # viewBox units; the SVG scales to its container's full width
PAD_LEFT, PAD_BOTTOM, PAD_TOP = 34, 22, 8


@dataclass(frozen=True)
class Bar:
    x: float
    y: float
    width: float
    height: float
    series: str
    value: int
    day: str


@dataclass(frozen=True)
class Tick:
    x: float
    y: float
    text: str


@dataclass(frozen=True)
class TrendChart:
    width: int
    height: int
    bars: list[Bar]
    x_labels: list[Tick]
    y_labels: list[Tick]
    baseline: float
    maximum: int
    plot_left: int = PAD_LEFT


def nice_ceiling(value: int) -> int:
    """The smallest 1/2/5 x 10^k at or above ``value`` (at least 1): round numbers on the axis."""
    if value <= 1:
        return 1
    magnitude = int(10 ** math.floor(math.log10(value)))
    for step in (1, 2, 5, 10):
        if step * magnitude >= value:
            return step * magnitude
    return 10 * magnitude


def trend_chart(days: Sequence[DayCount]) -> TrendChart:
    """Grouped bars per day: cases created, dispatched and closed."""
    top = nice_ceiling(max((getattr(d, s) for d in days for s in SERIES), default=0))
    plot_w, plot_h = WIDTH - PAD_LEFT, HEIGHT - PAD_BOTTOM - PAD_TOP
    baseline = PAD_TOP + plot_h
    slot = plot_w / max(len(days), 1)
    bar_w = slot * 0.8 / len(SERIES)
    bars = []
    for i, day in enumerate(days):
        for j, series in enumerate(SERIES):
            value = int(getattr(day, series))
            h = plot_h * value / top
            x = PAD_LEFT + i * slot + slot * 0.1 + j * bar_w
            bars.append(
                Bar(
                    round(x, 2),
                    round(baseline - h, 2),
                    round(bar_w, 2),
                    round(h, 2),
                    series,
                    value,
                    day.day.isoformat(),
                )
            )
    every = max(1, math.ceil(len(days) / 10))  # at most ~10 date labels
    x_labels = [
        Tick(round(PAD_LEFT + (i + 0.5) * slot, 2), HEIGHT - 6, d.day.strftime("%m-%d"))
        for i, d in enumerate(days)
        if i % every == 0
    ]
    fractions = (0, 0.5, 1) if top % 2 == 0 else (0, 1)  # whole numbers only on the axis
    y_labels = [Tick(PAD_LEFT - 4, round(baseline - plot_h * f, 2), str(round(top * f))) for f in fractions]
    return TrendChart(WIDTH, HEIGHT, bars, x_labels, y_labels, baseline, top)


def share(value: float | int | None, maximum: float | int) -> float:
    """``value`` as a percentage of ``maximum`` for CSS bar widths (0 when either is missing)."""
    if not value or not maximum:
        return 0.0
    return round(100.0 * float(value) / float(maximum), 1)
