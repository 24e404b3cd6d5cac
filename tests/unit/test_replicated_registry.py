"""The replicated registry: real PySyncObj voters in this process, on loopback.

Per docs/architecture.md "Every machine runs the DNS service": a change made
through any DNS service is on every replica (a non-voting one too); exactly
one service is arbiter; a minority refuses a change at once with an error
that names the reason.
"""

from __future__ import annotations

import socket
from contextlib import contextmanager
import time
from pathlib import Path
from typing import Callable, Iterator

import pytest

from taskorg.dns.replicated import FOLLOWER_TICK, LEADER_TICK, REPLICA_TICK, NoQuorum, ReplicatedRegistry
from tests.helpers import wait_until

PORT = 24411


def free_block() -> str:
    for third in range(150, 200):
        try:
            for host in (1, 2, 3, 4):
                probe = socket.socket()
                try:
                    probe.bind((f"127.0.{third}.{host}", PORT))
                finally:
                    probe.close()
        except OSError:
            continue
        return f"127.0.{third}"
    raise RuntimeError("no free loopback block for the replicated registry test")


def until(check: Callable[[], object], what: str = "the replicas to agree") -> object:
    return wait_until(check, 10.0, what, interval=0.02)


@contextmanager
def three_voters_and_a_replica(workdir: Path, port: int = PORT) -> Iterator[list[ReplicatedRegistry]]:
    """Voters .1 .2 .3 and a read-only replica .4 of a free loopback block, once they know a leader."""
    block = free_block()
    voters = [f"{block}.{i}" for i in (1, 2, 3)]
    replicas = [ReplicatedRegistry(a, voters, port, workdir / a) for a in voters + [f"{block}.4"]]
    try:
        until(lambda: all(r.leader_address() for r in replicas))
        yield replicas
    finally:
        for replica in replicas:
            replica.close()


@pytest.fixture
def group(tmp_path: Path) -> Iterator[list[ReplicatedRegistry]]:
    with three_voters_and_a_replica(tmp_path) as replicas:
        yield replicas


def test_a_change_through_any_service_reaches_every_replica(group: list[ReplicatedRegistry]) -> None:
    leader = group[0].leader_address()
    follower = next(r for r in group[:3] if r.me != leader)
    member, new = follower.register("aa:bb@10.0.0.2", "10.0.0.2", {"arch": "arm64"})
    assert (member.node, new) == ("node1", True)
    member, new = group[3].register("aa:cc@10.0.0.3", "10.0.0.3", {})  # through the non-voting replica
    assert (member.node, new) == ("node2", True)
    group[3].record_election(1, "node1", "first master", None)
    until(lambda: all(r.election() == (1, "node1") and len(r.members()) == 2 for r in group))
    assert group[1].register("aa:bb@10.0.0.2", "10.0.0.9", {})[0].node == "node1"  # names are stable
    until(lambda: all(r.member("node1").address == "10.0.0.9" for r in group))  # type: ignore[union-attr]
    assert [e["kind"] for e in group[2].events()] == ["master_elected"]


def test_exactly_one_voter_is_arbiter_and_never_a_read_only_replica(group: list[ReplicatedRegistry]) -> None:
    until(lambda: sum(r.is_arbiter() for r in group) == 1)
    assert not group[3].is_arbiter()


def tick_of(replica: ReplicatedRegistry) -> float:
    """How long this member's engine loop sleeps when no message comes."""
    return float(replica.engine._SyncObj__conf.autoTickPeriod)


def test_each_engine_sleeps_as_long_as_its_role_allows_and_a_new_leader_takes_the_short_sleep(
        group: list[ReplicatedRegistry]) -> None:
    """The leader's beats keep the 50 ms loop; followers time only an election; the read-only replica
    times nothing. Leadership moving swaps the leader's and a follower's sleeps."""
    leader = group[0].leader_address()
    until(lambda: all(tick_of(r) == (LEADER_TICK if r.me == leader else FOLLOWER_TICK) for r in group[:3]),
          "the voters' loops to follow their roles")
    assert tick_of(group[3]) == REPLICA_TICK
    successor = next(r for r in group[:3] if r.me != leader)
    next(r for r in group[:3] if r.me == leader).offer_leadership(successor.me)
    until(lambda: all(r.leader_address() == successor.me for r in group), "the successor to lead")
    until(lambda: tick_of(successor) == LEADER_TICK
          and all(tick_of(r) == FOLLOWER_TICK for r in group[:3] if r is not successor),
          "the loops to follow the new roles")


def test_a_minority_refuses_changes_at_once_naming_why(group: list[ReplicatedRegistry]) -> None:
    lone = group[0]
    for replica in group[1:3]:
        replica.close()
    until(lambda: lone.why_not_writable() is not None)
    started = time.monotonic()
    with pytest.raises(NoQuorum, match=r"no quorum: the DNS service at .* reaches 1 of 3 voters"):
        lone.register("aa:dd@10.0.0.4", "10.0.0.4", {})
    assert time.monotonic() - started < 0.1
    until(lambda: not lone.is_arbiter())


def test_service_names_reach_every_replica_and_an_older_master_cannot_replace_them(
        group: list[ReplicatedRegistry]) -> None:
    names = {"web.shop.taskorg.internal": ["10.0.0.2", "10.0.0.3"]}
    assert group[0].set_services(3, names)
    until(lambda: all(r.services() == names for r in group))
    assert not group[1].set_services(2, {})  # a deposed master's late push
    assert group[2].set_services(4, {})  # the next master's
    until(lambda: all(r.services() == {} for r in group))


def test_a_lone_voter_announces_its_leadership_and_every_applied_change(tmp_path: Path) -> None:
    """The DNS tick sleeps until woken (taskorg.dns.due): the registry must announce what moves it,
    and the callback stays this process's own, out of the replicated state."""
    block = free_block()
    calls: list[float] = []
    registry = ReplicatedRegistry(f"{block}.1", [f"{block}.1"], PORT, tmp_path / "lone",
                                  on_change=lambda: calls.append(time.monotonic()))
    try:
        until(registry.is_arbiter, "the lone voter to lead")
        assert calls, "becoming leader wakes the tick"
        before, applied = len(calls), registry.applied
        registry.register("aa:01@x", "127.0.0.9", {})
        assert registry.applied > applied and len(calls) > before
        assert "_on_change" not in registry.book._serialize()
    finally:
        registry.close()
