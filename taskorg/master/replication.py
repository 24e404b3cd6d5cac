"""Streaming master-state changes to the standby master services.

The standbys are a bounded, sticky set of `standbys` living nodes (`taskorg.master.standbys`); every
other node keeps whatever replica it last had and gets no stream. One sender thread per standby
pushes the change log in order. On
first contact it checks the standby's position: if that position is a prefix
of our log it streams the tail, otherwise (a deposed master with an unacked
tail, a new node, a pruned log) it sends a snapshot first. `wait_for` lets a
submission wait until enough standbys hold its change.
"""

from __future__ import annotations

import bisect
import threading
import time
from collections import deque
from typing import Callable

import msgspec

from taskorg.config import Config
from taskorg.logs import get_logger
from taskorg.master.members import MemberCache
from taskorg.master.role import Role
from taskorg.master.standbys import choose_standbys, eligible
from taskorg.master.store import Store, check_entries, check_row
from taskorg.net.client import ServiceError, ServiceUnavailable
from taskorg.net.peer import PeerConnection
from taskorg.protocol import (ProtocolError, ReplicaPosition, ReplicationBatch, Snapshot, convert, encode,
                              encode_entries)

log = get_logger("master.replication")
COMMIT_TIMES_KEPT = 4096  # (seq, when) of recent commits: enough to age any lag worth alerting on
# How long an idle sender or the manager waits before looking again on its own: a commit, a stop and
# a membership change (`notify`) wake them at once, so this is only a safety net. Each idle wake-up
# cost a few hundred microseconds of CPU on a virtual machine (docs/bench.md), five times a second
# per standby before.
IDLE_WAIT = 1.0


class Replicator:
    def __init__(self, config: Config, secret: str, store: Store, members: MemberCache) -> None:
        self.config = config
        self.secret = secret
        self.store = store
        self.members = members
        self.cond = threading.Condition()
        self.running = False
        self.epoch = 0
        self.acked: dict[str, int] = {}
        self.senders: dict[str, threading.Thread] = {}
        self.generation = 0
        self.chosen: tuple[str, ...] = ()  # the standby set, kept while its members live (`standbys`)
        self.commit_times: deque[tuple[int, float]] = deque(maxlen=COMMIT_TIMES_KEPT)

    # ---- control ----------------------------------------------------------------------
    def start(self, epoch: int) -> None:
        with self.cond:
            if epoch != self.epoch:
                self.chosen = ()  # a new tenure: chosen afresh, freshest replicas first
            self.running = True
            self.epoch = epoch
            self.generation += 1
            self.acked = {}
            self.senders = {}
        threading.Thread(target=self._manage, args=(self.generation,), daemon=True, name="replication").start()

    def stop(self) -> None:
        with self.cond:
            self.running = False
            self.generation += 1
            self.cond.notify_all()

    def notify(self, seq: int | None = None) -> None:
        """A change was committed (`seq`, when known: its time ages the standbys' lag), or the membership
        moved (the standby set may have changed: its senders start or end now, not a wait later)."""
        with self.cond:
            if seq is not None:
                self.commit_times.append((seq, time.monotonic()))
            self.cond.notify_all()

    def lag(self, seq: int) -> dict[str, tuple[int, float]]:
        """Per standby: (changes it lacks, seconds since the oldest of them was committed)."""
        now = time.monotonic()
        with self.cond:
            acked = {node: self.acked.get(node, 0) for node in self.standbys()} if self.running else {}
            times = list(self.commit_times)
        found = {}
        for node, position in acked.items():
            behind = max(0, seq - position)
            age = 0.0
            if behind:
                index = bisect.bisect_right(times, (position, float("inf")))
                # (index 0: older than every commit kept, so at least as old as the oldest kept)
                age = now - times[index][1] if index < len(times) else 0.0
            found[node] = (behind, round(age, 3))
        return found

    def standbys(self) -> dict[str, str]:
        """The standby set (node -> address): at most `standbys` living, active members other than this
        node that run a master service, kept while they stay so (`taskorg.master.standbys`)."""
        candidates = eligible(self.members.members(), self.config.node_address)
        with self.cond:
            chosen = choose_standbys(self.chosen, candidates, self.config.standbys)
            if chosen != self.chosen:
                log.info("standby set", extra={"standbys": list(chosen), "was": list(self.chosen)})
                self.chosen = chosen
        addresses = {str(m["node"]): str(m["address"]) for m in candidates}
        return {node: addresses[node] for node in chosen}

    def standby_set(self) -> list[str]:
        """The standbys as last chosen (empty while this master does not stream)."""
        with self.cond:
            return list(self.chosen) if self.running else []

    def wait_for(self, seq: int, timeout: float) -> bool:
        """True once enough living standbys hold change `seq` (or none is alive)."""
        deadline = time.monotonic() + timeout
        with self.cond:
            while True:
                standbys = self.standbys()
                need = min(self.config.replication_acks, len(standbys))
                if sum(1 for node in standbys if self.acked.get(node, -1) >= seq) >= need:
                    return True
                remaining = deadline - time.monotonic()
                if remaining <= 0 or not self.running:
                    return False
                self.cond.wait(min(remaining, 0.05))

    def positions(self) -> dict[str, int]:
        with self.cond:
            return dict(self.acked)

    # ---- senders ------------------------------------------------------------------------
    def _manage(self, generation: int) -> None:
        self.members.refresh()  # a standby's view may be old: choose the set from a current one
        while self._current(generation):
            for node, address in self.standbys().items():
                thread = self.senders.get(node)
                if thread is None or not thread.is_alive():
                    thread = threading.Thread(target=self._send_loop, args=(generation, node, address),
                                              daemon=True, name=f"replicate-{node}")
                    self.senders[node] = thread
                    thread.start()
            with self.cond:
                self.cond.wait(IDLE_WAIT)

    def _current(self, generation: int) -> bool:
        return self.running and self.generation == generation

    def _send_loop(self, generation: int, node: str, address: str) -> None:
        client = PeerConnection(self.config.url(address, self.config.master_port), self.secret, timeout=2)
        acked: int | None = None
        try:
            while self._current(generation) and node in self.standbys():
                try:
                    if acked is None:
                        acked = self._handshake(client)
                    acked = self._push(client, acked)
                except ServiceUnavailable:
                    acked = None
                    time.sleep(0.2)
                    continue
                except (ServiceError, ProtocolError) as exc:
                    log.info("standby refused changes", extra={"node": node, "error": str(exc)})
                    acked = None
                    time.sleep(0.2)
                    continue
                with self.cond:
                    if self.acked.get(node) != acked:
                        self.acked[node] = acked
                        self.cond.notify_all()  # only on progress: senders share this condition
                    if self.store.position()[1] <= acked and self._current(generation):
                        self.cond.wait(IDLE_WAIT)
        finally:
            client.close()
            with self.cond:
                self.acked.pop(node, None)

    def _handshake(self, client: PeerConnection) -> int:
        """Where to stream from: the standby's seq if it is a prefix of our log, else a snapshot."""
        position = convert(client.get("/v1/replica"), ReplicaPosition, "replica position")
        their_epoch, their_seq = position.epoch, position.seq
        logged = self.store.logged_since(their_seq - 1, limit=1) if their_seq > 0 else []
        if their_seq == 0 and self.store.logged_since(0, limit=1) is not None:
            return 0
        if logged and logged[0][0] == their_seq and logged[0][1] == their_epoch:
            log.info("streaming to standby", extra={"standby": client.base_url, "from_seq": their_seq})
            return their_seq
        log.info("sending a snapshot to standby", extra={"standby": client.base_url, "their_epoch": their_epoch,
                                                          "their_seq": their_seq, "our": self.store.position()})
        return self._send_snapshot(client)

    def _send_snapshot(self, client: PeerConnection) -> int:
        """The whole state, part by part (each about CHUNK_BYTES): the standby swaps it in with the last."""
        seq = 0
        for part in self.store.snapshot_parts():
            seq = self._send(client, ReplicationBatch(epoch=self.epoch, snapshot=Snapshot(**part)), timeout=30)
        return seq

    def _send(self, client: PeerConnection, batch: ReplicationBatch, timeout: float | None = None) -> int:
        """Send a batch; the standby's new seq."""
        return self._post(client, encode(batch), timeout)

    def _post(self, client: PeerConnection, body: bytes, timeout: float | None = None) -> int:
        """Send an encoded ReplicationBatch; the standby's new seq."""
        answer = client.post("/v1/replica/apply", body, timeout=timeout, headers={"Content-Type": "application/json"})
        return convert(answer, ReplicaPosition, "replication answer").seq

    def _push(self, client: PeerConnection, acked: int) -> int:
        while True:
            rows = self.store.logged_since(acked)
            if rows is None:
                return self._send_snapshot(client)
            if not rows:
                return acked
            try:
                acked = self._post(client, encode_entries(self.epoch, rows))
            except ServiceError as exc:
                if exc.payload.get("gap"):
                    return self._send_snapshot(client)
                raise


class Refused(Exception):
    """A replication batch this replica will not apply; `status` is the HTTP answer."""

    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status


def admit_epoch(epoch: int, fence: int, role: Role, granted: Callable[[], int | None]) -> None:
    """Refuse (Refused) a batch whose epoch is fenced off, or higher than any the arbiter granted.

    An epoch above everything this replica has seen would demote an active master and raise its fence
    for good (10^18 did, issue 15), so the arbiter (`granted`: the DNS service's current epoch, None
    when unreachable) is asked first: only once per new epoch, as the fence rises with the batch.
    """
    if epoch < fence or (role.valid() and epoch <= role.epoch):
        raise Refused(409, f"fenced: changes from epoch {epoch}, this replica has seen epoch {max(fence, role.epoch)}")
    if epoch > max(fence, role.epoch):
        arbiter = granted()
        if arbiter is None:
            raise Refused(503, f"changes from a new epoch {epoch}, and the DNS service cannot be asked "
                               "whether it was granted")
        if epoch > arbiter:
            raise Refused(409, f"epoch {epoch} was never granted: the DNS service's epoch is {arbiter}")


def check_batch(batch: ReplicationBatch) -> None:
    """Every row of a batch against its table's columns and types (BadChange), before any side effect."""
    if batch.snapshot is not None:
        for name, rows in batch.snapshot.tables.items():
            for row in rows:
                check_row(name, row)
    else:
        check_entries([msgspec.structs.asdict(entry) for entry in batch.entries], batch.epoch)


def apply_on_standby(store: Store, batch: ReplicationBatch) -> tuple[int, int]:
    """A standby applying what the active master sent (snapshot or entries), its fence raised to the
    batch's epoch in the same transaction. BadChange: refused, nothing written."""
    if batch.snapshot is not None:
        return store.load_snapshot(msgspec.structs.asdict(batch.snapshot), fence=batch.epoch)
    return store.apply_replicated([msgspec.structs.asdict(entry) for entry in batch.entries], fence=batch.epoch)
