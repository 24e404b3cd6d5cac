"""A short telemetry history per node: the last hour, one point per 10 s, in memory.

Why: a sparkline of the last hour says more than one figure (a node that
has been at 100 % CPU for 40 minutes, a disk filling since noon). Why in
memory: an hour of four figures is 360 points per node, and a history lost
at a failover costs a picture, never a decision. It is not replicated: a
new master starts with none and rebuilds it from the reports that reach it
(every slave's resync, `report_resync_interval`, at most half a step apart, and
its reports on change), so a failover leaves a gap, not wrong data.

Pure apart from a lock: the clock is the caller's (wall time, the report's
arrival), so tests drive it.
"""

from __future__ import annotations

import threading
from collections import deque
from dataclasses import dataclass, field
from typing import Iterable

from taskorg.protocol import Telemetry

STEP = 10.0       # seconds per point
SPAN = 3600.0     # seconds of history kept
FIGURES = ("cpu", "memory", "disk", "temperature")


@dataclass(frozen=True)
class Point:
    """One step of one node: each figure the mean of the reports within it (None: none said it)."""

    time: float                 # the step's start, wall clock (epoch seconds)
    cpu: float | None           # percent of the node's CPUs in use
    memory: float | None        # percent of memory in use
    disk: float | None          # percent used of the state directory's filesystem (as df counts it)
    temperature: float | None   # the hottest sensor, °C


def figures(telemetry: Telemetry) -> dict[str, float | None]:
    """The four figures a report carries, each in its history unit."""
    memory = None
    if telemetry.memory_total and telemetry.memory_available is not None:
        memory = round(100.0 * (telemetry.memory_total - telemetry.memory_available) / telemetry.memory_total, 1)
    return {"cpu": telemetry.cpu_percent, "memory": memory,
            "disk": telemetry.disk.percent if telemetry.disk else None,
            "temperature": max(telemetry.temperatures.values()) if telemetry.temperatures else None}


@dataclass
class _Step:
    """The step being filled: sums and counts per figure."""

    start: float
    sums: dict[str, float] = field(default_factory=dict)
    counts: dict[str, int] = field(default_factory=dict)

    def add(self, values: dict[str, float | None]) -> None:
        for name, value in values.items():
            if value is not None:
                self.sums[name] = self.sums.get(name, 0.0) + float(value)
                self.counts[name] = self.counts.get(name, 0) + 1

    def point(self) -> Point:
        means = {name: round(self.sums[name] / self.counts[name], 1) if self.counts.get(name) else None
                 for name in FIGURES}
        return Point(self.start, **means)


class History:
    """Per node, a ring of at most `span / step` points plus the step being filled."""

    def __init__(self, step: float = STEP, span: float = SPAN) -> None:
        if step <= 0 or span < step:
            raise ValueError(f"history: step must be > 0 and span >= step (got step {step}, span {span})")
        self.step = step
        self.span = span
        self.size = int(span // step)  # points per node, the step being filled included
        self._rings: dict[str, deque[Point]] = {}
        self._open: dict[str, _Step] = {}
        self._lock = threading.Lock()

    def add(self, node: str, telemetry: Telemetry, now: float) -> None:
        """Fold one report's figures into the node's current step."""
        start = now - now % self.step
        with self._lock:
            current = self._open.get(node)
            if current is None or start > current.start:
                if current is not None:
                    self._rings.setdefault(node, deque(maxlen=self.size - 1)).append(current.point())
                current = self._open[node] = _Step(start)
                self._forget_silent(now)
            elif start < current.start:
                return  # a report older than the step being filled (a clock step back): dropped
            current.add(figures(telemetry))

    def points(self, node: str, now: float) -> list[Point]:
        """The node's points within the last `span` seconds, oldest first, the step being filled last."""
        with self._lock:
            found = list(self._rings.get(node, ()))
            if node in self._open:
                found.append(self._open[node].point())
        return [p for p in found if p.time > now - self.span]

    def nodes(self) -> list[str]:
        with self._lock:
            return sorted(self._open)

    def _forget_silent(self, now: float) -> None:
        """Drop nodes with no report for a whole span (a node that left): the history stays bounded."""
        for node in [n for n, s in self._open.items() if s.start <= now - self.span]:
            del self._open[node]
            self._rings.pop(node, None)


def as_wire(points: Iterable[Point]) -> list[dict[str, float | None]]:
    return [{"time": p.time, "cpu": p.cpu, "memory": p.memory, "disk": p.disk, "temperature": p.temperature}
            for p in points]
