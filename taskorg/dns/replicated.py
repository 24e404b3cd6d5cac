"""The cluster's registry, replicated by Raft (PySyncObj) between the DNS services.

Members and their names, the epoch and master of the last election, the
service names the active master pushed, and the event log are the state every DNS service serves its zone from. The voters
(the witness and up to four nodes: `taskorg.dns.voters`) hold it in a Raft
group; every other DNS service keeps a read-only replica of it. The voter set
is itself part of the state (`voters`): the group's leader changes it one
machine at a time (`taskorg.dns.autopilot`), and every replica's engine
follows what it records (`follow`), a machine promoted to voter or dropped
from the group included. Reads are
local; a write is committed by a majority of voters before it returns, or
raises `NoQuorum` naming why not. docs/architecture.md, "Consensus engine"
says why PySyncObj and which of its settings matter.
"""

from __future__ import annotations

import ipaddress
import json
import sys
import threading
import time
from pathlib import Path
from typing import Any, Callable


def _load_pysyncobj_without_cryptography() -> None:
    """pysyncobj imports cryptography's Fernet at start for its `password` option, which taskorg does
    not set: ~1.1 MiB of every DNS service's heap for nothing (issue 14). Hidden while it loads, it
    takes its own no-crypto path (HAS_CRYPTO false); a later `import cryptography` works as ever."""
    if "pysyncobj" in sys.modules or "cryptography" in sys.modules:
        return
    sys.modules["cryptography"] = None  # type: ignore[assignment]  # makes the import raise ImportError
    try:
        import pysyncobj  # noqa: F401
    finally:
        del sys.modules["cryptography"]


_load_pysyncobj_without_cryptography()

from pysyncobj import SyncObj, SyncObjConf, SyncObjConsumer, SyncObjException, replicated  # noqa: E402
from pysyncobj.monotonic import monotonic as engine_clock  # noqa: E402  # its own clock (not time.monotonic's)

from taskorg.dns.members import Member  # noqa: E402

# Raft timings: a leader heartbeat every 0.1 s, a new leader 0.5-1 s after the old one fell silent.
APPEND_ENTRIES_PERIOD = 0.1
ELECTION_MIN = 0.5
ELECTION_MAX = 1.0
# The arbiter grants master leases only while a majority of voters answered it this recently.
# Followers elect no new leader before ELECTION_MIN of silence, so any lease it grants ends
# before a successor can even exist; the successor then waits lease + margin on top.
LEADERSHIP_WINDOW = ELECTION_MIN / 2
# How long the engine's loop sleeps when no message comes: its timers run no finer. Every message
# wakes it at once, so only timers pay for a longer sleep. The leader keeps PySyncObj's 50 ms: its
# beats (every APPEND_ENTRIES_PERIOD) must not drift toward LEADERSHIP_WINDOW. A follower's one timer
# is its election deadline (0.5-1 s of silence), which 0.1 s delays by 0.05 s on average; the
# leader's beats wake it ten times a second anyway. A read-only replica has no election or beat to
# time (a redial of a dropped link waits up to its sleep).
LEADER_TICK = 0.05
FOLLOWER_TICK = 0.1
REPLICA_TICK = 0.5
EVENTS_KEPT = 2000


class NoQuorum(Exception):
    """The change cannot be committed: no majority of voters is reachable from here."""


class ClusterBook(SyncObjConsumer):
    """The replicated state. Its @replicated methods run on every replica, in log order."""

    def __init__(self, on_change: Callable[[], None] | None = None) -> None:
        # Set before SyncObjConsumer's __init__, which keeps the attributes it finds out of the
        # replicated state (a callback is this process's, not the cluster's).
        self._on_change = on_change
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
        self.voters: list[str] = []  # the group's voters as last recorded (empty: as configured)

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
    def set_voters(self, voters: list[str], event: dict[str, Any] | None) -> None:
        self.voters = list(voters)
        if event is not None:
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
        if self._on_change is not None:
            self._on_change()  # on the engine's thread: it only sets an event (the DNS tick's wake-up)

    def _deserialize(self, data: dict[str, Any]) -> None:
        """The whole state, loaded from a dump or sent by the leader: a change like any other."""
        super()._deserialize(data)
        if self._on_change is not None:
            self._on_change()


class ReplicatedRegistry:
    """The registry's interface (`taskorg.dns.store.Registry`) over the replicated book."""

    def __init__(self, me: str, voters: list[str], port: int, workdir: Path, write_timeout: float = 1.0,
                 on_change: Callable[[], None] | None = None) -> None:
        """`on_change` is called (on the engine's thread; keep it short) when this replica applied a
        change, loaded a whole state, swapped its engine, or its engine's Raft state changed."""
        workdir.mkdir(parents=True, exist_ok=True)
        self.me = me
        self.on_change = on_change
        self.port = port
        self.workdir = workdir
        self.write_timeout = write_timeout
        # The voter set this machine last knew (a restart joins the group as it was, not as configured).
        self.known_file = workdir / "voters.json"
        known = self._known_voters() or list(voters)
        self.engine, self.book = self._engine(known)
        self._members: tuple[tuple[int, int], list[Member]] | None = None  # (book, applied index) -> members
        self.voting = me in known
        self._voters: tuple[tuple[frozenset[str], bool], list[str]] | None = None  # (engine's nodes) -> voters
        self._swaps = 0
        self._pending: tuple[SyncObj, ClusterBook] | None = None  # a new engine, until it has caught up

    def _known_voters(self) -> list[str]:
        try:
            found = json.loads(self.known_file.read_text())
        except (OSError, ValueError):
            return []
        return [str(a) for a in found] if isinstance(found, list) else []

    def _engine(self, voters: list[str], fresh: bool = False) -> tuple[SyncObj, ClusterBook]:
        """A PySyncObj member: a voter when `voters` names this machine, else a read-only replica."""
        voting = self.me in voters
        self_node = f"{self.me}:{self.port}" if voting else None
        journal, dump = self.workdir / "raft.journal", self.workdir / "raft.dump"
        if fresh:  # a new voter starts empty and is sent the whole state by the leader
            for path in (journal, dump):
                path.unlink(missing_ok=True)
        conf = SyncObjConf(
            appendEntriesPeriod=APPEND_ENTRIES_PERIOD, raftMinTimeout=ELECTION_MIN, raftMaxTimeout=ELECTION_MAX,
            leaderFallbackTimeout=LEADERSHIP_WINDOW,
            autoTickPeriod=FOLLOWER_TICK if voting else REPLICA_TICK,
            # Followers send each other nothing: their idle link drops after connectionTimeout and
            # is redialled only after connectionRetryTime (5 s by default, which stalled elections).
            connectionTimeout=3.5, connectionRetryTime=0.2,
            appendEntriesUseBatch=False,  # commit at once, not on the next tick
            commandsWaitLeader=False,     # no leader: fail now, with a reason, instead of queueing
            bindAddress=self_node,        # its default is 0.0.0.0, which machines sharing a host collide on
            dynamicMembershipChange=True,  # dead voters are replaced (taskorg.dns.autopilot)
            journalFile=str(journal) if voting else None,
            fullDumpFile=str(dump) if voting else None,
        )
        # Leader, follower, candidate: the arbiter role may move, and the loop's sleep follows the state
        # (PySyncObj reads autoTickPeriod from its conf on every turn of its loop).
        conf.onStateChanged = lambda old, new: self._state_changed(conf, new)
        book = ClusterBook(self.on_change)
        return SyncObj(self_node, [f"{v}:{self.port}" for v in voters if v != self.me], conf, consumers=[book]), book

    def _state_changed(self, conf: SyncObjConf, new: int) -> None:
        """PySyncObj's onStateChanged (0 follower, 1 candidate, 2 leader): the arbiter role may have moved."""
        conf.autoTickPeriod = FOLLOWER_TICK if new == 0 else LEADER_TICK
        self._notify()

    def _notify(self) -> None:
        if self.on_change is not None:
            self.on_change()

    # ---- the voter set ---------------------------------------------------------------------
    @property
    def voters(self) -> list[str]:
        """The group's voters as this member's engine knows them, in address order."""
        found = frozenset(node.address for node in self.engine.otherNodes)
        key = (found, self.voting)
        cached = self._voters
        if cached is None or cached[0] != key:  # every heartbeat asks (is_arbiter): parse on change only
            addresses = {a.rsplit(":", 1)[0] for a in found}  # a replica may list itself
            cached = self._voters = (key, sorted(addresses | ({self.me} if self.voting else set()),
                                                 key=ipaddress.ip_address))
        return list(cached[1])

    def recorded_voters(self) -> list[str]:
        """The voter set last recorded in the replicated state (empty before the first record)."""
        return list(getattr(self.book, "voters", []))

    def record_voters(self, voters: list[str], kind: str | None = None, **data: Any) -> None:
        """Commit the voter set the group is to have, with an event when `kind` names one."""
        event = {"time": time.time(), "kind": kind, **data} if kind else None
        self._commit(self.book.set_voters, list(voters), event)

    def change_membership(self, kind: str, address: str) -> None:
        """From the leader: add or remove one voter of the engine's group; NoQuorum when not committed."""
        done = threading.Event()
        outcome: list[Any] = []

        def finished(result: Any, error: Any) -> None:
            outcome.append(error)
            done.set()

        node = f"{address}:{self.port}"
        change = self.engine.addNodeToCluster if kind == "add" else self.engine.removeNodeFromCluster
        change(node, callback=finished)
        if not done.wait(self.write_timeout * 3) or outcome[0] not in (None, 0):  # 0: FAIL_REASON.SUCCESS
            raise NoQuorum(f"the group did not commit the {kind} of voter {address} "
                           f"({outcome[0] if outcome else 'no answer in time'})")

    def voter_silence(self) -> dict[str, float]:
        """From the leader: seconds since each other voter last answered it (on the engine's clock)."""
        answered = getattr(self.engine, "_SyncObj__lastResponseTime", {})
        now = engine_clock()
        return {node.address.rsplit(":", 1)[0]: max(0.0, now - answered[node]) if node in answered else float("inf")
                for node in self.engine.otherNodes}

    def follow(self) -> None:
        """Every replica, often: its engine follows the recorded voter set.

        A machine the record names becomes a voter (a new engine, empty, sent
        the whole state by the leader); one it no longer names becomes a
        read-only replica. Reads keep using the old replica until the new one
        has caught up, so the zone is never published from an empty state.
        """
        pending = self._pending
        if pending is not None:
            if pending[0].isReady():
                self.book = pending[1]
                self._swaps += 1
                self._pending = None
                self._notify()  # reads now come from the new replica
            return
        recorded = self.recorded_voters()
        if not recorded:
            return
        if recorded != self._known_voters():
            self.known_file.write_text(json.dumps(recorded))
        if (self.me in recorded) != self.voting:
            self.rejoin(recorded)

    def rejoin(self, voters: list[str]) -> None:
        """Restart this member's engine for the voter set `voters` (as a voter or a read-only replica)."""
        self.known_file.write_text(json.dumps(voters))
        self.engine.destroy()
        self.voting = self.me in voters
        self.engine, book = self._engine(voters, fresh=True)
        self._pending = (self.engine, book)

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
        """Built again only after a change was applied to this replica: the DNS tick asks 20 times a
        second. (The applied index is read before the book: a list newer than its key is only rebuilt.)"""
        book, engine = self.book, self.engine
        key = (id(book), engine.raftLastApplied)
        cached = self._members
        if cached is None or cached[0] != key:
            cached = self._members = (key, [_member(n, m) for n, m in sorted(list(book.members.items()))])
            # (list(): one step under the GIL)
        return list(cached[1]) if include_left else [m for m in cached[1] if m.state != "left"]

    def member(self, node: str) -> Member | None:
        """One member by name, looked up by its number (every heartbeat asks: no scan of all members)."""
        number = node.removeprefix("node")
        if not (node.startswith("node") and number.isascii() and number.isdigit()):
            return None
        row = self.book.members.get(int(number))
        return None if row is None else _member(int(number), row)

    def election(self) -> tuple[int, str | None]:
        return self.book.epoch, self.book.master

    def services(self) -> dict[str, list[str]]:
        return dict(getattr(self.book, "services", {}))

    def events(self, since: int = 0, limit: int = 500) -> list[dict[str, Any]]:
        return [dict(e) for e in list(self.book.events) if e["id"] > since][:limit]

    @property
    def applied(self) -> int:
        # A new replica (after a rejoin) counts from zero: the offset still makes every swap a change.
        return self._swaps * 1_000_000_000 + self.book.applied

    def close(self) -> None:
        self.engine.destroy()
        if self._pending is not None and self._pending[0] is not self.engine:
            self._pending[0].destroy()


def _member(number: int, row: dict[str, Any]) -> Member:
    """A member as the book holds it (its labels copied: callers may not change the replica)."""
    return Member(number, row["identity"], row["address"], dict(row["labels"]), row["state"])
