"""The consensus group's autopilot: dead voters are replaced by living machines, one change at a time.

Runs on every DNS service, every VOTER_CHECK_SECONDS:
- every replica's engine follows the voter set recorded in the replicated
  state (`ReplicatedRegistry.follow`): a machine named there becomes a voter,
  one dropped becomes a read-only replica;
- a voter or replica that has known no leader for SHUT_OUT_AFTER asks the group's
  leader (through any DNS service) for the voter set, and restarts its engine
  with it when it differs: a machine that was down while the group changed
  comes back with the set it last knew (removed meanwhile, or kept while
  others came and went), and PySyncObj drops connections from voters an
  engine does not list, so it would otherwise never hear of it;
- the arbiter (the group's leader) records the next change that
  `taskorg.dns.voters.next_change` decides from who was heard from and when,
  then makes the engine's membership match the record. The record comes
  first, so a leader that dies half-way leaves its successor the plan.
"""

from __future__ import annotations

import time
from typing import Any, Callable

from taskorg.config import Config
from taskorg.dns.arbiter import Arbiter
from taskorg.dns.replicated import ELECTION_MAX, NoQuorum, ReplicatedRegistry
from taskorg.dns.voters import MAX_VOTERS, Machine, apply, next_change, rejoin_with
from taskorg.logs import get_logger
from taskorg.metrics import dns as metrics
from taskorg.net.client import ServiceClient

log = get_logger("dns")
VOTER_CHECK_SECONDS = 0.5
SHUT_OUT_AFTER = 3.0      # seconds without a leader before a voter asks the leader for the voter set
ASK_EVERY = 2.0           # seconds between such questions, and between probes of a non-voting witness
PROBE_TIMEOUT = 0.3
RAFT_ALIVE_WITHIN = ELECTION_MAX  # a voter that answered the leader this recently is alive
UNREGISTERED = 1 << 20  # the node number of a voter not (yet) a member: last in line
EVENT_KINDS = {"add": "voter_added", "remove": "voter_removed"}  # in the event log


class Autopilot:
    def __init__(self, config: Config, secret: str, registry: ReplicatedRegistry,
                 clock: Callable[[], float] = time.monotonic) -> None:
        self.config = config
        self.secret = secret
        self.registry = registry
        self.clock = clock
        self.started = clock()
        self.leaderless_since: float | None = None
        self.last_asked = float("-inf")
        self.witness_heard: float | None = None  # when a non-voting witness last answered a probe
        self.last_probe = float("-inf")

    def tick(self, arbiter: Arbiter | None) -> None:
        self.registry.follow()
        self._rejoin_if_shut_out()
        if arbiter is not None and self.registry.is_arbiter():
            try:
                self._steer(arbiter)
            except NoQuorum as exc:
                log.warning("voter change not committed", extra={"reason": str(exc)})

    # ---- the leader ---------------------------------------------------------------------------------
    def machines(self, arbiter: Arbiter) -> list[Machine]:
        """Every machine that could vote, and for how long it has been silent (0: alive)."""
        now = self.clock()
        raft = self.registry.voter_silence()

        def silent(address: str, heard: float) -> float:
            if address == self.config.dns_address:
                return 0.0
            if address in raft:  # a voter: what counts is whether its DNS service answers the group
                return 0.0 if raft[address] <= RAFT_ALIVE_WITHIN else raft[address]
            return 0.0 if heard <= self.config.node_dead_after else heard

        witness = self.config.witness_address
        found = [Machine(witness, 0, silent(witness, self._witness_silence(now)))]
        for member in self.registry.members(include_left=True):
            if member.address == witness:
                continue
            seen = arbiter.members.get(member.node)
            heard = now - seen.last_heartbeat if seen else now - self.started
            found.append(Machine(member.address, member.number, silent(member.address, heard),
                                 member.state == "active"))
        # A voter whose node has not registered (yet): its DNS service answering the group is what counts.
        listed = {m.address for m in found}
        found += [Machine(a, UNREGISTERED, silent(a, float("inf"))) for a in raft if a not in listed]
        return found

    def _witness_silence(self, now: float) -> float:
        """A non-voting witness runs no node service: it is heard from by asking its DNS service."""
        witness = self.config.witness_address
        if witness in self.registry.voters or witness == self.config.dns_address:
            return 0.0
        if now - self.last_probe >= ASK_EVERY:
            self.last_probe = now
            if self._consensus_of(witness) is not None:
                self.witness_heard = now
        return now - (self.witness_heard if self.witness_heard is not None else self.started)

    def _steer(self, arbiter: Arbiter) -> None:
        recorded = self.registry.recorded_voters()
        if not recorded:
            self.registry.record_voters(self.registry.voters)  # the first record: the group as configured
            return
        if set(self.registry.voters) == set(recorded):
            size = self.config.consensus_voters or MAX_VOTERS
            change = next_change(recorded, self.machines(arbiter), self.config.voter_grace, size)
            if change is None:
                return
            if change.kind == "remove" and change.address == self.config.dns_address:
                others = [a for a in self.registry.reachable_voters() if a != self.config.dns_address]
                if others:  # the leader cannot remove itself: another voter leads, then decides again
                    self.registry.offer_leadership(others[0])
                return
            after = apply(recorded, change)
            kind = EVENT_KINDS[change.kind]
            self.registry.record_voters(after, kind, address=change.address, reason=change.reason, group=after)
            metrics.VOTER_CHANGES.labels(change.kind).inc()
            log.warning(kind.replace("_", " "), extra={"address": change.address, "reason": change.reason,
                                                        "voters": after})
            recorded = after
        self._follow_record(recorded)

    def _follow_record(self, recorded: list[str]) -> None:
        """One membership change of the engine towards the record: a voter too many first."""
        engine = self.registry.voters
        extra = [a for a in engine if a not in recorded and a != self.config.dns_address]
        missing = [a for a in recorded if a not in engine]
        if extra:
            self.registry.change_membership("remove", extra[0])
        elif missing:
            self.registry.change_membership("add", missing[0])

    # ---- every voter -------------------------------------------------------------------------------
    def _rejoin_if_shut_out(self) -> None:
        now = self.clock()
        if self.registry.leader_address() is not None:
            self.leaderless_since = None
            return
        if self.leaderless_since is None:
            self.leaderless_since = now
        if now - self.leaderless_since < SHUT_OUT_AFTER or now - self.last_asked < ASK_EVERY:
            return
        self.last_asked = now
        found = self._leaders_voters()
        if found is None:
            return
        leader, voters = found
        mine = self.registry.voters
        target = rejoin_with(mine, voters)
        if target is None:
            return
        if self.config.dns_address in target:
            log.warning("this DNS service knew another voter set than the group's: rejoining as a voter",
                        extra={"told_by": leader, "voters": target, "known": mine})
        elif self.registry.voting:
            log.warning("this DNS service no longer votes: the group replaced it; following as a replica",
                        extra={"told_by": leader, "voters": target})
        else:
            log.warning("this DNS service followed voters that no longer lead: following the group's",
                        extra={"told_by": leader, "voters": target, "known": mine})
        self.registry.rejoin(target)

    def _leaders_voters(self) -> tuple[str, list[str]] | None:
        """The voter set as the group's leader runs it (its own answer: a follower's may lag), and the
        leader's address; None when no leader answers."""
        asked: set[str] = set()
        for address in self.config.dns_servers:
            if address == self.config.dns_address or address in asked:
                continue
            asked.add(address)
            view = self._consensus_of(address)
            leader = view.get("leader") if view else None
            if isinstance(leader, str) and leader != address and leader != self.config.dns_address \
                    and leader not in asked:
                asked.add(leader)
                view, address = self._consensus_of(leader), leader
            voters = view.get("voters") if view and view.get("leader") == address else None
            if isinstance(voters, list) and voters:
                return address, [str(v) for v in voters]
        return None

    def _consensus_of(self, address: str) -> dict[str, Any] | None:
        """What the DNS service at `address` sees of the group, or None when it does not answer."""
        client = ServiceClient(self.config.url(address, self.config.dns_api_port), self.secret,
                               timeout=PROBE_TIMEOUT)
        try:
            answer = client.get("/v1/consensus")
            return answer if isinstance(answer, dict) else None
        except Exception:  # noqa: BLE001 - any failure: it does not answer
            return None
        finally:
            client.close()
