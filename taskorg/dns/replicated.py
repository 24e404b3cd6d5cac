"""The cluster's registry, replicated by Raft (PySyncObj) between the DNS services.

Members and their names, the epoch and master of the last election, the
service names the active master pushed, and the event log are the state every DNS service serves its zone from. The voters
(the witness and up to four nodes: `taskorg.dns.voters`) hold it in a Raft
group; every other DNS service keeps a read-only replica of it. Reads are
local; a write is committed by a majority of voters before it returns, or
raises `NoQuorum` naming why not. docs/architecture.md, "Consensus engine"
says why PySyncObj and which of its settings matter.
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any, Callable

from pysyncobj import SyncObj, SyncObjConf, SyncObjConsumer, SyncObjException, replicated
from pysyncobj.monotonic import monotonic as engine_clock  # its own clock (not time.monotonic's)

from taskorg.dns.members import Member

# Raft timings: a leader heartbeat every 0.1 s, a new leader 0.5-1 s after the old one fell silent.
APPEND_ENTRIES_PERIOD = 0.1
ELECTION_MIN = 0.5
ELECTION_MAX = 1.0
# The arbiter grants master leases only while a majority of voters answered it this recently.
# Followers elect no new leader before ELECTION_MIN of silence, so any lease it grants ends
# before a successor can even exist; the successor then waits lease + margin on top.
LEADERSHIP_WINDOW = ELECTION_MIN / 2
EVENTS_KEPT = 2000


class NoQuorum(Exception):
    """The change cannot be committed: no majority of voters is reachable from here."""


class ClusterBook(SyncObjConsumer):
    """The replicated state. Its @replicated methods run on every replica, in log order."""

    def __init__(self) -> None:
        super().__init__()
        self.members: dict[int, dict[str, Any]] = {}
        self.epoch = 0
        self.master: str | None = None
        self.events: list[dict[str, Any]] = []
        self.next_event = 1
        # Service names (`<task>.<job>.<suffix>` -> addresses), as the active master last pushed them.
        self.services: dict[str, list[str]] = {}
        self.services_epoch = 0
        self.applied = 0  # how many changes this replica applied: publishers watch it

    @replicated
    def register(self, identity: str, address: str, labels: dict[str, str], now: float) -> tuple[int, bool]:
        number = next((n for n, m in self.members.items() if m["identity"] == identity), None)
        if number is not None:
            # A member that left stays out until `activate`: its machine may still run the
            # services, and a leave must not be undone by their next heartbeat.
            self.members[number].update(address=address, labels=dict(labels))
            self._changed()
            return number, False
        number = max(self.members, default=0) + 1
        self.members[number] = {"identity": identity, "address": address, "labels": dict(labels),
                                "state": "active", "registered_at": now}
        self._changed()
        return number, True

    @replicated
    def set_state(self, number: int, state: str) -> None:
        if number in self.members:
            self.members[number]["state"] = state
        self._changed()

    @replicated
    def record_election(self, epoch: int, master: str, event: dict[str, Any]) -> None:
        self.epoch, self.master = epoch, master
        self._append_event(event)
        self._changed()

    @replicated
    def add_event(self, event: dict[str, Any]) -> None:
        self._append_event(event)
        self._changed()

    @replicated
    def set_services(self, epoch: int, names: dict[str, list[str]]) -> bool:
        """The master of `epoch` names the healthy instances; a push from an older master is ignored."""
        if epoch < getattr(self, "services_epoch", 0):
            return False
        self.services, self.services_epoch = names, epoch
        self._changed()
        return True

    def _append_event(self, event: dict[str, Any]) -> None:
        self.events.append({"id": self.next_event, **event})
        self.next_event += 1
        del self.events[:-EVENTS_KEPT]

    def _changed(self) -> None:
        self.applied += 1


class ReplicatedRegistry:
    """The registry's interface (`taskorg.dns.store.Registry`) over the replicated book."""

    def __init__(self, me: str, voters: list[str], port: int, workdir: Path, write_timeout: float = 1.0) -> None:
        workdir.mkdir(parents=True, exist_ok=True)
        self.me = me
        self.voters = list(voters)
        self.port = port
        self.write_timeout = write_timeout
        self.voting = me in self.voters
        self.book = ClusterBook()
        self_node = f"{me}:{port}" if self.voting else None
        conf = SyncObjConf(
            appendEntriesPeriod=APPEND_ENTRIES_PERIOD, raftMinTimeout=ELECTION_MIN, raftMaxTimeout=ELECTION_MAX,
            leaderFallbackTimeout=LEADERSHIP_WINDOW,
            # Followers send each other nothing: their idle link drops after connectionTimeout and
            # is redialled only after connectionRetryTime (5 s by default, which stalled elections).
            connectionTimeout=3.5, connectionRetryTime=0.2,
            appendEntriesUseBatch=False,  # commit at once, not on the next tick
            commandsWaitLeader=False,     # no leader: fail now, with a reason, instead of queueing
            bindAddress=self_node,        # its default is 0.0.0.0, which machines sharing a host collide on
            journalFile=str(workdir / "raft.journal") if self.voting else None,
            fullDumpFile=str(workdir / "raft.dump") if self.voting else None,
        )
        self.engine = SyncObj(self_node, [f"{v}:{port}" for v in self.voters if v != me], conf,
                              consumers=[self.book])

    # ---- the engine's view ---------------------------------------------------------------
    def leader_address(self) -> str | None:
        leader = self.engine._getLeader()
        return leader.address.rsplit(":", 1)[0] if leader is not None else None

    def reachable_voters(self) -> list[str]:
        found = [self.me] if self.voting else []
        for node in self.engine.otherNodes:
            if self.engine.isNodeConnected(node):
                found.append(node.address.rsplit(":", 1)[0])
        return found

    def is_arbiter(self, clock: Callable[[], float] = engine_clock) -> bool:
        """This service leads the group and a majority of voters answered it within LEADERSHIP_WINDOW."""
        if not self.voting or not self.engine._isLeader():
            return False
        # PySyncObj keeps when each follower last answered (on its clock) but does not expose it.
        answered = getattr(self.engine, "_SyncObj__lastResponseTime", {})
        recent = 1 + sum(1 for node in self.engine.otherNodes
                         if clock() - answered.get(node, float("-inf")) <= LEADERSHIP_WINDOW)
        return recent > len(self.voters) // 2

    def why_not_writable(self) -> str | None:
        """None when a change can be committed from here, else the reason in words."""
        reachable = self.reachable_voters()
        needed = len(self.voters) // 2 + 1
        if self.voting and len(reachable) < needed:
            return (f"no quorum: the DNS service at {self.me} reaches {len(reachable)} of {len(self.voters)} "
                    f"voters ({', '.join(reachable) or 'none'}; voters are {', '.join(self.voters)}) and "
                    f"a change needs a majority ({needed}) with a leader among them")
        if self.leader_address() is None:
            return (f"no quorum: the DNS service at {self.me} sees no leader among the voters "
                    f"({', '.join(self.voters)}): an election is under way, or no majority ({needed}) of them "
                    "can be reached from here")
        return None

    def offer_leadership(self, address: str) -> None:
        """From the leader: ask the group to make `address` its leader (best effort; PySyncObj refuses
        a voter that has not caught up, and the next offer comes a while later)."""
        if address != self.me and address in self.voters and self.engine._isLeader():
            self.engine.transferLeadership(f"{address}:{self.port}")

    # ---- writes ------------------------------------------------------------------------------
    def _commit(self, change: Callable[..., Any], *args: Any) -> Any:
        reason = self.why_not_writable()
        if reason:
            raise NoQuorum(reason)
        try:
            return change(*args, sync=True, timeout=self.write_timeout)
        except SyncObjException as exc:
            raise NoQuorum(f"the change was not committed by a majority of voters within "
                           f"{self.write_timeout:g} s ({exc.errorCode}); voters: {', '.join(self.voters)}") from None

    def register(self, identity: str, address: str, labels: dict[str, str]) -> tuple[Member, bool]:
        number, new = self._commit(self.book.register, identity, address, labels, time.time())
        member = self.member(f"node{number}")
        assert member is not None
        return member, new

    def set_state(self, node: str, state: str) -> None:
        self._commit(self.book.set_state, int(node.removeprefix("node")), state)

    def record_election(self, epoch: int, master: str, reason: str, previous: str | None) -> None:
        """Committed by a majority before anyone is told: every replica then names the same master."""
        self._commit(self.book.record_election, epoch, master, {
            "time": time.time(), "kind": "master_elected",
            "epoch": epoch, "master": master, "previous": previous, "reason": reason})

    def set_services(self, epoch: int, names: dict[str, list[str]]) -> bool:
        """Commit the master's service names (False: a newer master already pushed its own)."""
        return bool(self._commit(self.book.set_services, epoch, names))

    def add_event(self, kind: str, **data: Any) -> None:
        self._commit(self.book.add_event, {"time": time.time(), "kind": kind, **data})

    # ---- reads (this replica) -----------------------------------------------------------------
    def members(self, include_left: bool = False) -> list[Member]:
        found = [Member(n, m["identity"], m["address"], dict(m["labels"]), m["state"])
                 for n, m in sorted(list(self.book.members.items()))]  # (list(): one step under the GIL)
        return found if include_left else [m for m in found if m.state != "left"]

    def member(self, node: str) -> Member | None:
        return next((m for m in self.members(include_left=True) if m.node == node), None)

    def election(self) -> tuple[int, str | None]:
        return self.book.epoch, self.book.master

    def services(self) -> dict[str, list[str]]:
        return dict(getattr(self.book, "services", {}))

    def events(self, since: int = 0, limit: int = 500) -> list[dict[str, Any]]:
        return [dict(e) for e in list(self.book.events) if e["id"] > since][:limit]

    @property
    def applied(self) -> int:
        return self.book.applied

    def close(self) -> None:
        self.engine.destroy()
