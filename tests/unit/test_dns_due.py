"""When the DNS tick is next due (taskorg.dns.due): pure logic over the arbiter, on a fake clock.

Proves: the tick is due at the holder's lease expiry (plus a hair, since expiry compares strictly) and
finds it expired then; at each member's next crossed span (candidate, dead, no longer waited for);
never at a moment already past (no busy loop once a lease ran out with nobody to elect); at most
IDLE_TICK apart, and every UNSETTLED_TICK while the Raft role and the arbiter role disagree; a
heartbeat wakes the tick only from a node new or silent past the shortest span.
"""

from __future__ import annotations

from taskorg.dns import due
from taskorg.dns.arbiter import Arbiter, Liveness

LEASE, MARGIN, DEAD = 0.5, 0.15, 1.0
SPANS = due.thresholds(LEASE, DEAD, DEAD)


class FakeClock:
    def __init__(self, start: float = 1000.0) -> None:
        self.now = start

    def __call__(self) -> float:
        return self.now


def cluster(clock: FakeClock) -> Arbiter:
    """node1 master, node1..node3 heard from just now."""
    arbiter = Arbiter(LEASE, MARGIN, clock, wait_for_fresher=DEAD)  # type: ignore[arg-type]
    for node in ("node1", "node2", "node3"):
        arbiter.heartbeat(node, (0, 0))
    assert arbiter.first_master("node1") is not None
    return arbiter


def test_thresholds_are_sorted_distinct_and_positive() -> None:
    assert due.thresholds(0.5, 1.0, 1.0) == (0.5, 1.0)
    assert due.thresholds(0.5, 1.0, 0.0) == (0.5, 1.0)
    assert due.thresholds(2.0, 1.0, 1.5) == (1.0, 1.5, 2.0)


def test_a_fresh_cluster_is_next_due_when_the_first_heartbeats_stop_counting() -> None:
    clock = FakeClock()
    arbiter = cluster(clock)
    assert due.next_due(arbiter, SPANS, clock.now) == clock.now + LEASE + due.PAST


def test_the_tick_is_due_at_the_lease_expiry_and_finds_it_expired() -> None:
    clock = FakeClock()
    arbiter = cluster(clock)
    for _ in range(5):  # the others keep beating, the master falls silent
        clock.now += 0.1
        arbiter.heartbeat("node2", (1, 0))
        arbiter.heartbeat("node3", (1, 0))
    expiry = arbiter.renewed_at + LEASE + MARGIN
    at = due.next_due(arbiter, SPANS, clock.now)
    assert at is not None and at <= expiry + due.PAST
    while at is not None and at < expiry:  # woken at a member's span first: nothing to decide yet
        clock.now = at
        assert arbiter.tick() is None
        at = due.next_due(arbiter, SPANS, clock.now)
    assert at == expiry + due.PAST
    clock.now = at
    election = arbiter.tick()
    assert election is not None and election.master == "node2"


def test_a_silent_node_is_due_at_its_next_span_in_turn() -> None:
    clock = FakeClock()
    arbiter = Arbiter(LEASE, MARGIN, clock)  # type: ignore[arg-type]
    arbiter.heartbeat("node2", (0, 0))
    start = clock.now
    assert due.next_due(arbiter, SPANS, clock.now) == start + LEASE + due.PAST
    clock.now = start + LEASE + due.PAST
    assert not arbiter.alive("node2", LEASE)
    assert due.next_due(arbiter, SPANS, clock.now) == start + DEAD + due.PAST
    clock.now = start + DEAD + due.PAST
    assert not arbiter.alive("node2", DEAD)
    assert due.next_due(arbiter, SPANS, clock.now) is None  # dead: only a heartbeat changes it


def test_nothing_past_is_ever_due() -> None:
    """A lease that ran out with no candidate left must not make the tick spin."""
    clock = FakeClock()
    arbiter = cluster(clock)
    clock.now += 10 * DEAD
    assert arbiter.tick() is None  # nobody alive to elect
    assert due.next_due(arbiter, SPANS, clock.now) is None
    assert due.delay(None, clock.now, settled=True) == due.IDLE_TICK


def test_delay_is_capped_and_never_negative() -> None:
    assert due.delay(1005.0, 1000.0, settled=True) == due.IDLE_TICK
    assert abs(due.delay(1000.2, 1000.0, settled=True) - 0.2) < 1e-9
    assert due.delay(999.0, 1000.0, settled=True) == 0.0
    assert due.delay(None, 1000.0, settled=False) == due.UNSETTLED_TICK
    assert abs(due.delay(1000.01, 1000.0, settled=False) - 0.01) < 1e-9


def test_only_a_heartbeat_after_a_silence_wakes_the_tick() -> None:
    now = 1000.0
    assert due.revives(None, SPANS, now)  # a node the arbiter has not heard from
    assert not due.revives(Liveness(now - 0.1), SPANS, now)  # a steady beat: deadlines only move later
    assert not due.revives(Liveness(now - LEASE), SPANS, now)
    assert due.revives(Liveness(now - LEASE - 0.01), SPANS, now)  # a candidate again
    assert due.revives(Liveness(now - 5.0), SPANS, now)  # back from the dead
