"""The nodes' last hour as the dashboard draws it: fetched at most once a step, drawn as sparklines.

The master keeps one point per 10 s (`master/history.py`), so asking for
the whole hour on every 1.5 s poll would move the same kilobytes again and
again: `HistoryCache` asks for it with the members at most once a step and
serves the plain members view in between.
"""

from __future__ import annotations

import threading
import time
from typing import Any, Callable

from markupsafe import Markup

from taskorg.webview import sparkline
from taskorg.webview.sparkline import PERCENT, Scale

# (figure, words, unit, scale; None: fitted to the values)
FIGURES: tuple[tuple[str, str, str, Scale | None], ...] = (
    ("cpu", "CPU", " %", PERCENT),
    ("memory", "Memory", " %", PERCENT),
    ("disk", "Disk", " %", PERCENT),
    ("temperature", "Temperature", " °C", None),
)
REFRESH = 10.0  # the master's default step; a shorter one seen in its answers is followed


class HistoryCache:
    """Every node's history as last fetched, shared by the webview's threads."""

    def __init__(self, clock: Callable[[], float] = time.monotonic) -> None:
        self.every = REFRESH
        self.clock = clock
        self._by_node: dict[str, dict[str, Any]] = {}
        self._fetched: float | None = None
        self._lock = threading.Lock()

    def members(self, api: Any) -> dict[str, Any]:
        """The master's members view, each member with its `history` (fresh at most `every` seconds old)."""
        with self._lock:
            due = self._fetched is None or self.clock() - self._fetched >= self.every
        view = api.members(history=True) if due else api.members()
        members = view.get("members") or []
        with self._lock:
            if due:
                self._by_node = {m.get("node"): m.get("history") for m in members if m.get("history")}
                self._fetched = self.clock()
                steps = [float(h.get("step") or REFRESH) for h in self._by_node.values()]
                self.every = min([REFRESH, *steps])
            for member in members:
                member.setdefault("history", self._by_node.get(member.get("node")))
        return view


def sparklines(history: dict[str, Any] | None, now: float | None = None) -> dict[str, Markup]:
    """figure -> its sparkline SVG, for one node's history (`None`: every line says "no history yet").

    The window ends at the node's newest point (the master's clock, so a webview whose clock is off
    still draws the whole hour), or at `now` when there is none.
    """
    history = history or {}
    # Points but none with the figure: the node does not measure it (no sensor), as far as we know.
    points = history.get("points") or []
    step = float(history.get("step") or REFRESH)
    span = float(history.get("span") or 3600.0)
    end = max((float(p["time"]) for p in points), default=now if now is not None else time.time()) + step
    drawn = {}
    for figure, words, unit, scale in FIGURES:
        samples = [(float(p["time"]) + step / 2, p.get(figure)) for p in points]
        fitted = scale or Scale.around([v for _, v in samples if v is not None])
        empty = "none reported" if points else "no history yet"
        drawn[figure] = Markup(sparkline.svg(samples, start=end - span, end=end, scale=fitted, figure=figure,
                                             title=words, unit=unit, gap=2.5 * step, empty=empty))
    return drawn
