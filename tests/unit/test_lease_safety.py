"""Lease safety: never two masters at one instant, in a simulation with skewed clocks.

The real Arbiter (taskorg/dns/arbiter.py) runs on a fake *global* clock.
Each simulated node has its own clock with an offset and a rate error
(drift), and keeps its lease exactly as taskorg/node/service.py does:

* `heartbeat()` reads its own clock (`sent_at`) before sending; a reply with
  `holder and valid_for > 0` sets `lease_until = sent_at + valid_for` on its
  own clock, any other reply sets `lease_until = 0`;
* `check_role()` believes it is master while `own_clock() < lease_until`.

Messages are delayed (sometimes far longer than a lease), dropped, and whole
nodes are partitioned (the master most often); handovers are requested and
the arbiter restarts with its persisted epoch and master. After every one of
thousands of seeded random events the test checks, exactly over the global
time since the previous event, that no two nodes believed they held the
lease at the same instant.

The second half documents the limit: the margin must cover the clock drift
over one lease. A master whose clock runs slow by a fraction `d` believes in
its lease for `lease_timeout / (1 - d)` real seconds; the arbiter waits
`lease_timeout + margin`. With `margin < lease_timeout * d / (1 - d)` two
masters can overlap by up to the difference, and the simulation finds it.
"""

from __future__ import annotations

import heapq
import itertools
import random
from dataclasses import dataclass, field
from typing import Any

import pytest

from taskorg.config import Config
from taskorg.dns.arbiter import Arbiter, LeaseAnswer

DEFAULTS = Config()
TICK = 0.05  # the DNS service's tick interval (taskorg/dns/service.py)
NODES = ("node1", "node2", "node3", "node4")


class GlobalClock:
    """Real time, as the arbiter sees it (the arbiter's clock is the reference)."""

    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


@dataclass
class SimNode:
    """A node's lease view on its own skewed clock, as taskorg/node/service.py keeps it."""

    name: str
    offset: float
    rate: float  # local seconds per real second
    replica: tuple[int, int] = (0, 0)
    lease_until: float = 0.0  # on the local clock
    epoch: int = 0
    partitioned_until: float = -1.0  # real time
    # Real-time intervals [start, end) during which the node believed it was master.
    segments: list[list[float]] = field(default_factory=list)

    def local(self, t: float) -> float:
        return self.offset + self.rate * t

    def real(self, local: float) -> float:
        return (local - self.offset) / self.rate

    def believes(self, t: float) -> bool:
        """check_role(): `time.monotonic() < lease_until`."""
        return self.local(t) < self.lease_until

    def cut_off(self, t: float) -> bool:
        return t < self.partitioned_until

    def on_reply(self, t: float, sent_local: float, answer: LeaseAnswer) -> None:
        """heartbeat() after the answer came back (node/service.py)."""
        if answer.holder and answer.valid_for > 0:
            self.epoch = answer.epoch
            self._set_lease(t, sent_local + answer.valid_for)
        else:
            self.epoch = max(self.epoch, answer.epoch)
            self._set_lease(t, 0.0)

    def _set_lease(self, t: float, lease_until: float) -> None:
        if self.segments and self.segments[-1][1] > t:
            self.segments[-1][1] = t  # the old deadline is overwritten from now on
        self.lease_until = lease_until
        end = self.real(lease_until)
        if end > t:
            self.segments.append([t, end])

    def believed_within(self, t0: float, t1: float) -> list[tuple[float, float]]:
        return [(max(s, t0), min(e, t1)) for s, e in self.segments if s < t1 and e > t0]


@dataclass
class Overlap:
    nodes: tuple[str, str]
    start: float
    end: float

    @property
    def length(self) -> float:
        return self.end - self.start


@dataclass
class Params:
    lease_timeout: float = DEFAULTS.lease_timeout
    margin: float = DEFAULTS.lease_margin
    heartbeat_interval: float = DEFAULTS.heartbeat_interval
    drift: float = 0.01  # each node's rate is 1 +- up to this
    drop: float = 0.05  # chance a message is lost
    slow: float = 0.05  # chance a message takes longer than a lease
    tick: float = TICK  # how often the arbiter looks for an expired lease
    events: int = 6000


class Simulation:
    def __init__(self, seed: int, params: Params) -> None:
        self.rng = random.Random(seed)
        self.p = params
        self.clock = GlobalClock()
        self.arbiter = self._new_arbiter(epoch=0, master=None)
        self.nodes = {name: SimNode(name, offset=self.rng.uniform(10.0, 10_000.0),
                                    rate=1.0 + self.rng.uniform(-params.drift, params.drift))
                      for name in NODES}
        self.queue: list[tuple[float, int, str, tuple[Any, ...]]] = []
        self.counter = itertools.count()
        self.epochs: list[int] = []
        self.overlaps: list[Overlap] = []
        self.last_check = 0.0
        self.master_time = 0.0  # real seconds during which some node believed it was master

    # ---- plumbing -----------------------------------------------------------------
    def _new_arbiter(self, epoch: int, master: str | None) -> Arbiter:
        return Arbiter(self.p.lease_timeout, self.p.margin, self.clock, epoch=epoch, master=master)

    def at(self, when: float, kind: str, *data: Any) -> None:
        heapq.heappush(self.queue, (when, next(self.counter), kind, data))

    def delay(self) -> float | None:
        """A network delay in real seconds, or None for a lost message."""
        roll = self.rng.random()
        if roll < self.p.drop:
            return None
        if roll < self.p.drop + self.p.slow:
            return self.rng.uniform(self.p.lease_timeout, 2.5 * self.p.lease_timeout)
        return self.rng.uniform(0.0005, 0.03)

    # ---- the run --------------------------------------------------------------------
    def run(self, check_each_step: bool = True) -> "Simulation":
        for name, node in self.nodes.items():
            self.at(self.rng.uniform(0, self.p.heartbeat_interval), "beat", name, True)
        self.at(0.0, "register", "node1")
        self.at(self.p.tick, "tick")
        self.at(1.0, "chaos")
        for _ in range(self.p.events):
            when, _, kind, data = heapq.heappop(self.queue)
            assert when >= self.clock.now
            self.clock.now = when
            getattr(self, f"on_{kind}")(*data)
            found = self.check(self.last_check, when)
            if check_each_step:
                believers = [n.name for n in self.nodes.values() if n.believes(when)]
                assert len(believers) <= 1, f"t={when:.6f}: {believers} all believe they are master"
                assert not found, f"two masters at once: {found}"
            self.last_check = when
        return self

    def check(self, t0: float, t1: float) -> list[Overlap]:
        """Every instant in [t0, t1) at which two nodes both believed in their lease."""
        found = []
        views = {name: node.believed_within(t0, t1) for name, node in self.nodes.items()}
        # Summed over nodes: equal to the time with a master while nothing overlaps.
        self.master_time += sum(e - s for spans in views.values() for s, e in spans)
        for a, b in itertools.combinations(sorted(views), 2):
            for s1, e1 in views[a]:
                for s2, e2 in views[b]:
                    start, end = max(s1, s2), min(e1, e2)
                    if start < end:
                        found.append(Overlap((a, b), start, end))
        self.overlaps += found
        for node in self.nodes.values():  # keep the lists short
            node.segments = [s for s in node.segments if s[1] > t1 - 10 * self.p.lease_timeout][-4:]
        return found

    # ---- events ----------------------------------------------------------------------
    def on_register(self, name: str) -> None:
        self.arbiter.heartbeat(name, self.nodes[name].replica)
        election = self.arbiter.first_master(name)
        if election:
            self.elected(election.epoch, election.master)

    def on_beat(self, name: str, periodic: bool) -> None:
        node, now = self.nodes[name], self.clock.now
        if periodic:  # the scheduler runs on the node's own clock, with some jitter
            interval = self.p.heartbeat_interval * self.rng.uniform(0.9, 1.2)
            self.at(now + interval / node.rate, "beat", name, True)
        sent_local = node.local(now)
        delay = self.delay()
        if delay is not None and not node.cut_off(now):
            self.at(now + delay, "arrive", name, sent_local, node.replica)

    def on_arrive(self, name: str, sent_local: float, replica: tuple[int, int]) -> None:
        if self.nodes[name].cut_off(self.clock.now):
            return
        answer = self.arbiter.heartbeat(name, replica)
        delay = self.delay()
        if delay is not None:
            self.at(self.clock.now + delay, "reply", name, sent_local, answer)

    def on_reply(self, name: str, sent_local: float, answer: LeaseAnswer) -> None:
        node = self.nodes[name]
        if not node.cut_off(self.clock.now):
            node.on_reply(self.clock.now, sent_local, answer)

    def on_tick(self) -> None:
        election = self.arbiter.tick()
        if election:
            self.elected(election.epoch, election.master)
        self.at(self.clock.now + self.p.tick, "tick")

    def elected(self, epoch: int, master: str) -> None:
        assert not self.epochs or epoch > self.epochs[-1], f"epoch {epoch} after {self.epochs}"
        self.epochs.append(epoch)
        self.at(self.clock.now + 0.002, "beat", master, False)  # the DNS service wakes the new master

    def on_chaos(self) -> None:
        rng, now = self.rng, self.clock.now
        master = self.arbiter.master
        roll = rng.random()
        if roll < 0.35:  # a partition, most often of the master
            victim = master if master and rng.random() < 0.6 else rng.choice(NODES)
            self.nodes[victim].partitioned_until = now + rng.uniform(0.2, 4.0) * self.p.lease_timeout
        elif roll < 0.75 and master:  # the master commits; standbys catch up (or not)
            seq = max(n.replica[1] for n in self.nodes.values()) + rng.randint(1, 5)
            self.nodes[master].replica = (self.arbiter.epoch, seq)
            for node in self.nodes.values():
                if node.name != master and not node.cut_off(now) and rng.random() < 0.7:
                    node.replica = self.nodes[master].replica
        elif roll < 0.9:  # a planned handover to a node heard from lately
            target = rng.choice(NODES)
            if self.arbiter.alive(target, self.p.lease_timeout):
                self.arbiter.request_handover(target)
        else:  # the DNS service restarts from its persisted epoch and master
            self.arbiter = self._new_arbiter(self.arbiter.epoch, self.arbiter.master)
        self.at(now + rng.expovariate(1.0), "chaos")


def drift_bound(p: Params) -> float:
    """How much longer than `lease_timeout` (real seconds) the slowest clock can believe in a lease."""
    return p.lease_timeout * p.drift / (1 - p.drift)


# ---- the property holds -----------------------------------------------------------------
@pytest.mark.parametrize("seed", range(4))
def test_no_two_masters_with_the_default_timing_and_one_percent_drift(seed: int) -> None:
    params = Params()
    assert params.margin >= drift_bound(params)
    sim = Simulation(seed, params).run()
    assert sim.overlaps == []
    # Not vacuous: masters came and went, and most of the time there was one.
    assert len(sim.epochs) >= 5, sim.epochs
    assert sim.master_time > 0.5 * sim.clock.now


@pytest.mark.parametrize("seed", range(3))
def test_no_two_masters_with_a_margin_that_just_covers_the_drift(seed: int) -> None:
    # Tighter than the defaults: the margin is only 10% above what drift needs,
    # the arbiter ticks every 5 ms, and heartbeats are lost and delayed more often.
    params = Params(drift=0.01, drop=0.1, slow=0.1, tick=0.005, events=15000)
    params.margin = 1.1 * drift_bound(params)
    sim = Simulation(100 + seed, params).run()
    assert sim.overlaps == []
    assert len(sim.epochs) >= 5


def test_the_simulation_sees_a_slow_master_keep_its_lease_after_a_partition() -> None:
    """The detector itself works: overlapping beliefs are reported (sanity check)."""
    node_a = SimNode("node1", offset=50.0, rate=1.0)
    node_b = SimNode("node2", offset=70.0, rate=1.0)
    node_a.on_reply(1.0, node_a.local(1.0), LeaseAnswer(1, "node1", True, 0.6))
    node_b.on_reply(1.5, node_b.local(1.5), LeaseAnswer(2, "node2", True, 0.6))
    sim = Simulation(0, Params())
    sim.nodes = {"node1": node_a, "node2": node_b}
    found = sim.check(0.0, 3.0)
    assert [(o.nodes, round(o.start, 9), round(o.end, 9)) for o in found] == [(("node1", "node2"), 1.5, 1.6)]


# ---- the documented limit: drift beyond the margin ------------------------------------------
def slow_master_scenario(drift: float, margin: float, lease: float = 0.6) -> list[Overlap]:
    """node1 (clock slow by `drift`) renews once, is cut off; node2 takes over as soon as allowed."""
    clock = GlobalClock()
    arbiter = Arbiter(lease, margin, clock)
    old = SimNode("node1", offset=500.0, rate=1.0 - drift)
    new = SimNode("node2", offset=900.0, rate=1.0)
    arbiter.heartbeat("node1", (1, 1))
    arbiter.heartbeat("node2", (1, 1))
    arbiter.first_master("node1")
    sent = old.local(clock.now)
    old.on_reply(clock.now, sent, arbiter.heartbeat("node1", (1, 1)))  # instant round trip at t=0
    while arbiter.tick() is None:  # node1 is now partitioned; node2 keeps beating
        clock.now += 0.001
        arbiter.heartbeat("node2", (1, 1))
    assert arbiter.master == "node2"
    new.on_reply(clock.now, new.local(clock.now), arbiter.heartbeat("node2", (1, 1)))
    sim = Simulation(0, Params())
    sim.nodes = {"node1": old, "node2": new}
    return sim.check(0.0, 10 * lease)


def test_limit_a_slow_clock_beyond_the_margin_gives_two_masters() -> None:
    """Expected finding, not a failure: margin 0.02 s cannot cover 10% drift over a 0.6 s lease."""
    found = slow_master_scenario(drift=0.10, margin=0.02)
    assert len(found) == 1
    # node1 believes until 0.6 / 0.9 = 0.667 s; node2 holds from about 0.62 s.
    overlap = found[0]
    assert overlap.nodes == ("node1", "node2")
    assert overlap.end == pytest.approx(0.6 / 0.9)
    assert overlap.length == pytest.approx(0.6 / 0.9 - 0.6 - 0.02, abs=0.002)


def test_limit_the_same_drift_is_safe_once_the_margin_covers_it() -> None:
    needed = 0.6 * 0.10 / (1 - 0.10)  # lease_timeout * d / (1 - d) = 0.0667 s
    assert slow_master_scenario(drift=0.10, margin=needed * 1.01) == []
    assert slow_master_scenario(drift=0.10, margin=needed * 0.95) != []


def test_limit_random_runs_with_too_much_drift_find_overlaps_bounded_by_the_excess() -> None:
    """Expected finding: with up to 20% drift and a 0.01 s margin the property breaks, by a bounded amount."""
    params = Params(drift=0.20, margin=0.01)
    overlaps: list[Overlap] = []
    for seed in range(4):
        overlaps += Simulation(seed, params).run(check_each_step=False).overlaps
    assert overlaps, "expected two-master overlaps with drift beyond the margin"
    # A new master starts after the old one's last renewal + lease + margin,
    # so an overlap can never exceed what the drift adds beyond the margin.
    excess = drift_bound(params) - params.margin
    assert max(o.length for o in overlaps) <= excess + 1e-9


def test_limit_the_same_runs_are_safe_once_the_margin_covers_that_drift() -> None:
    params = Params(drift=0.20)
    params.margin = 1.05 * drift_bound(params)  # 0.1575 s for a 0.6 s lease
    for seed in range(4):
        assert Simulation(seed, params).run().overlaps == []
