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

from taskorg.dns.replicated import ReplicatedRegistry
from tests.helpers import wait_until
from tests.unit.test_replicated_registry import three_voters_and_a_replica

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
