"""Streaming master-state changes to every standby master service.

One sender thread per living standby pushes the change log in order. On
first contact it checks the standby's position: if that position is a prefix
of our log it streams the tail, otherwise (a deposed master with an unacked
tail, a new node, a pruned log) it sends a snapshot first. `wait_for` lets a
submission wait until enough standbys hold its change.
"""

from __future__ import annotations

import threading
import time

import msgspec

from taskorg.config import Config
from taskorg.labels import NO_MASTER_SERVICE
from taskorg.logs import get_logger
from taskorg.master.members import MemberCache
from taskorg.master.store import Store
from taskorg.net.client import ServiceClient, ServiceError, ServiceUnavailable
from taskorg.protocol import ChangeEntry, ProtocolError, ReplicaPosition, ReplicationBatch, Snapshot, convert, encode

log = get_logger("master.replication")


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

    # ---- control ----------------------------------------------------------------------
    def start(self, epoch: int) -> None:
        with self.cond:
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

    def notify(self) -> None:
        with self.cond:
            self.cond.notify_all()

    def standbys(self) -> dict[str, str]:
        """Living members other than this node that run a master service: node -> address."""
        return {m["node"]: m["address"] for m in self.members.members()
                if m["alive"] and m["address"] != self.config.node_address and m["state"] != "left"
                and (m.get("labels") or {}).get(NO_MASTER_SERVICE) != "true"}

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
        while self._current(generation):
            for node, address in self.standbys().items():
                thread = self.senders.get(node)
                if thread is None or not thread.is_alive():
                    thread = threading.Thread(target=self._send_loop, args=(generation, node, address),
                                              daemon=True, name=f"replicate-{node}")
                    self.senders[node] = thread
                    thread.start()
            with self.cond:
                self.cond.wait(0.2)

    def _current(self, generation: int) -> bool:
        return self.running and self.generation == generation

    def _send_loop(self, generation: int, node: str, address: str) -> None:
        client = ServiceClient(self.config.url(address, self.config.master_port), self.secret, timeout=2)
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
                        self.cond.wait(0.2)
        finally:
            client.close()
            with self.cond:
                self.acked.pop(node, None)

    def _handshake(self, client: ServiceClient) -> int:
        """Where to stream from: the standby's seq if it is a prefix of our log, else a snapshot."""
        position = convert(client.get("/v1/replica"), ReplicaPosition, "replica position")
        their_epoch, their_seq = position.epoch, position.seq
        entries = self.store.changes_since(their_seq - 1, limit=1) if their_seq > 0 else []
        if their_seq == 0 and self.store.changes_since(0, limit=1) is not None:
            return 0
        if entries and entries[0]["seq"] == their_seq and entries[0]["epoch"] == their_epoch:
            log.info("streaming to standby", extra={"standby": client.base_url, "from_seq": their_seq})
            return their_seq
        log.info("sending a snapshot to standby", extra={"standby": client.base_url, "their_epoch": their_epoch,
                                                          "their_seq": their_seq, "our": self.store.position()})
        return self._send_snapshot(client)

    def _send_snapshot(self, client: ServiceClient) -> int:
        snapshot = Snapshot(**self.store.snapshot())
        return self._send(client, ReplicationBatch(epoch=self.epoch, snapshot=snapshot), timeout=30)

    def _send(self, client: ServiceClient, batch: ReplicationBatch, timeout: float | None = None) -> int:
        """Send a batch; the standby's new seq."""
        answer = client.post("/v1/replica/apply", data=encode(batch), timeout=timeout,
                             headers={"Content-Type": "application/json"})
        return convert(answer, ReplicaPosition, "replication answer").seq

    def _push(self, client: ServiceClient, acked: int) -> int:
        while True:
            entries = self.store.changes_since(acked)
            if entries is None:
                return self._send_snapshot(client)
            if not entries:
                return acked
            try:
                acked = self._send(client, ReplicationBatch(epoch=self.epoch, entries=[ChangeEntry(**e) for e in entries]))
            except ServiceError as exc:
                if exc.payload.get("gap"):
                    return self._send_snapshot(client)
                raise


def apply_on_standby(store: Store, batch: ReplicationBatch) -> tuple[int, int]:
    """A standby applying what the active master sent (snapshot or entries)."""
    if batch.snapshot is not None:
        return store.load_snapshot(msgspec.structs.asdict(batch.snapshot))
    return store.apply_replicated([msgspec.structs.asdict(entry) for entry in batch.entries])
