"""Inline SVG charts for the review, written as plain strings: no JavaScript, no fonts, no fetches.

A report mailed to a team or printed for a meeting must render anywhere, so each chart is one
self-contained `<svg class="chart">` with its axes, tick labels, legend and data drawn as plain
shapes, every text escaped. Two kinds cover the review:

- `line_chart`: time on x, lines (`<polyline class="series">`), dashed horizontal thresholds,
  shaded intervals (alerts) and vertical markers (releases);
- `state_chart`: a timeline of coloured intervals (`<rect class="state">`), for the autonomy state.

    >>> from agentslo.review.svg import Line, line_chart
    >>> svg = line_chart("Budget left", [Line("actual", ((0, 1.0), (3600, 0.8)), "#1f77b4")],
    ...                  y_label="budget left", y_format="{:.0%}")
    >>> svg.startswith('<svg class="chart line"')
    True
"""

from __future__ import annotations

import math
import time
from collections.abc import Sequence
from dataclasses import dataclass
from html import escape
from typing import Final

WIDTH: Final = 720
HEIGHT: Final = 240
STATE_HEIGHT: Final = 130  # a timeline is one band: it needs less room than a line chart
# Plot area inside the chart: room on the left for y tick labels, below for dates and the legend.
LEFT, RIGHT, TOP, BOTTOM = 64, 16, 28, 58
FONT: Final = 'font-family="sans-serif" font-size="11"'
TEXT_COLOUR: Final = "#333"
GRID_COLOUR: Final = "#e5e5e5"
RELEASE_COLOUR: Final = "#7b3294"
# Autonomy states, healthy to exhausted, as a traffic light people already read.
STATE_COLOURS: Final = {
    "healthy": "#2ca02c",
    "warning": "#f0b400",
    "critical": "#e0651a",
    "exhausted": "#c8102e",
}


@dataclass(frozen=True)
class Line:
    """A series drawn as a line; `dash` draws it dashed (an ideal or reference line)."""

    name: str
    points: Sequence[tuple[float, float]]
    colour: str
    dash: bool = False


@dataclass(frozen=True)
class HLine:
    """A horizontal reference (an alert threshold) across the plot, named in the legend."""

    name: str
    y: float
    colour: str


@dataclass(frozen=True)
class Marker:
    """A vertical marker at a moment (a release), labelled at the top of the plot."""

    label: str
    at: float


@dataclass(frozen=True)
class Span:
    """A shaded time interval (an alert firing), named in the legend by `name`."""

    name: str
    start: float
    end: float
    colour: str


def _ticks(low: float, high: float, count: int = 5) -> list[float]:
    """Round tick values covering [low, high] (1, 2 or 5 times a power of ten apart)."""
    if high <= low:
        return [low]
    raw = (high - low) / count
    magnitude = 10 ** math.floor(math.log10(raw))
    step = next(m * magnitude for m in (1, 2, 5, 10) if m * magnitude >= raw)
    first = math.ceil(low / step) * step
    return [first + i * step for i in range(int((high - first) / step + 1e-9) + 1)]


def _time_ticks(start: float, end: float) -> list[float]:
    """Midnights (UTC) between start and end, thinned to at most eight labels."""
    day = 86400
    first = math.ceil(start / day) * day
    days = [float(t) for t in range(int(first), int(end) + 1, day)]
    stride = max(1, math.ceil(len(days) / 8))
    return days[::stride] or [start]


def _day_label(t: float) -> str:
    return time.strftime("%b %d", time.gmtime(t))


class _Frame:
    """Maps data to pixels inside the plot area and writes the axes."""

    def __init__(self, x0: float, x1: float, y0: float, y1: float, height: int = HEIGHT) -> None:
        self.x0, self.x1 = x0, (x1 if x1 > x0 else x0 + 1)
        self.y0, self.y1 = y0, (y1 if y1 > y0 else y0 + 1)
        self.w, self.h = WIDTH - LEFT - RIGHT, height - TOP - BOTTOM

    def x(self, t: float) -> float:
        return LEFT + (t - self.x0) / (self.x1 - self.x0) * self.w

    def y(self, v: float) -> float:
        clamped = min(max(v, self.y0), self.y1)
        return TOP + (1 - (clamped - self.y0) / (self.y1 - self.y0)) * self.h

    def axes(self, y_label: str = "", y_format: str = "", y_ticks: Sequence[float] = ()) -> list[str]:
        out = [
            f'<rect x="{LEFT}" y="{TOP}" width="{self.w}" height="{self.h}" fill="#fff" stroke="#999"/>',
        ]
        for v in y_ticks:
            y = self.y(v)
            out.append(
                f'<line x1="{LEFT}" x2="{LEFT + self.w}" y1="{y:.1f}" y2="{y:.1f}" stroke="{GRID_COLOUR}"/>'
            )
            out.append(
                f'<text x="{LEFT - 6}" y="{y + 4:.1f}" text-anchor="end" fill="{TEXT_COLOUR}">'
                f"{escape(y_format.format(v))}</text>"
            )
        for t in _time_ticks(self.x0, self.x1):
            x = self.x(t)
            # a label at the plot's right edge would be cut off: end it there instead of centring it
            anchor = "end" if x > LEFT + self.w - 20 else "middle"
            out.append(
                f'<line x1="{x:.1f}" x2="{x:.1f}" y1="{TOP}" y2="{TOP + self.h}" stroke="{GRID_COLOUR}"/>'
            )
            out.append(
                f'<text x="{x:.1f}" y="{TOP + self.h + 14}" text-anchor="{anchor}" fill="{TEXT_COLOUR}">'
                f"{escape(_day_label(t))}</text>"
            )
        if y_label:
            out.append(
                f'<text x="14" y="{TOP + self.h / 2:.1f}" text-anchor="middle" fill="{TEXT_COLOUR}" '
                f'transform="rotate(-90 14 {TOP + self.h / 2:.1f})">{escape(y_label)}</text>'
            )
        out.append(
            f'<text x="{LEFT + self.w / 2:.1f}" y="{TOP + self.h + 28}" text-anchor="middle" '
            f'fill="{TEXT_COLOUR}">time (UTC)</text>'
        )
        return out


def _legend(entries: list[tuple[str, str, str]], height: int = HEIGHT) -> list[str]:
    """One row under the plot: (name, colour, kind) with kind line, dash, box (light) or solid."""
    out, x, y = [], float(LEFT), height - 10
    for name, colour, kind in entries:
        if kind in {"box", "solid"}:  # a shaded interval's box is as light as the shading
            opacity = ' opacity="0.5"' if kind == "box" else ""
            out.append(f'<rect x="{x:.1f}" y="{y - 8}" width="14" height="9" fill="{colour}"{opacity}/>')
        else:
            dash = ' stroke-dasharray="5 3"' if kind == "dash" else ""
            out.append(
                f'<line x1="{x:.1f}" x2="{x + 14:.1f}" y1="{y - 4}" y2="{y - 4}" stroke="{colour}" '
                f'stroke-width="2"{dash}/>'
            )
        out.append(f'<text x="{x + 18:.1f}" y="{y}" fill="{TEXT_COLOUR}">{escape(name)}</text>')
        x += 26 + 6.2 * len(name)
    return out


def _open(title: str, kind: str, height: int = HEIGHT) -> str:
    return (
        f'<svg class="chart {kind}" xmlns="http://www.w3.org/2000/svg" width="{WIDTH}" height="{height}" '
        f'viewBox="0 0 {WIDTH} {height}" role="img" aria-label="{escape(title)}" {FONT}>'
        f"<title>{escape(title)}</title>"
        f'<text x="{LEFT}" y="16" font-size="13" font-weight="bold" fill="{TEXT_COLOUR}">'
        f"{escape(title)}</text>"
    )


def line_chart(
    title: str,
    lines: Sequence[Line],
    *,
    y_label: str,
    y_format: str = "{:g}",
    hlines: Sequence[HLine] = (),
    markers: Sequence[Marker] = (),
    spans: Sequence[Span] = (),
    x_range: tuple[float, float] | None = None,
    y_min: float | None = None,
) -> str:
    """A time-series chart; the y range covers the lines and the thresholds (from `y_min`, if set)."""
    xs = [t for line in lines for t, _ in line.points]
    ys = [v for line in lines for _, v in line.points if math.isfinite(v)] + [h.y for h in hlines]
    x0, x1 = x_range or ((min(xs), max(xs)) if xs else (0.0, 1.0))
    low = min(ys, default=0.0) if y_min is None else min(y_min, *ys) if ys else y_min
    high = max(ys, default=1.0)
    pad = (high - low) * 0.08 or 1.0
    ticks = _ticks(low, high + pad)
    frame = _Frame(x0, x1, min(low, ticks[0]), max(high + pad, ticks[-1]))
    out = [_open(title, "line"), *frame.axes(y_label, y_format, ticks)]
    for s in spans:
        a, b = frame.x(max(s.start, x0)), frame.x(min(s.end, x1))
        out.append(
            f'<rect class="span" x="{a:.1f}" y="{TOP}" width="{max(b - a, 1.5):.1f}" height="{frame.h}" '
            f'fill="{s.colour}" opacity="0.25"><title>{escape(s.name)}</title></rect>'
        )
    for h in hlines:
        y = frame.y(h.y)
        out.append(
            f'<line class="threshold" x1="{LEFT}" x2="{LEFT + frame.w}" y1="{y:.1f}" y2="{y:.1f}" '
            f'stroke="{h.colour}" stroke-dasharray="5 3"/>'
        )
    for m in markers:
        if not x0 <= m.at <= x1:
            continue
        x = frame.x(m.at)
        out.append(
            f'<line class="marker" x1="{x:.1f}" x2="{x:.1f}" y1="{TOP}" y2="{TOP + frame.h}" '
            f'stroke="{RELEASE_COLOUR}" stroke-width="1.5"/>'
            f'<text x="{x + 3:.1f}" y="{TOP + 10}" fill="{RELEASE_COLOUR}">{escape(m.label)}</text>'
        )
    for line in lines:
        pts = " ".join(f"{frame.x(t):.1f},{frame.y(v):.1f}" for t, v in line.points if math.isfinite(v))
        dash = ' stroke-dasharray="6 4"' if line.dash else ""
        out.append(
            f'<polyline class="series" data-name="{escape(line.name)}" points="{pts}" fill="none" '
            f'stroke="{line.colour}" stroke-width="1.8"{dash}/>'
        )
    legend = [(line.name, line.colour, "dash" if line.dash else "line") for line in lines]
    legend += [(h.name, h.colour, "dash") for h in hlines]
    legend += list({(s.name, s.colour, "box"): None for s in spans})
    if any(x0 <= m.at <= x1 for m in markers):
        legend.append(("release", RELEASE_COLOUR, "line"))
    out += _legend(legend)
    out.append("</svg>")
    return "".join(out)


def state_chart(title: str, spans: Sequence[tuple[str, float, float]], x_range: tuple[float, float]) -> str:
    """A timeline of (state, start, end) intervals, one colour per state, with a legend."""
    x0, x1 = x_range
    frame = _Frame(x0, x1, 0, 1, STATE_HEIGHT)
    out = [_open(title, "states", STATE_HEIGHT), *frame.axes()]
    band_top, band_h = TOP + frame.h * 0.15, frame.h * 0.7
    for state, start, end in spans:
        a, b = frame.x(max(start, x0)), frame.x(min(end, x1))
        out.append(
            f'<rect class="state" data-state="{escape(state)}" x="{a:.1f}" y="{band_top:.1f}" '
            f'width="{max(b - a, 1.0):.1f}" height="{band_h:.1f}" fill="{STATE_COLOURS.get(state, "#999")}">'
            f"<title>{escape(state)}</title></rect>"
        )
    out += _legend([(s, c, "solid") for s, c in STATE_COLOURS.items()], STATE_HEIGHT)
    out.append("</svg>")
    return "".join(out)


def sparkline(values: Sequence[float], low: float | None = None, high: float | None = None) -> str:
    """A one-line text chart (▁▂▃▄▅▆▇█) for Markdown, scaled between `low` and `high` (default: the
    values' min and max; give a fixed scale, such as objective to 100%, so noise is not magnified)."""
    bars = "▁▂▃▄▅▆▇█"
    finite = [v for v in values if math.isfinite(v)]
    if not finite:
        return ""
    low = min(finite) if low is None else min(low, *finite)
    high = max(finite) if high is None else max(high, *finite)
    if high == low:
        return bars[-1] * len(finite)
    return "".join(bars[round((v - low) / (high - low) * (len(bars) - 1))] for v in finite)
