"""Voters: the witness and up to four regular nodes, 3 or 5 (odd), dead voters replaced after a grace.

Per docs/architecture.md "Voters and their replacement": a 100-node cluster
has 5 voters; a silent voter keeps its seat within its grace and loses it
after, when a living machine can take it; one change at a time, the dead
removed before the living is added; never a change that leaves no living
majority; the witness votes while it lives; the count ends odd.
"""

from __future__ import annotations

import pytest

from taskorg.dns.voters import Machine, VoterChange, apply, next_change, rejoin_with, voter_count

GRACE = 10.0
WITNESS = "10.0.0.1"


def machines(count: int, silent: dict[int, float] | None = None, left: set[int] = frozenset()) -> list[Machine]:
    """The witness (number 0, 10.0.0.1) and regular nodes 1..count-1 at 10.0.0.(n+1)."""
    silent = silent or {}
    return [Machine(f"10.0.0.{n + 1}", n, silent.get(n, 0.0), n not in left) for n in range(count)]


def converge(current: list[str], group: list[Machine], size: int = 5,
             steps: int = 10) -> tuple[list[str], list[VoterChange]]:
    """Apply next_change until it has nothing to do; every intermediate group keeps a living majority."""
    living = {m.address for m in group if m.silent_for == 0}
    changes = []
    for _ in range(steps):
        change = next_change(current, group, GRACE, size)
        if change is None:
            return current, changes
        current = apply(current, change)
        changes.append(change)
        assert sum(a in living for a in current) * 2 > len(current), f"no living majority in {current}"
    raise AssertionError(f"no end after {steps} changes: {changes}")


def steps(changes: list[VoterChange]) -> list[tuple[str, str]]:
    return [(c.kind, c.address) for c in changes]


@pytest.mark.parametrize("count, voters", [(1, 1), (2, 1), (3, 3), (4, 3), (5, 5), (6, 5), (100, 5)])
def test_the_count_is_odd_and_at_most_five(count: int, voters: int) -> None:
    assert voter_count(count) == voters
    assert len(converge([WITNESS], machines(count))[0]) == voters
    assert len(converge([WITNESS], machines(count), size=3)[0]) == min(voters, 3)


def test_the_witness_and_the_lowest_numbers_are_chosen_first() -> None:
    assert sorted(converge([WITNESS], machines(100))[0]) == [WITNESS, "10.0.0.2", "10.0.0.3", "10.0.0.4",
                                                             "10.0.0.5"]


def test_two_machines_have_one_voter_the_witness() -> None:
    """Two voters would survive no loss at all; one survives the regular node's."""
    assert next_change([WITNESS], machines(2), GRACE) is None


def test_nothing_changes_in_a_healthy_group_of_the_configured_size() -> None:
    assert next_change([WITNESS, "10.0.0.2", "10.0.0.3"], machines(10), GRACE, size=3) is None


def test_a_group_smaller_than_its_size_grows_by_two() -> None:
    final, changes = converge([WITNESS, "10.0.0.2", "10.0.0.3"], machines(10))
    assert steps(changes) == [("add", "10.0.0.4"), ("add", "10.0.0.5")]


def test_a_silent_voter_keeps_its_seat_within_the_grace() -> None:
    current = [WITNESS, "10.0.0.2", "10.0.0.3"]
    assert next_change(current, machines(4, silent={1: GRACE}), GRACE) is None


def test_a_dead_voter_is_removed_first_then_a_living_node_added() -> None:
    current = [WITNESS, "10.0.0.2", "10.0.0.3"]
    group = machines(5, silent={1: GRACE + 1})
    assert next_change(current, group, GRACE) == VoterChange(
        "remove", "10.0.0.2", f"silent for {GRACE + 1:.1f} s, past the {GRACE:g} s grace")
    final, changes = converge(current, group)
    assert steps(changes) == [("remove", "10.0.0.2"), ("add", "10.0.0.4")]
    assert final == [WITNESS, "10.0.0.3", "10.0.0.4"]


def test_a_dead_voter_with_nobody_to_replace_it_keeps_its_seat() -> None:
    """Three machines, one dead: dropping it would not let the group survive more; back, it votes again."""
    current = [WITNESS, "10.0.0.2", "10.0.0.3"]
    assert next_change(current, machines(3, silent={2: GRACE + 1}), GRACE) is None
    assert next_change(current, machines(3, silent={0: GRACE + 1}), GRACE) is None


def test_a_dead_witness_is_replaced_and_takes_its_seat_back_when_alive() -> None:
    current = [WITNESS, "10.0.0.2", "10.0.0.3"]
    replaced, changes = converge(current, machines(4, silent={0: GRACE + 1}))
    assert steps(changes) == [("remove", WITNESS), ("add", "10.0.0.4")]
    back, changes = converge(replaced, machines(4))
    assert changes == [VoterChange("add", WITNESS, "the witness votes while it lives"),
                       VoterChange("remove", "10.0.0.4", "the group keeps an odd count of at most 5")]
    assert sorted(back) == [WITNESS, "10.0.0.2", "10.0.0.3"]


def test_five_voters_lose_two_and_get_two_living_ones() -> None:
    current = [WITNESS] + [f"10.0.0.{n}" for n in (2, 3, 4, 5)]
    final, changes = converge(current, machines(8, silent={2: GRACE + 5, 3: GRACE + 1}))
    assert [c.kind for c in changes] == ["remove", "remove", "add", "add"]
    assert changes[0].address == "10.0.0.3"  # the longest silent first
    assert final == [WITNESS, "10.0.0.2", "10.0.0.5", "10.0.0.6", "10.0.0.7"]


def test_no_change_without_a_living_majority() -> None:
    """Two of three voters dead: nothing can be committed, and removing one would not help anyway."""
    current = [WITNESS, "10.0.0.2", "10.0.0.3"]
    assert next_change(current, machines(6, silent={1: GRACE + 1, 2: GRACE + 1}), GRACE) is None


def test_a_voter_unknown_to_the_cluster_is_silent() -> None:
    current = [WITNESS, "10.0.0.2", "10.0.0.99"]
    assert next_change(current, machines(4), GRACE) == VoterChange(
        "remove", "10.0.0.99", "silent for inf s, past the 10 s grace")


def test_a_voter_that_left_is_replaced() -> None:
    current = [WITNESS, "10.0.0.2", "10.0.0.3"]
    final, changes = converge(current, machines(4, left={2}))
    assert changes == [VoterChange("remove", "10.0.0.3", "it left the cluster"),
                       VoterChange("add", "10.0.0.4", "a living machine takes a free seat")]
    assert final == [WITNESS, "10.0.0.2", "10.0.0.4"]


def test_stable_voters_are_kept_over_lower_numbered_newcomers() -> None:
    """A seat is not taken from a living voter because a lower number came back: no churn."""
    current = [WITNESS, "10.0.0.3", "10.0.0.4"]
    assert next_change(current, machines(4), GRACE) is None
    assert sorted(converge(current, machines(5))[0]) == [WITNESS, "10.0.0.2", "10.0.0.3", "10.0.0.4", "10.0.0.5"]


def test_an_interrupted_replacement_leaves_an_odd_group() -> None:
    """The spare died between the removal and the addition: the even pair gives up its highest seat."""
    final, changes = converge([WITNESS, "10.0.0.2"], machines(2))
    assert final == [WITNESS]


# ---- a voter's engine against the group leader's set ---------------------------------------------

W, A, B, C = "10.0.0.10", "10.0.0.11", "10.0.0.12", "10.0.0.13"


def test_an_engine_that_agrees_with_the_leader_stays() -> None:
    assert rejoin_with([A, B, C], [C, B, A]) is None


def test_a_voter_kept_while_the_group_changed_rejoins_with_the_groups_set() -> None:
    # Down while the witness came back and B stepped down: C still votes, but knew A, B and itself,
    # so the leader (the witness) was a stranger to its engine.
    assert rejoin_with([A, B, C], [A, C, W]) == [A, C, W]


def test_a_voter_removed_while_down_follows_as_a_replica() -> None:
    assert rejoin_with([A, B, C], [A, B, W]) == [A, B, W]


def test_a_replica_named_a_voter_just_before_it_went_down_rejoins_as_one() -> None:
    # Added to the group an instant before its kill, C came back as a read-only replica of A and B,
    # while the witness leads and A stepped down: it heard from no leader and followed nothing.
    assert rejoin_with([A, B], [B, C, W]) == [B, C, W]


def test_a_replica_of_voters_that_changed_follows_the_groups_set() -> None:
    assert rejoin_with([A, B], [B, W]) == [B, W]
    assert rejoin_with([A, B], [B, A]) is None


def test_no_leader_answer_changes_nothing() -> None:
    assert rejoin_with([A, B, C], []) is None
