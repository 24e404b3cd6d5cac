"""Which machines vote in the consensus group, and the one change that moves the group there, as pure logic.

A Raft group of N voters survives the loss of (N - 1) // 2 of them, and every
voter costs each write a round trip, so an even count buys nothing: 4 voters
survive one loss, like 3. We keep 1, 3 or 5 voters: the witness (the DNS
node, always while it lives) and up to four regular nodes, lowest numbers
first. Every other machine keeps a non-voting replica, so a 100-node cluster
has 5 voters, not 100. A voter that has been silent for longer than `grace`
is replaced by a living machine (a reboot must not churn the group), the way
Consul's autopilot and Swarm's managers do it: one membership change at a
time, a dead voter removed before its successor is added, a living voter
never removed for a dead one's sake, and never a change after which the
living voters would not be a majority of the group.
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


def next_change(current: list[str], machines: list[Machine], grace: float,
                size: int = MAX_VOTERS) -> VoterChange | None:
    """The one change the group needs now, or None (nothing to do, or nothing safe to do).

    In this order: a voter that left, or one silent past `grace` when a
    living machine can take its seat, is removed (its seat is of no use and
    it counts against the majority); a living machine fills a free seat, the
    witness first, then the lowest number; a group left even (or above
    `size`) gives up one seat, a dead voter's first, else the highest-numbered
    living one (never the witness's). A dead voter with nobody to replace it
    keeps its seat: removing it would not make the group survive more. A
    change is made only if the living voters are a majority both before it
    (else nothing commits) and after it. A voter not among `machines` is
    silent.
    """
    known = {m.address: m for m in machines}
    silent = {a: known[a].silent_for if a in known else float("inf") for a in current}
    number = {a: known[a].number if a in known else 1 << 30 for a in current}
    gone = [a for a in current if a in known and not known[a].eligible]
    dead = sorted((a for a in current if silent[a] > grace and a not in gone), key=lambda a: -silent[a])
    spares = sorted((m for m in machines if m.address not in current and m.eligible and m.silent_for == 0),
                    key=lambda m: (m.number, m.address))
    seats = voter_count(min(size, len(current) - len(gone) + len(spares)))

    def living(voters: list[str]) -> int:
        return sum(1 for a in voters if a in known and known[a].silent_for == 0)

    def safe(after: list[str]) -> bool:
        return living(current) * 2 > len(current) and living(after) * 2 > len(after)

    def remove(address: str) -> VoterChange | None:
        if not safe([a for a in current if a != address]):
            return None
        reason = "it left the cluster" if address in gone else \
            f"silent for {silent[address]:.1f} s, past the {grace:g} s grace" if address in dead else \
            f"the group keeps an odd count of at most {min(size, MAX_VOTERS)}"
        return VoterChange("remove", address, reason)

    for address in gone + (dead if spares else []):
        change = remove(address)
        if change:
            return change
    witness = [m for m in spares if m.number == 0]
    if spares and (len(current) < seats or witness) and safe(current + [spares[0].address]):
        reason = "the witness votes while it lives" if witness else "a living machine takes a free seat"
        return VoterChange("add", spares[0].address, reason)
    if len(current) > seats or len(current) % 2 == 0:
        living_ones = sorted((a for a in current if a not in dead and number[a] != 0), key=lambda a: -number[a])
        for address in dead + living_ones:
            change = remove(address)
            if change:
                return change
    return None


def apply(current: list[str], change: VoterChange) -> list[str]:
    """The voters after `change`."""
    if change.kind == "add":
        return current + [change.address] if change.address not in current else list(current)
    return [a for a in current if a != change.address]


def rejoin_with(mine: list[str], leaders: list[str]) -> list[str] | None:
    """The voter set this machine's engine must restart with, given the group leader's (`leaders`), or
    None when it already agrees. `mine` is the voter set its engine runs with (itself among them when
    it votes). An engine that lists other voters than the group's cannot take part: a machine that was
    down while the group changed comes back with the set it last knew (removed meanwhile, kept while
    others came and went, or named a voter an instant before it went down, so it comes back as a
    read-only replica of voters that no longer lead), and an engine drops connections from a voter it
    does not list, so it neither follows nor votes, and the group then fails one loss sooner."""
    if not leaders:
        return None
    return None if set(mine) == set(leaders) else list(leaders)
