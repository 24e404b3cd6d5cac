"""When a scheduling tick may skip planning: nothing that could change a decision changed.

A tick plans five times a second. With 1,000 tasks that fit no node, every
plan read and weighed all of them to decide, again, that none fits: 17.6 % of
a core for an idle master. A plan depends only on the replicated state (its
position: every change moves it), the membership, the nodes' capacity and the
clock (a restart delay that runs out). So after a tick that decided nothing,
later ticks skip planning while those inputs are unchanged, until the earliest
time-based change, and at least every RESYNC_SECONDS anyway: an input this key
does not name (a telemetry field placement may learn to read) then delays a
decision by at most that long, never forever. A unit test holds the key to
every telemetry field the node views read (`tests/unit/test_quiet_ticks.py`),
so the resync is a backstop, not a clock decisions wait for: 10 s, where 2 s
cost an idle master with 1,000 pending tasks a full plan every 2 s.

Submissions move the state on every commit. When nothing but new jobs was
committed since such a tick (the engine keeps their task ids), the earlier
decisions still hold, since new work takes room and frees none: the tick then
plans only the new jobs' instances. Before, 1,000 pending tasks that fit
nowhere were read and weighed again after every submission.

Pure: the engine hands in the inputs and the clock.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any, Iterable, Mapping

from taskorg.master.plan import Membership
from taskorg.master.state import Instance

RESYNC_SECONDS = 10.0
# Telemetry a placement decision reads: capacity, not the load of the moment (the load only ranks
# the nodes that fit, and nothing is placed while the inputs stand still).
CAPACITY_FIELDS = ("cpu_count", "memory_total", "speed", "gpus", "gpu_count", "arch", "hostname")
RANKING_FIELDS = ("cpu_percent",)  # read by placement to order the nodes that fit, never to decide a fit


@dataclass(frozen=True)
class TickInputs:
    """What a plan is decided from, besides the clock."""
    position: tuple[int, int]
    membership: Membership
    capacity: tuple[Any, ...]


def capacity_key(placeable: Iterable[Mapping[str, Any]], telemetry: Mapping[str, Mapping[str, Any]]) -> tuple[Any, ...]:
    """The placeable nodes as placement sees them: address, labels, and the capacity their telemetry gives."""
    rows = []
    for member in placeable:
        tele = telemetry.get(member["node"])
        capacity = tuple(str(tele.get(name)) for name in CAPACITY_FIELDS) if tele else None
        rows.append((member["node"], member.get("address"), tuple(sorted((member.get("labels") or {}).items())),
                     capacity))
    return tuple(sorted(rows, key=lambda row: str(row[0])))


def next_due(instances: Iterable[Instance], now: float) -> float:
    """The earliest moment a pending instance's restart delay runs out (inf: none waits on the clock)."""
    return min((inst.not_before for inst in instances
                if inst.status == "pending" and inst.not_before and inst.not_before > now), default=math.inf)


class QuietTicks:
    """Remembers the inputs of the last tick that decided nothing, and until when they hold."""

    def __init__(self, resync: float = RESYNC_SECONDS) -> None:
        self.resync = resync
        self.inputs: TickInputs | None = None
        self.until = 0.0

    def may_skip(self, inputs: TickInputs, now: float) -> bool:
        return inputs == self.inputs and now < self.until

    def planned(self, inputs: TickInputs | None, decided_nothing: bool, due: float, now: float) -> None:
        """After a plan: `inputs` as they stand after its commit (None: unknown)."""
        if decided_nothing and inputs is not None:
            self.inputs, self.until = inputs, min(now + self.resync, due)
        else:
            self.inputs, self.until = None, 0.0

    def only_position_moved(self, inputs: TickInputs, now: float) -> bool:
        """Whether, since the last tick that decided nothing and within its time, only the state moved
        (the engine then plans just what was submitted meanwhile, when nothing else was committed)."""
        return (self.inputs is not None and now < self.until and inputs.membership == self.inputs.membership
                and inputs.capacity == self.inputs.capacity)

    def moved_on(self, inputs: TickInputs | None) -> None:
        """After planning only new submissions: the earlier decisions still hold at the new position (new
        work takes room, it frees none), until the same deadline: a full plan still comes at least every
        RESYNC_SECONDS."""
        if self.inputs is not None and inputs is not None:
            self.inputs = inputs

    def forget(self) -> None:
        """Plan on the next tick whatever the inputs (a role change, an activation)."""
        self.inputs, self.until = None, 0.0
