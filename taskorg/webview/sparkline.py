"""Sparklines: a node's last hour of one figure as a small inline SVG, drawn on the server.

Pure: (time, value) points in, SVG text out; no JavaScript library, no CDN,
so the picture comes with the page and with every live update. Points are
placed by their time within the window (a failover's gap stays a gap), and
a missing value or a hole longer than two steps breaks the line. The SVG
says in words what it shows (`aria-label`, `<title>`): colour is never the
only carrier.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from html import escape
from typing import Sequence

Sample = tuple[float, float | None]  # (wall time, value or None)


@dataclass(frozen=True)
class Box:
    """The sparkline's size in CSS pixels; `pad` keeps the line's ends and the dot inside."""

    width: float = 96.0
    height: float = 24.0
    pad: float = 2.5


@dataclass(frozen=True)
class Scale:
    """What the vertical axis spans. Percentages are 0..100 always, so two nodes compare at a glance."""

    low: float
    high: float

    @classmethod
    def around(cls, values: Sequence[float], spread: float = 20.0, margin: float = 5.0) -> "Scale":
        """A range that fits `values` with a margin, at least `spread` wide (for temperatures)."""
        if not values:
            return cls(0.0, spread)
        low = math.floor((min(values) - margin) / margin) * margin
        return cls(low, max(low + spread, math.ceil((max(values) + margin) / margin) * margin))


PERCENT = Scale(0.0, 100.0)


def runs(samples: Sequence[Sample], start: float, end: float, scale: Scale, box: Box = Box(),
         gap: float | None = None) -> list[list[tuple[float, float]]]:
    """The samples as screen points (x right with time, y up with value), split where the line breaks.

    A sample outside [start, end] is left out; a value outside the scale is clamped to its edge.
    `gap`: a hole between two samples longer than this breaks the line too.
    """
    span = max(end - start, 1e-9)
    height = max(scale.high - scale.low, 1e-9)
    inner_w, inner_h = box.width - 2 * box.pad, box.height - 2 * box.pad
    found: list[list[tuple[float, float]]] = []
    current: list[tuple[float, float]] = []
    previous: float | None = None
    for moment, value in sorted(samples, key=lambda s: s[0]):
        if not start <= moment <= end:
            continue
        if value is None or (gap is not None and previous is not None and moment - previous > gap):
            if current:
                found.append(current)
            current = []
        if value is not None:
            level = min(max((value - scale.low) / height, 0.0), 1.0)
            current.append((box.pad + inner_w * (moment - start) / span, box.pad + inner_h * (1.0 - level)))
        previous = moment
    if current:
        found.append(current)
    return found


def svg(samples: Sequence[Sample], *, start: float, end: float, scale: Scale, figure: str, title: str, unit: str,
        box: Box = Box(), gap: float | None = None, empty: str = "no history yet") -> str:
    """The sparkline as an `<svg>` element. `figure` names it for CSS and tests (cpu, memory, disk,
    temperature); `title` and `unit` make its words: "CPU 12 % now; 3–85 % in the last 14 min" (the
    minutes the samples cover), or `empty` when there is nothing to draw."""
    lines = runs(samples, start, end, scale, box, gap)
    shown = sorted((t, v) for t, v in samples if v is not None and start <= t <= end)
    values = [v for _, v in shown]
    if shown:
        minutes = max(1, round((end - shown[0][0]) / 60))
        words = (f"{title} {_figure(values[-1])}{unit} now; {_figure(min(values))}–{_figure(max(values))}{unit} "
                 f"in the last {minutes} min")
    else:
        words = f"{title}: {empty}"
    head = (f'<svg class="spark spark-{escape(figure)}" viewBox="0 0 {box.width:g} {box.height:g}" '
            f'width="{box.width:g}" height="{box.height:g}" role="img" aria-label="{escape(words)}" '
            f'data-points="{len(values)}"><title>{escape(words)}</title>')
    base = box.height - box.pad
    parts = [head, f'<line class="spark-base" x1="{box.pad:g}" y1="{base:g}" x2="{box.width - box.pad:g}" y2="{base:g}"/>']
    if not values:
        parts.append(f'<text class="spark-empty" x="{box.width / 2:g}" y="{box.height / 2 + 3:g}" '
                     f'text-anchor="middle">{escape(empty)}</text>')
    for run in lines:
        path = " ".join(f"{'M' if n == 0 else 'L'}{x:.1f},{y:.1f}" for n, (x, y) in enumerate(run))
        if len(run) == 1:  # a lone point: a short tick, so it shows
            x, y = run[0]
            path += f" L{x + 0.1:.1f},{y:.1f}"
        parts.append(f'<path class="spark-line" d="{path}"/>')
    if lines:
        x, y = lines[-1][-1]
        parts.append(f'<circle class="spark-now" cx="{x:.1f}" cy="{y:.1f}" r="2"/>')
    parts.append("</svg>")
    return "".join(parts)


def _figure(value: float) -> str:
    return f"{value:.0f}" if abs(value) >= 10 else f"{value:.1f}"
