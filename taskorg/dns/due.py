"""When the DNS tick is next due, as pure logic over the arbiter's state.

The tick used to run every 50 ms on every DNS service, arbiter or not, to
notice what time alone changes: a master lease that ran out, a node silent
past `node_dead_after`, a standby that stopped being a candidate. All of
those are thresholds crossed at a moment known in advance (a last heartbeat
plus a span), so the tick sleeps until the earliest one, and is woken sooner
by the events that move them (a node heard from after a silence, a change
the replica applied, a change of Raft leadership). What an arbiter decides
is unchanged, and it sees an expired lease at its expiry instead of up to
one 50 ms tick later.

`next_due` is the time; `revives` says whether a heartbeat must wake the
tick. The thresholds are the spans `Arbiter` and the DNS service compare
heartbeats against (`thresholds`).
"""

from __future__ import annotations

from typing import Iterable

from taskorg.dns.arbiter import Arbiter, Liveness

# Ticks run at least this often with nothing due: a backstop for what no event announces (a replica
# loaded whole from a snapshot, a leadership lost without a state change).
IDLE_TICK = 1.0
# While Raft leadership and the arbiter role disagree (taking over, stepping down), the old cadence.
UNSETTLED_TICK = 0.05
# A threshold is crossed just after its moment (`alive` and `lease_expired` compare strictly): wake
# this much later, so the tick finds it crossed.
PAST = 0.001


def thresholds(lease_timeout: float, node_dead_after: float, wait_for_fresher: float) -> tuple[float, ...]:
    """The spans after a last heartbeat at which the tick may decide otherwise: no longer a candidate
    (lease), dead (and changed in the membership a master watches), no longer waited for (fresher)."""
    return tuple(sorted({s for s in (lease_timeout, node_dead_after, wait_for_fresher) if s > 0}))


def next_due(arbiter: Arbiter, spans: Iterable[float], now: float) -> float | None:
    """The earliest moment after `now` at which a threshold is crossed without any heartbeat: the
    holder's lease plus margin, or a member's last heartbeat plus a span. None: nothing is pending."""
    spans = tuple(spans)
    due: list[float] = []
    if arbiter.master is not None:
        expiry = arbiter.renewed_at + arbiter.lease_timeout + arbiter.margin
        if expiry >= now:
            due.append(expiry)
    for seen in arbiter.members.values():
        at = next((seen.last_heartbeat + s for s in spans if seen.last_heartbeat + s >= now), None)
        if at is not None:  # spans are sorted: the first not yet crossed is this member's next
            due.append(at)
    return min(due) + PAST if due else None


def delay(due: float | None, now: float, settled: bool) -> float:
    """Seconds to sleep before the next tick (woken sooner by events)."""
    wait = IDLE_TICK if due is None else min(IDLE_TICK, max(0.0, due - now))
    return wait if settled else min(wait, UNSETTLED_TICK)


def revives(seen: Liveness | None, spans: Iterable[float], now: float) -> bool:
    """Whether a heartbeat from a node last seen as `seen` undoes a crossed threshold (the node is new,
    or was silent past the shortest span): then the tick must run now, not at its next due time."""
    shortest = min(spans, default=0.0)
    return seen is None or now - seen.last_heartbeat > shortest
