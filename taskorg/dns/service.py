"""The DNS service process: its decisions, lease ticks and lifecycle.

Every machine runs one, with its own dnsmasq, serving the zone from its
replica of the cluster state (`taskorg.dns.replicated`). The one that leads
the consensus group is the arbiter: it grants the master lease and makes
every decision; the others relay such requests to it (`taskorg.dns.relay`).
One lock serialises every decision (registration, heartbeat, election), so
the arbiter's state, the committed epoch and the published record always
agree. The tick runs on a thread of its own (taskorg.net.loops) when it is
due, not on a fixed beat (`taskorg.dns.due`): at the next moment time alone
changes a decision (a lease expiry, a node's death), or at once when a
change is applied to the replica, a silent node is heard from again, or the
Raft leadership moves; at least every second. Election latency is a direct
part of failover time: an expired lease is seen at its expiry. The slow jobs
run on apscheduler. The HTTP routes are in `taskorg.dns.api`, the
publishing of records in `taskorg.dns.records`.
"""

from __future__ import annotations

import threading
import time
from pathlib import Path
from typing import Any

from apscheduler.schedulers.background import BackgroundScheduler

from taskorg.config import Config
from taskorg.dns import due
from taskorg.dns.api import create_app
from taskorg.dns.arbiter import Arbiter, Election, Liveness
from taskorg.dns.autopilot import VOTER_CHECK_SECONDS, Autopilot
from taskorg.dns.beat_listener import BeatListener
from taskorg.dns.members import Member, may_be_master
from taskorg.dns.records import Records
from taskorg.dns.replicated import NoQuorum, ReplicatedRegistry
from taskorg.dns.service_names import check_name_map
from taskorg.dns.store import carry_over
from taskorg.dns.voters import voter_count
from taskorg.dns.watch import MembershipWatch
from taskorg.logs import get_logger
from taskorg.metrics import dns as metrics
from taskorg.net.datagrams import datagram_key
from taskorg.net.loops import run_when_due
from taskorg.net.server import ApiError, serve
from taskorg.protocol import Heartbeat, HeartbeatAnswer, Lease, ProtocolError, checked_address
from taskorg.secret import read_secret

# How far ahead of the arbiter's epoch a heartbeat's replica position may be (see heartbeat).
MAX_EPOCH_AHEAD = 1000
log = get_logger("dns")
RECORD_CHECK_SECONDS = 1.0
WITNESS_OFFER_SECONDS = 2.0


def voters_of(config: Config) -> list[str]:
    """The first voters: the first 1, 3 or 5 DNS servers (the witness first), as configured or as
    taskorg.dns.voters counts. The group changes from there (taskorg.dns.autopilot)."""
    servers = list(config.dns_servers) or [config.dns_address]
    return servers[:config.consensus_voters or voter_count(len(servers))]


class DnsService:
    def __init__(self, config: Config, secret: str) -> None:
        self.config = config
        self.secret = secret
        self.lock = threading.RLock()
        self.wake = threading.Event()  # runs the tick now (taskorg.dns.due: what it waits for)
        # The spans the tick compares heartbeats against: the lease (candidates), node_dead_after (deaths,
        # and the wait for a fresher late standby: `wait_for_fresher` in _take_over).
        self.spans = due.thresholds(config.lease_timeout, config.node_dead_after, config.node_dead_after)
        self.registry = ReplicatedRegistry(config.dns_address, voters_of(config), config.raft_port,
                                           Path(config.state_dir) / "dns" / "raft", on_change=self.wake.set)
        # Set only while this service is the arbiter (taken over from the committed decision).
        self.arbiter: Arbiter | None = None
        self.records = Records(config, secret, self.registry, self.lock)
        self.autopilot = Autopilot(config, secret, self.registry)
        self.dead: set[str] = set()
        self.watch = MembershipWatch()  # the active master's long poll on the membership
        self.scheduler = BackgroundScheduler(daemon=True)
        self.stopping = threading.Event()
        # Heartbeats as sealed datagrams (taskorg.dns.beat_listener); HTTPS stays the fallback.
        self.beats = BeatListener(config.dns_address, config.beat_port, datagram_key(secret),
                                  self.heartbeat_message) if config.beat_port else None

    def _take_over(self) -> Arbiter | None:
        """This service became the arbiter: start from the committed decision, with a lease of grace.

        First it commits an entry of its own: a new Raft leader holds every
        committed entry but may not have applied the last ones yet, and it
        must not start from an older decision than its predecessor's. Then
        nobody else is elected before lease + margin has passed (the Arbiter
        counts it from now; the predecessor may have renewed the holder's lease
        an instant before it died); the holder's heartbeats renew it. Every
        member gets the benefit of the doubt until its first heartbeat.
        """
        try:
            self.registry.add_event("arbiter", address=self.config.dns_address)
            carry_over(Path(self.config.state_dir) / "dns" / "registry.db", self.registry)
        except NoQuorum as exc:
            log.warning("cannot take over as arbiter yet", extra={"reason": str(exc)})
            return None
        epoch, master = self.registry.election()
        arbiter = Arbiter(self.config.lease_timeout, self.config.lease_margin, time.monotonic,
                          epoch=epoch, master=master, wait_for_fresher=self.config.node_dead_after)
        members = self.registry.members(include_left=True)
        arbiter.ineligible = {m.node for m in members if not may_be_master(m)}
        for member in members:
            if member.state != "left":
                arbiter.members[member.node] = Liveness(time.monotonic(), (0, 0), member.address)
        self.dead.clear()
        log.warning("arbiter: this DNS service now grants the master lease",
                    extra={"address": self.config.dns_address, "epoch": epoch, "master": master})
        return arbiter

    def is_arbiter(self) -> bool:
        return self.arbiter is not None and self.registry.is_arbiter()

    def arbiter_url(self) -> str:
        """Where to relay a decision; 503 naming why when this side of the cluster cannot decide."""
        reason = self.registry.why_not_writable()
        if reason:
            raise ApiError(503, reason)
        leader = self.registry.leader_address()
        if leader is None or leader == self.config.dns_address:
            raise ApiError(503, f"no arbiter yet: the DNS service at {self.config.dns_address} leads the "
                                "consensus group but has not taken over yet; try again")
        return self.config.url(leader, self.config.dns_api_port)

    def _arbiter_or_raise(self) -> Arbiter:
        arbiter = self.arbiter
        if arbiter is None or not self.registry.is_arbiter():
            raise ApiError(503, f"the DNS service at {self.config.dns_address} is not the arbiter")
        return arbiter

    def _event(self, kind: str, **data: Any) -> None:
        """Record an event; without a quorum it is logged instead (events never block a decision)."""
        try:
            self.registry.add_event(kind, **data)
        except NoQuorum as exc:
            log.warning("event not recorded", extra={"kind": kind, "reason": str(exc), **data})

    # ---- lifecycle ----------------------------------------------------------
    def start(self) -> None:
        self.records.start()
        run_when_due(self.tick, "dns-tick", self.stopping, self.wake)
        self.scheduler.add_job(self.records.check, "interval", args=(lambda: self.arbiter,),
                               seconds=RECORD_CHECK_SECONDS, max_instances=1, coalesce=True)
        self.scheduler.add_job(self.tend_voters, "interval", seconds=VOTER_CHECK_SECONDS, max_instances=1,
                               coalesce=True)
        self.scheduler.add_job(self.prefer_witness, "interval", seconds=WITNESS_OFFER_SECONDS, max_instances=1,
                               coalesce=True)
        self.scheduler.start()
        if self.beats:
            self.beats.start()

    def stop(self) -> None:
        if self.beats:
            self.beats.close()
        self.stopping.set()
        self.wake.set()
        self.scheduler.shutdown(wait=False)
        self.registry.close()

    # ---- decisions ------------------------------------------------------------
    def register(self, identity: str, address: str, labels: dict[str, str]) -> dict[str, Any]:
        with self.lock:
            arbiter = self._arbiter_or_raise()
            member, new = self._committed(self.registry.register, identity, address, labels)
            if new:
                self._event("node_joined", node=member.node, address=address)
                log.info("node joined", extra={"node": member.node, "address": address})
            if member.state != "left" and member.node not in arbiter.members:
                arbiter.heartbeat(member.node, (0, 0), address)  # registering is a sign of life
            eligible = self._judge_eligibility(arbiter, member)
            election = arbiter.first_master(member.node) if eligible else None
            if election:
                self.commit(election)
            else:
                self.records.publish()
            return {"node": member.node, "number": member.number, "fqdn": f"{member.node}.{self.config.suffix}",
                    "epoch": arbiter.epoch, "master": arbiter.master}

    @staticmethod
    def _committed(change: Any, *args: Any) -> Any:
        """A change of the replicated state; 503 naming why when a majority cannot commit it."""
        try:
            return change(*args)
        except NoQuorum as exc:
            raise ApiError(503, str(exc)) from None

    def heartbeat(self, node: str, address: str, replica: tuple[int, int]) -> HeartbeatAnswer:
        with self.lock:
            arbiter = self._arbiter_or_raise()
            member = self.registry.member(node)
            if member is None:
                raise ApiError(404, f"unknown node {node}: register again")
            if member.state == "left":
                raise ApiError(410, f"{node} has left the cluster: `taskorg node activate {node}` takes it back")
            if replica[0] > arbiter.epoch + MAX_EPOCH_AHEAD:
                # An election raises the epoch past every replica's: a forged position must not push it
                # toward the 64-bit edge. Lost Raft entries put a real replica a few epochs ahead at most.
                raise ApiError(400, f"heartbeat: replica epoch {replica[0]} is beyond the highest granted "
                                    f"({arbiter.epoch}) by more than {MAX_EPOCH_AHEAD}")
            if address and address != member.address:
                self._committed(self.registry.register, member.identity, address, member.labels)
                self.records.publish()
            if due.revives(arbiter.members.get(node), self.spans, time.monotonic()):
                self.wake.set()  # a candidate again, or back from the dead: the tick decides now
            answer = arbiter.heartbeat(node, replica, address)
            metrics.HEARTBEATS.inc()
            if answer.holder:
                metrics.LEASE_GRANTS.inc()
            if node in self.dead:
                self.dead.discard(node)
                self._event("node_back", node=node)
            return HeartbeatAnswer(answer.epoch, answer.master, Lease(answer.holder, answer.epoch, answer.valid_for),
                                   arbiter=self.config.dns_address)

    def heartbeat_message(self, beat: Heartbeat) -> HeartbeatAnswer:
        """A heartbeat as it came, by `POST /v1/heartbeat` or as a datagram: its address checked first."""
        try:
            address = checked_address(beat.address, "heartbeat") if beat.address else ""
        except ProtocolError as exc:
            raise ApiError(400, str(exc)) from None
        return self.heartbeat(beat.node, address, (beat.replica.epoch, beat.replica.seq))

    def tick(self) -> float:
        """Take over or step down, decide, publish; the seconds until the next tick is due."""
        with self.lock:
            leading = self.registry.is_arbiter()
            if leading and self.arbiter is None:
                self.arbiter = self._take_over()
            elif not leading and self.arbiter is not None:
                log.warning("arbiter no more: another DNS service leads the consensus group, or none can",
                            extra={"address": self.config.dns_address})
                self.arbiter = None
            arbiter = self.arbiter
            if arbiter is not None:
                election = arbiter.tick()
                if election:
                    self.commit(election)
                self._note_deaths()
                if self.watch.wanted():
                    self.watch.observe(self._membership_key())
            self.records.catch_up()
            # Settled: the Raft role and the arbiter role agree, so only deadlines and events matter.
            settled = (self.arbiter is not None) == leading == self.registry.engine._isLeader()
            now = time.monotonic()
            return due.delay(due.next_due(self.arbiter, self.spans, now) if self.arbiter else None, now, settled)

    def _membership_key(self) -> tuple[Any, ...]:
        """What a master acts on, as one comparable value (taskorg.dns.watch)."""
        arbiter = self.arbiter
        assert arbiter is not None
        return (arbiter.epoch, arbiter.master, tuple(
            (m.node, m.state, m.address, tuple(sorted(m.labels.items())),
             arbiter.alive(m.node, self.config.node_dead_after)) for m in self.registry.members(include_left=True)))

    def wait_for_members(self, since: int, wait: float) -> None:
        """Hold a watch until the membership differs from version `since` (taskorg.dns.watch)."""
        with self.lock:
            self._arbiter_or_raise()
            self.watch.observe(self._membership_key())
        self.watch.wait(since, wait)

    def tend_voters(self) -> None:
        """The voter set: followed by every replica, changed by the arbiter (taskorg.dns.autopilot).
        Outside the decision lock: a membership change waits for the group, and decides nothing else."""
        self.autopilot.tick(self.arbiter)

    def prefer_witness(self) -> None:
        """While the witness lives, it is the arbiter: then losing a regular node, the master's included,
        never also costs a new arbiter's wait (lease + margin) on top of the master's failover."""
        witness = self.config.witness_address
        if self.is_arbiter() and witness != self.config.dns_address and witness in self.registry.reachable_voters():
            log.info("offering the arbiter role back to the witness", extra={"witness": witness})
            self.registry.offer_leadership(witness)

    def commit(self, election: Election) -> None:
        """Commit (a majority of voters holds it), then publish and nudge the new master: in that order.

        Without a quorum the decision is dropped whole: the arbiter forgets it
        (it is no arbiter any more; the next one starts from what was committed).
        """
        try:
            self.registry.record_election(election.epoch, election.master, election.reason, election.previous)
        except NoQuorum as exc:
            log.warning("election not committed", extra={"master": election.master, "reason": str(exc)})
            self.arbiter = None
            return
        metrics.ELECTIONS.inc()
        self.records.announce(election)

    def handover(self, node: str) -> dict[str, Any]:
        with self.lock:
            arbiter = self._arbiter_or_raise()
            member = self.registry.member(node)
            if member is None or member.state != "active":
                raise ApiError(400, f"cannot hand the master role to {node}: not an active member")
            if not arbiter.alive(node, self.config.lease_timeout):
                raise ApiError(409, f"cannot hand the master role to {node}: it is not heartbeating")
            arbiter.request_handover(node)
            return {"master": arbiter.master, "handover_to": arbiter.handover_to, "epoch": arbiter.epoch}

    @staticmethod
    def _judge_eligibility(arbiter: Arbiter, member: Member) -> bool:
        """Put the member on the arbiter's ballot or off it, as it is now; whether it may be master."""
        eligible = may_be_master(member)
        if eligible:
            arbiter.ineligible.discard(member.node)
        else:
            arbiter.ineligible.add(member.node)
        return eligible

    def set_state(self, node: str, state: str) -> dict[str, Any]:
        with self.lock:
            arbiter = self._arbiter_or_raise()
            member = self.registry.member(node)
            if member is None:
                raise ApiError(404, f"unknown node {node}")
            self._committed(self.registry.set_state, node, state)
            self._event(f"node_{'drained' if state == 'draining' else state}", node=node)
            changed = self.registry.member(node)
            if changed is None or not self._judge_eligibility(arbiter, changed):
                if arbiter.master == node:
                    others = [n for n in arbiter.candidates() if n != node]
                    if others:
                        arbiter.request_handover(others[0])
            if state == "left":
                arbiter.forget(node)
                self.records.publish()
            return {"node": node, "state": state}

    def set_services(self, epoch: int, names: dict[str, list[str]]) -> dict[str, Any]:
        """The active master's service names: checked, then committed to the replicated state."""
        try:
            checked = check_name_map(names, self.config.suffix)
        except ValueError as exc:
            raise ApiError(400, f"service names: {exc}") from None
        # Not under the decision lock: heartbeats must not wait for this commit (the master sends one
        # map at a time, and the replicated state refuses a map older than the one it holds).
        arbiter = self._arbiter_or_raise()
        if epoch < arbiter.epoch:
            raise ApiError(409, f"service names from the master of epoch {epoch}: the current epoch is "
                                f"{arbiter.epoch}")
        if not self._committed(self.registry.set_services, epoch, checked):
            raise ApiError(409, f"service names from the master of epoch {epoch}: a newer master pushed its own")
        return {"epoch": epoch, "names": len(checked)}  # every DNS service publishes it on its next tick

    def _note_deaths(self) -> None:
        arbiter = self.arbiter
        assert arbiter is not None
        for member in self.registry.members():
            if member.node in arbiter.members and member.node not in self.dead \
                    and not arbiter.alive(member.node, self.config.node_dead_after):
                self.dead.add(member.node)
                metrics.NODE_DEATHS.inc()
                self._event("node_dead", node=member.node)
                log.warning("node dead", extra={"node": member.node})

    # ---- views ------------------------------------------------------------------
    def members_view(self) -> dict[str, Any]:
        with self.lock:
            arbiter = self._arbiter_or_raise()
            now = time.monotonic()
            rows = []
            for m in self.registry.members():
                seen = arbiter.members.get(m.node)
                rows.append({
                    "node": m.node, "number": m.number, "fqdn": f"{m.node}.{self.config.suffix}",
                    "address": m.address, "labels": m.labels, "state": m.state,
                    "alive": bool(seen) and now - seen.last_heartbeat <= self.config.node_dead_after,
                    "last_seen_ago": round(now - seen.last_heartbeat, 3) if seen else None,
                    "replica": list(seen.replica) if seen else None,
                    "role": "master" if m.node == arbiter.master else "standby",
                })
            return {"members": rows, "master": arbiter.master, "epoch": arbiter.epoch,
                    "arbiter": self.config.dns_address, "dns_servers": self.dns_servers_view(),
                    "version": self.watch.version}

    def master_view(self) -> dict[str, Any]:
        epoch, master = self.registry.election()
        member = self.registry.member(master) if master else None
        return {"master": master, "address": member.address if member else None, "epoch": epoch}

    def not_ready(self) -> str | None:
        """Readiness: None once the consensus group has a leader this service knows of."""
        if self.registry.leader_address() is None:
            return (f"no consensus leader known to the DNS service at {self.config.dns_address} "
                    f"(voters: {', '.join(self.registry.voters)})")
        return None

    def dns_servers_view(self) -> dict[str, Any]:
        """What this DNS service sees of the consensus group."""
        return {"voters": self.registry.voters, "recorded_voters": self.registry.recorded_voters(),
                "voting": self.registry.voting, "reachable": self.registry.reachable_voters(),
                "leader": self.registry.leader_address(), "writable": self.registry.why_not_writable() or "yes"}


def run(config: Config) -> None:
    service = DnsService(config, read_secret(config))
    service.start()
    try:
        serve(create_app(service), config.dns_address, config.dns_api_port, internal_port=config.dns_internal_port)
    finally:
        service.stop()
