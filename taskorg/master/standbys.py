"""Which nodes the active master streams its state to: a bounded, sticky set (setting `standbys`).

Streaming every change to every node cost a 100-node cluster's master its lease (issue 14), so the
master replicates to `standbys` nodes only. Pure decisions over the DNS service's members view:

- eligible: alive, active (neither draining nor left: the arbiter would not elect it), runs a
  master service, and not the master itself;
- sticky: a standby stays while it is eligible, so no live standby is dropped for a fresher node and
  no healthy replica is thrown away on a membership blip;
- a gap is filled from the other eligible nodes, freshest replica first (it needs the smallest
  catch-up, and after a failover it is the previous master's other standby), then node number.

A node newly chosen counts towards `replication_acks` only once its acknowledged position reaches a
change (`Replicator.wait_for`), which it can only do after its snapshot or tail: it catches up first.
"""

from __future__ import annotations

from typing import Any, Iterable, Sequence

from taskorg.labels import NO_MASTER_SERVICE


def node_number(node: str) -> int:
    digits = "".join(ch for ch in node if ch.isdigit())
    return int(digits) if digits else 1 << 30


def replica_of(member: dict[str, Any]) -> tuple[int, int]:
    """The (epoch, seq) the member's heartbeats report; (0, 0) when it reports none (no replica)."""
    replica = member.get("replica")
    if isinstance(replica, (list, tuple)) and len(replica) == 2 and all(isinstance(x, int) for x in replica):
        return int(replica[0]), int(replica[1])
    return 0, 0


def eligible(members: Iterable[dict[str, Any]], own_address: str) -> list[dict[str, Any]]:
    """Members that may be standbys: alive, active, running a master service, not this node."""
    return [m for m in members
            if m.get("alive") and m.get("state") == "active" and m.get("address") != own_address
            and (m.get("labels") or {}).get(NO_MASTER_SERVICE) != "true"]


def fill_order(candidates: Iterable[dict[str, Any]]) -> list[str]:
    """Candidates best first: the freshest replica (epoch, then seq), then the lowest node number."""
    ranked = sorted(candidates, key=lambda m: (-replica_of(m)[0], -replica_of(m)[1], node_number(str(m["node"])),
                                               str(m["node"])))
    return [str(m["node"]) for m in ranked]


def choose_standbys(current: Sequence[str], candidates: Iterable[dict[str, Any]], count: int) -> tuple[str, ...]:
    """The standby set: those of `current` still among `candidates` (eligible members), in their order,
    then the best of the others (`fill_order`) up to `count`."""
    if count <= 0:
        return ()
    candidates = list(candidates)
    living = {str(m["node"]) for m in candidates}
    kept = [node for node in dict.fromkeys(current) if node in living][:count]
    if len(kept) == count:
        return tuple(kept)  # the usual case, asked on every acknowledgement wait: no sort
    fresh = [node for node in fill_order(candidates) if node not in kept]
    return tuple(kept + fresh[:count - len(kept)])
