"""A dead voter is replaced: real PySyncObj members in this process, on loopback (dynamic membership).

Per docs/architecture.md "Voters and their replacement": the leader records
the new voter set, then changes the engine's membership one voter at a time;
a read-only replica the record names becomes a voter and catches up; every
replica knows the voter set; and after the replacement the group survives
one more loss. The autopilot's own decisions are unit-tested in
tests/unit/test_voters.py; here the engine does what they say.
"""

from __future__ import annotations

from pathlib import Path
from typing import Iterator

import pytest

from taskorg.config import Config
from taskorg.dns.replicated import ReplicatedRegistry
from taskorg.dns.service import voters_of
from tests.helpers import wait_until
from tests.unit.test_replicated_registry import free_block, three_voters_and_a_replica

PORT = 24413


def until(check: object, what: str) -> object:
    return wait_until(check, 15.0, what, interval=0.05)  # type: ignore[arg-type]


@pytest.fixture
def group(tmp_path: Path) -> Iterator[list[ReplicatedRegistry]]:
    """Three voters (.1 .2 .3) and a read-only replica (.4); each replica follows the record by hand."""
    with three_voters_and_a_replica(tmp_path, PORT) as replicas:
        yield replicas


def leader_of(replicas: list[ReplicatedRegistry]) -> ReplicatedRegistry:
    return until(lambda: next((r for r in replicas if r.engine._isLeader()), None), "a leader")  # type: ignore[return-value]


def test_a_dead_voter_is_replaced_by_a_read_only_replica_that_catches_up(group: list[ReplicatedRegistry]) -> None:
    spare = group[3]
    assert not spare.voting
    leader = leader_of(group[:3])
    leader.register("aa:bb@10.0.0.2", "10.0.0.2", {})
    leader.record_voters(leader.voters)
    dead = next(r for r in group[:3] if r is not leader)
    dead.close()
    alive = [r for r in group if r is not dead]

    wanted = [a for a in leader.voters if a != dead.me] + [spare.me]
    leader.record_voters(wanted, "voter_removed", address=dead.me)
    leader.change_membership("remove", dead.me)
    leader.change_membership("add", spare.me)
    until(lambda: [r.follow() for r in alive] and spare.voting and spare.engine.isReady() and not spare._pending,
          "the spare to vote and catch up")
    assert sorted(spare.voters) == sorted(wanted)
    assert spare.member("node1") is not None  # its replica holds the state from before
    until(lambda: all(sorted(r.recorded_voters()) == sorted(wanted) for r in alive), "every replica to know")
    assert (spare.workdir / "voters.json").exists()

    # One more voter lost (not the leader): the two left are a majority of three and still commit.
    other = next(r for r in alive if r is not leader and r is not spare)
    other.close()
    member, new = leader.register("aa:cc@10.0.0.3", "10.0.0.3", {})
    assert (member.node, new) == ("node2", True)
    until(lambda: spare.member("node2") is not None, "the new voter to apply the change")
    assert [e["kind"] for e in spare.events()] == ["voter_removed"]


def test_a_voter_the_record_drops_follows_as_a_read_only_replica(group: list[ReplicatedRegistry]) -> None:
    leader = leader_of(group[:3])
    dropped = next(r for r in group[:3] if r is not leader)
    kept = [r.me for r in group[:3] if r is not dropped]
    leader.record_voters(kept)
    until(lambda: dropped.follow() or not dropped.voting, "the dropped voter to step out")
    leader.change_membership("remove", dropped.me)
    leader.register("aa:dd@10.0.0.4", "10.0.0.4", {})
    until(lambda: dropped.follow() or dropped.member("node1") is not None, "the replica to keep following")
    assert sorted(dropped.voters) == sorted(kept)


def test_twenty_one_machines_have_five_voters_and_sixteen_read_only_replicas(tmp_path: Path) -> None:
    """A 100-node cluster must not have 100 voters: the witness and 20 nodes, as `taskorg cluster up`
    configures them, make 5 voters; every other DNS service follows a read-only replica of the same state.
    (A 20-node local cluster of real services does not start within a minute on a 2-core machine.)"""
    block = free_block()
    addresses = [f"{block}.{i}" for i in range(1, 22)]
    voters = voters_of(Config(dns_address=addresses[0], dns_servers=tuple(addresses)))
    assert voters == addresses[:5]
    replicas = [ReplicatedRegistry(a, voters, PORT + 2, tmp_path / a) for a in addresses]
    try:
        until(lambda: all(r.leader_address() for r in replicas), "every replica to know the leader")
        leader = leader_of(replicas)
        leader.record_voters(leader.voters)
        leader.register("aa:bb@10.0.0.2", "10.0.0.2", {})
        until(lambda: all(r.recorded_voters() == voters and r.member("node1") for r in replicas),
              "every replica to hold the voter set and the member")
        assert sum(r.voting for r in replicas) == 5
        assert all(r.voters == voters for r in replicas)
    finally:
        for replica in replicas:
            replica.close()
