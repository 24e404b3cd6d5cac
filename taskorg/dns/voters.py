"""Which machines vote in the consensus group, as pure logic.

A Raft group of N voters survives the loss of (N - 1) // 2 of them, and every
voter costs each write a round trip, so an even count buys nothing: 4 voters
survive one loss, like 3. We keep 1, 3 or 5 voters: the witness (the DNS
node, first in line while it lives) and up to four regular nodes, lowest
numbers first. Every other machine keeps a non-voting replica, so a 100-node
cluster has 5 voters, not 100. A voter that has been silent for longer than
`grace` is replaced by a living machine (a reboot must not churn the group).
"""

from __future__ import annotations

from dataclasses import dataclass

MAX_VOTERS = 5


@dataclass(frozen=True)
class Machine:
    address: str       # its DNS service's address: its identity in the consensus group
    number: int        # its node number; 0 for the witness
    silent_for: float  # seconds since it was last heard from (0 when alive)
    eligible: bool = True  # False once it has left the cluster


def voter_count(machines: int) -> int:
    """The largest odd count up to MAX_VOTERS that `machines` can fill (at least 1)."""
    count = min(MAX_VOTERS, max(1, machines))
    return count if count % 2 else count - 1


def choose_voters(current: list[str], machines: list[Machine], grace: float) -> list[str]:
    """The voters to have now: keep those still within `grace`, fill up from the living, keep the count odd.

    Returns addresses, the witness first, then by node number. A current voter
    that is silent but within its grace keeps its seat, and is the first to go
    only when the count must shrink.
    """
    usable = [m for m in machines if m.eligible and m.silent_for <= grace]
    target = voter_count(len(usable))
    order = {m.address: (m.number, m.address) for m in machines}
    kept = [m for m in usable if m.address in current]
    # the living before the silent, then the witness and low numbers first
    kept.sort(key=lambda m: (m.silent_for > 0, m.number))
    chosen = kept[:target]
    newcomers = sorted((m for m in usable if m.address not in current and m.silent_for == 0),
                       key=lambda m: (m.number, m.address))
    chosen += newcomers[:target - len(chosen)]
    if len(chosen) % 2 == 0:
        chosen = sorted(chosen, key=lambda m: (m.silent_for > 0, m.number))[:len(chosen) - 1]
    return sorted((m.address for m in chosen), key=lambda a: order[a])
