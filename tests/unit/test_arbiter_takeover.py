"""A DNS service that becomes arbiter honours every lease its predecessor may have granted.

Per docs/architecture.md "Every machine runs the DNS service": the new
arbiter starts from the committed decision (epoch, master), elects nobody
else before `lease_timeout + margin` has passed on its own clock, keeps the
committed master when it heartbeats, and never hands out an epoch that a node
already applied changes under.
"""

from __future__ import annotations

from taskorg.dns.arbiter import Arbiter, Election

LEASE = 0.6
MARGIN = 0.15
TINY = 1e-6


class Clock:
    def __init__(self) -> None:
        self.now = 500.0

    def __call__(self) -> float:
        return self.now


def taking_over(clock: Clock, epoch: int = 4, master: str = "node1") -> Arbiter:
    """A DNS service whose engine just made it arbiter, from the replicated decision."""
    return Arbiter(LEASE, MARGIN, clock, epoch=epoch, master=master)


def test_the_new_arbiter_waits_out_lease_and_margin_before_electing() -> None:
    clock = Clock()
    arbiter = taking_over(clock)
    arbiter.heartbeat("node2", (4, 10))  # the holder node1 is silent (it may be powered off, or not)
    clock.now += LEASE + MARGIN - TINY
    arbiter.heartbeat("node2", (4, 10))
    assert arbiter.tick() is None
    clock.now += 2 * TINY
    assert arbiter.tick() == Election(5, "node2", "node1", "lease of node1 expired")


def test_the_committed_master_keeps_its_role_when_it_heartbeats() -> None:
    clock = Clock()
    arbiter = taking_over(clock)
    for _ in range(10):
        clock.now += LEASE / 2
        answer = arbiter.heartbeat("node1", (4, 10))
        arbiter.heartbeat("node2", (4, 10))
        assert answer.holder and answer.epoch == 4 and answer.valid_for == LEASE
        assert arbiter.tick() is None


def test_no_epoch_a_node_already_saw_is_handed_out_again() -> None:
    """The replicated state lost its last entries (a majority lost power): nodes still remember epoch 9."""
    clock = Clock()
    arbiter = taking_over(clock, epoch=4)
    arbiter.heartbeat("node2", (9, 120))
    clock.now += LEASE + MARGIN + TINY
    arbiter.heartbeat("node2", (9, 120))
    election = arbiter.tick()
    assert election is not None and election.epoch == 10


def test_a_brand_new_cluster_elects_at_once_with_no_members_yet() -> None:
    arbiter = Arbiter(LEASE, MARGIN, Clock())
    assert arbiter.first_master("node1") == Election(1, "node1", None, "first master")
