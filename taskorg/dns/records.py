"""The records this machine's dnsmasq answers, kept in step with the replica.

The publishing half of the DNS service, apart from its decisions: the zone
is rewritten from what the replica holds (committed decisions only), a hand
edit of the master record is taken as a handover, and a newly elected
master is nudged. The caller's lock (the DNS service's, one for every
decision) guards the hosts file too.
"""

from __future__ import annotations

import threading
from typing import Callable

from taskorg.config import Config
from taskorg.dns.arbiter import Arbiter, Election
from taskorg.dns.dnsmasq import Dnsmasq
from taskorg.dns.publisher import Publisher
from taskorg.dns.replicated import ReplicatedRegistry
from taskorg.logs import get_logger
from taskorg.net.client import ServiceClient

log = get_logger("dns")


class Records:
    def __init__(self, config: Config, secret: str, registry: ReplicatedRegistry, lock: threading.RLock) -> None:
        self.config = config
        self.secret = secret
        self.registry = registry
        self.lock = lock
        self.dnsmasq = Dnsmasq(config)
        self.publisher = Publisher(config, self.dnsmasq)
        self.published = -1  # the replica's change count last published

    def start(self) -> None:
        self.dnsmasq.start()
        with self.lock:
            # The replica is empty until the group's leader reaches it: keep serving the zone this
            # machine last published (right, or one change behind) rather than an empty one.
            if not self.publisher.path.exists():
                self.publish()
            self.published = self.registry.applied

    def catch_up(self) -> None:
        """Publish what the replica applied since the last time (the caller holds the lock)."""
        if self.registry.applied != self.published:
            self.published = self.registry.applied
            self.publish()

    def publish(self) -> None:
        """This machine's dnsmasq answers what this replica holds (committed decisions only)."""
        members = self.registry.members()
        nodes = {m.node: m.address for m in members}
        master = self.registry.election()[1]
        self.publisher.publish(nodes.get(master) if master else None, nodes)
        self.publisher.publish_services(self.registry.services())

    def announce(self, election: Election) -> None:
        """A committed election: publish it, then nudge the new master (the caller holds the lock)."""
        log.warning("master elected", extra={"epoch": election.epoch, "master": election.master,
                                             "previous": election.previous, "reason": election.reason})
        self.publish()
        member = self.registry.member(election.master)
        if member:
            threading.Thread(target=self._wake, args=(member.address,), daemon=True).start()

    def check(self, arbiter_of: Callable[[], Arbiter | None]) -> None:
        """Every second: a hand edit of the master record is a handover; else dnsmasq answers our decision."""
        with self.lock:
            arbiter = arbiter_of()
            if arbiter is not None and self._follow_hand_edit(arbiter):
                return
            master = self.registry.election()[1]
            address = next((m.address for m in self.registry.members() if m.node == master), None)
        if address and self.dnsmasq.alive():
            if not self.publisher.ensure_master(address, wait=0.1):
                with self.lock:
                    self.publisher.force_rewrite()
                    self.publish()

    def _follow_hand_edit(self, arbiter: Arbiter) -> bool:
        """Someone rewrote `master.<suffix>` in our hosts file: hand the role to the node it names.

        The usual election path does the rest (the holder steps down, its
        lease lapses, the epoch goes up, the record is published again), so
        fencing holds exactly as for any other change of master. An edit that
        names no living active member is undone instead.
        """
        address = self.publisher.edited_master()
        if address is None:
            return False
        target = next((m.node for m in self.registry.members() if m.address == address and m.state == "active"), None)
        if target is None or not arbiter.alive(target, self.config.lease_timeout):
            log.warning("master record edited by hand to a node that cannot be master; restoring it",
                        extra={"address": address})
            self.publisher.force_rewrite()
            self.publish()
            return True
        if target != arbiter.master:
            log.warning("master record edited by hand: handing the master role over",
                        extra={"to": target, "master": arbiter.master})
            arbiter.request_handover(target)
        self.publisher.adopt_edit()
        return True

    def _wake(self, address: str) -> None:
        client = ServiceClient(self.config.url(address, self.config.node_port), self.secret, timeout=0.5)
        try:
            client.post("/v1/wake")
        except Exception:  # best effort: the node also polls
            pass
        finally:
            client.close()
