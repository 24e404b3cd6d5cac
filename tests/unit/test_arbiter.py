"""Arbiter: the master lease and election rules, driven by a fake clock.

Proves, per docs/architecture.md "Leases, election, fencing": the first node becomes
master at once; the holder's heartbeats renew its lease; nobody is elected
before `lease_timeout + margin` has passed since the holder's last renewal,
and somebody is right after; the freshest replica (epoch, seq) wins with ties
to the lowest node number; draining nodes and nodes silent for longer than
`lease_timeout` are never elected; a deposed master is told it holds nothing;
a planned handover waits for the old lease to lapse; a restarted arbiter gives
the persisted holder a full lease first; epochs only ever go up.
"""

from __future__ import annotations

import pytest

from taskorg.dns.arbiter import Arbiter, Election, LeaseAnswer, node_number

LEASE = 3.0
MARGIN = 0.5
EXPIRY = LEASE + MARGIN  # silence after which the arbiter may elect
TINY = 1e-6


class FakeClock:
    """A monotonic clock that moves only when the test says so."""

    def __init__(self, start: float = 1000.0) -> None:
        self.now = start

    def __call__(self) -> float:
        return self.now

    def advance(self, seconds: float) -> float:
        assert seconds >= 0, "a monotonic clock never goes back"
        self.now += seconds
        return self.now


def make_arbiter(clock: FakeClock, **kwargs: object) -> Arbiter:
    return Arbiter(lease_timeout=LEASE, margin=MARGIN, clock=clock, **kwargs)  # type: ignore[arg-type]


def beat_all(arbiter: Arbiter, replicas: dict[str, tuple[int, int]]) -> dict[str, LeaseAnswer]:
    return {node: arbiter.heartbeat(node, replica) for node, replica in replicas.items()}


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock()


@pytest.fixture
def cluster(clock: FakeClock) -> Arbiter:
    """Three live nodes, node1 master at epoch 1, all replicas equal."""
    arbiter = make_arbiter(clock)
    for node in ("node1", "node2", "node3"):
        arbiter.heartbeat(node, (0, 0))
    assert arbiter.first_master("node1") == Election(1, "node1", None, "first master")
    return arbiter


def fail_master(arbiter: Arbiter, clock: FakeClock, others: dict[str, tuple[int, int]],
                step: float = 0.5) -> Election:
    """The master goes silent; the others keep beating until someone is elected."""
    old = arbiter.master
    for _ in range(int(2 * EXPIRY / step) + 2):
        clock.advance(step)
        beat_all(arbiter, others)
        election = arbiter.tick()
        if election:
            assert election.previous == old
            return election
    raise AssertionError("no election although the master stayed silent")


# ---- first master -----------------------------------------------------------------
def test_the_first_registered_node_becomes_master_at_once(clock: FakeClock) -> None:
    arbiter = make_arbiter(clock)
    assert arbiter.tick() is None  # nobody is alive yet
    arbiter.heartbeat("node2", (0, 0))
    assert arbiter.first_master("node2") == Election(1, "node2", None, "first master")
    assert (arbiter.epoch, arbiter.master) == (1, "node2")
    answer = arbiter.heartbeat("node2", (0, 0))
    assert answer == LeaseAnswer(epoch=1, master="node2", holder=True, valid_for=LEASE)


def test_first_master_only_happens_once(cluster: Arbiter) -> None:
    assert cluster.first_master("node2") is None
    assert (cluster.epoch, cluster.master) == (1, "node1")


def test_a_draining_node_is_not_made_first_master(clock: FakeClock) -> None:
    arbiter = make_arbiter(clock, ineligible={"node1"})
    arbiter.heartbeat("node1", (0, 0))
    assert arbiter.first_master("node1") is None
    assert arbiter.tick() is None
    arbiter.heartbeat("node2", (0, 0))
    assert arbiter.first_master("node2") == Election(1, "node2", None, "first master")


def test_tick_elects_a_first_master_when_there_is_none(clock: FakeClock) -> None:
    arbiter = make_arbiter(clock)
    arbiter.heartbeat("node3", (0, 0))
    arbiter.heartbeat("node2", (0, 0))
    assert arbiter.tick() == Election(1, "node2", None, "first master")


# ---- renewals -----------------------------------------------------------------------
def test_only_the_holder_gets_a_lease(cluster: Arbiter) -> None:
    answers = beat_all(cluster, {"node1": (1, 5), "node2": (1, 5), "node3": (1, 4)})
    assert answers["node1"] == LeaseAnswer(1, "node1", True, LEASE)
    for node in ("node2", "node3"):
        assert answers[node] == LeaseAnswer(1, "node1", False, 0.0)


def test_heartbeats_of_the_holder_renew_the_lease_forever(cluster: Arbiter, clock: FakeClock) -> None:
    # Far longer than a lease in total, but never more than a lease between beats.
    for _ in range(50):
        clock.advance(LEASE * 0.9)
        beat_all(cluster, {"node1": (1, 1), "node2": (1, 1), "node3": (1, 1)})
        assert cluster.tick() is None
        assert not cluster.lease_expired()
    assert (cluster.epoch, cluster.master) == (1, "node1")


def test_no_election_before_lease_plus_margin_then_one_right_after(cluster: Arbiter, clock: FakeClock) -> None:
    cluster.heartbeat("node1", (1, 9))
    renewed = clock.now
    others = {"node2": (1, 9), "node3": (1, 9)}
    # Just at lease_timeout the old master's own view has run out, but the
    # arbiter still waits out the margin.
    clock.now = renewed + LEASE
    beat_all(cluster, others)
    assert cluster.tick() is None
    clock.now = renewed + EXPIRY  # exactly the limit: still not
    beat_all(cluster, others)
    assert not cluster.lease_expired()
    assert cluster.tick() is None
    assert cluster.master == "node1"
    clock.now = renewed + EXPIRY + TINY
    assert cluster.lease_expired()
    assert cluster.tick() == Election(2, "node2", "node1", "lease of node1 expired")


def test_the_margin_is_counted_from_the_last_renewal_not_the_election(cluster: Arbiter, clock: FakeClock) -> None:
    clock.advance(2.0)
    cluster.heartbeat("node1", (1, 1))  # renewal 2 s after the election
    last = clock.now
    clock.now = last + EXPIRY - TINY
    beat_all(cluster, {"node2": (1, 1)})
    assert cluster.tick() is None
    clock.now = last + EXPIRY + TINY
    beat_all(cluster, {"node2": (1, 1)})
    assert cluster.tick() is not None


def test_a_new_master_is_granted_a_lease_on_its_first_heartbeat(cluster: Arbiter, clock: FakeClock) -> None:
    election = fail_master(cluster, clock, {"node2": (1, 3), "node3": (1, 3)})
    assert election.master == "node2"
    assert cluster.heartbeat("node2", (1, 3)) == LeaseAnswer(2, "node2", True, LEASE)


def test_a_new_master_that_never_heartbeats_is_replaced_in_turn(cluster: Arbiter, clock: FakeClock) -> None:
    first = fail_master(cluster, clock, {"node2": (1, 3), "node3": (1, 3)})
    assert first.master == "node2"
    elected_at = clock.now
    # node2 dies straight after its election; node3 keeps beating.
    while clock.now <= elected_at + EXPIRY:
        assert cluster.tick() is None
        clock.advance(0.5)
        cluster.heartbeat("node3", (1, 3))
    second = cluster.tick()
    assert second == Election(3, "node3", "node2", "lease of node2 expired")


# ---- who wins ------------------------------------------------------------------------
@pytest.mark.parametrize(
    "replicas, winner",
    [
        ({"node2": (1, 10), "node3": (1, 12), "node4": (1, 11)}, "node3"),  # highest seq
        ({"node2": (2, 1), "node3": (1, 99), "node4": (1, 98)}, "node2"),  # epoch before seq
        ({"node4": (3, 7), "node3": (3, 7), "node5": (3, 7)}, "node3"),  # tie: lowest number
        ({"node10": (1, 5), "node9": (1, 5)}, "node9"),  # numbers, not strings: 9 < 10
        ({"node12": (1, 5), "node3": (1, 4)}, "node12"),  # freshness beats the number
    ],
)
def test_the_freshest_replica_wins_and_ties_go_to_the_lowest_number(
        clock: FakeClock, replicas: dict[str, tuple[int, int]], winner: str) -> None:
    arbiter = make_arbiter(clock, epoch=3, master="node1")
    clock.advance(EXPIRY + 1)  # the restart grace of a silent node1 runs out
    beat_all(arbiter, replicas)
    assert arbiter.candidates()[0] == winner
    election = arbiter.tick()
    assert election == Election(4, winner, "node1", "lease of node1 expired")


def test_candidates_are_sorted_best_first(clock: FakeClock) -> None:
    arbiter = make_arbiter(clock)
    beat_all(arbiter, {"node5": (1, 2), "node2": (1, 1), "node7": (2, 0), "node3": (1, 2)})
    assert arbiter.candidates() == ["node7", "node3", "node5", "node2"]


def test_the_latest_heartbeat_sets_the_replica_position(clock: FakeClock) -> None:
    arbiter = make_arbiter(clock)
    arbiter.heartbeat("node2", (1, 50))
    arbiter.heartbeat("node3", (1, 40))
    arbiter.heartbeat("node3", [1, 60])  # JSON gives lists
    assert arbiter.members["node3"].replica == (1, 60)
    assert arbiter.candidates() == ["node3", "node2"]


def test_node_numbers() -> None:
    assert node_number("node1") == 1
    assert node_number("node42") == 42
    assert node_number("dns") > node_number("node999999")  # unnumbered names sort last


# ---- who may not win ----------------------------------------------------------------
def test_a_draining_node_is_never_elected_however_fresh(cluster: Arbiter, clock: FakeClock) -> None:
    cluster.ineligible.add("node2")
    election = fail_master(cluster, clock, {"node2": (1, 100), "node3": (1, 1)})
    assert election.master == "node3"
    assert "node2" not in cluster.candidates()


def test_no_election_when_only_draining_nodes_are_left(cluster: Arbiter, clock: FakeClock) -> None:
    cluster.ineligible |= {"node2", "node3"}
    for _ in range(20):
        clock.advance(0.5)
        beat_all(cluster, {"node2": (1, 1), "node3": (1, 1)})
        assert cluster.tick() is None
    assert (cluster.epoch, cluster.master) == (1, "node1")


def test_a_node_silent_longer_than_the_lease_is_not_a_candidate(cluster: Arbiter, clock: FakeClock) -> None:
    # node3 has the freshest replica but stops beating with the master.
    beat_all(cluster, {"node1": (1, 1), "node2": (1, 5), "node3": (1, 9)})
    last_node3 = clock.now
    election = fail_master(cluster, clock, {"node2": (1, 5)}, step=0.25)
    assert clock.now - last_node3 > LEASE
    assert election.master == "node2"


def test_a_node_silent_for_exactly_the_lease_still_counts(clock: FakeClock) -> None:
    arbiter = make_arbiter(clock)
    arbiter.heartbeat("node2", (0, 0))
    clock.advance(LEASE)
    assert arbiter.alive("node2", LEASE)
    assert arbiter.candidates() == ["node2"]
    clock.advance(TINY)
    assert arbiter.candidates() == []


def test_no_candidate_means_no_election_and_the_master_may_come_back(cluster: Arbiter, clock: FakeClock) -> None:
    clock.advance(EXPIRY * 3)  # everyone silent
    assert cluster.lease_expired()
    assert cluster.tick() is None
    assert (cluster.epoch, cluster.master) == (1, "node1")
    # Nobody else was elected, so the old holder may simply carry on.
    assert cluster.heartbeat("node1", (1, 1)) == LeaseAnswer(1, "node1", True, LEASE)
    assert not cluster.lease_expired()


def test_a_forgotten_node_is_no_candidate(cluster: Arbiter, clock: FakeClock) -> None:
    cluster.forget("node2")
    election = fail_master(cluster, clock, {"node3": (1, 1)})
    assert election.master == "node3"
    cluster.forget("node-that-never-was")  # no error


# ---- deposed masters ------------------------------------------------------------------
def test_a_deposed_master_that_heartbeats_again_holds_nothing(cluster: Arbiter, clock: FakeClock) -> None:
    election = fail_master(cluster, clock, {"node2": (1, 1), "node3": (1, 1)})
    assert election.master == "node2"
    answer = cluster.heartbeat("node1", (1, 1))  # back from a partition
    assert answer == LeaseAnswer(epoch=2, master="node2", holder=False, valid_for=0.0)
    assert cluster.master == "node2"
    # Its heartbeat does not renew the new holder's lease either.
    renewed = cluster.renewed_at
    clock.advance(1.0)
    cluster.heartbeat("node1", (1, 1))
    assert cluster.renewed_at == renewed


def test_a_deposed_master_is_a_plain_candidate_later(cluster: Arbiter, clock: FakeClock) -> None:
    fail_master(cluster, clock, {"node2": (1, 1)})
    # node1 comes back with a fresher replica; node2 dies.
    cluster.ineligible.add("node3")
    election = fail_master(cluster, clock, {"node1": (2, 0)})
    assert election == Election(3, "node1", "node2", "lease of node2 expired")


# ---- planned handover ------------------------------------------------------------------
def test_handover_waits_for_the_old_lease_then_elects_the_target(cluster: Arbiter, clock: FakeClock) -> None:
    cluster.heartbeat("node1", (1, 5))
    renewed = clock.now
    cluster.request_handover("node3")
    # node2 is fresher, but the handover names node3.
    replicas = {"node1": (1, 5), "node2": (1, 6), "node3": (1, 5)}
    while clock.now + 0.25 <= renewed + EXPIRY:
        clock.advance(0.25)
        answers = beat_all(cluster, replicas)
        # The holder is no longer renewed: it lets its own lease run out.
        assert answers["node1"] == LeaseAnswer(1, "node1", False, 0.0)
        assert cluster.tick() is None
    clock.now = renewed + EXPIRY + TINY
    election = cluster.tick()
    assert election == Election(2, "node3", "node1", "handover from node1")
    assert cluster.handover_to is None
    assert cluster.heartbeat("node3", (1, 5)) == LeaseAnswer(2, "node3", True, LEASE)
    assert cluster.heartbeat("node1", (1, 5)).holder is False


def test_handover_to_the_master_itself_changes_nothing(cluster: Arbiter, clock: FakeClock) -> None:
    cluster.request_handover("node1")
    assert cluster.handover_to is None
    assert cluster.heartbeat("node1", (1, 1)).holder is True


def test_handover_to_a_node_that_died_meanwhile_elects_the_best_other(cluster: Arbiter, clock: FakeClock) -> None:
    cluster.request_handover("node3")
    # node3 stops beating; the old holder (no longer renewed) and node2 go on.
    election = fail_master(cluster, clock, {"node1": (1, 1), "node2": (1, 2)})
    assert election.master == "node2"
    assert election.epoch == 2
    assert cluster.handover_to is None


def test_handover_to_a_draining_node_does_not_elect_it(cluster: Arbiter, clock: FakeClock) -> None:
    cluster.request_handover("node3")
    cluster.ineligible.add("node3")
    election = fail_master(cluster, clock, {"node2": (1, 1), "node3": (1, 9)})
    assert election.master == "node2"


# ---- restart grace -----------------------------------------------------------------------
def test_a_restarted_arbiter_gives_the_persisted_holder_a_full_lease(clock: FakeClock) -> None:
    arbiter = make_arbiter(clock, epoch=7, master="node2")
    started = clock.now
    replicas = {"node1": (7, 50), "node3": (7, 50)}  # fresher than the silent holder, yet must wait
    while clock.now + 0.5 <= started + EXPIRY:
        clock.advance(0.5)
        beat_all(arbiter, replicas)
        assert arbiter.tick() is None
    clock.now = started + EXPIRY + TINY
    assert arbiter.tick() == Election(8, "node1", "node2", "lease of node2 expired")


def test_a_restarted_arbiter_keeps_renewing_the_persisted_holder(clock: FakeClock) -> None:
    arbiter = make_arbiter(clock, epoch=7, master="node2")
    for _ in range(20):
        clock.advance(1.0)
        assert arbiter.heartbeat("node2", (7, 1)) == LeaseAnswer(7, "node2", True, LEASE)
        arbiter.heartbeat("node1", (7, 9))
        assert arbiter.tick() is None
    assert arbiter.first_master("node1") is None  # epoch 7 is no brand-new cluster


# ---- epochs --------------------------------------------------------------------------------
def test_epochs_strictly_increase_over_many_elections(clock: FakeClock) -> None:
    arbiter = make_arbiter(clock, epoch=41)
    nodes = ["node1", "node2", "node3", "node4"]
    epochs: list[int] = []
    for round_ in range(12):
        alive = [n for i, n in enumerate(nodes) if i != round_ % len(nodes)]
        for _ in range(int(EXPIRY / 0.5) + 3):
            clock.advance(0.5)
            # The master of the moment is the one that dies this round.
            beat_all(arbiter, {n: (max(epochs or [41]), round_) for n in alive if n != arbiter.master})
            election = arbiter.tick()
            if election:
                epochs.append(election.epoch)
                assert election.epoch == arbiter.epoch
                break
    assert len(epochs) >= 10
    assert epochs[0] == 42
    assert all(b == a + 1 for a, b in zip(epochs, epochs[1:]))


def test_a_late_standby_with_the_last_changes_is_waited_for_not_passed_over(clock: FakeClock) -> None:
    """With a bounded standby set, node2 may be the only one holding the last acknowledged change:
    when its heartbeat is late as the master's lease runs out, the arbiter waits for it (up to
    `wait_for_fresher`) rather than electing node3, a spare with an older replica."""
    arbiter = make_arbiter(clock, wait_for_fresher=2 * LEASE)
    beat_all(arbiter, {"node1": (1, 10), "node2": (1, 10), "node3": (1, 2)})
    arbiter.first_master("node1")
    clock.advance(LEASE * 0.9)
    arbiter.heartbeat("node3", (1, 2))  # node2 (standby) goes quiet with node1 (the master)
    clock.advance(LEASE * 0.3 + MARGIN)
    arbiter.heartbeat("node3", (1, 2))
    assert arbiter.lease_expired()
    assert arbiter.tick() is None  # node2 is late, not dead: wait
    arbiter.heartbeat("node2", (1, 10))
    assert arbiter.tick().master == "node2"


def test_a_fresher_node_silent_past_the_wait_is_given_up(clock: FakeClock) -> None:
    arbiter = make_arbiter(clock, wait_for_fresher=2 * LEASE)
    beat_all(arbiter, {"node1": (1, 10), "node2": (1, 10), "node3": (1, 2)})
    arbiter.first_master("node1")
    for _ in range(10):  # node3 alone keeps beating, past the wait
        clock.advance(LEASE / 4)
        arbiter.heartbeat("node3", (1, 2))
    assert arbiter.tick().master == "node3"  # the freshest that lives: nothing fresher can come back


def test_a_node_without_a_master_service_may_not_be_master() -> None:
    """A node with `master_service: false` labels itself so; the DNS service keeps it off the ballot."""
    from taskorg.dns.members import Member, may_be_master
    from taskorg.labels import NO_MASTER_SERVICE

    assert may_be_master(Member(1, "id1", "127.0.0.2", {}, "active"))
    assert not may_be_master(Member(2, "id2", "127.0.0.3", {NO_MASTER_SERVICE: "true"}, "active"))
    assert not may_be_master(Member(3, "id3", "127.0.0.4", {}, "draining"))
