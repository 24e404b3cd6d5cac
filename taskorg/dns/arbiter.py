"""Master lease and election rules, as pure logic over an injected clock.

The arbiter is the single authority on who is master (docs/architecture.md,
"Leases, election, fencing"). Its heartbeat answers grant the lease; the master
counts the lease from when it *sent* the renewal, so its own view always
expires first. The arbiter only elects a successor once the holder has been
silent for `lease_timeout + margin` on the arbiter's clock, so two masters
never hold a valid lease at once (up to clock-rate drift, which the margin
covers).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Callable

Position = tuple[int, int]  # (epoch of the last applied change, its sequence number)


@dataclass
class Liveness:
    last_heartbeat: float
    replica: Position = (0, 0)
    address: str = ""


@dataclass(frozen=True)
class Election:
    epoch: int
    master: str
    previous: str | None
    reason: str


@dataclass(frozen=True)
class LeaseAnswer:
    epoch: int
    master: str | None
    holder: bool
    valid_for: float


@dataclass
class Arbiter:
    lease_timeout: float
    margin: float
    clock: Callable[[], float]
    epoch: int = 0
    master: str | None = None
    started_at: float = 0.0
    members: dict[str, Liveness] = field(default_factory=dict)
    # Nodes that may not be elected (draining, left).
    ineligible: set[str] = field(default_factory=set)
    # Planned handover: stop renewing the current holder, prefer this node.
    handover_to: str | None = None
    renewed_at: float = 0.0
    # How long a node with a fresher replica than every living candidate is waited for when its
    # heartbeat is late (up to `node_dead_after`): with a bounded standby set, the freshest standby
    # may be the only one holding the last acknowledged change. 0: elect among the living at once.
    wait_for_fresher: float = 0.0

    def __post_init__(self) -> None:
        now = self.clock()
        self.started_at = now
        # After a restart, and when this DNS service takes over as arbiter from
        # another, the holder gets a full lease (plus margin) of grace: the
        # predecessor may have renewed it an instant before it died, and we
        # cannot know otherwise. Heartbeats of that holder renew it as usual.
        self.renewed_at = now

    # ---- inputs -----------------------------------------------------------
    def heartbeat(self, node: str, replica: Position, address: str = "") -> LeaseAnswer:
        now = self.clock()
        self.members[node] = Liveness(now, tuple(replica), address)  # type: ignore[arg-type]
        holder = node == self.master and self.handover_to is None
        if holder:
            self.renewed_at = now
        return LeaseAnswer(self.epoch, self.master, holder, self.lease_timeout if holder else 0.0)

    def forget(self, node: str) -> None:
        self.members.pop(node, None)

    # ---- queries ------------------------------------------------------------
    def lease_expired(self) -> bool:
        """True once no master may still believe it holds the lease."""
        return self.clock() > self.renewed_at + self.lease_timeout + self.margin

    def alive(self, node: str, within: float) -> bool:
        seen = self.members.get(node)
        return seen is not None and self.clock() - seen.last_heartbeat <= within

    def candidates(self) -> list[str]:
        """Living, eligible nodes, best first: freshest replica, then lowest number."""
        living = [n for n in self.members if n not in self.ineligible and self.alive(n, self.lease_timeout)]
        return sorted(living, key=lambda n: (tuple(-x for x in self.members[n].replica), node_number(n)))

    def fresher_late(self, best: str) -> bool:
        """Whether an eligible node other than the holder, heard from within `wait_for_fresher` but not
        within the lease, holds a fresher replica than `best` (the freshest living candidate)."""
        if self.wait_for_fresher <= 0:
            return False
        mine = self.members[best].replica
        return any(node != self.master and node not in self.ineligible and seen.replica > mine
                   and not self.alive(node, self.lease_timeout) and self.alive(node, self.wait_for_fresher)
                   for node, seen in self.members.items())

    # ---- decisions ----------------------------------------------------------
    def tick(self) -> Election | None:
        """Elect a master when there is none or the holder's lease has run out."""
        if self.master is not None and not self.lease_expired():
            return None
        choices = self.candidates()
        if not choices:
            return None
        choice = choices[0]
        if self.handover_to in choices:
            choice = self.handover_to
        elif self.fresher_late(choice):
            return None  # a standby with the last changes is late, not yet dead: wait for it
        reason = ("first master" if self.master is None
                  else f"handover from {self.master}" if self.handover_to
                  else f"lease of {self.master} expired")
        return self._elect(choice, reason)

    def first_master(self, node: str) -> Election | None:
        """A brand-new cluster: the first registered node becomes master at once."""
        if self.master is None and self.epoch == 0 and node not in self.ineligible:
            return self._elect(node, "first master")
        return None

    def request_handover(self, node: str) -> None:
        if node == self.master:
            return
        self.handover_to = node

    def _elect(self, node: str, reason: str) -> Election:
        previous = self.master
        # Never below an epoch any node has applied changes under: a replicated
        # state that lost its last entries (a majority's power cut) must not
        # hand out an epoch that slaves already saw.
        self.epoch = max([self.epoch, *(m.replica[0] for m in self.members.values())]) + 1
        self.master = node
        self.handover_to = None
        self.renewed_at = self.clock()
        return Election(self.epoch, node, previous, reason)


def node_number(node: str) -> int:
    digits = "".join(ch for ch in node if ch.isdigit())
    return int(digits) if digits else 1 << 30
