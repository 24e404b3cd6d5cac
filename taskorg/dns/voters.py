"""Which machines vote in the consensus group, and the one change that moves the group there, as pure logic.

A Raft group of N voters survives the loss of (N - 1) // 2 of them, and every
voter costs each write a round trip, so an even count buys nothing: 4 voters
survive one loss, like 3. We keep 1, 3 or 5 voters: the witness (the DNS
node, always while it lives) and up to four regular nodes, lowest numbers
first. Every other machine keeps a non-voting replica, so a 100-node cluster
has 5 voters, not 100. A voter that has been silent for longer than `grace`
is replaced by a living machine (a reboot must not churn the group), the way
Consul's autopilot and Swarm's managers do it: one membership change at a
time, a dead voter removed before its successor is added, and never a change
after which the living voters would not be a majority of the group.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

MAX_VOTERS = 5


@dataclass(frozen=True)
class Machine:
    address: str       # its DNS service's address: its identity in the consensus group
    number: int        # its node number; 0 for the witness
    silent_for: float  # seconds since it was last heard from (0 when alive)
    eligible: bool = True  # False once it has left the cluster (or is leaving it)


@dataclass(frozen=True)
class VoterChange:
    """One membership change of the consensus group, and why."""
    kind: Literal["add", "remove"]
    address: str
    reason: str


def voter_count(machines: int) -> int:
    """The largest odd count up to MAX_VOTERS that `machines` can fill (at least 1)."""
    count = min(MAX_VOTERS, max(1, machines))
    return count if count % 2 else count - 1


def choose_voters(current: list[str], machines: list[Machine], grace: float, size: int = MAX_VOTERS) -> list[str]:
    """The voters to have now: keep those still within `grace`, fill up from the living up to `size`
    (the setting `consensus_voters`), keep the count odd.

    Returns addresses, the witness first, then by node number. A current voter
    that is silent but within its grace keeps its seat, and is the first to go
    only when the count must shrink. The witness, alive, always has a seat: it
    is the preferred arbiter, and the one machine that never becomes master.
    """
    usable = [m for m in machines if m.eligible and m.silent_for <= grace]
    target = voter_count(min(size, len(usable)))
    order = {m.address: (m.number, m.address) for m in machines}
    witness = [m for m in usable if m.number == 0 and m.silent_for == 0 and m.address not in current]
    kept = [m for m in usable if m.address in current]
    # the living before the silent, then the witness and low numbers first
    kept.sort(key=lambda m: (m.silent_for > 0, m.number))
    chosen = witness + kept[:target - len(witness)]
    newcomers = sorted((m for m in usable if m.address not in current and m.silent_for == 0 and m not in witness),
                       key=lambda m: (m.number, m.address))
    chosen += newcomers[:target - len(chosen)]
    if len(chosen) % 2 == 0:
        chosen = sorted(chosen, key=lambda m: (m.silent_for > 0, m.number))[:len(chosen) - 1]
    return sorted((m.address for m in chosen), key=lambda a: order[a])


def next_change(current: list[str], machines: list[Machine], grace: float,
                size: int = MAX_VOTERS) -> VoterChange | None:
    """The one change that moves the group towards `choose_voters`, or None (nothing to do, or not safely).

    Order: a voter silent past its grace goes first (its seat is of no use and
    it counts against the majority), then a living machine is added, then a
    living voter the group no longer needs leaves. A change is made only if
    the living voters are a majority both before it (else nothing commits) and
    after it. A voter not among `machines` at all is unknown: it is silent.
    """
    known = {m.address: m for m in machines}
    silent = {a: known[a].silent_for if a in known else float("inf") for a in current}
    target = choose_voters(current, machines, grace, size)

    def living(voters: list[str]) -> int:
        return sum(1 for a in voters if a in known and silent.get(a, known[a].silent_for) == 0)

    def safe(after: list[str]) -> bool:
        return living(current) * 2 > len(current) and living(after) * 2 > len(after)

    dead = sorted((a for a in current if a not in target and silent[a] > grace), key=lambda a: -silent[a])
    for address in dead:
        after = [a for a in current if a != address]
        if safe(after):
            return VoterChange("remove", address, f"silent for {silent[address]:.1f} s, past the {grace:g} s grace")
    for address in (a for a in target if a not in current):
        if safe(current + [address]):
            return VoterChange("add", address, "a living machine takes a free seat")
    for address in reversed([a for a in current if a not in target]):
        after = [a for a in current if a != address]
        if safe(after):
            reason = "it left the cluster" if address in known and not known[address].eligible else \
                "the group keeps an odd count"
            return VoterChange("remove", address, reason)
    return None


def apply(current: list[str], change: VoterChange) -> list[str]:
    """The voters after `change`."""
    if change.kind == "add":
        return current + [change.address] if change.address not in current else list(current)
    return [a for a in current if a != change.address]
